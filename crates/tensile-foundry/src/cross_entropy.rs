//! Token cross-entropy as one fused CPU operation with its own backward pass.
//!
//! Composed from candle operations, the loss over `(rows, vocab)` logits takes about ten
//! passes over a tensor the size of the logits forward and as many backward, each one
//! allocated: on a vocabulary of 8192 that is the largest tensor of the step. Fused, the
//! forward reads the logits once per row (maximum, then `log Σ exp`) and the backward writes
//! the gradient `w_r (softmax(x_r) − onehot(t_r))` in one pass, reusing each row's maximum and
//! log-sum-exp saved by the forward.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use std::sync::Mutex;
use tensile_nn::training::par_rows;

/// `w_r · (log Σ_j exp(x_rj) − x_{r,t_r})` per row `r` of f32 logits; rows of weight 0 (ignored
/// targets) contribute 0 and get no gradient.
pub(crate) struct TokenCrossEntropy {
    index: Vec<u32>,
    weight: Vec<f32>,
    vocab: usize,
    /// Each row's maximum and `log Σ exp(x − max)`, from the forward, for the backward.
    saved: Mutex<Vec<(f32, f32)>>,
}

impl TokenCrossEntropy {
    pub(crate) fn new(index: Vec<u32>, weight: Vec<f32>, vocab: usize) -> Self {
        Self { index, weight, vocab, saved: Mutex::new(Vec::new()) }
    }
}

impl CustomOp1 for TokenCrossEntropy {
    fn name(&self) -> &'static str {
        "token-cross-entropy"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let Some((start, end)) = layout.contiguous_offsets() else { candle_core::bail!("token-cross-entropy needs contiguous logits") };
        let x = &storage.as_slice::<f32>()?[start..end];
        let (v, rows) = (self.vocab, self.index.len());
        if x.len() != rows * v {
            candle_core::bail!("token-cross-entropy: {} logits for {rows} rows of {v}", x.len());
        }
        let mut stats = vec![(0f32, 0f32); rows];
        par_rows(&mut stats, 1, rows * v, |first, part| {
            for (i, s) in part.iter_mut().enumerate() {
                let row = &x[(first + i) * v..(first + i + 1) * v];
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let sum: f32 = row.iter().map(|&z| (z - max).exp()).sum();
                *s = (max, sum.ln());
            }
        });
        let loss: Vec<f32> = (0..rows)
            .map(|r| {
                let w = self.weight[r];
                if w == 0.0 {
                    return 0.0;
                }
                let (max, lse) = stats[r];
                w * (lse - (x[r * v + self.index[r] as usize] - max))
            })
            .collect();
        *self.saved.lock().unwrap_or_else(|e| e.into_inner()) = stats;
        Ok((CpuStorage::F32(loss), Shape::from(rows)))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let x = arg.flatten_all()?.to_vec1::<f32>()?;
        let g = grad_res.to_vec1::<f32>()?;
        let stats = self.saved.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let (v, rows) = (self.vocab, self.index.len());
        if stats.len() != rows {
            candle_core::bail!("token-cross-entropy: backward without its forward");
        }
        let mut grad = vec![0f32; rows * v];
        par_rows(&mut grad, v, rows * v, |first, part| {
            for (i, out) in part.chunks_mut(v).enumerate() {
                let r = first + i;
                let scale = g[r] * self.weight[r];
                if scale == 0.0 {
                    continue;
                }
                let (max, lse) = stats[r];
                let shift = max + lse;
                for (o, &z) in out.iter_mut().zip(&x[r * v..(r + 1) * v]) {
                    *o = scale * (z - shift).exp();
                }
                out[self.index[r] as usize] -= scale;
            }
        });
        Ok(Some(Tensor::from_vec(grad, arg.shape(), arg.device())?))
    }
}
