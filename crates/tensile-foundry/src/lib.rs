//! tensile's model foundry: trains the library's models from a raw text corpus, holding
//! itself to the same testing strategy as the modules. It reads and validates the experiment
//! config ([`config`]), trains or loads tokenizers ([`tokenizer`]), prepares the corpus into
//! token shards ([`preprocess`]), serves batches ([`loader`]), and trains ([`trainer`]: the
//! model in [`model`], the objectives in [`objective`], AdamW and schedules in [`optim`]),
//! with atomic checkpoints ([`checkpoint`]) and run logs ([`runlog`], [`tensorboard`]).
//!
//! ```
//! use std::path::Path;
//! let text = r#"
//! experiment_name = "tiny"
//! [data]
//! sources = ["corpus/*.txt"]
//! output_dir = "out/data"
//! max_sequence_length = 64
//! batch_size = 8
//! [tokenizer]
//! vocab_size = 512
//! output_dir = "out/tokenizer"
//! [model]
//! architecture = "llama"
//! num_hidden_layers = 2
//! hidden_size = 64
//! intermediate_size = 128
//! num_attention_heads = 4
//! [training]
//! learning_rate = 1e-3
//! epochs = 3
//! warmup_ratio = 0.1
//! gradient_accumulation_steps = 2
//! output_dir = "out/run"
//! "#;
//! let c = tensile_foundry::config::parse(text, Path::new("tiny.toml")).unwrap().config;
//! // 100 chunks at 8 per micro-batch and 2 micro-batches per step: ⌈100 / 16⌉ = 7 steps an
//! // epoch, 21 in all, of which ⌈2.1⌉ = 3 warm up.
//! assert_eq!(c.train_steps(100), 21);
//! assert_eq!(c.warmup_steps(21), 3);
//! // Embeddings and head 2·512·64, two layers of 4·64² + 3·64·128 + 2·64, a final norm.
//! assert_eq!(tensile_foundry::config::predicted_parameters(&c, 512).unwrap(), 2 * 512 * 64 + 2 * (4 * 4096 + 3 * 8192 + 128) + 64);
//! ```
#![deny(missing_docs)]

pub mod checkpoint;
pub mod config;
pub mod corpus;
mod cross_entropy;
mod error;
pub mod loader;
pub mod model;
pub mod objective;
pub mod optim;
pub mod parallel;
pub mod preprocess;
pub mod runlog;
pub mod shard;
mod spm;
pub mod tensorboard;
pub mod tokenizer;
pub mod trainer;

pub use error::{Error, Result};
