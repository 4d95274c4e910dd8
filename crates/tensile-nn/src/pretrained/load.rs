//! Reading a Hugging Face model directory into the right model.

use super::model::{Model, PretrainedModel};
use crate::bert::{Bert, BertConfig};
use crate::error::{Error, Result};
use crate::files;
use crate::heads::{EncoderWithHead, HeadTarget, MaskedLm, TaskConfig};
use crate::llama::{Llama, LlamaConfig};
use crate::modernbert::{ModernBert, ModernBertConfig};
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use serde_json::Value;
use std::path::Path;

/// Every architecture [`load_pretrained`] builds, by transformers' class name. The masked-LM
/// and pre-training classes load their encoder only (their prediction heads are not built).
pub const ARCHITECTURES: [&str; 10] = [
    "LlamaForCausalLM",
    "BertModel",
    "BertForMaskedLM",
    "BertForPreTraining",
    "BertForSequenceClassification",
    "BertForTokenClassification",
    "ModernBertModel",
    "ModernBertForMaskedLM",
    "ModernBertForSequenceClassification",
    "ModernBertForTokenClassification",
];

/// The `model_type` values [`load_pretrained`] reads, each with the architecture it builds
/// when `config.json` names none.
const MODEL_TYPES: [(&str, &str); 3] = [("llama", "LlamaForCausalLM"), ("bert", "BertModel"), ("modernbert", "ModernBertModel")];

pub(super) fn model_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Model { path: path.to_path_buf(), reason: reason.into() }
}

/// Reads `dir/config.json` and `dir/model.safetensors` and builds the model that
/// `architectures` (or, without it, `model_type`) names, with its head, its parameters in
/// `dtype` on `device`.
///
/// # Errors
/// A missing or unreadable file, a config naming an unsupported type (the message names the
/// field and lists the supported values), invalid config numbers, or weights missing or of
/// the wrong shape (naming the file and the tensor).
pub fn load_pretrained(dir: &Path, dtype: DType, device: &Device) -> Result<PretrainedModel> {
    let weights_path = dir.join("model.safetensors");
    let in_weights = |e: Error| match e {
        Error::Candle(e) => model_err(&weights_path, crate::innermost_message(&e)),
        e => e,
    };
    let weights = files::read(&weights_path, files::MAX_WEIGHTS_BYTES)?;
    let vb = VarBuilder::from_buffered_safetensors(weights, dtype, device).map_err(|e| in_weights(e.into()))?;
    build(dir, vb)
}

/// The model in `dir` with its shapes and names checked against `model.safetensors`'s header,
/// but no weight read: every parameter is a zero broadcast to its shape (stride 0, no
/// storage). What listing a checkpoint's modules needs, at any size, for free.
///
/// # Errors
/// As [`load_pretrained`].
pub fn load_pretrained_shapes(dir: &Path) -> Result<PretrainedModel> {
    let weights_path = dir.join("model.safetensors");
    let shapes = header_shapes(&weights_path)?;
    build(dir, VarBuilder::from_backend(Box::new(HeaderShapes(shapes)), DType::F32, Device::Cpu))
}

/// The names and shapes in a safetensors file's header, read without its data.
fn header_shapes(path: &Path) -> Result<std::collections::HashMap<String, Vec<usize>>> {
    use std::io::Read;
    files::regular_file(path, files::MAX_WEIGHTS_BYTES)?;
    let io = |source| Error::Io { path: path.to_path_buf(), source };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(io)?;
    let n = u64::from_le_bytes(len);
    if n > 100 << 20 {
        return Err(model_err(path, format!("a header of {n} bytes is not a safetensors header")));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).map_err(io)?;
    let v: Value = serde_json::from_slice(&header).map_err(|e| model_err(path, format!("bad safetensors header: {e}")))?;
    let Value::Object(entries) = v else { return Err(model_err(path, "bad safetensors header: not an object")) };
    Ok(entries
        .into_iter()
        .filter(|(k, _)| k != "__metadata__")
        .filter_map(|(k, e)| Some((k, e.get("shape")?.as_array()?.iter().filter_map(|d| d.as_u64().map(|d| d as usize)).collect())))
        .collect())
}

/// A [`VarBuilder`] backend that knows a checkpoint's names and shapes only: a request for a
/// tensor it lacks, or of another shape, fails as a real load would.
struct HeaderShapes(std::collections::HashMap<String, Vec<usize>>);

