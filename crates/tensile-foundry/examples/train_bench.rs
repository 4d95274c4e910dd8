//! Training throughput of the foundry's step on random tokens, the same work as
//! ../shared/anchors/torch_cpu_train.py: a Llama causal LM with tied embeddings, f32,
//! forward + backward + clipping + AdamW, median of 10 steps after 3 warm-ups.
//!
//! usage: train_bench [layers hidden heads kv intermediate vocab seq batch]
//! (the anchor's default: 4 256 4 4 688 8192 256 8); prints one JSON line.

use candle_core::Device;
use rand::{Rng, SeedableRng};
use std::time::Instant;
use tensile_foundry::config::LibraryConfig;
use tensile_foundry::model::TrainModel;
use tensile_foundry::objective::causal;
use tensile_foundry::optim::{clip_grad_norm, AdamW, AdamWConfig};
use tensile_foundry::trainer::step_gradients;
use tensile_nn::llama::LlamaConfig;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tensile_nn::runtime::configure_process();
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse()).collect::<Result<_, _>>()?;
    let args = if args.is_empty() { vec![4, 256, 4, 4, 688, 8192, 256, 8] } else { args };
    let [layers, hidden, heads, kv, inter, vocab, seq, batch] = args[..] else {
        return Err("eight numbers: layers hidden heads kv intermediate vocab seq batch".into());
    };
    let cfg = LlamaConfig {
        vocab_size: vocab,
        hidden_size: hidden,
        intermediate_size: inter,
        num_hidden_layers: layers,
        num_attention_heads: heads,
        num_key_value_heads: Some(kv),
        max_position_embeddings: seq,
        tie_word_embeddings: true,
        ..LlamaConfig::default()
    };
    let model = TrainModel::new(&LibraryConfig::Llama(cfg), 0, &Device::Cpu)?;
    let vars: Vec<_> = model.parameters().iter().map(|(_, v)| v.clone()).collect();
    let mut opt = AdamW::new(model.parameters().to_vec(), AdamWConfig { betas: [0.9, 0.999], eps: 1e-8, weight_decay: 0.1, decay_vectors: true })?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    // The anchor draws one batch of seq + 1 tokens per row and shifts it, as here.
    let examples: Vec<_> = (0..batch).map(|_| causal(&(0..=seq).map(|_| rng.random_range(0..vocab as u32)).collect::<Vec<_>>(), u32::MAX)).collect();
    // Seconds in the passes, the clipping and the optimiser, summed over the timed steps.
    let mut phases = [0.0f64; 3];
    let mut step = |phases: &mut [f64; 3]| -> Result<f64, Box<dyn std::error::Error>> {
        let t = Instant::now();
        let (loss, mut grads) = step_gradients(&model, &examples, batch)?;
        let t1 = Instant::now();
        clip_grad_norm(&vars, &mut grads, 1.0)?;
        let t2 = Instant::now();
        opt.step(&grads, 3e-4)?;
        for (p, d) in phases.iter_mut().zip([t1 - t, t2 - t1, t2.elapsed()]) {
            *p += d.as_secs_f64();
        }
        Ok(loss)
    };
    for _ in 0..3 {
        step(&mut [0.0; 3])?;
    }
    // TRAIN_BENCH_STEPS timed steps (default 10, as the anchor); more for a steadier median
    // or for a profile.
    let timed: usize = std::env::var("TRAIN_BENCH_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(10).max(2);
    let mut times = Vec::new();
    for _ in 0..timed {
        let t = Instant::now();
        step(&mut phases)?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let median = (times[(timed - 1) / 2] + times[timed / 2]) / 2.0;
    println!(
        "{}",
        serde_json::json!({
            "config": {"layers": layers, "hidden": hidden, "heads": heads, "kv_heads": kv, "intermediate": inter, "vocab": vocab, "seq": seq, "batch": batch},
            "params": model.parameter_count(), "step_ms": median * 1e3, "tokens_per_s": (batch * seq) as f64 / median,
            "share": {"passes": phases[0] / phases.iter().sum::<f64>(), "clip": phases[1] / phases.iter().sum::<f64>(), "adamw": phases[2] / phases.iter().sum::<f64>()},
        })
    );
    Ok(())
}
