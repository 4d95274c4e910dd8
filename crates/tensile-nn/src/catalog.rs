//! Block kinds addressable by name (`llama.attention`, `bert.layer`, …), so that reference case
//! files and spec files can say which block to build from a Hugging Face config.

use crate::bert::{BertConfig, BertLayer};
use crate::block::Block;
use crate::error::config_err;
use crate::llama::{LlamaConfig, LlamaDecoderLayer};
use crate::{Attention, RmsNorm, SwiGlu};
use candle_nn::VarBuilder;
use std::fmt;
use std::str::FromStr;

/// A block kind that can be built from a name and a Hugging Face config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockKind {
    /// `LlamaAttention`: causal, RoPE, MHA/GQA/MQA.
    LlamaAttention,
    /// `LlamaMLP`: SwiGLU.
    LlamaMlp,
    /// `LlamaRMSNorm`.
    LlamaRmsNorm,
    /// `LlamaDecoderLayer`.
    LlamaDecoderLayer,
    /// `BertLayer` without padding.
    BertLayer,
}

impl BlockKind {
    /// Every kind, in a stable order.
    pub const ALL: [BlockKind; 5] = [Self::LlamaAttention, Self::LlamaMlp, Self::LlamaRmsNorm, Self::LlamaDecoderLayer, Self::BertLayer];

    /// The kind's name, e.g. `llama.attention`.
    pub fn name(self) -> &'static str {
        match self {
            Self::LlamaAttention => "llama.attention",
            Self::LlamaMlp => "llama.mlp",
            Self::LlamaRmsNorm => "llama.rms_norm",
            Self::LlamaDecoderLayer => "llama.decoder_layer",
            Self::BertLayer => "bert.layer",
        }
    }

    /// Builds the block from a Hugging Face config (a JSON object of `config.json` fields) and
    /// weights named relative to the block.
    pub fn build(self, config: &serde_json::Value, vb: VarBuilder) -> crate::Result<Box<dyn Block>> {
        Ok(match self {
            Self::BertLayer => Box::new(BertLayer::new(&bert_config(config)?, vb)?),
            llama => {
                let cfg = llama_config(config)?;
                cfg.validate()?;
                match llama {
                    Self::LlamaAttention => Box::new(Attention::new(&cfg.attention_config(), vb)?),
                    Self::LlamaMlp => Box::new(SwiGlu::new(cfg.hidden_size, cfg.intermediate_size, cfg.mlp_bias, cfg.hidden_act, vb)?),
                    Self::LlamaRmsNorm => Box::new(RmsNorm::new(cfg.hidden_size, cfg.rms_norm_eps, vb)?),
                    _ => Box::new(LlamaDecoderLayer::new(&cfg, vb)?),
                }
            }
        })
    }

    /// The model width the block expects as its last input dimension.
    pub fn hidden_size(self, config: &serde_json::Value) -> crate::Result<usize> {
        Ok(match self {
            Self::BertLayer => bert_config(config)?.hidden_size,
            _ => llama_config(config)?.hidden_size,
        })
    }
}

fn llama_config(config: &serde_json::Value) -> crate::Result<LlamaConfig> {
    serde_json::from_value(config.clone()).map_err(|e| config_err("config", format!("not a LlamaConfig: {e}")))
}

fn bert_config(config: &serde_json::Value) -> crate::Result<BertConfig> {
    serde_json::from_value(config.clone()).map_err(|e| config_err("config", format!("not a BertConfig: {e}")))
}

impl fmt::Display for BlockKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name is not a known block kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown block kind `{0}` (known: llama.attention, llama.mlp, llama.rms_norm, llama.decoder_layer, bert.layer)")]
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
        assert!("llama.attn".parse::<BlockKind>().unwrap_err().to_string().contains("llama.attn"));
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
