//! `tensile foundry train` started as torchrun starts it (`torchrun --no-python`: `RANK`,
//! `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT` in each process's environment),
//! end to end on CPU, where the ranks meet over TCP: two ranks train bitwise like one
//! process and resume bit-exactly, a killed rank stops the other within seconds with the
//! last checkpoint intact, and a launch without a rendezvous is a usage error.
//!
//! The test sets the variables itself, exactly as torchrun does, so it needs no PyTorch.

mod common;

use common::ranks::{experiment, last, losses};
use common::{stderr, stdout};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn train(cfg: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tensile"));
    c.args(["foundry", "train", "--config", cfg.to_str().unwrap(), "--no-progress", "--skip-module-tests"]).args(extra).env("RAYON_NUM_THREADS", "1");
    c
}

/// A port nobody listens on now (the kernel's pick), for rank 0 to listen on.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The `ranks` processes torchrun would start, rank 0 first.
fn torchrun(ranks: usize, cfg: &Path, extra: &[&str]) -> Vec<Child> {
    let port = free_port().to_string();
    (0..ranks)
        .map(|r| {
            train(cfg, extra)
                .env("RANK", r.to_string())
                .env("LOCAL_RANK", r.to_string())
                .env("WORLD_SIZE", ranks.to_string())
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", &port)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect()
}

fn finish(ranks: Vec<Child>) -> Vec<Output> {
    ranks.into_iter().map(|c| c.wait_with_output().unwrap()).collect()
}

#[test]
fn two_torchrun_ranks_train_like_one_process_and_resume_bit_exactly() {
    let settings = "train_steps = 6\ncheckpoint_every = 3";
    let (a, b, c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (ca, cb, cc) = (experiment(a.path(), "tcp", 5, settings), experiment(b.path(), "tcp", 5, settings), experiment(c.path(), "tcp", 5, settings));
    let o = train(&ca, &[]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let outs = finish(torchrun(2, &cb, &[]));
    for o in &outs {
        assert_eq!(o.status.code(), Some(0), "{}{}", stdout(o), stderr(o));
    }
    assert!(stdout(&outs[0]).contains("data-parallel: 2 ranks (tcp)"), "{}", stdout(&outs[0]));
    assert_eq!(stdout(&outs[0]).matches("step 6/6: loss").count(), 1, "{}", stdout(&outs[0]));
    assert!(!stdout(&outs[1]).contains("step 6/6"), "rank 0 alone reports: {}", stdout(&outs[1]));
    assert_eq!(losses(b.path()), losses(a.path()), "the loss curve of 2 ranks is one process's");
    assert!(last(b.path(), 6) == last(a.path(), 6), "the final weights and optimizer state are one process's");
    let metrics = std::fs::read_to_string(b.path().join("run/metrics.jsonl")).unwrap();
    assert!(metrics.contains("\"ranks\":2"), "{metrics}");
    // Stopped after step 3 by two ranks, resumed by three: the world size may change.
    for o in finish(torchrun(2, &cc, &["--stop-after", "3"])) {
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    for o in finish(torchrun(3, &cc, &["--resume"])) {
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    assert!(last(c.path(), 6) == last(a.path(), 6), "the resumed run ends where the uninterrupted one does");
}

#[test]
fn a_killed_rank_stops_the_other_within_seconds_and_the_last_checkpoint_is_intact() {
    let settings = "train_steps = 400\ncheckpoint_every = 2";
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cfg = experiment(b.path(), "tcp", 5, settings);
    let mut ranks = torchrun(2, &cfg, &["--rank-timeout", "60s"]);
    let first = b.path().join("run/checkpoints/step-00000002");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !first.join("model.safetensors").is_file() {
        assert!(Instant::now() < deadline, "no checkpoint within two minutes");
        assert!(ranks[0].try_wait().unwrap().is_none(), "rank 0 ended early");
        std::thread::sleep(Duration::from_millis(50));
    }
    ranks[1].kill().unwrap();
    let killed = Instant::now();
    let mut lead = ranks.remove(0);
    let status = loop {
        if let Some(s) = lead.try_wait().unwrap() {
            break s;
        }
        assert!(killed.elapsed() < Duration::from_secs(50), "rank 0 still waits for the killed rank after 50 s (its timeout is 60 s)");
        std::thread::sleep(Duration::from_millis(50));
    };
    let err = std::io::read_to_string(lead.stderr.take().unwrap()).unwrap();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("rank 0: rank 1 stopped"), "{err}");
    let newest = tensile_foundry::checkpoint::latest(&b.path().join("run/checkpoints")).expect("a checkpoint");
    let step: u64 = newest.file_name().unwrap().to_string_lossy().trim_start_matches("step-").parse().unwrap();
    let cfg_a = experiment(a.path(), "tcp", 5, settings);
    let o = train(&cfg_a, &["--stop-after", &step.to_string()]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(last(a.path(), step) == last(b.path(), step), "checkpoint {step} of the killed run is the uninterrupted run's");
}

#[test]
fn a_launch_without_a_rendezvous_or_with_a_bad_rank_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("none.toml");
    let o = train(&cfg, &[]).env("RANK", "1").env("WORLD_SIZE", "2").output().unwrap();
    common::assert_usage_error(&o, "MASTER_ADDR and MASTER_PORT");
    let o = train(&cfg, &[]).env("RANK", "2").env("WORLD_SIZE", "2").output().unwrap();
    common::assert_usage_error(&o, "RANK is 2 but WORLD_SIZE is 2");
    // Rank 1 of a group whose rank 0 never comes gives up after --rank-timeout.
    let o = train(&cfg, &["--rank-timeout", "1s"])
        .env("RANK", "1")
        .env("WORLD_SIZE", "2")
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", free_port().to_string())
        .output()
        .unwrap();
    common::assert_usage_error(&o, "rank 0 did not answer");
}
