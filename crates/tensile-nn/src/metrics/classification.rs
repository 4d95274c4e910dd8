//! Single-label classification metrics: accuracy, the confusion matrix, and precision, recall
//! and F1 per label and averaged (macro, micro, weighted).
//!
//! The conventions are scikit-learn's, so numbers can be compared with it directly: the labels
//! are the sorted union of the true and the predicted ones, the matrix has one row per true
//! label and one column per predicted label, and a ratio whose denominator is zero (a label
//! never predicted has no precision) counts as 0 (`zero_division=0`).

use super::{check_lengths, metric_err};
use crate::Result;

/// How per-label scores are combined into one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Average {
    /// The unweighted mean over labels: every label counts the same, however rare.
    Macro,
    /// Scores of the pooled counts; for single-label problems all three equal the accuracy.
    Micro,
    /// The mean over labels weighted by each label's number of true examples (its support).
    Weighted,
}

/// Precision, recall and F1 of one label or one average.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Scores {
    /// Of the examples predicted as the label, the fraction that have it.
    pub precision: f64,
    /// Of the examples that have the label, the fraction predicted as it.
    pub recall: f64,
    /// The harmonic mean of precision and recall.
    pub f1: f64,
}

/// Counts of (true label, predicted label) pairs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConfusionMatrix {
    /// The labels, sorted: the union of the true and the predicted ones.
    pub labels: Vec<usize>,
    /// `counts[i][j]`: examples whose true label is `labels[i]`, predicted as `labels[j]`.
    pub counts: Vec<Vec<u64>>,
}

/// The fraction of predictions equal to the truth.
///
/// # Errors
/// Empty inputs or inputs of different lengths.
pub fn accuracy(predicted: &[usize], truth: &[usize]) -> Result<f64> {
    check_lengths("accuracy", predicted.len(), truth.len())?;
    let right = predicted.iter().zip(truth).filter(|(p, t)| p == t).count();
    Ok(right as f64 / truth.len() as f64)
}

impl ConfusionMatrix {
    /// The matrix of `predicted` against `truth`.
    ///
    /// # Errors
    /// Empty inputs or inputs of different lengths.
    pub fn new(predicted: &[usize], truth: &[usize]) -> Result<Self> {
        check_lengths("confusion matrix", predicted.len(), truth.len())?;
        let mut labels: Vec<usize> = predicted.iter().chain(truth).copied().collect();
        labels.sort_unstable();
        labels.dedup();
        let index = |label: usize| labels.binary_search(&label).unwrap_or_default();
        let mut counts = vec![vec![0u64; labels.len()]; labels.len()];
        for (&p, &t) in predicted.iter().zip(truth) {
            counts[index(t)][index(p)] += 1;
        }
        Ok(Self { labels, counts })
    }

    /// Examples whose true label is `labels[i]` (row sums).
    pub fn support(&self) -> Vec<u64> {
        self.counts.iter().map(|row| row.iter().sum()).collect()
    }

    /// Examples predicted as `labels[j]` (column sums).
    fn predicted_totals(&self) -> Vec<u64> {
        (0..self.labels.len()).map(|j| self.counts.iter().map(|row| row[j]).sum()).collect()
    }

    /// All examples counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    /// Precision, recall and F1 of each label, in the order of [`Self::labels`].
    pub fn per_label(&self) -> Vec<Scores> {
        let (support, predicted) = (self.support(), self.predicted_totals());
        (0..self.labels.len()).map(|i| scores(self.counts[i][i], predicted[i], support[i])).collect()
    }

    /// Precision, recall and F1 combined over labels as `average` says.
    pub fn scores(&self, average: Average) -> Scores {
        match average {
            Average::Micro => {
                let right: u64 = (0..self.labels.len()).map(|i| self.counts[i][i]).sum();
                let total = self.total();
                // Every wrong prediction is a false positive of one label and a false negative
                // of another, so the pooled counts have as many of each.
                scores(right, total, total)
            }
            Average::Macro | Average::Weighted => {
                let per_label = self.per_label();
                let weights: Vec<f64> = match average {
                    Average::Macro => vec![1.0; per_label.len()],
                    _ => self.support().iter().map(|&s| s as f64).collect(),
                };
                let sum: f64 = weights.iter().sum();
                let mean = |f: fn(&Scores) -> f64| per_label.iter().zip(&weights).map(|(s, w)| f(s) * w).sum::<f64>() / sum;
                Scores { precision: mean(|s| s.precision), recall: mean(|s| s.recall), f1: mean(|s| s.f1) }
            }
        }
    }
}

/// Scores from a label's true positives and its predicted and true totals, a zero
/// denominator giving 0.
fn scores(true_positives: u64, predicted: u64, actual: u64) -> Scores {
    let ratio = |num: u64, den: u64| if den == 0 { 0.0 } else { num as f64 / den as f64 };
    // F1 from the counts, 2·tp / (predicted + actual), which equals 2pr / (p + r) wherever
    // that is defined and is 0 where it is not.
    Scores { precision: ratio(true_positives, predicted), recall: ratio(true_positives, actual), f1: ratio(2 * true_positives, predicted + actual) }
}

/// Precision, recall and F1 of `predicted` against `truth`, combined as `average` says.
///
/// # Errors
/// Empty inputs or inputs of different lengths.
pub fn precision_recall_f1(predicted: &[usize], truth: &[usize], average: Average) -> Result<Scores> {
    Ok(ConfusionMatrix::new(predicted, truth)?.scores(average))
}

/// The index of the largest value of each row of `logits` (the first one on a tie), which is
/// the predicted label of a classifier.
///
/// # Errors
/// No rows, an empty row, or a NaN (the prediction would be arbitrary).
pub fn argmax_rows(logits: &[Vec<f64>]) -> Result<Vec<usize>> {
    if logits.is_empty() {
        return Err(metric_err("argmax", "empty input"));
    }
    logits
        .iter()
        .enumerate()
        .map(|(r, row)| {
            if row.is_empty() {
                return Err(metric_err("argmax", format!("row {r} is empty")));
            }
            if let Some(c) = row.iter().position(|v| v.is_nan()) {
                return Err(metric_err("argmax", format!("logit [{r}][{c}] is NaN")));
            }
            Ok(row.iter().enumerate().fold(0, |best, (i, v)| if *v > row[best] { i } else { best }))
        })
        .collect()
}
