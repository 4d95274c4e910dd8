//! Error metrics between a tensor under test and its reference.
//!
//! All metrics are computed in float64 on the CPU. Edge cases are defined, not accidental:
//! - any NaN or infinity in either tensor makes `all_finite` false and PCC and cosine NaN,
//!   so no tolerance can pass;
//! - PCC of two constant tensors is 1 when they are equal and 0 otherwise; PCC of one constant
//!   and one varying tensor is 0 (no linear relation can be established);
//! - cosine of two all-zero tensors is 1; of one all-zero tensor and another, 0;
//! - relative error at an element whose reference is exactly 0 is 0 when the values agree and
//!   infinite otherwise (as in `torch.testing`);
//! - the signal-to-noise ratio `10·log10(Σe² / Σ(a − e)²)` lies in [−[`SNR_CAP_DB`],
//!   [`SNR_CAP_DB`]]: equal tensors (noise 0) get the cap, a zero reference with any error gets
//!   its negative, and a NaN or infinity gives NaN. The cap keeps the number finite in JSON
//!   and is far above what any float64 comparison of rounded floats reaches (f32 roundings
//!   give about 140 dB).

use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

/// The metrics of one comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Number of elements compared.
    pub numel: usize,
    /// Both tensors are free of NaN and infinity.
    pub all_finite: bool,
    /// `max |a − e|`.
    pub max_abs: f64,
    /// `max |a − e| / |e|`.
    pub max_rel: f64,
    /// `mean |a − e|`.
    pub mean_abs: f64,
    /// Pearson correlation coefficient.
    pub pcc: f64,
    /// Cosine similarity of the flattened tensors.
    pub cosine: f64,
    /// Largest distance in units in the last place of the tested tensor's dtype.
    pub max_ulp: u64,
    /// Signal-to-noise ratio of the output in dB, the reference as the signal and the
    /// difference as the noise (see the module's edge cases).
    #[serde(default)]
    pub snr_db: f64,
}

/// The largest signal-to-noise ratio reported, in dB: equal outputs.
pub const SNR_CAP_DB: f64 = 200.0;

/// `10·log10(Σe² / Σ(a − e)²)`, clamped to ±[`SNR_CAP_DB`], with the edge cases of the
/// module's documentation.
pub fn snr_db(a: &[f64], e: &[f64]) -> f64 {
    if a.iter().chain(e).any(|v| !v.is_finite()) {
        return f64::NAN;
    }
    // Both sums in units of the largest magnitude, so that neither underflows nor overflows.
    let unit = a.iter().chain(e).fold(0.0f64, |m, v| m.max(v.abs()));
    let unit = if unit > 0.0 { unit } else { 1.0 };
    let signal: f64 = e.iter().map(|v| (v / unit) * (v / unit)).sum();
    let noise: f64 = a.iter().zip(e).map(|(x, y)| ((x - y) / unit) * ((x - y) / unit)).sum();
    if noise == 0.0 {
        return SNR_CAP_DB;
    }
    if signal == 0.0 {
        return -SNR_CAP_DB;
    }
    (10.0 * (signal / noise).log10()).clamp(-SNR_CAP_DB, SNR_CAP_DB)
}

/// Pearson correlation of two equally long samples, with the edge cases defined above.
pub fn pcc(a: &[f64], e: &[f64]) -> f64 {
    if a.iter().chain(e).any(|v| !v.is_finite()) {
        return f64::NAN;
    }
    if a.is_empty() {
        return 1.0;
    }
    let (cov, va, ve) = tensile_nn::metrics::centred_sums(a, e);
    match (va == 0.0, ve == 0.0) {
        (true, true) => f64::from(u8::from(a == e)),
        (true, false) | (false, true) => 0.0,
        _ => (cov / (va.sqrt() * ve.sqrt())).clamp(-1.0, 1.0),
    }
}

/// Cosine similarity, with the edge cases defined above.
pub fn cosine(a: &[f64], e: &[f64]) -> f64 {
    if a.iter().chain(e).any(|v| !v.is_finite()) {
        return f64::NAN;
    }
    let dot: f64 = a.iter().zip(e).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let ne = e.iter().map(|x| x * x).sum::<f64>().sqrt();
    match (na == 0.0, ne == 0.0) {
        (true, true) => 1.0,
        (true, false) | (false, true) => 0.0,
        _ => (dot / (na * ne)).clamp(-1.0, 1.0),
    }
}

