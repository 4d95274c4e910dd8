//! Training mode: a closure scope (PyTorch's `model.train()` plus autograd-safe kernels) in
//! which every block's fast forward can be differentiated, and dropout is on.
//!
//! candle's fused kernels for softmax, RMSNorm, LayerNorm and RoPE have no backward pass:
//! a gradient taken through them comes back silently missing. Inside [`scope`] the blocks
//! call the same math written as compositions of differentiable operations instead, in the
//! module's own dtype and on its own device (the float64 twin would also differentiate, but
//! at a fraction of the speed). Outside a scope nothing changes: inference keeps the fused
//! kernels and never applies dropout.
//!
//! On f32, bf16 and f16 CPU tensors softmax, RMSNorm and LayerNorm are single operations with
//! their own backward passes (one pass each way instead of a dozen), which compute in f32 and
//! return the input's dtype; the compositions serve other dtypes and devices, and the tests
//! hold the two equal. RMSNorm and LayerNorm take their kernels outside a scope too, where they
//! are also the faster forward.
//!
//! Dropout masks come from a ChaCha stream seeded by `(seed, key, call)`, where `key` is
//! chosen by the caller (the trainer passes its step and micro-batch) and `call` counts the
//! dropout sites visited in the scope. A forward is therefore a pure function of its inputs
//! and `(seed, key)`: no generator state needs saving to replay a step bit for bit.
//!
//! ```
//! use candle_core::{Device, Tensor, Var};
//! use tensile_nn::training::{self, TrainingMode};
//!
//! # fn main() -> candle_core::Result<()> {
//! let x = Var::new(&[[1f32, 2.0, 3.0]], &Device::Cpu)?;
//! let (y, grads) = training::scope(&TrainingMode::default(), 0, || -> candle_core::Result<_> {
//!     let y = training::softmax_last_dim(x.as_tensor())?;
//!     let grads = y.narrow(1, 2, 1)?.sum_all()?.backward()?;
//!     Ok((y, grads))
//! })?;
//! // d softmax_3 / d x_3 = p_3 (1 − p_3): the gradient exists, and has the textbook value.
//! let p = y.to_vec2::<f32>()?[0][2];
//! let g = grads.get(x.as_tensor()).expect("a gradient").to_vec2::<f32>()?[0][2];
//! assert!((g - p * (1.0 - p)).abs() < 1e-6);
//! # Ok(()) }
//! ```

pub use crate::training_kernels::par_rows;
use candle_core::{DType, Result, Tensor, D};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;

/// What differs in training: dropout probabilities and the seed of their masks.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct TrainingMode {
    /// Dropout on hidden states: embeddings and each residual branch's output.
    pub dropout: f64,
    /// Dropout on attention probabilities.
    pub attention_dropout: f64,
    /// Seed of the dropout masks.
    pub seed: u64,
}

/// Where a dropout is applied, which picks its probability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropoutSite {
    /// Hidden states ([`TrainingMode::dropout`]).
    Hidden,
    /// Attention probabilities ([`TrainingMode::attention_dropout`]).
    Attention,
}

struct Active {
    mode: TrainingMode,
    key: u64,
    calls: u64,
}

thread_local! {
    static ACTIVE: RefCell<Option<Active>> = const { RefCell::new(None) };
}

/// Runs `f` in training mode with dropout masks keyed by `key`; the previous mode (training
/// or not) is restored afterwards, also when `f` panics.
pub fn scope<R>(mode: &TrainingMode, key: u64, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Active>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            ACTIVE.with(|a| *a.borrow_mut() = previous);
        }
    }
    let previous = ACTIVE.with(|a| a.borrow_mut().replace(Active { mode: *mode, key, calls: 0 }));
    let _restore = Restore(previous);
    f()
}

/// Whether the calling thread is inside a training [`scope`].
pub fn is_active() -> bool {
    ACTIVE.with(|a| a.borrow().is_some())
}

/// Whether [`dropout`] at `site` would change anything: a training scope with a positive
/// probability there. Fused kernels that have no dropout step inside ask this first.
pub(crate) fn dropout_active(site: DropoutSite) -> bool {
    ACTIVE.with(|a| {
        a.borrow().as_ref().is_some_and(|a| match site {
            DropoutSite::Hidden => a.mode.dropout > 0.0,
            DropoutSite::Attention => a.mode.attention_dropout > 0.0,
        })
    })
}

