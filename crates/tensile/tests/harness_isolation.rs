//! The cargo harness under `TENSILE_ISOLATE=1`: a check that aborts the process fails alone,
//! with the signal, and the other trials pass and are reported.
//!
//! This target has no libtest harness of its own. Run plainly (as `cargo test` does), it runs
//! itself again as a tensile harness over a suite with an aborting module, and checks that
//! run's exit code and report; run with `SELF_TEST` set, it is that harness.

use candle_core::{DType, Device, Result, Tensor};
use std::process::Command;
use std::sync::Arc;
use tensile::spec::Spec;
use tensile::{Check, ModuleTest, ModuleUnderTest};

const SELF_TEST: &str = "TENSILE_HARNESS_ISOLATION_SELF_TEST";

/// Halves its input; with `abort`, aborts the process instead, as a failed allocation would;
/// with `nan`, returns NaN (its correctness check fails with NaN metrics, which must cross
/// from the child to the parent intact).
struct Half {
    abort: bool,
    nan: bool,
}

impl ModuleUnderTest for Half {
    fn kind(&self) -> &str {
        "half"
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.abort {
            eprintln!("memory allocation of 1099511627776 bytes failed");
            std::process::abort();
        }
        if self.nan {
            return x * f64::NAN;
        }
        x * 0.5
    }
    fn forward_reference(&self, x: &Tensor) -> Option<Result<Tensor>> {
        Some(x.to_dtype(DType::F64).and_then(|x| x.to_device(&Device::Cpu)).and_then(|x| x * 0.5))
    }
}

fn tests() -> Vec<ModuleTest> {
    let spec = Spec { checks: vec![Check::Correctness], input_shape: Some(vec![1, 4, 8]), ..Spec::default() };
    ["first", "aborts", "nan", "last"]
        .into_iter()
        .map(|name| ModuleTest { name: name.into(), module: Arc::new(Half { abort: name == "aborts", nan: name == "nan" }), spec: spec.clone() })
        .collect()
}

fn main() {
    if std::env::var_os(SELF_TEST).is_some() {
        tensile::harness::main(tests());
    }
    let dir = tempfile::tempdir().expect("a temporary folder");
    let report = dir.path().join("r.json");
    let out = Command::new(std::env::current_exe().expect("own path"))
        .env(SELF_TEST, "1")
        .env("TENSILE_ISOLATE", "1")
        .env("TENSILE_REPORT_JSON", &report)
        .output()
        .expect("the harness runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(i32::from(tensile::exit::FAILED)), "{text}");
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).expect("report written")).expect("valid JSON");
    let verdicts: Vec<(&str, bool)> = r["cases"].as_array().unwrap().iter().map(|c| (c["name"].as_str().unwrap(), c["passed"].as_bool().unwrap())).collect();
    assert_eq!(verdicts, [("first", true), ("aborts", false), ("nan", false), ("last", true)], "{text}");
    let reason = r["cases"][1]["checks"][0]["errors"][0].as_str().unwrap();
    assert!(reason.contains("signal 6 (SIGABRT") && reason.contains("memory allocation of 1099511627776 bytes failed"), "{reason}");
    // The NaN case's own verdict came back, not a protocol failure.
    let nan = r["cases"][2]["checks"][0]["errors"][0].as_str().unwrap();
    assert!(!nan.contains("process") && nan.to_lowercase().contains("nan"), "{nan}");
    println!("harness isolation: an aborting check failed alone ({reason})");
}
