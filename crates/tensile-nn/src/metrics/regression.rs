//! Regression and ranking metrics: mean squared and absolute error, Pearson and Spearman
//! correlation, and the area under the ROC curve of a binary classifier.
//!
//! Inputs must be finite: a NaN or infinite prediction is an error naming its position (as
//! scikit-learn refuses them), never a NaN result that a threshold comparison would let pass.

use super::{check_finite, check_lengths, metric_err};
use crate::Result;

/// The mean of `(predicted − truth)²`.
///
/// # Errors
/// Empty inputs, inputs of different lengths, or a value that is not finite.
pub fn mse(predicted: &[f64], truth: &[f64]) -> Result<f64> {
    pair("mse", predicted, truth)?;
    Ok(predicted.iter().zip(truth).map(|(p, t)| (p - t) * (p - t)).sum::<f64>() / truth.len() as f64)
}

/// The mean of `|predicted − truth|`.
///
/// # Errors
/// Empty inputs, inputs of different lengths, or a value that is not finite.
pub fn mae(predicted: &[f64], truth: &[f64]) -> Result<f64> {
    pair("mae", predicted, truth)?;
    Ok(predicted.iter().zip(truth).map(|(p, t)| (p - t).abs()).sum::<f64>() / truth.len() as f64)
}

/// Pearson's correlation coefficient of `x` and `y`.
///
/// # Errors
/// Fewer than two values, inputs of different lengths, a value that is not finite, or a
/// constant input (the coefficient is undefined: 0/0).
pub fn pearson(x: &[f64], y: &[f64]) -> Result<f64> {
    pair("pearson", x, y)?;
    correlation("pearson", x, y)
}

/// Spearman's rank correlation: Pearson's coefficient of the ranks, tied values sharing the
/// mean of their ranks (SciPy's `rankdata(method="average")`).
///
/// # Errors
/// As [`pearson`].
pub fn spearman(x: &[f64], y: &[f64]) -> Result<f64> {
    pair("spearman", x, y)?;
    correlation("spearman", &ranks(x), &ranks(y))
}

/// The area under the ROC curve of `scores` for the binary labels `positive`: the probability
/// that a random positive example scores above a random negative one, ties counting one half
/// (the Mann–Whitney statistic, equal to scikit-learn's trapezoidal area).
///
/// # Errors
/// Empty inputs, inputs of different lengths, a score that is not finite, or labels of one
/// class only (the area is undefined).
pub fn roc_auc(scores: &[f64], positive: &[bool]) -> Result<f64> {
    check_lengths("roc_auc", scores.len(), positive.len())?;
    check_finite("roc_auc", "score", scores)?;
    let n_pos = positive.iter().filter(|&&p| p).count();
    let n_neg = positive.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return Err(metric_err("roc_auc", "only one class is present in the labels"));
    }
    let rank_sum: f64 = ranks(scores).iter().zip(positive).filter(|(_, &p)| p).map(|(r, _)| r).sum();
    let (n_pos, n_neg) = (n_pos as f64, n_neg as f64);
    Ok((rank_sum - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg))
}

/// Checks a pair of equally long, non-empty, finite inputs.
fn pair(metric: &'static str, predicted: &[f64], truth: &[f64]) -> Result<()> {
    check_lengths(metric, predicted.len(), truth.len())?;
    check_finite(metric, "prediction", predicted)?;
    check_finite(metric, "target", truth)
}

/// Pearson's coefficient from [`centred_sums`].
fn correlation(metric: &'static str, x: &[f64], y: &[f64]) -> Result<f64> {
    if x.len() < 2 {
        return Err(metric_err(metric, "needs at least two values"));
    }
    let (sxy, sxx, syy) = centred_sums(x, y);
    if sxx == 0.0 || syy == 0.0 {
        return Err(metric_err(metric, "an input is constant, so the correlation is undefined"));
    }
    // Rounding can push a perfect correlation a hair past ±1.
    Ok((sxy / (sxx.sqrt() * syy.sqrt())).clamp(-1.0, 1.0))
}

/// `(Σ dx·dy, Σ dx², Σ dy²)` with `dx = x − x̄`, `dy = y − ȳ`, summed over equally long
/// non-empty samples: the moments of a correlation, from centred values (two passes) because
/// the one-pass formula loses every digit when the mean is large against the spread.
pub fn centred_sums(x: &[f64], y: &[f64]) -> (f64, f64, f64) {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    x.iter().zip(y).fold((0.0, 0.0, 0.0), |(sxy, sxx, syy), (a, b)| {
        let (dx, dy) = (a - mx, b - my);
        (sxy + dx * dy, sxx + dx * dx, syy + dy * dy)
    })
}

/// Ranks from 1, tied values sharing the mean of the ranks they span.
fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        // Positions start..end hold ranks start+1 ..= end; their mean is (start + 1 + end) / 2.
        let shared = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = shared;
        }
        start = end;
    }
    ranks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_share_the_mean_of_their_ranks() {
        assert_eq!(ranks(&[10.0, 20.0, 10.0, 30.0, 20.0, 20.0]), vec![1.5, 4.0, 1.5, 6.0, 4.0, 4.0]);
        assert_eq!(ranks(&[3.0, 2.0, 1.0]), vec![3.0, 2.0, 1.0]);
        // -0.0 and 0.0 are equal values, so they tie although total_cmp orders them.
        assert_eq!(ranks(&[0.0, -0.0]), vec![1.5, 1.5]);
    }
}
