//! Fits the exponent of time (and memory) against sequence length and judges it against the
//! expected scaling.

use super::{make_input, measure, Ctx};
use crate::error::Result;
use crate::event::CheckOutcome;
use crate::stats::fit_power_law;
use std::collections::BTreeMap;

pub(super) fn run(ctx: &Ctx) -> Result<CheckOutcome> {
    let spec = &ctx.case.spec;
    let Some(sweep) = &spec.sweep else { return Ok(CheckOutcome::skip("no sequence-length sweep declared")) };
    let mut lengths = sweep.seq_lengths.clone();
    lengths.sort_unstable();
    lengths.dedup();
    let profile = super::performance::sweep_profile(&spec.profile, lengths.len());
    let (mut times, mut mems, mut flops) = (Vec::new(), Vec::new(), Vec::new());
    let mut metrics = BTreeMap::new();
    for &len in &lengths {
        let mut shape = ctx.case.input_shape.clone();
        shape[1] = len;
        let x = make_input(ctx.module.as_ref(), &shape, ctx.case.dtype, ctx.device, spec.seed)?;
        let t = measure(ctx.device, &profile, || {
            ctx.module.forward(&x)?;
            Ok(())
        })?;
        // The minimum is the least noise-sensitive estimate of the computation's own cost on a
        // shared machine: interference only ever adds time.
        let min = t.samples_ms.iter().copied().fold(f64::INFINITY, f64::min);
        metrics.insert(format!("ms_at_{len}"), min);
        times.push(min);
        if ctx.device.is_cpu() {
            if let (out, Some(peak)) = crate::alloc::measure_peak(|| ctx.module.forward(&x)) {
                drop(out?);
                mems.push(peak.max(1) as f64);
            }
        }
        flops.push(ctx.module.cost(&shape).flops);
    }
    let xs: Vec<f64> = lengths.iter().map(|&l| l as f64).collect();
    let from_cost = fit_power_law(&xs, &flops).map_or(1.0, |f| f.exponent);
    let (expected, tolerance) = sweep.expect.expectation(from_cost);
    let Some(fit) = fit_power_law(&xs, &times) else {
        return Ok(CheckOutcome::fail(format!("cannot fit a power law to the timings {times:?}")));
    };
    metrics.extend([
        ("exponent".to_string(), fit.exponent),
        ("exponent_ci_low".to_string(), fit.ci_low),
        ("exponent_ci_high".to_string(), fit.ci_high),
        ("expected_exponent".to_string(), expected),
        ("tolerance".to_string(), tolerance),
        ("r2".to_string(), fit.r2),
    ]);
    if let Some(m) = fit_power_law(&xs, &mems) {
        metrics.insert("memory_exponent".to_string(), m.exponent);
    }
    let mut errors = Vec::new();
    if !((fit.exponent - expected).abs() <= tolerance) {
        errors
            .push(format!("time grows as seq^{:.2} (95% CI {:.2}–{:.2}); expected seq^{expected:.2} ± {tolerance:.2}", fit.exponent, fit.ci_low, fit.ci_high));
    }
    Ok(CheckOutcome::from_errors(metrics, errors))
}
