//! The BERT encoder: embeddings, layers and an optional pooler.

use super::{BertConfig, BertEmbeddings, BertLayer};
use crate::block::{Block, Child, Cost, InputKind};
use crate::catalog::BlockKind;
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
    cfg: BertConfig,
}

impl Bert {
    /// Loads `embeddings`, `encoder.layer.{i}` and, when `with_pooler`, `pooler.dense`.
    pub fn new(cfg: &BertConfig, with_pooler: bool, vb: VarBuilder) -> crate::Result<Self> {
        cfg.validate()?;
        let embeddings = BertEmbeddings::new(cfg, vb.pp("embeddings"))?;
        let layers = (0..cfg.num_hidden_layers).map(|i| BertLayer::new(cfg, vb.pp("encoder").pp("layer").pp(i))).collect::<crate::Result<Vec<_>>>()?;
        let pooler = if with_pooler { Some(Linear::new(cfg.hidden_size, cfg.hidden_size, true, vb.pp("pooler").pp("dense"))?) } else { None };
        Ok(Self { embeddings, layers, pooler, cfg: cfg.clone() })
    }

    /// The configuration.
    pub fn config(&self) -> &BertConfig {
        &self.cfg
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
    fn kind(&self) -> BlockKind {
        BlockKind::Bert
    }

    fn dims(&self) -> Vec<(&'static str, usize)> {
        let mut dims = self.cfg.layer_dims();
        dims.push(("num_hidden_layers", self.cfg.num_hidden_layers));
        dims
    }

    /// The embeddings, each layer (listed as `encoder.layer.{i}`) and the pooler, if any.
    fn children(&self) -> Vec<Child<'_>> {
        let mut c = vec![Child::part("embeddings", &self.embeddings)];
        c.extend(self.layers.iter().enumerate().map(|(i, l)| Child::module(format!("encoder.layer.{i}"), l)));
        c.extend(self.pooler.as_ref().map(|p| Child::part("pooler.dense", p)));
        c
    }

    fn rebuild(&self, vb: VarBuilder) -> crate::Result<Box<dyn Block>> {
        Ok(Box::new(Bert::new(&self.cfg, self.pooler.is_some(), vb)?))
    }

    fn input_kind(&self) -> InputKind {
        InputKind::TokenIds { vocab: self.cfg.vocab_size }
    }

    fn input_shape(&self, batch: usize, seq: usize) -> Vec<usize> {
        vec![batch, seq]
    }

    /// The embeddings and every layer: what [`Module::forward`] runs (the pooler is not).
    fn cost(&self, shape: &[usize]) -> Cost {
        let hidden = [shape[0], shape[1], self.cfg.hidden_size];
        self.layers.iter().fold(self.embeddings.cost(shape), |acc, l| acc + l.cost(&hidden))
    }

    fn forward_reference(&self, input_ids: &Tensor) -> Result<Tensor> {
        self.forward_reference_with(input_ids, None, None)
    }
}
