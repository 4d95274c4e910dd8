//! The per-layer error plot of the HTML report: the output's signal-to-noise ratio of every
//! module inside a layer, against the layer index, one line per role (the layer, its
//! attention, its MLP, its norms). A quantized checkpoint compared with its original
//! (`--compare-with`) shows the layer where quantization hurts as a dip; a run against the
//! float64 twins shows a corrupted layer the same way.
//!
//! SNR is scale-free, so roles of different output magnitudes share one axis. Only the
//! correctness check's own `snr_db` is drawn; nothing is computed here.

use super::axis::{tick_label, Axis};
use super::svg::{legend, open, Swatch};
use super::text::{esc, num};
use crate::event::CaseResult;
use crate::keys::Metric;
use crate::layer_path;
use crate::metrics::SNR_CAP_DB;
use crate::spec::Check;
use std::collections::BTreeMap;

/// One module's point: layer index, SNR in dB, whether its correctness check passed, name.
struct Point<'a> {
    layer: usize,
    snr: f64,
    passed: bool,
    name: &'a str,
}

const COLORS: [&str; 6] = ["#0969da", "#1a7f37", "#8250df", "#bc4c00", "#57606a", "#bf3989"];
const LEFT: f64 = 62.0;
const RIGHT: f64 = 600.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 282.0;

/// The series of the record: role (with dtype and device when the run has several) → points
/// in layer order. Cases outside layers, or whose correctness check kept no finite SNR, are
/// left out.
fn series(cases: &[CaseResult]) -> BTreeMap<String, Vec<Point<'_>>> {
    let variants: std::collections::BTreeSet<(&str, &str)> = cases.iter().map(|c| (c.case.dtype.as_str(), c.case.device.as_str())).collect();
    let mut out: BTreeMap<String, Vec<Point>> = BTreeMap::new();
    for c in cases {
        let Some((layer, role)) = layer_path::split(&c.case.name) else { continue };
        let Some(x) = c.checks.iter().find(|x| x.check == Check::Correctness) else { continue };
        let Some(snr) = x.outcome.metrics.get(&Metric::SnrDb).copied().filter(|v| v.is_finite()) else { continue };
        let key = if variants.len() > 1 { format!("{role} · {} · {}", c.case.dtype, c.case.device) } else { role };
        out.entry(key).or_default().push(Point { layer, snr, passed: x.outcome.passed, name: &c.case.name });
    }
    for points in out.values_mut() {
        points.sort_by_key(|p| p.layer);
    }
    out
}

/// The section, and how many plots it holds (0 or 1): drawn when at least two layers have a
/// point, since one layer has nothing to stand out from.
pub(super) fn section(cases: &[CaseResult]) -> (String, usize) {
    let series = series(cases);
    let layers: std::collections::BTreeSet<usize> = series.values().flatten().map(|p| p.layer).collect();
    if layers.len() < 2 {
        return (String::new(), 0);
    }
    let Some(plot) = render(&series) else { return (String::new(), 0) };
    // Every failed module of a layer, those without a finite SNR (a NaN output) included.
    let failed: Vec<&str> = cases
        .iter()
        .filter(|c| layer_path::split(&c.case.name).is_some())
        .filter(|c| c.checks.iter().any(|x| x.check == Check::Correctness && !x.outcome.passed))
        .map(|c| c.case.name.as_str())
        .collect();
    let caption = caption(&series, &failed);
    (format!("<section id=\"layers\">\n<h2>Error per layer</h2>\n<figure>{plot}<figcaption>{}</figcaption></figure>\n</section>\n", esc(&caption)), 1)
}

