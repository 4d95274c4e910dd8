//! tensile's statistics against SciPy and statsmodels, and the coverage of its intervals by
//! simulation. The reference values are in tests/data/statistics_reference.json, written by
//! tools/stats_reference.py (statsmodels' Wilson interval, scipy.stats.linregress with
//! t.ppf(0.975, n − 2), scipy.stats.bootstrap's percentile intervals with a Monte-Carlo
//! tolerance per bound). Run once per mutant by tools/mutants.sh, so it is kept to a few
//! seconds: the simulations are seeded and sized to be decisive, not exhaustive.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Binomial, Distribution, LogNormal, Normal};
use serde::Deserialize;
use tensile::stats::{bootstrap_median_ci, bootstrap_ratio_ci, fit_power_law, median, quantile_of, wilson_interval};

#[derive(Deserialize)]
struct Reference {
    generator: String,
    versions: std::collections::BTreeMap<String, String>,
    wilson: Vec<Wilson>,
    wilson_coverage: Vec<WilsonCoverage>,
    ols: Vec<Ols>,
    bootstrap_median: Vec<BootstrapMedian>,
    bootstrap_ratio: Vec<BootstrapRatio>,
}

#[derive(Deserialize)]
struct Wilson {
    k: usize,
    n: usize,
    confidence: f64,
    z: f64,
    low: f64,
    high: f64,
}

#[derive(Deserialize)]
struct WilsonCoverage {
    n: u64,
    p: f64,
    exact_coverage_90: f64,
    exact_coverage_95: f64,
}

#[derive(Deserialize)]
struct Ols {
    name: String,
    xs: Vec<f64>,
    ys: Vec<f64>,
    slope: f64,
    intercept: f64,
    r2: f64,
    ci_low: f64,
    ci_high: f64,
}

#[derive(Deserialize)]
struct BootstrapMedian {
    name: String,
    samples: Vec<f64>,
    confidence: f64,
    resamples: usize,
    median: f64,
    low: f64,
    high: f64,
    tolerance_low: f64,
    tolerance_high: f64,
}

#[derive(Deserialize)]
struct BootstrapRatio {
    new: Vec<f64>,
    old: Vec<f64>,
    q: f64,
    confidence: f64,
    resamples: usize,
    ratio: f64,
    low: f64,
    high: f64,
    tolerance_low: f64,
    tolerance_high: f64,
}

fn reference() -> Reference {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/statistics_reference.json");
    let text = std::fs::read_to_string(path).unwrap();
    let reference: Reference = serde_json::from_str(&text).unwrap();
    assert_eq!(reference.generator, "tools/stats_reference.py");
    assert!(["numpy", "scipy", "statsmodels"].iter().all(|k| reference.versions.contains_key(*k)), "the fixture records its library versions");
    reference
}

/// `|actual − expected| ≤ tol · max(1, |expected|)`.
fn close(actual: f64, expected: f64, tol: f64) -> bool {
    (actual - expected).abs() <= tol * expected.abs().max(1.0)
}

#[test]
fn wilson_intervals_match_statsmodels() {
    let reference = reference();
    assert!(reference.wilson.len() >= 40);
    for w in &reference.wilson {
        let (low, high) = wilson_interval(w.k, w.n, w.z);
        let what = format!("{}/{} at {}", w.k, w.n, w.confidence);
        assert!(close(low, w.low, 1e-12) && close(high, w.high, 1e-12), "{what}: ({low}, {high}), statsmodels ({}, {})", w.low, w.high);
    }
}

#[test]
fn power_law_fits_match_scipy_linregress() {
    let reference = reference();
    assert!(reference.ols.iter().any(|o| o.xs.len() <= 32) && reference.ols.iter().any(|o| o.xs.len() > 32), "degrees of freedom on both sides of 30");
    for o in &reference.ols {
        let fit = fit_power_law(&o.xs, &o.ys).unwrap();
        let name = &o.name;
        assert!(close(fit.exponent, o.slope, 1e-12), "{name}: slope {} against {}", fit.exponent, o.slope);
        assert!(close(fit.intercept, o.intercept, 1e-12), "{name}: intercept {} against {}", fit.intercept, o.intercept);
        assert!(close(fit.r2, o.r2, 1e-12), "{name}: r² {} against {}", fit.r2, o.r2);
        // The bounds are as good as the t quantile: relative to the half-width.
        let half = (o.ci_high - o.ci_low) / 2.0;
        assert!((fit.ci_low - o.ci_low).abs() <= 1e-7 * half, "{name}: ci_low {} against {}", fit.ci_low, o.ci_low);
        assert!((fit.ci_high - o.ci_high).abs() <= 1e-7 * half, "{name}: ci_high {} against {}", fit.ci_high, o.ci_high);
    }
}

#[test]
fn bootstrap_median_intervals_match_scipy() {
    let reference = reference();
    for b in &reference.bootstrap_median {
        assert!(close(median(&b.samples), b.median, 1e-12), "{}: median", b.name);
        let (low, high) = bootstrap_median_ci(&b.samples, b.confidence, b.resamples, 7);
        let what = format!("median of {} at {}", b.name, b.confidence);
        assert!((low - b.low).abs() <= b.tolerance_low, "{what}: low {low}, scipy {} ± {}", b.low, b.tolerance_low);
        assert!((high - b.high).abs() <= b.tolerance_high, "{what}: high {high}, scipy {} ± {}", b.high, b.tolerance_high);
    }
}

