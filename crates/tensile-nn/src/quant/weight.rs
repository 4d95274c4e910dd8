//! [`QuantizedWeight`]: an `(out, in)` weight in any [`QuantFormat`], with its matmul.

use super::int::IntMatrix;
use super::QuantFormat;
use crate::error::Error;
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Result, Tensor};
use std::sync::Arc;

/// Up to this many tokens a matmul runs on the quantized codes directly; past it, formats
/// without a blocked kernel dequantize once and use the f32 GEMM.
const GEMV_TOKENS: usize = 4;

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
        let tokens = x.elem_count() / x.dim(candle_core::D::Minus1)?.max(1);
        let y = match self {
            // A few tokens: one pass over the codes per token. More: dequantize once and let
            // the f32 GEMM amortise it.
            Self::Int { matrix, .. } if tokens <= GEMV_TOKENS && x.device().is_cpu() => {
                let (rows, cols) = matrix.dims;
                let flat = x32.flatten_to(candle_core::D::Minus2)?.reshape((tokens, cols))?.to_vec2::<f32>()?;
                let out: Vec<f32> = flat.iter().flat_map(|row| matrix.gemv(row)).collect();
                let mut shape = x.dims().to_vec();
                *shape.last_mut().expect("rank ≥ 1") = rows;
                Tensor::from_vec(out, shape, x.device())?
            }
            Self::Int { .. } => candle_nn::Linear::new(self.dequantize()?, None).forward(&x32)?,
            // candle's kernels for these formats are dot-product loops without a blocked
            // multi-token path: past a few tokens, dequantizing once and running the f32 GEMM
            // is many times faster (bench/RESULTS.md), at the cost of the f32 copy while it runs.
            Self::Ggml(q) if tokens > GEMV_TOKENS && matches!(q.dtype(), GgmlDType::Q4_0 | GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1) => {
                candle_nn::Linear::new(q.dequantize(&q.device())?, None).forward(&x32)?
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::QuantFormat;

    fn weight() -> Tensor {
        crate::init::randn(0, "w", (8, 64), DType::F32, &Device::Cpu).unwrap()
    }

    #[test]
    fn few_and_many_tokens_give_the_same_product() {
        // Up to GEMV_TOKENS tokens the integer formats run on the codes, beyond it on the
        // dequantized matrix; Q4_0 likewise switches kernels. The results agree.
        for name in ["int8", "int4-g32", "int4-g64-asym", "q4_0"] {
            let q = QuantizedWeight::quantize(&weight(), name.parse::<QuantFormat>().unwrap()).unwrap();
            let x = crate::init::randn(1, "x", (2, 5, 64), DType::F32, &Device::Cpu).unwrap();
            let many = q.forward(&x).unwrap();
            let few = Tensor::cat(&(0..2).map(|b| q.forward(&x.narrow(0, b, 1).unwrap().narrow(1, 0, 1).unwrap()).unwrap()).collect::<Vec<_>>(), 0).unwrap();
            let first = many.narrow(1, 0, 1).unwrap();
            let d = (first - few).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            // Q4_0's single-token kernel rounds the activations to 8 bits; the others are exact.
            let tol = if name == "q4_0" { 0.1 } else { 1e-4 };
            assert!(d < tol, "{name}: {d}");
            assert_eq!(many.dims(), [2, 5, 8]);
        }
    }

    #[test]
    fn a_weight_knows_its_format_shape_and_storage() {
        let q = QuantizedWeight::quantize(&weight(), QuantFormat::Int8).unwrap();
        assert_eq!((q.dims(), q.format(), q.storage_bytes()), ((8, 64), QuantFormat::Int8, 8 * 64 + 8 * 4));
        assert!(q.qtensor().is_none());
        let g = QuantizedWeight::quantize(&weight(), "q8_0".parse().unwrap()).unwrap();
        assert_eq!(g.qtensor().unwrap().dtype(), GgmlDType::Q8_0);
        let flat = QTensor::quantize(&Tensor::zeros(64, DType::F32, &Device::Cpu).unwrap(), GgmlDType::Q8_0).unwrap();
        assert!(QuantizedWeight::from_qtensor(flat).unwrap_err().to_string().contains("two dimensions"));
    }
}
