//! Pooling of a sequence of hidden states into one vector per sequence, honouring a padding
//! mask: the first token (`cls`), the masked mean, the masked maximum, and learned attention
//! pooling.

use crate::block::{tokens, Block, Cost};
use crate::catalog::BlockKind;
use crate::linear::Linear;
use crate::{Error, Result};
use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::VarBuilder;

/// How a [`Pooling`] block reduces the sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolingMode {
    /// The first position's state (BERT's `[CLS]`), whatever the mask says.
    Cls,
    /// The mean over unmasked positions.
    Mean,
    /// The element-wise maximum over unmasked positions.
    Max,
    /// `Σ_s α_s x_s` with `α = softmax_s(x_s·w + b)` over unmasked positions; `w` and `b`
    /// are the `attention` linear map `(hidden → 1)`.
    Attention,
}

/// Reduces `(batch, seq, hidden)` to `(batch, hidden)`.
///
/// # Shapes
/// `xs: (batch, seq, hidden)`, `mask: (batch, seq)` with 1 for real tokens and 0 for padding →
/// `(batch, hidden)`.
#[derive(Debug, Clone)]
pub struct Pooling {
    mode: PoolingMode,
    hidden_size: usize,
    /// The scoring map of attention pooling; `None` for the other modes.
    attention: Option<Linear>,
}

impl Pooling {
    /// A pooling of `hidden_size`-wide states; attention pooling loads `attention.weight`
    /// `(1, hidden)` and `attention.bias` `(1)` from `vb`.
    pub fn new(mode: PoolingMode, hidden_size: usize, vb: VarBuilder) -> Result<Self> {
        let attention = match mode {
            PoolingMode::Attention => Some(Linear::new(hidden_size, 1, true, vb.pp("attention"))?),
            _ => None,
        };
        Ok(Self { mode, hidden_size, attention })
    }

    /// The mode.
    pub fn mode(&self) -> PoolingMode {
        self.mode
    }

    /// Pools `xs` over the positions where `mask` is 1 (every position when `mask` is `None`).
    ///
    /// # Errors
    /// A mask whose shape is not `(batch, seq)`, or a sequence with no unmasked position
    /// (its mean, maximum and attention are undefined).
    pub fn forward_masked(&self, xs: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let b = xs.dim(0)?;
        let m = self.mask(xs, mask)?; // (b, s), 0/1 in xs' dtype
        Ok(match self.mode {
            PoolingMode::Cls => xs.narrow(1, 0, 1)?.squeeze(1)?,
            PoolingMode::Mean => {
                let m3 = m.unsqueeze(D::Minus1)?; // (b, s, 1)
                xs.broadcast_mul(&m3)?.sum(1)?.broadcast_div(&m3.sum(1)?)?
            }
            PoolingMode::Max => masked_fill_lowest(xs, &m.unsqueeze(D::Minus1)?.broadcast_as(xs.shape())?)?.max(1)?,
            PoolingMode::Attention => {
                let scores = self.attention()?.forward(xs)?.squeeze(D::Minus1)?; // (b, s)
                let weights = masked_softmax(&scores, &m)?.unsqueeze(1)?; // (b, 1, s)
                weights.matmul(&xs.contiguous()?)?.reshape((b, self.hidden_size))?
            }
        })
    }

    /// The same pooling in float64 on the CPU, from the definition in differentiable tensor
    /// operations (so gradient checks can differentiate it): masked positions get weight 0 in
    /// the mean and in attention's softmax, and −∞'s stand-in −1e300 in the maximum.
    ///
    /// # Errors
    /// As [`Self::forward_masked`].
    pub fn forward_masked_reference(&self, xs: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let x = crate::to_f64_cpu(xs)?; // (b, s, h)
        let m = crate::to_f64_cpu(&self.mask(xs, mask)?)?.unsqueeze(2)?; // (b, s, 1), 1 = kept
        let hidden_out = match self.mode {
            PoolingMode::Cls => x.narrow(1, 0, 1)?.squeeze(1)?,
            PoolingMode::Mean => (x.broadcast_mul(&m)?.sum(1)?.broadcast_div(&m.sum(1)?))?,
            PoolingMode::Max => x.broadcast_add(&((m - 1.0)? * 1e300)?)?.max(1)?,
            PoolingMode::Attention => {
                let a = self.attention()?;
                let scores = a.forward_reference(&x)?; // (b, s, 1): x·w + b
                let scores = scores.broadcast_add(&((&m - 1.0)? * 1e300)?)?;
                let e = scores.broadcast_sub(&scores.max_keepdim(1)?)?.exp()?; // masked: exp(−1e300) = 0
                let alpha = e.broadcast_div(&e.sum_keepdim(1)?)?;
                x.broadcast_mul(&alpha)?.sum(1)?
            }
        };
        Ok(hidden_out)
    }

