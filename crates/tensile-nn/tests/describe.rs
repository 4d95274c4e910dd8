//! What every block says about itself, which reports, coverage tables and suites read: its
//! kind, its named dimensions (Hugging Face's field names and values) and the input it takes
//! (activations `(batch, seq, width)` or token ids `(batch, seq)` below the vocabulary size).

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

/// Asserts the kind, the dimensions and, for `input_shape(2, 5)`, the input: activations of
/// `width`, or token ids below `vocab`.
fn check(block: &dyn Block, kind: BlockKind, dims: &[(&str, usize)], input: InputKind, width: usize) {
    assert_eq!(block.kind(), kind);
    assert_eq!(block.dims(), dims.to_vec(), "{kind}");
    assert_eq!(block.input_kind(), input, "{kind}");
    let shape = if input == InputKind::Hidden { vec![2, 5, width] } else { vec![2, 5] };
    assert_eq!(block.input_shape(2, 5), shape, "{kind}");
}

const H: InputKind = InputKind::Hidden;

#[test]
fn leaf_blocks() {
    check(&Linear::new(8, 3, true, vb()).unwrap(), BlockKind::Linear, &[("in_features", 8), ("out_features", 3)], H, 8);
    check(&RmsNorm::new(8, 1e-6, vb()).unwrap(), BlockKind::LlamaRmsNorm, &[("hidden_size", 8)], H, 8);
    check(&LayerNorm::new(6, 1e-12, false, vb()).unwrap(), BlockKind::LayerNorm, &[("hidden_size", 6)], H, 6);
    check(&Embedding::new(10, 8, vb()).unwrap(), BlockKind::Embedding, &[("vocab_size", 10), ("hidden_size", 8)], InputKind::TokenIds { vocab: 10 }, 0);
    check(&SwiGlu::new(8, 12, false, Activation::Silu, vb()).unwrap(), BlockKind::LlamaMlp, &[("hidden_size", 8), ("intermediate_size", 12)], H, 8);
    check(&GeluMlp::new(8, 12, Activation::Gelu, vb()).unwrap(), BlockKind::GeluMlp, &[("hidden_size", 8), ("intermediate_size", 12)], H, 8);
}

#[test]
fn attention_is_llama_attention_only_when_causal_with_rope() {
    let dims = [("hidden_size", 8), ("num_attention_heads", 4), ("num_key_value_heads", 2), ("head_dim", 2)];
    let cfg = llama().attention_config();
    check(&Attention::new(&cfg, vb()).unwrap(), BlockKind::LlamaAttention, &dims, H, 8);
    // Either one alone is plain attention.
    let no_rope = AttentionConfig { rope: None, ..cfg.clone() };
    check(&Attention::new(&no_rope, vb()).unwrap(), BlockKind::Attention, &dims, H, 8);
    let bidirectional = AttentionConfig { causal: false, ..cfg };
    check(&Attention::new(&bidirectional, vb()).unwrap(), BlockKind::Attention, &dims, H, 8);
}

#[test]
fn layers_and_models() {
    let layer = [("hidden_size", 8), ("num_attention_heads", 4), ("num_key_value_heads", 2), ("intermediate_size", 12)];
    check(&LlamaDecoderLayer::new(&llama(), vb()).unwrap(), BlockKind::LlamaDecoderLayer, &layer, H, 8);
    let mut model = layer.to_vec();
    model.push(("num_hidden_layers", 2));
    check(&Llama::new(&llama(), vb()).unwrap(), BlockKind::Llama, &model, InputKind::TokenIds { vocab: 10 }, 0);

    let layer = [("hidden_size", 8), ("num_attention_heads", 2), ("intermediate_size", 12)];
    check(&BertLayer::new(&bert(), vb()).unwrap(), BlockKind::BertLayer, &layer, H, 8);
    let mut model = layer.to_vec();
    model.push(("num_hidden_layers", 3));
    check(&Bert::new(&bert(), false, vb()).unwrap(), BlockKind::Bert, &model, InputKind::TokenIds { vocab: 11 }, 0);
    check(
        &BertEmbeddings::new(&bert(), vb()).unwrap(),
        BlockKind::BertEmbeddings,
        &[("hidden_size", 8), ("vocab_size", 11), ("max_position_embeddings", 9), ("type_vocab_size", 2)],
        InputKind::TokenIds { vocab: 11 },
        0,
    );
}

#[test]
fn models_expose_their_layers_and_layers_their_config() {
    // Presets and suites reach into a model through these to test each layer on its own.
    assert_eq!(Llama::new(&llama(), vb()).unwrap().layers().len(), 2);
    assert_eq!(Bert::new(&bert(), false, vb()).unwrap().layers().len(), 3);
    assert_eq!(LlamaDecoderLayer::new(&llama(), vb()).unwrap().config(), &llama());
}
