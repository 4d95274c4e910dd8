//! `tensile foundry preprocess`: raw files → documents → token ids → fixed-length chunks in
//! shards, streamed so that memory does not grow with the corpus, with the train/validation
//! split, the tokenizer and the dataset statistics written beside them.

use crate::config::{LastChunk, LoadedConfig};
use crate::corpus::{is_validation, Corpus};
use crate::error::{Error, Result};
use crate::shard::{width_for, ShardInfo, ShardWriter};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tokenizers::Tokenizer;

/// Documents tokenized together (in parallel by the tokenizer) while streaming.
const ENCODE_BATCH: usize = 256;

/// One split's shards and counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SplitInfo {
    /// The shards, in order.
    pub shards: Vec<ShardInfo>,
    /// Chunks written.
    pub chunks: u64,
}

/// What the data folder holds (`manifest.json`): enough to read the shards back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version.
    pub version: u32,
    /// Vocabulary size of the tokenizer.
    pub vocab_size: usize,
    /// Bytes per token in the shards.
    pub token_width: u8,
    /// Tokens per chunk.
    pub chunk_len: usize,
    /// The id that ends every document.
    pub eos_id: u32,
    /// The padding id.
    pub pad_id: u32,
    /// The tokenizer file, relative to the data folder when inside it.
    pub tokenizer: PathBuf,
    /// The training split.
    pub train: SplitInfo,
    /// The validation split; `None` when it came out empty (then the training split serves).
    pub validation: Option<SplitInfo>,
}

/// Counts of one split (`stats.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SplitStats {
    /// Documents.
    pub documents: u64,
    /// Tokens, each document's EOS included.
    pub tokens: u64,
    /// Full chunks written.
    pub chunks: u64,
    /// Tokens of the final partial chunk, dropped (or padded: then `padded` counts the pads).
    pub tokens_wasted: u64,
    /// Pad tokens added to fill the final chunk (`last_chunk = "pad"`).
    pub padded: u64,
    /// Document lengths in tokens: `histogram[k]` counts lengths in `[2^k, 2^(k+1))`.
    pub length_histogram: Vec<u64>,
}

/// The dataset statistics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Corpus bytes read.
    pub bytes: u64,
    /// The training split.
    pub train: SplitStats,
    /// The validation split.
    pub validation: SplitStats,
    /// Notes a user should see (an empty validation set, …).
    pub warnings: Vec<String>,
}

/// A split being written: the token stream's unfinished chunk, the writer and the counts.
struct Stream {
    writer: ShardWriter,
    pending: Vec<u32>,
    len: usize,
    stats: SplitStats,
}

impl Stream {
    fn push_document(&mut self, ids: &[u32], eos: u32) -> Result<()> {
        let n = ids.len() as u64 + 1;
        self.stats.documents += 1;
        self.stats.tokens += n;
        let bucket = 63 - n.leading_zeros() as usize;
        if self.stats.length_histogram.len() <= bucket {
            self.stats.length_histogram.resize(bucket + 1, 0);
        }
        self.stats.length_histogram[bucket] += 1;
        for &t in ids.iter().chain(std::iter::once(&eos)) {
            self.pending.push(t);
            if self.pending.len() == self.len {
                self.writer.push(&self.pending)?;
                self.stats.chunks += 1;
                self.pending.clear();
            }
        }
        Ok(())
    }

    fn finish(mut self, last: LastChunk, pad: u32) -> Result<(SplitInfo, SplitStats)> {
        if !self.pending.is_empty() {
            self.stats.tokens_wasted = self.pending.len() as u64;
            if last == LastChunk::Pad {
                self.stats.padded = (self.len - self.pending.len()) as u64;
                self.pending.resize(self.len, pad);
                self.writer.push(&self.pending)?;
                self.stats.chunks += 1;
                self.stats.tokens_wasted = 0;
            }
        }
        let chunks = self.stats.chunks;
        Ok((SplitInfo { shards: self.writer.finish()?, chunks }, self.stats))
    }
}

