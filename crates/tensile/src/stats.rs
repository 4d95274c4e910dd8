//! Statistics for timings: quantiles, a bootstrap confidence interval of the median, and a
//! power-law fit on log-log axes with a confidence interval of the exponent.

use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The `q`-quantile of sorted samples with linear interpolation (numpy's default).
/// Returns NaN for no samples.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// The median of unsorted samples.
pub fn median(samples: &[f64]) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    quantile(&s, 0.5)
}

/// A percentile-bootstrap confidence interval of the median: `resamples` resamples with
/// replacement from a generator seeded with `seed`, so the interval is reproducible.
pub fn bootstrap_median_ci(samples: &[f64], confidence: f64, resamples: usize, seed: u64) -> (f64, f64) {
    if samples.len() < 2 {
        let m = median(samples);
        return (m, m);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut buf = vec![0.0; samples.len()];
    let mut medians: Vec<f64> = (0..resamples)
        .map(|_| {
            for b in buf.iter_mut() {
                *b = samples[rng.random_range(0..samples.len())];
            }
            median(&buf)
        })
        .collect();
    medians.sort_by(f64::total_cmp);
    let alpha = (1.0 - confidence) / 2.0;
    (quantile(&medians, alpha), quantile(&medians, 1.0 - alpha))
}

/// The `q`-quantile of unsorted samples.
pub fn quantile_of(samples: &[f64], q: f64) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    quantile(&s, q)
}

/// The ratio of the `q`-quantiles `new_q / old_q` with a percentile-bootstrap confidence
/// interval: each resample draws both sides with replacement, so the interval carries the
/// noise of both runs. Returns `(ratio, low, high)`; NaN when either side is empty.
pub fn bootstrap_ratio_ci(new: &[f64], old: &[f64], q: f64, confidence: f64, resamples: usize, seed: u64) -> (f64, f64, f64) {
    if new.is_empty() || old.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let ratio = quantile_of(new, q) / quantile_of(old, q);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut a, mut b) = (vec![0.0; new.len()], vec![0.0; old.len()]);
    let mut ratios: Vec<f64> = (0..resamples.max(1))
        .map(|_| {
            for x in a.iter_mut() {
                *x = new[rng.random_range(0..new.len())];
            }
            for x in b.iter_mut() {
                *x = old[rng.random_range(0..old.len())];
            }
            quantile_of(&a, q) / quantile_of(&b, q)
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    let alpha = (1.0 - confidence) / 2.0;
    (ratio, quantile(&ratios, alpha), quantile(&ratios, 1.0 - alpha))
}

/// The Wilson score interval of a proportion `k / n` at normal quantile `z` (1.96 for 95%).
/// Unlike the normal approximation it stays inside [0, 1] and is not empty at 0 or n.
/// `n = 0` gives the uninformative (0, 1).
pub fn wilson_interval(k: usize, n: usize, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// A summary of timing samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// Median.
    pub median: f64,
    /// 10th percentile.
    pub p10: f64,
    /// 90th percentile.
    pub p90: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// Mean.
    pub mean: f64,
    /// Lower end of the 95% bootstrap interval of the median.
    pub ci_low: f64,
    /// Upper end of the 95% bootstrap interval of the median.
    pub ci_high: f64,
}

impl Summary {
    /// Summarises `samples` (NaN fields when empty).
    pub fn of(samples: &[f64]) -> Summary {
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let (ci_low, ci_high) = bootstrap_median_ci(&s, 0.95, 1000, 0x07e1_511e);
        Summary {
            n: s.len(),
            median: quantile(&s, 0.5),
            p10: quantile(&s, 0.1),
            p90: quantile(&s, 0.9),
            min: s.first().copied().unwrap_or(f64::NAN),
            max: s.last().copied().unwrap_or(f64::NAN),
            mean: if s.is_empty() { f64::NAN } else { s.iter().sum::<f64>() / s.len() as f64 },
            ci_low,
            ci_high,
        }
    }
}

/// The 97.5% quantile of Student's t with `df` degrees of freedom (the two-sided 95% critical
/// value): exact to double precision (SciPy's `t.ppf(0.975, df)`) up to 30, then the
/// Cornish–Fisher expansion in `1/df` to the fifth order (Abramowitz & Stegun 26.7.5), within
/// 4e-10 relative from 31 on.
fn t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706204736174694,
        4.302652729749462,
        3.1824463052837078,
        2.7764451051977934,
        2.5705818356363146,
        2.4469118511449786,
        2.364624251592784,
        2.306004135204166,
        2.262157162798205,
        2.228138851986274,
        2.200985160091639,
        2.1788128296672284,
        2.1603686564627913,
        2.144786687917804,
        2.131449545559776,
        2.1199052992212546,
        2.1098155778333156,
        2.1009220402410382,
        2.0930240544083087,
        2.085963447265864,
        2.0796138447276795,
        2.0738730679040254,
        2.0686576104190486,
        2.0638985616280245,
        2.0595385527532972,
        2.0555294386428735,
        2.0518305164802846,
        2.0484071417952454,
        2.045229642132703,
        2.0422724563012378,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => TABLE[df - 1],
        _ => {
            // The standard normal's 97.5% quantile.
            const Z: f64 = 1.959963984540054;
            let z2 = Z * Z;
            let g = [
                Z * (z2 + 1.0) / 4.0,
                Z * ((5.0 * z2 + 16.0) * z2 + 3.0) / 96.0,
                Z * (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) / 384.0,
                Z * ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z2 - 945.0) / 92160.0,
                Z * (((((27.0 * z2 + 339.0) * z2 + 930.0) * z2 - 1782.0) * z2 - 765.0) * z2 + 17955.0) / 368640.0,
            ];
            let inv = 1.0 / df as f64;
            Z + g.iter().rev().fold(0.0, |acc, gi| (acc + gi) * inv)
        }
    }
}

