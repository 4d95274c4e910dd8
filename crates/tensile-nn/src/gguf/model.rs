//! Reading a GGUF file of the Llama architecture into the library's [`Llama`], keeping its
//! weights quantized.

use super::tokenizer::{tokenizer_from_gguf, GgufVocab};
use crate::error::Error;
use crate::files;
use crate::linear::{linears, LinearWeight};
use crate::llama::{Llama, LlamaConfig};
use crate::quant::QuantizedWeight;
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use std::borrow::Cow;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Mutex;

/// A Llama-architecture model read from a GGUF file, with its tokenizer and chat template.
pub struct GgufModel {
    /// The model; its linear layers keep the file's quantized weights.
    pub model: Llama,
    /// The configuration read from the `llama.*` metadata. `tie_word_embeddings` is false
    /// even for a file without `output.weight`: `lm_head` is then a quantized layer over the
    /// embedding table's own blocks, as llama.cpp computes it.
    pub config: LlamaConfig,
    /// The tokenizer built from `tokenizer.ggml.*` and what the file says about special tokens.
    pub vocab: GgufVocab,
    /// `tokenizer.chat_template`, kept as written.
    pub chat_template: Option<String>,
    /// `general.name`, if set.
    pub name: Option<String>,
    /// Whether the file has no `output.weight` (the head reuses the embedding table).
    pub tied_embeddings: bool,
}

pub(super) fn gguf_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Model { path: path.to_path_buf(), reason: reason.into() }
}

/// The GGUF name of a Hugging Face parameter name of `LlamaForCausalLM`.
pub(super) fn gguf_name(hf: &str, tied: bool) -> Option<String> {
    let fixed = match hf {
        "model.embed_tokens.weight" => Some("token_embd.weight"),
        "model.norm.weight" => Some("output_norm.weight"),
        "lm_head.weight" => Some(if tied { "token_embd.weight" } else { "output.weight" }),
        _ => None,
    };
    if let Some(n) = fixed {
        return Some(n.to_string());
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (layer, name) = rest.split_once('.')?;
    let part = match name {
        "self_attn.q_proj.weight" => "attn_q.weight",
        "self_attn.k_proj.weight" => "attn_k.weight",
        "self_attn.v_proj.weight" => "attn_v.weight",
        "self_attn.o_proj.weight" => "attn_output.weight",
        "mlp.gate_proj.weight" => "ffn_gate.weight",
        "mlp.up_proj.weight" => "ffn_up.weight",
        "mlp.down_proj.weight" => "ffn_down.weight",
        "input_layernorm.weight" => "attn_norm.weight",
        "post_attention_layernorm.weight" => "ffn_norm.weight",
        _ => return None,
    };
    Some(format!("blk.{layer}.{part}"))
}

/// Reads tensors from the file on demand: dense (dequantized) for norms and the embedding,
/// and a storage-free placeholder for the linear weights, which are put in afterwards still
/// quantized.
struct Backend {
    content: Content,
    reader: Mutex<BufReader<File>>,
    tied: bool,
}

impl Backend {
    fn info(&self, hf: &str) -> candle_core::Result<(String, &candle_core::quantized::gguf_file::TensorInfo)> {
        let name = gguf_name(hf, self.tied).ok_or_else(|| candle_core::Error::CannotFindTensor { path: hf.to_string() })?;
        let info = self.content.tensor_infos.get(&name).ok_or_else(|| candle_core::Error::CannotFindTensor { path: name.clone() })?;
        Ok((name, info))
    }

    /// Tensor `name` of the file, on the CPU.
    fn read(&self, name: &str) -> candle_core::Result<QTensor> {
        let mut r = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        self.content.tensor(&mut *r, name, &Device::Cpu)
    }

    fn is_linear(hf: &str) -> bool {
        hf.ends_with("_proj.weight") || hf == "lm_head.weight"
    }
}

impl SimpleBackend for Backend {
    fn get(&self, s: Shape, hf: &str, _: candle_nn::Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let (name, info) = self.info(hf)?;
        if info.shape.dims() != s.dims() {
            candle_core::bail!("tensor `{name}` has shape {:?}, the config asks for {:?}", info.shape.dims(), s.dims());
        }
        if Self::is_linear(hf) {
            return Tensor::zeros((), dtype, dev)?.broadcast_as(s);
        }
        self.read(&name)?.dequantize(&Device::Cpu)?.to_dtype(dtype)?.to_device(dev)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("a GGUF tensor is read with its shape, `{name}` was asked for without one")
    }

    fn contains_tensor(&self, hf: &str) -> bool {
        self.info(hf).is_ok()
    }
}

/// The rows of a `(heads · head_dim, in)` GGUF weight put back in Hugging Face's order.
/// llama.cpp's converter interleaves each head's two rotary halves (`permute` in
/// `convert_hf_to_gguf.py`): row `2i + j` of a head holds Hugging Face's row `j · d/2 + i`.
/// Rows are whole quantization blocks, so they move as bytes without requantizing.
fn unpermute(q: &QTensor, heads: usize, device: &Device) -> crate::Result<QTensor> {
    let (rows, data) = (q.shape().dims()[0], q.data()?);
    if heads == 0 || rows % heads != 0 || (rows / heads) % 2 != 0 || data.len() % rows != 0 {
        return Err(Error::Quant(format!("cannot split {rows} rows into {heads} rotary heads")));
    }
    let (d, row_bytes) = (rows / heads, data.len() / rows);
    let mut out = vec![0u8; data.len()];
    for h in 0..heads {
        for i in 0..d / 2 {
            for j in 0..2 {
                let (src, dst) = (h * d + 2 * i + j, h * d + j * d / 2 + i);
                out[dst * row_bytes..(dst + 1) * row_bytes].copy_from_slice(&data[src * row_bytes..(src + 1) * row_bytes]);
            }
        }
    }
    let storage = QStorage::from_data(Cow::Owned(out), device, q.dtype())?;
    Ok(QTensor::new(storage, q.shape().clone())?)
}

fn meta<'a>(c: &'a Content, path: &Path, key: &str) -> crate::Result<&'a Value> {
    c.metadata.get(key).ok_or_else(|| gguf_err(path, format!("missing metadata `{key}`")))
}

