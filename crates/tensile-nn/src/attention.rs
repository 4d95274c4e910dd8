//! Multi-head, grouped-query and multi-query attention with optional RoPE, causal or
//! padding masks, and a KV cache.

use crate::block::{bytes_of, softmax_reference, to_f64_cpu, Block, Child, Cost};
use crate::catalog::BlockKind;
use crate::error::config_err;
use crate::flash_attention::{self, Band, FlashAttention};
use crate::limits;
use crate::linear::Linear;
use crate::matmul_kernel::BatchedMatmul;
use crate::rotary::{validate_rope, RopeScaling, RotaryEmbedding};
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;

/// Shape and behaviour of an attention block.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionConfig {
    /// Model width.
    pub hidden_size: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads: equal to the query heads (MHA), fewer (GQA) or one (MQA).
    pub num_key_value_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Whether q/k/v/o projections carry a bias.
    pub attention_bias: bool,
    /// Causal (decoder) or bidirectional (encoder) attention.
    pub causal: bool,
    /// RoPE base and scaling; `None` for models with absolute position embeddings.
    pub rope: Option<(f64, Option<RopeScaling>)>,
}

impl AttentionConfig {
    /// Checks that every size is in `1..=MAX_DIM`, that the head counts fit together and that
    /// the RoPE numbers give finite frequencies, naming the field at fault.
    pub fn validate(&self) -> crate::Result<()> {
        for (field, v) in [
            ("hidden_size", self.hidden_size),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("head_dim", self.head_dim),
        ] {
            limits::dim(field, v)?;
        }
        if self.num_attention_heads % self.num_key_value_heads != 0 {
            return Err(config_err(
                "num_key_value_heads",
                format!("{} key/value heads do not divide {} attention heads", self.num_key_value_heads, self.num_attention_heads),
            ));
        }
        if self.rope.is_some() && self.head_dim % 2 != 0 {
            return Err(config_err("head_dim", format!("RoPE needs an even head_dim, got {}", self.head_dim)));
        }
        match &self.rope {
            Some((theta, scaling)) => validate_rope(*theta, scaling.as_ref()),
            None => Ok(()),
        }
    }
}

/// Keys and values of earlier positions, for incremental decoding.
///
/// # Shapes
/// `k, v: (batch, kv_heads, cached_len, head_dim)`
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    kv: Option<(Tensor, Tensor)>,
}

impl KvCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.kv.as_ref().map_or(0, |(k, _)| k.dim(2).unwrap_or(0))
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends new keys and values and returns all of them.
    fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let kv = match &self.kv {
            None => (k.clone(), v.clone()),
            Some((ck, cv)) => (Tensor::cat(&[ck, k], 2)?, Tensor::cat(&[cv, v], 2)?),
        };
        self.kv = Some(kv.clone());
        Ok(kv)
    }
}

/// Additive mask value: large and finite so a fully masked row yields zeros, not NaN.
pub(crate) const MASKED: f32 = -1e30;

/// The additive f32 mask of a key padding mask `(batch, keys)`: 1 keeps a key (0 added), 0
/// masks it ([`MASKED`] added), as `(1 − p) · MASKED`.
pub(crate) fn key_padding_mask(p: &Tensor) -> Result<Tensor> {
    (p.to_dtype(DType::F32)?.affine(-1.0, 1.0))? * f64::from(MASKED)
}

/// Attention over `x` with query, key, value and output projections, loaded under the
/// checkpoint's own names for them (`q_proj`, … in LLaMA).
#[derive(Debug, Clone)]
pub struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    names: [&'static str; 4],
    rotary: Option<RotaryEmbedding>,
    cfg: AttentionConfig,
}

