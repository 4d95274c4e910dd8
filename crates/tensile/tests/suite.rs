//! The builder front-end: names from the model, globs, scopes, compare_with, case files.

use candle_core::{DType, Device};
use tensile::spec::{latency_ms, Reference, Scaling};
use tensile::{Check, Suite};
use tensile_nn::init::SeededInit;
use tensile_nn::llama::{LlamaConfig, LlamaDecoderLayer};

fn cfg() -> LlamaConfig {
    LlamaConfig { hidden_size: 64, intermediate_size: 128, num_attention_heads: 4, num_key_value_heads: Some(2), ..Default::default() }
}

fn layer(seed: u64) -> LlamaDecoderLayer {
    LlamaDecoderLayer::new(&cfg(), SeededInit::var_builder(seed, DType::F32, &Device::Cpu)).unwrap()
}

#[test]
fn names_come_from_the_model_and_specs_lower_to_the_ir() {
    let model = layer(0);
    let mut suite = Suite::new(&model).name("tiny").batch_size(2).seq_len(16);
    suite.test(model.self_attn()).tolerance(1e-3).expect(latency_ms(5.0).memory_mb(512.0)).seq_lengths([16, 32]).expect_scaling(Scaling::Quadratic);
    suite.test(model.mlp()).name("ffn").input_shape([1, 8, 64]).profile(2, 7);
    let tests = suite.module_tests().unwrap();
    assert_eq!(tests[0].name, "tiny::self_attn");
    assert_eq!(tests[1].name, "tiny::ffn");
    let s = &tests[0].spec;
    assert_eq!(s.tolerance.unwrap().atol, 1e-3);
    assert_eq!(s.targets.latency_ms.as_ref().unwrap().at(16), 5.0);
    assert_eq!(s.targets.memory_mb.as_ref().unwrap().at(16), 512.0);
    let sweep = s.sweep.as_ref().unwrap();
    assert_eq!((sweep.seq_lengths.clone(), sweep.expect), (vec![16, 32], Scaling::Quadratic));
    assert!(s.checks.contains(&Check::Scaling));
    assert_eq!(tests[1].spec.input_shape, Some(vec![1, 8, 64]));
    assert_eq!((tests[1].spec.profile.warmup_runs, tests[1].spec.profile.iterations), (Some(2), Some(7)));
    let plan = suite.plan().unwrap();
    assert_eq!(plan.cases[0].input_shape, vec![2, 16, 64], "inferred from the suite's batch and seq");
}

#[test]
fn test_all_modules_matches_paths_by_glob() {
    let model = layer(0);
    let mut suite = Suite::new(&model);
    let n = suite
        .test_all_modules()
        .matching("*layernorm")
        .unwrap()
        .each(|t| {
            t.checks([Check::Correctness]);
        })
        .len();
    assert_eq!(n, 2);
    assert_eq!(suite.test_all_modules().matching("self_attn").unwrap().len(), 1);
    assert!(suite.test_all_modules().matching("[").is_err());
    let names: Vec<String> = suite.module_tests().unwrap().into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["input_layernorm", "post_attention_layernorm", "self_attn"]);
}

#[test]
fn scope_runs_when_the_closure_ends() {
    let model = layer(0);
    let results = Suite::scope(&model, |s| {
        s.test(model.mlp()).input_shape([1, 4, 64]).checks([Check::Correctness, Check::Determinism]);
        s.test(model.input_layernorm()).input_shape([1, 4, 64]).checks([Check::Correctness]);
    })
    .unwrap();
    assert_eq!(results.len(), 2);
    assert!(results.iter().all(|r| r.passed), "{results:?}");
    assert_eq!(results[0].module_name, "mlp");
    assert!(results[0].metrics["correctness.pcc"] > 0.99999);
    assert!(results[0].errors.is_empty());
}

#[test]
fn compare_with_another_module_detects_different_weights() {
    let (a, b) = (layer(0), layer(1));
    let mut suite = Suite::new(&a);
    suite.test(a.mlp()).name("same").compare_with(a.mlp()).input_shape([1, 4, 64]).checks([Check::Correctness]);
    suite.test(a.mlp()).name("other").compare_with(b.mlp()).input_shape([1, 4, 64]).checks([Check::Correctness]);
    let results = suite.run().unwrap();
    assert!(results[0].passed, "{:?}", results[0].errors);
    assert!(!results[1].passed);
    assert!(matches!(suite.module_tests().unwrap()[0].spec.reference, Reference::Module(_)));
}

