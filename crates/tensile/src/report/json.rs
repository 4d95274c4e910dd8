//! The JSON report. Schema (version 1), documented field by field in `docs/report-schema.md`:
//!
//! ```text
//! { "schema_version": 1, "tensile_version": "0.1.0",
//!   "machine": {"host", "os", "cpus", "tensile_version"}, "devices": ["cpu"],
//!   "totals": {"cases", "cases_passed", "checks", "checks_failed", "checks_skipped"},
//!   "elapsed_s": 1.2,
//!   "cases": [{"index", "name", "module", "dtype", "device", "input_shape", "passed",
//!              "checks": [{"check", "passed", "metrics": {..}, "errors": [..], "notes": [..],
//!                          "skipped": null | "reason", "elapsed_s"}]}] }
//! ```
//! Non-finite metrics (NaN, ±inf) are written as `null`, since JSON has no such numbers.

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
pub struct JsonReporter {
    path: PathBuf,
    machine: Option<Machine>,
    devices: Vec<String>,
    cases: Vec<CaseResult>,
    error: Option<std::io::Error>,
}

impl JsonReporter {
    /// A reporter that will write to `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into(), machine: None, devices: Vec::new(), cases: Vec::new(), error: None }
    }

    /// The report as a JSON value (what [`Reporter::on_event`] writes on `RunFinished`).
    fn render(&self, totals: &Totals, elapsed_s: f64) -> serde_json::Result<String> {
        serde_json::to_string_pretty(&Report {
            schema_version: SCHEMA_VERSION,
            tensile_version: env!("CARGO_PKG_VERSION"),
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
                    self.error = Some(std::io::Error::new(e.kind(), format!("failed to write {}: {e}", self.path.display())));
                }
            }
            _ => {}
        }
    }

    fn finish(&mut self) -> std::io::Result<()> {
        self.error.take().map_or(Ok(()), Err)
    }
}
