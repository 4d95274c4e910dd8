//! The JSON report as a file format, both ways: the JSON reporter writes a [`ReportFile`], and
//! `tensile report merge` and `--shard-by-time` read one back. One type for both keeps what is
//! written and what is read the same schema (`docs/report-schema.md`).

use crate::baseline::Baseline;
use crate::coverage::Coverage;
use crate::error::{Error, Result};
use crate::event::{CaseResult, Machine, ShardRun, Totals};
use crate::shard::{Durations, PlanIdentity, ShardInfo};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Version of the report layout; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// One JSON report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportFile {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The tensile that ran the plan.
    pub tensile_version: String,
    /// The commit of the code under test, when known.
    #[serde(default)]
    pub commit: Option<String>,
    /// The whole plan the run belongs to (absent in reports of older versions).
    #[serde(default)]
    pub plan: Option<PlanIdentity>,
    /// Which shard of the plan ran, when it was split.
    #[serde(default)]
    pub shard: Option<ShardInfo>,
    /// The shard runs a merged report was made from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged: Vec<ShardRun>,
    /// Where it ran (null when the run never started).
    pub machine: Option<Machine>,
    /// Devices in the plan.
    pub devices: Vec<String>,
    /// Totals over the cases below.
    pub totals: Totals,
    /// Wall time in seconds.
    pub elapsed_s: f64,
    /// Configuration coverage of the whole plan.
    #[serde(default)]
    pub coverage: Coverage,
    /// Finished cases in run order.
    pub cases: Vec<CaseResult>,
}

impl ReportFile {
    /// Reads and parses a JSON report; only a regular file is read ([`crate::input`]).
    ///
    /// # Errors
    /// An unreadable file, or one that is not a report of this schema version, naming it.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = crate::input::read(path, crate::input::MAX_JSON_BYTES)?;
        Self::from_slice(&bytes, path)
    }

    /// Parses the bytes of a JSON report; `path` names it in errors.
    pub fn from_slice(bytes: &[u8], path: &Path) -> Result<Self> {
        let bad = |reason: String| Error::Input { path: path.to_path_buf(), reason };
        // The version first, so a report of another version says so rather than naming
        // whichever field moved.
        #[derive(Deserialize)]
        struct Version {
            schema_version: Option<u32>,
        }
        let v: Version = serde_json::from_slice(bytes).map_err(|e| bad(format!("not a tensile JSON report: {e}")))?;
        match v.schema_version {
            Some(SCHEMA_VERSION) => {}
            Some(other) => return Err(bad(format!("report schema {other} is not the supported {SCHEMA_VERSION}"))),
            None => return Err(bad("not a tensile JSON report: no `schema_version`".into())),
        }
        serde_json::from_slice(bytes).map_err(|e| bad(format!("not a tensile JSON report: {e}")))
    }

    /// Seconds per case: the wall times of its checks added up.
    pub fn durations(&self) -> Durations {
        let mut out = Durations::new();
        for c in &self.cases {
            *out.entry(c.case.key()).or_default() += c.checks.iter().map(|r| r.elapsed_s).sum::<f64>();
        }
        out
    }
}

/// The durations recorded in `source`: a JSON report file (a merged report of the last sharded
/// run is the usual one), or else the name of a baseline in `baseline_dir` saved with
/// `--save-baseline`.
///
/// # Errors
/// Neither a readable report nor a baseline with durations.
pub fn load_durations(source: &str, baseline_dir: &Path) -> Result<Durations> {
    let path = Path::new(source);
    if path.is_file() {
        return Ok(ReportFile::read(path)?.durations());
    }
    let bad = |reason: String| Error::Setting { name: "--shard-by-time".into(), reason };
    let baseline = Baseline::load(baseline_dir, source)
        .map_err(|e| bad(format!("`{source}` is neither a JSON report file nor a baseline in {}: {e}", baseline_dir.display())))?;
    if baseline.durations.is_empty() {
        return Err(bad(format!("baseline `{source}` records no case durations (saved by an older tensile); save it again, or give a JSON report")));
    }
    Ok(baseline.durations.iter().map(|d| ((d.name.clone(), d.dtype.clone(), d.device.clone()), d.seconds)).collect())
}
