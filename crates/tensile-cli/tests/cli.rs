//! End-to-end tests of the built `tensile` binary: exit codes, output formats, one-line errors.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

mod common;
use common::{assert_usage_error, stderr, stdout, tensile};

fn golden_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tensile-nn/tests/golden"))
}

fn golden(name: &str) -> String {
    golden_dir().join(name).display().to_string()
}

fn golden_files() -> Vec<String> {
    let mut files: Vec<String> =
        std::fs::read_dir(golden_dir()).unwrap().map(|e| e.unwrap().path().display().to_string()).filter(|p| p.ends_with(".safetensors")).collect();
    files.sort();
    files
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap()
}

/// The result lines of a `golden check` table (everything after the header that is not an
/// indented failure reason).
fn result_lines(out: &str) -> Vec<&str> {
    out.lines().skip(1).filter(|l| !l.starts_with(' ')).collect()
}

fn assert_header(out: &str) {
    let header = out.lines().next().expect("a header line");
    let words: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(words, ["case", "module", "shape", "max_abs", "max_rel", "pcc", "cosine", "result"], "{header}");
}

/// A case file in memory, to be edited and written to a temporary directory.
struct CaseFile {
    tensors: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>,
    metadata: HashMap<String, String>,
}

impl CaseFile {
    fn read(name: &str) -> Self {
        let bytes = std::fs::read(golden_dir().join(name)).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let tensors = st.tensors().into_iter().map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec())).collect();
        Self { tensors, metadata: header.metadata().clone().unwrap() }
    }

    fn without(mut self, name: &str) -> Self {
        let before = self.tensors.len();
        self.tensors.retain(|t| t.0 != name);
        assert_eq!(self.tensors.len(), before - 1, "{name} is not in the case");
        self
    }

    fn with_module(mut self, kind: &str) -> Self {
        let mut case: serde_json::Value = serde_json::from_str(&self.metadata["tensile.case"]).unwrap();
        case["module"] = kind.into();
        self.metadata.insert("tensile.case".into(), case.to_string());
        self
    }

    /// Adds 1.0 to one element of the float64 `output`.
    fn with_output_off_by_one(mut self, index: usize) -> Self {
        let (_, dtype, _, data) = self.tensors.iter_mut().find(|t| t.0 == "output").unwrap();
        assert_eq!(*dtype, safetensors::Dtype::F64);
        let bytes = &mut data[8 * index..8 * index + 8];
        let v = f64::from_le_bytes(bytes.try_into().unwrap()) + 1.0;
        bytes.copy_from_slice(&v.to_le_bytes());
        self
    }

    fn write(&self, dir: &Path, file: &str) -> String {
        let path = dir.join(file);
        let views = self.tensors.iter().map(|(n, d, s, b)| (n.clone(), safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap()));
        safetensors::serialize_to_file(views, Some(self.metadata.clone()), &path).unwrap();
        path.display().to_string()
    }
}

#[test]
fn golden_check_passes_every_committed_case_in_every_dtype() {
    let files = golden_files();
    assert!(files.len() >= 10, "{} committed cases", files.len());
    for dtype in [None, Some("f32"), Some("bf16"), Some("f16")] {
        let mut args = vec!["golden", "check"];
        if let Some(dtype) = dtype {
            args.extend(["--dtype", dtype]);
        }
        args.extend(files.iter().map(String::as_str));
        let o = tensile(&args);
        let out = stdout(&o);
        assert_eq!(o.status.code(), Some(0), "{dtype:?}: {out}{}", stderr(&o));
        assert!(stderr(&o).is_empty(), "{}", stderr(&o));
        assert_header(&out);
        let lines = result_lines(&out);
        assert_eq!(lines.len(), files.len(), "one line per case, no failure reasons:\n{out}");
        assert_eq!(out.lines().count(), files.len() + 1, "{out}");
        for (line, file) in lines.iter().zip(&files) {
            assert!(line.starts_with(file_name(file)) && line.ends_with("  PASS"), "{file}: {line}");
        }
    }
}

