//! The same declaration through every front-end (builder, inline wrapper, derive, registry,
//! TOML) lowers to the same spec and the same plan.

use candle_core::{DType, Device};
use std::path::Path;
use tensile::inline::{TestableModel, Tested};
use tensile::spec::{latency_ms, Scaling};
use tensile::{Check, ModuleTest, Plan, Settings, Suite};
use tensile_nn::init::SeededInit;
use tensile_nn::{Activation, SwiGlu};

const CHECKS: [Check; 4] = [Check::Correctness, Check::Performance, Check::Memory, Check::Scaling];

fn mlp() -> SwiGlu {
    SwiGlu::new(64, 128, false, Activation::Silu, SeededInit::var_builder(0, DType::F32, &Device::Cpu)).unwrap()
}

fn via_builder() -> ModuleTest {
    let block = mlp();
    let mut suite = Suite::standalone("x");
    suite
        .test(&block)
        .name("mlp")
        .input_shape([1, 8, 64])
        .tolerance(1e-3)
        .expect(latency_ms(5.0).memory_mb(512.0))
        .seq_lengths([8, 16])
        .expect_scaling(Scaling::Linear)
        .checks(CHECKS);
    let mut t = suite.module_tests().unwrap().remove(0);
    t.name = "mlp".into(); // the standalone suite prefixes `x::`
    t
}

struct Model {
    mlp: Tested<SwiGlu>,
}

impl TestableModel for Model {
    fn module_tests(&self) -> Vec<ModuleTest> {
        vec![self.mlp.module_test()]
    }
}

fn via_inline() -> ModuleTest {
    let model = Model {
        // The same keys, in the same order, as the builder: both call the one `Spec` method per key.
        mlp: Tested::new(mlp()).declare(|s| {
            s.name("mlp")
                .input_shape((1, 8, 64))
                .tolerance(1e-3)
                .expect(latency_ms(5.0).memory_mb(512.0))
                .seq_lengths([8, 16])
                .expect_scaling(Scaling::Linear)
                .checks(CHECKS)
        }),
    };
    model.module_tests().remove(0)
}

#[derive(tensile::Testable)]
struct Derived {
    #[tensile(input_shape = (1, 8, 64), tolerance = 1e-3, latency_ms = 5.0, memory_mb = 512.0, seq_lengths = [8, 16], expect_scaling = Scaling::Linear, checks = CHECKS)]
    mlp: SwiGlu,
}

fn via_derive() -> ModuleTest {
    Derived { mlp: mlp() }.module_tests().remove(0)
}

#[tensile::model_tests("same_declaration")]
fn registered() -> Vec<ModuleTest> {
    vec![via_builder()]
}

fn via_registry() -> ModuleTest {
    assert!(tensile::discover().iter().any(|r| r.model == "same_declaration" && r.file.ends_with("front_ends.rs")));
    let mut t = tensile::registry::module_tests(Some("same_*")).unwrap().remove(0);
    assert_eq!(t.name, "same_declaration::mlp");
    t.name = "mlp".into();
    t
}

fn via_toml() -> ModuleTest {
    let text = r#"
[[test]]
name = "mlp"
module = "llama.mlp"
config = { hidden_size = 64, intermediate_size = 128 }
input_shape = [1, 8, 64]
tolerance = 1e-3
expected_performance = { latency_ms = 5.0, memory_mb = 512.0 }
seq_lengths = [8, 16]
expect_scaling = "linear"
checks = ["correctness", "performance", "memory", "scaling"]
"#;
    tensile::specfile::parse(text, Path::new("same.toml")).unwrap().remove(0)
}

fn plan_fingerprint(t: &ModuleTest) -> Vec<String> {
    let plan = Plan::new(std::slice::from_ref(t), &Settings::default()).unwrap();
    plan.cases.iter().map(|c| format!("{} {:?} {} {:?} {:?} {:?} {:?}", c.name, c.dtype, c.device, c.input_shape, c.tolerance, c.checks, c.spec)).collect()
}

#[test]
fn every_front_end_produces_the_same_plan() {
    let forms = [via_builder(), via_inline(), via_derive(), via_registry(), via_toml()];
    let reference = plan_fingerprint(&forms[0]);
    for f in &forms {
        assert_eq!(f.module.kind(), "llama.mlp");
        assert_eq!(plan_fingerprint(f), reference, "{f:?}");
        // Same seeded weights too, once built for a case (a spec file's module holds none
        // until then).
        let weights = |t: &ModuleTest| -> Vec<(String, Vec<f32>)> {
            let built = tensile::module::convert(&t.module, candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
            let mut w: Vec<(String, Vec<f32>)> = built.parameters().into_iter().map(|(n, t)| (n, t.flatten_all().unwrap().to_vec1().unwrap())).collect();
            w.sort_by(|a, b| a.0.cmp(&b.0));
            w
        };
        let (a, b) = (weights(f), weights(&forms[0]));
        assert!(!a.is_empty());
        assert!(a == b, "{} differs from the builder's weights", f.name);
    }
}
