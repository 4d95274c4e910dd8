//! `--repeat` and baselines through the real runner: a planted intermittent fault is reported
//! flaky (not passed), healthy and consistently broken modules are not; a planted 3× slowdown
//! fails against a saved baseline, while a baseline slower than the run does not.

use candle_core::{DType, Device, Result, Tensor};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tensile::baseline::{Baseline, BaselineWriter};
use tensile::event::{Reporter, Status};
use tensile::runner::{run_with, RunOptions, RunSummary};
use tensile::spec::{Profile, Spec};
use tensile::{Check, ModuleTest, ModuleUnderTest, Plan, Settings};

/// `y = 0.5·x`, wrong (×1.1) on every third call when `intermittent`, always wrong when
/// `broken`; `work` extra matrix products make it slower on purpose.
struct Planted {
    intermittent: bool,
    broken: bool,
    work: usize,
    calls: AtomicU64,
}

fn planted(intermittent: bool, broken: bool, work: usize) -> Arc<dyn ModuleUnderTest> {
    Arc::new(Planted { intermittent, broken, work, calls: AtomicU64::new(0) })
}

impl ModuleUnderTest for Planted {
    fn kind(&self) -> &str {
        "planted"
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let mut y = (x * 0.5)?;
        // Busy work whose result is kept alive until the end, so it cannot be skipped.
        let mut sink = Tensor::zeros((64, 64), DType::F32, x.device())?;
        for _ in 0..self.work {
            let m = Tensor::ones((64, 64), DType::F32, x.device())?;
            sink = (sink + m.matmul(&m)?)?;
        }
        if self.broken || (self.intermittent && n % 3 == 2) {
            y = (y * 1.1)?;
        }
        drop(sink);
        Ok(y)
    }
    fn forward_reference(&self, x: &Tensor) -> Option<Result<Tensor>> {
        Some(x.to_dtype(DType::F64).and_then(|x| x.to_device(&Device::Cpu)).and_then(|x| x * 0.5))
    }
    fn input_shape_hint(&self, batch: usize, seq: usize) -> Option<Vec<usize>> {
        Some(vec![batch, seq, 16])
    }
}

fn test(name: &str, module: Arc<dyn ModuleUnderTest>, checks: &[Check]) -> ModuleTest {
    let profile = Profile { warmup: Duration::from_millis(5), warmup_runs: None, iterations: Some(30), budget: Duration::from_millis(200), flush_cache_mib: 0 };
    ModuleTest { name: name.into(), module, spec: Spec { checks: checks.to_vec(), input_shape: Some(vec![1, 4, 16]), profile, ..Spec::default() } }
}

fn run(tests: &[ModuleTest], options: &RunOptions, extra: &mut [&mut dyn Reporter]) -> RunSummary {
    let plan = Plan::new(tests, &Settings::default()).unwrap();
    run_with(&plan, options, extra)
}

#[test]
fn an_intermittent_fault_is_flaky_and_steady_verdicts_are_not() {
    let tests = [
        test("intermittent", planted(true, false, 0), &[Check::Correctness]),
        test("healthy", planted(false, false, 0), &[Check::Correctness]),
        test("broken", planted(false, true, 0), &[Check::Correctness, Check::Memory]),
    ];
    let s = run(&tests, &RunOptions { repeat: 6, ..RunOptions::default() }, &mut []);
    let flaky = &s.cases[0].checks[0];
    let r = flaky.repeat.as_ref().unwrap();
    assert_eq!(flaky.status(), Status::Flaky);
    assert!(r.flaky && r.runs == 6 && 0 < r.failures && r.failures < 6, "{r:?}");
    assert!(r.rate_low < r.failure_rate && r.failure_rate < r.rate_high, "{r:?}");
    assert!(!flaky.outcome.passed && flaky.outcome.errors[0].starts_with(&format!("flaky: failed {} of 6 runs", r.failures)), "{:?}", flaky.outcome.errors);
    assert!(!s.cases[0].passed, "a flaky check must not pass");

    let healthy = &s.cases[1].checks[0];
    assert_eq!((healthy.status(), healthy.repeat.as_ref().unwrap().failures), (Status::Passed, 0));
    assert!(healthy.repeat.as_ref().unwrap().rate_high > 0.0, "zero failures in six runs do not prove a zero rate");

    let broken = &s.cases[2].checks[0];
    assert_eq!((broken.status(), broken.repeat.as_ref().unwrap().failures), (Status::Failed, 6));
    // A skipped check runs once and carries no repetition statistics.
    let memory = &s.cases[2].checks[1];
    assert_eq!((memory.status(), memory.repeat.is_none()), (Status::Skipped, true));
    assert_eq!((s.totals.checks_failed, s.totals.checks_flaky, s.totals.checks_skipped), (2, 1, 1));
}

#[test]
fn a_planted_slowdown_fails_against_the_baseline_and_a_slower_baseline_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = BaselineWriter::new(dir.path(), "before");
    let before = [test("mlp", planted(false, false, 2), &[Check::Performance])];
    let first = run(&before, &RunOptions::default(), &mut [&mut writer]);
    writer.finish().unwrap();
    assert!(first.passed());
    let saved = Baseline::load(dir.path(), "before").unwrap();
    assert_eq!(saved.entries.len(), 1);
    assert_eq!((saved.entries[0].name.as_str(), saved.entries[0].samples_ms.len()), ("mlp", 30));

    // Three times the work: a regression whatever the machine's noise.
    let slower = [test("mlp", planted(false, false, 6), &[Check::Performance])];
    let options = RunOptions { baseline: Some(saved.clone()), ..RunOptions::default() };
    let s = run(&slower, &options, &mut []);
    let perf = &s.cases[0].checks[0].outcome;
    assert!(!perf.passed, "{:?}", perf.metrics);
    assert!(perf.metrics["slowdown_ci_low"] > 0.05 && perf.metrics["slowdown"] > 0.5, "{:?}", perf.metrics);
    assert!(perf.errors.iter().any(|e| e.starts_with("regression against baseline `before`")), "{:?}", perf.errors);

    // The same module against a baseline that was twice as slow: faster is never a failure.
    // Both the latencies and the one-thread runs (what a CPU comparison reads) are doubled.
    let mut slow_baseline = saved;
    assert!(!slow_baseline.entries[0].work_samples_ms.is_empty(), "a CPU baseline keeps one-thread runs");
    slow_baseline.entries[0].samples_ms.iter_mut().for_each(|x| *x *= 2.0);
    slow_baseline.entries[0].work_samples_ms.iter_mut().for_each(|x| *x *= 2.0);
    let options = RunOptions { baseline: Some(slow_baseline), ..RunOptions::default() };
    let s = run(&before, &options, &mut []);
    let perf = &s.cases[0].checks[0].outcome;
    assert!(perf.passed && perf.metrics["slowdown"] < 0.0, "{:?} {:?}", perf.errors, perf.metrics);

    // A case the baseline does not know passes with a note.
    let other = [test("attention", planted(false, false, 0), &[Check::Performance])];
    let s = run(&other, &RunOptions { baseline: Baseline::load(dir.path(), "before").ok(), ..RunOptions::default() }, &mut []);
    let perf = &s.cases[0].checks[0].outcome;
    assert!(perf.passed && perf.notes.iter().any(|n| n.contains("has no entry")), "{:?}", perf.notes);
}