/// What [`preprocess`] reports while it runs: corpus bytes done out of the total, per pass
/// (the tokenizer's training is the first pass when it is trained, the shards the last).
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// `"tokenizer"` or `"shards"`.
    pub pass: &'static str,
    /// Bytes read.
    pub done: u64,
    /// Bytes in all.
    pub total: u64,
}

/// The result: the manifest and statistics, as written into the data folder.
pub struct Prepared {
    /// `manifest.json`.
    pub manifest: Manifest,
    /// `stats.json`.
    pub stats: Stats,
    /// The data folder.
    pub dir: PathBuf,
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Data { path: path.to_path_buf(), reason: e.to_string() })?;
    tensile_nn::files::write_atomic(path, text + "\n").map_err(|source| Error::Nn(tensile_nn::Error::Io { path: path.to_path_buf(), source }))
}

/// The tokenizer the config asks for: loaded, or trained on the training documents and saved.
fn tokenizer(loaded: &LoadedConfig, corpus: &Corpus, progress: &mut dyn FnMut(Progress)) -> Result<(Tokenizer, PathBuf)> {
    let c = &loaded.config;
    if let Some(p) = &c.tokenizer.path {
        let path = loaded.resolve(p);
        return Ok((crate::tokenizer::load(&path)?, path));
    }
    let (seed, fraction, total) = (c.random_seed, c.data.validation_fraction, corpus.bytes());
    let has_val_files = !c.data.validation_files.is_empty();
    // The documents reach the trainer through a bounded channel from a reading thread, so
    // the corpus is never held whole.
    let (tx, rx) = std::sync::mpsc::sync_channel::<String>(1024);
    let reader = corpus.clone();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<u64>();
    let handle = std::thread::spawn(move || {
        let mut index = 0u64;
        reader.for_each_document(|doc, done| {
            let train = has_val_files || !is_validation(seed, index, fraction);
            index += 1;
            let _ = done_tx.send(done);
            if train && tx.send(doc.to_string()).is_err() {
                return Err(Error::Tokenizer("the trainer stopped reading".into()));
            }
            Ok(())
        })?;
        Ok::<u64, Error>(index)
    });
    let trained = crate::tokenizer::train(c.tokenizer.kind, c.tokenizer.vocab_size, &c.special_tokens(), rx.into_iter());
    let documents = handle.join().map_err(|_| Error::Tokenizer("the corpus reader panicked".into()))??;
    if documents == 0 {
        return Err(empty(corpus));
    }
    progress(Progress { pass: "tokenizer", done: done_rx.try_iter().last().unwrap_or(total), total });
    let tokenizer = trained?;
    let dir = loaded.resolve(c.tokenizer.output_dir.as_deref().unwrap_or(Path::new("tokenizer")));
    let path = crate::tokenizer::save(&tokenizer, &dir)?;
    Ok((tokenizer, path))
}

/// The error of a corpus without a document, naming its files.
fn empty(corpus: &Corpus) -> Error {
    let files: Vec<String> = corpus.files.iter().map(|f| f.display().to_string()).collect();
    Error::Invalid { field: "data.sources", reason: format!("the corpus has no document: {}", files.join(", ")) }
}

