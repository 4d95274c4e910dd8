//! The cargo integration: [`crate::harness!`] turns every registered spec into named tests of a
//! `harness = false` test target (libtest-mimic), so `cargo test -p my-model -- attention`,
//! `cargo nextest run` and `--partition hash:1/4` sharding work with names like
//! `llama3_8b::attention::correctness`.
//!
//! The same report files, baselines and repetitions as `tensile run` come from environment
//! variables, e.g. `TENSILE_JUNIT=target/junit.xml TENSILE_REPEAT=5 cargo test -p my-model`.

use crate::event::{CaseResult, CheckResult, Event, Reporter, Totals};
use crate::outputs::Outputs;
use crate::plan::{Plan, Settings};
use crate::presets::zero_weight_tests;
use crate::report::coverage::against_presets;
use crate::runner::{self, RunOptions};
use crate::spec::ModuleTest;
use libtest_mimic::{Arguments, Conclusion, Failed, Trial};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Results of the trials that ran, keyed by (case index, check position).
type Results = Arc<Mutex<BTreeMap<(usize, usize), CheckResult>>>;

/// One test per (case, check). A module test with one dtype and device is named
/// `name::check`; with several, `name::dtype_device::check`.
pub fn trials(tests: &[ModuleTest], settings: &Settings) -> crate::Result<Vec<Trial>> {
    let plan = Plan::new(tests, settings)?;
    Ok(plan_trials(&plan, &Arc::new(RunOptions::default()), &Results::default()))
}

fn plan_trials(plan: &Plan, options: &Arc<RunOptions>, results: &Results) -> Vec<Trial> {
    let per_name = |name: &str| plan.cases.iter().filter(|c| c.name == name).count();
    let mut out = Vec::new();
    for case in &plan.cases {
        let stem = if per_name(&case.name) > 1 {
            format!("{}::{}_{}", case.name, crate::device::dtype_name(case.dtype), case.device.replace(':', ""))
        } else {
            case.name.clone()
        };
        for (pos, &check) in case.checks.iter().enumerate() {
            let (case, options, results) = (case.clone(), options.clone(), results.clone());
            out.push(Trial::test(format!("{stem}::{check}"), move || {
                let r = runner::run_single_with(&case, check, &options);
                if let Some(why) = &r.outcome.skipped {
                    println!("skipped: {why}");
                }
                for note in &r.outcome.notes {
                    println!("note: {note}");
                }
                let verdict = if r.outcome.passed { Ok(()) } else { Err(Failed::from(r.outcome.errors.join("\n"))) };
                // A poisoned lock means another trial panicked while inserting; its result is
                // lost either way, and this one is still worth keeping.
                results.lock().unwrap_or_else(|p| p.into_inner()).insert((case.index, pos), r);
                verdict
            }));
        }
    }
    out
}

/// Sends the results of the trials that ran through `reporters` as a run's events, in plan
/// order; cases whose trials were all filtered out are left out.
fn report(plan: &Plan, options: &RunOptions, results: &BTreeMap<(usize, usize), CheckResult>, elapsed_s: f64, reporters: &mut [Box<dyn Reporter>]) {
    let mut emit = |e: Event| reporters.iter_mut().for_each(|r| r.on_event(&e));
    emit(runner::started(plan, options));
    let mut totals = Totals::default();
    for case in &plan.cases {
        let checks: Vec<CheckResult> = results.range((case.index, 0)..(case.index + 1, 0)).map(|(_, r)| r.clone()).collect();
        if checks.is_empty() {
            continue;
        }
        let info = runner::case_info(case);
        emit(Event::CaseStarted(info.clone()));
        for r in &checks {
            emit(Event::CheckFinished { case: info.clone(), result: r.clone() });
        }
        let result = CaseResult::new(info, checks);
        runner::tally(&mut totals, &result);
        emit(Event::CaseFinished(result));
    }
    emit(Event::RunFinished { totals, elapsed_s });
}

/// Runs `tests` as libtest trials with `args`, applying `outputs` (baseline, repetitions) to
/// every check and writing its report files from the results of the trials that ran.
pub fn run(args: &Arguments, tests: &[ModuleTest], settings: &Settings, outputs: &Outputs) -> crate::Result<Conclusion> {
    let plan = Plan::new(tests, settings)?;
    let mut options = outputs.run_options()?;
    if outputs.writes_files() {
        // The reports say which preset modules the registered specs leave without a spec.
        options.coverage = Some(against_presets(plan.coverage(), &plan, zero_weight_tests(crate::presets::all())?));
    }
    let options = Arc::new(options);
    let results = Results::default();
    let started = Instant::now();
    let conclusion = libtest_mimic::run(args, plan_trials(&plan, &options, &results));
    // Listing tests (`--list`) runs nothing and writes nothing.
    if outputs.writes_files() && !args.list {
        let mut reporters = outputs.reporters();
        let results = results.lock().unwrap_or_else(|p| p.into_inner());
        report(&plan, &options, &results, started.elapsed().as_secs_f64(), &mut reporters);
        for r in reporters.iter_mut() {
            r.finish().map_err(|source| crate::Error::Write { path: "report".into(), source })?;
        }
    }
    Ok(conclusion)
}

/// Runs `tests` as a libtest-compatible test binary and exits with its status. Checks run one
/// at a time unless `--test-threads` says otherwise: timing and memory measurements must not
/// share the machine with other checks. Report files, baselines and repetitions come from
/// `TENSILE_*` variables ([`Outputs::from_env`]); a bad value exits with status 2.
pub fn main(tests: Vec<ModuleTest>) -> ! {
    let mut args = Arguments::from_args();
    if args.test_threads.is_none() {
        args.test_threads = Some(1);
    }
    match Outputs::from_env().and_then(|outputs| run(&args, &tests, &Settings::default(), &outputs)) {
        // The library's exit codes rather than libtest's 101, so a CI script reads a
        // harness binary and `tensile run` alike.
        Ok(conclusion) => std::process::exit(i32::from(if conclusion.has_failed() { crate::exit::FAILED } else { crate::exit::OK })),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(i32::from(crate::exit::USAGE));
        }
    }
}

/// Declares `main` for a `harness = false` test target: every `#[tensile::model_tests]`
/// registration linked into the binary, plus any extra `Vec<ModuleTest>` expressions given,
/// becomes a test; the counting allocator is installed for memory checks.
///
/// ```ignore
/// tensile::harness!();                          // registered tests only
/// tensile::harness!(my_model::module_tests());  // plus these
/// ```
#[macro_export]
macro_rules! harness {
    ($($extra:expr),* $(,)?) => {
        $crate::install_counting_allocator!();
        fn main() {
            #[allow(unused_mut)]
            let mut tests = match $crate::registry::module_tests(None) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: {e}");
                    std::process::exit(i32::from($crate::exit::USAGE));
                }
            };
            $(tests.extend($extra);)*
            $crate::harness::main(tests)
        }
    };
}
