//! `tensile bench`: a preset's attention, MLP and norm at several sequence lengths, timed and
//! measured by tensile's own runner, next to PyTorch's numbers for the same modules from the
//! same machine (a JSON file of `{case key: {ms, peak_mb}}`), with the roofline floor from
//! ceilings measured in the same process.
//!
//! The floor of a case is `max(FLOPs / matmul rate, bytes / copy bandwidth)` from the module's
//! cost model; `% of floor` is floor / measured time (100% is the hardware limit).

use crate::checks::measure;
use crate::device::{dtype_name, parse_device};
use crate::error::{Error, Result};
use crate::keys::Metric;
use crate::plan::{Plan, Settings};
use crate::presets::Preset;
use crate::runner::{self, RunOptions};
use crate::spec::{Check, Profile};
use candle_core::{DType, Device, Tensor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The module tests of a preset that the bench runs, with the PyTorch anchor key prefix of each.
const MODULES: [(&str, &str); 3] = [("attention", "attn_sdpa"), ("mlp", "mlp"), ("norm", "rmsnorm")];

/// One measured case.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchRow {
    /// `attention`, `mlp` or `norm`.
    pub module: String,
    /// Sequence length.
    pub seq_len: usize,
    /// The PyTorch anchor key of the same case (`attn_sdpa_bfloat16_2048`).
    pub anchor_key: String,
    /// tensile's median latency.
    pub ms: f64,
    /// tensile's peak memory of one forward, when measurable here.
    pub mb: Option<f64>,
    /// Roofline floor in ms.
    pub floor_ms: f64,
    /// Failures of the performance or memory check (NaN, errors), empty when it measured.
    pub errors: Vec<String>,
}

/// Hardware ceilings measured on the device.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ceilings {
    /// Matrix-multiply rate in the bench dtype, TFLOP/s.
    pub matmul_tflops: f64,
    /// Device copy bandwidth (read + write), GB/s.
    pub copy_gbps: f64,
    /// A calibration of the memory measurement: the peak MiB measured around the allocation of
    /// one 64 MiB tensor (64 when the measurement is exact; `None` where memory cannot be
    /// measured, e.g. a CPU binary without the counting allocator).
    pub probe_mib: Option<f64>,
}

/// PyTorch's numbers for one case.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Anchor {
    /// Median latency.
    pub ms: f64,
    /// Peak memory of one forward.
    pub peak_mb: f64,
}

/// PyTorch's long dtype name, as the anchor keys spell it.
pub fn torch_dtype(dtype: DType) -> &'static str {
    match dtype {
        DType::BF16 => "bfloat16",
        DType::F16 => "float16",
        DType::F64 => "float64",
        _ => "float32",
    }
}

/// Reads an anchor JSON file: case key → `{ms, peak_mb}`; other keys are ignored.
pub fn load_anchors(path: &Path) -> Result<BTreeMap<String, Anchor>> {
    let text = crate::input::read_to_string(path, crate::input::MAX_JSON_BYTES)?;
    let raw: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(&text).map_err(|e| Error::Setting { name: format!("anchor file {}", path.display()), reason: e.to_string() })?;
    Ok(raw.into_iter().filter_map(|(k, v)| serde_json::from_value::<Anchor>(v).ok().map(|a| (k, a))).collect())
}

/// The fastest of five synchronised runs of `f` after one warm-up run, in seconds: the
/// runner's own timing loop, with the minimum as the estimate of the hardware's ceiling.
fn best_seconds(device: &Device, f: impl FnMut() -> Result<()>) -> Result<f64> {
    let profile = Profile { warmup_runs: Some(1), iterations: Some(5), ..Profile::default() };
    let t = measure(device, &profile, f)?;
    Ok(t.samples_ms.iter().copied().fold(f64::INFINITY, f64::min) / 1e3)
}

/// Measures the matmul rate (an n³ product, n = 8192 on a GPU, 1024 on a CPU) and the copy
/// bandwidth (a 256 MiB buffer, 64 MiB on a CPU) of `device` in `dtype`.
pub fn ceilings(device: &Device, dtype: DType) -> Result<Ceilings> {
    let n = if device.is_cpu() { 1024 } else { 8192 };
    let a = Tensor::ones((n, n), dtype, device)?;
    let mm = best_seconds(device, || {
        a.matmul(&a)?;
        Ok(())
    })?;
    let elements = if device.is_cpu() { 16 << 20 } else { 64 << 20 };
    let buf = Tensor::ones(elements, DType::F32, device)?;
    // `affine` reads every element and writes a new buffer: one read and one write per element.
    let copy = best_seconds(device, || {
        buf.affine(1.0, 0.0)?;
        Ok(())
    })?;
    let probe = crate::checks::peak_bytes(device, || Tensor::zeros(16 << 20, DType::F32, device))?;
    let probe_mib = probe.ok().map(|b| b as f64 / (1024.0 * 1024.0));
    Ok(Ceilings { matmul_tflops: 2.0 * (n as f64).powi(3) / mm / 1e12, copy_gbps: 2.0 * 4.0 * elements as f64 / copy / 1e9, probe_mib })
}

