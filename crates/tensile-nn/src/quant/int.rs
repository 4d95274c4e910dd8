//! This crate's integer formats: int8 per output channel and int4 per group of inputs.
//!
//! Both are weight-only formats: the matmul dequantizes the weight to f32 (in parallel over
//! rows) and runs candle's f32 kernel, so they save memory at rest, not arithmetic.

/// A quantized `(rows, cols)` matrix in one of the integer formats.
#[derive(Debug, Clone, PartialEq)]
pub struct IntMatrix {
    /// `(rows, cols)`, i.e. `(out, in)`.
    pub dims: (usize, usize),
    /// Inputs per scale: `cols` for int8, the group for int4.
    pub group: usize,
    /// Bits per code: 8 or 4.
    pub bits: u8,
    /// Codes: one `i8` (as `u8`) per weight for int8; two 4-bit codes per byte for int4, the
    /// even input in the low nibble.
    pub codes: Vec<u8>,
    /// One scale per group, row-major.
    pub scales: Vec<f32>,
    /// One minimum per group for asymmetric int4, empty otherwise.
    pub mins: Vec<f32>,
}

impl IntMatrix {
    /// int8 symmetric per row: `s = max|w| / 127`, `q = round(w / s)`.
    pub fn int8(w: &[f32], rows: usize, cols: usize) -> Self {
        let mut codes = Vec::with_capacity(rows * cols);
        let mut scales = Vec::with_capacity(rows);
        for row in w.chunks(cols) {
            let s = row.iter().fold(0f32, |m, x| m.max(x.abs())) / 127.0;
            let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
            codes.extend(row.iter().map(|x| ((x * inv).round().clamp(-127.0, 127.0) as i8) as u8));
            scales.push(s);
        }
        Self { dims: (rows, cols), group: cols, bits: 8, codes, scales, mins: Vec::new() }
    }