fn meta_usize(c: &Content, path: &Path, key: &str) -> crate::Result<usize> {
    let v = meta(c, path, key)?;
    v.to_u64()
        .or_else(|_| v.to_u32().map(u64::from))
        .or_else(|_| v.to_i32().map(|x| x.max(0) as u64))
        .map(|x| x as usize)
        .map_err(|_| gguf_err(path, format!("metadata `{key}` is not a whole number")))
}

fn meta_f64(c: &Content, path: &Path, key: &str, default: f64) -> crate::Result<f64> {
    match c.metadata.get(key) {
        None => Ok(default),
        Some(v) => v.to_f32().map(f64::from).or_else(|_| v.to_f64()).map_err(|_| gguf_err(path, format!("metadata `{key}` is not a number"))),
    }
}

/// The Llama configuration the `llama.*` metadata describes.
fn config_of(c: &Content, path: &Path, vocab: usize) -> crate::Result<LlamaConfig> {
    let heads = meta_usize(c, path, "llama.attention.head_count")?;
    let hidden = meta_usize(c, path, "llama.embedding_length")?;
    let cfg = LlamaConfig {
        vocab_size: vocab,
        hidden_size: hidden,
        intermediate_size: meta_usize(c, path, "llama.feed_forward_length")?,
        num_hidden_layers: meta_usize(c, path, "llama.block_count")?,
        num_attention_heads: heads,
        num_key_value_heads: Some(if c.metadata.contains_key("llama.attention.head_count_kv") {
            meta_usize(c, path, "llama.attention.head_count_kv")?
        } else {
            heads
        }),
        head_dim: if c.metadata.contains_key("llama.attention.key_length") { Some(meta_usize(c, path, "llama.attention.key_length")?) } else { None },
        max_position_embeddings: meta_usize(c, path, "llama.context_length")?,
        // GGUF stores the epsilon as an f32; transformers reads it back the same way.
        rms_norm_eps: meta_f64(c, path, "llama.attention.layer_norm_rms_epsilon", 1e-5)?,
        rope_theta: meta_f64(c, path, "llama.rope.freq_base", 10_000.0)?,
        tie_word_embeddings: false,
        ..LlamaConfig::default()
    };
    if c.metadata.contains_key("llama.rope.scaling.type") {
        return Err(gguf_err(path, "metadata `llama.rope.scaling.type`: RoPE scaling in GGUF files is not supported yet"));
    }
    cfg.validate().map_err(|e| gguf_err(path, e.to_string()))?;
    if let Ok(rot) = meta_usize(c, path, "llama.rope.dimension_count") {
        if rot != cfg.head_dim() {
            return Err(gguf_err(
                path,
                format!("metadata `llama.rope.dimension_count` {rot} differs from the head width {} (partial RoPE is not supported)", cfg.head_dim()),
            ));
        }
    }
    Ok(cfg)
}

