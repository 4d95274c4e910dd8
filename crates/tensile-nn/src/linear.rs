//! Affine map `y = x Wᵀ + b` with Hugging Face `weight`/`bias` names. The weight may be
//! quantized ([`crate::quant`]) and the layer may carry LoRA adapters ([`crate::lora`]), so
//! that every block of the library, which builds its projections from this type, can be
//! quantized or adapted without a line of its own changing.

use crate::block::{bytes_of, to_f64_cpu, tokens, Block, Cost};
use crate::catalog::BlockKind;
use crate::lora::LoraSlot;
use crate::quant::{QuantFormat, QuantizedWeight};
use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The weight of a linear layer: a dense tensor, or a quantized one.
#[derive(Debug, Clone)]
pub enum LinearWeight {
    /// A dense `(out, in)` tensor in the layer's dtype.
    Dense(Tensor),
    /// A quantized `(out, in)` matrix, multiplied by its own kernels.
    Quantized(QuantizedWeight),
}

impl LinearWeight {
    /// The dense weight, dequantized to f32 when quantized.
    pub fn dense(&self) -> Result<Tensor> {
        match self {
            Self::Dense(w) => Ok(w.clone()),
            Self::Quantized(q) => q.dequantize(),
        }
    }

    /// Bytes the weight occupies in memory.
    pub fn storage_bytes(&self) -> usize {
        match self {
            Self::Dense(w) => w.elem_count() * w.dtype().size_in_bytes(),
            Self::Quantized(q) => q.storage_bytes(),
        }
    }
}

/// What a linear layer holds behind its lock: the weight, the bias and the adapters.
#[derive(Debug, Clone)]
pub(crate) struct LinearState {
    pub(crate) weight: LinearWeight,
    pub(crate) bias: Option<Tensor>,
    pub(crate) lora: LoraSlot,
}

/// A linear layer; the weight is stored `(out_features, in_features)` as in PyTorch.
///
/// Clones share one state, as a PyTorch module shared between two parents would: adapters
/// added, switched or merged through one clone are seen by every other. That sharing is what
/// lets a [`crate::lora::LoraModel`] switch adapters in place, without reloading the base.
/// [`Block::rebuild`] makes an independent copy.
#[derive(Debug, Clone)]
pub struct Linear {
    state: Arc<RwLock<LinearState>>,
    in_features: usize,
    out_features: usize,
}

impl Linear {
    /// Loads `weight` (and `bias` when `bias` is true) from `vb`.
    pub fn new(in_features: usize, out_features: usize, bias: bool, vb: VarBuilder) -> crate::Result<Self> {
        let weight = vb.get((out_features, in_features), "weight")?;
        let bias = if bias { Some(vb.get(out_features, "bias")?) } else { None };
        Ok(Self::from_weights(weight, bias))
    }

    /// Wraps existing tensors.
    pub fn from_weights(weight: Tensor, bias: Option<Tensor>) -> Self {
        let d = weight.dims().to_vec();
        let (out_features, in_features) = (d.first().copied().unwrap_or(0), d.get(1).copied().unwrap_or(0));
        Self::from_parts(LinearWeight::Dense(weight), bias, in_features, out_features)
    }

    /// A layer over a quantized weight.
    pub fn quantized(weight: QuantizedWeight, bias: Option<Tensor>) -> Self {
        let (o, i) = weight.dims();
        Self::from_parts(LinearWeight::Quantized(weight), bias, i, o)
    }

    fn from_parts(weight: LinearWeight, bias: Option<Tensor>, in_features: usize, out_features: usize) -> Self {
        let state = LinearState { weight, bias, lora: LoraSlot::default() };
        Self { state: Arc::new(RwLock::new(state)), in_features, out_features }
    }

    /// A read guard on the state. A panic while the lock was held cannot leave the state half
    /// written (every writer replaces whole fields), so a poisoned lock is still read.
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, LinearState> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// A write guard on the state (see [`Linear::read`] on poisoning).
    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, LinearState> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The `(out, in)` weight as a dense tensor: the stored one, or the quantized one
    /// dequantized to f32.
    pub fn weight(&self) -> Tensor {
        // Dequantizing a weight that was quantized without error cannot fail; a failure here
        // means a corrupt quantized buffer, which the constructors rule out.
        self.read().weight.dense().unwrap_or_else(|e| panic!("dequantizing a linear weight failed: {e}"))
    }

    /// The weight as stored.
    pub fn stored_weight(&self) -> LinearWeight {
        self.read().weight.clone()
    }

    /// The bias, if any.
    pub fn bias(&self) -> Option<Tensor> {
        self.read().bias.clone()
    }

    /// `(in_features, out_features)`.
    pub fn features(&self) -> (usize, usize) {
        (self.in_features, self.out_features)
    }