/// Maps a float's bits onto a line where adjacent floats differ by one.
fn ordinal(bits: u64, sign_bit: u64) -> i128 {
    if bits & sign_bit != 0 {
        -((bits & !sign_bit) as i128)
    } else {
        bits as i128
    }
}

/// Distance in units in the last place between `a` and `e` after rounding both to `dtype`.
pub fn ulp_distance(a: f64, e: f64, dtype: DType) -> u64 {
    if !a.is_finite() || !e.is_finite() {
        return u64::MAX;
    }
    let (oa, oe) = match dtype {
        DType::F64 => (ordinal(a.to_bits(), 1 << 63), ordinal(e.to_bits(), 1 << 63)),
        DType::BF16 => {
            let f = |v: f64| ordinal(u64::from(half::bf16::from_f64(v).to_bits()), 1 << 15);
            (f(a), f(e))
        }
        DType::F16 => {
            let f = |v: f64| ordinal(u64::from(half::f16::from_f64(v).to_bits()), 1 << 15);
            (f(a), f(e))
        }
        _ => (ordinal(u64::from((a as f32).to_bits()), 1 << 31), ordinal(u64::from((e as f32).to_bits()), 1 << 31)),
    };
    u64::try_from((oa - oe).unsigned_abs()).unwrap_or(u64::MAX)
}

/// Flattens a tensor to float64 values on the CPU.
pub fn to_f64_vec(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.to_device(&Device::Cpu)?.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?)
}

/// Compares `actual` against `expected` (any dtypes, any devices, equal shapes). ULPs are
/// counted in `actual`'s dtype.
pub fn compare(actual: &Tensor, expected: &Tensor) -> Result<Comparison> {
    if actual.dims() != expected.dims() {
        return Err(Error::ShapeMismatch { actual: actual.dims().to_vec(), expected: expected.dims().to_vec() });
    }
    Ok(compare_slices(&to_f64_vec(actual)?, &to_f64_vec(expected)?, actual.dtype()))
}

