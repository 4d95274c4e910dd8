//! `tensile run --tags EXPR` and `TENSILE_TAGS` / `TENSILE_DEVICE` select and place cases.

mod common;

use common::{assert_usage_error, stderr, stdout, tensile};
use std::process::Command;

fn cases(o: &std::process::Output) -> usize {
    let text = stdout(o);
    let last = text.lines().rev().find(|l| l.contains(" cases: ")).unwrap_or_else(|| panic!("no summary in {text}\n{}", stderr(o)));
    last.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn tag_expressions_select_cases_from_the_flag_or_the_environment() {
    let o = tensile(&["run", "--model", "tiny-llama-q8", "--tags", "quantization and not slow", "--no-progress"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(cases(&o), 2, "the quantized MLP and attention only: {}", stdout(&o));
    assert!(stdout(&o).contains("quantized.llama_mlp") && !stdout(&o).contains("llama.rms_norm"), "{}", stdout(&o));
    let o = Command::new(env!("CARGO_BIN_EXE_tensile"))
        .args(["run", "--model", "tiny-llama", "--no-progress"])
        .env("TENSILE_TAGS", "llama.rms_norm or llama.mlp")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(cases(&o), 2);
    // The flag wins over the variable.
    let o = Command::new(env!("CARGO_BIN_EXE_tensile"))
        .args(["run", "--model", "tiny-llama", "--tags", "llama.mlp", "--no-progress"])
        .env("TENSILE_TAGS", "nothing")
        .output()
        .unwrap();
    assert_eq!(cases(&o), 1);
    assert_usage_error(&tensile(&["run", "--model", "tiny-llama", "--tags", "gpu"]), "matches the filter and tags");
    assert_usage_error(&tensile(&["run", "--model", "tiny-llama", "--tags", "llama and (mlp"]), "invalid --tags: expected `)`");
}

#[test]
fn tensile_device_places_every_case() {
    let o = Command::new(env!("CARGO_BIN_EXE_tensile"))
        .args(["run", "--model", "tiny-llama", "--filter", "*norm*", "--no-progress", "--allow-skips"])
        .env("TENSILE_DEVICE", "cpu")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains(" cpu "), "{}", stdout(&o));
    let o = Command::new(env!("CARGO_BIN_EXE_tensile")).args(["run", "--model", "tiny-llama"]).env("TENSILE_DEVICE", "tpu").output().unwrap();
    assert_usage_error(&o, "TENSILE_DEVICE");
}
