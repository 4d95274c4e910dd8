//! A loaded model of any supported architecture, with the config it came from.

use crate::bert::Bert;
use crate::block::Block;
use crate::error::{Error, Result};
use crate::heads::{EncoderWithHead, MaskedLm, TaskConfig};
use crate::llama::Llama;
use crate::modernbert::ModernBert;
use candle_core::{DType, Tensor};
use serde_json::Value;

/// A loaded model: what `tensile forward` runs and [`save_pretrained`] writes. It keeps the
/// `config.json` it was loaded from, so that fields this crate does not read (token ids,
/// initialiser settings, …) are written back unchanged.
pub struct PretrainedModel {
    pub(super) model: Model,
    pub(super) source_config: Value,
}

pub(super) enum Model {
    /// `LlamaForCausalLM`: logits over the vocabulary.
    Llama(Llama),
    /// `BertModel`: hidden states.
    Bert(Bert),
    /// `ModernBertModel`: hidden states.
    ModernBert(ModernBert),
    /// An encoder with a classification head: logits over the labels.
    WithHead(EncoderWithHead),
    /// An encoder with its masked-LM head: logits over the vocabulary.
    MaskedLm(MaskedLm),
}

impl PretrainedModel {
    /// An encoder with a head built in code (a head trained on a loaded encoder, say), to be
    /// saved with [`save_pretrained`]; `config` holds the fields to write beyond the model's
    /// own (those of the encoder's source `config.json`, for instance).
    pub fn with_head(model: EncoderWithHead, config: Value) -> Self {
        Self { model: Model::WithHead(model), source_config: config }
    }

    /// A causal LM built in code (trained by the foundry, say), to be saved with
    /// [`save_pretrained`]; `config` holds fields to write beyond the model's own.
    pub fn causal_lm(model: Llama, config: Value) -> Self {
        Self { model: Model::Llama(model), source_config: config }
    }

    /// A masked LM built in code, as [`PretrainedModel::causal_lm`].
    pub fn masked_lm(model: MaskedLm, config: Value) -> Self {
        Self { model: Model::MaskedLm(model), source_config: config }
    }

    /// The model as a causal LM, if it is one (for generation).
    pub fn as_llama(&self) -> Option<&Llama> {
        match &self.model {
            Model::Llama(m) => Some(m),
            _ => None,
        }
    }

    /// The model as a masked LM, if it is one.
    pub fn as_masked_lm(&self) -> Option<&MaskedLm> {
        match &self.model {
            Model::MaskedLm(m) => Some(m),
            _ => None,
        }
    }

    /// The `config.json` the model was loaded from.
    pub fn source_config(&self) -> &Value {
        &self.source_config
    }

