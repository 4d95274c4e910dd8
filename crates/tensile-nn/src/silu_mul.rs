//! SwiGLU's gate, `silu(a) ⊙ b`, as one vectorised CPU operation with its own backward, for
//! f32 CPU tensors.
//!
//! Composed, the gate takes two passes and an intermediate as large as the MLP's widest
//! activation (`silu(a)`, then the product), with a library `exp` per element. Fused, one
//! pass reads `a` and `b` and writes the product, with the polynomial exponential of
//! [`crate::causal_softmax`]; rows run on the rayon pool.

use crate::causal_softmax::exp_poly;
use crate::training_kernels::par_rows;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};

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
    /// `silu(a) ⊙ b`: this kernel for f32 CPU tensors of one shape, candle's ops elsewhere.
    pub(crate) fn apply(a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let fusable = |t: &Tensor| t.dtype() == DType::F32 && t.device().is_cpu();
        if fusable(a) && fusable(b) && a.shape() == b.shape() {
            a.contiguous()?.apply_op2(&b.contiguous()?, SiluMul)
        } else {
            a.silu()? * b
        }
    }
}

fn slice<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let Some((start, end)) = l.contiguous_offsets() else { candle_core::bail!("silu_mul needs contiguous inputs") };
    Ok(&s.as_slice::<f32>()?[start..end])
}

impl CustomOp2 for SiluMul {
    fn name(&self) -> &'static str {
        "tensile-silu-mul"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (a, b) = (slice(s1, l1)?, slice(s2, l2)?);
        if a.len() != b.len() {
            candle_core::bail!("silu_mul: {} and {} values", a.len(), b.len());
        }
        let mut out = vec![0f32; a.len()];
        par_rows(&mut out, CHUNK, a.len(), |first, part| {
            let (ar, br) = (&a[first * CHUNK..first * CHUNK + part.len()], &b[first * CHUNK..first * CHUNK + part.len()]);
            for ((o, a), b) in part.iter_mut().zip(ar).zip(br) {
                *o = a * sigmoid(*a) * b;
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    /// `∂/∂a = g·b·σ(a)·(1 + a·(1 − σ(a)))` and `∂/∂b = g·silu(a)`.
    fn bwd(&self, a: &Tensor, b: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let av = a.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let bv = b.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let g = grad.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        // Both gradients in one pass: `da` is computed in place of a copy of `g`, `db` beside.
        let mut da = g.clone();
        let mut db = vec![0f32; g.len()];
        par_rows(&mut db, CHUNK, g.len(), |first, part| {
            let r = first * CHUNK..first * CHUNK + part.len();
            for ((d, a), g) in part.iter_mut().zip(&av[r.clone()]).zip(&g[r]) {
                *d = g * a * sigmoid(*a);
            }
        });
        let slope = if crate::fault::is(crate::fault::Fault::SiluMulBackward) { 0.0 } else { 1.0 };
        par_rows(&mut da, CHUNK, g.len(), |first, part| {
            let r = first * CHUNK..first * CHUNK + part.len();
            for ((d, a), b) in part.iter_mut().zip(&av[r.clone()]).zip(&bv[r]) {
                let s = sigmoid(*a);
                *d *= b * s * (1.0 + slope * a * (1.0 - s));
            }
        });
        Ok((Some(Tensor::from_vec(da, a.shape(), a.device())?), Some(Tensor::from_vec(db, b.shape(), b.device())?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

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
