//! Seeded, reproducible weights and inputs.
//!
//! candle's CPU random generator cannot be seeded, so every random tensor in tensile comes from
//! a ChaCha stream whose seed is derived from a user seed and the tensor's name. A tensor's
//! values therefore depend only on `(seed, name, shape)`, never on the order in which a model
//! asks for its parameters.

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// A 64-bit FNV-1a hash: stable across platforms and Rust versions, unlike `DefaultHasher`.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The ChaCha generator for tensor `name` under `seed`.
pub fn rng_for(seed: u64, name: &str) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ fnv1a(name.as_bytes()))
}

/// `n` standard-normal samples from `rng`.
pub fn normal_samples(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| StandardNormal.sample(rng)).collect()
}

/// A standard-normal tensor of `shape`, reproducible from `(seed, name)`.
pub fn randn(seed: u64, name: &str, shape: impl Into<Shape>, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
    let shape = shape.into();
    let values = normal_samples(&mut rng_for(seed, name), shape.elem_count());
    Tensor::from_vec(values, shape, &Device::Cpu)?.to_dtype(dtype)?.to_device(dev)
}

/// Random token ids in `0..vocab`, reproducible from `(seed, name)`.
pub fn random_ids(seed: u64, name: &str, shape: impl Into<Shape>, vocab: usize, dev: &Device) -> candle_core::Result<Tensor> {
    use rand::Rng;
    let shape = shape.into();
    let mut rng = rng_for(seed, name);
    let ids: Vec<u32> = (0..shape.elem_count()).map(|_| rng.random_range(0..vocab as u32)).collect();
    Tensor::from_vec(ids, shape, dev)
}

/// A [`VarBuilder`] backend that invents every requested parameter from a seed.
///
/// Scales follow the usual initialisation so activations stay O(1) through deep stacks:
/// matrices are `N(0, 1/fan_in)`, norm weights `1 + 0.1·N(0, 1)` and biases `0.1·N(0, 1)`.
#[derive(Debug, Clone, Copy)]
pub struct SeededInit {
    seed: u64,
}

impl SeededInit {
    /// A backend drawing from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { seed }
    }

    /// A [`VarBuilder`] over this backend.
    pub fn var_builder(seed: u64, dtype: DType, dev: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(Self::new(seed)), dtype, dev.clone())
    }

    fn values(&self, shape: &Shape, name: &str) -> Vec<f32> {
        let mut rng = rng_for(self.seed, name);
        let raw = normal_samples(&mut rng, shape.elem_count());
        let dims = shape.dims();
        if dims.len() >= 2 {
            let fan_in = dims[1..].iter().product::<usize>().max(1) as f32;
            // PEFT starts LoRA's B at zero and training moves it a little: drawn at a tenth of
            // the usual scale, an adapter perturbs its layer as a trained one does instead of
            // dominating it (which would make the layer far more sensitive to rounding).
            let role = if name.contains("lora_B") { 0.1 } else { 1.0 };
            let scale = role * fan_in.sqrt().recip();
            raw.into_iter().map(|v| v * scale).collect()
        } else if name.ends_with("bias") {
            raw.into_iter().map(|v| 0.1 * v).collect()
        } else {
            raw.into_iter().map(|v| 1.0 + 0.1 * v).collect()
        }
    }
}

impl SimpleBackend for SeededInit {
    fn get(&self, s: Shape, name: &str, _h: candle_nn::Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let values = self.values(&s, name);
        Tensor::from_vec(values, s, &Device::Cpu)?.to_dtype(dtype)?.to_device(dev)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("seeded init cannot invent `{name}` without a shape")
    }

    fn contains_tensor(&self, _name: &str) -> bool {
        true
    }
}

/// A [`VarBuilder`] backend whose parameters take no memory: each is one zero broadcast to the
/// requested shape (stride 0), so a block of any size can be built to ask for its shapes, its
/// parameter count, its cost model and its input shape before anything is allocated — what
/// parsing, listing, planning and admission control need. Its forward computes on zeros and
/// is never what a check measures.
#[derive(Debug, Clone, Copy, Default)]
pub struct MetaInit;

impl MetaInit {
    /// A [`VarBuilder`] over this backend.
    pub fn var_builder(dtype: DType, dev: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(Self), dtype, dev.clone())
    }
}

impl SimpleBackend for MetaInit {
    fn get(&self, s: Shape, _name: &str, _h: candle_nn::Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        Tensor::zeros((), dtype, dev)?.broadcast_as(s)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("meta init cannot invent `{name}` without a shape")
    }

    fn contains_tensor(&self, _name: &str) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_parameters_have_their_shape_but_no_storage() {
        let vb = MetaInit::var_builder(DType::F32, &Device::Cpu);
        let w = vb.get((4096, 14336), "gate_proj.weight").unwrap();
        assert_eq!(w.dims(), [4096, 14336]);
        assert_eq!(w.stride(), [0, 0], "a broadcast view, not 235 MB of zeros");
        assert_eq!(w.sum_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
    }

    #[test]
    fn same_seed_and_name_give_same_values() {
        let a = randn(7, "x", (3, 4), DType::F32, &Device::Cpu).unwrap();
        let b = randn(7, "x", (3, 4), DType::F32, &Device::Cpu).unwrap();
        let c = randn(7, "y", (3, 4), DType::F32, &Device::Cpu).unwrap();
        let (a, b, c) = (
            a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            b.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            c.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn init_scales_follow_parameter_role() {
        let init = SeededInit::new(1);
        let w = init.values(&Shape::from((64, 400)), "q_proj.weight");
        let var = w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32;
        assert!((var * 400.0 - 1.0).abs() < 0.1, "matrix variance {var}");
        let b = init.values(&Shape::from((400, 64)), "q_proj.lora_B.default.weight");
        let var = b.iter().map(|v| v * v).sum::<f32>() / b.len() as f32;
        assert!((var * 64.0 / 0.01 - 1.0).abs() < 0.1, "LoRA B variance {var}");
        let g = init.values(&Shape::from(1000), "norm.weight");
        let mean = g.iter().sum::<f32>() / g.len() as f32;
        assert!((mean - 1.0).abs() < 0.02, "norm weight mean {mean}");
        let b = init.values(&Shape::from(1000), "q_proj.bias");
        let mean = b.iter().sum::<f32>() / b.len() as f32;
        assert!(mean.abs() < 0.02, "bias mean {mean}");
    }

    #[test]
    fn random_ids_stay_in_vocab() {
        let ids = random_ids(3, "ids", (2, 50), 17, &Device::Cpu).unwrap();
        let v = ids.flatten_all().unwrap().to_vec1::<u32>().unwrap();
        assert!(v.iter().all(|&i| i < 17));
        assert!(v.iter().any(|&i| i > 0));
    }
}
