//! A lookup table of token (or position, or token-type) vectors.

use crate::block::{bytes_of, to_f64_cpu, Block, Cost, InputKind};
use crate::catalog::BlockKind;
use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

/// A lookup table `weight: (vocab, hidden)` indexed by integer ids.
///
/// # Shapes
/// `ids: (batch, seq) u32 → (batch, seq, hidden)`
#[derive(Debug, Clone)]
pub struct Embedding {
    weight: Tensor,
}

impl Embedding {
    /// Loads `weight` of shape `(num_embeddings, hidden_size)`.
    pub fn new(num_embeddings: usize, hidden_size: usize, vb: VarBuilder) -> crate::Result<Self> {
        Ok(Self { weight: vb.get((num_embeddings, hidden_size), "weight")? })
    }

    /// The `(vocab, hidden)` table, shared with a tied `lm_head`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    fn lookup(table: &Tensor, ids: &Tensor) -> Result<Tensor> {
        let dims = ids.dims().to_vec();
        let flat = table.index_select(&ids.flatten_all()?.to_dtype(DType::U32)?, 0)?;
        let mut out_dims = dims;
        out_dims.push(table.dim(1)?);
        flat.reshape(out_dims)
    }
}

impl Module for Embedding {
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        Self::lookup(&self.weight, ids)
    }
}

impl Block for Embedding {
    fn kind(&self) -> BlockKind {
        BlockKind::Embedding
    }

    fn dims(&self) -> Vec<(&'static str, usize)> {
        let d = self.weight.dims();
        vec![("vocab_size", d[0]), ("hidden_size", d[1])]
    }

    fn own_parameters(&self) -> Vec<(String, Tensor)> {
        vec![("weight".to_string(), self.weight.clone())]
    }

    fn rebuild(&self, vb: VarBuilder) -> crate::Result<Box<dyn Block>> {
        let (v, h) = self.weight.dims2()?;
        Ok(Box::new(Embedding::new(v, h, vb)?))
    }

    fn input_kind(&self) -> InputKind {
        InputKind::TokenIds { vocab: self.weight.dims()[0] }
    }

    fn input_shape(&self, batch: usize, seq: usize) -> Vec<usize> {
        vec![batch, seq]
    }

    fn cost(&self, shape: &[usize]) -> Cost {
        let n = shape.iter().product::<usize>() as f64;
        Cost { flops: 0.0, bytes: bytes_of(2.0 * n * self.weight.dims()[1] as f64, self.weight.dtype()) }
    }

    fn forward_reference(&self, ids: &Tensor) -> Result<Tensor> {
        Self::lookup(&to_f64_cpu(&self.weight)?, &ids.to_device(&candle_core::Device::Cpu)?)
    }
}
