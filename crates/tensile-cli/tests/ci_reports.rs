//! End-to-end tests of the CI features of `tensile run`: JUnit, HTML and Markdown files,
//! baselines with a planted slowdown, `--repeat`, and `tensile coverage`.

use std::path::Path;

mod common;
use common::{assert_usage_error, stderr, stdout, tensile};

fn path(dir: &Path, f: &str) -> String {
    dir.join(f).display().to_string()
}

const NORM: [&str; 8] = ["run", "--model", "tiny-llama", "--seq-len", "32", "--filter", "*norm", "--no-progress"];

#[test]
fn run_writes_junit_html_and_markdown_reports() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut args = NORM.to_vec();
    let (junit, html, md, json) = (path(d, "r.xml"), path(d, "r.html"), path(d, "r.md"), path(d, "r.json"));
    args.extend(["--checks", "correctness,performance", "--junit", &junit, "--html", &html, "--markdown", &md, "--report-json", &json]);
    let o = tensile(&args);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.starts_with("<?xml") && xml.matches("<testcase ").count() == 2, "{xml}");
    assert!(xml.contains("tiny-llama::norm"), "{xml}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>") && page.contains("<svg") && page.contains("tiny-llama::norm"));
    let summary = std::fs::read_to_string(&md).unwrap();
    assert!(summary.starts_with('#') && summary.contains("tiny-llama::norm"), "{summary}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["coverage"]["kinds"][0]["kind"], "llama.rms_norm");
    // The other three modules of the preset were filtered out: the coverage report says so.
    assert_eq!(report["coverage"]["uncovered"].as_array().unwrap().len(), 3);
    assert!(report["cases"][0]["checks"][1]["series"]["samples_ms"].as_array().unwrap().len() >= 5);
}

/// Rewrites every latency sample of baseline `name` in `dir` by `f`.
fn plant(dir: &Path, name: &str, f: impl Fn(f64) -> f64) {
    let file = dir.join(format!("{name}.json"));
    let mut b: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    for e in b["entries"].as_array_mut().unwrap() {
        // Both the latencies and the one-thread runs (what a CPU comparison reads) move.
        assert!(!e["work_samples_ms"].as_array().unwrap().is_empty(), "a CPU baseline keeps one-thread runs");
        for key in ["samples_ms", "work_samples_ms"] {
            for s in e[key].as_array_mut().unwrap() {
                *s = serde_json::json!(f(s.as_f64().unwrap()));
            }
        }
    }
    std::fs::write(&file, b.to_string()).unwrap();
}

#[test]
fn a_baseline_catches_a_planted_slowdown_and_passes_a_planted_speedup() {
    let dir = tempfile::tempdir().unwrap();
    let bdir = dir.path().display().to_string();
    let mut args = NORM.to_vec();
    args.extend(["--checks", "performance", "--baseline-dir", &bdir]);
    let save = [args.clone(), vec!["--save-baseline", "main"]].concat();
    let o = tensile(&save);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("main.json")).unwrap()).unwrap();
    assert_eq!(saved["entries"][0]["name"], "tiny-llama::norm");
    assert_eq!(saved["name"], "main");
    assert!(saved["machine"]["cpus"].as_u64().unwrap() >= 1);

    // The baseline made a third as slow: today's run is three times slower than it.
    std::fs::copy(dir.path().join("main.json"), dir.path().join("fast.json")).unwrap();
    plant(dir.path(), "fast", |x| x / 3.0);
    let o = tensile(&[args.clone(), vec!["--baseline", "fast"]].concat());
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("regression against baseline `fast`"), "{}", stdout(&o));

    // The baseline made three times slower: faster never fails.
    std::fs::copy(dir.path().join("main.json"), dir.path().join("slow.json")).unwrap();
    plant(dir.path(), "slow", |x| x * 3.0);
    let o = tensile(&[args.clone(), vec!["--baseline", "slow"]].concat());
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("vs baseline"), "{}", stdout(&o));
}

