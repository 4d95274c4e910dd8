//! Progress bar while running, then a ✓/✗ table with the key metrics, the reasons of every
//! failure, every note and every skip.
//!
//! The output is a pure function of the event stream: nothing is measured here, and the only
//! wall time printed is the run's own `elapsed_s` in the summary line, which
//! [`ConsoleReporter::with_timings`] can turn off so that snapshots stay stable.

use super::escape::{visible, visible_line};
use super::text::{corr, num};
use crate::event::{CaseResult, CheckResult, Event, Reporter};
use crate::keys::Metric;
use crate::spec::Check;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::Write;

/// Writes a human-readable report: a progress bar during the run (optional), then one table row
/// per case, the details of every failure, note and skip, and a summary line.
///
/// ```
/// use tensile::event::{Event, Reporter, Totals};
/// use tensile::report::ConsoleReporter;
///
/// let mut console = ConsoleReporter::new(Box::new(std::io::sink())).with_timings(false);
/// console.on_event(&Event::RunFinished { totals: Totals::default(), elapsed_s: 0.0 });
/// assert!(console.finish().is_ok());
/// ```
pub struct ConsoleReporter {
    out: Box<dyn Write + Send>,
    bar: Option<ProgressBar>,
    progress: bool,
    timings: bool,
    cases: Vec<CaseResult>,
    error: Option<std::io::Error>,
}

impl Default for ConsoleReporter {
    /// Same as [`ConsoleReporter::stdout`].
    fn default() -> Self {
        Self::stdout()
    }
}

impl ConsoleReporter {
    /// A reporter writing to stdout, without progress bar until [`ConsoleReporter::with_progress`].
    pub fn stdout() -> Self {
        Self::new(Box::new(std::io::stdout()))
    }

    /// A reporter writing to `out`, without progress bar, with the run's wall time in the summary.
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self { out, bar: None, progress: false, timings: true, cases: Vec::new(), error: None }
    }

    /// Shows a progress bar on stderr while running. It stays hidden when stderr is not a
    /// terminal (or `TERM=dumb`), so redirected output and CI logs carry only the report.
    pub fn with_progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }

    /// Prints the run's wall time in the summary line (on by default; off for reproducible output).
    pub fn with_timings(mut self, on: bool) -> Self {
        self.timings = on;
        self
    }

    /// Writes `text`, keeping the first error: a reporter must not fail the run, so the error
    /// waits for [`Reporter::finish`] and later writes are skipped.
    fn write(&mut self, text: &str) {
        if self.error.is_none() {
            if let Err(e) = self.out.write_all(text.as_bytes()) {
                self.error = Some(e);
            }
        }
    }

    /// The whole end-of-run report.
    fn render(&self, totals: &crate::event::Totals, elapsed_s: f64) -> String {
        let mut text = table(&self.cases);
        let details = details(&self.cases);
        if !details.is_empty() {
            text.push('\n');
            text.push_str(&details);
        }
        let time = if self.timings { format!(" ({elapsed_s:.1} s)") } else { String::new() };
        let flaky = if totals.checks_flaky > 0 { format!(" ({} flaky)", totals.checks_flaky) } else { String::new() };
        text.push_str(&format!(
            "\n{} cases: {} passed, {} failed; {} checks: {} failed{flaky}, {} skipped{time}\n",
            totals.cases,
            totals.cases_passed,
            totals.cases.saturating_sub(totals.cases_passed),
            totals.checks,
            totals.checks_failed,
            totals.checks_skipped
        ));
        if totals.interrupted {
            text.push_str("interrupted: the run was stopped by a signal; these are the results of what ran before it\n");
        }
        text
    }
}

/// The compact metrics column of one case: only checks that ran and carry their key metric.
fn key_metrics(case: &CaseResult) -> String {
    let mut parts = Vec::new();
    for r in case.checks.iter().filter(|r| r.outcome.skipped.is_none()) {
        let m = &r.outcome.metrics;
        let get = |k: Metric| m.get(&k).copied();
        match r.check {
            Check::Correctness => {
                let mut s = Vec::new();
                if let Some(v) = get(Metric::MaxAbs) {
                    s.push(format!("max_abs {}", num(v, 3)));
                }
                if let Some(v) = get(Metric::Pcc) {
                    s.push(format!("pcc {}", corr(v)));
                }
                if !s.is_empty() {
                    parts.push(s.join(" "));
                }
            }
            Check::Performance => {
                if let Some(median) = get(Metric::MedianMs) {
                    let mut extra = Vec::new();
                    if let (Some(lo), Some(hi)) = (get(Metric::P10Ms), get(Metric::P90Ms)) {
                        extra.push(format!("p10–p90 {}–{}", num(lo, 3), num(hi, 3)));
                    }
                    if let Some(t) = get(Metric::TargetMs) {
                        extra.push(format!("target {}", num(t, 3)));
                    }
                    if let Some(d) = get(Metric::Slowdown) {
                        extra.push(format!("{:+.1}% vs baseline", d * 100.0));
                    }
                    parts.push(with_extra(format!("{} ms", num(median, 3)), &extra));
                }
            }
            Check::Memory => {
                if let Some(peak) = get(Metric::PeakMb) {
                    let extra: Vec<String> = get(Metric::TargetMb).map(|t| format!("target {}", num(t, 3))).into_iter().collect();
                    parts.push(with_extra(format!("{} MiB", num(peak, 3)), &extra));
                }
            }
            Check::Scaling => {
                if let Some(e) = get(Metric::Exponent) {
                    let mut extra = Vec::new();
                    if let Some(want) = get(Metric::ExpectedExponent) {
                        let tol = get(Metric::Tolerance).map_or(String::new(), |t| format!("±{}", num(t, 2)));
                        extra.push(format!("want {}{tol}", num(want, 3)));
                    }
                    if let Some(o) = get(Metric::OverheadMs) {
                        extra.push(format!("above {} ms overhead", num(o, 3)));
                    }
                    parts.push(with_extra(format!("seq^{}", num(e, 3)), &extra));
                }
            }
            _ => {}
        }
    }
    parts.join(" · ")
}

