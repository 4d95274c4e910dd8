//! One BERT encoder layer: post-norm self-attention and post-norm GELU feed-forward.

use super::BertConfig;
use crate::attention::Attention;
use crate::block::{prefixed, to_f64_cpu, Block, Cost};
use crate::gelu_mlp::GeluMlp;
use crate::layer_norm::LayerNorm;
use crate::linear::Linear;
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
    /// Loads one `encoder.layer.{i}` from `vb`.
    pub fn new(cfg: &BertConfig, vb: VarBuilder) -> crate::Result<Self> {
        cfg.validate()?;
        let h = cfg.hidden_size;
        let (sa, out) = (vb.pp("attention").pp("self"), vb.pp("attention").pp("output"));
        let attention = Attention::from_projections(
            &cfg.attention_config(),
            Linear::new(h, h, true, sa.pp("query"))?,
            Linear::new(h, h, true, sa.pp("key"))?,
            Linear::new(h, h, true, sa.pp("value"))?,
            Linear::new(h, h, true, out.pp("dense"))?,
        )?;
        Ok(Self {
            attention,
            attention_layer_norm: LayerNorm::new(h, cfg.layer_norm_eps, true, out.pp("LayerNorm"))?,
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
        let h = self.attention_layer_norm.forward(&(x + self.attention.forward_with(x, padding, None)?)?)?;
        self.output_layer_norm.forward(&(&h + self.mlp.forward(&h)?)?)
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
    fn kind(&self) -> &'static str {
        "bert.layer"
    }

    fn dims(&self) -> Vec<(&'static str, usize)> {
        self.cfg.layer_dims()
    }

    fn parameters(&self) -> Vec<(String, Tensor)> {
        // The attention block names its projections like LLaMA; BERT checkpoints do not.
        let rename = |n: String| {
            for (from, to) in
                [("q_proj", "attention.self.query"), ("k_proj", "attention.self.key"), ("v_proj", "attention.self.value"), ("o_proj", "attention.output.dense")]
            {
                if let Some(rest) = n.strip_prefix(from) {
                    return format!("{to}{rest}");
                }
            }
            n
        };
        let mut p: Vec<(String, Tensor)> = self.attention.parameters().into_iter().map(|(n, t)| (rename(n), t)).collect();
        p.extend(prefixed("attention.output.LayerNorm", self.attention_layer_norm.parameters()));
        p.extend(self.mlp.parameters());
        p.extend(prefixed("output.LayerNorm", self.output_layer_norm.parameters()));
        p
    }

    fn rebuild(&self, vb: VarBuilder) -> crate::Result<Box<dyn Block>> {
        Ok(Box::new(BertLayer::new(&self.cfg, vb)?))
    }

    fn input_shape(&self, batch: usize, seq: usize) -> Vec<usize> {
        vec![batch, seq, self.cfg.hidden_size]
    }

    fn cost(&self, shape: &[usize]) -> Cost {
        self.attention.cost(shape) + self.mlp.cost(shape) + self.attention_layer_norm.cost(shape) + self.output_layer_norm.cost(shape)
    }

    fn forward_reference(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_reference_with(xs, None)
    }
}
