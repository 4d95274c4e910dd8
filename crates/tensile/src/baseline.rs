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
use serde::{Deserialize, Deserializer, Serialize};
use std::borrow::Cow;
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
/// Most samples a baseline keeps per series (latencies, one-thread runs), and most that a
/// comparison reads from either side. An adaptive run times at most 1000 runs per series
/// (`checks::performance::measure`), so a run's samples fit four times over; only a fixed
/// iteration count asks for more. Each bootstrap resample redraws every sample, so without a
/// bound a hand-made baseline of 10 million samples took over a minute to compare; at this
/// size a comparison takes a fraction of a second. A longer series is reduced by [`thin`].
pub const MAX_SAMPLES: usize = 4096;

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
    /// Wall time of every case of the run, whatever its checks: what `--shard-by-time NAME`
    /// balances shards by. Absent from files saved before it existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub durations: Vec<CaseSeconds>,
}

/// The wall time of one case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseSeconds {
    /// Module test name.
    pub name: String,
    /// Dtype name.
    pub dtype: String,
    /// Device name.
    pub device: String,
    /// Seconds its checks took together.
    pub seconds: f64,
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
    #[serde(deserialize_with = "samples_or_nan")]
    pub samples_ms: Vec<f64>,
    /// Every run timed on one thread (CPU), in milliseconds; empty in older files and on GPUs.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "samples_or_nan")]
    pub work_samples_ms: Vec<f64>,
}

/// Reads a sample list in which `null` (how a NaN sample is serialised) stands for NaN, so that
/// validation, not the JSON parser, rejects it, naming the entry and the field.
fn samples_or_nan<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<f64>, D::Error> {
    let raw = Vec::<Option<f64>>::deserialize(d)?;
    Ok(raw.into_iter().map(|x| x.unwrap_or(f64::NAN)).collect())
}

impl Entry {
    /// Checks that the latencies can be compared: at least one sample, and every sample (of
    /// both series) finite and positive. A zero or negative median made comparisons print
    /// `+inf%` or `NaN%` and pass.
    fn validate(&self) -> std::result::Result<(), String> {
        let which = format!("entry `{}` ({}, {})", self.name, self.dtype, self.device);
        if self.samples_ms.is_empty() {
            return Err(format!("{which}: field `samples_ms`: no samples; a baseline entry needs at least one latency"));
        }
        for (field, samples) in [("samples_ms", &self.samples_ms), ("work_samples_ms", &self.work_samples_ms)] {
            for (i, &x) in samples.iter().enumerate() {
                crate::validate::positive(x).map_err(|reason| format!("{which}: field `{field}`: sample {i} {reason}"))?;
            }
        }
        Ok(())
    }
}

/// At most [`MAX_SAMPLES`] of `samples`: all of them when there are no more, else evenly spaced
/// order statistics of the sorted samples, the smallest and the largest included. Every
/// quantile then moves by at most one [`MAX_SAMPLES`]th of the distribution, and the same
/// samples always thin to the same subset.
pub fn thin(samples: &[f64]) -> Cow<'_, [f64]> {
    if samples.len() <= MAX_SAMPLES {
        return Cow::Borrowed(samples);
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let last = sorted.len() - 1;
    Cow::Owned((0..MAX_SAMPLES).map(|i| sorted[i * last / (MAX_SAMPLES - 1)]).collect())
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

/// [`compare`] on the `q`-quantiles of both sides instead of the medians. Either side longer
/// than [`MAX_SAMPLES`] is [`thin`]ned first, which bounds the bootstrap's cost.
pub fn compare_at(new: &[f64], old: &[f64], threshold: f64, q: f64) -> Comparison {
    let (new, old) = (thin(new), thin(old));
    let (new, old) = (new.as_ref(), old.as_ref());
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
    commit_from(|name| std::env::var(name).ok())
}

/// [`detect_commit`] reading the environment through `var`, so tests need not change the
/// process's environment (which other tests running in parallel read).
fn commit_from(var: impl Fn(&str) -> Option<String>) -> Option<String> {
    for name in ["TENSILE_COMMIT", "GITHUB_SHA", "CI_COMMIT_SHA"] {
        if let Some(v) = var(name) {
            if !v.trim().is_empty() {
                return Some(v.trim().to_string());
            }
        }
    }
    let out = std::process::Command::new("git").args(["rev-parse", "HEAD"]).output().ok()?;
    git_sha(out.status.success(), out.stdout)
}

/// The commit in `git rev-parse HEAD`'s output: none when git failed (no checkout) or printed
/// nothing but blanks.
fn git_sha(success: bool, stdout: Vec<u8>) -> Option<String> {
    let sha = String::from_utf8(stdout).ok()?.trim().to_string();
    (success && !sha.is_empty()).then_some(sha)
}

/// The samples a baseline file keeps of a series: the finite, positive ones (a timer cannot
/// measure anything else, and a load refuses it), [`thin`]ned, so that what is written is
/// exactly what a later load accepts as it is.
fn storable(samples: &[f64]) -> Vec<f64> {
    let kept: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite() && *x > 0.0).collect();
    thin(&kept).into_owned()
}

