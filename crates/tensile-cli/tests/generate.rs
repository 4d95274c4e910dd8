//! `tensile generate` on the real SmolLM2-135M Q4_1 GGUF (fetched by tools/test.sh; skipped
//! with a reason when absent) and on small GGUF files written by the library, broken in each
//! way a download can break; and `tensile forward --adapter` with a PEFT adapter.

mod common;

use candle_core::{DType, Device};
use common::{assert_usage_error, stderr, stdout, tensile};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn smollm2() -> Option<PathBuf> {
    let p = root().join("test-data/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    if p.exists() {
        return Some(p);
    }
    println!("skipped: {} is missing (tools/fetch-smollm2.sh fetches it)", p.display());
    None
}

fn tiny_gguf(dir: &Path) -> PathBuf {
    let cfg = tensile_nn::llama::LlamaConfig {
        vocab_size: 260,
        hidden_size: 64,
        intermediate_size: 128,
        num_hidden_layers: 1,
        num_attention_heads: 4,
        max_position_embeddings: 32,
        ..Default::default()
    };
    let model = tensile_nn::llama::Llama::new(&cfg, tensile_nn::init::SeededInit::var_builder(1, DType::F32, &Device::Cpu)).unwrap();
    let path = dir.join("tiny.gguf");
    let vocab = tensile_nn::gguf::GgufVocabSpec::byte_level(260).unwrap();
    tensile_nn::gguf::save_gguf(&model, &vocab, "q8_0".parse().unwrap(), "tiny", &path).unwrap();
    path
}