/// Runs the whole preparation the config describes and writes `manifest.json`, `stats.json`
/// and the shards into `data.output_dir`.
///
/// # Errors
/// A corpus without documents (naming its files), an unreadable or non-UTF-8 file (unless
/// lossy decoding is configured), a tokenizer without `</s>` or `<pad>`, a write that fails.
pub fn preprocess(loaded: &LoadedConfig, progress: &mut dyn FnMut(Progress)) -> Result<Prepared> {
    let c = &loaded.config;
    let corpus = Corpus::from_config(loaded)?;
    let validation_corpus = Corpus::validation_from_config(loaded)?;
    let (tokenizer, tokenizer_path) = tokenizer(loaded, &corpus, progress)?;
    let eos = crate::tokenizer::special_id(&tokenizer, "</s>")?;
    let pad = crate::tokenizer::special_id(&tokenizer, "<pad>")?;
    let vocab = tokenizer.get_vocab_size(true);
    let width = width_for(vocab);
    let dir = loaded.resolve(&c.data.output_dir);
    std::fs::create_dir_all(&dir).map_err(|source| Error::Nn(tensile_nn::Error::Io { path: dir.clone(), source }))?;
    let len = c.data.max_sequence_length;
    let stream = |prefix: &str| Stream {
        writer: ShardWriter::new(&dir, prefix, width, c.data.shard_tokens),
        pending: Vec::with_capacity(len),
        len,
        stats: SplitStats::default(),
    };
    let (mut train, mut val) = (stream("train"), stream("validation"));
    let read = corpus.bytes();
    let total = read + validation_corpus.as_ref().map_or(0, Corpus::bytes);
    let mut batch: Vec<(String, bool)> = Vec::new();
    let encode = |batch: &mut Vec<(String, bool)>, train: &mut Stream, val: &mut Stream| -> Result<()> {
        let texts: Vec<&str> = batch.iter().map(|(t, _)| t.as_str()).collect();
        let encodings = tokenizer.encode_batch(texts, false).map_err(|e| Error::Tokenizer(e.to_string()))?;
        for (enc, (_, is_val)) in encodings.iter().zip(batch.iter()) {
            let target = if *is_val { &mut *val } else { &mut *train };
            target.push_document(enc.get_ids(), eos)?;
        }
        batch.clear();
        Ok(())
    };
    let mut index = 0u64;
    let split_by_fraction = validation_corpus.is_none();
    corpus.for_each_document(|doc, done| {
        let is_val = split_by_fraction && is_validation(c.random_seed, index, c.data.validation_fraction);
        index += 1;
        batch.push((doc.to_string(), is_val));
        if batch.len() == ENCODE_BATCH {
            encode(&mut batch, &mut train, &mut val)?;
            progress(Progress { pass: "shards", done, total });
        }
        Ok(())
    })?;
    // A loaded tokenizer skips the training pass, so the shard pass is where an empty corpus
    // shows, before any manifest is written.
    if index == 0 {
        return Err(empty(&corpus));
    }
    if let Some(v) = &validation_corpus {
        v.for_each_document(|doc, done| {
            batch.push((doc.to_string(), true));
            if batch.len() == ENCODE_BATCH {
                encode(&mut batch, &mut train, &mut val)?;
                progress(Progress { pass: "shards", done: read + done, total });
            }
            Ok(())
        })?;
    }
    encode(&mut batch, &mut train, &mut val)?;
    progress(Progress { pass: "shards", done: total, total });
    let (train_info, train_stats) = train.finish(c.data.last_chunk, pad)?;
    let (val_info, val_stats) = val.finish(c.data.last_chunk, pad)?;
    let mut warnings = Vec::new();
    let validation = if val_info.chunks == 0 {
        warnings.push(format!(
            "the validation split has no full chunk ({} documents, {} tokens): evaluation will use the training split",
            val_stats.documents, val_stats.tokens
        ));
        None
    } else {
        Some(val_info)
    };
    if train_info.chunks == 0 {
        return Err(Error::Invalid {
            field: "data.max_sequence_length",
            reason: format!("the training split's {} tokens do not fill one chunk of {len}", train_stats.tokens),
        });
    }
    // Relative to the data folder when inside it (the folder can move), absolute otherwise.
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (dir_abs, tok_abs) = (canonical(&dir), canonical(&tokenizer_path));
    let tokenizer_rel = tok_abs.strip_prefix(&dir_abs).map(Path::to_path_buf).unwrap_or(tok_abs);
    let manifest = Manifest {
        version: 1,
        vocab_size: vocab,
        token_width: width,
        chunk_len: len,
        eos_id: eos,
        pad_id: pad,
        tokenizer: tokenizer_rel,
        train: train_info,
        validation,
    };
    let stats = Stats { bytes: total, train: train_stats, validation: val_stats, warnings };
    write_json(&dir.join("manifest.json"), &manifest)?;
    write_json(&dir.join("stats.json"), &stats)?;
    Ok(Prepared { manifest, stats, dir })
}

/// Reads a data folder's `manifest.json`.
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join("manifest.json");
    let bytes = tensile_nn::files::read(&path, tensile_nn::files::MAX_JSON_BYTES)?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Data { path, reason: format!("not a foundry manifest: {e}") })
}
