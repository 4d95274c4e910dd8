//! What a run writes besides the console and how it compares: report files, baselines,
//! repetitions. `tensile run` fills [`Outputs`] from its flags, the cargo harness from
//! `TENSILE_*` environment variables ([`Outputs::from_env`]); both then get the same reporters
//! and [`RunOptions`].

use crate::baseline::{self, Baseline, BaselineWriter};
use crate::error::{Error, Result};
use crate::event::Reporter;
use crate::report::{HtmlReporter, JsonReporter, JunitReporter, MarkdownReporter};
use crate::runner::RunOptions;
use std::path::PathBuf;

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
}

impl Default for Outputs {
    fn default() -> Self {
        Self {
            json: None,
            junit: None,
            html: None,
            markdown: None,
            save_baseline: None,
            baseline: None,
            baseline_dir: PathBuf::from(baseline::DEFAULT_DIR),
            threshold: baseline::DEFAULT_THRESHOLD,
            repeat: 1,
        }
    }
}

fn bad(field: &str, reason: impl Into<String>) -> Error {
    Error::Setting { name: field.into(), reason: reason.into() }
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

    /// Reads `TENSILE_REPORT_JSON`, `TENSILE_JUNIT`, `TENSILE_HTML`, `TENSILE_MARKDOWN`,
    /// `TENSILE_SAVE_BASELINE`, `TENSILE_BASELINE`, `TENSILE_BASELINE_DIR`,
    /// `TENSILE_REGRESSION_THRESHOLD` (percent) and `TENSILE_REPEAT`.
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
        if let Some(n) = var("TENSILE_REPEAT") {
            o.repeat = n.trim().parse().map_err(|_| bad("TENSILE_REPEAT", format!("`{n}` is not a positive whole number")))?;
        }
        o.validate()?;
        Ok(o)
    }

    /// Whether any file is to be written.
    pub fn writes_files(&self) -> bool {
        self.json.is_some() || self.junit.is_some() || self.html.is_some() || self.markdown.is_some() || self.save_baseline.is_some()
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
        if let Some(name) = &self.save_baseline {
            out.push(Box::new(BaselineWriter::new(&self.baseline_dir, name)));
        }
        out
    }

    /// The run options: repetitions, threshold, and the baseline loaded from its file.
    pub fn run_options(&self) -> Result<RunOptions> {
        self.validate()?;
        let baseline = self.baseline.as_deref().map(|name| Baseline::load(&self.baseline_dir, name)).transpose()?;
        Ok(RunOptions { repeat: self.repeat, baseline, threshold: self.threshold, coverage: None })
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
