//! A tiny sentence-transformers BERT directory written from seeded weights, for tests that
//! need a model on disk without downloading one (`embed` in tensile-cli includes this file
//! too). Each test may edit a weight or a file before or after it is written.

#![allow(dead_code)]

use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::Path;
use tensile_nn::bert::{Bert, BertConfig};
use tensile_nn::init::SeededInit;
use tensile_nn::Block;

/// The vocabulary: ids 0..6.
pub const WORDS: [&str; 6] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", "world"];
/// `hidden_size`.
pub const HIDDEN: usize = 8;

/// `config.json`.
pub fn config() -> serde_json::Value {
    serde_json::json!({
        "model_type": "bert", "hidden_size": HIDDEN, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 16, "vocab_size": WORDS.len(), "max_position_embeddings": 16, "type_vocab_size": 2,
        "hidden_act": "gelu", "layer_norm_eps": 1e-12, "pad_token_id": 0
    })
}

fn write_json(path: &Path, v: &serde_json::Value) {
    std::fs::write(path, v.to_string()).unwrap();
}

/// Writes the model into `dir`; `edit` may change any weight (by its checkpoint name, e.g.
/// `embeddings.LayerNorm.weight`) before the weights are saved.
pub fn write(dir: &Path, edit: impl FnOnce(&mut HashMap<String, Tensor>)) {
    let cfg: BertConfig = serde_json::from_value(config()).unwrap();
    let bert = Bert::new(&cfg, false, SeededInit::var_builder(7, DType::F32, &Device::Cpu)).unwrap();
    let mut weights: HashMap<String, Tensor> = bert.parameters().into_iter().collect();
    edit(&mut weights);
    candle_core::safetensors::save(&weights, dir.join("model.safetensors")).unwrap();
    write_json(&dir.join("config.json"), &config());
    write_json(
        &dir.join("modules.json"),
        &serde_json::json!([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
        ]),
    );
    std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
    write_json(&dir.join("1_Pooling/config.json"), &serde_json::json!({"word_embedding_dimension": HIDDEN, "pooling_mode_mean_tokens": true}));
    write_json(&dir.join("sentence_bert_config.json"), &serde_json::json!({"max_seq_length": 16}));
    let vocab: serde_json::Map<String, serde_json::Value> = WORDS.iter().enumerate().map(|(i, w)| (w.to_string(), i.into())).collect();
    write_json(
        &dir.join("tokenizer.json"),
        &serde_json::json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null,
            "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null, "decoder": null,
            "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
        }),
    );
}

/// Replaces one field of the JSON file `dir/file` (written by [`write`]).
pub fn set(dir: &Path, file: &str, field: &str, value: serde_json::Value) {
    let path = dir.join(file);
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v[field] = value;
    write_json(&path, &v);
}

/// Every weight named `name` set to NaN.
pub fn poison(weights: &mut HashMap<String, Tensor>, name: &str) {
    let w = &weights[name];
    let nan = Tensor::full(f32::NAN, w.dims(), &Device::Cpu).unwrap();
    weights.insert(name.to_string(), nan);
}
