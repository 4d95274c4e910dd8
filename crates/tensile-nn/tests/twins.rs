//! Every block's fast forward against its float64 reference twin, on random weights and
//! inputs, in f32, bf16 and f16, with the dtype's default tolerance.
//!
//! Written once per device (`fn case(dev: &Device)`); CUDA instances run only in `cuda`
//! builds on a machine with a GPU and otherwise say why they skip.

use candle_core::{DType, Device, Module, Tensor};
use tensile_nn::bert::{Bert, BertConfig, BertLayer};
use tensile_nn::init::{randn, random_ids, SeededInit};
use tensile_nn::llama::{Llama, LlamaConfig, LlamaDecoderLayer};
use tensile_nn::*;

mod common;

const DTYPES: [DType; 3] = [DType::F32, DType::BF16, DType::F16];

/// `(atol, rtol)` for a module's output in `dtype` against float64: the defaults of
/// `tensile::Tolerance::for_dtype`, restated here because tensile-nn sits below tensile and its
/// tests do not depend on it (a dev-dependency on tensile would also rebuild tensile for every
/// change to a block).
fn thresholds(dtype: DType) -> (f64, f64) {
    match dtype {
        DType::BF16 => (5e-2, 5e-2),
        DType::F16 => (5e-3, 5e-3),
        _ => (1e-4, 1e-4),
    }
}

