//! `LlamaConfig`, field for field as in Hugging Face `config.json`.

use crate::activation::Activation;
use crate::attention::AttentionConfig;
use crate::error::config_err;
use crate::limits;
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
    /// transformers 5's form of the RoPE settings (`{"rope_theta": …, "rope_type": "default"
    /// | "llama3", …}`), which replaces `rope_theta` and `rope_scaling` when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rope_parameters: Option<serde_json::Value>,
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
            rope_parameters: None,
        }
    }
}

impl LlamaConfig {
    /// Rejects configurations no model could have, naming the field: everything a whole model
    /// or a decoder layer uses (every size in `1..=MAX_DIM`, heads that fit together, a
    /// positive finite `rms_norm_eps`, RoPE numbers that give finite frequencies).
    pub fn validate(&self) -> crate::Result<()> {
        self.validate_mlp()?;
        self.validate_rms_norm()?;
        self.validate_attention()?;
        limits::dim("vocab_size", self.vocab_size)?;
        limits::at_most_max("num_hidden_layers", self.num_hidden_layers)
    }

    /// What `LlamaMLP` alone uses: `hidden_size` and `intermediate_size` (the activation is
    /// checked when the config is parsed).
    pub fn validate_mlp(&self) -> crate::Result<()> {
        limits::dim("hidden_size", self.hidden_size)?;
        limits::dim("intermediate_size", self.intermediate_size)
    }

    /// What `LlamaRMSNorm` alone uses: `hidden_size` and `rms_norm_eps`. It has no heads, so a
    /// head count that does not divide its width is no concern of its.
    pub fn validate_rms_norm(&self) -> crate::Result<()> {
        limits::dim("hidden_size", self.hidden_size)?;
        limits::positive("rms_norm_eps", self.rms_norm_eps)
    }

    /// What `LlamaAttention` alone uses: the width, the heads, the position table and RoPE.
    pub fn validate_attention(&self) -> crate::Result<()> {
        limits::dim("hidden_size", self.hidden_size)?;
        limits::dim("num_attention_heads", self.num_attention_heads)?;
        limits::dim("max_position_embeddings", self.max_position_embeddings)?;
        if let Some(kv) = self.num_key_value_heads {
            limits::dim("num_key_value_heads", kv)?;
        }
        match self.head_dim {
            Some(d) => limits::dim("head_dim", d)?,
            None if self.hidden_size % self.num_attention_heads != 0 => {
                return Err(config_err("num_attention_heads", format!("{} heads do not divide hidden_size {}", self.num_attention_heads, self.hidden_size)));
            }
            None => {}
        }
        self.rope()?;
        self.attention_config().validate()
    }

