//! Replays every committed fuzz corpus file (fuzz/corpus/TARGET/*) through the fuzz targets'
//! bodies on stable, on every `cargo test`: CI never builds the nightly-only fuzzer, but each
//! input it ever kept, crashes fixed since included, still runs through the same code. The
//! bodies live in fuzz/src/lib.rs, included here with `#[path]`, so the fuzzer and this test
//! cannot drift apart. See docs/fuzzing.md.

use std::path::{Path, PathBuf};

#[allow(dead_code)]
#[path = "../../../fuzz/src/lib.rs"]
mod targets;

/// The committed inputs of `target`, sorted; a target without a corpus is a mistake.
fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("fuzz corpus {} is missing: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "fuzz corpus {} is empty", dir.display());
    files
}

/// Runs every corpus file of `target` through `body`; a panic names the file. Returns how many
/// inputs were accepted and how many refused.
fn replay<T, F>(target: &str, body: F) -> (usize, usize)
where
    F: Fn(&[u8]) -> Result<T, String> + std::panic::RefUnwindSafe,
{
    let (mut accepted, mut refused) = (0, 0);
    for file in corpus(target) {
        let bytes = std::fs::read(&file).unwrap();
        match std::panic::catch_unwind(|| body(&bytes)) {
            Ok(Ok(_)) => accepted += 1,
            Ok(Err(message)) => {
                assert!(!message.is_empty(), "{}: an empty error", file.display());
                refused += 1;
            }
            Err(_) => panic!("fuzz target {target} panicked on {} (see the message above)", file.display()),
        }
    }
    (accepted, refused)
}

/// The seeds are real files, so each corpus holds inputs a loader accepts; a loader that starts
/// refusing every one of them has regressed.
fn assert_some_accepted(target: &str, (accepted, refused): (usize, usize)) {
    assert!(accepted > 0, "fuzz target {target}: none of the {refused} corpus inputs was accepted");
}

#[test]
fn spec_file_corpus() {
    assert_some_accepted("spec_file", replay("spec_file", targets::spec_file));
}

#[test]
fn reference_case_corpus() {
    assert_some_accepted("reference_case", replay("reference_case", targets::reference_case));
}

#[test]
fn baseline_corpus() {
    assert_some_accepted("baseline", replay("baseline", targets::baseline));
}

#[test]
fn embed_config_corpus() {
    assert_some_accepted("embed_config", replay("embed_config", targets::embed_config));
}