/// The Llama a GGUF file describes, from its header alone: every parameter a zero broadcast to
/// its shape (no storage), for listing a checkpoint's modules at any size, for free.
///
/// # Errors
/// As [`load_gguf`] for the header.
pub fn load_gguf_shapes(path: &Path) -> crate::Result<Llama> {
    files::regular_file(path, files::MAX_WEIGHTS_BYTES)?;
    let file = File::open(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    let content =
        Content::read(&mut BufReader::new(file)).map_err(|e| gguf_err(path, format!("not a readable GGUF file: {}", crate::innermost_message(&e))))?;
    let arch =
        meta(&content, path, "general.architecture")?.to_string().map_err(|_| gguf_err(path, "metadata `general.architecture` is not a string"))?.clone();
    if arch != "llama" {
        return Err(gguf_err(path, format!("general.architecture `{arch}` is not supported (supported: llama)")));
    }
    let vocab = tokenizer_from_gguf(&content, path)?;
    let cfg = config_of(&content, path, vocab.size)?;
    Llama::new(&cfg, crate::init::MetaInit::var_builder(DType::F32, &Device::Cpu))
}

/// Reads a GGUF file of the Llama architecture: metadata, tokenizer, and the model with its
/// linear weights kept in the file's quantized formats (norms and the embedding table
/// dequantized to f32) on `device`.
///
/// # Errors
/// Each as one line naming the file: not a GGUF file (wrong magic), truncated, a tensor type
/// this build cannot read, another architecture, missing metadata or tensors, or shapes that
/// disagree with the metadata.
pub fn load_gguf(path: &Path, device: &Device) -> crate::Result<GgufModel> {
    files::regular_file(path, files::MAX_WEIGHTS_BYTES)?;
    let file = File::open(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    let mut reader = BufReader::new(file);
    let content = Content::read(&mut reader).map_err(|e| gguf_err(path, format!("not a readable GGUF file: {}", crate::innermost_message(&e))))?;
    let arch =
        meta(&content, path, "general.architecture")?.to_string().map_err(|_| gguf_err(path, "metadata `general.architecture` is not a string"))?.clone();
    if arch != "llama" {
        return Err(gguf_err(path, format!("general.architecture `{arch}` is not supported (supported: llama)")));
    }
    let vocab = tokenizer_from_gguf(&content, path)?;
    let chat_template = content.metadata.get("tokenizer.chat_template").and_then(|v| v.to_string().ok()).cloned();
    let name = content.metadata.get("general.name").and_then(|v| v.to_string().ok()).cloned();
    let cfg = config_of(&content, path, vocab.size)?;
    let tied = !content.tensor_infos.contains_key("output.weight");
    let backend = Backend { content, reader: Mutex::new(reader), tied };
    let in_file = |e: Error| match e {
        Error::MissingTensor { name } => gguf_err(path, format!("missing tensor `{name}`")),
        Error::Candle(e) => gguf_err(path, crate::innermost_message(&e)),
        e => e,
    };
    let vb = VarBuilder::from_backend(Box::new(backend), DType::F32, device.clone());
    let model = Llama::new(&cfg, vb.clone()).map_err(in_file)?;
    // Put the quantized weights into the linear layers, in the file's own formats.
    let backend = Backend::reopen(path, tied)?;
    for (layer, l) in linears(&model) {
        let hf = format!("{layer}.weight");
        let (gname, _) = backend.info(&hf).map_err(|e| in_file(e.into()))?;
        let mut q = backend.read(&gname).map_err(|e| in_file(e.into()))?;
        if hf.ends_with("q_proj.weight") {
            q = unpermute(&q, cfg.num_attention_heads, &Device::Cpu).map_err(|e| gguf_err(path, format!("`{gname}`: {e}")))?;
        } else if hf.ends_with("k_proj.weight") {
            q = unpermute(&q, cfg.kv_heads(), &Device::Cpu).map_err(|e| gguf_err(path, format!("`{gname}`: {e}")))?;
        }
        let weight = match q.dtype() {
            GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16 => LinearWeight::Dense(q.dequantize(device)?),
            _ => {
                let q = if device.is_cpu() { q } else { QTensor::new(QStorage::from_data(q.data()?, device, q.dtype())?, q.shape().clone())? };
                LinearWeight::Quantized(QuantizedWeight::from_qtensor(q)?)
            }
        };
        l.set_weight(weight).map_err(|e| gguf_err(path, format!("`{gname}`: {e}")))?;
    }
    Ok(GgufModel { model, config: cfg, vocab, chat_template, name, tied_embeddings: tied })
}

impl Backend {
    /// A second reader over the same file for the quantized pass (the first went into the
    /// model's var builder).
    fn reopen(path: &Path, tied: bool) -> crate::Result<Self> {
        let file = File::open(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        let mut reader = BufReader::new(file);
        let content = Content::read(&mut reader).map_err(|e| gguf_err(path, crate::innermost_message(&e)))?;
        Ok(Self { content, reader: Mutex::new(reader), tied })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hugging_face_names_map_to_gguf_names() {
        assert_eq!(gguf_name("model.layers.3.self_attn.o_proj.weight", false).unwrap(), "blk.3.attn_output.weight");
        assert_eq!(gguf_name("model.layers.12.mlp.down_proj.weight", false).unwrap(), "blk.12.ffn_down.weight");
        assert_eq!(gguf_name("model.layers.0.post_attention_layernorm.weight", false).unwrap(), "blk.0.ffn_norm.weight");
        assert_eq!(gguf_name("lm_head.weight", true).unwrap(), "token_embd.weight");
        assert_eq!(gguf_name("lm_head.weight", false).unwrap(), "output.weight");
        assert_eq!(gguf_name("model.layers.0.self_attn.rotary.weight", false), None);
        assert_eq!(gguf_name("something", false), None);
    }

    #[test]
    fn unpermuting_restores_the_rotate_half_row_order() {
        // Two heads of width 4, one f32 per row (its row index in Hugging Face order), permuted
        // as llama.cpp does: GGUF row 2i + j of a head holds HF row j·2 + i.
        let hf: Vec<f32> = (0..8).map(|r| r as f32).collect();
        let gguf: Vec<f32> = (0..2).flat_map(|h| (0..2).flat_map(move |i| (0..2).map(move |j| (h * 4 + j * 2 + i) as f32))).collect();
        assert_eq!(gguf, vec![0.0, 2.0, 1.0, 3.0, 4.0, 6.0, 5.0, 7.0]);
        let t = Tensor::from_vec(gguf, (8, 1), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&t, GgmlDType::F32).unwrap();
        let back = unpermute(&q, 2, &Device::Cpu).unwrap().dequantize(&Device::Cpu).unwrap();
        assert_eq!(back.flatten_all().unwrap().to_vec1::<f32>().unwrap(), hf);
        assert!(unpermute(&q, 3, &Device::Cpu).is_err());
    }
}
