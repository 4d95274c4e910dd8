//! Reporters render a fixed event stream the same way every time (snapshot), write valid JSON
//! (NaN as null), and never panic on a broken writer.

use std::io::Write;
use tensile::event::Reporter;
use tensile::report::{ConsoleReporter, JsonReporter, SCHEMA_VERSION};

mod fixture;
use fixture::{events, Shared};

fn console_text(reporter: impl FnOnce(Box<dyn Write + Send>) -> ConsoleReporter) -> String {
    let buf = Shared::default();
    let mut r = reporter(Box::new(buf.clone()));
    for e in events() {
        r.on_event(&e);
    }
    r.finish().unwrap();
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    text
}

#[test]
fn console_report_snapshot() {
    let text = console_text(|out| ConsoleReporter::new(out).with_progress(false).with_timings(false));
    insta::assert_snapshot!(text);
}

#[test]
fn console_progress_bar_stays_out_of_the_report() {
    // The bar draws on stderr (or nowhere when that is not a terminal), never into the report.
    let plain = console_text(|out| ConsoleReporter::new(out).with_timings(false));
    let with_bar = console_text(|out| ConsoleReporter::new(out).with_progress(true).with_timings(false));
    assert_eq!(plain, with_bar);
}

#[test]
fn console_timings_only_in_the_summary_line() {
    let timed = console_text(ConsoleReporter::new);
    let untimed = console_text(|out| ConsoleReporter::new(out).with_timings(false));
    let last = timed.lines().last().unwrap();
    assert!(last.ends_with("(1.2 s)") || last.ends_with("(1.3 s)"), "{last}");
    assert_eq!(timed.replace(&format!(" {}", &last[last.rfind('(').unwrap()..]), ""), untimed);
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
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["schema_version"], SCHEMA_VERSION);
    for key in ["tensile_version", "machine", "devices", "totals", "elapsed_s", "coverage", "cases"] {
        assert!(v.get(key).is_some(), "missing top-level {key}");
    }
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for case in cases {
        for key in ["name", "module", "dtype", "device", "input_shape", "passed", "checks"] {
            assert!(case.get(key).is_some(), "missing case field {key}");
        }
        for check in case["checks"].as_array().unwrap() {
            for key in ["check", "passed", "metrics", "errors", "notes", "skipped", "elapsed_s"] {
                assert!(check.get(key).is_some(), "missing check field {key}");
            }
        }
    }
    assert_eq!((v["totals"]["checks_failed"].as_u64(), v["totals"]["checks_flaky"].as_u64()), (Some(3), Some(1)));
    assert_eq!(v["coverage"]["kinds"].as_array().unwrap().len(), 3);
    assert_eq!(v["coverage"]["uncovered"][0]["kind"], "bert.layer");
    assert_eq!(v["cases"][0]["checks"][1]["series"]["samples_ms"].as_array().unwrap().len(), 20);
    assert_eq!(v["cases"][1]["checks"][1]["repeat"]["flaky"], true);
    assert!(v["cases"][0]["checks"][0].get("repeat").is_none(), "no repeat object without --repeat");
    assert_eq!(v["devices"], serde_json::json!(["cpu", "cuda:0"]));
    let bad = &v["cases"][1]["checks"][0];
    assert_eq!(bad["check"], "correctness");
    assert!(bad["metrics"]["max_abs"].is_null(), "NaN is written as null");
    assert!(bad["metrics"]["max_rel"].is_null(), "infinity is written as null");
    assert_eq!(bad["errors"][0], "output contains NaN or infinity");
    assert!(v["cases"][0]["checks"][0]["skipped"].is_null());
    assert_eq!(v["cases"][0]["checks"][2]["skipped"], "memory counting needs the counting allocator");
    assert_eq!(v["cases"][0]["checks"][1]["notes"][0], "GPU-class target (5 ms) measured on cpu: expected to fail here");
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
