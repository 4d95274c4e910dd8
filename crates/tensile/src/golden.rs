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
use std::io::Read;
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

impl CaseMeta {
    fn parse(path: &Path, json: &str) -> Result<Self> {
        serde_json::from_str(json).map_err(|e| Error::InvalidCase { path: path.to_path_buf(), reason: format!("bad `{CASE_METADATA_KEY}` metadata: {e}") })
    }

    fn kind(&self, path: &Path) -> Result<BlockKind> {
        self.module.parse::<BlockKind>().map_err(|source| Error::UnknownKind { path: path.to_path_buf(), source })
    }
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
        let meta = CaseMeta::parse(path, meta_json)?;
        let kind = meta.kind(path)?;
        let mut weights = candle_core::safetensors::load_buffer(bytes, &Device::Cpu).map_err(|e| invalid(tensile_nn::innermost_message(&e)))?;
        let mut take = |name: &str| weights.remove(name).ok_or_else(|| Error::MissingTensor { path: path.to_path_buf(), name: name.to_string() });
        let input = take("input")?;
        let output = take("output")?;
        // A head's output is (batch, labels) or (batch, seq, labels); every other block keeps
        // the input's shape. Whether the output fits the block is checked when it runs.
        if input.rank() != 3 || output.rank() == 0 || output.dims()[0] != input.dims()[0] {
            return Err(invalid(format!("`input` {:?} must be (batch, seq, hidden) and `output` {:?} start with the same batch", input.dims(), output.dims())));
        }
        let hidden = kind.hidden_size(&meta.config).map_err(|source| Error::Block { context: path.display().to_string(), source })?;
        if input.dims()[2] != hidden {
            return Err(invalid(format!("`input` has hidden size {} but the config says {hidden}", input.dims()[2])));
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
        // Every error names the file, whichever step it comes from.
        let in_file = |e: Error| match e {
            Error::Candle(e) => Error::Block { context: context.clone(), source: e.into() },
            e @ Error::ShapeMismatch { .. } => {
                Error::InvalidCase { path: self.path.clone(), reason: format!("the module's output does not fit `output`: {e}") }
            }
            e => e,
        };
        let input = self.input.to_dtype(dtype).and_then(|t| t.to_device(device)).map_err(|e| in_file(e.into()))?;
        let actual = crate::guard::catch(&context, || block.forward(&input))?.map_err(|e| Error::Block { context: context.clone(), source: e.into() })?;
        let comparison = compare(&actual, &self.output).map_err(in_file)?;
        // A block on quantized GGUF kernels gets their looser default, as in a run.
        let module = crate::module::NnModule(block);
        let tolerance = tolerance.or_else(|| crate::module::ModuleUnderTest::default_tolerance(&module, dtype)).unwrap_or_else(|| Tolerance::for_dtype(dtype));
        let failures = tolerance.failures(&comparison, &to_f64_vec(&actual).map_err(in_file)?, &to_f64_vec(&self.output).map_err(in_file)?);
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

/// Largest safetensors header read to learn a case's kind and shape: the safetensors format's
/// own limit, so no valid file is refused and a corrupt length cannot make the reader allocate
/// gigabytes.
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

/// What a case file's header says, read without its tensors: a plan checks that a test's
/// reference case fits the test (same block kind, same input shape) before anything runs, at
/// the cost of the 8-byte length and the header JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseHeader {
    /// The file.
    pub path: PathBuf,
    /// The block kind in its `tensile.case` metadata.
    pub kind: BlockKind,
    /// The Hugging Face config fields in its metadata.
    pub config: serde_json::Value,
    /// The shape of its `input` tensor.
    pub input_shape: Vec<usize>,
}

impl CaseHeader {
    /// Reads the header of the regular file `path`: its 8-byte little-endian length, then at
    /// most [`MAX_HEADER_BYTES`] of JSON (never more than the file holds).
    pub fn read(path: &Path) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidCase { path: path.to_path_buf(), reason };
        let io = |source| Error::Io { path: path.to_path_buf(), source };
        let len = crate::input::regular_file(path, crate::input::MAX_TENSOR_BYTES)?;
        let mut file = std::fs::File::open(path).map_err(io)?;
        let mut n = [0u8; 8];
        if len < 8 {
            return Err(invalid(format!("not a safetensors file ({len} bytes, shorter than the 8-byte header length)")));
        }
        file.read_exact(&mut n).map_err(io)?;
        let n = u64::from_le_bytes(n);
        if n > MAX_HEADER_BYTES || n > len - 8 {
            return Err(invalid(format!(
                "not a safetensors file (header length {n} exceeds the {} bytes after it or the limit of {MAX_HEADER_BYTES})",
                len - 8
            )));
        }
        let mut header = Vec::with_capacity(n as usize);
        file.take(n).read_to_end(&mut header).map_err(io)?;
        if header.len() as u64 != n {
            return Err(invalid(format!("not a safetensors file (header of {n} bytes cut short at {})", header.len())));
        }
        Self::parse(path, &header)
    }