#[test]
fn golden_check_json_is_one_object_per_case() {
    let files = golden_files();
    for dtype in ["f32", "bf16", "f16"] {
        let mut args = vec!["golden", "check", "--json", "--dtype", dtype];
        args.extend(files.iter().map(String::as_str));
        let o = tensile(&args);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let out = stdout(&o);
        let objects: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
        assert_eq!(objects.len(), files.len(), "no header in JSON mode:\n{out}");
        for (v, file) in objects.iter().zip(&files) {
            assert!(v.is_object(), "{v}");
            for key in ["file", "module", "passed", "max_abs", "max_rel", "pcc", "cosine"] {
                assert!(v.get(key).is_some(), "{key} missing in {v}");
            }
            assert_eq!(v["file"], file.as_str());
            assert_eq!(v["passed"], true, "{v}");
            assert_eq!(v["dtype"], dtype);
            assert!(v["failures"].as_array().unwrap().is_empty(), "{v}");
            let module = v["module"].as_str().unwrap();
            let prefix = module.split('.').next().unwrap();
            assert!(file_name(file).starts_with(prefix), "{file} is a {module} case?");
            assert!(v["max_abs"].as_f64().unwrap() >= 0.0 && v["max_rel"].as_f64().unwrap() >= 0.0);
            assert!(v["pcc"].as_f64().unwrap() > 0.999 && v["cosine"].as_f64().unwrap() > 0.999, "{v}");
        }
        let modules: HashSet<&str> = objects.iter().map(|v| v["module"].as_str().unwrap()).collect();
        let buildable: HashSet<&str> = tensile_nn::BlockKind::BUILDABLE.iter().map(|k| k.name()).collect();
        assert_eq!(modules, buildable, "every buildable block kind is covered");
    }
}

#[test]
fn golden_check_failures_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let bad = CaseFile::read("llama_mlp.safetensors").with_output_off_by_one(3).write(dir.path(), "perturbed.safetensors");
    let o = tensile(&["golden", "check", &bad]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{}", stderr(&o));
    assert!(stderr(&o).is_empty(), "a failed check is not an error: {}", stderr(&o));
    let lines = result_lines(&out);
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].starts_with("perturbed.safetensors") && lines[0].ends_with("  FAIL"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("    element 3:")), "the reason is printed:\n{out}");

    let o = tensile(&["golden", "check", "--json", &bad]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["passed"], false);
    assert!(!v["failures"].as_array().unwrap().is_empty(), "{v}");

    // A failing case does not hide a passing one, and the exit code reports the failure.
    let good = golden("llama_rms_norm.safetensors");
    let o = tensile(&["golden", "check", &bad, &good]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.lines().any(|l| l.starts_with("llama_rms_norm.safetensors") && l.ends_with("  PASS")), "{out}");

    // f32 cannot match a float64 reference exactly.
    let real = golden("llama_attention_gqa.safetensors");
    let o = tensile(&["golden", "check", "--atol", "0", "--rtol", "0", &real]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(result_lines(&stdout(&o))[0].ends_with("  FAIL"), "{}", stdout(&o));
    let o = tensile(&["golden", "check", "--json", "--atol", "0", "--rtol", "0", &real]);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!((v["passed"].as_bool(), v["tolerance"]["atol"].as_f64(), v["tolerance"]["rtol"].as_f64()), (Some(false), Some(0.0), Some(0.0)));
    // A correlation above 1 cannot be reached: it is a bad argument, not a failed case.
    assert_usage_error(&tensile(&["golden", "check", "--min-pcc", "1.5", &real]), "invalid --min-pcc: must lie in [-1, 1], got 1.5");
}

