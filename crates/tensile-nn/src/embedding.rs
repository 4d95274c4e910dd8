//! Token, position and token-type embeddings.

use crate::block::{bytes_of, prefixed, to_f64_cpu, Block, Cost, InputKind};
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
    fn kind(&self) -> &'static str {
        "embedding"
    }

    fn dims(&self) -> Vec<(&'static str, usize)> {
        let d = self.weight.dims();
        vec![("vocab_size", d[0]), ("hidden_size", d[1])]
    }

    fn parameters(&self) -> Vec<(String, Tensor)> {
        vec![("weight".to_string(), self.weight.clone())]
    }

    fn rebuild(&self, vb: VarBuilder) -> crate::Result<Box<dyn Block>> {
        let (v, h) = self.weight.dims2()?;
        Ok(Box::new(Embedding::new(v, h, vb)?))
    }

    fn input_kind(&self) -> InputKind {
        InputKind::TokenIds { vocab: self.weight.dims()[0] }
    }

    fn input_shape(&self, batch: usize, seq: usize) -> Vec<usize> {
        vec![batch, seq]
    }

    fn cost(&self, shape: &[usize]) -> Cost {
        let n = shape.iter().product::<usize>() as f64;
        Cost { flops: 0.0, bytes: bytes_of(2.0 * n * self.weight.dims()[1] as f64, self.weight.dtype()) }
    }

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

    /// Parameters under their checkpoint names.
    pub fn parameters(&self) -> Vec<(String, Tensor)> {
        let mut p = prefixed("word_embeddings", self.word_embeddings.parameters());
        p.extend(prefixed("position_embeddings", self.position_embeddings.parameters()));
        p.extend(prefixed("token_type_embeddings", self.token_type_embeddings.parameters()));
        p.extend(prefixed("LayerNorm", self.layer_norm.parameters()));
        p
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