/// Runs the bench cases of `preset` at each of `seq_lens` through the runner (performance and
/// memory checks), in `dtype` on `device`.
pub fn run(preset: &Preset, device: &str, dtype: DType, seq_lens: &[usize], ceilings: &Ceilings) -> Result<Vec<BenchRow>> {
    parse_device(device)?;
    let mut rows = Vec::new();
    for &seq in seq_lens {
        let tests: Vec<_> = preset.module_tests(1, seq)?.into_iter().filter(|t| MODULES.iter().any(|(m, _)| t.name.ends_with(&format!("::{m}")))).collect();
        let settings = Settings {
            seq_len: seq,
            dtypes: Some(vec![dtype]),
            devices: Some(vec![device.to_string()]),
            checks: Some(vec![Check::Performance, Check::Memory]),
            ..Settings::default()
        };
        let plan = Plan::new(&tests, &settings)?;
        let summary = runner::run_with(&plan, &RunOptions::default(), &mut []);
        for (case, result) in plan.cases.iter().zip(&summary.cases) {
            let Some((module, prefix)) = MODULES.iter().find(|(m, _)| case.name.ends_with(&format!("::{m}"))) else { continue };
            let metric = |check: Check, key: Metric| result.checks.iter().find(|r| r.check == check).and_then(|r| r.outcome.metrics.get(&key).copied());
            let cost = case.module.cost(&case.input_shape);
            let floor_ms = (cost.flops / (ceilings.matmul_tflops * 1e12)).max(cost.bytes / (ceilings.copy_gbps * 1e9)) * 1e3;
            // Missed targets are the preset's business, not the bench's: only a check that
            // could not measure is reported.
            let errors = result
                .checks
                .iter()
                .filter(|r| {
                    !r.outcome.metrics.contains_key(&Metric::MedianMs) && !r.outcome.metrics.contains_key(&Metric::PeakMb) && r.outcome.skipped.is_none()
                })
                .flat_map(|r| r.outcome.errors.clone())
                .collect();
            rows.push(BenchRow {
                module: module.to_string(),
                seq_len: seq,
                anchor_key: format!("{prefix}_{}_{seq}", torch_dtype(dtype)),
                ms: metric(Check::Performance, Metric::MedianMs).unwrap_or(f64::NAN),
                mb: metric(Check::Memory, Metric::PeakMb),
                floor_ms,
                errors,
            });
        }
    }
    Ok(rows)
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.filter(|x| x.is_finite()).map_or("–".to_string(), |x| format!("{x:.digits$}"))
}

/// What a bench table's heading says about the run.
#[derive(Debug, Clone, Copy)]
pub struct Header<'a> {
    /// Preset name.
    pub preset: &'a str,
    /// Device as given.
    pub device: &'a str,
    /// Dtype of the run.
    pub dtype: DType,
    /// Machine description.
    pub machine: &'a str,
    /// Date (YYYY-MM-DD).
    pub date: &'a str,
    /// Commit measured.
    pub commit: &'a str,
}

/// The Markdown section for `bench/RESULTS.md`: a heading with machine, device, dtype, date and
/// commit, the ceilings, and one row per case. `ratio` is tensile ms / PyTorch ms (below 1:
/// tensile is faster).
pub fn markdown(h: &Header, c: &Ceilings, rows: &[BenchRow], anchors: &BTreeMap<String, Anchor>) -> String {
    let mut s = format!(
        "## `tensile bench --preset {} --device {} --dtype {}`\n\n{}, {}, commit {}. Ceilings measured in the same run: matmul {:.1} TFLOP/s, copy {:.1} GB/s (read + write). Memory probe: a 64 MiB allocation measured as {} MiB.\n\n",
        h.preset,
        h.device,
        dtype_name(h.dtype),
        h.machine,
        h.date,
        h.commit,
        c.matmul_tflops,
        c.copy_gbps,
        opt(c.probe_mib, 1)
    );
    s.push_str(
        "| case | tensile ms | tensile MiB | PyTorch ms | PyTorch MiB | ratio (tensile / PyTorch) | % of roofline floor |\n|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let a = anchors.get(&r.anchor_key);
        let ratio = a.map(|a| r.ms / a.ms);
        let floor = (r.ms.is_finite() && r.ms > 0.0).then(|| 100.0 * r.floor_ms / r.ms);
        s.push_str(&format!(
            "| {} {} | {} | {} | {} | {} | {} | {} |\n",
            r.module,
            r.seq_len,
            opt(Some(r.ms), 3),
            opt(r.mb, 1),
            opt(a.map(|a| a.ms), 3),
            opt(a.map(|a| a.peak_mb), 1),
            opt(ratio, 2),
            opt(floor, 1)
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_divides_by_the_anchor_and_marks_what_is_missing() {
        let c = Ceilings { matmul_tflops: 100.0, copy_gbps: 1000.0, probe_mib: Some(64.0) };
        let rows = vec![
            BenchRow { module: "mlp".into(), seq_len: 16, anchor_key: "mlp_float32_16".into(), ms: 2.0, mb: Some(3.0), floor_ms: 0.5, errors: vec![] },
            BenchRow { module: "norm".into(), seq_len: 16, anchor_key: "rmsnorm_float32_16".into(), ms: f64::NAN, mb: None, floor_ms: 0.1, errors: vec![] },
        ];
        let anchors = BTreeMap::from([("mlp_float32_16".to_string(), Anchor { ms: 4.0, peak_mb: 5.0 })]);
        let h = Header { preset: "tiny-llama", device: "cpu", dtype: DType::F32, machine: "test machine", date: "2026-11-23", commit: "abc" };
        let md = markdown(&h, &c, &rows, &anchors);
        assert!(md.contains("| mlp 16 | 2.000 | 3.0 | 4.000 | 5.0 | 0.50 | 25.0 |"), "{md}");
        assert!(md.contains("| norm 16 | – | – | – | – | – | – |"), "{md}");
        assert!(md.contains("matmul 100.0 TFLOP/s, copy 1000.0 GB/s (read + write). Memory probe: a 64 MiB allocation measured as 64.0 MiB."), "{md}");
        assert_eq!(torch_dtype(DType::BF16), "bfloat16");
    }
}
