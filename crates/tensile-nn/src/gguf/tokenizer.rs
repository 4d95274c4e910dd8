//! The tokenizer a GGUF file describes (`tokenizer.ggml.*`), built as a `tokenizers`
//! tokenizer: byte-level BPE from the vocabulary and merges, the pre-tokenizer llama.cpp
//! applies for the file's `tokenizer.ggml.pre`, and control tokens as special tokens.

use super::model::gguf_err;
use candle_core::quantized::gguf_file::{Content, Value};
use serde_json::json;
use std::path::Path;
use tokenizers::Tokenizer;

/// A GGUF file's tokenizer and its special-token facts.
pub struct GgufVocab {
    /// The tokenizer.
    pub tokenizer: Tokenizer,
    /// Vocabulary size.
    pub size: usize,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`: whether a prompt starts with BOS.
    pub add_bos: bool,
}

impl GgufVocab {
    /// The ids of `text`, with BOS first when the file asks for it. Special-token strings in
    /// the text (`<|im_start|>`) become their ids, as llama.cpp and transformers parse them.
    pub fn encode(&self, text: &str) -> crate::Result<Vec<u32>> {
        let enc = self.tokenizer.encode(text, false).map_err(|e| crate::Error::Tokenizer(e.to_string()))?;
        let mut ids = Vec::with_capacity(enc.len() + 1);
        if let (true, Some(b)) = (self.add_bos, self.bos) {
            ids.push(b);
        }
        ids.extend_from_slice(enc.get_ids());
        Ok(ids)
    }

    /// The text of `ids`, special tokens included as written.
    pub fn decode(&self, ids: &[u32]) -> crate::Result<String> {
        self.tokenizer.decode(ids, false).map_err(|e| crate::Error::Tokenizer(e.to_string()))
    }
}

fn strings(c: &Content, path: &Path, key: &str) -> crate::Result<Vec<String>> {
    let v = c.metadata.get(key).ok_or_else(|| gguf_err(path, format!("missing metadata `{key}`")))?;
    let arr = v.to_vec().map_err(|_| gguf_err(path, format!("metadata `{key}` is not an array")))?;
    arr.iter().map(|s| s.to_string().cloned().map_err(|_| gguf_err(path, format!("metadata `{key}` holds a non-string")))).collect()
}

fn id(c: &Content, key: &str) -> Option<u32> {
    c.metadata.get(key).and_then(|v| v.to_u32().ok().or_else(|| v.to_i32().ok().map(|x| x as u32)))
}

/// GPT-2's byte-level split, and llama.cpp's pre-tokenizers by `tokenizer.ggml.pre`: which
/// split runs before the byte-level mapping.
fn pre_tokenizer(pre: &str, path: &Path) -> crate::Result<serde_json::Value> {
    let byte_level = |use_regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex});
    Ok(match pre {
        "default" | "gpt-2" | "gpt2" => byte_level(true),
        // llama.cpp splits digits one by one before GPT-2's regex for these (SmolLM2's own
        // tokenizer.json does the same with a `Digits` pre-tokenizer).
        "smollm" | "starcoder" | "refact" => json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true}, byte_level(true)]}),
        // Llama 3's split: numbers in groups of up to three, then bytes without GPT-2's regex.
        "llama-bpe" | "llama3" => json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"},
             "behavior": "Isolated", "invert": false},
            byte_level(false)]}),
        other => {
            return Err(gguf_err(
                path,
                format!("tokenizer.ggml.pre `{other}` is not supported (supported: default, gpt2, smollm, starcoder, refact, llama-bpe)"),
            ))
        }
    })
}

/// The tokenizer of a GGUF file whose `tokenizer.ggml.model` is `gpt2` (byte-level BPE).
pub(super) fn tokenizer_from_gguf(c: &Content, path: &Path) -> crate::Result<GgufVocab> {
    let model = c.metadata.get("tokenizer.ggml.model").and_then(|v| v.to_string().ok()).map(String::as_str).unwrap_or("");
    if model != "gpt2" {
        return Err(gguf_err(path, format!("tokenizer.ggml.model `{model}` is not supported (supported: gpt2, byte-level BPE)")));
    }
    let tokens = strings(c, path, "tokenizer.ggml.tokens")?;
    let merges = strings(c, path, "tokenizer.ggml.merges")?;
    let types: Vec<i64> = match c.metadata.get("tokenizer.ggml.token_type") {
        Some(Value::Array(a)) => a.iter().map(|v| v.to_i32().map(i64::from).unwrap_or(1)).collect(),
        _ => vec![1; tokens.len()],
    };
    let pre = c.metadata.get("tokenizer.ggml.pre").and_then(|v| v.to_string().ok()).map_or("default", String::as_str);
    let vocab: serde_json::Map<String, serde_json::Value> = tokens.iter().enumerate().map(|(i, t)| (t.clone(), json!(i))).collect();
    let merges: Vec<serde_json::Value> = merges
        .iter()
        .map(|m| m.split_once(' ').map(|(a, b)| json!([a, b])).ok_or_else(|| gguf_err(path, format!("merge `{m}` is not two tokens"))))
        .collect::<crate::Result<_>>()?;
    // Control (3) and user-defined (4) tokens are matched whole, before the BPE model.
    let added: Vec<serde_json::Value> = tokens
        .iter()
        .enumerate()
        .filter(|(i, _)| matches!(types.get(*i), Some(3 | 4)))
        .map(|(i, t)| json!({"id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": types[i] == 3}))
        .collect();
    let spec = json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added, "normalizer": null,
        "pre_tokenizer": pre_tokenizer(pre, path)?, "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null, "end_of_word_suffix": null,
                  "fuse_unk": false, "byte_fallback": false, "ignore_merges": false, "vocab": vocab, "merges": merges},
    });
    let bytes = serde_json::to_vec(&spec).map_err(|e| gguf_err(path, e.to_string()))?;
    let tokenizer = Tokenizer::from_bytes(bytes).map_err(|e| gguf_err(path, format!("the tokenizer it describes does not build: {e}")))?;
    let add_bos = c.metadata.get("tokenizer.ggml.add_bos_token").and_then(|v| v.to_bool().ok()).unwrap_or(false);
    Ok(GgufVocab { tokenizer, size: tokens.len(), bos: id(c, "tokenizer.ggml.bos_token_id"), eos: id(c, "tokenizer.ggml.eos_token_id"), add_bos })
}
