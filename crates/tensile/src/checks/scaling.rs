//! Fits how the time (and memory) of a module grows with the sequence length, and judges the
//! growth against the declaration.
//!
//! # The time model
//! A forward's time is `overhead + growing(seq)`: a fixed part (dispatch, allocation, reading
//! the weights) that does not depend on the sequence length, and a growing part made of the
//! terms of the module's cost (projections grow as `seq`, attention scores as `seq²`). A plain
//! log-log slope of the total time mixes the two: a large fixed overhead pulls a linear module
//! towards `seq^0.5`. So the check measures the overhead directly, at sequence length 1, where
//! the growing part is negligible, and judges the declared growth on `time − overhead` only.
//!
//! Two more things would make the slope depend on the machine rather than on the module, and
//! both are removed by measuring on one thread (a one-thread pool, and gemm's serial path:
//! see `checks/serial.rs`):
//! - how well each length parallelises (a short sequence runs on one core, a long one on all);
//! - how many cores other processes leave free, which changes from run to run.
//!
//! `Scaling::FromCost` expects the growth of the module's own cost model. The cost's terms
//! (found by evaluating the cost at three lengths) run at different rates on real hardware:
//! the matmuls near peak FLOP rate, the `seq²` score traffic at cache or DRAM bandwidth. So the
//! expectation is the range of exponents that a non-negative mix of those terms can produce,
//! `[lowest degree, highest degree]`, widened by the default tolerance; for attention that is
//! `seq^1`–`seq^2`, for an MLP exactly `seq^1`.

use super::serial::on_one_thread;
use super::{make_input, measure, Ctx};
use crate::error::Result;
use crate::event::CheckOutcome;
use crate::keys::{Metric, Series};
use crate::spec::{Profile, Scaling};
use crate::stats::{fit_growth, fit_power_law, Growth};
use std::collections::BTreeMap;

/// Passes over the sweep. Each length is timed in every pass, so its samples are spread over
/// the whole check: a burst of load from other processes then slows a few samples of every
/// length instead of all samples of the one length that happened to be running.
const PASSES: usize = 3;

/// Sweeps at most, when the growth of the first misses the declaration.
const SWEEPS: usize = 3;

/// The profile of one length in pass `pass`, given the sweep's per-length `profile` and the
/// best time of that length so far. The first pass warms up as the spec says and adapts its
/// count; later passes need one warm-up run (to bring the length's data back into cache) and
/// size their count from the first pass's best time, so a slow module is not run five more
/// times per pass.
fn pass_profile(profile: &Profile, pass: usize, best_ms: f64) -> Profile {
    let budget = profile.budget / PASSES as u32;
    let fixed = profile.iterations.map(|n| n.div_ceil(PASSES));
    if pass == 0 {
        return Profile { budget, iterations: fixed, ..*profile };
    }
    let adaptive = || (budget.as_secs_f64() * 1e3 / best_ms).clamp(1.0, 1000.0) as usize;
    Profile { warmup_runs: Some(1), iterations: Some(fixed.unwrap_or_else(adaptive)), budget, ..*profile }
}

/// The degrees of the terms of `work(seq)` (a cost that is a polynomial of degree ≤ 2 in the
/// sequence length) that matter at `longest`: the coefficients of `seq` and `seq²` from three
/// evaluations, each counted when it makes at least 1% of the growing work there.
pub(crate) fn degrees(work: impl Fn(usize) -> f64, longest: usize) -> Vec<u32> {
    let m = longest.max(1) as f64;
    let (c1, c2, c3) = (work(longest), work(2 * longest), work(3 * longest));
    let quadratic = (c3 - 2.0 * c2 + c1) / (2.0 * m * m);
    let linear = (c2 - c1) / m - 3.0 * quadratic * m;
    let (lin, quad) = ((linear * m).max(0.0), (quadratic * m * m).max(0.0));
    let total = lin + quad;
    if !(total.is_finite() && total > 0.0) {
        return Vec::new();
    }
    [(1, lin), (2, quad)].into_iter().filter(|(_, part)| *part >= 0.01 * total).map(|(d, _)| d).collect()
}

