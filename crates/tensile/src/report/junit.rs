//! The JUnit XML report, for CI systems that show test results (Jenkins, GitLab, GitHub test
//! reporters, Azure Pipelines).
//!
//! # Layout
//!
//! The widely used JUnit format as Ant and Surefire write it and Jenkins reads it (the schema
//! the tests validate against is `crates/tensile/tests/junit/junit.xsd`):
//!
//! - `<testsuites name="tensile">` with the run's totals: `tests` (checks), `failures` (failed
//!   checks, flaky ones included), `errors` (always 0: a check that cannot run fails),
//!   `skipped` and `time` (wall time of the run in seconds).
//! - One `<testsuite>` per case, named `{case name} [{dtype}/{device}]`, with its own counts,
//!   `time` (the sum of its checks' times), `hostname` when the machine is known, and
//!   `<properties>`: `module`, `dtype`, `device`, `input_shape`, `tensile_version`. There is
//!   no `timestamp`: the events carry none, and a report that depends only on its events
//!   stays reproducible.
//! - One `<testcase name="{check}" classname="{case name}.{dtype}_{device}" time="…">` per
//!   check. A failed check carries `<failure message="{first error}" type="{check}">` whose
//!   text lists every error, then every metric as a `name = value` line, then the target the
//!   metrics were held against (`target_ms`, `target_mb`, `expected_exponent ± tolerance`,
//!   the baseline comparison). A flaky check fails the same way with `type="flaky"` and its
//!   failure rate. A skipped check carries `<skipped message="{reason}"/>`. Metrics of passing
//!   checks, and notes of every check, go in `<system-out>`.
//!
//! # Numbers and text
//!
//! Metric values are printed exactly (the shortest text that reads back as the same `f64`),
//! in scientific notation only when tiny or huge, and as `NaN`, `inf` or `-inf` when not
//! finite. Times are fixed-point seconds with millisecond precision, since the schema types
//! them as decimals (which have no exponent and no NaN). All text is escaped: the markup
//! characters as entities, and control and bidirectional characters as `\u{..}`
//! ([`super::escape::visible`]; XML 1.0 cannot carry most control characters at all, and CI
//! pages would show the rest raw), so any module name or error message gives a well-formed
//! file that shows what the text holds.

use super::record::{FileReporter, Format, RunRecord};
use super::text::signed_percent;
use crate::event::{CaseResult, CheckResult, Status};
use crate::keys::Metric;
use crate::spec::Check;
use std::fmt::Write as _;

/// The JUnit XML format: one test suite per case, one test case per check.
pub struct Junit;

impl Format for Junit {
    fn render(r: &RunRecord) -> String {
        let t = &r.totals;
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        if t.interrupted {
            x.push_str("<!-- interrupted: the run was stopped by a signal; these are the results of what ran before it -->\n");
        }
        x.push_str(&format!(
            "<testsuites name=\"tensile\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{}\">\n",
            t.checks,
            t.checks_failed,
            t.checks_skipped,
            seconds(r.elapsed_s)
        ));
        for case in &r.cases {
            suite(&mut x, r, case);
        }
        x.push_str("</testsuites>\n");
        x
    }
}

/// Writes the JUnit report when the run finishes.
pub type JunitReporter = FileReporter<Junit>;

/// The `<testsuite>` of one case.
fn suite(x: &mut String, r: &RunRecord, c: &CaseResult) {
    let info = &c.case;
    let count = |f: fn(Status) -> bool| c.checks.iter().filter(|k| f(k.status())).count();
    let failures = count(|s| matches!(s, Status::Failed | Status::Flaky));
    let skipped = count(|s| s == Status::Skipped);
    let time: f64 = c.checks.iter().map(|k| k.elapsed_s).filter(|s| s.is_finite()).sum();
    let host = r.machine.as_ref().map_or(String::new(), |m| format!(" hostname=\"{}\"", attr(&m.host)));
    let _ = writeln!(
        x,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{}\"{host}>",
        attr(&format!("{} [{}/{}]", info.name, info.dtype, info.device)),
        c.checks.len(),
        seconds(time)
    );
    x.push_str("    <properties>\n");
    let shape = format!("{:?}", info.input_shape);
    for (name, value) in
        [("module", info.module.as_str()), ("dtype", &info.dtype), ("device", &info.device), ("input_shape", &shape), ("tensile_version", r.tensile_version())]
    {
        let _ = writeln!(x, "      <property name=\"{name}\" value=\"{}\"/>", attr(value));
    }
    if r.totals.interrupted {
        x.push_str("      <property name=\"interrupted\" value=\"true\"/>\n");
    }
    x.push_str("    </properties>\n");
    let classname = attr(&format!("{}.{}_{}", info.name, info.dtype, info.device));
    for k in &c.checks {
        testcase(x, &classname, k);
    }
    x.push_str("  </testsuite>\n");
}