/// `y ≈ c · x^exponent` fitted by least squares of `ln y` on `ln x`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogLogFit {
    /// The fitted exponent (slope on log-log axes).
    pub exponent: f64,
    /// `ln c`.
    pub intercept: f64,
    /// Lower end of the 95% interval of the exponent (−∞ with only two points).
    pub ci_low: f64,
    /// Upper end of the 95% interval of the exponent (+∞ with only two points).
    pub ci_high: f64,
    /// Coefficient of determination on log-log axes.
    pub r2: f64,
}

/// Fits a power law; `None` with fewer than two distinct positive `x` or any non-positive `y`.
pub fn fit_power_law(xs: &[f64], ys: &[f64]) -> Option<LogLogFit> {
    if xs.len() != ys.len() || xs.len() < 2 || xs.iter().chain(ys).any(|v| !(*v > 0.0 && v.is_finite())) {
        return None;
    }
    let lx: Vec<f64> = xs.iter().map(|x| x.ln()).collect();
    let ly: Vec<f64> = ys.iter().map(|y| y.ln()).collect();
    let n = lx.len() as f64;
    let (mx, my) = (lx.iter().sum::<f64>() / n, ly.iter().sum::<f64>() / n);
    let sxx: f64 = lx.iter().map(|x| (x - mx).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let sxy: f64 = lx.iter().zip(&ly).map(|(x, y)| (x - mx) * (y - my)).sum();
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let sse: f64 = lx.iter().zip(&ly).map(|(x, y)| (y - intercept - slope * x).powi(2)).sum();
    let syy: f64 = ly.iter().map(|y| (y - my).powi(2)).sum();
    let df = lx.len() - 2;
    // With two points the line fits exactly and says nothing about its own uncertainty.
    let half = if df == 0 { f64::INFINITY } else { t_975(df) * (sse / df as f64 / sxx).sqrt() };
    Some(LogLogFit { exponent: slope, intercept, ci_low: slope - half, ci_high: slope + half, r2: if syy == 0.0 { 1.0 } else { 1.0 - sse / syy } })
}

/// The share of the time at the longest length that must be growth for a growth exponent to
/// be fitted; below it the growth is lost in the noise of the overhead and is reported as flat.
pub const GROWTH_FLOOR: f64 = 0.1;

/// How `time − overhead` grows with the sequence length.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Growth {
    /// A power law fitted to the growing part.
    Fitted(LogLogFit),
    /// Less than [`GROWTH_FLOOR`] of the time at the longest length is growth: the time is
    /// flat (exponent 0) as far as the measurement can tell.
    Flat,
}

