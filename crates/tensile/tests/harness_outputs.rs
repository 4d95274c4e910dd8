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

/// `TENSILE_SHARD=K/N cargo test` runs the cases `tensile run --shard K/N` would, and the
/// shards' reports merge into the report of the unsharded harness run.
#[test]
fn harness_shards_merge_into_the_unsharded_report() {
    let dir = tempfile::tempdir().unwrap();
    let p = |f: &str| dir.path().join(f);
    let five: Vec<ModuleTest> = (0..5).flat_map(|i| tests().into_iter().map(move |t| ModuleTest { name: format!("{}{i}", t.name), ..t })).collect();
    let args = Arguments::from_iter(["harness", "--test-threads", "1", "--quiet"]);
    let run = |file: &str, shard: Option<&str>| {
        let vars = |k: &str| match k {
            "TENSILE_REPORT_JSON" => Some(p(file).display().to_string()),
            "TENSILE_SHARD" => shard.map(str::to_string),
            _ => None,
        };
        let outputs = Outputs::from_vars(vars).unwrap();
        let outcome = harness::run(&args, &five, &Settings::default(), &outputs).unwrap();
        assert!(!outcome.conclusion.has_failed());
        tensile::merge::Input::read(p(file)).unwrap()
    };
    let whole = run("whole.json", None);
    let parts = [run("s1.json", Some("1/3")), run("s2.json", Some("2/3")), run("s3.json", Some("3/3"))];
    let sizes: Vec<usize> = parts.iter().map(|s| s.report.cases.len()).collect();
    assert_eq!(sizes.iter().sum::<usize>(), 10, "{sizes:?}");
    // The same partition as `tensile run --shard`: by the stable hash of each case.
    let plan = tensile::Plan::new(&five, &Settings::default()).unwrap();
    for (k, part) in parts.iter().enumerate() {
        let expected = tensile::shard::Sharding { shard: tensile::shard::Shard { index: k + 1, count: 3 }, durations: None }.select(&plan);
        let got: Vec<&str> = part.report.cases.iter().map(|c| c.case.name.as_str()).collect();
        let want: Vec<&str> = expected.cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(got, want, "shard {}/3", k + 1);
    }
    let merged = tensile::merge::merge(&parts, false).unwrap();
    let record = tensile::report::RunRecord::from_events(&merged.events);
    assert_eq!(record.totals, whole.report.totals);
    assert_eq!(record.coverage, whole.report.coverage);
    assert_eq!(record.plan, whole.report.plan);
    let ids = |cases: &[tensile::event::CaseResult]| cases.iter().map(|c| (c.case.clone(), c.passed)).collect::<Vec<_>>();
    assert_eq!(ids(&record.cases), ids(&whole.report.cases));
    assert!(Outputs::from_vars(|k| (k == "TENSILE_SHARD").then(|| "4/3".to_string())).unwrap_err().to_string().contains("TENSILE_SHARD"));
}
