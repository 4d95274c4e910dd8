//! Pass/fail thresholds for a comparison, with per-dtype defaults.

use crate::metrics::Comparison;
use crate::validate;
use candle_core::DType;
use serde::{Deserialize, Serialize};

/// Thresholds in the style of `torch.testing.assert_close`: every element must satisfy
/// `|a − e| ≤ atol + atol_rms·rms(e) + rtol·|e|`; in addition the PCC and cosine similarity
/// must reach their minimums.
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
    /// Absolute tolerance in units of the expected output's root mean square, for errors that
    /// scale with the whole output rather than with each element: a quantized kernel's
    /// rounding of its activations gives every output the same relative noise, so a head with
    /// logits of RMS 4 gets four times the room of a layer with unit outputs. 0 for most
    /// modules.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub atol_rms: f64,
    /// Minimum signal-to-noise ratio of the output in dB ([`crate::metrics::snr_db`]), when
    /// set. Unlike the correlations it sees a wrong overall scale: an output twice too large
    /// keeps PCC and cosine at 1 and has an SNR of 0 dB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_snr_db: Option<f64>,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

impl Tolerance {
    /// `atol` and `rtol` per element, and `min_corr` as both the PCC and the cosine floor.
    pub const fn new(atol: f64, rtol: f64, min_corr: f64) -> Self {
        Self { atol, rtol, min_pcc: min_corr, min_cosine: min_corr, atol_rms: 0.0, min_snr_db: None }
    }

    /// Defaults for a module's output in `dtype`, measured against a float64 reference.
    ///
    /// `torch.testing.assert_close` uses (atol, rtol) = (1e-5, 1.3e-6) for f32, (1e-5, 1.6e-2)
    /// for bf16 and (1e-5, 1e-3) for f16: tolerances for one rounding. A whole module
    /// accumulates hundreds of roundings through its matmuls and reductions, so the module
    /// defaults here allow a few units of that dtype's epsilon in both terms.
    pub fn for_dtype(dtype: DType) -> Self {
        match dtype {
            DType::F64 => Self::new(1e-9, 1e-9, 1.0 - 1e-12),
            DType::BF16 => Self::new(5e-2, 5e-2, 0.999),
            DType::F16 => Self::new(5e-3, 5e-3, 0.9999),
            _ => Self::new(1e-4, 1e-4, 0.99999),
        }
    }

    /// The default for a module whose linear layers run candle's quantized GGUF kernels,
    /// compared with its twin (the same math in float64 over the dequantized weights): the
    /// kernels round the activations to 8 bits per block of 32 before each dot product, so the
    /// output keeps a correlation of 0.9999 with the twin (or the dtype's own bound, if lower).
    ///
    /// Each element gets 0.05 absolute and 0.05 relative more room than the dtype allows, and
    /// also 0.05 of the expected output's RMS. The rounding step of each activation is a fixed
    /// fraction (1/127) of its block's maximum, so in a single matmul the error is a fixed
    /// fraction of the output's own scale, whatever the width: SmolLM2's tied head
    /// (576-wide dot products, logits of RMS 4, largest error 0.106 at PCC 0.999985) needs the
    /// RMS term, and an attention block (errors compounded through the softmax on outputs of
    /// RMS 0.4, largest error 0.029) needs the absolute one.
    pub fn for_quantized_kernels(dtype: DType) -> Self {
        let d = Self::for_dtype(dtype);
        Self { atol_rms: 0.05, ..Self::new(d.atol + 0.05, d.rtol + 0.05, d.min_pcc.min(0.9999)) }
    }

    /// Checks every threshold with the shared numeric rules ([`crate::validate`]): `atol` and
    /// `rtol` finite and ≥ 0, `min_pcc` and `min_cosine` in [-1, 1]. A NaN or infinite
    /// tolerance would make every case pass or fail whatever the module computes. The error
    /// names the field (`atol`, `rtol`, `min_pcc`, `min_cosine`) and gives the reason; each
    /// front-end words the field its own way (`tolerance.atol`, `--atol`).
    pub fn validate(&self) -> Result<(), (&'static str, validate::Reason)> {
        for (field, v) in [("atol", self.atol), ("rtol", self.rtol), ("atol_rms", self.atol_rms)] {
            validate::non_negative(v).map_err(|r| (field, r))?;
        }
        for (field, v) in [("min_pcc", self.min_pcc), ("min_cosine", self.min_cosine)] {
            validate::correlation(v).map_err(|r| (field, r))?;
        }
        if let Some(v) = self.min_snr_db {
            validate::finite(v).map_err(|r| ("min_snr_db", r))?;
        }
        Ok(())
    }

