//! `ModernBertConfig`, field for field as in Hugging Face `config.json` (transformers ≥ 4.48).

use crate::activation::Activation;
use crate::error::config_err;
use crate::limits;
use serde::{Deserialize, Serialize};

/// ModernBERT hyper-parameters with transformers' `ModernBertConfig` defaults (those of
/// ModernBERT-base) for every missing field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModernBertConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// Width of one half of the GeGLU projection `mlp.Wi` (which is twice as wide).
    pub intermediate_size: usize,
    /// Encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// The activation of the GeGLU's input half.
    pub hidden_activation: Activation,
    /// Longest sequence the model was trained on (informational: there is no position table).
    pub max_position_embeddings: usize,
    /// LayerNorm epsilon.
    pub norm_eps: f64,
    /// Whether the LayerNorms carry a bias.
    pub norm_bias: bool,
    /// Whether `attn.Wqkv` and `attn.Wo` carry a bias.
    pub attention_bias: bool,
    /// Whether `mlp.Wi` and `mlp.Wo` carry a bias.
    pub mlp_bias: bool,
    /// RoPE base of the global-attention layers.
    pub global_rope_theta: f64,
    /// RoPE base of the sliding-window layers; `null` means the global base.
    pub local_rope_theta: Option<f64>,
    /// Every n-th layer (0, n, 2n, …) attends globally; the others use the sliding window.
    pub global_attn_every_n_layers: usize,
    /// Width of the sliding window: a query sees keys at most half of it away.
    pub local_attention: usize,
    /// Per layer, `full_attention` or `sliding_attention` (transformers ≥ 5 writes this
    /// instead of relying on `global_attn_every_n_layers`); when present it decides.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer_types: Option<Vec<String>>,
    /// RoPE per attention type (transformers ≥ 5 writes the bases here instead of
    /// `global_rope_theta` and `local_rope_theta`); a base given here decides.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rope_parameters: Option<RopeParameters>,
    /// Padding token id.
    pub pad_token_id: u32,
    /// `[CLS]` token id.
    pub cls_token_id: u32,
    /// `[SEP]` token id.
    pub sep_token_id: u32,
    /// How the sequence-classification head pools: `cls` or `mean`.
    pub classifier_pooling: String,
    /// Whether the prediction head's `head.dense` carries a bias.
    pub classifier_bias: bool,
    /// The prediction head's activation.
    pub classifier_activation: Activation,
}

impl Default for ModernBertConfig {
    fn default() -> Self {
        Self {
            vocab_size: 50368,
            hidden_size: 768,
            intermediate_size: 1152,
            num_hidden_layers: 22,
            num_attention_heads: 12,
            hidden_activation: Activation::Gelu,
            max_position_embeddings: 8192,
            norm_eps: 1e-5,
            norm_bias: false,
            attention_bias: false,
            mlp_bias: false,
            global_rope_theta: 160_000.0,
            local_rope_theta: Some(10_000.0),
            global_attn_every_n_layers: 3,
            local_attention: 128,
            layer_types: None,
            rope_parameters: None,
            pad_token_id: 50283,
            cls_token_id: 50281,
            sep_token_id: 50282,
            classifier_pooling: "cls".into(),
            classifier_bias: false,
            classifier_activation: Activation::Gelu,
        }
    }
}

/// RoPE settings per attention type, as transformers ≥ 5 writes them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RopeParameters {
    /// Settings of the global (`full_attention`) layers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_attention: Option<RopeType>,
    /// Settings of the local (`sliding_attention`) layers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sliding_attention: Option<RopeType>,
}

/// One attention type's RoPE: the base and the type (only `default` is supported).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RopeType {
    /// The base.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f64>,
    /// `default` (plain RoPE); scaled variants are not supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_type: Option<String>,
}

/// How one layer attends: globally, or within a window, and with which RoPE base.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerAttention {
    /// `Some(half)`: a query at position i sees keys j with |i − j| ≤ half; `None`: every key.
    pub window: Option<usize>,
    /// The RoPE base.
    pub rope_theta: f64,
}

impl ModernBertConfig {
    /// Rejects configurations no model could have, naming the field: what one layer uses
    /// ([`ModernBertConfig::validate_layer`]), the vocabulary and the layer count.
    pub fn validate(&self) -> crate::Result<()> {
        self.validate_layer()?;
        limits::dim("vocab_size", self.vocab_size)?;
        if let Some(types) = self.layer_types.as_ref().filter(|t| t.len() != self.num_hidden_layers) {
            return Err(config_err("layer_types", format!("{} entries for {} layers", types.len(), self.num_hidden_layers)));
        }
        if self.pad_token_id as usize >= self.vocab_size {
            return Err(config_err("pad_token_id", format!("{} is past vocab_size {}", self.pad_token_id, self.vocab_size)));
        }
        limits::at_most_max("num_hidden_layers", self.num_hidden_layers)
    }