    /// The RoPE base and scaling: from `rope_parameters` when the config has it (transformers
    /// 5 writes only that), from `rope_theta` and `rope_scaling` otherwise.
    pub fn rope(&self) -> crate::Result<(f64, Option<RopeScaling>)> {
        let Some(p) = &self.rope_parameters else {
            return Ok((self.rope_theta, self.rope_scaling.clone()));
        };
        let theta = match p.get("rope_theta") {
            None => self.rope_theta,
            Some(v) => v.as_f64().ok_or_else(|| config_err("rope_parameters", format!("rope_theta {v} is not a number")))?,
        };
        match p.get("rope_type").and_then(|v| v.as_str()).unwrap_or("default") {
            "default" => Ok((theta, None)),
            "llama3" => {
                let scaling: RopeScaling = serde_json::from_value(p.clone()).map_err(|e| config_err("rope_parameters", e.to_string()))?;
                Ok((theta, Some(scaling)))
            }
            other => Err(config_err("rope_parameters", format!("rope_type `{other}` is not supported (supported: default, llama3)"))),
        }
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
            // validate_attention rejects a rope_parameters that does not parse; an unvalidated
            // config falls back to the older fields.
            rope: Some(self.rope().unwrap_or_else(|_| (self.rope_theta, self.rope_scaling.clone()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(cfg: &LlamaConfig, check: fn(&LlamaConfig) -> crate::Result<()>) -> String {
        check(cfg).unwrap_err().to_string()
    }

    #[test]
    fn each_part_checks_only_what_it_uses() {
        // 32 default heads do not divide 8: only attention (and the whole layer) care.
        let narrow = LlamaConfig { hidden_size: 8, intermediate_size: 16, ..LlamaConfig::default() };
        assert!(narrow.validate_rms_norm().is_ok() && narrow.validate_mlp().is_ok());
        assert!(err(&narrow, LlamaConfig::validate_attention).contains("32 heads do not divide hidden_size 8"));
        assert!(err(&narrow, LlamaConfig::validate).contains("num_attention_heads"));
        // A bad epsilon is no concern of the MLP's.
        let eps = LlamaConfig { rms_norm_eps: -1.0, ..LlamaConfig::default() };
        assert!(eps.validate_mlp().is_ok() && eps.validate_attention().is_ok());
        assert!(err(&eps, LlamaConfig::validate_rms_norm).contains("`rms_norm_eps`: must be a finite number > 0, got -1"));
        assert!(err(&eps, LlamaConfig::validate).contains("`rms_norm_eps`"));
    }

    #[test]
    fn bad_numbers_name_their_field() {
        let d = LlamaConfig::default;
        for (cfg, field) in [
            (LlamaConfig { rms_norm_eps: f64::NAN, ..d() }, "rms_norm_eps"),
            (LlamaConfig { rms_norm_eps: 0.0, ..d() }, "rms_norm_eps"),
            (LlamaConfig { rope_theta: -1.0, ..d() }, "rope_theta"),
            (LlamaConfig { rope_theta: f64::INFINITY, ..d() }, "rope_theta"),
            (
                LlamaConfig {
                    rope_scaling: Some(RopeScaling {
                        rope_type: "llama3".into(),
                        factor: 0.0,
                        low_freq_factor: 1.0,
                        high_freq_factor: 4.0,
                        original_max_position_embeddings: 8192,
                    }),
                    ..d()
                },
                "rope_scaling.factor",
            ),
            (LlamaConfig { hidden_size: MAX + 1, ..d() }, "hidden_size"),
            (LlamaConfig { intermediate_size: MAX + 1, ..d() }, "intermediate_size"),
            (LlamaConfig { num_attention_heads: MAX + 1, ..d() }, "num_attention_heads"),
            (LlamaConfig { num_key_value_heads: Some(MAX + 1), ..d() }, "num_key_value_heads"),
            (LlamaConfig { head_dim: Some(MAX + 1), ..d() }, "head_dim"),
            (LlamaConfig { vocab_size: MAX + 1, ..d() }, "vocab_size"),
            (LlamaConfig { vocab_size: 0, ..d() }, "vocab_size"),
            (LlamaConfig { max_position_embeddings: MAX + 1, ..d() }, "max_position_embeddings"),
            (LlamaConfig { num_hidden_layers: MAX + 1, ..d() }, "num_hidden_layers"),
        ] {
            let e = cfg.validate().unwrap_err().to_string();
            assert!(e.contains(&format!("`{field}`")), "{field}: {e}");
        }
        assert!(d().validate().is_ok());
    }

    #[test]
    fn transformers_5_rope_parameters_replace_the_older_fields() {
        let c: LlamaConfig =
            serde_json::from_value(serde_json::json!({"rope_theta": 1.0, "rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"}})).unwrap();
        assert_eq!(c.attention_config().rope, Some((500_000.0, None)));
        let c: LlamaConfig = serde_json::from_value(serde_json::json!({"rope_parameters": {"rope_theta": 5e5, "rope_type": "llama3", "factor": 8.0,
            "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}))
        .unwrap();
        assert_eq!(c.rope().unwrap().1.unwrap().factor, 8.0);
        let bad: LlamaConfig = serde_json::from_value(serde_json::json!({"rope_parameters": {"rope_type": "yarn"}})).unwrap();
        assert!(err(&bad, LlamaConfig::validate).contains("rope_type `yarn`"));
        assert_eq!(bad.attention_config().rope, Some((10_000.0, None)));
    }

    const MAX: usize = crate::MAX_DIM;
}
