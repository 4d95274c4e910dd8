//! `LlamaConfig`, field for field as in Hugging Face `config.json`.

use crate::activation::Activation;
use crate::attention::AttentionConfig;
use crate::error::config_err;
use crate::rotary::RopeScaling;
use serde::{Deserialize, Serialize};

/// LLaMA hyper-parameters. Missing fields take Hugging Face's `LlamaConfig` defaults, so a
/// partial `config.json` means what it means to transformers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LlamaConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads; `None` means equal to `num_attention_heads`.
    pub num_key_value_heads: Option<usize>,
    /// Head width; `None` means `hidden_size / num_attention_heads`.
    pub head_dim: Option<usize>,
    /// MLP activation.
    pub hidden_act: Activation,
    /// Longest sequence the model was trained for.
    pub max_position_embeddings: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// RoPE base.
    pub rope_theta: f64,
    /// RoPE frequency scaling (Llama 3.1+).
    pub rope_scaling: Option<RopeScaling>,
    /// Bias on q/k/v/o projections.
    pub attention_bias: bool,
    /// Bias on MLP projections.
    pub mlp_bias: bool,
    /// `lm_head` shares the token embedding matrix.
    pub tie_word_embeddings: bool,
}

impl Default for LlamaConfig {
    fn default() -> Self {
        Self {
            vocab_size: 32000,
            hidden_size: 4096,
            intermediate_size: 11008,
            num_hidden_layers: 32,
            num_attention_heads: 32,
            num_key_value_heads: None,
            head_dim: None,
            hidden_act: Activation::Silu,
            max_position_embeddings: 2048,
            rms_norm_eps: 1e-6,
            rope_theta: 10_000.0,
            rope_scaling: None,
            attention_bias: false,
            mlp_bias: false,
            tie_word_embeddings: false,
        }
    }
}

impl LlamaConfig {
    /// Rejects configurations no model could have, naming the field.
    pub fn validate(&self) -> crate::Result<()> {
        for (field, v) in [
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_attention_heads", self.num_attention_heads),
            ("vocab_size", self.vocab_size),
        ] {
            if v == 0 {
                return Err(config_err(field, "must be positive"));
            }
        }
        if self.head_dim.is_none() && self.hidden_size % self.num_attention_heads != 0 {
            return Err(config_err("num_attention_heads", format!("{} heads do not divide hidden_size {}", self.num_attention_heads, self.hidden_size)));
        }
        self.attention_config().validate()
    }

    /// The configuration numbers that identify one layer (see `Block::dims`).
    pub fn layer_dims(&self) -> Vec<(&'static str, usize)> {
        vec![
            ("hidden_size", self.hidden_size),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.kv_heads()),
            ("intermediate_size", self.intermediate_size),
        ]
    }

    /// Key/value heads after defaulting.
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Head width after defaulting.
    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// The attention block's configuration: causal, with RoPE.
    pub fn attention_config(&self) -> AttentionConfig {
        AttentionConfig {
            hidden_size: self.hidden_size,
            num_attention_heads: self.num_attention_heads,
            num_key_value_heads: self.kv_heads(),
            head_dim: self.head_dim(),
            attention_bias: self.attention_bias,
            causal: true,
            rope: Some((self.rope_theta, self.rope_scaling.clone())),
        }
    }
}
