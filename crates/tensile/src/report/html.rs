//! The html report: one self-contained page with a PASS/FAIL summary, the per-case table, the
//! failures, notes and skips, latency and scaling plots, error metrics and coverage.
//!
//! Self-contained means no network: the CSS is inline, the plots are inline SVG drawn here
//! ([`super::svg`]) and the only script is a few inline lines that count the plots the browser
//! actually drew (into `data-plots-rendered` on `<body>`, next to `data-plots-total`), so a
//! headless browser can prove the page renders. The output is a pure function of the record:
//! the same run gives the same bytes.

use super::figures::{latency_section, scaling_section};
use super::record::{FileReporter, Format, RunRecord};
use super::text::{corr, num, signed_percent};
use super::text::{esc, fixed2};
use crate::coverage::COLUMNS;
use crate::event::{CaseResult, CheckResult};
use crate::keys::Metric;
use crate::spec::Check;

/// The html format.
pub struct Html;

impl Format for Html {
    fn render(r: &RunRecord) -> String {
        let (latency, latency_plots) = latency_section(r);
        let (scaling, scaling_plots) = scaling_section(r);
        let (layers, layer_plots) = super::layer_plot::section(&r.cases);
        let verdict = Verdict::of(r);
        let mut out = String::with_capacity(64 * 1024);
        out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
        out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
        out.push_str(&format!("<title>tensile report: {}</title>\n<style>{CSS}</style>\n</head>\n", verdict.word));
        let total = latency_plots + scaling_plots + layer_plots;
        out.push_str(&format!("<body data-plots-total=\"{total}\" data-plots-rendered=\"0\">\n<main>\n"));
        for section in [header(r, &verdict), cases_table(r), details(r), latency, scaling, error_metrics(r), layers, coverage(r)] {
            out.push_str(&section);
        }
        out.push_str(&format!("</main>\n<script>{SCRIPT}</script>\n</body>\n</html>\n"));
        out
    }
}

/// Writes the html report when the run finishes.
pub type HtmlReporter = FileReporter<Html>;

/// Counts, on load, the plots that have a visible box and at least one drawn mark.
const SCRIPT: &str = "window.addEventListener('load',function(){var plots=document.querySelectorAll('svg.plot'),n=0;\
plots.forEach(function(s){var b=s.getBBox(),marks=s.querySelectorAll('.mark');\
var drawn=Array.prototype.some.call(marks,function(m){var r=m.getBBox();return r.width>0||r.height>0;});\
if(b.width>0&&b.height>0&&drawn)n++;});\
document.body.dataset.plotsRendered=String(n);document.body.dataset.plotsTotal=String(plots.length);});";

const CSS: &str = "body{margin:0;background:#f6f8fa;color:#1f2328;font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}\
main{max-width:1240px;margin:0 auto;padding:12px 24px 40px}h1{font-size:24px;margin:8px 0}\
h2{font-size:18px;margin:28px 0 8px;padding-bottom:4px;border-bottom:1px solid #d0d7de}\
.banner{margin:8px 0;padding:12px 16px;border-radius:6px;color:#fff;font-size:18px;font-weight:600}\
.banner.pass{background:#1a7f37}.banner.fail{background:#cf222e}.banner.empty{background:#6e7781}\
.meta{display:flex;flex-wrap:wrap;gap:4px 20px;margin:8px 0}.meta div{display:flex;gap:6px}.meta dt{color:#57606a}.meta dd{margin:0;font-weight:600}\
.tiles{display:flex;flex-wrap:wrap;gap:8px;margin:8px 0}.tile{padding:6px 12px;border:1px solid #d0d7de;border-radius:6px;background:#fff}\
.tile b{font-size:18px;margin-right:4px}\
table{border-collapse:collapse;background:#fff;margin:8px 0}th,td{padding:4px 8px;border:1px solid #d0d7de;text-align:left;vertical-align:top}\
th{background:#f0f3f6}td.num{text-align:right;font-variant-numeric:tabular-nums}td.bad{color:#cf222e;font-weight:600}\
.passed{background:#dafbe1}.failed{background:#ffebe9}.flaky{background:#fff1c2}.skipped{background:#eaeef2;color:#57606a}.note{background:#ddf4ff}\
td.case{white-space:nowrap}.m{display:block;font-size:12px;color:#57606a}.na{color:#8c959f}\
.badge{display:inline-block;padding:0 6px;border-radius:10px;font-size:12px;font-weight:600;border:1px solid #d0d7de}\
ul.details{list-style:none;padding:0}ul.details li{margin:4px 0;padding:4px 8px;border-radius:4px;background:#fff;border:1px solid #d0d7de}\
figure{margin:10px 0;padding:8px;background:#fff;border:1px solid #d0d7de;border-radius:6px}.plots{display:flex;flex-wrap:wrap;gap:8px}\
svg.plot{display:block;max-width:100%;height:auto}figcaption{margin-top:4px}code{font-size:12px}";

