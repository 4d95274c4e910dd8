//! LayerNorm, `(x − mean) / sqrt(var + eps) · w + b` over the last dimension (biased variance,
//! optional bias), as one CPU operation with its own backward pass, for f32, bf16 and f16 CPU
//! inputs (computed in f32, written in the input's dtype; see [`crate::training_kernels`]).
//!
//! Composed from candle operations a LayerNorm takes about eight passes over its input forward
//! (mean, centre, square, mean, add, sqrt, divide, scale) and twice as many backward, each with
//! an allocation. Fused, the forward reads each row into cache once and makes three vectorised
//! passes over it there (sum, squared deviations, output), keeping each row's mean and `1/std`
//! for the backward; the backward makes one pass over the rows for `dx` and one over the
//! columns for the weight's and bias's gradients. Candle's own fused LayerNorm computes the
//! variance as `E[x²] − mean²`, which cancels badly for rows far from zero mean; the two-pass
//! variance here does not.

use crate::training_kernels::{contiguous, dispatch, f32_values, f32_vec, lane_sum, lane_sum2, par_rows, streaming_work, Elem};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use std::sync::Mutex;

/// LayerNorm over the last dimension: a [`CustomOp2`] on `(x, weight)` without a bias, a
/// [`CustomOp3`] on `(x, weight, bias)` with one.
pub(crate) struct LayerNorm {
    eps: f32,
    /// Each row's `(mean, 1/std)`, from the forward, for the backward.
    stats: Mutex<Vec<(f32, f32)>>,
}

impl LayerNorm {
    fn new(eps: f64) -> Self {
        Self { eps: eps as f32, stats: Mutex::new(Vec::new()) }
    }

    /// `(x − mean) / sqrt(var + eps) · weight (+ bias)` of `x: (…, width)` with `weight` (and
    /// `bias`) of shape `(width)`; each may be f32, bf16 or f16, and the output has `x`'s dtype.
    pub(crate) fn apply(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, eps: f64) -> Result<Tensor> {
        let (x, weight) = (x.contiguous()?, weight.contiguous()?);
        match bias {
            Some(b) => x.apply_op3(&weight, &b.contiguous()?, Self::new(eps)),
            None => x.apply_op2(&weight, Self::new(eps)),
        }
    }

    fn forward<T: Elem>(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bias: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous::<T>(xs, xl, "layer_norm")?;
        let w = f32_values(ws, wl, "layer_norm")?;
        let width = w.len();
        if wl.dims().len() != 1 || xl.dims().last() != Some(&width) || width == 0 {
            candle_core::bail!("layer_norm: a weight of shape {:?} does not match an input of shape {:?}", wl.dims(), xl.dims());
        }
        let b = match bias {
            Some((bs, bl)) if bl.dims() == wl.dims() => Some(f32_values(bs, bl, "layer_norm")?),
            Some((_, bl)) => candle_core::bail!("layer_norm: a bias of shape {:?} does not match a weight of shape {:?}", bl.dims(), wl.dims()),
            None => None,
        };
        let (w, b): (&[f32], Option<&[f32]>) = (&w, b.as_deref());
        let (eps, n) = (self.eps, width as f32);
        let forget_mean = crate::fault::is(crate::fault::Fault::LayerNormMean);
        // One pass over the rows, in parallel; each part hands back its rows' statistics, which
        // are put in row order afterwards, so the split never changes what the backward sees.
        let parts = Mutex::new(Vec::new());
        let mut out = vec![T::zero(); x.len()];
        par_rows(&mut out, width, streaming_work(x.len()), |first, part| {
            let (mut xs, mut os) = (Vec::new(), Vec::new());
            let mut stats = Vec::with_capacity(part.len() / width);
            for (i, row) in part.chunks_mut(width).enumerate() {
                let xr = T::read(&x[(first + i) * width..(first + i + 1) * width], &mut xs);
                let mean = if forget_mean { 0.0 } else { lane_sum(xr, |v| v) / n };
                let rstd = 1.0 / (lane_sum(xr, |v| (v - mean) * (v - mean)) / n + eps).sqrt();
                T::write(row, &mut os, |o| match b {
                    Some(b) => o.iter_mut().zip(xr).zip(w.iter().zip(b)).for_each(|((o, v), (w, b))| *o = (v - mean) * rstd * w + b),
                    None => o.iter_mut().zip(xr).zip(w).for_each(|((o, v), w)| *o = (v - mean) * rstd * w),
                });
                stats.push((mean, rstd));
            }
            parts.lock().unwrap_or_else(|e| e.into_inner()).push((first, stats));
        });
        let mut stats = vec![(0f32, 0f32); x.len() / width];
        for (first, part) in parts.into_inner().unwrap_or_else(|e| e.into_inner()) {
            stats[first..first + part.len()].copy_from_slice(&part);
        }
        *self.stats.lock().unwrap_or_else(|e| e.into_inner()) = stats;
        Ok((T::to_cpu_storage_owned(out), xl.shape().clone()))
    }

