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
        .checks(CHECKS)
        .tags(["nightly", "mlp-suite"]);
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
                .tags(["nightly", "mlp-suite"])
        }),
    };
    model.module_tests().remove(0)
}

#[derive(tensile::Testable)]
struct Derived {
    #[tensile(input_shape = (1, 8, 64), tolerance = 1e-3, latency_ms = 5.0, memory_mb = 512.0, seq_lengths = [8, 16], expect_scaling = Scaling::Linear, checks = CHECKS, tags = ["nightly", "mlp-suite"])]
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
tags = ["nightly", "mlp-suite"]
"#;
    tensile::specfile::parse(text, Path::new("same.toml")).unwrap().remove(0)
}

fn plan_fingerprint(t: &ModuleTest) -> Vec<String> {
    let plan = Plan::new(std::slice::from_ref(t), &Settings::default()).unwrap();
    plan.cases
        .iter()
        .map(|c| format!("{} {:?} {} {:?} {:?} {:?} {:?} {:?}", c.name, c.dtype, c.device, c.input_shape, c.tolerance, c.checks, c.spec, c.tags))
        .collect()
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

#[test]
fn tags_select_cases_with_the_built_in_ones_added() {
    let t = via_toml();
    let plan = Plan::new(std::slice::from_ref(&t), &Settings::default()).unwrap();
    assert_eq!(plan.cases[0].tags, ["cpu", "llama", "llama.mlp", "mlp-suite", "nightly"]);
    let select = |expr: &str| Plan::new(std::slice::from_ref(&t), &Settings { tags: Some(expr.parse().unwrap()), ..Settings::default() }).unwrap().cases.len();
    assert_eq!(select("nightly and llama"), 1);
    assert_eq!(select("not nightly or gpu"), 0);
    assert_eq!(select("slow"), 0, "an 8-token MLP is not slow");
    // The environment variables, as the harness and the CLI read them.
    let env = |tags: &'static str, device: &'static str| {
        Settings::default().with_vars(move |n| match n {
            "TENSILE_TAGS" => Some(tags.to_string()),
            "TENSILE_DEVICE" => Some(device.to_string()),
            _ => None,
        })
    };
    let s = env("llama and not slow", "cpu").unwrap();
    assert_eq!(s.devices, Some(vec!["cpu".to_string()]));
    assert!(s.tags.unwrap().matches(&["llama"]));
    assert!(env("llama and", "cpu").unwrap_err().to_string().contains("TENSILE_TAGS"));
    assert!(env("llama", "tpu").unwrap_err().to_string().contains("TENSILE_DEVICE"));
    // A malformed tag is a spec error, in code and in TOML.
    let mut bad = via_builder();
    bad.spec.tags = vec!["two words".into()];
    let e = Plan::new(&[bad], &Settings::default()).err().unwrap().to_string();
    assert!(e.contains("field `tags`") && e.contains("`two words` is not a tag"), "{e}");
    let toml = "[[test]]\nname = \"n\"\nmodule = \"llama.rms_norm\"\nconfig = { hidden_size = 8 }\ntags = [\"not\"]\n";
    let e = tensile::specfile::parse(toml, Path::new("t.toml")).err().unwrap().to_string();
    assert!(e.contains("t.toml:5") && e.contains("`not` is not a tag"), "{e}");
}
