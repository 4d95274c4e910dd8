//! Running the built `tensile` binary and reading what it printed, for the end-to-end tests.

#![allow(dead_code)]

pub mod ranks;

use std::process::{Command, Output};

/// Runs the binary. Whatever the exit code, it must come from the program (not a signal) and a
/// non-zero exit must never be a panic.
pub fn tensile(args: &[&str]) -> Output {
    let o = Command::new(env!("CARGO_BIN_EXE_tensile")).args(args).output().expect("binary runs");
    let code = o.status.code().unwrap_or_else(|| panic!("tensile {args:?} was killed: {}", stderr(&o)));
    if code != 0 {
        assert!(!stderr(&o).contains("panicked"), "tensile {args:?} panicked:\n{}", stderr(&o));
    }
    o
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit code 2, and stderr is exactly one line: `error: …` mentioning `mentions`.
pub fn assert_usage_error(o: &Output, mentions: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "stdout: {}\nstderr: {err}", stdout(o));
    assert_eq!(err.lines().count(), 1, "stderr should be one line:\n{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(mentions), "`{}` should mention `{mentions}`", err.trim_end());
}
