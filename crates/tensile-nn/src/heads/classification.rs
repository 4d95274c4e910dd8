//! Classification heads in Hugging Face layouts: one prediction per sequence (pooled) or one
//! per token, on top of BERT's or ModernBERT's hidden states.

use super::TaskConfig;
use crate::activation::Activation;
use crate::bert::BertConfig;
use crate::block::{to_f64_cpu, tokens, Block, Child, Cost};
use crate::catalog::BlockKind;
use crate::layer_norm::LayerNorm;
use crate::linear::Linear;
use crate::modernbert::ModernBertConfig;
use crate::pooling::{Pooling, PoolingMode};
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

/// Which model family's head layout: it decides the weight names and the transform before
/// the classifier.
#[derive(Debug, Clone, PartialEq)]
pub enum HeadStyle {
    /// `BertForSequenceClassification`: `bert.pooler.dense` then tanh on `[CLS]` (sequence
    /// heads only), then dropout (the identity at inference) and `classifier`.
    Bert,
    /// `ModernBertForSequenceClassification`: pooling (`cls` or `mean`), then
    /// `head.dense`, the activation and `head.norm`, then `classifier`.
    ModernBert(ModernBertConfig),
}

/// Whether the head predicts per sequence or per token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadTarget {
    /// One prediction per sequence, from a pooled vector.
    Sequence,
    /// One prediction per position.
    Token,
}

/// The transform between the encoder and the classifier.
#[derive(Debug, Clone)]
enum Transform {
    /// BERT's pooler: `tanh(dense(x))`; token heads have none.
    Tanh(Linear),
    /// ModernBERT's prediction head: `norm(act(dense(x)))`.
    DenseActNorm(Linear, Activation, LayerNorm),
    None,
}

/// A classification head loading weights from the model's root (`classifier`, and
/// `bert.pooler.dense` or `head.dense`/`head.norm`).
///
/// # Shapes
/// `hidden: (batch, seq, hidden)`, mask `(batch, seq)` → logits `(batch, labels)` for a
/// sequence head, `(batch, seq, labels)` for a token head
#[derive(Debug, Clone)]
pub struct ClassificationHead {
    pooling: Option<Pooling>,
    transform: Transform,
    classifier: Linear,
    hidden_size: usize,
    style: HeadStyle,
    target: HeadTarget,
    task: TaskConfig,
}

impl ClassificationHead {
    /// A head on a BERT encoder, as `BertFor{Sequence,Token}Classification` lays it out.
    pub fn bert(cfg: &BertConfig, task: &TaskConfig, target: HeadTarget, vb: VarBuilder) -> crate::Result<Self> {
        let h = cfg.hidden_size;
        let transform = match target {
            HeadTarget::Sequence => Transform::Tanh(Linear::new(h, h, true, vb.pp("bert").pp("pooler").pp("dense"))?),
            HeadTarget::Token => Transform::None,
        };
        Self::finish(h, transform, HeadStyle::Bert, target, task, PoolingMode::Cls, vb)
    }

    /// A head on a ModernBERT encoder, as `ModernBertFor{Sequence,Token}Classification` lays
    /// it out; `classifier_pooling` decides the sequence head's pooling.
    pub fn modernbert(cfg: &ModernBertConfig, task: &TaskConfig, target: HeadTarget, vb: VarBuilder) -> crate::Result<Self> {
        cfg.validate_layer()?;
        let h = cfg.hidden_size;
        let head = vb.pp("head");
        let transform = Transform::DenseActNorm(
            Linear::new(h, h, cfg.classifier_bias, head.pp("dense"))?,
            cfg.classifier_activation,
            LayerNorm::new(h, cfg.norm_eps, cfg.norm_bias, head.pp("norm"))?,
        );
        let mode = if cfg.classifier_pooling == "mean" { PoolingMode::Mean } else { PoolingMode::Cls };
        Self::finish(h, transform, HeadStyle::ModernBert(cfg.clone()), target, task, mode, vb)
    }

    fn finish(
        h: usize,
        transform: Transform,
        style: HeadStyle,
        target: HeadTarget,
        task: &TaskConfig,
        mode: PoolingMode,
        vb: VarBuilder,
    ) -> crate::Result<Self> {
        task.validate()?;
        crate::limits::dim("hidden_size", h)?;
        let pooling = match target {
            HeadTarget::Sequence => Some(Pooling::new(mode, h, vb.clone())?),
            HeadTarget::Token => None,
        };
        let classifier = Linear::new(h, task.num_labels(), true, vb.pp("classifier"))?;
        Ok(Self { pooling, transform, classifier, hidden_size: h, style, target, task: task.clone() })
    }