/// [`compare`] on flat slices; `dtype` is the tested values' dtype for ULP counting.
pub fn compare_slices(a: &[f64], e: &[f64], dtype: DType) -> Comparison {
    let all_finite = a.iter().chain(e).all(|v| v.is_finite());
    let (mut max_abs, mut max_rel, mut sum_abs, mut max_ulp) = (0.0f64, 0.0f64, 0.0f64, 0u64);
    for (&x, &y) in a.iter().zip(e) {
        let d = (x - y).abs();
        // NaN never compares greater, so it is folded in explicitly.
        max_abs = if d.is_nan() {
            f64::NAN
        } else if max_abs.is_nan() {
            max_abs
        } else {
            max_abs.max(d)
        };
        let r = if d == 0.0 { 0.0 } else { d / y.abs() };
        max_rel = if r.is_nan() || max_rel.is_nan() { f64::NAN } else { max_rel.max(r) };
        sum_abs += d;
        max_ulp = max_ulp.max(ulp_distance(x, y, dtype));
    }
    Comparison {
        numel: a.len(),
        all_finite,
        max_abs,
        max_rel,
        mean_abs: if a.is_empty() { 0.0 } else { sum_abs / a.len() as f64 },
        pcc: pcc(a, e),
        cosine: cosine(a, e),
        max_ulp,
        snr_db: snr_db(a, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hand_computed_example() {
        let c = compare_slices(&[1.0, 2.0, 3.0], &[1.0, 2.5, 2.0], DType::F64);
        assert_eq!(c.max_abs, 1.0);
        assert_eq!(c.max_rel, 0.5); // |3 − 2| / 2
        assert!((c.mean_abs - 0.5).abs() < 1e-15);
        // Pearson of (1,2,3) and (1,2.5,2): deviations (−1,0,1) and (−5/6,2/3,1/6), so
        // Σdxdy = 1, Σdx² = 2, Σdy² = 7/6.
        assert!((c.pcc - 1.0 / (2.0f64.sqrt() * (7.0f64 / 6.0).sqrt())).abs() < 1e-12);
        // cos = (1 + 5 + 6) / (√14 · √11.25)
        assert!((c.cosine - 12.0 / (14.0f64.sqrt() * 11.25f64.sqrt())).abs() < 1e-12);
        assert!(c.all_finite);
    }

    #[test]
    fn edge_cases() {
        assert!(pcc(&[1.0, f64::NAN], &[1.0, 2.0]).is_nan());
        assert!(cosine(&[f64::INFINITY], &[1.0]).is_nan());
        assert_eq!(pcc(&[2.0, 2.0], &[2.0, 2.0]), 1.0);
        assert_eq!(pcc(&[2.0, 2.0], &[3.0, 3.0]), 0.0);
        assert_eq!(pcc(&[2.0, 2.0], &[1.0, 3.0]), 0.0);
        assert_eq!(pcc(&[], &[]), 1.0);
        assert_eq!(cosine(&[0.0, 0.0], &[0.0, 0.0]), 1.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
        assert!((pcc(&[1.0, 2.0], &[-1.0, -2.0]) + 1.0).abs() < 1e-15);
        let c = compare_slices(&[0.0, 1.0], &[0.0, f64::NAN], DType::F32);
        assert!(!c.all_finite && c.max_abs.is_nan() && c.max_ulp == u64::MAX);
        let c = compare_slices(&[1e-3], &[0.0], DType::F32);
        assert_eq!(c.max_rel, f64::INFINITY);
    }

    #[test]
    fn snr_is_signal_power_over_noise_power_in_decibels() {
        // Signal 3² + 4² = 25, noise 0.5² = 0.25: a ratio of 100, 20 dB.
        assert!((snr_db(&[3.0, 4.5], &[3.0, 4.0]) - 20.0).abs() < 1e-12);
        // Noise of the signal's own power: 0 dB; ten times the signal's: −10 dB.
        assert!(snr_db(&[0.0, 0.0], &[1.0, 1.0]).abs() < 1e-12);
        assert!((snr_db(&[1.0 + 10f64.sqrt()], &[1.0]) + 10.0).abs() < 1e-9);
        assert_eq!(snr_db(&[1.0, 2.0], &[1.0, 2.0]), SNR_CAP_DB);
        assert_eq!(snr_db(&[], &[]), SNR_CAP_DB);
        assert_eq!(snr_db(&[1e-3], &[0.0]), -SNR_CAP_DB);
        // Values whose squares underflow (or overflow) keep their ratio: twice the signal is 0 dB.
        assert!(snr_db(&[2e-170], &[1e-170]).abs() < 1e-9 && snr_db(&[2e170], &[1e170]).abs() < 1e-9);
        assert_eq!(snr_db(&[1.0 + 1e-150], &[1.0]), SNR_CAP_DB, "rounding below the cap's noise is capped");
        assert!(snr_db(&[1.0], &[f64::INFINITY]).is_nan() && compare_slices(&[f64::NAN], &[1.0], DType::F32).snr_db.is_nan());
        assert_eq!(compare_slices(&[3.0, 4.5], &[3.0, 4.0], DType::F64).snr_db, snr_db(&[3.0, 4.5], &[3.0, 4.0]));
    }

    #[test]
    fn ulps_count_representable_steps() {
        assert_eq!(ulp_distance(1.0, 1.0, DType::F32), 0);
        assert_eq!(ulp_distance(1.0, 1.0 + f64::from(f32::EPSILON), DType::F32), 1);
        assert_eq!(ulp_distance(1.0, 1.0 + 2.0 * f64::EPSILON, DType::F64), 2);
        // bf16 has 7 explicit mantissa bits: 1 + 2⁻⁷ is the next value after 1.
        assert_eq!(ulp_distance(1.0, 1.0 + 1.0 / 128.0, DType::BF16), 1);
        assert_eq!(ulp_distance(1.0, 1.0 + 1.0 / 1024.0, DType::F16), 1);
        // Across zero: the smallest positive and negative subnormals are two steps apart.
        assert_eq!(ulp_distance(f64::from(f32::from_bits(1)), -f64::from(f32::from_bits(1)), DType::F32), 2);
        // Negative values and zero crossings in every dtype: the sign bit is handled on both
        // sides, so the order of the arguments does not matter.
        let below = |ulp: f64| -(1.0 + ulp);
        for (dtype, ulp, tiny) in [
            (DType::F64, f64::EPSILON, f64::from_bits(1)),
            (DType::BF16, 1.0 / 128.0, f64::from(half::bf16::from_bits(1))),
            (DType::F16, 1.0 / 1024.0, f64::from(half::f16::from_bits(1))),
        ] {
            assert_eq!(ulp_distance(-1.0, below(ulp), dtype), 1, "{dtype:?}");
            assert_eq!(ulp_distance(below(ulp), -1.0, dtype), 1, "{dtype:?}");
            assert_eq!(ulp_distance(tiny, -tiny, dtype), 2, "{dtype:?}");
            assert_eq!(ulp_distance(-tiny, tiny, dtype), 2, "{dtype:?}");
        }
    }

    #[test]
    fn tensors_of_any_dtype_compare_by_their_values() {
        let a = Tensor::new(&[1.0f32, 2.0, -3.0], &Device::Cpu).unwrap().to_dtype(DType::BF16).unwrap();
        assert_eq!(to_f64_vec(&a).unwrap(), vec![1.0, 2.0, -3.0]);
        let e = Tensor::new(&[1.0f64, 2.5, -3.0], &Device::Cpu).unwrap();
        let c = compare(&a, &e).unwrap();
        assert_eq!((c.numel, c.max_abs, c.max_rel, c.mean_abs), (3, 0.5, 0.2, 0.5 / 3.0));
        // 2.0 and 2.5 are 32 bf16 steps apart (the step is 2⁻⁶ between 2 and 4).
        assert_eq!(c.max_ulp, 32);
    }

    #[test]
    fn a_nan_anywhere_makes_the_relative_error_nan() {
        for (a, e) in [([f64::NAN, 1.0], [1.0, 1.0]), ([1.0, f64::NAN], [1.0, 1.0]), ([1.0, 1.0], [f64::NAN, 1.0])] {
            let c = compare_slices(&a, &e, DType::F32);
            assert!(c.max_rel.is_nan() && c.max_abs.is_nan() && !c.all_finite, "{a:?} vs {e:?}: {c:?}");
        }
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        let a = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
        let b = Tensor::zeros((3, 2), DType::F32, &Device::Cpu).unwrap();
        assert!(matches!(compare(&a, &b), Err(Error::ShapeMismatch { .. })));
    }

    proptest! {
        #[test]
        fn metrics_are_bounded_and_symmetric(v in prop::collection::vec(-1e3f64..1e3, 1..64), w in prop::collection::vec(-1e3f64..1e3, 1..64)) {
            let n = v.len().min(w.len());
            let (a, e) = (&v[..n], &w[..n]);
            let p = pcc(a, e);
            prop_assert!((-1.0..=1.0).contains(&p));
            prop_assert_eq!(p, pcc(e, a));
            let c = cosine(a, e);
            prop_assert!((-1.0..=1.0).contains(&c));
            let cmp = compare_slices(a, e, DType::F64);
            prop_assert!(cmp.mean_abs <= cmp.max_abs + 1e-12);
            prop_assert!(cmp.snr_db.abs() <= SNR_CAP_DB);
        }

        #[test]
        fn snr_falls_by_twenty_db_per_tenfold_noise(v in prop::collection::vec(-1e3f64..1e3, 2..64), k in 1e-6f64..1e-1) {
            prop_assume!(v.iter().any(|x| x.abs() > 1e-3));
            // The noise is the signal itself scaled by k: an SNR of −20·log10(k) dB.
            let noisy: Vec<f64> = v.iter().map(|x| x * (1.0 + k)).collect();
            let noisier: Vec<f64> = v.iter().map(|x| x * (1.0 + 10.0 * k)).collect();
            prop_assert!((snr_db(&noisy, &v) + 20.0 * k.log10()).abs() < 1e-6);
            prop_assert!((snr_db(&noisy, &v) - snr_db(&noisier, &v) - 20.0).abs() < 1e-6);
        }

        #[test]
        fn identical_inputs_are_perfect(v in prop::collection::vec(-1e3f64..1e3, 2..64)) {
            let cmp = compare_slices(&v, &v, DType::F32);
            prop_assert_eq!(cmp.max_abs, 0.0);
            prop_assert_eq!(cmp.max_ulp, 0);
            prop_assert_eq!(cmp.snr_db, SNR_CAP_DB);
            prop_assert!(cmp.pcc > 1.0 - 1e-12 && cmp.cosine > 1.0 - 1e-12);
        }

        #[test]
        fn pcc_ignores_positive_affine_maps(v in prop::collection::vec(-1e3f64..1e3, 3..64), s in 0.1f64..10.0, t in -10f64..10.0) {
            prop_assume!(v.iter().any(|x| (x - v[0]).abs() > 1e-3));
            let w: Vec<f64> = v.iter().map(|x| s * x + t).collect();
            prop_assert!((pcc(&v, &w) - 1.0).abs() < 1e-9);
        }
    }
}
