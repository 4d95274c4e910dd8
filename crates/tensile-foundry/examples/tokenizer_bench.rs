//! tensile-foundry's tokenizer throughput on a corpus, measured as bench/tokenizers_throughput.py
//! measures Python `tokenizers` (run both with `bash bench/tokenizers.sh`): training a
//! byte-level BPE of 4096 tokens on every file (MB/s of the raw files), and encoding every
//! document with `encode_batch` (MB/s of the documents' text). Best of 3 runs each.
//!
//!     cargo run --release -p tensile-foundry --example tokenizer_bench [CORPUS_DIR]

use std::time::Instant;
use tensile_foundry::config::{NonUtf8, TokenizerKind};
use tensile_foundry::corpus::Corpus;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "test-data/fortunes".into());
    let mut files: Vec<_> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && !p.extension().is_some_and(|e| e == "dat" || e == "u8")
                && p.file_name().is_some_and(|n| n != "SOURCE" && !n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    let corpus = Corpus { files, separator: Some("%".into()), non_utf8: NonUtf8::Lossy };
    let mut docs = Vec::new();
    corpus.for_each_document(|d, _| {
        docs.push(d.to_string());
        Ok(())
    })?;
    let (raw_mb, doc_mb) = (corpus.bytes() as f64 / 1e6, docs.iter().map(String::len).sum::<usize>() as f64 / 1e6);
    let specials: Vec<String> = ["<pad>", "<s>", "</s>", "<unk>"].iter().map(|s| s.to_string()).collect();
    let best = |f: &mut dyn FnMut()| {
        (0..3)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    };
    let mut tok = None;
    let train_s = best(&mut || tok = Some(tensile_foundry::tokenizer::train(TokenizerKind::Bpe, 4096, &specials, docs.clone().into_iter()).unwrap()));
    let tok = tok.expect("trained");
    let texts: Vec<&str> = docs.iter().map(String::as_str).collect();
    let mut tokens = 0;
    let encode_s = best(&mut || tokens = tok.encode_batch(texts.clone(), false).unwrap().iter().map(|e| e.len()).sum::<usize>());
    println!("| implementation | corpus MB | documents | train MB/s | encode MB/s | tokens |");
    println!("|---|---|---|---|---|---|");
    println!("| tensile-foundry (Rust tokenizers 0.22) | {raw_mb:.2} | {} | {:.2} | {:.2} | {tokens} |", docs.len(), raw_mb / train_s, doc_mb / encode_s);
    Ok(())
}
