//! Block kinds addressable by name (`llama.attention`, `bert.layer`, …): what every block
//! reports as its kind, and what reference case files and spec files name to build a block
//! from a Hugging Face config.

use crate::bert::{BertConfig, BertLayer};
use crate::block::Block;
use crate::catalog_wrapped as wrapped;
use crate::error::{config_err, Error};
use crate::heads::{ClassificationHead, HeadTarget, TaskConfig};
use crate::llama::{LlamaConfig, LlamaDecoderLayer};
use crate::modernbert::{ModernBertAttention, ModernBertConfig, ModernBertLayer, ModernBertMlp};
use crate::pooling::{Pooling, PoolingMode};
use crate::{Attention, RmsNorm, SwiGlu};
use candle_nn::VarBuilder;
use std::fmt;
use std::str::FromStr;

/// Every kind of block in this crate. [`BlockKind::name`] is the one place the names are
/// written; a few kinds ([`BlockKind::BUILDABLE`]) can also be built from a Hugging Face config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockKind {
    /// `LlamaAttention`: causal, RoPE, MHA/GQA/MQA.
    LlamaAttention,
    /// Bidirectional attention without RoPE (BERT's self-attention and output projection).
    Attention,
    /// `LlamaMLP`: SwiGLU.
    LlamaMlp,
    /// BERT's two-layer feed-forward (`intermediate` + `output.dense`).
    GeluMlp,
    /// `LlamaRMSNorm`.
    LlamaRmsNorm,
    /// `LayerNorm` with optional bias.
    LayerNorm,
    /// An affine map `x Wᵀ + b`.
    Linear,
    /// A lookup table of token vectors.
    Embedding,
    /// BERT's word, position and token-type embeddings with their `LayerNorm`.
    BertEmbeddings,
    /// `LlamaDecoderLayer`.
    LlamaDecoderLayer,
    /// `LlamaForCausalLM`.
    Llama,
    /// `BertLayer` without padding.
    BertLayer,
    /// `BertModel`.
    Bert,
    /// The first position's state ([`crate::PoolingMode::Cls`]).
    PoolingCls,
    /// The masked mean over positions.
    PoolingMean,
    /// The masked element-wise maximum over positions.
    PoolingMax,
    /// Learned attention pooling over positions.
    PoolingAttention,
    /// `ModernBertEmbeddings`: token vectors and their norm.
    ModernBertEmbeddings,
    /// `ModernBertAttention`: fused QKV, RoPE, global or sliding-window attention.
    ModernBertAttention,
    /// `ModernBertMLP`: GeGLU.
    ModernBertMlp,
    /// `ModernBertEncoderLayer`.
    ModernBertLayer,
    /// `ModernBertModel`.
    ModernBert,
    /// A sequence-classification head (pooling, transform, `classifier`) on hidden states.
    HeadSequenceClassification,
    /// A token-classification head on hidden states.
    HeadTokenClassification,
    /// `BertFor{Sequence,Token}Classification`.
    BertWithHead,
    /// `ModernBertFor{Sequence,Token}Classification`.
    ModernBertWithHead,
    /// `BertForMaskedLM` or `ModernBertForMaskedLM`: an encoder and its tied MLM head.
    MaskedLm,
    /// A linear layer with LoRA adapters (PEFT's `lora.Linear`).
    LoraLinear,
    /// LLaMA attention with LoRA adapters on the projections `target_modules` names.
    LoraAttention,
    /// A linear layer with a quantized weight.
    QuantizedLinear,
    /// LLaMA's SwiGLU MLP with every projection quantized.
    QuantizedMlp,
    /// LLaMA attention with every projection quantized.
    QuantizedAttention,
}

