//! The Markdown summary: a fixed layout (snapshot), a clean page for a passing run, and run
//! text that cannot break its tables.

mod fixture;

use tensile::coverage::Uncovered;
use tensile::event::{CaseResult, Event, Totals};
use tensile::report::{Format, Markdown, MarkdownReporter, RunRecord};
use tensile::Check;

fn render(events: &[Event]) -> String {
    Markdown::render(&RunRecord::from_events(events))
}

/// The fixture's run with `cases` in place of its own, and `totals`.
fn run_of(cases: Vec<CaseResult>, totals: Totals) -> Vec<Event> {
    let checks = cases.iter().map(|c| c.checks.len()).sum();
    let mut events = vec![Event::RunStarted {
        cases: cases.len(),
        checks,
        machine: fixture::machine(),
        devices: vec!["cpu".into()],
        coverage: fixture::coverage(),
        plan: None,
        shard: None,
        commit: None,
        merged: Vec::new(),
    }];
    events.extend(cases.into_iter().map(Event::CaseFinished));
    events.push(Event::RunFinished { totals, elapsed_s: 0.5 });
    events
}

/// The rows of the table under `heading`, without its header and separator.
fn table_rows<'a>(md: &'a str, heading: &str) -> Vec<&'a str> {
    let start = md.find(heading).unwrap_or_else(|| panic!("no {heading:?} in\n{md}"));
    md[start..].lines().skip_while(|l| !l.starts_with('|')).skip(2).take_while(|l| l.starts_with('|')).collect()
}

/// Cell separators of a table row: pipes not escaped with a backslash.
fn separators(row: &str) -> usize {
    let b = row.as_bytes();
    (0..b.len()).filter(|&i| b[i] == b'|' && (i == 0 || b[i - 1] != b'\\')).count()
}

#[test]
fn markdown_report_snapshot() {
    let md = fixture::written_by(MarkdownReporter::new, "summary.md");
    assert_eq!(md, render(&fixture::events()));
    insta::assert_snapshot!(md);
}

#[test]
fn markdown_lists_failures_regressions_and_coverage() {
    let md = render(&fixture::events());
    assert!(md.starts_with("## ❌ "), "{md}");
    // Only the two failed checks and the flaky one, in run order.
    let failed = table_rows(&md, "### Failed checks");
    assert_eq!(failed.len(), 3, "{md}");
    for (row, (case, check, status)) in
        failed.iter().zip([("tiny::mlp", "correctness", "failed"), ("tiny::mlp", "determinism", "flaky"), ("tiny::decoder_layer", "performance", "failed")])
    {
        assert!(row.starts_with(&format!("| {case} |")) && row.contains(&format!("| {check} |")) && row.contains(status), "{row}");
        assert_eq!(separators(row), 6, "{row}");
    }
    let regressions = &md[md.find("### Regressions").expect("a regressions section")..];
    assert!(
        regressions.contains("tiny::decoder_layer [bf16/cuda:0] performance: median 7.90 ms vs 7.00 ms, +12.8% (95% CI +9.0% to +16.0%), threshold 5.0%"),
        "{md}"
    );
    assert_eq!(table_rows(&md, "### Cases").len(), 3);
    assert!(md.contains("**Coverage**: 3 module kinds") && md.contains("1 module of tiny-llama, tiny-bert not covered: tiny-bert.layer (bert.layer)"), "{md}");
    // No per-sample data: the fixture's latency samples never show.
    assert!(!md.contains("4.35") && !md.contains("samples"), "{md}");
}

#[test]
fn markdown_all_passing_run_is_green_without_failure_table() {
    let first = fixture::cases().remove(0);
    assert!(first.passed);
    let totals = Totals { cases: 1, cases_passed: 1, checks: first.checks.len(), checks_failed: 0, checks_skipped: 1, checks_flaky: 0, interrupted: false };
    let md = render(&run_of(vec![first], totals));
    assert!(md.starts_with("## ✅ tensile passed: 1 of 1 cases passed\n"), "{md}");
    assert!(!md.contains("❌"), "{md}");
    assert!(!md.contains("Failed checks") && !md.contains("Regressions"), "{md}");
    assert_eq!(table_rows(&md, "### Cases"), ["| tiny::attention | llama.attention | f32 | cpu | ✅ passed | 4.20 |"]);
}

#[test]
fn markdown_escapes_pipes_and_truncates_long_errors() {
    let long = format!("shape | mismatch <b>here</b>\nsecond line {}", "x".repeat(300));
    let check = fixture::result(Check::Correctness, &[], &[&long]);
    let case = CaseResult { case: fixture::info(0, "a|b", "llama.mlp", "f32", "cpu"), passed: false, checks: vec![check] };
    let totals = Totals { cases: 1, cases_passed: 0, checks: 1, checks_failed: 1, checks_skipped: 0, checks_flaky: 0, interrupted: false };
    let md = render(&run_of(vec![case], totals));
    let rows = table_rows(&md, "### Failed checks");
    assert_eq!(rows.len(), 1, "{md}");
    let row = rows[0];
    assert!(row.starts_with("| a\\|b | f32/cpu | correctness | ❌ failed | shape \\| mismatch &lt;b>here&lt;/b> second line xxx"), "{row}");
    assert!(row.ends_with("x… |"), "{row}");
    assert_eq!(separators(row), 6, "{row}");
    assert!(row.chars().count() < 250, "the error is cut to about 160 characters: {row}");
    let cases = table_rows(&md, "### Cases");
    assert_eq!(separators(cases[0]), 7, "{}", cases[0]);
}

#[test]
fn markdown_names_at_most_ten_uncovered_modules() {
    let mut events = fixture::events();
    if let Event::RunStarted { coverage, .. } = &mut events[0] {
        coverage.uncovered = (0..13)
            .map(|i| Uncovered { preset: "big".into(), test: format!("big.layer{i}"), kind: "llama.decoder_layer".into(), dims: Default::default() })
            .collect();
    }
    let md = render(&events);
    let line = md.lines().find(|l| l.starts_with("**Coverage**")).unwrap();
    assert!(
        line.contains("13 modules of tiny-llama, tiny-bert not covered")
            && line.contains("big.layer9 (")
            && !line.contains("big.layer10")
            && line.ends_with(" and 3 more."),
        "{line}"
    );
}
