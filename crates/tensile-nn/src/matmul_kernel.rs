//! Batched matrix products for f32 CPU tensors through the `gemm` crate directly, with the
//! operand layout and the threading chosen per call, and a backward so training uses them.
//!
//! candle multiplies through the same crate, but two of its choices cost time on the
//! products a transformer makes:
//! - `x Wᵀ` with the PyTorch `(out, in)` weight passes `Wᵀ` as a strided view and asks for a
//!   row-major result, which the crate turns into packing the whole weight on every call. Asked
//!   for a column-major result instead (then transposed), the crate streams the weight as it
//!   lies: 128×4096×14336 went from 111 to 72 ms here (the best of five interleaved runs each,
//!   2 threads). When the rows outnumber half the depth, the packing costs less than the
//!   transpose, and the row-major call stays ([`COLUMN_MAJOR_FROM`]).
//! - Every product, however small, is handed to every thread of the pool. Below about 2²⁴
//!   multiply-adds one thread is faster (64×256×256: 77 µs alone, 108 µs on two), and the many
//!   small per-head products of attention are better split across heads, one thread each.

use crate::training_kernels::contiguous;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Multiply-adds below which one product runs on the calling thread alone.
const SERIAL_BELOW: usize = 1 << 24;

/// `a · bᵀ` is computed column-major and transposed when `b` has at least this many values
/// and the depth `k` exceeds twice the rows `m` of `a`. The row-major call makes gemm copy all
/// of `b` into its packed layout, `k / m` copies per output value, while the column-major one
/// streams `b` as it lies but then transposes the result, about 1.4 ns per output value here.
/// Best of five interleaved runs on 2 threads, gemm alone: 128×4096×4096 31 against 65 ms
/// (k/m = 32), 512×2816×1024 16.8 against 21.9 (5.5), 256×1024×2816 6.6 against 8.6 (4), and
/// equal at 512×1024×2816 (2) and 4096×384×1536 (0.1), where the transpose would be pure cost;
/// `tensile embed` (576 rows of depth 384) spent 12% of its time transposing before this rule.
const COLUMN_MAJOR_FROM: usize = 1 << 16;

/// Whether `a` and `b` are f32 tensors on the CPU, the case this kernel handles.
fn fusable(a: &Tensor, b: &Tensor) -> bool {
    a.dtype() == DType::F32 && b.dtype() == DType::F32 && a.device().is_cpu() && b.device().is_cpu()
}

/// `a · bᵀ` (`transposed`) or `a · b` over a shared batch: `a: (…, m, k)` and
/// `b: (…, n, k)` or `(…, k, n)` with the same leading dimensions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchedMatmul {
    transposed: bool,
}

impl BatchedMatmul {
    /// `a · bᵀ` for `a: (…, m, k)`, `b: (…, n, k)` → `(…, m, n)`; candle's matmul for other
    /// dtypes and devices.
    pub(crate) fn nt(a: &Tensor, b: &Tensor) -> Result<Tensor> {
        if fusable(a, b) && a.rank() >= 2 && a.rank() == b.rank() {
            a.contiguous()?.apply_op2(&b.contiguous()?, Self { transposed: true })
        } else {
            a.matmul(&b.t()?)
        }
    }

    /// `x · wᵀ + bias` for `x: (m, k)`, `w: (n, k)`, `bias: (n)` → `(m, n)`, the bias written
    /// before the product is added; candle's operations for other dtypes and devices.
    pub(crate) fn nt_bias(x: &Tensor, w: &Tensor, bias: &Tensor) -> Result<Tensor> {
        if fusable(x, w) && fusable(bias, bias) && x.rank() == 2 && w.rank() == 2 && bias.rank() == 1 {
            x.contiguous()?.apply_op3(&w.contiguous()?, &bias.contiguous()?, Biased(Self { transposed: true }))
        } else {
            Self::nt(x, w)?.broadcast_add(bias)
        }
    }

