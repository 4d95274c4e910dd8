//! `tensile run` and `tensile list`.

use crate::source::Source;
use crate::EXIT_OK;
use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;
use tensile::admission::MemoryLimit;
use tensile::device::parse_dtype;
use tensile::isolate::{parse_duration, Launcher};
use tensile::presets::zero_weight_tests;
use tensile::presets::{self, Weights};
use tensile::report::coverage::against_presets;
use tensile::shard::ShardArg;
use tensile::{Check, Plan, Settings};

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    source: Source,
    #[command(flatten)]
    layers: crate::source::LayerArgs,
    /// Device: cpu, cuda or cuda:N (replaces the specs' devices).
    #[arg(long)]
    device: Option<String>,
    /// Dtype: f32, bf16 or f16 (replaces the specs' dtypes).
    #[arg(long)]
    dtype: Option<String>,
    /// Batch size of inferred input shapes (default 1).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Sequence length of inferred input shapes (default: the preset's).
    #[arg(long)]
    seq_len: Option<usize>,
    /// Run only module tests whose name matches this glob, e.g. "*attention*".
    #[arg(long)]
    filter: Option<String>,
    /// Run only cases whose tags satisfy this expression, e.g. 'quantization and not slow'
    /// (the specs' own tags plus gpu/cpu, slow, the block family and kind; default:
    /// TENSILE_TAGS).
    #[arg(long, value_name = "EXPR")]
    tags: Option<String>,
    /// Comma-separated checks to run instead of the specs' own (correctness, gradients,
    /// determinism, batch_invariance, dtype_parity, performance, memory, scaling).
    #[arg(long, value_delimiter = ',')]
    checks: Option<Vec<String>>,
    /// Replace thresholds of every case: one number (atol = rtol, PCC and cosine 1 − 10·tol)
    /// or fields such as 'atol=0.2,min_pcc=0.95' (atol, rtol, min_pcc, min_cosine, atol_rms,
    /// min_snr_db); the others keep each case's own, e.g. the quantization format's defaults.
    #[arg(long, value_name = "TOL|FIELD=X,...", allow_hyphen_values = true)]
    tolerance: Option<String>,
    #[command(flatten)]
    files: crate::report::ReportFiles,
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
    /// Append each finished case to this JSON Lines file as the run goes.
    #[arg(long, value_name = "PATH")]
    events: Option<PathBuf>,
    /// Memory a case may be predicted to need, e.g. 8GiB or 25% (default: half of physical
    /// memory); a case predicted over it fails alone.
    #[arg(long, value_name = "SIZE", value_parser = parse_memory)]
    max_memory: Option<MemoryLimit>,
    /// Longest a case may run, e.g. 30s or 5m; it then fails as timed out.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Run each case in a child process, so an abort or a kill fails only that case.
    #[arg(long)]
    isolate: bool,
    /// Exit 0 when every check was skipped (default: exit 3, nothing was verified).
    #[arg(long)]
    allow_skips: bool,
    /// Run one shard of the plan: K/N (1 ≤ K ≤ N), or auto inside a Slurm array job
    /// (SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_MIN, SLURM_ARRAY_TASK_COUNT). A case goes to a
    /// shard by a stable hash of its name, dtype and device; merge the shards' JSON reports
    /// with `tensile report merge`.
    #[arg(long, value_name = "K/N|auto")]
    shard: Option<String>,
    /// Balance the shards by the case durations recorded in a JSON report of an earlier run
    /// (e.g. the last merged report) or in baseline NAME (in --baseline-dir), instead of by
    /// hash.
    #[arg(long, value_name = "REPORT|BASELINE")]
    shard_by_time: Option<String>,
    /// Internal: run only the case with this plan index and print its events (used by
    /// --isolate).
    #[arg(long, hide = true, value_name = "INDEX")]
    child_case: Option<usize>,
}

fn parse_memory(s: &str) -> std::result::Result<MemoryLimit, String> {
    s.parse()
}

