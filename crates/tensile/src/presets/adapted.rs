//! The LoRA and quantized presets: the tiny LLaMA layer with adapters on its projections, and
//! quantized to 8 and to 4 bits, each quantized module compared with its f32 original.

use super::{attention_sweep, checks, Weights};
use crate::error::{Error, Result};
use crate::lazy::LazyModule;
use crate::module::{ModuleUnderTest, NnModule};
use crate::spec::{latency_ms, ModuleTest, Scaling};
use crate::suite::Suite;
use crate::tolerance::Tolerance;
use std::sync::Arc;
use tensile_nn::llama::{LlamaConfig, LlamaDecoderLayer};
use tensile_nn::lora::{LoraConfig, LoraModel};
use tensile_nn::quant::{quantize_linears, QuantFormat};
use tensile_nn::{Block, BlockKind, Tagged};

/// The tiny LLaMA layer with a width every GGUF block divides (768 = 3 · 256 in the MLP).
fn cfg() -> LlamaConfig {
    LlamaConfig {
        hidden_size: 256,
        intermediate_size: 768,
        num_attention_heads: 8,
        num_key_value_heads: Some(2),
        rope_theta: 500_000.0,
        rms_norm_eps: 1e-5,
        ..LlamaConfig::default()
    }
}

fn layer(name: &str, w: Weights) -> Result<LlamaDecoderLayer> {
    LlamaDecoderLayer::new(&cfg(), w.var_builder()).map_err(|source| Error::Block { context: name.to_string(), source })
}

/// `meta`, a part of a model seeded with seed 0 under `prefix`, made lazily unless the
/// preset is listed with zero weights.
fn module(meta: Box<dyn Block>, prefix: &str, w: Weights) -> Arc<dyn ModuleUnderTest> {
    let m: Arc<dyn ModuleUnderTest> = Arc::new(NnModule(meta));
    match w {
        Weights::Seeded => Arc::new(LazyModule::new(m, prefix, 0)),
        Weights::Zeros => m,
    }
}

