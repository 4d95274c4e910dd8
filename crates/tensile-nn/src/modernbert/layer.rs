//! One ModernBERT encoder layer: pre-norm attention and pre-norm GeGLU feed-forward.

use super::{ModernBertAttention, ModernBertConfig, ModernBertMlp};
use crate::block::{to_f64_cpu, Block, Child, Cost};
use crate::catalog::BlockKind;
use crate::layer_norm::LayerNorm;
use crate::training::{dropout, DropoutSite};
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

/// `h = x + attn(attn_norm(x)); y = h + mlp(mlp_norm(h))`, loading Hugging Face
/// `ModernBertEncoderLayer` names (`attn_norm`, `attn.Wqkv`, `attn.Wo`, `mlp_norm`, `mlp.Wi`,
/// `mlp.Wo`). Layer 0 has no `attn_norm`: the embeddings' norm precedes it.
///
/// # Shapes
/// `(batch, seq, hidden) → (batch, seq, hidden)`; padding mask `(batch, seq)`, 1 = token
#[derive(Debug, Clone)]
pub struct ModernBertLayer {
    attn_norm: Option<LayerNorm>,
    attn: ModernBertAttention,
    mlp_norm: LayerNorm,
    mlp: ModernBertMlp,
    layer_idx: usize,
    cfg: ModernBertConfig,
}

impl ModernBertLayer {
    /// Loads `layers.{layer_idx}` from `vb`; the index decides global or local attention and
    /// whether there is an `attn_norm`.
    pub fn new(cfg: &ModernBertConfig, layer_idx: usize, vb: VarBuilder) -> crate::Result<Self> {
        cfg.validate_layer()?;
        let norm = |name: &str| LayerNorm::new(cfg.hidden_size, cfg.norm_eps, cfg.norm_bias, vb.pp(name));
        Ok(Self {
            attn_norm: if layer_idx == 0 { None } else { Some(norm("attn_norm")?) },
            attn: ModernBertAttention::new(cfg, layer_idx, vb.pp("attn"))?,
            mlp_norm: norm("mlp_norm")?,
            mlp: ModernBertMlp::new(cfg, vb.pp("mlp"))?,
            layer_idx,
            cfg: cfg.clone(),
        })
    }

    /// The layer's self-attention (`attn`).
    pub fn attention(&self) -> &ModernBertAttention {
        &self.attn
    }

    /// The feed-forward block (`mlp`).
    pub fn mlp(&self) -> &ModernBertMlp {
        &self.mlp
    }

    /// The norm before the feed-forward block (`mlp_norm`).
    pub fn mlp_norm(&self) -> &LayerNorm {
        &self.mlp_norm
    }

    /// The layer's index in the model.
    pub fn layer_idx(&self) -> usize {
        self.layer_idx
    }

    /// Forward with an optional padding mask.
    pub fn forward_with(&self, x: &Tensor, padding: Option<&Tensor>) -> Result<Tensor> {
        let normed = match &self.attn_norm {
            Some(norm) => norm.forward(x)?,
            None => x.clone(),
        };
        let h = (x + dropout(&self.attn.forward_with(&normed, padding)?, DropoutSite::Hidden)?)?;
        &h + dropout(&self.mlp.forward(&self.mlp_norm.forward(&h)?)?, DropoutSite::Hidden)?
    }

    /// Float64 twin of [`ModernBertLayer::forward_with`].
    pub fn forward_reference_with(&self, x: &Tensor, padding: Option<&Tensor>) -> Result<Tensor> {
        let x = to_f64_cpu(x)?;
        let normed = match &self.attn_norm {
            Some(norm) => norm.forward_reference(&x)?,
            None => x.clone(),
        };
        let h = (&x + self.attn.forward_reference_with(&normed, padding)?)?;
        &h + self.mlp.forward_reference(&self.mlp_norm.forward_reference(&h)?)?
    }
}

impl Module for ModernBertLayer {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_with(xs, None)
    }
}

impl Block for ModernBertLayer {
    fn kind(&self) -> BlockKind {
        BlockKind::ModernBertLayer
    }

    fn dims(&self) -> Vec<(&'static str, usize)> {
        let mut dims = self.cfg.layer_dims();
        dims.push(("local_attention", self.attn.pattern().window.map_or(0, |half| 2 * half)));
        dims
    }

    fn children(&self) -> Vec<Child<'_>> {
        let mut c: Vec<Child<'_>> = self.attn_norm.iter().map(|n| Child::module("attn_norm", n)).collect();
        c.push(Child::module("attn", &self.attn));
        c.push(Child::module("mlp_norm", &self.mlp_norm));
        c.push(Child::module("mlp", &self.mlp));
        c
    }

    fn rebuild(&self, vb: VarBuilder) -> crate::Result<Box<dyn Block>> {
        Ok(Box::new(ModernBertLayer::new(&self.cfg, self.layer_idx, vb)?))
    }

    fn input_shape(&self, batch: usize, seq: usize) -> Vec<usize> {
        vec![batch, seq, self.cfg.hidden_size]
    }

    /// The children's costs; the residual additions are not counted.
    fn cost(&self, shape: &[usize]) -> Cost {
        self.children_cost(shape)
    }

    fn forward_reference(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_reference_with(xs, None)
    }
}
