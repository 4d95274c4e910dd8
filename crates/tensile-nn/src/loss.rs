//! Training losses of task heads: cross-entropy (with PyTorch's `ignore_index` and label
//! smoothing), mean squared error, and binary cross-entropy on logits, each with a float64
//! reference twin.
//!
//! The fast forms are compositions of differentiable candle operations (candle's fused
//! softmax has no backward pass), written so that logits around ±1e4 neither overflow nor lose
//! the loss: log-softmax subtracts the row maximum before `exp`, and BCE uses
//! `max(x, 0) − x·y + ln(1 + e^−|x|)`, whose exponential never exceeds 1.

use crate::{Error, Result};
use candle_core::{Device, Tensor, D};

/// PyTorch's default `ignore_index`, which Hugging Face uses to mark padded and unlabelled
/// token positions.
pub const IGNORE_INDEX: i64 = -100;

/// Cross-entropy of logits against class indices, averaged over the targets that are not
/// ignored (PyTorch's `CrossEntropyLoss(reduction="mean")`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CrossEntropyLoss {
    /// Targets equal to this value contribute nothing, neither to the sum nor to the count.
    pub ignore_index: i64,
    /// ε in `[0, 1]`: the target distribution is `(1 − ε)·one_hot + ε / classes`.
    pub label_smoothing: f64,
}

impl Default for CrossEntropyLoss {
    fn default() -> Self {
        Self { ignore_index: IGNORE_INDEX, label_smoothing: 0.0 }
    }
}

fn loss_err(loss: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidInput { op: loss, reason: reason.into() }
}

impl CrossEntropyLoss {
    /// The mean loss (a scalar of the logits' dtype) of `logits` `(…, classes)` against one
    /// target per row. A batch whose targets are all ignored has loss 0 and no gradient,
    /// where PyTorch returns NaN (0/0), which would poison a training run.
    ///
    /// # Errors
    /// A smoothing outside `[0, 1]`, a target count that is not the number of rows, or a
    /// target outside `0..classes` that is not the ignore index.
    pub fn forward(&self, logits: &Tensor, targets: &[i64]) -> Result<Tensor> {
        let (rows, classes) = self.check(logits, targets)?;
        let logits = logits.reshape((rows, classes))?;
        // The target distribution q (rows × classes), zero on ignored rows, divided by the
        // number of rows that count: the loss is then −Σ q ⊙ log_softmax(logits).
        let (q, counted) = self.target_distribution(targets, classes);
        if counted == 0 {
            return Ok(Tensor::zeros((), logits.dtype(), logits.device())?);
        }
        let q: Vec<f64> = q.iter().map(|v| v / counted as f64).collect();
        let q = Tensor::from_vec(q, (rows, classes), logits.device())?.to_dtype(logits.dtype())?;
        Ok(log_softmax(&logits)?.mul(&q)?.sum_all()?.neg()?)
    }

    /// The same loss in float64 on the CPU, row by row from the definition.
    ///
    /// # Errors
    /// As [`Self::forward`].
    pub fn forward_reference(&self, logits: &Tensor, targets: &[i64]) -> Result<Tensor> {
        let (rows, classes) = self.check(logits, targets)?;
        let x = crate::to_f64_cpu(logits)?.reshape((rows, classes))?.to_vec2::<f64>()?;
        let (q, counted) = self.target_distribution(targets, classes);
        let mut total = 0.0;
        for (r, row) in x.iter().enumerate() {
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let log_sum = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
            total -= row.iter().enumerate().map(|(c, v)| q[r * classes + c] * (v - log_sum)).sum::<f64>();
        }
        let loss = if counted == 0 { 0.0 } else { total / counted as f64 };
        Ok(Tensor::new(loss, &Device::Cpu)?)
    }

    /// Rows and classes of `logits`, after checking the targets and the smoothing.
    fn check(&self, logits: &Tensor, targets: &[i64]) -> Result<(usize, usize)> {
        const NAME: &str = "cross_entropy";
        if !(0.0..=1.0).contains(&self.label_smoothing) {
            return Err(loss_err(NAME, format!("label_smoothing must lie in [0, 1], not {}", self.label_smoothing)));
        }
        let classes = logits.dims().last().copied().unwrap_or(0);
        if logits.rank() < 2 || classes == 0 {
            return Err(loss_err(NAME, format!("logits must be (…, classes) with classes > 0, not {:?}", logits.dims())));
        }
        let rows = logits.elem_count() / classes;
        if targets.len() != rows {
            return Err(loss_err(NAME, format!("{} targets for {rows} rows of logits", targets.len())));
        }
        if let Some((i, t)) = targets.iter().enumerate().find(|(_, &t)| t != self.ignore_index && !(0..classes as i64).contains(&t)) {
            return Err(loss_err(NAME, format!("target {i} is {t}, outside 0..{classes} and not the ignore index {}", self.ignore_index)));
        }
        Ok((rows, classes))
    }

