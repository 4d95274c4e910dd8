//! Attention `softmax(q kᵀ · scale + band) v` as one CPU operation, tiled over queries so that
//! only the keys a tile can see are multiplied, with a recomputing backward.
//!
//! The composed path multiplies every query with every key, masks, normalises and multiplies
//! again, with a `(heads, s, t)` score tensor between the steps. Here each tile of 64 queries of
//! one head multiplies only the keys its band admits (for causal attention at s512 that is 5/8
//! of the products, for a sliding window of 128 about a quarter), normalises them in a buffer
//! of `64 × keys` values that stays in cache, and multiplies the probabilities with the same
//! keys' values. Grouped-query attention reads each key/value head once for all the query heads
//! that share it: nothing is repeated.
//!
//! The backward recomputes each tile's probabilities from `q` and `k` instead of saving them
//! (the flash-attention trade: a second `q kᵀ` against `heads × s × t` stored values), and uses
//! the output for `D = rowsum(dO ⊙ O)`. Key and value gradients accumulate over the query
//! heads of a group, so the backward runs one group per task.
//!
//! f32 throughout; bf16 and f16 inputs are converted to f32 and the output back, as PyTorch's
//! CPU attention accumulates half-precision inputs in f32.

use crate::fast_exp::exp_poly;
use crate::training_kernels::{contiguous, fusable, lane_max, lane_sum, lane_sum2};
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Query rows a tile holds.
const TILE: usize = 64;

/// Multiply-adds below which the heads run on the calling thread alone.
const SERIAL_BELOW: usize = 1 << 18;

/// Which keys a query sees, relative to its own position `p` (queries are the last `s` of the
/// `t` key positions, as with a KV cache): `[p − before, p + after]`, unbounded on a side given
/// as `None`, clipped to the keys there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Band {
    pub(crate) before: Option<usize>,
    pub(crate) after: Option<usize>,
}

impl Band {
    /// Every earlier key and the query's own.
    pub(crate) const CAUSAL: Band = Band { before: None, after: Some(0) };
    /// Every key.
    pub(crate) const FULL: Band = Band { before: None, after: None };

    /// `half` keys on either side, ModernBERT's local layers.
    pub(crate) fn window(half: usize) -> Band {
        Band { before: Some(half), after: Some(half) }
    }

    /// The keys `[lo, hi)` the query at position `p` sees among `t`.
    fn keys(&self, p: usize, t: usize) -> (usize, usize) {
        let hi = self.after.map_or(t, |w| (p + w + 1).min(t));
        let lo = self.before.map_or(0, |w| p.saturating_sub(w));
        (lo.min(hi), hi)
    }
}

/// Whether an attention over queries `q` takes this kernel: a CPU tensor in a dtype the kernels
/// take ([`fusable`]), no padding mask (`masked`), and no attention dropout, which has no step
/// inside the kernel.
pub(crate) fn applies(q: &Tensor, masked: bool) -> bool {
    !masked && fusable(q) && !crate::training::dropout_active(crate::training::DropoutSite::Attention)
}

/// The operation: `scale` and the band; `q` is `(groups, rep, s, d)`, `k` and `v` `(groups, t, d)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FlashAttention {
    scale: f32,
    band: Band,
}

impl FlashAttention {
    /// Attention of `q: (b, h, s, d)` over `k, v: (b, kvh, t, d)` (`kvh` dividing `h`; query head
    /// `i` reads key/value head `i / (h / kvh)`) → `(b, h, s, d)` in `q`'s dtype.
    pub(crate) fn apply(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64, band: Band) -> Result<Tensor> {
        let (b, h, s, d) = q.dims4()?;
        let (kb, kvh, t, kd) = k.dims4()?;
        if kb != b || kd != d || kvh == 0 || h % kvh != 0 || v.dims() != k.dims() || t < s {
            candle_core::bail!("flash attention: q {:?}, k {:?}, v {:?} do not fit", q.dims(), k.dims(), v.dims());
        }
        let dtype = q.dtype();
        let f32c = |x: &Tensor| x.to_dtype(DType::F32)?.contiguous();
        let q5 = f32c(q)?.reshape((b * kvh, h / kvh, s, d))?; // query heads grouped by their K/V head
        let (k3, v3) = (f32c(k)?.reshape((b * kvh, t, d))?, f32c(v)?.reshape((b * kvh, t, d))?);
        let op = FlashAttention { scale: scale as f32, band };
        q5.apply_op3(&k3, &v3, op)?.reshape((b, h, s, d))?.to_dtype(dtype)
    }

