//! Pass/fail thresholds for a comparison, with per-dtype defaults.

use crate::metrics::Comparison;
use crate::validate;
use candle_core::DType;
use serde::{Deserialize, Serialize};

/// Thresholds in the style of `torch.testing.assert_close`: every element must satisfy
/// `|a − e| ≤ atol + rtol·|e|`; in addition the PCC and cosine similarity must reach their
/// minimums.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Tolerance {
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance.
    pub rtol: f64,
    /// Minimum Pearson correlation.
    pub min_pcc: f64,
    /// Minimum cosine similarity.
    pub min_cosine: f64,
}

impl Tolerance {
    /// Defaults for a module's output in `dtype`, measured against a float64 reference.
    ///
    /// `torch.testing.assert_close` uses (atol, rtol) = (1e-5, 1.3e-6) for f32, (1e-5, 1.6e-2)
    /// for bf16 and (1e-5, 1e-3) for f16: tolerances for one rounding. A whole module
    /// accumulates hundreds of roundings through its matmuls and reductions, so the module
    /// defaults here allow a few units of that dtype's epsilon in both terms.
    pub fn for_dtype(dtype: DType) -> Self {
        match dtype {
            DType::F64 => Self { atol: 1e-9, rtol: 1e-9, min_pcc: 1.0 - 1e-12, min_cosine: 1.0 - 1e-12 },
            DType::BF16 => Self { atol: 5e-2, rtol: 5e-2, min_pcc: 0.999, min_cosine: 0.999 },
            DType::F16 => Self { atol: 5e-3, rtol: 5e-3, min_pcc: 0.9999, min_cosine: 0.9999 },
            _ => Self { atol: 1e-4, rtol: 1e-4, min_pcc: 0.99999, min_cosine: 0.99999 },
        }
    }

    /// The default for a module whose linear layers run candle's quantized GGUF kernels,
    /// compared with its twin (the same math in float64 over the dequantized weights): the
    /// kernels round the activations to 8 bits per block before each dot product, so the
    /// output keeps a correlation of 0.9999 with the twin (or the dtype's own bound, if
    /// lower) and each element gets 0.05 more room, absolute and relative, than the dtype
    /// allows: in f32, 0.0501 where plain f32 keeps 1e-4.
    pub fn for_quantized_kernels(dtype: DType) -> Self {
        let d = Self::for_dtype(dtype);
        Self { atol: d.atol + 0.05, rtol: d.rtol + 0.05, min_pcc: d.min_pcc.min(0.9999), min_cosine: d.min_cosine.min(0.9999) }
    }

    /// Checks every threshold with the shared numeric rules ([`crate::validate`]): `atol` and
    /// `rtol` finite and ≥ 0, `min_pcc` and `min_cosine` in [-1, 1]. A NaN or infinite
    /// tolerance would make every case pass or fail whatever the module computes. The error
    /// names the field (`atol`, `rtol`, `min_pcc`, `min_cosine`) and gives the reason; each
    /// front-end words the field its own way (`tolerance.atol`, `--atol`).
    pub fn validate(&self) -> Result<(), (&'static str, validate::Reason)> {
        for (field, v) in [("atol", self.atol), ("rtol", self.rtol)] {
            validate::non_negative(v).map_err(|r| (field, r))?;
        }
        for (field, v) in [("min_pcc", self.min_pcc), ("min_cosine", self.min_cosine)] {
            validate::correlation(v).map_err(|r| (field, r))?;
        }
        Ok(())
    }

    /// The index of the first element outside `atol + rtol·|e|`, if any.
    pub fn first_violation(&self, actual: &[f64], expected: &[f64]) -> Option<usize> {
        actual.iter().zip(expected).position(|(a, e)| !((a - e).abs() <= self.atol + self.rtol * e.abs()))
    }