    /// `q` row-major (rows × classes) and the number of rows not ignored.
    fn target_distribution(&self, targets: &[i64], classes: usize) -> (Vec<f64>, usize) {
        let eps = self.label_smoothing;
        let mut q = vec![0.0; targets.len() * classes];
        let mut counted = 0;
        for (r, &t) in targets.iter().enumerate() {
            if t == self.ignore_index {
                continue;
            }
            counted += 1;
            let row = &mut q[r * classes..(r + 1) * classes];
            row.iter_mut().for_each(|v| *v = eps / classes as f64);
            row[t as usize] += 1.0 - eps;
        }
        (q, counted)
    }
}

/// `log_softmax` over the last dimension, `x − max − ln Σ e^(x − max)`. The maximum is
/// detached: the shift cancels out of the value, so its gradient would be zero anyway.
pub fn log_softmax(xs: &Tensor) -> candle_core::Result<Tensor> {
    let shifted = xs.broadcast_sub(&xs.max_keepdim(D::Minus1)?.detach())?;
    shifted.broadcast_sub(&shifted.exp()?.sum_keepdim(D::Minus1)?.log()?)
}

/// Mean squared error of `predicted` against `target` (same shape), a scalar.
///
/// # Errors
/// Shapes that differ, or an empty input.
pub fn mse_loss(predicted: &Tensor, target: &Tensor) -> Result<Tensor> {
    same_shape("mse", predicted, target)?;
    Ok(predicted.sub(&target.to_dtype(predicted.dtype())?)?.sqr()?.mean_all()?)
}

/// [`mse_loss`] in float64 on the CPU, element by element.
///
/// # Errors
/// As [`mse_loss`].
pub fn mse_loss_reference(predicted: &Tensor, target: &Tensor) -> Result<Tensor> {
    same_shape("mse", predicted, target)?;
    let (p, t) = (flat_f64(predicted)?, flat_f64(target)?);
    let sum: f64 = p.iter().zip(&t).map(|(a, b)| (a - b) * (a - b)).sum();
    Ok(Tensor::new(sum / p.len() as f64, &Device::Cpu)?)
}

/// Binary cross-entropy of `logits` against probabilities `target` in `[0, 1]` (same shape),
/// averaged over elements (PyTorch's `BCEWithLogitsLoss`), the multi-label loss.
///
/// # Errors
/// Shapes that differ, or an empty input.
pub fn bce_with_logits(logits: &Tensor, target: &Tensor) -> Result<Tensor> {
    same_shape("bce_with_logits", logits, target)?;
    let y = target.to_dtype(logits.dtype())?;
    // max(x, 0) − x·y + ln(1 + e^−|x|): the exponent is never positive.
    let soft = logits.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?;
    Ok(logits.relu()?.sub(&logits.mul(&y)?)?.add(&soft)?.mean_all()?)
}

/// [`bce_with_logits`] in float64 on the CPU, element by element from
/// `−[y·ln σ(x) + (1 − y)·ln(1 − σ(x))]`, with `ln σ(x) = −ln(1 + e^−x)` evaluated on the side
/// where the exponential cannot overflow.
///
/// # Errors
/// As [`bce_with_logits`].
pub fn bce_with_logits_reference(logits: &Tensor, target: &Tensor) -> Result<Tensor> {
    same_shape("bce_with_logits", logits, target)?;
    let (x, y) = (flat_f64(logits)?, flat_f64(target)?);
    // ln σ(x) and ln(1 − σ(x)) = ln σ(−x).
    let log_sigmoid = |x: f64| if x >= 0.0 { -(-x).exp().ln_1p() } else { x - x.exp().ln_1p() };
    let sum: f64 = x.iter().zip(&y).map(|(&x, &y)| -(y * log_sigmoid(x) + (1.0 - y) * log_sigmoid(-x))).sum();
    Ok(Tensor::new(sum / x.len() as f64, &Device::Cpu)?)
}

fn same_shape(loss: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.dims() != b.dims() {
        return Err(loss_err(loss, format!("predictions {:?} and targets {:?} differ in shape", a.dims(), b.dims())));
    }
    if a.elem_count() == 0 {
        return Err(loss_err(loss, "empty input"));
    }
    Ok(())
}

fn flat_f64(t: &Tensor) -> Result<Vec<f64>> {
    Ok(crate::to_f64_cpu(t)?.flatten_all()?.to_vec1::<f64>()?)
}
