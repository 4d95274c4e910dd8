//! Softmax and RMSNorm as single CPU operations with their own backward passes, for training
//! ([`crate::training`] uses them there, and the compositions elsewhere), and the pieces every
//! fused kernel of this crate shares: the element types, the row splitting, the chunked sums.
//!
//! Composed from candle operations, a softmax takes five passes over its input forward and
//! about ten backward, each with an allocation; RMSNorm about as many. Fused, each takes one
//! pass forward and one backward: softmax's backward needs only its output
//! (`dx = p ⊙ (g − Σ g ⊙ p)`), and RMSNorm's reuses the per-row `1/rms` its forward saved.
//!
//! # Dtypes
//!
//! These kernels and the crate's other CPU kernels built on them (GELU, SwiGLU's gate,
//! LayerNorm) take f32, bf16 and f16 CPU tensors ([`fusable`]). Half-precision values are
//! widened to f32 as they are read, every sum and statistic is computed and accumulated in f32
//! (as PyTorch's CPU kernels do), and the result is rounded once, to the input's dtype;
//! gradients likewise come back in their input's dtype. The f32 path reads and writes its
//! buffers directly: the element conversions are the identity there and compile away. A weight
//! or bias may have a dtype other than the input's (a bf16 activation with an f32 weight): it
//! is read as f32, and its gradient returned in its own dtype.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor, WithDType, D};
use half::{bf16, f16};
use std::borrow::Cow;
use std::sync::Mutex;

/// Whether `t` is an f32, bf16 or f16 tensor on the CPU, the cases the fused kernels handle.
pub(crate) fn fusable(t: &Tensor) -> bool {
    matches!(t.dtype(), DType::F32 | DType::BF16 | DType::F16) && t.device().is_cpu()
}

/// An element type the fused kernels read and write. Every kernel computes in f32: f32 values
/// are used as they are, bf16 and f16 values widened on reading and rounded once on writing.
pub(crate) trait Elem: WithDType {
    /// The value as f32 (exact: every bf16 and f16 value is an f32 value).
    fn to_f32(self) -> f32;

    /// `v` rounded to the nearest value of this type.
    fn from_f32(v: f32) -> Self;

    /// `row` as f32 values: `row` itself for f32, so that path copies nothing; for the half
    /// types the values widened into `scratch`, once, for a kernel that reads a row more than
    /// once (a maximum, then the exponentials).
    fn read<'a>(row: &'a [Self], scratch: &'a mut Vec<f32>) -> &'a [f32] {
        scratch.clear();
        scratch.extend(row.iter().map(|v| v.to_f32()));
        scratch
    }

    /// Runs `f` on an f32 view of `out`, whose values `f` must all write (it may then read and
    /// update them): `out` itself for f32; for the half types `scratch`, rounded into `out`
    /// afterwards, so that a kernel that normalises in place rounds only once.
    fn write(out: &mut [Self], scratch: &mut Vec<f32>, f: impl FnOnce(&mut [f32])) {
        scratch.clear();
        scratch.resize(out.len(), 0.0);
        f(scratch);
        out.iter_mut().zip(scratch.iter()).for_each(|(o, v)| *o = Self::from_f32(*v));
    }
}

impl Elem for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }

    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        v
    }

    #[inline(always)]
    fn read<'a>(row: &'a [f32], _scratch: &'a mut Vec<f32>) -> &'a [f32] {
        row
    }

    #[inline(always)]
    fn write(out: &mut [f32], _scratch: &mut Vec<f32>, f: impl FnOnce(&mut [f32])) {
        f(out)
    }
}

impl Elem for bf16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }

    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        bf16::from_f32(v)
    }
}

impl Elem for f16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }

    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        f16::from_f32(v)
    }
}

/// Evaluates `$body` with the type name `$T` standing for the element type of `$dtype` (f32,
/// bf16 or f16), or fails with an error naming `$op` for any other dtype: one match per kernel
/// entry point instead of three copies of each kernel.
macro_rules! dispatch {
    ($dtype:expr, $op:expr, $T:ident => $body:expr) => {
        match $dtype {
            candle_core::DType::F32 => {
                type $T = f32;
                $body
            }
            candle_core::DType::BF16 => {
                type $T = half::bf16;
                $body
            }
            candle_core::DType::F16 => {
                type $T = half::f16;
                $body
            }
            other => candle_core::bail!("{}: no CPU kernel for {other:?} (f32, bf16 and f16 only)", $op),
        }
    };
}
pub(crate) use dispatch;