    /// The index of the first element outside `atol + atol_rms·rms(e) + rtol·|e|`, if any.
    pub fn first_violation(&self, actual: &[f64], expected: &[f64]) -> Option<usize> {
        let atol = self.atol + self.atol_rms * rms(expected);
        actual.iter().zip(expected).position(|(a, e)| !((a - e).abs() <= atol + self.rtol * e.abs()))
    }

    /// Why `cmp` (of `actual` against `expected`) fails these thresholds; empty when it passes.
    pub fn failures(&self, cmp: &Comparison, actual: &[f64], expected: &[f64]) -> Vec<String> {
        let mut why = Vec::new();
        if !cmp.all_finite {
            why.push("output contains NaN or infinity".to_string());
        }
        if let Some(i) = self.first_violation(actual, expected) {
            let atol = if self.atol_rms == 0.0 {
                format!("atol {}", self.atol)
            } else {
                format!("atol {} + atol_rms {} · rms {:.4}", self.atol, self.atol_rms, rms(expected))
            };
            why.push(format!(
                "element {i}: |{} − {}| > {atol} + rtol {} · |expected| (max abs {:.3e}, max rel {:.3e})",
                actual[i], expected[i], self.rtol, cmp.max_abs, cmp.max_rel
            ));
        }
        if !(cmp.pcc >= self.min_pcc) {
            why.push(format!("pcc {:.6} < {}", cmp.pcc, self.min_pcc));
        }
        if !(cmp.cosine >= self.min_cosine) {
            why.push(format!("cosine {:.6} < {}", cmp.cosine, self.min_cosine));
        }
        if let Some(min) = self.min_snr_db.filter(|min| !(cmp.snr_db >= *min)) {
            why.push(format!("snr {:.2} dB < {min} dB", cmp.snr_db));
        }
        why
    }
}

/// Some thresholds by name, applied over others: `tensile run --tolerance` over every case's
/// own (its spec's, its module's per-format default, or its dtype's), and a spec file's
/// `tolerance = { atol = …, … }` table over its first dtype's defaults. Each field given
/// replaces that threshold; the others keep the base's.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToleranceOverride {
    /// Replaces `atol`.
    pub atol: Option<f64>,
    /// Replaces `rtol`.
    pub rtol: Option<f64>,
    /// Replaces `min_pcc`.
    pub min_pcc: Option<f64>,
    /// Replaces `min_cosine`.
    pub min_cosine: Option<f64>,
    /// Replaces `atol_rms`.
    pub atol_rms: Option<f64>,
    /// Replaces `min_snr_db`.
    pub min_snr_db: Option<f64>,
}

impl ToleranceOverride {
    /// `base` with the given fields replaced.
    pub fn apply(&self, base: Tolerance) -> Tolerance {
        Tolerance {
            atol: self.atol.unwrap_or(base.atol),
            rtol: self.rtol.unwrap_or(base.rtol),
            min_pcc: self.min_pcc.unwrap_or(base.min_pcc),
            min_cosine: self.min_cosine.unwrap_or(base.min_cosine),
            atol_rms: self.atol_rms.unwrap_or(base.atol_rms),
            min_snr_db: self.min_snr_db.or(base.min_snr_db),
        }
    }
}

