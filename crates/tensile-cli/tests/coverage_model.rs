//! `tensile coverage --model PATH --spec FILE…`: spec files compared with a checkpoint's own
//! module configurations (every layer by default, read from the shapes only), duplicates
//! listed once, `--fail-uncovered`, the JSON output and the errors.

mod common;

use common::{assert_usage_error, stderr, stdout, tensile};
use std::path::{Path, PathBuf};

fn model(name: &str) -> String {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tensile-nn/tests/models")).join(name).to_str().unwrap().to_string()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

// tiny-llama's attention and MLP (hidden 64, 4 heads, 2 KV heads, head_dim 16, intermediate 96).
const ATTENTION_AND_MLP: &str = r#"
[[test]]
name = "attention"
module = "llama.attention"
config = { hidden_size = 64, num_attention_heads = 4, num_key_value_heads = 2, head_dim = 16, rope_theta = 10000.0 }
input_shape = [1, 16, 64]
checks = ["correctness"]

[[test]]
name = "mlp"
module = "llama.mlp"
config = { hidden_size = 64, intermediate_size = 96 }
input_shape = [1, 16, 64]
checks = ["correctness"]
"#;

// The rest of tiny-llama's declarable modules: its norms and its decoder layer.
const NORM_AND_LAYER: &str = r#"
[[test]]
name = "norm"
module = "llama.rms_norm"
config = { hidden_size = 64, rms_norm_eps = 1e-6 }
input_shape = [1, 16, 64]
checks = ["correctness"]

[[test]]
name = "layer"
module = "llama.decoder_layer"
config = { hidden_size = 64, intermediate_size = 96, num_attention_heads = 4, num_key_value_heads = 2, head_dim = 16, rms_norm_eps = 1e-6, rope_theta = 10000.0 }
input_shape = [1, 16, 64]
checks = ["correctness"]
"#;

/// The `  NAME  KIND  (DIMS)` lines after the "without a spec" header, as (name, kind).
fn uncovered_lines(text: &str) -> Vec<(String, String)> {
    let start = text.lines().position(|l| l.ends_with("without a spec:")).unwrap_or_else(|| panic!("no uncovered list in\n{text}"));
    text.lines()
        .skip(start + 1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| {
            let parts: Vec<&str> = l.trim().split("  ").collect();
            (parts[0].to_string(), parts[1].to_string())
        })
        .collect()
}

#[test]
fn the_model_modules_no_spec_covers_are_listed_once_per_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path(), "part.toml", ATTENTION_AND_MLP);
    let llama = model("tiny-llama");
    let o = tensile(&["coverage", "--model", &llama, "--spec", &spec]);
    assert_eq!(o.status.code(), Some(0), "without --fail-uncovered the report is not a failure: {}", stderr(&o));
    let text = stdout(&o);
    // The table is the specs' coverage.
    assert!(text.starts_with("kind") && text.lines().any(|l| l.starts_with("llama.attention")), "{text}");
    assert!(text.contains(&format!("\n2 module configurations of {llama} without a spec:\n")), "{text}");
    // Both layers' decoder layers share one configuration, and so do the five RMSNorms (two
    // per layer and the final one); the attention and MLP of both layers are covered.
    assert_eq!(
        uncovered_lines(&text),
        [
            ("tiny-llama::model.layers.0 (+1 more)".to_string(), "llama.decoder_layer".to_string()),
            ("tiny-llama::model.layers.0.input_layernorm (+4 more)".to_string(), "llama.rms_norm".to_string()),
        ]
    );
    // The embeddings and the head: no spec file can declare them, so they are only named.
    assert!(stderr(&o).contains("2 modules of") && stderr(&o).contains("(embedding, linear)"), "{}", stderr(&o));

    let o = tensile(&["coverage", "--model", &llama, "--spec", &spec, "--fail-uncovered"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(uncovered_lines(&stdout(&o)).len(), 2);
}

#[test]
fn specs_covering_every_declarable_module_pass_fail_uncovered() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (write(dir.path(), "a.toml", ATTENTION_AND_MLP), write(dir.path(), "b.toml", NORM_AND_LAYER));
    let llama = model("tiny-llama");
    // Two files, as repeated flags or after one flag, are one plan.
    for args in [vec!["--spec", &a, "--spec", &b], vec!["--spec", &a, &b]] {
        let mut cmd = vec!["coverage", "--model", &llama, "--fail-uncovered"];
        cmd.extend(args);
        let o = tensile(&cmd);
        assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
        assert!(stdout(&o).contains(&format!("every module of {llama} has a spec")), "{}", stdout(&o));
        assert!(!stdout(&o).contains("without a spec"), "{}", stdout(&o));
    }
    // One file alone leaves the other's modules uncovered.
    let o = tensile(&["coverage", "--model", &llama, "--fail-uncovered", "--spec", &b]);
    assert_eq!(o.status.code(), Some(1));
    let names: Vec<String> = uncovered_lines(&stdout(&o)).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["tiny-llama::model.layers.0.self_attn (+1 more)", "tiny-llama::model.layers.0.mlp (+1 more)"]);
}

