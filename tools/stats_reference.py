#!/usr/bin/env python3
"""Writes crates/tensile/tests/data/statistics_reference.json: reference values for
tensile's statistics (crates/tensile/src/stats.rs) from SciPy and statsmodels, which
crates/tensile/tests/statistics_reference.rs compares against.

    python3 tools/stats_reference.py          # needs numpy, scipy, statsmodels (pip)

The output is deterministic for given library versions (fixed seeds, sorted keys, the inputs
stored next to the values, floats written with full precision); the header records the
versions. Contents:

* "wilson": Wilson score intervals of k/n from statsmodels' proportion_confint(method="wilson")
  at 90/95/99% with z = scipy.stats.norm.ppf(1 - alpha/2).
* "wilson_coverage": (n, p) where the Wilson interval's exact coverage (binomial pmf summed
  over the k whose statsmodels interval holds p) is close to nominal at both 90% and 95%; the
  test simulates these and compares.
* "ols": least squares of ln y on ln x (scipy.stats.linregress) on raw positive xs, ys, with
  the 95% interval of the slope, slope +- t.ppf(0.975, n - 2) * stderr.
* "bootstrap_median" / "bootstrap_ratio": percentile-bootstrap intervals from
  scipy.stats.bootstrap(method="percentile", paired=False) of the median of one sample and of
  the ratio of the q-quantiles of two independent samples, from REFERENCE_RESAMPLES resamples.
  tensile cannot draw SciPy's resamples, so each bound carries a Monte-Carlo tolerance for a
  run of RUST_RESAMPLES resamples: the empirical p-quantile of B draws sits at a probability
  within a few sqrt(p(1-p)/B) of p, so the tolerance is the widest move of the reference
  bootstrap distribution's quantile within TOLERANCE_SE such standard errors either side of p
  (this also covers the jumps of the median's discrete bootstrap distribution). The script
  checks it against the spread of SciPy runs of RUST_RESAMPLES resamples under SPREAD_SEEDS
  seeds, and that the 90% and 95% bounds of each data set lie further apart than their
  tolerances, so the comparison tells the two levels apart.
"""

import json
import math
import pathlib
import sys

import numpy as np
import scipy
import statsmodels
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

OUT = pathlib.Path(__file__).resolve().parent.parent / "crates/tensile/tests/data/statistics_reference.json"
REFERENCE_RESAMPLES = 1_000_000
RUST_RESAMPLES = 20_000
TOLERANCE_SE = 5.0
SPREAD_SEEDS = 10
CONFIDENCES = [0.90, 0.95]


def f(x):
    """A plain float (json writes repr: the shortest string that reads back the same double)."""
    return float(x)


def z_of(confidence):
    return f(stats.norm.ppf(1.0 - (1.0 - confidence) / 2.0))


def wilson():
    pairs = [(0, 1), (1, 1), (0, 10), (10, 10), (1, 10), (5, 10), (2, 3), (3, 7), (17, 50), (81, 263), (0, 1000), (999, 1000), (1000, 1000), (12345, 100000), (1, 1000000), (500000, 1000000)]
    rows = []
    for k, n in pairs:
        for confidence in [0.90, 0.95, 0.99]:
            low, high = proportion_confint(k, n, alpha=1.0 - confidence, method="wilson")
            rows.append({"k": k, "n": n, "confidence": confidence, "z": z_of(confidence), "low": f(low), "high": f(high)})
    return rows


def wilson_coverage():
    rows = []
    for n, p in [(10, 0.38), (50, 0.34), (200, 0.29), (1000, 0.41)]:
        row = {"n": n, "p": p}
        for confidence in CONFIDENCES:
            k = np.arange(n + 1)
            low, high = proportion_confint(k, n, alpha=1.0 - confidence, method="wilson")
            covered = (low <= p) & (p <= high)
            row[f"exact_coverage_{int(round(confidence * 100))}"] = f(stats.binom.pmf(k, n, p)[covered].sum())
        rows.append(row)
    return rows


def ols():
    rng = np.random.default_rng(31)
    rows = []
    # (name, xs, exponent, ln c, noise sigma on ln y)
    specs = [
        ("three points (df 1)", [64.0, 128.0, 256.0], 1.5, -3.0, 0.1),
        ("four sequence lengths", [128.0, 256.0, 512.0, 1024.0], 2.0, -12.0, 0.05),
        ("six points, flat", [8.0, 16.0, 32.0, 64.0, 128.0, 256.0], 0.0, 0.5, 0.2),
        ("ten log-uniform points", sorted(np.exp(rng.uniform(np.log(16), np.log(8192), 10)).tolist()), 1.2, -5.0, 0.08),
        ("32 points (df 30)", sorted(np.exp(rng.uniform(0.0, 7.0, 32)).tolist()), -0.7, 2.0, 0.3),
        ("33 points (df 31)", sorted(np.exp(rng.uniform(1.0, 9.0, 33)).tolist()), 1.0, 0.0, 0.15),
        ("40 points (df 38)", sorted(np.exp(rng.uniform(2.0, 8.0, 40)).tolist()), 2.5, -15.0, 0.25),
        ("60 points (df 58)", [float(x) for x in np.round(np.geomspace(32, 32768, 60))], 1.8, -8.0, 0.02),
    ]
    for name, xs, k, c, sigma in specs:
        xs = np.array(xs, dtype=float)
        ys = np.exp(c + k * np.log(xs) + sigma * rng.standard_normal(len(xs)))
        fit = stats.linregress(np.log(xs), np.log(ys))
        df = len(xs) - 2
        t = f(stats.t.ppf(0.975, df))
        rows.append(
            {
                "name": name,
                "xs": [f(x) for x in xs],
                "ys": [f(y) for y in ys],
                "df": df,
                "slope": f(fit.slope),
                "intercept": f(fit.intercept),
                "r2": f(fit.rvalue**2),
                "t_975": t,
                "ci_low": f(fit.slope - t * fit.stderr),
                "ci_high": f(fit.slope + t * fit.stderr),
            }
        )
    return rows


