//! The regression test of baselines against planted noise and planted slowdowns. A binary of
//! its own: thousands of bootstrap resamples would otherwise load the machine while timing
//! tests of another binary measure.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal};
use tensile::baseline::compare;

/// `n` timings of a 10 ms computation with multiplicative log-normal noise of `sigma` (0.03
/// is the ±3% jitter of a quiet machine), slowed by `factor`.
fn timings(seed: u64, n: usize, sigma: f64, factor: f64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let noise = LogNormal::new(0.0, sigma).unwrap();
    (0..n).map(|_| 10.0 * factor * noise.sample(&mut rng)).collect()
}

#[test]
fn noise_alone_does_not_fail_and_a_planted_ten_percent_slowdown_does() {
    // Two hundred pairs of runs of the same computation: with 3% and with 8% jitter, none
    // may be called a regression.
    for sigma in [0.03, 0.08] {
        let false_alarms = (0..200).filter(|&s| compare(&timings(s, 30, sigma, 1.0), &timings(1000 + s, 30, sigma, 1.0), 0.05).regression).count();
        assert_eq!(false_alarms, 0, "sigma {sigma}");
    }
    // A planted 10% slowdown under 3% jitter is caught every time.
    let caught = (0..200).filter(|&s| compare(&timings(s, 30, 0.03, 1.10), &timings(1000 + s, 30, 0.03, 1.0), 0.05).regression).count();
    assert_eq!(caught, 200);
    // A 3% slowdown is under the threshold: not failed.
    let small = (0..200).filter(|&s| compare(&timings(s, 30, 0.03, 1.03), &timings(1000 + s, 30, 0.03, 1.0), 0.05).regression).count();
    assert!(small <= 2, "{small} of 200 runs 3% slower were called regressions");
}

#[test]
fn the_interval_brackets_the_planted_slowdown() {
    let c = compare(&timings(7, 40, 0.03, 1.2), &timings(8, 40, 0.03, 1.0), 0.05);
    // The sample medians of 40 noisy runs land within a few percent of the planted 20%.
    assert!((c.slowdown - 0.2).abs() < 0.03 && c.low < c.slowdown && c.slowdown < c.high && c.regression, "{c:?}");
    assert!((c.baseline_median_ms - 10.0).abs() < 0.3, "{c:?}");
    // Faster is never a regression.
    assert!(!compare(&timings(7, 40, 0.03, 0.5), &timings(8, 40, 0.03, 1.0), 0.05).regression);
    // No samples: no verdict.
    assert!(!compare(&[], &[1.0], 0.05).regression);
}
