//! The one error type of `tensile`.

use std::path::PathBuf;

/// Everything that stops tensile from producing a result. A check that runs and fails is not
/// an error: it is a result with `passed == false`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("failed to read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file named as input cannot be read safely: a directory, a FIFO, a device, too large,
    /// or not text where text is expected.
    #[error("cannot read {path}: {reason}")]
    Input {
        /// The file.
        path: PathBuf,
        /// Why it is refused.
        reason: String,
    },
    /// A file could not be written.
    #[error("failed to write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A baseline file is malformed or of another format version.
    #[error("{path}: not a usable baseline: {reason}")]
    Baseline {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A reference case file is malformed.
    #[error("{path}: not a valid reference case: {reason}")]
    InvalidCase {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A reference case lacks a tensor.
    #[error("{path}: missing tensor `{name}`")]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// The missing tensor's name.
        name: String,
    },
    /// A reference case names a block kind tensile does not know.
    #[error("{path}: {source}")]
    UnknownKind {
        /// The file.
        path: PathBuf,
        /// The parse error, listing the known kinds.
        source: tensile_nn::catalog::UnknownKind,
    },
    /// Building or running a block failed.
    #[error("{context}: {source}")]
    Block {
        /// What was being built or run.
        context: String,
        /// The block library's error.
        source: tensile_nn::Error,
    },
    /// A forward pass panicked; the panic message is kept.
    #[error("{context}: panicked: {message}")]
    Panicked {
        /// What was running.
        context: String,
        /// The panic payload, when it was a string.
        message: String,
    },
    /// A device string is malformed or names a device this build cannot use.
    #[error("unsupported device `{name}`: {reason}")]
    Device {
        /// The device as given.
        name: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// A dtype string is unknown.
    #[error("unknown dtype `{0}` (expected f32, bf16, f16 or f64)")]
    DType(String),
    /// Two tensors that must be compared have different shapes.
    #[error("shape mismatch: got {actual:?}, expected {expected:?}")]
    ShapeMismatch {
        /// Shape of the tensor under test.
        actual: Vec<usize>,
        /// Shape of the reference.
        expected: Vec<usize>,
    },
    /// A run option (flag or `TENSILE_*` variable) has an unusable value.
    #[error("invalid {name}: {reason}")]
    Setting {
        /// The option.
        name: String,
        /// Why it is rejected.
        reason: String,
    },
    /// A spec is invalid; nothing ran.
    #[error("spec `{spec}`: field `{field}`: {reason}")]
    Spec {
        /// The module test's name.
        spec: String,
        /// The offending field.
        field: String,
        /// Why it is rejected.
        reason: String,
    },
    /// A spec file is malformed or declares an invalid spec.
    #[error("failed to load spec at {}:{line}:{col}: {message}", path.display())]
    SpecFile {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// What is wrong, naming the field.
        message: String,
    },
    /// Reports that do not belong together were given to merge.
    #[error("cannot merge the reports: {reason}")]
    Merge {
        /// What keeps them apart, naming the files.
        reason: String,
    },
    /// A preset name is unknown.
    #[error("unknown preset `{name}` (known: {known})")]
    UnknownPreset {
        /// The name given.
        name: String,
        /// The known presets.
        known: String,
    },
    /// A tensor operation outside any block failed.
    #[error("{}", tensile_nn::innermost_message(.0))]
    Candle(#[from] candle_core::Error),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;