    /// `a · b` for `a: (…, m, k)`, `b: (…, k, n)` → `(…, m, n)`; candle's matmul for other
    /// dtypes and devices.
    pub(crate) fn nn(a: &Tensor, b: &Tensor) -> Result<Tensor> {
        if fusable(a, b) && a.rank() >= 2 && a.rank() == b.rank() {
            a.contiguous()?.apply_op2(&b.contiguous()?, Self { transposed: false })
        } else {
            a.matmul(b)
        }
    }

    /// `(batch, m, k, n)`, after checking that the operands agree.
    fn dims(&self, la: &Layout, lb: &Layout) -> Result<(usize, usize, usize, usize)> {
        let (da, db) = (la.dims(), lb.dims());
        let r = da.len();
        if r < 2 || db.len() != r || da[..r - 2] != db[..r - 2] {
            candle_core::bail!("batched matmul: shapes {da:?} and {db:?} do not share a batch");
        }
        let (m, k) = (da[r - 2], da[r - 1]);
        let (n, kb) = if self.transposed { (db[r - 2], db[r - 1]) } else { (db[r - 1], db[r - 2]) };
        if k != kb {
            candle_core::bail!("batched matmul: inner dimensions {k} and {kb} differ ({da:?}, {db:?})");
        }
        Ok((da[..r - 2].iter().product(), m, k, n))
    }
}

/// `out = a · bᵀ` (`transposed`) or `a · b` for one `(m, k)` left operand, all row-major.
///
/// A transposed product with few rows against a large `b` is computed column-major into
/// `scratch` and transposed into `out` (see [`COLUMN_MAJOR_FROM`] for when and why).
#[allow(clippy::too_many_arguments)]
fn product(
    a: &[f32],
    b: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
    (m, k, n): (usize, usize, usize),
    transposed: bool,
    threads: usize,
) {
    let par = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    let (mi, ki, ni) = (m as isize, k as isize, n as isize);
    // A bias is written first and the product added onto it (gemm's `dst = dst + a·b`), which
    // saves a separate broadcast addition: a pass over the output, and candle's own thread pool.
    let read = bias.is_some();
    let column_major = transposed && k > 2 * m && n * k >= COLUMN_MAJOR_FROM;
    match bias {
        Some(bias) if column_major => {
            scratch.clear();
            scratch.extend(bias.iter().flat_map(|v| std::iter::repeat_n(*v, m)));
        }
        Some(bias) => out.chunks_mut(n).for_each(|row| row.copy_from_slice(bias)),
        None if column_major => {
            scratch.clear();
            scratch.resize(m * n, 0.0);
        }
        // `out` comes zeroed from its allocation, and gemm writes it without reading.
        None => {}
    }
    if k > 0 {
        // SAFETY: every pointer addresses a slice of exactly the extent its strides span
        // (`a`: m·k, `b`: n·k, `out` and `scratch`: m·n), checked by the callers' shapes, and
        // the destination does not alias either operand.
        unsafe {
            if column_major {
                // dst[i, j] at i + j·m (column-major), lhs[i, p] at i·k + p, rhs[p, j] = b[j, p] at j·k + p.
                gemm::gemm(m, n, k, scratch.as_mut_ptr(), mi, 1, read, a.as_ptr(), 1, ki, b.as_ptr(), ki, 1, 1.0, 1.0, false, false, false, par);
            } else if transposed {
                gemm::gemm(m, n, k, out.as_mut_ptr(), 1, ni, read, a.as_ptr(), 1, ki, b.as_ptr(), ki, 1, 1.0, 1.0, false, false, false, par);
            } else {
                gemm::gemm(m, n, k, out.as_mut_ptr(), 1, ni, read, a.as_ptr(), 1, ki, b.as_ptr(), 1, ni, 1.0, 1.0, false, false, false, par);
            }
        }
    }
    if column_major {
        transpose(scratch, n, m, out);
    }
    if crate::fault::is(crate::fault::Fault::LinearLastFeature) && n > 0 {
        out.chunks_mut(n).for_each(|row| row[n - 1] = 0.0);
    }
}

