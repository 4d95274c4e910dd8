//! `tensile embed` on model directories that are wrong in one way each: another architecture,
//! files that disagree, special files, NaN weights. Each is built from a tiny seeded BERT in a
//! temporary folder, so these tests need no downloaded model.

mod common;

#[path = "../../tensile-nn/tests/common/tiny_bert.rs"]
mod tiny_bert;

use common::{assert_usage_error, stderr, stdout, tensile};
use std::path::Path;

fn embed(dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["embed", "--model", dir.to_str().unwrap(), "--text", "hello world", "--text", "world"];
    args.extend(extra);
    tensile(&args)
}

#[test]
fn a_good_tiny_model_embeds() {
    let dir = tempfile::tempdir().unwrap();
    tiny_bert::write(dir.path(), |_| {});
    let o = embed(dir.path(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 2, "{}", stdout(&o));
    assert!(stdout(&o).lines().all(|l| l.starts_with("8 dims [")), "{}", stdout(&o));
}

#[test]
fn nan_embeddings_are_printed_then_fail() {
    let dir = tempfile::tempdir().unwrap();
    tiny_bert::write(dir.path(), |w| tiny_bert::poison(w, "embeddings.LayerNorm.weight"));
    let o = embed(dir.path(), &[]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 2, "what was computed is printed: {out}");
    assert!(out.contains("NaN"), "{out}");
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: embeddings are not finite") && err.contains("1 \"hello world\", 2 \"world\" of 2"), "{err}");

    // In JSON the NaNs print as null, and the run still fails, saying which sentences.
    let o = embed(dir.path(), &["--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert!(v["embeddings"][0].as_array().unwrap().iter().all(|x| x.is_null()), "{v}");
    assert_eq!(v["non_finite"], serde_json::json!([0, 1]));
    assert!(stderr(&o).contains("not finite"), "{}", stderr(&o));
}

#[test]
fn a_llama_directory_is_not_a_bert_model() {
    let dir = tempfile::tempdir().unwrap();
    tiny_bert::write(dir.path(), |_| {});
    tiny_bert::set(dir.path(), "config.json", "model_type", "llama".into());
    let o = embed(dir.path(), &[]);
    assert_usage_error(&o, "model_type \"llama\" is not a BERT model");
    assert!(stderr(&o).contains("config.json"), "{}", stderr(&o));
}

#[test]
fn files_that_disagree_are_usage_errors_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    tiny_bert::write(dir.path(), |_| {});
    tiny_bert::set(dir.path(), "sentence_bert_config.json", "max_seq_length", 1024.into());
    let o = embed(dir.path(), &[]);
    assert_usage_error(&o, "max_seq_length 1024 exceeds max_position_embeddings 16");
    assert!(stderr(&o).contains("sentence_bert_config.json") && stderr(&o).contains("config.json"), "{}", stderr(&o));

    tiny_bert::write(dir.path(), |_| {});
    tiny_bert::set(dir.path(), "1_Pooling/config.json", "word_embedding_dimension", 384.into());
    assert_usage_error(&embed(dir.path(), &[]), "word_embedding_dimension 384 disagrees with hidden_size 8");
}

#[cfg(unix)]
#[test]
fn special_files_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    tiny_bert::write(dir.path(), |_| {});
    let tok = dir.path().join("tokenizer.json");
    std::fs::remove_file(&tok).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &tok).unwrap();
    assert_usage_error(&embed(dir.path(), &[]), "tokenizer.json: is not a regular file");
    std::fs::remove_file(&tok).unwrap();
    if std::process::Command::new("mkfifo").arg(&tok).status().is_ok_and(|s| s.success()) {
        // Nothing writes to the FIFO: a reader would block forever, so the binary is killed
        // (and the test fails) if it has not finished within a minute.
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tensile"))
            .args(["embed", "--model", dir.path().to_str().unwrap(), "--text", "hi"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > std::time::Duration::from_secs(60) {
                child.kill().unwrap();
                panic!("tensile embed blocked on a FIFO tokenizer.json");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_usage_error(&child.wait_with_output().unwrap(), "tokenizer.json: is not a regular file");
    } else {
        println!("skipped the FIFO case: mkfifo is not available");
    }
}
