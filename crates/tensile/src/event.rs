//! Events from the runner to reporters, and the results they carry.
//!
//! The runner knows nothing about output formats and reporters know nothing about how results
//! were computed: everything a reporter shows arrives in an [`Event`].

use crate::keys::{Metric, Series};
use crate::spec::Check;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The outcome of one check on one case.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckOutcome {
    /// Whether the check passed (a skipped check counts as passed).
    pub passed: bool,
    /// Named measurements (`max_abs`, `median_ms`, `exponent`, …). JSON has no NaN or
    /// infinity: they are written as `null` and read back as NaN, so a result with a NaN
    /// metric survives the trip through a report or an isolated case's process.
    #[serde(deserialize_with = "null_as_nan::map")]
    pub metrics: BTreeMap<Metric, f64>,
    /// Why it failed; empty when it passed.
    pub errors: Vec<String>,
    /// Remarks that do not change the verdict (e.g. "GPU-class target measured on cpu").
    pub notes: Vec<String>,
    /// Why the check did not run, when it did not.
    pub skipped: Option<String>,
    /// Named series behind the metrics, for plots: `samples_ms` (every timed run of a
    /// performance check), `seq_len` / `ms` / `mb` (the points of a scaling sweep).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "null_as_nan::series")]
    pub series: BTreeMap<Series, Vec<f64>>,
}

/// Reading `null` as NaN where serde_json wrote a non-finite number as `null`.
mod null_as_nan {
    use serde::{Deserialize, Deserializer};
    use std::collections::BTreeMap;

    pub fn map<'de, D: Deserializer<'de>, K: Deserialize<'de> + Ord>(d: D) -> Result<BTreeMap<K, f64>, D::Error> {
        Ok(BTreeMap::<K, Option<f64>>::deserialize(d)?.into_iter().map(|(k, v)| (k, v.unwrap_or(f64::NAN))).collect())
    }

    pub fn series<'de, D: Deserializer<'de>, K: Deserialize<'de> + Ord>(d: D) -> Result<BTreeMap<K, Vec<f64>>, D::Error> {
        Ok(BTreeMap::<K, Vec<Option<f64>>>::deserialize(d)?.into_iter().map(|(k, v)| (k, v.into_iter().map(|x| x.unwrap_or(f64::NAN)).collect())).collect())
    }
}

impl CheckOutcome {
    /// A passing outcome with `metrics`.
    pub fn pass(metrics: BTreeMap<Metric, f64>) -> Self {
        Self { passed: true, metrics, ..Self::default() }
    }

    /// An outcome that passes exactly when `errors` is empty.
    pub fn from_errors(metrics: BTreeMap<Metric, f64>, errors: Vec<String>) -> Self {
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
    /// Wall time the check took, in seconds (all repetitions together).
    pub elapsed_s: f64,
    /// Pass/fail counts when the check was repeated (`--repeat N`, N > 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<RepeatStats>,
}

impl CheckResult {
    /// The verdict in one word.
    pub fn status(&self) -> Status {
        if self.repeat.as_ref().is_some_and(|r| r.flaky) {
            Status::Flaky
        } else if !self.outcome.passed {
            Status::Failed
        } else if self.outcome.skipped.is_some() {
            Status::Skipped
        } else {
            Status::Passed
        }
    }
}

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every run passed.
    Passed,
    /// Every run failed.
    Failed,
    /// The check did not run (see its reason).
    Skipped,
    /// Some runs passed and some failed on the same input: a failure, reported as such.
    Flaky,
}

impl Status {
    /// Lowercase name (`passed`, `failed`, `skipped`, `flaky`).
    pub fn name(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            Status::Flaky => "flaky",
        }
    }
}

/// How often a repeated check failed on the same input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepeatStats {
    /// Runs made.
    pub runs: usize,
    /// Runs that failed.
    pub failures: usize,
    /// `failures / runs`.
    pub failure_rate: f64,
    /// Lower end of the 95% Wilson score interval of the failure rate.
    pub rate_low: f64,
    /// Upper end of that interval.
    pub rate_high: f64,
    /// Whether it both passed and failed.
    pub flaky: bool,
}

impl RepeatStats {
    /// The statistics of `failures` out of `runs` (`runs` ≥ 1).
    pub fn new(runs: usize, failures: usize) -> Self {
        let (rate_low, rate_high) = crate::stats::wilson_interval(failures, runs, 1.959_963_984_540_054);
        Self { runs, failures, failure_rate: failures as f64 / runs.max(1) as f64, rate_low, rate_high, flaky: failures > 0 && failures < runs }
    }
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

impl CaseInfo {
    /// The case's identity across runs and shards: test name, dtype and device.
    pub fn key(&self) -> crate::shard::CaseKey {
        (self.name.clone(), self.dtype.clone(), self.device.clone())
    }
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

impl CaseResult {
    /// A finished case: passed when every check passed.
    pub fn new(case: CaseInfo, checks: Vec<CheckResult>) -> Self {
        Self { passed: checks.iter().all(|c| c.outcome.passed), case, checks }
    }
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
    /// Checks that both passed and failed when repeated (counted in `checks_failed` too).
    #[serde(default)]
    pub checks_flaky: usize,
    /// The run was stopped by SIGINT or SIGTERM: the results are what ran before it, and
    /// cases after it did not run.
    #[serde(default)]
    pub interrupted: bool,
}

impl Totals {
    /// Whether checks ran and every one of them was skipped: nothing was verified (a CUDA
    /// run on a machine without CUDA).
    pub fn all_skipped(&self) -> bool {
        self.checks > 0 && self.checks_skipped == self.checks
    }
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

/// One shard run behind a merged report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardRun {
    /// The shard, when the report was one (an unsharded report merges as the whole plan).
    pub shard: Option<crate::shard::ShardInfo>,
    /// Where it ran.
    pub host: Option<String>,
    /// Its wall time in seconds.
    pub elapsed_s: f64,
    /// Its cases.
    pub cases: usize,
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
        /// Which configurations the plan exercises.
        #[serde(default)]
        coverage: crate::coverage::Coverage,
        /// The whole plan this run belongs to (all shards' cases when it is one shard).
        #[serde(default)]
        plan: Option<crate::shard::PlanIdentity>,
        /// Which shard of the plan runs, when it is split.
        #[serde(default)]
        shard: Option<crate::shard::ShardInfo>,
        /// The commit of the code under test, when known ([`crate::baseline::detect_commit`]).
        #[serde(default)]
        commit: Option<String>,
        /// The shard runs a merged report was made from (empty for a run).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        merged: Vec<ShardRun>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_metrics_survive_a_json_round_trip_as_nan() {
        let mut outcome = CheckOutcome::fail("output is not finite");
        outcome.metrics.insert(Metric::MaxAbs, f64::NAN);
        outcome.metrics.insert(Metric::Pcc, 0.5);
        outcome.series.insert(Series::SamplesMs, vec![1.0, f64::INFINITY]);
        let result = CheckResult { check: Check::Correctness, outcome, elapsed_s: 0.1, repeat: None };
        let json = serde_json::to_string(&result).unwrap();
        assert!(json.contains("\"max_abs\":null"), "{json}");
        let back: CheckResult = serde_json::from_str(&json).unwrap();
        assert!(back.outcome.metrics[&Metric::MaxAbs].is_nan());
        assert_eq!(back.outcome.metrics[&Metric::Pcc], 0.5);
        assert!(back.outcome.series[&Series::SamplesMs][1].is_nan());
        assert_eq!(back.outcome.errors, result.outcome.errors);
    }
}