/// Writes the `(cols, rows)` transpose of `src: (rows, cols)` into `dst`, in tiles of 64 source
/// rows by 16 columns (one cache line of each row): a tile's 64 lines stay in L1 while its 16
/// output rows are written 64 values at a time. Measured on 2816×512: 1.45 ns a value, against
/// 2.2 for a pass over all rows per block of 8 columns, which streams the whole source through
/// the cache once per block.
fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    const R: usize = 64;
    const C: usize = 16;
    for r0 in (0..rows).step_by(R) {
        let r1 = (r0 + R).min(rows);
        for c0 in (0..cols).step_by(C) {
            for c in c0..(c0 + C).min(cols) {
                for (k, x) in dst[c * rows + r0..c * rows + r1].iter_mut().enumerate() {
                    *x = src[(r0 + k) * cols + c];
                }
            }
        }
    }
}

impl CustomOp2 for BatchedMatmul {
    fn name(&self) -> &'static str {
        if self.transposed {
            "tensile-matmul-nt"
        } else {
            "tensile-matmul-nn"
        }
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        self.forward(s1, l1, s2, l2, None)
    }

    /// For `y = a bᵀ`: `∂a = g b` and `∂b = gᵀ a`; for `y = a b`: `∂a = g bᵀ` and `∂b = aᵀ g`.
    /// The products run through this kernel again, so training gets the same layouts.
    fn bwd(&self, a: &Tensor, b: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        self.backward(a, b, grad)
    }
}

impl BatchedMatmul {
    fn forward(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, bias: Option<&[f32]>) -> Result<(CpuStorage, Shape)> {
        let (batch, m, k, n) = self.dims(l1, l2)?;
        let (a, b) = (contiguous::<f32>(s1, l1, "batched matmul")?, contiguous::<f32>(s2, l2, "batched matmul")?);
        if bias.is_some_and(|v| v.len() != n) {
            candle_core::bail!("batched matmul: a bias of {} values for {n} outputs", bias.map_or(0, <[f32]>::len));
        }
        let mut out = vec![0f32; batch * m * n];
        let mut shape = l1.dims().to_vec();
        *shape.last_mut().expect("rank ≥ 2") = n;
        if out.is_empty() {
            return Ok((CpuStorage::F32(out), Shape::from(shape)));
        }
        let pool = rayon::current_num_threads();
        let each = m * n * k;
        let one = |(i, o): (usize, &mut [f32]), threads: usize, scratch: &mut Vec<f32>| {
            product(&a[i * m * k..(i + 1) * m * k], &b[i * n * k..(i + 1) * n * k], bias, o, scratch, (m, k, n), self.transposed, threads)
        };
        if batch > 1 && batch * each >= SERIAL_BELOW && pool > 1 {
            // Many products: one thread each, so no product is split into parts too small to
            // pay for the hand-off.
            out.par_chunks_mut(m * n).enumerate().for_each_init(Vec::new, |scratch, io| one(io, 1, scratch));
        } else {
            let threads = if each < SERIAL_BELOW { 1 } else { pool };
            let mut scratch = Vec::new();
            out.chunks_mut(m * n).enumerate().for_each(|io| one(io, threads, &mut scratch));
        }
        Ok((CpuStorage::F32(out), Shape::from(shape)))
    }

    fn backward(&self, a: &Tensor, b: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let r = a.rank();
        let gt = grad.transpose(r - 2, r - 1)?;
        let at = a.transpose(r - 2, r - 1)?;
        if self.transposed {
            Ok((Some(Self::nn(grad, b)?), Some(Self::nn(&gt, a)?)))
        } else {
            Ok((Some(Self::nt(grad, b)?), Some(Self::nn(&at, grad)?)))
        }
    }
}

/// [`BatchedMatmul`] with a bias added to every row of the result.
#[derive(Debug, Clone, Copy)]
struct Biased(BatchedMatmul);

impl CustomOp3 for Biased {
    fn name(&self) -> &'static str {
        "tensile-matmul-nt-bias"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> Result<(CpuStorage, Shape)> {
        self.0.forward(s1, l1, s2, l2, Some(contiguous::<f32>(s3, l3, "batched matmul")?))
    }

