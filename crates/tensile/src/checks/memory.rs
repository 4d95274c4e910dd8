//! Peak memory of one forward pass against the memory target.

use super::Ctx;
use crate::error::Result;
use crate::event::CheckOutcome;
use crate::keys::Metric;
use std::collections::BTreeMap;

pub(super) const MIB: f64 = 1024.0 * 1024.0;

/// Peak bytes of one forward of `f` on `device`: the counting allocator on the CPU, the CUDA
/// memory pool's high-water mark on a GPU ([`crate::device_memory`]). `Err` carries the reason
/// it cannot be measured here.
pub fn peak_bytes<T, E>(device: &candle_core::Device, f: impl FnOnce() -> std::result::Result<T, E>) -> Result<std::result::Result<u64, String>>
where
    crate::Error: From<E>,
{
    if device.is_cpu() {
        if !crate::alloc::is_installed() {
            return Ok(Err("memory counting needs the counting allocator (tensile::install_counting_allocator!) in this binary".into()));
        }
        let (out, peak) = crate::alloc::measure_peak(f);
        drop(out?);
        return Ok(Ok(peak.unwrap_or(0) as u64));
    }
    if !crate::device_memory::can_measure(device) {
        return Ok(Err("peak memory on this device needs a build with the `cuda` feature and a driver with memory pools".into()));
    }
    let (out, peak) = crate::device_memory::measure_peak(device, f)?;
    drop(out?);
    Ok(peak.ok_or_else(|| "the device's memory pool did not report a peak".to_string()))
}

pub(super) fn run(ctx: &Ctx) -> Result<CheckOutcome> {
    // One untimed forward first, so one-off lazy allocations do not count as the module's.
    drop(ctx.module.forward(ctx.input)?);
    let peak_mb = match peak_bytes(ctx.device, || ctx.module.forward(ctx.input))? {
        Ok(p) => p as f64 / MIB,
        Err(why) => return Ok(CheckOutcome::skip(why)),
    };
    let params = ctx.module.parameters();
    let dense_bytes: usize = params.iter().map(|(_, t)| t.elem_count() * t.dtype().size_in_bytes()).sum();
    let param_bytes = ctx.module.parameter_bytes();
    let mut metrics = BTreeMap::from([(Metric::PeakMb, peak_mb), (Metric::ParamMb, param_bytes as f64 / MIB)]);
    // Quantized weights are stored smaller than their dense view, adapters add bytes of their
    // own: both get their numbers, which are what such a module is declared for.
    let adapter_bytes: usize =
        params.iter().filter(|(n, _)| tensile_nn::lora::is_adapter_parameter(n)).map(|(_, t)| t.elem_count() * t.dtype().size_in_bytes()).sum();
    if adapter_bytes > 0 {
        metrics.insert(Metric::AdapterMb, adapter_bytes as f64 / MIB);
    }
    if adapter_bytes > 0 || param_bytes != dense_bytes {
        let count: usize = params.iter().map(|(_, t)| t.elem_count()).sum();
        metrics.insert(Metric::BitsPerParam, 8.0 * param_bytes as f64 / count.max(1) as f64);
    }
    let spec = &ctx.case.spec;
    let (errors, notes, target) =
        super::performance::judge("peak", peak_mb, "MB", spec.targets.memory_mb.as_ref(), &spec.targets, ctx.case.seq_len, ctx.device);
    if let Some(t) = target {
        metrics.insert(Metric::TargetMb, t);
    }
    let mut outcome = CheckOutcome::from_errors(metrics, errors);
    outcome.notes = notes;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::super::performance::test_support::{case, rms_norm};
    use super::*;
    use crate::spec::{memory_mb, Check, Spec};

    #[test]
    fn skips_with_the_remedy_when_the_counting_allocator_is_not_installed() {
        // The library's unit-test binary does not install the allocator; the integration test
        // `tests/alloc.rs` covers the measuring path in a binary that does.
        assert!(!crate::alloc::is_installed());
        let c = case(rms_norm(64), vec![1, 8, 64], Check::Memory, Spec { targets: memory_mb(1.0), ..Spec::default() });
        let outcome = super::super::performance::test_support::run(run, &c).unwrap();
        assert!(outcome.passed);
        assert_eq!(outcome.skipped.as_deref(), Some("memory counting needs the counting allocator (tensile::install_counting_allocator!) in this binary"));
    }
}