    /// The probabilities of the query tile `[i0, i1)` over keys `[lo, hi)` into `p` (`rows × (hi − lo)`),
    /// zero outside each query's band; returns `(lo, hi)`.
    fn probs(&self, q: &[f32], k: &[f32], (s, t, d): (usize, usize, usize), (i0, i1): (usize, usize), p: &mut Vec<f32>) -> (usize, usize) {
        let offset = t - s;
        let (lo, _) = self.band.keys(offset + i0, t);
        let (_, mut hi) = self.band.keys(offset + i1 - 1, t);
        let boundary = crate::fault::is(crate::fault::Fault::AttentionTileBoundary);
        if boundary {
            hi = (hi + 1).min(t); // the planted fault: the tile takes one key past its band
        }
        let (rows, l) = (i1 - i0, hi.saturating_sub(lo));
        p.clear();
        p.resize(rows * l, 0.0);
        if l == 0 {
            return (lo, lo);
        }
        mm(rows, l, d, p, l, false, &q[i0 * d..i1 * d], d, 1, &k[lo * d..hi * d], 1, d);
        for (r, row) in p.chunks_mut(l).enumerate() {
            let (a, mut z) = self.band.keys(offset + i0 + r, t);
            if boundary && r + 1 == rows {
                z = (z + 1).min(hi); // and its last query sees that key
            }
            let (a, z) = (a - lo, z - lo);
            // Three passes a vector wide each (maximum, exponentials, sum): the sum folded into
            // the exponential loop made it a scalar chain, 22% of attention's time at s512.
            let max = lane_max(&row[a..z]) * self.scale;
            for x in &mut row[a..z] {
                *x = exp_poly(*x * self.scale - max);
            }
            let sum = lane_sum(&row[a..z], |x| x);
            let inv = if sum > 0.0 { 1.0 / sum } else { 0.0 };
            row[a..z].iter_mut().for_each(|x| *x *= inv);
            row[..a].fill(0.0);
            row[z..].fill(0.0);
        }
        (lo, hi)
    }

    /// One query head: `out = softmax(q kᵀ) v` tile by tile.
    fn head(&self, q: &[f32], k: &[f32], v: &[f32], out: &mut [f32], dims: (usize, usize, usize), p: &mut Vec<f32>) {
        let (s, _, d) = dims;
        for i0 in (0..s).step_by(TILE) {
            let i1 = (i0 + TILE).min(s);
            let (lo, hi) = self.probs(q, k, dims, (i0, i1), p);
            let o = &mut out[i0 * d..i1 * d];
            if hi == lo {
                o.fill(0.0);
                continue;
            }
            mm(i1 - i0, d, hi - lo, o, d, false, p, hi - lo, 1, &v[lo * d..hi * d], d, 1);
        }
    }

    /// `(groups, rep, s, t, d)` after checking the operands.
    fn dims(l1: &Layout, l2: &Layout, l3: &Layout) -> Result<(usize, usize, usize, usize, usize)> {
        let (g, rep, s, d) = l1.shape().dims4()?;
        let (g2, t, d2) = l2.shape().dims3()?;
        if g2 != g || d2 != d || l3.dims() != l2.dims() || t < s {
            candle_core::bail!("flash attention: q {:?}, k {:?}, v {:?} do not fit", l1.dims(), l2.dims(), l3.dims());
        }
        Ok((g, rep, s, t, d))
    }
}

