//! Parameter names and order, and the sub-module paths, that every block derives from its
//! children: written down from the hand-written lists the blocks had before `Block::children`,
//! since checkpoints load by these names and suites report by these paths.

use candle_core::{DType, Device};
use tensile_nn::bert::{Bert, BertConfig, BertLayer};
use tensile_nn::heads::{ClassificationHead, EncoderWithHead, HeadTarget, TaskConfig};
use tensile_nn::init::SeededInit;
use tensile_nn::llama::{Llama, LlamaConfig, LlamaDecoderLayer};
use tensile_nn::modernbert::{ModernBert, ModernBertConfig, ModernBertEmbeddings, ModernBertLayer};
use tensile_nn::*;

fn vb() -> candle_nn::VarBuilder<'static> {
    SeededInit::var_builder(0, DType::F32, &Device::Cpu)
}

fn llama_cfg(tie: bool) -> LlamaConfig {
    LlamaConfig {
        vocab_size: 10,
        hidden_size: 8,
        intermediate_size: 16,
        num_hidden_layers: 2,
        num_attention_heads: 2,
        num_key_value_heads: Some(1),
        tie_word_embeddings: tie,
        ..Default::default()
    }
}

fn bert_cfg() -> BertConfig {
    BertConfig {
        vocab_size: 10,
        hidden_size: 8,
        intermediate_size: 16,
        num_hidden_layers: 2,
        num_attention_heads: 2,
        max_position_embeddings: 16,
        ..Default::default()
    }
}

fn names(block: &dyn Block) -> Vec<String> {
    block.parameters().into_iter().map(|(n, _)| n).collect()
}

fn paths(block: &dyn Block) -> Vec<String> {
    block.named_modules().into_iter().map(|(n, _)| n).collect()
}

/// `names` behind `prefix.`, for the layers of a model.
fn under(prefix: &str, names: &[&str]) -> Vec<String> {
    names.iter().map(|n| format!("{prefix}.{n}")).collect()
}

const LLAMA_LAYER: [&str; 9] = [
    "self_attn.q_proj.weight",
    "self_attn.k_proj.weight",
    "self_attn.v_proj.weight",
    "self_attn.o_proj.weight",
    "mlp.gate_proj.weight",
    "mlp.up_proj.weight",
    "mlp.down_proj.weight",
    "input_layernorm.weight",
    "post_attention_layernorm.weight",
];

const BERT_LAYER: [&str; 16] = [
    "attention.self.query.weight",
    "attention.self.query.bias",
    "attention.self.key.weight",
    "attention.self.key.bias",
    "attention.self.value.weight",
    "attention.self.value.bias",
    "attention.output.dense.weight",
    "attention.output.dense.bias",
    "attention.output.LayerNorm.weight",
    "attention.output.LayerNorm.bias",
    "intermediate.dense.weight",
    "intermediate.dense.bias",
    "output.dense.weight",
    "output.dense.bias",
    "output.LayerNorm.weight",
    "output.LayerNorm.bias",
];

const BERT_EMBEDDINGS: [&str; 5] =
    ["word_embeddings.weight", "position_embeddings.weight", "token_type_embeddings.weight", "LayerNorm.weight", "LayerNorm.bias"];

#[test]
fn leaves_list_their_own_tensors() {
    assert_eq!(names(&Linear::new(3, 4, true, vb()).unwrap()), ["weight", "bias"]);
    assert_eq!(names(&Linear::new(3, 4, false, vb()).unwrap()), ["weight"]);
    assert_eq!(names(&Embedding::new(3, 4, vb()).unwrap()), ["weight"]);
    assert_eq!(names(&LayerNorm::new(4, 1e-5, true, vb()).unwrap()), ["weight", "bias"]);
    assert_eq!(names(&LayerNorm::new(4, 1e-5, false, vb()).unwrap()), ["weight"]);
    assert_eq!(names(&RmsNorm::new(4, 1e-5, vb()).unwrap()), ["weight"]);
}

