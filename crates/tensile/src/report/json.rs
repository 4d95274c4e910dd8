//! The JSON report, for machines: CI gates, dashboards, diffs between runs.
//!
//! # Schema (version [`SCHEMA_VERSION`] = 1)
//!
//! Also documented in `docs/report-schema.md`. One pretty-printed JSON object:
//!
//! - `schema_version` (integer): `1`. Fields may be added without a bump; removing a field or
//!   changing its meaning bumps it.
//! - `tensile_version` (string): version of tensile that ran the plan (taken from the run's
//!   machine description, or this crate's version when the run never started).
//! - `machine` (object or null): `host`, `os` (e.g. `linux-x86_64`), `cpus` (logical CPUs),
//!   `tensile_version`; null when no `RunStarted` event arrived.
//! - `devices` (array of strings): devices in the plan (`cpu`, `cuda`, `cuda:1`).
//! - `totals` (object): `cases`, `cases_passed`, `checks`, `checks_failed`, `checks_skipped`.
//! - `elapsed_s` (number): wall time of the run in seconds.
//! - `cases` (array): one object per case (module test × dtype × device), in run order:
//!   - `index` (integer): position in the plan;
//!   - `name` (string): module test name, e.g. `tiny-llama::attention`;
//!   - `module` (string): module kind, e.g. `llama.attention`;
//!   - `dtype` (string), `device` (string);
//!   - `input_shape` (array of integers);
//!   - `passed` (boolean): every check passed (skipped checks count as passed);
//!   - `checks` (array): one object per check, in run order:
//!     - `check` (string): `correctness`, `gradients`, `determinism`, `batch_invariance`,
//!       `dtype_parity`, `performance`, `memory` or `scaling`;
//!     - `passed` (boolean);
//!     - `metrics` (object): metric name → number, or `null` for a non-finite value;
//!     - `errors` (array of strings): why it failed, empty when it passed;
//!     - `notes` (array of strings): remarks that do not change the verdict;
//!     - `skipped` (string or null): why the check did not run;
//!     - `elapsed_s` (number): wall time of the check in seconds.
//!
//! # Non-finite numbers
//!
//! JSON has no NaN or infinity. serde_json writes every non-finite `f64` (NaN, +inf, -inf) as
//! `null`, so the file always parses; a `null` metric means "not a finite number" (for example
//! the max error of an output that contains NaN), never "not measured" (absent metrics are
//! simply left out of `metrics`).

use crate::event::{CaseResult, Event, Machine, Reporter, Totals};
use serde::Serialize;
use std::path::PathBuf;

/// Version of the report layout; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
struct Report<'a> {
    schema_version: u32,
    tensile_version: &'a str,
    machine: &'a Option<Machine>,
    devices: &'a [String],
    totals: &'a Totals,
    elapsed_s: f64,
    cases: &'a [CaseResult],
}

/// Collects case results and writes the report file when the run finishes.
///
/// Write errors never interrupt the run: the first one is kept and returned from
/// [`Reporter::finish`].
pub struct JsonReporter {
    path: PathBuf,
    machine: Option<Machine>,
    devices: Vec<String>,
    cases: Vec<CaseResult>,
    error: Option<std::io::Error>,
}

impl JsonReporter {
    /// A reporter that will write the report to `path` on `RunFinished` (replacing the file).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into(), machine: None, devices: Vec::new(), cases: Vec::new(), error: None }
    }

    /// The report text written on `RunFinished`.
    fn render(&self, totals: &Totals, elapsed_s: f64) -> serde_json::Result<String> {
        // The version comes from the event when there is one, so the report describes the run
        // rather than whichever build happens to render it.
        let tensile_version = self.machine.as_ref().map_or(env!("CARGO_PKG_VERSION"), |m| m.tensile_version.as_str());
        serde_json::to_string_pretty(&Report {
            schema_version: SCHEMA_VERSION,
            tensile_version,
            machine: &self.machine,
            devices: &self.devices,
            totals,
            elapsed_s,
            cases: &self.cases,
        })
    }
}

impl Reporter for JsonReporter {
    fn on_event(&mut self, event: &Event) {
        match event {
            Event::RunStarted { machine, devices, .. } => {
                self.machine = Some(machine.clone());
                self.devices = devices.clone();
            }
            Event::CaseFinished(case) => self.cases.push(case.clone()),
            Event::RunFinished { totals, elapsed_s } => {
                let written = self.render(totals, *elapsed_s).map_err(std::io::Error::other).and_then(|text| std::fs::write(&self.path, text + "\n"));
                if let Err(e) = written {
                    self.error.get_or_insert(std::io::Error::new(e.kind(), format!("failed to write {}: {e}", self.path.display())));
                }
            }
            Event::CaseStarted(_) | Event::CheckFinished { .. } => {}
        }
    }

    fn finish(&mut self) -> std::io::Result<()> {
        self.error.take().map_or(Ok(()), Err)
    }
}
