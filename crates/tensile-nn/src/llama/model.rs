//! The LLaMA causal language model: embeddings, decoder layers, final norm and `lm_head`.

use super::{LlamaConfig, LlamaDecoderLayer};
use crate::attention::KvCache;
use crate::block::{bytes_of, prefixed, to_f64_cpu, Block, Cost, InputKind};
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
    cfg: LlamaConfig,
}

impl Llama {
    /// Loads the whole model from a `LlamaForCausalLM` checkpoint rooted at `vb`.
    pub fn new(cfg: &LlamaConfig, vb: VarBuilder) -> crate::Result<Self> {
        cfg.validate()?;
        let m = vb.pp("model");
        let embed_tokens = Embedding::new(cfg.vocab_size, cfg.hidden_size, m.pp("embed_tokens"))?;
        let layers = (0..cfg.num_hidden_layers).map(|i| LlamaDecoderLayer::new(cfg, m.pp("layers").pp(i))).collect::<crate::Result<Vec<_>>>()?;
        let norm = RmsNorm::new(cfg.hidden_size, cfg.rms_norm_eps, m.pp("norm"))?;
        let lm_head =
            if cfg.tie_word_embeddings { embed_tokens.weight().clone() } else { vb.pp("lm_head").get((cfg.vocab_size, cfg.hidden_size), "weight")? };
        Ok(Self { embed_tokens, layers, norm, lm_head, cfg: cfg.clone() })
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
    fn kind(&self) -> &'static str {
        "llama"
    }

    fn dims(&self) -> Vec<(&'static str, usize)> {
        let mut dims = self.cfg.layer_dims();
        dims.push(("num_hidden_layers", self.cfg.num_hidden_layers));
        dims
    }

    fn parameters(&self) -> Vec<(String, Tensor)> {
        let mut p = prefixed("model.embed_tokens", self.embed_tokens.parameters());
        for (i, layer) in self.layers.iter().enumerate() {
            p.extend(prefixed(&format!("model.layers.{i}"), layer.parameters()));
        }
        p.extend(prefixed("model.norm", self.norm.parameters()));
        if !self.cfg.tie_word_embeddings {
            p.push(("lm_head.weight".to_string(), self.lm_head.clone()));
        }
        p
    }

    fn rebuild(&self, vb: VarBuilder) -> crate::Result<Box<dyn Block>> {
        Ok(Box::new(Llama::new(&self.cfg, vb)?))
    }

    fn input_kind(&self) -> InputKind {
        InputKind::TokenIds { vocab: self.cfg.vocab_size }
    }

    fn input_shape(&self, batch: usize, seq: usize) -> Vec<usize> {
        vec![batch, seq]
    }

    fn cost(&self, shape: &[usize]) -> Cost {
        let hidden = [shape[0], shape[1], self.cfg.hidden_size];
        let n = (shape[0] * shape[1]) as f64;
        let (h, v) = (self.cfg.hidden_size as f64, self.cfg.vocab_size as f64);
        let head = Cost { flops: 2.0 * n * h * v, bytes: bytes_of(n * v + h * v, self.lm_head.dtype()) };
        self.layers.iter().fold(self.embed_tokens.cost(shape) + self.norm.cost(&hidden) + head, |acc, l| acc + l.cost(&hidden))
    }

    fn forward_reference(&self, ids: &Tensor) -> Result<Tensor> {
        let mut h = self.embed_tokens.forward_reference(ids)?;
        for layer in &self.layers {
            h = layer.forward_reference(&h)?;
        }
        self.norm.forward_reference(&h)?.broadcast_matmul(&to_f64_cpu(&self.lm_head)?.t()?)
    }
}
