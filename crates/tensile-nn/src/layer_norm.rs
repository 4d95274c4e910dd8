//! Layer normalisation with optional bias (BERT's `LayerNorm`).

use crate::block::{bytes_of, to_f64_cpu, tokens, Block, Cost};
use crate::catalog::BlockKind;
use candle_core::{Module, Result, Tensor, D};
use candle_nn::VarBuilder;

/// `y = (x - mean(x)) / sqrt(var(x) + eps) · weight + bias` over the last dimension, with the
/// biased variance as in PyTorch.
///
/// # Shapes
/// `(…, hidden) → (…, hidden)`
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Option<Tensor>,
    eps: f64,
}

impl LayerNorm {
    /// Loads `weight` (and `bias` when `bias` is true) of length `hidden_size` from `vb`.
    pub fn new(hidden_size: usize, eps: f64, bias: bool, vb: VarBuilder) -> crate::Result<Self> {
        let weight = vb.get(hidden_size, "weight")?;
        let bias = if bias { Some(vb.get(hidden_size, "bias")?) } else { None };
        Ok(Self { weight, bias, eps })
    }
}

impl Module for LayerNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        crate::training::layer_norm(xs, &self.weight, self.bias.as_ref(), self.eps)
    }
}

impl Block for LayerNorm {
    fn kind(&self) -> BlockKind {
        BlockKind::LayerNorm
    }

    fn dims(&self) -> Vec<(&'static str, usize)> {
        vec![("hidden_size", self.weight.elem_count())]
    }

    fn own_parameters(&self) -> Vec<(String, Tensor)> {
        let mut p = vec![("weight".to_string(), self.weight.clone())];
        p.extend(self.bias.as_ref().map(|b| ("bias".to_string(), b.clone())));
        p
    }

    fn rebuild(&self, vb: VarBuilder) -> crate::Result<Box<dyn Block>> {
        Ok(Box::new(LayerNorm::new(self.weight.dim(0)?, self.eps, self.bias.is_some(), vb)?))
    }

    fn input_shape(&self, batch: usize, seq: usize) -> Vec<usize> {
        vec![batch, seq, self.weight.dims()[0]]
    }

    fn cost(&self, shape: &[usize]) -> Cost {
        let (n, h) = (tokens(shape), self.weight.dims()[0] as f64);
        Cost { flops: 8.0 * n * h, bytes: bytes_of(2.0 * n * h + 2.0 * h, self.weight.dtype()) }
    }

    fn forward_reference(&self, xs: &Tensor) -> Result<Tensor> {
        let x = to_f64_cpu(xs)?;
        let centred = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let y = centred.broadcast_div(&(var + self.eps)?.sqrt()?)?.broadcast_mul(&to_f64_cpu(&self.weight)?)?;
        match &self.bias {
            Some(b) => y.broadcast_add(&to_f64_cpu(b)?),
            None => Ok(y),
        }
    }
}
