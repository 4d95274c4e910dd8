//! `tensile forward` and `tensile classify` on model directories that transformers wrote
//! (crates/tensile-nn/tests/models), against the outputs transformers computed for them.

mod common;

use common::{assert_usage_error, stderr, stdout, tensile};
use std::path::{Path, PathBuf};

fn models() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tensile-nn/tests/models"))
}

fn reference(name: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(models().join(name).join("reference.json")).unwrap()).unwrap()
}

fn flat(v: &serde_json::Value) -> Vec<f64> {
    match v {
        serde_json::Value::Array(a) => a.iter().flat_map(flat).collect(),
        x => vec![x.as_f64().unwrap()],
    }
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

fn inputs_file(dir: &Path, doc: serde_json::Value) -> String {
    let path = dir.join("inputs.json");
    std::fs::write(&path, doc.to_string()).unwrap();
    path.display().to_string()
}

#[test]
fn forward_reproduces_transformers_for_every_directory() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["tiny-modernbert", "tiny-modernbert-cls", "tiny-bert-cls"] {
        let r = reference(name);
        let inputs = inputs_file(tmp.path(), serde_json::json!({"input_ids": r["input_ids"], "attention_mask": r["attention_mask"]}));
        let model = models().join(name);
        let o = tensile(&["forward", "--model", model.to_str().unwrap(), "--inputs", &inputs, "--json"]);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
        let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(doc["output_name"], r["output_name"], "{name}");
        assert_eq!(doc["shape"], r["shape"], "{name}");
        assert_eq!(doc["model_type"], if name.contains("modernbert") { "modernbert" } else { "bert" });
        let d = max_diff(&flat(&doc["output"]), &flat(&r["output_f32"]));
        assert!(d <= 1e-4, "{name}: {d:.3e} from transformers");
        // The nesting follows the shape.
        assert_eq!(doc["output"].as_array().unwrap().len(), r["shape"][0].as_u64().unwrap() as usize);
    }
}

#[test]
fn forward_without_a_mask_keeps_every_token() {
    let tmp = tempfile::tempdir().unwrap();
    let r = reference("tiny-modernbert");
    let row0 = &r["input_ids"][0];
    let inputs = inputs_file(tmp.path(), serde_json::json!({ "input_ids": [row0] }));
    let model = models().join("tiny-modernbert");
    let o = tensile(&["forward", "--model", model.to_str().unwrap(), "--inputs", &inputs, "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    // Row 0 of the reference has no padding, so its outputs are the same.
    let d = max_diff(&flat(&doc["output"]), &flat(&r["output_f32"][0]));
    assert!(d <= 1e-4, "{d:.3e}");
    let plain = tensile(&["forward", "--model", model.to_str().unwrap(), "--inputs", &inputs]);
    assert_eq!(plain.status.code(), Some(0));
    assert!(stdout(&plain).starts_with("ModernBertModel last_hidden_state [1, 11, 32] ["), "{}", stdout(&plain));
}

#[test]
fn classify_reproduces_transformers_through_the_tokenizer() {
    for name in ["tiny-modernbert-cls", "tiny-bert-cls"] {
        let r = reference(name);
        let model = models().join(name);
        let mut args = vec!["classify", "--model", model.to_str().unwrap(), "--json"];
        let texts: Vec<String> = r["texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
        for t in &texts {
            args.extend(["--text", t.as_str()]);
        }
        let o = tensile(&args);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
        let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        let predictions = doc["predictions"].as_array().unwrap();
        assert_eq!(predictions.len(), texts.len());
        let labels: Vec<String> = {
            let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(model.join("config.json")).unwrap()).unwrap();
            (0..cfg["id2label"].as_object().unwrap().len()).map(|i| cfg["id2label"][i.to_string()].as_str().unwrap().to_string()).collect()
        };
        for (p, want) in predictions.iter().zip(r["text_logits_f32"].as_array().unwrap()) {
            let (logits, want) = (flat(&p["logits"]), flat(want));
            assert!(max_diff(&logits, &want) <= 1e-4, "{name}: {logits:?} vs {want:?}");
            // The label is the most likely class; the probabilities are its softmax.
            let best = (0..want.len()).fold(0, |b, i| if want[i] > want[b] { i } else { b });
            assert_eq!(p["label"], labels[best].as_str());
            let z: f64 = want.iter().map(|l| l.exp()).sum();
            for (i, l) in labels.iter().enumerate() {
                assert!((p["scores"][l].as_f64().unwrap() - want[i].exp() / z).abs() < 1e-5, "{name}: {l}");
            }
        }
        let plain = tensile(&["classify", "--model", model.to_str().unwrap(), "--text", "w5 w6"]);
        assert_eq!(plain.status.code(), Some(0));
        assert_eq!(stdout(&plain).lines().count(), 1);
        assert!(labels.iter().any(|l| stdout(&plain).starts_with(l.as_str())), "{}", stdout(&plain));
    }
}

/// A copy of a model directory, changed by `edit`.
fn copy_of(name: &str, edit: impl FnOnce(&Path)) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        let src = models().join(name).join(f);
        if src.exists() {
            std::fs::copy(src, tmp.path().join(f)).unwrap();
        }
    }
    edit(tmp.path());
    tmp
}

