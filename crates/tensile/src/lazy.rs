//! [`LazyModule`]: a module whose weights exist only while a case runs.
//!
//! Spec files can declare tests of 8B-scale layers by the dozen. Building every module's
//! weights while parsing would make `tensile coverage` or a typo check allocate gigabytes, and
//! a run would hold every case's weights at once. A lazy module instead answers everything the
//! plan needs (kind, input shape, cost model, parameter count, configuration numbers) from a
//! *meta* build whose parameters are zero-stride views ([`MetaInit`]), and builds the real,
//! seeded weights in the case's dtype on the case's device when the runner asks
//! ([`ModuleUnderTest::materialize`]); they are freed when the case ends. A spec file's block
//! is one ([`LazyModule::from_config`]); so is each tested part of a built-in preset.
//!
//! ```
//! use tensile::lazy::LazyModule;
//! use tensile::ModuleUnderTest;
//! use tensile_nn::BlockKind;
//!
//! // An 8B-scale MLP: 176 million parameters, none of them allocated.
//! let cfg = serde_json::json!({ "hidden_size": 4096, "intermediate_size": 14336 });
//! let mlp = LazyModule::from_config(BlockKind::LlamaMlp, &cfg, 0).unwrap();
//! assert_eq!(mlp.parameter_count(), 3 * 4096 * 14336);
//! assert_eq!(mlp.input_shape_hint(1, 8), Some(vec![1, 8, 4096]));
//! ```

use crate::module::{Cost, InputKind, ModuleUnderTest, NnModule};
use candle_core::{DType, Device, Result, Tensor};
use std::collections::HashMap;
use std::sync::Arc;
use tensile_nn::init::{MetaInit, SeededInit};
use tensile_nn::BlockKind;

/// A module built on [`MetaInit`], whose seeded weights are made per case under the module's
/// prefix in its model: the same values an eager seeded build of the whole model gives the
/// module (a tensor's values depend only on the seed and its full name), without the rest of
/// the model.
pub struct LazyModule {
    meta: Arc<dyn ModuleUnderTest>,
    prefix: String,
    seed: u64,
}

impl LazyModule {
    /// A buildable block kind with its Hugging Face config and weight seed (the module of a
    /// spec file). Validates `config` for `kind` by building the block without storage;
    /// fails as [`BlockKind::build`] does.
    pub fn from_config(kind: BlockKind, config: &serde_json::Value, seed: u64) -> tensile_nn::Result<Self> {
        let meta = kind.build(config, MetaInit::var_builder(DType::F32, &Device::Cpu))?;
        Ok(Self::new(Arc::new(NnModule(meta)), "", seed))
    }

    /// The part `meta` (built on [`MetaInit`]) whose parameters sit under `prefix` in a model
    /// seeded with `seed` (empty for the model itself).
    pub fn new(meta: Arc<dyn ModuleUnderTest>, prefix: impl Into<String>, seed: u64) -> Self {
        Self { meta, prefix: prefix.into(), seed }
    }

    /// The prefix under which `part`'s parameters appear among `root`'s: found by tensor
    /// identity, since a part shares its tensors with the model it was taken from. Empty for
    /// the root itself or a part without parameters.
    pub fn prefix_in(root: &[(String, Tensor)], part: &[(String, Tensor)]) -> String {
        let Some((name, tensor)) = part.first() else { return String::new() };
        root.iter()
            .find(|(_, t)| t.id() == tensor.id())
            .and_then(|(full, _)| full.strip_suffix(name.as_str()))
            .map(|p| p.trim_end_matches('.').to_string())
            .unwrap_or_default()
    }

    fn build(&self, dtype: DType, device: &Device) -> Result<Arc<dyn ModuleUnderTest>> {
        let root = SeededInit::var_builder(self.seed, dtype, device);
        let vb = if self.prefix.is_empty() { root } else { root.pp(&self.prefix) };
        let weights = self.meta.parameters().into_iter().map(|(name, t)| Ok((name.clone(), vb.get(t.dims(), &name)?))).collect::<Result<HashMap<_, _>>>()?;
        self.meta
            .with_parameters(weights, dtype, device)
            .unwrap_or_else(|| candle_core::bail!("module `{}` cannot be rebuilt with new weights", self.meta.kind()))
    }
}