/// The values of a contiguous `storage` of element type `T`; an error for a strided layout or
/// another dtype.
pub(crate) fn contiguous<'a, T: Elem>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [T]> {
    let Some((start, end)) = layout.contiguous_offsets() else { candle_core::bail!("{op} needs a contiguous input") };
    Ok(&storage.as_slice::<T>()?[start..end])
}

/// A contiguous `storage` (a weight or a bias, one row long) as f32, whatever its dtype among
/// the three: borrowed for f32, widened for the half types. Reading it once here lets a bf16
/// activation take an f32 weight, and costs one row.
pub(crate) fn f32_values<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<Cow<'a, [f32]>> {
    Ok(match storage.dtype() {
        DType::F32 => Cow::Borrowed(contiguous::<f32>(storage, layout, op)?),
        DType::BF16 => Cow::Owned(contiguous::<bf16>(storage, layout, op)?.iter().map(|v| v.to_f32()).collect()),
        DType::F16 => Cow::Owned(contiguous::<f16>(storage, layout, op)?.iter().map(|v| v.to_f32()).collect()),
        other => candle_core::bail!("{op}: no CPU kernel for {other:?} (f32, bf16 and f16 only)"),
    })
}

/// The values of `t` (any layout) as f32, for a weight in a backward pass.
pub(crate) fn f32_vec(t: &Tensor) -> Result<Vec<f32>> {
    t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()
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

/// The `work` a streaming pass over `values` values (a norm: a few operations a value, bound by
/// memory) reports to [`par_rows`], which splits from 2¹⁵: a second thread pays for such a pass
/// only from about 2²⁰ values. On a 2-vCPU VM, RMSNorm over 512K values took 0.28 ms on one
/// thread and 0.42 ms on two (waking and parking the second thread was 27% of the call); over
/// 1M values, 0.69 against 0.63; over 16M, 30 against 22.
pub(crate) fn streaming_work(values: usize) -> usize {
    values >> 5
}

/// `Σ f(v)` over `row` with eight running sums, which the compiler keeps in one vector
/// register: a single running sum is a chain of dependent additions that no compiler may
/// reorder. The values past the last whole chunk of eight are summed apart.
#[inline(always)]
pub(crate) fn lane_sum(row: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = row.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().map(|v| f(*v)).sum();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += f(*v);
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `Σ f(a_j, b_j)` over two rows of one length, with eight running sums as in [`lane_sum`].
#[inline(always)]
pub(crate) fn lane_sum2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let n = a.len().min(b.len());
    let (ca, cb) = (a[..n].chunks_exact(8), b[..n].chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| f(*x, *y)).sum();
    let mut acc = [0f32; 8];
    for (x, y) in ca.zip(cb) {
        for ((a, x), y) in acc.iter_mut().zip(x).zip(y) {
            *a += f(*x, *y);
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `max v` over `row` (−∞ for an empty row) with eight running maxima, as [`lane_sum`] keeps
/// eight sums: a single running `f32::max` is a dependent chain the compiler will not reorder.
#[inline(always)]
pub(crate) fn lane_max(row: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let chunks = row.chunks_exact(8);
    let tail = chunks.remainder().iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a = if *v > *a { *v } else { *a };
        }
    }
    acc.iter().fold(tail, |m, v| m.max(*v))
}

/// `Σ v²`, vectorised ([`lane_sum`]).
fn sum_of_squares(row: &[f32]) -> f32 {
    lane_sum(row, |v| v * v)
}

/// Softmax over the last dimension.
pub(crate) struct Softmax;

fn softmax_fwd<T: Elem>(storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
    let x = contiguous::<T>(storage, layout, "softmax")?;
    let width = layout.dims().last().copied().unwrap_or(1).max(1);
    let mut out = vec![T::zero(); x.len()];
    par_rows(&mut out, width, x.len(), |first, part| {
        let (mut xs, mut os) = (Vec::new(), Vec::new());
        for (i, row) in part.chunks_mut(width).enumerate() {
            let xr = T::read(&x[(first + i) * width..(first + i + 1) * width], &mut xs);
            let max = lane_max(xr);
            T::write(row, &mut os, |row| {
                let mut sum = 0.0;
                for (o, v) in row.iter_mut().zip(xr) {
                    *o = (v - max).exp();
                    sum += *o;
                }
                let inv = 1.0 / sum;
                row.iter_mut().for_each(|v| *v *= inv);
            });
        }
    });
    Ok((T::to_cpu_storage_owned(out), layout.shape().clone()))
}

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "tensile-softmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        dispatch!(storage.dtype(), "softmax", T => softmax_fwd::<T>(storage, layout))
    }

    /// `dx = p ⊙ (g − Σ_j g_j p_j)` per row, from the output `p` alone.
    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        softmax_backward(res, grad_res, 1.0).map(Some)
    }
}

