//! End-to-end tests of the built `tensile` binary: exit codes, output formats, one-line errors.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tensile(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tensile")).args(args).output().expect("binary runs")
}

fn golden_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tensile-nn/tests/golden"))
}

fn golden_files() -> Vec<String> {
    let mut files: Vec<String> =
        std::fs::read_dir(golden_dir()).unwrap().map(|e| e.unwrap().path().display().to_string()).filter(|p| p.ends_with(".safetensors")).collect();
    files.sort();
    files
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit code 2 with exactly one `error:` line and no panic.
fn assert_usage_error(o: &Output, mentions: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains(mentions), "`{}` should mention `{mentions}`", lines[0]);
}

/// Rewrites a case file with some tensors changed or dropped and metadata replaced.
fn edited_case(src: &Path, dst: &Path, drop: &[&str], perturb_output: bool, module: Option<&str>) {
    let bytes = std::fs::read(src).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut metadata: HashMap<String, String> = meta.metadata().clone().unwrap();
    if let Some(kind) = module {
        let mut case: serde_json::Value = serde_json::from_str(&metadata["tensile.case"]).unwrap();
        case["module"] = serde_json::Value::String(kind.to_string());
        metadata.insert("tensile.case".into(), case.to_string());
    }
    let mut owned: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, view) in st.tensors() {
        if drop.contains(&name.as_str()) {
            continue;
        }
        let mut data = view.data().to_vec();
        if perturb_output && name == "output" {
            // Flip the sign of the first float64 element.
            data[7] ^= 0x80;
        }
        owned.push((name, view.dtype(), view.shape().to_vec(), data));
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> =
        owned.iter().map(|(n, d, s, b)| (n.clone(), safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap())).collect();
    safetensors::serialize_to_file(views, Some(metadata), dst).unwrap();
}

#[test]
fn golden_check_passes_every_committed_case_in_every_dtype() {
    let files = golden_files();
    assert!(files.len() >= 10);
    for dtype in ["f32", "bf16", "f16"] {
        let mut args = vec!["golden", "check", "--dtype", dtype];
        args.extend(files.iter().map(String::as_str));
        let o = tensile(&args);
        let out = stdout(&o);
        assert_eq!(o.status.code(), Some(0), "{dtype}: {out}{}", stderr(&o));
        assert!(out.lines().next().unwrap().starts_with("case"), "header");
        assert_eq!(out.lines().filter(|l| l.ends_with("PASS")).count(), files.len(), "{out}");
    }
}

#[test]
fn golden_check_json_has_the_documented_keys() {
    let files = golden_files();
    let mut args = vec!["golden", "check", "--json"];
    args.extend(files.iter().map(String::as_str));
    let o = tensile(&args);
    assert_eq!(o.status.code(), Some(0));
    let lines: Vec<serde_json::Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), files.len());
    for v in &lines {
        for key in ["file", "module", "passed", "max_abs", "max_rel", "pcc", "cosine"] {
            assert!(v.get(key).is_some(), "{key} missing in {v}");
        }
        assert_eq!(v["passed"], true);
    }
}