impl ModuleUnderTest for LazyModule {
    fn kind(&self) -> &str {
        self.meta.kind()
    }
    /// Builds the weights for this one call; the runner never calls it (it materializes the
    /// module once per case), but a library caller may.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.build(x.dtype(), x.device())?.forward(x)
    }
    fn forward_reference(&self, x: &Tensor) -> Option<Result<Tensor>> {
        match self.build(DType::F32, &Device::Cpu) {
            Ok(m) => m.forward_reference(x),
            Err(e) => Some(Err(e)),
        }
    }
    fn input_kind(&self) -> InputKind {
        self.meta.input_kind()
    }
    fn input_shape_hint(&self, batch: usize, seq: usize) -> Option<Vec<usize>> {
        self.meta.input_shape_hint(batch, seq)
    }
    fn parameter_count(&self) -> usize {
        self.meta.parameter_count()
    }
    fn parameter_bytes(&self) -> usize {
        self.meta.parameter_bytes()
    }
    fn default_tolerance(&self, dtype: DType) -> Option<crate::Tolerance> {
        self.meta.default_tolerance(dtype)
    }
    fn frozen_parameters(&self) -> Vec<String> {
        self.meta.frozen_parameters()
    }
    fn cost(&self, shape: &[usize]) -> Cost {
        self.meta.cost(shape)
    }
    fn dims(&self) -> Vec<(&'static str, usize)> {
        self.meta.dims()
    }
    fn materialize(&self, dtype: DType, device: &Device) -> Option<Result<Arc<dyn ModuleUnderTest>>> {
        Some(self.build(dtype, device))
    }
    fn with_parameters(&self, params: HashMap<String, Tensor>, dtype: DType, device: &Device) -> Option<Result<Arc<dyn ModuleUnderTest>>> {
        self.meta.with_parameters(params, dtype, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tensile_nn::Block;

    #[test]
    fn materialized_weights_equal_an_eager_seeded_build() {
        let cfg = serde_json::json!({ "hidden_size": 64, "intermediate_size": 32 });
        let lazy = LazyModule::from_config(BlockKind::LlamaMlp, &cfg, 7).unwrap();
        let eager = BlockKind::LlamaMlp.build(&cfg, SeededInit::var_builder(7, DType::F32, &Device::Cpu)).unwrap();
        let built = lazy.materialize(DType::F32, &Device::Cpu).unwrap().unwrap();
        let x = tensile_nn::init::randn(1, "x", (1, 3, 64), DType::F32, &Device::Cpu).unwrap();
        let diff = (built.forward(&x).unwrap() - eager.forward(&x).unwrap()).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(diff, 0.0);
        assert_eq!(lazy.parameter_count(), 3 * 64 * 32);
        assert_eq!(lazy.kind(), "llama.mlp");
        assert!(lazy.parameters().is_empty(), "a lazy block holds no weights");
    }

    #[test]
    fn a_seeded_part_equals_the_same_part_of_an_eager_build() {
        use tensile_nn::llama::{LlamaConfig, LlamaDecoderLayer};
        let cfg = LlamaConfig { hidden_size: 32, intermediate_size: 48, num_attention_heads: 4, ..LlamaConfig::default() };
        let eager = LlamaDecoderLayer::new(&cfg, SeededInit::var_builder(3, DType::F32, &Device::Cpu)).unwrap();
        let meta = LlamaDecoderLayer::new(&cfg, MetaInit::var_builder(DType::F32, &Device::Cpu)).unwrap();
        let x = tensile_nn::init::randn(1, "x", (1, 5, 32), DType::F32, &Device::Cpu).unwrap();
        for (eager_part, meta_part) in [(eager.mlp() as &dyn Block, meta.mlp() as &dyn Block), (&eager, &meta)] {
            let meta_module: Arc<dyn ModuleUnderTest> = Arc::new(NnModule::from_dyn(meta_part).unwrap());
            let prefix = LazyModule::prefix_in(&meta.parameters(), &meta_part.parameters());
            let part = LazyModule::new(meta_module, prefix, 3);
            let built = part.materialize(DType::F32, &Device::Cpu).unwrap().unwrap();
            let diff = (built.forward(&x).unwrap() - eager_part.forward(&x).unwrap()).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert_eq!(diff, 0.0, "{}", part.kind());
            assert_eq!(part.parameter_count(), eager_part.parameters().iter().map(|(_, t)| t.elem_count()).sum::<usize>());
        }
        assert_eq!(LazyModule::prefix_in(&meta.parameters(), &meta.mlp().parameters()), "mlp");
    }

    #[test]
    fn an_invalid_config_fails_like_an_eager_build() {
        let e = LazyModule::from_config(BlockKind::LlamaAttention, &serde_json::json!({ "hidden_size": 60, "num_attention_heads": 7 }), 0).err().unwrap();
        assert!(e.to_string().contains("num_attention_heads"), "{e}");
    }
}