#[test]
fn golden_check_bad_files_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();

    let missing = CaseFile::read("llama_decoder_layer.safetensors").without("self_attn.q_proj.weight").write(dir.path(), "missing.safetensors");
    let o = tensile(&["golden", "check", &missing]);
    assert_usage_error(&o, "missing tensor `self_attn.q_proj.weight`");
    assert!(stderr(&o).contains(&missing), "{}", stderr(&o));
    assert!(result_lines(&stdout(&o)).is_empty(), "{}", stdout(&o));

    let no_output = CaseFile::read("llama_rms_norm.safetensors").without("output").write(dir.path(), "no_output.safetensors");
    assert_usage_error(&tensile(&["golden", "check", &no_output]), "missing tensor `output`");

    let unknown = CaseFile::read("llama_rms_norm.safetensors").with_module("llama.attn").write(dir.path(), "unknown.safetensors");
    let o = tensile(&["golden", "check", &unknown]);
    assert_usage_error(&o, "unknown block kind `llama.attn`");
    for kind in ["llama.attention", "llama.mlp", "llama.rms_norm", "llama.decoder_layer", "bert.layer"] {
        assert!(stderr(&o).contains(kind), "the known kinds are listed: {}", stderr(&o));
    }

    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"not a tensor file at all").unwrap();
    assert_usage_error(&tensile(&["golden", "check", garbage.to_str().unwrap()]), "not a safetensors file");

    assert_usage_error(&tensile(&["golden", "check", "/nonexistent/case.safetensors"]), "/nonexistent/case.safetensors");
    // A directory exists but cannot be read as a file.
    let d = dir.path().display().to_string();
    assert_usage_error(&tensile(&["golden", "check", &d]), &format!("cannot read {d}: is a directory"));

    // A good file next to a bad one is still checked and reported, in either order.
    let good = golden("llama_rms_norm.safetensors");
    for args in [["golden", "check", &good, "/nonexistent/case.safetensors"], ["golden", "check", "/nonexistent/case.safetensors", &good]] {
        let o = tensile(&args);
        assert_usage_error(&o, "/nonexistent/case.safetensors");
        let out = stdout(&o);
        let lines = result_lines(&out);
        assert_eq!(lines.len(), 1, "{out}");
        assert!(lines[0].starts_with("llama_rms_norm.safetensors") && lines[0].ends_with("  PASS"), "{out}");
    }
    // One error line per bad file.
    let o = tensile(&["golden", "check", &missing, &good, &unknown]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(err.lines().all(|l| l.starts_with("error: ")), "{err}");
}