    /// With `x̂ = (x − mean) · rstd` and `ĝ = g ⊙ w`: `dx = rstd · (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂))`
    /// per row, `dw = Σ_rows g ⊙ x̂` and `db = Σ_rows g` per column.
    fn backward<T: Elem>(&self, x: &Tensor, w: &Tensor, bias: Option<&Tensor>, grad_res: &Tensor) -> Result<(Tensor, Tensor, Option<Tensor>)> {
        let width = w.elem_count().max(1);
        let stats = self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let xv = x.contiguous()?.flatten_all()?.to_vec1::<T>()?;
        let wv = f32_vec(w)?;
        let g = grad_res.contiguous()?.flatten_all()?.to_vec1::<T>()?;
        if stats.len() * width != xv.len() || g.len() != xv.len() || wv.len() != width {
            candle_core::bail!("layer_norm: backward without its forward");
        }
        let n = width as f32;
        let mut dx = vec![T::zero(); xv.len()];
        par_rows(&mut dx, width, 3 * xv.len(), |first, part| {
            let (mut xs, mut gs, mut ds, mut gw) = (Vec::new(), Vec::new(), Vec::new(), vec![0f32; width]);
            for (i, row) in part.chunks_mut(width).enumerate() {
                let r = first + i;
                let (mean, rstd) = stats[r];
                let xr = T::read(&xv[r * width..(r + 1) * width], &mut xs);
                let gr = T::read(&g[r * width..(r + 1) * width], &mut gs);
                // `ĝ` in a scratch row, then its two means.
                gw.iter_mut().zip(gr.iter().zip(&wv)).for_each(|(o, (g, w))| *o = g * w);
                let mean_gw = lane_sum(&gw, |v| v) / n;
                let mean_gwx = lane_sum2(&gw, xr, |a, v| a * (v - mean) * rstd) / n;
                T::write(row, &mut ds, |d| {
                    d.iter_mut().zip(gw.iter().zip(xr)).for_each(|(d, (a, v))| *d = rstd * (a - mean_gw - (v - mean) * rstd * mean_gwx));
                });
            }
        });
        // The columns' sums, each over the rows in order (so also deterministic), the columns
        // split among the threads: a part reads its stretch of every row.
        let rows = stats.len();
        let mut dw = vec![0f32; width];
        par_rows(&mut dw, 1, xv.len(), |first, part| {
            for (r, &(mean, rstd)) in stats.iter().enumerate() {
                let (xr, gr) = (&xv[r * width + first..][..part.len()], &g[r * width + first..][..part.len()]);
                part.iter_mut().zip(xr.iter().zip(gr)).for_each(|(s, (x, g))| *s += g.to_f32() * (x.to_f32() - mean) * rstd);
            }
        });
        let dw = Tensor::from_vec(dw, w.shape(), w.device())?.to_dtype(w.dtype())?;
        let db = match bias {
            Some(b) => {
                let mut db = vec![0f32; width];
                par_rows(&mut db, 1, xv.len(), |first, part| {
                    let m = part.len();
                    for r in 0..rows {
                        part.iter_mut().zip(&g[r * width + first..][..m]).for_each(|(s, g)| *s += g.to_f32());
                    }
                });
                Some(Tensor::from_vec(db, b.shape(), b.device())?.to_dtype(b.dtype())?)
            }
            None => None,
        };
        Ok((Tensor::from_vec(dx, x.shape(), x.device())?, dw, db))
    }
}