/// The plot; `None` when no axis can be fitted.
fn render(series: &BTreeMap<String, Vec<Point>>) -> Option<String> {
    // A role equal to its reference in every layer (the norms a quantized file keeps in f32)
    // would only be a line along the top edge; the caption names it instead.
    let series: BTreeMap<&String, &Vec<Point>> = series.iter().filter(|(_, p)| !all_capped(p)).collect();
    let series = if series.is_empty() { return None } else { series };
    let all: Vec<&Point> = series.values().copied().flatten().collect();
    let xs: Vec<f64> = all.iter().map(|p| p.layer as f64).collect();
    // Equal outputs sit at the cap: they are drawn on the top edge rather than stretching the
    // axis so far that the modules that differ flatten into one line.
    let below_cap: Vec<f64> = all.iter().map(|p| p.snr).filter(|v| *v < SNR_CAP_DB).collect();
    let ys = if below_cap.is_empty() { vec![SNR_CAP_DB] } else { below_cap };
    let x = Axis::fit(&xs, LEFT, RIGHT, false)?;
    let y = Axis::fit(&ys, BOTTOM, TOP, false)?;
    let py = |v: f64| y.px(v.min(y.hi));
    let mut out = open("layer-errors", 820, 330, "output SNR per layer (dB; lower is worse)");
    out.push_str(&frame(&x, &y));
    let mut entries = Vec::new();
    for (i, (role, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let path: Vec<String> = points.iter().map(|p| format!("{:.1},{:.1}", x.px(p.layer as f64), py(p.snr))).collect();
        if points.len() > 1 {
            out.push_str(&format!("<polyline class=\"mark\" points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\"/>", path.join(" ")));
        }
        for p in points.iter() {
            let (cx, cy) = (x.px(p.layer as f64), py(p.snr));
            let tip = format!("{}: {} dB{}", p.name, num(p.snr, 3), if p.passed { "" } else { " (FAIL)" });
            out.push_str(&format!("<circle class=\"mark\" cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"3.5\" fill=\"{color}\"><title>{}</title></circle>", esc(&tip)));
            if !p.passed {
                out.push_str(&format!("<circle class=\"fail\" cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"7\" fill=\"none\" stroke=\"#cf222e\" stroke-width=\"2\"/>"));
            }
        }
        entries.push((Swatch::Line(color, false), role.to_string()));
    }
    if all.iter().any(|p| !p.passed) {
        entries.push((Swatch::Ring("#cf222e"), "failed correctness".to_string()));
    }
    out.push_str(&legend(RIGHT + 24.0, TOP + 20.0, &entries));
    out.push_str("</svg>");
    Some(out)
}

/// Background, grid, ticks and axis titles on linear axes.
fn frame(x: &Axis, y: &Axis) -> String {
    let rect = format!("x=\"{LEFT}\" y=\"{TOP}\" width=\"{}\" height=\"{}\"", RIGHT - LEFT, BOTTOM - TOP);
    let mut out = format!("<rect {rect} fill=\"#fff\"/>");
    // Layer indices are integers: tick the integers the linear ticks land on.
    let x_ticks: Vec<f64> = x.ticks().0.into_iter().filter(|v| v.fract() == 0.0).collect();
    for v in &x_ticks {
        let px = x.px(*v);
        out.push_str(&format!("<line x1=\"{px:.1}\" y1=\"{TOP}\" x2=\"{px:.1}\" y2=\"{BOTTOM}\" stroke=\"#d0d7de\"/>"));
        out.push_str(&format!("<text x=\"{px:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>", BOTTOM + 16.0, tick_label(*v)));
    }
    for v in y.ticks().0 {
        let py = y.px(v);
        out.push_str(&format!("<line x1=\"{LEFT}\" y1=\"{py:.1}\" x2=\"{RIGHT}\" y2=\"{py:.1}\" stroke=\"#d0d7de\"/>"));
        out.push_str(&format!("<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>", LEFT - 6.0, py + 4.0, tick_label(v)));
    }
    out.push_str(&format!("<rect {rect} fill=\"none\" stroke=\"#8c959f\"/>"));
    out.push_str(&format!("<text x=\"{:.1}\" y=\"318\" text-anchor=\"middle\">layer</text>", (LEFT + RIGHT) / 2.0));
    let cy = (TOP + BOTTOM) / 2.0;
    out.push_str(&format!("<text transform=\"translate(16 {cy:.1}) rotate(-90)\" text-anchor=\"middle\">output SNR (dB)</text>"));
    out
}

fn all_capped(points: &[Point]) -> bool {
    points.iter().all(|p| p.snr >= SNR_CAP_DB)
}

/// The numbers behind the plot: each role's worst layer, and the failed modules.
fn caption(series: &BTreeMap<String, Vec<Point>>, failed: &[&str]) -> String {
    let equal: Vec<&str> = series.iter().filter(|(_, p)| all_capped(p)).map(|(r, _)| r.as_str()).collect();
    let mut parts: Vec<String> = series
        .iter()
        .filter(|(_, p)| !all_capped(p))
        .filter_map(|(role, points)| {
            let worst = points.iter().min_by(|a, b| a.snr.total_cmp(&b.snr))?;
            Some(format!("{role}: lowest {} dB at layer {}", num(worst.snr, 3), worst.layer))
        })
        .collect();
    parts.push(if failed.is_empty() { "every module passed".to_string() } else { format!("failed: {}", failed.join(", ")) });
    if !equal.is_empty() {
        parts.push(format!("equal to the reference in every layer, not drawn: {}", equal.join(", ")));
    }
    let capped = series.values().filter(|p| !all_capped(p)).flatten().filter(|p| p.snr >= SNR_CAP_DB).count();
    if capped > 0 {
        parts.push(format!("{capped} module(s) equal to the reference ({SNR_CAP_DB} dB) drawn on the top edge"));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{CaseInfo, CheckOutcome, CheckResult};

    fn case(name: &str, snr: Option<f64>, passed: bool) -> CaseResult {
        let mut outcome = CheckOutcome { passed, ..CheckOutcome::default() };
        if let Some(v) = snr {
            outcome.metrics.insert(Metric::SnrDb, v);
        }
        let info = CaseInfo { index: 0, name: name.into(), module: "llama.mlp".into(), dtype: "f32".into(), device: "cpu".into(), input_shape: vec![1, 4, 8] };
        CaseResult::new(info, vec![CheckResult { check: Check::Correctness, outcome, elapsed_s: 0.1, repeat: None }])
    }

    #[test]
    fn a_failed_module_without_a_finite_snr_is_still_named() {
        let cases = [
            case("m::model.layers.0.mlp", Some(40.0), true),
            case("m::model.layers.1.mlp", Some(41.0), true),
            case("m::model.layers.2.mlp", Some(f64::NAN), false),
        ];
        let (html, n) = section(&cases);
        assert_eq!(n, 1);
        assert!(html.contains("failed: m::model.layers.2.mlp") && !html.contains("every module passed"), "{html}");
    }

    #[test]
    fn one_layer_draws_nothing_and_two_draw_one_plot() {
        let one = [case("m::model.layers.0.mlp", Some(40.0), true), case("m::model.norm", Some(200.0), true)];
        assert_eq!(section(&one), (String::new(), 0));
        let two = [case("m::model.layers.0.mlp", Some(40.0), true), case("m::model.layers.1.mlp", Some(8.5), false), case("m::model.layers.1", None, true)];
        let (html, n) = section(&two);
        assert_eq!(n, 1);
        assert_eq!(html.matches("class=\"mark\"").count(), 3, "a line and two dots: {html}");
        assert_eq!(html.matches("class=\"fail\"").count(), 1);
        assert!(html.contains("mlp: lowest 8.50 dB at layer 1; failed: m::model.layers.1.mlp"), "{html}");
        assert!(html.contains("<title>m::model.layers.1.mlp: 8.50 dB (FAIL)</title>"), "{html}");
    }

    #[test]
    fn the_failing_layer_sits_lowest_and_equal_outputs_on_the_top_edge() {
        let cases = [
            case("m::model.layers.0", Some(200.0), true),
            case("m::model.layers.1", Some(30.0), true),
            case("m::model.layers.0.input_layernorm", Some(200.0), true),
            case("m::model.layers.1.input_layernorm", Some(200.0), true),
            case("m::model.layers.0.mlp", Some(45.0), true),
            case("m::model.layers.1.mlp", Some(6.0), false),
            case("m::model.layers.2.mlp", Some(44.0), true),
        ];
        let s = series(&cases);
        assert_eq!(s.keys().collect::<Vec<_>>(), ["input_layernorm", "layer", "mlp"]);
        let (html, _) = section(&cases);
        assert!(html.contains("equal to the reference in every layer, not drawn: input_layernorm"), "{html}");
        assert!(!html.contains(">input_layernorm</text>"), "no legend entry for a series not drawn: {html}");
        let ys: Vec<f64> =
            html.split("<circle class=\"mark\" cx=\"").skip(1).map(|c| c.split("cy=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap()).collect();
        // SVG y grows downwards. Series in order: layer (0 capped, 1 at 30 dB), then mlp
        // (45, 6, 44): the failing layer-1 MLP is the largest y, the capped point the smallest.
        assert_eq!(ys.len(), 5);
        assert!(ys[3] > ys[2] && ys[3] > ys[4] && ys[3] > ys[1], "{ys:?}");
        assert!(ys.iter().skip(1).all(|y| ys[0] < *y), "{ys:?}");
        assert!(html.contains("1 module(s) equal to the reference (200 dB) drawn on the top edge"), "{html}");
    }

    #[test]
    fn several_dtypes_get_a_series_each_and_names_are_escaped() {
        let mut bf = case("m::model.layers.1.mlp", Some(30.0), true);
        bf.case.dtype = "bf16".into();
        let cases = [case("m::model.layers.0.mlp", Some(50.0), true), bf, case("m::model.layers.1.<b>", Some(20.0), true)];
        let keys: Vec<String> = series(&cases).into_keys().collect();
        assert_eq!(keys, ["<b> · f32 · cpu", "mlp · bf16 · cpu", "mlp · f32 · cpu"]);
        let (html, _) = section(&cases);
        assert!(!html.contains("<b>") && html.contains("&lt;b&gt;"), "{html}");
    }
}