#[test]
fn a_reference_case_file_loads_its_weights_into_the_module() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tensile-nn/tests/golden");
    // The module's own weights are random; the case file's weights replace them.
    let cfg = LlamaConfig { hidden_size: 64, intermediate_size: 176, ..Default::default() };
    let mlp = layer_with(&cfg);
    let mut suite = Suite::standalone("golden");
    suite.test(mlp.mlp()).name("mlp").reference_case(format!("{dir}/llama_mlp.safetensors")).input_shape([2, 5, 64]).checks([Check::Correctness]);
    let results = suite.run().unwrap();
    assert!(results[0].passed, "{:?}", results[0].errors);
    assert!(results[0].metrics["correctness.max_abs"] < 1e-4);
}

fn layer_with(cfg: &LlamaConfig) -> LlamaDecoderLayer {
    let cfg = LlamaConfig { num_attention_heads: 4, ..cfg.clone() };
    LlamaDecoderLayer::new(&cfg, SeededInit::var_builder(9, DType::F32, &Device::Cpu)).unwrap()
}

#[test]
fn presets_build_valid_plans() {
    for p in tensile::presets::all() {
        if p.name.starts_with("tiny") {
            let tests = p.module_tests(1, p.seq_len).unwrap();
            // The LoRA and quantized presets test attention, MLP and layer; the others a norm too.
            let adapted = p.name.contains("-lora") || p.name.contains("-q");
            assert_eq!(tests.len(), if adapted { 3 } else { 4 }, "{}", p.name);
            let plan = tensile::Plan::new(&tests, &tensile::Settings { seq_len: p.seq_len, ..Default::default() }).unwrap();
            // Quantized kernels are too noisy on a CPU for a scaling verdict (see presets/adapted.rs).
            let quantized = p.name.contains("-q");
            assert_eq!(plan.cases.iter().any(|c| c.checks.contains(&Check::Scaling)), !quantized, "{}", p.name);
        }
    }
    assert!(tensile::presets::find("gpt5").err().unwrap().to_string().contains("tiny-llama"));
}

#[test]
fn names_with_control_or_bidi_characters_are_spec_errors_shown_escaped() {
    let model = layer(0);
    for (bad, shown) in
        [("red\u{1b}[31m", "`\\u{1b}`"), ("bell\u{7}", "`\\u{7}`"), ("nul\u{0}", "`\\u{0}`"), ("rtl\u{202e}txt", "`\\u{202e}`"), ("iso\u{2066}", "`\\u{2066}`")]
    {
        let mut suite = Suite::new(&model);
        suite.test(model.mlp()).name(bad);
        let e = suite.plan().err().expect("rejected").to_string();
        assert!(e.contains("field `name`") && e.contains(shown), "{e}");
        assert!(!e.chars().any(|c| c.is_control() || tensile::report::escape::is_bidi_control(c)), "raw character in {e:?}");
    }
    let mut suite = Suite::new(&model);
    suite.test(model.mlp()).name("plain name: ünïcode ✓");
    assert!(suite.plan().is_ok());
}

#[test]
fn a_dtype_or_device_listed_twice_is_a_spec_error() {
    let model = layer(0);
    let plan_error = |f: &dyn Fn(&mut tensile::Spec)| {
        let mut suite = Suite::new(&model);
        f(suite.test(model.mlp()).name("mlp"));
        suite.plan().err().expect("rejected").to_string()
    };
    assert_eq!(
        plan_error(&|s| {
            s.dtypes([DType::F32, DType::BF16, DType::F32]);
        }),
        "spec `mlp`: field `dtype`: f32 is listed twice"
    );
    assert_eq!(
        plan_error(&|s| {
            s.devices(["cpu", "cpu"]);
        }),
        "spec `mlp`: field `device`: `cpu` is listed twice"
    );
    assert_eq!(
        plan_error(&|s| {
            s.devices(["cuda", "cuda:0"]);
        }),
        "spec `mlp`: field `device`: `cuda:0` is the same device as `cuda`"
    );
    // An override from the command line is held to the same rule.
    let mut suite = Suite::new(&model).settings(tensile::Settings { dtypes: Some(vec![DType::F16, DType::F16]), ..Default::default() });
    suite.test(model.mlp()).name("mlp");
    assert!(suite.plan().err().expect("rejected").to_string().contains("f16 is listed twice"));
}