#[test]
fn repeat_reports_runs_per_check() {
    let dir = tempfile::tempdir().unwrap();
    let json = path(dir.path(), "r.json");
    let mut args = NORM.to_vec();
    args.extend(["--checks", "correctness,determinism", "--repeat", "3", "--report-json", &json]);
    let o = tensile(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for check in report["cases"][0]["checks"].as_array().unwrap() {
        assert_eq!(
            (check["repeat"]["runs"].as_u64(), check["repeat"]["failures"].as_u64(), check["repeat"]["flaky"].as_bool()),
            (Some(3), Some(0), Some(false))
        );
    }
}

#[test]
fn bad_ci_options_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let bdir = dir.path().display().to_string();
    let with = |extra: &[&str]| tensile(&[NORM.as_slice(), extra].concat());
    assert_eq!(with(&["--repeat", "0"]).status.code(), Some(2));
    assert_usage_error(&with(&["--baseline", "missing", "--baseline-dir", &bdir]), "missing.json");
    assert_usage_error(&with(&["--baseline", "../etc/passwd"]), "baseline name");
    assert_usage_error(&with(&["--regression-threshold=-5"]), "threshold");
    assert_usage_error(&with(&["--junit", "/nonexistent/dir/r.xml"]), "does not exist");
    std::fs::write(dir.path().join("junk.json"), "{not json").unwrap();
    assert_usage_error(&with(&["--baseline", "junk", "--baseline-dir", &bdir]), "not a usable baseline");
}

#[test]
fn coverage_lists_kinds_ranges_and_preset_modules_without_a_spec() {
    let o = tensile(&["coverage", "--model", "tiny-llama"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.starts_with("kind") && text.contains("llama.attention") && text.contains("every module of tiny-llama has a spec"), "{text}");

    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/specs/tiny.toml");
    let o = tensile(&["coverage", "--spec", spec, "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let cov: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(cov["presets"].as_array().unwrap().len(), tensile::presets::all().len(), "a spec file is compared with every preset");
    let uncovered: Vec<&str> = cov["uncovered"].as_array().unwrap().iter().map(|u| u["test"].as_str().unwrap()).collect();
    assert!(uncovered.contains(&"llama3-8b::attention") && uncovered.contains(&"bert-base::layer"), "{uncovered:?}");
    assert_usage_error(&tensile(&["coverage", "--model", "nope"]), "nope");
}

#[test]
fn bench_puts_tensile_next_to_the_anchor_and_appends_to_results() {
    let dir = tempfile::tempdir().unwrap();
    let torch = dir.path().join("torch.json");
    // A PyTorch anchor file as `torch_hf_modules.py` writes it (values planted for the test).
    std::fs::write(&torch, r#"{"torch": "2.11", "mlp_float32_16": {"ms": 1000.0, "peak_mb": 2.0}, "copy_TBps_rw": 3.0}"#).unwrap();
    let results = dir.path().join("RESULTS.md");
    std::fs::write(&results, "# Benchmark results\n").unwrap();
    let (t, r) = (torch.display().to_string(), results.display().to_string());
    let o = tensile(&["bench", "--preset", "tiny-llama", "--device", "cpu", "--dtype", "f32", "--seq-lens", "16", "--torch", &t, "--results", &r]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let md = std::fs::read_to_string(&results).unwrap();
    assert!(md.starts_with("# Benchmark results\n") && md.ends_with(&out), "{md}");
    assert!(out.contains("`tensile bench --preset tiny-llama --device cpu --dtype f32`") && out.contains("TFLOP/s"), "{out}");
    // The CLI installs the counting allocator, so the 64 MiB probe is measured (to the byte, plus
    // the tensor's small header allocations).
    let probe: f64 = out.split("allocation measured as ").nth(1).and_then(|s| s.split(' ').next()).unwrap().parse().unwrap();
    assert!((64.0..64.5).contains(&probe), "{out}");
    let row = |name: &str| out.lines().find(|l| l.starts_with(&format!("| {name} 16 |"))).unwrap_or_else(|| panic!("no {name} row: {out}")).to_string();
    // The MLP row: the ratio is tensile's ms over the planted 1000 ms.
    let cells: Vec<String> = row("mlp").split('|').map(|c| c.trim().to_string()).collect();
    let ms: f64 = cells[2].parse().unwrap();
    let ratio: f64 = cells[6].parse().unwrap();
    assert_eq!((cells[4].as_str(), cells[5].as_str()), ("1000.000", "2.0"));
    assert!((ratio - ms / 1000.0).abs() < 0.006, "{cells:?}");
    let floor: f64 = cells[7].parse().unwrap();
    assert!(floor > 0.0, "{cells:?}");
    // No anchor for attention and norm: their PyTorch columns are empty.
    assert!(row("attention").contains("| – | – | – |"), "{out}");
    assert_usage_error(&tensile(&["bench", "--preset", "tiny-llama", "--device", "cpu", "--torch", "/nonexistent.json"]), "nonexistent.json");
}
