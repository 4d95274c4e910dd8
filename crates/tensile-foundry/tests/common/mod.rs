//! A prepared experiment over the committed tiny corpus, for the trainer's tests.

#![allow(dead_code)]

use std::path::Path;
use tensile_foundry::config::{self, LoadedConfig};

/// Sizes that differ between the tests.
pub struct Shape {
    /// Tokens per chunk.
    pub seq: usize,
    /// Chunks per micro-batch.
    pub batch: usize,
    /// Model width.
    pub hidden: usize,
    /// MLP width.
    pub intermediate: usize,
}

/// The trainer tests' usual shape: chunks of 16, batches of 4, a 2 × 32 model.
pub const SMALL: Shape = Shape { seq: 16, batch: 4, hidden: 32, intermediate: 64 };

/// Writes and prepares (tokenizer, shards) an experiment in `out` over the tiny corpus:
/// `architecture`, `shape`, and `model` and `training` lines added to their sections.
pub fn experiment(out: &Path, arch: &str, shape: Shape, model: &str, training: &str) -> LoadedConfig {
    let text = format!(
        r#"experiment_name = "t"
random_seed = 5
[data]
sources = ["tiny_corpus/*.txt"]
output_dir = "{out}/data"
max_sequence_length = {seq}
batch_size = {batch}
validation_fraction = 0.2
document_separator = ""
[tokenizer]
vocab_size = 300
output_dir = "{out}/tokenizer"
[model]
architecture = "{arch}"
num_hidden_layers = 2
hidden_size = {hidden}
intermediate_size = {intermediate}
num_attention_heads = 4
{model}
[training]
learning_rate = 3e-3
output_dir = "{out}/run"
{training}
"#,
        out = out.display(),
        seq = shape.seq,
        batch = shape.batch,
        hidden = shape.hidden,
        intermediate = shape.intermediate,
    );
    let c = config::parse(&text, &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/exp.toml")).unwrap_or_else(|e| panic!("{e}\n{text}"));
    tensile_foundry::preprocess::preprocess(&c, &mut |_| {}).unwrap();
    c
}
