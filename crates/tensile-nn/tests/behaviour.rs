//! Behaviour that the twins alone cannot show: KV-cache decoding, causality, padding,
//! grouped-query semantics, configs from real `config.json` files and load errors.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use std::collections::HashMap;
use tensile_nn::bert::{BertConfig, BertLayer};
use tensile_nn::init::{randn, random_ids, SeededInit};
use tensile_nn::llama::{Llama, LlamaConfig, LlamaDecoderLayer};
use tensile_nn::{Attention, AttentionConfig, Block, Error, KvCache};

mod common;

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    let a = a.to_dtype(DType::F64).unwrap();
    let b = b.to_dtype(DType::F64).unwrap();
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f64>().unwrap()
}

fn llama_cfg() -> LlamaConfig {
    LlamaConfig {
        vocab_size: 50,
        hidden_size: 64,
        intermediate_size: 96,
        num_hidden_layers: 2,
        num_attention_heads: 8,
        num_key_value_heads: Some(2),
        ..LlamaConfig::default()
    }
}

fn kv_cache_decoding_matches_full_forward(dev: &Device) {
    let attn = Attention::new(&llama_cfg().attention_config(), SeededInit::var_builder(1, DType::F32, dev)).unwrap();
    let x = randn(2, "x", (2, 7, 64), DType::F32, dev).unwrap();
    let full = attn.forward(&x).unwrap();
    // Prefill three positions, then decode the rest one at a time.
    let mut cache = KvCache::new();
    let mut parts = vec![attn.forward_with(&x.narrow(1, 0, 3).unwrap(), None, Some(&mut cache)).unwrap()];
    for i in 3..7 {
        parts.push(attn.forward_with(&x.narrow(1, i, 1).unwrap(), None, Some(&mut cache)).unwrap());
    }
    assert_eq!(cache.len(), 7);
    let incremental = Tensor::cat(&parts, 1).unwrap();
    assert!(max_diff(&full, &incremental) < 1e-5, "{}", max_diff(&full, &incremental));

    let model = Llama::new(&llama_cfg(), SeededInit::var_builder(3, DType::F32, dev)).unwrap();
    let ids = random_ids(4, "ids", (1, 6), 50, dev).unwrap();
    let full = model.forward(&ids).unwrap();
    let mut caches = vec![KvCache::new(), KvCache::new()];
    let mut steps = Vec::new();
    for i in 0..6 {
        steps.push(model.forward_with(&ids.narrow(1, i, 1).unwrap(), Some(&mut caches)).unwrap());
    }
    assert!(max_diff(&full, &Tensor::cat(&steps, 1).unwrap()) < 1e-4);
}

/// Feeds `x (batch, 7, hidden)` through `step` in chunks of 3, 2, 1 and 1 positions, each
/// chunk after a non-empty cache from the second on (chunked prefill, then decoding), and
/// returns the concatenated outputs.
fn in_chunks(x: &Tensor, mut step: impl FnMut(&Tensor) -> Tensor) -> Tensor {
    let mut parts = Vec::new();
    let mut start = 0;
    for len in [3, 2, 1, 1] {
        parts.push(step(&x.narrow(1, start, len).unwrap()));
        start += len;
    }
    assert_eq!(start, x.dim(1).unwrap());
    Tensor::cat(&parts, 1).unwrap()
}

fn chunked_prefill_after_a_cache_matches_full_forward(dev: &Device) {
    // Several new positions after a non-empty cache need the causal mask shifted by the
    // cache length: position `offset + i` sees keys `0..=offset + i`. One-token decode steps
    // cannot show a wrong offset (a single query sees every key), so the chunks here are longer.
    for (heads, kv_heads, what) in [(8, 8, "mha"), (8, 2, "gqa"), (8, 1, "mqa")] {
        let cfg = LlamaConfig { num_attention_heads: heads, num_key_value_heads: Some(kv_heads), ..llama_cfg() };
        let x = randn(2, "x", (2, 7, 64), DType::F32, dev).unwrap();

        let attn = Attention::new(&cfg.attention_config(), SeededInit::var_builder(1, DType::F32, dev)).unwrap();
        let mut cache = KvCache::new();
        assert!(cache.is_empty());
        assert_eq!(cache.len(), 0);
        let chunked = in_chunks(&x, |c| attn.forward_with(c, None, Some(&mut cache)).unwrap());
        assert!(!cache.is_empty() && cache.len() == 7);
        let d = max_diff(&attn.forward(&x).unwrap(), &chunked);
        assert!(d < 1e-5, "{what} attention: chunked prefill differs by {d}");

        let layer = LlamaDecoderLayer::new(&cfg, SeededInit::var_builder(2, DType::F32, dev)).unwrap();
        let mut cache = KvCache::new();
        let chunked = in_chunks(&x, |c| layer.forward_with(c, Some(&mut cache)).unwrap());
        let d = max_diff(&layer.forward(&x).unwrap(), &chunked);
        assert!(d < 1e-5, "{what} decoder layer: chunked prefill differs by {d}");

        let model = Llama::new(&cfg, SeededInit::var_builder(3, DType::F32, dev)).unwrap();
        let ids = random_ids(4, "ids", (2, 7), 50, dev).unwrap();
        let mut caches = vec![KvCache::new(); cfg.num_hidden_layers];
        let chunked = in_chunks(&ids, |c| model.forward_with(c, Some(&mut caches)).unwrap());
        assert!(caches.iter().all(|c| c.len() == 7));
        let d = max_diff(&model.forward(&ids).unwrap(), &chunked);
        assert!(d < 1e-4, "{what} model: chunked prefill differs by {d}");
    }
}