impl CustomOp2 for LayerNorm {
    fn name(&self) -> &'static str {
        "tensile-layer-norm"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, ws: &CpuStorage, wl: &Layout) -> Result<(CpuStorage, Shape)> {
        dispatch!(xs.dtype(), "layer_norm", T => self.forward::<T>(xs, xl, ws, wl, None))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = dispatch!(x.dtype(), "layer_norm backward", T => self.backward::<T>(x, w, None, grad_res))?;
        Ok((Some(dx), Some(dw)))
    }
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "tensile-layer-norm"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, ws: &CpuStorage, wl: &Layout, bs: &CpuStorage, bl: &Layout) -> Result<(CpuStorage, Shape)> {
        dispatch!(xs.dtype(), "layer_norm", T => self.forward::<T>(xs, xl, ws, wl, Some((bs, bl))))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, b: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, db) = dispatch!(x.dtype(), "layer_norm backward", T => self.backward::<T>(x, w, Some(b), grad_res))?;
        Ok((Some(dx), Some(dw), db))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training::{self, TrainingMode};
    use crate::training_kernels::testing::*;
    use candle_core::{DType, Device, Var, D};

    /// LayerNorm written out in float64.
    fn layer_norm64(x: &Tensor, w: &Tensor, b: Option<&Tensor>, eps: f64) -> Tensor {
        let centred = x.broadcast_sub(&x.mean_keepdim(D::Minus1).unwrap()).unwrap();
        let inv_std = (centred.sqr().unwrap().mean_keepdim(D::Minus1).unwrap() + eps).unwrap().sqrt().unwrap().recip().unwrap();
        let y = centred.broadcast_mul(&inv_std).unwrap().broadcast_mul(w).unwrap();
        b.map_or(y.clone(), |b| y.broadcast_add(b).unwrap())
    }

    fn tensor(values: &[f32], shape: &[usize], dtype: DType) -> Tensor {
        Tensor::from_slice(values, shape, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
    }

    /// Rows worked out by hand, eps 0. (1, 2, 3, 4): mean 2.5, variance (2.25 + 0.25 + 0.25 +
    /// 2.25)/4 = 1.25, std 1.1180340, so x̂ = (−1.3416408, −0.4472136, 0.4472136, 1.3416408).
    /// (10, 10, 10, 14): mean 11, variance (1 + 1 + 1 + 9)/4 = 3, std 1.7320508, so x̂ =
    /// (−0.5773503 three times, 1.7320508). Then times w = (1, 2, 0.5, −1), plus b = (0, 1, −1, 0.5).
    #[test]
    fn gives_hand_computed_values_in_every_dtype() {
        for dtype in DTYPES {
            let x = tensor(&[1., 2., 3., 4., 10., 10., 10., 14.], &[2, 4], dtype);
            let (w, b) = (tensor(&[1., 2., 0.5, -1.], &[4], dtype), tensor(&[0., 1., -1., 0.5], &[4], dtype));
            let scaled = [-1.341_640_8, -0.894_427_2, 0.223_606_8, -1.341_640_8, -0.577_350_3, -1.154_700_5, -0.288_675_1, -1.732_050_8];
            assert_golden(&format!("{dtype:?} without a bias"), &training::layer_norm(&x, &w, None, 0.0).unwrap(), &scaled, dtype);
            let shifted = [-1.341_640_8, 0.105_572_8, -0.776_393_2, -0.841_640_8, -0.577_350_3, -0.154_700_5, -1.288_675_1, -1.232_050_8];
            assert_golden(&format!("{dtype:?} with a bias"), &training::layer_norm(&x, &w, Some(&b), 0.0).unwrap(), &shifted, dtype);
        }
    }

    /// A row far from zero mean: (10001, 10002, 10003, 10004) normalises like (1, 2, 3, 4).
    /// `E[x²] − mean²` would subtract two numbers near 10⁸ in f32, whose spacing there is 8.
    #[test]
    fn the_variance_does_not_cancel_far_from_zero_mean() {
        let x = tensor(&[10_001., 10_002., 10_003., 10_004.], &[1, 4], DType::F32);
        let y = training::layer_norm(&x, &tensor(&[1.; 4], &[4], DType::F32), None, 0.0).unwrap();
        assert_golden("far from zero", &y, &[-1.341_640_8, -0.447_213_6, 0.447_213_6, 1.341_640_8], DType::F32);
    }

    /// Values and every gradient against the float64 twin, in each dtype, with and without a
    /// bias; the second shape takes the threaded path (rows and columns), with rows of
    /// 515 = 64·8 + 3 values: a tail shorter than a sum's chunk.
    #[test]
    fn matches_a_float64_twin_in_value_and_gradient() {
        for dtype in DTYPES {
            for (rows, width) in [(6, 5), (80, 515)] {
                // Rows away from zero mean, so that forgetting the mean would show.
                let x = Var::from_tensor(&(randn(3, "x", (rows, width), 2.0, dtype).as_tensor() + 3.0).unwrap()).unwrap();
                let (w, b, up) = (randn(4, "w", width, 1.0, dtype), randn(5, "b", width, 1.0, dtype), randn(6, "g", (rows, width), 1.0, dtype));
                let (x64, w64, b64) = (twin(&x), twin(&w), twin(&b));
                for bias in [false, true] {
                    let what = format!("{dtype:?} {rows}×{width} bias {bias}");
                    let fused = training::scope(&TrainingMode::default(), 0, || training::layer_norm(&x, &w, bias.then_some(b.as_tensor()), 1e-5).unwrap());
                    let reference = layer_norm64(&x64, &w64, bias.then_some(b64.as_tensor()), 1e-5);
                    assert_close(&what, &fused, &reference, tolerance(dtype));
                    let (vars, twins): (Vec<&Var>, Vec<&Var>) =
                        if bias { (vec![&x, &w, &b], vec![&x64, &w64, &b64]) } else { (vec![&x, &w], vec![&x64, &w64]) };
                    assert_grads(&what, &fused, &vars, &reference, &twins, up.as_tensor());
                }
            }
        }
    }

    /// A bf16 activation with an f32 weight and an f16 bias: the output in bf16, each gradient
    /// in its own input's dtype.
    #[test]
    fn takes_a_weight_and_bias_of_other_dtypes() {
        let (x, w, b) = (randn(1, "x", (3, 24), 1.0, DType::BF16), randn(2, "w", 24, 1.0, DType::F32), randn(3, "b", 24, 1.0, DType::F16));
        let up = randn(4, "g", (3, 24), 1.0, DType::BF16);
        let y = training::layer_norm(&x, &w, Some(&b), 1e-5).unwrap();
        assert_eq!(y.dtype(), DType::BF16);
        let (x64, w64, b64) = (twin(&x), twin(&w), twin(&b));
        let y64 = layer_norm64(&x64, &w64, Some(&b64), 1e-5);
        assert_close("mixed", &y, &y64, tolerance(DType::BF16));
        assert_grads("mixed", &y, &[&x, &w, &b], &y64, &[&x64, &w64, &b64], up.as_tensor());
    }

    #[test]
    fn a_weight_or_bias_that_does_not_match_is_an_error() {
        let x = Tensor::zeros((2, 8), DType::F32, &Device::Cpu).unwrap();
        let (w8, w4) = (Tensor::ones(8, DType::F32, &Device::Cpu).unwrap(), Tensor::ones(4, DType::F32, &Device::Cpu).unwrap());
        let e = training::layer_norm(&x, &w4, None, 1e-5).unwrap_err().to_string();
        assert!(e.contains("does not match an input of shape [2, 8]"), "{e}");
        let e = training::layer_norm(&x, &w8, Some(&w4), 1e-5).unwrap_err().to_string();
        assert!(e.contains("a bias of shape [4]"), "{e}");
    }
}