#[test]
fn golden_check_failures_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("perturbed.safetensors");
    edited_case(&golden_dir().join("llama_mlp.safetensors"), &bad, &[], true, None);
    let o = tensile(&["golden", "check", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("FAIL"));
    let o = tensile(&["golden", "check", "--json", bad.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["passed"], false);
    // f32 cannot match a float64 reference exactly.
    let real = golden_dir().join("llama_attention_gqa.safetensors");
    let o = tensile(&["golden", "check", "--atol", "0", "--rtol", "0", real.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn golden_check_bad_files_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.safetensors");
    edited_case(&golden_dir().join("llama_decoder_layer.safetensors"), &missing, &["self_attn.q_proj.weight"], false, None);
    assert_usage_error(&tensile(&["golden", "check", missing.to_str().unwrap()]), "self_attn.q_proj.weight");
    let no_output = dir.path().join("no_output.safetensors");
    edited_case(&golden_dir().join("llama_rms_norm.safetensors"), &no_output, &["output"], false, None);
    assert_usage_error(&tensile(&["golden", "check", no_output.to_str().unwrap()]), "`output`");
    let unknown = dir.path().join("unknown.safetensors");
    edited_case(&golden_dir().join("llama_rms_norm.safetensors"), &unknown, &[], false, Some("llama.attn"));
    assert_usage_error(&tensile(&["golden", "check", unknown.to_str().unwrap()]), "llama.attn");
    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"not a tensor file at all").unwrap();
    assert_usage_error(&tensile(&["golden", "check", garbage.to_str().unwrap()]), "not a safetensors file");
    assert_usage_error(&tensile(&["golden", "check", "/nonexistent/case.safetensors"]), "/nonexistent/case.safetensors");
    // A good file next to a bad one is still checked and reported.
    let good = golden_dir().join("llama_rms_norm.safetensors");
    let o = tensile(&["golden", "check", good.to_str().unwrap(), "/nonexistent/case.safetensors"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stdout(&o).contains("PASS"));
}

#[test]
fn bad_arguments_exit_2() {
    let good = golden_dir().join("llama_rms_norm.safetensors");
    let good = good.to_str().unwrap();
    if !candle_core::utils::cuda_is_available() {
        assert_usage_error(&tensile(&["golden", "check", "--device", "cuda", good]), "CUDA");
    }
    assert_usage_error(&tensile(&["golden", "check", "--dtype", "fp8", good]), "fp8");
    let o = tensile(&["golden", "check"]);
    assert_eq!(o.status.code(), Some(2));
    assert_usage_error(&tensile(&["embed", "--model", "/nonexistent", "--text", "hi"]), "config.json");
    assert_usage_error(&tensile(&["run", "--model", "gpt-9"]), "unknown preset `gpt-9`");
    assert_usage_error(&tensile(&["run", "--model", "tiny-llama", "--checks", "correctness,vibes"]), "unknown check `vibes`");
    assert_usage_error(&tensile(&["run", "--model", "tiny-llama", "--filter", "["]), "filter");
    assert_usage_error(&tensile(&["run", "--model", "tiny-llama", "--filter", "*nothing*"]), "matches the filter");
    assert_usage_error(&tensile(&["run", "--model", "tiny-llama", "--device", "tpu"]), "expected cpu, cuda or cuda:N");
    assert_usage_error(&tensile(&["run", "--model", "tiny-llama", "--seq-len", "0"]), "seq_len");
}

/// Timing verdicts depend on the machine and on what else runs (tests run in parallel), so
/// end-to-end tests assert that timing checks measured something, and that every other check
/// passed. Speed claims live in bench/RESULTS.md.
fn assert_untimed_checks_passed(report: &serde_json::Value) {
    for case in report["cases"].as_array().unwrap() {
        for check in case["checks"].as_array().unwrap() {
            let name = check["check"].as_str().unwrap();
            if matches!(name, "performance" | "scaling") {
                assert!(!check["metrics"].as_object().unwrap().is_empty(), "{name} measured nothing");
            } else {
                assert_eq!(check["passed"], true, "{} {name}: {}", case["name"], check["errors"]);
            }
        }
    }
}

#[test]
fn run_tiny_llama_runs_every_check_and_writes_a_json_report() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let o = tensile(&["run", "--model", "tiny-llama", "--no-progress", "--report-json", report.to_str().unwrap()]);
    let out = stdout(&o);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{out}{}", stderr(&o));
    for module in ["attention", "mlp", "norm", "decoder_layer"] {
        assert!(out.contains(&format!(" tiny-llama::{module} ")), "{out}");
    }
    assert!(out.contains("4 cases: "), "{out}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(v["schema_version"], 1);
    assert_eq!(o.status.code() == Some(0), v["totals"]["checks_failed"] == 0, "exit code follows the verdicts");
    let checks: Vec<&str> = v["cases"][0]["checks"].as_array().unwrap().iter().map(|c| c["check"].as_str().unwrap()).collect();
    assert_eq!(checks, ["correctness", "gradients", "determinism", "batch_invariance", "dtype_parity", "performance", "memory", "scaling"]);
    let perf = &v["cases"][0]["checks"][5]["metrics"];
    assert!(perf["median_ms"].as_f64().unwrap() > 0.0 && perf["gflops"].as_f64().unwrap() > 0.0);
    assert!(v["cases"][0]["checks"][6]["metrics"]["peak_mb"].as_f64().unwrap() > 0.0, "the CLI installs the counting allocator");
    assert_untimed_checks_passed(&v);
}

#[test]
fn run_filters_checks_and_dtypes() {
    let o = tensile(&[
        "run",
        "--model",
        "tiny-bert",
        "--no-progress",
        "--filter",
        "*ffn",
        "--checks",
        "correctness,determinism",
        "--dtype",
        "bf16",
        "--seq-len",
        "16",
    ]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("✓ tiny-bert::ffn") && out.contains("bf16") && out.contains("[1,16,128]"), "{out}");
    assert!(out.contains("1 cases: 1 passed, 0 failed; 2 checks"), "{out}");
}

#[test]
fn gpu_class_targets_fail_on_cpu_and_say_so() {
    // One cheap module of a real-size preset: the FFN's performance and memory targets at a
    // short sequence still describe a GPU.
    let o = tensile(&["run", "--model", "llama2-7b", "--no-progress", "--filter", "*mlp", "--checks", "performance", "--seq-len", "64"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("GPU-class target (3 ms) measured on cpu: expected to fail here"), "{out}");
}

#[test]
fn cuda_runs_skip_with_a_reason_on_a_cpu_build() {
    if candle_core::utils::cuda_is_available() {
        println!("skipped: this build has CUDA");
        return;
    }
    let o = tensile(&["run", "--model", "tiny-llama", "--no-progress", "--device", "cuda", "--filter", "*norm"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(stderr(&o).contains("will be skipped"));
    assert!(out.contains("skipped: device unavailable"), "{out}");
}

#[test]
fn list_prints_every_preset() {
    let o = tensile(&["list"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0));
    for p in ["tiny-llama", "tiny-bert", "llama3-8b", "llama2-7b", "bert-base", "minilm-l6"] {
        assert!(out.lines().any(|l| l.starts_with(p)), "{p} missing:\n{out}");
    }
    assert!(out.contains("llama3-8b::attention") && out.contains("[1, 2048, 4096]") && out.contains("GPU-class"));
}

fn minilm_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("TENSILE_MINILM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../test-data/all-MiniLM-L6-v2")));
    if dir.join("model.safetensors").exists() {
        Some(dir)
    } else {
        println!("skipped: MiniLM test data not found at {}; run tools/fetch-test-data.sh", dir.display());
        None
    }
}

#[test]
fn embed_matches_sentence_transformers() {
    let Some(dir) = minilm_dir() else { return };
    let reference: serde_json::Value = serde_json::from_str(include_str!("../../tensile-nn/tests/data/minilm_reference.json")).unwrap();
    let texts: Vec<&str> = reference["texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    let mut args = vec!["embed", "--model", dir.to_str().unwrap(), "--json"];
    for t in &texts {
        args.extend(["--text", t]);
    }
    let o = tensile(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let got = v["embeddings"].as_array().unwrap();
    assert_eq!(got.len(), texts.len());
    for (g, r) in got.iter().zip(reference["embeddings"].as_array().unwrap()) {
        let g: Vec<f64> = g.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        let r: Vec<f64> = r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        assert_eq!(g.len(), 384);
        let dot: f64 = g.iter().zip(&r).map(|(a, b)| a * b).sum();
        let cos = dot / (g.iter().map(|a| a * a).sum::<f64>().sqrt() * r.iter().map(|b| b * b).sum::<f64>().sqrt());
        assert!(cos >= 0.9999, "cosine {cos}");
    }
    let o = tensile(&["embed", "--model", dir.to_str().unwrap(), "--text", "hello world"]);
    assert!(stdout(&o).contains("384 dims"));
}

#[test]
fn run_spec_file_runs_every_declared_test() {
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/specs/tiny.toml");
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let o = tensile(&["run", "--spec", spec, "--no-progress", "--report-json", report.to_str().unwrap()]);
    let out = stdout(&o);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{out}{}", stderr(&o));
    for name in ["tiny_attention", "tiny_mlp", "golden_rms_norm"] {
        assert!(out.contains(&format!(" {name} ")), "{name}: {out}");
    }
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(v["cases"].as_array().unwrap().len(), 4, "attention runs in f32 and bf16");
    assert_untimed_checks_passed(&v);
}

#[test]
fn bad_spec_files_exit_2_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[[test]]\nname = \"a\"\nmodule = \"llama.attention\"\nconfig = { hidden_size = 60, num_attention_heads = 7 }\n").unwrap();
    let o = tensile(&["run", "--spec", path.to_str().unwrap()]);
    assert_usage_error(&o, &format!("{}:4:10: field `config`", path.display()));
    std::fs::write(&path, "[[test]]\nname = \"a\"\nmodule = \"llama.mlp\"\ninput_shape = [1, -2, 64]\n").unwrap();
    assert_usage_error(&tensile(&["run", "--spec", path.to_str().unwrap()]), "dimension -2 must be positive");
    assert_usage_error(&tensile(&["run", "--spec", "/nonexistent/spec.toml"]), "/nonexistent/spec.toml");
    let o = tensile(&["run"]);
    assert_eq!(o.status.code(), Some(2), "--model or --spec is required");
}
