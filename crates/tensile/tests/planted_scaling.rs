//! The scaling check must catch a block whose time grows quadratically with the sequence
//! length while it is declared linear. One test in a binary of its own, so no other test
//! competes with its timings.

use candle_core::{Module, Result, Tensor};
use std::sync::Arc;
use std::time::Duration;
use tensile::spec::{Profile, Scaling, Spec, Sweep};
use tensile::{Check, CustomModule, ModuleTest, ModuleUnderTest, Plan, Settings};

/// `x W` with a fixed square `W`: compute-bound work linear in the sequence length.
struct Linear(Tensor);

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.broadcast_matmul(&self.0)
    }
}

/// `(x xᵀ) x / s`: O(seq²·hidden) work for an output of the input's shape.
struct Quadratic;

impl Module for Quadratic {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let s = x.dim(1)? as f64;
        x.matmul(&x.transpose(1, 2)?.contiguous()?)?.matmul(x)? / s
    }
}

fn test(name: &str, module: Arc<dyn ModuleUnderTest>, expect: Scaling) -> ModuleTest {
    let spec = Spec {
        input_shape: Some(vec![1, 256, 256]),
        checks: vec![Check::Scaling],
        sweep: Some(Sweep { seq_lengths: vec![256, 512, 1024, 2048], expect }),
        profile: Profile { budget: Duration::from_millis(800), ..Profile::default() },
        ..Spec::default()
    };
    ModuleTest { name: name.into(), module, spec }
}

#[test]
fn scaling_catches_a_quadratic_block_declared_linear() {
    let w = tensile_nn::init::randn(1, "w", (256, 256), candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
    let linear: Arc<dyn ModuleUnderTest> = Arc::new(CustomModule::new("linear", Linear(w)));
    let quadratic: Arc<dyn ModuleUnderTest> = Arc::new(CustomModule::new("quadratic", Quadratic));
    // The healthy declarations allow ±0.5 so that a loaded CI machine cannot fail them; the
    // faulty one uses the default ±0.3 of `Linear`, and a quadratic block sits near 2.
    let tests = vec![
        test("linear", linear, Scaling::Exponent { value: 1.0, tolerance: 0.5 }),
        test("quadratic_declared_linear", quadratic.clone(), Scaling::Linear),
        test("quadratic_declared_quadratic", quadratic, Scaling::Exponent { value: 2.0, tolerance: 0.5 }),
    ];
    assert_eq!(Scaling::Quadratic.expectation((1.0, 2.0)), (2.0, 0.3));
    assert_eq!(Scaling::Linear.expectation((1.0, 2.0)), (1.0, 0.3));
    let summary = tensile::runner::run(&Plan::new(&tests, &Settings::default()).unwrap(), &mut []);
    let outcome = |i: usize| &summary.cases[i].checks[0].outcome;
    let exps: Vec<f64> = (0..3).map(|i| outcome(i).metrics["exponent"]).collect();
    println!("fitted exponents: {exps:?}");
    assert!(outcome(0).passed, "linear declared linear: {:?}", outcome(0).errors);
    assert!(!outcome(1).passed, "quadratic declared linear must fail: {exps:?}");
    assert!(outcome(1).errors[0].starts_with("time grows as seq^"), "{:?}", outcome(1).errors);
    assert!(outcome(2).passed, "quadratic declared quadratic: {:?}", outcome(2).errors);
    assert!(outcome(1).metrics["exponent_ci_low"] <= outcome(1).metrics["exponent_ci_high"]);
}
