//! A small Llama-3-shaped decoder block that declares how its modules must behave in every
//! form tensile offers (see `docs/front-ends.md`):
//!
//! - `#[derive(Testable)]` with `#[tensile(...)]` on fields, and one spec at struct level
//!   naming a field (the seed's class decorator);
//! - an inline [`Tested`] wrapper on a field (the seed's `test_module(...)` / `with_tests`);
//! - the builder [`Suite`] (the seed's `TestSuite` / context manager) for the whole layer;
//! - a registry function and a TOML spec file, in `tests/module_tests.rs` and `specs/`.

use candle_core::{DType, Device, Module, Result, Tensor};
use tensile::inline::{TestableModel, Tested};
use tensile::{latency_ms, Check, ModuleTest, Scaling, Suite, Testable};
use tensile_nn::init::SeededInit;
use tensile_nn::llama::{LlamaConfig, LlamaDecoderLayer};
use tensile_nn::{Attention, RmsNorm, SwiGlu};

/// The example's modules, built from one Llama-3-style config.
#[derive(Testable)]
#[tensile(input_layernorm(input_shape = |m| (1, 64, m.config.hidden_size), checks = [Check::Correctness, Check::Gradients, Check::Determinism]))]
pub struct Llama3Block {
    /// The Hugging Face config.
    pub config: LlamaConfig,
    /// Grouped-query attention; its latency target depends on the model's size.
    #[tensile(
        input_shape = |m| (1, 64, m.config.hidden_size),
        tolerance = 1e-3,
        latency_ms = |m| if m.config.hidden_size >= 4096 { 5.0 } else { 1000.0 },
        memory_mb = 256.0,
        checks = [Check::Correctness, Check::Gradients, Check::Determinism, Check::Performance, Check::Memory]
    )]
    pub attention: Attention,
    /// The SwiGLU MLP, with a sequence-length sweep expected to scale linearly.
    #[tensile(
        input_shape = (1, 64, 256),
        seq_lengths = [128, 256, 512],
        expect_scaling = Scaling::Exponent { value: 1.0, tolerance: 0.5 },
        checks = [Check::Correctness, Check::BatchInvariance, Check::DtypeParity, Check::Scaling]
    )]
    pub mlp: SwiGlu,
    /// The norm before attention, declared at struct level.
    pub input_layernorm: RmsNorm,
    /// The norm before the MLP, wrapped inline where it is built.
    pub post_attention_layernorm: Tested<RmsNorm>,
    layer: LlamaDecoderLayer,
}

impl Llama3Block {
    /// A Llama-3-shaped block at width 256 (8 heads, 2 KV heads, rope θ 500000) with seeded
    /// weights.
    pub fn tiny() -> tensile_nn::Result<Self> {
        let config = LlamaConfig {
            hidden_size: 256,
            intermediate_size: 688,
            num_attention_heads: 8,
            num_key_value_heads: Some(2),
            rope_theta: 500_000.0,
            rms_norm_eps: 1e-5,
            ..LlamaConfig::default()
        };
        let layer = LlamaDecoderLayer::new(&config, SeededInit::var_builder(0, DType::F32, &Device::Cpu))?;
        Ok(Self {
            attention: layer.self_attn().clone(),
            mlp: layer.mlp().clone(),
            input_layernorm: layer.input_layernorm().clone(),
            post_attention_layernorm: Tested::new(layer.post_attention_layernorm().clone())
                .declare(|s| s.name("post_attention_layernorm").input_shape((2, 16, 256)).checks([Check::Correctness, Check::BatchInvariance])),
            layer,
            config,
        })
    }

    /// Every declared module test: the derived ones, the inline wrapper's, and the whole
    /// layer through the builder.
    pub fn all_module_tests(&self) -> tensile::Result<Vec<ModuleTest>> {
        let mut tests = self.module_tests();
        tests.push(self.post_attention_layernorm.module_test());
        let mut suite = Suite::standalone("block");
        suite.test(&self.layer).name("decoder_layer").input_shape([1, 32, 256]).expect(latency_ms(2000.0)).checks([
            Check::Correctness,
            Check::Determinism,
            Check::Performance,
        ]);
        tests.extend(suite.module_tests()?.into_iter().map(|mut t| {
            t.name = "decoder_layer".into();
            t
        }));
        Ok(tests)
    }
}

impl Module for Llama3Block {
    /// The block's forward: the wrapped modules compute exactly what the layer computes.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = (x + self.attention.forward(&self.input_layernorm.forward(x)?)?)?;
        &h + self.mlp.forward(&self.post_attention_layernorm.forward(&h)?)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_does_not_change_the_forward() {
        let block = Llama3Block::tiny().unwrap();
        let x = tensile_nn::init::randn(1, "x", (1, 8, 256), DType::F32, &Device::Cpu).unwrap();
        let a = block.forward(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = block.layer.forward(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn derive_lowers_field_and_struct_specs() {
        let block = Llama3Block::tiny().unwrap();
        let tests = block.module_tests();
        let names: Vec<&str> = tests.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["input_layernorm", "attention", "mlp"]);
        assert_eq!(tests[1].spec.input_shape, Some(vec![1, 64, 256]), "closure of the model's config");
        assert_eq!(tests[1].spec.targets.latency_ms.as_ref().unwrap().at(64), 1000.0, "target chosen by model size");
        assert_eq!(tests[1].spec.tolerance.unwrap().atol, 1e-3);
        assert_eq!(tests[2].spec.sweep.as_ref().unwrap().seq_lengths, vec![128, 256, 512]);
        assert_eq!(block.all_module_tests().unwrap().len(), 5);
    }
}
