//! The Markdown summary, short enough for a CI job page (GitHub's `$GITHUB_STEP_SUMMARY`, a
//! GitLab or Buildkite annotation, a pull-request comment).
//!
//! In order: a heading with ✅ or ❌ and the totals; the machine and devices; a table of only
//! the failed and flaky checks with their first error; the regressions against a baseline
//! with their slowdown and its interval; one row per case with its status and median latency;
//! and the coverage (module kinds exercised, preset modules no case covers). Every sample,
//! series and passing metric is left to the JSON and HTML reports: a job page that needs
//! scrolling stops being read.
//!
//! Text from the run (names, errors) is escaped so it cannot break the layout: `|` inside
//! table cells, `<` everywhere (GitHub would take it for an HTML tag), newlines in cells, and
//! control and bidirectional characters everywhere ([`super::escape`]).

use super::escape::visible_line;
use super::record::{FileReporter, Format, RunRecord};
use super::text::{num, signed_percent};
use crate::event::{CaseResult, CheckResult, Status};
use crate::keys::Metric;
use crate::spec::Check;
use std::fmt::Write as _;

/// Longest first error shown in the failure table, in characters.
const ERROR_CHARS: usize = 160;
/// Uncovered preset modules named before the rest are only counted.
const UNCOVERED_NAMES: usize = 10;

/// The Markdown summary format.
pub struct Markdown;

impl Format for Markdown {
    fn render(r: &RunRecord) -> String {
        let mut md = String::new();
        heading(&mut md, r);
        failures(&mut md, r);
        regressions(&mut md, r);
        cases(&mut md, r);
        coverage(&mut md, r);
        md
    }
}

/// Writes the Markdown summary when the run finishes.
pub type MarkdownReporter = FileReporter<Markdown>;

/// The verdict, the totals and where the run happened.
fn heading(md: &mut String, r: &RunRecord) {
    let t = &r.totals;
    let failed_cases = t.cases.saturating_sub(t.cases_passed);
    let ok = failed_cases == 0 && t.checks_failed == 0;
    let mark = if ok { "✅" } else { "❌" };
    let verdict = if ok { "passed" } else { "failed" };
    let _ = writeln!(md, "## {mark} tensile {verdict}: {} of {} cases passed\n", t.cases_passed, t.cases);
    if t.interrupted {
        let _ = writeln!(md, "**Interrupted**: the run was stopped by a signal; these are the results of what ran before it.\n");
    }
    let _ = writeln!(
        md,
        "**{} cases**: {} passed, {failed_cases} failed · **{} checks**: {} failed ({} flaky), {} skipped · {}\n",
        t.cases,
        t.cases_passed,
        t.checks,
        t.checks_failed,
        t.checks_flaky,
        t.checks_skipped,
        duration(r.elapsed_s)
    );
    let machine = r.machine.as_ref().map_or("unknown machine".to_string(), |m| {
        format!("{} ({}, {} CPUs) · tensile {}", inline(&m.host), inline(&m.os), m.cpus, inline(&m.tensile_version))
    });
    let devices = if r.devices.is_empty() { "none".to_string() } else { r.devices.iter().map(|d| inline(d)).collect::<Vec<_>>().join(", ") };
    let _ = writeln!(md, "**Machine**: {machine} · **devices**: {devices}\n");
}

/// The failed and flaky checks, one row each, with the first error.
fn failures(md: &mut String, r: &RunRecord) {
    let rows: Vec<(&CaseResult, &CheckResult)> =
        r.cases.iter().flat_map(|c| c.checks.iter().map(move |k| (c, k))).filter(|(_, k)| matches!(k.status(), Status::Failed | Status::Flaky)).collect();
    if rows.is_empty() {
        return;
    }
    md.push_str("### Failed checks\n\n| case | dtype/device | check | status | first error |\n|---|---|---|---|---|\n");
    for (c, k) in rows {
        let status = match (k.status(), &k.repeat) {
            (Status::Flaky, Some(rep)) => format!("⚠️ flaky ({} of {} runs failed)", rep.failures, rep.runs),
            (Status::Flaky, None) => "⚠️ flaky".to_string(),
            _ => "❌ failed".to_string(),
        };
        let error = k.outcome.errors.first().map_or("—".to_string(), |e| cell(&truncate(e, ERROR_CHARS)));
        let _ = writeln!(md, "| {} | {}/{} | {} | {status} | {error} |", cell(&c.case.name), cell(&c.case.dtype), cell(&c.case.device), k.check.name());
    }
    md.push('\n');
}

