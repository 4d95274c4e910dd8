//! The model factory: a Hugging Face model directory (`config.json` + `model.safetensors`) to
//! the right model with its head, and back.

use crate::bert::{Bert, BertConfig};
use crate::block::Block;
use crate::error::{Error, Result};
use crate::files;
use crate::heads::{EncoderWithHead, HeadTarget, TaskConfig};
use crate::llama::{Llama, LlamaConfig};
use crate::modernbert::{ModernBert, ModernBertConfig};
use candle_core::{DType, Device, Tensor};
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

/// A loaded model: what `tensile forward` runs and [`save_pretrained`] writes. It keeps the
/// `config.json` it was loaded from, so that fields this crate does not read (token ids,
/// initialiser settings, …) are written back unchanged.
pub struct PretrainedModel {
    model: Model,
    source_config: Value,
}

enum Model {
    /// `LlamaForCausalLM`: logits over the vocabulary.
    Llama(Llama),
    /// `BertModel`: hidden states.
    Bert(Bert),
    /// `ModernBertModel`: hidden states.
    ModernBert(ModernBert),
    /// An encoder with a classification head: logits over the labels.
    WithHead(EncoderWithHead),
}

impl PretrainedModel {
    /// An encoder with a head built in code (a head trained on a loaded encoder, say), to be
    /// saved with [`save_pretrained`]; `config` holds the fields to write beyond the model's
    /// own (those of the encoder's source `config.json`, for instance).
    pub fn with_head(model: EncoderWithHead, config: Value) -> Self {
        Self { model: Model::WithHead(model), source_config: config }
    }

    /// The `config.json` the model was loaded from.
    pub fn source_config(&self) -> &Value {
        &self.source_config
    }

