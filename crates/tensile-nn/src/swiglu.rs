//! SwiGLU feed-forward block (LLaMA's `LlamaMLP`).

use crate::activation::Activation;
use crate::block::{bytes_of, tokens, Block, Child, Cost};
use crate::catalog::BlockKind;
use crate::linear::Linear;
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

/// `down_proj(act(gate_proj(x)) · up_proj(x))`, with SiLU as the usual activation.
///
/// # Shapes
/// `(batch, seq, hidden) → (batch, seq, hidden)` through `(batch, seq, intermediate)`
#[derive(Debug, Clone)]
pub struct SwiGlu {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
    act: Activation,
}

impl SwiGlu {
    /// Loads `gate_proj`, `up_proj`, `down_proj` from `vb`.
    pub fn new(hidden_size: usize, intermediate_size: usize, bias: bool, act: Activation, vb: VarBuilder) -> crate::Result<Self> {
        Ok(Self {
            gate_proj: Linear::new(hidden_size, intermediate_size, bias, vb.pp("gate_proj"))?,
            up_proj: Linear::new(hidden_size, intermediate_size, bias, vb.pp("up_proj"))?,
            down_proj: Linear::new(intermediate_size, hidden_size, bias, vb.pp("down_proj"))?,
            act,
        })
    }
}

impl Module for SwiGlu {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (gate, up) = (self.gate_proj.forward(xs)?, self.up_proj.forward(xs)?);
        let gated = if self.act == crate::Activation::Silu {
            // The gate and the product in one pass, with its own backward.
            crate::silu_mul::SiluMul::apply(&gate, &up)?
        } else {
            (self.act.forward(&gate)? * up)?
        };
        self.down_proj.forward(&gated)
    }
}

impl Block for SwiGlu {
    fn kind(&self) -> BlockKind {
        BlockKind::LlamaMlp
    }

    fn dims(&self) -> Vec<(&'static str, usize)> {
        let (hidden, intermediate) = self.gate_proj.features();
        vec![("hidden_size", hidden), ("intermediate_size", intermediate)]
    }

    fn children(&self) -> Vec<Child<'_>> {
        vec![Child::part("gate_proj", &self.gate_proj), Child::part("up_proj", &self.up_proj), Child::part("down_proj", &self.down_proj)]
    }

    fn rebuild(&self, vb: VarBuilder) -> crate::Result<Box<dyn Block>> {
        let (h, i) = self.gate_proj.features();
        Ok(Box::new(SwiGlu::new(h, i, self.gate_proj.bias().is_some(), self.act, vb)?))
    }

    fn input_shape(&self, batch: usize, seq: usize) -> Vec<usize> {
        vec![batch, seq, self.gate_proj.features().0]
    }

    fn cost(&self, shape: &[usize]) -> Cost {
        let (n, i) = (tokens(shape), self.gate_proj.features().1 as f64);
        // Activation and product: a handful of flops and one extra intermediate per element.
        let pointwise = Cost { flops: 6.0 * n * i, bytes: bytes_of(2.0 * n * i, self.gate_proj.weight().dtype()) };
        // A linear layer's cost reads only the token count from a shape: down_proj sees as many
        // tokens as the input, `i` wide.
        self.gate_proj.cost(shape) + self.up_proj.cost(shape) + self.down_proj.cost(shape) + pointwise
    }

    fn forward_reference(&self, xs: &Tensor) -> Result<Tensor> {
        let gate = self.act.forward_reference(&self.gate_proj.forward_reference(xs)?)?;
        self.down_proj.forward_reference(&(gate * self.up_proj.forward_reference(xs)?)?)
    }
}
