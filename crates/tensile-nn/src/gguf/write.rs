//! Writing a [`Llama`] as a GGUF file in a GGUF block format, laid out as llama.cpp's
//! converter lays it out (Q/K rows interleaved per rotary head), so that llama.cpp,
//! transformers' GGUF loader and [`super::load_gguf`] all read it back.

use crate::error::Error;
use crate::llama::Llama;
use crate::quant::QuantFormat;
use crate::Block;
use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use std::path::Path;

/// The tokenizer fields written into a GGUF file (`tokenizer.ggml.*`).
#[derive(Debug, Clone)]
pub struct GgufVocabSpec {
    /// Tokens by id, in byte-level form (`Ġ` for a space).
    pub tokens: Vec<String>,
    /// Merges, `"a b"` each.
    pub merges: Vec<String>,
    /// Token types: 1 normal, 3 control.
    pub token_types: Vec<i32>,
    /// Beginning- and end-of-sequence ids.
    pub bos: Option<u32>,
    /// End-of-sequence id.
    pub eos: Option<u32>,
    /// llama.cpp's pre-tokenizer name.
    pub pre: String,
}

impl GgufVocabSpec {
    /// A byte-level vocabulary of `size` tokens without merges: the 256 bytes in GPT-2's
    /// printable mapping, then control tokens `<|ctl_N|>` (the first two are BOS and EOS).
    /// Any text encodes with it, a byte per token: enough for a model trained on anything.
    pub fn byte_level(size: usize) -> crate::Result<Self> {
        if size < 258 {
            return Err(Error::Quant(format!("a byte-level vocabulary needs at least 258 tokens (256 bytes, BOS, EOS), the model has {size}")));
        }
        let mut tokens: Vec<String> = (0u8..=255).map(byte_char).map(String::from).collect();
        tokens.extend((256..size).map(|i| format!("<|ctl_{}|>", i - 256)));
        let token_types = (0..size).map(|i| if i < 256 { 1 } else { 3 }).collect();
        Ok(Self { tokens, merges: Vec::new(), token_types, bos: Some(256), eos: Some(257), pre: "default".into() })
    }
}

/// GPT-2's printable stand-in for byte `b` (`bytes_to_unicode`): printable Latin-1 bytes map
/// to themselves, the rest to code points from 256 up, in byte order.
pub fn byte_char(b: u8) -> char {
    let printable = |c: u8| (b'!'..=b'~').contains(&c) || (0xA1..=0xAC).contains(&c) || (0xAE..=0xFF).contains(&c);
    if printable(b) {
        return char::from(b);
    }
    let n = (0..b).filter(|&c| !printable(c)).count() as u32;
    char::from_u32(256 + n).expect("code points from 256 to 323 are characters")
}

/// The rows of an `(heads · d, in)` weight interleaved as llama.cpp's converter does:
/// row `2i + j` of a head takes Hugging Face's row `j · d/2 + i`.
fn permute(w: &Tensor, heads: usize) -> crate::Result<Tensor> {
    let (rows, cols) = w.dims2()?;
    let d = rows / heads;
    Ok(w.reshape((heads, 2, d / 2, cols))?.transpose(1, 2)?.reshape((rows, cols))?.contiguous()?)
}

/// Writes `model` with its vocabulary to `path` atomically: norms in f32, every matrix
/// (embedding, projections, the head unless tied) quantized in `format`, which must be a GGUF
/// block format whose block divides every row.
pub fn save_gguf(model: &Llama, vocab: &GgufVocabSpec, format: QuantFormat, name: &str, path: &Path) -> crate::Result<()> {
    let QuantFormat::Ggml(dtype) = format else {
        return Err(Error::Quant(format!("{format} is not a GGUF format")));
    };
    let cfg = model.config();
    if vocab.tokens.len() != cfg.vocab_size || vocab.token_types.len() != cfg.vocab_size {
        return Err(Error::Quant(format!("the vocabulary has {} tokens, the model {}", vocab.tokens.len(), cfg.vocab_size)));
    }
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    for (hf, t) in model.parameters() {
        let Some(gname) = super::model::gguf_name(&hf, false) else { continue };
        let t = t.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
        let t = if hf.ends_with("q_proj.weight") {
            permute(&t, cfg.num_attention_heads)?
        } else if hf.ends_with("k_proj.weight") {
            permute(&t, cfg.kv_heads())?
        } else {
            t
        };
        let q = if t.rank() == 1 { QTensor::quantize(&t, GgmlDType::F32)? } else { QTensor::quantize(&t.contiguous()?, dtype)? };
        tensors.push((gname, q));
    }
    let u32v = |v: usize| Value::U32(v as u32);
    let strings = |v: &[String]| Value::Array(v.iter().cloned().map(Value::String).collect());
    let mut meta: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String("llama".into())),
        ("general.name", Value::String(name.into())),
        ("llama.block_count", u32v(cfg.num_hidden_layers)),
        ("llama.context_length", u32v(cfg.max_position_embeddings)),
        ("llama.embedding_length", u32v(cfg.hidden_size)),
        ("llama.feed_forward_length", u32v(cfg.intermediate_size)),
        ("llama.attention.head_count", u32v(cfg.num_attention_heads)),
        ("llama.attention.head_count_kv", u32v(cfg.kv_heads())),
        ("llama.rope.freq_base", Value::F32(cfg.rope()?.0 as f32)),
        ("llama.rope.dimension_count", u32v(cfg.head_dim())),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(cfg.rms_norm_eps as f32)),
        ("llama.vocab_size", u32v(cfg.vocab_size)),
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        ("tokenizer.ggml.pre", Value::String(vocab.pre.clone())),
        ("tokenizer.ggml.tokens", strings(&vocab.tokens)),
        ("tokenizer.ggml.merges", strings(&vocab.merges)),
        ("tokenizer.ggml.token_type", Value::Array(vocab.token_types.iter().map(|&t| Value::I32(t)).collect())),
        ("tokenizer.ggml.add_bos_token", Value::Bool(false)),
    ];
    meta.extend(vocab.bos.map(|b| ("tokenizer.ggml.bos_token_id", Value::U32(b))));
    meta.extend(vocab.eos.map(|e| ("tokenizer.ggml.eos_token_id", Value::U32(e))));
    let meta_refs: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (*k, v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut bytes = std::io::Cursor::new(Vec::new());
    candle_core::quantized::gguf_file::write(&mut bytes, &meta_refs, &tensor_refs)?;
    crate::files::write_atomic(path, bytes.into_inner()).map_err(|source| Error::Io { path: path.to_path_buf(), source })
}