#[test]
fn llama_names_and_paths() {
    let layer = LlamaDecoderLayer::new(&llama_cfg(false), vb()).unwrap();
    assert_eq!(names(layer.self_attn()), ["q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight"]);
    assert_eq!(names(layer.mlp()), ["gate_proj.weight", "up_proj.weight", "down_proj.weight"]);
    assert_eq!(names(&layer), LLAMA_LAYER);
    assert_eq!(paths(&layer), ["self_attn", "mlp", "input_layernorm", "post_attention_layernorm"]);
    assert!(paths(layer.self_attn()).is_empty() && paths(layer.mlp()).is_empty(), "projections are parts, not tested alone");
    // Paths point at the very sub-blocks (suites find a block's path by address).
    let found = layer.named_modules();
    assert!(std::ptr::eq(found[0].1 as *const dyn Block as *const (), layer.self_attn() as *const Attention as *const ()));
    assert_eq!(
        found.iter().map(|(_, b)| b.kind()).collect::<Vec<_>>(),
        [BlockKind::LlamaAttention, BlockKind::LlamaMlp, BlockKind::LlamaRmsNorm, BlockKind::LlamaRmsNorm]
    );

    let mut expected = vec!["model.embed_tokens.weight".to_string()];
    expected.extend(under("model.layers.0", &LLAMA_LAYER));
    expected.extend(under("model.layers.1", &LLAMA_LAYER));
    expected.push("model.norm.weight".into());
    assert_eq!(names(&Llama::new(&llama_cfg(true), vb()).unwrap()), expected, "tied: no lm_head");
    expected.push("lm_head.weight".into());
    let model = Llama::new(&llama_cfg(false), vb()).unwrap();
    assert_eq!(names(&model), expected);

    let layer_paths = ["", ".self_attn", ".mlp", ".input_layernorm", ".post_attention_layernorm"];
    let expected: Vec<String> = (0..2).flat_map(|i| layer_paths.map(|p| format!("model.layers.{i}{p}"))).collect();
    assert_eq!(paths(&model), expected);
}

#[test]
fn bert_names_and_paths() {
    let cfg = bert_cfg();
    let layer = BertLayer::new(&cfg, vb()).unwrap();
    // The attention block names its projections as BERT checkpoints do (before `children`,
    // a BERT attention alone listed them as `q_proj`, … and the layer renamed them).
    assert_eq!(names(layer.attention()), under("x", &BERT_LAYER[..8]).iter().map(|n| n["x.attention.".len()..].to_string()).collect::<Vec<_>>());
    assert_eq!(names(layer.mlp()), ["intermediate.dense.weight", "intermediate.dense.bias", "output.dense.weight", "output.dense.bias"]);
    assert_eq!(names(&layer), BERT_LAYER);
    assert_eq!(paths(&layer), ["attention", "attention.output.LayerNorm", "mlp", "output.LayerNorm"]);
    assert_eq!(names(&BertEmbeddings::new(&cfg, vb()).unwrap()), BERT_EMBEDDINGS);

    let mut expected = under("embeddings", &BERT_EMBEDDINGS);
    expected.extend(under("encoder.layer.0", &BERT_LAYER));
    expected.extend(under("encoder.layer.1", &BERT_LAYER));
    let model = Bert::new(&cfg, false, vb()).unwrap();
    assert_eq!(names(&model), expected);
    expected.extend(["pooler.dense.weight".to_string(), "pooler.dense.bias".to_string()]);
    assert_eq!(names(&Bert::new(&cfg, true, vb()).unwrap()), expected);

    let layer_paths = ["", ".attention", ".attention.output.LayerNorm", ".mlp", ".output.LayerNorm"];
    let expected: Vec<String> = (0..2).flat_map(|i| layer_paths.map(|p| format!("encoder.layer.{i}{p}"))).collect();
    assert_eq!(paths(&model), expected);
}

fn modernbert_cfg() -> ModernBertConfig {
    ModernBertConfig {
        vocab_size: 16,
        hidden_size: 8,
        intermediate_size: 12,
        num_hidden_layers: 3,
        num_attention_heads: 2,
        pad_token_id: 0,
        ..Default::default()
    }
}