/// Inverted dropout at `site`: inside a training scope with a positive probability `p`, each
/// element is zeroed with probability `p` and the rest scaled by `1 / (1 − p)`, so the
/// expectation is unchanged; otherwise `x` itself.
pub fn dropout(x: &Tensor, site: DropoutSite) -> Result<Tensor> {
    let draw = ACTIVE.with(|a| {
        let mut a = a.borrow_mut();
        let a = a.as_mut()?;
        let p = match site {
            DropoutSite::Hidden => a.mode.dropout,
            DropoutSite::Attention => a.mode.attention_dropout,
        };
        if p <= 0.0 {
            return None;
        }
        a.calls += 1;
        Some((p, a.mode.seed, a.key, a.calls))
    });
    let Some((p, seed, key, call)) = draw else { return Ok(x.clone()) };
    if p >= 1.0 {
        return x.zeros_like();
    }
    let mut rng = crate::init::rng_for(seed ^ key.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ call.rotate_left(32), "dropout");
    let keep = (1.0 / (1.0 - p)) as f32;
    let mask: Vec<f32> = (0..x.elem_count()).map(|_| if rng.random::<f64>() < p { 0.0 } else { keep }).collect();
    x * Tensor::from_vec(mask, x.shape(), &candle_core::Device::Cpu)?.to_dtype(x.dtype())?.to_device(x.device())?
}

/// Softmax over the last dimension: candle's fused kernel, or in a training scope
/// `exp(x − max) / Σ exp(x − max)`, whose shift by the (detached) row maximum keeps `exp`
/// finite and changes neither the value nor the gradient.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if !is_active() {
        return candle_nn::ops::softmax_last_dim(x);
    }
    if crate::training_kernels::fusable(x) {
        return x.contiguous()?.apply_op1(crate::training_kernels::Softmax);
    }
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

/// `x / sqrt(mean(x²) + eps) · weight` over the last dimension; statistics in f32 for
/// half-precision inputs, as the fused kernel and PyTorch compute them.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    // On CPU tensors the fused kernel is also the faster forward (row-parallel on the running
    // rayon pool, vectorised sums), in inference as in training. It reads a weight of another
    // dtype than `x` as f32 and returns `x`'s dtype.
    if crate::training_kernels::fusable(x) && crate::training_kernels::fusable(weight) {
        return x.contiguous()?.apply_op2(&weight.contiguous()?, crate::training_kernels::RmsNorm::new(eps));
    }
    if !is_active() {
        return candle_nn::ops::rms_norm(&x.contiguous()?, weight, eps as f32);
    }
    let dtype = x.dtype();
    let x32 = x.to_dtype(DType::F32)?;
    let inv_rms = (x32.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?.recip()?;
    x32.broadcast_mul(&inv_rms)?.to_dtype(dtype)?.broadcast_mul(weight)
}

