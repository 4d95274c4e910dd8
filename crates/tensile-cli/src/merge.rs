//! `tensile report merge`: one report, in every format, from the JSON reports of a plan's
//! shards (`tensile run --shard K/N --report-json ...`).

use anyhow::Result;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use tensile::event::Reporter;
use tensile::outputs::Outputs;
use tensile::report::ConsoleReporter;
use tensile::Plan;

#[derive(Subcommand)]
pub enum ReportCommand {
    /// Merge the JSON reports of a plan's shards into one report: totals, coverage and
    /// regression verdicts as an unsharded run of the plan gives them.
    Merge(MergeArgs),
}

#[derive(Args)]
pub struct MergeArgs {
    /// The shards' JSON reports.
    #[arg(required = true, value_name = "SHARD.json")]
    reports: Vec<PathBuf>,
    #[command(flatten)]
    files: crate::report::ReportFiles,
    /// Save the merged run's latency samples (and case durations, for --shard-by-time) as
    /// baseline NAME.
    #[arg(long, value_name = "NAME")]
    save_baseline: Option<String>,
    /// Folder of baseline files.
    #[arg(long, value_name = "DIR", default_value = tensile::baseline::DEFAULT_DIR)]
    baseline_dir: PathBuf,
    /// Merge reports of different plans, commits, tensile versions or devices, or with cases
    /// of the plan missing, warning of each; a case in two reports is refused even so.
    #[arg(long)]
    force: bool,
    /// Exit 0 when every check was skipped.
    #[arg(long)]
    allow_skips: bool,
}

pub fn run(command: &ReportCommand) -> Result<u8> {
    match command {
        ReportCommand::Merge(args) => merge(args),
    }
}

fn merge(args: &MergeArgs) -> Result<u8> {
    let outputs = Outputs { save_baseline: args.save_baseline.clone(), baseline_dir: args.baseline_dir.clone(), ..args.files.outputs() };
    // No output may overwrite one of the reports being merged.
    outputs.preflight(&Plan::default(), &args.reports)?;
    let inputs = args.reports.iter().map(tensile::merge::Input::read).collect::<tensile::Result<Vec<_>>>()?;
    let merged = tensile::merge::merge(&inputs, args.force)?;
    for w in &merged.warnings {
        eprintln!("warning: {w}");
    }
    let mut reporters: Vec<Box<dyn Reporter>> = vec![Box::new(ConsoleReporter::stdout().with_progress(false))];
    reporters.extend(outputs.reporters());
    for event in &merged.events {
        reporters.iter_mut().for_each(|r| r.on_event(event));
    }
    // Every reporter gets to write its file, even when one before it fails.
    let errors: Vec<std::io::Error> = reporters.iter_mut().filter_map(|r| r.finish().err()).collect();
    if let Some(e) = errors.into_iter().next() {
        return Err(e.into());
    }
    let totals = merged.totals();
    Ok(tensile::exit::of_run(&totals, totals.cases_passed == totals.cases, args.allow_skips))
}