#[test]
fn bootstrap_ratio_intervals_match_scipy() {
    let reference = reference();
    for b in &reference.bootstrap_ratio {
        assert!(close(quantile_of(&b.new, b.q) / quantile_of(&b.old, b.q), b.ratio, 1e-12), "q {}: ratio", b.q);
        let (ratio, low, high) = bootstrap_ratio_ci(&b.new, &b.old, b.q, b.confidence, b.resamples, 7);
        let what = format!("ratio of q {} at {}", b.q, b.confidence);
        assert!(close(ratio, b.ratio, 1e-12), "{what}: ratio {ratio}, numpy {}", b.ratio);
        assert!((low - b.low).abs() <= b.tolerance_low, "{what}: low {low}, scipy {} ± {}", b.low, b.tolerance_low);
        assert!((high - b.high).abs() <= b.tolerance_high, "{what}: high {high}, scipy {} ± {}", b.high, b.tolerance_high);
    }
}

/// The normal quantile of a two-sided interval at `confidence`, from the fixture's own
/// SciPy values (so that no z is typed in here).
fn z_of(reference: &Reference, confidence: f64) -> f64 {
    reference.wilson.iter().find(|w| w.confidence == confidence).unwrap().z
}

#[test]
fn wilson_coverage_is_nominal() {
    let reference = reference();
    let trials = 4000;
    for c in &reference.wilson_coverage {
        let mut rng = ChaCha8Rng::seed_from_u64(c.n);
        let ks: Vec<usize> = (0..trials).map(|_| Binomial::new(c.n, c.p).unwrap().sample(&mut rng) as usize).collect();
        for (confidence, exact, band) in [(0.95, c.exact_coverage_95, (0.93, 0.97)), (0.90, c.exact_coverage_90, (0.88, 0.92))] {
            let z = z_of(&reference, confidence);
            let covered = ks.iter().filter(|&&k| {
                let (low, high) = wilson_interval(k, c.n as usize, z);
                low <= c.p && c.p <= high
            });
            let coverage = covered.count() as f64 / trials as f64;
            // Four standard errors of the simulation around the exact coverage (SciPy).
            let se = (exact * (1.0 - exact) / trials as f64).sqrt();
            assert!((coverage - exact).abs() <= 4.0 * se, "n {} p {} at {confidence}: simulated {coverage}, exact {exact}", c.n, c.p);
            assert!(band.0 <= coverage && coverage <= band.1, "n {} p {} at {confidence}: coverage {coverage}", c.n, c.p);
        }
    }
}

#[test]
fn power_law_interval_coverage_is_nominal() {
    // ln y = ln 3 + 1.5 ln x + N(0, 0.1²): the t interval of the slope is exact, 95%.
    let exponent = 1.5;
    let trials = 4000;
    let few: Vec<f64> = (3..11).map(|i| f64::powi(2.0, i)).collect();
    let many: Vec<f64> = (0..40).map(|i| 16.0 * 1.15f64.powi(i)).collect();
    for xs in [few, many] {
        let mut rng = ChaCha8Rng::seed_from_u64(xs.len() as u64);
        let noise = Normal::<f64>::new(0.0, 0.1).unwrap();
        let covered = (0..trials)
            .filter(|_| {
                let ys: Vec<f64> = xs.iter().map(|x| 3.0 * x.powf(exponent) * noise.sample(&mut rng).exp()).collect();
                let fit = fit_power_law(&xs, &ys).unwrap();
                fit.ci_low <= exponent && exponent <= fit.ci_high
            })
            .count();
        let coverage = covered as f64 / trials as f64;
        assert!((0.93..=0.97).contains(&coverage), "{} points: coverage {coverage}", xs.len());
    }
}

#[test]
fn bootstrap_ratio_interval_coverage_is_nominal() {
    // Two runs of 30 timings under 5% log-normal jitter, the new one 1.2 times slower: the
    // true ratio of the medians is 1.2. The percentile bootstrap of a ratio of medians covers
    // a little more than nominal at every practical size (the median's bootstrap distribution
    // is lumpy): with 30 a side and 200 resamples, 10 000 trials gave 95.7% at 95%, 91.7% at
    // 90% and 82.8% at 80%, so 2000 trials tell 95% from 90% by several standard errors.
    let (n, trials, resamples) = (30, 2000, 200);
    let jitter = LogNormal::new(0.0, 0.05).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let runs: Vec<(Vec<f64>, Vec<f64>)> = (0..trials)
        .map(|_| {
            let new: Vec<f64> = (0..n).map(|_| 1.2 * jitter.sample(&mut rng)).collect();
            let old: Vec<f64> = (0..n).map(|_| jitter.sample(&mut rng)).collect();
            (new, old)
        })
        .collect();
    let coverage = |confidence: f64| {
        let covered = runs
            .iter()
            .enumerate()
            .filter(|(i, (new, old))| {
                let (_, low, high) = bootstrap_ratio_ci(new, old, 0.5, confidence, resamples, *i as u64);
                low <= 1.2 && 1.2 <= high
            })
            .count();
        covered as f64 / trials as f64
    };
    let (c95, c90) = (coverage(0.95), coverage(0.90));
    assert!((0.93..=0.97).contains(&c95), "95% coverage {c95}");
    assert!((0.88..=0.93).contains(&c90) && c90 <= c95 - 0.02, "90% coverage {c90}, 95% coverage {c95}");
}