    /// int4 per group of `group` inputs. Symmetric: `s = max|w| / 7`, `q = clamp(round(w/s),
    /// −8, 7)`, stored as `q + 8`. Asymmetric: `s = (max − min) / 15`, `q = round((w − min) /
    /// s)`, the minimum kept.
    pub fn int4(w: &[f32], rows: usize, cols: usize, group: usize, symmetric: bool) -> Self {
        let mut nibbles = Vec::with_capacity(rows * cols);
        let (mut scales, mut mins) = (Vec::new(), Vec::new());
        for g in w.chunks(group) {
            if symmetric {
                let s = g.iter().fold(0f32, |m, x| m.max(x.abs())) / 7.0;
                let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
                nibbles.extend(g.iter().map(|x| ((x * inv).round().clamp(-8.0, 7.0) + 8.0) as u8));
                scales.push(s);
            } else {
                let (lo, hi) = g.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &x| (l.min(x), h.max(x)));
                let s = (hi - lo) / 15.0;
                let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
                nibbles.extend(g.iter().map(|x| ((x - lo) * inv).round().clamp(0.0, 15.0) as u8));
                scales.push(s);
                mins.push(lo);
            }
        }
        let codes = nibbles.chunks(2).map(|p| p[0] | (p.get(1).copied().unwrap_or(0) << 4)).collect();
        Self { dims: (rows, cols), group, bits: 4, codes, scales, mins }
    }

    /// Bytes held: codes, scales and minimums.
    pub fn storage_bytes(&self) -> usize {
        self.codes.len() + 4 * (self.scales.len() + self.mins.len())
    }

    /// The weight `q · s (+ m)` as f32, row-major, computed on every core.
    pub fn dequantize(&self) -> Vec<f32> {
        let (rows, cols) = self.dims;
        let mut out = vec![0f32; rows * cols];
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(rows.max(1));
        let per = rows.div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            for (t, chunk) in out.chunks_mut(per * cols).enumerate() {
                scope.spawn(move || self.dequantize_rows(t * per, chunk));
            }
        });
        out
    }

    /// `W x` for one input vector `x` (length `cols`), without dequantizing the matrix: each
    /// row's codes are multiplied with `x` group by group and scaled once per group (plus
    /// the group's minimum times the sum of its inputs when asymmetric), rows split over
    /// every core. What a single token costs, where dequantizing the whole matrix would cost
    /// several times the f32 product.
    pub fn gemv(&self, x: &[f32]) -> Vec<f32> {
        let (rows, cols) = self.dims;
        let mut out = vec![0f32; rows];
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(rows.max(1));
        let per = rows.div_ceil(threads).max(1);
        let group_sums: Vec<f32> = x.chunks(self.group).map(|g| g.iter().sum()).collect();
        std::thread::scope(|scope| {
            for (t, chunk) in out.chunks_mut(per).enumerate() {
                let group_sums = &group_sums;
                scope.spawn(move || {
                    for (k, o) in chunk.iter_mut().enumerate() {
                        *o = self.row_dot(t * per + k, x, group_sums);
                    }
                });
            }
        });
        debug_assert_eq!(x.len(), cols);
        out
    }

    /// Row `r` of the dequantized matrix times `x`.
    fn row_dot(&self, r: usize, x: &[f32], group_sums: &[f32]) -> f32 {
        let cols = self.dims.1;
        let groups_per_row = cols / self.group;
        let mut acc = 0f32;
        for g in 0..groups_per_row {
            let start = r * cols + g * self.group;
            let xs = &x[g * self.group..(g + 1) * self.group];
            let gi = start / self.group;
            let dot: f32 = match self.bits {
                8 => self.codes[start..start + self.group].iter().zip(xs).map(|(&c, &v)| f32::from(c as i8) * v).sum(),
                _ => {
                    let bytes = &self.codes[start / 2..(start + self.group) / 2];
                    let offset = if self.mins.is_empty() { 8.0 } else { 0.0 };
                    bytes.iter().zip(xs.chunks(2)).map(|(&b, v)| (f32::from(b & 0x0f) - offset) * v[0] + (f32::from(b >> 4) - offset) * v[1]).sum()
                }
            };
            acc += dot * self.scales[gi];
            if !self.mins.is_empty() {
                acc += self.mins[gi] * group_sums[g];
            }
        }
        acc
    }

    /// Rows `first..` into `out` (a whole number of rows).
    fn dequantize_rows(&self, first: usize, out: &mut [f32]) {
        let cols = self.dims.1;
        let start = first * cols;
        for (k, o) in out.iter_mut().enumerate() {
            let i = start + k;
            let g = i / self.group;
            *o = match self.bits {
                8 => f32::from(self.codes[i] as i8) * self.scales[g],
                _ => {
                    let q = (self.codes[i / 2] >> (4 * (i % 2))) & 0x0f;
                    if self.mins.is_empty() {
                        (f32::from(q) - 8.0) * self.scales[g]
                    } else {
                        f32::from(q) * self.scales[g] + self.mins[g]
                    }
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemv_equals_the_dequantized_product_in_every_format() {
        let (rows, cols) = (5, 64);
        let w: Vec<f32> = (0..rows * cols).map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0).collect();
        let x: Vec<f32> = (0..cols).map(|i| ((i * 13 % 29) as f32 - 14.0) / 7.0).collect();
        for m in [IntMatrix::int8(&w, rows, cols), IntMatrix::int4(&w, rows, cols, 32, true), IntMatrix::int4(&w, rows, cols, 32, false)] {
            let d = m.dequantize();
            let want: Vec<f32> = d.chunks(cols).map(|row| row.iter().zip(&x).map(|(a, b)| a * b).sum()).collect();
            for (a, b) in m.gemv(&x).iter().zip(&want) {
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{} bits: {a} vs {b}", m.bits);
            }
        }
    }

    #[test]
    fn int8_keeps_the_row_maximum_exactly_and_rounds_the_rest() {
        let w = [1.27f32, -0.5, 0.01, 0.0, 0.0, 0.0];
        let m = IntMatrix::int8(&w, 2, 3);
        assert_eq!(m.scales, vec![0.01, 0.0]);
        assert_eq!(m.codes[..3].iter().map(|&c| c as i8).collect::<Vec<_>>(), vec![127, -50, 1]);
        let d = m.dequantize();
        assert!((d[0] - 1.27).abs() < 1e-6 && (d[1] + 0.5).abs() < 1e-6 && (d[2] - 0.01).abs() < 1e-6);
        assert_eq!(&d[3..], &[0.0, 0.0, 0.0]);
        assert_eq!(m.storage_bytes(), 6 + 8);
    }

    #[test]
    fn int4_symmetric_packs_two_codes_a_byte() {
        // One group of 4: s = 0.7 / 7 = 0.1; codes round(w / s) + 8.
        let w = [0.7f32, -0.7, 0.1, 0.26];
        let m = IntMatrix::int4(&w, 1, 4, 4, true);
        assert_eq!(m.codes, vec![15 | (1 << 4), 9 | (11 << 4)]);
        let d = m.dequantize();
        for (a, b) in d.iter().zip([0.7, -0.7, 0.1, 0.3]) {
            assert!((a - b).abs() < 1e-6, "{d:?}");
        }
    }

    #[test]
    fn int4_asymmetric_keeps_minimum_and_maximum() {
        let w = [1.0f32, 2.5, 4.0, 2.0, -1.0, -1.0, -1.0, -1.0];
        let m = IntMatrix::int4(&w, 2, 4, 4, false);
        assert_eq!(m.mins, vec![1.0, -1.0]);
        assert_eq!(m.scales, vec![0.2, 0.0]);
        let d = m.dequantize();
        assert!((d[0] - 1.0).abs() < 1e-6 && (d[2] - 4.0).abs() < 1e-6 && (d[1] - 2.6).abs() < 1e-5);
        assert_eq!(&d[4..], &[-1.0; 4]);
        assert_eq!(m.storage_bytes(), 4 + 16);
    }
}
