//! PEFT's adapter files: `adapter_config.json` and `adapter_model.safetensors`, whose tensors
//! are named `base_model.model.{module path}.lora_A.weight` (and `lora_B`).

use super::{LoraConfig, LoraModel};
use crate::error::Error;
use crate::files;
use candle_core::{Device, Tensor};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The prefix PEFT puts before every module path of the base model.
const PREFIX: &str = "base_model.model.";

fn model_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Model { path: path.to_path_buf(), reason: reason.into() }
}

/// Reads `dir/adapter_config.json`, checked as [`LoraConfig::validate`] does.
pub fn read_adapter_config(dir: &Path) -> crate::Result<LoraConfig> {
    let path = dir.join("adapter_config.json");
    let bytes = files::read(&path, files::MAX_JSON_BYTES)?;
    let cfg: LoraConfig = serde_json::from_slice(&bytes).map_err(|source| Error::Json { path: path.clone(), source })?;
    cfg.validate().map_err(|e| model_err(&path, e.to_string()))?;
    Ok(cfg)
}

impl<B> LoraModel<B> {
    /// Loads a PEFT LoRA adapter directory as adapter `name`, on `device`.
    ///
    /// # Errors
    /// A missing or unreadable file, a config this crate cannot apply (naming the field), a
    /// tensor missing or of the wrong shape, or a tensor for a module the model does not have
    /// (each naming the file and the tensor).
    pub fn load_adapter(&mut self, dir: &Path, name: &str, device: &Device) -> crate::Result<()> {
        let cfg = read_adapter_config(dir)?;
        let path = dir.join("adapter_model.safetensors");
        let bytes = files::read(&path, files::MAX_WEIGHTS_BYTES)?;
        let bad = |e: candle_core::Error| model_err(&path, crate::innermost_message(&e));
        let raw: HashMap<String, Tensor> = candle_core::safetensors::load_buffer(&bytes, device).map_err(bad)?;
        let mut pairs: BTreeMap<String, (Option<Tensor>, Option<Tensor>)> = BTreeMap::new();
        for (key, t) in raw {
            let module = key
                .strip_prefix(PREFIX)
                .and_then(|k| k.strip_suffix(".lora_A.weight").map(|m| (m, true)).or_else(|| k.strip_suffix(".lora_B.weight").map(|m| (m, false))));
            let Some((module, is_a)) = module else {
                return Err(model_err(&path, format!("tensor `{key}` is not a LoRA weight (expected `{PREFIX}<module>.lora_A.weight` or `.lora_B.weight`)")));
            };
            let slot = pairs.entry(module.to_string()).or_default();
            if is_a {
                slot.0 = Some(t);
            } else {
                slot.1 = Some(t);
            }
        }
        let mut tensors = BTreeMap::new();
        for (module, pair) in pairs {
            match pair {
                (Some(a), Some(b)) => {
                    tensors.insert(module, (a, b));
                }
                (a, _) => {
                    let missing = if a.is_none() { "lora_A" } else { "lora_B" };
                    return Err(model_err(&path, format!("missing tensor `{PREFIX}{module}.{missing}.weight`")));
                }
            }
        }
        self.add_adapter_from(name, &cfg, tensors).map_err(|e| match e {
            Error::Lora(reason) => model_err(&path, reason),
            e => e,
        })
    }

    /// Writes adapter `name` as a PEFT directory (`adapter_config.json`,
    /// `adapter_model.safetensors`, each written atomically), creating `dir` if needed.
    pub fn save_adapter(&self, name: &str, dir: &Path) -> crate::Result<()> {
        let (cfg, _) = self.adapter(name)?;
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut tensors = Vec::new();
        for (module, (a, b)) in self.adapter_tensors(name)? {
            tensors.push((format!("{PREFIX}{module}.lora_A.weight"), a));
            tensors.push((format!("{PREFIX}{module}.lora_B.weight"), b));
        }
        let weights = dir.join("adapter_model.safetensors");
        let data = crate::pretrained::safetensors_bytes(&tensors, &weights)?;
        files::write_atomic(&weights, data).map_err(io(&weights))?;
        let config = dir.join("adapter_config.json");
        let text = serde_json::to_string_pretty(cfg).map_err(|source| Error::Json { path: config.clone(), source })?;
        files::write_atomic(&config, text + "\n").map_err(io(&config))?;
        Ok(())
    }
}
