//! Reference case files: one safetensors file per module instance, holding the module's
//! weights under their Hugging Face names, an `input`, the float64 `output` of the reference
//! implementation, and metadata `tensile.case = {"module": KIND, "config": {…}}`.

use crate::device::dtype_name;
use crate::error::{Error, Result};
use crate::metrics::{compare, to_f64_vec, Comparison};
use crate::tolerance::Tolerance;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tensile_nn::BlockKind;

/// The metadata key naming the module and its config.
pub const CASE_METADATA_KEY: &str = "tensile.case";

/// A loaded reference case.
#[derive(Debug)]
pub struct GoldenCase {
    /// Where it came from.
    pub path: PathBuf,
    /// The block kind.
    pub kind: BlockKind,
    /// The Hugging Face config fields.
    pub config: serde_json::Value,
    /// `input` as stored.
    pub input: Tensor,
    /// `output` as stored.
    pub output: Tensor,
    weights: HashMap<String, Tensor>,
}

#[derive(serde::Deserialize)]
struct CaseMeta {
    module: String,
    config: serde_json::Value,
}

impl GoldenCase {
    /// Reads and validates a case file: metadata, kind, `input` and `output` present. Only a
    /// regular file is read (see [`crate::input`]), so a FIFO or `/dev/zero` is refused.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = crate::input::read(path, crate::input::MAX_TENSOR_BYTES)?;
        Self::from_bytes(&bytes, path)
    }

    /// Validates the bytes of a case file as [`GoldenCase::load`] does; `path` names it in
    /// errors. The fuzz target `reference_case` calls this on arbitrary bytes.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidCase { path: path.to_path_buf(), reason };
        let (_, header) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| invalid(format!("not a safetensors file ({e})")))?;
        let meta_json =
            header.metadata().as_ref().and_then(|m| m.get(CASE_METADATA_KEY)).ok_or_else(|| invalid(format!("no `{CASE_METADATA_KEY}` metadata")))?;
        let meta: CaseMeta = serde_json::from_str(meta_json).map_err(|e| invalid(format!("bad `{CASE_METADATA_KEY}` metadata: {e}")))?;
        let kind = meta.module.parse::<BlockKind>().map_err(|source| Error::UnknownKind { path: path.to_path_buf(), source })?;
        let mut weights = candle_core::safetensors::load_buffer(bytes, &Device::Cpu).map_err(|e| invalid(tensile_nn::innermost_message(&e)))?;
        let mut take = |name: &str| weights.remove(name).ok_or_else(|| Error::MissingTensor { path: path.to_path_buf(), name: name.to_string() });
        let input = take("input")?;
        let output = take("output")?;
        if input.rank() != 3 || input.dims() != output.dims() {
            return Err(invalid(format!("`input` {:?} and `output` {:?} must both be (batch, seq, hidden)", input.dims(), output.dims())));
        }
        let hidden = kind.hidden_size(&meta.config).map_err(|source| Error::Block { context: path.display().to_string(), source })?;
        if input.dim(2)? != hidden {
            return Err(invalid(format!("`input` has hidden size {} but the config says {hidden}", input.dim(2)?)));
        }
        Ok(Self { path: path.to_path_buf(), kind, config: meta.config, input, output, weights })
    }

    /// The module weights, under their names relative to the module.
    pub fn weights(&self) -> &HashMap<String, Tensor> {
        &self.weights
    }

    /// Builds the block on `device` in `dtype`, runs `input` through it and compares with
    /// `output` under `tolerance` (the dtype's default when `None`).
    pub fn check(&self, device: &Device, dtype: DType, tolerance: Option<Tolerance>) -> Result<GoldenResult> {
        let context = self.path.display().to_string();
        let vb = VarBuilder::from_tensors(self.weights.clone(), dtype, device);
        let block = self.kind.build(&self.config, vb).map_err(|source| match source {
            tensile_nn::Error::MissingTensor { name } => Error::MissingTensor { path: self.path.clone(), name },
            source => Error::Block { context: context.clone(), source },
        })?;
        let input = self.input.to_dtype(dtype)?.to_device(device)?;
        let actual = crate::guard::catch(&context, || block.forward(&input))?.map_err(|e| Error::Block { context: context.clone(), source: e.into() })?;
        let comparison = compare(&actual, &self.output)?;
        let tolerance = tolerance.unwrap_or_else(|| Tolerance::for_dtype(dtype));
        let failures = tolerance.failures(&comparison, &to_f64_vec(&actual)?, &to_f64_vec(&self.output)?);
        Ok(GoldenResult {
            file: context,
            module: self.kind.name().to_string(),
            shape: self.input.dims().to_vec(),
            dtype: dtype_name(dtype).to_string(),
            device: if device.is_cpu() { "cpu".into() } else { "cuda".into() },
            passed: failures.is_empty(),
            comparison,
            tolerance,
            failures,
        })
    }
}

/// The outcome of checking one case.
#[derive(Debug, Clone, Serialize)]
pub struct GoldenResult {
    /// The case file.
    pub file: String,
    /// Its block kind.
    pub module: String,
    /// Input shape.
    pub shape: Vec<usize>,
    /// Dtype the block ran in.
    pub dtype: String,
    /// Device the block ran on.
    pub device: String,
    /// Whether every threshold held.
    pub passed: bool,
    /// The metrics.
    #[serde(flatten)]
    pub comparison: Comparison,
    /// The thresholds applied.
    pub tolerance: Tolerance,
    /// Why it failed; empty when it passed.
    pub failures: Vec<String>,
}
