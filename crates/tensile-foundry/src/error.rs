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
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;
