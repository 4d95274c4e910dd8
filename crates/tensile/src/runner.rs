//! Executes a [`Plan`] and reports through events.
//!
//! Every check runs inside a panic guard: a check that errors, panics or meets NaN fails with
//! its reason and the run continues with the next check and the next case. Before a case is
//! built, its peak memory is predicted ([`crate::admission`]); a case over the budget fails
//! alone. Cases are built one at a time and dropped when they finish. With a timeout, a case
//! runs on a thread of its own and fails when it overruns; with isolation
//! ([`crate::isolate`]), in a process of its own, so even an abort fails only that case. A
//! SIGINT or SIGTERM ([`crate::interrupt`]) stops the run at the next check boundary, and the
//! run still finishes with `RunFinished`, marked interrupted.

use crate::admission::{self, Budget, MemoryLimit};
use crate::baseline::{Baseline, DEFAULT_THRESHOLD};
use crate::checks::{self, make_input, Ctx};
use crate::coverage::Coverage;
use crate::device::{dtype_name, parse_device};
use crate::event::{CaseInfo, CaseResult, CheckOutcome, CheckResult, Event, Machine, RepeatStats, Reporter, Status, Totals};
use crate::guard;
use crate::interrupt;
use crate::isolate::{self, ChildReporter, Launcher};
use crate::module::convert;
use crate::module::ModuleUnderTest;
use crate::plan::{Case, Plan};
use crate::shard::{PlanIdentity, ShardInfo};
use crate::spec::Check;
use candle_core::{Device, Tensor};
use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The results of a run.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    /// Per-case results in plan order.
    pub cases: Vec<CaseResult>,
    /// Totals.
    pub totals: Totals,
}

impl RunSummary {
    /// Whether every check of every case passed.
    pub fn passed(&self) -> bool {
        self.cases.iter().all(|c| c.passed)
    }
}

/// Per-case results flattened for a quick look: `{module_name, passed, metrics, errors}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleResult {
    /// Module test name.
    pub module_name: String,
    /// Dtype and device of this case.
    pub dtype: String,
    /// Device of this case.
    pub device: String,
    /// Whether every check passed.
    pub passed: bool,
    /// Metrics as `check.metric`.
    pub metrics: BTreeMap<String, f64>,
    /// Errors as `check: message`.
    pub errors: Vec<String>,
}

impl RunSummary {
    /// One [`ModuleResult`] per case, metrics named `check.metric`.
    pub fn module_results(&self) -> Vec<ModuleResult> {
        self.cases
            .iter()
            .map(|c| {
                let mut metrics = BTreeMap::new();
                let mut errors = Vec::new();
                for r in &c.checks {
                    metrics.extend(r.outcome.metrics.iter().map(|(k, v)| (format!("{}.{k}", r.check), *v)));
                    errors.extend(r.outcome.errors.iter().map(|e| format!("{}: {e}", r.check)));
                }
                ModuleResult { module_name: c.case.name.clone(), dtype: c.case.dtype.clone(), device: c.case.device.clone(), passed: c.passed, metrics, errors }
            })
            .collect()
    }
}

/// How to run a plan, beyond what the plan itself says.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Runs of each check on the same prepared input; more than one reports failure rates and
    /// calls a check that both passes and fails flaky.
    pub repeat: usize,
    /// Latency baseline to compare performance checks with.
    pub baseline: Option<Baseline>,
    /// Slowdown that fails a performance check when its interval's lower end clears it.
    pub threshold: f64,
    /// Configuration coverage to announce in `RunStarted` (computed from the plan when absent).
    pub coverage: Option<Coverage>,
    /// Memory a case may be predicted to need; `None` takes half of the case's device memory:
    /// physical memory for CPU cases (see [`crate::admission`]).
    pub max_memory: Option<MemoryLimit>,
    /// Longest a case may run; it then fails as timed out and the run goes on.
    pub timeout: Option<Duration>,
    /// Run each case in a child process started by this launcher.
    pub isolate: Option<Launcher>,
    /// The whole plan to announce in `RunStarted` when the plan run is one shard of it
    /// (the plan run itself when absent).
    pub whole_plan: Option<PlanIdentity>,
    /// The shard the plan run is, to announce in `RunStarted`.
    pub shard: Option<ShardInfo>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            repeat: 1,
            baseline: None,
            threshold: DEFAULT_THRESHOLD,
            coverage: None,
            max_memory: None,
            timeout: None,
            isolate: None,
            whole_plan: None,
            shard: None,
        }
    }
}

pub(crate) fn emit(reporters: &mut [&mut dyn Reporter], event: Event) {
    for r in reporters.iter_mut() {
        r.on_event(&event);
    }
}

