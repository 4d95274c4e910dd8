//! Affine map `y = x Wᵀ + b` with Hugging Face `weight`/`bias` names.

use crate::block::{bytes_of, to_f64_cpu, tokens, Block, Cost};
use crate::catalog::BlockKind;
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

    /// `(in_features, out_features)`.
    pub fn features(&self) -> (usize, usize) {
        let d = self.weight().dims();
        (d[1], d[0])
    }
}

impl Module for Linear {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.inner.forward(xs)
    }
}

impl Block for Linear {
    fn kind(&self) -> BlockKind {
        BlockKind::Linear
    }

    fn dims(&self) -> Vec<(&'static str, usize)> {
        let (i, o) = self.features();
        vec![("in_features", i), ("out_features", o)]
    }

    fn own_parameters(&self) -> Vec<(String, Tensor)> {
        let mut p = vec![("weight".to_string(), self.weight().clone())];
        p.extend(self.bias().map(|b| ("bias".to_string(), b.clone())));
        p
    }

    fn rebuild(&self, vb: VarBuilder) -> crate::Result<Box<dyn Block>> {
        let (i, o) = self.features();
        Ok(Box::new(Linear::new(i, o, self.bias().is_some(), vb)?))
    }

    fn input_shape(&self, batch: usize, seq: usize) -> Vec<usize> {
        vec![batch, seq, self.features().0]
    }

    /// `2·n·in·out` flops over `n` tokens, and the bytes of input, output and weight. Only the
    /// token count is read from `shape` (every dimension but the last); the widths are the
    /// weight's.
    fn cost(&self, shape: &[usize]) -> Cost {
        let (n, (i, o)) = (tokens(shape), self.features());
        let (i, o) = (i as f64, o as f64);
        Cost { flops: 2.0 * n * i * o, bytes: bytes_of(n * i + n * o + i * o, self.weight().dtype()) }
    }

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