/// The overall verdict shown in the banner and the page title.
struct Verdict {
    word: &'static str,
    class: &'static str,
    text: String,
}

impl Verdict {
    fn of(r: &RunRecord) -> Self {
        let t = &r.totals;
        if t.cases == 0 && r.cases.is_empty() {
            return Self { word: "EMPTY", class: "empty", text: "no cases ran".to_string() };
        }
        let failed_cases = t.cases.saturating_sub(t.cases_passed);
        if t.interrupted {
            let text = format!("the run was stopped by a signal after {} cases · {} of {} checks failed", t.cases, t.checks_failed, t.checks);
            return Self { word: "INTERRUPTED", class: "fail", text };
        }
        let flaky = if t.checks_flaky > 0 { format!(" ({} flaky)", t.checks_flaky) } else { String::new() };
        if t.checks_failed > 0 || failed_cases > 0 || r.cases.iter().any(|c| !c.passed) {
            let text = format!("{failed_cases} of {} cases failed · {} of {} checks failed{flaky}", t.cases, t.checks_failed, t.checks);
            Self { word: "FAIL", class: "fail", text }
        } else {
            Self { word: "PASS", class: "pass", text: format!("all {} cases passed · {} checks, {} skipped", t.cases, t.checks, t.checks_skipped) }
        }
    }
}

fn header(r: &RunRecord, verdict: &Verdict) -> String {
    let m = r.machine.as_ref();
    let field = |f: fn(&crate::event::Machine) -> String| m.map_or("unknown".to_string(), f);
    let devices = if r.devices.is_empty() { "-".to_string() } else { r.devices.join(", ") };
    let meta = [
        ("tensile", r.tensile_version().to_string()),
        ("host", field(|m| m.host.clone())),
        ("os", field(|m| m.os.clone())),
        ("cpus", field(|m| m.cpus.to_string())),
        ("devices", devices),
        ("elapsed", format!("{} s", num(r.elapsed_s, 3))),
    ];
    let mut out =
        format!("<header>\n<h1>tensile report</h1>\n<p class=\"banner {}\">{} · {}</p>\n<dl class=\"meta\">", verdict.class, verdict.word, esc(&verdict.text));
    for (k, v) in meta {
        out.push_str(&format!("<div><dt>{k}</dt><dd>{}</dd></div>", esc(&v)));
    }
    let t = &r.totals;
    let checks_passed = t.checks.saturating_sub(t.checks_failed).saturating_sub(t.checks_skipped);
    let tiles = [
        ("", t.cases, "cases"),
        ("passed", t.cases_passed, "cases passed"),
        ("failed", t.cases.saturating_sub(t.cases_passed), "cases failed"),
        ("", t.checks, "checks"),
        ("passed", checks_passed, "passed"),
        ("failed", t.checks_failed, "failed"),
        ("flaky", t.checks_flaky, "flaky"),
        ("skipped", t.checks_skipped, "skipped"),
    ];
    out.push_str("</dl>\n<div class=\"tiles\">");
    for (class, n, label) in tiles {
        out.push_str(&format!("<div class=\"tile {class}\"><b>{n}</b>{label}</div>"));
    }
    out.push_str("</div>\n</header>\n");
    out
}

/// The checks any case ran, in run order: the table's columns.
fn checks_present(r: &RunRecord) -> Vec<Check> {
    Check::ALL.into_iter().filter(|c| r.cases.iter().any(|case| case.checks.iter().any(|x| x.check == *c))).collect()
}