impl BlockKind {
    /// Every kind, in a stable order.
    pub const ALL: [BlockKind; 32] = [
        Self::LlamaAttention,
        Self::Attention,
        Self::LlamaMlp,
        Self::GeluMlp,
        Self::LlamaRmsNorm,
        Self::LayerNorm,
        Self::Linear,
        Self::Embedding,
        Self::BertEmbeddings,
        Self::LlamaDecoderLayer,
        Self::Llama,
        Self::BertLayer,
        Self::Bert,
        Self::PoolingCls,
        Self::PoolingMean,
        Self::PoolingMax,
        Self::PoolingAttention,
        Self::ModernBertEmbeddings,
        Self::ModernBertAttention,
        Self::ModernBertMlp,
        Self::ModernBertLayer,
        Self::ModernBert,
        Self::HeadSequenceClassification,
        Self::HeadTokenClassification,
        Self::BertWithHead,
        Self::ModernBertWithHead,
        Self::MaskedLm,
        Self::LoraLinear,
        Self::LoraAttention,
        Self::QuantizedLinear,
        Self::QuantizedMlp,
        Self::QuantizedAttention,
    ];

    /// The kinds [`BlockKind::build`] accepts, in [`BlockKind::ALL`]'s order; reference case
    /// files and spec files name one of these.
    pub const BUILDABLE: [BlockKind; 19] = [
        Self::LlamaAttention,
        Self::LlamaMlp,
        Self::LlamaRmsNorm,
        Self::LlamaDecoderLayer,
        Self::BertLayer,
        Self::PoolingCls,
        Self::PoolingMean,
        Self::PoolingMax,
        Self::PoolingAttention,
        Self::ModernBertAttention,
        Self::ModernBertMlp,
        Self::ModernBertLayer,
        Self::HeadSequenceClassification,
        Self::HeadTokenClassification,
        Self::LoraLinear,
        Self::LoraAttention,
        Self::QuantizedLinear,
        Self::QuantizedMlp,
        Self::QuantizedAttention,
    ];

