//! Two-layer GELU feed-forward block (BERT's `intermediate` + `output.dense`).

use crate::activation::Activation;
use crate::block::Block;
use crate::linear::Linear;
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

/// `output.dense(act(intermediate.dense(x)))` — BERT's feed-forward without its residual norm.
///
/// # Shapes
/// `(batch, seq, hidden) → (batch, seq, hidden)` through `(batch, seq, intermediate)`
#[derive(Debug, Clone)]
pub struct GeluMlp {
    intermediate: Linear,
    output: Linear,
    act: Activation,
}

impl GeluMlp {
    /// Loads `intermediate.dense` and `output.dense` (with biases) from `vb`.
    pub fn new(hidden_size: usize, intermediate_size: usize, act: Activation, vb: VarBuilder) -> crate::Result<Self> {
        Ok(Self {
            intermediate: Linear::new(hidden_size, intermediate_size, true, vb.pp("intermediate").pp("dense"))?,
            output: Linear::new(intermediate_size, hidden_size, true, vb.pp("output").pp("dense"))?,
            act,
        })
    }
}

impl Module for GeluMlp {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.output.forward(&self.act.forward(&self.intermediate.forward(xs)?)?)
    }
}

impl Block for GeluMlp {
    fn forward_reference(&self, xs: &Tensor) -> Result<Tensor> {
        self.output.forward_reference(&self.act.forward_reference(&self.intermediate.forward_reference(xs)?)?)
    }
}