    /// The scoring map of attention pooling, which [`Self::new`] always loads for that mode.
    fn attention(&self) -> Result<&Linear> {
        self.attention.as_ref().ok_or_else(|| crate::error::config_err("pooling", "attention pooling without its weights"))
    }

    /// The mask as 0/1 in `xs`' dtype and device, after checking its shape and that every
    /// sequence keeps at least one position (all ones when `mask` is `None`).
    fn mask(&self, xs: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (b, s, h) = xs.dims3()?;
        let pooling_err = |reason: String| Error::InvalidInput { op: "pooling", reason };
        if s == 0 {
            return Err(pooling_err("the sequence is empty".into()));
        }
        if h != self.hidden_size {
            return Err(pooling_err(format!("hidden states are {h} wide, the pooling expects {}", self.hidden_size)));
        }
        let Some(mask) = mask else {
            return Ok(Tensor::ones((b, s), xs.dtype(), xs.device())?);
        };
        if mask.dims() != [b, s] {
            return Err(pooling_err(format!("the mask is {:?}, the hidden states need ({b}, {s})", mask.dims())));
        }
        let m = mask.to_dtype(DType::F64)?.ne(0.0)?.to_dtype(DType::F64)?;
        if self.mode != PoolingMode::Cls {
            let kept = m.sum(1)?.to_device(&Device::Cpu)?.to_vec1::<f64>()?;
            if let Some(i) = kept.iter().position(|&k| k == 0.0) {
                return Err(pooling_err(format!("sequence {i} is entirely masked, so its pooling is undefined")));
            }
        }
        Ok(m.to_dtype(xs.dtype())?.to_device(xs.device())?)
    }
}

/// `xs` where `m` is 1 and the dtype's lowest value elsewhere, so a masked position never wins
/// a maximum; a select rather than `xs + (m − 1)·big`, whose `0·∞` would be NaN in half
/// precision.
fn masked_fill_lowest(xs: &Tensor, m: &Tensor) -> candle_core::Result<Tensor> {
    let lowest = Tensor::new(f64::MIN, &Device::Cpu)?.to_dtype(xs.dtype())?.to_device(xs.device())?.broadcast_as(xs.shape())?;
    m.ne(0.0)?.where_cond(xs, &lowest)
}

/// Softmax over the last dimension restricted to positions where `m` is 1, composed of
/// differentiable operations. The shift is the maximum over kept positions only (a huge masked
/// score must not push the kept weights to 0/0), and masked scores are lowered to the lowest
/// value first, so their exponential underflows to 0.
fn masked_softmax(scores: &Tensor, m: &Tensor) -> candle_core::Result<Tensor> {
    let kept = masked_fill_lowest(scores, m)?;
    let e = kept.broadcast_sub(&kept.max_keepdim(D::Minus1)?.detach())?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

impl Module for Pooling {
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_masked(xs, None).map_err(candle_core::Error::wrap)
    }
}

impl Block for Pooling {
    fn kind(&self) -> BlockKind {
        match self.mode {
            PoolingMode::Cls => BlockKind::PoolingCls,
            PoolingMode::Mean => BlockKind::PoolingMean,
            PoolingMode::Max => BlockKind::PoolingMax,
            PoolingMode::Attention => BlockKind::PoolingAttention,
        }
    }

    fn dims(&self) -> Vec<(&'static str, usize)> {
        vec![("hidden_size", self.hidden_size)]
    }

    fn children(&self) -> Vec<crate::Child<'_>> {
        self.attention.iter().map(|a| crate::Child::part("attention", a)).collect()
    }

    fn rebuild(&self, vb: VarBuilder) -> Result<Box<dyn Block>> {
        Ok(Box::new(Pooling::new(self.mode, self.hidden_size, vb)?))
    }

    fn input_shape(&self, batch: usize, seq: usize) -> Vec<usize> {
        vec![batch, seq, self.hidden_size]
    }

    fn cost(&self, shape: &[usize]) -> Cost {
        // One pass over the states (two for attention: scores, then the weighted sum).
        let n = tokens(shape) * self.hidden_size as f64;
        let passes = if self.mode == PoolingMode::Attention { 4.0 } else { 1.0 };
        Cost { flops: passes * n, bytes: 4.0 * n }
    }

    fn forward_reference(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_masked_reference(xs, None).map_err(candle_core::Error::wrap)
    }
}
