//! [`Tagged`]: a block reported under another kind (a LoRA-wrapped or quantized attention
//! or MLP is still the same block, with different linear layers inside).

use crate::block::{Block, Child, Cost, InputKind};
use crate::catalog::BlockKind;
use crate::linear::rebuild_with_state;
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

/// `inner`, reporting `kind`; everything else, rebuilds included, is `inner`'s.
pub struct Tagged {
    inner: Box<dyn Block>,
    kind: BlockKind,
}

impl Tagged {
    /// `inner` reported as `kind`.
    pub fn new(inner: Box<dyn Block>, kind: BlockKind) -> Self {
        Self { inner, kind }
    }

    /// The wrapped block.
    pub fn inner(&self) -> &dyn Block {
        self.inner.as_ref()
    }
}

impl Module for Tagged {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.inner.forward(xs)
    }
}

impl Block for Tagged {
    fn forward_reference(&self, xs: &Tensor) -> Result<Tensor> {
        self.inner.forward_reference(xs)
    }
    fn kind(&self) -> BlockKind {
        self.kind
    }
    fn children(&self) -> Vec<Child<'_>> {
        self.inner.children()
    }
    fn own_parameters(&self) -> Vec<(String, Tensor)> {
        self.inner.own_parameters()
    }
    fn rebuild(&self, vb: VarBuilder) -> crate::Result<Box<dyn Block>> {
        Ok(Box::new(Tagged::new(rebuild_with_state(self.inner.as_ref(), vb)?, self.kind)))
    }
    fn input_kind(&self) -> InputKind {
        self.inner.input_kind()
    }
    fn input_shape(&self, batch: usize, seq: usize) -> Vec<usize> {
        self.inner.input_shape(batch, seq)
    }
    fn cost(&self, shape: &[usize]) -> Cost {
        self.inner.cost(shape)
    }
    fn dims(&self) -> Vec<(&'static str, usize)> {
        self.inner.dims()
    }
    fn storage_bytes(&self) -> usize {
        self.inner.storage_bytes()
    }
    fn as_linear(&self) -> Option<&crate::Linear> {
        self.inner.as_linear()
    }
}