impl RunArgs {
    fn outputs(&self) -> Result<tensile::outputs::Outputs> {
        let shard = match &self.shard {
            Some(s) => Some(s.parse::<ShardArg>().map_err(|reason| anyhow::anyhow!("invalid --shard: {reason}"))?),
            None => None,
        };
        Ok(tensile::outputs::Outputs {
            save_baseline: self.save_baseline.clone(),
            baseline: self.baseline.clone(),
            baseline_dir: self.baseline_dir.clone(),
            threshold: self.regression_threshold / 100.0,
            repeat: self.repeat as usize,
            events: self.events.clone(),
            max_memory: self.max_memory,
            timeout: self.timeout,
            isolate: self.isolate,
            allow_skips: self.allow_skips,
            shard,
            shard_by_time: self.shard_by_time.clone(),
            ..self.files.outputs()
        })
    }
}

pub fn run(args: &RunArgs) -> Result<u8> {
    let outputs = args.outputs()?;
    // The options (and the baseline file) are checked before anything runs.
    let mut options = outputs.run_options()?;
    let checks = match &args.checks {
        Some(names) => Some(names.iter().map(|n| n.trim().parse::<Check>().map_err(|e| anyhow::anyhow!(e))).collect::<Result<Vec<_>>>()?),
        None => None,
    };
    let tolerance = match &args.tolerance {
        Some(t) => Some(t.parse().map_err(|reason: String| anyhow::anyhow!("invalid --tolerance: {reason}"))?),
        None => None,
    };
    let child = args.child_case.is_some();
    if let (Some(d), false) = (&args.device, child) {
        // Reject a malformed device before anything runs; an unavailable one skips per case.
        let device: tensile::device::DeviceSpec = d.parse()?;
        if let Err(e) = device.open() {
            eprintln!("warning: {e}; cases on {d} will be skipped");
        }
    }
    let batch_size = args.batch_size.unwrap_or(1);
    let loaded = args.source.load(batch_size, args.seq_len, Weights::Seeded, &args.layers)?;
    if let (Some(h), false) = (&loaded.health, args.child_case.is_some()) {
        print_health(h, &loaded.description);
    }
    let seq_len = args.seq_len.unwrap_or(loaded.default_seq);
    let settings = Settings {
        batch_size,
        seq_len,
        dtypes: args.dtype.as_deref().map(parse_dtype).transpose()?.map(|d| vec![d]),
        devices: None,
        checks,
        filter: args.filter.clone(),
        tags: None,
        tolerance,
    }
    .with_env()?;
    // The flags win over TENSILE_TAGS and TENSILE_DEVICE.
    let settings = Settings {
        tags: match &args.tags {
            Some(e) => Some(e.parse().map_err(|reason: String| anyhow::anyhow!("invalid --tags: {reason}"))?),
            None => settings.tags,
        },
        devices: args.device.clone().map(|d| vec![d]).or(settings.devices),
        ..settings
    };
    let plan = Plan::new(&loaded.tests, &settings)?;
    if plan.cases.is_empty() {
        bail!("no module test of {} matches the filter and tags", loaded.description);
    }
    // What the reports say of the whole plan is settled before a shard of it is taken: every
    // shard's report carries the same plan identity and coverage, which a merge relies on.
    let sharding = outputs.sharding()?;
    if !child {
        options.coverage = Some(against_presets(plan.coverage(), &plan, zero_weight_tests(loaded.compare_with)?));
        options.whole_plan = Some(tensile::shard::identity(&plan));
    }
    let plan = match &sharding {
        Some(s) => {
            let part = s.select(&plan);
            options.shard = Some(s.info());
            if !child {
                eprintln!("shard {}: {} of the plan's {} cases", s.shard, part.cases.len(), plan.cases.len());
            }
            part
        }
        None => plan,
    };
    tensile::interrupt::install()?;
    if let Some(index) = args.child_case {
        tensile::isolate::exit_with_parent();
        return Ok(tensile::runner::run_child(&plan, index, &options));
    }
    warn_unused_sizes(args, &plan);
    let spec: Vec<PathBuf> = args.source.spec_path().into_iter().collect();
    outputs.preflight(&plan, &spec)?;
    if args.isolate {
        options.isolate = Some(self_launcher()?);
    }
    let summary = crate::report::run_with_reporters(&plan, &options, !args.no_progress, &outputs)?;
    let code = tensile::exit::of_run(&summary.totals, summary.passed(), args.allow_skips);
    // A non-finite weight fails the run whatever the module tests say.
    if loaded.health.as_ref().is_some_and(|h| !h.passed()) && code == EXIT_OK {
        return Ok(crate::EXIT_FAILED);
    }
    Ok(code)
}

