//! What every file reporter collects from the event stream, and the reporter that writes one
//! rendered file when the run finishes.

use crate::coverage::Coverage;
use crate::event::{CaseResult, Event, Machine, Reporter, ShardRun, Totals};
use crate::shard::{PlanIdentity, ShardInfo};
use std::marker::PhantomData;
use std::path::PathBuf;

/// A finished run as the events told it: the input of every file format.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunRecord {
    /// The machine, from `RunStarted` (none when the run never started).
    pub machine: Option<Machine>,
    /// Devices in the plan.
    pub devices: Vec<String>,
    /// Configuration coverage of the plan.
    pub coverage: Coverage,
    /// Finished cases in run order.
    pub cases: Vec<CaseResult>,
    /// Totals, from `RunFinished`.
    pub totals: Totals,
    /// Wall time of the run, from `RunFinished`.
    pub elapsed_s: f64,
    /// The whole plan, from `RunStarted`.
    pub plan: Option<PlanIdentity>,
    /// The shard that ran, from `RunStarted`.
    pub shard: Option<ShardInfo>,
    /// The commit under test, from `RunStarted`.
    pub commit: Option<String>,
    /// The shard runs behind a merged report, from `RunStarted`.
    pub merged: Vec<ShardRun>,
}

impl RunRecord {
    /// Takes in one event.
    pub fn on_event(&mut self, event: &Event) {
        match event {
            Event::RunStarted { machine, devices, coverage, plan, shard, commit, merged, .. } => {
                self.machine = Some(machine.clone());
                self.devices = devices.clone();
                self.coverage = coverage.clone();
                self.plan = plan.clone();
                self.shard = *shard;
                self.commit = commit.clone();
                self.merged = merged.clone();
            }
            Event::CaseFinished(case) => self.cases.push(case.clone()),
            Event::RunFinished { totals, elapsed_s } => {
                self.totals = totals.clone();
                self.elapsed_s = *elapsed_s;
            }
            Event::CaseStarted(_) | Event::CheckFinished { .. } => {}
        }
    }

    /// The record of a whole event stream.
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a Event>) -> Self {
        let mut r = Self::default();
        for e in events {
            r.on_event(e);
        }
        r
    }

    /// The tensile version that ran (this crate's when the run never started).
    pub fn tensile_version(&self) -> &str {
        self.machine.as_ref().map_or(env!("CARGO_PKG_VERSION"), |m| m.tensile_version.as_str())
    }
}

/// A file format rendered from a [`RunRecord`].
pub trait Format {
    /// The whole file.
    fn render(record: &RunRecord) -> String;
}

/// Collects the run and writes `F`'s rendering of it to a file on `RunFinished`, replacing the
/// file. Write errors never interrupt the run: the first is kept and returned from
/// [`Reporter::finish`].
pub struct FileReporter<F: Format> {
    path: PathBuf,
    record: RunRecord,
    error: Option<std::io::Error>,
    format: PhantomData<F>,
}

impl<F: Format> FileReporter<F> {
    /// A reporter that will write to `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into(), record: RunRecord::default(), error: None, format: PhantomData }
    }
}

impl<F: Format> Reporter for FileReporter<F> {
    fn on_event(&mut self, event: &Event) {
        self.record.on_event(event);
        if let Event::RunFinished { .. } = event {
            if let Err(e) = crate::atomic::write(&self.path, F::render(&self.record)) {
                self.error.get_or_insert(std::io::Error::new(e.kind(), format!("failed to write {}: {e}", self.path.display())));
            }
        }
    }

    fn finish(&mut self) -> std::io::Result<()> {
        self.error.take().map_or(Ok(()), Err)
    }
}
