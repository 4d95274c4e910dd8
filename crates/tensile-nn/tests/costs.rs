//! The cost model (FLOPs and bytes of one forward pass) of every block, against numbers
//! worked out by hand from the formulas in each block's documentation, on one tiny shape.
//!
//! Roofline figures, admission control and the performance checks all read these numbers, so
//! a wrong factor would mislead every report without failing any forward pass.
//!
//! Shape: batch 2, seq 3 (6 tokens), hidden 4, intermediate 6, vocab 10, float32 (4 bytes).

use candle_core::{DType, Device};
use tensile_nn::bert::{Bert, BertConfig, BertEmbeddings, BertLayer};
use tensile_nn::init::SeededInit;
use tensile_nn::llama::{Llama, LlamaConfig, LlamaDecoderLayer};
use tensile_nn::*;

const X: [usize; 3] = [2, 3, 4];
const IDS: [usize; 2] = [2, 3];

fn vb() -> candle_nn::VarBuilder<'static> {
    SeededInit::var_builder(1, DType::F32, &Device::Cpu)
}

fn assert_cost(what: &str, got: Cost, flops: f64, bytes: f64) {
    assert_eq!((got.flops, got.bytes), (flops, bytes), "{what}: (flops, bytes)");
}

fn llama() -> LlamaConfig {
    // 2 query heads of width 2 over 1 K/V head (GQA), one layer.
    LlamaConfig {
        vocab_size: 10,
        hidden_size: 4,
        intermediate_size: 6,
        num_hidden_layers: 1,
        num_attention_heads: 2,
        num_key_value_heads: Some(1),
        ..LlamaConfig::default()
    }
}

fn bert() -> BertConfig {
    BertConfig {
        vocab_size: 10,
        hidden_size: 4,
        intermediate_size: 6,
        num_hidden_layers: 1,
        num_attention_heads: 2,
        max_position_embeddings: 8,
        type_vocab_size: 2,
        ..BertConfig::default()
    }
}

#[test]
fn leaf_blocks() {
    // Linear 4 → 6: 2·n·in·out = 2·6·4·6; bytes of input 24, output 36 and weight 24 elements.
    assert_cost("linear", Linear::new(4, 6, false, vb()).unwrap().cost(&X), 288.0, 4.0 * 84.0);
    // The bias adds neither term in this model.
    assert_cost("linear with bias", Linear::new(4, 6, true, vb()).unwrap().cost(&X), 288.0, 4.0 * 84.0);
    // RMSNorm: 4 flops per element; input, output and weight.
    assert_cost("rms_norm", RmsNorm::new(4, 1e-6, vb()).unwrap().cost(&X), 96.0, 4.0 * (48.0 + 4.0));
    // LayerNorm: 8 flops per element; input, output, weight and bias.
    assert_cost("layer_norm", LayerNorm::new(4, 1e-12, true, vb()).unwrap().cost(&X), 192.0, 4.0 * (48.0 + 8.0));
    // Embedding of 6 ids into width 4: no flops; 24 read and 24 written.
    assert_cost("embedding", Embedding::new(10, 4, vb()).unwrap().cost(&IDS), 0.0, 4.0 * 48.0);
}

#[test]
fn mlps() {
    // gate and up 4 → 6 (288 flops, 336 bytes each), down 6 → 4 (288, 4·(36 + 24 + 24) = 336),
    // and the activation-times-up product: 6 flops and 2 intermediates per element of 6·6.
    assert_cost("swiglu", SwiGlu::new(4, 6, false, Activation::Silu, vb()).unwrap().cost(&X), 3.0 * 288.0 + 216.0, 3.0 * 336.0 + 4.0 * 72.0);
    // intermediate 4 → 6 and output 6 → 4, and GELU at 8 flops per element of 6·6 (no bytes).
    assert_cost("gelu_mlp", GeluMlp::new(4, 6, Activation::Gelu, vb()).unwrap().cost(&X), 2.0 * 288.0 + 288.0, 2.0 * 336.0);
}

/// Projections of attention with `kv` K/V heads of width 2 over hidden 4, on 6 tokens.
fn projections(kv: f64) -> (f64, f64) {
    let (q, k) = ((192.0, 4.0 * (24.0 + 24.0 + 16.0)), (2.0 * 6.0 * 4.0 * 2.0 * kv, 4.0 * (24.0 + 12.0 * kv + 8.0 * kv)));
    (2.0 * q.0 + 2.0 * k.0, 2.0 * q.1 + 2.0 * k.1)
}