/// The weights health of a model on disk: one line, then a line per failure and note.
fn print_health(h: &tensile::health::Health, description: &str) {
    let params: usize = h.tensors.iter().map(|t| t.numel).sum();
    let verdict = if h.passed() { "every value finite" } else { "NON-FINITE VALUES" };
    eprintln!("weights health of {description}: {} tensors, {params} values, {verdict}; {} outlier note(s)", h.tensors.len(), h.notes.len());
    for f in &h.failures {
        eprintln!("  FAIL {f}");
    }
    for n in &h.notes {
        eprintln!("  note {n}");
    }
}

/// Re-runs this very command line with `--child-case N`: the child builds the same plan and
/// runs case N alone.
fn self_launcher() -> Result<Launcher> {
    let exe = std::env::current_exe()?;
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    Ok(Launcher::new(move |index| {
        let mut c = std::process::Command::new(&exe);
        c.args(&args).arg("--child-case").arg(index.to_string());
        c
    }))
}

/// Says so when `--seq-len` or `--batch-size` was given but some tests fix their own input
/// shape, which the flags do not change.
fn warn_unused_sizes(args: &RunArgs, plan: &Plan) {
    let fixed: std::collections::BTreeSet<&str> = plan.cases.iter().filter(|c| c.spec.input_shape.is_some()).map(|c| c.name.as_str()).collect();
    if fixed.is_empty() {
        return;
    }
    let flags: Vec<&str> =
        [(args.seq_len.is_some(), "--seq-len"), (args.batch_size.is_some(), "--batch-size")].into_iter().filter(|(given, _)| *given).map(|(_, f)| f).collect();
    if !flags.is_empty() {
        let names: Vec<&str> = fixed.into_iter().collect();
        eprintln!("warning: {} do not apply to tests with an explicit input_shape: {}", flags.join(" and "), names.join(", "));
    }
}

#[derive(clap::Args)]
pub struct ListArgs {
    /// A model on disk (Hugging Face directory or GGUF file): list the module tests `run`
    /// would derive from it, reading only its config and the weights' header.
    #[arg(long)]
    model: Option<PathBuf>,
    #[command(flatten)]
    layers: crate::source::LayerArgs,
    /// Sequence length of the listed input shapes (default 64).
    #[arg(long)]
    seq_len: Option<usize>,
}

pub fn list(args: &ListArgs) -> Result<u8> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Some(path) = &args.model {
        let seq = args.seq_len.unwrap_or(crate::source::DEFAULT_MODEL_SEQ);
        let m = tensile::checkpoint::load_model_shapes(path)?;
        let params: usize = m.block.parameters().iter().map(|(_, t)| t.elem_count()).sum();
        writeln!(out, "{} ({} layers, {params} parameters)", m.description, m.layers)?;
        for t in tensile::checkpoint::module_tests(&m, &args.layers.layers()?, 1, seq)? {
            let shape = t.module.input_shape_hint(1, seq).map(|s| format!("{s:?}")).unwrap_or_default();
            let checks: Vec<&str> = t.spec.checks.iter().map(|c| c.name()).collect();
            writeln!(out, "    {:<48} {:<22} {:<14} {}", t.name, t.module.kind(), shape, checks.join(","))?;
        }
        return Ok(EXIT_OK);
    }
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
