//! The data pipeline on the committed tiny corpus: raw → tokenized → chunked → loaded keeps
//! every token, the tokenizer round-trips the corpus, the loader is deterministic, shuffles,
//! resumes and gives the same batches on any number of workers, and each edge case has a
//! clear result.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use tensile_foundry::config::{self, LoadedConfig, TokenizerKind};
use tensile_foundry::corpus::Corpus;
use tensile_foundry::loader::{Dataset, Loader, Position};
use tensile_foundry::preprocess::{preprocess, Prepared};
use tensile_foundry::tokenizer;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// A config over `sources` (relative to tests/data) writing into `out`, with `extra` lines
/// appended to `[data]`.
fn config(sources: &str, out: &Path, kind: &str, extra: &str) -> LoadedConfig {
    let text = format!(
        r#"experiment_name = "t"
random_seed = 3
[data]
sources = [{sources}]
output_dir = "{out}/data"
max_sequence_length = 16
batch_size = 4
validation_fraction = 0.2
document_separator = ""
shard_tokens = 64
{extra}
[tokenizer]
kind = "{kind}"
vocab_size = 400
output_dir = "{out}/tokenizer"
[model]
architecture = "llama"
num_hidden_layers = 1
hidden_size = 32
intermediate_size = 64
num_attention_heads = 4
[training]
learning_rate = 1e-3
epochs = 1
output_dir = "{out}/run"
"#,
        out = out.display()
    );
    // A `validation_fraction` in `extra` replaces the default one.
    let text = if extra.contains("validation_fraction") { text.replacen("validation_fraction = 0.2\n", "", 1) } else { text };
    config::parse(&text, &data().join("exp.toml")).unwrap()
}

fn run(c: &LoadedConfig) -> Prepared {
    preprocess(c, &mut |_| {}).unwrap()
}

fn documents(c: &LoadedConfig) -> Vec<String> {
    let mut docs = Vec::new();
    Corpus::from_config(c)
        .unwrap()
        .for_each_document(|d, _| {
            docs.push(d.to_string());
            Ok(())
        })
        .unwrap();
    docs
}

