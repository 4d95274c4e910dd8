//! The checks serde's types cannot express: ranges, fields that exclude each other, fields
//! that must agree. Each error points at the value (or at its table, when it is missing).

use super::{Architecture, ExperimentConfig, Locator, Objective};
use crate::error::Result;

/// Largest size accepted for any dimension, as for the library's blocks.
const MAX: usize = tensile_nn::MAX_DIM;

pub(super) fn validate(c: &ExperimentConfig, loc: &Locator) -> Result<()> {
    let fail = |keys: &[&str], reason: String| Err(loc.err(loc.span(keys), format!("field `{}`: {reason}", keys.join("."))));
    let size = |keys: &[&str], v: usize, min: usize| -> Result<()> {
        if v < min || v > MAX {
            return fail(keys, format!("{v} is not in {min}..={MAX}"));
        }
        Ok(())
    };
    let positive = |keys: &[&str], v: f64| -> Result<()> {
        if !(v.is_finite() && v > 0.0) {
            return fail(keys, format!("must be a finite number > 0, got {v}"));
        }
        Ok(())
    };
    let unit = |keys: &[&str], v: f64, hi_open: bool| -> Result<()> {
        let ok = v.is_finite() && v >= 0.0 && if hi_open { v < 1.0 } else { v <= 1.0 };
        if !ok {
            return fail(keys, format!("{v} is not in [0, 1{}", if hi_open { ")" } else { "]" }));
        }
        Ok(())
    };
    if c.experiment_name.trim().is_empty() {
        return fail(&["experiment_name"], "must not be empty".into());
    }
    // [data]
    let d = &c.data;
    if d.sources.is_empty() {
        return fail(&["data", "sources"], "names no file (an empty list)".into());
    }
    size(&["data", "max_sequence_length"], d.max_sequence_length, 2)?;
    size(&["data", "batch_size"], d.batch_size, 1)?;
    unit(&["data", "validation_fraction"], d.validation_fraction, true)?;
    size(&["data", "shard_tokens"], d.shard_tokens, d.max_sequence_length)?;
    // [tokenizer]
    let t = &c.tokenizer;
    let specials = c.special_tokens().len();
    size(&["tokenizer", "vocab_size"], t.vocab_size, 1)?;
    if t.path.is_none() && t.vocab_size <= specials {
        return fail(&["tokenizer", "vocab_size"], format!("{} leaves no room beside the {specials} special tokens", t.vocab_size));
    }
    if t.path.is_none() && t.output_dir.is_none() {
        return fail(&["tokenizer"], "a trained tokenizer needs an `output_dir` (or give `path` to load one)".into());
    }
    // [model]
    let m = &c.model;
    size(&["model", "num_hidden_layers"], m.num_hidden_layers, 1)?;
    size(&["model", "hidden_size"], m.hidden_size, 1)?;
    size(&["model", "intermediate_size"], m.intermediate_size, 1)?;
    size(&["model", "num_attention_heads"], m.num_attention_heads, 1)?;
    if m.hidden_size % m.num_attention_heads != 0 {
        return fail(&["model", "num_attention_heads"], format!("{} heads do not divide hidden_size {}", m.num_attention_heads, m.hidden_size));
    }
    if let Some(kv) = m.num_key_value_heads {
        if m.architecture != Architecture::Llama {
            return fail(&["model", "num_key_value_heads"], "only Llama has grouped key/value heads".into());
        }
        size(&["model", "num_key_value_heads"], kv, 1)?;
        if m.num_attention_heads % kv != 0 {
            return fail(&["model", "num_key_value_heads"], format!("{kv} key/value heads do not divide {} attention heads", m.num_attention_heads));
        }
    }
    let want = if m.architecture == Architecture::Llama { Objective::CausalLm } else { Objective::MaskedLm };
    if c.objective() != want {
        return fail(&["model", "objective"], format!("{:?} models here train as {want:?} only", m.architecture).to_lowercase());
    }
    unit(&["model", "dropout"], m.dropout, true)?;
    unit(&["model", "attention_dropout"], m.attention_dropout, true)?;
    c.library_config(t.vocab_size.max(specials + 1)).map_err(|e| loc.err(loc.span(&["model", "hidden_act"]), e.to_string()))?;
    // [training]
    let r = &c.training;
    positive(&["training", "learning_rate"], r.learning_rate)?;
    for (k, b) in r.betas.iter().enumerate() {
        if !(b.is_finite() && (0.0..1.0).contains(b)) {
            return fail(&["training", "betas"], format!("beta{} = {b} is not in [0, 1)", k + 1));
        }
    }
    positive(&["training", "eps"], r.eps)?;
    if !(r.weight_decay.is_finite() && r.weight_decay >= 0.0) {
        return fail(&["training", "weight_decay"], format!("must be a finite number ≥ 0, got {}", r.weight_decay));
    }
    match (r.epochs, r.train_steps) {
        (Some(_), Some(_)) => return fail(&["training", "train_steps"], "give `epochs` or `train_steps`, not both".into()),
        (None, None) => return fail(&["training"], "missing `epochs` or `train_steps`".into()),
        (Some(e), None) => size(&["training", "epochs"], e, 1)?,
        (None, Some(s)) => size(&["training", "train_steps"], s, 1)?,
    }
    match (r.warmup_steps, r.warmup_ratio) {
        (Some(_), Some(_)) => return fail(&["training", "warmup_ratio"], "give `warmup_steps` or `warmup_ratio`, not both".into()),
        (None, Some(ratio)) => unit(&["training", "warmup_ratio"], ratio, false)?,
        (Some(w), None) => {
            if let Some(s) = r.train_steps {
                if w > s {
                    return fail(&["training", "warmup_steps"], format!("{w} warmup steps are more than the {s} training steps"));
                }
            }
        }
        (None, None) => {}
    }
    size(&["training", "gradient_accumulation_steps"], r.gradient_accumulation_steps, 1)?;
    positive(&["training", "max_grad_norm"], r.max_grad_norm)?;
    size(&["training", "keep_checkpoints"], r.keep_checkpoints, 1)?;
    positive(&["training", "loss_scale"], r.loss_scale)?;
    if !(r.mlm_probability > 0.0 && r.mlm_probability < 1.0) {
        return fail(&["training", "mlm_probability"], format!("{} is not in (0, 1)", r.mlm_probability));
    }
    if r.early_checkpoints > 62 {
        return fail(&["training", "early_checkpoints"], format!("{} powers of two overflow a step count", r.early_checkpoints));
    }
    if let Some(b) = r.memory_budget_mb {
        positive(&["training", "memory_budget_mb"], b)?;
    }
    size(&["logging", "log_every"], c.logging.log_every, 1)?;
    // [logging]
    if !["error", "warn", "info", "debug"].contains(&c.logging.level.as_str()) {
        return fail(&["logging", "level"], format!("`{}` is not one of error, warn, info, debug", c.logging.level));
    }
    Ok(())
}
