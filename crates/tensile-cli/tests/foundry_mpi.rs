//! `mpirun -np 2 tensile foundry train` end to end (built with `--features mpi`; skipped with
//! a reason where mpirun is missing): two ranks train bitwise like one process, resume
//! bit-exactly, and when one rank is killed the job ends within seconds with the last
//! checkpoint intact.

mod common;

use common::ranks::{experiment, last, losses};
use common::{stderr, stdout, tensile};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn mpirun_available() -> bool {
    let ok = Command::new("mpirun").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped: mpirun not found (Debian: apt-get install openmpi-bin libopenmpi-dev)");
    }
    ok
}

/// `mpirun -np N tensile foundry train --config CFG EXTRA...`, one thread per rank. The ranks
/// carry their config's path in `TENSILE_TEST_JOB`, so that a test can tell its own job's
/// processes from those of a test running beside it.
fn mpirun(ranks: usize, cfg: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new("mpirun");
    let job = format!("TENSILE_TEST_JOB={}", cfg.display());
    c.args(["--oversubscribe", "-np", &ranks.to_string(), "-x", "RAYON_NUM_THREADS=1", "-x", &job, env!("CARGO_BIN_EXE_tensile")])
        .args(["foundry", "train", "--config", cfg.to_str().unwrap(), "--no-progress", "--skip-module-tests"])
        .args(extra)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("RAYON_NUM_THREADS", "1");
    c
}

fn solo(cfg: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tensile"))
        .args(["foundry", "train", "--config", cfg.to_str().unwrap(), "--no-progress", "--skip-module-tests"])
        .args(extra)
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap()
}

#[test]
fn two_mpi_ranks_train_like_one_process_and_resume_bit_exactly() {
    if !mpirun_available() {
        return;
    }
    let settings = "train_steps = 6\ncheckpoint_every = 3";
    let (a, b, c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (ca, cb, cc) = (experiment(a.path(), "mpi", 3, settings), experiment(b.path(), "mpi", 3, settings), experiment(c.path(), "mpi", 3, settings));
    let o = solo(&ca, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = mpirun(2, &cb, &[]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("data-parallel: 2 ranks (mpi)"), "{}", stdout(&o));
    assert_eq!(stdout(&o).matches("step 6/6: loss").count(), 1, "rank 0 alone reports: {}", stdout(&o));
    assert_eq!(losses(b.path()), losses(a.path()), "the loss curve of 2 ranks is one process's");
    assert!(last(b.path(), 6) == last(a.path(), 6), "the final weights and optimizer state are one process's");
    let metrics = std::fs::read_to_string(b.path().join("run/metrics.jsonl")).unwrap();
    assert!(metrics.contains("\"ranks\":2") && metrics.contains("exchange_seconds"), "{metrics}");
    // Stopped after step 3 and resumed, with the same world size.
    let o = mpirun(2, &cc, &["--stop-after", "3"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = mpirun(2, &cc, &["--resume"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(last(c.path(), 6) == last(a.path(), 6), "the resumed run ends where the uninterrupted one does");
}

/// The processes of this test's binary that mpirun started as `rank` of the job training `cfg`.
fn rank_pids(binary: &str, rank: usize, cfg: &Path) -> Vec<i32> {
    let job = format!("TENSILE_TEST_JOB={}", cfg.display());
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let (Ok(env), Ok(exe)) = (std::fs::read(e.path().join("environ")), std::fs::read_link(e.path().join("exe"))) else { continue };
        let marker = format!("OMPI_COMM_WORLD_RANK={rank}");
        let mut vars = env.split(|&b| b == 0);
        if exe.to_string_lossy() == binary && vars.clone().any(|v| v == marker.as_bytes()) && vars.any(|v| v == job.as_bytes()) {
            out.push(pid);
        }
    }
    out
}

#[test]
fn a_killed_rank_ends_the_job_within_seconds_and_the_last_checkpoint_is_intact() {
    if !mpirun_available() {
        return;
    }
    let settings = "train_steps = 400\ncheckpoint_every = 2";
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cfg = experiment(b.path(), "mpi", 3, settings);
    let mut job = mpirun(2, &cfg, &["--rank-timeout", "30s"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let binary = std::fs::canonicalize(env!("CARGO_BIN_EXE_tensile")).unwrap().display().to_string();
    let first = b.path().join("run/checkpoints/step-00000002");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !first.join("model.safetensors").is_file() {
        assert!(Instant::now() < deadline, "no checkpoint within two minutes");
        assert!(job.try_wait().unwrap().is_none(), "the job ended early");
        std::thread::sleep(Duration::from_millis(50));
    }
    let victims = rank_pids(&binary, 1, &cfg);
    assert_eq!(victims.len(), 1, "one process is rank 1");
    let killed = Instant::now();
    // SAFETY: kill(2) with a pid read from /proc and a signal number; no memory is involved.
    assert_eq!(unsafe { libc::kill(victims[0], libc::SIGKILL) }, 0);
    let status = loop {
        if let Some(s) = job.try_wait().unwrap() {
            break s;
        }
        assert!(killed.elapsed() < Duration::from_secs(60), "the job did not end within a minute of rank 1's death");
        std::thread::sleep(Duration::from_millis(50));
    };
    let waited = killed.elapsed();
    let err = std::io::read_to_string(job.stderr.take().unwrap()).unwrap();
    assert_ne!(status.code(), Some(0), "{err}");
    assert!(waited < Duration::from_secs(40), "{waited:?}: {err}");
    // Every checkpoint on disk is whole: the newest loads and evaluates, and a resume (by
    // one process) continues from it.
    let newest = tensile_foundry::checkpoint::latest(&b.path().join("run/checkpoints")).expect("a checkpoint");
    let o = tensile(&["foundry", "evaluate", "--checkpoint", newest.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let step: u64 = newest.file_name().unwrap().to_string_lossy().trim_start_matches("step-").parse().unwrap();
    // The same run, uninterrupted, to that step: the checkpoint is bitwise its state.
    let cfg_a = experiment(a.path(), "mpi", 3, settings);
    let o = solo(&cfg_a, &["--stop-after", &step.to_string()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(last(a.path(), step) == last(b.path(), step), "checkpoint {step} of the killed job is the uninterrupted run's");
}