/// The identity of `case` as events carry it.
pub(crate) fn case_info(case: &Case) -> CaseInfo {
    CaseInfo {
        index: case.index,
        name: case.name.clone(),
        module: case.module.kind().to_string(),
        dtype: dtype_name(case.dtype).to_string(),
        device: case.device.clone(),
        input_shape: case.input_shape.clone(),
    }
}

/// Runs every case of `plan` with default options, sending events to `reporters`.
pub fn run(plan: &Plan, reporters: &mut [&mut dyn Reporter]) -> RunSummary {
    run_with(plan, &RunOptions::default(), reporters)
}

/// The `RunStarted` event of `plan`.
pub(crate) fn started(plan: &Plan, options: &RunOptions) -> Event {
    // A shard names the whole plan's devices, as it carries the whole plan's coverage.
    let identity = options.whole_plan.clone().unwrap_or_else(|| crate::shard::identity(plan));
    let coverage = options.coverage.clone().unwrap_or_else(|| plan.coverage());
    Event::RunStarted {
        cases: plan.cases.len(),
        checks: plan.check_count(),
        machine: Machine::current(),
        devices: identity.devices.clone(),
        coverage,
        plan: Some(identity),
        shard: options.shard,
        commit: crate::baseline::detect_commit(),
        merged: Vec::new(),
    }
}

/// Adds `result` to `totals`.
pub fn tally(totals: &mut Totals, result: &CaseResult) {
    totals.cases += 1;
    totals.cases_passed += usize::from(result.passed);
    totals.checks += result.checks.len();
    totals.checks_failed += result.checks.iter().filter(|c| !c.outcome.passed).count();
    totals.checks_skipped += result.checks.iter().filter(|c| c.status() == Status::Skipped).count();
    totals.checks_flaky += result.checks.iter().filter(|c| c.status() == Status::Flaky).count();
}

/// Runs every case of `plan` as `options` say, sending events to `reporters`.
pub fn run_with(plan: &Plan, options: &RunOptions, reporters: &mut [&mut dyn Reporter]) -> RunSummary {
    let start = Instant::now();
    emit(reporters, started(plan, options));
    let mut summary = RunSummary::default();
    // Interrupted only if the stop cut something short: a signal after the last check
    // changes nothing.
    let mut cut = false;
    for case in &plan.cases {
        if interrupt::requested() {
            cut = true;
            break;
        }
        let result = match &options.isolate {
            Some(launcher) => run_case_isolated(case, options, launcher, reporters),
            None => run_case(case, options, reporters),
        };
        cut |= result.checks.iter().any(|c| c.outcome.skipped.as_deref() == Some(INTERRUPTED));
        tally(&mut summary.totals, &result);
        emit(reporters, Event::CaseFinished(result.clone()));
        summary.cases.push(result);
    }
    summary.totals.interrupted = cut;
    emit(reporters, Event::RunFinished { totals: summary.totals.clone(), elapsed_s: start.elapsed().as_secs_f64() });
    summary
}

/// Why a case could not be made ready.
enum Unready {
    /// The device cannot be used here (no CUDA in this build or machine): checks skip.
    Unavailable(String),
    /// The module or its input is broken: checks fail.
    Broken(String),
}

/// A case made ready to run: device, module in place, input.
type Prepared = std::result::Result<(Device, Arc<dyn ModuleUnderTest>, Tensor), Unready>;

fn prepare(case: &Case, options: &RunOptions) -> Prepared {
    let device = parse_device(&case.device).map_err(|e| Unready::Unavailable(e.to_string()))?;
    let context = format!("{} [{}]", case.name, case.device);
    // A module's own cost model may panic too (a user module indexing a shape it does not
    // expect): guarded like everything else it runs.
    guard::catch(&context, || admission::admit(case, Budget::for_device(options.max_memory, &device).as_ref()))
        .map_err(|e| Unready::Broken(e.to_string()))?
        .map_err(Unready::Broken)?;
    let module = guard::catch(&context, || convert(&case.module, case.dtype, &device))
        .map_err(|e| Unready::Broken(e.to_string()))?
        .map_err(|e| Unready::Broken(format!("cannot place the module in {} on {}: {e}", dtype_name(case.dtype), case.device)))?;
    let input = guard::catch(&context, || make_input(module.as_ref(), &case.input_shape, case.dtype, &device, case.spec.seed))
        .map_err(|e| Unready::Broken(e.to_string()))?
        .map_err(|e| Unready::Broken(format!("cannot build the input: {e}")))?;
    Ok((device, module, input))
}