    /// What one layer uses: its attention's and its feed-forward block's numbers and a
    /// positive finite `norm_eps`.
    pub fn validate_layer(&self) -> crate::Result<()> {
        self.validate_attention()?;
        self.validate_mlp()?;
        if !matches!(self.classifier_pooling.as_str(), "cls" | "mean") {
            return Err(config_err("classifier_pooling", format!("`{}` is not one of cls, mean", self.classifier_pooling)));
        }
        limits::positive("norm_eps", self.norm_eps)
    }

    /// What attention uses: width and heads (an even head width, for RoPE), the attention
    /// pattern and the RoPE bases.
    pub fn validate_attention(&self) -> crate::Result<()> {
        for (field, v) in [
            ("hidden_size", self.hidden_size),
            ("num_attention_heads", self.num_attention_heads),
            ("global_attn_every_n_layers", self.global_attn_every_n_layers),
            ("local_attention", self.local_attention),
        ] {
            limits::dim(field, v)?;
        }
        if self.hidden_size % self.num_attention_heads != 0 {
            return Err(config_err("num_attention_heads", format!("{} heads do not divide hidden_size {}", self.num_attention_heads, self.hidden_size)));
        }
        if self.head_dim() % 2 != 0 {
            return Err(config_err("num_attention_heads", format!("RoPE needs an even head width, got {}", self.head_dim())));
        }
        limits::positive("global_rope_theta", self.global_rope_theta)?;
        if let Some(theta) = self.local_rope_theta {
            limits::positive("local_rope_theta", theta)?;
        }
        if let Some(types) = &self.layer_types {
            if let Some(bad) = types.iter().find(|t| !matches!(t.as_str(), "full_attention" | "sliding_attention")) {
                return Err(config_err("layer_types", format!("`{bad}` is not one of full_attention, sliding_attention")));
            }
        }
        for rope in self.rope_parameters.iter().flat_map(|r| [&r.full_attention, &r.sliding_attention]).flatten() {
            if let Some(theta) = rope.rope_theta {
                limits::positive("rope_parameters", theta)?;
            }
            if let Some(kind) = rope.rope_type.as_deref().filter(|k| *k != "default") {
                return Err(config_err("rope_parameters", format!("rope_type `{kind}` is not supported (supported: default)")));
            }
        }
        Ok(())
    }

    /// What the feed-forward block uses: its two widths.
    pub fn validate_mlp(&self) -> crate::Result<()> {
        limits::dim("hidden_size", self.hidden_size)?;
        limits::dim("intermediate_size", self.intermediate_size)
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads.max(1)
    }

    /// How layer `layer_idx` attends, as transformers decides it: `layer_types` when given,
    /// otherwise layers 0, n, 2n, … (n = `global_attn_every_n_layers`) globally and the others
    /// within ± `local_attention / 2`. The base comes from `rope_parameters` when given,
    /// otherwise `global_rope_theta`, or for local layers `local_rope_theta` (the global base
    /// when that is `null`).
    pub fn layer_attention(&self, layer_idx: usize) -> LayerAttention {
        let local = match self.layer_types.as_ref().and_then(|t| t.get(layer_idx)) {
            Some(t) => t == "sliding_attention",
            None => layer_idx % self.global_attn_every_n_layers.max(1) != 0,
        };
        let rope = self.rope_parameters.as_ref().and_then(|r| if local { r.sliding_attention.as_ref() } else { r.full_attention.as_ref() });
        let fallback = if local { self.local_rope_theta.unwrap_or(self.global_rope_theta) } else { self.global_rope_theta };
        LayerAttention { window: local.then_some(self.local_attention / 2), rope_theta: rope.and_then(|r| r.rope_theta).unwrap_or(fallback) }
    }