fn causal_outputs_ignore_the_future(dev: &Device) {
    let attn = Attention::new(&llama_cfg().attention_config(), SeededInit::var_builder(1, DType::F32, dev)).unwrap();
    let x = randn(2, "x", (1, 6, 64), DType::F32, dev).unwrap();
    let y = randn(3, "y", (1, 2, 64), DType::F32, dev).unwrap();
    let changed = Tensor::cat(&[&x.narrow(1, 0, 4).unwrap(), &y], 1).unwrap();
    let (a, b) = (attn.forward(&x).unwrap(), attn.forward(&changed).unwrap());
    assert!(max_diff(&a.narrow(1, 0, 4).unwrap(), &b.narrow(1, 0, 4).unwrap()) < 1e-6);
    // …while the changed positions do change, so the test would catch a non-causal mask.
    assert!(max_diff(&a.narrow(1, 4, 2).unwrap(), &b.narrow(1, 4, 2).unwrap()) > 1e-3);
}

fn padding_is_invisible_to_real_tokens(dev: &Device) {
    let cfg = BertConfig { hidden_size: 64, num_attention_heads: 4, intermediate_size: 128, ..BertConfig::default() };
    let layer = BertLayer::new(&cfg, SeededInit::var_builder(5, DType::F32, dev)).unwrap();
    let x = randn(6, "x", (1, 7, 64), DType::F32, dev).unwrap();
    let mask = Tensor::new(&[[1u32, 1, 1, 1, 1, 0, 0]], dev).unwrap();
    let padded = layer.forward_with(&x, Some(&mask)).unwrap().narrow(1, 0, 5).unwrap();
    let short = layer.forward(&x.narrow(1, 0, 5).unwrap()).unwrap();
    assert!(max_diff(&padded, &short) < 1e-5);
    let reference = layer.forward_reference_with(&x, Some(&mask)).unwrap().narrow(1, 0, 5).unwrap();
    assert!(max_diff(&reference, &short) < 1e-5);
    // Without the mask the padding leaks into real tokens.
    let unmasked = layer.forward(&x).unwrap().narrow(1, 0, 5).unwrap();
    assert!(max_diff(&unmasked, &short) > 1e-3);
}

fn grouped_query_equals_repeated_heads(dev: &Device) {
    // A GQA block (8 query heads over 2 K/V heads) equals an MHA block whose K/V weights
    // repeat each K/V head for its 4 query heads, as transformers' repeat_kv does.
    let gqa_cfg = llama_cfg().attention_config();
    let mha_cfg = AttentionConfig { num_key_value_heads: 8, ..gqa_cfg.clone() };
    let mut weights = HashMap::new();
    for name in ["q_proj", "o_proj", "k_proj", "v_proj"] {
        let rows = if name.starts_with('q') || name.starts_with('o') { 64 } else { 16 };
        // Scaled by 1/√fan_in so activations stay O(1) and an absolute bound means something.
        weights.insert(format!("{name}.weight"), (randn(7, name, (rows, 64), DType::F32, dev).unwrap() * 0.125).unwrap());
    }
    let gqa = Attention::new(&gqa_cfg, VarBuilder::from_tensors(weights.clone(), DType::F32, dev)).unwrap();
    for name in ["k_proj", "v_proj"] {
        let w = weights[&format!("{name}.weight")].reshape((2, 1, 8, 64)).unwrap();
        let repeated = w.broadcast_as((2, 4, 8, 64)).unwrap().reshape((64, 64)).unwrap();
        weights.insert(format!("{name}.weight"), repeated);
    }
    let mha = Attention::new(&mha_cfg, VarBuilder::from_tensors(weights, DType::F32, dev)).unwrap();
    let x = randn(8, "x", (2, 5, 64), DType::F32, dev).unwrap();
    let d = max_diff(&gqa.forward(&x).unwrap(), &mha.forward(&x).unwrap());
    let dr = max_diff(&gqa.forward_reference(&x).unwrap(), &mha.forward_reference(&x).unwrap());
    assert!(d < 1e-5, "fast {d} reference {dr}");
    // The twins compute in float64 and must agree to its precision, not just the fast paths.
    assert!(dr < 1e-12, "reference {dr}");
}

