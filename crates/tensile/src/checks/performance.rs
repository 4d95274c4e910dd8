//! Latency: time-based warm-up, an adaptive number of timed runs, robust statistics, roofline
//! rates from the module's cost model, and the verdict against the latency target.

use super::{synchronize, Ctx};
use crate::error::Result;
use crate::event::CheckOutcome;
use crate::spec::{Profile, Target, Targets};
use crate::stats::Summary;
use candle_core::Device;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

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
    loop {
        f()?;
        warmup_runs += 1;
        let done = match profile.warmup_runs {
            Some(n) => warmup_runs >= n.max(1),
            None => started.elapsed() >= profile.warmup,
        };
        if done {
            break;
        }
    }
    synchronize(device)?;
    let per_run = started.elapsed().as_secs_f64() / warmup_runs as f64;
    let n = profile.iterations.unwrap_or_else(|| (profile.budget.as_secs_f64() / per_run.max(1e-9)).clamp(5.0, 1000.0) as usize);
    let mut samples_ms = Vec::with_capacity(n);
    for _ in 0..n {
        synchronize(device)?;
        let t = Instant::now();
        f()?;
        synchronize(device)?;
        samples_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(Timings { samples_ms, warmup_runs })
}

/// The verdict of `value` against `target` at `seq_len`, with the stale-target margin and the
/// GPU-class note. Returns `(errors, notes)`.
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
    let timings = measure(ctx.device, &spec.profile, || {
        ctx.module.forward(ctx.input)?;
        Ok(())
    })?;
    let s = Summary::of(&timings.samples_ms);
    let mut metrics = BTreeMap::from([
        ("median_ms".to_string(), s.median),
        ("p10_ms".to_string(), s.p10),
        ("p90_ms".to_string(), s.p90),
        ("min_ms".to_string(), s.min),
        ("ci_low_ms".to_string(), s.ci_low),
        ("ci_high_ms".to_string(), s.ci_high),
        ("iterations".to_string(), s.n as f64),
    ]);
    let cost = ctx.module.cost(&ctx.case.input_shape);
    let seconds = s.median / 1e3;
    if cost.flops > 0.0 {
        metrics.insert("gflops".to_string(), cost.flops / seconds / 1e9);
    }
    if cost.bytes > 0.0 {
        metrics.insert("gbps".to_string(), cost.bytes / seconds / 1e9);
    }
    let (errors, notes, target) = judge("median", s.median, "ms", spec.targets.latency_ms.as_ref(), &spec.targets, ctx.case.seq_len, ctx.device);
    if let Some(t) = target {
        metrics.insert("target_ms".to_string(), t);
    }
    let mut outcome = CheckOutcome::from_errors(metrics, errors);
    outcome.notes = notes;
    Ok(outcome)
}

/// A shorter profile for each point of a sweep.
pub(super) fn sweep_profile(p: &Profile, points: usize) -> Profile {
    let share = |d: Duration| d / points.max(1) as u32;
    Profile { warmup: share(p.warmup), budget: share(p.budget).max(Duration::from_millis(20)), ..*p }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::latency_ms;

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
    }
}
