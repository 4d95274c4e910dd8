//! The cargo harness writes the same report files as `tensile run`, from the trials that ran,
//! and applies repetitions.

use candle_core::{DType, Device, Result, Tensor};
use libtest_mimic::Arguments;
use std::sync::Arc;
use tensile::outputs::Outputs;
use tensile::spec::Spec;
use tensile::{harness, Check, ModuleTest, ModuleUnderTest, Settings};

struct Half;

impl ModuleUnderTest for Half {
    fn kind(&self) -> &str {
        "half"
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x * 0.5
    }
    fn forward_reference(&self, x: &Tensor) -> Option<Result<Tensor>> {
        Some(x.to_dtype(DType::F64).and_then(|x| x.to_device(&Device::Cpu)).and_then(|x| x * 0.5))
    }
}

fn tests() -> Vec<ModuleTest> {
    let spec = Spec { checks: vec![Check::Correctness, Check::Determinism], input_shape: Some(vec![1, 4, 8]), ..Spec::default() };
    vec![
        ModuleTest { name: "model.first".into(), module: Arc::new(Half), spec: spec.clone() },
        ModuleTest { name: "model.second".into(), module: Arc::new(Half), spec },
    ]
}

#[test]
fn the_harness_writes_every_report_for_the_trials_that_ran() {
    let dir = tempfile::tempdir().unwrap();
    let p = |f: &str| dir.path().join(f);
    let outputs = Outputs {
        json: Some(p("r.json")),
        junit: Some(p("r.xml")),
        html: Some(p("r.html")),
        markdown: Some(p("r.md")),
        save_baseline: Some("h".into()),
        baseline_dir: p("baselines"),
        repeat: 3,
        ..Outputs::default()
    };
    // Only the first module's tests run, as `cargo test -- model.first` would.
    let args = Arguments::from_iter(["harness", "--test-threads", "1", "model.first"]);
    let conclusion = harness::run(&args, &tests(), &Settings::default(), &outputs).unwrap().conclusion;
    assert_eq!((conclusion.num_passed, conclusion.num_failed, conclusion.num_filtered_out), (2, 0, 2));
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p("r.json")).unwrap()).unwrap();
    let cases = json["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 1, "the filtered-out module is not reported");
    assert_eq!(cases[0]["name"], "model.first");
    assert_eq!(cases[0]["checks"].as_array().unwrap().len(), 2);
    assert_eq!(cases[0]["checks"][0]["repeat"]["runs"], 3);
    assert_eq!(json["totals"]["checks"], 2);
    // The coverage compares the registered specs with every preset: none of them is covered.
    // Every preset's module tests are uncovered: four per family preset (attention, MLP,
    // norm, layer), three per LoRA or quantized one (attention, MLP, layer).
    let presets = tensile::presets::all();
    assert!(presets.len() >= 11);
    let declared: usize = presets.iter().map(|p| p.module_tests_with(1, p.seq_len, tensile::presets::Weights::Zeros).unwrap().len()).sum();
    assert_eq!(declared, 4 * 8 + 3 * 3);
    assert_eq!(json["coverage"]["presets"].as_array().unwrap().len(), presets.len());
    assert_eq!(json["coverage"]["uncovered"].as_array().unwrap().len(), declared);
    assert_eq!(json["coverage"]["kinds"][0]["kind"], "half");
    for f in ["r.xml", "r.html", "r.md", "baselines/h.json"] {
        assert!(std::fs::metadata(p(f)).unwrap().len() > 0, "{f} is empty");
    }
    assert!(std::fs::read_to_string(p("r.xml")).unwrap().contains("model.first"));
}

#[test]
fn listing_tests_writes_no_report_and_bad_options_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let outputs = Outputs { json: Some(dir.path().join("r.json")), ..Outputs::default() };
    let args = Arguments::from_iter(["harness", "--list"]);
    let listed = harness::run(&args, &tests(), &Settings::default(), &outputs).unwrap().conclusion;
    assert_eq!(listed.num_passed, 0);
    assert!(!dir.path().join("r.json").exists());
    let bad = Outputs { repeat: 0, ..Outputs::default() };
    assert!(harness::run(&Arguments::from_iter(["harness"]), &tests(), &Settings::default(), &bad).unwrap_err().to_string().contains("repeat"));
}