    /// Why `cmp` (of `actual` against `expected`) fails these thresholds; empty when it passes.
    pub fn failures(&self, cmp: &Comparison, actual: &[f64], expected: &[f64]) -> Vec<String> {
        let mut why = Vec::new();
        if !cmp.all_finite {
            why.push("output contains NaN or infinity".to_string());
        }
        if let Some(i) = self.first_violation(actual, expected) {
            why.push(format!(
                "element {i}: |{} − {}| > atol {} + rtol {} · |expected| (max abs {:.3e}, max rel {:.3e})",
                actual[i], expected[i], self.atol, self.rtol, cmp.max_abs, cmp.max_rel
            ));
        }
        if !(cmp.pcc >= self.min_pcc) {
            why.push(format!("pcc {:.6} < {}", cmp.pcc, self.min_pcc));
        }
        if !(cmp.cosine >= self.min_cosine) {
            why.push(format!("cosine {:.6} < {}", cmp.cosine, self.min_cosine));
        }
        why
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::compare_slices;

    #[test]
    fn closeness_is_checked_elementwise() {
        let tol = Tolerance { atol: 0.1, rtol: 0.1, min_pcc: 0.0, min_cosine: 0.0 };
        // 1.19 vs 1.0: allowed 0.1 + 0.1 = 0.2. 2.5 vs 2.0: allowed 0.3 < 0.5.
        assert_eq!(tol.first_violation(&[1.19, 2.0], &[1.0, 2.0]), None);
        assert_eq!(tol.first_violation(&[1.0, 2.5], &[1.0, 2.0]), Some(1));
        assert_eq!(tol.first_violation(&[f64::NAN], &[1.0]), Some(0));
    }

    #[test]
    fn atol_is_absolute_and_rtol_scales_with_the_expected_value() {
        // atol ≠ rtol and |e| ≠ 1, so swapping the two terms changes the verdict both ways.
        let tol = Tolerance { atol: 1e-3, rtol: 1e-1, min_pcc: 0.0, min_cosine: 0.0 };
        // Bound at e = 100: 1e-3 + 1e-1·100 = 10.001 (swapped: 1e-1 + 1e-3·100 = 0.2).
        assert_eq!(tol.first_violation(&[109.0], &[100.0]), None);
        assert_eq!(tol.first_violation(&[110.01], &[100.0]), Some(0));
        // Bound at e = 0: only atol, 1e-3 (swapped: 1e-1).
        assert_eq!(tol.first_violation(&[5e-4], &[0.0]), None);
        assert_eq!(tol.first_violation(&[5e-2], &[0.0]), Some(0));
        // A negative expected value counts by its magnitude, and the sign of the error is irrelevant.
        assert_eq!(tol.first_violation(&[-91.0, -109.0], &[-100.0, -100.0]), None);
        assert_eq!(tol.first_violation(&[-100.0, -111.0], &[-100.0, -100.0]), Some(1));
    }

    #[test]
    fn the_bound_itself_passes() {
        // |a − e| exactly equal to atol + rtol·|e| passes (≤, as torch.testing.assert_close).
        // Powers of two keep every value and the bound exact in binary.
        let tol = Tolerance { atol: 0.25, rtol: 0.5, min_pcc: 0.0, min_cosine: 0.0 };
        assert_eq!(tol.first_violation(&[4.0 + 0.25 + 2.0], &[4.0]), None);
        assert_eq!(tol.first_violation(&[4.0 - 0.25 - 2.0], &[4.0]), None);
        assert_eq!(tol.first_violation(&[4.0 + 0.25 + 2.0 + 2f64.powi(-40)], &[4.0]), Some(0));
        // With zero tolerances identical values pass and the smallest difference fails.
        let exact = Tolerance { atol: 0.0, rtol: 0.0, min_pcc: 1.0 - 1e-12, min_cosine: 1.0 - 1e-12 };
        let v = [1.5, -2.0, 0.0, 1e30];
        assert_eq!(exact.first_violation(&v, &v), None);
        assert_eq!(exact.first_violation(&[1.5, -2.0, 2f64.powi(-1074)], &[1.5, -2.0, 0.0]), Some(2));
        let cmp = compare_slices(&v, &v, DType::F64);
        assert!(exact.failures(&cmp, &v, &v).is_empty(), "{:?}", exact.failures(&cmp, &v, &v));
        // The first violation is reported, not a later one.
        assert_eq!(exact.first_violation(&[0.0, 1.0, 1.0], &[0.0, 2.0, 2.0]), Some(1));
    }

    #[test]
    fn one_number_sets_both_terms_and_a_correlation_floor() {
        // 1 − 10·tol, clamped to [0.99, 0.99999].
        let t = Tolerance::from(1e-4);
        assert_eq!((t.atol, t.rtol), (1e-4, 1e-4));
        assert!((t.min_pcc - 0.999).abs() < 1e-15 && t.min_cosine == t.min_pcc, "{t:?}");
        assert_eq!(Tolerance::from(1e-9).min_pcc, 0.99999);
        assert_eq!(Tolerance::from(0.5).min_cosine, 0.99);
    }

    #[test]
    fn float64_defaults_are_tighter_than_float32() {
        let q = Tolerance::for_quantized_kernels(DType::BF16);
        assert_eq!((q.atol, q.rtol, q.min_pcc), (0.1, 0.1, 0.999));
        let q = Tolerance::for_quantized_kernels(DType::F32);
        assert!((q.atol - 0.0501).abs() < 1e-12 && q.min_pcc == 0.9999);
        let (f64t, f32t) = (Tolerance::for_dtype(DType::F64), Tolerance::for_dtype(DType::F32));
        assert!(f64t.atol < 1e-8 && f64t.rtol < 1e-8 && f64t.min_pcc > f32t.min_pcc && f64t.min_cosine > f32t.min_cosine, "{f64t:?}");
        assert_eq!(Tolerance::for_dtype(DType::U32), f32t, "other dtypes get the float32 thresholds");
    }

    #[test]
    fn failures_name_each_violated_threshold() {
        let tol = Tolerance::for_dtype(DType::F32);
        let (a, e) = ([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]);
        let why = tol.failures(&compare_slices(&a, &e, DType::F32), &a, &e);
        assert_eq!(why.len(), 3, "{why:?}");
        assert!(why[1].starts_with("pcc -1.000000"));
        let ok = [1.0, 2.0, 3.0];
        assert!(tol.failures(&compare_slices(&ok, &ok, DType::F32), &ok, &ok).is_empty());
    }

    #[test]
    fn validate_names_the_first_bad_field() {
        for dtype in [DType::F64, DType::F32, DType::BF16, DType::F16] {
            assert_eq!(Tolerance::for_dtype(dtype).validate(), Ok(()));
        }
        let ok = Tolerance::for_dtype(DType::F32);
        for (tol, field, words) in [
            (Tolerance { atol: f64::NAN, ..ok }, "atol", "must be finite and ≥ 0, got NaN"),
            (Tolerance { atol: f64::INFINITY, ..ok }, "atol", "got inf"),
            (Tolerance { rtol: -1.0, ..ok }, "rtol", "got -1"),
            (Tolerance { min_pcc: 2.0, ..ok }, "min_pcc", "must lie in [-1, 1], got 2"),
            (Tolerance { min_pcc: -5.0, ..ok }, "min_pcc", "got -5"),
            (Tolerance { min_cosine: f64::NAN, ..ok }, "min_cosine", "got NaN"),
        ] {
            let (f, reason) = tol.validate().unwrap_err();
            assert_eq!(f, field);
            assert!(reason.contains(words), "{field}: {reason}");
        }
        assert_eq!(Tolerance { atol: 0.0, rtol: 0.0, min_pcc: -1.0, min_cosine: 1.0 }.validate(), Ok(()));
    }

    #[test]
    fn half_precision_defaults_are_looser_than_single() {
        let (f32t, bf16t, f16t) = (Tolerance::for_dtype(DType::F32), Tolerance::for_dtype(DType::BF16), Tolerance::for_dtype(DType::F16));
        assert!(f32t.rtol < f16t.rtol && f16t.rtol < bf16t.rtol);
        assert!(f32t.min_pcc > f16t.min_pcc && f16t.min_pcc > bf16t.min_pcc);
    }
}

impl From<f64> for Tolerance {
    /// One number as both atol and rtol; PCC and cosine must then reach `1 − 10·tol`
    /// (at most 0.99999, at least 0.99).
    fn from(tol: f64) -> Self {
        let corr = (1.0 - 10.0 * tol).clamp(0.99, 0.99999);
        Tolerance { atol: tol, rtol: tol, min_pcc: corr, min_cosine: corr }
    }
}
