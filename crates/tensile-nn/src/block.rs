//! The [`Block`] trait: a fast forward, its float64 reference twin, and what a test runner
//! needs to know about a block (parameters, sub-blocks, input shape, cost).

use crate::catalog::BlockKind;
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

/// A sub-block as its parent lists it in [`Block::children`]: where its parameters sit in the
/// checkpoint and under which path, if any, suites and reports test it on its own.
#[derive(Clone)]
pub struct Child<'a> {
    /// Prefix of the child's parameter names in the parent's (`self_attn`, `model.layers.0`);
    /// empty when the child's own names already start at the parent's root.
    pub prefix: String,
    /// The path [`Block::named_modules`] lists the child under; `None` for a part that is only
    /// tested as a whole with its parent (`model.embed_tokens`, a projection inside attention).
    pub path: Option<String>,
    /// The sub-block.
    pub block: &'a dyn Block,
}

impl<'a> Child<'a> {
    /// A sub-block tested on its own, listed under its checkpoint prefix.
    pub fn module(prefix: impl Into<String>, block: &'a dyn Block) -> Self {
        let prefix = prefix.into();
        Self { path: Some(prefix.clone()), prefix, block }
    }

    /// A sub-block that contributes parameters under `prefix` but is not listed by
    /// [`Block::named_modules`].
    pub fn part(prefix: impl Into<String>, block: &'a dyn Block) -> Self {
        Self { prefix: prefix.into(), path: None, block }
    }

    /// The same child with its parameters under `prefix` instead, keeping the path it is
    /// listed under (BERT's `mlp` is listed as `mlp` but loads `intermediate.dense` and
    /// `output.dense` from the layer's root).
    pub fn with_prefix(self, prefix: impl Into<String>) -> Self {
        Self { prefix: prefix.into(), ..self }
    }
}

/// A building block with a fast forward (candle's fused kernels, the module's own dtype and
/// device) and a float64 reference twin computed on the CPU straight from the formula.
///
/// The twin exists to be trusted, not to be fast: it uses only elementary, differentiable
/// operations, so a disagreement between the two paths points at the fast path, and gradients
/// can be taken through it.
///
/// A block lists its sub-blocks once, in [`Block::children`]; its parameters and the paths of
/// its testable sub-modules follow from that list.
pub trait Block: Module + Send + Sync {
    /// The same computation as [`Module::forward`], in float64 on the CPU, written naively.
    /// The result is float64 on the CPU whatever the input's dtype and device.
    fn forward_reference(&self, xs: &Tensor) -> Result<Tensor>;

    /// The block's kind, e.g. [`BlockKind::LlamaAttention`].
    fn kind(&self) -> BlockKind;

    /// The sub-blocks in checkpoint order, each once; empty for a leaf.
    fn children(&self) -> Vec<Child<'_>> {
        Vec::new()
    }

    /// Tensors the block holds itself rather than through a child (a norm's `weight`), under
    /// their checkpoint names relative to the block.
    fn own_parameters(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }

    /// Every parameter under its checkpoint name relative to the block: the block's own, then
    /// each child's behind the child's prefix.
    fn parameters(&self) -> Vec<(String, Tensor)> {
        let mut p = self.own_parameters();
        for child in self.children() {
            p.extend(prefixed(&child.prefix, child.block.parameters()));
        }
        p
    }

    /// Sub-modules worth testing on their own, by dotted path relative to the block
    /// (`model.layers.0`, `model.layers.0.self_attn`), depth first: each listed child, then
    /// what it lists in turn. Parts ([`Child::part`]) and what lies below them are left out.
    fn named_modules(&self) -> Vec<(String, &dyn Block)> {
        let mut out = Vec::new();
        for child in self.children() {
            if let Some(path) = child.path {
                out.push((path.clone(), child.block));
                out.extend(child.block.named_modules().into_iter().map(|(n, m)| (format!("{path}.{n}"), m)));
            }
        }
        out
    }

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

    /// The children's costs summed, each on the same input `shape`: the whole cost of a block
    /// whose children all see its input's shape and which adds nothing of its own worth
    /// counting (a residual layer).
    fn children_cost(&self, shape: &[usize]) -> Cost {
        self.children().iter().fold(Cost::default(), |acc, c| acc + c.block.cost(shape))
    }

    /// The block as a [`crate::Linear`], if it is one: how [`crate::linears`] finds every linear
    /// layer of a model to quantize it or attach adapters.
    fn as_linear(&self) -> Option<&crate::Linear> {
        None
    }

    /// Bytes the block's parameters occupy as stored: quantized weights at their packed size,
    /// adapters included. The sum over children plus the block's own parameters by default.
    fn storage_bytes(&self) -> usize {
        let own: usize = self.own_parameters().iter().map(|(_, t)| t.elem_count() * t.dtype().size_in_bytes()).sum();
        own + self.children().iter().map(|c| c.block.storage_bytes()).sum::<usize>()
    }

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

/// `children`' parameters with `prefix.` in front of each name (unchanged when `prefix` is
/// empty).
pub fn prefixed(prefix: &str, children: Vec<(String, Tensor)>) -> Vec<(String, Tensor)> {
    if prefix.is_empty() {
        return children;
    }
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
