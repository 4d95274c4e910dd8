//! Sharded runs through the real runner and JSON reporter: the merged report of every shard
//! has the cases, totals, coverage and regression verdicts of an unsharded run of the same
//! plan, however many shards and whichever way they are balanced; reports that do not belong
//! together are refused, naming why.

use candle_core::{DType, Device, Result, Tensor};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tensile::baseline::{Baseline, Entry};
use tensile::event::{Event, Reporter};
use tensile::merge::{merge, Input};
use tensile::report::{JsonReporter, RunRecord};
use tensile::report_file::ReportFile;
use tensile::runner::{run_with, RunOptions};
use tensile::shard::{identity, Durations, Shard, Sharding};
use tensile::spec::{Profile, Spec};
use tensile::{Check, ModuleTest, ModuleUnderTest, Plan, Settings};

/// `y = 0.5·x`, or `0.55·x` when `broken`, on a `[1, 4, width]` input.
struct Half {
    broken: bool,
    width: usize,
}

impl ModuleUnderTest for Half {
    fn kind(&self) -> &str {
        "half"
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x * if self.broken { 0.55 } else { 0.5 }
    }
    fn forward_reference(&self, x: &Tensor) -> Option<Result<Tensor>> {
        Some(x.to_dtype(DType::F64).and_then(|x| x.to_device(&Device::Cpu)).and_then(|x| x * 0.5))
    }
    fn input_shape_hint(&self, batch: usize, seq: usize) -> Option<Vec<usize>> {
        Some(vec![batch, seq, self.width])
    }
    fn dims(&self) -> Vec<(&'static str, usize)> {
        vec![("hidden", self.width)]
    }
}

/// Twelve tests, two of them broken, three with a performance check (compared with a baseline
/// whose verdict cannot depend on timing: see [`baseline`]).
fn tests() -> Vec<ModuleTest> {
    let profile = Profile { warmup: Duration::from_millis(1), warmup_runs: None, iterations: Some(5), budget: Duration::from_millis(50), flush_cache_mib: 0 };
    (0..12)
        .map(|i| {
            let mut checks = vec![Check::Correctness, Check::Determinism];
            if i % 4 == 1 {
                checks.push(Check::Performance);
            }
            let module = Arc::new(Half { broken: i == 3 || i == 8, width: 8 + 8 * (i % 3) });
            ModuleTest {
                name: format!("zoo::block{i}"),
                module,
                spec: Spec { checks, input_shape: Some(vec![1, 4, 8 + 8 * (i % 3)]), profile, ..Spec::default() },
            }
        })
        .collect()
}

fn plan() -> Plan {
    Plan::new(&tests(), &Settings::default()).unwrap()
}

/// A baseline no run can meet for `block1` (a thousandth of a nanosecond: always a
/// regression) and no run can miss for `block5` (a thousand seconds); `block9` has no entry.
fn baseline() -> Baseline {
    let entry = |name: &str, width: usize, ms: f64| Entry {
        name: name.into(),
        module: "half".into(),
        dtype: "f32".into(),
        device: "cpu".into(),
        input_shape: vec![1, 4, width],
        median_ms: ms,
        samples_ms: vec![ms; 5],
        work_samples_ms: Vec::new(),
    };
    Baseline {
        schema_version: 1,
        name: "pinned".into(),
        commit: None,
        created_unix_s: 0,
        machine: None,
        entries: vec![entry("zoo::block1", 16, 1e-6), entry("zoo::block5", 24, 1e6)],
        durations: Vec::new(),
    }
}

/// Runs `plan` (a shard of `whole` when `sharding` is given) and reads back its JSON report.
fn run_to_report(whole: &Plan, sharding: Option<&Sharding>, dir: &Path, file: &str) -> Input {
    let mut options = RunOptions { baseline: Some(baseline()), coverage: Some(whole.coverage()), ..RunOptions::default() };
    let plan = match sharding {
        Some(s) => {
            options.whole_plan = Some(identity(whole));
            options.shard = Some(s.info());
            s.select(whole)
        }
        None => whole.clone(),
    };
    let path = dir.join(file);
    let mut json = JsonReporter::new(&path);
    run_with(&plan, &options, &mut [&mut json]);
    json.finish().unwrap();
    Input::read(&path).unwrap()
}