#[test]
fn attention() {
    // Scores: batch 2 · heads 2 · 3 · 3 = 36; QKᵀ and PV 4·36·head_dim flops, 5 per score for
    // scale, mask and softmax. Causal: 8 passes over the f32 scores plus the 3×3 mask, built
    // and copied; without a mask 6 passes.
    let (pf, pb) = projections(1.0);
    let causal = Attention::new(&llama().attention_config(), vb()).unwrap();
    assert_cost("causal gqa attention", causal.cost(&X), pf + 4.0 * 36.0 * 2.0 + 5.0 * 36.0, pb + 8.0 * 144.0 + 2.0 * 36.0);
    // One query position needs no mask.
    let (pf1, pb1) = (pf / 6.0 * 2.0, 2.0 * 4.0 * (8.0 + 8.0 + 16.0) + 2.0 * 4.0 * (8.0 + 4.0 + 8.0));
    assert_cost("decode step", causal.cost(&[2, 1, 4]), pf1 + 4.0 * 4.0 * 2.0 + 5.0 * 4.0, pb1 + 6.0 * 16.0);
    let (mf, mb) = projections(2.0);
    let bidirectional = AttentionConfig { num_key_value_heads: 2, causal: false, rope: None, ..llama().attention_config() };
    assert_cost("bidirectional mha", Attention::new(&bidirectional, vb()).unwrap().cost(&X), mf + 468.0, mb + 6.0 * 144.0);
}

#[test]
fn layers_and_models_sum_their_parts() {
    let (pf, pb) = projections(1.0);
    let (attn_f, attn_b) = (pf + 468.0, pb + 8.0 * 144.0 + 72.0);
    let (mlp_f, mlp_b) = (3.0 * 288.0 + 216.0, 3.0 * 336.0 + 288.0);
    let (norm_f, norm_b) = (96.0, 208.0);
    // Decoder layer: attention, SwiGLU and two RMSNorms.
    let layer = (attn_f + mlp_f + 2.0 * norm_f, attn_b + mlp_b + 2.0 * norm_b);
    assert_cost("decoder layer", LlamaDecoderLayer::new(&llama(), vb()).unwrap().cost(&X), layer.0, layer.1);
    // Model: embedding lookups, the layer, the final norm and the LM head 4 → 10 over 6 tokens
    // (2·6·4·10 flops; logits 60 and weight 40 elements).
    let head = (480.0, 4.0 * 100.0);
    assert_cost("llama", Llama::new(&llama(), vb()).unwrap().cost(&IDS), layer.0 + norm_f + head.0, 192.0 + layer.1 + norm_b + head.1);

    // BERT: bidirectional MHA with 4 projections 4 → 4, GELU MLP and two LayerNorms.
    let (mf, mb) = projections(2.0);
    let bert_layer = (mf + 468.0 + 864.0 + 2.0 * 192.0, mb + 6.0 * 144.0 + 672.0 + 2.0 * 224.0);
    assert_cost("bert layer", BertLayer::new(&bert(), vb()).unwrap().cost(&X), bert_layer.0, bert_layer.1);
    // Embeddings: three lookups (192 bytes each), two sums per element, one LayerNorm.
    let embeddings = (48.0 + 192.0, 3.0 * 192.0 + 224.0);
    assert_cost("bert embeddings", BertEmbeddings::new(&bert(), vb()).unwrap().cost(&IDS), embeddings.0, embeddings.1);
    // The model runs the embeddings and the layers; the pooler is not part of its forward.
    let model = Bert::new(&bert(), true, vb()).unwrap().cost(&IDS);
    assert_cost("bert", model, embeddings.0 + bert_layer.0, embeddings.1 + bert_layer.1);
}

fn modernbert() -> tensile_nn::modernbert::ModernBertConfig {
    // 2 heads of width 2; layer 0 global, layer 1 local with a window of ±1.
    tensile_nn::modernbert::ModernBertConfig {
        vocab_size: 10,
        hidden_size: 4,
        intermediate_size: 6,
        num_hidden_layers: 2,
        num_attention_heads: 2,
        global_attn_every_n_layers: 2,
        local_attention: 2,
        pad_token_id: 0,
        ..Default::default()
    }
}