    /// The product's gradients, and `∂bias = Σ_rows g`.
    fn bwd(&self, a: &Tensor, b: &Tensor, _bias: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (da, db) = self.0.backward(a, b, grad)?;
        Ok((da, db, Some(grad.sum(0)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn randn(seed: u64, shape: &[usize]) -> Tensor {
        crate::init::randn(seed, "m", shape.to_vec(), DType::F32, &Device::Cpu).unwrap()
    }

    fn max_diff(x: &Tensor, y: &Tensor) -> f32 {
        (x - y).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    /// Both products, in value and in both gradients, against candle's matmul, on shapes that
    /// take every path: one serial product, a large row-major one on the pool, column-major
    /// with and without the pool, many small ones split across the pool, edges of one row or one column, and a depth of one.
    #[test]
    fn matches_candle_in_value_and_gradient() {
        let shapes: [(&[usize], usize, usize, usize); 9] = [
            (&[], 3, 5, 4),
            (&[], 1100, 200, 100),
            (&[], 300, 260, 270),
            (&[], 70, 300, 260),
            (&[], 120, 600, 300),
            (&[2, 3], 70, 64, 90),
            (&[4], 1, 33, 17),
            (&[], 9, 1, 1),
            (&[2], 5, 7, 1),
        ];
        for (lead, m, k, n) in shapes {
            let sh = |x: usize, y: usize| [lead, &[x, y]].concat();
            let a = Var::from_tensor(&randn(1, &sh(m, k))).unwrap();
            for transposed in [true, false] {
                let b = Var::from_tensor(&randn(2, &if transposed { sh(n, k) } else { sh(k, n) })).unwrap();
                let (ours, theirs) = if transposed {
                    (BatchedMatmul::nt(&a, &b).unwrap(), a.matmul(&b.t().unwrap()).unwrap())
                } else {
                    (BatchedMatmul::nn(&a, &b).unwrap(), a.matmul(&b).unwrap())
                };
                assert_eq!(ours.dims(), theirs.dims());
                let tol = 1e-5 * (k as f32).sqrt() * 4.0;
                assert!(max_diff(&ours, &theirs) < tol, "{lead:?} {m}×{k}×{n} t={transposed}: {}", max_diff(&ours, &theirs));
                let up = randn(3, ours.dims());
                let go = (&ours * &up).unwrap().sum_all().unwrap().backward().unwrap();
                let gt = (&theirs * &up).unwrap().sum_all().unwrap().backward().unwrap();
                for v in [&a, &b] {
                    let (x, y) = (go.get(v.as_tensor()).unwrap(), gt.get(v.as_tensor()).unwrap());
                    assert!(max_diff(x, y) < tol * 4.0, "{lead:?} {m}×{k}×{n} t={transposed} gradient: {}", max_diff(x, y));
                }
            }
        }
    }

    /// The transpose against its definition, on widths with and without a partial block.
    #[test]
    fn transpose_moves_every_value() {
        for (rows, cols) in [(3, 8), (5, 19), (1, 1), (17, 3)] {
            let src: Vec<f32> = (0..rows * cols).map(|v| v as f32).collect();
            let mut dst = vec![-1f32; rows * cols];
            transpose(&src, rows, cols, &mut dst);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(dst[c * rows + r], (r * cols + c) as f32, "{rows}×{cols} at ({r}, {c})");
                }
            }
        }
    }

    /// `x · wᵀ + bias` in value and in the gradients of all three against candle's composition,
    /// on shapes that take the column-major path (with the pool and without) and the row-major
    /// one; a bias of the wrong length is an error.
    #[test]
    fn the_biased_product_matches_candle_in_value_and_gradient() {
        for (m, k, n) in [(3, 5, 4), (70, 300, 260), (120, 600, 300), (1100, 200, 100), (4, 0, 3)] {
            let x = Var::from_tensor(&randn(1, &[m, k])).unwrap();
            let w = Var::from_tensor(&randn(2, &[n, k])).unwrap();
            let b = Var::from_tensor(&randn(3, &[n])).unwrap();
            let ours = BatchedMatmul::nt_bias(&x, &w, &b).unwrap();
            let theirs = x.matmul(&w.t().unwrap()).unwrap().broadcast_add(&b).unwrap();
            let tol = 1e-5 * (k.max(1) as f32).sqrt() * 4.0;
            assert!(max_diff(&ours, &theirs) < tol, "{m}×{k}×{n}: {}", max_diff(&ours, &theirs));
            let up = randn(4, &[m, n]);
            let go = (&ours * &up).unwrap().sum_all().unwrap().backward().unwrap();
            let gt = (&theirs * &up).unwrap().sum_all().unwrap().backward().unwrap();
            for v in [&x, &w, &b] {
                if v.elem_count() == 0 {
                    continue;
                }
                let (a, e) = (go.get(v.as_tensor()).unwrap(), gt.get(v.as_tensor()).unwrap());
                assert!(max_diff(a, e) < tol * 4.0, "{m}×{k}×{n} gradient: {}", max_diff(a, e));
            }
        }
        assert!(BatchedMatmul::nt_bias(&randn(1, &[3, 4]), &randn(2, &[5, 4]), &randn(3, &[4])).is_err(), "4 bias values for 5 outputs");
    }

    /// A hand-checked product: `[[1, 2], [3, 4]] · [[5, 6], [7, 8]]ᵀ = [[17, 23], [39, 53]]`.
    #[test]
    fn a_small_product_by_hand() {
        let a = Tensor::new(&[[1f32, 2.], [3., 4.]], &Device::Cpu).unwrap();
        let b = Tensor::new(&[[5f32, 6.], [7., 8.]], &Device::Cpu).unwrap();
        assert_eq!(BatchedMatmul::nt(&a, &b).unwrap().to_vec2::<f32>().unwrap(), vec![vec![17., 23.], vec![39., 53.]]);
        assert_eq!(BatchedMatmul::nn(&a, &b).unwrap().to_vec2::<f32>().unwrap(), vec![vec![19., 22.], vec![43., 50.]]);
        let bias = Tensor::new(&[1f32, -1.], &Device::Cpu).unwrap();
        assert_eq!(BatchedMatmul::nt_bias(&a, &b, &bias).unwrap().to_vec2::<f32>().unwrap(), vec![vec![18., 22.], vec![40., 52.]]);
    }

    /// Operands that do not fit are an error, not a panic; other dtypes take candle's matmul.
    #[test]
    fn mismatched_operands_are_errors_and_other_dtypes_fall_back() {
        let (a, b) = (randn(1, &[2, 3, 4]), randn(2, &[3, 5, 4]));
        assert!(BatchedMatmul::nt(&a, &b).is_err(), "batches 2 and 3");
        assert!(BatchedMatmul::nt(&randn(1, &[3, 4]), &randn(2, &[5, 3])).is_err(), "depths 4 and 3");
        let (a, b) = (randn(1, &[3, 4]).to_dtype(DType::F64).unwrap(), randn(2, &[5, 4]).to_dtype(DType::F64).unwrap());
        assert_eq!(BatchedMatmul::nt(&a, &b).unwrap().dims(), &[3, 5]);
        let empty = Tensor::zeros((0, 4), DType::F32, &Device::Cpu).unwrap();
        assert_eq!(BatchedMatmul::nt(&empty, &randn(2, &[5, 4])).unwrap().dims(), &[0, 5]);
        let flat = Tensor::zeros((3, 0), DType::F32, &Device::Cpu).unwrap();
        let zeros = BatchedMatmul::nt(&flat, &Tensor::zeros((2, 0), DType::F32, &Device::Cpu).unwrap()).unwrap();
        assert_eq!(zeros.to_vec2::<f32>().unwrap(), vec![vec![0.; 2]; 3], "a product of depth 0 is zero");
    }
}
