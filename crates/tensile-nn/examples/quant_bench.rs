//! Quantized matmul against f32 at Llama-3-8B MLP shapes, and SmolLM2 generation speed at
//! several prompt lengths: `cargo run --release -p tensile-nn --example quant_bench`.
//! Every ratio is measured in one run on one machine; the results go to bench/RESULTS.md.
//!
//! The f32 side is candle's GEMM on the dense weight; each quantized side multiplies the same
//! activations with the weight in that format (GGUF formats through candle's quantized
//! kernels, int8/int4 by dequantizing to f32 first).

use candle_core::{DType, Device, Module, Tensor};
use std::time::Instant;
use tensile_nn::generate::{generate, Sampling};
use tensile_nn::init::randn;
use tensile_nn::quant::{QuantFormat, QuantizedWeight};

/// Median seconds of `reps` runs of `f` after one warm-up.
fn median(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn main() -> anyhow_free::Result {
    let dev = Device::Cpu;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("# quantized matmul vs f32, Llama-3-8B MLP up projection 4096 → 14336 ({threads} threads)\n");
    println!("| tokens | format | ms | f32 ms | quantized / f32 |");
    println!("|---|---|---|---|---|");
    let w = randn(0, "w", (14336, 4096), DType::F32, &dev)?;
    let dense = candle_nn::Linear::new(w.clone(), None);
    for tokens in [1usize, 128] {
        let x = randn(1, "x", (1, tokens, 4096), DType::F32, &dev)?;
        let reps = if tokens == 1 { 20 } else { 5 };
        let f32_s = median(reps, || drop(dense.forward(&x).unwrap()));
        for name in ["q8_0", "q4_0", "q4_1", "q4_k", "q6_k", "int8", "int4-g32"] {
            let format: QuantFormat = name.parse()?;
            let q = QuantizedWeight::quantize(&w, format)?;
            let s = median(reps, || drop(q.forward(&x).unwrap()));
            println!("| {tokens} | {name} | {:.2} | {:.2} | {:.2} |", s * 1e3, f32_s * 1e3, s / f32_s);
        }
    }
    let gguf = std::path::Path::new("test-data/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !gguf.exists() {
        println!("\nSmolLM2 skipped: {} is missing (tools/fetch-smollm2.sh)", gguf.display());
        return Ok(());
    }
    let m = tensile_nn::gguf::load_gguf(gguf, &dev)?;
    println!("\n# SmolLM2-135M-Instruct Q4_1: greedy decoding with the KV cache\n");
    println!("| prompt tokens | prompt ms | new tokens | decode tokens/s |");
    println!("|---|---|---|---|");
    for prompt_len in [8usize, 64, 256] {
        let prompt: Vec<u32> = (0..prompt_len as u32).map(|i| 100 + i % 1000).collect();
        let g = generate(&m.model, &prompt, 33, &Sampling::default(), &[], &dev)?;
        println!("| {prompt_len} | {:.0} | {} | {:.1} |", g.prompt_seconds * 1e3, g.tokens.len(), g.tokens_per_second());
    }
    let _ = Tensor::zeros(1, DType::F32, &dev)?;
    Ok(())
}

/// `main`'s error type without a dependency: any error, printed by its `Debug`.
mod anyhow_free {
    pub type Result = std::result::Result<(), Box<dyn std::error::Error>>;
}