#[test]
fn golden_check_bad_arguments_exit_2() {
    let good = golden("llama_rms_norm.safetensors");
    if candle_core::utils::cuda_is_available() {
        println!("skipped --device cuda: this build has CUDA");
    } else {
        let o = tensile(&["golden", "check", "--device", "cuda", &good]);
        assert_usage_error(&o, "CUDA");
        assert!(stdout(&o).is_empty(), "nothing is run: {}", stdout(&o));
        assert_usage_error(&tensile(&["golden", "check", "--device", "cuda:1", &good]), "CUDA");
    }
    assert_usage_error(&tensile(&["golden", "check", "--device", "tpu", &good]), "expected cpu, cuda or cuda:N");
    let o = tensile(&["golden", "check", "--dtype", "fp8", &good]);
    assert_usage_error(&o, "unknown dtype `fp8`");
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    // clap's usage errors are several lines, but still exit 2.
    let o = tensile(&["golden", "check"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).starts_with("error:") && stderr(&o).contains("<FILES>"), "{}", stderr(&o));
    let o = tensile(&["golden", "check", "--atol", "tight", &good]);
    assert_eq!(o.status.code(), Some(2));
    let o = tensile(&["golden", "frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn bad_arguments_exit_2() {
    let o = tensile(&["embed", "--model", "/nonexistent", "--text", "hi"]);
    assert_usage_error(&o, "config.json");
    assert!(stderr(&o).contains("/nonexistent"), "{}", stderr(&o));
    assert_eq!(tensile(&["embed", "--model", "/nonexistent"]).status.code(), Some(2), "--text is required");
    assert_usage_error(&tensile(&["run", "--model", "gpt-9"]), "unknown preset `gpt-9`");
    assert_usage_error(&tensile(&["run", "--model", "tiny-llama", "--checks", "correctness,vibes"]), "unknown check `vibes`");
    assert_usage_error(&tensile(&["run", "--model", "tiny-llama", "--filter", "["]), "filter");
    assert_usage_error(&tensile(&["run", "--model", "tiny-llama", "--filter", "*nothing*"]), "matches the filter");
    assert_usage_error(&tensile(&["run", "--model", "tiny-llama", "--device", "tpu"]), "expected cpu, cuda or cuda:N");
    assert_usage_error(&tensile(&["run", "--model", "tiny-llama", "--seq-len", "0"]), "seq_len");
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

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    dot / (a.iter().map(|x| x * x).sum::<f64>().sqrt() * b.iter().map(|y| y * y).sum::<f64>().sqrt())
}

#[test]
fn embed_matches_sentence_transformers() {
    let Some(dir) = minilm_dir() else { return };
    let dir = dir.to_str().unwrap();
    let reference: serde_json::Value = serde_json::from_str(include_str!("../../tensile-nn/tests/data/minilm_reference.json")).unwrap();
    let texts: Vec<&str> = reference["texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    let expected: Vec<Vec<f64>> =
        reference["embeddings"].as_array().unwrap().iter().map(|e| e.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()).collect();
    assert_eq!((texts.len(), expected.len()), (5, 5));

    let mut args = vec!["embed", "--model", dir, "--json"];
    for t in &texts {
        args.extend(["--text", t]);
    }
    let o = tensile(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 1, "one JSON document");
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v.as_object().unwrap().len(), 1, "only `embeddings`: {}", stdout(&o));
    let got = v["embeddings"].as_array().unwrap();
    assert_eq!(got.len(), 5);
    for ((g, r), text) in got.iter().zip(&expected).zip(&texts) {
        let g: Vec<f64> = g.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        assert_eq!(g.len(), 384);
        let norm = g.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{text}: not normalised ({norm})");
        let cos = cosine(&g, r);
        println!("cosine {cos:.9}  {text}");
        assert!(cos >= 0.9999, "{text}: cosine {cos}");
    }

    let mut args = vec!["embed", "--model", dir];
    for t in &texts {
        args.extend(["--text", t]);
    }
    let o = tensile(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    for (line, text) in lines.iter().zip(&texts) {
        assert!(line.starts_with("384 dims [") && line.ends_with(text), "{line}");
    }
}

#[test]
fn embed_rejects_an_unknown_dtype() {
    // Argument errors are reported before the model is looked at.
    assert_usage_error(&tensile(&["embed", "--model", "/nonexistent", "--text", "hi", "--dtype", "fp8"]), "unknown dtype `fp8`");
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
    // Nothing was verified: not a pass.
    assert_eq!(o.status.code(), Some(3), "{out}");
    assert!(stderr(&o).contains("will be skipped"));
    assert!(out.contains("skipped: device unavailable"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("- tiny-llama::norm")), "an all-skipped case is marked -, not ✓:\n{out}");
}

#[test]
fn list_prints_every_preset() {
    let o = tensile(&["list"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0));
    for p in ["tiny-llama", "tiny-bert", "llama3-8b", "llama2-7b", "bert-base", "minilm-l6", "tiny-modernbert", "modernbert-base"] {
        assert!(out.lines().any(|l| l.starts_with(p)), "{p} missing:\n{out}");
    }
    assert!(out.contains("llama3-8b::attention") && out.contains("[1, 2048, 4096]") && out.contains("GPU-class"));
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

#[test]
fn spec_errors_name_the_field_and_print_no_raw_control_characters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let head = "[[test]]\nname = \"a\"\nmodule = \"llama.rms_norm\"\nconfig = { hidden_size = 64, rms_norm_eps = 1e-5 }\n";
    let cases = [
        (format!("{head}input_shape = [1, 8.0, 64]\n"), ":5:19: field `input_shape`: invalid type: floating point `8.0`"),
        (
            "[[test]]\nname = \"a\"\nmodule = \"llama.rms_norm\"\nconfig = { hidden_size = 64, rms_norm_eps = nan }\n".to_string(),
            ":4:45: field `config.rms_norm_eps`: must be finite",
        ),
        (head.replacen("[[test]]", "[test]", 1), "write `[[test]]`"),
        (format!("{head}dtype = [\"f32\", \"f32\"]\n"), "field `dtype`: f32 is listed twice"),
        (format!("{head}device = [\"cpu\", \"cpu\"]\n"), "field `device`: `cpu` is listed twice"),
        (head.replace("name = \"a\"", "name = \"a\\u001b[2J\\u202Eb\""), "field `name`: contains the control or bidirectional character `\\u{1b}`"),
    ];
    for (text, mentions) in cases {
        std::fs::write(&path, &text).unwrap();
        let o = tensile(&["run", "--spec", path.to_str().unwrap()]);
        assert_usage_error(&o, mentions);
        assert!(!stderr(&o).chars().any(|c| c.is_control() && c != '\n'), "raw control character: {:?}", stderr(&o));
    }
    // A path is printed escaped too.
    let o = tensile(&["run", "--spec", "/nonexistent/\u{1b}[2Jspec\u{7}.toml"]);
    assert_usage_error(&o, "/nonexistent/\\u{1b}[2Jspec\\u{7}.toml");
}

#[test]
fn the_modernbert_example_spec_passes_and_its_kinds_are_covered() {
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/specs/modernbert.toml");
    let o = tensile(&["run", "--spec", spec]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("6 cases: 6 passed, 0 failed"), "{}", stdout(&o));
    let cov = tensile(&["coverage", "--spec", spec]);
    let out = stdout(&cov);
    for kind in ["modernbert.attention", "modernbert.layer", "head.sequence_classification", "pooling.attention"] {
        assert!(out.lines().any(|l| l.starts_with(kind)), "{kind} missing:\n{out}");
    }
    // The ModernBERT presets' modules are known to coverage, uncovered by this spec's shapes.
    assert!(out.contains("tiny-modernbert::attention  modernbert.attention"), "{out}");
}

#[test]
fn the_lora_and_quantization_spec_passes_with_the_adapter_and_bit_metrics() {
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/specs/lora_quant.toml");
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let o = tensile(&["run", "--spec", spec, "--report-json", json.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let memory = |case: &str| -> serde_json::Value {
        let c = doc["cases"].as_array().unwrap().iter().find(|c| c["name"] == case).unwrap();
        c["checks"].as_array().unwrap().iter().find(|k| k["check"] == "memory").unwrap()["metrics"].clone()
    };
    // r · (in + out) f32 adapter weights of 256 → 512 at r 8: 24 KiB.
    let adapter_mb = memory("lora_linear")["adapter_mb"].as_f64().unwrap();
    assert!((adapter_mb - 8.0 * (256.0 + 512.0) * 4.0 / 1048576.0).abs() < 1e-9, "{adapter_mb}");
    assert_eq!(memory("q4_k_linear")["bits_per_param"].as_f64().unwrap(), 4.5);
    assert!((memory("int8_mlp")["bits_per_param"].as_f64().unwrap() - 8.0).abs() < 0.2);
    assert!(memory("q8_0_attention")["bits_per_param"].as_f64().unwrap() == 8.5);
}

/// Every check but the timing ones, which the main job and the stability script cover (a
/// sweep's verdict belongs to a quiet machine, not to a test run beside others).
#[test]
fn the_lora_and_quantized_presets_pass() {
    for preset in ["tiny-llama-lora", "tiny-llama-q8", "tiny-llama-q4"] {
        let o = tensile(&["run", "--model", preset, "--seq-len", "32", "--checks", "correctness,gradients,determinism,batch_invariance,dtype_parity,memory"]);
        assert_eq!(o.status.code(), Some(0), "{preset}: {}{}", stdout(&o), stderr(&o));
        assert!(stdout(&o).contains("3 cases: 3 passed, 0 failed"), "{}", stdout(&o));
    }
}
