//! The [`Block`] trait: a fast forward and its float64 reference twin.

use candle_core::{DType, Device, Module, Result, Tensor};

/// A building block with a fast forward (candle's fused kernels, the module's own dtype and
/// device) and a float64 reference twin computed on the CPU straight from the formula.
///
/// The twin exists to be trusted, not to be fast: it uses only elementary, differentiable
/// operations, so a disagreement between the two paths points at the fast path.
pub trait Block: Module + Send + Sync {
    /// The same computation as [`Module::forward`], in float64 on the CPU, written naively.
    /// The result is float64 on the CPU whatever the input's dtype and device.
    fn forward_reference(&self, xs: &Tensor) -> Result<Tensor>;
}

/// `t` in float64 on the CPU, the working form of every reference twin.
pub fn to_f64_cpu(t: &Tensor) -> Result<Tensor> {
    t.to_device(&Device::Cpu)?.to_dtype(DType::F64)
}

/// Softmax over the last dimension written out as `exp(x - max) / sum(exp(x - max))`.
pub fn softmax_reference(xs: &Tensor) -> Result<Tensor> {
    let max = xs.max_keepdim(candle_core::D::Minus1)?;
    let e = xs.broadcast_sub(&max)?.exp()?;
    e.broadcast_div(&e.sum_keepdim(candle_core::D::Minus1)?)
}
