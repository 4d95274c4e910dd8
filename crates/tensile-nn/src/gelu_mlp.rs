//! Two-layer GELU feed-forward block (BERT's `intermediate` + `output.dense`).

use crate::activation::Activation;
use crate::block::{tokens, Block, Child, Cost};
use crate::catalog::BlockKind;
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
    fn kind(&self) -> BlockKind {
        BlockKind::GeluMlp
    }

    fn dims(&self) -> Vec<(&'static str, usize)> {
        let (hidden, intermediate) = self.intermediate.features();
        vec![("hidden_size", hidden), ("intermediate_size", intermediate)]
    }

    fn children(&self) -> Vec<Child<'_>> {
        vec![Child::part("intermediate.dense", &self.intermediate), Child::part("output.dense", &self.output)]
    }

    fn rebuild(&self, vb: VarBuilder) -> crate::Result<Box<dyn Block>> {
        let (h, i) = self.intermediate.features();
        Ok(Box::new(GeluMlp::new(h, i, self.act, vb)?))
    }

    fn input_shape(&self, batch: usize, seq: usize) -> Vec<usize> {
        vec![batch, seq, self.intermediate.features().0]
    }

    fn cost(&self, shape: &[usize]) -> Cost {
        let i = self.intermediate.features().1;
        let act = Cost { flops: 8.0 * tokens(shape) * i as f64, bytes: 0.0 };
        // A linear layer's cost reads only the token count from a shape.
        self.intermediate.cost(shape) + self.output.cost(shape) + act
    }

    fn forward_reference(&self, xs: &Tensor) -> Result<Tensor> {
        self.output.forward_reference(&self.act.forward_reference(&self.intermediate.forward_reference(xs)?)?)
    }
}
