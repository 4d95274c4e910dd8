//! Events from the runner to reporters, and the results they carry.
//!
//! The runner knows nothing about output formats and reporters know nothing about how results
//! were computed: everything a reporter shows arrives in an [`Event`].

use crate::spec::Check;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The outcome of one check on one case.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckOutcome {
    /// Whether the check passed (a skipped check counts as passed).
    pub passed: bool,
    /// Named measurements (`max_abs`, `median_ms`, `exponent`, …).
    pub metrics: BTreeMap<String, f64>,
    /// Why it failed; empty when it passed.
    pub errors: Vec<String>,
    /// Remarks that do not change the verdict (e.g. "GPU-class target measured on cpu").
    pub notes: Vec<String>,
    /// Why the check did not run, when it did not.
    pub skipped: Option<String>,
}

impl CheckOutcome {
    /// A passing outcome with `metrics`.
    pub fn pass(metrics: BTreeMap<String, f64>) -> Self {
        Self { passed: true, metrics, ..Self::default() }
    }

    /// An outcome that passes exactly when `errors` is empty.
    pub fn from_errors(metrics: BTreeMap<String, f64>, errors: Vec<String>) -> Self {
        Self { passed: errors.is_empty(), metrics, errors, ..Self::default() }
    }

    /// A failed outcome with one reason.
    pub fn fail(reason: impl Into<String>) -> Self {
        Self { passed: false, errors: vec![reason.into()], ..Self::default() }
    }

    /// A skipped outcome with its reason.
    pub fn skip(reason: impl Into<String>) -> Self {
        Self { passed: true, skipped: Some(reason.into()), ..Self::default() }
    }

    /// Adds a note.
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }
}

/// One check's result with its timing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Which check.
    pub check: Check,
    /// What it found.
    #[serde(flatten)]
    pub outcome: CheckOutcome,
    /// Wall time the check took, in seconds.
    pub elapsed_s: f64,
}

/// Identity of a case: a module test in one dtype on one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseInfo {
    /// Index in the plan.
    pub index: usize,
    /// Module test name.
    pub name: String,
    /// Module kind.
    pub module: String,
    /// Dtype name.
    pub dtype: String,
    /// Device name.
    pub device: String,
    /// Input shape.
    pub input_shape: Vec<usize>,
}

/// A finished case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    /// Which case.
    #[serde(flatten)]
    pub case: CaseInfo,
    /// Whether every check passed.
    pub passed: bool,
    /// Per-check results in run order.
    pub checks: Vec<CheckResult>,
}

/// Totals of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Cases run.
    pub cases: usize,
    /// Cases with every check passed.
    pub cases_passed: usize,
    /// Checks run (skipped ones included).
    pub checks: usize,
    /// Checks failed.
    pub checks_failed: usize,
    /// Checks skipped.
    pub checks_skipped: usize,
}

/// Where a run happens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// Host name, when known.
    pub host: String,
    /// Operating system and architecture.
    pub os: String,
    /// Logical CPUs.
    pub cpus: usize,
    /// tensile's version.
    pub tensile_version: String,
}

impl Machine {
    /// The machine this process runs on.
    pub fn current() -> Self {
        let host = std::fs::read_to_string("/etc/hostname").map(|s| s.trim().to_string()).unwrap_or_else(|_| "unknown".to_string());
        Self {
            host,
            os: format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            tensile_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// What happens during a run, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The plan is about to run.
    RunStarted {
        /// Number of cases.
        cases: usize,
        /// Total checks across cases.
        checks: usize,
        /// The machine.
        machine: Machine,
        /// Devices in the plan.
        devices: Vec<String>,
    },
    /// A case starts.
    CaseStarted(CaseInfo),
    /// A check of the current case finished.
    CheckFinished {
        /// The case.
        case: CaseInfo,
        /// The result.
        result: CheckResult,
    },
    /// A case finished.
    CaseFinished(CaseResult),
    /// The run finished.
    RunFinished {
        /// Totals.
        totals: Totals,
        /// Wall time of the run in seconds.
        elapsed_s: f64,
    },
}

/// Consumes events.
pub trait Reporter {
    /// Handles one event. Reporters must not fail a run: a reporter that cannot write keeps
    /// the error and returns it from [`Reporter::finish`].
    fn on_event(&mut self, event: &Event);
    /// Called once after `RunFinished`; returns a write error, if any.
    fn finish(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A reporter that keeps every event (for tests and for library callers).
#[derive(Debug, Default)]
pub struct Recorder {
    /// Events in arrival order.
    pub events: Vec<Event>,
}

impl Reporter for Recorder {
    fn on_event(&mut self, event: &Event) {
        self.events.push(event.clone());
    }
}