fn shards(whole: &Plan, count: usize, durations: Option<&Durations>, dir: &Path) -> Vec<Input> {
    (1..=count)
        .map(|index| {
            let s = Sharding { shard: Shard { index, count }, durations: durations.cloned() };
            run_to_report(whole, Some(&s), dir, &format!("shard-{index}-of-{count}.json"))
        })
        .collect()
}

/// What must not change between a sharded and an unsharded run: each case's identity,
/// verdict, each check's status, errors and regression metric, the totals, the coverage and
/// the plan. Timings are left out: they are measured anew by every run.
fn verdicts(r: &ReportFile) -> impl PartialEq + std::fmt::Debug {
    let cases: Vec<_> = r
        .cases
        .iter()
        .map(|c| {
            let checks: Vec<_> = c
                .checks
                .iter()
                .map(|k| {
                    (k.check, k.status(), k.outcome.errors.len(), k.outcome.notes.clone(), k.outcome.metrics.get(&tensile::keys::Metric::Regression).copied())
                })
                .collect();
            (c.case.clone(), c.passed, checks)
        })
        .collect();
    (cases, r.totals.clone(), r.coverage.clone(), r.plan.clone(), r.devices.clone(), r.commit.clone())
}

fn merged_report(inputs: &[Input]) -> ReportFile {
    let merged = merge(inputs, false).unwrap();
    assert!(merged.warnings.is_empty(), "{:?}", merged.warnings);
    let record = RunRecord::from_events(&merged.events);
    let text = <tensile::report::Json as tensile::report::Format>::render(&record);
    ReportFile::from_slice(text.as_bytes(), Path::new("merged.json")).unwrap()
}

#[test]
fn merged_shards_report_what_an_unsharded_run_reports() {
    let dir = tempfile::tempdir().unwrap();
    let whole = plan();
    let unsharded = run_to_report(&whole, None, dir.path(), "whole.json").report;
    // The fixture's verdicts, so the comparison below compares something: two broken
    // blocks fail correctness, block1 regresses, block5 does not, block9 has no entry.
    assert_eq!((unsharded.totals.cases, unsharded.totals.cases_passed), (12, 9));
    let regression = |name: &str| {
        let c = unsharded.cases.iter().find(|c| c.case.name == name).unwrap();
        c.checks.iter().find(|k| k.check == Check::Performance).unwrap().outcome.metrics.get(&tensile::keys::Metric::Regression).copied()
    };
    assert_eq!((regression("zoo::block1"), regression("zoo::block5"), regression("zoo::block9")), (Some(1.0), Some(0.0), None));
    for count in [1, 2, 3, 5, 16] {
        let parts = shards(&whole, count, None, dir.path());
        let sizes: Vec<usize> = parts.iter().map(|p| p.report.cases.len()).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 12, "{count} shards: {sizes:?}");
        for p in &parts {
            let shard = p.report.shard.unwrap();
            assert_eq!((shard.shard.count, shard.by), (count, tensile::shard::Balance::Hash));
            assert_eq!(p.report.coverage, unsharded.coverage, "a shard's report carries the whole plan's coverage");
        }
        let merged = merged_report(&parts);
        assert_eq!(verdicts(&merged), verdicts(&unsharded), "{count} shards");
        assert_eq!(merged.merged.len(), count);
        assert!(merged.shard.is_none());
    }
}

#[test]
fn shards_balanced_by_recorded_time_merge_the_same_and_even_out_the_work() {
    let dir = tempfile::tempdir().unwrap();
    let whole = plan();
    let unsharded = run_to_report(&whole, None, dir.path(), "whole.json");
    // Recorded durations: block0 alone is as long as all the others together.
    let mut durations: Durations = unsharded.report.durations().into_keys().map(|k| (k, 1.0)).collect();
    *durations.iter_mut().next().unwrap().1 = 11.0;
    let parts = shards(&whole, 2, Some(&durations), dir.path());
    let block0 = |p: &Input| p.report.cases.iter().any(|c| c.case.name == "zoo::block0");
    let (alone, rest): (Vec<&Input>, Vec<&Input>) = parts.iter().partition(|p| block0(p));
    assert_eq!((alone[0].report.cases.len(), rest[0].report.cases.len()), (1, 11), "the long case gets a shard of its own");
    assert_eq!(alone[0].report.shard.unwrap().by, tensile::shard::Balance::Time);
    assert_eq!(verdicts(&merged_report(&parts)), verdicts(&unsharded.report));
}