/// `main (extra, extra)`, or just `main` when there is nothing extra.
fn with_extra(main: String, extra: &[String]) -> String {
    if extra.is_empty() {
        main
    } else {
        format!("{main} ({})", extra.join(", "))
    }
}

/// One row per case, columns padded to the widest cell so the table lines up for any names.
fn table(cases: &[CaseResult]) -> String {
    const HEADER: [&str; 6] = ["case", "module", "dtype", "device", "shape", "metrics"];
    let rows: Vec<[String; 6]> = cases
        .iter()
        .map(|c| {
            let shape = format!("{:?}", c.case.input_shape).replace(' ', "");
            let cell = |s: &str| visible_line(s).into_owned();
            [cell(&c.case.name), cell(&c.case.module), cell(&c.case.dtype), cell(&c.case.device), shape, key_metrics(c)]
        })
        .collect();
    let mut widths = HEADER.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |mark: &str, cells: &[String; 6]| {
        let mut s = mark.to_string();
        for (cell, w) in cells.iter().zip(widths) {
            s.push(' ');
            s.push_str(&format!("{cell:<w$} "));
        }
        // Padding of the last column would only leave trailing blanks.
        format!("{}\n", s.trim_end())
    };
    let mut text = line(" ", &HEADER.map(String::from));
    for (c, row) in cases.iter().zip(&rows) {
        // `~` only when every failure of the case is flaky: one steady failure makes it ✗.
        let flaky = c.checks.iter().any(|r| r.status() == crate::event::Status::Flaky) && !c.checks.iter().any(|r| r.status() == crate::event::Status::Failed);
        // A case whose every check skipped verified nothing: `-`, not ✓.
        let all_skipped = !c.checks.is_empty() && c.checks.iter().all(|r| r.status() == crate::event::Status::Skipped);
        text.push_str(&line(
            if all_skipped {
                "-"
            } else if c.passed {
                "✓"
            } else if flaky {
                "~"
            } else {
                "✗"
            },
            row,
        ));
        text.push_str(&format!("    {}\n", check_marks(c)));
    }
    text
}

/// Every check the case ran, in run order, each with its verdict mark: `✓` passed, `✗`
/// failed, `~` flaky, `-` skipped. The metrics column shows numbers for a few checks only;
/// this line shows that each of the others ran.
fn check_marks(case: &CaseResult) -> String {
    use crate::event::Status;
    let marks: Vec<String> = case
        .checks
        .iter()
        .map(|r| {
            let mark = match r.status() {
                Status::Passed => "✓",
                Status::Failed => "✗",
                Status::Flaky => "~",
                Status::Skipped => "-",
            };
            format!("{mark} {}", r.check)
        })
        .collect();
    marks.join("  ")
}

/// The lines under the table: every error of every failed check, every note, every skip.
fn details(cases: &[CaseResult]) -> String {
    let mut out = String::new();
    for c in cases {
        let who = who(&c.case);
        for r in &c.checks {
            detail_lines(&mut out, &who, r);
        }
    }
    out
}

/// `name [dtype/device]`, on one line and with nothing in it that a terminal would act on.
fn who(case: &crate::event::CaseInfo) -> String {
    visible_line(&format!("{} [{}/{}]", case.name, case.dtype, case.device)).into_owned()
}

fn detail_lines(out: &mut String, who: &str, r: &CheckResult) {
    for e in &r.outcome.errors {
        out.push_str(&format!("  ✗ {who} {}: {}\n", r.check, visible(e)));
    }
    // A failed check must show up even when it gave no reason, or the ✗ in the table would be
    // unexplained.
    if !r.outcome.passed && r.outcome.errors.is_empty() {
        out.push_str(&format!("  ✗ {who} {}: failed without a reason\n", r.check));
    }
    for n in &r.outcome.notes {
        out.push_str(&format!("  note: {who} {}: {}\n", r.check, visible(n)));
    }
    if let Some(why) = &r.outcome.skipped {
        out.push_str(&format!("  - {who} {} skipped: {}\n", r.check, visible(why)));
    }
}

impl Reporter for ConsoleReporter {
    fn on_event(&mut self, event: &Event) {
        match event {
            Event::RunStarted { checks, .. } => {
                if self.progress {
                    // indicatif hides a stderr target by itself when stderr is not a terminal.
                    let bar = ProgressBar::with_draw_target(Some(*checks as u64), ProgressDrawTarget::stderr());
                    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} checks  {msg}") {
                        bar.set_style(style);
                    }
                    self.bar = Some(bar);
                }
            }
            Event::CaseStarted(case) => {
                if let Some(bar) = &self.bar {
                    bar.set_message(who(case));
                }
            }
            Event::CheckFinished { case, result } => {
                if let Some(bar) = &self.bar {
                    bar.inc(1);
                    bar.set_message(format!("{} {}", who(case), result.check));
                }
            }
            Event::CaseFinished(case) => self.cases.push(case.clone()),
            Event::RunFinished { totals, elapsed_s } => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
                let text = self.render(totals, *elapsed_s);
                self.write(&text);
            }
        }
    }

    fn finish(&mut self) -> std::io::Result<()> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if self.error.is_none() {
            if let Err(e) = self.out.flush() {
                self.error = Some(e);
            }
        }
        self.error.take().map_or(Ok(()), Err)
    }
}
