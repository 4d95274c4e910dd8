//! SentencePiece `.model` files, read without SentencePiece's C++: the protobuf (`ModelProto`)
//! is decoded here field by field, and the pieces, normalisation and whitespace rules become a
//! `tokenizers` Unigram tokenizer.
//!
//! Field numbers (sentencepiece_model.proto): `ModelProto.pieces` 1, `trainer_spec` 2,
//! `normalizer_spec` 3; `SentencePiece.piece` 1, `score` 2, `type` 3 (1 normal, 2 unknown,
//! 3 control, 4 user-defined, 5 unused, 6 byte); `TrainerSpec.model_type` 3 (1 unigram),
//! `byte_fallback` 35, `unk_id` 40; `NormalizerSpec.precompiled_charsmap` 2,
//! `add_dummy_prefix` 3, `remove_extra_whitespaces` 4 (both true unless set).

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::metaspace::Metaspace as MetaspaceDecoder;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::unigram::Unigram;
use tokenizers::normalizers::{NormalizerWrapper, Replace, Sequence, Strip};
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::{AddedToken, Tokenizer};

/// One protobuf field: its number and value (a varint, 4 or 8 fixed bytes, or bytes).
enum Field<'a> {
    Varint(u64),
    Fixed32([u8; 4]),
    Bytes(&'a [u8]),
}

/// The fields of a protobuf message, in order; an error for a truncated or malformed one.
fn fields(mut b: &[u8]) -> Result<Vec<(u64, Field<'_>)>, String> {
    fn varint(b: &mut &[u8]) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = b.split_first().ok_or("truncated varint")?;
            *b = rest;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint longer than 10 bytes".into())
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b)?;
        let (number, wire) = (key >> 3, key & 7);
        let take = |b: &mut &'_ [u8], n: usize| -> Result<(), String> {
            if b.len() < n {
                return Err(format!("field {number} is truncated"));
            }
            *b = &b[n..];
            Ok(())
        };
        let field = match wire {
            0 => Field::Varint(varint(&mut b)?),
            1 => {
                take(&mut b, 8)?;
                continue;
            }
            2 => {
                let n = usize::try_from(varint(&mut b)?).map_err(|_| "length too large")?;
                if b.len() < n {
                    return Err(format!("field {number} is truncated"));
                }
                let (bytes, rest) = b.split_at(n);
                b = rest;
                Field::Bytes(bytes)
            }
            5 => {
                let f: [u8; 4] = b.get(..4).ok_or(format!("field {number} is truncated"))?.try_into().map_err(|_| "bad fixed32")?;
                b = &b[4..];
                Field::Fixed32(f)
            }
            w => return Err(format!("field {number} has wire type {w}, which protobuf does not define")),
        };
        out.push((number, field));
    }
    Ok(out)
}

/// A piece of the vocabulary.
struct Piece {
    text: String,
    score: f64,
    kind: u64,
}

/// The Unigram tokenizer a SentencePiece `.model` describes. Errors name what is wrong.
pub(crate) fn tokenizer(bytes: &[u8]) -> Result<Tokenizer, String> {
    let (mut pieces, mut model_type, mut byte_fallback, mut unk_id) = (Vec::new(), 1, false, None);
    let (mut charsmap, mut dummy_prefix, mut extra_spaces) = (Vec::new(), true, true);
    for (number, field) in fields(bytes).map_err(|e| format!("not a SentencePiece model: {e}"))? {
        match (number, field) {
            (1, Field::Bytes(p)) => {
                let mut piece = Piece { text: String::new(), score: 0.0, kind: 1 };
                for (n, f) in fields(p)? {
                    match (n, f) {
                        (1, Field::Bytes(s)) => piece.text = String::from_utf8(s.to_vec()).map_err(|_| "a piece is not UTF-8")?,
                        (2, Field::Fixed32(f)) => piece.score = f64::from(f32::from_le_bytes(f)),
                        (3, Field::Varint(t)) => piece.kind = t,
                        _ => {}
                    }
                }
                pieces.push(piece);
            }
            (2, Field::Bytes(spec)) => {
                for (n, f) in fields(spec)? {
                    match (n, f) {
                        (3, Field::Varint(t)) => model_type = t,
                        (35, Field::Varint(v)) => byte_fallback = v != 0,
                        (40, Field::Varint(v)) => unk_id = Some(v as usize),
                        _ => {}
                    }
                }
            }
            (3, Field::Bytes(spec)) => {
                for (n, f) in fields(spec)? {
                    match (n, f) {
                        (2, Field::Bytes(m)) => charsmap = m.to_vec(),
                        (3, Field::Varint(v)) => dummy_prefix = v != 0,
                        (4, Field::Varint(v)) => extra_spaces = v != 0,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if model_type != 1 {
        return Err(format!("model_type {model_type} is not supported (only unigram, 1)"));
    }
    if pieces.is_empty() {
        return Err("the model has no pieces".into());
    }
    let unk_id = unk_id.or_else(|| pieces.iter().position(|p| p.kind == 2));
    let vocab: Vec<(String, f64)> = pieces.iter().map(|p| (p.text.clone(), p.score)).collect();
    let model = Unigram::from(vocab, unk_id, byte_fallback).map_err(|e| e.to_string())?;
    let mut t = Tokenizer::new(model);
    // SentencePiece's normalisation: the precompiled character map (NFKC and friends), then,
    // with remove_extra_whitespaces, no leading or trailing whitespace and single inner spaces.
    let mut normalizers: Vec<NormalizerWrapper> = Vec::new();
    if !charsmap.is_empty() {
        let p = tokenizers::normalizers::precompiled::Precompiled::from(&charsmap).map_err(|e| format!("precompiled_charsmap: {e}"))?;
        normalizers.push(p.into());
    }
    if extra_spaces {
        normalizers.push(Strip::new(true, true).into());
        normalizers.push(Replace::new(tokenizers::normalizers::replace::ReplacePattern::Regex(" {2,}".into()), " ").map_err(|e| e.to_string())?.into());
    }
    if !normalizers.is_empty() {
        t.with_normalizer(Some(Sequence::new(normalizers)));
    }
    let scheme = if dummy_prefix { PrependScheme::Always } else { PrependScheme::Never };
    t.with_pre_tokenizer(Some(Metaspace::new('▁', scheme, true)));
    let metaspace = DecoderWrapper::Metaspace(MetaspaceDecoder::new('▁', scheme, true));
    if byte_fallback {
        t.with_decoder(Some(DecoderSequence::new(vec![DecoderWrapper::ByteFallback(ByteFallback::new()), metaspace])));
    } else {
        t.with_decoder(Some(metaspace));
    }
    // Control and user-defined pieces are matched whole, before the model.
    let specials: Vec<AddedToken> = pieces.iter().filter(|p| p.kind == 3 || p.kind == 4).map(|p| AddedToken::from(p.text.clone(), p.kind == 3)).collect();
    t.add_special_tokens(&specials);
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_or_malformed_protobuf_is_an_error() {
        assert!(tokenizer(&[0x0a, 0x05, b'a']).unwrap_err().contains("truncated"));
        assert!(tokenizer(&[0x0b]).unwrap_err().contains("wire type 3"));
        assert!(tokenizer(&[]).unwrap_err().contains("no pieces"));
        // model_type 2 (BPE) in the trainer spec.
        let piece = [0x0a, 0x03, 0x0a, 0x01, b'a'];
        let spec = [0x12, 0x02, 0x18, 0x02];
        assert!(tokenizer(&[&piece[..], &spec[..]].concat()).unwrap_err().contains("model_type 2"));
    }
}
