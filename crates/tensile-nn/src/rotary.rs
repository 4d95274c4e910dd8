//! Rotary position embedding (RoPE), including Llama-3 frequency scaling.

use crate::block::to_f64_cpu;
use crate::error::config_err;
use crate::limits;
use candle_core::{DType, Device, Result, Tensor, D};
use serde::{Deserialize, Serialize};

/// Hugging Face `rope_scaling`; only the Llama-3 scheme changes frequencies here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RopeScaling {
    /// `"llama3"` (also accepted under the older key `type`).
    #[serde(alias = "type")]
    pub rope_type: String,
    /// Overall context extension factor.
    pub factor: f64,
    /// Wavelengths longer than `original_max_position_embeddings / low_freq_factor` are divided by `factor`.
    #[serde(default = "one")]
    pub low_freq_factor: f64,
    /// Wavelengths shorter than `original_max_position_embeddings / high_freq_factor` are kept.
    #[serde(default = "four")]
    pub high_freq_factor: f64,
    /// Context length the model was pre-trained with.
    #[serde(default = "orig_ctx")]
    pub original_max_position_embeddings: usize,
}

impl RopeScaling {
    /// Rejects numbers that would turn frequencies into NaN or infinity, naming the field: the
    /// factor divides frequencies, the frequency factors divide the original context length,
    /// and their difference divides the interpolation between the two bands.
    pub fn validate(&self) -> crate::Result<()> {
        limits::positive("rope_scaling.factor", self.factor)?;
        limits::positive("rope_scaling.low_freq_factor", self.low_freq_factor)?;
        limits::positive("rope_scaling.high_freq_factor", self.high_freq_factor)?;
        if self.high_freq_factor <= self.low_freq_factor {
            return Err(config_err(
                "rope_scaling.high_freq_factor",
                format!("must be greater than low_freq_factor {}, got {}", self.low_freq_factor, self.high_freq_factor),
            ));
        }
        limits::dim("rope_scaling.original_max_position_embeddings", self.original_max_position_embeddings)
    }
}

/// Rejects a RoPE base θ that is not a finite number > 0 (its powers would be NaN or infinite)
/// and invalid scaling, naming the field.
pub(crate) fn validate_rope(theta: f64, scaling: Option<&RopeScaling>) -> crate::Result<()> {
    limits::positive("rope_theta", theta)?;
    scaling.map_or(Ok(()), RopeScaling::validate)
}

fn one() -> f64 {
    1.0
}
fn four() -> f64 {
    4.0
}
fn orig_ctx() -> usize {
    8192
}

