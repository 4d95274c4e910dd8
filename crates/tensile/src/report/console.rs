//! Progress bar while running, then a ✓/✗ table with the key metrics, the reasons of every
//! failure, every note and every skip.

use crate::event::{CaseResult, Event, Reporter};
use crate::spec::Check;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::Write;

/// Writes a human-readable report.
pub struct ConsoleReporter {
    out: Box<dyn Write + Send>,
    bar: Option<ProgressBar>,
    progress: bool,
    timings: bool,
    cases: Vec<CaseResult>,
    error: Option<std::io::Error>,
}

impl ConsoleReporter {
    /// A reporter writing to stdout, with a progress bar on stderr when it is a terminal.
    pub fn stdout() -> Self {
        Self::new(Box::new(std::io::stdout()))
    }

    /// A reporter writing to `out`, without progress bar.
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self { out, bar: None, progress: false, timings: true, cases: Vec::new(), error: None }
    }

    /// Shows a progress bar on stderr while running (hidden when stderr is not a terminal).
    pub fn with_progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }

    /// Prints the run's wall time in the summary (off for reproducible output).
    pub fn with_timings(mut self, on: bool) -> Self {
        self.timings = on;
        self
    }

    fn write(&mut self, text: &str) {
        if self.error.is_none() {
            if let Err(e) = self.out.write_all(text.as_bytes()) {
                self.error = Some(e);
            }
        }
    }
}

fn fmt(v: Option<&f64>, digits: usize) -> String {
    match v {
        Some(v) if v.is_finite() && (v.abs() >= 1e-3 || *v == 0.0) && v.abs() < 1e5 => format!("{v:.digits$}"),
        Some(v) if v.is_finite() => format!("{v:.2e}"),
        Some(v) => format!("{v}"),
        None => "-".to_string(),
    }
}

/// The compact metrics column of one case.
fn key_metrics(case: &CaseResult) -> String {
    let mut parts = Vec::new();
    for r in &case.checks {
        let m = &r.outcome.metrics;
        if r.outcome.skipped.is_some() {
            continue;
        }
        match r.check {
            Check::Correctness if m.contains_key("max_abs") => parts.push(format!("err {} pcc {}", fmt(m.get("max_abs"), 3), fmt(m.get("pcc"), 6))),
            Check::Performance => {
                let mut s = format!("{} ms [{}–{}]", fmt(m.get("median_ms"), 3), fmt(m.get("p10_ms"), 3), fmt(m.get("p90_ms"), 3));
                if let Some(t) = m.get("target_ms") {
                    s.push_str(&format!(" ≤ {}", fmt(Some(t), 3)));
                }
                parts.push(s);
            }
            Check::Memory => {
                let mut s = format!("{} MB", fmt(m.get("peak_mb"), 2));
                if let Some(t) = m.get("target_mb") {
                    s.push_str(&format!(" ≤ {}", fmt(Some(t), 1)));
                }
                parts.push(s);
            }
            Check::Scaling => parts.push(format!("seq^{} (want {})", fmt(m.get("exponent"), 2), fmt(m.get("expected_exponent"), 2))),
            _ => {}
        }
    }
    parts.join("  ")
}

impl Reporter for ConsoleReporter {
    fn on_event(&mut self, event: &Event) {
        match event {
            Event::RunStarted { checks, .. } => {
                if self.progress {
                    let bar = ProgressBar::with_draw_target(Some(*checks as u64), ProgressDrawTarget::stderr());
                    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} checks  {msg}") {
                        bar.set_style(style);
                    }
                    self.bar = Some(bar);
                }
            }
            Event::CaseStarted(case) => {
                if let Some(bar) = &self.bar {
                    bar.set_message(format!("{} [{}/{}]", case.name, case.dtype, case.device));
                }
            }
            Event::CheckFinished { .. } => {
                if let Some(bar) = &self.bar {
                    bar.inc(1);
                }
            }
            Event::CaseFinished(case) => self.cases.push(case.clone()),
            Event::RunFinished { totals, elapsed_s } => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
                let mut text = String::new();
                let width = self.cases.iter().map(|c| c.case.name.len()).max().unwrap_or(4).max(4);
                for c in &self.cases {
                    let shape = format!("{:?}", c.case.input_shape).replace(' ', "");
                    let mark = if c.passed { "✓" } else { "✗" };
                    text.push_str(&format!(
                        "{mark} {:<width$}  {:<20} {:<5} {:<6} {:<16} {}\n",
                        c.case.name,
                        c.case.module,
                        c.case.dtype,
                        c.case.device,
                        shape,
                        key_metrics(c)
                    ));
                }
                let mut details = String::new();
                for c in &self.cases {
                    let who = format!("{} [{}/{}]", c.case.name, c.case.dtype, c.case.device);
                    for r in &c.checks {
                        for e in &r.outcome.errors {
                            details.push_str(&format!("  ✗ {who} {}: {e}\n", r.check));
                        }
                        for n in &r.outcome.notes {
                            details.push_str(&format!("  ! {who} {}: {n}\n", r.check));
                        }
                        if let Some(why) = &r.outcome.skipped {
                            details.push_str(&format!("  - {who} {} skipped: {why}\n", r.check));
                        }
                    }
                }
                if !details.is_empty() {
                    text.push('\n');
                    text.push_str(&details);
                }
                let time = if self.timings { format!(" ({elapsed_s:.1} s)") } else { String::new() };
                text.push_str(&format!(
                    "\n{} cases: {} passed, {} failed; {} checks: {} failed, {} skipped{time}\n",
                    totals.cases,
                    totals.cases_passed,
                    totals.cases - totals.cases_passed,
                    totals.checks,
                    totals.checks_failed,
                    totals.checks_skipped
                ));
                self.write(&text);
            }
        }
    }

    fn finish(&mut self) -> std::io::Result<()> {
        if let Err(e) = self.out.flush() {
            self.error.get_or_insert(e);
        }
        self.error.take().map_or(Ok(()), Err)
    }
}