    /// The dtype of the activations the layer computes in: the dense weight's, or f32 for a
    /// quantized weight.
    pub fn dtype(&self) -> DType {
        match &self.read().weight {
            LinearWeight::Dense(w) => w.dtype(),
            LinearWeight::Quantized(_) => DType::F32,
        }
    }

    /// The quantization format of the weight, if it is quantized.
    pub fn quant_format(&self) -> Option<QuantFormat> {
        match &self.read().weight {
            LinearWeight::Dense(_) => None,
            LinearWeight::Quantized(q) => Some(q.format()),
        }
    }

    /// Replaces the weight with its quantization in `format`, in place (every clone sees it).
    pub fn quantize(&self, format: QuantFormat) -> crate::Result<()> {
        let dense = self.read().weight.dense()?;
        let q = QuantizedWeight::quantize(&dense, format)?;
        self.write().weight = LinearWeight::Quantized(q);
        Ok(())
    }

    /// Replaces the weight, in place; the shape must stay `(out, in)`.
    pub fn set_weight(&self, weight: LinearWeight) -> crate::Result<()> {
        let dims = match &weight {
            LinearWeight::Dense(w) => w.dims2()?,
            LinearWeight::Quantized(q) => q.dims(),
        };
        if dims != (self.out_features, self.in_features) {
            return Err(crate::Error::Quant(format!("a weight of shape {dims:?} cannot replace one of ({}, {})", self.out_features, self.in_features)));
        }
        self.write().weight = weight;
        Ok(())
    }

    /// Bytes of the weight as stored, the bias and every adapter.
    pub fn storage_bytes(&self) -> usize {
        let st = self.read();
        let bias = st.bias.as_ref().map_or(0, |b| b.elem_count() * b.dtype().size_in_bytes());
        st.weight.storage_bytes() + bias + st.lora.bytes()
    }

    /// The layer without its adapters: `x Wᵀ + b`.
    fn base_forward(st: &LinearState, x: &Tensor) -> Result<Tensor> {
        match &st.weight {
            LinearWeight::Dense(w) => matmul_t(x, w, st.bias.as_ref()),
            LinearWeight::Quantized(q) => {
                let y = q.forward(x)?;
                match &st.bias {
                    Some(b) => y.broadcast_add(&b.to_dtype(y.dtype())?),
                    None => Ok(y),
                }
            }
        }
    }
}

/// `x Wᵀ + b` with every leading dimension of `x` folded into the rows of one matrix product.
///
/// candle's `Linear` broadcasts `W` over the batch instead, which gives the same forward but
/// a backward that computes `W`'s gradient as one small product per batch element and then
/// sums them: more memory and a fraction of the matmul rate. One `(rows × in)·(in × out)`
/// product has one gradient product of the full depth.
///
/// # Shapes
/// `x: (…, in)`, `w: (out, in)`, `b: (out)` → `(…, out)`
pub(crate) fn matmul_t(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let dims = x.dims();
    let (inner, outer) = (dims[dims.len() - 1], w.dim(0)?);
    let rows = x.elem_count() / inner.max(1);
    let x = x.reshape((rows, inner))?;
    let y = match b {
        Some(b) => crate::matmul_kernel::BatchedMatmul::nt_bias(&x, w, b)?, // (rows, out)
        None => crate::matmul_kernel::BatchedMatmul::nt(&x, w)?,
    };
    let mut shape = dims.to_vec();
    *shape.last_mut().expect("a rank ≥ 1 input") = outer;
    y.reshape(shape)
}

impl Module for Linear {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let st = self.read();
        let y = Self::base_forward(&st, xs)?;
        st.lora.forward(xs, y)
    }
}

impl Block for Linear {
    /// [`BlockKind::QuantizedLinear`] for a quantized weight, [`BlockKind::LoraLinear`] with
    /// adapters, [`BlockKind::Linear`] otherwise.
    fn kind(&self) -> BlockKind {
        let st = self.read();
        match (&st.weight, st.lora.is_empty()) {
            (LinearWeight::Quantized(_), _) => BlockKind::QuantizedLinear,
            (_, false) => BlockKind::LoraLinear,
            _ => BlockKind::Linear,
        }
    }

    fn dims(&self) -> Vec<(&'static str, usize)> {
        let (i, o) = self.features();
        let mut dims = vec![("in_features", i), ("out_features", o)];
        dims.extend(self.read().lora.max_rank().map(|r| ("r", r)));
        dims
    }

    /// `weight` (dequantized when quantized), `bias`, and each adapter's
    /// `lora_A.{name}.weight` and `lora_B.{name}.weight`, PEFT's names inside a live model.
    fn own_parameters(&self) -> Vec<(String, Tensor)> {
        let mut p = vec![("weight".to_string(), self.weight())];
        let st = self.read();
        p.extend(st.bias.clone().map(|b| ("bias".to_string(), b)));
        p.extend(st.lora.parameters());
        p
    }

    fn as_linear(&self) -> Option<&Linear> {
        Some(self)
    }

