//! Evaluation metrics of task heads: classification ([`accuracy`], [`ConfusionMatrix`],
//! [`precision_recall_f1`]), regression ([`mse`], [`mae`], [`pearson`], [`spearman`]) and
//! ranking ([`roc_auc`]), following scikit-learn's and SciPy's definitions
//! (`tests/metrics_reference.rs` compares them with numbers those libraries computed).
//!
//! Inputs that make a metric meaningless are errors naming the metric ([`crate::Error::Metric`]):
//! empty input, inputs of different lengths, a NaN or infinite value, and a metric that is
//! undefined for the data (a correlation of a constant, an ROC curve of one class).

mod classification;
mod regression;

pub use classification::{accuracy, argmax_rows, precision_recall_f1, Average, ConfusionMatrix, Scores};
pub use regression::{centred_sums, mae, mse, pearson, roc_auc, spearman};

use crate::{Error, Result};

fn metric_err(metric: &'static str, reason: impl Into<String>) -> Error {
    Error::Metric { metric, reason: reason.into() }
}

/// Refuses empty inputs and inputs of different lengths.
fn check_lengths(metric: &'static str, predicted: usize, truth: usize) -> Result<()> {
    if predicted != truth {
        return Err(metric_err(metric, format!("{predicted} predictions but {truth} targets")));
    }
    if truth == 0 {
        return Err(metric_err(metric, "empty input"));
    }
    Ok(())
}

/// Refuses a NaN or infinite value, naming the first one's position.
fn check_finite(metric: &'static str, what: &str, values: &[f64]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(metric_err(metric, format!("{what} {i} is {}", values[i]))),
        None => Ok(()),
    }
}
