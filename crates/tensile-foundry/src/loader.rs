//! The deterministic loader: the chunks of a split in an order fixed by (seed, epoch), in
//! batches, from a position that can be saved and resumed, optionally prefetched on worker
//! threads with the same output for any number of workers.

use crate::error::{Error, Result};
use crate::preprocess::{read_manifest, Manifest, SplitInfo};
use crate::shard::Shard;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

/// The chunks of one split, read from its shards by mmap.
pub struct Dataset {
    shards: Vec<Shard>,
    /// Chunks before each shard, for locating chunk `i`.
    starts: Vec<usize>,
    chunk_len: usize,
}

impl Dataset {
    /// The training split (`validation = false`) or the validation split of the data folder
    /// `dir`; the training split when the validation split came out empty. Each shard's
    /// checksum is verified.
    pub fn open(dir: &Path, validation: bool) -> Result<Self> {
        let manifest = read_manifest(dir)?;
        let split: &SplitInfo = if validation { manifest.validation.as_ref().unwrap_or(&manifest.train) } else { &manifest.train };
        Self::from_split(dir, &manifest, split)
    }

    fn from_split(dir: &Path, manifest: &Manifest, split: &SplitInfo) -> Result<Self> {
        let (mut shards, mut starts, mut chunks) = (Vec::new(), Vec::new(), 0usize);
        for info in &split.shards {
            let path = dir.join(&info.file);
            let shard = Shard::open(&path)?;
            if !shard.verify() || shard.len() as u64 != info.tokens {
                return Err(Error::Data { path, reason: "its tokens do not match the manifest's count and checksum".into() });
            }
            starts.push(chunks);
            chunks += shard.len() / manifest.chunk_len;
            shards.push(shard);
        }
        Ok(Self { shards, starts, chunk_len: manifest.chunk_len })
    }

    /// Chunks in the split.
    pub fn len(&self) -> usize {
        self.starts.last().map_or(0, |s| s + self.shards.last().map_or(0, |x| x.len() / self.chunk_len))
    }

    /// Whether the split has no chunk.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tokens per chunk.
    pub fn chunk_len(&self) -> usize {
        self.chunk_len
    }

    /// Chunk `i`'s tokens.
    pub fn chunk(&self, i: usize) -> Vec<u32> {
        let s = self.starts.partition_point(|&start| start <= i) - 1;
        self.shards[s].tokens((i - self.starts[s]) * self.chunk_len, self.chunk_len)
    }
}

/// Where a loader stands: the next batch is batch `index` of epoch `epoch`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The epoch, from 0.
    pub epoch: u64,
    /// The batch within the epoch, from 0.
    pub index: usize,
}

/// One batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Where it sits.
    pub position: Position,
    /// Its chunks, `batch_size` of them (fewer for the last batch of an epoch).
    pub chunks: Vec<Vec<u32>>,
}

/// Batches of a dataset in a shuffled order fixed by (seed, epoch).
#[derive(Clone)]
pub struct Loader {
    data: Arc<Dataset>,
    batch_size: usize,
    shuffle: bool,
    seed: u64,
    position: Position,
}

impl Loader {
    /// A loader at the start of epoch 0.
    pub fn new(data: Arc<Dataset>, batch_size: usize, shuffle: bool, seed: u64) -> Self {
        Self { data, batch_size: batch_size.max(1), shuffle, seed, position: Position::default() }
    }

    /// Batches per epoch: `⌈chunks / batch_size⌉`.
    pub fn steps_per_epoch(&self) -> usize {
        self.data.len().div_ceil(self.batch_size)
    }

    /// Where the next batch comes from.
    pub fn position(&self) -> Position {
        self.position
    }

    /// Continues from `position` (a saved [`Loader::position`]): the batches that follow are
    /// those an uninterrupted loader would have given.
    pub fn resume(&mut self, position: Position) {
        self.position = position;
    }

    /// The chunk order of `epoch`: a Fisher–Yates shuffle from a ChaCha stream keyed by the
    /// seed and the epoch, or the stored order without shuffling.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.data.len()).collect();
        if self.shuffle {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(self.seed ^ epoch.wrapping_mul(crate::corpus::GOLDEN));
            order.shuffle(&mut rng);
        }
        order
    }

    /// The batch at `position`, without moving.
    pub fn batch_at(&self, position: Position, order: &[usize]) -> Batch {
        let start = position.index * self.batch_size;
        let end = (start + self.batch_size).min(order.len());
        Batch { position, chunks: order[start..end].iter().map(|&i| self.data.chunk(i)).collect() }
    }

    /// The position `steps` batches after `p`.
    fn advance(&self, p: Position, steps: usize) -> Position {
        let per = self.steps_per_epoch().max(1);
        let flat = p.index + steps;
        Position { epoch: p.epoch + (flat / per) as u64, index: flat % per }
    }

    /// The next batch, moving on (into the next epoch after the last batch of one).
    pub fn next_batch(&mut self) -> Option<Batch> {
        if self.data.is_empty() {
            return None;
        }
        let order = self.order(self.position.epoch);
        let b = self.batch_at(self.position, &order);
        self.position = self.advance(self.position, 1);
        Some(b)
    }

    /// The next `steps` batches made ahead on `workers` threads: worker `w` makes batches
    /// `w, w + workers, …` and the caller takes them back in order, so the output is the same
    /// for any number of workers. Each worker's seed ([`worker_seed`]) is derived from the
    /// loader's for randomness a worker adds (masking, in the trainer). The loader moves past
    /// the batches handed out.
    pub fn prefetch(&mut self, steps: usize, workers: usize) -> Prefetch {
        let workers = workers.max(1);
        let start = self.position;
        let receivers: Vec<Receiver<Batch>> = (0..workers)
            .map(|w| {
                let (tx, rx) = sync_channel(2);
                let me = self.clone();
                std::thread::spawn(move || {
                    let mut epoch = u64::MAX;
                    let mut order = Vec::new();
                    for k in (w..steps).step_by(workers) {
                        let p = me.advance(start, k);
                        if p.epoch != epoch {
                            epoch = p.epoch;
                            order = me.order(epoch);
                        }
                        if tx.send(me.batch_at(p, &order)).is_err() {
                            return;
                        }
                    }
                });
                rx
            })
            .collect();
        if !self.data.is_empty() {
            self.position = self.advance(start, steps);
        }
        Prefetch { receivers, next: 0, steps: if self.data.is_empty() { 0 } else { steps } }
    }
}

/// The seed of prefetch worker `w`: SplitMix64 of the loader's seed and the worker index.
pub fn worker_seed(seed: u64, w: usize) -> u64 {
    crate::corpus::splitmix64(seed.wrapping_add((w as u64 + 1).wrapping_mul(crate::corpus::GOLDEN)))
}

/// Batches made ahead by [`Loader::prefetch`], in order.
pub struct Prefetch {
    receivers: Vec<Receiver<Batch>>,
    next: usize,
    steps: usize,
}

impl Iterator for Prefetch {
    type Item = Batch;
    fn next(&mut self) -> Option<Batch> {
        if self.next >= self.steps {
            return None;
        }
        let b = self.receivers[self.next % self.receivers.len()].recv().ok();
        self.next += 1;
        b
    }
}
