//! One LLaMA decoder layer: pre-norm attention and pre-norm SwiGLU, each with a residual.

use super::LlamaConfig;
use crate::attention::{Attention, KvCache};
use crate::block::{to_f64_cpu, Block, Child, Cost};
use crate::catalog::BlockKind;
use crate::rms_norm::RmsNorm;
use crate::swiglu::SwiGlu;
use crate::training::{dropout, DropoutSite};
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

/// `h = x + self_attn(input_layernorm(x)); y = h + mlp(post_attention_layernorm(h))`.
///
/// # Shapes
/// `(batch, seq, hidden) → (batch, seq, hidden)`
#[derive(Debug, Clone)]
pub struct LlamaDecoderLayer {
    self_attn: Attention,
    mlp: SwiGlu,
    input_layernorm: RmsNorm,
    post_attention_layernorm: RmsNorm,
    cfg: LlamaConfig,
}

impl LlamaDecoderLayer {
    /// Loads `self_attn`, `mlp`, `input_layernorm`, `post_attention_layernorm` from `vb`.
    pub fn new(cfg: &LlamaConfig, vb: VarBuilder) -> crate::Result<Self> {
        cfg.validate()?;
        Ok(Self {
            self_attn: Attention::new(&cfg.attention_config(), vb.pp("self_attn"))?,
            mlp: SwiGlu::new(cfg.hidden_size, cfg.intermediate_size, cfg.mlp_bias, cfg.hidden_act, vb.pp("mlp"))?,
            input_layernorm: RmsNorm::new(cfg.hidden_size, cfg.rms_norm_eps, vb.pp("input_layernorm"))?,
            post_attention_layernorm: RmsNorm::new(cfg.hidden_size, cfg.rms_norm_eps, vb.pp("post_attention_layernorm"))?,
            cfg: cfg.clone(),
        })
    }

    /// The attention sub-block.
    pub fn self_attn(&self) -> &Attention {
        &self.self_attn
    }

    /// The MLP sub-block.
    pub fn mlp(&self) -> &SwiGlu {
        &self.mlp
    }

    /// The norm before attention.
    pub fn input_layernorm(&self) -> &RmsNorm {
        &self.input_layernorm
    }

    /// The norm before the MLP.
    pub fn post_attention_layernorm(&self) -> &RmsNorm {
        &self.post_attention_layernorm
    }

    /// The configuration.
    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    /// Forward with an optional KV cache for incremental decoding.
    pub fn forward_with(&self, x: &Tensor, cache: Option<&mut KvCache>) -> Result<Tensor> {
        let attn = self.self_attn.forward_with(&self.input_layernorm.forward(x)?, None, cache)?;
        let h = (x + dropout(&attn, DropoutSite::Hidden)?)?;
        &h + dropout(&self.mlp.forward(&self.post_attention_layernorm.forward(&h)?)?, DropoutSite::Hidden)?
    }
}

impl Module for LlamaDecoderLayer {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_with(xs, None)
    }
}

impl Block for LlamaDecoderLayer {
    fn kind(&self) -> BlockKind {
        BlockKind::LlamaDecoderLayer
    }

    fn dims(&self) -> Vec<(&'static str, usize)> {
        self.cfg.layer_dims()
    }

    fn children(&self) -> Vec<Child<'_>> {
        vec![
            Child::module("self_attn", &self.self_attn),
            Child::module("mlp", &self.mlp),
            Child::module("input_layernorm", &self.input_layernorm),
            Child::module("post_attention_layernorm", &self.post_attention_layernorm),
        ]
    }

    fn rebuild(&self, vb: VarBuilder) -> crate::Result<Box<dyn Block>> {
        Ok(Box::new(LlamaDecoderLayer::new(&self.cfg, vb)?))
    }

    fn input_shape(&self, batch: usize, seq: usize) -> Vec<usize> {
        vec![batch, seq, self.cfg.hidden_size]
    }

    /// The children's costs; the residual additions are not counted.
    fn cost(&self, shape: &[usize]) -> Cost {
        self.children_cost(shape)
    }

    fn forward_reference(&self, xs: &Tensor) -> Result<Tensor> {
        let x = to_f64_cpu(xs)?;
        let h = (&x + self.self_attn.forward_reference(&self.input_layernorm.forward_reference(&x)?)?)?;
        &h + self.mlp.forward_reference(&self.post_attention_layernorm.forward_reference(&h)?)?
    }
}
