//! [`QuantizedWeight`]: an `(out, in)` weight in any [`QuantFormat`], with its matmul.

use super::int::IntMatrix;
use super::QuantFormat;
use crate::error::Error;
use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{DType, Device, Module, Result, Tensor};
use std::sync::Arc;

/// A quantized `(out, in)` weight matrix.
#[derive(Debug, Clone)]
pub enum QuantizedWeight {
    /// int8 or int4, dequantized to f32 on `device` for each matmul.
    Int {
        /// The codes and scales.
        matrix: Arc<IntMatrix>,
        /// The format it was made in.
        format: QuantFormat,
        /// Where the dequantized weight is placed.
        device: Device,
    },
    /// A GGUF block format, multiplied by candle's quantized kernels.
    Ggml(Arc<QTensor>),
}

impl QuantizedWeight {
    /// Quantizes a dense `(out, in)` weight. The row width must be a multiple of the format's
    /// block ([`QuantFormat::block`]).
    pub fn quantize(w: &Tensor, format: QuantFormat) -> crate::Result<Self> {
        let (rows, cols) = w.dims2()?;
        if cols % format.block() != 0 {
            return Err(Error::Quant(format!("{format} needs rows whose width is a multiple of {}, got {cols}", format.block())));
        }
        let device = w.device().clone();
        match format {
            QuantFormat::Int8 | QuantFormat::Int4 { .. } => {
                let data = w.to_device(&Device::Cpu)?.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
                let matrix = match format {
                    QuantFormat::Int4 { group, symmetric } => IntMatrix::int4(&data, rows, cols, group, symmetric),
                    _ => IntMatrix::int8(&data, rows, cols),
                };
                Ok(Self::Int { matrix: Arc::new(matrix), format, device })
            }
            QuantFormat::Ggml(d) => Ok(Self::Ggml(Arc::new(QTensor::quantize_onto(&w.to_dtype(DType::F32)?.contiguous()?, d, &device)?))),
        }
    }

    /// Wraps a GGUF tensor (its shape `(out, in)` as candle reads it).
    pub fn from_qtensor(q: QTensor) -> crate::Result<Self> {
        if q.rank() != 2 {
            return Err(Error::Quant(format!("a linear weight has two dimensions, this tensor has {:?}", q.shape().dims())));
        }
        Ok(Self::Ggml(Arc::new(q)))
    }

    /// `(out, in)`.
    pub fn dims(&self) -> (usize, usize) {
        match self {
            Self::Int { matrix, .. } => matrix.dims,
            Self::Ggml(q) => {
                let d = q.shape().dims();
                (d[0], d[1])
            }
        }
    }

    /// The format.
    pub fn format(&self) -> QuantFormat {
        match self {
            Self::Int { format, .. } => *format,
            Self::Ggml(q) => QuantFormat::Ggml(q.dtype()),
        }
    }

    /// Bytes of the packed weight, scales included.
    pub fn storage_bytes(&self) -> usize {
        match self {
            Self::Int { matrix, .. } => matrix.storage_bytes(),
            Self::Ggml(q) => q.storage_size_in_bytes(),
        }
    }

    /// The weight in f32 on its device.
    pub fn dequantize(&self) -> Result<Tensor> {
        match self {
            Self::Int { matrix, device, .. } => Tensor::from_vec(matrix.dequantize(), matrix.dims, &Device::Cpu)?.to_device(device),
            Self::Ggml(q) => q.dequantize(&q.device()),
        }
    }

    /// `x Wᵀ` for `x: (…, in)`: activations of any float dtype go in, are computed in f32
    /// and come back in their own dtype (bf16 activations over a quantized weight are the
    /// usual mixed-precision setup).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dtype = x.dtype();
        let x32 = x.to_dtype(DType::F32)?;
        let y = match self {
            Self::Int { .. } => candle_nn::Linear::new(self.dequantize()?, None).forward(&x32)?,
            Self::Ggml(q) => QMatMul::from_arc(q.clone())?.forward(&x32)?,
        };
        y.to_dtype(dtype)
    }

    /// The raw GGUF tensor, when the weight is in a GGUF format.
    pub fn qtensor(&self) -> Option<&QTensor> {
        match self {
            Self::Ggml(q) => Some(q),
            Self::Int { .. } => None,
        }
    }
}
