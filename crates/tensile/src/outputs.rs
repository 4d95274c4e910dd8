//! What a run writes besides the console and how it compares: report files, baselines,
//! repetitions. `tensile run` fills [`Outputs`] from its flags, the cargo harness from
//! `TENSILE_*` environment variables ([`Outputs::from_env`]); both then get the same reporters
//! and [`RunOptions`].

use crate::admission::MemoryLimit;
use crate::baseline::{self, Baseline, BaselineWriter};
use crate::error::{Error, Result};
use crate::event::Reporter;
use crate::plan::Plan;
use crate::report::{EventLog, HtmlReporter, JsonReporter, JunitReporter, MarkdownReporter};
use crate::runner::RunOptions;
use crate::shard::{ShardArg, Sharding};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Report files, baselines and repetitions of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Outputs {
    /// JSON report path.
    pub json: Option<PathBuf>,
    /// JUnit XML path.
    pub junit: Option<PathBuf>,
    /// Self-contained HTML report path.
    pub html: Option<PathBuf>,
    /// Markdown summary path.
    pub markdown: Option<PathBuf>,
    /// Streaming JSON Lines event log, appended as each case finishes.
    pub events: Option<PathBuf>,
    /// Save the run's latencies as this baseline.
    pub save_baseline: Option<String>,
    /// Compare latencies with this baseline.
    pub baseline: Option<String>,
    /// Folder of baseline files.
    pub baseline_dir: PathBuf,
    /// Regression threshold as a fraction (0.05 = 5%).
    pub threshold: f64,
    /// Runs of each check.
    pub repeat: usize,
    /// Memory a case may be predicted to need (default: half of physical memory).
    pub max_memory: Option<MemoryLimit>,
    /// Longest a case may run.
    pub timeout: Option<Duration>,
    /// Run each case in a child process.
    pub isolate: bool,
    /// A run whose every check was skipped exits 0 instead of [`crate::exit::ALL_SKIPPED`].
    pub allow_skips: bool,
    /// Run one shard of the plan.
    pub shard: Option<ShardArg>,
    /// Balance shards by the durations in this JSON report or baseline name.
    pub shard_by_time: Option<String>,
}

impl Default for Outputs {
    fn default() -> Self {
        Self {
            json: None,
            junit: None,
            html: None,
            markdown: None,
            events: None,
            save_baseline: None,
            baseline: None,
            baseline_dir: PathBuf::from(baseline::DEFAULT_DIR),
            threshold: baseline::DEFAULT_THRESHOLD,
            repeat: 1,
            max_memory: None,
            timeout: None,
            isolate: false,
            allow_skips: false,
            shard: None,
            shard_by_time: None,
        }
    }
}

/// A yes/no variable: `1`, `true`, `yes` or `0`, `false`, `no` (unset is no).
fn flag(var: &impl Fn(&str) -> Option<String>, name: &str) -> Result<bool> {
    match var(name).as_deref().map(str::trim) {
        None | Some("0" | "false" | "no") => Ok(false),
        Some("1" | "true" | "yes") => Ok(true),
        Some(other) => Err(bad(name, format!("`{other}` is not 1 or 0"))),
    }
}

fn bad(field: &str, reason: impl Into<String>) -> Error {
    Error::Setting { name: field.into(), reason: reason.into() }
}

/// `path` made absolute, with its folder resolved through symlinks where it exists, so two
/// spellings of one file compare equal.
fn identity(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    if let Ok(real) = abs.canonicalize() {
        return real;
    }
    match (abs.parent().and_then(|d| d.canonicalize().ok()), abs.file_name()) {
        (Some(dir), Some(name)) => dir.join(name),
        _ => abs,
    }
}

