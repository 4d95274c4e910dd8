//! Parsing of `--device` and `--dtype` values.

use crate::error::{Error, Result};
use candle_core::{DType, Device};
use std::str::FromStr;

/// A device as written in specs and on the command line: `cpu`, `cuda` (ordinal 0) or
/// `cuda:N`. Parsing checks the syntax only, so a plan with CUDA cases validates on a machine
/// without a GPU; [`DeviceSpec::open`] decides availability when a case runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    /// The CPU.
    Cpu,
    /// The CUDA device of this ordinal.
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = Error;
    fn from_str(name: &str) -> Result<Self> {
        let syntax = || Error::Device { name: name.to_string(), reason: "expected cpu, cuda or cuda:N".to_string() };
        match name {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            _ => name.strip_prefix("cuda:").and_then(|n| n.parse::<usize>().ok()).map(Self::Cuda).ok_or_else(syntax),
        }
    }
}

impl DeviceSpec {
    /// The device itself. A CUDA device in a build without the `cuda` feature, or on a machine
    /// without a GPU, is an error that says so; callers decide whether that means "skip" or
    /// "exit 2".
    pub fn open(self) -> Result<Device> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda(ordinal) => {
                let name = if ordinal == 0 { "cuda".to_string() } else { format!("cuda:{ordinal}") };
                let err = |reason: String| Error::Device { name: name.clone(), reason };
                if !candle_core::utils::cuda_is_available() {
                    return Err(err("this build has no CUDA support (rebuild with --features cuda)".to_string()));
                }
                Device::new_cuda(ordinal).map_err(|e| err(tensile_nn::innermost_message(&e)))
            }
        }
    }
}

/// Parses `cpu`, `cuda` or `cuda:N` and opens the device ([`DeviceSpec`], then
/// [`DeviceSpec::open`]).
pub fn parse_device(name: &str) -> Result<Device> {
    name.parse::<DeviceSpec>()?.open()
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
