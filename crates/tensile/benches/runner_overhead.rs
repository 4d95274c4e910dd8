//! The runner's own cost per case: planning, input generation, conversion, panic guards,
//! events and metrics around a module whose forward is nearly free.
//!
//! `cargo bench -p tensile --bench runner_overhead` prints the per-case overhead as the
//! difference between running N cases through the runner and doing the same forward,
//! reference and comparison work directly, measured in the same process.

use candle_core::{Device, Module, Result, Tensor};
use std::sync::Arc;
use std::time::Instant;
use tensile::event::Recorder;
use tensile::metrics::compare;
use tensile::spec::Spec;
use tensile::{Check, CustomModule, ModuleTest, ModuleUnderTest, Plan, Settings};

struct Identity;

impl Module for Identity {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        xs.clone() * 1.0
    }
}

fn module() -> Arc<dyn ModuleUnderTest> {
    Arc::new(CustomModule::new("identity", Identity).with_reference(|x| x.to_dtype(candle_core::DType::F64)))
}

fn main() {
    const N: usize = 2000;
    let shape = vec![1, 8, 64];
    let checks = vec![Check::Correctness, Check::Determinism];
    let tests: Vec<ModuleTest> = (0..N)
        .map(|i| ModuleTest {
            name: format!("m{i}"),
            module: module(),
            spec: Spec { input_shape: Some(shape.clone()), checks: checks.clone(), ..Spec::default() },
        })
        .collect();

    // The same work without the runner: input, forward, reference, comparison, second forward.
    let m = module();
    let direct = || {
        let t = Instant::now();
        for i in 0..N {
            let x = tensile_nn::init::randn(i as u64, "input", shape.as_slice(), candle_core::DType::F32, &Device::Cpu).unwrap();
            let y = m.forward(&x).unwrap();
            let r = m.forward_reference(&x).unwrap().unwrap();
            compare(&y, &r).unwrap();
            let _ = tensile::metrics::to_f64_vec(&m.forward(&x).unwrap()).unwrap();
            let _ = tensile::metrics::to_f64_vec(&y).unwrap();
        }
        t.elapsed().as_secs_f64()
    };
    let through_runner = || {
        let t = Instant::now();
        let plan = Plan::new(&tests, &Settings::default()).unwrap();
        let mut rec = Recorder::default();
        let summary = tensile::runner::run(&plan, &mut [&mut rec]);
        assert!(summary.passed());
        t.elapsed().as_secs_f64()
    };
    // Alternate the two a few times and keep the fastest of each, so background noise on a
    // shared machine does not land on one side only.
    let (mut best_direct, mut best_runner) = (f64::MAX, f64::MAX);
    for _ in 0..5 {
        best_direct = best_direct.min(direct());
        best_runner = best_runner.min(through_runner());
    }
    let per_case_us = (best_runner - best_direct) / N as f64 * 1e6;
    println!("cases: {N} (input {shape:?}, checks correctness + determinism)");
    println!("direct work:     {:.3} ms per case", best_direct / N as f64 * 1e3);
    println!("through runner:  {:.3} ms per case", best_runner / N as f64 * 1e3);
    println!("runner overhead: {per_case_us:.1} µs per case ({:.2}× the direct work)", best_runner / best_direct);
}