impl Attention {
    /// LLaMA's names for the query, key, value and output projections.
    pub const LLAMA_NAMES: [&'static str; 4] = ["q_proj", "k_proj", "v_proj", "o_proj"];

    /// Loads `q_proj`, `k_proj`, `v_proj`, `o_proj` (LLaMA names) from `vb`.
    pub fn new(cfg: &AttentionConfig, vb: VarBuilder) -> crate::Result<Self> {
        Self::with_names(cfg, Self::LLAMA_NAMES, vb)
    }

    /// Loads the query, key, value and output projections from `vb` under `names`, which
    /// [`Block::parameters`] and [`Block::rebuild`] then use too (BERT's are
    /// `self.query`, `self.key`, `self.value`, `output.dense`).
    pub fn with_names(cfg: &AttentionConfig, names: [&'static str; 4], vb: VarBuilder) -> crate::Result<Self> {
        cfg.validate()?;
        let (h, q_out, kv_out) = (cfg.hidden_size, cfg.num_attention_heads * cfg.head_dim, cfg.num_key_value_heads * cfg.head_dim);
        let bias = cfg.attention_bias;
        let [q, k, v, o] = names;
        let rotary = cfg.rope.as_ref().map(|(theta, scaling)| RotaryEmbedding::new(cfg.head_dim, *theta, scaling.as_ref()));
        Ok(Self {
            q_proj: Linear::new(h, q_out, bias, vb.pp(q))?,
            k_proj: Linear::new(h, kv_out, bias, vb.pp(k))?,
            v_proj: Linear::new(h, kv_out, bias, vb.pp(v))?,
            o_proj: Linear::new(q_out, h, bias, vb.pp(o))?,
            names,
            rotary,
            cfg: cfg.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &AttentionConfig {
        &self.cfg
    }

    /// Projects `x` to heads: `(b, s, hidden) → (b, heads, s, head_dim)`.
    fn heads(x: &Tensor, heads: usize, head_dim: usize) -> Result<Tensor> {
        let (b, s, _) = x.dims3()?;
        x.reshape((b, s, heads, head_dim))?.transpose(1, 2)?.contiguous()
    }

    /// Additive mask `(b or 1, 1, 1, s, t)` in f32 for queries at positions
    /// `offset..offset + s` over `t` keys, combining causality and key padding.
    fn mask(&self, s: usize, t: usize, padding: Option<&Tensor>, dev: &Device) -> Result<Option<Tensor>> {
        let offset = t - s;
        // A single query at the end of the sequence sees every key, so it needs no causal mask.
        let causal = if self.cfg.causal && s > 1 {
            let m: Vec<f32> = (0..s).flat_map(|i| (0..t).map(move |j| if j > offset + i { MASKED } else { 0.0 })).collect();
            Some(Tensor::from_vec(m, (1, 1, 1, s, t), dev)?)
        } else {
            None
        };
        let padding = match padding {
            Some(p) => Some(key_padding_mask(p)?.reshape((p.dim(0)?, 1, 1, 1, t))?),
            None => None,
        };
        Ok(match (causal, padding) {
            (Some(c), Some(p)) => Some(c.broadcast_add(&p)?),
            (c, p) => c.or(p),
        })
    }

    /// Fast attention with an optional key padding mask `(batch, keys)` (1 = keep) and KV cache.
    ///
    /// Grouped-query attention never repeats K/V: the `rep = heads / kv_heads` queries that
    /// share a key/value head are stacked along the sequence axis and meet K/V in one matmul.
    /// On the CPU, without padding or attention dropout, the tiled kernel of
    /// `flash_attention` replaces the scores, the softmax and the second product.
    ///
    /// # Shapes
    /// `x: (batch, seq, hidden) → (batch, seq, hidden)`
    pub fn forward_with(&self, x: &Tensor, padding: Option<&Tensor>, cache: Option<&mut KvCache>) -> Result<Tensor> {
        let c = &self.cfg;
        let (b, s, _) = x.dims3()?;
        let (h, kvh, d) = (c.num_attention_heads, c.num_key_value_heads, c.head_dim);
        let rep = h / kvh;
        let offset = cache.as_ref().map_or(0, |c| c.len());
        let mut q = Self::heads(&self.q_proj.forward(x)?, h, d)?; // (b, h, s, d)
        let mut k = Self::heads(&self.k_proj.forward(x)?, kvh, d)?; // (b, kvh, s, d)
        let mut v = Self::heads(&self.v_proj.forward(x)?, kvh, d)?;
        if let Some(rope) = &self.rotary {
            q = rope.forward(&q, offset)?;
            k = rope.forward(&k, offset)?;
        }
        if let Some(cache) = cache {
            (k, v) = cache.append(&k, &v)?;
        }
        let t = k.dim(2)?;
        let scale = (d as f64).powf(-0.5);
        if flash_attention::applies(&q, padding.is_some()) {
            // Tiled: only the keys each query tile can see are multiplied, K/V read once per group.
            let band = if c.causal { Band::CAUSAL } else { Band::FULL };
            let out = FlashAttention::apply(&q, &k, &v, scale, band)?; // (b, h, s, d)
            return self.o_proj.forward(&out.transpose(1, 2)?.reshape((b, s, h * d))?);
        }
        let q = q.reshape((b, kvh, rep * s, d))?; // query heads grouped by their K/V head
                                                  // With padding or attention dropout: scores, an additive mask and a softmax in f32 (for
                                                  // half-precision inputs too, as PyTorch's eager attention does).
        let scores = (BatchedMatmul::nt(&q, &k)? * scale)?; // (b, kvh, rep·s, t)
        let mut scores = scores.to_dtype(DType::F32)?.reshape((b, kvh, rep, s, t))?;
        if let Some(mask) = self.mask(s, t, padding, x.device())? {
            scores = scores.broadcast_add(&mask)?;
        }
        let probs = crate::training::softmax_last_dim(&scores)?;
        let probs = crate::training::dropout(&probs, crate::training::DropoutSite::Attention)?.to_dtype(x.dtype())?;
        let out = BatchedMatmul::nn(&probs.reshape((b, kvh, rep * s, t))?, &v)?; // (b, kvh, rep·s, d)
        let out = out.reshape((b, h, s, d))?.transpose(1, 2)?.reshape((b, s, h * d))?;
        self.o_proj.forward(&out)
    }

    /// Float64 reference with explicit K/V repetition, `-inf` masking and a written-out softmax.
    ///
    /// Queries sit at positions `offset..offset + seq`; `x` holds only those positions, so a
    /// reference for a cached decode step is computed on the whole sequence instead.
    pub fn forward_reference_with(&self, x: &Tensor, padding: Option<&Tensor>) -> Result<Tensor> {
        let c = &self.cfg;
        let x = to_f64_cpu(x)?;
        let (b, s, _) = x.dims3()?;
        let (h, kvh, d) = (c.num_attention_heads, c.num_key_value_heads, c.head_dim);
        let heads = |proj: &Linear, n: usize| -> Result<Tensor> { Self::heads(&proj.forward_reference(&x)?, n, d) };
        let (mut q, mut k, v) = (heads(&self.q_proj, h)?, heads(&self.k_proj, kvh)?, heads(&self.v_proj, kvh)?);
        if let Some(rope) = &self.rotary {
            q = rope.forward_reference(&q, 0)?;
            k = rope.forward_reference(&k, 0)?;
        }
        // Head j reads K/V head j / rep, as Hugging Face's `repeat_kv` arranges it.
        let repeat = |t: &Tensor| -> Result<Tensor> {
            let idx: Vec<u32> = (0..h).map(|j| (j / (h / kvh)) as u32).collect();
            t.index_select(&Tensor::new(idx, &Device::Cpu)?, 1)
        };
        let (k, v) = (repeat(&k)?, repeat(&v)?);
        let mut scores = (q.matmul(&k.t()?)? / (d as f64).sqrt())?; // (b, h, s, s)
        let mut mask = vec![0f64; b * s * s];
        let keep = match padding {
            Some(p) => p.to_dtype(DType::F64)?.to_device(&Device::Cpu)?.to_vec2::<f64>()?,
            None => vec![vec![1.0; s]; b],
        };
        for bi in 0..b {
            for i in 0..s {
                for j in 0..s {
                    if (c.causal && j > i) || keep[bi][j] == 0.0 {
                        mask[(bi * s + i) * s + j] = f64::NEG_INFINITY;
                    }
                }
            }
        }
        scores = scores.broadcast_add(&Tensor::from_vec(mask, (b, 1, s, s), &Device::Cpu)?)?;
        let out = softmax_reference(&scores)?.matmul(&v)?; // (b, h, s, d)
        let out = out.transpose(1, 2)?.reshape((b, s, h * d))?;
        self.o_proj.forward_reference(&out)
    }
}

impl Module for Attention {
    /// Attention at positions `0..seq` without padding or cache.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_with(xs, None, None)
    }
}

impl Block for Attention {
    fn dims(&self) -> Vec<(&'static str, usize)> {
        let c = &self.cfg;
        vec![
            ("hidden_size", c.hidden_size),
            ("num_attention_heads", c.num_attention_heads),
            ("num_key_value_heads", c.num_key_value_heads),
            ("head_dim", c.head_dim),
        ]
    }

    /// [`BlockKind::LlamaAttention`] when causal with RoPE, [`BlockKind::Attention`] otherwise.
    fn kind(&self) -> BlockKind {
        if self.cfg.rope.is_some() && self.cfg.causal {
            BlockKind::LlamaAttention
        } else {
            BlockKind::Attention
        }
    }

    fn children(&self) -> Vec<Child<'_>> {
        let [q, k, v, o] = self.names;
        vec![Child::part(q, &self.q_proj), Child::part(k, &self.k_proj), Child::part(v, &self.v_proj), Child::part(o, &self.o_proj)]
    }

    fn rebuild(&self, vb: VarBuilder) -> crate::Result<Box<dyn Block>> {
        Ok(Box::new(Attention::with_names(&self.cfg, self.names, vb)?))
    }

    fn input_shape(&self, batch: usize, seq: usize) -> Vec<usize> {
        vec![batch, seq, self.cfg.hidden_size]
    }

    /// Projections plus `QKᵀ` and `PV` over the full (unmasked) score matrix, which is what
    /// the fast path computes, and the traffic of the f32 score matrix as the fast path moves
    /// it: written by `QKᵀ`, read and written by the scaling, by the mask (when there is one)
    /// and by the softmax, and read by `PV`; plus the `(s, t)` causal mask, built and copied.
    /// That traffic grows as `seq²` even where the FLOPs are still dominated by the `seq`
    /// projections, and on a CPU it often sets the time.
    fn cost(&self, shape: &[usize]) -> Cost {
        let c = &self.cfg;
        let (b, s) = (shape[0] as f64, shape[1] as f64);
        let (h, d) = (c.num_attention_heads as f64, c.head_dim as f64);
        // A linear layer's cost reads only the token count from a shape, and o_proj sees as
        // many tokens as the input.
        let proj = self.q_proj.cost(shape) + self.k_proj.cost(shape) + self.v_proj.cost(shape) + self.o_proj.cost(shape);
        let scores = b * h * s * s;
        let masked = c.causal && s > 1.0;
        let passes = if masked { 8.0 } else { 6.0 };
        let mask = if masked { 2.0 * bytes_of(s * s, DType::F32) } else { 0.0 };
        let core = Cost { flops: 4.0 * scores * d + 5.0 * scores, bytes: passes * bytes_of(scores, DType::F32) + mask };
        proj + core
    }

    fn forward_reference(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_reference_with(xs, None)
    }
}
