//! End-to-end tests of input files that are not regular files, and of bad baselines.
//!
//! A FIFO given as a spec, a reference case, a baseline or a PyTorch timing file used to block
//! forever, and `/dev/zero` grew memory without bound. Every such file is now refused before a
//! byte is read, with exit 2 and one line naming it. The binary runs under a watchdog here: a
//! command that blocks is killed after a generous wait and the test fails, instead of hanging
//! the suite.

#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{assert_usage_error, stderr, stdout};

/// Far longer than any of these commands takes; reaching it means the command blocked.
const WATCHDOG: Duration = Duration::from_secs(60);

/// Runs the binary with stdout and stderr in files (a pipe that fills would block it too) and
/// kills it if it has not exited within [`WATCHDOG`].
fn tensile_bounded(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_tensile"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("binary runs");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > WATCHDOG {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!(
                "tensile {args:?} still ran after {WATCHDOG:?}: it blocked on its input\nstderr: {}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::park_timeout(Duration::from_millis(50));
    };
    let o = Output { status, stdout: std::fs::read(&out_path).unwrap(), stderr: std::fs::read(&err_path).unwrap() };
    assert!(o.status.code().is_some(), "tensile {args:?} was killed by a signal: {}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "tensile {args:?} panicked:\n{}", stderr(&o));
    o
}

/// Makes a FIFO at `path`; false (and the caller skips that case) where mkfifo is missing.
fn mkfifo(path: &Path) -> bool {
    let made = Command::new("mkfifo").arg(path).status().is_ok_and(|s| s.success());
    if !made {
        eprintln!("skipping the FIFO case: mkfifo is not available");
    }
    made
}

/// A FIFO, `/dev/zero` and a symlink to `/dev/zero`, each with what its error must say.
fn special_files(dir: &Path, stem: &str) -> Vec<(PathBuf, &'static str)> {
    let mut files = Vec::new();
    let fifo = dir.join(format!("{stem}-fifo"));
    if mkfifo(&fifo) {
        files.push((fifo, "a FIFO"));
    }
    files.push((PathBuf::from("/dev/zero"), "a character device"));
    let link = dir.join(format!("{stem}-zero"));
    std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
    files.push((link, "a character device"));
    files
}

fn assert_refused(o: &Output, file: &Path, kind: &str) {
    let f = file.display().to_string();
    assert_usage_error(o, &format!("cannot read {f}: is not a regular file (it is {kind})"));
}

#[test]
fn a_special_file_as_spec_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    for (file, kind) in special_files(dir.path(), "spec") {
        let f = file.display().to_string();
        assert_refused(&tensile_bounded(&["run", "--spec", &f, "--no-progress"]), &file, kind);
        assert_refused(&tensile_bounded(&["coverage", "--spec", &f]), &file, kind);
    }
}

#[test]
fn a_special_file_as_reference_case_is_refused_and_the_other_files_still_run() {
    let dir = tempfile::tempdir().unwrap();
    let good = concat!(env!("CARGO_MANIFEST_DIR"), "/../tensile-nn/tests/golden/llama_rms_norm.safetensors");
    for (file, kind) in special_files(dir.path(), "case") {
        let f = file.display().to_string();
        let o = tensile_bounded(&["golden", "check", &f, good]);
        assert_refused(&o, &file, kind);
        assert!(stdout(&o).lines().any(|l| l.starts_with("llama_rms_norm.safetensors") && l.ends_with("PASS")), "{}", stdout(&o));
    }
}

#[test]
fn a_special_file_as_baseline_is_refused_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let bdir = dir.path().join("baselines");
    std::fs::create_dir(&bdir).unwrap();
    let mut names = Vec::new();
    if mkfifo(&bdir.join("fifo.json")) {
        names.push(("fifo", "a FIFO"));
    }
    std::os::unix::fs::symlink("/dev/zero", bdir.join("zero.json")).unwrap();
    names.push(("zero", "a character device"));
    let b = bdir.display().to_string();
    for (name, kind) in names {
        let o = tensile_bounded(&["run", "--model", "tiny-llama", "--no-progress", "--baseline", name, "--baseline-dir", &b]);
        assert_refused(&o, &bdir.join(format!("{name}.json")), kind);
        assert!(stdout(&o).is_empty(), "nothing ran: {}", stdout(&o));
    }
}

#[test]
fn a_special_file_as_torch_timings_is_refused_before_measuring() {
    let dir = tempfile::tempdir().unwrap();
    for (file, kind) in special_files(dir.path(), "torch") {
        let f = file.display().to_string();
        let o = tensile_bounded(&["bench", "--preset", "tiny-llama", "--device", "cpu", "--dtype", "f32", "--seq-lens", "8", "--torch", &f]);
        assert_refused(&o, &file, kind);
    }
}

/// Saves a baseline of the tiny-llama norm's latency in `dir` and returns the run's arguments.
fn saved_norm_baseline(dir: &str) -> Vec<&str> {
    let args = vec!["run", "--model", "tiny-llama", "--seq-len", "32", "--filter", "*norm", "--no-progress", "--checks", "performance", "--baseline-dir", dir];
    let o = tensile_bounded(&[args.as_slice(), &["--save-baseline", "main"]].concat());
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    args
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn a_baseline_with_zero_negative_or_missing_samples_exits_2_naming_entry_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let bdir = dir.path().display().to_string();
    let args = saved_norm_baseline(&bdir);
    let saved = read_json(&dir.path().join("main.json"));
    for (field, samples, says) in [
        ("samples_ms", serde_json::json!([]), "no samples"),
        ("samples_ms", serde_json::json!([0.5, 0.0]), "sample 1 must be a finite number > 0, got 0"),
        ("work_samples_ms", serde_json::json!([-1.0]), "sample 0 must be a finite number > 0, got -1"),
        ("work_samples_ms", serde_json::json!([1.0, null]), "sample 1 must be a finite number > 0, got NaN"),
    ] {
        let mut bad = saved.clone();
        bad["entries"][0][field] = samples;
        let file = dir.path().join("bad.json");
        std::fs::write(&file, bad.to_string()).unwrap();
        let o = tensile_bounded(&[args.as_slice(), &["--baseline", "bad"]].concat());
        assert_usage_error(&o, &format!("{}: not a usable baseline: entry `tiny-llama::norm` (f32, cpu): field `{field}`: {says}", file.display()));
        assert!(stdout(&o).is_empty(), "nothing ran: {}", stdout(&o));
    }
}

#[test]
fn a_baseline_of_ten_million_samples_loads_and_compares_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let bdir = dir.path().display().to_string();
    let args = saved_norm_baseline(&bdir);
    // Ten million copies of three times the saved one-thread median (the series a CPU run
    // compares): a slower baseline, so the run passes whatever this machine's load is.
    let saved = read_json(&dir.path().join("main.json"));
    let mut work: Vec<f64> = saved["entries"][0]["work_samples_ms"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    work.sort_by(f64::total_cmp);
    let slow = 3.0 * work[work.len() / 2];
    let mut big = saved.clone();
    big["entries"][0]["work_samples_ms"] = serde_json::json!(["SAMPLES"]);
    let many = vec![format!("{slow:.3e}"); 10_000_000].join(",");
    std::fs::write(dir.path().join("big.json"), big.to_string().replace("\"SAMPLES\"", &many)).unwrap();

    // Before samples were thinned, the bootstrap redrew all ten million 2000 times: over a
    // minute, which the watchdog reports as a failure.
    let o = tensile_bounded(&[args.as_slice(), &["--baseline", "big"]].concat());
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("vs baseline"), "{}", stdout(&o));
}