/// The lowest and highest degree among the FLOP and byte terms of the module's cost, or `None`
/// when the cost does not grow with the sequence length (a module without a cost model).
fn cost_degrees(ctx: &Ctx, longest: usize) -> Option<(f64, f64)> {
    let at = |seq: usize| {
        let mut shape = ctx.case.input_shape.clone();
        shape[1] = seq;
        ctx.module.cost(&shape)
    };
    let mut all = degrees(|s| at(s).flops, longest);
    all.extend(degrees(|s| at(s).bytes, longest));
    Some((f64::from(*all.iter().min()?), f64::from(*all.iter().max()?)))
}

pub(super) fn run(ctx: &Ctx) -> Result<CheckOutcome> {
    let spec = &ctx.case.spec;
    let Some(sweep) = &spec.sweep else { return Ok(CheckOutcome::skip("no sequence-length sweep declared")) };
    let mut lengths = sweep.seq_lengths.clone();
    lengths.sort_unstable();
    lengths.dedup();
    let longest = *lengths.last().unwrap_or(&1);
    let profile = super::performance::sweep_profile(&spec.profile);
    let mut notes = Vec::new();
    // Index 0 is the overhead probe at sequence length 1, timed like every other length.
    let probe_lengths: Vec<usize> = std::iter::once(1).chain(lengths.iter().copied()).collect();
    let mut inputs = Vec::with_capacity(probe_lengths.len());
    for &len in &probe_lengths {
        let mut shape = ctx.case.input_shape.clone();
        shape[1] = len;
        inputs.push(make_input(ctx.module.as_ref(), &shape, ctx.case.dtype, ctx.device, spec.seed)?);
    }
    let probe_runs = ctx.module.forward(&inputs[0]).is_ok();
    if !probe_runs {
        notes.push("the module does not run at sequence length 1, so the fixed overhead is not separated: the growth is judged on the whole time".to_string());
    }
    let xs: Vec<f64> = lengths.iter().map(|&l| l as f64).collect();
    let cost = cost_degrees(ctx, longest);
    if cost.is_none() && sweep.expect == Scaling::FromCost {
        notes.push("the module's cost model does not grow with the sequence length: expecting linear growth".to_string());
    }
    let (expected, tolerance) = sweep.expect.expectation(cost.unwrap_or((1.0, 1.0)));
    // A sweep whose growth misses the declaration is measured again, up to SWEEPS times, each
    // length keeping its fastest time over all of them: on a loaded machine one length can
    // run slowly for every pass of a sweep (a state of the process lasting seconds), while a
    // wrong declaration stays wrong however often it is measured.
    let (mut best, mut mems, mut sweeps) = (Vec::<f64>::new(), Vec::new(), 0);
    let (overhead, growth) = loop {
        let (timed, one_thread) = on_one_thread(|| time_sweep(ctx, &inputs, &profile, probe_runs));
        let (times, m) = timed?;
        if !one_thread && sweeps == 0 {
            notes.push("no single-thread pool could be made: the sweep was timed on every core".to_string());
        }
        best = if best.is_empty() { times } else { best.iter().zip(&times).map(|(a, b)| a.min(*b)).collect() };
        if mems.is_empty() {
            mems = m;
        }
        sweeps += 1;
        let overhead = if probe_runs { best[0] } else { 0.0 };
        let growth = fit_growth(&xs, &best[1..], overhead);
        if settled(growth.exponent(), expected, tolerance, sweeps) {
            break (overhead, growth);
        }
    };
    if sweeps > 1 {
        notes.push(format!("measured in {sweeps} sweeps: the first missed the declaration, so each length keeps its fastest time over all of them"));
    }
    let times = best[1..].to_vec();
    let Some(raw) = fit_power_law(&xs, &times) else {
        return Ok(CheckOutcome::fail(format!("cannot fit a power law to the timings {times:?}")));
    };
    let mut metrics = BTreeMap::from([
        (Metric::RawExponent, raw.exponent),
        (Metric::OverheadMs, overhead),
        (Metric::ExpectedExponent, expected),
        (Metric::Tolerance, tolerance),
    ]);
    if let Some((lo, hi)) = cost {
        metrics.extend([(Metric::CostDegreeLow, lo), (Metric::CostDegreeHigh, hi)]);
    }
    let exponent = growth.exponent();
    metrics.insert(Metric::Exponent, exponent);
    if let Growth::Fitted(fit) = &growth {
        metrics.extend([(Metric::ExponentCiLow, fit.ci_low), (Metric::ExponentCiHigh, fit.ci_high), (Metric::R2, fit.r2), (Metric::Intercept, fit.intercept)]);
    }
    if let Some(m) = fit_power_law(&xs, &mems) {
        metrics.insert(Metric::MemoryExponent, m.exponent);
    }
    let mut series = BTreeMap::from([(Series::SeqLen, xs), (Series::GrowthMs, times.iter().map(|t| t - overhead).collect()), (Series::Ms, times)]);
    if let Some(mb) = mebibytes(&mems, lengths.len()) {
        series.insert(Series::Mb, mb);
    }
    let mut errors = Vec::new();
    if !meets(exponent, expected, tolerance) {
        let measured = match &growth {
            Growth::Fitted(f) => format!("time grows as seq^{:.2} (95% CI {:.2}–{:.2})", f.exponent, f.ci_low, f.ci_high),
            Growth::Flat => "time grows as seq^0.00 (less than a tenth of the time at the longest length grows)".to_string(),
        };
        errors.push(format!("{measured} above a fixed overhead of {overhead:.3} ms; expected seq^{expected:.2} ± {tolerance:.2}"));
    }
    Ok(CheckOutcome { series, notes, ..CheckOutcome::from_errors(metrics, errors) })
}

