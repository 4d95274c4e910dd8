//! The streaming event log (`--events PATH`, `TENSILE_EVENTS`): one JSON object per line,
//! written and flushed as each case finishes, so a run that is killed outright (SIGKILL, a
//! power cut) still leaves every case that finished before it. The other reports are written
//! whole at the end of the run, atomically; this one is the record of a run in progress.
//!
//! Lines are `{"event": "run_started", …}`, then `{"event": "case_finished", …}` per case, then
//! `{"event": "run_finished", …}` whose `totals.interrupted` says whether the run was stopped.

use crate::event::{Event, Reporter};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Appends one JSON line per run-level and case-level event to a file.
pub struct EventLog {
    path: PathBuf,
    file: Option<BufWriter<File>>,
    error: Option<std::io::Error>,
}

impl EventLog {
    /// A log at `path`, created (or truncated) at the run's first event.
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self { path: path.as_ref().to_path_buf(), file: None, error: None }
    }

    fn write(&mut self, event: &Event) -> std::io::Result<()> {
        if self.file.is_none() {
            self.file = Some(BufWriter::new(File::create(&self.path)?));
        }
        let line = serde_json::to_string(event).map_err(std::io::Error::other)?;
        let file = self.file.as_mut().expect("opened above");
        writeln!(file, "{line}")?;
        file.flush()
    }
}

impl Reporter for EventLog {
    fn on_event(&mut self, event: &Event) {
        if self.error.is_some() || !matches!(event, Event::RunStarted { .. } | Event::CaseFinished(_) | Event::RunFinished { .. }) {
            return;
        }
        if let Err(e) = self.write(event) {
            self.error = Some(e);
        }
    }

    fn finish(&mut self) -> std::io::Result<()> {
        match self.error.take() {
            Some(e) => Err(std::io::Error::new(e.kind(), format!("failed to write {}: {e}", self.path.display()))),
            None => Ok(()),
        }
    }
}
