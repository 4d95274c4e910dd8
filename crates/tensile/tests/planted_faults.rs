//! Every check must be able to fail: blocks with planted faults (a sign error, a NaN, a
//! non-deterministic forward, a wrong gradient, a quadratic cost declared linear, a panic, a
//! batch-coupled forward, a half-precision bug) against healthy blocks that pass. The
//! scaling fault lives in `planted_scaling.rs`, a binary of its own, so no other test competes
//! with its timings.

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Tensor};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tensile::event::{CaseResult, Recorder};
use tensile::runner::RunSummary;
use tensile::spec::{latency_ms, Scaling, Spec, Sweep, Targets};
use tensile::{Check, ModuleTest, ModuleUnderTest, NnModule, Plan, Settings, Tolerance};
use tensile_nn::init::SeededInit;

/// What a planted fault does to `y = x · w` (w a fixed per-feature scale).
#[derive(Clone, Copy, PartialEq)]
enum Fault {
    None,
    SignError,
    Nan,
    NonDeterministic,
    WrongGradient,
    Panic,
    BatchCoupled,
    HalfPrecisionBug,
}

struct Planted {
    fault: Fault,
    calls: AtomicU64,
}

impl Planted {
    fn new(fault: Fault) -> Arc<dyn ModuleUnderTest> {
        Arc::new(Planted { fault, calls: AtomicU64::new(0) })
    }
}

/// `x²` with a backward pass that forgets the factor 2.
struct BadSquare;

impl CustomOp1 for BadSquare {
    fn name(&self) -> &'static str {
        "bad-square"
    }
    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (start, end) = layout.contiguous_offsets().expect("contiguous");
        match storage {
            CpuStorage::F64(v) => Ok((CpuStorage::F64(v[start..end].iter().map(|x| x * x).collect()), layout.shape().clone())),
            _ => candle_core::bail!("bad-square: f64 only"),
        }
    }
    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some((arg * grad_res)?))
    }
}

impl Planted {
    /// The healthy formula: `x·0.5 + x²·0.1`.
    fn formula(&self, x: &Tensor, reference: bool) -> Result<Tensor> {
        let sq = if reference && self.fault == Fault::WrongGradient { x.contiguous()?.apply_op1(BadSquare)? } else { x.sqr()? };
        (x * 0.5)? + (sq * 0.1)?
    }
}

impl ModuleUnderTest for Planted {
    fn kind(&self) -> &str {
        "planted"
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.formula(x, false)?;
        match self.fault {
            Fault::SignError => y.neg(),
            Fault::Nan => y.broadcast_mul(&Tensor::new(f32::NAN, x.device())?.to_dtype(x.dtype())?),
            Fault::NonDeterministic => {
                let n = self.calls.fetch_add(1, Ordering::SeqCst) as f64;
                y + n * 1e-3
            }
            Fault::Panic => panic!("planted panic in forward"),
            Fault::BatchCoupled => y.broadcast_sub(&y.mean_keepdim(0)?),
            Fault::HalfPrecisionBug if x.dtype() != DType::F32 => y * 1.25,
            _ => Ok(y),
        }
    }
    fn forward_reference(&self, x: &Tensor) -> Option<Result<Tensor>> {
        let x64 = x.to_dtype(DType::F64).and_then(|x| x.to_device(&Device::Cpu));
        Some(x64.and_then(|x| self.formula(&x, true)))
    }
    fn input_shape_hint(&self, batch: usize, seq: usize) -> Option<Vec<usize>> {
        Some(vec![batch, seq, 32])
    }
    fn cost(&self, shape: &[usize]) -> tensile::module::Cost {
        let n = shape.iter().product::<usize>() as f64;
        tensile::module::Cost { flops: 3.0 * n, bytes: 8.0 * n }
    }
    fn with_parameters(&self, _: std::collections::HashMap<String, Tensor>, _: DType, _: &Device) -> Option<Result<Arc<dyn ModuleUnderTest>>> {
        Some(Ok(Arc::new(Planted { fault: self.fault, calls: AtomicU64::new(0) })))
    }
}

fn spec(checks: &[Check]) -> Spec {
    Spec { checks: checks.to_vec(), input_shape: Some(vec![2, 8, 32]), ..Spec::default() }
}

fn run(tests: Vec<ModuleTest>) -> (RunSummary, Recorder) {
    let plan = Plan::new(&tests, &Settings::default()).expect("valid plan");
    let mut recorder = Recorder::default();
    let summary = tensile::runner::run(&plan, &mut [&mut recorder]);
    (summary, recorder)
}

fn test(name: &str, fault: Fault, spec: Spec) -> ModuleTest {
    ModuleTest { name: name.to_string(), module: Planted::new(fault), spec }
}