/// Whether the sweep is done after `sweeps` sweeps: the growth meets the declaration, or the
/// last sweep allowed has run.
fn settled(exponent: f64, expected: f64, tolerance: f64, sweeps: usize) -> bool {
    meets(exponent, expected, tolerance) || sweeps == SWEEPS
}

/// Whether the growth `exponent` is within `tolerance` of the declared one; a NaN exponent
/// never is (the comparison is written as "within", which NaN fails).
fn meets(exponent: f64, expected: f64, tolerance: f64) -> bool {
    (exponent - expected).abs() <= tolerance
}

/// The peak of every length in MiB, when every length has one (a binary without the counting
/// allocator measures none).
fn mebibytes(peaks: &[f64], lengths: usize) -> Option<Vec<f64>> {
    (peaks.len() == lengths).then(|| peaks.iter().map(|b| b / super::memory::MIB).collect())
}

/// Memory is measured in the first pass only, for every length but the overhead probe.
fn measures_memory(pass: usize, index: usize) -> bool {
    pass == 0 && index > 0
}

/// Times every input (index 0 is the overhead probe, skipped when it cannot run) in
/// interleaved passes and keeps each one's minimum: interference from other work only ever
/// adds time, so the minimum is the least noise-sensitive estimate of the computation's cost.
/// Memory is measured once per sweep length, after the first timing has warmed it up.
fn time_sweep(ctx: &Ctx, inputs: &[candle_core::Tensor], profile: &Profile, probe_runs: bool) -> Result<(Vec<f64>, Vec<f64>)> {
    let mut times = vec![f64::INFINITY; inputs.len()];
    let mut mems = Vec::new();
    let skip = usize::from(!probe_runs);
    for pass in 0..PASSES {
        for (i, x) in inputs.iter().enumerate().skip(skip) {
            let t = measure(ctx.device, &pass_profile(profile, pass, times[i]), || {
                ctx.module.forward(x)?;
                Ok(())
            })?;
            times[i] = t.samples_ms.iter().copied().fold(times[i], f64::min);
            if measures_memory(pass, i) {
                if let Ok(Ok(peak)) = super::memory::peak_bytes(ctx.device, || ctx.module.forward(x)) {
                    mems.push(peak.max(1) as f64);
                }
            }
        }
    }
    Ok((times, mems))
}