#[test]
fn every_token_of_the_corpus_is_kept_from_raw_text_to_batches() {
    let out = tempfile::tempdir().unwrap();
    let c = config(r#""tiny_corpus/*.txt""#, out.path(), "bpe", "");
    let p = run(&c);
    let tok = tokenizer::load(&p.dir.join(&p.manifest.tokenizer)).unwrap();
    // Each document's own ids plus its EOS, counted independently of the pipeline.
    let docs = documents(&c);
    assert!(docs.len() > 10, "paragraphs are documents: {}", docs.len());
    let expected: u64 = docs.iter().map(|d| tok.encode(d.as_str(), false).unwrap().get_ids().len() as u64 + 1).sum();
    let (t, v) = (&p.stats.train, &p.stats.validation);
    assert_eq!(t.tokens + v.tokens, expected);
    assert_eq!(t.documents + v.documents, docs.len() as u64);
    assert!(v.documents > 0 && t.documents > v.documents, "a fifth or so held out: {} / {}", v.documents, t.documents);
    for s in [t, v] {
        assert_eq!(s.chunks * 16 + s.tokens_wasted, s.tokens, "chunks plus the dropped tail are the tokens");
        assert!(s.tokens_wasted < 16);
        assert_eq!(s.length_histogram.iter().sum::<u64>(), s.documents);
    }
    // The loader hands out every chunk of an epoch exactly once, with the shards' tokens.
    let train = Arc::new(Dataset::open(&p.dir, false).unwrap());
    assert_eq!(train.len() as u64, t.chunks);
    let mut loader = Loader::new(train.clone(), 4, true, 3);
    let mut seen = Vec::new();
    for _ in 0..loader.steps_per_epoch() {
        seen.extend(loader.next_batch().unwrap().chunks);
    }
    assert_eq!(loader.position(), Position { epoch: 1, index: 0 });
    let mut all: Vec<Vec<u32>> = (0..train.len()).map(|i| train.chunk(i)).collect();
    assert_ne!(seen, all, "the epoch is shuffled");
    seen.sort();
    all.sort();
    assert_eq!(seen, all);
    assert_eq!(seen.iter().map(Vec::len).sum::<usize>() as u64, t.chunks * 16);
    // The files: shards, manifest, statistics and tokenizer.
    for f in ["manifest.json", "stats.json", "train_00000.bin"] {
        assert!(p.dir.join(f).exists(), "{f}");
    }
    assert!(p.stats.warnings.is_empty(), "{:?}", p.stats.warnings);
}

#[test]
fn the_trained_tokenizers_round_trip_the_corpus() {
    let out = tempfile::tempdir().unwrap();
    for kind in [TokenizerKind::Bpe, TokenizerKind::Unigram] {
        let c = config(r#""tiny_corpus/*.txt""#, out.path(), "bpe", "");
        let docs = documents(&c);
        let specials = c.config.special_tokens();
        let tok = tokenizer::train(kind, 400, &specials, docs.clone().into_iter()).unwrap();
        assert!(tok.get_vocab_size(true) <= 400);
        for (i, s) in specials.iter().enumerate() {
            assert_eq!(tok.token_to_id(s), Some(i as u32), "{kind:?}: specials come first");
        }
        let dir = out.path().join(format!("{kind:?}"));
        let saved = tokenizer::load(&tokenizer::save(&tok, &dir).unwrap()).unwrap();
        for d in &docs {
            let ids = tok.encode(d.as_str(), false).unwrap().get_ids().to_vec();
            assert_eq!(tok.decode(&ids, false).unwrap(), *d, "{kind:?} round trip");
            assert_eq!(saved.encode(d.as_str(), false).unwrap().get_ids(), ids.as_slice(), "{kind:?} saved and loaded");
        }
        // With special tokens in the text they are single ids; without, decode skips them.
        let enc = tok.encode("<s>Hello there</s>", false).unwrap();
        assert_eq!((enc.get_ids()[0], *enc.get_ids().last().unwrap()), (1, 2));
        assert_eq!(tok.decode(enc.get_ids(), true).unwrap().trim(), "Hello there");
    }
    // WordPiece trains too, and joins words with single spaces on decoding.
    let c = config(r#""tiny_corpus/*.txt""#, out.path(), "wordpiece", "");
    let wp = tokenizer::train(TokenizerKind::Wordpiece, 400, &c.config.special_tokens(), documents(&c).into_iter()).unwrap();
    let ids = wp.encode("The harbour town woke slowly.", false).unwrap().get_ids().to_vec();
    assert_eq!(wp.decode(&ids, false).unwrap(), "The harbour town woke slowly.");
}

#[test]
fn batches_keep_their_order_and_pad_with_attention_masks() {
    let out = tempfile::tempdir().unwrap();
    let c = config(r#""tiny_corpus/*.txt""#, out.path(), "bpe", "");
    let tok = tokenizer::train(TokenizerKind::Bpe, 400, &c.config.special_tokens(), documents(&c).into_iter()).unwrap();
    let padded = tokenizer::with_padding(tok.clone(), "<pad>", 0, 8).unwrap();
    let texts = vec!["a", "a much longer sentence than the first one is", "mid length text"];
    let batch = padded.encode_batch(texts.clone(), false).unwrap();
    for (enc, text) in batch.iter().zip(&texts) {
        let alone = tok.encode(*text, false).unwrap();
        let n = alone.len().min(8);
        assert_eq!(&enc.get_ids()[..n], &alone.get_ids()[..n], "{text}: the batch keeps the order");
        assert_eq!(enc.get_attention_mask().iter().filter(|&&m| m == 1).count(), n);
        assert!(enc.get_ids()[n..].iter().all(|&i| i == 0), "padded with <pad>");
    }
    assert!(batch.iter().all(|e| e.len() == batch[0].len() && e.len() <= 8));
}

#[test]
fn the_loader_is_deterministic_resumable_and_worker_independent() {
    let out = tempfile::tempdir().unwrap();
    let p = run(&config(r#""tiny_corpus/*.txt""#, out.path(), "bpe", ""));
    let data = Arc::new(Dataset::open(&p.dir, false).unwrap());
    let steps = 3 * Loader::new(data.clone(), 4, true, 9).steps_per_epoch() + 2;
    let straight: Vec<_> = {
        let mut l = Loader::new(data.clone(), 4, true, 9);
        (0..steps).map(|_| l.next_batch().unwrap()).collect()
    };
    // Epochs differ in order; the same seed replays them; another seed does not.
    assert_ne!(Loader::new(data.clone(), 4, true, 9).order(0), Loader::new(data.clone(), 4, true, 9).order(1));
    assert_ne!(Loader::new(data.clone(), 4, true, 9).order(0), Loader::new(data.clone(), 4, true, 10).order(0));
    assert_eq!(Loader::new(data.clone(), 4, false, 9).order(2), (0..data.len()).collect::<Vec<_>>());
    for workers in [1, 2, 3] {
        let mut l = Loader::new(data.clone(), 4, true, 9);
        let fetched: Vec<_> = l.prefetch(steps, workers).collect();
        assert_eq!(fetched, straight, "{workers} workers");
        assert_eq!(l.position(), straight.last().map(|b| b.position).map(|p| Position { index: p.index + 1, ..p }).unwrap());
    }
    // A loader resumed at a saved position continues with the same batches.
    let mut l = Loader::new(data.clone(), 4, true, 9);
    l.resume(straight[7].position);
    assert_eq!(l.next_batch().unwrap(), straight[7]);
    assert_eq!(l.next_batch().unwrap(), straight[8]);
    assert_ne!(tensile_foundry::loader::worker_seed(9, 0), tensile_foundry::loader::worker_seed(9, 1));
}

#[test]
fn edge_cases_have_clear_results() {
    let out = tempfile::tempdir().unwrap();
    // An empty corpus names its files.
    let e = preprocess(&config(r#""empty.txt""#, out.path(), "bpe", ""), &mut |_| {}).err().unwrap().to_string();
    assert!(e.contains("the corpus has no document") && e.contains("empty.txt"), "{e}");
    // Not UTF-8: an error by default, replaced when lossy.
    let e = preprocess(&config(r#""not_utf8.txt", "tiny_corpus/bees.txt""#, out.path(), "bpe", ""), &mut |_| {}).err().unwrap().to_string();
    assert!(e.contains("not_utf8.txt") && e.contains("not UTF-8 at byte"), "{e}");
    let lossy = run(&config(r#""not_utf8.txt", "tiny_corpus/bees.txt""#, out.path(), "bpe", "non_utf8 = \"lossy\""));
    assert!(lossy.stats.train.documents > 0);
    // One document shorter than a chunk: no chunk to train on, said as such.
    let tiny = out.path().join("one.txt");
    std::fs::write(&tiny, "just a few words").unwrap();
    let one = config(&format!("{:?}", tiny.display().to_string()), out.path(), "bpe", "validation_fraction = 0.0");
    let e = preprocess(&one, &mut |_| {}).err().unwrap().to_string();
    assert!(e.contains("do not fill one chunk"), "{e}");
    // ...unless the last chunk is padded; then the validation split is empty and said to be.
    let padded = run(&config(&format!("{:?}", tiny.display().to_string()), out.path(), "bpe", "validation_fraction = 0.0\nlast_chunk = \"pad\""));
    assert_eq!((padded.stats.train.chunks, padded.stats.train.tokens_wasted), (1, 0));
    assert_eq!(padded.stats.train.padded + padded.stats.train.tokens, 16);
    assert!(padded.stats.warnings[0].contains("validation split has no full chunk"), "{:?}", padded.stats.warnings);
    assert!(padded.manifest.validation.is_none());
    assert_eq!(Dataset::open(&padded.dir, true).unwrap().len(), 1, "validation falls back to the training split");
    // A glob that matches nothing.
    let e = preprocess(&config(r#""nothing/*.txt""#, out.path(), "bpe", ""), &mut |_| {}).err().unwrap().to_string();
    assert!(e.contains("`nothing/*.txt` matches no file"), "{e}");
}