    /// Transformers' class name (what `architectures` holds).
    pub fn architecture(&self) -> &'static str {
        match &self.model {
            Model::Llama(_) => "LlamaForCausalLM",
            Model::Bert(_) => "BertModel",
            Model::ModernBert(_) => "ModernBertModel",
            Model::WithHead(m) => m.architecture(),
        }
    }

    /// `model_type` in `config.json`.
    pub fn model_type(&self) -> &'static str {
        match &self.model {
            Model::Llama(_) => "llama",
            Model::Bert(_) => "bert",
            Model::ModernBert(_) => "modernbert",
            Model::WithHead(m) => match m.encoder() {
                crate::heads::Encoder::Bert(_) => "bert",
                crate::heads::Encoder::ModernBert(_) => "modernbert",
            },
        }
    }

    /// The name transformers gives the output [`PretrainedModel::forward`] returns.
    pub fn output_name(&self) -> &'static str {
        match &self.model {
            Model::Bert(_) | Model::ModernBert(_) => "last_hidden_state",
            _ => "logits",
        }
    }

    /// The labels and problem type of a model with a classification head.
    pub fn task(&self) -> Option<&TaskConfig> {
        match &self.model {
            Model::WithHead(m) => Some(m.head().task()),
            _ => None,
        }
    }

    /// The model as a block (its parameters, costs and twin).
    pub fn block(&self) -> &dyn Block {
        match &self.model {
            Model::Llama(m) => m,
            Model::Bert(m) => m,
            Model::ModernBert(m) => m,
            Model::WithHead(m) => m,
        }
    }

    /// The model's output for `input_ids` `(batch, seq)` with an optional padding mask (1 =
    /// token). LLaMA is causal: a right-padded row's tokens never see its padding, so the
    /// mask is checked to be right padding and otherwise unused.
    ///
    /// # Errors
    /// A mask of another shape than the ids, or (for LLaMA) a row with a token after padding.
    pub fn forward(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> Result<Tensor> {
        if let Some(mask) = attention_mask {
            if mask.dims() != input_ids.dims() {
                return Err(Error::InvalidInput {
                    op: "forward",
                    reason: format!("attention_mask has shape {:?}, input_ids {:?}", mask.dims(), input_ids.dims()),
                });
            }
        }
        Ok(match &self.model {
            Model::Llama(m) => {
                if let Some(mask) = attention_mask {
                    let rows = mask.to_dtype(DType::F64)?.to_vec2::<f64>()?;
                    if rows.iter().any(|r| r.windows(2).any(|w| w[0] == 0.0 && w[1] != 0.0)) {
                        return Err(Error::InvalidInput { op: "forward", reason: "a causal model takes right padding only (a token follows padding)".into() });
                    }
                }
                m.forward_with(input_ids, None)?
            }
            Model::Bert(m) => m.forward_with(input_ids, None, attention_mask)?,
            Model::ModernBert(m) => m.forward_with(input_ids, attention_mask)?,
            Model::WithHead(m) => m.forward_with(input_ids, attention_mask)?,
        })
    }

    /// Float64 twin of [`PretrainedModel::forward`] (LLaMA's ignores the mask, as its fast
    /// path does after the check).
    pub fn forward_reference(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> Result<Tensor> {
        Ok(match &self.model {
            Model::Llama(m) => m.forward_reference(input_ids)?,
            Model::Bert(m) => m.forward_reference_with(input_ids, None, attention_mask)?,
            Model::ModernBert(m) => m.forward_reference_with(input_ids, attention_mask)?,
            Model::WithHead(m) => m.forward_reference_with(input_ids, attention_mask)?,
        })
    }

    /// The longest input the model has positions for (`max_position_embeddings`).
    pub fn max_positions(&self) -> usize {
        match &self.model {
            Model::Llama(m) => m.config().max_position_embeddings,
            Model::Bert(m) => m.config().max_position_embeddings,
            Model::ModernBert(m) => m.config().max_position_embeddings,
            Model::WithHead(m) => match m.encoder() {
                crate::heads::Encoder::Bert(b) => b.config().max_position_embeddings,
                crate::heads::Encoder::ModernBert(b) => b.config().max_position_embeddings,
            },
        }
    }

    /// The padding token id: `pad_token_id` in the config, else 0.
    pub fn pad_token_id(&self) -> u32 {
        self.source_config.get("pad_token_id").and_then(Value::as_u64).map_or(0, |v| v as u32)
    }

    /// The `config.json` that describes this model to transformers.
    fn config_json(&self) -> Result<Value> {
        let to_value = |v: serde_json::Result<Value>| v.map_err(|e| crate::error::config_err("config", e.to_string()));
        let mut cfg = match &self.model {
            Model::Llama(m) => to_value(serde_json::to_value(m.config()))?,
            Model::Bert(m) => to_value(serde_json::to_value(m.config()))?,
            Model::ModernBert(m) => to_value(serde_json::to_value(m.config()))?,
            Model::WithHead(m) => {
                let mut v = match m.encoder() {
                    crate::heads::Encoder::Bert(b) => to_value(serde_json::to_value(b.config()))?,
                    crate::heads::Encoder::ModernBert(b) => to_value(serde_json::to_value(b.config()))?,
                };
                if let (Value::Object(o), Value::Object(task)) = (&mut v, to_value(serde_json::to_value(m.head().task()))?) {
                    o.extend(task);
                }
                v
            }
        };
        if let Value::Object(o) = &mut cfg {
            // Fields of the source config this crate does not model are kept as they were.
            if let Value::Object(source) = &self.source_config {
                for (k, v) in source {
                    o.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            o.insert("model_type".into(), self.model_type().into());
            o.insert("architectures".into(), Value::from(vec![self.architecture()]));
            let dtype = self.block().parameters().first().map_or(DType::F32, |(_, t)| t.dtype());
            o.insert("dtype".into(), dtype_name(dtype).into());
        }
        Ok(cfg)
    }
}

fn dtype_name(dtype: DType) -> &'static str {
    match dtype {
        DType::BF16 => "bfloat16",
        DType::F16 => "float16",
        DType::F64 => "float64",
        _ => "float32",
    }
}

fn model_err(path: &Path, reason: impl Into<String>) -> Error {
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
    let weights = files::read(&weights_path, files::MAX_WEIGHTS_BYTES)?;
    let vb = VarBuilder::from_buffered_safetensors(weights, dtype, device).map_err(|e| in_weights(e.into()))?;
    let task = || -> Result<TaskConfig> { serde_json::from_value(config.clone()).map_err(parse_err) };
    let target = if architecture.ends_with("TokenClassification") { HeadTarget::Token } else { HeadTarget::Sequence };
    let model = match architecture {
        "LlamaForCausalLM" => {
            let cfg: LlamaConfig = serde_json::from_value(config.clone()).map_err(parse_err)?;
            Model::Llama(Llama::new(&cfg, vb).map_err(in_config)?)
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

/// Writes `config.json` and `model.safetensors` for `model` into `dir` (created if needed) in
/// Hugging Face layout, each atomically: written to a temporary file in `dir`, then renamed,
/// so a reader never sees half a file and a failure leaves any earlier file intact.
pub fn save_pretrained(model: &PretrainedModel, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.to_path_buf(), source })?;
    let config = serde_json::to_vec_pretty(&model.config_json()?).map_err(|e| crate::error::config_err("config", e.to_string()))?;
    write_atomic(&dir.join("config.json"), &config)?;
    let params = model.block().parameters();
    let mut seen = std::collections::HashSet::new();
    let tensors: Vec<(String, Tensor)> = params.into_iter().filter(|(n, _)| seen.insert(n.clone())).collect();
    let views = tensors.iter().map(|(n, t)| Ok((n.as_str(), RawTensor::of(t)?))).collect::<Result<Vec<_>>>()?;
    // transformers refuses a safetensors file whose metadata does not say `format: pt`.
    let metadata = Some([("format".to_string(), "pt".to_string())].into_iter().collect());
    let path = dir.join("model.safetensors");
    let bytes = safetensors::serialize(views, metadata).map_err(|e| model_err(&path, e.to_string()))?;
    write_atomic(&path, &bytes)
}

/// A tensor's little-endian bytes, dtype and shape, as the safetensors writer takes them.
struct RawTensor {
    dtype: safetensors::Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl RawTensor {
    fn of(t: &Tensor) -> Result<Self> {
        let flat = t.to_device(&Device::Cpu)?.flatten_all()?;
        let (dtype, data): (safetensors::Dtype, Vec<u8>) = match t.dtype() {
            DType::F32 => (safetensors::Dtype::F32, flat.to_vec1::<f32>()?.iter().flat_map(|x| x.to_le_bytes()).collect()),
            DType::F64 => (safetensors::Dtype::F64, flat.to_vec1::<f64>()?.iter().flat_map(|x| x.to_le_bytes()).collect()),
            DType::F16 => (safetensors::Dtype::F16, flat.to_vec1::<half::f16>()?.iter().flat_map(|x| x.to_le_bytes()).collect()),
            DType::BF16 => (safetensors::Dtype::BF16, flat.to_vec1::<half::bf16>()?.iter().flat_map(|x| x.to_le_bytes()).collect()),
            other => return Err(Error::InvalidInput { op: "save_pretrained", reason: format!("parameters of dtype {other:?} cannot be saved") }),
        };
        Ok(Self { dtype, shape: t.dims().to_vec(), data })
    }
}

impl safetensors::View for RawTensor {
    fn dtype(&self) -> safetensors::Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| Error::Io { path: path.to_path_buf(), source };
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let result = (|| {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}
