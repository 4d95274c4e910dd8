//! The ModernBERT encoder: embeddings, alternating global and local layers, a final norm.

use super::{ModernBertConfig, ModernBertEmbeddings, ModernBertLayer};
use crate::block::{Block, Child, Cost, InputKind};
use crate::catalog::BlockKind;
use crate::layer_norm::LayerNorm;
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

/// `ModernBertModel`: token ids to contextual hidden states, `final_norm` applied.
///
/// # Shapes
/// `input_ids, attention_mask: (batch, seq) → (batch, seq, hidden)`
#[derive(Debug, Clone)]
pub struct ModernBert {
    embeddings: ModernBertEmbeddings,
    layers: Vec<ModernBertLayer>,
    final_norm: LayerNorm,
    cfg: ModernBertConfig,
}

impl ModernBert {
    /// Loads `embeddings`, `layers.{i}` and `final_norm` from `vb`.
    pub fn new(cfg: &ModernBertConfig, vb: VarBuilder) -> crate::Result<Self> {
        cfg.validate()?;
        let embeddings = ModernBertEmbeddings::new(cfg, vb.pp("embeddings"))?;
        let layers = (0..cfg.num_hidden_layers).map(|i| ModernBertLayer::new(cfg, i, vb.pp("layers").pp(i))).collect::<crate::Result<Vec<_>>>()?;
        let final_norm = LayerNorm::new(cfg.hidden_size, cfg.norm_eps, cfg.norm_bias, vb.pp("final_norm"))?;
        Ok(Self { embeddings, layers, final_norm, cfg: cfg.clone() })
    }

    /// The configuration.
    pub fn config(&self) -> &ModernBertConfig {
        &self.cfg
    }

    /// The encoder layers.
    pub fn layers(&self) -> &[ModernBertLayer] {
        &self.layers
    }

    /// Hidden states after `final_norm`, with an optional padding mask `(batch, seq)`.
    pub fn forward_with(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> Result<Tensor> {
        let mut h = self.embeddings.forward(input_ids)?;
        for layer in &self.layers {
            h = layer.forward_with(&h, attention_mask)?;
        }
        self.final_norm.forward(&h)
    }

    /// Float64 twin of [`ModernBert::forward_with`].
    pub fn forward_reference_with(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> Result<Tensor> {
        let mut h = self.embeddings.forward_reference(input_ids)?;
        for layer in &self.layers {
            h = layer.forward_reference_with(&h, attention_mask)?;
        }
        self.final_norm.forward_reference(&h)
    }
}

impl Module for ModernBert {
    fn forward(&self, input_ids: &Tensor) -> Result<Tensor> {
        self.forward_with(input_ids, None)
    }
}

impl Block for ModernBert {
    fn kind(&self) -> BlockKind {
        BlockKind::ModernBert
    }

    fn dims(&self) -> Vec<(&'static str, usize)> {
        let mut dims = self.cfg.layer_dims();
        dims.push(("num_hidden_layers", self.cfg.num_hidden_layers));
        dims
    }

    /// The embeddings, each layer (listed as `layers.{i}`) and the final norm.
    fn children(&self) -> Vec<Child<'_>> {
        let mut c = vec![Child::part("embeddings", &self.embeddings)];
        c.extend(self.layers.iter().enumerate().map(|(i, l)| Child::module(format!("layers.{i}"), l)));
        c.push(Child::part("final_norm", &self.final_norm));
        c
    }

    fn rebuild(&self, vb: VarBuilder) -> crate::Result<Box<dyn Block>> {
        Ok(Box::new(ModernBert::new(&self.cfg, vb)?))
    }

    fn input_kind(&self) -> InputKind {
        InputKind::TokenIds { vocab: self.cfg.vocab_size }
    }

    fn input_shape(&self, batch: usize, seq: usize) -> Vec<usize> {
        vec![batch, seq]
    }

    fn cost(&self, shape: &[usize]) -> Cost {
        let hidden = [shape[0], shape[1], self.cfg.hidden_size];
        let layers = self.layers.iter().fold(self.embeddings.cost(shape), |acc, l| acc + l.cost(&hidden));
        layers + self.final_norm.cost(&hidden)
    }

    fn forward_reference(&self, input_ids: &Tensor) -> Result<Tensor> {
        self.forward_reference_with(input_ids, None)
    }
}
