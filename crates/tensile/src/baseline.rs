//! Baselines: the latency samples of a run saved under a name, and the comparison that fails a
//! later run only when its slowdown is statistically clear.
//!
//! A performance check compares its timed samples with the baseline's samples of the same case
//! (same test name, dtype, device and input shape). The slowdown is `median(new) /
//! median(old) − 1` with a bootstrap confidence interval that resamples both runs; the check
//! fails only when the interval's lower end clears the threshold (default 5%). Noise widens the
//! interval and keeps its lower end under the threshold; a real slowdown moves the whole
//! interval up. Comparing is part of the check, so the console, JSON, JUnit and HTML reports
//! all show it, and `--repeat` repeats it.

use crate::error::{Error, Result};
use crate::event::{CaseInfo, CaseResult, CheckOutcome, Event, Machine, Reporter};
use crate::keys::{Metric, Series};
use crate::spec::Check;
use crate::stats::{bootstrap_ratio_ci, median};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Version of the baseline file format.
pub const BASELINE_VERSION: u32 = 1;
/// Default regression threshold: 5% slower.
pub const DEFAULT_THRESHOLD: f64 = 0.05;
/// Default folder of baseline files, relative to the working directory.
pub const DEFAULT_DIR: &str = ".tensile/baselines";
/// Confidence of the slowdown interval.
const CONFIDENCE: f64 = 0.95;
/// Bootstrap resamples; 2000 keeps the 2.5% quantile stable to about a tenth of a percent.
const RESAMPLES: usize = 2000;

/// A saved run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// File format version.
    pub schema_version: u32,
    /// Name it was saved under.
    pub name: String,
    /// Commit of the code measured, when known.
    pub commit: Option<String>,
    /// Seconds since the Unix epoch when it was saved.
    pub created_unix_s: u64,
    /// Where it was measured.
    pub machine: Option<Machine>,
    /// One entry per case with a performance check.
    pub entries: Vec<Entry>,
}

/// The latency samples of one case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
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
    /// Median of the samples, in milliseconds.
    pub median_ms: f64,
    /// Every timed run, in milliseconds.
    pub samples_ms: Vec<f64>,
    /// Every run timed on one thread (CPU), in milliseconds; empty in older files and on GPUs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub work_samples_ms: Vec<f64>,
}

/// A case's latency against its baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    /// The baseline's median, in milliseconds.
    pub baseline_median_ms: f64,
    /// `median(new) / median(old) − 1`.
    pub slowdown: f64,
    /// Lower end of the 95% interval of the slowdown.
    pub low: f64,
    /// Upper end.
    pub high: f64,
    /// Whether the lower end clears the threshold.
    pub regression: bool,
}

/// Compares `new` samples with `old` ones (both in ms): a regression when the lower end of the
/// slowdown's 95% interval exceeds `threshold`. The bootstrap is seeded, so the same samples
/// always give the same verdict.
pub fn compare(new: &[f64], old: &[f64], threshold: f64) -> Comparison {
    // Medians of multi-threaded latencies, not a low quantile: with one of two cores busy, the
    // fastest tenth depends on how often both cores happened to be free, and a module compared
    // with its own baseline then failed 8 times in 20; medians failed it 0 times.
    compare_at(new, old, threshold, 0.5)
}

/// [`compare`] on the `q`-quantiles of both sides instead of the medians.
pub fn compare_at(new: &[f64], old: &[f64], threshold: f64, q: f64) -> Comparison {
    let (ratio, lo, hi) = bootstrap_ratio_ci(new, old, q, CONFIDENCE, RESAMPLES, 0x5EED);
    // Written so that NaN (no samples) is not a regression.
    let regression = lo - 1.0 > threshold;
    Comparison { baseline_median_ms: median(old), slowdown: ratio - 1.0, low: lo - 1.0, high: hi - 1.0, regression }
}

/// The quantile of one-thread runs that baselines compare: the fastest tenth. One thread has
/// no scheduling between its own threads to vary, so interference from other processes only
/// ever adds time, and with another core busy it added it to most runs (the median of the same
/// module's one-thread runs went from 3.0 to 4.0 ms between two processes).
pub const WORK_QUANTILE: f64 = 0.1;

/// Checks a baseline name: letters, digits, `.`, `_`, `-`, so it is a safe file name.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty() && !name.starts_with('.') && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::Setting { name: format!("baseline name `{name}`"), reason: "use only letters, digits, `.`, `_` and `-`".into() })
    }
}

/// The file of baseline `name` in `dir`.
pub fn path(dir: &Path, name: &str) -> Result<PathBuf> {
    validate_name(name)?;
    Ok(dir.join(format!("{name}.json")))
}

/// The commit being measured: `TENSILE_COMMIT`, `GITHUB_SHA` or `CI_COMMIT_SHA` when set, else
/// `git rev-parse HEAD` in the working directory, else none.
pub fn detect_commit() -> Option<String> {
    for var in ["TENSILE_COMMIT", "GITHUB_SHA", "CI_COMMIT_SHA"] {
        if let Ok(v) = std::env::var(var) {
            if !v.trim().is_empty() {
                return Some(v.trim().to_string());
            }
        }
    }
    let out = std::process::Command::new("git").args(["rev-parse", "HEAD"]).output().ok()?;
    let sha = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !sha.is_empty()).then_some(sha)
}