    fn rebuild(&self, vb: VarBuilder) -> crate::Result<Box<dyn Block>> {
        let (i, o) = self.features();
        let fresh = Linear::new(i, o, self.bias().is_some(), vb.clone())?;
        fresh.adopt(self, &vb)?;
        Ok(Box::new(fresh))
    }

    fn input_shape(&self, batch: usize, seq: usize) -> Vec<usize> {
        vec![batch, seq, self.features().0]
    }

    /// `2·n·in·out` flops over `n` tokens, and the bytes of input, output and weight as
    /// stored. Only the token count is read from `shape` (every dimension but the last); the
    /// widths are the weight's. Adapters add `2·n·r·(in + out)`.
    fn cost(&self, shape: &[usize]) -> Cost {
        let (n, (i, o)) = (tokens(shape), self.features());
        let st = self.read();
        let act = match &st.weight {
            LinearWeight::Dense(w) => w.dtype(),
            LinearWeight::Quantized(_) => DType::F32,
        };
        let (fi, fo) = (i as f64, o as f64);
        let rank = st.lora.active_rank() as f64;
        let lora = Cost { flops: 2.0 * n * rank * (fi + fo), bytes: bytes_of(rank * (fi + fo), act) };
        Cost { flops: 2.0 * n * fi * fo, bytes: bytes_of(n * fi + n * fo, act) + st.weight.storage_bytes() as f64 } + lora
    }

    /// `x Wᵀ + b` (the weight dequantized) plus each active adapter's `s · (x Aᵀ) Bᵀ`, in
    /// float64, for inputs of any rank ≥ 2.
    fn forward_reference(&self, xs: &Tensor) -> Result<Tensor> {
        let x = to_f64_cpu(xs)?;
        let st = self.read();
        let w = to_f64_cpu(&st.weight.dense()?)?;
        let y = x.broadcast_matmul(&w.t()?)?;
        let y = match &st.bias {
            Some(b) => y.broadcast_add(&to_f64_cpu(b)?)?,
            None => y,
        };
        st.lora.forward_reference(&x, y)
    }

    fn storage_bytes(&self) -> usize {
        Linear::storage_bytes(self)
    }
}

impl Linear {
    /// Takes over `old`'s quantization format and adapters (their configuration, with the
    /// tensors loaded again from `vb`), so that a rebuilt block behaves as the one it copies.
    pub(crate) fn adopt(&self, old: &Linear, vb: &VarBuilder) -> crate::Result<()> {
        if let Some(format) = old.quant_format().filter(|f| self.quant_format() != Some(*f)) {
            // A layer already in the format (a nested rebuild adopted it) is left as it is.
            // Quantized from the weight as given, not as rounded to the layer's dtype: the
            // codes of a bf16 or f16 copy then equal the original's, as a quantized weight
            // does not depend on the activations' dtype.
            let (i, o) = self.features();
            let w = vb.clone().set_dtype(DType::F32).get((o, i), "weight")?;
            self.set_weight(LinearWeight::Quantized(QuantizedWeight::quantize(&w, format)?))?;
        }
        let slot = old.read().lora.reloaded(vb, self.dtype())?;
        self.write().lora = slot;
        Ok(())
    }
}

/// Every linear layer inside `block` (itself included), under its checkpoint path
/// (`model.layers.0.self_attn.q_proj`; empty for `block` itself), depth first.
pub fn linears(block: &dyn Block) -> Vec<(String, Linear)> {
    fn walk(block: &dyn Block, path: &str, out: &mut Vec<(String, Linear)>) {
        if let Some(l) = block.as_linear() {
            out.push((path.to_string(), l.clone()));
            return;
        }
        for child in block.children() {
            let p = match (path.is_empty(), child.prefix.is_empty()) {
                (true, _) => child.prefix.clone(),
                (false, true) => path.to_string(),
                (false, false) => format!("{path}.{}", child.prefix),
            };
            walk(child.block, &p, out);
        }
    }
    let mut out = Vec::new();
    walk(block, "", &mut out);
    out
}

/// `block` rebuilt from `vb` as [`Block::rebuild`] does, with each linear layer then taking
/// over the quantization and adapters of the layer at the same path in `block`: what a test
/// runner needs to move any block to another dtype or device, or onto gradient variables,
/// without losing what was added after it was built.
pub fn rebuild_with_state(block: &dyn Block, vb: VarBuilder) -> crate::Result<Box<dyn Block>> {
    let fresh = block.rebuild(vb.clone())?;
    let new: std::collections::HashMap<String, Linear> = linears(fresh.as_ref()).into_iter().collect();
    for (path, old) in linears(block) {
        if let Some(l) = new.get(&path) {
            let vb = if path.is_empty() { vb.clone() } else { vb.pp(&path) };
            l.adopt(&old, &vb)?;
        }
    }
    Ok(fresh)
}
