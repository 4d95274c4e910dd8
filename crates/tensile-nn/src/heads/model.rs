//! An encoder with a classification head: `BertFor{Sequence,Token}Classification` and
//! `ModernBertFor{Sequence,Token}Classification`.

use super::{ClassificationHead, HeadTarget, TaskConfig};
use crate::bert::{Bert, BertConfig};
use crate::block::{Block, Child, Cost, InputKind};
use crate::catalog::BlockKind;
use crate::modernbert::{ModernBert, ModernBertConfig};
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

/// The encoder under a head.
#[derive(Debug, Clone)]
pub enum Encoder {
    /// `BertModel` without its pooler (a sequence head owns it), under `bert.`.
    Bert(Bert),
    /// `ModernBertModel`, under `model.`.
    ModernBert(ModernBert),
}

impl Encoder {
    /// Hidden states of the last layer (after ModernBERT's `final_norm`).
    pub fn forward_with(&self, ids: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        match self {
            Encoder::Bert(m) => m.forward_with(ids, None, mask),
            Encoder::ModernBert(m) => m.forward_with(ids, mask),
        }
    }

    /// Float64 twin of [`Encoder::forward_with`].
    pub fn forward_reference_with(&self, ids: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        match self {
            Encoder::Bert(m) => m.forward_reference_with(ids, None, mask),
            Encoder::ModernBert(m) => m.forward_reference_with(ids, mask),
        }
    }

    pub(super) fn block(&self) -> &dyn Block {
        match self {
            Encoder::Bert(m) => m,
            Encoder::ModernBert(m) => m,
        }
    }

    /// The checkpoint prefix of the encoder's weights.
    pub(super) fn prefix(&self) -> &'static str {
        match self {
            Encoder::Bert(_) => "bert",
            Encoder::ModernBert(_) => "model",
        }
    }
}

/// An encoder and a classification head, loading a Hugging Face `*ForSequenceClassification`
/// or `*ForTokenClassification` checkpoint.
///
/// # Shapes
/// `input_ids, attention_mask: (batch, seq)` → logits `(batch, labels)` (sequence) or
/// `(batch, seq, labels)` (token)
#[derive(Debug, Clone)]
pub struct EncoderWithHead {
    encoder: Encoder,
    head: ClassificationHead,
}

impl EncoderWithHead {
    /// `BertFor{Sequence,Token}Classification` from the checkpoint's root.
    pub fn bert(cfg: &BertConfig, task: &TaskConfig, target: HeadTarget, vb: VarBuilder) -> crate::Result<Self> {
        Ok(Self { encoder: Encoder::Bert(Bert::new(cfg, false, vb.pp("bert"))?), head: ClassificationHead::bert(cfg, task, target, vb)? })
    }

    /// `ModernBertFor{Sequence,Token}Classification` from the checkpoint's root.
    pub fn modernbert(cfg: &ModernBertConfig, task: &TaskConfig, target: HeadTarget, vb: VarBuilder) -> crate::Result<Self> {
        Ok(Self { encoder: Encoder::ModernBert(ModernBert::new(cfg, vb.pp("model"))?), head: ClassificationHead::modernbert(cfg, task, target, vb)? })
    }

    /// The encoder.
    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// The head.
    pub fn head(&self) -> &ClassificationHead {
        &self.head
    }

    /// Transformers' class name for this model.
    pub fn architecture(&self) -> &'static str {
        match (&self.encoder, self.head.target()) {
            (Encoder::Bert(_), HeadTarget::Sequence) => "BertForSequenceClassification",
            (Encoder::Bert(_), HeadTarget::Token) => "BertForTokenClassification",
            (Encoder::ModernBert(_), HeadTarget::Sequence) => "ModernBertForSequenceClassification",
            (Encoder::ModernBert(_), HeadTarget::Token) => "ModernBertForTokenClassification",
        }
    }

    /// Logits with an optional padding mask `(batch, seq)`, 1 = token.
    pub fn forward_with(&self, ids: &Tensor, mask: Option<&Tensor>) -> crate::Result<Tensor> {
        self.head.forward_masked(&self.encoder.forward_with(ids, mask)?, mask)
    }

    /// Float64 twin of [`EncoderWithHead::forward_with`].
    pub fn forward_reference_with(&self, ids: &Tensor, mask: Option<&Tensor>) -> crate::Result<Tensor> {
        self.head.forward_masked_reference(&self.encoder.forward_reference_with(ids, mask)?, mask)
    }
}

impl Module for EncoderWithHead {
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        self.forward_with(ids, None).map_err(candle_core::Error::wrap)
    }
}

impl Block for EncoderWithHead {
    fn kind(&self) -> BlockKind {
        match self.encoder {
            Encoder::Bert(_) => BlockKind::BertWithHead,
            Encoder::ModernBert(_) => BlockKind::ModernBertWithHead,
        }
    }

    fn dims(&self) -> Vec<(&'static str, usize)> {
        let mut d = self.encoder.block().dims();
        d.push(("num_labels", self.head.task().num_labels()));
        d
    }

    /// The encoder under its checkpoint prefix (`bert` or `model`) and the head's weights,
    /// named from the root.
    fn children(&self) -> Vec<Child<'_>> {
        vec![Child::module(self.encoder.prefix(), self.encoder.block()), Child::module("head", &self.head).with_prefix("")]
    }

    fn rebuild(&self, vb: VarBuilder) -> crate::Result<Box<dyn Block>> {
        let (task, target) = (self.head.task(), self.head.target());
        Ok(Box::new(match &self.encoder {
            Encoder::Bert(m) => EncoderWithHead::bert(m.config(), task, target, vb)?,
            Encoder::ModernBert(m) => EncoderWithHead::modernbert(m.config(), task, target, vb)?,
        }))
    }

    fn input_kind(&self) -> InputKind {
        self.encoder.block().input_kind()
    }

    fn input_shape(&self, batch: usize, seq: usize) -> Vec<usize> {
        vec![batch, seq]
    }

    fn cost(&self, shape: &[usize]) -> Cost {
        let hidden = self.head.input_shape(shape[0], shape[1]);
        self.encoder.block().cost(shape) + self.head.cost(&hidden)
    }

    fn forward_reference(&self, ids: &Tensor) -> Result<Tensor> {
        self.forward_reference_with(ids, None).map_err(candle_core::Error::wrap)
    }
}