#[cfg(test)]
mod tests {
    use super::super::performance::test_support::{case, run as run_check, swiglu};
    use super::*;
    use crate::spec::{Check, Profile, Scaling, Spec, Sweep};
    use std::time::Duration;

    fn sweep_case(expect: Scaling, profile: Profile) -> crate::plan::Case {
        let spec = Spec { sweep: Some(Sweep { seq_lengths: vec![512, 64, 256, 128], expect }), profile, ..Spec::default() };
        case(swiglu(128, 512), vec![1, 64, 128], Check::Scaling, spec)
    }

    fn timed_sweep_case(expect: Scaling) -> crate::plan::Case {
        sweep_case(
            expect,
            // A short warm-up and budget keep the test cheap (about 0.3 s a run); the fit uses
            // each length's minimum time over interleaved passes on one thread, which a busy
            // machine can only raise, so few runs suffice.
            Profile { warmup: Duration::from_millis(10), budget: Duration::from_millis(150), ..Profile::default() },
        )
    }

    #[test]
    fn a_swiglu_mlp_scales_linearly_and_fails_a_quadratic_declaration() {
        // Timed on one thread with the overhead taken out, this MLP's growing part is linear on
        // an idle and on a busy machine alike, so the default ±0.3 is used.
        let linear = run_check(run, &timed_sweep_case(Scaling::Linear)).unwrap();
        let m = &linear.metrics;
        assert!(linear.passed, "declared linear: {:?} {m:?}", linear.errors);
        assert_eq!((m["expected_exponent"], m["tolerance"]), (1.0, 0.3));
        assert!(m["exponent_ci_low"] <= m["exponent"] && m["exponent"] <= m["exponent_ci_high"], "{m:?}");
        assert!(m["overhead_ms"] > 0.0 && m["raw_exponent"] <= m["exponent"] + 0.05, "the overhead only flattens the raw slope: {m:?}");
        let (ms, growth) = (&linear.series["ms"], &linear.series["growth_ms"]);
        assert_eq!(ms.len(), 4);
        for (t, g) in ms.iter().zip(growth) {
            assert!((t - g - m["overhead_ms"]).abs() < 1e-12, "growth is time minus overhead");
        }
        assert!(ms[0] < ms[3], "eight times the tokens must take longer: {ms:?}");
        // The lib test binary has no counting allocator, so no memory exponent is claimed.
        assert!(!m.contains_key("memory_exponent"));
        // The probe ran, the cost grows and the sweep ran on one thread: nothing to note but,
        // perhaps, repeated sweeps.
        assert!(linear.notes.iter().all(|n| n.starts_with("measured in ")), "{:?}", linear.notes);

        let quadratic = run_check(run, &timed_sweep_case(Scaling::Quadratic)).unwrap();
        assert!(!quadratic.passed, "a linear block declared quadratic must fail: {:?}", quadratic.metrics);
        let msg = &quadratic.errors[0];
        assert!(msg.starts_with("time grows as seq^") && msg.contains("(95% CI ") && msg.contains("above a fixed overhead of "), "{msg}");
        assert!(msg.ends_with("; expected seq^2.00 ± 0.30"), "{msg}");
        // A declaration that stays wrong is measured in every sweep allowed, and says so.
        assert!(quadratic.notes.iter().any(|n| n.starts_with(&format!("measured in {SWEEPS} sweeps"))), "{:?}", quadratic.notes);

        // The cost model of the MLP is exactly linear in the tokens, so `FromCost` expects 1 ±
        // 0.3; the expectation does not depend on the timings, so one run per length will do.
        let once = Profile { warmup_runs: Some(1), iterations: Some(1), ..Profile::default() };
        let from_cost = run_check(run, &sweep_case(Scaling::FromCost, once)).unwrap();
        let m = &from_cost.metrics;
        assert_eq!((m["expected_exponent"], m["tolerance"], m["cost_degree_low"], m["cost_degree_high"]), (1.0, 0.3, 1.0, 1.0), "{m:?}");
        assert!(from_cost.notes.iter().all(|n| n.starts_with("measured in ")), "{:?}", from_cost.notes);
    }

