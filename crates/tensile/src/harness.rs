//! The cargo integration: [`crate::harness!`] turns every registered spec into named tests of a
//! `harness = false` test target (libtest-mimic), so `cargo test -p my-model -- attention`,
//! `cargo nextest run` and `--partition hash:1/4` sharding work with names like
//! `llama3_8b::attention::correctness`.
//!
//! The same report files, baselines and repetitions as `tensile run` come from environment
//! variables, e.g. `TENSILE_JUNIT=target/junit.xml TENSILE_REPEAT=5 cargo test -p my-model`.
//!
//! Sharding: `TENSILE_SHARD=K/N cargo test` runs the cases `tensile run --shard K/N` would (a
//! case's checks stay together, and the reports merge with `tensile report merge`), while
//! `cargo nextest run --partition hash:K/N` splits by trial (one check of one case) with
//! nextest's own hash; both run every trial in exactly one shard.

use crate::event::{CaseResult, CheckOutcome, CheckResult, Event, Reporter, Totals};
use crate::interrupt;
use crate::isolate::{self, Launcher};
use crate::outputs::Outputs;
use crate::plan::{Case, Plan, Settings};
use crate::presets::zero_weight_tests;
use crate::report::coverage::against_presets;
use crate::runner::{self, RunOptions};
use crate::spec::{Check, ModuleTest};
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
    Ok(plan_trials(&plan, &Arc::new(RunOptions::default()), &Results::default(), Mode::InProcess))
}

/// Set in the environment of a trial's child process under `TENSILE_ISOLATE`: the child runs
/// its one trial in-process and prints the result behind [`isolate::MARKER`].
pub const CHILD_VAR: &str = "TENSILE_CHILD_TRIAL";

/// Where a trial's check runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// In this process (under the timeout, if any).
    InProcess,
    /// In a child process running this binary filtered to the one trial.
    Isolated,
    /// In this process, which is such a child: the result is also printed for the parent.
    Child,
}

/// The command that re-runs this test binary for exactly the trial `name`.
fn launcher(name: String) -> Launcher {
    Launcher::new(move |_| {
        let exe = std::env::current_exe().unwrap_or_else(|_| std::path::PathBuf::from(std::env::args_os().next().unwrap_or_default()));
        let mut c = std::process::Command::new(exe);
        c.args([name.as_str(), "--exact", "--test-threads", "1"]).env(CHILD_VAR, "1");
        c
    })
}

/// Runs one trial's check as `mode` says.
fn run_trial(case: &Case, check: Check, name: &str, options: &RunOptions, mode: Mode) -> CheckResult {
    if interrupt::requested() {
        return runner::interrupted(check);
    }
    match mode {
        Mode::Isolated => {
            let single = Case { checks: vec![check], ..case.clone() };
            let mut result = runner::run_case_isolated(&single, options, &launcher(name.to_string()), &mut []);
            result.checks.pop().unwrap_or_else(|| CheckResult {
                check,
                outcome: CheckOutcome::fail("the trial's process reported nothing"),
                elapsed_s: 0.0,
                repeat: None,
            })
        }
        Mode::InProcess | Mode::Child => {
            let r = runner::run_single_with(case, check, options);
            if mode == Mode::Child {
                isolate::print_event(&Event::CheckFinished { case: runner::case_info(case), result: r.clone() });
            }
            r
        }
    }
}

