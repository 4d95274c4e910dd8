//! Activation functions named as in Hugging Face `hidden_act`.

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

/// A pointwise activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    /// Exact GELU, `x·Φ(x)` with the error function (`"gelu"`).
    #[serde(rename = "gelu")]
    Gelu,
    /// Tanh-approximated GELU (`"gelu_new"`, `"gelu_pytorch_tanh"`).
    #[serde(rename = "gelu_pytorch_tanh", alias = "gelu_new", alias = "gelu_fast")]
    GeluTanh,
    /// `x·σ(x)` (`"silu"`, `"swish"`).
    #[serde(rename = "silu", alias = "swish")]
    Silu,
    /// `max(x, 0)` (`"relu"`).
    #[serde(rename = "relu")]
    Relu,
}

impl Activation {
    /// The fast form: candle's kernels, and for exact GELU on f32 CPU tensors a vectorised
    /// kernel of this crate ([`crate::gelu_kernel`]), both with a backward.
    pub fn forward(self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Activation::Gelu => crate::gelu_kernel::GeluErf::apply(xs),
            Activation::GeluTanh => xs.gelu(),
            Activation::Silu => xs.silu(),
            Activation::Relu => xs.relu(),
        }
    }

    /// The textbook formula, applied to a float64 tensor.
    pub fn forward_reference(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Activation::Gelu => (x * 0.5)? * ((x / std::f64::consts::SQRT_2)?.erf()? + 1.0)?,
            Activation::GeluTanh => {
                let inner = ((x + (x.powf(3.0)? * 0.044715)?)? * (2.0 / std::f64::consts::PI).sqrt())?;
                (x * 0.5)? * (inner.tanh()? + 1.0)?
            }
            Activation::Silu => x / (x.neg()?.exp()? + 1.0)?,
            Activation::Relu => x.maximum(0.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn eval(act: Activation, x: f64) -> (f64, f64) {
        let t = Tensor::new(&[x], &Device::Cpu).unwrap();
        let fast = act.forward(&t).unwrap().to_vec1::<f64>().unwrap()[0];
        let reference = act.forward_reference(&t).unwrap().to_vec1::<f64>().unwrap()[0];
        (fast, reference)
    }

    #[test]
    fn known_values() {
        // GELU(1) = Φ(1) = 0.841344746..., SiLU(1) = 1/(1+e⁻¹) = 0.731058578...
        let (f, r) = eval(Activation::Gelu, 1.0);
        assert!((r - 0.841_344_746_068_543).abs() < 1e-12 && (f - r).abs() < 1e-6);
        let (f, r) = eval(Activation::Silu, 1.0);
        assert!((r - 0.731_058_578_630_004_9).abs() < 1e-12 && (f - r).abs() < 1e-6);
        let (f, r) = eval(Activation::GeluTanh, 1.0);
        assert!((r - 0.841_191_990_608_276_8).abs() < 1e-12 && (f - r).abs() < 1e-6);
        assert_eq!(eval(Activation::Relu, -2.0), (0.0, 0.0));
    }

    #[test]
    fn parses_hugging_face_names() {
        for (name, act) in [
            ("gelu", Activation::Gelu),
            ("gelu_new", Activation::GeluTanh),
            ("gelu_pytorch_tanh", Activation::GeluTanh),
            ("silu", Activation::Silu),
            ("swish", Activation::Silu),
            ("relu", Activation::Relu),
        ] {
            assert_eq!(serde_json::from_str::<Activation>(&format!("\"{name}\"")).unwrap(), act);
        }
        assert!(serde_json::from_str::<Activation>("\"tanhh\"").is_err());
    }
}