#[test]
fn modernbert_and_heads_sum_their_parts() {
    use tensile_nn::heads::{ClassificationHead, EncoderWithHead, HeadTarget, TaskConfig};
    use tensile_nn::modernbert::{ModernBert, ModernBertEmbeddings, ModernBertLayer};
    let cfg = modernbert();
    // Attention: Wqkv 4 → 12 (576 flops, 4·(24 + 72 + 48) bytes) and Wo 4 → 4 (192, 4·64), plus
    // 36 scores: 4·36·2 + 5·36 flops; 6 passes over them globally, 8 and the 3 × 3 mask locally.
    let proj = (576.0 + 192.0, 576.0 + 256.0);
    let global = (proj.0 + 468.0, proj.1 + 6.0 * 144.0);
    let local = (proj.0 + 468.0, proj.1 + 8.0 * 144.0 + 36.0);
    // GeGLU: Wi 4 → 12 (576, 576), Wo 6 → 4 (288, 4·84), 9 flops and two copies per element of
    // the 6 × 6 halves.
    let mlp = (576.0 + 288.0 + 324.0, 576.0 + 336.0 + 288.0);
    let norm = (192.0, 224.0);
    let layer0 = (global.0 + norm.0 + mlp.0, global.1 + norm.1 + mlp.1);
    let layer1 = (local.0 + 2.0 * norm.0 + mlp.0, local.1 + 2.0 * norm.1 + mlp.1);
    let l0 = ModernBertLayer::new(&cfg, 0, vb()).unwrap();
    let l1 = ModernBertLayer::new(&cfg, 1, vb()).unwrap();
    assert_cost("global attention", l0.attention().cost(&X), global.0, global.1);
    assert_cost("local attention", l1.attention().cost(&X), local.0, local.1);
    assert_cost("geglu", l0.mlp().cost(&X), mlp.0, mlp.1);
    assert_cost("layer 0 (no attn_norm)", l0.cost(&X), layer0.0, layer0.1);
    assert_cost("layer 1", l1.cost(&X), layer1.0, layer1.1);
    // Embeddings: one lookup (2·6·4 floats) and a norm; the model adds the layers and final_norm.
    let embeddings = ModernBertEmbeddings::new(&cfg, vb()).unwrap();
    assert_cost("embeddings", embeddings.cost(&IDS), norm.0, 192.0 + norm.1);
    assert_eq!((embeddings.input_kind(), embeddings.input_shape(2, 3)), (InputKind::TokenIds { vocab: 10 }, vec![2, 3]));
    assert_eq!(embeddings.dims(), [("hidden_size", 4), ("vocab_size", 10)]);
    let model = ModernBert::new(&cfg, vb()).unwrap();
    let model_cost = (norm.0 + layer0.0 + layer1.0 + norm.0, 192.0 + norm.1 + layer0.1 + layer1.1 + norm.1);
    assert_cost("modernbert", model.cost(&IDS), model_cost.0, model_cost.1);
    assert_eq!((model.input_kind(), model.input_shape(2, 3)), (InputKind::TokenIds { vocab: 10 }, vec![2, 3]));
    assert_eq!(model.dims().last(), Some(&("num_hidden_layers", 2)));
    assert_eq!(l1.dims().last(), Some(&("local_attention", 2)));

    // Heads over 2 sequences of 3: cls pooling reads 24 values (one flop each); head.dense 4 → 4
    // on 2 rows (64, 4·32), head.norm on 2 rows (64, 4·24), classifier 4 → 3 (48, 4·26).
    let task = TaskConfig::with_labels(&["a", "b", "c"]);
    let head = ClassificationHead::modernbert(&cfg, &task, HeadTarget::Sequence, vb()).unwrap();
    let head_cost = (24.0 + 64.0 + 64.0 + 48.0, 96.0 + 128.0 + 96.0 + 104.0);
    assert_cost("modernbert head", head.cost(&X), head_cost.0, head_cost.1);
    assert_eq!(head.input_shape(2, 3), vec![2, 3, 4]);
    let with_head = EncoderWithHead::modernbert(&cfg, &task, HeadTarget::Sequence, vb()).unwrap();
    assert_cost("modernbert with head", with_head.cost(&IDS), model_cost.0 + head_cost.0, model_cost.1 + head_cost.1);
    assert_eq!((with_head.input_kind(), with_head.input_shape(2, 3)), (InputKind::TokenIds { vocab: 10 }, vec![2, 3]));
    assert_eq!(with_head.dims().last(), Some(&("num_labels", 3)));
    // BERT's sequence head: the pooler's tanh costs 10 flops per value; a token head is the
    // classifier on all 6 tokens (144 flops, 4·(24 + 18 + 12) bytes).
    let bert_head = ClassificationHead::bert(&bert(), &task, HeadTarget::Sequence, vb()).unwrap();
    assert_cost("bert head", bert_head.cost(&X), 24.0 + 64.0 + 80.0 + 48.0, 96.0 + 128.0 + 104.0);
    let token_head = ClassificationHead::bert(&bert(), &task, HeadTarget::Token, vb()).unwrap();
    assert_cost("bert token head", token_head.cost(&X), 144.0, 216.0);
    assert_eq!(token_head.target(), HeadTarget::Token);
}