fn plan_trials(plan: &Plan, options: &Arc<RunOptions>, results: &Results, mode: Mode) -> Vec<Trial> {
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
            let name = format!("{stem}::{check}");
            out.push(Trial::test(name.clone(), move || {
                let r = run_trial(&case, check, &name, &options, mode);
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
/// order; cases whose trials were all filtered out are left out. Returns the run's totals.
fn report(plan: &Plan, options: &RunOptions, results: &BTreeMap<(usize, usize), CheckResult>, elapsed_s: f64, reporters: &mut [Box<dyn Reporter>]) -> Totals {
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
    totals.interrupted = results.values().any(|r| r.outcome.skipped.as_deref() == Some(runner::INTERRUPTED));
    emit(Event::RunFinished { totals: totals.clone(), elapsed_s });
    totals
}

/// What a harness run concluded: libtest's conclusion and the run's totals.
#[derive(Debug)]
pub struct Outcome {
    /// libtest's counts.
    pub conclusion: Conclusion,
    /// The run's totals (skipped checks, interruption), over the trials that ran.
    pub totals: Totals,
}

impl Outcome {
    /// The exit code, as `tensile run` gives it ([`crate::exit::of_run`]).
    pub fn exit_code(&self, allow_skips: bool) -> u8 {
        crate::exit::of_run(&self.totals, !self.conclusion.has_failed(), allow_skips)
    }
}

/// Runs `tests` as libtest trials with `args`, applying `outputs` (baseline, repetitions,
/// memory budget, timeout, isolation) to every check and writing its report files from the
/// results of the trials that ran.
pub fn run(args: &Arguments, tests: &[ModuleTest], settings: &Settings, outputs: &Outputs) -> crate::Result<Outcome> {
    let plan = Plan::new(tests, settings)?;
    let child = std::env::var_os(CHILD_VAR).is_some();
    if child {
        isolate::exit_with_parent();
    } else {
        outputs.preflight(&plan, &[])?;
    }
    let mut options = outputs.run_options()?;
    if outputs.writes_files() && !child {
        // The reports say which preset modules the registered specs leave without a spec.
        options.coverage = Some(against_presets(plan.coverage(), &plan, zero_weight_tests(crate::presets::all())?));
    }
    // A shard's reports describe the whole plan (its identity and coverage, settled above),
    // so that the shards' reports merge into the report of an unsharded run.
    let plan = match outputs.sharding()? {
        Some(s) => {
            options.whole_plan = Some(crate::shard::identity(&plan));
            options.shard = Some(s.info());
            s.select(&plan)
        }
        None => plan,
    };
    let mode = match (child, outputs.isolate) {
        (true, _) => Mode::Child,
        (false, true) => Mode::Isolated,
        (false, false) => Mode::InProcess,
    };
    if mode == Mode::Child {
        // The parent enforces the timeout by killing this process.
        options.timeout = None;
    }
    let options = Arc::new(options);
    let results = Results::default();
    let started = Instant::now();
    let conclusion = libtest_mimic::run(args, plan_trials(&plan, &options, &results, mode));
    let results = results.lock().unwrap_or_else(|p| p.into_inner());
    let mut reporters = if outputs.writes_files() && !args.list && !child { outputs.reporters() } else { Vec::new() };
    // Listing tests (`--list`) runs nothing and writes nothing.
    let totals = report(&plan, &options, &results, started.elapsed().as_secs_f64(), &mut reporters);
    // Every reporter gets to write its file, even when one before it fails.
    let errors: Vec<std::io::Error> = reporters.iter_mut().filter_map(|r| r.finish().err()).collect();
    if let Some(source) = errors.into_iter().next() {
        return Err(crate::Error::Write { path: "report".into(), source });
    }
    Ok(Outcome { conclusion, totals })
}

/// Runs `tests` as a libtest-compatible test binary and exits with its status. Checks run one
/// at a time unless `--test-threads` says otherwise: timing and memory measurements must not
/// share the machine with other checks. Report files, baselines, repetitions, the memory
/// budget, the timeout and isolation come from `TENSILE_*` variables ([`Outputs::from_env`]);
/// a bad value exits with status 2. SIGINT or SIGTERM make the remaining trials fail as not
/// run; the reports say `interrupted` and the exit code is 130.
pub fn main(tests: Vec<ModuleTest>) -> ! {
    let mut args = Arguments::from_args();
    if args.test_threads.is_none() {
        args.test_threads = Some(1);
    }
    if let Err(e) = interrupt::install() {
        eprintln!("warning: cannot handle SIGINT: {e}");
    }
    // TENSILE_TAGS selects cases by tag expression and TENSILE_DEVICE forces their device.
    let run_all = |outputs: Outputs| -> crate::Result<_> { Ok((run(&args, &tests, &Settings::default().with_env()?, &outputs)?, outputs.allow_skips)) };
    match Outputs::from_env().and_then(run_all) {
        // The library's exit codes rather than libtest's 101, so a CI script reads a
        // harness binary and `tensile run` alike.
        Ok((outcome, allow_skips)) => std::process::exit(i32::from(outcome.exit_code(allow_skips))),
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
