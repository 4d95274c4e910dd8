//! One LLaMA decoder layer: pre-norm attention and pre-norm SwiGLU, each with a residual.

use super::LlamaConfig;
use crate::attention::{Attention, KvCache};
use crate::block::{to_f64_cpu, Block};
use crate::rms_norm::RmsNorm;
use crate::swiglu::SwiGlu;
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

    /// Forward with an optional KV cache for incremental decoding.
    pub fn forward_with(&self, x: &Tensor, cache: Option<&mut KvCache>) -> Result<Tensor> {
        let h = (x + self.self_attn.forward_with(&self.input_layernorm.forward(x)?, None, cache)?)?;
        &h + self.mlp.forward(&self.post_attention_layernorm.forward(&h)?)?
    }
}

impl Module for LlamaDecoderLayer {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_with(xs, None)
    }
}

impl Block for LlamaDecoderLayer {
    fn forward_reference(&self, xs: &Tensor) -> Result<Tensor> {
        let x = to_f64_cpu(xs)?;
        let h = (&x + self.self_attn.forward_reference(&self.input_layernorm.forward_reference(&x)?)?)?;
        &h + self.mlp.forward_reference(&self.post_attention_layernorm.forward_reference(&h)?)?
    }
}
