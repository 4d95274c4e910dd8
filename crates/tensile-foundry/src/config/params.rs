//! The library configs `[model]` stands for, and the parameter count predicted from it by
//! formula, which a test holds equal to the count of the model actually built.

use super::{Architecture, ExperimentConfig};
use crate::error::{Error, Result};
use tensile_nn::bert::BertConfig;
use tensile_nn::llama::LlamaConfig;
use tensile_nn::modernbert::ModernBertConfig;
use tensile_nn::Activation;

/// The model `[model]` describes, as one of the library's configs.
#[derive(Debug, Clone, PartialEq)]
pub enum LibraryConfig {
    /// A `LlamaForCausalLM`.
    Llama(LlamaConfig),
    /// A BERT encoder.
    Bert(BertConfig),
    /// A ModernBERT encoder.
    ModernBert(ModernBertConfig),
}

fn activation(name: &Option<String>, default: Activation) -> Result<Activation> {
    match name {
        None => Ok(default),
        Some(n) => {
            serde_json::from_value(serde_json::Value::String(n.clone())).map_err(|e| Error::Invalid { field: "model.hidden_act", reason: e.to_string() })
        }
    }
}

impl ExperimentConfig {
    /// The library config for a vocabulary of `vocab_size` tokens, positions up to the
    /// sequence length.
    pub fn library_config(&self, vocab_size: usize) -> Result<LibraryConfig> {
        let m = &self.model;
        let positions = self.data.max_sequence_length;
        Ok(match m.architecture {
            Architecture::Llama => LibraryConfig::Llama(LlamaConfig {
                vocab_size,
                hidden_size: m.hidden_size,
                intermediate_size: m.intermediate_size,
                num_hidden_layers: m.num_hidden_layers,
                num_attention_heads: m.num_attention_heads,
                num_key_value_heads: m.num_key_value_heads,
                hidden_act: activation(&m.hidden_act, Activation::Silu)?,
                max_position_embeddings: positions,
                tie_word_embeddings: m.tie_word_embeddings,
                ..LlamaConfig::default()
            }),
            Architecture::Bert => LibraryConfig::Bert(BertConfig {
                vocab_size,
                hidden_size: m.hidden_size,
                num_hidden_layers: m.num_hidden_layers,
                num_attention_heads: m.num_attention_heads,
                intermediate_size: m.intermediate_size,
                hidden_act: activation(&m.hidden_act, Activation::Gelu)?,
                max_position_embeddings: positions,
                pad_token_id: 0,
                ..BertConfig::default()
            }),
            Architecture::Modernbert => LibraryConfig::ModernBert(ModernBertConfig {
                vocab_size,
                hidden_size: m.hidden_size,
                intermediate_size: m.intermediate_size,
                num_hidden_layers: m.num_hidden_layers,
                num_attention_heads: m.num_attention_heads,
                hidden_activation: activation(&m.hidden_act, Activation::Gelu)?,
                max_position_embeddings: positions,
                // The trained tokenizer puts the special tokens first: <pad> <s> </s> <unk> <mask>.
                pad_token_id: 0,
                cls_token_id: 1,
                sep_token_id: 2,
                ..ModernBertConfig::default()
            }),
        })
    }
}

/// Parameters of the model `[model]` describes at `vocab_size` tokens, by formula: the whole
/// causal LM for Llama, the encoder and its masked-LM head for BERT and ModernBERT (whose
/// decoder matrix is the embedding table, counted once).
pub fn predicted_parameters(config: &ExperimentConfig, vocab_size: usize) -> Result<usize> {
    Ok(match config.library_config(vocab_size)? {
        LibraryConfig::Llama(c) => {
            let (h, i, v) = (c.hidden_size, c.intermediate_size, c.vocab_size);
            let (q, kv) = (c.num_attention_heads * c.head_dim(), c.kv_heads() * c.head_dim());
            // q, k, v, o; gate, up, down; two norms.
            let layer = h * q + 2 * h * kv + q * h + 3 * h * i + 2 * h;
            v * h + c.num_hidden_layers * layer + h + if c.tie_word_embeddings { 0 } else { v * h }
        }
        LibraryConfig::Bert(c) => {
            let (h, i) = (c.hidden_size, c.intermediate_size);
            // Word, position and token-type tables and their LayerNorm.
            let embeddings = (c.vocab_size + c.max_position_embeddings + c.type_vocab_size) * h + 2 * h;
            // q, k, v, o with biases and a LayerNorm; intermediate and output with biases and a LayerNorm.
            let layer = 4 * (h * h + h) + 2 * h + (h * i + i) + (i * h + h) + 2 * h;
            // The head: transform dense and LayerNorm, and the decoder's bias.
            let head = h * h + h + 2 * h + c.vocab_size;
            embeddings + c.num_hidden_layers * layer + head
        }
        LibraryConfig::ModernBert(c) => {
            let (h, i) = (c.hidden_size, c.intermediate_size);
            let bias = |on: bool, n: usize| if on { n } else { 0 };
            let norm = h + bias(c.norm_bias, h);
            let attention = h * 3 * h + bias(c.attention_bias, 3 * h) + h * h + bias(c.attention_bias, h);
            let mlp = h * 2 * i + bias(c.mlp_bias, 2 * i) + i * h + bias(c.mlp_bias, h);
            // Layer 0 has no attn_norm (an identity); every layer has an mlp_norm.
            let layers = c.num_hidden_layers * (attention + mlp + 2 * norm) - norm;
            // The head: dense, norm, and the decoder's bias.
            let head = h * h + bias(c.classifier_bias, h) + norm + c.vocab_size;
            c.vocab_size * h + norm + layers + norm + head
        }
    })
}