/// `(x − mean) / sqrt(var + eps) · weight + bias` over the last dimension, with the biased
/// variance; statistics in f32 for half-precision inputs.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, eps: f64) -> Result<Tensor> {
    // As for RMSNorm: on CPU tensors the fused kernel, in inference as in training, with its
    // two-pass variance (candle's fused LayerNorm takes `E[x²] − mean²`).
    let fusable = crate::training_kernels::fusable;
    if fusable(x) && fusable(weight) && bias.is_none_or(fusable) {
        return crate::layer_norm_kernel::LayerNorm::apply(x, weight, bias, eps);
    }
    if !is_active() {
        let zeros;
        let bias = match bias {
            Some(b) => b,
            None => {
                // The fused kernel always adds a bias; zeros make it a no-op.
                zeros = weight.zeros_like()?;
                &zeros
            }
        };
        return candle_nn::ops::layer_norm(&x.contiguous()?, weight, bias, eps as f32);
    }
    let dtype = x.dtype();
    let x32 = x.to_dtype(DType::F32)?;
    let centred = x32.broadcast_sub(&x32.mean_keepdim(D::Minus1)?)?;
    let inv_std = (centred.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?.recip()?;
    let y = centred.broadcast_mul(&inv_std)?.to_dtype(dtype)?.broadcast_mul(weight)?;
    match bias {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}

/// Rotary embedding with the halves convention (`x·cos + rotate_half(x)·sin`) for tables
/// `cos, sin: (seq, head_dim / 2)`: candle's fused kernel, or in a training scope the
/// rotation written out on the two halves.
///
/// # Shapes
/// `x: (batch, heads, seq, head_dim) → (batch, heads, seq, head_dim)`
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    if !is_active() {
        return candle_nn::rotary_emb::rope(&x.contiguous()?, cos, sin);
    }
    let half = x.dim(D::Minus1)? / 2;
    let (x1, x2) = (x.narrow(D::Minus1, 0, half)?, x.narrow(D::Minus1, half, half)?);
    let first = (x1.broadcast_mul(cos)? - x2.broadcast_mul(sin)?)?;
    let second = (x1.broadcast_mul(sin)? + x2.broadcast_mul(cos)?)?;
    Tensor::cat(&[&first, &second], D::Minus1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    fn input() -> Tensor {
        crate::init::randn(7, "x", (2, 3, 5, 8), DType::F32, &Device::Cpu).unwrap()
    }

    #[test]
    fn composed_paths_equal_the_fused_kernels() {
        let x = input();
        let w = crate::init::randn(8, "w", 8, DType::F32, &Device::Cpu).unwrap();
        let b = crate::init::randn(9, "b", 8, DType::F32, &Device::Cpu).unwrap();
        let cos = crate::init::randn(1, "c", (5, 4), DType::F32, &Device::Cpu).unwrap();
        let sin = crate::init::randn(2, "s", (5, 4), DType::F32, &Device::Cpu).unwrap();
        let run = || {
            [
                softmax_last_dim(&x).unwrap(),
                rms_norm(&x, &w, 1e-6).unwrap(),
                layer_norm(&x, &w, Some(&b), 1e-5).unwrap(),
                layer_norm(&x, &w, None, 1e-5).unwrap(),
                rope(&x, &cos, &sin).unwrap(),
            ]
        };
        let fused = run();
        assert!(!is_active());
        let composed = scope(&TrainingMode::default(), 0, run);
        for (i, (f, c)) in fused.iter().zip(&composed).enumerate() {
            assert!(max_diff(f, c) < 1e-5, "op {i}: {}", max_diff(f, c));
        }
        // LayerNorm without a bias is LayerNorm with a zero bias, not with the weight as bias.
        assert!(max_diff(&fused[2], &fused[3]) > 1e-3);
    }

    #[test]
    fn every_composed_op_has_a_gradient() {
        let x = Var::from_tensor(&input()).unwrap();
        let w = Var::from_tensor(&Tensor::ones(8, DType::F32, &Device::Cpu).unwrap()).unwrap();
        let cos = Tensor::ones((5, 4), DType::F32, &Device::Cpu).unwrap();
        let sin = Tensor::zeros((5, 4), DType::F32, &Device::Cpu).unwrap();
        scope(&TrainingMode::default(), 0, || {
            for (i, y) in [
                softmax_last_dim(&x).unwrap().sqr().unwrap(),
                rms_norm(&x, &w, 1e-6).unwrap(),
                layer_norm(&x, &w, None, 1e-5).unwrap().sqr().unwrap(),
                rope(&x, &cos, &sin).unwrap(),
            ]
            .iter()
            .enumerate()
            {
                let g = y.sum_all().unwrap().backward().unwrap();
                let gx = g.get(&x).unwrap_or_else(|| panic!("op {i}: no gradient for x"));
                assert!(gx.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() > 0.0, "op {i}: a zero gradient");
            }
            // RMSNorm's weight gets d/dw Σ x·inv_rms·w = Σ over rows of x·inv_rms.
            let g = rms_norm(&x, &w, 1e-6).unwrap().sum_all().unwrap().backward().unwrap();
            assert!(g.get(&w).is_some());
        });
    }

    #[test]
    fn dropout_is_off_outside_a_scope_and_seeded_inside() {
        let x = Tensor::ones((64, 64), DType::F32, &Device::Cpu).unwrap();
        assert_eq!(max_diff(&dropout(&x, DropoutSite::Hidden).unwrap(), &x), 0.0);
        let mode = TrainingMode { dropout: 0.25, attention_dropout: 0.0, seed: 3 };
        let draw = |key| scope(&mode, key, || (dropout(&x, DropoutSite::Hidden).unwrap(), dropout(&x, DropoutSite::Hidden).unwrap()));
        let (a1, a2) = draw(1);
        let (b1, _) = draw(1);
        let (c1, _) = draw(2);
        assert_eq!(max_diff(&a1, &b1), 0.0, "the same key replays the same masks");
        assert!(max_diff(&a1, &a2) > 0.0, "two sites in one forward draw different masks");
        assert!(max_diff(&a1, &c1) > 0.0, "another key draws other masks");
        let v = a1.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let zeros = v.iter().filter(|&&e| e == 0.0).count() as f64 / v.len() as f64;
        assert!((zeros - 0.25).abs() < 0.03, "dropped share {zeros}");
        assert!(v.iter().all(|&e| e == 0.0 || (e - 1.0 / 0.75).abs() < 1e-6), "kept values are scaled by 1/(1-p)");
        // The attention site has its own probability, here zero: the identity.
        let same = scope(&mode, 1, || dropout(&x, DropoutSite::Attention).unwrap());
        assert_eq!(max_diff(&same, &x), 0.0);
        let all = scope(&TrainingMode { dropout: 1.0, ..mode }, 1, || dropout(&x, DropoutSite::Hidden).unwrap());
        assert_eq!(all.sum_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
    }

    #[test]
    fn a_scope_is_left_on_panic_and_nests() {
        let r = std::panic::catch_unwind(|| scope(&TrainingMode::default(), 0, || panic!("boom")));
        assert!(r.is_err());
        assert!(!is_active(), "the mode was restored after the panic");
        scope(&TrainingMode::default(), 0, || {
            scope(&TrainingMode::default(), 1, || assert!(is_active()));
            assert!(is_active(), "the inner scope restored the outer one");
        });
        assert!(!is_active());
    }
}
