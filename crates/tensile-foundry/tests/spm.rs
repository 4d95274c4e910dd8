//! SentencePiece `.model` files read without SentencePiece, against sentencepiece 0.2's own
//! encodings (tests/data/spm, made by make_spm.py): an identity-normalised Unigram model, and
//! one with NFKC normalisation (a precompiled character map) and byte fallback.

use std::path::Path;
use tensile_foundry::tokenizer;

fn check(name: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/spm");
    let reference: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.json"))).unwrap()).unwrap();
    let tok = tokenizer::load(&dir.join(format!("{name}.model"))).unwrap();
    assert_eq!(tok.get_vocab_size(true) as u64, reference["vocab_size"].as_u64().unwrap(), "{name}");
    for case in reference["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = case["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        let enc = tok.encode(text, false).unwrap();
        assert_eq!(enc.get_ids(), want.as_slice(), "{name}: ids of {text:?} (pieces {:?} vs {})", enc.get_tokens(), case["pieces"]);
        if case["decoded"].as_str().is_some_and(|d| !d.contains('⁇')) {
            assert_eq!(tok.decode(&want, false).unwrap(), case["decoded"].as_str().unwrap(), "{name}: decoding {text:?}");
        }
    }
}

#[test]
fn an_identity_unigram_model_encodes_as_sentencepiece_does() {
    check("unigram");
}

#[test]
fn an_nfkc_model_with_byte_fallback_encodes_as_sentencepiece_does() {
    check("unigram_nfkc");
}

#[test]
fn a_file_that_is_not_a_model_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x.model");
    std::fs::write(&f, [0x0a, 0x05, b'a']).unwrap();
    let e = tokenizer::load(&f).err().unwrap().to_string();
    assert!(e.contains("x.model") && e.contains("not a SentencePiece model"), "{e}");
    let j = dir.path().join("t.json");
    std::fs::write(&j, "{}").unwrap();
    assert!(tokenizer::load(&j).err().unwrap().to_string().contains("not a tokenizer.json"));
}
