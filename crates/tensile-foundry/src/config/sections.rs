//! The experiment config's sections, field for field as they are written in the TOML file.
//! Optional fields carry their documented defaults (`#[serde(default = …)]`), and every
//! section refuses unknown keys.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The whole experiment: one TOML file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// A name for the run, used in output paths and logs.
    pub experiment_name: String,
    /// Seed of every random choice: the split, the shuffle, the initial weights.
    #[serde(default)]
    pub random_seed: u64,
    /// The corpus and its preparation.
    pub data: DataConfig,
    /// The tokenizer to train or load.
    pub tokenizer: TokenizerConfig,
    /// The model to build.
    pub model: ModelConfig,
    /// The optimisation.
    pub training: TrainingConfig,
    /// Where and how much to log.
    #[serde(default)]
    pub logging: LoggingConfig,
}

/// `[data]`: where the corpus is and how it becomes batches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Corpus files or globs, relative to the config file's folder.
    pub sources: Vec<String>,
    /// Where the shards, the split and the statistics go.
    pub output_dir: PathBuf,
    /// Tokens per training chunk.
    pub max_sequence_length: usize,
    /// Chunks per batch (per micro-batch when accumulating gradients).
    pub batch_size: usize,
    /// Share of the documents held out for validation (default 0.05), unless
    /// `validation_files` names a validation corpus.
    #[serde(default = "default_validation_fraction")]
    pub validation_fraction: f64,
    /// A separate validation corpus (files or globs); replaces `validation_fraction`.
    #[serde(default)]
    pub validation_files: Vec<String>,
    /// Shuffle the chunks each epoch (default true).
    #[serde(default = "yes")]
    pub shuffle: bool,
    /// What becomes of the final partial chunk: `drop` (default) or `pad`.
    #[serde(default)]
    pub last_chunk: LastChunk,
    /// A file that is not UTF-8: `error` (default) or `lossy` (invalid bytes become U+FFFD).
    #[serde(default)]
    pub non_utf8: NonUtf8,
    /// A line that separates documents within a file (`"%"` for fortune files); without one
    /// (the default), each file is one document.
    #[serde(default)]
    pub document_separator: Option<String>,
    /// Tokens per shard file (default 1 048 576); a shard is held in memory while it is
    /// written, so this bounds the pipeline's memory.
    #[serde(default = "default_shard_tokens")]
    pub shard_tokens: usize,
}

/// The final partial chunk of the token stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LastChunk {
    /// Dropped: every chunk is full.
    #[default]
    Drop,
    /// Padded with the pad token (and masked out of the loss).
    Pad,
}

/// A corpus file that is not valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NonUtf8 {
    /// An error naming the file and the byte offset.
    #[default]
    Error,
    /// Decoded with U+FFFD for each invalid sequence.
    Lossy,
}

/// `[tokenizer]`: train one on the corpus, or load one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizerConfig {
    /// The model to train: `bpe` (default), `wordpiece` or `unigram`.
    #[serde(default)]
    pub kind: TokenizerKind,
    /// Vocabulary size to train to (special tokens included).
    #[serde(default = "default_vocab_size")]
    pub vocab_size: usize,
    /// Special tokens; empty (the default) means the objective's own: `<pad>`, `<s>`, `</s>`,
    /// `<unk>`, plus `<mask>` for a masked LM.
    #[serde(default)]
    pub special_tokens: Vec<String>,
    /// Where the trained tokenizer is written (`tokenizer.json`).
    #[serde(default)]
    pub output_dir: Option<PathBuf>,
    /// An existing `tokenizer.json` or SentencePiece `.model` to load instead of training.
    #[serde(default)]
    pub path: Option<PathBuf>,
}

/// The tokenizer model trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenizerKind {
    /// Byte-level BPE.
    #[default]
    Bpe,
    /// WordPiece (BERT's).
    Wordpiece,
    /// Unigram (SentencePiece's).
    Unigram,
}

/// `[model]`: which of the library's models to build, and its shape. The vocabulary size
/// comes from the tokenizer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// `llama`, `bert` or `modernbert`.
    pub architecture: Architecture,
    /// `causal_lm` (Llama) or `masked_lm` (BERT, ModernBERT); defaults to the architecture's.
    #[serde(default)]
    pub objective: Option<Objective>,
    /// Layers.
    pub num_hidden_layers: usize,
    /// Model width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (Llama only; default: the query heads).
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// The MLP activation (default: the architecture's, `silu` or `gelu`).
    #[serde(default)]
    pub hidden_act: Option<String>,
    /// Dropout on hidden states in training (default 0).
    #[serde(default)]
    pub dropout: f64,
    /// Dropout on attention probabilities in training (default 0).
    #[serde(default)]
    pub attention_dropout: f64,
    /// Share the embedding matrix with the output projection (default false).
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// `eager` (default; differentiable everywhere) or `fused` (candle's kernels where they
    /// have a backward, the eager path elsewhere).
    #[serde(default)]
    pub attention_implementation: AttentionImplementation,
}

/// The model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    /// `LlamaForCausalLM`.
    Llama,
    /// `BertForMaskedLM`.
    Bert,
    /// `ModernBertForMaskedLM`.
    Modernbert,
}

/// What the model learns to predict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// The next token.
    CausalLm,
    /// Masked tokens.
    MaskedLm,
}

