//! ModernBERT's input embeddings: token vectors, normalised. There are no position
//! embeddings; every layer rotates its queries and keys instead.

use super::ModernBertConfig;
use crate::block::{Block, Child, Cost, InputKind};
use crate::catalog::BlockKind;
use crate::embedding::Embedding;
use crate::layer_norm::LayerNorm;
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

/// `norm(tok_embeddings(input_ids))`, loading Hugging Face `ModernBertEmbeddings` names.
///
/// # Shapes
/// `input_ids: (batch, seq) → (batch, seq, hidden)`
#[derive(Debug, Clone)]
pub struct ModernBertEmbeddings {
    tok_embeddings: Embedding,
    norm: LayerNorm,
    cfg: ModernBertConfig,
}

impl ModernBertEmbeddings {
    /// Loads `tok_embeddings` and `norm`.
    pub fn new(cfg: &ModernBertConfig, vb: VarBuilder) -> crate::Result<Self> {
        Ok(Self {
            tok_embeddings: Embedding::new(cfg.vocab_size, cfg.hidden_size, vb.pp("tok_embeddings"))?,
            norm: LayerNorm::new(cfg.hidden_size, cfg.norm_eps, cfg.norm_bias, vb.pp("norm"))?,
            cfg: cfg.clone(),
        })
    }
}

impl Module for ModernBertEmbeddings {
    fn forward(&self, input_ids: &Tensor) -> Result<Tensor> {
        crate::training::dropout(&self.norm.forward(&self.tok_embeddings.forward(input_ids)?)?, crate::training::DropoutSite::Hidden)
    }
}

impl Block for ModernBertEmbeddings {
    fn kind(&self) -> BlockKind {
        BlockKind::ModernBertEmbeddings
    }

    fn dims(&self) -> Vec<(&'static str, usize)> {
        vec![("hidden_size", self.cfg.hidden_size), ("vocab_size", self.cfg.vocab_size)]
    }

    fn children(&self) -> Vec<Child<'_>> {
        vec![Child::part("tok_embeddings", &self.tok_embeddings), Child::part("norm", &self.norm)]
    }

    fn rebuild(&self, vb: VarBuilder) -> crate::Result<Box<dyn Block>> {
        Ok(Box::new(ModernBertEmbeddings::new(&self.cfg, vb)?))
    }

    fn input_kind(&self) -> InputKind {
        InputKind::TokenIds { vocab: self.cfg.vocab_size }
    }

    fn input_shape(&self, batch: usize, seq: usize) -> Vec<usize> {
        vec![batch, seq]
    }

    fn cost(&self, shape: &[usize]) -> Cost {
        let mut hidden = shape.to_vec();
        hidden.push(self.cfg.hidden_size);
        self.tok_embeddings.cost(shape) + self.norm.cost(&hidden)
    }

    fn forward_reference(&self, input_ids: &Tensor) -> Result<Tensor> {
        let ids = input_ids.to_device(&candle_core::Device::Cpu)?;
        self.norm.forward_reference(&self.tok_embeddings.forward_reference(&ids)?)
    }
}