impl candle_nn::var_builder::SimpleBackend for HeaderShapes {
    fn get(&self, s: candle_core::Shape, name: &str, _: candle_nn::Init, dtype: DType, dev: &Device) -> candle_core::Result<candle_core::Tensor> {
        match self.0.get(name) {
            None => Err(candle_core::Error::CannotFindTensor { path: name.to_string() }.bt()),
            Some(shape) if shape.as_slice() != s.dims() => {
                Err(candle_core::Error::UnexpectedShape { msg: format!("shape mismatch for {name}"), expected: s, got: shape.clone().into() }.bt())
            }
            Some(_) => candle_core::Tensor::zeros((), dtype, dev)?.broadcast_as(s),
        }
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<candle_core::Tensor> {
        match self.0.get(name) {
            Some(shape) => candle_core::Tensor::zeros((), dtype, dev)?.broadcast_as(shape.clone()),
            None => Err(candle_core::Error::CannotFindTensor { path: name.to_string() }.bt()),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

/// The model `dir/config.json` names, built from `vb`.
fn build(dir: &Path, vb: VarBuilder) -> Result<PretrainedModel> {
    let config_path = dir.join("config.json");
    let bytes = files::read(&config_path, files::MAX_JSON_BYTES)?;
    let config: Value = serde_json::from_slice(&bytes).map_err(|source| Error::Json { path: config_path.clone(), source })?;
    let architecture = architecture_of(&config).map_err(|reason| model_err(&config_path, reason))?;
    let parse_err = |e: serde_json::Error| model_err(&config_path, e.to_string());
    let weights_path = dir.join("model.safetensors");
    let in_weights = |e: Error| match e {
        Error::MissingTensor { name } => model_err(&weights_path, format!("missing tensor `{name}`")),
        Error::Candle(e) => model_err(&weights_path, crate::innermost_message(&e)),
        e => e,
    };
    let in_config = |e: Error| match e {
        Error::Config { field, reason } => model_err(&config_path, format!("invalid field `{field}`: {reason}")),
        e => in_weights(e),
    };
    let task = || -> Result<TaskConfig> { serde_json::from_value(config.clone()).map_err(parse_err) };
    let target = if architecture.ends_with("TokenClassification") { HeadTarget::Token } else { HeadTarget::Sequence };
    let model = match architecture {
        "LlamaForCausalLM" => {
            let cfg: LlamaConfig = serde_json::from_value(config.clone()).map_err(parse_err)?;
            Model::Llama(Llama::new(&cfg, vb).map_err(in_config)?)
        }
        // A masked LM with its head weights loads whole; without them, as its encoder.
        "BertForMaskedLM" if vb.contains_tensor("cls.predictions.bias") => {
            let cfg: BertConfig = serde_json::from_value(config.clone()).map_err(parse_err)?;
            Model::MaskedLm(MaskedLm::bert(&cfg, vb).map_err(in_config)?)
        }
        "ModernBertForMaskedLM" if vb.contains_tensor("decoder.bias") => {
            let cfg: ModernBertConfig = serde_json::from_value(config.clone()).map_err(parse_err)?;
            Model::MaskedLm(MaskedLm::modernbert(&cfg, vb).map_err(in_config)?)
        }
        "BertModel" | "BertForMaskedLM" | "BertForPreTraining" => {
            let cfg: BertConfig = serde_json::from_value(config.clone()).map_err(parse_err)?;
            // A base model saved alone has no prefix; one saved inside a task model has `bert.`.
            let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") { vb.pp("bert") } else { vb };
            let pooler = vb.contains_tensor("pooler.dense.weight");
            Model::Bert(Bert::new(&cfg, pooler, vb).map_err(in_config)?)
        }
        "ModernBertModel" | "ModernBertForMaskedLM" => {
            let cfg: ModernBertConfig = serde_json::from_value(config.clone()).map_err(parse_err)?;
            let vb = if vb.contains_tensor("model.embeddings.tok_embeddings.weight") { vb.pp("model") } else { vb };
            Model::ModernBert(ModernBert::new(&cfg, vb).map_err(in_config)?)
        }
        "BertForSequenceClassification" | "BertForTokenClassification" => {
            let cfg: BertConfig = serde_json::from_value(config.clone()).map_err(parse_err)?;
            Model::WithHead(EncoderWithHead::bert(&cfg, &task()?, target, vb).map_err(in_config)?)
        }
        _ => {
            let cfg: ModernBertConfig = serde_json::from_value(config.clone()).map_err(parse_err)?;
            Model::WithHead(EncoderWithHead::modernbert(&cfg, &task()?, target, vb).map_err(in_config)?)
        }
    };
    Ok(PretrainedModel { model, source_config: config })
}

/// The architecture to build: the first of `architectures`, else `model_type`'s base model.
fn architecture_of(config: &Value) -> std::result::Result<&'static str, String> {
    let supported = || ARCHITECTURES.join(", ");
    if let Some(list) = config.get("architectures") {
        let first = list.as_array().and_then(|a| a.first()).and_then(|v| v.as_str());
        return match first {
            Some(name) => ARCHITECTURES
                .iter()
                .copied()
                .find(|a| *a == name)
                .ok_or_else(|| format!("field `architectures`: `{name}` is not supported (supported: {})", supported())),
            None => Err(format!("field `architectures` must be a list of class names (supported: {})", supported())),
        };
    }
    let types = || MODEL_TYPES.iter().map(|(t, _)| *t).collect::<Vec<_>>().join(", ");
    match config.get("model_type").and_then(|v| v.as_str()) {
        Some(t) => MODEL_TYPES
            .iter()
            .find(|(name, _)| *name == t)
            .map(|(_, arch)| *arch)
            .ok_or_else(|| format!("field `model_type`: `{t}` is not supported (supported: {})", types())),
        None => Err(format!("neither `architectures` nor `model_type` is set (model types: {})", types())),
    }
}
