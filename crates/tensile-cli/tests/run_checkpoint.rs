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
        ("tiny-bert-cls", &["encoder.layer.0.attention", "encoder.layer.0.mlp", "tiny-bert-cls::head "][..]),
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

/// The per-module quantization report: a model quantized to Q8_0 by the library's own GGUF
/// writer, with layer 1's MLP planted to be badly quantized (noise of half the weights' scale
/// added before quantization), against its f32 original. Only that layer's modules fail.
#[test]
fn the_quantization_report_flags_the_planted_layer() {
    use candle_core::{DType, Device, Tensor};
    use tensile_nn::llama::{Llama, LlamaConfig};
    use tensile_nn::Block;
    let out = tempfile::tempdir().unwrap();
    let cfg = LlamaConfig {
        vocab_size: 300,
        hidden_size: 64,
        intermediate_size: 128,
        num_hidden_layers: 3,
        num_attention_heads: 4,
        num_key_value_heads: Some(2),
        max_position_embeddings: 64,
        ..LlamaConfig::default()
    };
    let original = Llama::new(&cfg, tensile_nn::init::SeededInit::var_builder(1, DType::F32, &Device::Cpu)).unwrap();
    let original_dir = out.path().join("original");
    tensile_nn::save_pretrained(&tensile_nn::PretrainedModel::causal_lm(original.clone(), serde_json::Value::Null), &original_dir).unwrap();
    let mut params: std::collections::HashMap<String, Tensor> = original.parameters().into_iter().collect();
    let name = "model.layers.1.mlp.down_proj.weight";
    let w = params[name].clone();
    let scale = w.sqr().unwrap().mean_all().unwrap().sqrt().unwrap().to_scalar::<f32>().unwrap();
    let noise = (tensile_nn::init::randn(9, "noise", w.shape().clone(), DType::F32, &Device::Cpu).unwrap() * f64::from(0.5 * scale)).unwrap();
    params.insert(name.to_string(), (w + noise).unwrap());
    let planted = Llama::new(&cfg, candle_nn::VarBuilder::from_tensors(params, DType::F32, &Device::Cpu)).unwrap();
    let gguf = out.path().join("planted.q8_0.gguf");
    let vocab = tensile_nn::gguf::GgufVocabSpec::byte_level(300).unwrap();
    tensile_nn::gguf::save_gguf(&planted, &vocab, "q8_0".parse().unwrap(), "planted", &gguf).unwrap();
    let (html, json) = (out.path().join("report.html"), out.path().join("report.json"));
    let o = run(
        &gguf,
        &[
            "--compare-with",
            original_dir.to_str().unwrap(),
            "--layers",
            "all",
            "--checks",
            "correctness",
            "--html",
            html.to_str().unwrap(),
            "--report-json",
            json.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}\n{}", stdout(&o), stderr(&o));
    let failed: Vec<String> = stdout(&o).lines().filter(|l| l.starts_with("✗ ")).map(|l| l.split_whitespace().nth(1).unwrap().to_string()).collect();
    assert_eq!(failed, ["planted.q8_0::model.layers.1", "planted.q8_0::model.layers.1.mlp"], "{}", stdout(&o));
    let passed = stdout(&o).lines().filter(|l| l.starts_with("✓ ")).count();
    assert!(passed >= 12, "every other module of the three layers, the embeddings, the norm and the head pass: {}", stdout(&o));
    // Every module reports its output's SNR, and the planted MLP's is the lowest of the MLPs
    // by a wide margin (Q8_0 alone keeps some 40 dB).
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let snr = |name: &str| -> f64 {
        let case = report["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == format!("planted.q8_0::{name}"))
            .unwrap_or_else(|| panic!("{name} not in the report"));
        case["checks"][0]["metrics"]["snr_db"].as_f64().unwrap_or_else(|| panic!("no snr_db for {name}: {case}"))
    };
    let mlps: Vec<f64> = (0..3).map(|i| snr(&format!("model.layers.{i}.mlp"))).collect();
    assert!(mlps[1] + 10.0 < mlps[0].min(mlps[2]), "the planted MLP stands out: {mlps:?}");
    assert!(mlps[0] > 30.0 && mlps[2] > 30.0, "8-bit quantization alone keeps over 30 dB: {mlps:?}");
    // The html report's per-layer plot marks exactly the two failed modules, both at layer 1.
    let page = std::fs::read_to_string(&html).unwrap();
    let section = page.split("<section id=\"layers\">").nth(1).expect("a per-layer error section").split("</section>").next().unwrap();
    assert_eq!(section.matches("class=\"fail\"").count(), 2, "{section}");
    assert!(section.contains("mlp: lowest ") && section.contains("dB at layer 1"), "{section}");
    assert!(section.contains("failed: planted.q8_0::model.layers.1, planted.q8_0::model.layers.1.mlp"), "{section}");
    // The format's default tolerance can be overridden: with no correlation or SNR floor, the
    // planted layer passes.
    let o = run(
        &gguf,
        &[
            "--compare-with",
            original_dir.to_str().unwrap(),
            "--layers",
            "1",
            "--checks",
            "correctness",
            "--tolerance",
            "min_pcc=0,min_cosine=0,min_snr_db=-100",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert_usage_error(&run(&gguf, &["--tolerance", "atol=1,tol=2"]), "invalid --tolerance: unknown field `tol`");
    // Against a model of another shape, the first mismatching tensor is named.
    let other = LlamaConfig { intermediate_size: 96, ..cfg };
    let other_dir = out.path().join("other");
    let m = Llama::new(&other, tensile_nn::init::SeededInit::var_builder(1, DType::F32, &Device::Cpu)).unwrap();
    tensile_nn::save_pretrained(&tensile_nn::PretrainedModel::causal_lm(m, serde_json::Value::Null), &other_dir).unwrap();
    assert_usage_error(&run(&gguf, &["--compare-with", other_dir.to_str().unwrap()]), "model.layers.0.mlp.gate_proj.weight` has shape [128, 64]");
    assert_usage_error(
        &tensile(&["run", "--model", "tiny-llama", "--compare-with", other_dir.to_str().unwrap()]),
        "--compare-with needs --model DIR or FILE.gguf",
    );
}

/// SmolLM2-135M Q4_1 against the dequantized f32 copy the library writes of it: what is left
/// is the quantized kernels' own error (activations rounded for the integer dot products),
/// which the format's tolerance must accept in every module of the first layer.
#[test]
fn smollm2_q4_1_against_its_dequantized_copy() {
    let gguf = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../test-data/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"));
    if !gguf.exists() {
        println!("skipped: {} is missing (tools/fetch-smollm2.sh fetches it)", gguf.display());
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let f32_dir = out.path().join("smollm2-f32");
    let o = tensile(&["dequantize", gguf.to_str().unwrap(), "--out", f32_dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("162826560 parameters in f32"), "{}", stdout(&o));
    // A second write into the same directory is refused rather than mixed with the first.
    assert_usage_error(&tensile(&["dequantize", gguf.to_str().unwrap(), "--out", f32_dir.to_str().unwrap()]), "already holds a model");
    let o = run(&gguf, &["--compare-with", f32_dir.to_str().unwrap(), "--checks", "correctness"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("model.layers.0.mlp") && stdout(&o).contains("lm_head"), "{}", stdout(&o));
    // Against its own float64 twin, the quantized head (576-wide dot products, logits of RMS
    // about 4) passes at the quantized kernels' default, whose element bound scales with the
    // output's RMS.
    let o = run(&gguf, &["--checks", "correctness"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).lines().any(|l| l.starts_with("✓ ") && l.contains("::lm_head")), "{}", stdout(&o));
}

#[test]
fn list_shows_what_run_would_derive_without_reading_weights() {
    let llama = models().join("tiny-llama");
    let o = tensile(&["list", "--model", llama.to_str().unwrap(), "--layers", "all"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.starts_with("directory ") && text.contains("(2 layers, "), "{text}");
    let run_names: Vec<String> = stdout(&run(&llama, &["--layers", "all"]))
        .lines()
        .filter(|l| l.starts_with("✓ ") || l.starts_with("✗ "))
        .map(|l| l.split_whitespace().nth(1).unwrap().to_string())
        .collect();
    let listed: Vec<String> = text.lines().skip(1).map(|l| l.split_whitespace().next().unwrap().to_string()).collect();
    assert_eq!(listed.len(), 13);
    let mut a = listed.clone();
    let mut b = run_names;
    a.sort();
    b.sort();
    assert_eq!(a, b, "list names exactly what run runs");
    // A header that lies about a shape is caught as the real load would catch it.
    let out = tempfile::tempdir().unwrap();
    std::fs::copy(llama.join("model.safetensors"), out.path().join("model.safetensors")).unwrap();
    let cfg = std::fs::read_to_string(llama.join("config.json")).unwrap().replace("\"intermediate_size\": 96", "\"intermediate_size\": 80");
    std::fs::write(out.path().join("config.json"), cfg).unwrap();
    let o = tensile(&["list", "--model", out.path().to_str().unwrap()]);
    assert_usage_error(&o, "shape");
    assert_usage_error(&tensile(&["list", "--model", "/nonexistent"]), "not a model directory");
}