    /// `2x`, with no cost model, refusing inputs of one position when `refuses_one` is set.
    struct Doubler {
        refuses_one: bool,
    }

    impl crate::ModuleUnderTest for Doubler {
        fn kind(&self) -> &str {
            "doubler"
        }
        fn forward(&self, x: &candle_core::Tensor) -> candle_core::Result<candle_core::Tensor> {
            if self.refuses_one && x.dim(1)? == 1 {
                candle_core::bail!("needs two positions");
            }
            x * 2.0
        }
    }

    #[test]
    fn a_sweep_settles_on_a_met_declaration_or_its_last_pass() {
        assert!(settled(1.25, 1.0, 0.25, 1), "the tolerance is inclusive");
        assert!(settled(-1.0, -1.2, 0.3, 1) && settled(0.8, 1.0, 0.3, 1));
        assert!(!settled(1.5, 1.0, 0.3, 1) && !settled(0.5, 1.0, 0.3, SWEEPS - 1));
        assert!(settled(1.5, 1.0, 0.3, SWEEPS), "the last sweep ends it either way");
        assert!(!settled(f64::NAN, 1.0, 0.3, 1));
        assert_eq!(mebibytes(&[1048576.0, 3145728.0], 2), Some(vec![1.0, 3.0]));
        assert_eq!(mebibytes(&[], 2), None, "no peaks, no series");
        assert!(measures_memory(0, 1) && measures_memory(0, 4));
        assert!(!measures_memory(0, 0) && !measures_memory(1, 1));
    }

    #[test]
    fn notes_say_what_the_sweep_could_not_do() {
        let once = Profile { warmup_runs: Some(1), iterations: Some(1), ..Profile::default() };
        let outcome = |refuses_one: bool, expect: Scaling| {
            let spec = Spec { sweep: Some(Sweep { seq_lengths: vec![64, 128, 256], expect }), profile: once, ..Spec::default() };
            run_check(run, &case(std::sync::Arc::new(Doubler { refuses_one }), vec![1, 64, 8], Check::Scaling, spec)).unwrap()
        };
        let has = |o: &CheckOutcome, text: &str| o.notes.iter().any(|n| n.contains(text));
        let (probe, cost) = ("does not run at sequence length 1", "cost model does not grow with the sequence length");
        let refused = outcome(true, Scaling::Linear);
        assert!(has(&refused, probe) && !has(&refused, cost), "{:?}", refused.notes);
        assert_eq!(refused.metrics[&Metric::OverheadMs], 0.0, "no probe, no overhead");
        let from_cost = outcome(false, Scaling::FromCost);
        assert!(has(&from_cost, cost) && !has(&from_cost, probe), "{:?}", from_cost.notes);
        assert_eq!(from_cost.metrics[&Metric::ExpectedExponent], 1.0);
        let linear = outcome(false, Scaling::Linear);
        assert!(!has(&linear, cost), "a declared exponent needs no cost model: {:?}", linear.notes);
        // Any growth meets this declaration: one sweep, nothing repeated.
        let anything = outcome(false, Scaling::Exponent { value: 0.0, tolerance: 100.0 });
        assert!(!has(&anything, "measured in"), "{:?}", anything.notes);
        assert!(!anything.series.contains_key(&Series::Mb), "no counting allocator here, so no memory series");
    }

