//! ModernBERT's self-attention: one fused QKV projection, RoPE, and global or sliding-window
//! bidirectional attention.

use super::{LayerAttention, ModernBertConfig};
use crate::attention::{key_padding_mask, MASKED};
use crate::block::{bytes_of, softmax_reference, to_f64_cpu, Block, Child, Cost};
use crate::catalog::BlockKind;
use crate::flash_attention::{self, Band, FlashAttention};
use crate::linear::Linear;
use crate::matmul_kernel::BatchedMatmul;
use crate::rotary::RotaryEmbedding;
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;

/// `Wo(softmax(q kᵀ / √d + mask) v)` with `q, k, v` split from `Wqkv(x)` and rotated by RoPE,
/// loading Hugging Face `ModernBertAttention` names (`Wqkv`, `Wo`).
///
/// A local layer masks every key more than `local_attention / 2` positions from the query,
/// on both sides; a global layer masks none. A padding mask hides padded keys.
///
/// # Shapes
/// `(batch, seq, hidden) → (batch, seq, hidden)`; padding mask `(batch, seq)`, 1 = token
#[derive(Debug, Clone)]
pub struct ModernBertAttention {
    wqkv: Linear,
    wo: Linear,
    rotary: RotaryEmbedding,
    pattern: LayerAttention,
    layer_idx: usize,
    cfg: ModernBertConfig,
}

impl ModernBertAttention {
    /// Loads `Wqkv` and `Wo` of layer `layer_idx` (whose index decides global or local).
    pub fn new(cfg: &ModernBertConfig, layer_idx: usize, vb: VarBuilder) -> crate::Result<Self> {
        cfg.validate_attention()?;
        let h = cfg.hidden_size;
        let pattern = cfg.layer_attention(layer_idx);
        Ok(Self {
            wqkv: Linear::new(h, 3 * h, cfg.attention_bias, vb.pp("Wqkv"))?,
            wo: Linear::new(h, h, cfg.attention_bias, vb.pp("Wo"))?,
            rotary: RotaryEmbedding::new(cfg.head_dim(), pattern.rope_theta, None),
            pattern,
            layer_idx,
            cfg: cfg.clone(),
        })
    }

    /// Global or windowed, and the RoPE base.
    pub fn pattern(&self) -> LayerAttention {
        self.pattern
    }

    /// Splits `Wqkv(x)` into query, key and value heads, each `(b, heads, s, d)`.
    fn split(qkv: &Tensor, heads: usize, d: usize) -> Result<[Tensor; 3]> {
        let (b, s, _) = qkv.dims3()?;
        let qkv = qkv.reshape((b, s, 3, heads, d))?; // (b, s, 3, heads, d), as transformers views it
        let part = |i: usize| qkv.narrow(2, i, 1)?.squeeze(2)?.transpose(1, 2)?.contiguous();
        Ok([part(0)?, part(1)?, part(2)?])
    }

    /// Whether query `i` may see key `j` under the window (padding aside).
    fn in_window(&self, i: usize, j: usize) -> bool {
        self.pattern.window.is_none_or(|half| i.abs_diff(j) <= half)
    }

    /// Additive mask `(b or 1, 1, s, s)` in f32: the window and the key padding.
    fn mask(&self, s: usize, padding: Option<&Tensor>, dev: &Device) -> Result<Option<Tensor>> {
        let window = match self.pattern.window {
            Some(half) if half + 1 < s => {
                let m: Vec<f32> = (0..s).flat_map(|i| (0..s).map(move |j| if self.in_window(i, j) { 0.0 } else { MASKED })).collect();
                Some(Tensor::from_vec(m, (1, 1, s, s), dev)?)
            }
            // A window that reaches past both ends hides nothing.
            _ => None,
        };
        let padding = match padding {
            Some(p) => Some(key_padding_mask(p)?.reshape((p.dim(0)?, 1, 1, s))?),
            None => None,
        };
        Ok(match (window, padding) {
            (Some(w), Some(p)) => Some(w.broadcast_add(&p)?),
            (w, p) => w.or(p),
        })
    }