    /// The labels and problem type.
    pub fn task(&self) -> &TaskConfig {
        &self.task
    }

    /// Per sequence or per token.
    pub fn target(&self) -> HeadTarget {
        self.target
    }

    /// Logits from hidden states, pooling over the positions `mask` keeps.
    pub fn forward_masked(&self, hidden: &Tensor, mask: Option<&Tensor>) -> crate::Result<Tensor> {
        let x = match &self.pooling {
            Some(p) => p.forward_masked(hidden, mask)?, // (batch, hidden)
            None => hidden.clone(),
        };
        let x = match &self.transform {
            Transform::Tanh(dense) => dense.forward(&x)?.tanh()?,
            Transform::DenseActNorm(dense, act, norm) => norm.forward(&act.forward(&dense.forward(&x)?)?)?,
            Transform::None => x,
        };
        Ok(self.classifier.forward(&x)?)
    }

    /// Float64 twin of [`ClassificationHead::forward_masked`].
    pub fn forward_masked_reference(&self, hidden: &Tensor, mask: Option<&Tensor>) -> crate::Result<Tensor> {
        let hidden = to_f64_cpu(hidden)?;
        let x = match &self.pooling {
            Some(p) => p.forward_masked_reference(&hidden, mask)?,
            None => hidden,
        };
        let x = match &self.transform {
            Transform::Tanh(dense) => dense.forward_reference(&x)?.tanh()?,
            Transform::DenseActNorm(dense, act, norm) => norm.forward_reference(&act.forward_reference(&dense.forward_reference(&x)?)?)?,
            Transform::None => x,
        };
        Ok(self.classifier.forward_reference(&x)?)
    }
}

impl Module for ClassificationHead {
    /// Logits with every position kept.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_masked(xs, None).map_err(candle_core::Error::wrap)
    }
}

impl Block for ClassificationHead {
    fn kind(&self) -> BlockKind {
        match self.target {
            HeadTarget::Sequence => BlockKind::HeadSequenceClassification,
            HeadTarget::Token => BlockKind::HeadTokenClassification,
        }
    }

    fn dims(&self) -> Vec<(&'static str, usize)> {
        vec![("hidden_size", self.hidden_size), ("num_labels", self.task.num_labels())]
    }

    /// The weights under their names in a whole-model checkpoint.
    fn children(&self) -> Vec<Child<'_>> {
        // The pooling is cls or mean here, which have no weights.
        let mut c = Vec::new();
        match &self.transform {
            Transform::Tanh(dense) => c.push(Child::part("bert.pooler.dense", dense)),
            Transform::DenseActNorm(dense, _, norm) => {
                c.push(Child::part("head.dense", dense));
                c.push(Child::part("head.norm", norm));
            }
            Transform::None => {}
        }
        c.push(Child::part("classifier", &self.classifier));
        c
    }

    fn rebuild(&self, vb: VarBuilder) -> crate::Result<Box<dyn Block>> {
        let head = match &self.style {
            HeadStyle::Bert => {
                let cfg = BertConfig { hidden_size: self.hidden_size, ..BertConfig::default() };
                ClassificationHead::bert(&cfg, &self.task, self.target, vb)?
            }
            HeadStyle::ModernBert(cfg) => ClassificationHead::modernbert(cfg, &self.task, self.target, vb)?,
        };
        Ok(Box::new(head))
    }

    fn input_shape(&self, batch: usize, seq: usize) -> Vec<usize> {
        vec![batch, seq, self.hidden_size]
    }

    /// The transform and the classifier over the rows they see (one per sequence or per
    /// token), plus the pooling.
    fn cost(&self, shape: &[usize]) -> Cost {
        let rows: Vec<usize> = match self.target {
            HeadTarget::Sequence => vec![shape[0], self.hidden_size],
            HeadTarget::Token => shape.to_vec(),
        };
        let pool = self.pooling.as_ref().map_or(Cost::default(), |p| p.cost(shape));
        let transform = match &self.transform {
            Transform::Tanh(dense) => dense.cost(&rows) + Cost { flops: 10.0 * tokens(&rows) * self.hidden_size as f64, bytes: 0.0 },
            Transform::DenseActNorm(dense, _, norm) => dense.cost(&rows) + norm.cost(&rows),
            Transform::None => Cost::default(),
        };
        pool + transform + self.classifier.cost(&rows)
    }

    fn forward_reference(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_masked_reference(xs, None).map_err(candle_core::Error::wrap)
    }
}