fn attention_rows_are_convex_combinations(dev: &Device) {
    // With identity-like projections off, a single key means every query returns that value.
    let cfg = AttentionConfig { hidden_size: 8, num_attention_heads: 2, num_key_value_heads: 2, head_dim: 4, attention_bias: false, causal: true, rope: None };
    let eye = Tensor::eye(8, DType::F32, dev).unwrap();
    let weights: HashMap<String, Tensor> = ["q_proj", "k_proj", "v_proj", "o_proj"].iter().map(|n| (format!("{n}.weight"), eye.clone())).collect();
    let attn = Attention::new(&cfg, VarBuilder::from_tensors(weights, DType::F32, dev)).unwrap();
    let x = randn(1, "x", (1, 4, 8), DType::F32, dev).unwrap();
    let y = attn.forward(&x).unwrap();
    // Position 0 sees only itself: output = its own value vector.
    assert!(max_diff(&y.narrow(1, 0, 1).unwrap(), &x.narrow(1, 0, 1).unwrap()) < 1e-6);
    // Later outputs lie inside the range of the values they attend to.
    let (lo, hi) = (x.narrow(1, 0, 2).unwrap().min(1).unwrap(), x.narrow(1, 0, 2).unwrap().max(1).unwrap());
    let y1 = y.narrow(1, 1, 1).unwrap().squeeze(1).unwrap();
    let inside = y1.ge(&(lo - 1e-6).unwrap()).unwrap().mul(&y1.le(&(hi + 1e-6).unwrap()).unwrap()).unwrap();
    assert_eq!(inside.to_dtype(DType::F32).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap(), 8.0);
}

per_device!(
    kv_cache_decoding_matches_full_forward,
    chunked_prefill_after_a_cache_matches_full_forward,
    causal_outputs_ignore_the_future,
    padding_is_invisible_to_real_tokens,
    grouped_query_equals_repeated_heads,
    attention_rows_are_convex_combinations
);

#[test]
fn llama3_8b_config_json_parses_with_hugging_face_names() {
    let json = r#"{
        "architectures": ["LlamaForCausalLM"], "attention_bias": false, "bos_token_id": 128000,
        "eos_token_id": 128001, "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
        "intermediate_size": 14336, "max_position_embeddings": 131072, "model_type": "llama",
        "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
        "rms_norm_eps": 1e-05, "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16", "vocab_size": 128256
    }"#;
    let cfg: LlamaConfig = serde_json::from_str(json).unwrap();
    cfg.validate().unwrap();
    let a = cfg.attention_config();
    assert_eq!((a.num_attention_heads, a.num_key_value_heads, a.head_dim), (32, 8, 128));
    assert_eq!(cfg.rope_scaling.as_ref().unwrap().factor, 8.0);
    assert_eq!(cfg.rope_theta, 500_000.0);
    // Fields left out take transformers' defaults.
    let minimal: LlamaConfig = serde_json::from_str(r#"{"hidden_size": 256}"#).unwrap();
    assert_eq!((minimal.num_attention_heads, minimal.rms_norm_eps, minimal.rope_theta), (32, 1e-6, 10_000.0));
}

#[test]
fn rope_scaling_fields_left_out_take_transformers_defaults() {
    // transformers' Llama-3 defaults: low 1, high 4, original context 8192; `type` is the
    // older name of `rope_type`.
    let cfg: LlamaConfig = serde_json::from_str(r#"{"rope_scaling": {"type": "llama3", "factor": 8.0}}"#).unwrap();
    let s = cfg.rope_scaling.unwrap();
    assert_eq!((s.rope_type.as_str(), s.factor, s.low_freq_factor, s.high_freq_factor, s.original_max_position_embeddings), ("llama3", 8.0, 1.0, 4.0, 8192));
}

#[test]
fn invalid_configs_name_their_field() {
    let bad = LlamaConfig { num_key_value_heads: Some(3), ..llama_cfg() };
    assert!(bad.validate().unwrap_err().to_string().contains("num_key_value_heads"));
    let bad = LlamaConfig { hidden_size: 60, ..llama_cfg() };
    assert!(bad.validate().unwrap_err().to_string().contains("num_attention_heads"));
    let bad = BertConfig { hidden_size: 100, num_attention_heads: 12, ..BertConfig::default() };
    assert!(bad.validate().unwrap_err().to_string().contains("do not divide hidden_size 100"));
    let odd = AttentionConfig { head_dim: 5, ..llama_cfg().attention_config() };
    assert!(odd.validate().unwrap_err().to_string().contains("even head_dim"));
    let bad: Result<BertConfig, _> = serde_json::from_str(r#"{"hidden_act": "swoosh"}"#);
    assert!(bad.is_err());
}

#[test]
fn missing_weights_are_reported_by_name() {
    let dev = Device::Cpu;
    let mut weights = HashMap::new();
    weights.insert("q_proj.weight".to_string(), Tensor::zeros((64, 64), DType::F32, &dev).unwrap());
    let err = Attention::new(&llama_cfg().attention_config(), VarBuilder::from_tensors(weights, DType::F32, &dev)).unwrap_err();
    match err {
        Error::MissingTensor { name } => assert_eq!(name, "k_proj.weight"),
        other => panic!("expected MissingTensor, got {other}"),
    }
}