/// `tiny-llama-lora`: LoRA (r 8, alpha 16, B drawn at random so the adapters change the
/// output) on every projection of the tiny layer, tested as PEFT would train it.
pub(super) fn tiny_llama_lora(batch: usize, seq: usize, w: Weights) -> Result<Vec<ModuleTest>> {
    let name = "tiny-llama-lora";
    let layer = layer(name, w)?;
    let mut lora_cfg = LoraConfig::new(8, 16.0, &["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]);
    lora_cfg.extra.insert("init_lora_weights".into(), serde_json::Value::Bool(false));
    // The adapter's weights are named like PEFT's (`q_proj.lora_A.default.weight`) and, as
    // every preset weight, drawn again per case from the seed and that name.
    LoraModel::attach(&layer).add_adapter("default", &lora_cfg, 0).map_err(|source| Error::Block { context: name.to_string(), source })?;
    let attention = Tagged::new(Box::new(layer.self_attn().clone()), BlockKind::LoraAttention);
    let mut s = Suite::standalone(name).batch_size(batch).seq_len(seq);
    let targets = latency_ms(50.0).memory_mb(64.0);
    s.test_module("attention", module(Box::new(attention), "self_attn", w))
        .checks(checks(true))
        .seq_lengths(attention_sweep(seq))
        .expect_scaling(Scaling::FromCost)
        .expect(targets.clone());
    // No sweep for the MLP: six rank-8 matmuls beside its three large ones add per-call
    // overhead that, on a loaded 2-core machine, moved its fitted exponent past the linear
    // band in 1 of 20 runs (bench/RESULTS.md); tiny-llama sweeps the same MLP without them.
    s.test_module("mlp", module(Box::new(layer.mlp().clone()), "mlp", w)).checks(checks(true)).expect(targets);
    s.test_module("decoder_layer", module(Box::new(layer.clone()), "", w)).checks(checks(true));
    s.module_tests()
}

/// A quantized preset: attention, MLP and the whole layer quantized in `format`, each
/// compared with the same module in f32 (same seeded weights) at the format's tolerance.
fn quantized(name: &str, format: QuantFormat, batch: usize, seq: usize, w: Weights) -> Result<Vec<ModuleTest>> {
    let original = layer(name, w)?;
    let quant = layer(name, w)?;
    quantize_linears(&quant, format, |_| true).map_err(|source| Error::Block { context: name.to_string(), source })?;
    let tolerance = quant_tolerance(format);
    // Quantized weights are frozen, so the gradient check differentiates the input only;
    // dtype parity allows for the kernels' 8-bit activations (`Tolerance::for_quantized_kernels`).
    let checks = checks(true);
    let mut s = Suite::standalone(name).batch_size(batch).seq_len(seq);
    // (test, quantized module, f32 module, prefix in the layer, kind reported)
    type Part<'a> = (&'a str, Box<dyn Block>, Box<dyn Block>, &'a str, BlockKind);
    let parts: [Part; 3] = [
        ("attention", Box::new(quant.self_attn().clone()), Box::new(original.self_attn().clone()), "self_attn", BlockKind::QuantizedAttention),
        ("mlp", Box::new(quant.mlp().clone()), Box::new(original.mlp().clone()), "mlp", BlockKind::QuantizedMlp),
        ("decoder_layer", Box::new(quant.clone()), Box::new(original.clone()), "", BlockKind::LlamaDecoderLayer),
    ];
    for (test, q, f32_module, prefix, kind) in parts {
        let q: Box<dyn Block> = if kind == BlockKind::LlamaDecoderLayer { q } else { Box::new(Tagged::new(q, kind)) };
        // No latency target or sweep: candle's quantized CPU kernels are dot-product loops
        // tuned for one token at a time, several times slower than f32 on a 128-token batch
        // and noisy with it, so bench/RESULTS.md records their speed instead.
        s.test_module(test, module(q, prefix, w))
            .checks(checks.clone())
            .tolerance(tolerance)
            .compare_with_module(module(f32_module, prefix, w))
            .memory_mb(64.0);
    }
    s.module_tests()
}

/// What a module quantized in `format` must keep against its f32 original, judged as a whole
/// output: correlation and signal-to-noise ratio, with an element bound that only a gross
/// failure trips.
///
/// Module tests feed unit-normal inputs, and a real checkpoint's attention turns them into
/// peaked softmaxes whose outputs have heavy-tailed errors: on SmolLM2-135M re-quantized by
/// the library's writer, single elements of a healthy module sit up to several times the
/// output's RMS from the original, so no element bound both passes them and means much.
/// Correlation and SNR measure the whole output, and the SNR also sees a wrong scale (PCC and
/// cosine stay 1 for an output twice too large; its SNR is 0 dB).
///
/// A single matmul keeps the format's bound ([`QuantFormat::min_pcc`]: 0.9999 for 8 bits,
/// 0.99 for 4); a module chains several, so it keeps thirty times the matmul's distance from
/// 1: 0.997 for 8-bit formats and 0.7 for the rest, with an SNR of at least 20 dB and 3 dB.
/// Measured on SmolLM2's 30 layers (`docs/checkpoints.md`): the worst 8-bit module (an
/// attention) at PCC 0.9984 and 24.9 dB, the worst 4-bit one at 0.899 and 6.9 dB. The tiny
/// presets sit far inside (tiny-llama-q8: 0.9998 for the MLP; q4: 0.988), and a layer with
/// planted noise of half its weights' scale falls to about 6 dB.
pub fn quant_tolerance(format: QuantFormat) -> Tolerance {
    let min_pcc = 1.0 - 30.0 * (1.0 - format.min_pcc());
    let (atol_rms, min_snr_db) = if format.is_8bit() { (10.0, 20.0) } else { (100.0, 3.0) };
    Tolerance { atol_rms, min_snr_db: Some(min_snr_db), ..Tolerance::new(0.0, 0.0, min_pcc) }
}

pub(super) fn tiny_llama_q8(batch: usize, seq: usize, w: Weights) -> Result<Vec<ModuleTest>> {
    quantized("tiny-llama-q8", "q8_0".parse().expect("a known format"), batch, seq, w)
}

pub(super) fn tiny_llama_q4(batch: usize, seq: usize, w: Weights) -> Result<Vec<ModuleTest>> {
    quantized("tiny-llama-q4", "q4_0".parse().expect("a known format"), batch, seq, w)
}
