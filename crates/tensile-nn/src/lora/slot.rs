//! The adapters one linear layer carries: `y = x Wᵀ + b + Σ_active s · (dropout(x) Aᵀ) Bᵀ`.

use crate::block::to_f64_cpu;
use candle_core::{DType, Result, Tensor};
use candle_nn::VarBuilder;
use rand::Rng;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// One adapter's low-rank pair and how it is applied.
///
/// # Shapes
/// `a: (r, in)`, `b: (out, r)`: the update is `ΔW = scaling · B A`, shaped like `W`.
#[derive(Debug, Clone)]
pub struct LoraWeights {
    /// `lora_A`, `(r, in)`.
    pub a: Tensor,
    /// `lora_B`, `(out, r)`.
    pub b: Tensor,
    /// `lora_alpha / r`, or `lora_alpha / √r` with rsLoRA.
    pub scaling: f64,
    /// Probability of zeroing an input element before `A`, in training only.
    pub dropout: f32,
}

impl LoraWeights {
    /// The rank `r`.
    pub fn rank(&self) -> usize {
        self.a.dims().first().copied().unwrap_or(0)
    }

    /// `scaling · B A` in f32, shaped `(out, in)`.
    pub fn delta(&self) -> Result<Tensor> {
        self.b.to_dtype(DType::F32)?.matmul(&self.a.to_dtype(DType::F32)?)? * self.scaling
    }
}

/// Adapters by name, which of them are active, which are merged into the base weight, and
/// whether the layer is in training mode (dropout on).
#[derive(Debug, Clone, Default)]
pub struct LoraSlot {
    pub(crate) adapters: BTreeMap<String, LoraWeights>,
    pub(crate) active: Vec<String>,
    pub(crate) merged: Vec<String>,
    pub(crate) disabled: bool,
    pub(crate) training: bool,
    /// Seed and call counter of the dropout masks, shared by clones so that two calls never
    /// draw the same mask while a given seed always replays the same sequence.
    pub(crate) dropout_seed: u64,
    pub(crate) dropout_calls: Arc<AtomicU64>,
}

impl LoraSlot {
    /// Whether the layer carries no adapter at all.
    pub fn is_empty(&self) -> bool {
        self.adapters.is_empty()
    }

    /// The largest rank among the adapters.
    pub fn max_rank(&self) -> Option<usize> {
        self.adapters.values().map(LoraWeights::rank).max()
    }

    /// Adapters that take part in the forward: active, not merged, and not disabled.
    fn applied(&self) -> impl Iterator<Item = &LoraWeights> {
        let on = !self.disabled;
        self.active.iter().filter(move |n| on && !self.merged.contains(n)).filter_map(|n| self.adapters.get(n))
    }

    /// The summed rank of the adapters the forward applies.
    pub fn active_rank(&self) -> usize {
        self.applied().map(LoraWeights::rank).sum()
    }

    /// Bytes of every adapter's `A` and `B`.
    pub fn bytes(&self) -> usize {
        self.adapters.values().map(|w| (w.a.elem_count() + w.b.elem_count()) * w.a.dtype().size_in_bytes()).sum()
    }

    /// `lora_A.{name}.weight` and `lora_B.{name}.weight` of every adapter.
    pub fn parameters(&self) -> Vec<(String, Tensor)> {
        self.adapters.iter().flat_map(|(n, w)| [(format!("lora_A.{n}.weight"), w.a.clone()), (format!("lora_B.{n}.weight"), w.b.clone())]).collect()
    }

    /// `y` plus every applied adapter's contribution on `x`.
    pub fn forward(&self, x: &Tensor, mut y: Tensor) -> Result<Tensor> {
        for w in self.applied() {
            let xa = x.to_dtype(w.a.dtype())?;
            let xa = if self.training && w.dropout > 0.0 { self.dropout(&xa, w.dropout)? } else { xa };
            let delta = (crate::linear::matmul_t(&crate::linear::matmul_t(&xa, &w.a, None)?, &w.b, None)? * w.scaling)?;
            let delta = delta.to_dtype(y.dtype())?;
            y = (y + delta)?;
        }
        Ok(y)
    }

    /// The same as [`LoraSlot::forward`] in float64 without dropout, on a float64 `x` and `y`.
    pub fn forward_reference(&self, x: &Tensor, mut y: Tensor) -> Result<Tensor> {
        for w in self.applied() {
            let (a, b) = (to_f64_cpu(&w.a)?, to_f64_cpu(&w.b)?);
            y = (y + (x.broadcast_matmul(&a.t()?)?.broadcast_matmul(&b.t()?)? * w.scaling)?)?;
        }
        Ok(y)
    }

