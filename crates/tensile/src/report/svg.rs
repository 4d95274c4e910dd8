//! Inline SVG plots for the html report: the latency strip of a performance check and the
//! log-log time and memory plots of a scaling sweep.
//!
//! Plots only lay out numbers the check carries: the fitted line is drawn from the check's own
//! `intercept` and `exponent`, and nothing is fitted or tested here. Every data mark has class
//! `mark`, so the page's script (and the browser test) can tell a drawn plot from an empty one.

use super::axis::{tick_label, Axis};
use super::text::num;
use super::text::{esc, fixed2};
use crate::event::CheckOutcome;
use crate::keys::{Metric, Series};

/// How a legend entry is drawn.
pub(super) enum Swatch {
    Dot(&'static str),
    Box,
    Line(&'static str, bool),
    Ring(&'static str),
}

/// A column of legend entries starting at (`x`, `y`), on a white backing so lines behind it
/// stay readable.
pub(super) fn legend(x: f64, y: f64, entries: &[(Swatch, String)]) -> String {
    let width = 36.0 + 6.6 * entries.iter().map(|(_, t)| t.chars().count()).max().unwrap_or(0) as f64;
    let mut out = format!(
        "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{width:.1}\" height=\"{:.1}\" fill=\"#fff\" fill-opacity=\"0.85\" stroke=\"#d0d7de\"/>",
        x - 6.0,
        y - 12.0,
        16.0 * entries.len() as f64 + 6.0
    );
    for (i, (swatch, text)) in entries.iter().enumerate() {
        let cy = y + 16.0 * i as f64 - 4.0;
        out.push_str(&match swatch {
            Swatch::Dot(color) => format!("<circle cx=\"{:.1}\" cy=\"{cy:.1}\" r=\"3.5\" fill=\"{color}\"/>", x + 10.0),
            Swatch::Box => format!("<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"20\" height=\"10\" fill=\"#b6d4fe\" stroke=\"#0969da\"/>", cy - 5.0),
            Swatch::Ring(color) => format!("<circle cx=\"{:.1}\" cy=\"{cy:.1}\" r=\"5\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/>", x + 10.0),
            Swatch::Line(color, dashed) => {
                format!("<line x1=\"{x:.1}\" y1=\"{cy:.1}\" x2=\"{:.1}\" y2=\"{cy:.1}\" stroke=\"{color}\" stroke-width=\"2\"{}/>", x + 20.0, dash(*dashed))
            }
        });
        out.push_str(&format!("<text x=\"{:.1}\" y=\"{:.1}\">{}</text>", x + 28.0, y + 16.0 * i as f64, esc(text)));
    }
    out
}

fn dash(dashed: bool) -> &'static str {
    if dashed {
        " stroke-dasharray=\"6 4\""
    } else {
        ""
    }
}

/// The opening tag and title of a plot.
pub(super) fn open(kind: &str, width: u32, height: u32, title: &str) -> String {
    format!(
        "<svg class=\"plot\" data-plot=\"{kind}\" role=\"img\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" \
         font-family=\"sans-serif\" font-size=\"11\" fill=\"#1f2328\"><title>{}</title>",
        esc(title)
    )
}

/// A vertical line at data value `v` of axis `x`, from `y0` to `y1` pixels.
fn vline(x: &Axis, v: f64, y0: f64, y1: f64, color: &str, width: f64, dashed: bool) -> String {
    let px = x.px(v);
    format!("<line x1=\"{px:.1}\" y1=\"{y0:.1}\" x2=\"{px:.1}\" y2=\"{y1:.1}\" stroke=\"{color}\" stroke-width=\"{width}\"{}/>", dash(dashed))
}

/// The latency strip of a performance check: every sample as a dot, the p10–p90 box, the
/// median, the target and the baseline median. `None` when the check kept no finite sample.
pub(super) fn latency(title: &str, outcome: &CheckOutcome) -> Option<String> {
    let samples: Vec<f64> = outcome.series.get(&Series::SamplesMs)?.iter().copied().filter(|v| v.is_finite()).collect();
    let get = |k: Metric| outcome.metrics.get(&k).copied().filter(|v| v.is_finite());
    let (median, p10, p90, target, baseline) =
        (get(Metric::MedianMs), get(Metric::P10Ms), get(Metric::P90Ms), get(Metric::TargetMs), get(Metric::BaselineMedianMs));
    let mut domain = samples.clone();
    domain.extend([median, p10, p90, target, baseline].into_iter().flatten());
    let x = Axis::fit(&domain, 20.0, 430.0, false).filter(|_| !samples.is_empty())?;
    let (cy, top, bottom) = (50.0, 8.0, 92.0);
    let mut out = open("latency", 660, 132, title);
    out.push_str(&format!("<rect x=\"20\" y=\"{top}\" width=\"410\" height=\"{}\" fill=\"#fff\" stroke=\"#d0d7de\"/>", bottom - top));
    for t in x.ticks().0 {
        out.push_str(&vline(&x, t, top, bottom, "#eaeef2", 1.0, false));
        out.push_str(&format!("<text x=\"{:.1}\" y=\"108\" text-anchor=\"middle\">{}</text>", x.px(t), tick_label(t)));
    }
    out.push_str("<text x=\"225\" y=\"126\" text-anchor=\"middle\">latency (ms)</text>");
    if let (Some(lo), Some(hi)) = (p10, p90) {
        let (a, b) = (x.px(lo), x.px(hi));
        out.push_str(&format!(
            "<rect class=\"mark\" x=\"{a:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"36\" fill=\"#b6d4fe\" stroke=\"#0969da\"/>",
            cy - 18.0,
            (b - a).max(1.0)
        ));
    }
    if let Some(m) = median {
        out.push_str(&vline(&x, m, cy - 22.0, cy + 22.0, "#0a3069", 3.0, false));
    }
    for (i, s) in samples.iter().enumerate() {
        // A fixed vertical jitter keeps equal samples apart without any randomness.
        let jitter = ((i * 37) % 13) as f64 * 2.5 - 15.0;
        out.push_str(&format!("<circle class=\"mark\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#1f2328\" fill-opacity=\"0.55\"/>", x.px(*s), cy + jitter));
    }
    let mut entries = vec![(Swatch::Dot("#1f2328"), format!("{} samples", samples.len()))];
    entries.extend(p10.and(p90).map(|_| (Swatch::Box, "p10–p90".to_string())));
    entries.extend(median.map(|m| (Swatch::Line("#0a3069", false), format!("median {} ms", num(m, 3)))));
    if let Some(t) = target {
        out.push_str(&vline(&x, t, top, bottom, "#cf222e", 2.0, true));
        entries.push((Swatch::Line("#cf222e", true), format!("target {} ms", num(t, 3))));
    }
    if let Some(b) = baseline {
        out.push_str(&vline(&x, b, top, bottom, "#8250df", 2.0, true));
        entries.push((Swatch::Line("#8250df", true), format!("baseline {} ms", num(b, 3))));
    }
    out.push_str(&legend(452.0, 20.0, &entries));
    out.push_str("</svg>");
    Some(out)
}

/// A straight line on log-log axes, with its legend entry.
struct Segment {
    from: (f64, f64),
    to: (f64, f64),
    color: &'static str,
    dashed: bool,
    label: String,
}

/// A log-log plot of measured points, lines and an optional shaded band, clipped to its frame.
struct LogLog<'a> {
    kind: &'static str,
    title: &'a str,
    y_title: &'static str,
    clip_id: &'a str,
    points: Vec<(f64, f64)>,
    segments: Vec<Segment>,
    band: Vec<(f64, f64)>,
}

/// The (seq_len, `key`) points of a sweep that a log axis can show.
fn sweep_points(outcome: &CheckOutcome, key: Series) -> Vec<(f64, f64)> {
    let (Some(xs), Some(ys)) = (outcome.series.get(&Series::SeqLen), outcome.series.get(&key)) else { return Vec::new() };
    xs.iter().zip(ys).map(|(x, y)| (*x, *y)).filter(|(x, y)| x.is_finite() && y.is_finite() && *x > 0.0 && *y > 0.0).collect()
}

/// `y0·(x/x0)^slope`: the line of slope `slope` through (`x0`, `y0`) on log-log axes.
fn through(x0: f64, y0: f64, slope: f64, x: f64) -> f64 {
    y0 * (x / x0).powf(slope)
}

/// The time plot of a scaling check: measured points, the fitted `exp(intercept)·seq^exponent`
/// and the expected slope with its tolerance band, anchored at the first measured point.
pub(super) fn scaling_time(title: &str, outcome: &CheckOutcome, clip_id: &str) -> Option<String> {
    // The verdict judges the time above the fixed overhead, so that is what the plot shows
    // when the check separated it (reports from before it did show the whole time).
    let (points, y_title) = match sweep_points(outcome, Series::GrowthMs) {
        p if !p.is_empty() => (p, "time above the fixed overhead (ms)"),
        _ => (sweep_points(outcome, Series::Ms), "time (ms)"),
    };
    let &(x0, y0) = points.first()?;
    let x1 = points.iter().map(|p| p.0).fold(x0, f64::max);
    let xmin = points.iter().map(|p| p.0).fold(x0, f64::min);
    let get = |k: Metric| outcome.metrics.get(&k).copied().filter(|v| v.is_finite());
    let mut plot = LogLog { kind: "scaling-time", title, y_title, clip_id, points, segments: Vec::new(), band: Vec::new() };
    if let (Some(e), Some(c)) = (get(Metric::Exponent), get(Metric::Intercept)) {
        let fit = |x: f64| c.exp() * x.powf(e);
        let ci = match (get(Metric::ExponentCiLow), get(Metric::ExponentCiHigh)) {
            (Some(lo), Some(hi)) => format!(" (95% CI {}–{})", fixed2(lo), fixed2(hi)),
            _ => String::new(),
        };
        let label = format!("fitted seq^{}{ci}", fixed2(e));
        plot.segments.push(Segment { from: (xmin, fit(xmin)), to: (x1, fit(x1)), color: "#0969da", dashed: false, label });
    }
    if let Some(want) = get(Metric::ExpectedExponent) {
        let tol = get(Metric::Tolerance).filter(|t| *t > 0.0);
        let label = format!("expected seq^{}{}", fixed2(want), tol.map_or(String::new(), |t| format!(" ± {}", fixed2(t))));
        plot.segments.push(Segment { from: (x0, y0), to: (x1, through(x0, y0, want, x1)), color: "#bc4c00", dashed: true, label });
        if let Some(t) = tol.filter(|_| x1 > x0) {
            plot.band = vec![(x0, y0), (x1, through(x0, y0, want + t, x1)), (x1, through(x0, y0, want - t, x1))];
        }
    }
    plot.render()
}

/// The memory plot of a scaling sweep that measured memory: measured points and, when the check
/// fitted one, the memory exponent drawn through the first point.
pub(super) fn scaling_memory(title: &str, outcome: &CheckOutcome, clip_id: &str) -> Option<String> {
    let points = sweep_points(outcome, Series::Mb);
    let &(x0, y0) = points.first()?;
    let x1 = points.iter().map(|p| p.0).fold(x0, f64::max);
    let mut plot = LogLog { kind: "scaling-memory", title, y_title: "memory (MiB)", clip_id, points, segments: Vec::new(), band: Vec::new() };
    if let Some(e) = outcome.metrics.get(&Metric::MemoryExponent).copied().filter(|v| v.is_finite()) {
        let label = format!("fitted seq^{} (through first point)", fixed2(e));
        plot.segments.push(Segment { from: (x0, y0), to: (x1, through(x0, y0, e, x1)), color: "#0969da", dashed: false, label });
    }
    plot.render()
}

impl LogLog<'_> {
    const LEFT: f64 = 62.0;
    const RIGHT: f64 = 464.0;
    const TOP: f64 = 14.0;
    const BOTTOM: f64 = 282.0;