/// The one metric worth reading in a table cell, plus repetition counts.
fn key_metric(r: &CheckResult) -> String {
    let get = |k: Metric| r.outcome.metrics.get(&k).copied();
    let main = match r.check {
        Check::Performance => get(Metric::MedianMs)
            .map(|m| format!("{} ms{}", num(m, 3), get(Metric::Slowdown).map_or(String::new(), |d| format!(" ({} vs baseline)", signed_percent(d))))),
        Check::Memory => get(Metric::PeakMb).map(|m| format!("{} MiB", num(m, 3))),
        Check::Scaling => get(Metric::Exponent).map(|e| format!("seq^{}", fixed2(e))),
        _ => [Metric::MaxAbs, Metric::MaxRel, Metric::DifferingElements, Metric::Pcc].into_iter().find_map(|k| get(k).map(|v| format!("{k} {}", num(v, 3)))),
    };
    let repeat = r.repeat.as_ref().map(|s| format!("{}/{} runs failed", s.failures, s.runs));
    main.into_iter().chain(repeat).collect::<Vec<_>>().join(" · ")
}

fn cases_table(r: &RunRecord) -> String {
    let mut out = "<section id=\"cases\">\n<h2>Cases</h2>\n".to_string();
    if r.cases.is_empty() {
        return out + "<p>no cases ran</p>\n</section>\n";
    }
    let checks = checks_present(r);
    out.push_str("<table>\n<tr><th>case</th><th>module</th><th>dtype</th><th>device</th><th>shape</th>");
    for c in &checks {
        out.push_str(&format!("<th>{}</th>", c.name()));
    }
    out.push_str("</tr>\n");
    for c in &r.cases {
        let (class, mark) = if c.passed { ("passed", "✓") } else { ("failed", "✗") };
        let shape = format!("{:?}", c.case.input_shape).replace(' ', "");
        out.push_str(&format!("<tr><td class=\"case {class}\">{mark} {}</td>", esc(&c.case.name)));
        for v in [&c.case.module, &c.case.dtype, &c.case.device, &shape] {
            out.push_str(&format!("<td>{}</td>", esc(v)));
        }
        for check in &checks {
            out.push_str(&match c.checks.iter().find(|x| x.check == *check) {
                Some(x) => {
                    let status = x.status().name();
                    format!("<td class=\"st {status}\">{status}<span class=\"m\">{}</span></td>", esc(&key_metric(x)))
                }
                None => "<td class=\"na\">—</td>".to_string(),
            });
        }
        out.push_str("</tr>\n");
    }
    out + "</table>\n</section>\n"
}

/// Every error, note and skip reason, case by case.
fn details(r: &RunRecord) -> String {
    let mut items = String::new();
    for c in &r.cases {
        for x in &c.checks {
            let (status, o) = (x.status().name(), &x.outcome);
            let lines = o.errors.iter().map(|e| (status, e)).chain(o.notes.iter().map(|n| ("note", n))).chain(o.skipped.iter().map(|s| ("skipped", s)));
            for (class, text) in lines {
                items.push_str(&format!(
                    "<li class=\"{class}\"><span class=\"badge\">{class}</span> <b>{}</b> › {}: {}</li>\n",
                    esc(&c.case.name),
                    x.check.name(),
                    esc(text)
                ));
            }
        }
    }
    let body = if items.is_empty() { "<p>no failures, notes or skips</p>\n".to_string() } else { format!("<ul class=\"details\">\n{items}</ul>\n") };
    format!("<section id=\"details\">\n<h2>Failures, notes and skips</h2>\n{body}</section>\n")
}

/// Metrics shown first in the error table, in this order; others follow alphabetically.
const ERROR_METRICS: [Metric; 7] = [Metric::MaxAbs, Metric::MaxRel, Metric::MeanAbs, Metric::Pcc, Metric::Cosine, Metric::SnrDb, Metric::MaxUlp];

