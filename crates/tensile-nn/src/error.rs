//! The one error type of `tensile-nn`.

use std::path::PathBuf;

/// Everything that can go wrong while building, loading or running a block.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor the block needs is not in the checkpoint.
    #[error("missing tensor `{name}`")]
    MissingTensor {
        /// Full name of the missing tensor, e.g. `self_attn.q_proj.weight`.
        name: String,
    },
    /// A configuration value is invalid (e.g. heads do not divide the hidden size).
    #[error("invalid config field `{field}`: {reason}")]
    Config {
        /// The Hugging Face `config.json` field at fault.
        field: &'static str,
        /// Why the value is rejected.
        reason: String,
    },
    /// The block kind cannot be built from a Hugging Face config alone (a whole model, or a
    /// part that only exists inside a layer); the message lists the kinds that can.
    #[error("block kind `{kind}` cannot be built from a config alone (buildable: {buildable})", buildable = crate::BlockKind::names(&crate::BlockKind::BUILDABLE))]
    NotBuildable {
        /// The kind asked for.
        kind: crate::BlockKind,
    },
    /// A file could not be read.
    #[error("failed to read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file named as input cannot be read safely: a directory, a FIFO, a device, or larger
    /// than such a file can be.
    #[error("cannot read {path}: {reason}")]
    Input {
        /// The file.
        path: PathBuf,
        /// Why it is refused.
        reason: String,
    },
    /// A model directory's files are readable but do not describe a model this crate can run
    /// (another architecture, or files that disagree with each other).
    #[error("{path}: {reason}")]
    Model {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong, naming the field (and the other file when two disagree).
        reason: String,
    },
    /// A JSON file could not be parsed.
    #[error("failed to parse {path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// An evaluation metric cannot be computed from its inputs (empty, of different lengths,
    /// not finite, or data for which the metric is undefined).
    #[error("cannot compute {metric}: {reason}")]
    Metric {
        /// The metric, e.g. `roc_auc`.
        metric: &'static str,
        /// Why not.
        reason: String,
    },
    /// An operation was given inputs it cannot compute on: a loss (shapes that differ, a
    /// target outside the classes, a smoothing outside [0, 1]) or a pooling (a mask of the
    /// wrong shape, a sequence with every position masked).
    #[error("invalid input to {op}: {reason}")]
    InvalidInput {
        /// The operation, e.g. `cross_entropy`.
        op: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A LoRA adapter operation is not possible in the model's current state (merging twice,
    /// an unknown adapter name, an adapter that targets no module).
    #[error("lora: {0}")]
    Lora(String),
    /// A weight cannot be quantized, dequantized or loaded in the asked format (an unknown
    /// format name, a width the format's blocks do not divide, an unsupported GGUF type).
    #[error("quantization: {0}")]
    Quant(String),
    /// The tokenizer failed to load or to encode.
    #[error("tokenizer error: {0}")]
    Tokenizer(String),
    /// A tensor operation failed.
    #[error("{}", innermost_message(.0))]
    Candle(candle_core::Error),
}

impl From<candle_core::Error> for Error {
    fn from(err: candle_core::Error) -> Self {
        // candle wraps errors in context and backtrace layers; a missing tensor deserves its
        // own variant so callers can report it as a file problem, not a computation failure.
        match missing_tensor_name(&err) {
            Some(name) => Error::MissingTensor { name },
            None => Error::Candle(err),
        }
    }
}

fn missing_tensor_name(err: &candle_core::Error) -> Option<String> {
    match err {
        candle_core::Error::CannotFindTensor { path } => Some(path.clone()),
        candle_core::Error::WithBacktrace { inner, .. } => missing_tensor_name(inner),
        candle_core::Error::Context { inner, .. } => missing_tensor_name(inner),
        candle_core::Error::WithPath { inner, .. } => missing_tensor_name(inner),
        _ => None,
    }
}

/// The message of the innermost candle error, without backtrace or context layers, so that a
/// command-line tool can print it on one line.
pub fn innermost_message(err: &candle_core::Error) -> String {
    match err {
        candle_core::Error::WithBacktrace { inner, .. } => innermost_message(inner),
        candle_core::Error::Context { inner, context } => {
            format!("{context}: {}", innermost_message(inner))
        }
        candle_core::Error::WithPath { inner, path } => {
            format!("{}: {}", path.display(), innermost_message(inner))
        }
        other => other.to_string().lines().next().unwrap_or_default().to_string(),
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Shorthand for a config error.
pub(crate) fn config_err(field: &'static str, reason: impl Into<String>) -> Error {
    Error::Config { field, reason: reason.into() }
}
