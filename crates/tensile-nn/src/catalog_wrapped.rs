//! Building the LoRA and quantized kinds of the catalog from a config: the base block's
//! Hugging Face fields plus PEFT's LoRA fields (`r`, `lora_alpha`, `lora_dropout`,
//! `use_rslora`, `target_modules`) or a quantization `format`.

use crate::block::Block;
use crate::catalog::{llama_config, BlockKind};
use crate::error::config_err;
use crate::linear::{linears, Linear};
use crate::lora::{LoraConfig, TargetModules};
use crate::quant::{quantize_linears, QuantFormat};
use crate::tagged::Tagged;
use crate::{Attention, SwiGlu};
use candle_nn::VarBuilder;
use serde::Deserialize;

/// The adapter name a spec's LoRA block loads (`lora_A.default.weight`), PEFT's default.
pub const SPEC_ADAPTER: &str = "default";

/// A bare linear layer's shape.
#[derive(Debug, Deserialize)]
struct LinearSpec {
    in_features: usize,
    out_features: usize,
    #[serde(default)]
    bias: bool,
}

fn linear_spec(config: &serde_json::Value) -> crate::Result<LinearSpec> {
    let s: LinearSpec = serde_json::from_value(config.clone())
        .map_err(|e| config_err("config", format!("not a linear layer's config (in_features, out_features, bias): {e}")))?;
    crate::limits::dim("in_features", s.in_features)?;
    crate::limits::dim("out_features", s.out_features)?;
    Ok(s)
}

/// The LoRA fields, with `target_modules` defaulting to PEFT's Llama default `q_proj, v_proj`.
fn lora_spec(config: &serde_json::Value) -> crate::Result<LoraConfig> {
    let mut v = config.clone();
    if let Some(o) = v.as_object_mut() {
        o.entry("target_modules").or_insert_with(|| serde_json::json!(["q_proj", "v_proj"]));
        // `bias` is the base layer's (true or false) in a spec, PEFT's bias mode (a string) in
        // an adapter config; a boolean belongs to the base and leaves PEFT's at "none".
        if o.get("bias").is_some_and(|b| b.is_boolean()) {
            o.remove("bias");
        }
    }
    let cfg: LoraConfig = serde_json::from_value(v).map_err(|e| config_err("config", format!("not a LoRA config (r, lora_alpha, …): {e}")))?;
    cfg.validate().map_err(|e| config_err("config", e.to_string()))?;
    Ok(cfg)
}

fn format_of(config: &serde_json::Value) -> crate::Result<QuantFormat> {
    match config.get("format").and_then(|v| v.as_str()) {
        Some(s) => s.parse().map_err(|e: crate::Error| config_err("format", e.to_string())),
        None => Err(config_err("format", "a quantized block needs a `format` (int8, int4-g32, q4_0, q8_0, q4_k, …)")),
    }
}

/// Checks the fields of a wrapped kind without building it.
pub(crate) fn validate(kind: BlockKind, config: &serde_json::Value) -> crate::Result<()> {
    let check_width = |format: QuantFormat, widths: &[usize]| -> crate::Result<()> {
        match widths.iter().find(|w| *w % format.block() != 0) {
            Some(w) => Err(config_err("format", format!("{format} needs widths that are multiples of {}, and {w} is not", format.block()))),
            None => Ok(()),
        }
    };
    match kind {
        BlockKind::LoraLinear => {
            linear_spec(config)?;
            lora_spec(config).map(drop)
        }
        BlockKind::LoraAttention => {
            llama_config(config)?.validate_attention()?;
            lora_spec(config).map(drop)
        }
        BlockKind::QuantizedLinear => check_width(format_of(config)?, &[linear_spec(config)?.in_features]),
        BlockKind::QuantizedMlp => {
            let c = llama_config(config)?;
            c.validate_mlp()?;
            check_width(format_of(config)?, &[c.hidden_size, c.intermediate_size])
        }
        BlockKind::QuantizedAttention => {
            let c = llama_config(config)?;
            c.validate_attention()?;
            check_width(format_of(config)?, &[c.hidden_size, c.num_attention_heads * c.head_dim()])
        }
        kind => Err(crate::Error::NotBuildable { kind }),
    }
}

/// Builds a wrapped kind after [`validate`].
pub(crate) fn build(kind: BlockKind, config: &serde_json::Value, vb: VarBuilder) -> crate::Result<Box<dyn Block>> {
    validate(kind, config)?;
    match kind {
        BlockKind::LoraLinear => {
            let s = linear_spec(config)?;
            let l = Linear::new(s.in_features, s.out_features, s.bias, vb.clone())?;
            crate::lora::attach(&[(String::new(), l.clone())], &lora_spec(config)?, SPEC_ADAPTER, &vb, |_| Ok(true))?;
            Ok(Box::new(l))
        }
        BlockKind::LoraAttention => {
            let attention = Attention::new(&llama_config(config)?.attention_config(), vb.clone())?;
            let cfg = lora_spec(config)?;
            let targets: &TargetModules = &cfg.target_modules;
            crate::lora::attach(&linears(&attention), &cfg, SPEC_ADAPTER, &vb, |p| targets.matches(p))?;
            Ok(Box::new(Tagged::new(Box::new(attention), kind)))
        }
        // Quantized kinds read their weights in f32 whatever the block's dtype: the codes are
        // the same in every dtype (only the activations follow it).
        BlockKind::QuantizedLinear => {
            let s = linear_spec(config)?;
            let l = Linear::new(s.in_features, s.out_features, s.bias, vb.set_dtype(candle_core::DType::F32))?;
            l.quantize(format_of(config)?)?;
            Ok(Box::new(l))
        }
        BlockKind::QuantizedMlp | BlockKind::QuantizedAttention => {
            let c = llama_config(config)?;
            let vb = vb.set_dtype(candle_core::DType::F32);
            let inner: Box<dyn Block> = if kind == BlockKind::QuantizedMlp {
                Box::new(SwiGlu::new(c.hidden_size, c.intermediate_size, c.mlp_bias, c.hidden_act, vb)?)
            } else {
                Box::new(Attention::new(&c.attention_config(), vb)?)
            };
            quantize_linears(inner.as_ref(), format_of(config)?, |_| true)?;
            Ok(Box::new(Tagged::new(inner, kind)))
        }
        kind => Err(crate::Error::NotBuildable { kind }),
    }
}

/// The input width of a wrapped kind.
pub(crate) fn hidden_size(kind: BlockKind, config: &serde_json::Value) -> crate::Result<usize> {
    match kind {
        BlockKind::LoraLinear | BlockKind::QuantizedLinear => Ok(linear_spec(config)?.in_features),
        _ => Ok(llama_config(config)?.hidden_size),
    }
}
