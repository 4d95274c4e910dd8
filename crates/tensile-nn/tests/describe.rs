//! What every block says about itself, which reports, coverage tables and suites read: its
//! kind and its named dimensions, with Hugging Face's field names and values.

use candle_core::{DType, Device};
use tensile_nn::bert::{Bert, BertConfig, BertEmbeddings, BertLayer};
use tensile_nn::init::SeededInit;
use tensile_nn::llama::{Llama, LlamaConfig, LlamaDecoderLayer};
use tensile_nn::*;

fn vb() -> candle_nn::VarBuilder<'static> {
    SeededInit::var_builder(1, DType::F32, &Device::Cpu)
}

fn llama() -> LlamaConfig {
    LlamaConfig {
        vocab_size: 10,
        hidden_size: 8,
        intermediate_size: 12,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: Some(2),
        ..LlamaConfig::default()
    }
}

fn bert() -> BertConfig {
    BertConfig {
        vocab_size: 11,
        hidden_size: 8,
        intermediate_size: 12,
        num_hidden_layers: 3,
        num_attention_heads: 2,
        max_position_embeddings: 9,
        type_vocab_size: 2,
        ..BertConfig::default()
    }
}

fn check(block: &dyn Block, kind: BlockKind, dims: &[(&str, usize)]) {
    assert_eq!(block.kind(), kind);
    assert_eq!(block.dims(), dims.to_vec(), "{kind}");
}

#[test]
fn leaf_blocks() {
    check(&Linear::new(8, 3, true, vb()).unwrap(), BlockKind::Linear, &[("in_features", 8), ("out_features", 3)]);
    check(&RmsNorm::new(8, 1e-6, vb()).unwrap(), BlockKind::LlamaRmsNorm, &[("hidden_size", 8)]);
    check(&LayerNorm::new(6, 1e-12, false, vb()).unwrap(), BlockKind::LayerNorm, &[("hidden_size", 6)]);
    check(&Embedding::new(10, 8, vb()).unwrap(), BlockKind::Embedding, &[("vocab_size", 10), ("hidden_size", 8)]);
    check(&SwiGlu::new(8, 12, false, Activation::Silu, vb()).unwrap(), BlockKind::LlamaMlp, &[("hidden_size", 8), ("intermediate_size", 12)]);
    check(&GeluMlp::new(8, 12, Activation::Gelu, vb()).unwrap(), BlockKind::GeluMlp, &[("hidden_size", 8), ("intermediate_size", 12)]);
}

#[test]
fn attention_is_llama_attention_only_when_causal_with_rope() {
    let dims = [("hidden_size", 8), ("num_attention_heads", 4), ("num_key_value_heads", 2), ("head_dim", 2)];
    let cfg = llama().attention_config();
    check(&Attention::new(&cfg, vb()).unwrap(), BlockKind::LlamaAttention, &dims);
    // Either one alone is plain attention.
    let no_rope = AttentionConfig { rope: None, ..cfg.clone() };
    check(&Attention::new(&no_rope, vb()).unwrap(), BlockKind::Attention, &dims);
    let bidirectional = AttentionConfig { causal: false, ..cfg };
    check(&Attention::new(&bidirectional, vb()).unwrap(), BlockKind::Attention, &dims);
}

#[test]
fn layers_and_models() {
    let layer = [("hidden_size", 8), ("num_attention_heads", 4), ("num_key_value_heads", 2), ("intermediate_size", 12)];
    check(&LlamaDecoderLayer::new(&llama(), vb()).unwrap(), BlockKind::LlamaDecoderLayer, &layer);
    let mut model = layer.to_vec();
    model.push(("num_hidden_layers", 2));
    check(&Llama::new(&llama(), vb()).unwrap(), BlockKind::Llama, &model);

    let layer = [("hidden_size", 8), ("num_attention_heads", 2), ("intermediate_size", 12)];
    check(&BertLayer::new(&bert(), vb()).unwrap(), BlockKind::BertLayer, &layer);
    let mut model = layer.to_vec();
    model.push(("num_hidden_layers", 3));
    check(&Bert::new(&bert(), false, vb()).unwrap(), BlockKind::Bert, &model);
    check(
        &BertEmbeddings::new(&bert(), vb()).unwrap(),
        BlockKind::BertEmbeddings,
        &[("hidden_size", 8), ("vocab_size", 11), ("max_position_embeddings", 9), ("type_vocab_size", 2)],
    );
}
