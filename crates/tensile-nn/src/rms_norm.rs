//! Root-mean-square normalisation (LLaMA's `LlamaRMSNorm`).

use crate::block::{bytes_of, to_f64_cpu, tokens, Block, Cost};
use crate::catalog::BlockKind;
use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::VarBuilder;

/// `y = x / sqrt(mean(x²) + eps) · weight`, normalising over the last dimension.
///
/// # Shapes
/// `(…, hidden) → (…, hidden)`
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    /// Loads `weight` of length `hidden_size` from `vb`.
    pub fn new(hidden_size: usize, eps: f64, vb: VarBuilder) -> crate::Result<Self> {
        Ok(Self { weight: vb.get(hidden_size, "weight")?, eps })
    }

    /// The learned scale.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
}

impl Module for RmsNorm {
    /// candle's fused kernel (statistics in f32 for half-precision inputs, like PyTorch's upcast).
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        crate::training::rms_norm(xs, &self.weight, self.eps)
    }
}

impl Block for RmsNorm {
    fn kind(&self) -> BlockKind {
        BlockKind::LlamaRmsNorm
    }

    fn dims(&self) -> Vec<(&'static str, usize)> {
        vec![("hidden_size", self.weight.elem_count())]
    }

    fn own_parameters(&self) -> Vec<(String, Tensor)> {
        vec![("weight".to_string(), self.weight.clone())]
    }

    fn rebuild(&self, vb: VarBuilder) -> crate::Result<Box<dyn Block>> {
        Ok(Box::new(RmsNorm::new(self.weight.dim(0)?, self.eps, vb)?))
    }

    fn input_shape(&self, batch: usize, seq: usize) -> Vec<usize> {
        vec![batch, seq, self.weight.dims()[0]]
    }

    fn cost(&self, shape: &[usize]) -> Cost {
        let (n, h) = (tokens(shape), self.weight.dims()[0] as f64);
        Cost { flops: 4.0 * n * h, bytes: bytes_of(2.0 * n * h + h, self.weight.dtype()) }
    }

    fn forward_reference(&self, xs: &Tensor) -> Result<Tensor> {
        let x = to_f64_cpu(xs)?;
        let mean_sq = x.sqr()?.mean_keepdim(D::Minus1)?;
        let inv_rms = (mean_sq + self.eps)?.sqrt()?.recip()?;
        x.broadcast_mul(&inv_rms)?.broadcast_mul(&self.weight.to_dtype(DType::F64)?.to_device(x.device())?)
    }
}