fn check_of<'a>(case: &'a CaseResult, check: Check) -> &'a tensile::event::CheckResult {
    case.checks.iter().find(|c| c.check == check).expect("check ran")
}

/// Runs `check` on a healthy and a faulty module and returns both outcomes' errors.
fn healthy_and_faulty(check: Check, fault: Fault, s: Spec) -> (Vec<String>, Vec<String>) {
    let (summary, _) = run(vec![test("healthy", Fault::None, s.clone()), test("faulty", fault, s)]);
    let healthy = check_of(&summary.cases[0], check);
    let faulty = check_of(&summary.cases[1], check);
    assert!(healthy.outcome.passed, "healthy module failed {check}: {:?}", healthy.outcome.errors);
    assert!(!faulty.outcome.passed, "planted fault passed {check}: {:?}", faulty.outcome.metrics);
    (healthy.outcome.errors.clone(), faulty.outcome.errors.clone())
}

#[test]
fn correctness_catches_a_sign_error() {
    let (_, errors) = healthy_and_faulty(Check::Correctness, Fault::SignError, spec(&[Check::Correctness]));
    assert!(errors.iter().any(|e| e.contains("pcc")), "{errors:?}");
}

#[test]
fn correctness_catches_nan_and_the_run_goes_on() {
    let (summary, recorder) =
        run(vec![test("nan", Fault::Nan, spec(&[Check::Correctness, Check::Determinism])), test("after", Fault::None, spec(&[Check::Correctness]))]);
    let nan = check_of(&summary.cases[0], Check::Correctness);
    assert!(!nan.outcome.passed);
    assert!(nan.outcome.errors.iter().any(|e| e == "output contains NaN or infinity"), "{:?}", nan.outcome.errors);
    assert!(summary.cases[1].passed, "the next case still runs and passes");
    assert!(matches!(recorder.events.last(), Some(tensile::Event::RunFinished { .. })));
}

#[test]
fn determinism_catches_a_non_deterministic_block() {
    let (_, errors) = healthy_and_faulty(Check::Determinism, Fault::NonDeterministic, spec(&[Check::Determinism]));
    assert!(errors[0].contains("expected bitwise equality"), "{errors:?}");
}

#[test]
fn gradients_catch_a_wrong_backward() {
    let (_, errors) = healthy_and_faulty(Check::Gradients, Fault::WrongGradient, spec(&[Check::Gradients]));
    assert!(errors[0].contains("autograd") && errors[0].contains("finite difference"), "{errors:?}");
    // Every sampled coordinate disagrees; five are named, the metrics say the rest.
    assert_eq!(errors.len(), 5, "{errors:?}");
}

#[test]
fn a_panicking_block_fails_its_checks_and_the_run_goes_on() {
    let (summary, _) =
        run(vec![test("panics", Fault::Panic, spec(&[Check::Correctness, Check::Determinism])), test("after", Fault::None, spec(&[Check::Correctness]))]);
    for c in &summary.cases[0].checks {
        assert!(!c.outcome.passed);
        assert!(c.outcome.errors[0].contains("planted panic in forward"), "{:?}", c.outcome.errors);
    }
    assert!(summary.cases[1].passed);
    assert_eq!(summary.totals.checks_failed, 2);
}

#[test]
fn batch_invariance_catches_rows_that_see_each_other() {
    healthy_and_faulty(Check::BatchInvariance, Fault::BatchCoupled, spec(&[Check::BatchInvariance]));
}

#[test]
fn dtype_parity_catches_a_half_precision_bug() {
    let (_, errors) = healthy_and_faulty(Check::DtypeParity, Fault::HalfPrecisionBug, spec(&[Check::DtypeParity]));
    assert!(errors.iter().any(|e| e.starts_with("bf16 vs f32")), "{errors:?}");
}

#[test]
fn performance_targets_fail_when_missed_and_when_stale() {
    let with = |t: Targets| Spec { targets: t, ..spec(&[Check::Performance]) };
    let (summary, _) = run(vec![
        test("met", Fault::None, with(latency_ms(10_000.0))),
        test("missed", Fault::None, with(latency_ms(1e-9))),
        test("stale", Fault::None, with(latency_ms(10_000.0).margin(10.0))),
    ]);
    assert!(summary.cases[0].passed);
    let missed = &check_of(&summary.cases[1], Check::Performance).outcome;
    assert!(!missed.passed && missed.errors[0].contains("target"), "{:?}", missed.errors);
    let stale = &check_of(&summary.cases[2], Check::Performance).outcome;
    assert!(!stale.passed && stale.errors[0].contains("stale"), "{:?}", stale.errors);
    for key in ["median_ms", "p10_ms", "p90_ms", "min_ms", "ci_low_ms", "ci_high_ms"] {
        assert!(missed.metrics.contains_key(key), "{key} missing from {:?}", missed.metrics);
    }
}

