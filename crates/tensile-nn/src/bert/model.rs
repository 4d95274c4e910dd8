//! The BERT encoder: embeddings, layers and an optional pooler.

use super::{BertConfig, BertLayer};
use crate::block::Block;
use crate::embedding::BertEmbeddings;
use crate::linear::Linear;
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

/// `BertModel`: token ids to contextual hidden states (and a pooled `[CLS]` vector).
///
/// # Shapes
/// `input_ids, token_type_ids, attention_mask: (batch, seq) → (batch, seq, hidden)`
#[derive(Debug, Clone)]
pub struct Bert {
    embeddings: BertEmbeddings,
    layers: Vec<BertLayer>,
    pooler: Option<Linear>,
}

impl Bert {
    /// Loads `embeddings`, `encoder.layer.{i}` and, when `with_pooler`, `pooler.dense`.
    pub fn new(cfg: &BertConfig, with_pooler: bool, vb: VarBuilder) -> crate::Result<Self> {
        cfg.validate()?;
        let embeddings = BertEmbeddings::new(cfg, vb.pp("embeddings"))?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| BertLayer::new(cfg, vb.pp("encoder").pp("layer").pp(i)))
            .collect::<crate::Result<Vec<_>>>()?;
        let pooler = if with_pooler {
            Some(Linear::new(cfg.hidden_size, cfg.hidden_size, true, vb.pp("pooler").pp("dense"))?)
        } else {
            None
        };
        Ok(Self { embeddings, layers, pooler })
    }

    /// The encoder layers.
    pub fn layers(&self) -> &[BertLayer] {
        &self.layers
    }

    /// Hidden states of the last layer.
    pub fn forward_with(&self, input_ids: &Tensor, token_type_ids: Option<&Tensor>, attention_mask: Option<&Tensor>) -> Result<Tensor> {
        let mut h = self.embeddings.forward_with(input_ids, token_type_ids)?;
        for layer in &self.layers {
            h = layer.forward_with(&h, attention_mask)?;
        }
        Ok(h)
    }

    /// Float64 twin of [`Bert::forward_with`].
    pub fn forward_reference_with(&self, input_ids: &Tensor, token_type_ids: Option<&Tensor>, attention_mask: Option<&Tensor>) -> Result<Tensor> {
        let mut h = self.embeddings.forward_reference_with(input_ids, token_type_ids)?;
        for layer in &self.layers {
            h = layer.forward_reference_with(&h, attention_mask)?;
        }
        Ok(h)
    }

    /// `tanh(pooler.dense(h[:, 0]))`, or `None` without a pooler.
    pub fn pool(&self, hidden: &Tensor) -> Result<Option<Tensor>> {
        match &self.pooler {
            Some(dense) => Ok(Some(dense.forward(&hidden.narrow(1, 0, 1)?.squeeze(1)?)?.tanh()?)),
            None => Ok(None),
        }
    }
}

impl Module for Bert {
    fn forward(&self, input_ids: &Tensor) -> Result<Tensor> {
        self.forward_with(input_ids, None, None)
    }
}

impl Block for Bert {
    fn forward_reference(&self, input_ids: &Tensor) -> Result<Tensor> {
        self.forward_reference_with(input_ids, None, None)
    }
}
