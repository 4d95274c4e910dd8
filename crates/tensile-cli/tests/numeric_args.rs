//! Bad numbers on the command line are usage errors (exit 2, one line naming the flag and the
//! rule), checked by the same validator as spec fields, before any file is read: never a
//! failed, or worse a passed, check.

mod common;

use common::{assert_usage_error, stdout, tensile};

fn golden(name: &str) -> String {
    format!("{}/../tensile-nn/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn golden_check_rejects_bad_tolerances_before_loading_anything() {
    let good = golden("llama_rms_norm.safetensors");
    for (flag, value, message) in [
        ("--atol", "nan", "invalid --atol: must be finite and ≥ 0, got NaN"),
        ("--atol", "-1", "invalid --atol: must be finite and ≥ 0, got -1"),
        ("--atol", "inf", "invalid --atol: must be finite and ≥ 0, got inf"),
        ("--rtol", "-0.5", "invalid --rtol: must be finite and ≥ 0, got -0.5"),
        ("--rtol", "NaN", "invalid --rtol: must be finite and ≥ 0, got NaN"),
        ("--min-pcc", "2", "invalid --min-pcc: must lie in [-1, 1], got 2"),
        ("--min-pcc", "-5", "invalid --min-pcc: must lie in [-1, 1], got -5"),
        ("--min-pcc", "nan", "invalid --min-pcc: must lie in [-1, 1], got NaN"),
    ] {
        // A file that does not exist proves nothing was loaded: its error would come later.
        for file in [good.as_str(), "/nonexistent/case.safetensors"] {
            let o = tensile(&["golden", "check", flag, value, file]);
            assert_usage_error(&o, message);
            assert!(stdout(&o).is_empty(), "{flag} {value}: nothing is checked: {}", stdout(&o));
        }
    }
    // The edges of each rule are accepted and the case is checked.
    let o = tensile(&["golden", "check", "--atol", "0", "--rtol", "0.5", "--min-pcc", "-1", &good]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

#[test]
fn run_rejects_a_bad_regression_threshold() {
    for value in ["nan", "inf", "0", "-5"] {
        let o = tensile(&["run", "--model", "tiny-llama", "--regression-threshold", value]);
        assert_usage_error(&o, "invalid regression threshold (percent): must be a finite number > 0");
        assert!(stdout(&o).is_empty(), "{value}: nothing runs: {}", stdout(&o));
    }
}
