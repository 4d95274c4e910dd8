//! Validation loss, the FLOP count per token, and the in-process matmul rate the MFU is
//! measured against.

use super::Task;
use crate::error::Result;
use crate::loader::{Dataset, Loader};
use crate::model::Net;
use crate::objective::{stack, token_loss, Example};
use candle_core::{DType, Device, Tensor};
use std::time::Instant;

/// The mean token loss of `net` over the first `max_batches` batches (0: all) of `data`, in
/// file order, without dropout. Masked-LM masking is drawn from a fixed seed, so two
/// evaluations of the same weights agree exactly.
pub fn validation_loss(net: &Net, data: std::sync::Arc<Dataset>, task: &Task, batch_size: usize, max_batches: usize, device: &Device) -> Result<f64> {
    let mut loader = Loader::new(data, batch_size, false, 0);
    let batches = if max_batches == 0 { loader.steps_per_epoch() } else { max_batches.min(loader.steps_per_epoch()) };
    let (mut sum, mut count) = (0.0, 0usize);
    for b in 0..batches {
        let Some(batch) = loader.next_batch() else { break };
        let examples: Vec<Example> = batch.chunks.iter().enumerate().map(|(i, c)| task.example(c, u64::MAX - b as u64, i)).collect();
        let counted: usize = examples.iter().map(Example::counted).sum();
        if counted == 0 {
            continue;
        }
        let (ids, targets) = stack(&examples, device)?;
        // Normalised by 1, the loss is the sum over tokens; the mean comes at the end.
        let l = token_loss(&net.logits(&ids)?, &targets, 1)?;
        sum += f64::from(l.to_dtype(DType::F32)?.to_scalar::<f32>()?);
        count += counted;
    }
    Ok(if count == 0 { f64::NAN } else { sum / count as f64 })
}

/// Training FLOPs per input token: `6N` for the weights' forward and backward, plus
/// `12·L·h·T` for attention's scores and weighted sum over a context of `T` tokens (the
/// PaLM appendix's count, which the anchors use too).
pub fn flops_per_token(parameters: usize, layers: usize, hidden: usize, context: usize) -> f64 {
    6.0 * parameters as f64 + 12.0 * (layers * hidden * context) as f64
}

/// The f32 matmul rate of `device`, in FLOP/s: the best of a few `(n×n)·(n×n)` products at
/// n = 512, a size that reaches the machine's sustained rate on a CPU within milliseconds.
pub fn matmul_rate(device: &Device) -> Result<f64> {
    let n = 512;
    let a = Tensor::ones((n, n), DType::F32, device)?;
    let b = Tensor::ones((n, n), DType::F32, device)?;
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = Instant::now();
        let c = a.matmul(&b)?;
        device.synchronize()?;
        drop(c);
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(2.0 * (n * n * n) as f64 / best.max(1e-9))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flop_counts_follow_the_formula_and_the_rate_is_positive() {
        assert_eq!(flops_per_token(1000, 2, 64, 128), 6000.0 + 12.0 * 2.0 * 64.0 * 128.0);
        let r = matmul_rate(&Device::Cpu).unwrap();
        assert!(r.is_finite() && r > 1e6, "{r}");
    }
}