    #[test]
    fn cost_degrees_name_the_terms_that_matter_at_the_longest_length() {
        // 5 + 3s + s²/100 at 1000: the linear part is 3000, the quadratic 10000: both count.
        assert_eq!(degrees(|s| 5.0 + 3.0 * s as f64 + (s * s) as f64 / 100.0, 1000), vec![1, 2]);
        // 3s + s²/1e6 at 100: the quadratic part is 0.01 of 300, under 1%.
        assert_eq!(degrees(|s| 3.0 * s as f64 + (s * s) as f64 / 1e6, 100), vec![1]);
        assert_eq!(degrees(|s| (s * s) as f64, 64), vec![2]);
        assert!(degrees(|_| 7.0, 64).is_empty(), "a constant cost does not grow");
        assert!(degrees(|_| f64::NAN, 64).is_empty());
        // The expectations these give.
        assert_eq!(Scaling::FromCost.expectation((1.0, 2.0)), (1.5, 0.8));
        assert_eq!(Scaling::FromCost.expectation((1.0, 1.0)), (1.0, 0.3));
        assert_eq!(Scaling::Constant.expectation((1.0, 2.0)), (0.0, 0.3));
        assert_eq!(Scaling::Exponent { value: 1.5, tolerance: 0.1 }.expectation((2.0, 2.0)), (1.5, 0.1));
    }

    #[test]
    fn attention_cost_grows_as_seq_and_seq_squared() {
        let vb = tensile_nn::init::SeededInit::var_builder(0, candle_core::DType::F32, &candle_core::Device::Cpu);
        let cfg = tensile_nn::AttentionConfig {
            hidden_size: 64,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            head_dim: 16,
            attention_bias: false,
            causal: true,
            rope: Some((10_000.0, None)),
        };
        let attn: std::sync::Arc<dyn crate::ModuleUnderTest> = std::sync::Arc::new(crate::NnModule::new(tensile_nn::Attention::new(&cfg, vb).unwrap()));
        let c = case(attn, vec![1, 64, 64], Check::Scaling, Spec::default());
        let input = make_input(c.module.as_ref(), &c.input_shape, c.dtype, &candle_core::Device::Cpu, 0).unwrap();
        let ctx = Ctx { case: &c, module: &c.module, device: &candle_core::Device::Cpu, input: &input };
        assert_eq!(cost_degrees(&ctx, 512), Some((1.0, 2.0)));
    }

    #[test]
    fn later_passes_warm_up_once_and_size_their_count_from_the_best_time() {
        let p = Profile { warmup: Duration::from_millis(50), warmup_runs: None, iterations: None, budget: Duration::from_millis(90), flush_cache_mib: 0 };
        let first = pass_profile(&p, 0, f64::INFINITY);
        assert_eq!(first, Profile { budget: Duration::from_millis(30), ..p });
        // 30 ms per pass at 2 ms a run is 15 runs; a run slower than the pass's budget runs once.
        assert_eq!(pass_profile(&p, 1, 2.0), Profile { warmup_runs: Some(1), iterations: Some(15), budget: Duration::from_millis(30), ..p });
        assert_eq!(pass_profile(&p, 2, 500.0).iterations, Some(1));
        // A fixed count is shared between the passes, rounding up.
        let fixed = Profile { iterations: Some(10), ..p };
        assert_eq!(pass_profile(&fixed, 0, f64::INFINITY).iterations, Some(4));
        assert_eq!(pass_profile(&fixed, 2, 2.0).iterations, Some(4));
    }

    #[test]
    fn skips_without_a_sweep() {
        let c = case(swiglu(16, 32), vec![1, 4, 16], Check::Scaling, Spec::default());
        let outcome = run_check(run, &c).unwrap();
        assert!(outcome.passed && outcome.skipped.is_some());
    }
}
