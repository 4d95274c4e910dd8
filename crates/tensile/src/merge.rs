//! Merging the JSON reports of a plan's shards into the events of one run, which the usual
//! reporters then render in every format (`tensile report merge`).
//!
//! A merge adds nothing of its own: the cases are the shards' cases in plan order, the totals
//! are counted from them as a run counts them ([`crate::runner::tally`]), and the coverage is
//! the whole plan's, which every shard's report carries. So the merged report of a complete set
//! of shards has the totals, coverage and regression verdicts of an unsharded run of the plan.
//!
//! Reports are refused, naming the mismatch, when they do not belong together: another plan,
//! commit, tensile version or device list, or a coverage that differs. `force` merges them
//! anyway, with a warning each. A shard given twice, a case found in two reports, or a report
//! whose totals disagree with its own cases is refused even then: the totals would count
//! something twice or not at all. Cases of the plan that no report holds (a shard not given,
//! or lost) are refused unless a shard was interrupted, since an interrupted run also lacks
//! them.

use crate::error::{Error, Result};
use crate::event::{CaseResult, Event, ShardRun, Totals};
use crate::report_file::ReportFile;
use crate::runner::tally;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// One report to merge and where it came from.
#[derive(Debug, Clone)]
pub struct Input {
    /// The file, named in errors.
    pub path: PathBuf,
    /// Its content.
    pub report: ReportFile,
}

impl Input {
    /// Reads a report file.
    ///
    /// # Errors
    /// See [`ReportFile::read`].
    pub fn read(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let report = ReportFile::read(&path)?;
        Ok(Self { path, report })
    }
}

/// A merge: the events of the merged run, and what `force` let through.
#[derive(Debug, Clone)]
pub struct Merged {
    /// `RunStarted`, each case's `CaseStarted`, `CheckFinished`s and `CaseFinished`, then
    /// `RunFinished`: what the reporters of a run receive.
    pub events: Vec<Event>,
    /// Mismatches and missing cases accepted with `force`, one line each.
    pub warnings: Vec<String>,
}

impl Merged {
    /// The merged run's totals.
    pub fn totals(&self) -> Totals {
        self.events.iter().rev().find_map(|e| if let Event::RunFinished { totals, .. } = e { Some(totals.clone()) } else { None }).unwrap_or_default()
    }
}

fn refuse(reason: impl Into<String>) -> Error {
    Error::Merge { reason: reason.into() }
}

/// The first report whose `field` differs from the first report's, as a sentence.
fn mismatch<T: PartialEq>(inputs: &[Input], what: &str, field: impl Fn(&ReportFile) -> T, show: impl Fn(&T) -> String) -> Option<String> {
    let first = field(&inputs[0].report);
    let other = inputs.iter().find(|i| field(&i.report) != first)?;
    Some(format!("different {what}: {} has {}, {} has {}", inputs[0].path.display(), show(&first), other.path.display(), show(&field(&other.report))))
}

/// Merges `inputs` (at least one) into one run's events.
///
/// # Errors
/// [`Error::Merge`] naming the first thing that keeps the reports from merging (see the
/// module documentation).
pub fn merge(inputs: &[Input], force: bool) -> Result<Merged> {
    if inputs.is_empty() {
        return Err(refuse("no report to merge"));
    }
    let mut warnings = Vec::new();
    for i in inputs {
        let mut counted = Totals::default();
        i.report.cases.iter().for_each(|c| tally(&mut counted, c));
        counted.interrupted = i.report.totals.interrupted;
        if counted != i.report.totals {
            return Err(refuse(format!("{}: its totals do not match its cases (an edited or truncated report?)", i.path.display())));
        }
    }
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
    let mismatches: Vec<String> = [
        mismatch(
            inputs,
            "plans",
            |r| r.plan.as_ref().map(|p| p.fingerprint.clone()),
            |f| f.clone().map_or("no plan identity (an older report)".into(), |f| format!("plan {f}")),
        ),
        mismatch(inputs, "commits", |r| r.commit.clone(), opt),
        mismatch(inputs, "tensile versions", |r| r.tensile_version.clone(), String::clone),
        mismatch(inputs, "device lists", |r| r.devices.clone(), |d| format!("[{}]", d.join(", "))),
        mismatch(inputs, "coverages", |r| r.coverage.clone(), |c| format!("{} kinds, {} uncovered", c.kinds.len(), c.uncovered.len())),
    ]
    .into_iter()
    .flatten()
    .collect();
    if let Some(first) = mismatches.first() {
        if !force {
            return Err(refuse(format!("{first} (give --force to merge them anyway)")));
        }
        warnings.extend(mismatches);
    }
    // A shard given twice is refused even when it holds no case, since it means another
    // shard's report is missing or misnamed.
    let mut shards: BTreeMap<crate::shard::Shard, &PathBuf> = BTreeMap::new();
    for i in inputs {
        if let Some(s) = i.report.shard {
            if let Some(other) = shards.insert(s.shard, &i.path) {
                return Err(refuse(format!("shard {} is given twice: {} and {}", s.shard, other.display(), i.path.display())));
            }
        }
    }
    // Every case once: by its index in the plan when the plans agree, and never two of one
    // name, dtype and device, whatever the plans.
    let mut owner: BTreeMap<crate::shard::CaseKey, &PathBuf> = BTreeMap::new();
    let mut cases: Vec<(usize, usize, &CaseResult)> = Vec::new();
    for (n, i) in inputs.iter().enumerate() {
        for c in &i.report.cases {
            if let Some(other) = owner.insert(c.case.key(), &i.path) {
                return Err(refuse(format!(
                    "case {} `{}` ({}, {}) is in both {} and {}: a shard given twice, or shards of different splits",
                    c.case.index,
                    c.case.name,
                    c.case.dtype,
                    c.case.device,
                    other.display(),
                    i.path.display()
                )));
            }
            cases.push((c.case.index, n, c));
        }
    }
    cases.sort_by_key(|&(index, n, _)| (index, n));
    let interrupted = inputs.iter().any(|i| i.report.totals.interrupted);
    if let Some(missing) = missing_cases(inputs, cases.len()).filter(|_| !interrupted) {
        if !force {
            return Err(refuse(format!("{missing} (give --force to merge what is there)")));
        }
        warnings.push(missing);
    }
    Ok(Merged { events: events(inputs, &cases, interrupted), warnings })
}

