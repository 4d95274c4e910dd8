//! Memory, measured by the counting allocator (a binary of its own: the counters are
//! process-wide, so one test runs its parts in sequence): the bytes a quantized weight keeps
//! per parameter, and the optimiser state of LoRA training, which must grow with the adapters'
//! parameters, not the model's.

use candle_core::{DType, Device};
use candle_nn::Optimizer;
use tensile_nn::init::{randn, SeededInit};
use tensile_nn::llama::{Llama, LlamaConfig};
use tensile_nn::lora::{LoraConfig, LoraModel};
use tensile_nn::quant::{QuantFormat, QuantizedWeight};

tensile::install_counting_allocator!();

/// Heap bytes still held after `f` returns what it built (the result kept alive).
fn retained<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = tensile::alloc::current_bytes();
    let out = f();
    (out, tensile::alloc::current_bytes().saturating_sub(before))
}

#[test]
fn quantized_bytes_and_lora_optimizer_state_are_measured() {
    assert!(tensile::alloc::is_installed());
    // Bits per weight as held in memory, scales included.
    let (rows, cols) = (512, 1024);
    let w = randn(0, "w", (rows, cols), DType::F32, &Device::Cpu).unwrap();
    for name in ["q4_0", "q4_1", "q8_0", "q4_k", "q6_k", "int8", "int4-g32", "int4-g128-asym"] {
        let format: QuantFormat = name.parse().unwrap();
        let (q, bytes) = retained(|| QuantizedWeight::quantize(&w, format).unwrap());
        let bits = 8.0 * bytes as f64 / (rows * cols) as f64;
        println!("{name}: {bits:.3} bits per weight held");
        assert!((bits - format.bits_per_weight(cols)).abs() < 0.02, "{name}: {bits} bits held, {} expected", format.bits_per_weight(cols));
        drop(q);
    }

    // AdamW keeps two moments per trainable element: with LoRA that is the adapters' count.
    let cfg = LlamaConfig {
        vocab_size: 512,
        hidden_size: 256,
        intermediate_size: 768,
        num_hidden_layers: 2,
        num_attention_heads: 8,
        num_key_value_heads: Some(2),
        ..LlamaConfig::default()
    };
    let mut state = Vec::new();
    for r in [4, 16] {
        let model = Llama::new(&cfg, SeededInit::var_builder(0, DType::F32, &Device::Cpu)).unwrap();
        let model_params: usize = tensile_nn::Block::parameters(&model).iter().map(|(_, t)| t.elem_count()).sum();
        let mut lora = LoraModel::attach(&model);
        lora.add_adapter("a", &LoraConfig::new(r, 2.0 * r as f64, &["q_proj", "v_proj"]), 0).unwrap();
        let vars: Vec<candle_core::Var> = lora.trainable_vars().unwrap().into_iter().map(|(_, v)| v).collect();
        let trainable = lora.trainable_count();
        assert_eq!(trainable, 2 * r * ((256 + 256) + (256 + 64)), "r·(in + out) per target, two layers");
        let (opt, bytes) = retained(|| candle_nn::AdamW::new(vars, candle_nn::ParamsAdamW::default()).unwrap());
        let per_trainable = bytes as f64 / trainable as f64;
        println!("r {r}: {trainable} trainable of {model_params}: optimiser state {bytes} bytes ({per_trainable:.2} per trainable parameter)");
        // Two f32 moments: 8 bytes per trainable parameter, plus a little bookkeeping per
        // variable (8 of them: A and B of two targets in two layers).
        assert!(bytes >= 8 * trainable && bytes <= 8 * trainable + 8 * 1024, "{per_trainable} bytes per trainable parameter");
        assert!(bytes * 20 < 8 * model_params, "state {bytes} bytes is not far below a full model's {}", 8 * model_params);
        state.push((trainable, bytes));
        drop(opt);
    }
    // Four times the rank adds exactly the moments of the added parameters.
    let (added_params, added_bytes) = (state[1].0 - state[0].0, state[1].1 - state[0].1);
    assert!((added_bytes as f64 / (8 * added_params) as f64 - 1.0).abs() < 0.01, "{added_bytes} bytes for {added_params} more parameters");
}
