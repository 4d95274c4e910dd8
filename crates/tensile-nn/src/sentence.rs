//! Sentence embeddings from a sentence-transformers BERT directory.
//!
//! The directory holds `config.json`, `model.safetensors`, `tokenizer.json`, `modules.json`,
//! `1_Pooling/config.json` and usually `sentence_bert_config.json`. Texts are tokenised with
//! the `tokenizers` crate, run through [`Bert`], pooled as the pooling config says and
//! L2-normalised when `modules.json` lists a `Normalize` module.

use crate::bert::{Bert, BertConfig};
use crate::error::{Error, Result};
use crate::files;
use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;
use serde::Deserialize;
use std::path::Path;
use tokenizers::Tokenizer;

/// How token vectors become one sentence vector (`1_Pooling/config.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct PoolingConfig {
    /// Take the `[CLS]` vector.
    pub pooling_mode_cls_token: bool,
    /// Mean over real tokens.
    pub pooling_mode_mean_tokens: bool,
    /// Element-wise max over real tokens.
    pub pooling_mode_max_tokens: bool,
    /// Sum over real tokens divided by the square root of their count.
    pub pooling_mode_mean_sqrt_len_tokens: bool,
    /// Width of the token vectors the pooling expects; must equal the model's `hidden_size`.
    pub word_embedding_dimension: Option<usize>,
}

#[derive(Debug, Deserialize)]
struct ModuleEntry {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = files::read(path, files::MAX_JSON_BYTES)?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Json { path: path.to_path_buf(), source })
}

fn model_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Model { path: path.to_path_buf(), reason: reason.into() }
}

/// Fields every BERT `config.json` written by transformers has; a config without `model_type`
/// must have them all to be taken for BERT.
const BERT_FIELDS: [&str; 7] =
    ["hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size", "max_position_embeddings", "type_vocab_size"];

/// Reads `config.json` as a BERT config, refusing another architecture by name (`model_type`)
/// before its fields are misread as BERT's defaults, and invalid numbers by field.
fn bert_config(path: &Path) -> Result<BertConfig> {
    let json: serde_json::Value = read_json(path)?;
    let Some(fields) = json.as_object() else { return Err(model_err(path, "not a JSON object")) };
    match fields.get("model_type") {
        Some(serde_json::Value::String(t)) if t == "bert" => {}
        Some(t) => return Err(model_err(path, format!("model_type {t} is not a BERT model; tensile embed runs BERT sentence-transformers models"))),
        None => {
            let missing: Vec<&str> = BERT_FIELDS.into_iter().filter(|f| !fields.contains_key(*f)).collect();
            if !missing.is_empty() {
                return Err(model_err(path, format!("not a BERT model: no model_type, and no {}", missing.join(", "))));
            }
        }
    }
    let cfg: BertConfig = serde_json::from_value(json).map_err(|source| Error::Json { path: path.to_path_buf(), source })?;
    cfg.validate().map_err(|e| model_err(path, e.to_string()))?;
    Ok(cfg)
}

/// How many texts [`SentenceEmbedder::embed`] runs at once: sentence-transformers' default.
pub const DEFAULT_BATCH_SIZE: usize = 32;

/// How many texts are tokenised in one call before their encodings are reduced to ids, so a
/// large input never holds every full `Encoding` (tokens, offsets, …) in memory at once.
const TOKENIZE_CHUNK: usize = 4096;

/// A loaded sentence-transformers model.
pub struct SentenceEmbedder {
    bert: Bert,
    /// Truncates to `max_seq_length` but never pads: [`SentenceEmbedder::embed_batched`] pads
    /// each batch itself, after sorting, so one tokenisation serves both the sort and the batches.
    tokenizer: Tokenizer,
    pad_id: u32,
    pooling: PoolingConfig,
    normalize: bool,
    device: Device,
}

/// One text as the model sees it: its token ids and token type ids, unpadded.
struct Tokens {
    ids: Vec<u32>,
    types: Vec<u32>,
}

