//! Exact GELU, `x·Φ(x)`, as one vectorised CPU operation with its own backward, for f32, bf16
//! and f16 CPU tensors (computed in f32, written in the input's dtype; see
//! [`crate::training_kernels`]).
//!
//! candle's `gelu_erf` calls the scalar `erff` of `libm` per element: a tenth of a BERT
//! layer's time on a 2-core CPU. Here `erf` is the Abramowitz–Stegun rational approximation
//! 7.1.26 (absolute error 1.5e-7 in exact arithmetic, below 1e-6 as computed in f32) over the
//! polynomial exponential of [`crate::fast_exp`], both branch-free, so each row of the
//! loop compiles to vector instructions; rows run on the rayon pool.

use crate::fast_exp::exp_poly;
use crate::training_kernels::{contiguous, dispatch, fusable, par_rows, Elem};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

/// `erf(x)` within 1e-6 absolute (Abramowitz and Stegun, 7.1.26, computed in f32).
#[inline(always)]
fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    let y = 1.0 - poly * exp_poly(-a * a);
    y.copysign(x)
}

/// `Φ(x) = (1 + erf(x/√2)) / 2`.
#[inline(always)]
fn phi(x: f32) -> f32 {
    0.5 * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// Exact GELU over every element.
pub(crate) struct GeluErf;

impl GeluErf {
    /// GELU of `x`: this kernel for f32, bf16 and f16 CPU tensors, candle's elsewhere.
    pub(crate) fn apply(x: &Tensor) -> Result<Tensor> {
        if fusable(x) {
            x.contiguous()?.apply_op1(GeluErf)
        } else {
            x.gelu_erf()
        }
    }
}

/// Chunks of this many values are what one task of the pool handles.
const CHUNK: usize = 4096;

impl CustomOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "tensile-gelu-erf"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        dispatch!(storage.dtype(), "gelu", T => forward::<T>(storage, layout))
    }

    /// `d/dx x·Φ(x) = Φ(x) + x·φ(x)`, with `φ(x) = e^(−x²/2)/√(2π)`.
    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        dispatch!(arg.dtype(), "gelu backward", T => backward::<T>(arg, grad_res)).map(Some)
    }
}

fn forward<T: Elem>(storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
    let x = contiguous::<T>(storage, layout, "gelu")?;
    let mut out = vec![T::zero(); x.len()];
    par_rows(&mut out, CHUNK, x.len(), |first, part| {
        let xs = &x[first * CHUNK..first * CHUNK + part.len()];
        part.iter_mut().zip(xs).for_each(|(o, v)| {
            let v = v.to_f32();
            *o = T::from_f32(v * phi(v))
        });
    });
    Ok((T::to_cpu_storage_owned(out), layout.shape().clone()))
}

fn backward<T: Elem>(arg: &Tensor, grad_res: &Tensor) -> Result<Tensor> {
    let x = arg.contiguous()?.flatten_all()?.to_vec1::<T>()?;
    let mut g = grad_res.contiguous()?.flatten_all()?.to_vec1::<T>()?;
    if x.len() != g.len() {
        candle_core::bail!("gelu backward: {} inputs but {} gradients", x.len(), g.len());
    }
    let inv_sqrt_2pi = if crate::fault::is(crate::fault::Fault::GeluBackward) { 0.0 } else { 1.0 / (2.0 * std::f32::consts::PI).sqrt() };
    let work = g.len();
    par_rows(&mut g, CHUNK, work, |first, part| {
        let xs = &x[first * CHUNK..first * CHUNK + part.len()];
        part.iter_mut().zip(xs).for_each(|(g, v)| {
            let v = v.to_f32();
            *g = T::from_f32(g.to_f32() * (phi(v) + v * exp_poly(-0.5 * v * v) * inv_sqrt_2pi))
        });
    });
    Tensor::from_vec(g, arg.shape(), arg.device())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training_kernels::testing::*;
    use candle_core::{DType, Device, Var};

    /// `x·Φ(x)` at a few points, from the normal distribution's table: Φ(1) = 0.8413447,
    /// Φ(2) = 0.9772499, Φ(3) = 0.9986501, Φ(0.5) = 0.6914625, and Φ(−x) = 1 − Φ(x).
    #[test]
    fn gives_hand_computed_values_in_every_dtype() {
        for dtype in DTYPES {
            let x = Tensor::new(&[-3f32, -2., -1., -0.5, 0., 0.5, 1., 2.], &Device::Cpu).unwrap().to_dtype(dtype).unwrap();
            let want = [-0.004_049_7, -0.045_500_3, -0.158_655_3, -0.154_268_8, 0.0, 0.345_731_2, 0.841_344_7, 1.954_499_7];
            assert_golden(&format!("{dtype:?}"), &GeluErf::apply(&x).unwrap(), &want, dtype);
        }
    }

    /// Values and gradients against candle's `gelu_erf` in float64, in each dtype, on a small
    /// tensor and on one that takes the threaded path with a tail shorter than a chunk.
    #[test]
    fn matches_a_float64_twin_in_every_dtype() {
        for dtype in DTYPES {
            for n in [7, 9 * CHUNK + 5] {
                let what = format!("{dtype:?} {n}");
                let (x, up) = (randn(2, "x", n, 3.0, dtype), randn(3, "g", n, 1.0, dtype));
                let x64 = twin(&x);
                let (fused, reference) = (GeluErf::apply(x.as_tensor()).unwrap(), x64.as_tensor().gelu_erf().unwrap());
                assert_close(&what, &fused, &reference, tolerance(dtype));
                assert_grads(&what, &fused, &[&x], &reference, &[&x64], up.as_tensor());
            }
        }
    }

    #[test]
    fn erf_is_within_its_bound_everywhere() {
        let worst = (-600_000..=600_000)
            .map(|i| i as f32 / 100_000.0)
            .map(|x| (f64::from(erf(x)) - candle_core::cpu::erf::erf_f64(f64::from(x))).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-6, "worst absolute error {worst:e}");
        assert!(erf(0.0).abs() < 2e-7, "the approximation is off by 1.8e-7 at 0; GELU multiplies it by x = 0");
        assert_eq!(erf(10.0), 1.0);
        assert_eq!(erf(-10.0), -1.0);
    }

    /// Values and gradients against candle's `gelu_erf` (which has a backward of its own), on
    /// a tensor large enough for the threaded path and with a tail shorter than a chunk.
    #[test]
    fn matches_candles_gelu_in_value_and_gradient() {
        for n in [7, 9 * CHUNK + 5] {
            let x = Var::from_tensor(&(crate::init::randn(2, "x", n, DType::F32, &Device::Cpu).unwrap() * 3.0).unwrap()).unwrap();
            let up = crate::init::randn(3, "g", n, DType::F32, &Device::Cpu).unwrap();
            let (fused, reference) = (GeluErf::apply(x.as_tensor()).unwrap(), x.as_tensor().gelu_erf().unwrap());
            let diff = |a: &Tensor, b: &Tensor| (a - b).unwrap().abs().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
            assert!(diff(&fused, &reference) < 2e-6, "{n}: {}", diff(&fused, &reference));
            let gf = (&fused * &up).unwrap().sum_all().unwrap().backward().unwrap();
            let gc = (&reference * &up).unwrap().sum_all().unwrap().backward().unwrap();
            let (a, b) = (gf.get(x.as_tensor()).unwrap(), gc.get(x.as_tensor()).unwrap());
            assert!(diff(a, b) < 1e-5, "{n} gradient: {}", diff(a, b));
        }
    }
}
