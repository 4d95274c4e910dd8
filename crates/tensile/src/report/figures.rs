//! The figure sections of the HTML report: one latency plot per performance check that kept
//! its samples, and the time and memory plots of every scaling sweep, each with a caption that
//! spells out the numbers behind it.

use super::record::RunRecord;
use super::svg;
use super::text::{esc, fixed2};
use super::text::{num, signed_percent};
use crate::event::{CaseResult, CheckResult};
use crate::keys::{Metric, Series};
use crate::spec::Check;

/// `<b>name</b> · device · dtype` with the check's status badge.
fn caption_head(c: &CaseResult, x: &CheckResult) -> String {
    let status = x.status().name();
    format!("<span class=\"badge {status}\">{status}</span> <b>{}</b> · {} · {}", esc(&c.case.name), esc(&c.case.device), esc(&c.case.dtype))
}

/// The latency figure of every performance check that kept its samples, and how many plots.
pub(super) fn latency_section(r: &RunRecord) -> (String, usize) {
    let mut figures = Vec::new();
    for (c, x) in r.cases.iter().flat_map(|c| c.checks.iter().filter(|x| x.check == Check::Performance).map(move |x| (c, x))) {
        let title = format!("latency of {} on {} ({})", c.case.name, c.case.device, c.case.dtype);
        if let Some(plot) = svg::latency(&title, &x.outcome) {
            figures.push(format!("<figure>{plot}<figcaption>{} — {}</figcaption></figure>\n", caption_head(c, x), esc(&latency_caption(x))));
        }
    }
    let n = figures.len();
    let body = if figures.is_empty() { "<p>no performance check kept its samples</p>\n".to_string() } else { figures.concat() };
    (format!("<section id=\"latency\">\n<h2>Latency</h2>\n{body}</section>\n"), n)
}

/// The numbers behind a latency plot, in words.
fn latency_caption(x: &CheckResult) -> String {
    let get = |k: Metric| x.outcome.metrics.get(&k).copied();
    let ms = |k: Metric| get(k).map(|v| format!("{} ms", num(v, 3)));
    let mut parts = Vec::new();
    if let Some(m) = ms(Metric::MedianMs) {
        let ci = match (get(Metric::CiLowMs), get(Metric::CiHighMs)) {
            (Some(lo), Some(hi)) => format!(" (95% CI {}–{})", num(lo, 3), num(hi, 3)),
            _ => String::new(),
        };
        parts.push(format!("median {m}{ci}"));
    }
    if let (Some(lo), Some(hi)) = (get(Metric::P10Ms), get(Metric::P90Ms)) {
        parts.push(format!("p10–p90 {}–{} ms", num(lo, 3), num(hi, 3)));
    }
    parts.extend(ms(Metric::MinMs).map(|v| format!("min {v}")));
    let samples = x.outcome.series.get(&Series::SamplesMs).map_or(0, Vec::len);
    parts.push(format!("{samples} samples"));
    parts.extend(ms(Metric::TargetMs).map(|v| format!("target {v}")));
    if let (Some(b), Some(d)) = (ms(Metric::BaselineMedianMs), get(Metric::Slowdown)) {
        let ci = match (get(Metric::SlowdownCiLow), get(Metric::SlowdownCiHigh)) {
            (Some(lo), Some(hi)) => format!(" (95% CI {} to {})", signed_percent(lo), signed_percent(hi)),
            _ => String::new(),
        };
        let threshold = get(Metric::RegressionThreshold).map_or(String::new(), |t| format!(", regression threshold {}", signed_percent(t)));
        parts.push(format!("baseline median {b}, slowdown {}{ci}{threshold}", signed_percent(d)));
    }
    parts.extend(get(Metric::Gflops).map(|v| format!("{} GFLOP/s", num(v, 3))));
    parts.extend(get(Metric::Gbps).map(|v| format!("{} GB/s", num(v, 3))));
    parts.join("; ")
}

/// The time and memory plots of every scaling sweep, and how many plots.
pub(super) fn scaling_section(r: &RunRecord) -> (String, usize) {
    let (mut figures, mut n) = (String::new(), 0);
    for (c, x) in r.cases.iter().flat_map(|c| c.checks.iter().filter(|x| x.check == Check::Scaling).map(move |x| (c, x))) {
        let plots: Vec<String> = [
            svg::scaling_time(&format!("time against sequence length of {}", c.case.name), &x.outcome, &format!("clip-{}", n + 1)),
            svg::scaling_memory(&format!("memory against sequence length of {}", c.case.name), &x.outcome, &format!("clip-{}", n + 2)),
        ]
        .into_iter()
        .flatten()
        .collect();
        if plots.is_empty() {
            continue;
        }
        n += plots.len();
        figures.push_str(&format!(
            "<figure><div class=\"plots\">{}</div><figcaption>{} — {}</figcaption></figure>\n",
            plots.concat(),
            caption_head(c, x),
            esc(&scaling_caption(x))
        ));
    }
    let body = if figures.is_empty() { "<p>no scaling sweep ran</p>\n".to_string() } else { figures };
    (format!("<section id=\"scaling\">\n<h2>Scaling</h2>\n{body}</section>\n"), n)
}

/// The numbers behind the scaling plots, in words.
fn scaling_caption(x: &CheckResult) -> String {
    let get = |k: Metric| x.outcome.metrics.get(&k).copied();
    let mut parts = Vec::new();
    if let Some(e) = get(Metric::Exponent) {
        let ci = match (get(Metric::ExponentCiLow), get(Metric::ExponentCiHigh)) {
            (Some(lo), Some(hi)) => format!(" (95% CI {}–{})", fixed2(lo), fixed2(hi)),
            _ => String::new(),
        };
        let judged = if get(Metric::OverheadMs).is_some() { "time above the fixed overhead" } else { "time" };
        parts.push(format!("{judged} ∝ seq^{}{ci} (judged)", fixed2(e)));
    }
    parts.extend(get(Metric::OverheadMs).map(|o| format!("fixed overhead {} ms (time at sequence length 1)", num(o, 3))));
    parts.extend(get(Metric::RawExponent).map(|e| format!("whole time ∝ seq^{}", fixed2(e))));
    if let Some(want) = get(Metric::ExpectedExponent) {
        parts.push(format!("expected seq^{}{}", fixed2(want), get(Metric::Tolerance).map_or(String::new(), |t| format!(" ± {}", fixed2(t)))));
    }
    if let (Some(lo), Some(hi)) = (get(Metric::CostDegreeLow), get(Metric::CostDegreeHigh)) {
        parts.push(format!("cost model terms grow as seq^{lo}–seq^{hi}"));
    }
    parts.extend(get(Metric::R2).map(|v| format!("r² {}", num(v, 3))));
    parts.extend(get(Metric::MemoryExponent).map(|e| format!("memory ∝ seq^{}", fixed2(e))));
    parts.push(format!("{} sequence lengths", x.outcome.series.get(&Series::SeqLen).map_or(0, Vec::len)));
    parts.join("; ")
}
