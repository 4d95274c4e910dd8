//! Tokenizers for the foundry (the `tokenizers` crate): trained on the corpus as byte-level
//! BPE, WordPiece or Unigram with the objective's special tokens first in the vocabulary, or
//! loaded from a `tokenizer.json` or a SentencePiece `.model`; saved atomically.

use crate::config::TokenizerKind;
use crate::error::{Error, Result};
use std::path::Path;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::metaspace::Metaspace as MetaspaceDecoder;
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::unigram::{Unigram, UnigramTrainerBuilder};
use tokenizers::models::wordpiece::{WordPiece, WordPieceTrainerBuilder};
use tokenizers::models::{ModelWrapper, TrainerWrapper};
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::{AddedToken, PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

fn tok_err(e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(e.to_string())
}

/// Trains a `kind` tokenizer of `vocab_size` tokens on `documents`, with `specials` taking
/// ids 0, 1, … in order.
///
/// - BPE is byte-level (GPT-2's): every text encodes without an unknown token and decodes
///   back exactly.
/// - Unigram splits at spaces kept as `▁` (SentencePiece's Metaspace) and decodes back
///   exactly when every character was seen in training.
/// - WordPiece splits at whitespace and punctuation (BERT's), so decoding joins words with
///   single spaces: it does not round-trip whitespace.
pub fn train(kind: TokenizerKind, vocab_size: usize, specials: &[String], documents: impl Iterator<Item = String> + Send) -> Result<Tokenizer> {
    let added: Vec<AddedToken> = specials.iter().map(|s| AddedToken::from(s.clone(), true)).collect();
    let unk = specials.iter().find(|s| s.contains("unk")).cloned();
    let (mut tokenizer, mut trainer): (Tokenizer, TrainerWrapper) = match kind {
        TokenizerKind::Bpe => {
            let mut t = Tokenizer::new(ModelWrapper::BPE(BPE::default()));
            t.with_pre_tokenizer(Some(ByteLevel::default().add_prefix_space(false)));
            t.with_decoder(Some(ByteLevelDecoder::default()));
            let trainer = BpeTrainerBuilder::new()
                .vocab_size(vocab_size)
                .special_tokens(added)
                .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
                .show_progress(false)
                .build();
            (t, trainer.into())
        }
        TokenizerKind::Wordpiece => {
            let model = WordPiece::builder().unk_token(unk.clone().unwrap_or_else(|| "[UNK]".into())).build().map_err(tok_err)?;
            let mut t = Tokenizer::new(ModelWrapper::WordPiece(model));
            t.with_pre_tokenizer(Some(BertPreTokenizer));
            t.with_decoder(Some(WordPieceDecoder::default()));
            let trainer = WordPieceTrainerBuilder::new().vocab_size(vocab_size).special_tokens(added).show_progress(false).build();
            (t, trainer.into())
        }
        TokenizerKind::Unigram => {
            let mut t = Tokenizer::new(ModelWrapper::Unigram(Unigram::default()));
            t.with_pre_tokenizer(Some(Metaspace::new('▁', PrependScheme::First, true)));
            t.with_decoder(Some(MetaspaceDecoder::new('▁', PrependScheme::First, true)));
            let trainer = UnigramTrainerBuilder::default()
                .vocab_size(vocab_size as u32)
                .special_tokens(added)
                .unk_token(unk)
                .show_progress(false)
                .build()
                .map_err(tok_err)?;
            (t, trainer.into())
        }
    };
    tokenizer.train(&mut trainer, documents).map_err(tok_err)?;
    // Specials are matched whole in text, before the model, as added tokens.
    let specials: Vec<AddedToken> = specials.iter().map(|s| AddedToken::from(s.clone(), true)).collect();
    tokenizer.add_special_tokens(&specials);
    Ok(tokenizer)
}

/// Loads `path`: a `tokenizer.json`, or a SentencePiece `.model` (by its extension).
pub fn load(path: &Path) -> Result<Tokenizer> {
    let bytes = tensile_nn::files::read(path, tensile_nn::files::MAX_JSON_BYTES)?;
    if path.extension().is_some_and(|e| e == "model") {
        return crate::spm::tokenizer(&bytes).map_err(|reason| Error::Data { path: path.to_path_buf(), reason });
    }
    Tokenizer::from_bytes(&bytes).map_err(|e| Error::Data { path: path.to_path_buf(), reason: format!("not a tokenizer.json: {e}") })
}

/// Writes `tokenizer` as `dir/tokenizer.json`, atomically, creating `dir`.
pub fn save(tokenizer: &Tokenizer, dir: &Path) -> Result<std::path::PathBuf> {
    let io = |source| Error::Nn(tensile_nn::Error::Io { path: dir.to_path_buf(), source });
    std::fs::create_dir_all(dir).map_err(io)?;
    let path = dir.join("tokenizer.json");
    let json = tokenizer.to_string(true).map_err(tok_err)?;
    tensile_nn::files::write_atomic(&path, json).map_err(io)?;
    Ok(path)
}

/// The id of special token `name`, which must be in the vocabulary.
pub fn special_id(tokenizer: &Tokenizer, name: &str) -> Result<u32> {
    tokenizer.token_to_id(name).ok_or_else(|| Error::Tokenizer(format!("the vocabulary has no `{name}`")))
}

/// `tokenizer` set to pad batches to their longest member with `pad` (id `pad_id`) and to
/// truncate to `max_length`: batch encodings then carry attention masks.
pub fn with_padding(mut tokenizer: Tokenizer, pad: &str, pad_id: u32, max_length: usize) -> Result<Tokenizer> {
    tokenizer.with_padding(Some(PaddingParams { strategy: PaddingStrategy::BatchLongest, pad_id, pad_token: pad.to_string(), ..Default::default() }));
    tokenizer.with_truncation(Some(TruncationParams { max_length, ..Default::default() })).map_err(tok_err)?;
    Ok(tokenizer)
}