    /// The configuration numbers that identify one layer (see `Block::dims`).
    pub fn layer_dims(&self) -> Vec<(&'static str, usize)> {
        vec![("hidden_size", self.hidden_size), ("num_attention_heads", self.num_attention_heads), ("intermediate_size", self.intermediate_size)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_modernbert_base() {
        // ModernBERT-base's config.json states these; a config with only the model type
        // must come out the same.
        let c: ModernBertConfig = serde_json::from_str(r#"{"model_type": "modernbert"}"#).unwrap();
        assert_eq!((c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.intermediate_size), (768, 22, 12, 1152));
        assert_eq!((c.global_rope_theta, c.local_rope_theta, c.local_attention, c.global_attn_every_n_layers), (160_000.0, Some(10_000.0), 128, 3));
        assert!(!c.norm_bias && !c.attention_bias && !c.mlp_bias);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn layers_alternate_between_global_and_a_window() {
        let c = ModernBertConfig { global_attn_every_n_layers: 3, local_attention: 128, ..Default::default() };
        let pattern: Vec<Option<usize>> = (0..7).map(|i| c.layer_attention(i).window).collect();
        assert_eq!(pattern, [None, Some(64), Some(64), None, Some(64), Some(64), None]);
        assert_eq!(c.layer_attention(0).rope_theta, 160_000.0);
        assert_eq!(c.layer_attention(1).rope_theta, 10_000.0);
        let no_local_base = ModernBertConfig { local_rope_theta: None, ..c };
        assert_eq!(no_local_base.layer_attention(1).rope_theta, 160_000.0);
    }

    #[test]
    fn transformers_5_fields_decide_over_the_old_ones() {
        // What transformers 5.24 writes for 4 layers, 2 of them local, with bases 1000 / 500.
        let c: ModernBertConfig = serde_json::from_str(
            r#"{"num_hidden_layers": 4, "global_attn_every_n_layers": 3, "local_attention": 8,
                "layer_types": ["full_attention", "sliding_attention", "full_attention", "sliding_attention"],
                "rope_parameters": {"full_attention": {"rope_theta": 1000.0, "rope_type": "default"},
                                    "sliding_attention": {"rope_theta": 500.0, "rope_type": "default"}}}"#,
        )
        .unwrap();
        let got: Vec<(Option<usize>, f64)> = (0..4).map(|i| (c.layer_attention(i).window, c.layer_attention(i).rope_theta)).collect();
        assert_eq!(got, [(None, 1000.0), (Some(4), 500.0), (None, 1000.0), (Some(4), 500.0)]);
        assert!(c.validate().is_ok());
        // A base missing from rope_parameters falls back to the old field.
        let partial = ModernBertConfig { rope_parameters: Some(RopeParameters::default()), ..c.clone() };
        assert_eq!(partial.layer_attention(1).rope_theta, 10_000.0);
        // Saved and read back, both spellings survive.
        let back: ModernBertConfig = serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn bad_numbers_name_their_field() {
        let d = ModernBertConfig::default;
        for (cfg, field) in [
            (ModernBertConfig { norm_eps: 0.0, ..d() }, "norm_eps"),
            (ModernBertConfig { hidden_size: 0, ..d() }, "hidden_size"),
            (ModernBertConfig { num_attention_heads: 5, ..d() }, "num_attention_heads"),
            (ModernBertConfig { hidden_size: 36, num_attention_heads: 12, ..d() }, "num_attention_heads"),
            (ModernBertConfig { global_attn_every_n_layers: 0, ..d() }, "global_attn_every_n_layers"),
            (ModernBertConfig { local_attention: 0, ..d() }, "local_attention"),
            (ModernBertConfig { global_rope_theta: -1.0, ..d() }, "global_rope_theta"),
            (ModernBertConfig { local_rope_theta: Some(f64::NAN), ..d() }, "local_rope_theta"),
            (ModernBertConfig { classifier_pooling: "max".into(), ..d() }, "classifier_pooling"),
            (ModernBertConfig { vocab_size: 0, ..d() }, "vocab_size"),
            (ModernBertConfig { pad_token_id: 50368, ..d() }, "pad_token_id"),
            (ModernBertConfig { num_hidden_layers: crate::MAX_DIM + 1, ..d() }, "num_hidden_layers"),
            (ModernBertConfig { layer_types: Some(vec!["full_attention".into()]), ..d() }, "layer_types"),
            (ModernBertConfig { layer_types: Some(vec!["causal".into(); 22]), ..d() }, "layer_types"),
            (
                ModernBertConfig {
                    rope_parameters: Some(RopeParameters {
                        full_attention: Some(RopeType { rope_theta: Some(0.0), rope_type: None }),
                        sliding_attention: None,
                    }),
                    ..d()
                },
                "rope_parameters",
            ),
            (
                ModernBertConfig {
                    rope_parameters: Some(RopeParameters {
                        full_attention: None,
                        sliding_attention: Some(RopeType { rope_theta: None, rope_type: Some("yarn".into()) }),
                    }),
                    ..d()
                },
                "rope_parameters",
            ),
        ] {
            let e = cfg.validate().unwrap_err().to_string();
            assert!(e.contains(&format!("`{field}`")), "{field}: {e}");
        }
    }
}
