//! The LLaMA causal language model: embeddings, decoder layers, final norm and `lm_head`.

use super::{LlamaConfig, LlamaDecoderLayer};
use crate::attention::KvCache;
use crate::block::{to_f64_cpu, Block};
use crate::embedding::Embedding;
use crate::rms_norm::RmsNorm;
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

/// `LlamaForCausalLM`: token ids to next-token logits.
///
/// Loads `model.embed_tokens`, `model.layers.{i}`, `model.norm` and `lm_head` (or reuses the
/// embedding matrix when `tie_word_embeddings` is set).
///
/// # Shapes
/// `ids: (batch, seq) → logits: (batch, seq, vocab)`
#[derive(Debug, Clone)]
pub struct Llama {
    embed_tokens: Embedding,
    layers: Vec<LlamaDecoderLayer>,
    norm: RmsNorm,
    lm_head: Tensor,
}

impl Llama {
    /// Loads the whole model from a `LlamaForCausalLM` checkpoint rooted at `vb`.
    pub fn new(cfg: &LlamaConfig, vb: VarBuilder) -> crate::Result<Self> {
        cfg.validate()?;
        let m = vb.pp("model");
        let embed_tokens = Embedding::new(cfg.vocab_size, cfg.hidden_size, m.pp("embed_tokens"))?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| LlamaDecoderLayer::new(cfg, m.pp("layers").pp(i)))
            .collect::<crate::Result<Vec<_>>>()?;
        let norm = RmsNorm::new(cfg.hidden_size, cfg.rms_norm_eps, m.pp("norm"))?;
        let lm_head = if cfg.tie_word_embeddings {
            embed_tokens.weight().clone()
        } else {
            vb.pp("lm_head").get((cfg.vocab_size, cfg.hidden_size), "weight")?
        };
        Ok(Self { embed_tokens, layers, norm, lm_head })
    }

    /// The decoder layers.
    pub fn layers(&self) -> &[LlamaDecoderLayer] {
        &self.layers
    }

    /// Logits for `ids`, extending `caches` (one per layer) when given.
    pub fn forward_with(&self, ids: &Tensor, mut caches: Option<&mut [KvCache]>) -> Result<Tensor> {
        let mut h = self.embed_tokens.forward(ids)?;
        for (i, layer) in self.layers.iter().enumerate() {
            let cache = caches.as_deref_mut().map(|c| &mut c[i]);
            h = layer.forward_with(&h, cache)?;
        }
        self.norm.forward(&h)?.broadcast_matmul(&self.lm_head.t()?)
    }
}

impl Module for Llama {
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        self.forward_with(ids, None)
    }
}

impl Block for Llama {
    fn forward_reference(&self, ids: &Tensor) -> Result<Tensor> {
        let mut h = self.embed_tokens.forward_reference(ids)?;
        for layer in &self.layers {
            h = layer.forward_reference(&h)?;
        }
        self.norm.forward_reference(&h)?.broadcast_matmul(&to_f64_cpu(&self.lm_head)?.t()?)
    }
}