/// How attention is computed in training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttentionImplementation {
    /// Elementary operations, differentiable everywhere.
    #[default]
    Eager,
    /// Fused kernels where they have a backward.
    Fused,
}

/// `[training]`: the optimisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingConfig {
    /// Peak learning rate.
    pub learning_rate: f64,
    /// AdamW's β₁ and β₂ (default 0.9, 0.999).
    #[serde(default = "default_betas")]
    pub betas: [f64; 2],
    /// AdamW's ε (default 1e-8).
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// Decoupled weight decay (default 0.01).
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
    /// Passes over the training chunks; exactly one of `epochs` and `train_steps` is given.
    #[serde(default)]
    pub epochs: Option<usize>,
    /// Optimiser steps.
    #[serde(default)]
    pub train_steps: Option<usize>,
    /// Steps of linear warmup; at most one of `warmup_steps` and `warmup_ratio` (default 0).
    #[serde(default)]
    pub warmup_steps: Option<usize>,
    /// Warmup as a share of the training steps, rounded up.
    #[serde(default)]
    pub warmup_ratio: Option<f64>,
    /// The decay after warmup: `cosine` (default), `linear` or `constant`.
    #[serde(default)]
    pub lr_scheduler: crate::optim::Decay,
    /// Whether norm weights and biases decay too (default false, as in most recipes).
    #[serde(default)]
    pub decay_norms_and_biases: bool,
    /// Micro-batches per optimiser step (default 1).
    #[serde(default = "one")]
    pub gradient_accumulation_steps: usize,
    /// Clip the global gradient norm to this (default 1.0).
    #[serde(default = "default_clip")]
    pub max_grad_norm: f64,
    /// `f32` (default), `bf16` or `f16`.
    #[serde(default)]
    pub precision: Precision,
    /// Initial loss scale when `precision = "f16"` (default 65536); halved on overflow,
    /// doubled after 2000 clean steps.
    #[serde(default = "default_loss_scale")]
    pub loss_scale: f64,
    /// Share of tokens a masked LM learns to predict (default 0.15; 80% become `<mask>`, 10%
    /// a random token, 10% stay).
    #[serde(default = "default_mlm_probability")]
    pub mlm_probability: f64,
    /// Save a checkpoint every this many steps (default 0: only at the end).
    #[serde(default)]
    pub checkpoint_every: usize,
    /// Extra checkpoints at steps 1, 2, 4, … (this many powers of two; default 0), to see
    /// the start of training closely.
    #[serde(default)]
    pub early_checkpoints: usize,
    /// Extra checkpoints at exactly these steps (default none).
    #[serde(default)]
    pub checkpoint_steps: Vec<usize>,
    /// Checkpoints kept, the newest ones, besides the best by validation loss (default 3).
    #[serde(default = "three")]
    pub keep_checkpoints: usize,
    /// Compute the validation loss every this many steps (default 0: at each checkpoint).
    #[serde(default)]
    pub eval_every: usize,
    /// Validation batches per evaluation (default 0: the whole validation split).
    #[serde(default)]
    pub eval_batches: usize,
    /// Peak heap (CPU) or pool (CUDA) memory allowed for one micro-batch, in MiB (default:
    /// no limit). A step over it is redone with half the micro-batch and twice the
    /// accumulation, which keeps the effective batch.
    #[serde(default)]
    pub memory_budget_mb: Option<f64>,
    /// What a non-finite loss or gradient does: `stop` (default, with an error and no
    /// checkpoint of the poisoned state) or `skip` (the step's update is dropped).
    #[serde(default)]
    pub on_nan: OnNan,
    /// Where checkpoints and the final model go.
    pub output_dir: PathBuf,
}

/// What a non-finite loss or gradient does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnNan {
    /// Stop with an error naming the step.
    #[default]
    Stop,
    /// Drop the step's update and go on.
    Skip,
}

/// The training precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// f32 throughout.
    #[default]
    F32,
    /// bf16 activations over f32 master weights.
    Bf16,
    /// f16 with loss scaling.
    F16,
}

/// `[logging]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    /// `error`, `warn`, `info` (default) or `debug`.
    #[serde(default = "default_level")]
    pub level: String,
    /// Where log files go (default: none, the terminal only).
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Write TensorBoard event files (default false).
    #[serde(default)]
    pub tensorboard: bool,
    /// Log a line with loss, learning rate, tokens/s and MFU every this many steps (default 10).
    #[serde(default = "default_log_every")]
    pub log_every: usize,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self { level: default_level(), dir: None, tensorboard: false, log_every: default_log_every() }
    }
}

fn default_validation_fraction() -> f64 {
    0.05
}
fn default_shard_tokens() -> usize {
    1 << 20
}
fn yes() -> bool {
    true
}
fn default_vocab_size() -> usize {
    8000
}
fn default_betas() -> [f64; 2] {
    [0.9, 0.999]
}
fn default_eps() -> f64 {
    1e-8
}
fn default_weight_decay() -> f64 {
    0.01
}
fn one() -> usize {
    1
}
fn default_clip() -> f64 {
    1.0
}
fn three() -> usize {
    3
}
fn default_loss_scale() -> f64 {
    65536.0
}
fn default_mlm_probability() -> f64 {
    0.15
}
fn default_log_every() -> usize {
    10
}
fn default_level() -> String {
    "info".into()
}
