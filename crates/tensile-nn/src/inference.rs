//! Running a loaded model on user inputs: token ids from a JSON file (`tensile forward`) and
//! texts through the directory's tokenizer (`tensile classify`).

use crate::error::{Error, Result};
use crate::files;
use crate::heads::{ProblemType, TaskConfig};
use crate::pretrained::{load_pretrained, PretrainedModel};
use candle_core::{DType, Device, Tensor, D};
use serde::Deserialize;
use std::path::Path;
use tokenizers::Tokenizer;

/// `{"input_ids": [[…], …], "attention_mask": [[…], …]}`; the mask is optional.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardInputs {
    /// Token ids, one row per sequence, all rows of one length.
    pub input_ids: Vec<Vec<i64>>,
    /// 1 for a token, 0 for padding; every position 1 when absent.
    #[serde(default)]
    pub attention_mask: Option<Vec<Vec<i64>>>,
}

fn input_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Model { path: path.to_path_buf(), reason: reason.into() }
}

impl ForwardInputs {
    /// Reads and checks the inputs file: a non-empty rectangle of ids, a mask of the same
    /// shape holding only 0 and 1, every row keeping at least one token.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = files::read(path, files::MAX_JSON_BYTES)?;
        let inputs: Self = serde_json::from_slice(&bytes).map_err(|source| Error::Json { path: path.to_path_buf(), source })?;
        let width = inputs.input_ids.first().map_or(0, Vec::len);
        if width == 0 {
            return Err(input_err(path, "`input_ids` holds no tokens"));
        }
        if let Some(i) = inputs.input_ids.iter().position(|r| r.len() != width) {
            return Err(input_err(path, format!("`input_ids` row {i} has {} ids, row 0 has {width}", inputs.input_ids[i].len())));
        }
        if let Some(mask) = &inputs.attention_mask {
            if mask.len() != inputs.input_ids.len() || mask.iter().any(|r| r.len() != width) {
                return Err(input_err(path, format!("`attention_mask` must have the shape of `input_ids` ({} × {width})", inputs.input_ids.len())));
            }
            if mask.iter().flatten().any(|&m| m != 0 && m != 1) {
                return Err(input_err(path, "`attention_mask` may hold only 0 and 1"));
            }
            if let Some(i) = mask.iter().position(|r| r.iter().all(|&m| m == 0)) {
                return Err(input_err(path, format!("`attention_mask` row {i} masks every token")));
            }
        }
        Ok(inputs)
    }

    /// The ids and mask as `(batch, seq)` u32 tensors, each id checked against the model's
    /// vocabulary.
    pub fn tensors(&self, path: &Path, model: &PretrainedModel, device: &Device) -> Result<(Tensor, Option<Tensor>)> {
        let vocab = model.vocab_size();
        if let Some(&id) = self.input_ids.iter().flatten().find(|&&id| id < 0 || id as u64 >= vocab as u64) {
            return Err(input_err(path, format!("`input_ids` holds {id}, outside the vocabulary 0..{vocab}")));
        }
        let rows = |m: &Vec<Vec<i64>>| -> Result<Tensor> {
            let flat: Vec<u32> = m.iter().flatten().map(|&v| v as u32).collect();
            Ok(Tensor::from_vec(flat, (m.len(), m[0].len()), device)?)
        };
        Ok((rows(&self.input_ids)?, self.attention_mask.as_ref().map(rows).transpose()?))
    }
}

/// One text's prediction.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Prediction {
    /// The text.
    pub text: String,
    /// The predicted label (single-label: the most likely; multi-label: every label above
    /// one half, comma-separated; regression: empty).
    pub label: String,
    /// Each label with its probability (softmax, or a sigmoid per label for multi-label),
    /// in class order; for a regression, the predicted values under the label names.
    pub scores: Vec<(String, f64)>,
    /// The raw logits.
    pub logits: Vec<f64>,
}

/// A classification model directory with its tokenizer: `config.json`, `model.safetensors`
/// and `tokenizer.json`.
pub struct Classifier {
    model: PretrainedModel,
    tokenizer: Tokenizer,
    device: Device,
}

impl Classifier {
    /// Loads the model (which must carry a sequence-classification head) and its tokenizer,
    /// padding batches with the config's `pad_token_id` and truncating to
    /// `max_position_embeddings`.
    pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let model = load_pretrained(dir, dtype, device)?;
        let config_path = dir.join("config.json");
        if !model.architecture().ends_with("ForSequenceClassification") {
            return Err(input_err(&config_path, format!("{} has no sequence-classification head to classify with", model.architecture())));
        }
        let tokenizer = load_tokenizer(dir, &model)?;
        Ok(Self { model, tokenizer, device: device.clone() })
    }

    /// The model.
    pub fn model(&self) -> &PretrainedModel {
        &self.model
    }

    /// Predictions for `texts`, in one padded batch.
    pub fn classify(&self, texts: &[&str]) -> Result<Vec<Prediction>> {
        let (ids, mask) = encode(&self.tokenizer, texts, &self.device)?;
        let logits = self.model.forward(&ids, Some(&mask))?.to_dtype(DType::F64)?.to_device(&Device::Cpu)?;
        let task = self.model.task().cloned().unwrap_or_default();
        let problem = task.problem_type_for(true);
        let probabilities = match problem {
            ProblemType::SingleLabelClassification => candle_nn::ops::softmax(&logits, D::Minus1)?,
            ProblemType::MultiLabelClassification => candle_nn::ops::sigmoid(&logits)?,
            ProblemType::Regression => logits.clone(),
        };
        let (logits, probabilities) = (logits.to_vec2::<f64>()?, probabilities.to_vec2::<f64>()?);
        Ok(texts.iter().zip(logits).zip(probabilities).map(|((text, l), p)| predict(&task, problem, text, l, p)).collect())
    }
}

/// The directory's `tokenizer.json`, checked against `model`'s vocabulary, truncating to its
/// `max_position_embeddings` and padding batches to the longest with its `pad_token_id`.
pub fn load_tokenizer(dir: &Path, model: &PretrainedModel) -> Result<Tokenizer> {
    crate::tokenizer::for_model(&dir.join("tokenizer.json"), &dir.join("config.json"), model.vocab_size(), model.max_positions(), model.pad_token_id())
}

/// `texts` as one padded batch: ids and attention mask, each `(batch, longest)` u32.
pub fn encode(tokenizer: &Tokenizer, texts: &[&str], device: &Device) -> Result<(Tensor, Tensor)> {
    let encodings = crate::tokenizer::encode_batch(tokenizer, texts.to_vec())?;
    let ids: Vec<Vec<u32>> = encodings.iter().map(|e| e.get_ids().to_vec()).collect();
    let mask: Vec<Vec<u32>> = encodings.iter().map(|e| e.get_attention_mask().to_vec()).collect();
    Ok((Tensor::new(ids, device)?, Tensor::new(mask, device)?))
}

fn predict(task: &TaskConfig, problem: ProblemType, text: &str, logits: Vec<f64>, p: Vec<f64>) -> Prediction {
    let labels = task.labels();
    let label = match problem {
        ProblemType::SingleLabelClassification => {
            let best = p.iter().enumerate().fold(0, |best, (i, &v)| if v > p[best] { i } else { best });
            labels[best].clone()
        }
        ProblemType::MultiLabelClassification => labels.iter().zip(&p).filter(|(_, &v)| v > 0.5).map(|(l, _)| l.as_str()).collect::<Vec<_>>().join(","),
        ProblemType::Regression => String::new(),
    };
    Prediction { text: text.to_string(), label, scores: labels.into_iter().zip(p).collect(), logits }
}
