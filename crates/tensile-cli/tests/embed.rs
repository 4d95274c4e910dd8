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

/// The texts of the file tests, of different lengths and not sorted by length, so a batched
/// run that did not restore the input order would print the vectors in another order.
const TEXTS: [&str; 5] = ["world", "hello world hello world hello world hello", "hello", "world hello world", "hello hello"];

/// `tensile embed --model DIR ARGS… --json` with `stdin` on its standard input; its embeddings.
fn embed_json(dir: &Path, args: &[&str], stdin: &[u8]) -> (std::process::Output, Vec<Vec<f64>>) {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tensile"))
        .args(["embed", "--model", dir.to_str().unwrap(), "--json"])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Written from another thread, so a child that exits without reading cannot block the test.
    let mut pipe = child.stdin.take().unwrap();
    let input = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let o = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let rows = v["embeddings"].as_array().unwrap().iter().map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()).collect();
    (o, rows)
}

#[test]
fn files_standard_input_and_text_flags_embed_alike() {
    let model = tempfile::tempdir().unwrap();
    tiny_bert::write(model.path(), |_| {});
    let mut by_flag = vec![];
    for t in TEXTS {
        by_flag.extend(["--text", t]);
    }
    let (_, want) = embed_json(model.path(), &by_flag, b"");
    assert_eq!(want.len(), TEXTS.len());
    for i in 0..want.len() {
        for j in 0..i {
            assert_ne!(want[i], want[j], "texts {i} and {j} embed alike: the order would not be tested");
        }
    }

    let files = tempfile::tempdir().unwrap();
    // Plain text: Windows line ends and blank lines (skipped) in between.
    let plain = format!("\n{}\r\n\n   \n{}\n{}\n\n{}\r\n{}", TEXTS[0], TEXTS[1], TEXTS[2], TEXTS[3], TEXTS[4]);
    let plain_path = files.path().join("texts.txt");
    std::fs::write(&plain_path, &plain).unwrap();
    // JSON Lines: strings and objects with a "text" field (other fields ignored), a blank line.
    let jsonl = format!(
        "{}\n{{\"id\": 2, \"text\": {}}}\n\n{}\n{{\"text\": {}}}\n{}\n",
        serde_json::json!(TEXTS[0]),
        serde_json::json!(TEXTS[1]),
        serde_json::json!(TEXTS[2]),
        serde_json::json!(TEXTS[3]),
        serde_json::json!({"text": TEXTS[4], "label": 1}),
    );
    let jsonl_path = files.path().join("texts.jsonl");
    std::fs::write(&jsonl_path, &jsonl).unwrap();
    let jsonl_as_txt = files.path().join("jsonl.txt");
    std::fs::write(&jsonl_as_txt, &jsonl).unwrap();

    let plain_arg = plain_path.to_str().unwrap();
    for (what, args, stdin) in [
        ("a plain file", vec!["--input", plain_arg], &b""[..]),
        ("a plain file in batches of 2", vec!["--input", plain_arg, "--batch-size", "2"], b""),
        ("a .jsonl file", vec!["--input", jsonl_path.to_str().unwrap()], b""),
        ("--jsonl on another name", vec!["--input", jsonl_as_txt.to_str().unwrap(), "--jsonl"], b""),
        ("plain standard input", vec!["--input", "-"], plain.as_bytes()),
        ("JSON Lines on standard input", vec!["--input", "-", "--jsonl", "--batch-size", "1"], jsonl.as_bytes()),
    ] {
        let (o, got) = embed_json(model.path(), &args, stdin);
        assert_eq!(got.len(), want.len(), "{what}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let diff = g.iter().zip(w).map(|(a, b)| (a - b).abs()).fold(0f64, f64::max);
            assert!(diff <= 1e-5, "{what}: text {i} differs by {diff}");
        }
        // One summary line on stderr, with the count and a throughput.
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{what}: {err}");
        assert!(err.starts_with("embedded 5 texts in ") && err.trim_end().ends_with(" texts/s, load excluded)"), "{what}: {err}");
    }
}

/// Runs `tensile embed` on the tiny model with `args`.
fn embed_args(args: &[&str]) -> std::process::Output {
    let model = tempfile::tempdir().unwrap();
    tiny_bert::write(model.path(), |_| {});
    let mut all = vec!["embed", "--model", model.path().to_str().unwrap()];
    all.extend(args);
    tensile(&all)
}

#[test]
fn bad_input_is_a_usage_error_naming_the_problem() {
    let files = tempfile::tempdir().unwrap();
    let good = files.path().join("good.txt");
    std::fs::write(&good, "hello\n").unwrap();
    let good = good.to_str().unwrap();
    let o = embed_args(&["--input", good, "--batch-size", "0"]);
    assert_usage_error(&o, "invalid --batch-size: must be at least 1, got 0");
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    assert_usage_error(&embed_args(&["--text", "hello", "--batch-size", "0"]), "--batch-size");

    let missing = files.path().join("missing.txt");
    assert_usage_error(&embed_args(&["--input", missing.to_str().unwrap()]), &format!("failed to read texts from {}", missing.display()));
    assert_usage_error(&embed_args(&["--input", files.path().to_str().unwrap()]), "is a directory");

    // Each malformed JSON Lines line is named by its number, counting blank lines.
    for (line3, mentions) in [
        ("{\"text\": \"hello", "line 3: not valid JSON"),
        ("hello", "line 3: not valid JSON"),
        ("{\"txt\": \"hello\"}", "line 3: the object has no field \"text\""),
        ("{\"text\": 5}", "line 3: the field \"text\" is a number, not a string"),
        ("[\"hello\"]", "line 3: expected a JSON string or an object with a field \"text\", got an array"),
    ] {
        let path = files.path().join("bad.jsonl");
        std::fs::write(&path, format!("\"hello\"\n\n{line3}\n\"world\"\n")).unwrap();
        let o = embed_args(&["--input", path.to_str().unwrap()]);
        assert_usage_error(&o, mentions);
        assert!(stderr(&o).contains("bad.jsonl"), "{}", stderr(&o));
    }

    let blank = files.path().join("blank.txt");
    std::fs::write(&blank, "\n  \n\n").unwrap();
    assert_usage_error(&embed_args(&["--input", blank.to_str().unwrap()]), "no texts in");

    // --text and --input exclude each other, one of them is required, and --jsonl is for --input
    // (clap's usage errors: exit 2).
    for args in [&["--input", good, "--text", "hello"][..], &[], &["--text", "hello", "--jsonl"]] {
        let o = embed_args(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stdout(&o).is_empty(), "{args:?}: {}", stdout(&o));
    }
}

#[test]
fn nan_embeddings_of_a_file_name_ten_sentences_then_count_the_rest() {
    let model = tempfile::tempdir().unwrap();
    tiny_bert::write(model.path(), |w| tiny_bert::poison(w, "embeddings.LayerNorm.weight"));
    let files = tempfile::tempdir().unwrap();
    let path = files.path().join("texts.txt");
    std::fs::write(&path, "hello\n".repeat(12)).unwrap();
    let o = tensile(&["embed", "--model", model.path().to_str().unwrap(), "--input", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 12, "what was computed is printed: {}", stdout(&o));
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "the summary, then the error: {err}");
    assert!(lines[0].starts_with("embedded 12 texts in "), "{err}");
    assert!(lines[1].starts_with("error: embeddings are not finite") && lines[1].contains("10 \"hello\", and 2 more of 12"), "{err}");
    assert!(!lines[1].contains("11 \"hello\""), "{err}");
}