impl std::str::FromStr for ToleranceOverride {
    type Err = String;
    /// One number (atol, rtol, PCC and cosine, as a spec's `tolerance = 1e-3`; `atol_rms`
    /// and `min_snr_db` keep the case's own), or comma-separated
    /// `field=value` pairs such as `atol=0.2,min_pcc=0.95`. Each value follows the rules of
    /// [`Tolerance::validate`].
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let number = |field: &str, v: &str| v.trim().parse::<f64>().map_err(|_| format!("`{}` is not a number (in {field})", v.trim()));
        if !s.contains('=') {
            let t = Tolerance::from(number("the tolerance", s)?);
            t.validate().map_err(|(f, r)| format!("{f} {r}"))?;
            return Ok(Self { atol: Some(t.atol), rtol: Some(t.rtol), min_pcc: Some(t.min_pcc), min_cosine: Some(t.min_cosine), ..Self::default() });
        }
        let mut o = Self::default();
        for pair in s.split(',') {
            let (field, value) = pair.split_once('=').ok_or_else(|| format!("`{}` is not field=value", pair.trim()))?;
            let field = field.trim();
            let v = number(field, value)?;
            let slot = match field {
                "atol" => &mut o.atol,
                "rtol" => &mut o.rtol,
                "min_pcc" => &mut o.min_pcc,
                "min_cosine" => &mut o.min_cosine,
                "atol_rms" => &mut o.atol_rms,
                "min_snr_db" => &mut o.min_snr_db,
                other => return Err(format!("unknown field `{other}` (expected atol, rtol, min_pcc, min_cosine, atol_rms or min_snr_db)")),
            };
            if slot.replace(v).is_some() {
                return Err(format!("`{field}` is given twice"));
            }
        }
        // Every given value must pass the rules a whole tolerance passes.
        o.apply(Tolerance::new(0.0, 0.0, 0.0)).validate().map_err(|(f, r)| format!("{f} {r}"))?;
        Ok(o)
    }
}