impl Growth {
    /// The growth exponent: the fitted one, or 0 for flat growth.
    pub fn exponent(&self) -> f64 {
        match self {
            Growth::Fitted(fit) => fit.exponent,
            Growth::Flat => 0.0,
        }
    }
}

/// Fits a power law to the growing part `ys − overhead` of timings `ys` at lengths `xs`, over
/// the points where it is positive (noise can leave a short length at or below the overhead).
pub fn fit_growth(xs: &[f64], ys: &[f64], overhead: f64) -> Growth {
    let last = xs.iter().zip(ys).max_by(|a, b| a.0.total_cmp(b.0)).map(|(_, y)| *y);
    let Some(last) = last else { return Growth::Flat };
    if !(last - overhead >= GROWTH_FLOOR * last) {
        return Growth::Flat;
    }
    let (gx, gy): (Vec<f64>, Vec<f64>) = xs.iter().zip(ys).filter(|(_, y)| **y - overhead > 0.0).map(|(x, y)| (*x, *y - overhead)).unzip();
    fit_power_law(&gx, &gy).map_or(Growth::Flat, Growth::Fitted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wilson_interval_matches_published_values() {
        // Reference values from Newcombe (1998), table I: 81/263 → 0.2553–0.3662; 0/10 → 0–0.2775.
        let (lo, hi) = wilson_interval(81, 263, 1.96);
        assert!((lo - 0.2553).abs() < 5e-4 && (hi - 0.3662).abs() < 5e-4, "{lo} {hi}");
        let (lo, hi) = wilson_interval(0, 10, 1.96);
        assert!(lo == 0.0 && (hi - 0.2775).abs() < 5e-4, "{hi}");
        let (lo, hi) = wilson_interval(10, 10, 1.96);
        assert!((lo - 0.7225).abs() < 5e-4 && hi == 1.0, "{lo}");
        assert_eq!(wilson_interval(0, 0, 1.96), (0.0, 1.0));
    }

    #[test]
    fn ratio_ci_brackets_a_planted_ratio() {
        let old: Vec<f64> = (0..40).map(|i| 10.0 + (i % 7) as f64 * 0.1).collect();
        let new: Vec<f64> = old.iter().map(|x| x * 1.5).collect();
        let (r, lo, hi) = bootstrap_ratio_ci(&new, &old, 0.5, 0.95, 500, 1);
        assert!((r - 1.5).abs() < 1e-12, "{r}");
        assert!(lo <= 1.5 && 1.5 <= hi && hi - lo < 0.2, "{lo} {hi}");
        assert!(bootstrap_ratio_ci(&[], &old, 0.5, 0.95, 10, 1).0.is_nan());
    }

    #[test]
    fn quantiles_interpolate_like_numpy() {
        let s = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&s, 0.5), 2.5);
        assert!((quantile(&s, 0.1) - 1.3).abs() < 1e-12);
        assert_eq!(quantile(&s, 1.0), 4.0);
        assert!(quantile(&[], 0.5).is_nan());
        assert_eq!(median(&[5.0, 1.0, 3.0]), 3.0);
    }

    #[test]
    fn bootstrap_interval_brackets_the_median_and_is_reproducible() {
        let samples: Vec<f64> = (0..50).map(|i| 10.0 + (i % 7) as f64).collect();
        let (lo, hi) = bootstrap_median_ci(&samples, 0.95, 500, 1);
        let m = median(&samples);
        assert!(lo <= m && m <= hi, "{lo} {m} {hi}");
        assert_eq!((lo, hi), bootstrap_median_ci(&samples, 0.95, 500, 1));
    }

    #[test]
    fn a_summary_holds_the_order_statistics_and_the_mean() {
        // The mean (4) is not the median (2.5), so neither can stand in for the other.
        let s = Summary::of(&[10.0, 2.0, 1.0, 3.0]);
        assert_eq!((s.n, s.median, s.mean, s.min, s.max), (4, 2.5, 4.0, 1.0, 10.0));
        assert!((s.p10 - 1.3).abs() < 1e-12 && (s.p90 - 7.9).abs() < 1e-12, "{s:?}");
        assert!(s.ci_low <= s.median && s.median <= s.ci_high, "{s:?}");
        let empty = Summary::of(&[]);
        assert_eq!(empty.n, 0);
        assert!([empty.median, empty.mean, empty.min, empty.max, empty.ci_low].iter().all(|v| v.is_nan()), "{empty:?}");
    }

    #[test]
    fn a_ratio_with_an_empty_side_is_nan() {
        for (new, old) in [(&[][..], &[1.0, 2.0][..]), (&[1.0, 2.0][..], &[][..]), (&[][..], &[][..])] {
            let (r, lo, hi) = bootstrap_ratio_ci(new, old, 0.5, 0.95, 100, 1);
            assert!(r.is_nan() && lo.is_nan() && hi.is_nan(), "{new:?} / {old:?}");
        }
    }

    #[test]
    fn the_bootstrap_starts_at_two_samples() {
        // Two samples are resampled: the resample medians are 1, 2 and 3 with probabilities
        // 1/4, 1/2 and 1/4, so the 95% interval spans both samples.
        assert_eq!(bootstrap_median_ci(&[1.0, 3.0], 0.95, 2000, 5), (1.0, 3.0));
        // One sample has no spread to resample, and none has no median.
        assert_eq!(bootstrap_median_ci(&[4.0], 0.95, 2000, 5), (4.0, 4.0));
        let (lo, hi) = bootstrap_median_ci(&[], 0.95, 2000, 5);
        assert!(lo.is_nan() && hi.is_nan());
    }

    #[test]
    fn t_quantile_matches_scipy() {
        // SciPy 1.17 `stats.t.ppf(0.975, df)`: in the table, at its end, past it and far out.
        for (df, t) in [
            (1, 12.706204736174694),
            (2, 4.302652729749462),
            (5, 2.5705818356363146),
            (30, 2.0422724563012378),
            (31, 2.039513446396408),
            (40, 2.021075390306273),
            (60, 2.0002978220142604),
            (120, 1.9799304050824402),
            (1000, 1.9623390808264083),
        ] {
            assert!((t_975(df) - t).abs() < 1e-9 * t, "df {df}: {} against {t}", t_975(df));
        }
        assert_eq!(t_975(0), f64::INFINITY);
        assert!((t_975(usize::MAX) - 1.959963984540054).abs() < 1e-12, "the limit is the normal quantile");
    }

    #[test]
    fn power_law_fit_recovers_known_exponents() {
        let xs = [64.0, 128.0, 256.0, 512.0];
        let ys: Vec<f64> = xs.iter().map(|x: &f64| 3.0 * x.powf(1.5)).collect();
        let fit = fit_power_law(&xs, &ys).unwrap();
        assert!((fit.exponent - 1.5).abs() < 1e-12 && (fit.r2 - 1.0).abs() < 1e-12);
        let two = fit_power_law(&xs[..2], &ys[..2]).unwrap();
        assert!(two.ci_low.is_infinite() && two.ci_high.is_infinite());
        assert!(fit_power_law(&[1.0, 1.0], &[2.0, 3.0]).is_none());
        assert!(fit_power_law(&[1.0, 2.0], &[0.0, 3.0]).is_none());
    }

    #[test]
    fn growth_separates_a_fixed_overhead_from_the_growing_part() {
        // 2 ms of overhead on top of 0.01·x: the whole time's slope is far below 1, the growing
        // part's is exactly 1.
        let xs = [128.0, 256.0, 512.0, 1024.0];
        let ys: Vec<f64> = xs.iter().map(|x| 2.0 + 0.01 * x).collect();
        assert!(fit_power_law(&xs, &ys).unwrap().exponent < 0.7);
        let Growth::Fitted(fit) = fit_growth(&xs, &ys, 2.0) else { panic!("growth is 84% of the time at 1024") };
        assert!((fit.exponent - 1.0).abs() < 1e-12, "{fit:?}");
        // A quadratic growing part under the same overhead.
        let ys: Vec<f64> = xs.iter().map(|x| 2.0 + 1e-5 * x * x).collect();
        let Growth::Fitted(fit) = fit_growth(&xs, &ys, 2.0) else { panic!("grows") };
        assert!((fit.exponent - 2.0).abs() < 1e-12, "{fit:?}");
    }

    #[test]
    fn growth_below_the_floor_is_flat_and_points_under_the_overhead_are_left_out() {
        let xs = [128.0, 256.0, 512.0, 1024.0];
        // At 1024 the growth is 0.09 of 1.09 ms: under a tenth, so flat.
        assert_eq!(fit_growth(&xs, &[1.0, 1.03, 1.05, 1.09], 1.0), Growth::Flat);
        // Exactly at the floor it is fitted (the floor is inclusive).
        assert!(matches!(fit_growth(&[1.0, 2.0, 4.0], &[9.25, 9.5, 10.0], 9.0), Growth::Fitted(_)));
        // The first point sits under the overhead (noise) and is left out; the rest grow as x.
        let Growth::Fitted(fit) = fit_growth(&xs, &[0.99, 1.256, 1.512, 2.024], 1.0) else { panic!("grows") };
        assert!((fit.exponent - 1.0).abs() < 1e-9, "{fit:?}");
        // A point exactly at the overhead has no growth to take a logarithm of: left out too.
        let Growth::Fitted(fit) = fit_growth(&[1.0, 2.0, 4.0, 8.0], &[1.0, 1.5, 2.0, 3.0], 1.0) else { panic!("grows") };
        assert!((fit.exponent - 1.0).abs() < 1e-12, "{fit:?}");
        // The floor is a share of the time at the longest length: 5 of 100 is under a tenth.
        assert_eq!(fit_growth(&[1.0, 2.0, 4.0], &[96.0, 98.0, 100.0], 95.0), Growth::Flat);
        assert_eq!(fit_growth(&[], &[], 0.0), Growth::Flat);
        assert_eq!(Growth::Flat.exponent(), 0.0, "flat growth is judged as exponent 0");
        assert_eq!(fit_growth(&xs, &[f64::NAN; 4], 0.0), Growth::Flat);
    }

    proptest! {
        #[test]
        fn wilson_interval_contains_the_rate(n in 1usize..500, k_frac in 0.0f64..=1.0) {
            let k = ((n as f64) * k_frac).round() as usize;
            let (lo, hi) = wilson_interval(k, n, 1.96);
            let p = k as f64 / n as f64;
            prop_assert!(0.0 <= lo && lo <= p + 1e-12 && p <= hi + 1e-12 && hi <= 1.0, "{} {} {}", lo, p, hi);
        }

        #[test]
        fn quantiles_are_monotone_and_bounded(mut v in prop::collection::vec(-1e6f64..1e6, 1..50), a in 0.0f64..1.0, b in 0.0f64..1.0) {
            v.sort_by(f64::total_cmp);
            let (lo, hi) = if a < b { (a, b) } else { (b, a) };
            prop_assert!(quantile(&v, lo) <= quantile(&v, hi));
            prop_assert!(quantile(&v, lo) >= v[0] && quantile(&v, hi) <= v[v.len() - 1]);
        }

        #[test]
        fn fits_of_exact_power_laws_are_exact(k in -2.0f64..3.0, c in 0.01f64..100.0) {
            let xs = [8.0, 16.0, 32.0, 64.0, 128.0];
            let ys: Vec<f64> = xs.iter().map(|x: &f64| c * x.powf(k)).collect();
            let fit = fit_power_law(&xs, &ys).unwrap();
            prop_assert!((fit.exponent - k).abs() < 1e-9);
            prop_assert!(fit.ci_low <= fit.exponent && fit.exponent <= fit.ci_high);
        }

        #[test]
        fn noisy_fits_keep_the_estimate_inside_the_interval(noise in prop::collection::vec(-0.1f64..0.1, 6)) {
            let xs = [8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
            let ys: Vec<f64> = xs.iter().zip(&noise).map(|(x, e): (&f64, &f64)| x * e.exp()).collect();
            let fit = fit_power_law(&xs, &ys).unwrap();
            prop_assert!(fit.ci_low <= fit.exponent && fit.exponent <= fit.ci_high);
            prop_assert!((fit.exponent - 1.0).abs() < 0.2);
        }
    }
}
