//! Wiring of reporters for `tensile run`.

use anyhow::Result;
use std::path::Path;
use tensile::event::Reporter;
use tensile::plan::Plan;
use tensile::report::{ConsoleReporter, JsonReporter};
use tensile::runner::{self, RunSummary};

/// Runs `plan` with the console reporter (progress bar when `progress`) and, when `json` is
/// given, the JSON reporter.
pub fn run_with_reporters(plan: &Plan, progress: bool, json: Option<&Path>) -> Result<RunSummary> {
    let mut reporters: Vec<Box<dyn Reporter>> = vec![Box::new(ConsoleReporter::stdout().with_progress(progress))];
    if let Some(path) = json {
        reporters.push(Box::new(JsonReporter::new(path)));
    }
    let mut refs: Vec<&mut dyn Reporter> = reporters.iter_mut().map(|r| r.as_mut() as &mut dyn Reporter).collect();
    let summary = runner::run(plan, &mut refs);
    for r in reporters.iter_mut() {
        r.finish()?;
    }
    Ok(summary)
}
