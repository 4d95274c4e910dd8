//! `tensile foundry preprocess` and `validate`: on Debian's fortunes (fetched by
//! tools/test.sh; skipped with a reason when absent) through the documented example config,
//! and every bad input as exit 2 with one line naming the file.

mod common;

use common::{assert_usage_error, stderr, stdout, tensile};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The example config with its outputs moved into `out`.
fn example_in(out: &Path) -> PathBuf {
    let text = std::fs::read_to_string(root().join("examples/foundry/tiny.toml")).unwrap();
    let text =
        text.replace("../../target/foundry/tiny", &out.display().to_string()).replace("../../test-data", &root().join("test-data").display().to_string());
    let path = out.join("tiny.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_example_prepares_the_fortunes_and_every_token_and_character_survives() {
    let fortunes = root().join("test-data/fortunes");
    if !fortunes.join("computers").exists() {
        println!("skipped: {} is missing (tools/fetch-fortunes.sh fetches it)", fortunes.display());
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let cfg = example_in(out.path());
    let o = tensile(&["foundry", "preprocess", "--config", cfg.to_str().unwrap(), "--no-progress"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("MB/s"), "{}", stdout(&o));
    let o = tensile(&["foundry", "validate", "--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("checksums verified"), "{}", stdout(&o));
    // The tokenizer round-trips every fortune exactly, and the shards hold every token.
    let loaded = tensile_foundry::config::load(&cfg).unwrap();
    let data = out.path().join("data");
    let manifest = tensile_foundry::preprocess::read_manifest(&data).unwrap();
    let tok = tensile_foundry::tokenizer::load(&data.join(&manifest.tokenizer)).unwrap();
    let (mut docs, mut tokens) = (0u64, 0u64);
    tensile_foundry::corpus::Corpus::from_config(&loaded)
        .unwrap()
        .for_each_document(|d, _| {
            let ids = tok.encode(d, false).unwrap().get_ids().to_vec();
            assert_eq!(tok.decode(&ids, false).unwrap(), d);
            docs += 1;
            tokens += ids.len() as u64 + 1;
            Ok(())
        })
        .unwrap();
    let stats: serde_json::Value = serde_json::from_slice(&std::fs::read(data.join("stats.json")).unwrap()).unwrap();
    let sum = |k: &str| stats["train"][k].as_u64().unwrap() + stats["validation"][k].as_u64().unwrap();
    assert_eq!((sum("documents"), sum("tokens")), (docs, tokens));
    assert!(docs > 10_000, "{docs} fortunes");
    let chunked = sum("chunks") * 128 + sum("tokens_wasted");
    assert_eq!(chunked, tokens, "chunks and the dropped tails account for every token");
}

#[test]
fn bad_configs_corpora_and_data_are_one_line_usage_errors() {
    let out = tempfile::tempdir().unwrap();
    let cfg = example_in(out.path());
    let text = std::fs::read_to_string(&cfg).unwrap();
    let bad = out.path().join("bad.toml");
    let with_colour = text.replace("batch_size = 16", "batch_size = 16\ncolour = 3");
    let line = with_colour.lines().position(|l| l.starts_with("colour")).unwrap() + 1;
    std::fs::write(&bad, &with_colour).unwrap();
    assert_usage_error(&tensile(&["foundry", "validate", "--config", bad.to_str().unwrap()]), &format!("bad.toml:{line}:1: unknown field `colour`"));
    std::fs::write(&bad, text.replace("num_attention_heads = 4", "num_attention_heads = 3")).unwrap();
    assert_usage_error(&tensile(&["foundry", "preprocess", "--config", bad.to_str().unwrap()]), "3 heads do not divide hidden_size 128");
    assert_usage_error(&tensile(&["foundry", "validate", "--config", "/nonexistent/x.toml"]), "/nonexistent/x.toml");
    // A corpus without a document names its files.
    let empty = out.path().join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let sources = text.lines().find(|l| l.starts_with("sources")).unwrap();
    std::fs::write(&bad, text.replace(sources, &format!("sources = [{:?}]", empty.display().to_string()))).unwrap();
    assert_usage_error(&tensile(&["foundry", "preprocess", "--config", bad.to_str().unwrap(), "--no-progress"]), "empty.txt");
    // Prepared data with a damaged shard fails validation.
    let small = out.path().join("small.txt");
    std::fs::write(&small, "one two three four five six seven eight nine ten ".repeat(200)).unwrap();
    let body = text
        .replace(sources, &format!("sources = [{:?}]", small.display().to_string()))
        .replace("vocab_size = 4096", "vocab_size = 300")
        .replace("max_sequence_length = 128", "max_sequence_length = 16");
    std::fs::write(&bad, body).unwrap();
    let o = tensile(&["foundry", "preprocess", "--config", bad.to_str().unwrap(), "--no-progress"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let shard = out.path().join("data/train_00000.bin");
    let mut bytes = std::fs::read(&shard).unwrap();
    *bytes.last_mut().unwrap() ^= 0xff;
    std::fs::write(&shard, bytes).unwrap();
    assert_usage_error(&tensile(&["foundry", "validate", "--config", bad.to_str().unwrap()]), "train_00000.bin");
}