fn to_f64_vec(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

/// Asserts that `fast` matches `reference` within the dtype's tolerance, naming the block.
fn assert_twins(what: &str, fast: &Tensor, reference: &Tensor, dtype: DType) {
    assert_twins_scaled(what, fast, reference, dtype, 1.0)
}

/// As [`assert_twins`], with atol and rtol multiplied by `depth`: a whole model stacks
/// several blocks and rounding error grows with each one. Every element must satisfy
/// `|a − e| ≤ atol + rtol·|e|` (a NaN never does).
// `!(x <= bound)` on purpose: a NaN compares false and so fails.
#[allow(clippy::neg_cmp_op_on_partial_ord)]
fn assert_twins_scaled(what: &str, fast: &Tensor, reference: &Tensor, dtype: DType, depth: f64) {
    assert_eq!(reference.dtype(), DType::F64, "{what}: the twin must compute in f64");
    let (a, e) = (to_f64_vec(fast), to_f64_vec(reference));
    assert_eq!(a.len(), e.len(), "{what}: element count");
    let (atol, rtol) = thresholds(dtype);
    let bad = a.iter().zip(&e).position(|(a, e)| !((a - e).abs() <= depth * (atol + rtol * e.abs())));
    if let Some(i) = bad {
        panic!("{what} in {dtype:?}: element {i} is {} against the twin's {} (atol {atol}, rtol {rtol}, ×{depth})", a[i], e[i]);
    }
}

/// Builds a block with seeded weights in `dtype` and checks it on a seeded input.
fn check<B: Block>(what: &str, dev: &Device, input_shape: (usize, usize, usize), build: impl Fn(candle_nn::VarBuilder) -> tensile_nn::Result<B>) {
    for dtype in DTYPES {
        let block = build(SeededInit::var_builder(11, dtype, dev)).unwrap();
        let x = randn(5, "input", input_shape, dtype, dev).unwrap();
        let fast = block.forward(&x).unwrap();
        assert_eq!(fast.dtype(), dtype, "{what}: output dtype");
        assert_eq!(fast.dims(), x.dims(), "{what}: output shape");
        assert_twins(what, &fast, &block.forward_reference(&x).unwrap(), dtype);
        // Parameters are listed under the names the block loads them from: rebuilding from
        // that list must give the very same block.
        let params: std::collections::HashMap<String, Tensor> = block.parameters().into_iter().collect();
        let rebuilt = block.rebuild(candle_nn::VarBuilder::from_tensors(params, dtype, dev)).unwrap();
        assert_eq!(rebuilt.kind(), block.kind());
        let again = rebuilt.forward(&x).unwrap();
        assert_eq!(to_f64_vec(&again), to_f64_vec(&fast), "{what}: rebuild changed the output");
        assert_eq!(block.input_shape(2, 5).len(), 3);
        assert!(block.cost(x.dims()).bytes > 0.0, "{what}: cost");
    }
}

fn llama_cfg(heads: usize, kv_heads: usize) -> LlamaConfig {
    LlamaConfig {
        vocab_size: 97,
        hidden_size: 64,
        intermediate_size: 160,
        num_hidden_layers: 2,
        num_attention_heads: heads,
        num_key_value_heads: Some(kv_heads),
        rope_theta: 500_000.0,
        ..LlamaConfig::default()
    }
}

fn bert_cfg() -> BertConfig {
    BertConfig {
        vocab_size: 101,
        hidden_size: 64,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        intermediate_size: 128,
        max_position_embeddings: 32,
        ..BertConfig::default()
    }
}

fn norms_and_linear(dev: &Device) {
    check("linear", dev, (2, 5, 32), |vb| Linear::new(32, 32, true, vb));
    check("rms_norm", dev, (2, 5, 48), |vb| RmsNorm::new(48, 1e-6, vb));
    check("layer_norm", dev, (2, 5, 48), |vb| LayerNorm::new(48, 1e-12, true, vb));
    check("layer_norm_no_bias", dev, (2, 5, 48), |vb| LayerNorm::new(48, 1e-5, false, vb));
}

fn mlps(dev: &Device) {
    check("swiglu", dev, (2, 7, 64), |vb| SwiGlu::new(64, 160, false, Activation::Silu, vb));
    check("gelu_mlp_erf", dev, (2, 7, 64), |vb| GeluMlp::new(64, 128, Activation::Gelu, vb));
    check("gelu_mlp_tanh", dev, (2, 7, 64), |vb| GeluMlp::new(64, 128, Activation::GeluTanh, vb));
}

fn attentions(dev: &Device) {
    for (name, heads, kv) in [("mha", 4, 4), ("gqa", 8, 2), ("mqa", 4, 1)] {
        let cfg = llama_cfg(heads, kv).attention_config();
        check(&format!("attention_{name}"), dev, (2, 9, 64), |vb| Attention::new(&cfg, vb));
    }
    let biased = AttentionConfig { attention_bias: true, ..llama_cfg(4, 2).attention_config() };
    check("attention_bias", dev, (1, 6, 64), |vb| Attention::new(&biased, vb));
    let scaled = LlamaConfig {
        rope_scaling: Some(RopeScaling {
            rope_type: "llama3".into(),
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 16,
        }),
        ..llama_cfg(4, 2)
    };
    check("attention_rope_llama3", dev, (1, 11, 64), |vb| Attention::new(&scaled.attention_config(), vb));
    check("attention_bidirectional", dev, (2, 6, 64), |vb| Attention::new(&bert_cfg().attention_config(), vb));
}

fn layers(dev: &Device) {
    check("llama_decoder_layer", dev, (2, 7, 64), |vb| LlamaDecoderLayer::new(&llama_cfg(4, 2), vb));
    check("bert_layer", dev, (2, 7, 64), |vb| BertLayer::new(&bert_cfg(), vb));
}

fn embeddings_and_models(dev: &Device) {
    for dtype in DTYPES {
        let ids = random_ids(3, "ids", (2, 6), 97, dev).unwrap();
        let emb = Embedding::new(97, 64, SeededInit::var_builder(1, dtype, dev)).unwrap();
        assert_twins("embedding", &emb.forward(&ids).unwrap(), &emb.forward_reference(&ids).unwrap(), dtype);
        for tie in [false, true] {
            let cfg = LlamaConfig { tie_word_embeddings: tie, ..llama_cfg(4, 2) };
            let model = Llama::new(&cfg, SeededInit::var_builder(2, dtype, dev)).unwrap();
            let logits = model.forward(&ids).unwrap();
            assert_eq!(logits.dims(), &[2, 6, 97]);
            // Two decoder layers, the final norm and the head.
            assert_twins_scaled("llama", &logits, &model.forward_reference(&ids).unwrap(), dtype, 3.0);
            let params: std::collections::HashMap<String, Tensor> = model.parameters().into_iter().collect();
            assert_eq!(params.contains_key("lm_head.weight"), !tie);
            let rebuilt = model.rebuild(candle_nn::VarBuilder::from_tensors(params, dtype, dev)).unwrap();
            assert_eq!(to_f64_vec(&rebuilt.forward(&ids).unwrap()), to_f64_vec(&logits));
            assert_eq!(model.input_kind(), InputKind::TokenIds { vocab: 97 });
        }
        let bert = Bert::new(&bert_cfg(), true, SeededInit::var_builder(4, dtype, dev)).unwrap();
        let ids = random_ids(3, "bert_ids", (2, 6), 101, dev).unwrap();
        let types = random_ids(3, "types", (2, 6), 2, dev).unwrap();
        let mask = Tensor::new(&[[1u32, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], dev).unwrap();
        let fast = bert.forward_with(&ids, Some(&types), Some(&mask)).unwrap();
        let reference = bert.forward_reference_with(&ids, Some(&types), Some(&mask)).unwrap();
        assert_twins_scaled("bert", &fast, &reference, dtype, 3.0);
        assert_eq!(bert.pool(&fast).unwrap().unwrap().dims(), &[2, 64]);
        let params: std::collections::HashMap<String, Tensor> = bert.parameters().into_iter().collect();
        assert!(params.contains_key("encoder.layer.1.attention.self.query.weight") && params.contains_key("pooler.dense.bias"));
        let rebuilt = bert.rebuild(candle_nn::VarBuilder::from_tensors(params, dtype, dev)).unwrap();
        assert_eq!(to_f64_vec(&rebuilt.forward(&ids).unwrap()), to_f64_vec(&bert.forward(&ids).unwrap()));
    }
}

per_device!(norms_and_linear, mlps, attentions, layers, embeddings_and_models);