/// One run of `check`, compared with the baseline when there is one.
fn run_once(case: &Case, prepared: &Prepared, check: Check, options: &RunOptions) -> CheckOutcome {
    let mut outcome = match prepared {
        Err(Unready::Unavailable(reason)) => CheckOutcome::skip(format!("device unavailable: {reason}")),
        Err(Unready::Broken(reason)) => CheckOutcome::fail(reason.clone()),
        Ok((device, module, input)) => {
            let ctx = Ctx { case, module, device, input };
            match guard::catch(&format!("{} {check}", case.name), || checks::run(check, &ctx)) {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(e)) => CheckOutcome::fail(e.to_string().lines().collect::<Vec<_>>().join(" ")),
                Err(panic) => CheckOutcome::fail(panic.to_string()),
            }
        }
    };
    if let (Some(b), Check::Performance, None) = (&options.baseline, check, &outcome.skipped) {
        b.apply(&case_info(case), &mut outcome, options.threshold);
    }
    outcome
}

/// Runs `check` `options.repeat` times on the same prepared input. A skipped check is not
/// repeated. Of several runs, the first failing one is reported (else the last); a check that
/// both passed and failed is reported failed with its failure rate, as flaky.
fn run_check(case: &Case, prepared: &Prepared, check: Check, options: &RunOptions) -> CheckResult {
    let started = Instant::now();
    let runs = options.repeat.max(1);
    let mut first_failure = None;
    let mut last = CheckOutcome::default();
    let mut done = 0;
    let mut failures = 0;
    while done < runs {
        let outcome = run_once(case, prepared, check, options);
        done += 1;
        let skipped = outcome.skipped.is_some();
        if !outcome.passed {
            failures += 1;
            first_failure.get_or_insert_with(|| outcome.clone());
        }
        last = outcome;
        if skipped {
            break;
        }
    }
    let repeat = (runs > 1 && last.skipped.is_none()).then(|| RepeatStats::new(done, failures));
    let mut outcome = first_failure.unwrap_or(last);
    if let Some(r) = repeat.as_ref().filter(|r| r.flaky) {
        outcome.errors.insert(
            0,
            format!(
                "flaky: failed {} of {} runs on the same input (failure rate {:.0}%, 95% CI {:.0}–{:.0}%)",
                r.failures,
                r.runs,
                r.failure_rate * 100.0,
                r.rate_low * 100.0,
                r.rate_high * 100.0
            ),
        );
    }
    CheckResult { check, outcome, elapsed_s: started.elapsed().as_secs_f64(), repeat }
}

/// Runs one check of one case on its own, with options (the cargo harness runs each as a test).
pub(crate) fn run_single_with(case: &Case, check: Check, options: &RunOptions) -> CheckResult {
    let single = Case { checks: vec![check], ..case.clone() };
    let mut results = match options.timeout {
        Some(t) => run_checks_timed(&single, options, t, &mut [], &case_info(case)),
        None => run_checks(&single, options, &mut [], &case_info(case)),
    };
    // Every check gets a result (skipped when a stop kept it from running).
    results.pop().unwrap_or_else(|| interrupted(check))
}

/// Prepares the case, then runs its checks (on a thread of its own under a timeout). A
/// failure to prepare becomes the outcome of every check, so nothing is lost silently.
pub(crate) fn run_case(case: &Case, options: &RunOptions, reporters: &mut [&mut dyn Reporter]) -> CaseResult {
    let ci = case_info(case);
    emit(reporters, Event::CaseStarted(ci.clone()));
    let checks = match options.timeout {
        Some(t) => run_checks_timed(case, options, t, reporters, &ci),
        None => run_checks(case, options, reporters, &ci),
    };
    CaseResult::new(ci, checks)
}

/// Runs `case` in a child process, forwarding its check results to `reporters` as they come;
/// checks the child did not finish fail with the reason it ended.
pub(crate) fn run_case_isolated(case: &Case, options: &RunOptions, launcher: &Launcher, reporters: &mut [&mut dyn Reporter]) -> CaseResult {
    let ci = case_info(case);
    emit(reporters, Event::CaseStarted(ci.clone()));
    let run = isolate::run_in_child(case.index, &case.name, options.timeout, launcher, |r| {
        emit(reporters, Event::CheckFinished { case: ci.clone(), result: r.clone() })
    });
    if let (Some(finished), None) = (run.finished, &run.failure) {
        return CaseResult { case: ci, ..finished };
    }
    let mut checks = run.checks;
    let rest = if run.interrupted {
        case.checks.iter().filter(|c| !checks.iter().any(|d| d.check == **c)).map(|&c| interrupted(c)).collect()
    } else {
        unfinished(case, &checks, run.failure.as_deref().unwrap_or("the case's process reported nothing"))
    };
    checks.extend(rest);
    in_plan_order(case, &mut checks);
    CaseResult::new(ci, checks)
}

