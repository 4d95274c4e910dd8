//! Peak memory of one forward pass against the memory target.

use super::Ctx;
use crate::error::Result;
use crate::event::CheckOutcome;
use std::collections::BTreeMap;

const MIB: f64 = 1024.0 * 1024.0;

pub(super) fn run(ctx: &Ctx) -> Result<CheckOutcome> {
    if !ctx.device.is_cpu() {
        return Ok(CheckOutcome::skip("device memory measurement is not implemented yet"));
    }
    if !crate::alloc::is_installed() {
        return Ok(CheckOutcome::skip("memory counting needs the counting allocator (tensile::install_counting_allocator!) in this binary"));
    }
    // One untimed forward first, so one-off lazy allocations do not count as the module's.
    drop(ctx.module.forward(ctx.input)?);
    let (out, peak) = crate::alloc::measure_peak(|| ctx.module.forward(ctx.input));
    drop(out?);
    let peak_mb = peak.unwrap_or(0) as f64 / MIB;
    let param_bytes: usize = ctx.module.parameters().iter().map(|(_, t)| t.elem_count() * t.dtype().size_in_bytes()).sum();
    let mut metrics = BTreeMap::from([("peak_mb".to_string(), peak_mb), ("param_mb".to_string(), param_bytes as f64 / MIB)]);
    let spec = &ctx.case.spec;
    let (errors, notes, target) =
        super::performance::judge("peak", peak_mb, "MB", spec.targets.memory_mb.as_ref(), &spec.targets, ctx.case.seq_len, ctx.device);
    if let Some(t) = target {
        metrics.insert("target_mb".to_string(), t);
    }
    let mut outcome = CheckOutcome::from_errors(metrics, errors);
    outcome.notes = notes;
    Ok(outcome)
}