impl SentenceEmbedder {
    /// Loads the model in `dir` onto `device` with parameters in `dtype`. Every file must be a
    /// regular file of bounded size, and the files must agree with each other (the pooling
    /// width with `hidden_size`, `max_seq_length` with the position table); each error names
    /// the file and the field.
    pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let config_path = dir.join("config.json");
        let cfg = bert_config(&config_path)?;
        let modules: Vec<ModuleEntry> = read_json(&dir.join("modules.json"))?;
        let pooling_path = dir.join("1_Pooling").join("config.json");
        let pooling: PoolingConfig = read_json(&pooling_path)?;
        if !(pooling.pooling_mode_cls_token || pooling.pooling_mode_mean_tokens || pooling.pooling_mode_max_tokens || pooling.pooling_mode_mean_sqrt_len_tokens)
        {
            return Err(crate::error::config_err("pooling_mode", "1_Pooling/config.json enables no supported pooling mode (cls, mean, max, mean_sqrt_len)"));
        }
        if let Some(width) = pooling.word_embedding_dimension.filter(|&w| w != cfg.hidden_size) {
            return Err(model_err(
                &pooling_path,
                format!("word_embedding_dimension {width} disagrees with hidden_size {} in {}", cfg.hidden_size, config_path.display()),
            ));
        }
        let normalize = modules.iter().any(|m| m.kind.ends_with("Normalize"));
        let st_path = dir.join("sentence_bert_config.json");
        let max_len = match if st_path.exists() { read_json::<SentenceBertConfig>(&st_path)?.max_seq_length } else { None } {
            Some(0) => return Err(model_err(&st_path, "max_seq_length must be positive")),
            // Positions past the table have no embedding: the lookup would fail mid-batch.
            Some(n) if n > cfg.max_position_embeddings => {
                return Err(model_err(
                    &st_path,
                    format!("max_seq_length {n} exceeds max_position_embeddings {} in {}", cfg.max_position_embeddings, config_path.display()),
                ));
            }
            Some(n) => n,
            None => cfg.max_position_embeddings,
        };

        let weights_path = dir.join("model.safetensors");
        let in_weights = |e: Error| match e {
            Error::MissingTensor { name } => model_err(&weights_path, format!("missing tensor `{name}`")),
            Error::Candle(e) => model_err(&weights_path, crate::innermost_message(&e)),
            e => e,
        };
        let bytes = files::read(&weights_path, files::MAX_WEIGHTS_BYTES)?;
        let vb = VarBuilder::from_buffered_safetensors(bytes, dtype, device).map_err(|e| in_weights(e.into()))?;
        // Some exports keep the `BertForX` prefix; a sentence-transformers export usually has none.
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") { vb.pp("bert") } else { vb };
        let bert = Bert::new(&cfg, false, vb).map_err(in_weights)?;

        let mut tokenizer = crate::tokenizer::for_model(&dir.join("tokenizer.json"), &config_path, cfg.vocab_size, max_len, cfg.pad_token_id)?;
        tokenizer.with_padding(None);
        Ok(Self { bert, tokenizer, pad_id: cfg.pad_token_id, pooling, normalize, device: device.clone() })
    }

    /// Whether outputs are L2-normalised.
    pub fn normalizes(&self) -> bool {
        self.normalize
    }

    /// One embedding per text, in the order of `texts`, computed in batches of
    /// [`DEFAULT_BATCH_SIZE`] as [`SentenceEmbedder::embed_batched`] does.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        self.embed_batched(texts, DEFAULT_BATCH_SIZE)
    }

    /// One embedding per text, in the order of `texts`, computed in batches of `batch_size`.
    ///
    /// A batch is padded to its longest text, and the padded positions cost as much compute as
    /// real ones. So, as sentence-transformers does, the texts are tokenised once, sorted by
    /// token count (longest first, ties in input order, so the run is deterministic), cut into
    /// batches of neighbours of similar length, and the embeddings are put back in input order.
    /// Padding is masked, so a text's embedding does not depend on its batch beyond rounding.
    /// A `batch_size` of 0 is an error.
    pub fn embed_batched(&self, texts: &[&str], batch_size: usize) -> Result<Vec<Vec<f32>>> {
        if batch_size == 0 {
            return Err(crate::error::config_err("batch_size", "must be at least 1, got 0"));
        }
        let mut tokens = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(TOKENIZE_CHUNK) {
            let encodings = crate::tokenizer::encode_batch(&self.tokenizer, chunk.to_vec())?;
            tokens.extend(encodings.into_iter().map(|e| Tokens { ids: e.get_ids().to_vec(), types: e.get_type_ids().to_vec() }));
        }
        let order = longest_first(&tokens);
        let mut out = vec![Vec::new(); texts.len()];
        for batch in order.chunks(batch_size) {
            let rows: Vec<&Tokens> = batch.iter().map(|&i| &tokens[i]).collect();
            let emb = self.embed_tokens(&rows)?.to_dtype(DType::F32)?.to_vec2::<f32>()?;
            for (&i, e) in batch.iter().zip(emb) {
                out[i] = e;
            }
        }
        Ok(out)
    }

    /// Embeddings of tokenised texts, padded here to the longest of them.
    fn embed_tokens(&self, rows: &[&Tokens]) -> Result<Tensor> {
        // At least one position: a tokenizer that adds no special tokens turns an empty text
        // into no tokens, and a batch of only such texts would otherwise have no columns at
        // all, which attention cannot take. The padding position is masked out.
        let width = rows.iter().map(|t| t.ids.len()).max().unwrap_or(0).max(1);
        let shape = (rows.len(), width);
        let mut ids = Vec::with_capacity(rows.len() * width);
        let mut types = Vec::with_capacity(rows.len() * width);
        let mut mask = Vec::with_capacity(rows.len() * width);
        for t in rows {
            let pad = width - t.ids.len();
            // Right padding with `pad_token_id`, type 0 and mask 0, as the tokenizers crate pads.
            ids.extend(t.ids.iter().copied().chain(std::iter::repeat_n(self.pad_id, pad)));
            types.extend(t.types.iter().copied().chain(std::iter::repeat_n(0, pad)));
            mask.extend(std::iter::repeat_n(1u32, t.ids.len()).chain(std::iter::repeat_n(0, pad)));
        }
        let ids = Tensor::from_vec(ids, shape, &self.device)?;
        let types = Tensor::from_vec(types, shape, &self.device)?;
        let mask = Tensor::from_vec(mask, shape, &self.device)?;
        let hidden = self.bert.forward_with(&ids, Some(&types), Some(&mask))?.to_dtype(DType::F32)?;
        let pooled = pool(&hidden, &mask, &self.pooling)?;
        Ok(if self.normalize { l2_normalize(&pooled)? } else { pooled })
    }
}

