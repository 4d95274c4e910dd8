//! Reporters render a fixed event stream the same way every time (snapshot), write valid JSON
//! (NaN as null), and never panic on a broken writer.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use tensile::event::{CaseInfo, CaseResult, CheckOutcome, CheckResult, Event, Machine, Reporter, Totals};
use tensile::report::{ConsoleReporter, JsonReporter, SCHEMA_VERSION};
use tensile::Check;

fn info(index: usize, name: &str, module: &str) -> CaseInfo {
    CaseInfo { index, name: name.into(), module: module.into(), dtype: "f32".into(), device: "cpu".into(), input_shape: vec![1, 128, 256] }
}

fn result(check: Check, metrics: &[(&str, f64)], errors: &[&str]) -> CheckResult {
    let metrics: BTreeMap<String, f64> = metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    CheckResult { check, outcome: CheckOutcome::from_errors(metrics, errors.iter().map(|e| e.to_string()).collect()), elapsed_s: 0.5 }
}

fn events() -> Vec<Event> {
    let machine = Machine { host: "test".into(), os: "linux-x86_64".into(), cpus: 2, tensile_version: "0.1.0".into() };
    let good = CaseResult {
        case: info(0, "tiny::attention", "llama.attention"),
        passed: true,
        checks: vec![
            result(Check::Correctness, &[("max_abs", 1.5e-6), ("pcc", 0.9999999)], &[]),
            CheckResult {
                outcome: result(Check::Performance, &[("median_ms", 4.2), ("p10_ms", 4.0), ("p90_ms", 4.8), ("target_ms", 5.0)], &[])
                    .outcome
                    .with_note("GPU-class target (5 ms) measured on cpu: expected to fail here"),
                ..result(Check::Performance, &[], &[])
            },
            CheckResult { check: Check::Memory, outcome: CheckOutcome::skip("memory counting needs the counting allocator"), elapsed_s: 0.0 },
            result(Check::Scaling, &[("exponent", 1.42), ("expected_exponent", 1.38)], &[]),
        ],
    };
    let bad = CaseResult {
        case: info(1, "tiny::mlp", "llama.mlp"),
        passed: false,
        checks: vec![result(Check::Correctness, &[("max_abs", f64::NAN), ("pcc", f64::NAN)], &["output contains NaN or infinity"])],
    };
    let totals = Totals { cases: 2, cases_passed: 1, checks: 5, checks_failed: 1, checks_skipped: 1 };
    let mut out = vec![Event::RunStarted { cases: 2, checks: 5, machine, devices: vec!["cpu".into()] }];
    for c in [good, bad] {
        out.push(Event::CaseStarted(c.case.clone()));
        for r in &c.checks {
            out.push(Event::CheckFinished { case: c.case.clone(), result: r.clone() });
        }
        out.push(Event::CaseFinished(c));
    }
    out.push(Event::RunFinished { totals, elapsed_s: 1.25 });
    out
}

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn console_report_snapshot() {
    let buf = Shared::default();
    let mut r = ConsoleReporter::new(Box::new(buf.clone())).with_timings(false);
    for e in events() {
        r.on_event(&e);
    }
    r.finish().unwrap();
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    insta::assert_snapshot!(text);
}

#[test]
fn json_report_is_valid_and_versioned() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    let mut r = JsonReporter::new(&path);
    for e in events() {
        r.on_event(&e);
    }
    r.finish().unwrap();
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(v["schema_version"], SCHEMA_VERSION);
    assert_eq!(v["cases"].as_array().unwrap().len(), 2);
    assert_eq!(v["totals"]["checks_failed"], 1);
    let bad = &v["cases"][1]["checks"][0];
    assert_eq!(bad["check"], "correctness");
    assert!(bad["metrics"]["max_abs"].is_null(), "NaN is written as null");
    assert_eq!(v["cases"][0]["checks"][2]["skipped"], "memory counting needs the counting allocator");
    insta::assert_json_snapshot!(v);
}

struct Broken;

impl Write for Broken {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("disk on fire"))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn broken_outputs_are_reported_not_panicked() {
    let mut console = ConsoleReporter::new(Box::new(Broken));
    let mut json = JsonReporter::new("/nonexistent-dir/report.json");
    for e in events() {
        console.on_event(&e);
        json.on_event(&e);
    }
    assert_eq!(console.finish().unwrap_err().to_string(), "disk on fire");
    assert!(json.finish().unwrap_err().to_string().contains("failed to write /nonexistent-dir/report.json"));
}
