//! SwiGLU's gate, `silu(a) ⊙ b`, as one vectorised CPU operation with its own backward, for
//! f32, bf16 and f16 CPU tensors of one dtype (computed in f32, written in that dtype; see
//! [`crate::training_kernels`]).
//!
//! Composed, the gate takes two passes and an intermediate as large as the MLP's widest
//! activation (`silu(a)`, then the product), with a library `exp` per element. Fused, one
//! pass reads `a` and `b` and writes the product, with the polynomial exponential of
//! [`crate::fast_exp`]; rows run on the rayon pool.

use crate::fast_exp::exp_poly;
use crate::training_kernels::{contiguous, dispatch, fusable, par_rows, Elem};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

/// `σ(a) = 1 / (1 + e^(−a))`.
#[inline(always)]
fn sigmoid(a: f32) -> f32 {
    1.0 / (1.0 + exp_poly(-a))
}

/// Values a task of the pool handles at least.
const CHUNK: usize = 4096;

/// `silu(a) ⊙ b` of two tensors of one shape.
pub(crate) struct SiluMul;

impl SiluMul {
    /// `silu(a) ⊙ b`: this kernel for f32, bf16 or f16 CPU tensors of one shape and one
    /// dtype, candle's ops elsewhere (which refuse two dtypes with an error, as before).
    pub(crate) fn apply(a: &Tensor, b: &Tensor) -> Result<Tensor> {
        if fusable(a) && fusable(b) && a.dtype() == b.dtype() && a.shape() == b.shape() {
            a.contiguous()?.apply_op2(&b.contiguous()?, SiluMul)
        } else {
            a.silu()? * b
        }
    }
}

impl CustomOp2 for SiluMul {
    fn name(&self) -> &'static str {
        "tensile-silu-mul"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        if s1.dtype() != s2.dtype() {
            candle_core::bail!("silu_mul: {:?} and {:?} inputs", s1.dtype(), s2.dtype());
        }
        dispatch!(s1.dtype(), "silu_mul", T => forward::<T>(s1, l1, s2, l2))
    }

    /// `∂/∂a = g·b·σ(a)·(1 + a·(1 − σ(a)))` and `∂/∂b = g·silu(a)`.
    fn bwd(&self, a: &Tensor, b: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (da, db) = dispatch!(a.dtype(), "silu_mul backward", T => backward::<T>(a, b, grad))?;
        Ok((Some(da), Some(db)))
    }
}

fn forward<T: Elem>(s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
    let (a, b) = (contiguous::<T>(s1, l1, "silu_mul")?, contiguous::<T>(s2, l2, "silu_mul")?);
    if a.len() != b.len() {
        candle_core::bail!("silu_mul: {} and {} values", a.len(), b.len());
    }
    let mut out = vec![T::zero(); a.len()];
    par_rows(&mut out, CHUNK, a.len(), |first, part| {
        let (ar, br) = (&a[first * CHUNK..first * CHUNK + part.len()], &b[first * CHUNK..first * CHUNK + part.len()]);
        for ((o, a), b) in part.iter_mut().zip(ar).zip(br) {
            let a = a.to_f32();
            *o = T::from_f32(a * sigmoid(a) * b.to_f32());
        }
    });
    Ok((T::to_cpu_storage_owned(out), l1.shape().clone()))
}