    /// The kind's name, e.g. `llama.attention`.
    pub fn name(self) -> &'static str {
        match self {
            Self::LlamaAttention => "llama.attention",
            Self::Attention => "attention",
            Self::LlamaMlp => "llama.mlp",
            Self::GeluMlp => "gelu_mlp",
            Self::LlamaRmsNorm => "llama.rms_norm",
            Self::LayerNorm => "layer_norm",
            Self::Linear => "linear",
            Self::Embedding => "embedding",
            Self::BertEmbeddings => "bert.embeddings",
            Self::LlamaDecoderLayer => "llama.decoder_layer",
            Self::Llama => "llama",
            Self::BertLayer => "bert.layer",
            Self::Bert => "bert",
            Self::PoolingCls => "pooling.cls",
            Self::PoolingMean => "pooling.mean",
            Self::PoolingMax => "pooling.max",
            Self::PoolingAttention => "pooling.attention",
            Self::ModernBertEmbeddings => "modernbert.embeddings",
            Self::ModernBertAttention => "modernbert.attention",
            Self::ModernBertMlp => "modernbert.mlp",
            Self::ModernBertLayer => "modernbert.layer",
            Self::ModernBert => "modernbert",
            Self::HeadSequenceClassification => "head.sequence_classification",
            Self::HeadTokenClassification => "head.token_classification",
            Self::BertWithHead => "bert.with_head",
            Self::ModernBertWithHead => "modernbert.with_head",
            Self::MaskedLm => "masked_lm",
            Self::LoraLinear => "lora.linear",
            Self::LoraAttention => "lora.llama_attention",
            Self::QuantizedLinear => "quantized.linear",
            Self::QuantizedMlp => "quantized.llama_mlp",
            Self::QuantizedAttention => "quantized.llama_attention",
        }
    }

    /// Whether [`BlockKind::build`] can build this kind from a config alone.
    pub fn buildable(self) -> bool {
        Self::BUILDABLE.contains(&self)
    }

    /// The names of `kinds`, comma-separated, for error messages.
    pub fn names(kinds: &[BlockKind]) -> String {
        kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
    }

    /// Checks a Hugging Face config for this kind without allocating anything: it parses, and
    /// every number the kind uses is valid (a norm is not asked about heads it does not have).
    /// [`Error::NotBuildable`] for a kind outside [`BlockKind::BUILDABLE`].
    pub fn validate_config(self, config: &serde_json::Value) -> crate::Result<()> {
        match self {
            Self::BertLayer => bert_config(config)?.validate_layer(),
            Self::LlamaAttention => llama_config(config)?.validate_attention(),
            Self::LlamaMlp => llama_config(config)?.validate_mlp(),
            Self::LlamaRmsNorm => llama_config(config)?.validate_rms_norm(),
            Self::LlamaDecoderLayer => llama_config(config)?.validate(),
            Self::ModernBertAttention => {
                layer_idx(config)?;
                modernbert_config(config)?.validate_attention()
            }
            Self::ModernBertMlp => modernbert_config(config)?.validate_mlp(),
            Self::ModernBertLayer => {
                layer_idx(config)?;
                modernbert_config(config)?.validate_layer()
            }
            Self::PoolingCls | Self::PoolingMean | Self::PoolingMax | Self::PoolingAttention => crate::limits::dim("hidden_size", pooling_width(config)?),
            Self::HeadSequenceClassification | Self::HeadTokenClassification => {
                task_config(config)?.validate()?;
                match head_family(config)? {
                    HeadFamily::Bert => crate::limits::dim("hidden_size", bert_config(config)?.hidden_size),
                    HeadFamily::ModernBert => modernbert_config(config)?.validate_layer(),
                }
            }
            Self::LoraLinear | Self::LoraAttention | Self::QuantizedLinear | Self::QuantizedMlp | Self::QuantizedAttention => wrapped::validate(self, config),
            kind => Err(Error::NotBuildable { kind }),
        }
    }

    /// Builds the block from a Hugging Face config (a JSON object of `config.json` fields) and
    /// weights named relative to the block, after [`BlockKind::validate_config`];
    /// [`Error::NotBuildable`] for a kind outside [`BlockKind::BUILDABLE`].
    pub fn build(self, config: &serde_json::Value, vb: VarBuilder) -> crate::Result<Box<dyn Block>> {
        self.validate_config(config)?;
        Ok(match self {
            Self::LoraLinear | Self::LoraAttention | Self::QuantizedLinear | Self::QuantizedMlp | Self::QuantizedAttention => wrapped::build(self, config, vb)?,
            Self::BertLayer => Box::new(BertLayer::new(&bert_config(config)?, vb)?),
            Self::ModernBertAttention => Box::new(ModernBertAttention::new(&modernbert_config(config)?, layer_idx(config)?, vb)?),
            Self::ModernBertMlp => Box::new(ModernBertMlp::new(&modernbert_config(config)?, vb)?),
            Self::ModernBertLayer => Box::new(ModernBertLayer::new(&modernbert_config(config)?, layer_idx(config)?, vb)?),
            Self::PoolingCls | Self::PoolingMean | Self::PoolingMax | Self::PoolingAttention => {
                let mode = match self {
                    Self::PoolingCls => PoolingMode::Cls,
                    Self::PoolingMean => PoolingMode::Mean,
                    Self::PoolingMax => PoolingMode::Max,
                    _ => PoolingMode::Attention,
                };
                Box::new(Pooling::new(mode, pooling_width(config)?, vb)?)
            }
            Self::HeadSequenceClassification | Self::HeadTokenClassification => {
                let (task, target) = (task_config(config)?, if self == Self::HeadTokenClassification { HeadTarget::Token } else { HeadTarget::Sequence });
                Box::new(match head_family(config)? {
                    HeadFamily::Bert => ClassificationHead::bert(&bert_config(config)?, &task, target, vb)?,
                    HeadFamily::ModernBert => ClassificationHead::modernbert(&modernbert_config(config)?, &task, target, vb)?,
                })
            }
            Self::LlamaAttention | Self::LlamaMlp | Self::LlamaRmsNorm | Self::LlamaDecoderLayer => {
                let cfg = llama_config(config)?;
                match self {
                    Self::LlamaAttention => Box::new(Attention::new(&cfg.attention_config(), vb)?),
                    Self::LlamaMlp => Box::new(SwiGlu::new(cfg.hidden_size, cfg.intermediate_size, cfg.mlp_bias, cfg.hidden_act, vb)?),
                    Self::LlamaRmsNorm => Box::new(RmsNorm::new(cfg.hidden_size, cfg.rms_norm_eps, vb)?),
                    _ => Box::new(LlamaDecoderLayer::new(&cfg, vb)?),
                }
            }
            kind => return Err(Error::NotBuildable { kind }),
        })
    }

    /// The model width a buildable block expects as its last input dimension;
    /// [`Error::NotBuildable`] for other kinds.
    pub fn hidden_size(self, config: &serde_json::Value) -> crate::Result<usize> {
        Ok(match self {
            Self::BertLayer => bert_config(config)?.hidden_size,
            Self::ModernBertAttention | Self::ModernBertMlp | Self::ModernBertLayer => modernbert_config(config)?.hidden_size,
            Self::PoolingCls | Self::PoolingMean | Self::PoolingMax | Self::PoolingAttention => pooling_width(config)?,
            Self::HeadSequenceClassification | Self::HeadTokenClassification => match head_family(config)? {
                HeadFamily::Bert => bert_config(config)?.hidden_size,
                HeadFamily::ModernBert => modernbert_config(config)?.hidden_size,
            },
            Self::LoraLinear | Self::LoraAttention | Self::QuantizedLinear | Self::QuantizedMlp | Self::QuantizedAttention => {
                wrapped::hidden_size(self, config)?
            }
            kind if kind.buildable() => llama_config(config)?.hidden_size,
            kind => return Err(Error::NotBuildable { kind }),
        })
    }
}

