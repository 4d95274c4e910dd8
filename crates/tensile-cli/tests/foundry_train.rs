//! `tensile foundry train / evaluate / generate` end to end through the built binary:
//! the foundry strategy's tiny run on Debian's fortunes (skipped with a reason when they are
//! absent), bit-exact resume across processes, a SIGKILL in the middle of a checkpoint
//! write, and Ctrl-C.

mod common;

use common::{stderr, stdout, tensile};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// A config writing into `out` over `sources` (absolute), with `training` lines added.
fn config(out: &Path, sources: &[PathBuf], separator: &str, training: &str) -> PathBuf {
    let sources: Vec<String> = sources.iter().map(|p| format!("{:?}", p.display().to_string())).collect();
    let text = format!(
        r#"experiment_name = "tiny"
random_seed = 11
[data]
sources = [{sources}]
output_dir = "data"
max_sequence_length = 32
batch_size = 4
validation_fraction = 0.1
document_separator = "{separator}"
[tokenizer]
vocab_size = 512
output_dir = "tokenizer"
[model]
architecture = "llama"
num_hidden_layers = 2
hidden_size = 64
intermediate_size = 128
num_attention_heads = 2
tie_word_embeddings = true
[training]
learning_rate = 3e-3
warmup_steps = 2
gradient_accumulation_steps = 2
output_dir = "run"
{training}
[logging]
log_every = 1
tensorboard = true
"#,
        sources = sources.join(", ")
    );
    let path = out.join("tiny.toml");
    std::fs::write(&path, text).unwrap();
    let o = tensile(&["foundry", "preprocess", "--config", path.to_str().unwrap(), "--no-progress"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    path
}

fn tiny_corpus(out: &Path, training: &str) -> PathBuf {
    config(out, &[root().join("crates/tensile-foundry/tests/data/tiny_corpus/*.txt")], "", training)
}

fn metrics(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn step_losses(run: &Path) -> Vec<(u64, f64)> {
    metrics(run).iter().filter_map(|m| Some((m.get("step")?.as_u64()?, m.get("loss")?.as_f64()?))).collect()
}

fn train(cfg: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["foundry", "train", "--config", cfg.to_str().unwrap(), "--no-progress"];
    args.extend(extra);
    tensile(&args)
}

#[test]
fn the_tiny_fortunes_run_trains_checkpoints_evaluates_and_generates() {
    let fortunes = root().join("test-data/fortunes");
    if !fortunes.join("goedel").exists() {
        println!("skipped: {} is missing (tools/fetch-fortunes.sh fetches it)", fortunes.display());
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = ["goedel", "magic", "paradoxum", "news", "medicine"].iter().map(|f| fortunes.join(f)).collect();
    let cfg = config(out.path(), &files, "%", "train_steps = 10\ncheckpoint_every = 5");
    let o = train(&cfg, &[]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("module tests passed") && text.contains("(predicted "), "{text}");
    assert!(text.contains("tokens/s, MFU"), "{text}");
    let run = out.path().join("run");
    let losses = step_losses(&run);
    assert_eq!(losses.len(), 10);
    let first: f64 = losses[..3].iter().map(|l| l.1).sum::<f64>() / 3.0;
    let last: f64 = losses[7..].iter().map(|l| l.1).sum::<f64>() / 3.0;
    assert!(last < first - 0.1, "the loss falls: {first} → {last}");
    // Memory stays reasonable: a few MiB of activations for this model, far from the machine's.
    let peak = metrics(&run).iter().filter_map(|m| m.get("peak_mb")?.as_f64()).fold(0.0, f64::max);
    assert!(peak > 0.0 && peak < 64.0, "peak {peak} MiB");
    // Two checkpoints, each a Hugging Face directory that `tensile forward` loads.
    let cks = tensile_foundry::checkpoint::list(&run.join("checkpoints"));
    assert_eq!(cks.iter().map(|c| c.0).collect::<Vec<_>>(), vec![5, 10]);
    let inputs = out.path().join("inputs.json");
    std::fs::write(&inputs, r#"{"input_ids": [[5, 6, 7]]}"#).unwrap();
    let o = tensile(&["forward", "--model", cks[1].1.to_str().unwrap(), "--inputs", inputs.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(doc["shape"], serde_json::json!([1, 3, 512]));
    let o = tensile(&["foundry", "evaluate", "--checkpoint", run.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("step 10") && stdout(&o).contains("perplexity"), "{}", stdout(&o));
    let o = tensile(&[
        "foundry",
        "generate",
        "--checkpoint",
        run.to_str().unwrap(),
        "--prompt",
        "The",
        "--max-tokens",
        "12",
        "--temperature",
        "0.8",
        "--top-k",
        "50",
        "--seed",
        "3",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let generated = stdout(&o);
    assert!(generated.starts_with("The") && generated.trim_end().len() > 3, "{generated}");
    // The TensorBoard file holds the same losses as metrics.jsonl.
    let tb = std::fs::read_dir(run.join("tensorboard")).unwrap().next().unwrap().unwrap().path();
    let scalars = tensile_foundry::tensorboard::read_scalars(&tb).unwrap();
    let tb_losses: Vec<f32> = scalars.iter().filter(|s| s.1 == "train/loss").map(|s| s.2).collect();
    assert_eq!(tb_losses, losses.iter().map(|l| l.1 as f32).collect::<Vec<_>>());
    let o = tensile(&["foundry", "logs", "--config", cfg.to_str().unwrap()]);
    assert!(stdout(&o).contains("tiny-") && stdout(&o).contains(".log"), "{}", stdout(&o));
}

#[test]
fn stopping_and_resuming_in_a_new_process_is_bit_exact() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let settings = "train_steps = 8\ncheckpoint_every = 4";
    let (ca, cb) = (tiny_corpus(a.path(), settings), tiny_corpus(b.path(), settings));
    assert_eq!(train(&ca, &["--skip-module-tests"]).status.code(), Some(0));
    let o = train(&cb, &["--skip-module-tests", "--stop-after", "4"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = train(&cb, &["--skip-module-tests", "--resume"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("resumed from"), "{}", stdout(&o));
    let last = |d: &Path| d.join("run/checkpoints/step-00000008");
    for f in ["model.safetensors", "optimizer.safetensors"] {
        assert!(std::fs::read(last(a.path()).join(f)).unwrap() == std::fs::read(last(b.path()).join(f)).unwrap(), "{f} differs");
    }
    let (la, lb) = (step_losses(&a.path().join("run")), step_losses(&b.path().join("run")));
    assert_eq!(la.len(), 8);
    assert!(la.iter().zip(&lb).all(|(x, y)| x.0 == y.0 && x.1.to_bits() == y.1.to_bits()), "{la:?}\n{lb:?}");
}

#[test]
fn a_sigkill_during_a_checkpoint_write_leaves_the_previous_one_and_resume_works() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let settings = "train_steps = 6\ncheckpoint_every = 2";
    let (ca, cb) = (tiny_corpus(a.path(), settings), tiny_corpus(b.path(), settings));
    assert_eq!(train(&ca, &["--skip-module-tests"]).status.code(), Some(0));
    let mut child = Command::new(env!("CARGO_BIN_EXE_tensile"))
        .args(["foundry", "train", "--config", cb.to_str().unwrap(), "--no-progress", "--skip-module-tests"])
        .env(tensile_foundry::checkpoint::HOLD_ENV, "4")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let held = lines.by_ref().map_while(Result::ok).any(|l| l.contains("holding checkpoint write at step 4"));
    assert!(held, "the write of step 4 was held");
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9));
    let root = b.path().join("run/checkpoints");
    assert_eq!(tensile_foundry::checkpoint::list(&root).iter().map(|c| c.0).collect::<Vec<_>>(), vec![2], "step 4 never appeared");
    assert!(std::fs::read_dir(&root).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().starts_with(".tmp-")), "the half-written folder is there");
    let o = tensile(&["foundry", "evaluate", "--checkpoint", root.join("step-00000002").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "the previous checkpoint is intact: {}", stderr(&o));
    let o = train(&cb, &["--skip-module-tests", "--resume"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("removed 1 unfinished checkpoint write"), "{}", stdout(&o));
    let last = |d: &Path| d.join("run/checkpoints/step-00000006/model.safetensors");
    assert!(std::fs::read(last(a.path())).unwrap() == std::fs::read(last(b.path())).unwrap(), "the resumed run ends where the uninterrupted one does");
    assert_eq!(step_losses(&b.path().join("run")).len(), 6, "the metrics past step 2 were replaced, not duplicated");
}

#[test]
fn ctrl_c_saves_a_checkpoint_and_exits_with_130() {
    let out = tempfile::tempdir().unwrap();
    let cfg = tiny_corpus(out.path(), "train_steps = 100000\ncheckpoint_every = 50000");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tensile"))
        .args(["foundry", "train", "--config", cfg.to_str().unwrap(), "--no-progress", "--skip-module-tests"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines.by_ref().map_while(Result::ok).any(|l| l.starts_with("step 1/")), "a step ran");
    // SAFETY: sending a signal to our own child by its pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest:?}");
    assert!(rest.iter().any(|l| l.contains("interrupted: resume with")), "{rest:?}");
    let cks = tensile_foundry::checkpoint::list(&out.path().join("run/checkpoints"));
    assert_eq!(cks.len(), 1, "a checkpoint where it stopped");
    assert!(cks[0].0 >= 1);
}

#[test]
fn bad_foundry_input_is_one_line_and_exit_2() {
    let out = tempfile::tempdir().unwrap();
    let o = tensile(&["foundry", "evaluate", "--checkpoint", out.path().to_str().unwrap()]);
    common::assert_usage_error(&o, "no checkpoint");
    let cfg = out.path().join("c.toml");
    std::fs::write(
        &cfg,
        std::fs::read_to_string(root().join("examples/foundry/tiny.toml"))
            .unwrap()
            .replace("../../target/foundry/tiny/data", out.path().join("nothing").to_str().unwrap()),
    )
    .unwrap();
    let o = tensile(&["foundry", "train", "--config", cfg.to_str().unwrap(), "--no-progress"]);
    common::assert_usage_error(&o, "run `tensile foundry preprocess");
}

/// Launched as one of several MPI ranks, a build without the `mpi` feature says how to get
/// one, rather than training alone four times over.
#[test]
#[cfg(not(feature = "mpi"))]
fn several_ranks_need_the_mpi_feature() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_tensile"))
        .args(["foundry", "train", "--config", dir.path().join("none.toml").to_str().unwrap()])
        .env("OMPI_COMM_WORLD_RANK", "0")
        .env("OMPI_COMM_WORLD_SIZE", "4")
        .output()
        .unwrap();
    common::assert_usage_error(&o, "--features mpi");
}
