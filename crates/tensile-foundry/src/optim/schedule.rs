//! Learning-rate schedules: linear warmup from 0, then cosine, linear or constant decay, as
//! transformers' `get_{cosine,linear,constant}_schedule_with_warmup` define them.

use serde::{Deserialize, Serialize};

/// The shape after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decay {
    /// Half a cosine from the peak to 0 at the last step.
    #[default]
    Cosine,
    /// A straight line from the peak to 0 at the last step.
    Linear,
    /// The peak to the end.
    Constant,
}

/// A schedule over `total` steps with `warmup` steps of warmup to `peak`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// The learning rate after warmup.
    pub peak: f64,
    /// Warmup steps.
    pub warmup: usize,
    /// All steps.
    pub total: usize,
    /// The decay after warmup.
    pub decay: Decay,
}

impl Schedule {
    /// The learning rate of step `step` (from 0): `peak · step / warmup` during warmup, then
    /// `peak · ½(1 + cos(π·p))`, `peak · (1 − p)` or `peak`, where `p` is the share of the
    /// post-warmup steps done.
    pub fn lr(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.peak * step as f64 / self.warmup.max(1) as f64;
        }
        let p = (step - self.warmup) as f64 / (self.total.saturating_sub(self.warmup)).max(1) as f64;
        let p = p.min(1.0);
        self.peak
            * match self.decay {
                Decay::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * p).cos()),
                Decay::Linear => 1.0 - p,
                Decay::Constant => 1.0,
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_schedule_takes_its_closed_form_values() {
        let s = |decay| Schedule { peak: 1e-3, warmup: 10, total: 110, decay };
        let close = |a: f64, b: f64| (a - b).abs() < 1e-15;
        for d in [Decay::Cosine, Decay::Linear, Decay::Constant] {
            assert_eq!(s(d).lr(0), 0.0);
            assert!(close(s(d).lr(5), 5e-4), "half way up");
            assert!(close(s(d).lr(10), 1e-3), "the peak after warmup");
        }
        // Half way through the decay: cos(π/2) = 0 gives half the peak, as does the line.
        assert!(close(s(Decay::Cosine).lr(60), 5e-4) && close(s(Decay::Linear).lr(60), 5e-4));
        // A quarter of the way: ½(1 + cos(π/4)) = 0.853553…
        assert!(close(s(Decay::Cosine).lr(35), 1e-3 * 0.5 * (1.0 + std::f64::consts::FRAC_1_SQRT_2)));
        assert!(close(s(Decay::Linear).lr(35), 7.5e-4));
        for d in [Decay::Cosine, Decay::Linear] {
            assert!(s(d).lr(110).abs() < 1e-18 && s(d).lr(500).abs() < 1e-18, "0 at and after the end");
        }
        assert_eq!(s(Decay::Constant).lr(109), 1e-3);
        let no_warmup = Schedule { warmup: 0, ..s(Decay::Linear) };
        assert_eq!(no_warmup.lr(0), 1e-3);
    }
}
