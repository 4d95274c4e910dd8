//! `BertConfig`, field for field as in Hugging Face `config.json`.

use crate::activation::Activation;
use crate::attention::AttentionConfig;
use crate::error::config_err;
use crate::limits;
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
    /// Rejects configurations no model could have, naming the field: what one layer uses
    /// ([`BertConfig::validate_layer`]) and the embedding tables' sizes, each in
    /// `1..=MAX_DIM`.
    pub fn validate(&self) -> crate::Result<()> {
        self.validate_layer()?;
        for (field, v) in
            [("vocab_size", self.vocab_size), ("max_position_embeddings", self.max_position_embeddings), ("type_vocab_size", self.type_vocab_size)]
        {
            limits::dim(field, v)?;
        }
        if self.pad_token_id as usize >= self.vocab_size {
            return Err(config_err("pad_token_id", format!("{} is past vocab_size {}", self.pad_token_id, self.vocab_size)));
        }
        limits::at_most_max("num_hidden_layers", self.num_hidden_layers)
    }

    /// What one `BertLayer` uses: width, heads, feed-forward width and a positive finite
    /// `layer_norm_eps`.
    pub fn validate_layer(&self) -> crate::Result<()> {
        for (field, v) in [("hidden_size", self.hidden_size), ("intermediate_size", self.intermediate_size), ("num_attention_heads", self.num_attention_heads)]
        {
            limits::dim(field, v)?;
        }
        if self.hidden_size % self.num_attention_heads != 0 {
            return Err(config_err("num_attention_heads", format!("{} heads do not divide hidden_size {}", self.num_attention_heads, self.hidden_size)));
        }
        limits::positive("layer_norm_eps", self.layer_norm_eps)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_numbers_name_their_field() {
        let d = BertConfig::default;
        let max = crate::MAX_DIM;
        for (cfg, field) in [
            (BertConfig { layer_norm_eps: -1.0, ..d() }, "layer_norm_eps"),
            (BertConfig { layer_norm_eps: f64::NAN, ..d() }, "layer_norm_eps"),
            (BertConfig { layer_norm_eps: 0.0, ..d() }, "layer_norm_eps"),
            (BertConfig { hidden_size: 0, ..d() }, "hidden_size"),
            (BertConfig { intermediate_size: max + 1, ..d() }, "intermediate_size"),
            (BertConfig { num_attention_heads: max + 1, ..d() }, "num_attention_heads"),
            (BertConfig { vocab_size: max + 1, ..d() }, "vocab_size"),
            (BertConfig { max_position_embeddings: 0, ..d() }, "max_position_embeddings"),
            (BertConfig { type_vocab_size: max + 1, ..d() }, "type_vocab_size"),
            (BertConfig { pad_token_id: 30522, ..d() }, "pad_token_id"),
        ] {
            let e = cfg.validate().unwrap_err().to_string();
            assert!(e.contains(&format!("`{field}`")), "{field}: {e}");
        }
        assert!(d().validate().is_ok());
        // A layer has no embedding tables: their sizes are no concern of its.
        let no_vocab = BertConfig { vocab_size: 0, ..d() };
        assert!(no_vocab.validate_layer().is_ok() && no_vocab.validate().is_err());
    }
}
