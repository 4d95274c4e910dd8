//! Parsing of `--device` and `--dtype` values.

use crate::error::{Error, Result};
use candle_core::{DType, Device};

/// Parses `cpu`, `cuda` or `cuda:N` into a device.
///
/// A CUDA device in a build without the `cuda` feature, or on a machine without a GPU, is an
/// error that says so; callers decide whether that means "skip" or "exit 2".
pub fn parse_device(name: &str) -> Result<Device> {
    let err = |reason: &str| Error::Device { name: name.to_string(), reason: reason.to_string() };
    match name {
        "cpu" => Ok(Device::Cpu),
        _ => {
            let ordinal = match name.strip_prefix("cuda") {
                Some("") => 0,
                Some(rest) => rest.strip_prefix(':').and_then(|n| n.parse::<usize>().ok()).ok_or_else(|| err("expected cpu, cuda or cuda:N"))?,
                None => return Err(err("expected cpu, cuda or cuda:N")),
            };
            if !candle_core::utils::cuda_is_available() {
                return Err(err("this build has no CUDA support (rebuild with --features cuda)"));
            }
            Device::new_cuda(ordinal).map_err(|e| err(&tensile_nn::innermost_message(&e)))
        }
    }
}

/// Parses `f32`, `bf16`, `f16` or `f64`.
pub fn parse_dtype(name: &str) -> Result<DType> {
    match name {
        "f32" => Ok(DType::F32),
        "bf16" => Ok(DType::BF16),
        "f16" => Ok(DType::F16),
        "f64" => Ok(DType::F64),
        other => Err(Error::DType(other.to_string())),
    }
}

/// The short name of a float dtype, as accepted by [`parse_dtype`].
pub fn dtype_name(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "f32",
        DType::BF16 => "bf16",
        DType::F16 => "f16",
        DType::F64 => "f64",
        DType::U8 => "u8",
        DType::U32 => "u32",
        DType::I64 => "i64",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices_and_dtypes() {
        assert!(parse_device("cpu").unwrap().is_cpu());
        assert!(parse_device("gpu").unwrap_err().to_string().contains("expected cpu, cuda or cuda:N"));
        assert!(parse_device("cuda:x").is_err());
        if !candle_core::utils::cuda_is_available() {
            assert!(parse_device("cuda:0").unwrap_err().to_string().contains("no CUDA support"));
        }
        for (s, d) in [("f32", DType::F32), ("bf16", DType::BF16), ("f16", DType::F16), ("f64", DType::F64)] {
            assert_eq!(parse_dtype(s).unwrap(), d);
            assert_eq!(dtype_name(d), s);
        }
        assert!(parse_dtype("fp8").unwrap_err().to_string().contains("fp8"));
    }
}