#[test]
fn bad_inputs_are_usage_errors_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let model = models().join("tiny-modernbert-cls");
    let m = model.to_str().unwrap();
    let run = |doc: serde_json::Value| {
        let inputs = inputs_file(tmp.path(), doc);
        tensile(&["forward", "--model", m, "--inputs", &inputs])
    };
    for (doc, needle) in [
        (serde_json::json!({"input_ids": [[1, 2], [3]]}), "row 1 has 1 ids"),
        (serde_json::json!({"input_ids": [[1, 200]]}), "outside the vocabulary 0..100"),
        (serde_json::json!({"input_ids": [[1, -1]]}), "outside the vocabulary"),
        (serde_json::json!({"input_ids": []}), "holds no tokens"),
        (serde_json::json!({"input_ids": [[1, 2]], "attention_mask": [[1]]}), "shape of `input_ids`"),
        (serde_json::json!({"input_ids": [[1, 2]], "attention_mask": [[1, 2]]}), "only 0 and 1"),
        (serde_json::json!({"input_ids": [[1, 2]], "attention_mask": [[0, 0]]}), "masks every token"),
        (serde_json::json!({"input_ids": [[1, 2]], "mask": [[1, 1]]}), "unknown field `mask`"),
    ] {
        let o = run(doc);
        assert_usage_error(&o, needle);
        assert!(stderr(&o).contains("inputs.json"), "{}", stderr(&o));
    }
    let missing = tmp.path().join("absent.json");
    assert_usage_error(&tensile(&["forward", "--model", m, "--inputs", missing.to_str().unwrap()]), "absent.json");
    assert_usage_error(&tensile(&["forward", "--model", m, "--inputs", missing.to_str().unwrap(), "--dtype", "f8"]), "f8");
}

#[test]
fn broken_model_directories_are_usage_errors_naming_the_file_and_the_tensor() {
    let tmp = tempfile::tempdir().unwrap();
    let r = reference("tiny-modernbert-cls");
    let inputs = inputs_file(tmp.path(), serde_json::json!({"input_ids": r["input_ids"]}));
    let forward = |dir: &Path| tensile(&["forward", "--model", dir.to_str().unwrap(), "--inputs", &inputs]);
    let truncated = copy_of("tiny-modernbert-cls", |d| {
        let p = d.join("model.safetensors");
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 100]).unwrap();
    });
    assert_usage_error(&forward(truncated.path()), "model.safetensors");
    let wrong_shape = copy_of("tiny-modernbert-cls", |d| {
        let p = d.join("config.json");
        let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        v["hidden_size"] = 48.into();
        v["num_attention_heads"] = 4.into();
        std::fs::write(&p, v.to_string()).unwrap();
    });
    let o = forward(wrong_shape.path());
    assert_usage_error(&o, "model.safetensors");
    assert!(stderr(&o).contains("tok_embeddings") || stderr(&o).contains("shape"), "{}", stderr(&o));
    let no_config = copy_of("tiny-modernbert-cls", |d| std::fs::remove_file(d.join("config.json")).unwrap());
    assert_usage_error(&forward(no_config.path()), "config.json");
    // classify needs a head and a tokenizer.
    let base = models().join("tiny-modernbert");
    assert_usage_error(&tensile(&["classify", "--model", base.to_str().unwrap(), "--text", "w5"]), "no sequence-classification head");
    let no_tokenizer = copy_of("tiny-bert-cls", |d| std::fs::remove_file(d.join("tokenizer.json")).unwrap());
    assert_usage_error(&tensile(&["classify", "--model", no_tokenizer.path().to_str().unwrap(), "--text", "w5"]), "tokenizer.json");
}