fn backward<T: Elem>(a: &Tensor, b: &Tensor, grad: &Tensor) -> Result<(Tensor, Tensor)> {
    let av = a.contiguous()?.flatten_all()?.to_vec1::<T>()?;
    let bv = b.contiguous()?.flatten_all()?.to_vec1::<T>()?;
    let g = grad.contiguous()?.flatten_all()?.to_vec1::<T>()?;
    if av.len() != g.len() || bv.len() != g.len() {
        candle_core::bail!("silu_mul backward: {}, {} and {} values", av.len(), bv.len(), g.len());
    }
    // Both gradients in one pass: `da` is computed in place of a copy of `g`, `db` beside.
    let mut da = g.clone();
    let mut db = vec![T::zero(); g.len()];
    par_rows(&mut db, CHUNK, g.len(), |first, part| {
        let r = first * CHUNK..first * CHUNK + part.len();
        for ((d, a), g) in part.iter_mut().zip(&av[r.clone()]).zip(&g[r]) {
            let a = a.to_f32();
            *d = T::from_f32(g.to_f32() * a * sigmoid(a));
        }
    });
    let slope = if crate::fault::is(crate::fault::Fault::SiluMulBackward) { 0.0 } else { 1.0 };
    par_rows(&mut da, CHUNK, g.len(), |first, part| {
        let r = first * CHUNK..first * CHUNK + part.len();
        for ((d, a), b) in part.iter_mut().zip(&av[r.clone()]).zip(&bv[r]) {
            let a = a.to_f32();
            let s = sigmoid(a);
            *d = T::from_f32(d.to_f32() * b.to_f32() * s * (1.0 + slope * a * (1.0 - s)));
        }
    });
    Ok((Tensor::from_vec(da, a.shape(), a.device())?, Tensor::from_vec(db, b.shape(), b.device())?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training_kernels::testing::*;
    use candle_core::{DType, Device, Var};

    /// `a·σ(a)·b` with σ(1) = e/(1 + e) = 0.7310586, σ(−1) = 0.2689414, σ(2) = 0.8807971:
    /// (0·…·1, 1·0.7310586·2, −1·0.2689414·3, 2·0.8807971·0.5).
    #[test]
    fn gives_hand_computed_values_in_every_dtype() {
        for dtype in DTYPES {
            let a = Tensor::new(&[0f32, 1., -1., 2.], &Device::Cpu).unwrap().to_dtype(dtype).unwrap();
            let b = Tensor::new(&[1f32, 2., 3., 0.5], &Device::Cpu).unwrap().to_dtype(dtype).unwrap();
            assert_golden(&format!("{dtype:?}"), &SiluMul::apply(&a, &b).unwrap(), &[0.0, 1.462_117_2, -0.806_824_3, 0.880_797_1], dtype);
        }
    }

    /// Values and both gradients against the float64 twin in each dtype, on a small tensor and
    /// on one that takes the threaded path with a tail shorter than a chunk.
    #[test]
    fn matches_a_float64_twin_in_every_dtype() {
        for dtype in DTYPES {
            for n in [5, 9 * CHUNK + 3] {
                let what = format!("{dtype:?} {n}");
                let (a, b, up) = (randn(4, "a", n, 4.0, dtype), randn(5, "b", n, 1.0, dtype), randn(6, "g", n, 1.0, dtype));
                let (a64, b64) = (twin(&a), twin(&b));
                let fused = SiluMul::apply(a.as_tensor(), b.as_tensor()).unwrap();
                let reference = (a64.as_tensor().silu().unwrap() * b64.as_tensor()).unwrap();
                assert_close(&what, &fused, &reference, tolerance(dtype));
                assert_grads(&what, &fused, &[&a, &b], &reference, &[&a64, &b64], up.as_tensor());
            }
        }
    }

    /// Two dtypes are not fused: they go to candle's operations, which refuse them with an
    /// error (as before the kernel took half precision), never a panic.
    #[test]
    fn two_dtypes_fall_back_to_the_composition() {
        let a = Tensor::zeros(4, DType::BF16, &Device::Cpu).unwrap();
        let b = Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap();
        assert!(SiluMul::apply(&a, &b).is_err());
        assert!(a.apply_op2(&b, SiluMul).is_err(), "the kernel itself refuses them too");
    }

    /// Values and both gradients against candle's `silu` and product, on a tensor that takes
    /// the threaded path with a tail shorter than a chunk, and on a small one.
    #[test]
    fn matches_the_composition_in_value_and_gradient() {
        for n in [5, 9 * CHUNK + 3] {
            let a = Var::from_tensor(&(crate::init::randn(4, "a", n, DType::F32, &Device::Cpu).unwrap() * 4.0).unwrap()).unwrap();
            let b = Var::from_tensor(&crate::init::randn(5, "b", n, DType::F32, &Device::Cpu).unwrap()).unwrap();
            let up = crate::init::randn(6, "g", n, DType::F32, &Device::Cpu).unwrap();
            let fused = SiluMul::apply(a.as_tensor(), b.as_tensor()).unwrap();
            let composed = (a.as_tensor().silu().unwrap() * b.as_tensor()).unwrap();
            let diff = |x: &Tensor, y: &Tensor| (x - y).unwrap().abs().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
            assert!(diff(&fused, &composed) < 1e-5, "{n}: {}", diff(&fused, &composed));
            let gf = (&fused * &up).unwrap().sum_all().unwrap().backward().unwrap();
            let gc = (&composed * &up).unwrap().sum_all().unwrap().backward().unwrap();
            for v in [&a, &b] {
                let (x, y) = (gf.get(v.as_tensor()).unwrap(), gc.get(v.as_tensor()).unwrap());
                assert!(diff(x, y) < 1e-5, "{n} gradient: {}", diff(x, y));
            }
        }
        let (a, b) = (Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(), Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap());
        assert!(SiluMul::apply(&a, &b).is_err(), "shapes that differ and do not broadcast are an error");
    }
}