#[test]
fn the_json_output_names_the_model_and_its_uncovered_modules() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path(), "part.toml", ATTENTION_AND_MLP);
    let llama = model("tiny-llama");
    let o = tensile(&["coverage", "--model", &llama, "--spec", &spec, "--json", "--fail-uncovered"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let cov: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("stdout is one JSON document");
    assert_eq!(cov["presets"], serde_json::json!([llama]));
    let uncovered = cov["uncovered"].as_array().unwrap();
    let listed: Vec<(&str, &str, &str)> =
        uncovered.iter().map(|u| (u["preset"].as_str().unwrap(), u["test"].as_str().unwrap(), u["kind"].as_str().unwrap())).collect();
    assert_eq!(
        listed,
        [
            (llama.as_str(), "tiny-llama::model.layers.0 (+1 more)", "llama.decoder_layer"),
            (llama.as_str(), "tiny-llama::model.layers.0.input_layernorm (+4 more)", "llama.rms_norm"),
        ]
    );
    assert_eq!(uncovered[0]["dims"], serde_json::json!({"hidden_size": 64, "intermediate_size": 96, "num_attention_heads": 4, "num_key_value_heads": 2}));
    assert_eq!(uncovered[1]["dims"], serde_json::json!({"hidden_size": 64}));
    let kinds: Vec<&str> = cov["kinds"].as_array().unwrap().iter().map(|k| k["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["llama.attention", "llama.mlp"]);
}

#[test]
fn every_layer_is_compared_by_default_so_modernbert_shows_global_and_local_attention() {
    let dir = tempfile::tempdir().unwrap();
    // A spec of another family covers none of the ModernBERT modules.
    let spec = write(dir.path(), "llama.toml", ATTENTION_AND_MLP);
    let modernbert = model("tiny-modernbert");
    let attention_windows = |args: &[&str]| -> Vec<usize> {
        let mut cmd = vec!["coverage", "--model", &modernbert, "--spec", &spec, "--json"];
        cmd.extend(args);
        let o = tensile(&cmd);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let cov: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        let attention = cov["uncovered"].as_array().unwrap().iter().filter(|u| u["kind"] == "modernbert.attention");
        attention.map(|u| u["dims"]["local_attention"].as_u64().unwrap() as usize).collect()
    };
    // Layers 0 and 2 attend globally (window 0), layer 1 locally (window 6).
    assert_eq!(attention_windows(&[]), [0, 6]);
    // An explicit --layers wins.
    assert_eq!(attention_windows(&["--layers", "0"]), [0]);
    assert_eq!(attention_windows(&["--layers", "1"]), [6]);

    let o = tensile(&["coverage", "--model", &modernbert, "--spec", &spec]);
    let text = stdout(&o);
    assert!(
        text.contains("tiny-modernbert::layers.0.attn (+1 more)  modernbert.attention  (hidden_size 32, local_attention 0, num_attention_heads 2)"),
        "{text}"
    );
    assert!(text.contains("tiny-modernbert::layers.1.attn  modernbert.attention  (hidden_size 32, local_attention 6, num_attention_heads 2)"), "{text}");
}

#[test]
fn a_model_alone_is_read_for_its_shapes_and_compared_with_the_presets() {
    // A copy of tiny-llama whose safetensors file keeps its header and drops every weight:
    // `run` cannot load it, coverage never needs to.
    let dir = tempfile::tempdir().unwrap();
    let src = PathBuf::from(model("tiny-llama"));
    let shapes = dir.path().join("tiny-llama");
    std::fs::create_dir(&shapes).unwrap();
    std::fs::copy(src.join("config.json"), shapes.join("config.json")).unwrap();
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let header = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    std::fs::write(shapes.join("model.safetensors"), &bytes[..header]).unwrap();
    let shapes = shapes.to_str().unwrap();
    assert_eq!(tensile(&["run", "--model", shapes, "--no-progress"]).status.code(), Some(2), "the copy has no weights");

    let o = tensile(&["coverage", "--model", shapes, "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let cov: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(cov["presets"].as_array().unwrap().len(), tensile::presets::all().len(), "a model alone is compared with every preset");
    // Both layers are in the covered plan.
    let tests: Vec<&str> = cov["kinds"].as_array().unwrap().iter().flat_map(|k| k["tests"].as_array().unwrap()).map(|t| t.as_str().unwrap()).collect();
    assert!(tests.contains(&"tiny-llama::model.layers.1.mlp") && tests.contains(&"tiny-llama::model.layers.0.mlp"), "{tests:?}");

    let spec = write(dir.path(), "part.toml", ATTENTION_AND_MLP);
    let o = tensile(&["coverage", "--model", shapes, "--spec", &spec]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(uncovered_lines(&stdout(&o)).len(), 2, "{}", stdout(&o));
}

#[test]
fn a_preset_with_specs_is_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path(), "part.toml", ATTENTION_AND_MLP);
    let o = tensile(&["coverage", "--model", "tiny-llama", "--spec", &spec, "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let cov: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(cov["presets"], serde_json::json!(["tiny-llama"]));
    // The preset's shapes (hidden 256) are not the spec's (hidden 64): all four are uncovered.
    let names: Vec<&str> = cov["uncovered"].as_array().unwrap().iter().map(|u| u["test"].as_str().unwrap()).collect();
    assert_eq!(names, ["tiny-llama::attention", "tiny-llama::mlp", "tiny-llama::norm", "tiny-llama::decoder_layer"]);
}

#[test]
fn bad_input_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path(), "part.toml", ATTENTION_AND_MLP);
    let missing = dir.path().join("missing.toml");
    let llama = model("tiny-llama");
    assert_usage_error(&tensile(&["coverage", "--model", &llama, "--spec", missing.to_str().unwrap()]), "missing.toml");
    assert_usage_error(&tensile(&["coverage", "--spec", &spec, "--spec", missing.to_str().unwrap()]), "missing.toml");
    assert_usage_error(&tensile(&["coverage", "--model", "nope", "--spec", &spec]), "nope");
    assert_usage_error(&tensile(&["coverage", "--model", &llama, "--spec", &spec, "--layers", "5"]), "layer 5 is past the model's 2 layers");
    assert_usage_error(&tensile(&["coverage", "--model", &llama, "--layers", "x"]), "invalid --layers");
    assert_usage_error(&tensile(&["coverage", "--model", "tiny-llama", "--layers", "all"]), "--layers applies to a model on disk");
    assert_usage_error(&tensile(&["coverage", "--spec", &spec, "--layers", "0"]), "--layers applies to a model on disk");
    // Neither --model nor --spec: clap's own error, which names both.
    let o = tensile(&["coverage", "--json"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.starts_with("error: ") && err.contains("--model") && err.contains("--spec"), "{err}");
    assert!(stdout(&o).is_empty());
}
