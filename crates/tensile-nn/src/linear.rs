//! Affine map `y = x Wᵀ + b` with Hugging Face `weight`/`bias` names.

use crate::block::{to_f64_cpu, Block};
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

/// A linear layer; the weight is stored `(out_features, in_features)` as in PyTorch.
#[derive(Debug, Clone)]
pub struct Linear {
    inner: candle_nn::Linear,
}

impl Linear {
    /// Loads `weight` (and `bias` when `bias` is true) from `vb`.
    pub fn new(in_features: usize, out_features: usize, bias: bool, vb: VarBuilder) -> crate::Result<Self> {
        let weight = vb.get((out_features, in_features), "weight")?;
        let bias = if bias { Some(vb.get(out_features, "bias")?) } else { None };
        Ok(Self::from_weights(weight, bias))
    }

    /// Wraps existing tensors.
    pub fn from_weights(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { inner: candle_nn::Linear::new(weight, bias) }
    }

    /// The `(out, in)` weight.
    pub fn weight(&self) -> &Tensor {
        self.inner.weight()
    }

    /// The bias, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.inner.bias()
    }
}

impl Module for Linear {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.inner.forward(xs)
    }
}

impl Block for Linear {
    /// `x Wᵀ + b` in float64 for inputs of any rank ≥ 2.
    fn forward_reference(&self, xs: &Tensor) -> Result<Tensor> {
        let x = to_f64_cpu(xs)?;
        let w = to_f64_cpu(self.weight())?;
        let y = x.broadcast_matmul(&w.t()?)?;
        match self.bias() {
            Some(b) => y.broadcast_add(&to_f64_cpu(b)?),
            None => Ok(y),
        }
    }
}
