//! Executes a [`Plan`] and reports through events.
//!
//! Every check runs inside a panic guard: a check that errors, panics or meets NaN fails with
//! its reason and the run continues with the next check and the next case.

use crate::checks::{self, make_input, Ctx};
use crate::device::{dtype_name, parse_device};
use crate::event::{CaseInfo, CaseResult, CheckOutcome, CheckResult, Event, Machine, Reporter, Totals};
use crate::guard;
use crate::module::convert;
use crate::module::TestModule;
use crate::plan::{Case, Plan};
use crate::spec::Check;
use candle_core::{Device, Tensor};
use std::sync::Arc;
use std::time::Instant;

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

fn emit(reporters: &mut [&mut dyn Reporter], event: Event) {
    for r in reporters.iter_mut() {
        r.on_event(&event);
    }
}

fn info(case: &Case) -> CaseInfo {
    CaseInfo {
        index: case.index,
        name: case.name.clone(),
        module: case.module.kind().to_string(),
        dtype: dtype_name(case.dtype).to_string(),
        device: case.device.clone(),
        input_shape: case.input_shape.clone(),
    }
}

/// Runs every case of `plan`, sending events to `reporters`.
pub fn run(plan: &Plan, reporters: &mut [&mut dyn Reporter]) -> RunSummary {
    let start = Instant::now();
    let mut devices: Vec<String> = plan.cases.iter().map(|c| c.device.clone()).collect();
    devices.dedup();
    emit(reporters, Event::RunStarted { cases: plan.cases.len(), checks: plan.check_count(), machine: Machine::current(), devices });
    let mut summary = RunSummary::default();
    for case in &plan.cases {
        let result = run_case(case, reporters);
        let t = &mut summary.totals;
        t.cases += 1;
        t.cases_passed += usize::from(result.passed);
        t.checks += result.checks.len();
        t.checks_failed += result.checks.iter().filter(|c| !c.outcome.passed).count();
        t.checks_skipped += result.checks.iter().filter(|c| c.outcome.skipped.is_some()).count();
        emit(reporters, Event::CaseFinished(result.clone()));
        summary.cases.push(result);
    }
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
type Prepared = std::result::Result<(Device, Arc<dyn TestModule>, Tensor), Unready>;

fn prepare(case: &Case) -> Prepared {
    let device = parse_device(&case.device).map_err(|e| Unready::Unavailable(e.to_string()))?;
    let context = format!("{} [{}]", case.name, case.device);
    let module = guard::catch(&context, || convert(&case.module, case.dtype, &device))
        .map_err(|e| Unready::Broken(e.to_string()))?
        .map_err(|e| Unready::Broken(format!("cannot place the module in {} on {}: {e}", dtype_name(case.dtype), case.device)))?;
    let input = guard::catch(&context, || make_input(module.as_ref(), &case.input_shape, case.dtype, &device, case.spec.seed))
        .map_err(|e| Unready::Broken(e.to_string()))?
        .map_err(|e| Unready::Broken(format!("cannot build the input: {e}")))?;
    Ok((device, module, input))
}

fn run_check(case: &Case, prepared: &Prepared, check: Check) -> CheckResult {
    let started = Instant::now();
    let outcome = match prepared {
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
    CheckResult { check, outcome, elapsed_s: started.elapsed().as_secs_f64() }
}

/// Runs one check of one case on its own (the cargo harness runs each as a test).
pub fn run_single(case: &Case, check: Check) -> CheckResult {
    run_check(case, &prepare(case), check)
}

/// Prepares the case, then runs its checks. A failure to prepare becomes the outcome of every
/// check, so nothing is lost silently.
fn run_case(case: &Case, reporters: &mut [&mut dyn Reporter]) -> CaseResult {
    let ci = info(case);
    emit(reporters, Event::CaseStarted(ci.clone()));
    let prepared = prepare(case);
    let mut checks = Vec::new();
    for &check in &case.checks {
        let result = run_check(case, &prepared, check);
        emit(reporters, Event::CheckFinished { case: ci.clone(), result: result.clone() });
        checks.push(result);
    }
    CaseResult { passed: checks.iter().all(|c| c.outcome.passed), case: ci, checks }
}
