//! Token, position and token-type embeddings.

use crate::block::{to_f64_cpu, Block};
use crate::layer_norm::LayerNorm;
use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

/// A lookup table `weight: (vocab, hidden)` indexed by integer ids.
///
/// # Shapes
/// `ids: (batch, seq) u32 → (batch, seq, hidden)`
#[derive(Debug, Clone)]
pub struct Embedding {
    weight: Tensor,
}

impl Embedding {
    /// Loads `weight` of shape `(num_embeddings, hidden_size)`.
    pub fn new(num_embeddings: usize, hidden_size: usize, vb: VarBuilder) -> crate::Result<Self> {
        Ok(Self { weight: vb.get((num_embeddings, hidden_size), "weight")? })
    }

    /// The `(vocab, hidden)` table, shared with a tied `lm_head`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    fn lookup(table: &Tensor, ids: &Tensor) -> Result<Tensor> {
        let dims = ids.dims().to_vec();
        let flat = table.index_select(&ids.flatten_all()?.to_dtype(DType::U32)?, 0)?;
        let mut out_dims = dims;
        out_dims.push(table.dim(1)?);
        flat.reshape(out_dims)
    }
}

impl Module for Embedding {
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        Self::lookup(&self.weight, ids)
    }
}

impl Block for Embedding {
    fn forward_reference(&self, ids: &Tensor) -> Result<Tensor> {
        Self::lookup(&to_f64_cpu(&self.weight)?, &ids.to_device(&candle_core::Device::Cpu)?)
    }
}

/// BERT's input embeddings: `LayerNorm(word + position + token_type)`.
#[derive(Debug, Clone)]
pub struct BertEmbeddings {
    word_embeddings: Embedding,
    position_embeddings: Embedding,
    token_type_embeddings: Embedding,
    layer_norm: LayerNorm,
}

impl BertEmbeddings {
    /// Loads `word_embeddings`, `position_embeddings`, `token_type_embeddings`, `LayerNorm`.
    pub fn new(cfg: &crate::bert::BertConfig, vb: VarBuilder) -> crate::Result<Self> {
        Ok(Self {
            word_embeddings: Embedding::new(cfg.vocab_size, cfg.hidden_size, vb.pp("word_embeddings"))?,
            position_embeddings: Embedding::new(cfg.max_position_embeddings, cfg.hidden_size, vb.pp("position_embeddings"))?,
            token_type_embeddings: Embedding::new(cfg.type_vocab_size, cfg.hidden_size, vb.pp("token_type_embeddings"))?,
            layer_norm: LayerNorm::new(cfg.hidden_size, cfg.layer_norm_eps, true, vb.pp("LayerNorm"))?,
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
        self.layer_norm.forward(&sum)
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