/// Says which cases of the plan no report holds, naming the shards not given when the
/// reports are shards of one split.
fn missing_cases(inputs: &[Input], found: usize) -> Option<String> {
    let planned = inputs[0].report.plan.as_ref()?.cases;
    if found >= planned {
        return None;
    }
    let counts: BTreeSet<usize> = inputs.iter().filter_map(|i| i.report.shard.map(|s| s.shard.count)).collect();
    let shards = match (counts.len(), counts.first()) {
        (1, Some(&count)) => {
            let given: BTreeSet<usize> = inputs.iter().filter_map(|i| i.report.shard.map(|s| s.shard.index)).collect();
            let absent: Vec<String> = (1..=count).filter(|k| !given.contains(k)).map(|k| format!("{k}/{count}")).collect();
            if absent.is_empty() {
                String::new()
            } else {
                format!(" (shard {} not given)", absent.join(", "))
            }
        }
        _ => String::new(),
    };
    Some(format!("{} of the plan's {planned} cases are in no report{shards}", planned - found))
}

/// The merged run's events.
fn events(inputs: &[Input], cases: &[(usize, usize, &CaseResult)], interrupted: bool) -> Vec<Event> {
    // The first shard of the split speaks for the run's machine, plan and commit.
    let lead = inputs.iter().min_by_key(|i| i.report.shard.map_or(0, |s| s.shard.index)).map_or(&inputs[0].report, |i| &i.report);
    let mut devices: Vec<String> = Vec::new();
    for d in inputs.iter().flat_map(|i| &i.report.devices) {
        if !devices.contains(d) {
            devices.push(d.clone());
        }
    }
    let merged = inputs
        .iter()
        .map(|i| ShardRun {
            shard: i.report.shard,
            host: i.report.machine.as_ref().map(|m| m.host.clone()),
            elapsed_s: i.report.elapsed_s,
            cases: i.report.cases.len(),
        })
        .collect();
    let mut out = vec![Event::RunStarted {
        cases: cases.len(),
        checks: cases.iter().map(|(_, _, c)| c.checks.len()).sum(),
        machine: lead.machine.clone().unwrap_or_else(crate::event::Machine::current),
        devices,
        coverage: lead.coverage.clone(),
        plan: lead.plan.clone(),
        shard: None,
        commit: lead.commit.clone(),
        merged,
    }];
    let mut totals = Totals::default();
    for (_, _, c) in cases {
        out.push(Event::CaseStarted(c.case.clone()));
        out.extend(c.checks.iter().map(|r| Event::CheckFinished { case: c.case.clone(), result: r.clone() }));
        tally(&mut totals, c);
        out.push(Event::CaseFinished((*c).clone()));
    }
    totals.interrupted = interrupted;
    // Side by side, the shards took as long as the longest of them.
    let elapsed_s = inputs.iter().map(|i| i.report.elapsed_s).fold(0.0, f64::max);
    out.push(Event::RunFinished { totals, elapsed_s });
    out
}
