//! The [`Block`] trait: a fast forward, its float64 reference twin, and what a test runner
//! needs to know about a block (parameters, input shape, cost).

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;

/// What a block consumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// Floating-point activations `(…, hidden)`.
    Hidden,
    /// Integer token ids `(batch, seq)` below `vocab`.
    TokenIds {
        /// Vocabulary size.
        vocab: usize,
    },
}

/// Arithmetic and memory traffic of one forward pass, for roofline numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cost {
    /// Floating-point operations (a multiply-add counts two).
    pub flops: f64,
    /// Bytes that must move at least once: parameters, inputs, outputs and materialised
    /// intermediates.
    pub bytes: f64,
}

impl std::ops::Add for Cost {
    type Output = Cost;
    fn add(self, o: Cost) -> Cost {
        Cost { flops: self.flops + o.flops, bytes: self.bytes + o.bytes }
    }
}

/// A building block with a fast forward (candle's fused kernels, the module's own dtype and
/// device) and a float64 reference twin computed on the CPU straight from the formula.
///
/// The twin exists to be trusted, not to be fast: it uses only elementary, differentiable
/// operations, so a disagreement between the two paths points at the fast path, and gradients
/// can be taken through it.
pub trait Block: Module + Send + Sync {
    /// The same computation as [`Module::forward`], in float64 on the CPU, written naively.
    /// The result is float64 on the CPU whatever the input's dtype and device.
    fn forward_reference(&self, xs: &Tensor) -> Result<Tensor>;

    /// The block's kind, e.g. `llama.attention`.
    fn kind(&self) -> &'static str;

    /// Parameters under their checkpoint names relative to the block.
    fn parameters(&self) -> Vec<(String, Tensor)>;

    /// The same block with every parameter loaded again from `vb` (to change dtype or device,
    /// or to substitute variables for gradient checks).
    fn rebuild(&self, vb: VarBuilder) -> crate::Result<Box<dyn Block>>;

    /// What the block consumes.
    fn input_kind(&self) -> InputKind {
        InputKind::Hidden
    }

    /// The natural input shape for `batch` sequences of `seq` tokens.
    fn input_shape(&self, batch: usize, seq: usize) -> Vec<usize>;

    /// FLOPs and bytes of one forward on an input of `shape`.
    fn cost(&self, shape: &[usize]) -> Cost;

    /// The configuration numbers that identify this instance, under Hugging Face names
    /// (`hidden_size`, `num_attention_heads`, …); configuration coverage reports group by them.
    fn dims(&self) -> Vec<(&'static str, usize)> {
        Vec::new()
    }
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

/// `children`' parameters with `prefix.` in front of each name.
pub fn prefixed(prefix: &str, children: Vec<(String, Tensor)>) -> Vec<(String, Tensor)> {
    children.into_iter().map(|(n, t)| (format!("{prefix}.{n}"), t)).collect()
}

/// Number of token positions in an input of `shape` (all dimensions but the last for
/// activations).
pub fn tokens(shape: &[usize]) -> f64 {
    shape[..shape.len().saturating_sub(1)].iter().product::<usize>() as f64
}

/// Bytes of `n` elements of `dtype`.
pub fn bytes_of(n: f64, dtype: DType) -> f64 {
    n * dtype.size_in_bytes() as f64
}
