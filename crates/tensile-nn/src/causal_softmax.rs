//! Scaling, causal masking and softmax of attention scores as one CPU operation with its own
//! backward pass, for f32, bf16 and f16 CPU tensors (computed in f32, written in the input's
//! dtype; see [`crate::training_kernels`]).
//!
//! Composed, the three take four passes over the `(…, s, t)` score matrix (scale, add a mask
//! built for every call, then softmax's max, exp and normalise) and a mask allocation. Fused,
//! one pass reads each row's visible keys once for the maximum and once for the exponentials,
//! and never touches the masked ones beyond writing their zeros: at s = 512 half of the matrix.
//! The exponential is a polynomial the compiler vectorises (`exp_poly`), where `f32::exp` is a
//! library call per element.

use crate::training_kernels::{contiguous, dispatch, par_rows, Elem};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor, D};

/// `softmax(scale · x + causal mask)` over the last dimension of `x: (…, s, t)`: query row
/// `i` (counted within its `s` rows) sees keys `0..=offset + i`, with `offset = t − s` (the
/// keys a KV cache holds before the new queries). Masked probabilities are exactly 0.
#[derive(Debug, Clone, Copy)]
pub struct ScaledCausalSoftmax {
    /// The factor applied to the scores before the softmax (`1/√d`).
    pub scale: f32,
}

impl ScaledCausalSoftmax {
    /// The keys row `row` (of the flattened `(…·s, t)` matrix) sees.
    fn visible(row: usize, s: usize, t: usize) -> usize {
        (t - s + row % s + 1).min(t)
    }

    /// `softmax(scale · x + causal mask)` of `x: (…, s, t)` with `t ≥ s`.
    pub fn apply(x: &Tensor, scale: f64) -> Result<Tensor> {
        let (s, t) = (x.dim(D::Minus2)?, x.dim(D::Minus1)?);
        if t < s {
            candle_core::bail!("causal softmax: {s} queries but only {t} keys");
        }
        x.contiguous()?.apply_op1(Self { scale: scale as f32 })
    }
}

/// `e^x` within 2.5e-7 relative for x in [−87, 88], and `e^−87` (1.6e-38) below, `e^88` above:
/// Cody–Waite range reduction to
/// `x = n·ln 2 + r`, a degree-6 polynomial for `e^r`, and `2^n` built in the exponent bits.
/// Branch-free, so a loop over a row compiles to vector instructions.
#[inline(always)]
pub(crate) fn exp_poly(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5·2²³ rounds to the nearest integer in two additions, where
    // `round()` is a library call on targets without SSE4.1 and stops the loop vectorising.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

impl ScaledCausalSoftmax {
    fn forward<T: Elem>(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous::<T>(storage, layout, "causal softmax")?;
        let dims = layout.dims();
        // The row maximum of `scale · x` is `scale · max(x)` only for a positive scale (not NaN).
        if dims.len() < 2 || dims[dims.len() - 1] < dims[dims.len() - 2] || self.scale.is_nan() || self.scale <= 0.0 {
            candle_core::bail!("causal softmax: scores of shape {dims:?} (need …, s, t with t ≥ s) at scale {}", self.scale);
        }
        let (s, t) = (dims[dims.len() - 2].max(1), dims[dims.len() - 1].max(1));
        let scale = self.scale;
        let mut out = vec![T::zero(); x.len()];
        par_rows(&mut out, t, x.len(), |first, part| {
            let (mut xs, mut ps) = (Vec::new(), Vec::new());
            for (i, row) in part.chunks_mut(t).enumerate() {
                let r = first + i;
                let n = (Self::visible(r, s, t) + usize::from(crate::fault::is(crate::fault::Fault::CausalSoftmaxBoundary))).min(t);
                let xr = T::read(&x[r * t..r * t + n], &mut xs);
                let max = xr.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v)) * scale;
                T::write(&mut row[..n], &mut ps, |pr| {
                    pr.iter_mut().zip(xr).for_each(|(p, v)| *p = exp_poly(v * scale - max));
                    let inv = 1.0 / pr.iter().sum::<f32>();
                    pr.iter_mut().for_each(|p| *p *= inv);
                });
            }
        });
        Ok((T::to_cpu_storage_owned(out), layout.shape().clone()))
    }
}

