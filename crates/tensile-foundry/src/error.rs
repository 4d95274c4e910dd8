//! The one error type of `tensile-foundry`.

use std::path::PathBuf;

/// Everything that can go wrong reading a config, a corpus or a tokenizer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config file is invalid at a place in it.
    #[error("{}:{line}:{col}: {message}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// Line, from 1.
        line: usize,
        /// Column in characters, from 1.
        col: usize,
        /// What is wrong, naming the field.
        message: String,
    },
    /// A value is invalid outside any file (a config built in code).
    #[error("invalid field `{field}`: {reason}")]
    Invalid {
        /// The field, dotted (`model.hidden_act`).
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A corpus file cannot be used as it is.
    #[error("{}: {reason}", path.display())]
    Corpus {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A prepared data file (shard, manifest) is damaged or does not fit the config.
    #[error("{}: {reason}", path.display())]
    Data {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The tokenizer could not be trained, loaded or saved.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A library error (reading a file, building a model).
    #[error(transparent)]
    Nn(#[from] tensile_nn::Error),
    /// The ranks of a data-parallel run could not exchange what they computed.
    #[error("rank {rank}: {reason}")]
    Collective {
        /// This process's rank.
        rank: usize,
        /// What went wrong.
        reason: String,
    },
    /// A tensor operation failed (shapes, devices, memory).
    #[error("tensor operation failed: {}", tensile_nn::innermost_message(.0))]
    Tensor(#[from] candle_core::Error),
    /// A checkpoint cannot be written, read or used.
    #[error("checkpoint {}: {reason}", path.display())]
    Checkpoint {
        /// The checkpoint folder or file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The loss or the gradients stopped being finite, and `on_nan = "stop"`.
    #[error("step {step}: the {what} is {value} (not finite); no checkpoint was written of this state (set `training.on_nan = \"skip\"` to drop such steps)")]
    NonFinite {
        /// The optimiser step, from 1.
        step: u64,
        /// `loss` or `gradient norm`.
        what: &'static str,
        /// The value.
        value: f64,
    },
    /// A declared module test failed before training started.
    #[error("module test `{module}` failed its {check} check: {reason} (pass --skip-module-tests to train anyway)")]
    ModuleTest {
        /// The module test.
        module: String,
        /// The check.
        check: String,
        /// Why.
        reason: String,
    },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;