/// Child side of isolation: runs the case with plan index `index` and prints its events
/// behind [`isolate::MARKER`]; returns the exit code, as `tensile run` would give it for that
/// one case.
pub fn run_child(plan: &Plan, index: usize, options: &RunOptions) -> u8 {
    let Some(case) = plan.cases.iter().find(|c| c.index == index) else {
        eprintln!("error: the plan has no case {index}");
        return crate::exit::USAGE;
    };
    let options = RunOptions { isolate: None, timeout: None, ..options.clone() };
    let mut out = ChildReporter;
    let result = run_case(case, &options, &mut [&mut out]);
    out.on_event(&Event::CaseFinished(result.clone()));
    if interrupt::requested() {
        crate::exit::INTERRUPTED
    } else if result.passed {
        crate::exit::OK
    } else {
        crate::exit::FAILED
    }
}

/// The skip reason of checks a stop request kept from running.
pub const INTERRUPTED: &str = "not run: the run was interrupted";

/// Prepares the case and hands each check's result to `sink` in order, until it returns
/// false. After a stop request, the checks not yet run are reported skipped as
/// [`INTERRUPTED`], so the case's record is complete.
fn each_check(case: &Case, options: &RunOptions, mut sink: impl FnMut(CheckResult) -> bool) {
    let prepared = prepare(case, options);
    for &check in &case.checks {
        let result = if interrupt::requested() { interrupted(check) } else { run_check(case, &prepared, check, options) };
        if !sink(result) {
            break;
        }
    }
}

/// The case's checks in order on this thread ([`each_check`]).
fn run_checks(case: &Case, options: &RunOptions, reporters: &mut [&mut dyn Reporter], ci: &CaseInfo) -> Vec<CheckResult> {
    let mut checks = Vec::new();
    each_check(case, options, |result| {
        emit(reporters, Event::CheckFinished { case: ci.clone(), result: result.clone() });
        checks.push(result);
        true
    });
    checks
}

/// A check a stop request kept from running.
pub(crate) fn interrupted(check: Check) -> CheckResult {
    CheckResult { check, outcome: CheckOutcome::skip(INTERRUPTED), elapsed_s: 0.0, repeat: None }
}

/// Failed results for the checks of `case` that `done` lacks, the first for `reason`, the
/// rest as not run for it (skipped instead when a stop was requested).
pub(crate) fn unfinished(case: &Case, done: &[CheckResult], reason: &str) -> Vec<CheckResult> {
    case.checks
        .iter()
        .filter(|c| !done.iter().any(|d| d.check == **c))
        .enumerate()
        .map(|(i, &check)| {
            if i > 0 && interrupt::requested() {
                return interrupted(check);
            }
            let why = if i == 0 { reason.to_string() } else { format!("not run: {reason}") };
            CheckResult { check, outcome: CheckOutcome::fail(why), elapsed_s: 0.0, repeat: None }
        })
        .collect()
}

/// Sorts `results` into the order of `case.checks`.
fn in_plan_order(case: &Case, results: &mut [CheckResult]) {
    results.sort_by_key(|r| case.checks.iter().position(|c| *c == r.check).unwrap_or(usize::MAX));
}

/// [`run_checks`] on a worker thread, waiting at most `timeout`. A case that overruns fails
/// its unfinished checks as timed out; its thread cannot be stopped from outside and finishes
/// in the background (isolation stops it for real).
fn run_checks_timed(case: &Case, options: &RunOptions, timeout: Duration, reporters: &mut [&mut dyn Reporter], ci: &CaseInfo) -> Vec<CheckResult> {
    let (tx, rx) = mpsc::channel();
    let (worker_case, worker_options) = (case.clone(), RunOptions { timeout: None, ..options.clone() });
    let spawned = std::thread::Builder::new()
        .name(format!("tensile-case-{}", case.index))
        .spawn(move || each_check(&worker_case, &worker_options, |result| tx.send(result).is_ok()));
    if let Err(e) = spawned {
        return unfinished(case, &[], &format!("could not start the case's thread: {e}"));
    }
    let deadline = Instant::now() + timeout;
    let mut checks = Vec::new();
    loop {
        // Whatever has arrived counts, even at the deadline.
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now()).min(isolate::POLL)) {
            Ok(result) => {
                emit(reporters, Event::CheckFinished { case: ci.clone(), result: result.clone() });
                checks.push(result);
            }
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() >= deadline => {
                let reason = format!(
                    "timed out: the case did not finish within {}; it goes on in the background (--isolate stops it)",
                    crate::isolate::duration_text(timeout)
                );
                let rest = unfinished(case, &checks, &reason);
                checks.extend(rest);
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // Every check sends a result, panics included; a thread that ends short of
                // that must not leave a case that looks passed.
                let rest = unfinished(case, &checks, "the case's thread ended without reporting");
                checks.extend(rest);
                break;
            }
        }
    }
    checks
}
