//! `BertConfig`, field for field as in Hugging Face `config.json`.

use crate::activation::Activation;
use crate::attention::AttentionConfig;
use crate::error::config_err;
use serde::{Deserialize, Serialize};

/// BERT hyper-parameters with Hugging Face's `BertConfig` defaults for missing fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BertConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// Encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Feed-forward width.
    pub intermediate_size: usize,
    /// Feed-forward activation.
    pub hidden_act: Activation,
    /// Size of the absolute position table.
    pub max_position_embeddings: usize,
    /// Number of token types (segments).
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// Padding token id.
    pub pad_token_id: u32,
}

impl Default for BertConfig {
    fn default() -> Self {
        Self {
            vocab_size: 30522,
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 3072,
            hidden_act: Activation::Gelu,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            pad_token_id: 0,
        }
    }
}

impl BertConfig {
    /// Rejects configurations no model could have, naming the field.
    pub fn validate(&self) -> crate::Result<()> {
        for (field, v) in [("hidden_size", self.hidden_size), ("intermediate_size", self.intermediate_size), ("num_attention_heads", self.num_attention_heads)]
        {
            if v == 0 {
                return Err(config_err(field, "must be positive"));
            }
        }
        if self.hidden_size % self.num_attention_heads != 0 {
            return Err(config_err("num_attention_heads", format!("{} heads do not divide hidden_size {}", self.num_attention_heads, self.hidden_size)));
        }
        Ok(())
    }

    /// The configuration numbers that identify one layer (see `Block::dims`).
    pub fn layer_dims(&self) -> Vec<(&'static str, usize)> {
        vec![("hidden_size", self.hidden_size), ("num_attention_heads", self.num_attention_heads), ("intermediate_size", self.intermediate_size)]
    }

    /// The attention block's configuration: bidirectional, biased projections, no RoPE.
    pub fn attention_config(&self) -> AttentionConfig {
        AttentionConfig {
            hidden_size: self.hidden_size,
            num_attention_heads: self.num_attention_heads,
            num_key_value_heads: self.num_attention_heads,
            head_dim: self.hidden_size / self.num_attention_heads.max(1),
            attention_bias: true,
            causal: false,
            rope: None,
        }
    }
}
