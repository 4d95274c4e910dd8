//! Plot axes for the HTML report's SVG figures: a linear or logarithmic mapping of data onto
//! pixels, and tick positions and labels a reader can take in at a glance.

use super::text::num;

/// One axis: maps data values (linearly or in log10) to pixels.
#[derive(Debug, Clone, Copy)]
pub(super) struct Axis {
    pub(super) lo: f64,
    pub(super) hi: f64,
    px0: f64,
    px1: f64,
    log: bool,
}

impl Axis {
    /// An axis over the finite `values`, padded so marks do not sit on the frame; `None` when
    /// no value is usable (non-finite, or not positive on a log axis).
    pub(super) fn fit(values: &[f64], px0: f64, px1: f64, log: bool) -> Option<Self> {
        let usable = values.iter().copied().filter(|v| v.is_finite() && (!log || *v > 0.0));
        let (lo, hi) = usable.fold(None, |acc: Option<(f64, f64)>, v| Some(acc.map_or((v, v), |(l, h)| (l.min(v), h.max(v)))))?;
        let (lo, hi) = if log {
            // In decades: 8% of the span each side, between a tenth of a decade and one.
            let pad = ((hi.log10() - lo.log10()) * 0.08).clamp(0.1, 1.0);
            (lo / 10f64.powf(pad), hi * 10f64.powf(pad))
        } else {
            let pad = if hi > lo { (hi - lo) * 0.08 } else { lo.abs().max(1.0) * 0.1 };
            (lo - pad, hi + pad)
        };
        // Padding can overflow values near f64::MAX; such an axis cannot be drawn.
        let drawable = lo.is_finite() && hi.is_finite() && hi > lo && (!log || lo > 0.0);
        drawable.then_some(Self { lo, hi, px0, px1, log })
    }

    fn t(&self, v: f64) -> f64 {
        if self.log {
            v.log10()
        } else {
            v
        }
    }

    /// The pixel position of `v`.
    pub(super) fn px(&self, v: f64) -> f64 {
        let (a, b) = (self.t(self.lo), self.t(self.hi));
        self.px0 + (self.t(v) - a) / (b - a) * (self.px1 - self.px0)
    }

    /// Labelled ticks and unlabelled minor grid positions.
    pub(super) fn ticks(&self) -> (Vec<f64>, Vec<f64>) {
        if self.log {
            log_ticks(self.lo, self.hi)
        } else {
            (linear_ticks(self.lo, self.hi), Vec::new())
        }
    }
}

/// About five ticks at 1, 2 or 5 times a power of ten.
fn linear_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let raw = (hi - lo) / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|s| *s >= raw).unwrap_or(magnitude * 10.0);
    let (first, last) = ((lo / step).ceil() as i64, (hi / step).floor() as i64);
    if !(step > 0.0 && step.is_finite()) || (lo / step).abs().max((hi / step).abs()) > 1e15 || last.saturating_sub(first) > 20 {
        // Steps too small to tell apart from the range (values near 1e300 differing by 1e-10).
        return vec![lo, hi];
    }
    (first..=last).map(|i| i as f64 * step).collect()
}

/// Decade ticks when the range spans three or more, otherwise 1-2-5 ticks, otherwise every
/// integer multiple; the ends of the range when even that gives fewer than two. Minor grid
/// lines fall on the remaining integer multiples of each decade.
fn log_ticks(lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    let (a, b) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    if b - a > 12 {
        // Over a dozen decades, label every few so the labels stay apart; no minor grid.
        let every = (b - a + 7) / 8;
        return ((a..=b).filter(|k| k % every == 0).map(|k| 10f64.powi(k)).filter(|v| *v >= lo && *v <= hi).collect(), Vec::new());
    }
    let within = |mults: &[f64]| -> Vec<f64> { (a..=b).flat_map(|k| mults.iter().map(move |m| m * 10f64.powi(k))).filter(|v| *v >= lo && *v <= hi).collect() };
    let all = within(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    let major = [within(&[1.0]), within(&[1.0, 2.0, 5.0]), all.clone()]
        .into_iter()
        .enumerate()
        .find(|(i, t)| t.len() >= if *i == 0 { 3 } else { 2 })
        .map_or(vec![lo, hi], |(_, t)| t);
    let minor = all.into_iter().filter(|v| !major.contains(v)).collect();
    (major, minor)
}

/// A tick label: three significant digits without trailing zeros.
pub(super) fn tick_label(v: f64) -> String {
    let s = num(v, 3);
    if s.contains('.') && !s.contains('e') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ticks_prefer_decades_then_one_two_five_then_the_ends() {
        assert_eq!(log_ticks(0.5, 5000.0).0, [1.0, 10.0, 100.0, 1000.0]);
        let (major, minor) = log_ticks(50.0, 646.0);
        assert_eq!(major, [50.0, 100.0, 200.0, 500.0]);
        assert!(minor.contains(&300.0) && minor.contains(&60.0) && !minor.contains(&100.0));
        assert_eq!(log_ticks(110.0, 190.0).0, [110.0, 190.0]);
        let (wide, minor) = log_ticks(1e-300, 1e300);
        assert!(wide.len() <= 9 && wide.len() >= 7 && minor.is_empty(), "{wide:?}");
    }

    #[test]
    fn linear_ticks_step_by_one_two_or_five() {
        assert_eq!(linear_ticks(3.9, 5.1), [4.0, 4.5, 5.0]);
        assert_eq!(linear_ticks(4.6, 9.0), [5.0, 6.0, 7.0, 8.0, 9.0]);
        assert_eq!(tick_label(0.5), "0.5");
        assert_eq!(tick_label(200.0), "200");
    }

    #[test]
    fn axes_map_their_padded_range_onto_the_pixels() {
        let x = Axis::fit(&[10.0, 1000.0], 0.0, 100.0, true).unwrap();
        assert!((x.px(100.0) - 50.0).abs() < 1e-9);
        assert!(x.px(10.0) > 0.0 && x.px(1000.0) < 100.0);
        assert!(Axis::fit(&[f64::NAN, -1.0, 0.0], 0.0, 100.0, true).is_none());
        let flat = Axis::fit(&[3.0, 3.0], 0.0, 100.0, false).unwrap();
        assert!((flat.px(3.0) - 50.0).abs() < 1e-9);
        assert!(Axis::fit(&[1e308, f64::MAX], 0.0, 100.0, true).is_none(), "padding overflows");
        assert_eq!(linear_ticks(1e22, 1e22 + 1e7), [1e22, 1e22 + 1e7]);
    }
}
