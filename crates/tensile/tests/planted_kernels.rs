//! tensile-nn's own CPU kernels (tiled attention, the matrix products, RMSNorm, LayerNorm, GELU
//! and SwiGLU's gate) with planted faults: each is caught by the check meant to catch it, and the
//! same module passes once the fault is healed. The faults live in the kernels themselves
//! (`tensile_nn::fault`, the `fault-injection` feature), so what is tested is the shipped
//! kernel code with one thing wrong, not a wrapper around it.
//!
//! A planted fault is global to the process, so this binary holds one test that plants them
//! in turn.

use candle_core::DType;
use std::sync::Arc;
use tensile::{Check, ModuleTest, ModuleUnderTest, NnModule, Plan, Settings, Spec};
use tensile_nn::fault::{plant, Fault};
use tensile_nn::init::SeededInit;
use tensile_nn::{Activation, Attention, AttentionConfig, GeluMlp, LayerNorm, RmsNorm, SwiGlu};

fn module(block: impl tensile_nn::Block + 'static) -> Arc<dyn ModuleUnderTest> {
    Arc::new(NnModule::new(block))
}

/// The check's outcome (passed, errors) for `m` on a (1, seq, 64) f32 input.
fn outcome(m: &Arc<dyn ModuleUnderTest>, check: Check, seq: usize) -> (bool, Vec<String>) {
    let mut spec = Spec::default();
    spec.checks(vec![check]).input_shape(vec![1, seq, 64]).dtypes(vec![DType::F32]);
    let tests = vec![ModuleTest { name: "kernel".into(), module: m.clone(), spec }];
    let plan = Plan::new(&tests, &Settings::default()).expect("a valid plan");
    let summary = tensile::runner::run(&plan, &mut []);
    let x = &summary.cases[0].checks[0];
    (x.outcome.passed, x.outcome.errors.clone())
}

#[test]
fn every_planted_kernel_fault_is_caught_and_healing_it_passes() {
    let vb = || SeededInit::var_builder(3, DType::F32, &candle_core::Device::Cpu);
    let attention = AttentionConfig {
        hidden_size: 64,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        head_dim: 16,
        attention_bias: false,
        causal: true,
        rope: Some((10_000.0, None)),
    };
    // The attention's planted fault sits at the edge of a 64-query tile, so its input spans two.
    let cases: [(Fault, Arc<dyn ModuleUnderTest>, Check, usize); 8] = [
        (Fault::AttentionTileBoundary, module(Attention::new(&attention, vb()).unwrap()), Check::Correctness, 80),
        (Fault::AttentionTileBoundary, module(Attention::new(&attention, vb()).unwrap()), Check::Gradients, 80),
        (Fault::LinearLastFeature, module(SwiGlu::new(64, 96, false, Activation::Silu, vb()).unwrap()), Check::Correctness, 16),
        (Fault::RmsNormDivisor, module(RmsNorm::new(64, 1e-6, vb()).unwrap()), Check::Correctness, 16),
        (Fault::LayerNormMean, module(LayerNorm::new(64, 1e-5, true, vb()).unwrap()), Check::Correctness, 16),
        (Fault::GeluBackward, module(GeluMlp::new(64, 96, Activation::Gelu, vb()).unwrap()), Check::Gradients, 16),
        (Fault::SiluMulBackward, module(SwiGlu::new(64, 96, false, Activation::Silu, vb()).unwrap()), Check::Gradients, 16),
        (Fault::LinearLastFeature, module(GeluMlp::new(64, 96, Activation::Gelu, vb()).unwrap()), Check::Gradients, 16),
    ];
    for (fault, m, check, seq) in cases {
        plant(fault);
        let (passed, errors) = outcome(&m, check, seq);
        plant(Fault::None);
        assert!(!passed, "{fault:?} was not caught by {check}");
        assert!(!errors.is_empty(), "{fault:?}: a failure says why");
        let (passed, errors) = outcome(&m, check, seq);
        assert!(passed, "{fault:?} healed: {check} should pass, got {errors:?}");
    }
}