def bounds_with_tolerance(data, statistic, confidence):
    """The reference interval and a Monte-Carlo tolerance of each bound for RUST_RESAMPLES."""
    res = stats.bootstrap(data, statistic, n_resamples=REFERENCE_RESAMPLES, batch=50_000, confidence_level=confidence, method="percentile", vectorized=True, paired=False, rng=np.random.default_rng(2026))
    dist = np.sort(res.bootstrap_distribution)
    alpha = (1.0 - confidence) / 2.0
    out = {}
    for name, p, bound in [("low", alpha, res.confidence_interval.low), ("high", 1.0 - alpha, res.confidence_interval.high)]:
        se = math.sqrt(p * (1.0 - p) * (1.0 / RUST_RESAMPLES + 1.0 / REFERENCE_RESAMPLES))
        window = np.quantile(dist, [max(p - TOLERANCE_SE * se, 0.0), min(p + TOLERANCE_SE * se, 1.0)])
        tolerance = max(abs(window[0] - bound), abs(window[1] - bound), 1e-12 * abs(bound))
        out[name] = f(bound)
        out[f"tolerance_{name}"] = f(tolerance)
    # Cross-check: SciPy itself at the resample count tensile uses, under other seeds.
    spread = {"low": 0.0, "high": 0.0}
    for seed in range(SPREAD_SEEDS):
        ci = stats.bootstrap(data, statistic, n_resamples=RUST_RESAMPLES, confidence_level=confidence, method="percentile", vectorized=True, paired=False, rng=np.random.default_rng(seed)).confidence_interval
        spread["low"] = max(spread["low"], abs(ci.low - out["low"]))
        spread["high"] = max(spread["high"], abs(ci.high - out["high"]))
    for name in ["low", "high"]:
        out[f"seed_spread_{name}"] = f(spread[name])
        if spread[name] > out[f"tolerance_{name}"]:
            sys.exit(f"the tolerance of the {name} bound ({out[f'tolerance_{name}']}) is under the spread of {SPREAD_SEEDS} SciPy runs ({spread[name]})")
    return out


def check_levels_apart(rows, what):
    """The 90% and 95% intervals of one data set must differ by more than their tolerances."""
    for a, b in zip(rows[::2], rows[1::2]):
        assert (a["confidence"], b["confidence"]) == (0.90, 0.95)
        for name in ["low", "high"]:
            gap = abs(a[name] - b[name])
            if gap <= a[f"tolerance_{name}"] + b[f"tolerance_{name}"]:
                sys.exit(f"{what}: the 90% and 95% {name} bounds ({a[name]}, {b[name]}) are within their tolerances")


def median_statistic(x, axis=-1):
    return np.quantile(x, 0.5, axis=axis)


def ratio_statistic(q):
    def statistic(new, old, axis=-1):
        return np.quantile(new, q, axis=axis) / np.quantile(old, q, axis=axis)

    return statistic


def bootstrap():
    rng = np.random.default_rng(20261201)
    # Timings in ms: a 10 ms computation under multiplicative jitter, as tensile measures them.
    samples = {"60 timings": 10.0 * np.exp(0.05 * rng.standard_normal(60)), "41 timings": 10.0 * np.exp(0.05 * rng.standard_normal(41))}
    medians = []
    for name, x in samples.items():
        for confidence in CONFIDENCES:
            row = {"name": name, "samples": [f(v) for v in x], "confidence": confidence, "resamples": RUST_RESAMPLES, "median": f(np.quantile(x, 0.5))}
            row.update(bounds_with_tolerance((x,), median_statistic, confidence))
            medians.append(row)
    check_levels_apart(medians, "median")
    new = 12.0 * np.exp(0.06 * rng.standard_normal(50))
    old = 10.0 * np.exp(0.05 * rng.standard_normal(40))
    ratios = []
    for q in [0.5, 0.75]:
        for confidence in CONFIDENCES:
            row = {"new": [f(v) for v in new], "old": [f(v) for v in old], "q": q, "confidence": confidence, "resamples": RUST_RESAMPLES, "ratio": f(ratio_statistic(q)(new, old))}
            row.update(bounds_with_tolerance((new, old), ratio_statistic(q), confidence))
            ratios.append(row)
    check_levels_apart(ratios, "ratio")
    return medians, ratios


def main():
    medians, ratios = bootstrap()
    doc = {
        "generator": "tools/stats_reference.py",
        "versions": {"numpy": np.__version__, "scipy": scipy.__version__, "statsmodels": statsmodels.__version__},
        "bootstrap_reference_resamples": REFERENCE_RESAMPLES,
        "bootstrap_tolerance_standard_errors": TOLERANCE_SE,
        "wilson": wilson(),
        "wilson_coverage": wilson_coverage(),
        "ols": ols(),
        "bootstrap_median": medians,
        "bootstrap_ratio": ratios,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, sort_keys=True, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