/// The `<testcase>` of one check; `classname` is already escaped.
fn testcase(x: &mut String, classname: &str, k: &CheckResult) {
    let o = &k.outcome;
    let open = format!("    <testcase name=\"{}\" classname=\"{classname}\" time=\"{}\"", attr(k.check.name()), seconds(k.elapsed_s));
    let status = k.status();
    let mut body = String::new();
    // The schema wants skipped, then failure, then system-out, in that order.
    match status {
        Status::Failed | Status::Flaky => {
            let message = o.errors.first().cloned().unwrap_or_else(|| match &k.repeat {
                Some(rep) if status == Status::Flaky => format!("flaky: failed {} of {} runs", rep.failures, rep.runs),
                _ => "failed without a reason".to_string(),
            });
            let kind = if status == Status::Flaky { "flaky" } else { k.check.name() };
            let _ = writeln!(body, "      <failure message=\"{}\" type=\"{kind}\">{}</failure>", attr(&message), text(&failure_text(k)));
        }
        Status::Skipped => {
            let reason = o.skipped.as_deref().unwrap_or_default();
            let _ = writeln!(body, "      <skipped message=\"{}\"/>", attr(reason));
        }
        Status::Passed => {}
    }
    // A failure's text already lists the metrics; everything else shows them here.
    let mut out = String::new();
    if !matches!(status, Status::Failed | Status::Flaky) {
        metric_lines(&mut out, k);
    }
    for n in &o.notes {
        let _ = writeln!(out, "note: {n}");
    }
    if !out.is_empty() {
        let _ = writeln!(body, "      <system-out>{}</system-out>", text(&out));
    }
    if body.is_empty() {
        let _ = writeln!(x, "{open}/>");
    } else {
        let _ = writeln!(x, "{open}>\n{body}    </testcase>");
    }
}

/// The text of a failure: every error, the metrics, then what they were held against.
fn failure_text(k: &CheckResult) -> String {
    let o = &k.outcome;
    let mut s = String::new();
    for e in &o.errors {
        let _ = writeln!(s, "{e}");
    }
    if o.errors.is_empty() {
        s.push_str("failed without a reason\n");
    }
    if !o.metrics.is_empty() {
        s.push_str("\nmetrics:\n");
        metric_lines(&mut s, k);
    }
    let targets = target_lines(k);
    if !targets.is_empty() || k.repeat.is_some() {
        s.push('\n');
    }
    s.push_str(&targets);
    if let Some(rep) = &k.repeat {
        let what = if rep.flaky { "flaky" } else { "repeated" };
        let _ = writeln!(
            s,
            "{what}: failed {} of {} runs (failure rate {}, 95% CI {} to {})",
            rep.failures,
            rep.runs,
            percent(rep.failure_rate),
            percent(rep.rate_low),
            percent(rep.rate_high)
        );
    }
    s
}

/// `name = value` lines of every metric, in name order.
fn metric_lines(s: &mut String, k: &CheckResult) {
    for (name, v) in &k.outcome.metrics {
        let _ = writeln!(s, "{name} = {}", num(*v));
    }
}

/// The targets the check's metrics were held against, spelled out with their units, for the
/// metrics that have one. The verdict itself is the check's; this only lays the numbers side
/// by side.
fn target_lines(k: &CheckResult) -> String {
    let m = &k.outcome.metrics;
    let get = |name: Metric| m.get(&name).copied();
    let mut s = String::new();
    // The measured side of each line, when the check measured it: `median_ms = 7.9 ms against `.
    let measured = |name: Metric, unit: &str| get(name).map_or(String::new(), |v| format!("{name} = {}{unit} against ", num(v)));
    if let Some(t) = get(Metric::TargetMs) {
        let _ = writeln!(s, "target: {}target_ms = {} ms", measured(Metric::MedianMs, " ms"), num(t));
    }
    if let Some(t) = get(Metric::TargetMb) {
        let _ = writeln!(s, "target: {}target_mb = {} MB", measured(Metric::PeakMb, " MB"), num(t));
    }
    if k.check == Check::Scaling {
        if let Some(want) = get(Metric::ExpectedExponent) {
            let tol = get(Metric::Tolerance).map_or(String::new(), |t| format!(" ± {}", num(t)));
            let _ = writeln!(s, "target: {}expected_exponent ± tolerance = {}{tol}", measured(Metric::Exponent, ""), num(want));
        }
    }
    if let Some(base) = get(Metric::BaselineMedianMs) {
        let slowdown = get(Metric::Slowdown).map_or(String::new(), |d| {
            let ci = match (get(Metric::SlowdownCiLow), get(Metric::SlowdownCiHigh)) {
                (Some(lo), Some(hi)) => format!(" (95% CI {} to {})", signed_percent(lo), signed_percent(hi)),
                _ => String::new(),
            };
            format!(", slowdown = {}{ci}", signed_percent(d))
        });
        let threshold = get(Metric::RegressionThreshold).map_or(String::new(), |t| format!(", regression_threshold = {}", percent(t)));
        let _ = writeln!(s, "baseline: {}baseline_median_ms = {} ms{slowdown}{threshold}", measured(Metric::MedianMs, " ms"), num(base));
    }
    s
}

