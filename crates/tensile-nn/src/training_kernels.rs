//! Softmax and RMSNorm as single CPU operations with their own backward passes, for training
//! on f32 CPU tensors ([`crate::training`] uses them there, and the compositions elsewhere).
//!
//! Composed from candle operations, a softmax takes five passes over its input forward and
//! about ten backward, each with an allocation; RMSNorm about as many. Fused, each takes one
//! pass forward and one backward: softmax's backward needs only its output
//! (`dx = p ⊙ (g − Σ g ⊙ p)`), and RMSNorm's reuses the per-row `1/rms` its forward saved.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor, D};
use std::sync::Mutex;

/// Whether `t` is an f32 tensor on the CPU, the case the fused kernels handle.
pub(crate) fn fusable(t: &Tensor) -> bool {
    t.dtype() == DType::F32 && t.device().is_cpu()
}

fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    let Some((start, end)) = layout.contiguous_offsets() else { candle_core::bail!("{op} needs a contiguous input") };
    Ok(&storage.as_slice::<f32>()?[start..end])
}

/// Runs `f(first_row, rows_slice)` over `out` (`width` values a row) split into row-aligned
/// parts, on the current rayon pool's threads once `work` (the values the rows touch, which can
/// exceed `out`'s: a row maximum reads a whole row) is large enough to pay for them; on the
/// calling thread below that. Rows are independent, so the split never changes a result.
///
/// The pool's threads are already running, so a call costs a few microseconds rather than a
/// thread start per part, and a caller that installs a one-thread pool (the scaling check's
/// serial sweep) gets a serial kernel.
pub fn par_rows<T: Send>(out: &mut [T], width: usize, work: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    use rayon::prelude::*;
    let width = width.max(1);
    let rows = out.len() / width;
    let threads = if work < 1 << 15 { 1 } else { rayon::current_num_threads().clamp(1, rows.max(1)) };
    if threads == 1 {
        return f(0, out);
    }
    let chunk = rows.div_ceil(threads);
    out.par_chunks_mut(chunk * width).enumerate().for_each(|(k, part)| f(k * chunk, part));
}

/// `Σ v²` with eight running sums, which the compiler keeps in one vector register: a single
/// running sum is a chain of dependent additions that no compiler may reorder.
fn sum_of_squares(row: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = row.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().map(|v| v * v).sum();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v * v;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Softmax over the last dimension.
pub(crate) struct Softmax;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "tensile-softmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(storage, layout, "softmax")?;
        let width = layout.dims().last().copied().unwrap_or(1).max(1);
        let mut out = x.to_vec();
        let work = out.len();
        par_rows(&mut out, width, work, |_, part| {
            for row in part.chunks_mut(width) {
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0.0;
                for v in row.iter_mut() {
                    *v = (*v - max).exp();
                    sum += *v;
                }
                let inv = 1.0 / sum;
                row.iter_mut().for_each(|v| *v *= inv);
            }
        });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    /// `dx = p ⊙ (g − Σ_j g_j p_j)` per row, from the output `p` alone.
    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        softmax_backward(res, grad_res, 1.0).map(Some)
    }
}

/// The gradient of a softmax's input, `scale · p ⊙ (g − Σ_j g_j p_j)` per row of the last
/// dimension, from its output `p` alone (for `softmax(scale · x)`; entries a mask set to 0 get
/// none): one pass per row on f32 CPU tensors, candle's operations elsewhere.
pub(crate) fn softmax_backward(res: &Tensor, grad_res: &Tensor, scale: f32) -> Result<Tensor> {
    if !(fusable(res) && fusable(grad_res)) {
        let dot = (grad_res * res)?.sum_keepdim(D::Minus1)?;
        return (res * grad_res.broadcast_sub(&dot)?)? * f64::from(scale);
    }
    let width = res.dim(D::Minus1)?.max(1);
    let p = res.flatten_all()?.to_vec1::<f32>()?;
    let mut g = grad_res.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
    let work = g.len();
    par_rows(&mut g, width, work, |first, part| {
        for (i, row) in part.chunks_mut(width).enumerate() {
            let pr = &p[(first + i) * width..(first + i + 1) * width];
            let dot: f32 = row.iter().zip(pr).map(|(g, p)| g * p).sum();
            row.iter_mut().zip(pr).for_each(|(g, p)| *g = scale * p * (*g - dot));
        }
    });
    Tensor::from_vec(g, res.shape(), res.device())
}

/// `x / sqrt(mean(x²) + eps) · w` over the last dimension.
pub(crate) struct RmsNorm {
    pub(crate) eps: f32,
    /// Each row's `1 / rms`, from the forward, for the backward.
    inv_rms: Mutex<Vec<f32>>,
}