/// Whether `path` can be replaced by a new file: not a folder or special file, and its folder
/// takes a new file (probed by creating and removing one). A missing baseline folder is
/// created, as saving would.
fn writable(flag: &str, path: &Path, create_folder: bool) -> Result<()> {
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.is_dir() {
            return Err(bad(flag, format!("{} is a folder", path.display())));
        }
        if !meta.is_file() {
            return Err(bad(flag, format!("{} is not a regular file (a device or a pipe cannot hold a report)", path.display())));
        }
    }
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d.to_path_buf(),
        None => PathBuf::from("."),
    };
    if create_folder && !dir.exists() {
        std::fs::create_dir_all(&dir).map_err(|e| bad(flag, format!("cannot create folder {}: {e}", dir.display())))?;
    }
    if !dir.is_dir() {
        return Err(bad(flag, format!("{}: folder {} does not exist", path.display(), dir.display())));
    }
    let probe = dir.join(format!(".tensile-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(bad(flag, format!("{}: folder {} cannot be written: {e}", path.display(), dir.display()))),
    }
}

impl Outputs {
    /// Checks values that flags and variables cannot constrain by type.
    pub fn validate(&self) -> Result<()> {
        if self.repeat == 0 {
            return Err(bad("repeat", "must be at least 1"));
        }
        // In percent, as the flag and the variable give it.
        crate::validate::positive(self.threshold * 100.0).map_err(|r| bad("regression threshold (percent)", r))?;
        for name in self.baseline.iter().chain(&self.save_baseline) {
            baseline::validate_name(name)?;
        }
        // A report that cannot be written would be lost after the whole run: refuse up front.
        for path in [&self.json, &self.junit, &self.html, &self.markdown].into_iter().flatten() {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.is_dir()) {
                return Err(bad("report path", format!("{}: folder {} does not exist", path.display(), dir.display())));
            }
        }
        Ok(())
    }

    /// Reads `TENSILE_REPORT_JSON`, `TENSILE_JUNIT`, `TENSILE_HTML`, `TENSILE_MARKDOWN`, `TENSILE_EVENTS`,
    /// `TENSILE_SAVE_BASELINE`, `TENSILE_BASELINE`, `TENSILE_BASELINE_DIR`,
    /// `TENSILE_REGRESSION_THRESHOLD` (percent), `TENSILE_REPEAT`, `TENSILE_MAX_MEMORY` (`8GiB`,
    /// `50%`), `TENSILE_TIMEOUT` (`30s`), `TENSILE_ISOLATE` and `TENSILE_ALLOW_SKIPS` (`1`),
    /// `TENSILE_SHARD` (`K/N` or `auto`) and `TENSILE_SHARD_BY_TIME` (a report or baseline).
    pub fn from_env() -> Result<Self> {
        Self::from_vars(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// [`Outputs::from_env`] with variables looked up by `var` (testable without touching the
    /// process environment).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let path = |k: &str| var(k).map(PathBuf::from);
        let mut o = Self {
            json: path("TENSILE_REPORT_JSON"),
            junit: path("TENSILE_JUNIT"),
            html: path("TENSILE_HTML"),
            markdown: path("TENSILE_MARKDOWN"),
            events: path("TENSILE_EVENTS"),
            save_baseline: var("TENSILE_SAVE_BASELINE"),
            baseline: var("TENSILE_BASELINE"),
            ..Self::default()
        };
        if let Some(dir) = path("TENSILE_BASELINE_DIR") {
            o.baseline_dir = dir;
        }
        if let Some(t) = var("TENSILE_REGRESSION_THRESHOLD") {
            o.threshold = t.trim().parse::<f64>().map_err(|_| bad("TENSILE_REGRESSION_THRESHOLD", format!("`{t}` is not a number of percent")))? / 100.0;
        }
        if let Some(m) = var("TENSILE_MAX_MEMORY") {
            o.max_memory = Some(m.parse().map_err(|e| bad("TENSILE_MAX_MEMORY", e))?);
        }
        if let Some(t) = var("TENSILE_TIMEOUT") {
            o.timeout = Some(crate::isolate::parse_duration(&t).map_err(|e| bad("TENSILE_TIMEOUT", e))?);
        }
        if let Some(s) = var("TENSILE_SHARD") {
            o.shard = Some(s.parse().map_err(|e| bad("TENSILE_SHARD", e))?);
        }
        o.shard_by_time = var("TENSILE_SHARD_BY_TIME");
        o.isolate = flag(&var, "TENSILE_ISOLATE")?;
        o.allow_skips = flag(&var, "TENSILE_ALLOW_SKIPS")?;
        if let Some(n) = var("TENSILE_REPEAT") {
            o.repeat = n.trim().parse().map_err(|_| bad("TENSILE_REPEAT", format!("`{n}` is not a positive whole number")))?;
        }
        o.validate()?;
        Ok(o)
    }

    /// The shard of the plan to run (`auto` read from Slurm's variables), with the durations
    /// to balance by when asked.
    ///
    /// # Errors
    /// `auto` outside a Slurm array, or durations that cannot be read.
    pub fn sharding(&self) -> Result<Option<Sharding>> {
        if self.shard.is_none() && self.shard_by_time.is_some() {
            return Err(bad("shard-by-time", "balances shards, so it needs a shard (--shard K/N or TENSILE_SHARD)"));
        }
        let Some(arg) = self.shard else { return Ok(None) };
        let durations = self.shard_by_time.as_deref().map(|s| crate::report_file::load_durations(s, &self.baseline_dir)).transpose()?;
        Ok(Some(Sharding { shard: arg.resolve()?, durations }))
    }

    /// Whether any file is to be written.
    pub fn writes_files(&self) -> bool {
        self.json.is_some() || self.junit.is_some() || self.html.is_some() || self.markdown.is_some() || self.events.is_some() || self.save_baseline.is_some()
    }

    /// The file reporters these outputs ask for (the console is the caller's choice).
    pub fn reporters(&self) -> Vec<Box<dyn Reporter>> {
        let mut out: Vec<Box<dyn Reporter>> = Vec::new();
        if let Some(p) = &self.json {
            out.push(Box::new(JsonReporter::new(p)));
        }
        if let Some(p) = &self.junit {
            out.push(Box::new(JunitReporter::new(p)));
        }
        if let Some(p) = &self.html {
            out.push(Box::new(HtmlReporter::new(p)));
        }
        if let Some(p) = &self.markdown {
            out.push(Box::new(MarkdownReporter::new(p)));
        }
        if let Some(p) = &self.events {
            out.push(Box::new(EventLog::new(p)));
        }
        if let Some(name) = &self.save_baseline {
            out.push(Box::new(BaselineWriter::new(&self.baseline_dir, name)));
        }
        out
    }

    /// Every file the run will write, with the option that names it.
    fn targets(&self) -> Result<Vec<(&'static str, PathBuf)>> {
        let mut out: Vec<(&'static str, PathBuf)> =
            [("--report-json", &self.json), ("--junit", &self.junit), ("--html", &self.html), ("--markdown", &self.markdown), ("--events", &self.events)]
                .into_iter()
                .filter_map(|(flag, p)| p.clone().map(|p| (flag, p)))
                .collect();
        if let Some(name) = &self.save_baseline {
            out.push(("--save-baseline", baseline::path(&self.baseline_dir, name)?));
        }
        Ok(out)
    }

    /// Checks, before anything runs, that every output can be written and overwrites nothing
    /// it must not: each target's folder exists and takes a new file, the target is not a
    /// folder or a special file (`/dev/full`), no two outputs share a path, and no output is an
    /// input of the run: `plan`'s reference cases, the baseline compared with, or one of
    /// `more_inputs` (the spec file). Results found only after the whole run would otherwise be
    /// lost, or a spec overwritten.
    pub fn preflight(&self, plan: &Plan, more_inputs: &[PathBuf]) -> Result<()> {
        self.validate()?;
        let mut inputs = plan.reference_files();
        inputs.extend_from_slice(more_inputs);
        if let Some(name) = &self.baseline {
            inputs.push(baseline::path(&self.baseline_dir, name)?);
        }
        if self.save_baseline.is_some() && self.baseline_dir.exists() && !self.baseline_dir.is_dir() {
            return Err(bad("--baseline-dir", format!("{} is not a folder", self.baseline_dir.display())));
        }
        let targets = self.targets()?;
        let mut seen: Vec<(&str, PathBuf)> = Vec::new();
        for (flag, path) in &targets {
            let key = identity(path);
            if let Some((other, _)) = seen.iter().find(|(_, k)| *k == key) {
                return Err(bad(flag, format!("{} is also the path of {other}; each output needs a file of its own", path.display())));
            }
            if let Some(input) = inputs.iter().find(|i| identity(i) == key) {
                // Comparing with a baseline and saving it again under the same name is a
                // deliberate update: the file is read before the run and written after it.
                let same_baseline = *flag == "--save-baseline" && self.baseline.is_some() && self.baseline == self.save_baseline;
                if !same_baseline {
                    return Err(bad(flag, format!("{} is an input of this run ({}); it would be overwritten", path.display(), input.display())));
                }
            }
            writable(flag, path, *flag == "--save-baseline")?;
            seen.push((flag, key));
        }
        Ok(())
    }

    /// The run options: repetitions, threshold, and the baseline loaded from its file.
    pub fn run_options(&self) -> Result<RunOptions> {
        self.validate()?;
        let baseline = self.baseline.as_deref().map(|name| Baseline::load(&self.baseline_dir, name)).transpose()?;
        Ok(RunOptions { repeat: self.repeat, baseline, threshold: self.threshold, max_memory: self.max_memory, timeout: self.timeout, ..RunOptions::default() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn environment_variables_fill_every_output() {
        let o = Outputs::from_vars(vars(&[
            ("TENSILE_REPORT_JSON", "r.json"),
            ("TENSILE_JUNIT", "r.xml"),
            ("TENSILE_HTML", "r.html"),
            ("TENSILE_MARKDOWN", "r.md"),
            ("TENSILE_SAVE_BASELINE", "new"),
            ("TENSILE_BASELINE", "main"),
            ("TENSILE_BASELINE_DIR", "b"),
            ("TENSILE_REGRESSION_THRESHOLD", "7.5"),
            ("TENSILE_REPEAT", "4"),
        ]))
        .unwrap();
        assert_eq!(o.json, Some(PathBuf::from("r.json")));
        assert_eq!((o.repeat, o.baseline_dir.clone(), o.baseline.as_deref()), (4, PathBuf::from("b"), Some("main")));
        assert!((o.threshold - 0.075).abs() < 1e-12);
        assert_eq!(o.reporters().len(), 5);
        assert!(o.writes_files());
        let none = Outputs::from_vars(|_| None).unwrap();
        assert_eq!(none, Outputs::default());
        assert!(!none.writes_files() && none.reporters().is_empty());
    }

    #[test]
    fn bad_values_are_errors_that_name_the_variable() {
        for (k, v, want) in [
            ("TENSILE_REPEAT", "0", "repeat"),
            ("TENSILE_REPEAT", "many", "TENSILE_REPEAT"),
            ("TENSILE_REGRESSION_THRESHOLD", "-1", "threshold"),
            ("TENSILE_REGRESSION_THRESHOLD", "0", "must be a finite number > 0, got 0"),
            ("TENSILE_REGRESSION_THRESHOLD", "nan", "got NaN"),
            ("TENSILE_REGRESSION_THRESHOLD", "inf", "got inf"),
            ("TENSILE_REGRESSION_THRESHOLD", "x", "TENSILE_REGRESSION_THRESHOLD"),
            ("TENSILE_BASELINE", "../etc", "baseline"),
        ] {
            let e = Outputs::from_vars(vars(&[(k, v)])).unwrap_err().to_string();
            assert!(e.contains(want), "{k}={v}: {e}");
        }
    }

    #[test]
    fn a_missing_baseline_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let o = Outputs { baseline: Some("main".into()), baseline_dir: dir.path().to_path_buf(), ..Outputs::default() };
        let e = o.run_options().unwrap_err().to_string();
        assert!(e.starts_with("failed to read") && e.contains("main.json"), "{e}");
    }
}