/// `dst (m × n, row stride dst_rs) (+)= a (m × k) · b (k × n)` on the calling thread, with each
/// operand given by its row and column strides.
#[allow(clippy::too_many_arguments)]
fn mm(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    a: &[f32],
    a_rs: usize,
    a_cs: usize,
    b: &[f32],
    b_rs: usize,
    b_cs: usize,
) {
    let extent = |rows: usize, cols: usize, rs: usize, cs: usize| if rows == 0 || cols == 0 { 0 } else { (rows - 1) * rs + (cols - 1) * cs + 1 };
    assert!(extent(m, n, dst_rs, 1) <= dst.len() && extent(m, k, a_rs, a_cs) <= a.len() && extent(k, n, b_rs, b_cs) <= b.len(), "mm operands out of bounds");
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    // SAFETY: the assertion above keeps every access inside its slice, and `dst` is a unique
    // borrow, so it aliases neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

fn flat(x: &Tensor) -> Result<Vec<f32>> {
    x.to_dtype(DType::F32)?.contiguous()?.flatten_all()?.to_vec1::<f32>()
}

impl CustomOp3 for FlashAttention {
    fn name(&self) -> &'static str {
        "tensile-flash-attention"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> Result<(CpuStorage, Shape)> {
        let (g, rep, s, t, d) = Self::dims(l1, l2, l3)?;
        let at = |s, l| contiguous::<f32>(s, l, "flash attention");
        let (q, k, v) = (at(s1, l1)?, at(s2, l2)?, at(s3, l3)?);
        let mut out = vec![0f32; g * rep * s * d];
        if out.is_empty() {
            return Ok((CpuStorage::F32(out), l1.shape().clone()));
        }
        let head = |(i, o): (usize, &mut [f32]), p: &mut Vec<f32>| {
            let kv = (i / rep) * t * d..(i / rep + 1) * t * d;
            self.head(&q[i * s * d..(i + 1) * s * d], &k[kv.clone()], &v[kv], o, (s, t, d), p);
        };
        if g * rep * s * t * d < SERIAL_BELOW {
            let mut p = Vec::new();
            out.chunks_mut(s * d).enumerate().for_each(|io| head(io, &mut p));
        } else {
            out.par_chunks_mut(s * d).enumerate().for_each_init(Vec::new, |p, io| head(io, p));
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    /// Per tile, with `P` recomputed: `dV += Pᵀ dO`, `dP = dO Vᵀ`,
    /// `dS = P ⊙ (dP − rowsum(dO ⊙ O)) · scale`, `dQ = dS K`, `dK += dSᵀ Q`.
    fn bwd(&self, q: &Tensor, k: &Tensor, v: &Tensor, res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (g, rep, s, d) = q.dims4()?;
        let t = k.dim(1)?;
        let (qv, kv, vv, ov, gv) = (flat(q)?, flat(k)?, flat(v)?, flat(res)?, flat(grad)?);
        let (mut dq, mut dk, mut dv) = (vec![0f32; qv.len()], vec![0f32; kv.len()], vec![0f32; vv.len()]);
        let group = |gi: usize, dq: &mut [f32], dk: &mut [f32], dv: &mut [f32]| {
            let (kk, vvv) = (&kv[gi * t * d..(gi + 1) * t * d], &vv[gi * t * d..(gi + 1) * t * d]);
            let (mut p, mut dp) = (Vec::new(), Vec::new());
            for j in 0..rep {
                let hq = (gi * rep + j) * s * d..(gi * rep + j + 1) * s * d;
                let (qh, oh, gh) = (&qv[hq.clone()], &ov[hq.clone()], &gv[hq]);
                let dqh = &mut dq[j * s * d..(j + 1) * s * d];
                for i0 in (0..s).step_by(TILE) {
                    let i1 = (i0 + TILE).min(s);
                    let (lo, hi) = self.probs(qh, kk, (s, t, d), (i0, i1), &mut p);
                    let (rows, l) = (i1 - i0, hi - lo);
                    if l == 0 {
                        continue;
                    }
                    let (go, gq) = (&gh[i0 * d..i1 * d], &qh[i0 * d..i1 * d]);
                    mm(l, d, rows, &mut dv[lo * d..hi * d], d, true, &p, 1, l, go, d, 1); // dV += Pᵀ dO
                    dp.clear();
                    dp.resize(rows * l, 0.0);
                    mm(rows, l, d, &mut dp, l, false, go, d, 1, &vvv[lo * d..hi * d], 1, d); // dP = dO Vᵀ
                    for r in 0..rows {
                        let dr = lane_sum2(&go[r * d..(r + 1) * d], &oh[(i0 + r) * d..(i0 + r + 1) * d], |a, b| a * b);
                        for (x, pr) in dp[r * l..(r + 1) * l].iter_mut().zip(&p[r * l..(r + 1) * l]) {
                            *x = pr * (*x - dr) * self.scale;
                        }
                    }
                    mm(rows, d, l, &mut dqh[i0 * d..i1 * d], d, false, &dp, l, 1, &kk[lo * d..hi * d], d, 1); // dQ = dS K
                    mm(l, d, rows, &mut dk[lo * d..hi * d], d, true, &dp, 1, l, gq, d, 1);
                    // dK += dSᵀ Q
                }
            }
        };
        let work = g * rep * s * t * d;
        let (qc, kc) = (rep * s * d, t * d);
        if work < SERIAL_BELOW {
            for (gi, ((a, b), c)) in dq.chunks_mut(qc).zip(dk.chunks_mut(kc)).zip(dv.chunks_mut(kc)).enumerate() {
                group(gi, a, b, c);
            }
        } else {
            dq.par_chunks_mut(qc).zip(dk.par_chunks_mut(kc)).zip(dv.par_chunks_mut(kc)).enumerate().for_each(|(gi, ((a, b), c))| group(gi, a, b, c));
        }
        let back = |x: Vec<f32>, like: &Tensor| Tensor::from_vec(x, like.shape(), like.device())?.to_dtype(like.dtype());
        Ok((Some(back(dq, q)?), Some(back(dk, k)?), Some(back(dv, v)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var, D};

    fn randn(seed: u64, shape: &[usize]) -> Tensor {
        crate::init::randn(seed, "fa", shape.to_vec(), DType::F32, &Device::Cpu).unwrap()
    }

    /// The written-out formula in f64: K/V repeated per query head, the band as a mask, and a
    /// softmax shifted by its row maximum.
    fn naive(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64, band: Band) -> Tensor {
        let (b, h, s, d) = q.dims4().unwrap();
        let (kvh, t) = (k.dim(1).unwrap(), k.dim(2).unwrap());
        let rep = h / kvh;
        let f = |x: &Tensor| x.to_dtype(DType::F64).unwrap();
        let expand = |x: &Tensor| f(x).unsqueeze(2).unwrap().expand((b, kvh, rep, t, d)).unwrap().reshape((b, h, t, d)).unwrap();
        let (q, k, v) = (f(q), expand(k), expand(v));
        let mask: Vec<f64> = (0..s)
            .flat_map(|i| {
                let (lo, hi) = band.keys(t - s + i, t);
                (0..t).map(move |j| if (lo..hi).contains(&j) { 0.0 } else { -1e30 })
            })
            .collect();
        let mask = Tensor::from_vec(mask, (1, 1, s, t), &Device::Cpu).unwrap();
        let scores = (q.matmul(&k.t().unwrap()).unwrap() * scale).unwrap().broadcast_add(&mask).unwrap();
        let max = scores.max_keepdim(D::Minus1).unwrap().detach();
        let e = scores.broadcast_sub(&max).unwrap().exp().unwrap();
        let p = e.broadcast_div(&e.sum_keepdim(D::Minus1).unwrap()).unwrap();
        p.matmul(&v).unwrap()
    }

    fn max_diff(x: &Tensor, y: &Tensor) -> f64 {
        let d = (x.to_dtype(DType::F64).unwrap() - y.to_dtype(DType::F64).unwrap()).unwrap();
        d.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f64>().unwrap()
    }

    /// Values and the gradients of `q`, `k` and `v` against the formula, for causal, full and
    /// windowed bands, grouped queries, a KV cache (fewer queries than keys), tiles with a short
    /// tail, and sizes on either side of the threading threshold.
    #[test]
    fn matches_the_formula_in_value_and_gradient() {
        // (batch, heads, K/V heads, queries, keys, head size) and the band.
        type Case = ((usize, usize, usize, usize, usize, usize), Band);
        let cases: [Case; 6] = [
            ((1, 4, 2, 70, 70, 16), Band::CAUSAL),
            ((2, 2, 2, 5, 9, 8), Band::CAUSAL),
            ((1, 3, 1, 130, 130, 8), Band::window(20)),
            ((2, 2, 1, 33, 33, 4), Band::FULL),
            ((1, 8, 2, 200, 200, 32), Band::CAUSAL),
            ((1, 2, 2, 1, 40, 8), Band::CAUSAL),
        ];
        for ((b, h, kvh, s, t, d), band) in cases {
            let q = Var::from_tensor(&randn(1, &[b, h, s, d])).unwrap();
            let k = Var::from_tensor(&randn(2, &[b, kvh, t, d])).unwrap();
            let v = Var::from_tensor(&randn(3, &[b, kvh, t, d])).unwrap();
            let scale = (d as f64).powf(-0.5);
            let ours = FlashAttention::apply(&q, &k, &v, scale, band).unwrap();
            let want = naive(&q, &k, &v, scale, band);
            let what = format!("b{b} h{h} kvh{kvh} s{s} t{t} d{d} {band:?}");
            assert!(max_diff(&ours, &want) < 1e-5, "{what}: {}", max_diff(&ours, &want));
            let up = randn(4, &[b, h, s, d]);
            let go = (&ours * &up).unwrap().sum_all().unwrap().backward().unwrap();
            let gw = (&want * up.to_dtype(DType::F64).unwrap()).unwrap().sum_all().unwrap().backward().unwrap();
            for (name, x) in [("q", &q), ("k", &k), ("v", &v)] {
                let (a, e) = (go.get(x.as_tensor()).unwrap(), gw.get(x.as_tensor()).unwrap());
                assert!(max_diff(a, e) < 1e-4, "{what}: ∂{name} off by {}", max_diff(a, e));
            }
        }
    }

    /// By hand: with equal scores, each causal query averages the values it sees: the first
    /// sees `v₀ = 2`, the second `(2 + 4) / 2`; a window of 0 sees only its own value.
    #[test]
    fn equal_scores_average_the_visible_values() {
        for dtype in crate::training_kernels::testing::DTYPES {
            let q = Tensor::zeros((1, 1, 2, 1), dtype, &Device::Cpu).unwrap();
            let v = Tensor::new(&[2f32, 4.], &Device::Cpu).unwrap().to_dtype(dtype).unwrap().reshape((1, 1, 2, 1)).unwrap();
            let out =
                |band| FlashAttention::apply(&q, &q, &v, 1.0, band).unwrap().to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert_eq!(out(Band::CAUSAL), vec![2.0, 3.0], "{dtype:?}");
            assert_eq!(out(Band::FULL), vec![3.0, 3.0], "{dtype:?}");
            assert_eq!(out(Band::window(0)), vec![2.0, 4.0], "{dtype:?}");
        }
    }

    /// In every dtype, values and the three gradients against the float64 formula on the same
    /// (rounded) inputs: causal with grouped queries and a tile tail, and windowed.
    #[test]
    fn matches_a_float64_twin_in_every_dtype() {
        use crate::training_kernels::testing::*;
        for dtype in DTYPES {
            for ((h, kvh, s, d), band) in [((4, 2, 70, 16), Band::CAUSAL), ((2, 1, 40, 8), Band::window(5))] {
                let what = format!("{dtype:?} h{h} kvh{kvh} s{s} {band:?}");
                let (q, k, v) = (randn(1, "q", (1, h, s, d), 1.0, dtype), randn(2, "k", (1, kvh, s, d), 1.0, dtype), randn(3, "v", (1, kvh, s, d), 1.0, dtype));
                let (q64, k64, v64) = (twin(&q), twin(&k), twin(&v));
                let ours = FlashAttention::apply(&q, &k, &v, 0.3, band).unwrap();
                assert_eq!(ours.dtype(), dtype);
                let want = naive(&q64, &k64, &v64, 0.3, band);
                assert_close(&what, &ours, &want, tolerance(dtype));
                let up = randn(4, "up", (1, h, s, d), 1.0, dtype);
                assert_grads(&what, &ours, &[&q, &k, &v], &want, &[&q64, &k64, &v64], up.as_tensor());
            }
        }
    }

    /// bf16 and f16 inputs give their own dtype back, within that dtype's precision of the f32 result.
    #[test]
    fn half_precision_inputs_compute_in_f32() {
        let (q, k, v) = (randn(1, &[1, 4, 67, 16]), randn(2, &[1, 2, 67, 16]), randn(3, &[1, 2, 67, 16]));
        let f32_out = FlashAttention::apply(&q, &k, &v, 0.25, Band::CAUSAL).unwrap();
        for (dtype, tol) in [(DType::BF16, 3e-2), (DType::F16, 4e-3)] {
            let c = |x: &Tensor| x.to_dtype(dtype).unwrap();
            let out = FlashAttention::apply(&c(&q), &c(&k), &c(&v), 0.25, Band::CAUSAL).unwrap();
            assert_eq!(out.dtype(), dtype);
            assert!(max_diff(&out, &f32_out) < tol, "{dtype:?}: {}", max_diff(&out, &f32_out));
        }
    }

    /// Operands that do not fit are errors, not panics.
    #[test]
    fn mismatched_operands_are_errors() {
        let q = randn(1, &[1, 3, 4, 8]);
        assert!(FlashAttention::apply(&q, &randn(2, &[1, 2, 4, 8]), &randn(3, &[1, 2, 4, 8]), 1.0, Band::CAUSAL).is_err(), "3 heads over 2");
        assert!(FlashAttention::apply(&q, &randn(2, &[1, 1, 3, 8]), &randn(3, &[1, 1, 3, 8]), 1.0, Band::CAUSAL).is_err(), "more queries than keys");
        assert!(FlashAttention::apply(&q, &randn(2, &[1, 1, 4, 8]), &randn(3, &[1, 1, 5, 8]), 1.0, Band::CAUSAL).is_err(), "k and v differ");
        assert!(FlashAttention::apply(&q, &randn(2, &[1, 1, 4, 4]), &randn(3, &[1, 1, 4, 4]), 1.0, Band::CAUSAL).is_err(), "head sizes differ");
    }
}