fn refusal(inputs: &[Input]) -> String {
    merge(inputs, false).unwrap_err().to_string()
}

#[test]
fn a_missing_shard_is_named_and_force_merges_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let parts = shards(&plan(), 3, None, dir.path());
    let two = [parts[0].clone(), parts[2].clone()];
    let why = refusal(&two);
    assert!(why.contains("shard 2/3 not given") && why.contains("of the plan's 12 cases are in no report") && why.contains("--force"), "{why}");
    let forced = merge(&two, true).unwrap();
    assert_eq!(forced.totals().cases, 12 - parts[1].report.cases.len());
    assert_eq!(forced.warnings.len(), 1);
}

#[test]
fn a_case_in_two_reports_is_refused_even_when_forced() {
    let dir = tempfile::tempdir().unwrap();
    let parts = shards(&plan(), 2, None, dir.path());
    // The same case in the reports of two different splits.
    let mut other = parts[1].clone();
    other.report.shard = None;
    other.report.cases.push(parts[0].report.cases[0].clone());
    let c = &parts[0].report.cases[0];
    tensile::runner::tally(&mut other.report.totals, c);
    for force in [false, true] {
        let why = merge(&[parts[0].clone(), other.clone()], force).unwrap_err().to_string();
        assert!(why.contains("is in both") && why.contains(&c.case.name), "{why}");
    }
}

#[test]
fn a_shard_given_twice_is_refused_even_when_forced() {
    let dir = tempfile::tempdir().unwrap();
    let parts = shards(&plan(), 2, None, dir.path());
    let twice = [parts[0].clone(), parts[1].clone(), parts[0].clone()];
    for force in [false, true] {
        let why = merge(&twice, force).unwrap_err().to_string();
        assert!(why.contains("shard 1/2 is given twice") && why.contains("shard-1-of-2.json"), "{why}");
    }
}

#[test]
fn reports_of_another_plan_commit_version_or_device_are_refused_by_name_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let parts = shards(&plan(), 2, None, dir.path());
    type Edit = fn(&mut ReportFile);
    let edits: [(&str, Edit); 4] = [
        ("different plans", |r| r.plan.as_mut().unwrap().fingerprint = "0123456789abcdef".into()),
        ("different commits", |r| r.commit = Some("feedbeef".into())),
        ("different tensile versions", |r| r.tensile_version = "0.0.0".into()),
        ("different device lists", |r| r.devices = vec!["cuda:0".into()]),
    ];
    for (what, edit) in edits {
        let mut other = parts[1].clone();
        edit(&mut other.report);
        let why = refusal(&[parts[0].clone(), other.clone()]);
        assert!(why.contains(what), "{what}: {why}");
        assert!(why.contains("shard-1-of-2.json") && why.contains("shard-2-of-2.json") && why.contains("--force"), "{why}");
        let forced = merge(&[parts[0].clone(), other], true).unwrap();
        assert_eq!(forced.totals().cases, 12, "{what}");
        assert!(!forced.warnings.is_empty());
    }
}

#[test]
fn a_report_whose_totals_disagree_with_its_cases_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut parts = shards(&plan(), 2, None, dir.path());
    parts[1].report.cases.pop();
    for force in [false, true] {
        let why = merge(&parts, force).unwrap_err().to_string();
        assert!(why.contains("shard-2-of-2.json: its totals do not match its cases"), "{why}");
    }
}

#[test]
fn an_interrupted_shard_merges_as_an_interrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut parts = shards(&plan(), 2, None, dir.path());
    // What an interrupted shard leaves: the cases that ran, and the flag.
    let r = &mut parts[1].report;
    let dropped = r.cases.pop().unwrap();
    r.totals.cases -= 1;
    r.totals.cases_passed -= usize::from(dropped.passed);
    r.totals.checks -= dropped.checks.len();
    r.totals.checks_failed -= dropped.checks.iter().filter(|c| !c.outcome.passed).count();
    r.totals.interrupted = true;
    let merged = merge(&parts, false).unwrap();
    let totals = merged.totals();
    assert!(totals.interrupted);
    assert_eq!(totals.cases, 11);
    assert!(matches!(merged.events.last(), Some(Event::RunFinished { .. })));
}