#[test]
fn real_blocks_pass_every_cheap_check() {
    let vb = SeededInit::var_builder(0, DType::F32, &Device::Cpu);
    let cfg =
        tensile_nn::llama::LlamaConfig { hidden_size: 64, intermediate_size: 128, num_attention_heads: 4, num_key_value_heads: Some(2), ..Default::default() };
    let layer = tensile_nn::llama::LlamaDecoderLayer::new(&cfg, vb).unwrap();
    let checks = [Check::Correctness, Check::Gradients, Check::Determinism, Check::BatchInvariance, Check::DtypeParity];
    let s = Spec { checks: checks.to_vec(), input_shape: Some(vec![1, 6, 64]), ..Spec::default() };
    let (summary, _) = run(vec![ModuleTest { name: "layer".into(), module: Arc::new(NnModule::new(layer)), spec: s }]);
    for c in &summary.cases[0].checks {
        assert!(c.outcome.passed, "{}: {:?}", c.check, c.outcome.errors);
        assert!(c.outcome.skipped.is_none(), "{} skipped: {:?}", c.check, c.outcome.skipped);
    }
    let grads = &check_of(&summary.cases[0], Check::Gradients).outcome.metrics;
    assert!(grads["coordinates"] >= 6.0 * 10.0, "every parameter and the input are probed: {grads:?}");
}

#[test]
fn invalid_specs_are_rejected_before_anything_runs() {
    let cases: Vec<(Spec, &str)> = vec![
        (Spec { input_shape: Some(vec![1, 8, 31]), ..spec(&[Check::Correctness]) }, "input_shape"),
        (Spec { input_shape: Some(vec![1, 0, 32]), ..spec(&[Check::Correctness]) }, "input_shape"),
        (Spec { tolerance: Some(Tolerance { atol: -1.0, ..Tolerance::for_dtype(DType::F32) }), ..spec(&[Check::Correctness]) }, "tolerance.atol"),
        (Spec { tolerance: Some(Tolerance { min_pcc: 2.0, ..Tolerance::for_dtype(DType::F32) }), ..spec(&[Check::Correctness]) }, "tolerance.min_pcc"),
        (spec(&[Check::Scaling]), "seq_lengths"),
        (Spec { sweep: Some(Sweep { seq_lengths: vec![64, 64], expect: Scaling::Linear }), ..spec(&[Check::Scaling]) }, "seq_lengths"),
        (Spec { targets: latency_ms(-5.0), ..spec(&[Check::Performance]) }, "latency_ms"),
        (Spec { targets: latency_ms(5.0).margin(0.5), ..spec(&[Check::Performance]) }, "margin"),
        (spec(&[]), "checks"),
        (Spec { devices: vec!["tpu".into()], ..spec(&[Check::Correctness]) }, "device"),
    ];
    for (s, field) in cases {
        let err = Plan::new(&[test("bad", Fault::None, s)], &Settings::default()).err().expect("rejected").to_string();
        assert!(err.starts_with("spec `bad`: field `") && err.contains(field), "{err} should name {field}");
    }
    let twice = vec![test("same", Fault::None, spec(&[Check::Correctness])), test("same", Fault::None, spec(&[Check::Correctness]))];
    assert!(Plan::new(&twice, &Settings::default()).err().unwrap().to_string().contains("declared twice"));
    let bad_glob = Settings { filter: Some("[".into()), ..Settings::default() };
    assert!(Plan::new(&[], &bad_glob).err().unwrap().to_string().contains("filter"));
}

#[test]
fn filters_and_overrides_shape_the_plan() {
    let tests = vec![test("m::attention", Fault::None, spec(&[Check::Correctness])), test("m::mlp", Fault::None, spec(&[Check::Correctness]))];
    let settings = Settings {
        filter: Some("*attention*".into()),
        dtypes: Some(vec![DType::F32, DType::BF16]),
        checks: Some(vec![Check::Determinism]),
        ..Settings::default()
    };
    let plan = Plan::new(&tests, &settings).unwrap();
    assert_eq!(plan.cases.len(), 2);
    assert!(plan.cases.iter().all(|c| c.name == "m::attention" && c.checks == vec![Check::Determinism]));
    assert_eq!(plan.cases[1].dtype, DType::BF16);
}

#[test]
fn cuda_cases_skip_with_a_reason_on_a_cpu_build() {
    if candle_core::utils::cuda_is_available() {
        println!("skipped: this build has CUDA");
        return;
    }
    let (summary, _) = run(vec![test("gpu", Fault::None, Spec { devices: vec!["cuda".into()], ..spec(&[Check::Correctness]) })]);
    let c = check_of(&summary.cases[0], Check::Correctness);
    assert!(c.outcome.passed);
    assert!(c.outcome.skipped.as_deref().unwrap().contains("CUDA"), "{:?}", c.outcome.skipped);
}
