//! Latency: time-based warm-up, an adaptive number of timed runs, robust statistics, roofline
//! rates from the module's cost model, and the verdict against the latency target.

use super::{synchronize, Ctx};
use crate::error::Result;
use crate::event::CheckOutcome;
use crate::keys::{Metric, Series};
use crate::spec::{Profile, Target, Targets};
use crate::stats::Summary;
use candle_core::Device;
use std::collections::BTreeMap;
use std::time::Instant;

/// Timed samples of one measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct Timings {
    /// Milliseconds per timed run.
    pub samples_ms: Vec<f64>,
    /// Untimed warm-up runs made.
    pub warmup_runs: usize,
}

/// Times `f` on `device`: warm up (by time, or a fixed count), then run a fixed or adaptive
/// number of iterations, synchronising the device around each so queued work is counted.
pub fn measure(device: &Device, profile: &Profile, mut f: impl FnMut() -> Result<()>) -> Result<Timings> {
    let started = Instant::now();
    let mut warmup_runs = 0;
    // The first run pays one-off costs (lazy allocation, cold caches), so the per-run estimate
    // that sizes the timed loop leaves it out whenever there were later runs.
    let mut after_first = started;
    loop {
        f()?;
        warmup_runs += 1;
        if warmup_runs == 1 {
            synchronize(device)?;
            after_first = Instant::now();
        }
        let done = match profile.warmup_runs {
            Some(n) => warmup_runs >= n.max(1),
            None => started.elapsed() >= profile.warmup,
        };
        if done {
            break;
        }
    }
    synchronize(device)?;
    let per_run = per_run_estimate(started.elapsed().as_secs_f64(), after_first.elapsed().as_secs_f64(), warmup_runs);
    let n = timed_runs(profile, per_run);
    let flush = CacheFlush::new(device, profile.flush_cache_mib)?;
    let mut samples_ms = Vec::with_capacity(n);
    for _ in 0..n {
        flush.run()?;
        synchronize(device)?;
        let t = Instant::now();
        f()?;
        synchronize(device)?;
        samples_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(Timings { samples_ms, warmup_runs })
}

/// Seconds per run from the warm-up: the runs after the first (`since_first` seconds for
/// `warmup_runs − 1` runs), or the one run's `total` when there was only one.
fn per_run_estimate(total: f64, since_first: f64, warmup_runs: usize) -> f64 {
    if warmup_runs > 1 {
        since_first / (warmup_runs - 1) as f64
    } else {
        total
    }
}

/// How many runs to time: the profile's fixed count, or as many runs of `per_run` seconds as
/// fit in its budget, between 5 and 1000. A fixed count of zero would leave no samples and a
/// NaN median that passes every target, so at least one timed run is made.
fn timed_runs(profile: &Profile, per_run: f64) -> usize {
    match profile.iterations {
        Some(n) => n.max(1),
        None => (profile.budget.as_secs_f64() / per_run.max(1e-9)).clamp(5.0, 1000.0) as usize,
    }
}

/// A buffer larger than the caches, overwritten before each timed run when the profile asks
/// for cold caches. The work happens before the timer starts and is synchronised, so it is
/// never timed.
struct CacheFlush(Option<candle_core::Tensor>);

impl CacheFlush {
    fn new(device: &Device, mib: usize) -> Result<Self> {
        if mib == 0 {
            return Ok(Self(None));
        }
        let elements = mib * (1 << 20) / 4;
        Ok(Self(Some(candle_core::Tensor::zeros(elements, candle_core::DType::F32, device)?)))
    }

    /// Reads the whole buffer and writes as much again: every cache line the timed run could
    /// reuse is evicted.
    fn run(&self) -> Result<()> {
        if let Some(b) = &self.0 {
            drop(b.affine(1.0, 1.0)?);
        }
        Ok(())
    }
}

/// The verdict of `value` (the measured `what`, in `unit`) against `target` at `seq_len`,
/// shared by the performance and memory checks: over the target fails; under `target / margin`
/// fails as a stale target; a GPU-class target measured on the CPU adds a note and keeps the
/// verdict. Returns `(errors, notes, the target's value)`, all empty without a target.
pub(crate) fn judge(
    what: &str,
    value: f64,
    unit: &str,
    target: Option<&Target>,
    targets: &Targets,
    seq_len: usize,
    device: &Device,
) -> (Vec<String>, Vec<String>, Option<f64>) {
    let Some(target) = target else { return (Vec::new(), Vec::new(), None) };
    let t = target.at(seq_len);
    let (mut errors, mut notes) = (Vec::new(), Vec::new());
    if value > t {
        errors.push(format!("{what} {value:.3} {unit} > target {t:.3} {unit}"));
    } else if let Some(m) = targets.margin.filter(|m| value < t / m) {
        errors.push(format!("target {t:.3} {unit} is stale: {what} {value:.3} {unit} is more than {m}× below it; tighten the target"));
    }
    if targets.gpu_class && device.is_cpu() {
        notes.push(format!("GPU-class target ({t} {unit}) measured on cpu: expected to fail here"));
    }
    (errors, notes, Some(t))
}

pub(super) fn run(ctx: &Ctx) -> Result<CheckOutcome> {
    let spec = &ctx.case.spec;
    // On a CPU the same forward is also timed on one thread, for a third of the budget: the
    // latency depends on how many cores other processes leave free, the one-thread time
    // on the module's work, which is what a baseline comparison must judge. It runs first,
    // while rayon's workers sleep: right after multi-threaded runs they spin for a while, and
    // with another process on the second core one-thread runs then measured 2× slow.
    let work = if ctx.device.is_cpu() {
        let profile = one_thread_profile(&spec.profile);
        let (work, _) = super::serial::on_one_thread(|| {
            measure(ctx.device, &profile, || {
                ctx.module.forward(ctx.input)?;
                Ok(())
            })
        });
        Some(work?.samples_ms)
    } else {
        None
    };
    let timings = measure(ctx.device, &spec.profile, || {
        ctx.module.forward(ctx.input)?;
        Ok(())
    })?;
    let s = Summary::of(&timings.samples_ms);
    let mut metrics = BTreeMap::from([
        (Metric::MedianMs, s.median),
        (Metric::P10Ms, s.p10),
        (Metric::P90Ms, s.p90),
        (Metric::MinMs, s.min),
        (Metric::CiLowMs, s.ci_low),
        (Metric::CiHighMs, s.ci_high),
        (Metric::Iterations, s.n as f64),
    ]);
    metrics.extend(throughput(ctx.module.cost(&ctx.case.input_shape), s.median));
    let (errors, notes, target) = judge("median", s.median, "ms", spec.targets.latency_ms.as_ref(), &spec.targets, ctx.case.seq_len, ctx.device);
    if let Some(t) = target {
        metrics.insert(Metric::TargetMs, t);
    }
    if let Some(w) = &work {
        metrics.insert(Metric::WorkMedianMs, crate::stats::median(w));
    }
    let mut outcome = CheckOutcome::from_errors(metrics, errors);
    outcome.notes = notes;
    outcome.series.insert(Series::SamplesMs, timings.samples_ms);
    if let Some(w) = work {
        outcome.series.insert(Series::WorkSamplesMs, w);
    }
    Ok(outcome)
}

/// The profile of the one-thread timing on a CPU: a third of the budget after a single
/// warm-up run (the multi-threaded timing that follows warms up by time).
fn one_thread_profile(p: &Profile) -> Profile {
    Profile { budget: p.budget / 3, warmup_runs: Some(1), ..*p }
}

/// GFLOP/s and GB/s of a forward of `cost` taking `median_ms`, each left out when the module
/// does not count it (zero).
fn throughput(cost: crate::module::Cost, median_ms: f64) -> Vec<(Metric, f64)> {
    let seconds = median_ms / 1e3;
    [(Metric::Gflops, cost.flops), (Metric::Gbps, cost.bytes)].into_iter().filter(|(_, n)| *n > 0.0).map(|(m, n)| (m, n / seconds / 1e9)).collect()
}

/// The profile for each point of a sweep: the spec's warm-up, and a third of its timing budget,
/// so a sweep of a few lengths costs about as much as a performance check and the timed loop
/// still adapts its count to each length's cost.
pub(super) fn sweep_profile(p: &Profile) -> Profile {
    Profile { budget: p.budget / 3, ..*p }
}

/// Hand-built cases for the unit tests of the timing and memory checks, which the runner
/// would otherwise build from a plan.
#[cfg(test)]
pub(super) mod test_support {
    use crate::checks::{make_input, Ctx};
    use crate::error::Result;
    use crate::event::CheckOutcome;
    use crate::module::{ModuleUnderTest, NnModule};
    use crate::plan::Case;
    use crate::spec::{Check, Spec};
    use crate::tolerance::Tolerance;
    use candle_core::{DType, Device};
    use std::sync::Arc;
    use tensile_nn::init::SeededInit;

    /// An f32 CPU case of `module` on `input_shape` under `spec`.
    pub fn case(module: Arc<dyn ModuleUnderTest>, input_shape: Vec<usize>, check: Check, spec: Spec) -> Case {
        Case {
            index: 0,
            name: "unit".into(),
            module,
            dtype: DType::F32,
            device: "cpu".into(),
            seq_len: input_shape[1],
            input_shape,
            tolerance: Tolerance::for_dtype(DType::F32),
            checks: vec![check],
            spec: Arc::new(spec),
            tags: Vec::new(),
        }
    }

    /// Runs `check` on `case` with its seeded input, as the runner would.
    pub fn run(check: fn(&Ctx) -> Result<CheckOutcome>, case: &Case) -> Result<CheckOutcome> {
        let input = make_input(case.module.as_ref(), &case.input_shape, case.dtype, &Device::Cpu, case.spec.seed)?;
        check(&Ctx { case, module: &case.module, device: &Device::Cpu, input: &input })
    }

    /// A seeded RMSNorm of width `hidden`.
    pub fn rms_norm(hidden: usize) -> Arc<dyn ModuleUnderTest> {
        let vb = SeededInit::var_builder(0, DType::F32, &Device::Cpu);
        Arc::new(NnModule::new(tensile_nn::RmsNorm::new(hidden, 1e-6, vb).expect("rms norm builds")))
    }

    /// A seeded SwiGLU MLP.
    pub fn swiglu(hidden: usize, intermediate: usize) -> Arc<dyn ModuleUnderTest> {
        let vb = SeededInit::var_builder(0, DType::F32, &Device::Cpu);
        Arc::new(NnModule::new(tensile_nn::SwiGlu::new(hidden, intermediate, false, tensile_nn::Activation::Silu, vb).expect("swiglu builds")))
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{case, rms_norm};
    use super::*;
    use crate::spec::{latency_ms, Check, Spec};
    use std::time::Duration;

    #[test]
    fn the_one_thread_timing_gets_a_third_of_the_budget_after_one_warm_up_run() {
        let p = Profile { budget: Duration::from_secs(3), warmup_runs: None, iterations: Some(9), ..Profile::default() };
        let one = one_thread_profile(&p);
        assert_eq!((one.budget, one.warmup_runs, one.iterations, one.warmup), (Duration::from_secs(1), Some(1), Some(9), p.warmup));
    }

    #[test]
    fn throughput_is_work_over_the_median_time() {
        let cost = crate::module::Cost { flops: 4e9, bytes: 2e9 };
        // 4 GFLOP and 2 GB in 500 ms: 8 GFLOP/s and 4 GB/s.
        assert_eq!(throughput(cost, 500.0), vec![(Metric::Gflops, 8.0), (Metric::Gbps, 4.0)]);
        assert_eq!(throughput(crate::module::Cost { flops: 0.0, bytes: 2e9 }, 1000.0), vec![(Metric::Gbps, 2.0)]);
        assert!(throughput(crate::module::Cost::default(), 1.0).is_empty(), "an uncounted cost gives no rate");
    }

    #[test]
    fn the_timed_loop_is_sized_from_the_runs_after_the_first() {
        // Four warm-up runs in 1.0 s, of which the last three took 0.75 s: 0.25 s per run.
        assert_eq!(per_run_estimate(1.0, 0.75, 4), 0.25);
        assert_eq!(per_run_estimate(0.25, 0.0, 1), 0.25, "a single run is all there is");
        let budget = |s: f64| Profile { budget: Duration::from_secs_f64(s), iterations: None, ..Profile::default() };
        assert_eq!(timed_runs(&budget(2.0), 0.25), 8);
        assert_eq!(timed_runs(&budget(2.0), 1.0), 5, "at least five runs");
        assert_eq!(timed_runs(&budget(2.0), 1e-6), 1000, "at most a thousand");
        assert_eq!(timed_runs(&budget(2.0), 0.0), 1000, "an instant run is not a division by zero");
        assert_eq!(timed_runs(&Profile { iterations: Some(7), ..budget(2.0) }, 0.1), 7);
        assert_eq!(timed_runs(&Profile { iterations: Some(0), ..budget(2.0) }, 0.1), 1);
    }

    #[test]
    fn judge_fails_slow_and_stale_and_notes_gpu_targets_on_cpu() {
        let cpu = Device::Cpu;
        let t = latency_ms(5.0);
        let (e, n, target) = judge("median", 6.0, "ms", t.latency_ms.as_ref(), &t, 128, &cpu);
        assert_eq!(e, vec!["median 6.000 ms > target 5.000 ms".to_string()]);
        assert!(n.is_empty());
        assert_eq!(target, Some(5.0));
        let t = latency_ms(500.0).margin(10.0).gpu_class();
        let (e, n, _) = judge("median", 2.0, "ms", t.latency_ms.as_ref(), &t, 128, &cpu);
        assert!(e[0].contains("stale"));
        assert!(n[0].contains("GPU-class"));
        let (e, _, _) = judge("median", 60.0, "ms", t.latency_ms.as_ref(), &t, 128, &cpu);
        assert!(e.is_empty(), "within the margin: {e:?}");
        // Both bounds are inclusive: exactly the target, and exactly target / margin, pass.
        assert!(judge("median", 500.0, "ms", t.latency_ms.as_ref(), &t, 128, &cpu).0.is_empty());
        assert!(judge("median", 50.0, "ms", t.latency_ms.as_ref(), &t, 128, &cpu).0.is_empty());
        let per_seq = latency_ms(crate::spec::Target::PerSeqLen(std::sync::Arc::new(|s| s as f64 / 100.0)));
        // Target seq/100 ms: 2.56 ms at 256 (met by 2 ms), 1.28 ms at 128 (missed).
        assert!(judge("median", 2.0, "ms", per_seq.latency_ms.as_ref(), &per_seq, 256, &cpu).0.is_empty());
        assert!(!judge("median", 2.0, "ms", per_seq.latency_ms.as_ref(), &per_seq, 128, &cpu).0.is_empty());
    }

    #[test]
    fn measure_honours_fixed_counts() {
        let p = Profile { warmup_runs: Some(3), iterations: Some(7), ..Profile::default() };
        let mut calls = 0;
        let t = measure(&Device::Cpu, &p, || {
            calls += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!((t.warmup_runs, t.samples_ms.len(), calls), (3, 7, 10));
        let adaptive = measure(&Device::Cpu, &Profile { warmup: Duration::ZERO, budget: Duration::ZERO, ..Profile::default() }, || Ok(())).unwrap();
        assert_eq!(adaptive.samples_ms.len(), 5, "at least five timed runs");
        assert_eq!(adaptive.warmup_runs, 1, "a zero warm-up still makes one run");
        let zero = measure(&Device::Cpu, &Profile { iterations: Some(0), warmup_runs: Some(0), ..Profile::default() }, || Ok(())).unwrap();
        assert_eq!((zero.warmup_runs, zero.samples_ms.len()), (1, 1), "a zero count still measures once");
    }

    #[test]
    fn a_cache_flush_buffer_is_made_only_when_asked_for_and_runs_between_samples() {
        assert!(CacheFlush::new(&Device::Cpu, 0).unwrap().0.is_none());
        let flush = CacheFlush::new(&Device::Cpu, 2).unwrap();
        assert_eq!(flush.0.as_ref().unwrap().elem_count(), 2 * (1 << 20) / 4);
        flush.run().unwrap();
        let p = Profile { warmup_runs: Some(1), iterations: Some(4), flush_cache_mib: 2, ..Profile::default() };
        let t = measure(&Device::Cpu, &p, || Ok(())).unwrap();
        assert_eq!(t.samples_ms.len(), 4);
    }

    #[test]
    fn measure_propagates_errors_of_the_timed_function() {
        let mut calls = 0;
        let p = Profile { warmup_runs: Some(2), iterations: Some(5), ..Profile::default() };
        let err = measure(&Device::Cpu, &p, || {
            calls += 1;
            if calls == 4 {
                return Err(crate::Error::Candle(candle_core::Error::Msg("boom".into())));
            }
            Ok(())
        });
        assert!(err.is_err());
        assert_eq!(calls, 4, "measurement stops at the first error");
    }

    #[test]
    fn judge_names_stale_targets_and_keeps_the_verdict_of_gpu_targets() {
        let cpu = Device::Cpu;
        let t = latency_ms(500.0).margin(10.0);
        let (e, n, _) = judge("median", 2.1, "ms", t.latency_ms.as_ref(), &t, 128, &cpu);
        assert_eq!(e, vec!["target 500.000 ms is stale: median 2.100 ms is more than 10× below it; tighten the target".to_string()]);
        assert!(n.is_empty());
        // Slow against a GPU-class target: the failure stands and the note explains it.
        let t = latency_ms(5.0).gpu_class();
        let (e, n, _) = judge("median", 812.3, "ms", t.latency_ms.as_ref(), &t, 128, &cpu);
        assert_eq!(e, vec!["median 812.300 ms > target 5.000 ms".to_string()]);
        assert_eq!(n.len(), 1);
        assert!(n[0].contains("GPU-class target") && n[0].contains("measured on cpu: expected to fail here"), "{n:?}");
        let none = Targets::default();
        assert_eq!(judge("median", 1.0, "ms", None, &none, 128, &cpu), (vec![], vec![], None));
    }

    fn fast_spec(targets: Targets) -> Spec {
        Spec {
            targets,
            profile: Profile { warmup: Duration::ZERO, warmup_runs: Some(1), iterations: Some(5), budget: Duration::ZERO, flush_cache_mib: 0 },
            ..Spec::default()
        }
    }

    #[test]
    fn run_reports_latency_metrics_and_judges_the_target() {
        let norm = rms_norm(64);
        let shape = vec![2, 16, 64];
        let roomy = test_support::run(run, &case(norm.clone(), shape.clone(), Check::Performance, fast_spec(latency_ms(60_000.0)))).unwrap();
        assert!(roomy.passed, "{:?}", roomy.errors);
        for key in ["median_ms", "p10_ms", "p90_ms", "min_ms", "ci_low_ms", "ci_high_ms", "iterations", "target_ms"] {
            assert!(roomy.metrics.contains_key(key), "missing {key}: {:?}", roomy.metrics);
        }
        let m = &roomy.metrics;
        assert_eq!(m["iterations"], 5.0);
        assert_eq!(m["target_ms"], 60_000.0);
        assert!(m["min_ms"] <= m["p10_ms"] && m["p10_ms"] <= m["median_ms"] && m["median_ms"] <= m["p90_ms"]);
        assert!(m["ci_low_ms"] <= m["median_ms"] && m["median_ms"] <= m["ci_high_ms"]);
        // RMSNorm's cost model counts flops and bytes, so both rates are reported.
        assert!(m["gflops"] > 0.0 && m["gbps"] > 0.0, "{m:?}");

        // No forward takes less than a femtosecond, so this target always fails.
        let tight = test_support::run(run, &case(norm.clone(), shape.clone(), Check::Performance, fast_spec(latency_ms(1e-12)))).unwrap();
        assert!(!tight.passed);
        assert!(tight.errors[0].starts_with("median ") && tight.errors[0].ends_with("ms > target 0.000 ms"), "{:?}", tight.errors);

        let untargeted = test_support::run(run, &case(norm, shape, Check::Performance, fast_spec(Targets::default()))).unwrap();
        assert!(untargeted.passed && !untargeted.metrics.contains_key("target_ms"));
    }

    #[test]
    fn sweep_profile_takes_a_third_of_the_budget() {
        let p = Profile { budget: Duration::from_millis(300), ..Profile::default() };
        let s = sweep_profile(&p);
        assert_eq!(s.budget, Duration::from_millis(100));
        assert_eq!((s.warmup, s.warmup_runs, s.iterations), (p.warmup, p.warmup_runs, p.iterations));
    }
}
