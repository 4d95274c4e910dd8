//! Writing a model back as a Hugging Face directory, atomically.

use super::load::model_err;
use super::model::PretrainedModel;
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use std::path::Path;

/// Writes `config.json` and `model.safetensors` for `model` into `dir` (created if needed) in
/// Hugging Face layout, each atomically: written to a temporary file in `dir`, then renamed,
/// so a reader never sees half a file and a failure leaves any earlier file intact.
pub fn save_pretrained(model: &PretrainedModel, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.to_path_buf(), source })?;
    let config = serde_json::to_vec_pretty(&model.config_json()?).map_err(|e| crate::error::config_err("config", e.to_string()))?;
    write_atomic(&dir.join("config.json"), &config)?;
    let params = model.block().parameters();
    let mut seen = std::collections::HashSet::new();
    // Adapters are saved on their own (`LoraModel::save_adapter`), as PEFT keeps them apart
    // from the base checkpoint; a quantized weight is written dequantized.
    let tensors: Vec<(String, Tensor)> = params.into_iter().filter(|(n, _)| !crate::lora::is_adapter_parameter(n) && seen.insert(n.clone())).collect();
    let path = dir.join("model.safetensors");
    let bytes = safetensors_bytes(&tensors, &path)?;
    write_atomic(&path, &bytes)
}

/// A safetensors file holding `tensors` under their names, with the `format: pt` metadata
/// transformers insists on; `path` is only named in errors.
pub(crate) fn safetensors_bytes(tensors: &[(String, Tensor)], path: &Path) -> Result<Vec<u8>> {
    let views = tensors.iter().map(|(n, t)| Ok((n.as_str(), RawTensor::of(t)?))).collect::<Result<Vec<_>>>()?;
    let metadata = Some([("format".to_string(), "pt".to_string())].into_iter().collect());
    safetensors::serialize(views, metadata).map_err(|e| model_err(path, e.to_string()))
}

/// A tensor's little-endian bytes, dtype and shape, as the safetensors writer takes them.
struct RawTensor {
    dtype: safetensors::Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl RawTensor {
    fn of(t: &Tensor) -> Result<Self> {
        let flat = t.to_device(&Device::Cpu)?.flatten_all()?;
        let (dtype, data): (safetensors::Dtype, Vec<u8>) = match t.dtype() {
            DType::F32 => (safetensors::Dtype::F32, flat.to_vec1::<f32>()?.iter().flat_map(|x| x.to_le_bytes()).collect()),
            DType::F64 => (safetensors::Dtype::F64, flat.to_vec1::<f64>()?.iter().flat_map(|x| x.to_le_bytes()).collect()),
            DType::F16 => (safetensors::Dtype::F16, flat.to_vec1::<half::f16>()?.iter().flat_map(|x| x.to_le_bytes()).collect()),
            DType::BF16 => (safetensors::Dtype::BF16, flat.to_vec1::<half::bf16>()?.iter().flat_map(|x| x.to_le_bytes()).collect()),
            other => return Err(Error::InvalidInput { op: "save_pretrained", reason: format!("parameters of dtype {other:?} cannot be saved") }),
        };
        Ok(Self { dtype, shape: t.dims().to_vec(), data })
    }
}

impl safetensors::View for RawTensor {
    fn dtype(&self) -> safetensors::Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::files::write_atomic(path, bytes).map_err(|source| Error::Io { path: path.to_path_buf(), source })
}