#[test]
fn modernbert_names_and_paths() {
    let cfg = modernbert_cfg();
    let core = ["attn.Wqkv.weight", "attn.Wo.weight", "mlp_norm.weight", "mlp.Wi.weight", "mlp.Wo.weight"];
    // Layer 0 has no attn_norm: the embeddings' norm comes right before it.
    assert_eq!(names(&ModernBertLayer::new(&cfg, 0, vb()).unwrap()), core);
    let mut later = vec!["attn_norm.weight"];
    later.extend(core);
    assert_eq!(names(&ModernBertLayer::new(&cfg, 1, vb()).unwrap()), later);
    let biased = ModernBertConfig { norm_bias: true, attention_bias: true, mlp_bias: true, ..cfg.clone() };
    assert_eq!(names(&ModernBertLayer::new(&biased, 1, vb()).unwrap()).len(), 2 * later.len());
    let model = ModernBert::new(&cfg, vb()).unwrap();
    let mut expected = vec!["embeddings.tok_embeddings.weight".to_string(), "embeddings.norm.weight".to_string()];
    expected.extend(under("layers.0", &core));
    expected.extend(under("layers.1", &later));
    expected.extend(under("layers.2", &later));
    expected.push("final_norm.weight".into());
    assert_eq!(names(&model), expected);
    // A head's weights sit at the checkpoint's root, beside `model.` or `bert.`.
    let task = TaskConfig::with_labels(&["x", "y"]);
    let with_head = EncoderWithHead::modernbert(&cfg, &task, HeadTarget::Sequence, vb()).unwrap();
    let all = names(&with_head);
    assert!(all.iter().take(expected.len()).zip(&expected).all(|(a, e)| *a == format!("model.{e}")), "{all:?}");
    assert_eq!(&all[expected.len()..], ["head.dense.weight", "head.norm.weight", "classifier.weight", "classifier.bias"]);
    let bert = EncoderWithHead::bert(&bert_cfg(), &task, HeadTarget::Sequence, vb()).unwrap();
    let all = names(&bert);
    assert_eq!(&all[all.len() - 4..], ["bert.pooler.dense.weight", "bert.pooler.dense.bias", "classifier.weight", "classifier.bias"]);
    assert!(all.iter().all(|n| n.starts_with("bert.") || n.starts_with("classifier.")), "{all:?}");
    // Masked-LM heads: transformers' names, the decoder matrix tied to the embeddings (not
    // listed again).
    let mlm = names(&tensile_nn::heads::MaskedLm::bert(&bert_cfg(), vb()).unwrap());
    assert_eq!(mlm[0], "cls.predictions.bias");
    assert_eq!(
        &mlm[mlm.len() - 4..],
        [
            "cls.predictions.transform.dense.weight",
            "cls.predictions.transform.dense.bias",
            "cls.predictions.transform.LayerNorm.weight",
            "cls.predictions.transform.LayerNorm.bias"
        ]
    );
    assert!(!mlm.iter().any(|n| n.contains("decoder")), "{mlm:?}");
    let mlm = names(&tensile_nn::heads::MaskedLm::modernbert(&cfg, vb()).unwrap());
    assert_eq!(mlm[0], "decoder.bias");
    assert_eq!(&mlm[mlm.len() - 2..], ["head.dense.weight", "head.norm.weight"]);
}