impl Baseline {
    /// Loads baseline `name` from `dir`.
    pub fn load(dir: &Path, name: &str) -> Result<Self> {
        let path = path(dir, name)?;
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
        let mut b: Baseline = serde_json::from_str(&text).map_err(|e| Error::Baseline { path: path.clone(), reason: e.to_string() })?;
        if b.schema_version != BASELINE_VERSION {
            return Err(Error::Baseline { path, reason: format!("format {} is not the supported {BASELINE_VERSION}", b.schema_version) });
        }
        // The file's name is the baseline's identity (a copied file answers to its new name).
        b.name = name.to_string();
        Ok(b)
    }

    /// Writes the baseline to `dir/NAME.json`, creating `dir`.
    pub fn save(&self, dir: &Path) -> Result<PathBuf> {
        let path = path(dir, &self.name)?;
        std::fs::create_dir_all(dir).map_err(|source| Error::Write { path: dir.to_path_buf(), source })?;
        // Serialising plain numbers and strings cannot fail; NaN samples become null.
        let text = serde_json::to_string_pretty(self).unwrap_or_default();
        crate::atomic::write(&path, text + "\n").map_err(|source| Error::Write { path: path.clone(), source })?;
        Ok(path)
    }

    /// A baseline of the performance checks in `cases`.
    pub fn from_cases(name: &str, machine: Option<Machine>, cases: &[CaseResult]) -> Self {
        let entries = cases
            .iter()
            .filter_map(|c| {
                let perf = c.checks.iter().find(|r| r.check == Check::Performance)?;
                let samples = perf.outcome.series.get(&Series::SamplesMs).filter(|s| !s.is_empty())?;
                Some(Entry {
                    name: c.case.name.clone(),
                    module: c.case.module.clone(),
                    dtype: c.case.dtype.clone(),
                    device: c.case.device.clone(),
                    input_shape: c.case.input_shape.clone(),
                    median_ms: median(samples),
                    samples_ms: samples.clone(),
                    work_samples_ms: perf.outcome.series.get(&Series::WorkSamplesMs).cloned().unwrap_or_default(),
                })
            })
            .collect();
        let created_unix_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Self { schema_version: BASELINE_VERSION, name: name.to_string(), commit: detect_commit(), created_unix_s, machine, entries }
    }

    /// The entry of `case`, if the baseline has one.
    pub fn entry(&self, case: &CaseInfo) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == case.name && e.dtype == case.dtype && e.device == case.device && e.input_shape == case.input_shape)
    }

    /// Adds the comparison to a performance check's outcome: metrics always, an error when it
    /// is a regression, a note when the baseline has no entry for the case.
    pub fn apply(&self, case: &CaseInfo, outcome: &mut CheckOutcome, threshold: f64) {
        let Some(samples) = outcome.series.get(&Series::SamplesMs).filter(|s| !s.is_empty()) else { return };
        let Some(entry) = self.entry(case) else {
            outcome.notes.push(format!("baseline `{}` has no entry for this case", self.name));
            return;
        };
        // One-thread runs when both sides have them: with another process on a core, the
        // multi-threaded median of the same module varied 1.7–6 ms between runs, and a planted
        // 3× slowdown measured +38% to +100% (caught 13 of 20 times); the one-thread time
        // measures the work, which is what a regression changes.
        let work = outcome.series.get(&Series::WorkSamplesMs).filter(|w| !w.is_empty() && !entry.work_samples_ms.is_empty());
        let (samples, old, what, q) = match work {
            Some(w) => (w.as_slice(), entry.work_samples_ms.as_slice(), "one-thread runs, fastest tenth", WORK_QUANTILE),
            None => (samples.as_slice(), entry.samples_ms.as_slice(), "median", 0.5),
        };
        let c = compare_at(samples, old, threshold, q);
        outcome.metrics.extend([
            (Metric::BaselineMedianMs, c.baseline_median_ms),
            (Metric::Slowdown, c.slowdown),
            (Metric::SlowdownCiLow, c.low),
            (Metric::SlowdownCiHigh, c.high),
            (Metric::RegressionThreshold, threshold),
            (Metric::Regression, f64::from(u8::from(c.regression))),
        ]);
        if c.regression {
            outcome.passed = false;
            outcome.errors.push(format!(
                "regression against baseline `{}` ({what}): median {:.3} ms vs {:.3} ms, {:+.1}% (95% CI {:+.1}% to {:+.1}%) clears the {:.1}% threshold",
                self.name,
                median(samples),
                c.baseline_median_ms,
                c.slowdown * 100.0,
                c.low * 100.0,
                c.high * 100.0,
                threshold * 100.0
            ));
        }
    }
}

/// A reporter that saves the run's performance samples as baseline `name` in `dir` when the
/// run finishes.
pub struct BaselineWriter {
    name: String,
    dir: PathBuf,
    machine: Option<Machine>,
    cases: Vec<CaseResult>,
    /// Where the file went, once written.
    pub written: Option<PathBuf>,
}

impl BaselineWriter {
    /// Saves as `dir/NAME.json`.
    pub fn new(dir: impl Into<PathBuf>, name: impl Into<String>) -> Self {
        Self { name: name.into(), dir: dir.into(), machine: None, cases: Vec::new(), written: None }
    }
}

impl Reporter for BaselineWriter {
    fn on_event(&mut self, event: &Event) {
        match event {
            Event::RunStarted { machine, .. } => self.machine = Some(machine.clone()),
            Event::CaseFinished(c) => self.cases.push(c.clone()),
            _ => {}
        }
    }

    fn finish(&mut self) -> std::io::Result<()> {
        let b = Baseline::from_cases(&self.name, self.machine.clone(), &self.cases);
        let path = b.save(&self.dir).map_err(|e| std::io::Error::other(e.to_string()))?;
        self.written = Some(path);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_file_names() {
        for good in ["main", "v1.2", "pr_17-x"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in ["", "../x", "a/b", ".hidden", "sp ace"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
