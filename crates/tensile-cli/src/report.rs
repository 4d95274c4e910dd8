//! Wiring of reporters for `tensile run`, and the report-file flags it shares with
//! `tensile report merge`.

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use tensile::event::Reporter;
use tensile::outputs::Outputs;
use tensile::plan::Plan;
use tensile::report::ConsoleReporter;
use tensile::runner::{self, RunOptions, RunSummary};

/// Runs `plan` with the console reporter (progress bar when `progress`) and the file
/// reporters `outputs` asks for.
pub fn run_with_reporters(plan: &Plan, options: &RunOptions, progress: bool, outputs: &Outputs) -> Result<RunSummary> {
    let mut reporters: Vec<Box<dyn Reporter>> = vec![Box::new(ConsoleReporter::stdout().with_progress(progress))];
    reporters.extend(outputs.reporters());
    let mut refs: Vec<&mut dyn Reporter> = reporters.iter_mut().map(|r| r.as_mut() as &mut dyn Reporter).collect();
    let summary = runner::run_with(plan, options, &mut refs);
    // Every reporter gets to write its file, even when one before it fails; the first error
    // is returned after all have tried.
    let errors: Vec<std::io::Error> = reporters.iter_mut().filter_map(|r| r.finish().err()).collect();
    match errors.into_iter().next() {
        Some(e) => Err(e.into()),
        None => Ok(summary),
    }
}

/// The report files of `tensile run` and `tensile report merge`.
#[derive(Args)]
pub struct ReportFiles {
    /// Write the JSON report here.
    #[arg(long)]
    pub report_json: Option<PathBuf>,
    /// Write a JUnit XML report here (one testcase per module check).
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Write a self-contained HTML report with plots here.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Write a short Markdown summary here (e.g. $GITHUB_STEP_SUMMARY).
    #[arg(long)]
    pub markdown: Option<PathBuf>,
}

impl ReportFiles {
    /// Outputs that write these files, and nothing else yet: each command adds its own.
    pub fn outputs(&self) -> Outputs {
        Outputs { json: self.report_json.clone(), junit: self.junit.clone(), html: self.html.clone(), markdown: self.markdown.clone(), ..Outputs::default() }
    }
}
