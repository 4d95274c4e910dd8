//! The JSON report, for machines: CI gates, dashboards, diffs between runs.
//!
//! # Schema (version [`SCHEMA_VERSION`] = 1)
//!
//! Also documented in `docs/report-schema.md`. One pretty-printed JSON object:
//!
//! - `schema_version` (integer): `1`. Fields may be added without a bump; removing a field or
//!   changing its meaning bumps it.
//! - `tensile_version` (string): version of tensile that ran the plan (taken from the run's
//!   machine description, or this crate's version when the run never started).
//! - `commit` (string or null): the commit of the code under test (`TENSILE_COMMIT`,
//!   `GITHUB_SHA`, `CI_COMMIT_SHA`, else `git rev-parse HEAD`), null when unknown.
//! - `plan` (object or null): the whole plan the run belongs to: `fingerprint` (16 hex digits
//!   over every case's identity and settings), `cases`, `checks`, `devices`.
//! - `shard` (object or null): `index` (from 1), `count`, `by` (`hash` or `time`) when the run
//!   was one shard of the plan (`--shard K/N`).
//! - `merged` (array, only in a merged report): one object per shard report it was made from:
//!   `shard`, `host`, `elapsed_s`, `cases`.
//! - `machine` (object or null): `host`, `os` (e.g. `linux-x86_64`), `cpus` (logical CPUs),
//!   `tensile_version`; null when no `RunStarted` event arrived.
//! - `devices` (array of strings): devices of the whole plan (`cpu`, `cuda`, `cuda:1`), also
//!   in a shard's report.
//! - `totals` (object): `cases`, `cases_passed`, `checks`, `checks_failed`, `checks_skipped`,
//!   `checks_flaky` (repeated checks that both passed and failed; also counted as failed),
//!   `interrupted` (true when SIGINT or SIGTERM stopped the run: the report holds what ran).
//! - `elapsed_s` (number): wall time of the run in seconds (of a merged report: the longest
//!   shard's, the wall time when the shards ran side by side).
//! - `coverage` (object): of the whole plan, also in a shard's report: `kinds` (per module
//!   kind: `kind`, `cases`, `tests`, `dtypes`, `devices`, `checks`, and `dims`: configuration
//!   number → distinct values, `seq_len` included), `presets` (presets compared against) and
//!   `uncovered` (`preset`, `test`, `kind`, `dims` of each preset module no case covers).
//! - `cases` (array): one object per case (module test × dtype × device), in run order:
//!   - `index` (integer): position in the whole plan (a shard keeps the whole plan's indices);
//!   - `name` (string): module test name, e.g. `tiny-llama::attention`;
//!   - `module` (string): module kind, e.g. `llama.attention`;
//!   - `dtype` (string), `device` (string);
//!   - `input_shape` (array of integers);
//!   - `passed` (boolean): every check passed (skipped checks count as passed);
//!   - `checks` (array): one object per check, in run order:
//!     - `check` (string): `correctness`, `gradients`, `determinism`, `batch_invariance`,
//!       `dtype_parity`, `performance`, `memory` or `scaling`;
//!     - `passed` (boolean);
//!     - `metrics` (object): metric name → number, or `null` for a non-finite value;
//!     - `errors` (array of strings): why it failed, empty when it passed;
//!     - `notes` (array of strings): remarks that do not change the verdict;
//!     - `skipped` (string or null): why the check did not run;
//!     - `elapsed_s` (number): wall time of the check in seconds;
//!     - `series` (object, only when there is one): name → array of numbers behind the
//!       metrics: `samples_ms` (every timed run of a performance check), `seq_len`, `ms` and
//!       `mb` (the points of a scaling sweep);
//!     - `repeat` (object, only with `--repeat N`, N > 1): `runs`, `failures`,
//!       `failure_rate`, `rate_low` and `rate_high` (95% Wilson interval), `flaky`.
//!
//! With a baseline (`--baseline NAME`), performance metrics gain `baseline_median_ms`,
//! `slowdown`, `slowdown_ci_low`, `slowdown_ci_high` and `regression_threshold` (fractions:
//! 0.05 is 5%), and `regression` (1 or 0).
//!
//! # Non-finite numbers
//!
//! JSON has no NaN or infinity. serde_json writes every non-finite `f64` (NaN, +inf, -inf) as
//! `null`, so the file always parses; a `null` metric means "not a finite number" (for example
//! the max error of an output that contains NaN), never "not measured" (absent metrics are
//! simply left out of `metrics`).

use super::record::{FileReporter, Format, RunRecord};
use crate::report_file::ReportFile;
pub use crate::report_file::SCHEMA_VERSION;

/// The JSON format.
pub struct Json;

impl Format for Json {
    fn render(r: &RunRecord) -> String {
        let report = ReportFile {
            schema_version: SCHEMA_VERSION,
            // The version comes from the run when there is one, so the report describes the
            // run rather than whichever build happens to render it.
            tensile_version: r.tensile_version().to_string(),
            commit: r.commit.clone(),
            plan: r.plan.clone(),
            shard: r.shard,
            merged: r.merged.clone(),
            machine: r.machine.clone(),
            devices: r.devices.clone(),
            totals: r.totals.clone(),
            elapsed_s: r.elapsed_s,
            coverage: r.coverage.clone(),
            cases: r.cases.clone(),
        };
        // Plain data with string keys: serialising cannot fail (non-finite numbers become null).
        serde_json::to_string_pretty(&report).unwrap_or_default() + "\n"
    }
}

/// Collects case results and writes the JSON report file when the run finishes.
pub type JsonReporter = FileReporter<Json>;
