//! The LLaMA causal language model: embeddings, decoder layers, final norm and `lm_head`.

use super::{LlamaConfig, LlamaDecoderLayer};
use crate::attention::KvCache;
use crate::block::{bytes_of, to_f64_cpu, Block, Child, Cost, InputKind};
use crate::catalog::BlockKind;
use crate::embedding::Embedding;
use crate::linear::Linear;
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
    /// `None` when `lm_head` is the embedding matrix (`tie_word_embeddings`).
    lm_head: Option<Linear>,
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
        let lm_head = if cfg.tie_word_embeddings { None } else { Some(Linear::new(cfg.hidden_size, cfg.vocab_size, false, vb.pp("lm_head"))?) };
        Ok(Self { embed_tokens, layers, norm, lm_head, cfg: cfg.clone() })
    }

    /// The `(vocab, hidden)` output projection: `lm_head.weight`, or the embedding matrix when
    /// the two are tied.
    fn lm_head(&self) -> Tensor {
        self.lm_head.as_ref().map_or_else(|| self.embed_tokens.weight().clone(), |l| l.weight())
    }

    /// Logits from the final hidden states: through `lm_head` as a layer (so a quantized or
    /// adapted head computes as such), or against the tied embedding matrix.
    fn head(&self, h: &Tensor) -> Result<Tensor> {
        match &self.lm_head {
            Some(l) => l.forward(h),
            None => crate::linear::matmul_t(h, self.embed_tokens.weight(), None),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    /// The decoder layers.
    pub fn layers(&self) -> &[LlamaDecoderLayer] {
        &self.layers
    }

    /// Logits for `ids`, extending `caches` (one per layer) when given.
    pub fn forward_with(&self, ids: &Tensor, mut caches: Option<&mut [KvCache]>) -> Result<Tensor> {
        let mut h = crate::training::dropout(&self.embed_tokens.forward(ids)?, crate::training::DropoutSite::Hidden)?;
        for (i, layer) in self.layers.iter().enumerate() {
            let cache = caches.as_deref_mut().map(|c| &mut c[i]);
            h = layer.forward_with(&h, cache)?;
        }
        self.head(&self.norm.forward(&h)?)
    }
}

impl Module for Llama {
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        self.forward_with(ids, None)
    }
}

impl Block for Llama {
    fn kind(&self) -> BlockKind {
        BlockKind::Llama
    }

    fn dims(&self) -> Vec<(&'static str, usize)> {
        let mut dims = self.cfg.layer_dims();
        dims.push(("num_hidden_layers", self.cfg.num_hidden_layers));
        dims
    }

    /// The embedding, each layer (listed as `model.layers.{i}`), the final norm and, unless
    /// tied to the embedding, `lm_head`.
    fn children(&self) -> Vec<Child<'_>> {
        let mut c = vec![Child::part("model.embed_tokens", &self.embed_tokens)];
        c.extend(self.layers.iter().enumerate().map(|(i, l)| Child::module(format!("model.layers.{i}"), l)));
        c.push(Child::part("model.norm", &self.norm));
        c.extend(self.lm_head.as_ref().map(|l| Child::part("lm_head", l)));
        c
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
        let head = Cost { flops: 2.0 * n * h * v, bytes: bytes_of(n * v + h * v, self.lm_head().dtype()) };
        self.layers.iter().fold(self.embed_tokens.cost(shape) + self.norm.cost(&hidden) + head, |acc, l| acc + l.cost(&hidden))
    }

    fn forward_reference(&self, ids: &Tensor) -> Result<Tensor> {
        let mut h = self.embed_tokens.forward_reference(ids)?;
        for layer in &self.layers {
            h = layer.forward_reference(&h)?;
        }
        self.norm.forward_reference(&h)?.broadcast_matmul(&to_f64_cpu(&self.lm_head())?.t()?)
    }
}
