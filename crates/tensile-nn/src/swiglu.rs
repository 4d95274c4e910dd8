//! SwiGLU feed-forward block (LLaMA's `LlamaMLP`).

use crate::activation::Activation;
use crate::block::Block;
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
        let gate = self.act.forward(&self.gate_proj.forward(xs)?)?;
        self.down_proj.forward(&(gate * self.up_proj.forward(xs)?)?)
    }
}

impl Block for SwiGlu {
    fn forward_reference(&self, xs: &Tensor) -> Result<Tensor> {
        let gate = self.act.forward_reference(&self.gate_proj.forward_reference(xs)?)?;
        self.down_proj.forward_reference(&(gate * self.up_proj.forward_reference(xs)?)?)
    }
}