/// Checks that failed against a baseline. The check decides what a regression is and records
/// it in its `regression` metric; this lists those checks with the slowdown numbers they carry.
fn regressions(md: &mut String, r: &RunRecord) {
    let mut lines = String::new();
    for c in &r.cases {
        for k in &c.checks {
            let m = &k.outcome.metrics;
            let regressed = k.outcome.metrics.get(&Metric::Regression).is_some_and(|v| *v > 0.0);
            let (Some(slowdown), true) = (m.get(&Metric::Slowdown).copied(), regressed) else { continue };
            let ci = match (m.get(&Metric::SlowdownCiLow), m.get(&Metric::SlowdownCiHigh)) {
                (Some(lo), Some(hi)) => format!(" (95% CI {} to {})", signed_percent(*lo), signed_percent(*hi)),
                _ => String::new(),
            };
            let medians = match (m.get(&Metric::MedianMs), m.get(&Metric::BaselineMedianMs)) {
                (Some(new), Some(old)) => format!(": median {} ms vs {} ms", num(*new, 3), num(*old, 3)),
                _ => String::new(),
            };
            let threshold = m.get(&Metric::RegressionThreshold).map_or(String::new(), |t| format!(", threshold {:.1}%", t * 100.0));
            let _ = writeln!(
                lines,
                "- {} [{}/{}] {}{medians}, {}{ci}{threshold}",
                inline(&c.case.name),
                inline(&c.case.dtype),
                inline(&c.case.device),
                k.check.name(),
                signed_percent(slowdown)
            );
        }
    }
    if !lines.is_empty() {
        let _ = writeln!(md, "### Regressions against the baseline\n\n{lines}");
    }
}

/// One row per case: identity, status and median latency.
fn cases(md: &mut String, r: &RunRecord) {
    if r.cases.is_empty() {
        return;
    }
    md.push_str("### Cases\n\n| case | module | dtype | device | status | median ms |\n|---|---|---|---|---|---|\n");
    for c in &r.cases {
        let statuses: Vec<Status> = c.checks.iter().map(CheckResult::status).collect();
        let status = if c.passed {
            "✅ passed"
        } else if statuses.contains(&Status::Flaky) && !statuses.contains(&Status::Failed) {
            "⚠️ flaky"
        } else {
            "❌ failed"
        };
        let median = c
            .checks
            .iter()
            .filter(|k| k.check == Check::Performance)
            .find_map(|k| k.outcome.metrics.get(&Metric::MedianMs))
            .map_or("—".to_string(), |v| num(*v, 3));
        let _ =
            writeln!(md, "| {} | {} | {} | {} | {status} | {median} |", cell(&c.case.name), cell(&c.case.module), cell(&c.case.dtype), cell(&c.case.device));
    }
    md.push('\n');
}

/// The module kinds the plan exercises and the preset modules it leaves out.
fn coverage(md: &mut String, r: &RunRecord) {
    let cov = &r.coverage;
    let kinds: Vec<String> = cov.kinds.iter().map(|k| inline(&k.kind)).collect();
    let plural = if kinds.len() == 1 { "" } else { "s" };
    let _ = write!(md, "**Coverage**: {} module kind{plural}", kinds.len());
    if !kinds.is_empty() {
        let _ = write!(md, " ({})", kinds.join(", "));
    }
    if cov.presets.is_empty() {
        md.push_str("; not compared with the presets.\n");
        return;
    }
    let presets = cov.presets.iter().map(|p| inline(p)).collect::<Vec<_>>().join(", ");
    if cov.uncovered.is_empty() {
        let _ = writeln!(md, "; every module of {presets} is covered.");
        return;
    }
    let names: Vec<String> = cov.uncovered.iter().take(UNCOVERED_NAMES).map(|u| format!("{} ({})", inline(&u.test), inline(&u.kind))).collect();
    let more = cov.uncovered.len().saturating_sub(UNCOVERED_NAMES);
    let more = if more > 0 { format!(" and {more} more") } else { String::new() };
    let plural = if cov.uncovered.len() == 1 { "" } else { "s" };
    let _ = writeln!(md, "; {} module{plural} of {presets} not covered: {}{more}.", cov.uncovered.len(), names.join(", "));
}

/// At most `max` characters of `s`, with an ellipsis when cut.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Text from the run for running text: `<` would open an HTML tag on GitHub, a newline
/// would end the paragraph or list item, and control or bidirectional characters are written
/// as escapes ([`visible_line`]).
fn inline(s: &str) -> String {
    visible_line(&s.replace(['\r', '\n'], " ")).replace('<', "&lt;")
}

/// Text from the run for a table cell: like [`inline`], and `|` would end the cell.
fn cell(s: &str) -> String {
    inline(s).replace('|', "\\|")
}

/// A wall time for people: two decimals under ten seconds, one under a minute, then minutes.
fn duration(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        "time unknown".to_string()
    } else if s < 10.0 {
        format!("{s:.2} s")
    } else if s < 60.0 {
        format!("{s:.1} s")
    } else {
        // Bounded below by 60 and finite; a run of more than u64::MAX seconds saturates.
        let whole = s.round() as u64;
        format!("{} min {} s", whole / 60, whole % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_cannot_break_the_table() {
        assert_eq!(cell("a | b\nc <br>"), "a \\| b c &lt;br>");
        assert_eq!(cell("\u{1b}[2J\u{7}|\u{202e}"), "\\u{1b}[2J\\u{7}\\|\\u{202e}");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("ab", 4), "ab");
        assert_eq!(truncate("ééééé", 5), "ééééé");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(1.25), "1.25 s");
        assert_eq!(duration(12.34), "12.3 s");
        assert_eq!(duration(125.0), "2 min 5 s");
        assert_eq!(duration(f64::NAN), "time unknown");
    }
}