#[test]
fn smollm2_says_paris_and_matches_the_reference_logits() {
    let Some(gguf) = smollm2() else { return };
    let o = tensile(&["generate", "--gguf", gguf.to_str().unwrap(), "--prompt", "The capital of France is", "--max-tokens", "4", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(doc["prompt_ids"], serde_json::json!([504, 3575, 282, 4649, 314]));
    assert!(doc["text"].as_str().unwrap().starts_with(" Paris"), "{}", doc["text"]);
    assert_eq!(doc["tokens"][0], 7042);
    let logits: Vec<f64> = doc["last_logits"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(logits.len(), 49152);
    let reference = candle_core::safetensors::load(root().join("crates/tensile-nn/tests/models/smollm2/last_logits.safetensors"), &Device::Cpu).unwrap();
    let want: Vec<f64> = reference["prompt_0"].to_vec1::<f32>().unwrap().into_iter().map(f64::from).collect();
    let dot: f64 = logits.iter().zip(&want).map(|(a, b)| a * b).sum();
    let n = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!(dot / (n(&logits) * n(&want)) >= 0.99);
    assert!(doc["tokens_per_second"].as_f64().unwrap() > 0.0);
    // Plain output: the prompt and its continuation.
    let o = tensile(&["generate", "--gguf", gguf.to_str().unwrap(), "--prompt", "The capital of France is", "--max-tokens", "2"]);
    assert!(stdout(&o).starts_with("The capital of France is Paris"), "{}", stdout(&o));
}

#[test]
fn sampling_replays_with_its_seed() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = tiny_gguf(dir.path());
    let run = |seed: &str| {
        let o = tensile(&[
            "generate",
            "--gguf",
            gguf.to_str().unwrap(),
            "--prompt",
            "hello",
            "--max-tokens",
            "8",
            "--temperature",
            "1.5",
            "--top-p",
            "0.95",
            "--seed",
            seed,
            "--json",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        serde_json::from_str::<serde_json::Value>(&stdout(&o)).unwrap()["tokens"].clone()
    };
    assert_eq!(run("3"), run("3"));
    let o = tensile(&["generate", "--gguf", gguf.to_str().unwrap(), "--prompt", "hello", "--max-tokens", "4", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(doc["prompt_ids"], serde_json::json!([104, 101, 108, 108, 111]), "one byte-level id per byte");
}

#[test]
fn bad_settings_and_broken_files_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = tiny_gguf(dir.path());
    let g = gguf.to_str().unwrap();
    assert_usage_error(&tensile(&["generate", "--gguf", g, "--prompt", "x", "--temperature=-1"]), "temperature -1");
    assert_usage_error(&tensile(&["generate", "--gguf", g, "--prompt", "x", "--top-p", "0"]), "top_p 0");
    assert_usage_error(&tensile(&["generate", "--gguf", g, "--prompt", "x", "--max-tokens", "40"]), "exceed the context of 32");
    assert_usage_error(&tensile(&["generate", "--gguf", g, "--prompt", ""]), "the prompt has no tokens");
    let bytes = std::fs::read(&gguf).unwrap();
    let broken = dir.path().join("broken.gguf");
    std::fs::write(&broken, &bytes[..bytes.len() - 100]).unwrap();
    assert_usage_error(&tensile(&["generate", "--gguf", broken.to_str().unwrap(), "--prompt", "x"]), "broken.gguf");
    std::fs::write(&broken, [b"XXXX", &bytes[4..]].concat()).unwrap();
    assert_usage_error(&tensile(&["generate", "--gguf", broken.to_str().unwrap(), "--prompt", "x"]), "not a readable GGUF file");
    assert_usage_error(&tensile(&["generate", "--gguf", "/nonexistent.gguf", "--prompt", "x"]), "nonexistent.gguf");
    // A tensor the model needs, renamed away in the header.
    let mut b = bytes.clone();
    let name = b"blk.0.ffn_up.weight";
    let at = b.windows(name.len()).position(|w| w == name).unwrap();
    b[at..at + name.len()].copy_from_slice(b"blk.0.ffn_xx.weight");
    std::fs::write(&broken, &b).unwrap();
    assert_usage_error(&tensile(&["generate", "--gguf", broken.to_str().unwrap(), "--prompt", "x"]), "missing tensor `blk.0.ffn_up.weight`");
    // An unsupported tensor type: the type id after `output_norm.weight`'s one dimension.
    let mut b = bytes.clone();
    let name = b"output_norm.weight";
    let at = b.windows(name.len()).position(|w| w == name).unwrap() + name.len() + 4 + 8;
    b[at..at + 4].copy_from_slice(&99u32.to_le_bytes());
    std::fs::write(&broken, &b).unwrap();
    assert_usage_error(&tensile(&["generate", "--gguf", broken.to_str().unwrap(), "--prompt", "x"]), "99");
}

fn models() -> PathBuf {
    root().join("crates/tensile-nn/tests/models")
}

#[test]
fn forward_applies_a_peft_adapter_merged_or_not() {
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(models().join("tiny-llama/lora_reference.json")).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("inputs.json");
    std::fs::write(&inputs, serde_json::json!({"input_ids": r["input_ids"]}).to_string()).unwrap();
    let flat = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .flat_map(|a| a.as_array().unwrap().iter().flat_map(|b| b.as_array().unwrap().iter().map(|x| x.as_f64().unwrap())))
            .collect()
    };
    let model = models().join("tiny-llama");
    let adapter = models().join("tiny-llama-lora-qv");
    for extra in [vec![], vec!["--merge-adapter"]] {
        let mut args =
            vec!["forward", "--model", model.to_str().unwrap(), "--inputs", inputs.to_str().unwrap(), "--adapter", adapter.to_str().unwrap(), "--json"];
        args.extend(extra.iter());
        let o = tensile(&args);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        let d = flat(&doc["output"]).iter().zip(flat(&r["alpha_logits"])).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(d < 2e-4, "{extra:?}: {d} from PEFT");
        assert_eq!(doc["merged"], !extra.is_empty());
    }
    assert_usage_error(
        &tensile(&["forward", "--model", model.to_str().unwrap(), "--inputs", inputs.to_str().unwrap(), "--adapter", dir.path().to_str().unwrap()]),
        "adapter_config.json",
    );
    let o = tensile(&["forward", "--model", model.to_str().unwrap(), "--inputs", inputs.to_str().unwrap(), "--merge-adapter"]);
    assert_eq!(o.status.code(), Some(2), "--merge-adapter needs --adapter");
}