/// Inverse frequencies `θ^(-2i/d)` for `i < d/2`, in float64, after optional Llama-3 scaling.
pub fn inverse_frequencies(head_dim: usize, theta: f64, scaling: Option<&RopeScaling>) -> Vec<f64> {
    let base: Vec<f64> = (0..head_dim / 2).map(|i| theta.powf(-((2 * i) as f64) / head_dim as f64)).collect();
    let Some(s) = scaling.filter(|s| s.rope_type == "llama3") else { return base };
    let old_ctx = s.original_max_position_embeddings as f64;
    let low_freq_wavelen = old_ctx / s.low_freq_factor;
    let high_freq_wavelen = old_ctx / s.high_freq_factor;
    base.into_iter()
        .map(|f| {
            let wavelen = 2.0 * std::f64::consts::PI / f;
            if wavelen < high_freq_wavelen {
                f
            } else if wavelen > low_freq_wavelen {
                f / s.factor
            } else {
                // Between the two bands the frequency is interpolated smoothly.
                let smooth = (old_ctx / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
                (1.0 - smooth) * f / s.factor + smooth * f
            }
        })
        .collect()
}

/// Rotates query/key pairs `(x[i], x[i + d/2])` by position-dependent angles (the
/// "rotate half" layout of Hugging Face LLaMA checkpoints).
#[derive(Debug, Clone)]
pub struct RotaryEmbedding {
    inv_freq: Vec<f64>,
    head_dim: usize,
    /// The `(cos, sin)` tables built so far, one per dtype and device, for positions
    /// `0..len`: every forward reads a slice of them instead of computing two sines per
    /// position and frequency again (a tenth of a small attention's time). Clones share them.
    tables: std::sync::Arc<std::sync::Mutex<Vec<Tables>>>,
}

/// `(cos, sin)` of shape `(len, head_dim / 2)` in one dtype on one device.
#[derive(Debug)]
struct Tables {
    dtype: DType,
    device: candle_core::DeviceLocation,
    len: usize,
    cos: Tensor,
    sin: Tensor,
}

impl RotaryEmbedding {
    /// RoPE for heads of size `head_dim` with base `theta`.
    pub fn new(head_dim: usize, theta: f64, scaling: Option<&RopeScaling>) -> Self {
        Self { inv_freq: inverse_frequencies(head_dim, theta, scaling), head_dim, tables: Default::default() }
    }

    /// `(cos, sin)` of shape `(seq, head_dim / 2)` for positions `offset..offset + seq`, as
    /// rows of the cached tables; a longer sequence rebuilds them at the length needed or twice
    /// the old length, whichever is more, so a decode loop rebuilds them a logarithmic number
    /// of times.
    fn tables(&self, offset: usize, seq: usize, dtype: DType, dev: &Device) -> Result<(Tensor, Tensor)> {
        let end = offset + seq;
        let mut cache = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        let found = cache.iter().position(|t| t.dtype == dtype && t.device == dev.location() && t.cos.device().same_device(dev));
        let index = match found {
            Some(i) if cache[i].len >= end => i,
            _ => {
                let len = end.max(found.map_or(0, |i| 2 * cache[i].len));
                let (cos, sin) = self.build(len, dtype, dev)?;
                let t = Tables { dtype, device: dev.location(), len, cos, sin };
                match found {
                    Some(i) => {
                        cache[i] = t;
                        i
                    }
                    None => {
                        cache.push(t);
                        cache.len() - 1
                    }
                }
            }
        };
        Ok((cache[index].cos.narrow(0, offset, seq)?, cache[index].sin.narrow(0, offset, seq)?))
    }

    /// The tables for positions `0..len`, computed in float64.
    fn build(&self, len: usize, dtype: DType, dev: &Device) -> Result<(Tensor, Tensor)> {
        let half = self.head_dim / 2;
        let mut cos = Vec::with_capacity(len * half);
        let mut sin = Vec::with_capacity(len * half);
        for p in 0..len {
            for &f in &self.inv_freq {
                let (s, c) = (p as f64 * f).sin_cos();
                cos.push(c);
                sin.push(s);
            }
        }
        let cos = Tensor::from_vec(cos, (len, half), &Device::Cpu)?.to_dtype(dtype)?.to_device(dev)?;
        let sin = Tensor::from_vec(sin, (len, half), &Device::Cpu)?.to_dtype(dtype)?.to_device(dev)?;
        Ok((cos, sin))
    }

    /// Applies RoPE with candle's fused kernel.
    ///
    /// # Shapes
    /// `x: (batch, heads, seq, head_dim) → (batch, heads, seq, head_dim)`
    pub fn forward(&self, x: &Tensor, offset: usize) -> Result<Tensor> {
        let seq = x.dim(2)?;
        let (cos, sin) = self.tables(offset, seq, x.dtype(), x.device())?;
        crate::training::rope(x, &cos, &sin)
    }

    /// `x·cos + rotate_half(x)·sin` in float64, straight from the definition.
    pub fn forward_reference(&self, x: &Tensor, offset: usize) -> Result<Tensor> {
        let x = to_f64_cpu(x)?;
        let seq = x.dim(2)?;
        // Built here rather than read from the fast path's cache, so that a slip in the cache
        // (an offset, a growth) shows up as a difference between the two.
        let (cos, sin) = self.build(offset + seq, DType::F64, &Device::Cpu)?;
        let (cos, sin) = (cos.narrow(0, offset, seq)?, sin.narrow(0, offset, seq)?);
        let cos = Tensor::cat(&[&cos, &cos], D::Minus1)?; // (seq, head_dim)
        let sin = Tensor::cat(&[&sin, &sin], D::Minus1)?;
        let half = self.head_dim / 2;
        let x1 = x.narrow(D::Minus1, 0, half)?;
        let x2 = x.narrow(D::Minus1, half, half)?;
        let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
        x.broadcast_mul(&cos)? + rotated.broadcast_mul(&sin)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_tables_give_the_rows_a_fresh_build_gives() {
        let rope = RotaryEmbedding::new(8, 10_000.0, None);
        let rows = |t: &Tensor| t.to_vec2::<f64>().unwrap();
        // A short request, then one past it (a rebuild at twice the length), then a slice
        // inside: each equals the matching rows of a table built for exactly those positions.
        for (offset, seq) in [(0, 3), (2, 5), (4, 2), (0, 1)] {
            let (cos, sin) = rope.tables(offset, seq, DType::F64, &Device::Cpu).unwrap();
            let (fc, fs) = rope.build(offset + seq, DType::F64, &Device::Cpu).unwrap();
            assert_eq!(rows(&cos), rows(&fc.narrow(0, offset, seq).unwrap()), "{offset}+{seq}");
            assert_eq!(rows(&sin), rows(&fs.narrow(0, offset, seq).unwrap()), "{offset}+{seq}");
        }
        let cache = rope.tables.lock().unwrap();
        assert_eq!((cache.len(), cache[0].len), (1, 7), "one table, grown once to cover 0..7");
        drop(cache);
        rope.tables(0, 2, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(rope.tables.lock().unwrap().len(), 2, "a table per dtype");
    }

    #[test]
    fn plain_frequencies_follow_theta() {
        let f = inverse_frequencies(8, 10_000.0, None);
        assert_eq!(f.len(), 4);
        assert!((f[0] - 1.0).abs() < 1e-15);
        assert!((f[1] - 0.1).abs() < 1e-15); // 10000^(-2/8) = 0.1
        assert!((f[3] - 1e-3).abs() < 1e-15);
    }

    #[test]
    fn llama3_scaling_matches_numpy_with_every_factor_set() {
        // Band edges 128/8 = 16 and 128/2 = 64: wavelength 2π is kept, 32.4 interpolated,
        // 167 and longer divided by 8. Values from tools/golden/numpy_check.py's inv_freq.
        let s = RopeScaling { rope_type: "llama3".into(), factor: 8.0, low_freq_factor: 2.0, high_freq_factor: 8.0, original_max_position_embeddings: 128 };
        let f = inverse_frequencies(16, 500_000.0, Some(&s));
        for (got, want) in f.iter().zip([1.0, 0.0794030091792082, 0.004700753866357992, 0.0009115830921521386]) {
            assert!((got - want).abs() <= 1e-15 * want, "{got} vs {want}");
        }
        // Another rope_type leaves the frequencies alone.
        let other = RopeScaling { rope_type: "linear".into(), ..s };
        assert_eq!(inverse_frequencies(16, 500_000.0, Some(&other)), inverse_frequencies(16, 500_000.0, None));
    }

    #[test]
    fn llama3_scaling_keeps_high_and_divides_low_frequencies() {
        let s = RopeScaling { rope_type: "llama3".into(), factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192 };
        let plain = inverse_frequencies(128, 500_000.0, None);
        let scaled = inverse_frequencies(128, 500_000.0, Some(&s));
        // The fastest rotation (wavelength 2π) is far below 8192/4 and stays.
        assert_eq!(plain[0], scaled[0]);
        // The slowest one (wavelength ≫ 8192) is divided by the factor.
        assert!((scaled[63] - plain[63] / 8.0).abs() < 1e-18);
        // Somewhere in between the interpolation gives values strictly between the two.
        let mid = (0..64)
            .find(|&i| {
                let w = 2.0 * std::f64::consts::PI / plain[i];
                w > 2048.0 && w < 8192.0
            })
            .unwrap();
        assert!(scaled[mid] < plain[mid] && scaled[mid] > plain[mid] / 8.0);
    }

    #[test]
    fn numbers_that_would_give_nan_are_rejected_by_name() {
        let good = RopeScaling { rope_type: "llama3".into(), factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192 };
        assert!(validate_rope(500_000.0, Some(&good)).is_ok());
        for theta in [-1.0, 0.0, f64::NAN, f64::INFINITY] {
            let e = validate_rope(theta, None).unwrap_err().to_string();
            assert!(e.contains("`rope_theta`") && e.contains("> 0"), "{e}");
        }
        let bad = |edit: fn(&mut RopeScaling)| {
            let mut s = good.clone();
            edit(&mut s);
            validate_rope(10_000.0, Some(&s)).unwrap_err().to_string()
        };
        assert!(bad(|s| s.factor = 0.0).contains("`rope_scaling.factor`"));
        assert!(bad(|s| s.factor = f64::NAN).contains("`rope_scaling.factor`"));
        assert!(bad(|s| s.low_freq_factor = -1.0).contains("`rope_scaling.low_freq_factor`"));
        assert!(bad(|s| s.high_freq_factor = f64::INFINITY).contains("`rope_scaling.high_freq_factor`"));
        let e = bad(|s| s.high_freq_factor = 1.0);
        assert!(e.contains("`rope_scaling.high_freq_factor`") && e.contains("greater than low_freq_factor 1"), "{e}");
        assert!(bad(|s| s.original_max_position_embeddings = 0).contains("`rope_scaling.original_max_position_embeddings`"));
        // The rejected values are exactly those that make a frequency non-finite.
        assert!(inverse_frequencies(128, 500_000.0, Some(&RopeScaling { factor: 0.0, ..good.clone() })).iter().any(|f| !f.is_finite()));
    }

    #[test]
    fn fused_and_reference_agree_and_position_zero_is_identity() {
        let rope = RotaryEmbedding::new(16, 10_000.0, None);
        let x = crate::init::randn(1, "x", (2, 3, 5, 16), DType::F32, &Device::Cpu).unwrap();
        let fast = rope.forward(&x, 3).unwrap().to_dtype(DType::F64).unwrap();
        let slow = rope.forward_reference(&x, 3).unwrap();
        let diff = (fast - &slow).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
        assert!(diff < 1e-5, "{diff}");
        let at0 = rope.forward_reference(&x.narrow(2, 0, 1).unwrap(), 0).unwrap();
        let x0 = x.narrow(2, 0, 1).unwrap().to_dtype(DType::F64).unwrap();
        let diff = (at0 - x0).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
        assert_eq!(diff, 0.0);
    }
}
