//! One BERT encoder layer: post-norm self-attention and post-norm GELU feed-forward.

use super::BertConfig;
use crate::attention::Attention;
use crate::block::{to_f64_cpu, Block, Child, Cost};
use crate::catalog::BlockKind;
use crate::gelu_mlp::GeluMlp;
use crate::layer_norm::LayerNorm;
use crate::training::{dropout, DropoutSite};
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

/// `h = LN(x + attention(x)); y = LN(h + mlp(h))`, loading Hugging Face `BertLayer` names
/// (`attention.self.query`, `attention.output.dense`, `attention.output.LayerNorm`,
/// `intermediate.dense`, `output.dense`, `output.LayerNorm`).
///
/// # Shapes
/// `(batch, seq, hidden) → (batch, seq, hidden)`; padding mask `(batch, seq)`, 1 = token
#[derive(Debug, Clone)]
pub struct BertLayer {
    attention: Attention,
    attention_layer_norm: LayerNorm,
    mlp: GeluMlp,
    output_layer_norm: LayerNorm,
    cfg: BertConfig,
}

impl BertLayer {
    /// BERT's names for the attention projections, relative to `attention`.
    pub const ATTENTION_NAMES: [&'static str; 4] = ["self.query", "self.key", "self.value", "output.dense"];

    /// Loads one `encoder.layer.{i}` from `vb`.
    pub fn new(cfg: &BertConfig, vb: VarBuilder) -> crate::Result<Self> {
        cfg.validate_layer()?;
        let h = cfg.hidden_size;
        Ok(Self {
            attention: Attention::with_names(&cfg.attention_config(), Self::ATTENTION_NAMES, vb.pp("attention"))?,
            attention_layer_norm: LayerNorm::new(h, cfg.layer_norm_eps, true, vb.pp("attention").pp("output").pp("LayerNorm"))?,
            mlp: GeluMlp::new(h, cfg.intermediate_size, cfg.hidden_act, vb.clone())?,
            output_layer_norm: LayerNorm::new(h, cfg.layer_norm_eps, true, vb.pp("output").pp("LayerNorm"))?,
            cfg: cfg.clone(),
        })
    }

    /// The self-attention block (`attention.self` + `attention.output.dense`).
    pub fn attention(&self) -> &Attention {
        &self.attention
    }

    /// The norm after attention (`attention.output.LayerNorm`).
    pub fn attention_layer_norm(&self) -> &LayerNorm {
        &self.attention_layer_norm
    }

    /// The feed-forward block (`intermediate.dense` + `output.dense`).
    pub fn mlp(&self) -> &GeluMlp {
        &self.mlp
    }

    /// The norm after the feed-forward block (`output.LayerNorm`).
    pub fn output_layer_norm(&self) -> &LayerNorm {
        &self.output_layer_norm
    }

    /// Forward with an optional padding mask.
    pub fn forward_with(&self, x: &Tensor, padding: Option<&Tensor>) -> Result<Tensor> {
        let attn = dropout(&self.attention.forward_with(x, padding, None)?, DropoutSite::Hidden)?;
        let h = self.attention_layer_norm.forward(&(x + attn)?)?;
        self.output_layer_norm.forward(&(&h + dropout(&self.mlp.forward(&h)?, DropoutSite::Hidden)?)?)
    }

    /// Float64 twin of [`BertLayer::forward_with`].
    pub fn forward_reference_with(&self, x: &Tensor, padding: Option<&Tensor>) -> Result<Tensor> {
        let x = to_f64_cpu(x)?;
        let h = self.attention_layer_norm.forward_reference(&(&x + self.attention.forward_reference_with(&x, padding)?)?)?;
        self.output_layer_norm.forward_reference(&(&h + self.mlp.forward_reference(&h)?)?)
    }
}

impl Module for BertLayer {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_with(xs, None)
    }
}

impl Block for BertLayer {
    fn kind(&self) -> BlockKind {
        BlockKind::BertLayer
    }

    fn dims(&self) -> Vec<(&'static str, usize)> {
        self.cfg.layer_dims()
    }

    /// The attention (its projections named as in BERT checkpoints), its norm, the
    /// feed-forward block (listed as `mlp`, its `intermediate.dense` and `output.dense` named
    /// from the layer's root) and the output norm.
    fn children(&self) -> Vec<Child<'_>> {
        vec![
            Child::module("attention", &self.attention),
            Child::module("attention.output.LayerNorm", &self.attention_layer_norm),
            Child::module("mlp", &self.mlp).with_prefix(""),
            Child::module("output.LayerNorm", &self.output_layer_norm),
        ]
    }

    fn rebuild(&self, vb: VarBuilder) -> crate::Result<Box<dyn Block>> {
        Ok(Box::new(BertLayer::new(&self.cfg, vb)?))
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
