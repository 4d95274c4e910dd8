//! Loading a `tokenizer.json` that may be malformed.
//!
//! `tokenizers` 0.22 panics on some malformed files instead of returning an error: fuzzing
//! found that `{"decoder":` (the file cut off after a key) reaches an `expect("Helper")` in its
//! decoder deserialiser, and that encoding with a template post-processor whose special token is
//! not listed panics (`no entry found for key`). [`from_bytes`] and [`encode_batch`] turn such
//! panics into [`Error::Tokenizer`], so `embed` can exit 2 with one line instead of a panic.

use crate::error::{Error, Result};
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use tokenizers::{Encoding, PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// Parses the bytes of a `tokenizer.json`; `path` names it in errors. A panic inside
/// `tokenizers` is caught and becomes an error. The panic hook is silenced meanwhile, so
/// nothing is printed (a panic of another thread in that moment is not printed either).
pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Tokenizer> {
    match quietly(|| Tokenizer::from_bytes(bytes)) {
        Ok(Ok(tokenizer)) => Ok(tokenizer),
        Ok(Err(e)) => Err(Error::Tokenizer(format!("{}: {e}", path.display()))),
        Err(_) => Err(Error::Tokenizer(format!("{}: not a valid tokenizer file (the tokenizers crate could not parse it)", path.display()))),
    }
}

/// The `tokenizer.json` at `path` made ready for a model: every token id must be below
/// `vocab_size` (declared in `config_path`, which the error names), inputs are truncated to
/// `max_length` and batches padded to the longest with `pad_id`.
pub fn for_model(path: &Path, config_path: &Path, vocab_size: usize, max_length: usize, pad_id: u32) -> Result<Tokenizer> {
    let mut tokenizer = from_bytes(&crate::files::read(path, crate::files::MAX_JSON_BYTES)?, path)?;
    // An id past the embedding table would fail as an index error deep in the forward.
    if let Some(id) = tokenizer.get_vocab(true).into_values().max().filter(|&id| id as usize >= vocab_size) {
        return Err(Error::Model { path: path.to_path_buf(), reason: format!("token id {id} is past vocab_size {vocab_size} in {}", config_path.display()) });
    }
    tokenizer.with_truncation(Some(TruncationParams { max_length, ..Default::default() })).map_err(|e| Error::Tokenizer(e.to_string()))?;
    tokenizer.with_padding(Some(PaddingParams { strategy: PaddingStrategy::BatchLongest, pad_id, ..Default::default() }));
    Ok(tokenizer)
}

/// Encodes `texts` (with special tokens) as `Tokenizer::encode_batch` does; a panic inside
/// `tokenizers` is caught and becomes an error, as in [`from_bytes`].
pub fn encode_batch(tokenizer: &Tokenizer, texts: Vec<&str>) -> Result<Vec<Encoding>> {
    match quietly(|| tokenizer.encode_batch(texts, true)) {
        Ok(Ok(encodings)) => Ok(encodings),
        Ok(Err(e)) => Err(Error::Tokenizer(e.to_string())),
        Err(_) => Err(Error::Tokenizer("the tokenizer failed on its own configuration (for example a special token it does not list)".into())),
    }
}

/// Runs `f` with the panic hook silenced, returning its panic as `Err`.
fn quietly<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    panic::set_hook(hook);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_truncated_decoder_is_an_error_not_a_panic() {
        // Found by the `embed_config` fuzz target: tokenizers 0.22 panics on this.
        for bad in [&b"{\"decoder\":"[..], b"{\"decoder\"::", b"{\"normalizer\": {\"type\": \"Precompiled\"}}"] {
            let e = from_bytes(bad, Path::new("m/tokenizer.json")).unwrap_err().to_string();
            assert!(e.contains("m/tokenizer.json"), "{e}");
        }
    }

    #[test]
    fn a_template_naming_an_unlisted_special_token_fails_to_encode_without_a_panic() {
        // Found by the `embed_config` fuzz target: tokenizers 0.22 panics in encode_batch.
        let text = include_str!("../tests/data/tokenizer_missing_special_token.json");
        let t = from_bytes(text.as_bytes(), Path::new("tokenizer.json")).unwrap();
        let e = encode_batch(&t, vec!["a short text"]).unwrap_err().to_string();
        assert!(e.contains("special token"), "{e}");
    }

    #[test]
    fn a_valid_tokenizer_loads() {
        let text = include_str!("../../../fuzz/corpus/embed_config/tokenizer_bpe.json");
        let t = from_bytes(text.as_bytes(), Path::new("tokenizer.json")).unwrap();
        assert!(t.get_vocab_size(false) > 0);
    }
}