/// A metric value exactly: the shortest decimal that reads back as the same number, with an
/// exponent only when fixed notation would run to many digits; `NaN`, `inf`, `-inf` as is.
fn num(v: f64) -> String {
    let a = v.abs();
    if !v.is_finite() || a == 0.0 || (1e-4..1e15).contains(&a) {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

/// A fraction as a percentage with one decimal (`0.128` → `12.8%`).
fn percent(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

/// Seconds for a `time` attribute: the schema types it as a decimal, which has neither an
/// exponent nor NaN, so non-finite and negative times read as 0.
fn seconds(s: f64) -> String {
    if s.is_finite() && s > 0.0 {
        format!("{s:.3}")
    } else {
        "0.000".to_string()
    }
}

/// Whether XML 1.0 can carry `c` at all (its `Char` production; Rust's `char` already excludes
/// the surrogates).
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
}

/// Escapes element text: the five markup characters become entities, and control and
/// bidirectional characters (a carriage return among them, which a parser would turn into a
/// newline) and anything else XML cannot carry are written as `\u{..}`.
fn text(s: &str) -> String {
    escape(s, false)
}

/// Escapes an attribute value like [`text`], and also tab and newline, which a parser would
/// otherwise normalise to spaces.
fn attr(s: &str) -> String {
    escape(s, true)
}

fn escape(s: &str, attribute: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in super::escape::visible(s).chars() {
        match c {
            c if !xml_char(c) => out.extend(c.escape_unicode()),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' if attribute => out.push_str("&#10;"),
            '\t' if attribute => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_shows_what_xml_cannot_carry() {
        assert_eq!(text("a<b & \"c\" 'd' >"), "a&lt;b &amp; &quot;c&quot; &apos;d&apos; &gt;");
        assert_eq!(text("bell\u{7}\u{0}\u{1b}[0m done\u{FFFE}\u{202e}"), "bell\\u{7}\\u{0}\\u{1b}[0m done\\u{fffe}\\u{202e}");
        assert_eq!(text("tab\tline\ncr\r"), "tab\tline\ncr\\u{d}");
        assert_eq!(attr("tab\tline\ncr\r"), "tab&#9;line&#10;cr\\u{d}");
        assert_eq!(text("ünïcode ✓ 𝄞"), "ünïcode ✓ 𝄞");
    }

    #[test]
    fn numbers_are_exact_and_never_panic() {
        assert_eq!(num(5.0), "5");
        assert_eq!(num(7.9), "7.9");
        assert_eq!(num(1.5e-6), "1.5e-6");
        assert_eq!(num(0.0078125), "0.0078125");
        assert_eq!(num(2.5e20), "2.5e20");
        assert_eq!(num(0.0), "0");
        assert_eq!(num(f64::NAN), "NaN");
        assert_eq!(num(f64::INFINITY), "inf");
        assert_eq!(num(f64::NEG_INFINITY), "-inf");
        for v in [1.5e-6, 0.1 + 0.2, 123456.789, 9.87e300] {
            assert_eq!(num(v).parse::<f64>().ok(), Some(v), "{v} does not read back");
        }
    }

    fn failed(check: Check, metrics: &[(&str, f64)]) -> CheckResult {
        let metrics = metrics.iter().map(|(k, v)| (k.parse().expect("a known metric"), *v)).collect();
        CheckResult { check, outcome: crate::event::CheckOutcome::from_errors(metrics, vec!["too slow".into()]), elapsed_s: 1.0, repeat: None }
    }

    #[test]
    fn failures_spell_out_their_targets() {
        let scaling = failure_text(&failed(Check::Scaling, &[("exponent", 2.1), ("expected_exponent", 1.0), ("tolerance", 0.3)]));
        assert!(scaling.contains("\ntarget: exponent = 2.1 against expected_exponent ± tolerance = 1 ± 0.3\n"), "{scaling}");
        let memory = failure_text(&failed(Check::Memory, &[("peak_mb", 80.5), ("target_mb", 64.0)]));
        assert!(memory.contains("\ntarget: peak_mb = 80.5 MB against target_mb = 64 MB\n"), "{memory}");
        // A target without its measurement still shows the target.
        let bare = failure_text(&failed(Check::Performance, &[("target_ms", 5.0)]));
        assert!(bare.contains("\ntarget: target_ms = 5 ms\n"), "{bare}");
        let none =
            failure_text(&CheckResult { outcome: crate::event::CheckOutcome { passed: false, ..Default::default() }, ..failed(Check::Correctness, &[]) });
        assert_eq!(none, "failed without a reason\n");
    }

    #[test]
    fn times_are_plain_decimals() {
        assert_eq!(seconds(0.5), "0.500");
        assert_eq!(seconds(1.25e-7), "0.000");
        assert_eq!(seconds(f64::NAN), "0.000");
        assert_eq!(seconds(f64::INFINITY), "0.000");
        assert_eq!(seconds(-1.0), "0.000");
    }
}