fn error_metrics(r: &RunRecord) -> String {
    let rows: Vec<(&CaseResult, &CheckResult)> = r
        .cases
        .iter()
        .flat_map(|c| {
            c.checks.iter().filter(|x| matches!(x.check, Check::Correctness | Check::DtypeParity) && !x.outcome.metrics.is_empty()).map(move |x| (c, x))
        })
        .collect();
    let mut out = "<section id=\"errors\">\n<h2>Error metrics</h2>\n".to_string();
    if rows.is_empty() {
        return out + "<p>no correctness or dtype parity metrics</p>\n</section>\n";
    }
    let mut columns: Vec<Metric> = ERROR_METRICS.iter().copied().filter(|k| rows.iter().any(|(_, x)| x.outcome.metrics.contains_key(k))).collect();
    let others: std::collections::BTreeSet<Metric> =
        rows.iter().flat_map(|(_, x)| x.outcome.metrics.keys().copied()).filter(|k| !ERROR_METRICS.contains(k)).collect();
    columns.extend(others);
    out.push_str("<table>\n<tr><th>case</th><th>check</th><th>status</th>");
    for k in &columns {
        out.push_str(&format!("<th>{}</th>", esc(k.name())));
    }
    out.push_str("</tr>\n");
    for (c, x) in rows {
        let status = x.status().name();
        out.push_str(&format!("<tr><td>{}</td><td>{}</td><td class=\"st {status}\">{status}</td>", esc(&c.case.name), x.check.name()));
        for k in &columns {
            out.push_str(&match x.outcome.metrics.get(k) {
                Some(v) if !v.is_finite() => format!("<td class=\"num bad\">{}</td>", num(*v, 3)),
                Some(v) if matches!(*k, Metric::Pcc | Metric::Cosine) => format!("<td class=\"num\">{}</td>", corr(*v)),
                Some(v) => format!("<td class=\"num\">{}</td>", num(*v, 3)),
                None => "<td class=\"na\">—</td>".to_string(),
            });
        }
        out.push_str("</tr>\n");
    }
    out + "</table>\n</section>\n"
}

fn coverage(r: &RunRecord) -> String {
    let cov = &r.coverage;
    let mut out = "<section id=\"coverage\">\n<h2>Coverage</h2>\n".to_string();
    if cov.kinds.is_empty() {
        out.push_str("<p>no coverage recorded</p>\n");
    } else {
        out.push_str("<table>\n<tr><th>kind</th><th>cases</th><th>dtypes</th><th>devices</th><th>checks</th>");
        out.push_str("<th>hidden</th><th>heads</th><th>kv heads</th><th>intermediate</th><th>seq len</th></tr>\n");
        let join = |s: &std::collections::BTreeSet<String>| esc(&s.iter().cloned().collect::<Vec<_>>().join(", "));
        for k in &cov.kinds {
            out.push_str(&format!(
                "<tr><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td>",
                esc(&k.kind),
                k.cases,
                join(&k.dtypes),
                join(&k.devices),
                join(&k.checks)
            ));
            for dim in COLUMNS {
                out.push_str(&format!("<td>{}</td>", esc(&k.range(dim))));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</table>\n");
    }
    if cov.presets.is_empty() {
        // Presets were not compared, so there is nothing to say about uncovered modules.
    } else if cov.uncovered.is_empty() {
        out.push_str(&format!("<p>every module of {} has a spec</p>\n", esc(&cov.presets.join(", "))));
    } else {
        out.push_str(&format!("<p>{} preset modules of {} without a spec:</p>\n<table>\n", cov.uncovered.len(), esc(&cov.presets.join(", "))));
        out.push_str("<tr><th>preset</th><th>module</th><th>kind</th><th>configuration</th></tr>\n");
        for u in &cov.uncovered {
            let dims: Vec<String> = u.dims.iter().map(|(k, v)| format!("{k} {v}")).collect();
            out.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                esc(&u.preset),
                esc(&u.test),
                esc(&u.kind),
                esc(&dims.join(", "))
            ));
        }
        out.push_str("</table>\n");
    }
    out + "</section>\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_three_significant_digits_and_print_non_finite_values() {
        let cases = [(4.2, "4.20"), (1.5e-6, "1.50e-6"), (0.0078125, "0.00781"), (123456.0, "1.23e5"), (0.0, "0")];
        for (v, want) in cases {
            assert_eq!(num(v, 3), want);
        }
        assert_eq!([num(f64::NAN, 3), num(f64::INFINITY, 3), num(f64::NEG_INFINITY, 3)], ["NaN", "inf", "-inf"]);
        assert_eq!((corr(0.9999999), fixed2(1.3), signed_percent(0.128)), ("0.999999".to_string(), "1.30".to_string(), "+12.8%".to_string()));
        assert_eq!(esc("<a href='x'>&\"</a>"), "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;");
        assert_eq!(esc("\u{1b}[1m<b>\u{202e}"), "\\u{1b}[1m&lt;b&gt;\\u{202e}");
    }
}
