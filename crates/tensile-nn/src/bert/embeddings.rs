//! BERT's input embeddings: word, position and token-type vectors summed and normalised.

use super::BertConfig;
use crate::block::{tokens, Block, Child, Cost, InputKind};
use crate::catalog::BlockKind;
use crate::embedding::Embedding;
use crate::layer_norm::LayerNorm;
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

/// `LayerNorm(word + position + token_type)`, loading Hugging Face `BertEmbeddings` names.
///
/// # Shapes
/// `input_ids, token_type_ids: (batch, seq) → (batch, seq, hidden)`
#[derive(Debug, Clone)]
pub struct BertEmbeddings {
    word_embeddings: Embedding,
    position_embeddings: Embedding,
    token_type_embeddings: Embedding,
    layer_norm: LayerNorm,
    cfg: BertConfig,
}

impl BertEmbeddings {
    /// Loads `word_embeddings`, `position_embeddings`, `token_type_embeddings`, `LayerNorm`.
    pub fn new(cfg: &BertConfig, vb: VarBuilder) -> crate::Result<Self> {
        Ok(Self {
            word_embeddings: Embedding::new(cfg.vocab_size, cfg.hidden_size, vb.pp("word_embeddings"))?,
            position_embeddings: Embedding::new(cfg.max_position_embeddings, cfg.hidden_size, vb.pp("position_embeddings"))?,
            token_type_embeddings: Embedding::new(cfg.type_vocab_size, cfg.hidden_size, vb.pp("token_type_embeddings"))?,
            layer_norm: LayerNorm::new(cfg.hidden_size, cfg.layer_norm_eps, true, vb.pp("LayerNorm"))?,
            cfg: cfg.clone(),
        })
    }

    fn positions(ids: &Tensor) -> Result<Tensor> {
        let (b, s) = ids.dims2()?;
        Tensor::arange(0u32, s as u32, ids.device())?.unsqueeze(0)?.broadcast_as((b, s))?.contiguous()
    }

    /// Embeds `input_ids` with `token_type_ids` (zeros when `None`).
    ///
    /// # Shapes
    /// `input_ids, token_type_ids: (batch, seq) → (batch, seq, hidden)`
    pub fn forward_with(&self, input_ids: &Tensor, token_type_ids: Option<&Tensor>) -> Result<Tensor> {
        let types = match token_type_ids {
            Some(t) => t.clone(),
            None => input_ids.zeros_like()?,
        };
        let sum = ((self.word_embeddings.forward(input_ids)? + self.position_embeddings.forward(&Self::positions(input_ids)?)?)?
            + self.token_type_embeddings.forward(&types)?)?;
        crate::training::dropout(&self.layer_norm.forward(&sum)?, crate::training::DropoutSite::Hidden)
    }

    /// Float64 twin of [`BertEmbeddings::forward_with`].
    pub fn forward_reference_with(&self, input_ids: &Tensor, token_type_ids: Option<&Tensor>) -> Result<Tensor> {
        let ids = input_ids.to_device(&candle_core::Device::Cpu)?;
        let types = match token_type_ids {
            Some(t) => t.to_device(&candle_core::Device::Cpu)?,
            None => ids.zeros_like()?,
        };
        let sum = ((self.word_embeddings.forward_reference(&ids)? + self.position_embeddings.forward_reference(&Self::positions(&ids)?)?)?
            + self.token_type_embeddings.forward_reference(&types)?)?;
        self.layer_norm.forward_reference(&sum)
    }
}

impl Module for BertEmbeddings {
    /// Embeddings of `input_ids`, all of token type 0.
    fn forward(&self, input_ids: &Tensor) -> Result<Tensor> {
        self.forward_with(input_ids, None)
    }
}

impl Block for BertEmbeddings {
    fn kind(&self) -> BlockKind {
        BlockKind::BertEmbeddings
    }

    fn dims(&self) -> Vec<(&'static str, usize)> {
        let c = &self.cfg;
        vec![
            ("hidden_size", c.hidden_size),
            ("vocab_size", c.vocab_size),
            ("max_position_embeddings", c.max_position_embeddings),
            ("type_vocab_size", c.type_vocab_size),
        ]
    }

    fn children(&self) -> Vec<Child<'_>> {
        vec![
            Child::part("word_embeddings", &self.word_embeddings),
            Child::part("position_embeddings", &self.position_embeddings),
            Child::part("token_type_embeddings", &self.token_type_embeddings),
            Child::part("LayerNorm", &self.layer_norm),
        ]
    }

    fn rebuild(&self, vb: VarBuilder) -> crate::Result<Box<dyn Block>> {
        Ok(Box::new(BertEmbeddings::new(&self.cfg, vb)?))
    }

    fn input_kind(&self) -> InputKind {
        InputKind::TokenIds { vocab: self.cfg.vocab_size }
    }

    fn input_shape(&self, batch: usize, seq: usize) -> Vec<usize> {
        vec![batch, seq]
    }

    /// Three lookups, two additions per element and the norm.
    fn cost(&self, shape: &[usize]) -> Cost {
        let mut hidden = shape.to_vec();
        hidden.push(self.cfg.hidden_size);
        let lookups = self.word_embeddings.cost(shape) + self.position_embeddings.cost(shape) + self.token_type_embeddings.cost(shape);
        let sums = Cost { flops: 2.0 * tokens(&hidden) * self.cfg.hidden_size as f64, bytes: 0.0 };
        lookups + sums + self.layer_norm.cost(&hidden)
    }

    /// [`BertEmbeddings::forward_reference_with`] with every token of type 0.
    fn forward_reference(&self, input_ids: &Tensor) -> Result<Tensor> {
        self.forward_reference_with(input_ids, None)
    }
}
