//! The bodies of tensile's fuzz targets, one function per target.
//!
//! They live here, not in the `fuzz_targets/*.rs` binaries, so that two callers share them:
//! cargo-fuzz (nightly, libFuzzer) through the binaries, and the stable test
//! `crates/tensile/tests/fuzz_corpora.rs`, which includes this file with `#[path]` and replays
//! every committed corpus file through the same functions on each `cargo test`. This file
//! therefore uses only `tensile`, `tensile_nn`, `serde_json` and `tokenizers`, never
//! `libfuzzer_sys`.
//!
//! Each function feeds arbitrary bytes to a loader of user input and returns what it said:
//! `Ok` or the error's message. A panic, an abort, a hang or unbounded memory is a bug; so is
//! an error of a file loader that does not name the file or spans several lines, and the
//! functions panic on those too, so the fuzzer reports them.

use std::path::Path;

/// The file name the loaders are told, which their errors must name.
const SPEC_PATH: &str = "fuzz-input/spec.toml";
const CASE_PATH: &str = "fuzz-input/case.safetensors";
const BASELINE_PATH: &str = "fuzz-input/main.json";

/// Panics unless `message` is one line naming `path`.
fn assert_names(path: &str, message: &str) {
    assert!(message.contains(path), "error does not name the file {path}: {message}");
    assert!(!message.contains('\n'), "error spans several lines: {message}");
}

/// `spec_file`: the spec parser (`tensile::specfile::parse`) on the bytes as UTF-8 text, or
/// decoded lossily when they are not UTF-8 (a file that is not UTF-8 never reaches the parser;
/// `tensile::input` refuses it).
pub fn spec_file(data: &[u8]) -> Result<usize, String> {
    let text = String::from_utf8_lossy(data);
    match tensile::specfile::parse(&text, Path::new(SPEC_PATH)) {
        Ok(tests) => Ok(tests.len()),
        Err(e) => {
            let message = e.to_string();
            assert!(message.contains(SPEC_PATH), "error does not name the file {SPEC_PATH}: {message}");
            Err(message)
        }
    }
}

/// `reference_case`: the safetensors reference-case loader (`GoldenCase::from_bytes`, which
/// `GoldenCase::load` calls) on arbitrary bytes.
pub fn reference_case(data: &[u8]) -> Result<Vec<usize>, String> {
    match tensile::golden::GoldenCase::from_bytes(data, Path::new(CASE_PATH)) {
        Ok(case) => Ok(case.input.dims().to_vec()),
        Err(e) => Err(e.to_string()),
    }
}

/// `baseline`: the baseline loader (`Baseline::from_slice`, which `Baseline::load` calls) on
/// arbitrary bytes. A baseline that loads must also compare: every entry against itself gives a
/// slowdown of zero and no regression, because a load refuses empty, zero, negative and
/// non-finite samples (which made `NaN%` and `+inf%`).
pub fn baseline(data: &[u8]) -> Result<usize, String> {
    use tensile::baseline::{compare, Baseline, DEFAULT_THRESHOLD, MAX_SAMPLES};
    match Baseline::from_slice(data, Path::new(BASELINE_PATH)) {
        Ok(b) => {
            for e in &b.entries {
                assert!(e.samples_ms.len() <= MAX_SAMPLES && e.work_samples_ms.len() <= MAX_SAMPLES, "a load keeps at most {MAX_SAMPLES} samples");
                let c = compare(&e.samples_ms, &e.samples_ms, DEFAULT_THRESHOLD);
                assert!(c.slowdown == 0.0 && !c.regression, "entry `{}` against itself: {c:?}", e.name);
            }
            Ok(b.entries.len())
        }
        Err(e) => {
            let message = e.to_string();
            assert_names(BASELINE_PATH, &message);
            Err(message)
        }
    }
}

/// `embed_config`: what `embed` parses besides the weights, on the same bytes: `config.json`
/// as a `BertConfig` (with its validation and derived attention config), `1_Pooling/config.json`
/// as a `PoolingConfig`, and `tokenizer.json` through `tensile_nn::tokenizer::from_bytes` (which
/// turns the panics of `tokenizers` on malformed files into errors), with
/// the truncation and padding `SentenceEmbedder::load` sets, then one short text encoded.
pub fn embed_config(data: &[u8]) -> Result<(), String> {
    use tensile_nn::bert::BertConfig;
    use tensile_nn::sentence::PoolingConfig;
    use tokenizers::{PaddingParams, PaddingStrategy, TruncationParams};

    let mut said = Vec::new();
    match serde_json::from_slice::<BertConfig>(data) {
        Ok(cfg) => match cfg.validate() {
            Ok(()) => {
                let attention = cfg.attention_config();
                assert_eq!(attention.head_dim * attention.num_attention_heads, cfg.hidden_size, "validated heads divide the width");
                let _ = cfg.layer_dims();
            }
            Err(e) => said.push(e.to_string()),
        },
        Err(e) => said.push(e.to_string()),
    }
    if let Err(e) = serde_json::from_slice::<PoolingConfig>(data) {
        said.push(e.to_string());
    }
    match tensile_nn::tokenizer::from_bytes(data, Path::new("fuzz-input/tokenizer.json")) {
        Ok(mut tokenizer) => {
            tokenizer.with_truncation(Some(TruncationParams { max_length: 16, ..Default::default() })).map_err(|e| e.to_string())?;
            tokenizer.with_padding(Some(PaddingParams { strategy: PaddingStrategy::BatchLongest, ..Default::default() }));
            if let Err(e) = tensile_nn::tokenizer::encode_batch(&tokenizer, vec!["a short text", "x"]) {
                said.push(e.to_string());
            }
        }
        Err(e) => said.push(e.to_string()),
    }
    if said.is_empty() {
        Ok(())
    } else {
        Err(said.join("; "))
    }
}
