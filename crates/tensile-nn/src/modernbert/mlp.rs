//! ModernBERT's GeGLU feed-forward block.

use super::ModernBertConfig;
use crate::activation::Activation;
use crate::block::{bytes_of, tokens, Block, Child, Cost};
use crate::catalog::BlockKind;
use crate::linear::Linear;
use candle_core::{Module, Result, Tensor, D};
use candle_nn::VarBuilder;

/// `Wo(act(input) · gate)` where `input, gate` are the two halves of `Wi(x)`, loading Hugging
/// Face `ModernBertMLP` names (`Wi`, `Wo`).
///
/// # Shapes
/// `(batch, seq, hidden) → (batch, seq, hidden)` through `(batch, seq, 2·intermediate)`
#[derive(Debug, Clone)]
pub struct ModernBertMlp {
    wi: Linear,
    wo: Linear,
    act: Activation,
    cfg: ModernBertConfig,
}

impl ModernBertMlp {
    /// Loads `Wi` (`hidden → 2·intermediate`) and `Wo` (`intermediate → hidden`).
    pub fn new(cfg: &ModernBertConfig, vb: VarBuilder) -> crate::Result<Self> {
        cfg.validate_mlp()?;
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Self {
            wi: Linear::new(h, 2 * i, cfg.mlp_bias, vb.pp("Wi"))?,
            wo: Linear::new(i, h, cfg.mlp_bias, vb.pp("Wo"))?,
            act: cfg.hidden_activation,
            cfg: cfg.clone(),
        })
    }

    /// `Wi(x)` split into its input half (first) and gate half (second), as `chunk(2, -1)`.
    fn halves(&self, wi: &Tensor) -> Result<(Tensor, Tensor)> {
        let i = self.cfg.intermediate_size;
        Ok((wi.narrow(D::Minus1, 0, i)?, wi.narrow(D::Minus1, i, i)?))
    }
}

impl Module for ModernBertMlp {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (input, gate) = self.halves(&self.wi.forward(xs)?)?;
        self.wo.forward(&(self.act.forward(&input.contiguous()?)? * gate)?)
    }
}

impl Block for ModernBertMlp {
    fn kind(&self) -> BlockKind {
        BlockKind::ModernBertMlp
    }

    fn dims(&self) -> Vec<(&'static str, usize)> {
        vec![("hidden_size", self.cfg.hidden_size), ("intermediate_size", self.cfg.intermediate_size)]
    }

    fn children(&self) -> Vec<Child<'_>> {
        vec![Child::part("Wi", &self.wi), Child::part("Wo", &self.wo)]
    }

    fn rebuild(&self, vb: VarBuilder) -> crate::Result<Box<dyn Block>> {
        Ok(Box::new(ModernBertMlp::new(&self.cfg, vb)?))
    }

    fn input_shape(&self, batch: usize, seq: usize) -> Vec<usize> {
        vec![batch, seq, self.cfg.hidden_size]
    }

    fn cost(&self, shape: &[usize]) -> Cost {
        let (n, i) = (tokens(shape), self.cfg.intermediate_size as f64);
        // Activation and product: a handful of flops and the split halves copied once.
        let pointwise = Cost { flops: 9.0 * n * i, bytes: bytes_of(2.0 * n * i, self.wi.weight().dtype()) };
        // A linear layer's cost reads only the token count from a shape.
        self.wi.cost(shape) + self.wo.cost(shape) + pointwise
    }

    fn forward_reference(&self, xs: &Tensor) -> Result<Tensor> {
        let (input, gate) = self.halves(&self.wi.forward_reference(xs)?)?;
        self.wo.forward_reference(&(self.act.forward_reference(&input)? * gate)?)
    }
}