    fn render(&self) -> Option<String> {
        let drawable = |p: &(f64, f64)| p.1.is_finite() && p.1 > 0.0;
        let segments: Vec<&Segment> = self.segments.iter().filter(|s| drawable(&s.from) && drawable(&s.to)).collect();
        let xs: Vec<f64> = self.points.iter().map(|p| p.0).collect();
        let measured = Axis::fit(&self.points.iter().map(|p| p.1).collect::<Vec<_>>(), 0.0, 1.0, true)?;
        // Line ends widen the range only near the data: a wild fit is clipped, not zoomed out to.
        let near = |v: f64| v >= measured.lo / 1e3 && v <= measured.hi * 1e3;
        let ends = segments.iter().flat_map(|s| [s.from.1, s.to.1]).filter(|v| near(*v));
        let ys: Vec<f64> = self.points.iter().map(|p| p.1).chain(ends).collect();
        let x = Axis::fit(&xs, Self::LEFT, Self::RIGHT, true)?;
        let y = Axis::fit(&ys, Self::BOTTOM, Self::TOP, true)?;
        let mut out = open(self.kind, 480, 330, self.title);
        out.push_str(&self.frame(&x, &y));
        out.push_str(&format!("<g clip-path=\"url(#{})\">", esc(self.clip_id)));
        if !self.band.is_empty() && self.band.iter().all(drawable) {
            let pts: Vec<String> = self.band.iter().map(|(a, b)| format!("{:.1},{:.1}", x.px(*a), y.px(*b))).collect();
            out.push_str(&format!("<polygon points=\"{}\" fill=\"#bc4c00\" fill-opacity=\"0.12\"/>", pts.join(" ")));
        }
        for s in &segments {
            let (a, b) = ((x.px(s.from.0), y.px(s.from.1)), (x.px(s.to.0), y.px(s.to.1)));
            out.push_str(&format!(
                "<line class=\"mark\" x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{}\" stroke-width=\"2\"{}/>",
                a.0,
                a.1,
                b.0,
                b.1,
                s.color,
                dash(s.dashed)
            ));
        }
        for (px, py) in &self.points {
            out.push_str(&format!("<circle class=\"mark\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"#1f2328\"/>", x.px(*px), y.px(*py)));
        }
        out.push_str("</g>");
        let mut entries = vec![(Swatch::Dot("#1f2328"), "measured".to_string())];
        entries.extend(segments.iter().map(|s| (Swatch::Line(s.color, s.dashed), s.label.clone())));
        out.push_str(&legend(Self::LEFT + 12.0, Self::TOP + 20.0, &entries));
        out.push_str("</svg>");
        Some(out)
    }

    /// The clip path, background, grid, tick labels and axis titles.
    fn frame(&self, x: &Axis, y: &Axis) -> String {
        let (w, h) = (Self::RIGHT - Self::LEFT, Self::BOTTOM - Self::TOP);
        let rect = format!("x=\"{}\" y=\"{}\" width=\"{w}\" height=\"{h}\"", Self::LEFT, Self::TOP);
        let mut out = format!("<defs><clipPath id=\"{}\"><rect {rect}/></clipPath></defs><rect {rect} fill=\"#fff\"/>", esc(self.clip_id));
        let ((x_major, x_minor), (y_major, y_minor)) = (x.ticks(), y.ticks());
        let grid = |major: bool| if major { "#d0d7de" } else { "#f0f3f6" };
        for (v, major) in x_minor.iter().map(|v| (*v, false)).chain(x_major.iter().map(|v| (*v, true))) {
            out.push_str(&vline(x, v, Self::TOP, Self::BOTTOM, grid(major), 1.0, false));
        }
        for (v, major) in y_minor.iter().map(|v| (*v, false)).chain(y_major.iter().map(|v| (*v, true))) {
            let py = y.px(v);
            out.push_str(&format!("<line x1=\"{}\" y1=\"{py:.1}\" x2=\"{}\" y2=\"{py:.1}\" stroke=\"{}\"/>", Self::LEFT, Self::RIGHT, grid(major)));
        }
        for v in &x_major {
            out.push_str(&format!("<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>", x.px(*v), Self::BOTTOM + 16.0, tick_label(*v)));
        }
        for v in &y_major {
            out.push_str(&format!("<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>", Self::LEFT - 6.0, y.px(*v) + 4.0, tick_label(*v)));
        }
        out.push_str(&format!("<rect {rect} fill=\"none\" stroke=\"#8c959f\"/>"));
        out.push_str(&format!("<text x=\"{:.1}\" y=\"318\" text-anchor=\"middle\">sequence length (log scale)</text>", (Self::LEFT + Self::RIGHT) / 2.0));
        let cy = (Self::TOP + Self::BOTTOM) / 2.0;
        out.push_str(&format!("<text transform=\"translate(16 {cy:.1}) rotate(-90)\" text-anchor=\"middle\">{} (log scale)</text>", self.y_title));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extreme_numbers_draw_without_panicking() {
        let mut outcome = CheckOutcome::default();
        outcome.series.insert(Series::SamplesMs, vec![1e-300, 4.0, 1e300, f64::MAX]);
        outcome.metrics.insert(Metric::TargetMs, f64::MAX);
        assert!(latency("x", &outcome).is_none(), "a range that overflows is left out");
        outcome.metrics.clear();
        outcome.series.insert(Series::SamplesMs, vec![1e-300, 4.0, 1e300]);
        assert!(latency("x", &outcome).is_some());
        outcome.series.insert(Series::SeqLen, vec![1.0, 1e300]);
        outcome.series.insert(Series::Ms, vec![1e-300, 1e300]);
        outcome.metrics.extend([(Metric::Exponent, 1e10), (Metric::Intercept, 700.0), (Metric::ExpectedExponent, -1e10)]);
        assert!(scaling_time("x", &outcome, "c").is_some_and(|s| s.contains("class=\"mark\"")));
    }
}