    /// Inverted dropout with the slot's seeded mask stream: each kept element is scaled by
    /// `1 / (1 − p)` so the expectation is unchanged.
    fn dropout(&self, x: &Tensor, p: f32) -> Result<Tensor> {
        let call = self.dropout_calls.fetch_add(1, Ordering::Relaxed);
        let mut rng = crate::init::rng_for(self.dropout_seed ^ call.wrapping_mul(0x9e37_79b9_7f4a_7c15), "lora-dropout");
        let keep = 1.0 / (1.0 - f64::from(p));
        let mask: Vec<f32> = (0..x.elem_count()).map(|_| if rng.random::<f32>() < p { 0.0 } else { keep as f32 }).collect();
        x * Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?
    }

    /// The same adapters and states with `A` and `B` loaded again from `vb` in `dtype` (after
    /// a rebuild onto new tensors, another dtype or gradient variables).
    pub(crate) fn reloaded(&self, vb: &VarBuilder, dtype: DType) -> crate::Result<Self> {
        let mut out = Self { adapters: BTreeMap::new(), dropout_calls: Arc::new(AtomicU64::new(0)), ..self.clone() };
        for (name, w) in &self.adapters {
            let a = vb.get(w.a.shape(), &format!("lora_A.{name}.weight"))?.to_dtype(dtype)?;
            let b = vb.get(w.b.shape(), &format!("lora_B.{name}.weight"))?.to_dtype(dtype)?;
            out.adapters.insert(name.clone(), LoraWeights { a, b, ..w.clone() });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn slot(scaling: f64, dropout: f32) -> LoraSlot {
        let dev = Device::Cpu;
        let a = Tensor::new(&[[1f32, 0.0, 2.0]], &dev).unwrap(); // r = 1, in = 3
        let b = Tensor::new(&[[1f32], [-1.0]], &dev).unwrap(); // out = 2
        let mut s = LoraSlot::default();
        s.adapters.insert("x".into(), LoraWeights { a, b, scaling, dropout });
        s.active = vec!["x".into()];
        s
    }

    #[test]
    fn an_active_adapter_adds_its_scaled_low_rank_product() {
        let s = slot(0.5, 0.0);
        let x = Tensor::new(&[[1f32, 1.0, 1.0]], &Device::Cpu).unwrap();
        // x Aᵀ = 3; times Bᵀ = (3, -3); times 0.5 = (1.5, -1.5).
        let y = s.forward(&x, Tensor::zeros((1, 2), DType::F32, &Device::Cpu).unwrap()).unwrap();
        assert_eq!(y.to_vec2::<f32>().unwrap(), vec![vec![1.5, -1.5]]);
        assert_eq!(s.delta_sum().unwrap(), vec![vec![0.5, 0.0, 1.0], vec![-0.5, 0.0, -1.0]]);
        assert_eq!((s.active_rank(), s.max_rank(), s.bytes()), (1, Some(1), 20));
    }

    #[test]
    fn disabled_merged_or_inactive_adapters_add_nothing() {
        let x = Tensor::new(&[[1f32, 1.0, 1.0]], &Device::Cpu).unwrap();
        let zero = || Tensor::zeros((1, 2), DType::F32, &Device::Cpu).unwrap();
        for change in [|s: &mut LoraSlot| s.disabled = true, |s: &mut LoraSlot| s.merged = vec!["x".into()], |s: &mut LoraSlot| s.active.clear()] {
            let mut s = slot(1.0, 0.0);
            change(&mut s);
            assert_eq!(s.forward(&x, zero()).unwrap().to_vec2::<f32>().unwrap(), vec![vec![0.0, 0.0]]);
            assert_eq!(s.active_rank(), 0);
        }
    }

    #[test]
    fn dropout_applies_only_in_training_and_keeps_the_expectation() {
        let mut s = slot(1.0, 0.5);
        let x = Tensor::ones((4000, 3), DType::F32, &Device::Cpu).unwrap();
        let zero = Tensor::zeros((4000, 2), DType::F32, &Device::Cpu).unwrap();
        let eval = s.forward(&x, zero.clone()).unwrap().to_vec2::<f32>().unwrap();
        assert!(eval.iter().all(|r| r[0] == 3.0));
        s.training = true;
        let a = s.forward(&x, zero.clone()).unwrap().to_vec2::<f32>().unwrap();
        let b = s.forward(&x, zero).unwrap().to_vec2::<f32>().unwrap();
        assert_ne!(a, b, "two calls draw two masks");
        let mean = a.iter().map(|r| f64::from(r[0])).sum::<f64>() / 4000.0;
        // Each row is 2·(m0 + 2·m2) with m ∈ {0, 1} at p = 0.5: mean 3, sd per row ≈ 2.2, so
        // the mean of 4000 rows lies within 0.2 of 3 with overwhelming probability.
        assert!((mean - 3.0).abs() < 0.2, "{mean}");
        assert!(a.iter().any(|r| r[0] == 0.0) && a.iter().any(|r| r[0] == 6.0));
    }

    impl LoraSlot {
        fn delta_sum(&self) -> Result<Vec<Vec<f32>>> {
            self.adapters.values().next().unwrap().delta()?.to_vec2()
        }
    }
}