pub(crate) fn llama_config(config: &serde_json::Value) -> crate::Result<LlamaConfig> {
    serde_json::from_value(config.clone()).map_err(|e| config_err("config", format!("not a LlamaConfig: {e}")))
}

fn bert_config(config: &serde_json::Value) -> crate::Result<BertConfig> {
    serde_json::from_value(config.clone()).map_err(|e| config_err("config", format!("not a BertConfig: {e}")))
}

fn modernbert_config(config: &serde_json::Value) -> crate::Result<ModernBertConfig> {
    serde_json::from_value(config.clone()).map_err(|e| config_err("config", format!("not a ModernBertConfig: {e}")))
}

/// A pooling's width: `hidden_size` in the config (required: no family default applies).
fn pooling_width(config: &serde_json::Value) -> crate::Result<usize> {
    match config.get("hidden_size") {
        Some(v) => v.as_u64().map(|n| n as usize).ok_or_else(|| config_err("hidden_size", format!("{v} is not a whole number"))),
        None => Err(config_err("hidden_size", "a pooling needs the width of the states it pools")),
    }
}

fn task_config(config: &serde_json::Value) -> crate::Result<TaskConfig> {
    serde_json::from_value(config.clone()).map_err(|e| config_err("config", format!("not a task config (id2label, label2id, problem_type): {e}")))
}

/// Which family's head layout a head kind builds.
enum HeadFamily {
    Bert,
    ModernBert,
}

/// The head family from `model_type`: `bert` (the default) or `modernbert`.
fn head_family(config: &serde_json::Value) -> crate::Result<HeadFamily> {
    match config.get("model_type").map(|v| v.as_str()) {
        None | Some(Some("bert")) => Ok(HeadFamily::Bert),
        Some(Some("modernbert")) => Ok(HeadFamily::ModernBert),
        Some(other) => Err(config_err(
            "model_type",
            format!("{} has no classification head here (supported: bert, modernbert)", other.map_or("a non-string".into(), |s| format!("`{s}`"))),
        )),
    }
}

/// The layer a ModernBERT layer-level kind stands for: `layer_idx` in the config (tensile's
/// own field, default 0), which decides global or sliding-window attention and whether the
/// layer has an `attn_norm`. It must be below `num_hidden_layers` when that is given.
fn layer_idx(config: &serde_json::Value) -> crate::Result<usize> {
    let idx = match config.get("layer_idx") {
        None => 0,
        Some(v) => v.as_u64().ok_or_else(|| config_err("layer_idx", format!("{v} is not a layer index (a whole number from 0)")))? as usize,
    };
    if let Some(n) = config.get("num_hidden_layers").and_then(|v| v.as_u64()) {
        if idx as u64 >= n {
            return Err(config_err("layer_idx", format!("{idx} is past num_hidden_layers {n}")));
        }
    }
    Ok(idx)
}

