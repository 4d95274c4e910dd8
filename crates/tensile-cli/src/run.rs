//! `tensile run` and `tensile list`.

use crate::source::Source;
use crate::{EXIT_FAILED, EXIT_OK};
use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;
use tensile::device::parse_dtype;
use tensile::presets::zero_weight_tests;
use tensile::presets::{self, Weights};
use tensile::report::coverage::against_presets;
use tensile::{Check, Plan, Settings};

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    source: Source,
    /// Device: cpu, cuda or cuda:N (replaces the specs' devices).
    #[arg(long)]
    device: Option<String>,
    /// Dtype: f32, bf16 or f16 (replaces the specs' dtypes).
    #[arg(long)]
    dtype: Option<String>,
    /// Batch size of inferred input shapes.
    #[arg(long, default_value_t = 1)]
    batch_size: usize,
    /// Sequence length of inferred input shapes (default: the preset's).
    #[arg(long)]
    seq_len: Option<usize>,
    /// Run only module tests whose name matches this glob, e.g. "*attention*".
    #[arg(long)]
    filter: Option<String>,
    /// Comma-separated checks to run instead of the specs' own (correctness, gradients,
    /// determinism, batch_invariance, dtype_parity, performance, memory, scaling).
    #[arg(long, value_delimiter = ',')]
    checks: Option<Vec<String>>,
    /// Write the JSON report here.
    #[arg(long)]
    report_json: Option<PathBuf>,
    /// Write a JUnit XML report here (one testcase per module check).
    #[arg(long)]
    junit: Option<PathBuf>,
    /// Write a self-contained HTML report with plots here.
    #[arg(long)]
    html: Option<PathBuf>,
    /// Write a short Markdown summary here (e.g. $GITHUB_STEP_SUMMARY).
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Save the run's latency samples as baseline NAME (in --baseline-dir).
    #[arg(long, value_name = "NAME")]
    save_baseline: Option<String>,
    /// Compare latencies with baseline NAME; a slowdown fails when its 95% interval clears
    /// the threshold.
    #[arg(long, value_name = "NAME")]
    baseline: Option<String>,
    /// Folder of baseline files.
    #[arg(long, value_name = "DIR", default_value = tensile::baseline::DEFAULT_DIR)]
    baseline_dir: PathBuf,
    /// Regression threshold in percent.
    #[arg(long, value_name = "PERCENT", default_value_t = 5.0, allow_negative_numbers = true)]
    regression_threshold: f64,
    /// Run each check N times on the same input and report failure rates; a check that both
    /// passes and fails is reported flaky.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    repeat: u32,
    /// Hide the progress bar.
    #[arg(long)]
    no_progress: bool,
}

impl RunArgs {
    fn outputs(&self) -> tensile::outputs::Outputs {
        tensile::outputs::Outputs {
            json: self.report_json.clone(),
            junit: self.junit.clone(),
            html: self.html.clone(),
            markdown: self.markdown.clone(),
            save_baseline: self.save_baseline.clone(),
            baseline: self.baseline.clone(),
            baseline_dir: self.baseline_dir.clone(),
            threshold: self.regression_threshold / 100.0,
            repeat: self.repeat as usize,
        }
    }
}

pub fn run(args: &RunArgs) -> Result<u8> {
    let outputs = args.outputs();
    // The options (and the baseline file) are checked before anything runs.
    let mut options = outputs.run_options()?;
    let checks = match &args.checks {
        Some(names) => Some(names.iter().map(|n| n.trim().parse::<Check>().map_err(|e| anyhow::anyhow!(e))).collect::<Result<Vec<_>>>()?),
        None => None,
    };
    if let Some(d) = &args.device {
        // Reject a malformed device before anything runs; an unavailable one skips per case.
        let device: tensile::device::DeviceSpec = d.parse()?;
        if let Err(e) = device.open() {
            eprintln!("warning: {e}; cases on {d} will be skipped");
        }
    }
    let loaded = args.source.load(args.batch_size, args.seq_len, Weights::Seeded)?;
    let seq_len = args.seq_len.unwrap_or(loaded.default_seq);
    let settings = Settings {
        batch_size: args.batch_size,
        seq_len,
        dtypes: args.dtype.as_deref().map(parse_dtype).transpose()?.map(|d| vec![d]),
        devices: args.device.clone().map(|d| vec![d]),
        checks,
        filter: args.filter.clone(),
    };
    let plan = Plan::new(&loaded.tests, &settings)?;
    if plan.cases.is_empty() {
        bail!("no module test of {} matches the filter", loaded.description);
    }
    options.coverage = Some(against_presets(plan.coverage(), &plan, zero_weight_tests(loaded.compare_with)?));
    let summary = crate::report::run_with_reporters(&plan, &options, !args.no_progress, &outputs)?;
    Ok(if summary.passed() { EXIT_OK } else { EXIT_FAILED })
}

pub fn list() -> Result<u8> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for p in presets::all() {
        writeln!(out, "{}  (seq {})\n  {}", p.name, p.seq_len, p.description)?;
        for t in p.module_tests_with(1, p.seq_len, presets::Weights::Zeros)? {
            let shape = t.module.input_shape_hint(1, p.seq_len).map(|s| format!("{s:?}")).unwrap_or_default();
            let checks: Vec<&str> = t.spec.checks.iter().map(|c| c.name()).collect();
            let mut targets = Vec::new();
            if let Some(l) = &t.spec.targets.latency_ms {
                targets.push(format!("{} ms", l.at(p.seq_len)));
            }
            if let Some(m) = &t.spec.targets.memory_mb {
                targets.push(format!("{} MB", m.at(p.seq_len)));
            }
            if t.spec.targets.gpu_class {
                targets.push("GPU-class".into());
            }
            let sweep = t.spec.sweep.as_ref().map(|s| format!(" sweep {:?} expect {:?}", s.seq_lengths, s.expect)).unwrap_or_default();
            writeln!(
                out,
                "    {:<28} {:<20} {:<16} {}{}{}",
                t.name,
                t.module.kind(),
                shape,
                checks.join(","),
                if targets.is_empty() { String::new() } else { format!(" targets {}", targets.join(" / ")) },
                sweep
            )?;
        }
    }
    Ok(EXIT_OK)
}