impl Baseline {
    /// Loads baseline `name` from `dir`. Only a regular file is read (see [`crate::input`]), so
    /// a FIFO or `/dev/zero` named `NAME.json` is refused, not read forever.
    pub fn load(dir: &Path, name: &str) -> Result<Self> {
        let path = path(dir, name)?;
        let bytes = crate::input::read(&path, crate::input::MAX_JSON_BYTES)?;
        let mut b = Self::from_slice(&bytes, &path)?;
        // The file's name is the baseline's identity (a copied file answers to its new name).
        b.name = name.to_string();
        Ok(b)
    }

    /// Parses and validates the bytes of a baseline file; `path` names it in errors. Entries
    /// with no samples, or with a zero, negative or non-finite one, are refused; a series
    /// longer than [`MAX_SAMPLES`] is [`thin`]ned. The fuzz target `baseline` calls this.
    pub fn from_slice(bytes: &[u8], path: &Path) -> Result<Self> {
        let bad = |reason: String| Error::Baseline { path: path.to_path_buf(), reason };
        let mut b: Baseline = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if b.schema_version != BASELINE_VERSION {
            return Err(bad(format!("format {} is not the supported {BASELINE_VERSION}", b.schema_version)));
        }
        if let Some(d) = b.durations.iter().find(|d| !(d.seconds.is_finite() && d.seconds >= 0.0)) {
            return Err(bad(format!("duration of `{}` ({}, {}): {} is not a number of seconds ≥ 0", d.name, d.dtype, d.device, d.seconds)));
        }
        for e in &mut b.entries {
            e.validate().map_err(bad)?;
            e.samples_ms = thin(&e.samples_ms).into_owned();
            e.work_samples_ms = thin(&e.work_samples_ms).into_owned();
        }
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
                let samples = perf.outcome.series.get(&Series::SamplesMs).map(|s| storable(s)).filter(|s| !s.is_empty())?;
                Some(Entry {
                    name: c.case.name.clone(),
                    module: c.case.module.clone(),
                    dtype: c.case.dtype.clone(),
                    device: c.case.device.clone(),
                    input_shape: c.case.input_shape.clone(),
                    median_ms: median(&samples),
                    samples_ms: samples,
                    work_samples_ms: perf.outcome.series.get(&Series::WorkSamplesMs).map(|w| storable(w)).unwrap_or_default(),
                })
            })
            .collect();
        let durations = cases
            .iter()
            .map(|c| CaseSeconds {
                name: c.case.name.clone(),
                dtype: c.case.dtype.clone(),
                device: c.case.device.clone(),
                seconds: c.checks.iter().map(|r| r.elapsed_s).sum(),
            })
            .collect();
        let created_unix_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Self { schema_version: BASELINE_VERSION, name: name.to_string(), commit: detect_commit(), created_unix_s, machine, entries, durations }
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

    /// A baseline file with one entry whose series are given as JSON text.
    fn file_with(samples: &str, work: Option<&str>) -> String {
        let work = work.map(|w| format!(r#", "work_samples_ms": {w}"#)).unwrap_or_default();
        format!(
            r#"{{"schema_version": 1, "name": "x", "commit": null, "created_unix_s": 0, "machine": null, "entries": [
                {{"name": "tiny::norm", "module": "llama.rms_norm", "dtype": "f32", "device": "cpu", "input_shape": [1, 8, 64],
                  "median_ms": 1.0, "samples_ms": {samples}{work}}}]}}"#
        )
    }

    /// The case that [`file_with`]'s entry was measured on.
    fn entry_case() -> CaseInfo {
        CaseInfo {
            index: 0,
            name: "tiny::norm".into(),
            module: "llama.rms_norm".into(),
            dtype: "f32".into(),
            device: "cpu".into(),
            input_shape: vec![1, 8, 64],
        }
    }

    fn load_error(text: &str) -> String {
        Baseline::from_slice(text.as_bytes(), Path::new("dir/x.json")).unwrap_err().to_string()
    }

    #[test]
    fn a_valid_file_loads() {
        let b = Baseline::from_slice(file_with("[1.0, 2.5]", Some("[3.0]")).as_bytes(), Path::new("x.json")).unwrap();
        assert_eq!((b.entries[0].samples_ms.clone(), b.entries[0].work_samples_ms.clone()), (vec![1.0, 2.5], vec![3.0]));
        let b = Baseline::from_slice(file_with("[1.0]", None).as_bytes(), Path::new("x.json")).unwrap();
        assert!(b.entries[0].work_samples_ms.is_empty(), "older files have no one-thread runs");
    }

    #[test]
    fn empty_zero_negative_and_nan_samples_are_refused_naming_file_entry_and_field() {
        for (samples, work, field, says) in [
            ("[]", None, "samples_ms", "no samples"),
            ("[1.0, 0.0]", None, "samples_ms", "sample 1 must be a finite number > 0, got 0"),
            ("[-2.0]", None, "samples_ms", "sample 0 must be a finite number > 0, got -2"),
            ("[1.0, null]", None, "samples_ms", "sample 1 must be a finite number > 0, got NaN"),
            ("[1.0]", Some("[0.0]"), "work_samples_ms", "sample 0 must be a finite number > 0, got 0"),
            ("[1.0]", Some("[2.0, -1e-3]"), "work_samples_ms", "sample 1 must be a finite number > 0, got -0.001"),
            ("[1.0]", Some("[null]"), "work_samples_ms", "got NaN"),
        ] {
            let e = load_error(&file_with(samples, work));
            assert!(e.starts_with("dir/x.json: not a usable baseline: "), "{e}");
            assert!(e.contains("entry `tiny::norm` (f32, cpu)"), "{e}");
            assert!(e.contains(&format!("field `{field}`")) && e.contains(says), "{samples} {work:?}: {e}");
        }
        // JSON has no infinity; a number too large for f64 is refused by the parser, naming the file.
        let e = load_error(&file_with("[1e999]", None));
        assert!(e.starts_with("dir/x.json: not a usable baseline"), "{e}");
    }

    #[test]
    fn other_versions_and_garbage_are_refused() {
        let e = load_error(&file_with("[1.0]", None).replace(r#""schema_version": 1"#, r#""schema_version": 7"#));
        assert!(e.contains("format 7 is not the supported 1"), "{e}");
        assert!(load_error("{not json").starts_with("dir/x.json: not a usable baseline"));
    }

    #[test]
    fn thinning_keeps_short_series_and_spreads_long_ones_over_the_distribution() {
        let short = [3.0, 1.0, 2.0];
        assert!(matches!(thin(&short), Cow::Borrowed(s) if s == short));
        // 10 000 samples 1..=10 000 in reverse order: the subset is sorted, keeps both ends,
        // and its median is the full median to within one step of the subset.
        let long: Vec<f64> = (1..=10_000).rev().map(f64::from).collect();
        let t = thin(&long);
        assert_eq!(t.len(), MAX_SAMPLES);
        assert_eq!((t[0], t[MAX_SAMPLES - 1]), (1.0, 10_000.0));
        assert!(t.windows(2).all(|w| w[0] <= w[1]));
        assert!((median(&t) - 5000.5).abs() <= 10_000.0 / MAX_SAMPLES as f64, "{}", median(&t));
        assert_eq!(t, thin(&long), "the same samples thin to the same subset");
    }

    #[test]
    fn a_load_thins_series_longer_than_the_limit() {
        let many = format!("[{}]", vec!["1.5"; MAX_SAMPLES * 3].join(","));
        let b = Baseline::from_slice(file_with(&many, Some(&many)).as_bytes(), Path::new("x.json")).unwrap();
        assert_eq!((b.entries[0].samples_ms.len(), b.entries[0].work_samples_ms.len()), (MAX_SAMPLES, MAX_SAMPLES));
    }

    #[test]
    fn a_comparison_of_long_series_equals_that_of_their_thinned_subsets() {
        let old: Vec<f64> = (0..50_000).map(|i| 1.0 + (i % 97) as f64 / 97.0).collect();
        let new: Vec<f64> = old.iter().map(|x| x * 1.5).collect();
        let c = compare(&new, &old, DEFAULT_THRESHOLD);
        assert_eq!(c, compare(&thin(&new), &thin(&old), DEFAULT_THRESHOLD));
        assert!(c.regression && (c.slowdown - 0.5).abs() < 0.02, "{c:?}");
    }

    #[test]
    fn the_writer_keeps_at_most_the_limit_and_only_positive_finite_samples() {
        let mut samples: Vec<f64> = (1..=3 * MAX_SAMPLES).map(|i| i as f64 / 100.0).collect();
        samples.extend([0.0, -1.0, f64::NAN, f64::INFINITY]);
        let mut outcome = CheckOutcome::default();
        outcome.series.insert(Series::SamplesMs, samples.clone());
        outcome.series.insert(Series::WorkSamplesMs, vec![0.0, 2.0]);
        let info = CaseInfo { index: 0, name: "m".into(), module: "k".into(), dtype: "f32".into(), device: "cpu".into(), input_shape: vec![1, 2] };
        let check = crate::event::CheckResult { check: Check::Performance, outcome, elapsed_s: 0.0, repeat: None };
        let b = Baseline::from_cases("w", None, &[CaseResult::new(info, vec![check])]);
        let e = &b.entries[0];
        assert_eq!(e.samples_ms.len(), MAX_SAMPLES);
        assert!(e.samples_ms.iter().all(|x| x.is_finite() && *x > 0.0), "{:?}", &e.samples_ms[..4]);
        assert_eq!(e.work_samples_ms, vec![2.0]);
        // What is written loads back unchanged.
        let dir = tempfile::tempdir().unwrap();
        b.save(dir.path()).unwrap();
        assert_eq!(Baseline::load(dir.path(), "w").unwrap().entries, b.entries);
    }

    #[test]
    fn the_commit_comes_from_the_first_non_blank_variable() {
        let env = |pairs: &'static [(&'static str, &'static str)]| move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string());
        assert_eq!(commit_from(env(&[("GITHUB_SHA", "  abc123 \n"), ("CI_COMMIT_SHA", "zzz")])).as_deref(), Some("abc123"));
        assert_eq!(commit_from(env(&[("TENSILE_COMMIT", "mine"), ("GITHUB_SHA", "abc")])).as_deref(), Some("mine"));
        // A blank variable is passed over, not taken as an empty commit.
        assert_eq!(commit_from(env(&[("TENSILE_COMMIT", "  "), ("CI_COMMIT_SHA", "c1")])).as_deref(), Some("c1"));
        // With none set: git's HEAD in a checkout, nothing elsewhere; never an empty string.
        if let Some(sha) = commit_from(env(&[("TENSILE_COMMIT", " ")])) {
            assert!(sha.len() == 40 && sha.chars().all(|c| c.is_ascii_hexdigit()), "{sha:?}");
        }
    }

    #[test]
    fn git_output_gives_a_commit_only_when_git_succeeded_with_one() {
        assert_eq!(git_sha(true, b"0123abc\n".to_vec()).as_deref(), Some("0123abc"));
        assert_eq!(git_sha(false, b"0123abc\n".to_vec()), None, "a failed git names no commit");
        assert_eq!(git_sha(true, b" \n".to_vec()), None, "nor does blank output");
        assert_eq!(git_sha(true, vec![0xff, 0xfe]), None, "nor output that is not text");
    }

    #[test]
    fn the_detected_commit_is_the_environment_s_or_git_s() {
        // The oracle is git itself (or the variable CI sets), asked directly.
        let from_env = ["TENSILE_COMMIT", "GITHUB_SHA", "CI_COMMIT_SHA"].iter().find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()));
        let expected = match from_env {
            Some(v) => Some(v.trim().to_string()),
            None => std::process::Command::new("git")
                .args(["rev-parse", "HEAD"])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()),
        };
        assert_eq!(detect_commit(), expected);
    }

    #[test]
    fn constant_samples_give_an_exact_slowdown_and_the_threshold_itself_is_no_regression() {
        // Every resample of constant series has the same ratio, 3 / 2, exactly.
        let (new, old) = (vec![3.0; 20], vec![2.0; 20]);
        let c = compare(&new, &old, 0.5);
        assert_eq!((c.baseline_median_ms, c.slowdown, c.low, c.high), (2.0, 0.5, 0.5, 0.5));
        assert!(!c.regression, "a slowdown exactly at the threshold does not clear it");
        assert!(compare(&new, &old, 0.25).regression);
        let faster = compare(&old, &new, 0.0);
        assert!(!faster.regression && (faster.slowdown + 1.0 / 3.0).abs() < 1e-15, "{faster:?}");
        let none = compare(&[], &old, 0.0);
        assert!(!none.regression && none.slowdown.is_nan(), "no samples is no regression: {none:?}");
    }

    /// Applies baseline series (`old`, `old_work`) to an outcome with (`new`, `new_work`) at
    /// threshold 0.25, returning the outcome.
    fn applied(old: &str, old_work: Option<&str>, new: &[f64], new_work: &[f64]) -> CheckOutcome {
        let b = Baseline::from_slice(file_with(old, old_work).as_bytes(), Path::new("x.json")).unwrap();
        let mut outcome = CheckOutcome::pass(Default::default());
        outcome.series.insert(Series::SamplesMs, new.to_vec());
        outcome.series.insert(Series::WorkSamplesMs, new_work.to_vec());
        b.apply(&entry_case(), &mut outcome, 0.25);
        outcome
    }

    #[test]
    fn apply_compares_one_thread_runs_only_when_both_sides_have_them() {
        let slowdown = |o: &CheckOutcome| o.metrics[&Metric::Slowdown];
        // Both sides have one-thread runs: those are compared (1.5 / 1 at the fastest tenth),
        // not the multi-threaded medians (equal here).
        let both = applied("[2.0, 2.0]", Some("[1.0, 1.0]"), &[2.0, 2.0], &[1.5, 1.5]);
        assert_eq!(slowdown(&both), 0.5);
        assert!(!both.passed && both.errors[0].contains("(one-thread runs, fastest tenth)"), "{:?}", both.errors);
        // The baseline has none: medians (3 / 2), whatever the new run has.
        let old_has_none = applied("[2.0, 2.0]", None, &[3.0, 3.0], &[10.0]);
        assert_eq!(slowdown(&old_has_none), 0.5);
        assert!(old_has_none.errors[0].contains("(median)"), "{:?}", old_has_none.errors);
        // The new run has none: medians too.
        let new_has_none = applied("[2.0, 2.0]", Some("[1.0]"), &[2.0, 2.0], &[]);
        assert_eq!(slowdown(&new_has_none), 0.0);
        assert!(new_has_none.passed && new_has_none.errors.is_empty());
        assert_eq!(new_has_none.metrics[&Metric::RegressionThreshold], 0.25);
        assert_eq!(new_has_none.metrics[&Metric::Regression], 0.0);
        assert_eq!(both.metrics[&Metric::Regression], 1.0);
    }

    #[test]
    fn the_writer_records_the_machine_and_every_finished_case_of_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = BaselineWriter::new(dir.path(), "m");
        let machine = Machine { host: "h".into(), os: "linux".into(), cpus: 3, tensile_version: "0".into() };
        w.on_event(&Event::RunStarted {
            cases: 2,
            checks: 2,
            machine: machine.clone(),
            devices: vec![],
            coverage: Default::default(),
            plan: None,
            shard: None,
            commit: None,
            merged: Vec::new(),
        });
        let case = |name: &str, ms: f64| {
            let mut outcome = CheckOutcome::default();
            outcome.series.insert(Series::SamplesMs, vec![ms, ms]);
            let check = crate::event::CheckResult { check: Check::Performance, outcome, elapsed_s: 0.0, repeat: None };
            CaseResult::new(CaseInfo { name: name.into(), ..entry_case() }, vec![check])
        };
        w.on_event(&Event::CaseFinished(case("a", 1.0)));
        w.on_event(&Event::CaseFinished(case("b", 2.0)));
        w.finish().unwrap();
        assert_eq!(w.written.as_deref(), Some(dir.path().join("m.json").as_path()));
        let saved = Baseline::load(dir.path(), "m").unwrap();
        assert_eq!(saved.machine, Some(machine));
        let entries: Vec<(&str, &[f64])> = saved.entries.iter().map(|e| (e.name.as_str(), e.samples_ms.as_slice())).collect();
        assert_eq!(entries, [("a", &[1.0, 1.0][..]), ("b", &[2.0, 2.0][..])]);
    }

    #[test]
    fn an_entry_belongs_to_one_name_dtype_device_and_shape() {
        let b = Baseline::from_slice(file_with("[1.0]", None).as_bytes(), Path::new("x.json")).unwrap();
        let case = CaseInfo { index: 3, module: "other".into(), ..entry_case() };
        assert!(b.entry(&case).is_some(), "the index and the module name do not matter");
        for other in [
            CaseInfo { name: "tiny::mlp".into(), ..case.clone() },
            CaseInfo { dtype: "bf16".into(), ..case.clone() },
            CaseInfo { device: "cuda:0".into(), ..case.clone() },
            CaseInfo { input_shape: vec![1, 16, 64], ..case.clone() },
        ] {
            assert!(b.entry(&other).is_none(), "{other:?}");
        }
    }
}