/// The gradient of a softmax's input, `scale · p ⊙ (g − Σ_j g_j p_j)` per row of the last
/// dimension, from its output `p` alone (for `softmax(scale · x)`; entries a mask set to 0 get
/// none): one pass per row on CPU tensors of one dtype the kernels take, in that dtype; candle's
/// operations elsewhere.
pub(crate) fn softmax_backward(res: &Tensor, grad_res: &Tensor, scale: f32) -> Result<Tensor> {
    if !(fusable(res) && fusable(grad_res) && res.dtype() == grad_res.dtype()) {
        let dot = (grad_res * res)?.sum_keepdim(D::Minus1)?;
        return (res * grad_res.broadcast_sub(&dot)?)? * f64::from(scale);
    }
    dispatch!(res.dtype(), "softmax backward", T => softmax_bwd::<T>(res, grad_res, scale))
}

fn softmax_bwd<T: Elem>(res: &Tensor, grad_res: &Tensor, scale: f32) -> Result<Tensor> {
    let width = res.dim(D::Minus1)?.max(1);
    let p = res.flatten_all()?.to_vec1::<T>()?;
    let mut g = grad_res.contiguous()?.flatten_all()?.to_vec1::<T>()?;
    if p.len() != g.len() {
        candle_core::bail!("softmax backward: {} probabilities but {} gradients", p.len(), g.len());
    }
    let work = g.len();
    par_rows(&mut g, width, work, |first, part| {
        let mut ps = Vec::new();
        for (i, row) in part.chunks_mut(width).enumerate() {
            let pr = T::read(&p[(first + i) * width..(first + i + 1) * width], &mut ps);
            let dot: f32 = row.iter().zip(pr).map(|(g, p)| g.to_f32() * p).sum();
            row.iter_mut().zip(pr).for_each(|(g, p)| *g = T::from_f32(scale * p * (g.to_f32() - dot)));
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

    fn forward<T: Elem>(&self, xs: &CpuStorage, xl: &Layout, ws: &CpuStorage, wl: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous::<T>(xs, xl, "rms_norm")?;
        let w = f32_values(ws, wl, "rms_norm")?;
        let w: &[f32] = &w;
        let width = w.len();
        if wl.dims().len() != 1 || xl.dims().last() != Some(&width) || width == 0 {
            candle_core::bail!("rms_norm: a weight of shape {:?} does not match an input of shape {:?}", wl.dims(), xl.dims());
        }
        // Two passes, each over the rows in parallel: the per-row `1/rms` (kept for the
        // backward), then the scaled output.
        let mut inv = vec![0f32; x.len() / width];
        let eps = self.eps;
        let divisor = if crate::fault::is(crate::fault::Fault::RmsNormDivisor) { width.saturating_sub(1).max(1) } else { width } as f32;
        par_rows(&mut inv, 1, streaming_work(x.len()), |first, part| {
            let mut xs = Vec::new();
            for (i, r) in part.iter_mut().enumerate() {
                let row = T::read(&x[(first + i) * width..(first + i + 1) * width], &mut xs);
                *r = 1.0 / (sum_of_squares(row) / divisor + eps).sqrt();
            }
        });
        let mut out = vec![T::zero(); x.len()];
        par_rows(&mut out, width, streaming_work(x.len()), |first, part| {
            for (i, row) in part.chunks_mut(width).enumerate() {
                let (r, xr) = (inv[first + i], &x[(first + i) * width..(first + i + 1) * width]);
                row.iter_mut().zip(xr.iter().zip(w)).for_each(|(o, (v, w))| *o = T::from_f32(v.to_f32() * r * w));
            }
        });
        *self.inv_rms.lock().unwrap_or_else(|e| e.into_inner()) = inv;
        Ok((T::to_cpu_storage_owned(out), xl.shape().clone()))
    }

    fn backward<T: Elem>(&self, x: &Tensor, w: &Tensor, grad_res: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let width = w.elem_count().max(1);
        let inv = self.inv_rms.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let xv = x.contiguous()?.flatten_all()?.to_vec1::<T>()?;
        let wv = f32_vec(w)?;
        let g = grad_res.contiguous()?.flatten_all()?.to_vec1::<T>()?;
        if inv.len() * width != xv.len() || g.len() != xv.len() || wv.len() != width {
            candle_core::bail!("rms_norm: backward without its forward");
        }
        let mut dx = vec![T::zero(); xv.len()];
        let mut dw = vec![0f32; width];
        let (mut xs, mut gs, mut os) = (Vec::new(), Vec::new(), Vec::new());
        for (r, (dxr, (xr, gr))) in dx.chunks_mut(width).zip(xv.chunks(width).zip(g.chunks(width))).enumerate() {
            let (xr, gr) = (T::read(xr, &mut xs), T::read(gr, &mut gs));
            let ir = inv[r];
            let mut dot = 0.0;
            for j in 0..width {
                let xhat = xr[j] * ir;
                dw[j] += gr[j] * xhat;
                dot += gr[j] * wv[j] * xhat;
            }
            let mean = dot / width as f32;
            T::write(dxr, &mut os, |dxr| {
                for j in 0..width {
                    dxr[j] = (gr[j] * wv[j] - xr[j] * ir * mean) * ir;
                }
            });
        }
        let dw = Tensor::from_vec(dw, w.shape(), w.device())?.to_dtype(w.dtype())?;
        Ok((Some(Tensor::from_vec(dx, x.shape(), x.device())?), Some(dw)))
    }
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "tensile-rms-norm"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, ws: &CpuStorage, wl: &Layout) -> Result<(CpuStorage, Shape)> {
        dispatch!(xs.dtype(), "rms_norm", T => self.forward::<T>(xs, xl, ws, wl))
    }

    /// With `x̂ = x / rms`: `dw = Σ_rows g ⊙ x̂`, and `dx = (g ⊙ w − x̂ · mean(g ⊙ w ⊙ x̂)) / rms`.
    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        dispatch!(x.dtype(), "rms_norm backward", T => self.backward::<T>(x, w, grad_res))
    }
}

/// What the kernels' tests share: the dtypes, their tolerances, the float64 twins' inputs and
/// the comparisons.
#[cfg(test)]
pub(crate) mod testing {
    use candle_core::{DType, Device, Shape, Tensor, Var};

    /// The dtypes every kernel is tested in.
    pub(crate) const DTYPES: [DType; 3] = [DType::F32, DType::BF16, DType::F16];

    /// The error a kernel's output may have in `dtype`, relative to the largest value expected
    /// (`max |got − want| / max |want|`): rounding the result once costs up to 2⁻⁹ in bf16 and
    /// 2⁻¹¹ in f16 of each value; the sums, kept in f32, add little to that.
    pub(crate) fn tolerance(dtype: DType) -> f64 {
        match dtype {
            DType::BF16 => 1e-2,
            DType::F16 => 1e-3,
            _ => 1e-5,
        }
    }

    /// The same for a gradient, which also inherits the forward's rounded output or a
    /// difference of two rounded terms (`g − Σ g·p` of a softmax): twice the value's.
    pub(crate) fn grad_tolerance(dtype: DType) -> f64 {
        2.0 * tolerance(dtype)
    }

    /// `max |got − want| / max |want|` over all values, in f64 (either may have any dtype).
    pub(crate) fn rel_err(got: &Tensor, want: &Tensor) -> f64 {
        let (got, want) = (got.to_dtype(DType::F64).unwrap(), want.to_dtype(DType::F64).unwrap());
        let scale = want.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f64>().unwrap().max(f64::MIN_POSITIVE);
        (got - want).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f64>().unwrap() / scale
    }

    /// Asserts that `got` holds `want` within `tol`, relative as in [`rel_err`].
    pub(crate) fn assert_close(what: &str, got: &Tensor, want: &Tensor, tol: f64) {
        assert_eq!(got.dims(), want.dims(), "{what}: shapes");
        let e = rel_err(got, want);
        assert!(e <= tol, "{what}: relative error {e:.3e} above {tol:.0e}");
    }

    /// Asserts that `got` (of dtype `dtype`) holds the hand-derived values `want`, row-major.
    pub(crate) fn assert_golden(what: &str, got: &Tensor, want: &[f64], dtype: DType) {
        assert_eq!(got.dtype(), dtype, "{what}: the output keeps the input's dtype");
        let want = Tensor::from_slice(want, got.shape(), &Device::Cpu).unwrap();
        assert_close(what, got, &want, tolerance(dtype));
    }

    /// Seeded normal values times `scale`, rounded to `dtype`, as a variable.
    pub(crate) fn randn(seed: u64, name: &str, shape: impl Into<Shape>, scale: f64, dtype: DType) -> Var {
        let t = (crate::init::randn(seed, name, shape, DType::F32, &Device::Cpu).unwrap() * scale).unwrap();
        Var::from_tensor(&t.to_dtype(dtype).unwrap()).unwrap()
    }

    /// The float64 twin's input: `v`'s values as they are (already rounded to `v`'s dtype, so
    /// that the comparison measures the kernel, not the input's rounding).
    pub(crate) fn twin(v: &Var) -> Var {
        Var::from_tensor(&v.as_tensor().to_dtype(DType::F64).unwrap()).unwrap()
    }

    /// The gradients of `Σ y ⊙ up` with respect to `vars` (`up` converted to `y`'s dtype).
    pub(crate) fn grads(y: &Tensor, up: &Tensor, vars: &[&Var]) -> Vec<Tensor> {
        let g = (y * up.to_dtype(y.dtype()).unwrap()).unwrap().sum_all().unwrap().backward().unwrap();
        vars.iter().map(|v| g.get(v.as_tensor()).expect("a gradient").clone()).collect()
    }

    /// Asserts the gradients of `Σ fused ⊙ up` against the twin's, each in its variable's dtype.
    pub(crate) fn assert_grads(what: &str, fused: &Tensor, vars: &[&Var], twin: &Tensor, twins: &[&Var], up: &Tensor) {
        for (i, (a, b)) in grads(fused, up, vars).iter().zip(grads(twin, up, twins)).enumerate() {
            let dtype = vars[i].dtype();
            assert_eq!(a.dtype(), dtype, "{what}: gradient {i} in its input's dtype");
            assert_close(&format!("{what}: gradient {i}"), a, &b, grad_tolerance(dtype));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use crate::training::{self, TrainingMode};
    use candle_core::{DType, Device, Tensor, Var, D};

    /// The lane-wise maximum against a plain fold, on lengths around the eight lanes, with the
    /// maximum in the tail, in a lane, and every value negative.
    #[test]
    fn lane_max_is_the_maximum() {
        assert_eq!(super::lane_max(&[]), f32::NEG_INFINITY);
        for n in [1, 7, 8, 9, 17, 64] {
            for at in [0, n / 2, n - 1] {
                let mut row: Vec<f32> = (0..n).map(|i| -100.0 - i as f32).collect();
                row[at] = -3.5;
                assert_eq!(super::lane_max(&row), -3.5, "length {n}, maximum at {at}");
            }
        }
    }

    /// Softmax over the last dimension, written out in float64.
    fn softmax64(x: &Tensor) -> Tensor {
        let e = x.broadcast_sub(&x.max_keepdim(D::Minus1).unwrap().detach()).unwrap().exp().unwrap();
        e.broadcast_div(&e.sum_keepdim(D::Minus1).unwrap()).unwrap()
    }

    /// RMSNorm written out in float64.
    fn rms_norm64(x: &Tensor, w: &Tensor, eps: f64) -> Tensor {
        let inv = (x.sqr().unwrap().mean_keepdim(D::Minus1).unwrap() + eps).unwrap().sqrt().unwrap().recip().unwrap();
        x.broadcast_mul(&inv).unwrap().broadcast_mul(w).unwrap()
    }

    #[test]
    fn the_half_types_take_the_kernels_on_the_cpu() {
        for dtype in DTYPES {
            assert!(super::fusable(&Tensor::zeros(2, dtype, &Device::Cpu).unwrap()), "{dtype:?}");
        }
        assert!(!super::fusable(&Tensor::zeros(2, DType::F64, &Device::Cpu).unwrap()));
        // Called directly on a dtype they do not take, the kernels fail with an error.
        let e = Tensor::zeros((2, 3), DType::F64, &Device::Cpu).unwrap().apply_op1(super::Softmax).unwrap_err().to_string();
        assert!(e.contains("no CPU kernel for F64"), "{e}");
    }

    /// Softmax and RMSNorm of small rows whose values are worked out by hand.
    #[test]
    fn softmax_and_rms_norm_give_hand_computed_values_in_every_dtype() {
        let dev = &Device::Cpu;
        for dtype in DTYPES {
            // e^k / (e + e² + e³ + e⁴) for k = 1..4: 0.0320586, 0.0871443, 0.2368828, 0.6439143.
            // The second row is the first plus 100, which subtracting the row maximum takes out.
            let x = Tensor::new(&[[1f32, 2., 3., 4.], [101., 102., 103., 104.]], dev).unwrap().to_dtype(dtype).unwrap();
            let p = training::scope(&TrainingMode::default(), 0, || training::softmax_last_dim(&x).unwrap());
            let row = [0.032_058_6, 0.087_144_3, 0.236_882_8, 0.643_914_3];
            assert_golden(&format!("softmax {dtype:?}"), &p, &[row, row].concat(), dtype);
            // rms(1, 2, 3, 4) = √(30/4) = 2.7386128 and rms(3, −4, 0, 0) = √(25/4) = 2.5, then
            // times w = (1, 2, 0.5, −1); eps 0.
            let x = Tensor::new(&[[1f32, 2., 3., 4.], [3., -4., 0., 0.]], dev).unwrap().to_dtype(dtype).unwrap();
            let w = Tensor::new(&[1f32, 2., 0.5, -1.], dev).unwrap().to_dtype(dtype).unwrap();
            let y = training::rms_norm(&x, &w, 0.0).unwrap();
            let want = [0.365_148_4, 1.460_593_5, 0.547_722_6, -1.460_593_5, 1.2, -3.2, 0.0, 0.0];
            assert_golden(&format!("rms_norm {dtype:?}"), &y, &want, dtype);
        }
    }

    /// Values and gradients against float64 twins, in each dtype; the second shape takes the
    /// threaded path, with rows of 515 = 64·8 + 3 values: a tail shorter than a sum's chunk.
    #[test]
    fn softmax_and_rms_norm_match_float64_twins_in_value_and_gradient() {
        for dtype in DTYPES {
            for (rows, width) in [(6, 5), (80, 515)] {
                let what = format!("{dtype:?} {rows}×{width}");
                let (x, w) = (randn(3, "x", (rows, width), 2.0, dtype), randn(4, "w", width, 1.0, dtype));
                let up = randn(5, "g", (rows, width), 1.0, dtype);
                let (x64, w64) = (twin(&x), twin(&w));
                let (sm, rms) =
                    training::scope(&TrainingMode::default(), 0, || (training::softmax_last_dim(&x).unwrap(), training::rms_norm(&x, &w, 1e-6).unwrap()));
                let (sm64, rms64) = (softmax64(&x64), rms_norm64(&x64, &w64, 1e-6));
                assert_close(&format!("softmax {what}"), &sm, &sm64, tolerance(dtype));
                assert_grads(&format!("softmax {what}"), &sm, &[&x], &sm64, &[&x64], up.as_tensor());
                assert_close(&format!("rms_norm {what}"), &rms, &rms64, tolerance(dtype));
                assert_grads(&format!("rms_norm {what}"), &rms, &[&x, &w], &rms64, &[&x64, &w64], up.as_tensor());
            }
        }
    }

    /// A bf16 activation with an f32 weight (or the other way round): the output in the
    /// activation's dtype, each gradient in its own input's.
    #[test]
    fn rms_norm_takes_a_weight_of_another_dtype() {
        for (xt, wt) in [(DType::BF16, DType::F32), (DType::F32, DType::F16)] {
            let (x, w, up) = (randn(1, "x", (3, 24), 1.0, xt), randn(2, "w", 24, 1.0, wt), randn(3, "g", (3, 24), 1.0, xt));
            let y = training::rms_norm(&x, &w, 1e-6).unwrap();
            assert_eq!(y.dtype(), xt);
            let (x64, w64) = (twin(&x), twin(&w));
            let y64 = rms_norm64(&x64, &w64, 1e-6);
            assert_close(&format!("{xt:?} × {wt:?}"), &y, &y64, tolerance(xt));
            assert_grads(&format!("{xt:?} × {wt:?}"), &y, &[&x, &w], &y64, &[&x64, &w64], up.as_tensor());
        }
    }

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