    /// Transformers' class name (what `architectures` holds).
    pub fn architecture(&self) -> &'static str {
        match &self.model {
            Model::Llama(_) => "LlamaForCausalLM",
            Model::Bert(_) => "BertModel",
            Model::ModernBert(_) => "ModernBertModel",
            Model::WithHead(m) => m.architecture(),
            Model::MaskedLm(m) => m.architecture(),
        }
    }

    /// `model_type` in `config.json`.
    pub fn model_type(&self) -> &'static str {
        match &self.model {
            Model::Llama(_) => "llama",
            Model::Bert(_) => "bert",
            Model::ModernBert(_) => "modernbert",
            Model::WithHead(m) => match m.encoder() {
                crate::heads::Encoder::Bert(_) => "bert",
                crate::heads::Encoder::ModernBert(_) => "modernbert",
            },
            Model::MaskedLm(m) => match m.encoder() {
                crate::heads::Encoder::Bert(_) => "bert",
                crate::heads::Encoder::ModernBert(_) => "modernbert",
            },
        }
    }

    /// The name transformers gives the output [`PretrainedModel::forward`] returns.
    pub fn output_name(&self) -> &'static str {
        match &self.model {
            Model::Bert(_) | Model::ModernBert(_) => "last_hidden_state",
            _ => "logits",
        }
    }

    /// The labels and problem type of a model with a classification head.
    pub fn task(&self) -> Option<&TaskConfig> {
        match &self.model {
            Model::WithHead(m) => Some(m.head().task()),
            _ => None,
        }
    }

    /// The model as a block (its parameters, costs and twin).
    pub fn block(&self) -> &dyn Block {
        match &self.model {
            Model::Llama(m) => m,
            Model::Bert(m) => m,
            Model::ModernBert(m) => m,
            Model::WithHead(m) => m,
            Model::MaskedLm(m) => m,
        }
    }

    /// The model's output for `input_ids` `(batch, seq)` with an optional padding mask (1 =
    /// token). LLaMA is causal: a right-padded row's tokens never see its padding, so the
    /// mask is checked to be right padding and otherwise unused.
    ///
    /// # Errors
    /// A mask of another shape than the ids, or (for LLaMA) a row with a token after padding.
    pub fn forward(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> Result<Tensor> {
        if let Some(mask) = attention_mask {
            if mask.dims() != input_ids.dims() {
                return Err(Error::InvalidInput {
                    op: "forward",
                    reason: format!("attention_mask has shape {:?}, input_ids {:?}", mask.dims(), input_ids.dims()),
                });
            }
        }
        Ok(match &self.model {
            Model::Llama(m) => {
                if let Some(mask) = attention_mask {
                    let rows = mask.to_dtype(DType::F64)?.to_vec2::<f64>()?;
                    if rows.iter().any(|r| r.windows(2).any(|w| w[0] == 0.0 && w[1] != 0.0)) {
                        return Err(Error::InvalidInput { op: "forward", reason: "a causal model takes right padding only (a token follows padding)".into() });
                    }
                }
                m.forward_with(input_ids, None)?
            }
            Model::Bert(m) => m.forward_with(input_ids, None, attention_mask)?,
            Model::ModernBert(m) => m.forward_with(input_ids, attention_mask)?,
            Model::WithHead(m) => m.forward_with(input_ids, attention_mask)?,
            Model::MaskedLm(m) => m.forward_with(input_ids, attention_mask)?,
        })
    }

    /// Float64 twin of [`PretrainedModel::forward`] (LLaMA's ignores the mask, as its fast
    /// path does after the check).
    pub fn forward_reference(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> Result<Tensor> {
        Ok(match &self.model {
            Model::Llama(m) => m.forward_reference(input_ids)?,
            Model::Bert(m) => m.forward_reference_with(input_ids, None, attention_mask)?,
            Model::ModernBert(m) => m.forward_reference_with(input_ids, attention_mask)?,
            Model::WithHead(m) => m.forward_reference_with(input_ids, attention_mask)?,
            Model::MaskedLm(m) => m.forward_reference_with(input_ids, attention_mask)?,
        })
    }

    /// The longest input the model has positions for (`max_position_embeddings`).
    pub fn max_positions(&self) -> usize {
        match &self.model {
            Model::Llama(m) => m.config().max_position_embeddings,
            Model::Bert(m) => m.config().max_position_embeddings,
            Model::ModernBert(m) => m.config().max_position_embeddings,
            Model::WithHead(m) => match m.encoder() {
                crate::heads::Encoder::Bert(b) => b.config().max_position_embeddings,
                crate::heads::Encoder::ModernBert(b) => b.config().max_position_embeddings,
            },
            Model::MaskedLm(m) => match m.encoder() {
                crate::heads::Encoder::Bert(b) => b.config().max_position_embeddings,
                crate::heads::Encoder::ModernBert(b) => b.config().max_position_embeddings,
            },
        }
    }

    /// The size of the token table every input id must stay below.
    pub fn vocab_size(&self) -> usize {
        match self.block().input_kind() {
            crate::InputKind::TokenIds { vocab } => vocab,
            crate::InputKind::Hidden => usize::MAX,
        }
    }

    /// The padding token id: `pad_token_id` in the config, else 0.
    pub fn pad_token_id(&self) -> u32 {
        self.source_config.get("pad_token_id").and_then(Value::as_u64).map_or(0, |v| v as u32)
    }

    /// The `config.json` that describes this model to transformers.
    pub(super) fn config_json(&self) -> Result<Value> {
        let to_value = |v: serde_json::Result<Value>| v.map_err(|e| crate::error::config_err("config", e.to_string()));
        let mut cfg = match &self.model {
            Model::Llama(m) => to_value(serde_json::to_value(m.config()))?,
            Model::Bert(m) => to_value(serde_json::to_value(m.config()))?,
            Model::ModernBert(m) => to_value(serde_json::to_value(m.config()))?,
            Model::WithHead(m) => {
                let mut v = match m.encoder() {
                    crate::heads::Encoder::Bert(b) => to_value(serde_json::to_value(b.config()))?,
                    crate::heads::Encoder::ModernBert(b) => to_value(serde_json::to_value(b.config()))?,
                };
                if let (Value::Object(o), Value::Object(task)) = (&mut v, to_value(serde_json::to_value(m.head().task()))?) {
                    o.extend(task);
                }
                v
            }
            Model::MaskedLm(m) => match m.encoder() {
                crate::heads::Encoder::Bert(b) => to_value(serde_json::to_value(b.config()))?,
                crate::heads::Encoder::ModernBert(b) => to_value(serde_json::to_value(b.config()))?,
            },
        };
        if let Value::Object(o) = &mut cfg {
            // Fields of the source config this crate does not model are kept as they were.
            if let Value::Object(source) = &self.source_config {
                for (k, v) in source {
                    o.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            o.insert("model_type".into(), self.model_type().into());
            o.insert("architectures".into(), Value::from(vec![self.architecture()]));
            let dtype = self.block().parameters().first().map_or(DType::F32, |(_, t)| t.dtype());
            o.insert("dtype".into(), dtype_name(dtype).into());
        }
        Ok(cfg)
    }
}

fn dtype_name(dtype: DType) -> &'static str {
    match dtype {
        DType::BF16 => "bfloat16",
        DType::F16 => "float16",
        DType::F64 => "float64",
        _ => "float32",
    }
}