impl RmsNorm {
    pub(crate) fn new(eps: f64) -> Self {
        Self { eps: eps as f32, inv_rms: Mutex::new(Vec::new()) }
    }
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "tensile-rms-norm"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, ws: &CpuStorage, wl: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(xs, xl, "rms_norm")?;
        let w = contiguous_f32(ws, wl, "rms_norm")?;
        let width = w.len();
        if wl.dims().len() != 1 || xl.dims().last() != Some(&width) || width == 0 {
            candle_core::bail!("rms_norm: a weight of shape {:?} does not match an input of shape {:?}", wl.dims(), xl.dims());
        }
        // Two passes, each over the rows in parallel: the per-row `1/rms` (kept for the
        // backward), then the scaled output.
        let mut inv = vec![0f32; x.len() / width];
        let eps = self.eps;
        let divisor = if crate::fault::is(crate::fault::Fault::RmsNormDivisor) { width.saturating_sub(1).max(1) } else { width } as f32;
        par_rows(&mut inv, 1, x.len(), |first, part| {
            for (i, r) in part.iter_mut().enumerate() {
                let row = &x[(first + i) * width..(first + i + 1) * width];
                *r = 1.0 / (sum_of_squares(row) / divisor + eps).sqrt();
            }
        });
        let mut out = vec![0f32; x.len()];
        par_rows(&mut out, width, x.len(), |first, part| {
            for (i, row) in part.chunks_mut(width).enumerate() {
                let (r, xr) = (inv[first + i], &x[(first + i) * width..(first + i + 1) * width]);
                row.iter_mut().zip(xr.iter().zip(w)).for_each(|(o, (v, w))| *o = v * r * w);
            }
        });
        *self.inv_rms.lock().unwrap_or_else(|e| e.into_inner()) = inv;
        Ok((CpuStorage::F32(out), xl.shape().clone()))
    }

    /// With `x̂ = x / rms`: `dw = Σ_rows g ⊙ x̂`, and `dx = (g ⊙ w − x̂ · mean(g ⊙ w ⊙ x̂)) / rms`.
    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let width = w.elem_count().max(1);
        let inv = self.inv_rms.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let xv = x.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let wv = w.flatten_all()?.to_vec1::<f32>()?;
        let g = grad_res.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        if inv.len() * width != xv.len() {
            candle_core::bail!("rms_norm: backward without its forward");
        }
        let mut dx = vec![0f32; xv.len()];
        let mut dw = vec![0f32; width];
        for (r, (dxr, (xr, gr))) in dx.chunks_mut(width).zip(xv.chunks(width).zip(g.chunks(width))).enumerate() {
            let ir = inv[r];
            let mut dot = 0.0;
            for j in 0..width {
                let xhat = xr[j] * ir;
                dw[j] += gr[j] * xhat;
                dot += gr[j] * wv[j] * xhat;
            }
            let mean = dot / width as f32;
            for j in 0..width {
                dxr[j] = (gr[j] * wv[j] - xr[j] * ir * mean) * ir;
            }
        }
        Ok((Some(Tensor::from_vec(dx, x.shape(), x.device())?), Some(Tensor::from_vec(dw, w.shape(), w.device())?)))
    }
}

#[cfg(test)]
mod tests {
    use crate::training::{self, TrainingMode};
    use candle_core::{DType, Device, Tensor, Var, D};

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    #[test]
    fn a_weight_that_does_not_match_the_rows_is_an_error() {
        let x = Tensor::zeros((2, 8), DType::F32, &Device::Cpu).unwrap();
        for w in [Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap(), Tensor::zeros((2, 4), DType::F32, &Device::Cpu).unwrap()] {
            let e = training::rms_norm(&x, &w, 1e-6).unwrap_err().to_string();
            assert!(e.contains("does not match an input of shape [2, 8]"), "{e}");
        }
    }

    /// The fused kernels against the same math composed from candle operations (the path
    /// bf16 and CUDA take), in value and in both gradients; wide rows take the threaded path.
    #[test]
    fn fused_kernels_match_the_compositions_in_value_and_gradient() {
        for (rows, width) in [(6, 5), (300, 512)] {
            let x = Var::from_tensor(&crate::init::randn(3, "x", (rows, width), DType::F32, &Device::Cpu).unwrap()).unwrap();
            let w = Var::from_tensor(&crate::init::randn(4, "w", width, DType::F32, &Device::Cpu).unwrap()).unwrap();
            let up = crate::init::randn(5, "g", (rows, width), DType::F32, &Device::Cpu).unwrap();
            let (sm, rms) =
                training::scope(&TrainingMode::default(), 0, || (training::softmax_last_dim(&x).unwrap(), training::rms_norm(&x, &w, 1e-6).unwrap()));
            let e = x.as_tensor().broadcast_sub(&x.as_tensor().max_keepdim(D::Minus1).unwrap().detach()).unwrap().exp().unwrap();
            let sm_ref = e.broadcast_div(&e.sum_keepdim(D::Minus1).unwrap()).unwrap();
            let inv = (x.as_tensor().sqr().unwrap().mean_keepdim(D::Minus1).unwrap() + 1e-6).unwrap().sqrt().unwrap().recip().unwrap();
            let rms_ref = x.as_tensor().broadcast_mul(&inv).unwrap().broadcast_mul(w.as_tensor()).unwrap();
            assert!(max_diff(&sm, &sm_ref) < 1e-6 && max_diff(&rms, &rms_ref) < 1e-5);
            for (fused, composed) in [(sm, sm_ref), (rms, rms_ref)] {
                let gf = (&fused * &up).unwrap().sum_all().unwrap().backward().unwrap();
                let gc = (&composed * &up).unwrap().sum_all().unwrap().backward().unwrap();
                for v in [&x, &w] {
                    match (gf.get(v.as_tensor()), gc.get(v.as_tensor())) {
                        (Some(a), Some(b)) => assert!(max_diff(a, b) < 2e-4 * (1.0 + width as f32 / 100.0), "{rows}×{width}: {}", max_diff(a, b)),
                        (None, None) => {}
                        (a, b) => panic!("a gradient on one path only: {} {}", a.is_some(), b.is_some()),
                    }
                }
            }
        }
    }
}