    /// Parses the header JSON of the case file `path`.
    pub fn parse(path: &Path, header: &[u8]) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidCase { path: path.to_path_buf(), reason };
        let json: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(header).map_err(|e| invalid(format!("not a safetensors file ({e})")))?;
        let meta_json = json
            .get("__metadata__")
            .and_then(|m| m.get(CASE_METADATA_KEY))
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| invalid(format!("no `{CASE_METADATA_KEY}` metadata")))?;
        let meta = CaseMeta::parse(path, meta_json)?;
        let kind = meta.kind(path)?;
        let input = json.get("input").ok_or_else(|| Error::MissingTensor { path: path.to_path_buf(), name: "input".into() })?;
        let input_shape = input
            .get("shape")
            .and_then(|s| serde_json::from_value::<Vec<usize>>(s.clone()).ok())
            .ok_or_else(|| invalid("`input` has no valid shape in the header".into()))?;
        Ok(Self { path: path.to_path_buf(), kind, config: meta.config, input_shape })
    }

    /// Why this case cannot be the reference of a test whose module is of kind `kind` and
    /// whose input has shape `shape`; `None` when it fits. A module kind that is not a
    /// [`BlockKind`] (a user's own module) is not compared.
    pub fn mismatch(&self, kind: &str, shape: &[usize]) -> Option<String> {
        let file = self.path.display();
        if kind.parse::<BlockKind>().is_ok_and(|k| k != self.kind) {
            return Some(format!("reference case {file} is for {}, the test's module is {kind}", self.kind));
        }
        if self.input_shape != shape {
            return Some(format!("reference case {file} has input shape {:?}, the test's input_shape is {shape:?}", self.input_shape));
        }
        None
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

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::tensor::TensorView;

    /// A case file of `kind` holding only `input` and `output` of `shape` (f32 zeros): enough
    /// for the header, which is all these tests read.
    fn write_case(dir: &Path, name: &str, kind: &str, shape: &[usize]) -> PathBuf {
        let bytes = vec![0u8; shape.iter().product::<usize>() * 4];
        let views = [
            ("input", TensorView::new(safetensors::Dtype::F32, shape.to_vec(), &bytes).unwrap()),
            ("output", TensorView::new(safetensors::Dtype::F32, shape.to_vec(), &bytes).unwrap()),
        ];
        let meta =
            HashMap::from([(CASE_METADATA_KEY.to_string(), format!(r#"{{"module": "{kind}", "config": {{"hidden_size": {}}}}}"#, shape[shape.len() - 1]))]);
        let path = dir.join(name);
        std::fs::write(&path, safetensors::serialize(views, Some(meta)).unwrap()).unwrap();
        path
    }

    #[test]
    fn the_header_gives_kind_config_and_input_shape() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_case(dir.path(), "mlp.safetensors", "llama.mlp", &[2, 7, 64]);
        let h = CaseHeader::read(&path).unwrap();
        assert_eq!((h.kind, h.input_shape.as_slice(), &h.config["hidden_size"]), (BlockKind::LlamaMlp, &[2, 7, 64][..], &serde_json::json!(64)));
        assert_eq!(h.mismatch("llama.mlp", &[2, 7, 64]), None);
        // A user's own module kind is not compared; its shape still is.
        assert_eq!(h.mismatch("my_mlp", &[2, 7, 64]), None);
        let e = h.mismatch("llama.attention", &[2, 7, 64]).unwrap();
        assert_eq!(e, format!("reference case {} is for llama.mlp, the test's module is llama.attention", path.display()));
        let e = h.mismatch("llama.mlp", &[1, 3, 64]).unwrap();
        assert_eq!(e, format!("reference case {} has input shape [2, 7, 64], the test's input_shape is [1, 3, 64]", path.display()));
    }

    #[test]
    fn a_bad_header_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = CaseHeader::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("is a directory"), "{e}");
        let file = dir.path().join("bad.safetensors");
        let named = |bytes: &[u8], words: &str| {
            std::fs::write(&file, bytes).unwrap();
            let e = CaseHeader::read(&file).unwrap_err().to_string();
            assert!(e.contains(&file.display().to_string()) && e.contains(words), "{words}: {e}");
        };
        named(b"abc", "shorter than the 8-byte header length");
        // A length past the end of the file, or past the limit, is refused before it is read.
        named(&[0xff; 16], "header length 18446744073709551615");
        let mut long = 200_000_000u64.to_le_bytes().to_vec();
        long.extend(b"{}");
        named(&long, "the limit of 100000000");
        let header = |json: &str| {
            let mut b = (json.len() as u64).to_le_bytes().to_vec();
            b.extend(json.as_bytes());
            b
        };
        named(&header("{not json"), "not a safetensors file");
        named(&header("{}"), "no `tensile.case` metadata");
        named(&header(r#"{"__metadata__": {"tensile.case": "{\"module\": \"llama.attn\", \"config\": {}}"}}"#), "unknown block kind `llama.attn`");
        named(&header(r#"{"__metadata__": {"tensile.case": "{\"module\": \"llama.mlp\", \"config\": {}}"}}"#), "missing tensor `input`");
        named(&header(r#"{"__metadata__": {"tensile.case": "{\"module\": \"llama.mlp\", \"config\": {}}"}, "input": {"shape": [-1]}}"#), "no valid shape");
    }
}