    /// Fast attention with an optional key padding mask `(batch, seq)` (1 = keep).
    ///
    /// # Shapes
    /// `x: (batch, seq, hidden) → (batch, seq, hidden)`
    pub fn forward_with(&self, x: &Tensor, padding: Option<&Tensor>) -> Result<Tensor> {
        let (b, s, hidden) = x.dims3()?;
        let (h, d) = (self.cfg.num_attention_heads, self.cfg.head_dim());
        let [q, k, v] = Self::split(&self.wqkv.forward(x)?, h, d)?; // each (b, h, s, d)
        let (q, k) = (self.rotary.forward(&q, 0)?, self.rotary.forward(&k, 0)?);
        if flash_attention::applies(&q, padding.is_some()) {
            // Tiled: a local layer multiplies only the keys inside each query tile's window.
            let band = self.pattern.window.map_or(Band::FULL, Band::window);
            let out = FlashAttention::apply(&q, &k, &v, (d as f64).powf(-0.5), band)?; // (b, h, s, d)
            return self.wo.forward(&out.transpose(1, 2)?.reshape((b, s, hidden))?);
        }
        let scores = (BatchedMatmul::nt(&q, &k)? * (d as f64).powf(-0.5))?; // (b, h, s, s)
                                                                            // Softmax in f32 for half-precision inputs, as PyTorch's eager attention does.
        let mut scores = scores.to_dtype(DType::F32)?;
        if let Some(mask) = self.mask(s, padding, x.device())? {
            scores = scores.broadcast_add(&mask)?;
        }
        let probs = crate::training::softmax_last_dim(&scores)?;
        let probs = crate::training::dropout(&probs, crate::training::DropoutSite::Attention)?.to_dtype(x.dtype())?;
        let out = BatchedMatmul::nn(&probs, &v)?; // (b, h, s, d)
        self.wo.forward(&out.transpose(1, 2)?.reshape((b, s, hidden))?)
    }

    /// Float64 twin of [`ModernBertAttention::forward_with`]: `-inf` masking written out per
    /// query and key, and a written-out softmax.
    pub fn forward_reference_with(&self, x: &Tensor, padding: Option<&Tensor>) -> Result<Tensor> {
        let x = to_f64_cpu(x)?;
        let (b, s, hidden) = x.dims3()?;
        let (h, d) = (self.cfg.num_attention_heads, self.cfg.head_dim());
        let [q, k, v] = Self::split(&self.wqkv.forward_reference(&x)?, h, d)?;
        let (q, k) = (self.rotary.forward_reference(&q, 0)?, self.rotary.forward_reference(&k, 0)?);
        let scores = (q.matmul(&k.t()?)? / (d as f64).sqrt())?; // (b, h, s, s)
        let keep = match padding {
            Some(p) => p.to_dtype(DType::F64)?.to_device(&Device::Cpu)?.to_vec2::<f64>()?,
            None => vec![vec![1.0; s]; b],
        };
        let mut mask = vec![0f64; b * s * s];
        for (bi, row) in keep.iter().enumerate() {
            for i in 0..s {
                for j in 0..s {
                    if !self.in_window(i, j) || row[j] == 0.0 {
                        mask[(bi * s + i) * s + j] = f64::NEG_INFINITY;
                    }
                }
            }
        }
        let scores = scores.broadcast_add(&Tensor::from_vec(mask, (b, 1, s, s), &Device::Cpu)?)?;
        let out = softmax_reference(&scores)?.matmul(&v)?; // (b, h, s, d)
        self.wo.forward_reference(&out.transpose(1, 2)?.reshape((b, s, hidden))?)
    }
}

impl Module for ModernBertAttention {
    /// Attention without padding.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_with(xs, None)
    }
}

impl Block for ModernBertAttention {
    fn kind(&self) -> BlockKind {
        BlockKind::ModernBertAttention
    }

    fn dims(&self) -> Vec<(&'static str, usize)> {
        let window = self.pattern.window.map_or(0, |half| 2 * half);
        vec![("hidden_size", self.cfg.hidden_size), ("num_attention_heads", self.cfg.num_attention_heads), ("local_attention", window)]
    }

    fn children(&self) -> Vec<Child<'_>> {
        vec![Child::part("Wqkv", &self.wqkv), Child::part("Wo", &self.wo)]
    }

    fn rebuild(&self, vb: VarBuilder) -> crate::Result<Box<dyn Block>> {
        Ok(Box::new(ModernBertAttention::new(&self.cfg, self.layer_idx, vb)?))
    }

    fn input_shape(&self, batch: usize, seq: usize) -> Vec<usize> {
        vec![batch, seq, self.cfg.hidden_size]
    }

    /// The projections plus `QKᵀ` and `PV` over the full score matrix (the fast path computes
    /// every score even in a window); its bytes are the scores' passes: written by `QKᵀ`, read
    /// and written by the scaling, by the mask (when there is one) and by the softmax, read
    /// by `PV`.
    fn cost(&self, shape: &[usize]) -> Cost {
        let (b, s) = (shape[0] as f64, shape[1] as f64);
        let (h, d) = (self.cfg.num_attention_heads as f64, self.cfg.head_dim() as f64);
        let scores = b * h * s * s;
        let masked = self.pattern.window.is_some_and(|half| (half + 1) < shape[1]);
        let passes = if masked { 8.0 } else { 6.0 };
        let mask = if masked { bytes_of(s * s, DType::F32) } else { 0.0 };
        let core = Cost { flops: 4.0 * scores * d + 5.0 * scores, bytes: passes * bytes_of(scores, DType::F32) + mask };
        self.children_cost(shape) + core
    }

    fn forward_reference(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_reference_with(xs, None)
    }
}