/// Indices of `tokens`, longest first; a stable sort, so equal lengths keep their input order.
fn longest_first(tokens: &[Tokens]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..tokens.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(tokens[i].ids.len()));
    order
}

/// Pools `(batch, seq, hidden)` token vectors with a `(batch, seq)` 0/1 mask; several enabled
/// modes are concatenated in sentence-transformers' order (cls, max, mean, mean_sqrt_len).
pub fn pool(hidden: &Tensor, mask: &Tensor, cfg: &PoolingConfig) -> candle_core::Result<Tensor> {
    let m = mask.to_dtype(hidden.dtype())?.unsqueeze(D::Minus1)?; // (b, s, 1)
    let count = m.sum(1)?.clamp(1e-9, f64::MAX)?; // (b, 1)
    let sum = hidden.broadcast_mul(&m)?.sum(1)?; // (b, hidden)
    let mut parts = Vec::new();
    if cfg.pooling_mode_cls_token {
        parts.push(hidden.narrow(1, 0, 1)?.squeeze(1)?);
    }
    if cfg.pooling_mode_max_tokens {
        // Padding positions are pushed far down so they never win the max.
        let penalty = ((m.affine(-1.0, 1.0))? * -1e9)?;
        parts.push(hidden.broadcast_add(&penalty)?.max(1)?);
    }
    if cfg.pooling_mode_mean_tokens {
        parts.push(sum.broadcast_div(&count)?);
    }
    if cfg.pooling_mode_mean_sqrt_len_tokens {
        parts.push(sum.broadcast_div(&count.sqrt()?)?);
    }
    Tensor::cat(&parts, 1)
}

/// Divides each row by its Euclidean norm.
pub fn l2_normalize(x: &Tensor) -> candle_core::Result<Tensor> {
    x.broadcast_div(&x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(1e-12, f64::MAX)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_modes_respect_the_mask() {
        // Two tokens, the second is padding: every mode must see only the first.
        let h = Tensor::new(&[[[1f32, -2.0], [100.0, 100.0]]], &Device::Cpu).unwrap();
        let mask = Tensor::new(&[[1u32, 0]], &Device::Cpu).unwrap();
        let all = PoolingConfig {
            pooling_mode_cls_token: true,
            pooling_mode_mean_tokens: true,
            pooling_mode_max_tokens: true,
            pooling_mode_mean_sqrt_len_tokens: true,
            word_embedding_dimension: None,
        };
        let v = pool(&h, &mask, &all).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(v, vec![vec![1.0, -2.0, 1.0, -2.0, 1.0, -2.0, 1.0, -2.0]]);
        let mean = PoolingConfig { pooling_mode_mean_tokens: true, ..Default::default() };
        let mask2 = Tensor::new(&[[1u32, 1]], &Device::Cpu).unwrap();
        assert_eq!(pool(&h, &mask2, &mean).unwrap().to_vec2::<f32>().unwrap(), vec![vec![50.5, 49.0]]);
    }

    #[test]
    fn l2_normalize_gives_unit_rows() {
        let x = Tensor::new(&[[3f32, 4.0]], &Device::Cpu).unwrap();
        assert_eq!(l2_normalize(&x).unwrap().to_vec2::<f32>().unwrap(), vec![vec![0.6, 0.8]]);
    }

    #[test]
    fn longest_first_is_a_stable_sort_by_descending_length() {
        let t = |n: usize| Tokens { ids: vec![0; n], types: vec![0; n] };
        let tokens = [t(1), t(3), t(2), t(3), t(0)];
        assert_eq!(longest_first(&tokens), vec![1, 3, 2, 0, 4]);
        assert!(longest_first(&[]).is_empty());
    }

    #[test]
    fn missing_directory_is_an_io_error_naming_the_file() {
        let err = SentenceEmbedder::load(Path::new("/nonexistent/model"), DType::F32, &Device::Cpu).err().unwrap();
        assert!(matches!(err, Error::Io { .. }));
        assert!(err.to_string().contains("config.json"), "{err}");
    }
}