impl CustomOp1 for ScaledCausalSoftmax {
    fn name(&self) -> &'static str {
        "tensile-scaled-causal-softmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        dispatch!(storage.dtype(), "causal softmax", T => self.forward::<T>(storage, layout))
    }

    /// `dx = scale · p ⊙ (g − Σ_j g_j p_j)` per row, from the output `p` alone; the masked
    /// entries have `p = 0` and get no gradient.
    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        crate::training_kernels::softmax_backward(res, grad_res, self.scale).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training_kernels::testing::*;
    use candle_core::{DType, Device, Var};

    /// The composition the fused op replaces: scale, add a −∞ causal mask, softmax.
    fn composed(x: &Tensor, scale: f64) -> Tensor {
        let (s, t) = (x.dim(D::Minus2).unwrap(), x.dim(D::Minus1).unwrap());
        let mask: Vec<f32> = (0..s).flat_map(|i| (0..t).map(move |j| if j > t - s + i { f32::NEG_INFINITY } else { 0.0 })).collect();
        let z = (x * scale).unwrap().broadcast_add(&Tensor::from_vec(mask, (s, t), x.device()).unwrap()).unwrap();
        let e = z.broadcast_sub(&z.max_keepdim(D::Minus1).unwrap().detach()).unwrap().exp().unwrap();
        e.broadcast_div(&e.sum_keepdim(D::Minus1).unwrap()).unwrap()
    }

    /// The same composition in float64, the twin.
    fn composed64(x: &Tensor, scale: f64) -> Tensor {
        let (s, t) = (x.dim(D::Minus2).unwrap(), x.dim(D::Minus1).unwrap());
        let mask: Vec<f64> = (0..s).flat_map(|i| (0..t).map(move |j| if j > t - s + i { f64::NEG_INFINITY } else { 0.0 })).collect();
        let z = (x * scale).unwrap().broadcast_add(&Tensor::from_vec(mask, (s, t), x.device()).unwrap()).unwrap();
        let e = z.broadcast_sub(&z.max_keepdim(D::Minus1).unwrap().detach()).unwrap().exp().unwrap();
        e.broadcast_div(&e.sum_keepdim(D::Minus1).unwrap()).unwrap()
    }

    /// Two queries over three keys: query 0 sees keys 0 and 1, query 1 all three. At scale
    /// 0.5 the rows are softmax(1, 2) = (0.2689414, 0.7310586) and softmax(0, 1, 2) =
    /// (0.0900306, 0.2447285, 0.6652410); the masked 100 is never read.
    #[test]
    fn gives_hand_computed_values_in_every_dtype() {
        for dtype in DTYPES {
            let x = Tensor::new(&[[[2f32, 4., 100.], [0., 2., 4.]]], &Device::Cpu).unwrap().to_dtype(dtype).unwrap();
            let p = ScaledCausalSoftmax::apply(&x, 0.5).unwrap();
            assert_golden(&format!("{dtype:?}"), &p, &[0.268_941_4, 0.731_058_6, 0.0, 0.090_030_6, 0.244_728_5, 0.665_241_0], dtype);
            assert_eq!(p.flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap()[2], 0.0, "masked: exactly 0");
        }
    }

    /// Values and gradients against the float64 twin in each dtype; the last shape takes the
    /// threaded path, with rows of 99 keys (a tail of 3 past the last chunk of eight).
    #[test]
    fn matches_a_float64_twin_in_every_dtype() {
        for dtype in DTYPES {
            for (heads, s, t) in [(2, 5, 5), (3, 4, 9), (4, 96, 99)] {
                let what = format!("{dtype:?} {heads}×{s}×{t}");
                let (x, up) = (randn(7, "x", (1, heads, s, t), 3.0, dtype), randn(8, "g", (1, heads, s, t), 1.0, dtype));
                let x64 = twin(&x);
                let (fused, reference) = (ScaledCausalSoftmax::apply(x.as_tensor(), 0.7).unwrap(), composed64(x64.as_tensor(), 0.7));
                assert_close(&what, &fused, &reference, tolerance(dtype));
                assert_grads(&what, &fused, &[&x], &reference, &[&x64], up.as_tensor());
            }
        }
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    #[test]
    fn the_polynomial_exponential_is_within_two_ulp() {
        let mut worst = 0f64;
        for i in -87_000..=88_000 {
            let x = i as f32 / 1000.0;
            let (got, want) = (f64::from(exp_poly(x)), f64::from(x).exp());
            worst = worst.max((got - want).abs() / want);
        }
        assert!(worst < 2.5e-7, "worst relative error {worst:e}");
        assert_eq!(exp_poly(0.0), 1.0);
        assert!(exp_poly(-1e4) < 1e-37 && exp_poly(f32::NEG_INFINITY) < 1e-37, "far below: next to 0, never NaN");
    }

    /// Values and both gradient paths against the composition, with as many keys as queries
    /// and with a cache's worth more keys (t > s), on shapes that take the threaded path.
    #[test]
    fn matches_the_composition_in_value_and_gradient() {
        for (heads, s, t) in [(2, 5, 5), (3, 4, 9), (4, 128, 128)] {
            let x = Var::from_tensor(&crate::init::randn(7, "x", (1, heads, s, t), DType::F32, &Device::Cpu).unwrap()).unwrap();
            let up = crate::init::randn(8, "g", (1, heads, s, t), DType::F32, &Device::Cpu).unwrap();
            let fused = ScaledCausalSoftmax::apply(x.as_tensor(), 0.7).unwrap();
            let reference = composed(x.as_tensor(), 0.7);
            assert!(max_diff(&fused, &reference) < 1e-6, "{heads}×{s}×{t}: {}", max_diff(&fused, &reference));
            // Masked entries are exactly zero; the last query row sees every key.
            let p = fused.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert_eq!(p[t - s + 1], if s > 1 { 0.0 } else { p[t - s + 1] });
            let gf = (&fused * &up).unwrap().sum_all().unwrap().backward().unwrap();
            let gc = (&reference * &up).unwrap().sum_all().unwrap().backward().unwrap();
            let (a, b) = (gf.get(x.as_tensor()).unwrap(), gc.get(x.as_tensor()).unwrap());
            assert!(max_diff(a, b) < 1e-5, "{heads}×{s}×{t} gradient: {}", max_diff(a, b));
        }
        assert!(ScaledCausalSoftmax::apply(&Tensor::zeros((1, 4, 3), DType::F32, &Device::Cpu).unwrap(), 1.0).is_err(), "fewer keys than queries");
    }
}