/// The root mean square of `v`, 0 when empty; a NaN stays NaN so that the bound it enters
/// fails rather than passes.
fn rms(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    // In units of the largest magnitude, so that the squares neither underflow nor overflow.
    let unit = v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    if !(unit > 0.0) || unit.is_infinite() {
        return if unit.is_nan() || unit.is_infinite() { f64::NAN } else { 0.0 };
    }
    unit * (v.iter().map(|x| (x / unit) * (x / unit)).sum::<f64>() / v.len() as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::compare_slices;

    #[test]
    fn closeness_is_checked_elementwise() {
        let tol = Tolerance::new(0.1, 0.1, 0.0);
        // 1.19 vs 1.0: allowed 0.1 + 0.1 = 0.2. 2.5 vs 2.0: allowed 0.3 < 0.5.
        assert_eq!(tol.first_violation(&[1.19, 2.0], &[1.0, 2.0]), None);
        assert_eq!(tol.first_violation(&[1.0, 2.5], &[1.0, 2.0]), Some(1));
        assert_eq!(tol.first_violation(&[f64::NAN], &[1.0]), Some(0));
    }

    #[test]
    fn atol_is_absolute_and_rtol_scales_with_the_expected_value() {
        // atol ≠ rtol and |e| ≠ 1, so swapping the two terms changes the verdict both ways.
        let tol = Tolerance::new(1e-3, 1e-1, 0.0);
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
        let tol = Tolerance::new(0.25, 0.5, 0.0);
        assert_eq!(tol.first_violation(&[4.0 + 0.25 + 2.0], &[4.0]), None);
        assert_eq!(tol.first_violation(&[4.0 - 0.25 - 2.0], &[4.0]), None);
        assert_eq!(tol.first_violation(&[4.0 + 0.25 + 2.0 + 2f64.powi(-40)], &[4.0]), Some(0));
        // With zero tolerances identical values pass and the smallest difference fails.
        let exact = Tolerance::new(0.0, 0.0, 1.0 - 1e-12);
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
        assert_eq!((q.atol, q.rtol, q.min_pcc, q.atol_rms), (0.1, 0.1, 0.999, 0.05));
        let q = Tolerance::for_quantized_kernels(DType::F32);
        assert!((q.rtol - 0.0501).abs() < 1e-12 && (q.atol - 0.0501).abs() < 1e-12 && q.min_pcc == 0.9999);
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
    fn an_override_replaces_only_the_fields_it_names() {
        let base = Tolerance::for_quantized_kernels(DType::F32);
        let o: ToleranceOverride = "atol=0.2, min_pcc=0.95".parse().unwrap();
        let t = o.apply(base);
        assert_eq!((t.atol, t.min_pcc), (0.2, 0.95));
        assert_eq!((t.rtol, t.min_cosine, t.atol_rms), (base.rtol, base.min_cosine, base.atol_rms));
        let one: ToleranceOverride = "1e-3".parse().unwrap();
        assert_eq!(one.apply(base), Tolerance { atol_rms: base.atol_rms, ..Tolerance::from(1e-3) });
        assert_eq!("atol_rms=0".parse::<ToleranceOverride>().unwrap().apply(base).atol_rms, 0.0);
        assert_eq!("min_snr_db=20".parse::<ToleranceOverride>().unwrap().apply(base).min_snr_db, Some(20.0));
        assert_eq!(ToleranceOverride::default().apply(Tolerance { min_snr_db: Some(3.0), ..base }).min_snr_db, Some(3.0));
        for (bad, words) in [
            ("atol=x", "`x` is not a number (in atol)"),
            ("atol", "`atol` is not a number"),
            ("atol=1,,rtol=2", "`` is not field=value"),
            ("tol=1", "unknown field `tol`"),
            ("atol=1,atol=2", "`atol` is given twice"),
            ("min_pcc=2", "min_pcc must lie in [-1, 1]"),
            ("-1", "atol must be finite and ≥ 0"),
            ("rtol=nan", "rtol must be finite"),
            ("min_snr_db=inf", "min_snr_db must be finite"),
        ] {
            let e = bad.parse::<ToleranceOverride>().unwrap_err();
            assert!(e.contains(words), "{bad}: {e}");
        }
    }

    #[test]
    fn an_snr_floor_sees_a_wrong_scale_that_the_correlations_miss() {
        let e = [1.0, -2.0, 3.0, -4.0];
        let twice: Vec<f64> = e.iter().map(|v| 2.0 * v).collect();
        let cmp = compare_slices(&twice, &e, DType::F32);
        let loose = Tolerance { atol_rms: 100.0, ..Tolerance::new(0.0, 0.0, 0.999) };
        assert!(loose.failures(&cmp, &twice, &e).is_empty(), "pcc and cosine are 1 for a scaled output");
        let floor = Tolerance { min_snr_db: Some(3.0), ..loose };
        assert_eq!(floor.failures(&cmp, &twice, &e), ["snr 0.00 dB < 3 dB"]);
        let close: Vec<f64> = e.iter().map(|v| 1.01 * v).collect();
        assert!(floor.failures(&compare_slices(&close, &e, DType::F32), &close, &e).is_empty(), "40 dB passes a 3 dB floor");
    }

    #[test]
    fn the_rms_term_scales_the_absolute_room_with_the_output() {
        let tol = Tolerance { atol_rms: 0.05, ..Tolerance::new(0.0, 0.0, 0.0) };
        // rms([3, 4, 0, 0] · …) = 2.5: room 0.125 for every element, even the zeros.
        let e = [3.0, 4.0, 0.0, 0.0];
        assert_eq!(tol.first_violation(&[3.0, 4.0, 0.12, -0.12], &e), None);
        assert_eq!(tol.first_violation(&[3.0, 4.0, 0.0, 0.13], &e), Some(3));
        assert_eq!(tol.first_violation(&[3.0, 4.0, 0.0, 0.13], &[3.0, 4.0, 0.0, f64::NAN]), Some(0), "a NaN rms fails every element");
        let cmp = compare_slices(&[3.0, 4.0, 0.0, 0.13], &e, DType::F32);
        let why = tol.failures(&cmp, &[3.0, 4.0, 0.0, 0.13], &e);
        assert!(why[0].contains("atol 0 + atol_rms 0.05 · rms 2.5000"), "{why:?}");
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
            (Tolerance { atol_rms: -0.5, ..ok }, "atol_rms", "got -0.5"),
            (Tolerance { min_snr_db: Some(f64::NAN), ..ok }, "min_snr_db", "got NaN"),
        ] {
            let (f, reason) = tol.validate().unwrap_err();
            assert_eq!(f, field);
            assert!(reason.contains(words), "{field}: {reason}");
        }
        assert_eq!(Tolerance { min_pcc: -1.0, ..Tolerance::new(0.0, 0.0, 1.0) }.validate(), Ok(()));
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
        Tolerance::new(tol, tol, corr)
    }
}