#[test]
fn every_block_reports_its_kind() {
    let l = llama_cfg(false);
    let layer = LlamaDecoderLayer::new(&l, vb()).unwrap();
    let b = bert_cfg();
    let bert_layer = BertLayer::new(&b, vb()).unwrap();
    let m = modernbert_cfg();
    let modern_layer = ModernBertLayer::new(&m, 1, vb()).unwrap();
    let task = TaskConfig::with_labels(&["a", "b", "c"]);
    let wrapped = serde_json::json!({"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2, "in_features": 32, "out_features": 8,
        "r": 2, "lora_alpha": 4, "format": "q8_0"});
    let blocks: Vec<(Box<dyn Block>, &str)> = vec![
        (Box::new(layer.self_attn().clone()), "llama.attention"),
        (Box::new(bert_layer.attention().clone()), "attention"),
        (Box::new(layer.mlp().clone()), "llama.mlp"),
        (Box::new(bert_layer.mlp().clone()), "gelu_mlp"),
        (Box::new(layer.input_layernorm().clone()), "llama.rms_norm"),
        (Box::new(bert_layer.output_layer_norm().clone()), "layer_norm"),
        (Box::new(Linear::new(3, 4, true, vb()).unwrap()), "linear"),
        (Box::new(Embedding::new(3, 4, vb()).unwrap()), "embedding"),
        (Box::new(BertEmbeddings::new(&b, vb()).unwrap()), "bert.embeddings"),
        (Box::new(layer.clone()), "llama.decoder_layer"),
        (Box::new(Llama::new(&l, vb()).unwrap()), "llama"),
        (Box::new(bert_layer.clone()), "bert.layer"),
        (Box::new(Bert::new(&b, false, vb()).unwrap()), "bert"),
        (Box::new(Pooling::new(PoolingMode::Cls, 4, vb()).unwrap()), "pooling.cls"),
        (Box::new(Pooling::new(PoolingMode::Mean, 4, vb()).unwrap()), "pooling.mean"),
        (Box::new(Pooling::new(PoolingMode::Max, 4, vb()).unwrap()), "pooling.max"),
        (Box::new(Pooling::new(PoolingMode::Attention, 4, vb()).unwrap()), "pooling.attention"),
        (Box::new(ModernBertEmbeddings::new(&m, vb()).unwrap()), "modernbert.embeddings"),
        (Box::new(modern_layer.attention().clone()), "modernbert.attention"),
        (Box::new(modern_layer.mlp().clone()), "modernbert.mlp"),
        (Box::new(modern_layer.clone()), "modernbert.layer"),
        (Box::new(ModernBert::new(&m, vb()).unwrap()), "modernbert"),
        (Box::new(ClassificationHead::modernbert(&m, &task, HeadTarget::Sequence, vb()).unwrap()), "head.sequence_classification"),
        (Box::new(ClassificationHead::bert(&b, &task, HeadTarget::Token, vb()).unwrap()), "head.token_classification"),
        (Box::new(EncoderWithHead::bert(&b, &task, HeadTarget::Sequence, vb()).unwrap()), "bert.with_head"),
        (Box::new(EncoderWithHead::modernbert(&m, &task, HeadTarget::Token, vb()).unwrap()), "modernbert.with_head"),
        (Box::new(tensile_nn::heads::MaskedLm::bert(&b, vb()).unwrap()), "masked_lm"),
        (BlockKind::LoraLinear.build(&wrapped, vb()).unwrap(), "lora.linear"),
        (BlockKind::LoraAttention.build(&wrapped, vb()).unwrap(), "lora.llama_attention"),
        (BlockKind::QuantizedLinear.build(&wrapped, vb()).unwrap(), "quantized.linear"),
        (BlockKind::QuantizedMlp.build(&wrapped, vb()).unwrap(), "quantized.llama_mlp"),
        (BlockKind::QuantizedAttention.build(&wrapped, vb()).unwrap(), "quantized.llama_attention"),
    ];
    assert_eq!(blocks.len(), BlockKind::ALL.len(), "one block of every kind");
    for (block, name) in &blocks {
        assert_eq!(block.kind().name(), *name);
        assert_eq!(name.parse::<BlockKind>().unwrap(), block.kind());
        // Rebuilding from the listed parameters loads every one of them back.
        let params: std::collections::HashMap<String, candle_core::Tensor> = block.parameters().into_iter().collect();
        let rebuilt = block.rebuild(candle_nn::VarBuilder::from_tensors(params, DType::F32, &Device::Cpu)).unwrap();
        assert_eq!(names(rebuilt.as_ref()), names(block.as_ref()), "{name}");
    }
}