impl fmt::Display for BlockKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name is not a known block kind; the message lists every known name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown block kind `{0}` (known: {known})", known = BlockKind::names(&BlockKind::ALL))]
pub struct UnknownKind(pub String);

impl FromStr for BlockKind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| UnknownKind(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in BlockKind::ALL {
            assert_eq!(k.name().parse::<BlockKind>().unwrap(), k);
        }
        let err = "llama.attn".parse::<BlockKind>().unwrap_err().to_string();
        assert!(err.contains("`llama.attn`"), "{err}");
        for k in BlockKind::ALL {
            assert!(err.contains(k.name()), "{err} should list {k}");
        }
        assert_eq!(BlockKind::Bert.to_string(), "bert");
    }

    #[test]
    fn new_kinds_name_the_field_at_fault() {
        let vb = || crate::init::SeededInit::var_builder(0, candle_core::DType::F32, &candle_core::Device::Cpu);
        for (kind, cfg, field) in [
            (BlockKind::PoolingMean, serde_json::json!({}), "hidden_size"),
            (BlockKind::PoolingAttention, serde_json::json!({"hidden_size": "wide"}), "hidden_size"),
            (BlockKind::PoolingMax, serde_json::json!({"hidden_size": 0}), "hidden_size"),
            (BlockKind::ModernBertLayer, serde_json::json!({"hidden_size": 8, "num_attention_heads": 2, "layer_idx": -1}), "layer_idx"),
            (
                BlockKind::ModernBertAttention,
                serde_json::json!({"hidden_size": 8, "num_attention_heads": 2, "layer_idx": 3, "num_hidden_layers": 3}),
                "layer_idx",
            ),
            (BlockKind::HeadSequenceClassification, serde_json::json!({"hidden_size": 8, "model_type": "t5"}), "model_type"),
            (BlockKind::HeadTokenClassification, serde_json::json!({"hidden_size": 8, "model_type": 3}), "model_type"),
            (BlockKind::HeadSequenceClassification, serde_json::json!({"hidden_size": 8, "id2label": {"1": "a"}}), "id2label"),
        ] {
            let e = kind.build(&cfg, vb()).err().unwrap().to_string();
            assert!(e.contains(&format!("`{field}`")), "{kind}: {e}");
        }
        // layer_idx decides the layer's attention: 1 is local (a window), 0 global.
        let cfg = |i: usize| serde_json::json!({"hidden_size": 8, "num_attention_heads": 2, "local_attention": 4, "layer_idx": i});
        let dims = |i: usize| BlockKind::ModernBertLayer.build(&cfg(i), vb()).unwrap().dims();
        assert!(dims(1).contains(&("local_attention", 4)) && dims(0).contains(&("local_attention", 0)));
        let head = serde_json::json!({"hidden_size": 8, "num_attention_heads": 2, "model_type": "modernbert", "num_labels": 5});
        assert_eq!(BlockKind::HeadSequenceClassification.build(&head, vb()).unwrap().dims(), [("hidden_size", 8), ("num_labels", 5)]);
        assert_eq!(BlockKind::HeadSequenceClassification.hidden_size(&head).unwrap(), 8);
        assert_eq!(BlockKind::PoolingCls.hidden_size(&serde_json::json!({"hidden_size": 6})).unwrap(), 6);
    }

    #[test]
    fn only_buildable_kinds_build() {
        // The LoRA and quantized kinds read their own fields besides the base block's.
        let cfg = serde_json::json!({"hidden_size": 8, "intermediate_size": 16, "num_attention_heads": 2,
            "in_features": 8, "out_features": 4, "r": 2, "lora_alpha": 4, "format": "int8"});
        for k in BlockKind::ALL {
            let vb = crate::init::SeededInit::var_builder(0, candle_core::DType::F32, &candle_core::Device::Cpu);
            match k.build(&cfg, vb) {
                Ok(block) => {
                    assert!(k.buildable(), "{k} built");
                    assert_eq!(block.kind(), k);
                    assert_eq!(k.hidden_size(&cfg).unwrap(), 8);
                }
                Err(e) => {
                    assert!(!k.buildable(), "{k}: {e}");
                    let msg = e.to_string();
                    assert!(msg.contains(&format!("block kind `{k}` cannot be built from a config alone")), "{msg}");
                    assert!(BlockKind::BUILDABLE.iter().all(|b| msg.contains(b.name())), "{msg}");
                    assert!(k.hidden_size(&cfg).is_err());
                }
            }
        }
    }

    #[test]
    fn each_kind_checks_only_the_fields_it_uses() {
        let vb = || crate::init::SeededInit::var_builder(0, candle_core::DType::F32, &candle_core::Device::Cpu);
        // Default heads (32) do not divide 8, but a norm and an MLP have no heads.
        let narrow = serde_json::json!({"hidden_size": 8, "intermediate_size": 16});
        for k in [BlockKind::LlamaRmsNorm, BlockKind::LlamaMlp] {
            assert!(k.validate_config(&narrow).is_ok(), "{k}");
            assert_eq!(k.build(&narrow, vb()).unwrap().kind(), k);
        }
        for k in [BlockKind::LlamaAttention, BlockKind::LlamaDecoderLayer] {
            let e = k.build(&narrow, vb()).err().unwrap().to_string();
            assert!(e.contains("32 heads do not divide hidden_size 8"), "{k}: {e}");
        }
        // A negative epsilon is a config error for the norm and the layer, not a NaN output.
        let eps = serde_json::json!({"hidden_size": 8, "intermediate_size": 16, "num_attention_heads": 2, "rms_norm_eps": -1.0});
        assert!(BlockKind::LlamaMlp.validate_config(&eps).is_ok() && BlockKind::LlamaAttention.validate_config(&eps).is_ok());
        for k in [BlockKind::LlamaRmsNorm, BlockKind::LlamaDecoderLayer] {
            let e = k.validate_config(&eps).unwrap_err().to_string();
            assert!(e.contains("`rms_norm_eps`") && e.contains("got -1"), "{k}: {e}");
        }
        let rope = serde_json::json!({"hidden_size": 8, "num_attention_heads": 2, "rope_theta": -1.0});
        assert!(BlockKind::LlamaAttention.validate_config(&rope).unwrap_err().to_string().contains("`rope_theta`"));
        let rope = serde_json::json!({"hidden_size": 8, "num_attention_heads": 2, "rope_scaling": {"rope_type": "llama3", "factor": 0.0}});
        assert!(BlockKind::LlamaDecoderLayer.validate_config(&rope).unwrap_err().to_string().contains("`rope_scaling.factor`"));
        let bert = serde_json::json!({"hidden_size": 8, "num_attention_heads": 2, "intermediate_size": 16, "layer_norm_eps": 0.0});
        assert!(BlockKind::BertLayer.build(&bert, vb()).err().unwrap().to_string().contains("`layer_norm_eps`"));
        // Sizes past the limit are refused before any weight is allocated.
        let huge = serde_json::json!({"hidden_size": crate::MAX_DIM + 1, "intermediate_size": 16, "in_features": crate::MAX_DIM + 1,
            "out_features": 4, "r": 2, "lora_alpha": 4, "format": "int8"});
        for k in BlockKind::BUILDABLE {
            let e = k.build(&huge, vb()).err().unwrap().to_string();
            assert!((e.contains("`hidden_size`") || e.contains("`in_features`")) && e.contains("2^24"), "{k}: {e}");
        }
        assert!(matches!(BlockKind::Bert.validate_config(&narrow), Err(Error::NotBuildable { .. })));
    }

    #[test]
    fn bad_config_names_the_field() {
        let cfg = serde_json::json!({"hidden_size": 64, "num_attention_heads": 5});
        let vb = crate::init::SeededInit::var_builder(0, candle_core::DType::F32, &candle_core::Device::Cpu);
        let err = BlockKind::LlamaAttention.build(&cfg, vb).err().unwrap().to_string();
        assert!(err.contains("num_attention_heads"), "{err}");
        let cfg = serde_json::json!({"hidden_size": "wide"});
        assert!(BlockKind::LlamaMlp.hidden_size(&cfg).is_err());
    }
}
