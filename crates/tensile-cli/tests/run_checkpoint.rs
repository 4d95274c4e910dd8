//! `tensile run --model DIR | FILE.gguf`: module tests derived from a checkpoint's own config
//! and real weights, the weights health check, layer selection, and the errors.

mod common;

use common::{assert_usage_error, stderr, stdout, tensile};
use std::path::{Path, PathBuf};

fn models() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tensile-nn/tests/models"))
}

fn run(model: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["run", "--model", model.to_str().unwrap(), "--no-progress"];
    args.extend(extra);
    tensile(&args)
}

#[test]
fn each_family_directory_runs_its_real_weight_module_tests() {
    for (dir, expected) in [
        ("tiny-llama", &["model.layers.0.self_attn", "model.layers.0.mlp", "model.embed_tokens", "model.norm", "lm_head"][..]),
        ("tiny-modernbert", &["layers.0.attn", "layers.0.mlp", "final_norm"][..]),
        ("tiny-bert-cls", &["encoder.layer.0.attention", "encoder.layer.0.mlp"][..]),
    ] {
        let o = run(&models().join(dir), &[]);
        assert_eq!(o.status.code(), Some(0), "{dir}: {}\n{}", stdout(&o), stderr(&o));
        let text = stdout(&o);
        for name in expected {
            assert!(text.contains(&format!("{dir}::")) && text.contains(name), "{dir}: no `{name}` test in\n{text}");
        }
        assert!(!text.contains("layers.1") && !text.contains("layer.1."), "{dir}: layer 0 only by default");
        assert!(stderr(&o).contains("every value finite"), "{dir}: {}", stderr(&o));
    }
}

#[test]
fn layers_select_which_layers_are_tested() {
    let llama = models().join("tiny-llama");
    let o = run(&llama, &["--layers", "all"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("model.layers.1.mlp") && stdout(&o).contains("model.layers.0.mlp"));
    let o = run(&llama, &["--layers", "1"]);
    assert!(stdout(&o).contains("model.layers.1.mlp") && !stdout(&o).contains("model.layers.0.mlp"), "{}", stdout(&o));
    assert_usage_error(&run(&llama, &["--layers", "5"]), "layer 5 is past the model's 2 layers");
    assert_usage_error(&run(&llama, &["--layers", "x"]), "invalid --layers");
}

#[test]
fn a_non_finite_weight_fails_the_run_naming_the_tensor() {
    let out = tempfile::tempdir().unwrap();
    let src = models().join("tiny-llama");
    std::fs::copy(src.join("config.json"), out.path().join("config.json")).unwrap();
    let mut weights = candle_core::safetensors::load(src.join("model.safetensors"), &candle_core::Device::Cpu).unwrap();
    let name = "model.layers.1.mlp.down_proj.weight";
    let t = &weights[name];
    let mut v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    v[3] = f32::NAN;
    let shape = t.shape().clone();
    weights.insert(name.to_string(), candle_core::Tensor::from_vec(v, shape, &candle_core::Device::Cpu).unwrap());
    candle_core::safetensors::save(&weights, out.path().join("model.safetensors")).unwrap();
    // Layer 0's tests pass; the health check still fails the run on layer 1's weight.
    let o = run(out.path(), &[]);
    assert_eq!(o.status.code(), Some(1), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains(&format!("FAIL weight `{name}` has 1 non-finite values")), "{}", stderr(&o));
}

#[test]
fn a_path_that_is_no_model_is_one_line_naming_what_was_tried() {
    let out = tempfile::tempdir().unwrap();
    let o = run(out.path(), &[]);
    assert_usage_error(&o, "is not a model directory (with config.json) or a .gguf file either");
    assert!(stderr(&o).contains("unknown preset") && stderr(&o).contains("tiny-llama"), "the presets are listed: {}", stderr(&o));
}

#[test]
fn minilm_runs_from_its_directory() {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../test-data/all-MiniLM-L6-v2"));
    if !dir.join("config.json").exists() {
        println!("skipped: {} is missing (tools/test.sh fetches it)", dir.display());
        return;
    }
    let o = run(&dir, &[]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("encoder.layer.0.attention") && stdout(&o).contains("embeddings"), "{}", stdout(&o));
}
