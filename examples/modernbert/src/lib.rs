//! A small ModernBERT sequence classifier that declares, next to its fields, how each module
//! must behave: `#[derive(Testable)]` on the struct, the builder for the whole local layer,
//! and (in `tests/module_tests.rs`) the registry and the repository's spec file
//! `examples/specs/modernbert.toml`.

use candle_core::{DType, Device};
use tensile::inline::TestableModel;
use tensile::{Check, ModuleTest, Scaling, Suite, Testable};
use tensile_nn::heads::{ClassificationHead, HeadTarget, TaskConfig};
use tensile_nn::init::SeededInit;
use tensile_nn::modernbert::{ModernBertAttention, ModernBertConfig, ModernBertLayer, ModernBertMlp};

/// One local ModernBERT layer's attention and GeGLU MLP, and a mean-pooling classification
/// head, built from one config with seeded weights.
#[derive(Testable)]
pub struct ModernBertClassifier {
    /// The Hugging Face config.
    pub config: ModernBertConfig,
    /// Sliding-window attention (± 16 positions): its cost grows between linearly and
    /// quadratically over the sweep, as its FLOP count says.
    #[tensile(
        input_shape = |m| (1, 64, m.config.hidden_size),
        seq_lengths = [32, 64, 128],
        expect_scaling = Scaling::FromCost,
        checks = [Check::Correctness, Check::Gradients, Check::Determinism, Check::BatchInvariance, Check::Scaling]
    )]
    pub attention: ModernBertAttention,
    /// The GeGLU feed-forward block, in f32 and bf16.
    #[tensile(input_shape = (2, 32, 128), checks = [Check::Correctness, Check::Gradients, Check::DtypeParity])]
    pub mlp: ModernBertMlp,
    /// Mean pooling, `head.dense`, GELU, `head.norm` and `classifier` over three labels.
    #[tensile(input_shape = (4, 16, 128), tolerance = 1e-4, checks = [Check::Correctness, Check::Gradients, Check::Determinism])]
    pub head: ClassificationHead,
    layer: ModernBertLayer,
}

impl ModernBertClassifier {
    /// Width 128, 4 heads, GeGLU 192, a window of 32; layer 1 (local, with `attn_norm`).
    pub fn tiny() -> tensile_nn::Result<Self> {
        let config = ModernBertConfig {
            hidden_size: 128,
            num_attention_heads: 4,
            intermediate_size: 192,
            local_attention: 32,
            classifier_pooling: "mean".into(),
            ..ModernBertConfig::default()
        };
        let vb = SeededInit::var_builder(0, DType::F32, &Device::Cpu);
        let layer = ModernBertLayer::new(&config, 1, vb.pp("layers").pp(1))?;
        let head = ClassificationHead::modernbert(&config, &TaskConfig::with_labels(&["negative", "neutral", "positive"]), HeadTarget::Sequence, vb)?;
        Ok(Self { attention: layer.attention().clone(), mlp: layer.mlp().clone(), head, layer, config })
    }

    /// The derived tests and the whole layer through the builder.
    pub fn all_module_tests(&self) -> tensile::Result<Vec<ModuleTest>> {
        let mut tests = self.module_tests();
        let mut suite = Suite::standalone("classifier");
        suite.test(&self.layer).name("layer").input_shape([1, 48, 128]).checks([Check::Correctness, Check::Gradients, Check::Determinism]);
        tests.extend(suite.module_tests()?);
        Ok(tests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derive_lowers_every_field_spec() {
        let model = ModernBertClassifier::tiny().unwrap();
        let tests = model.module_tests();
        let names: Vec<&str> = tests.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["attention", "mlp", "head"]);
        assert_eq!(tests[0].spec.input_shape, Some(vec![1, 64, 128]), "closure of the model's config");
        assert_eq!(tests[0].spec.sweep.as_ref().unwrap().seq_lengths, vec![32, 64, 128]);
        assert_eq!(tests[2].spec.tolerance.unwrap().atol, 1e-4);
        assert_eq!(model.all_module_tests().unwrap().len(), 4);
    }
}
