//! The cargo integration: [`crate::harness!`] turns every registered spec into named tests of a
//! `harness = false` test target (libtest-mimic), so `cargo test -p my-model -- attention`,
//! `cargo nextest run` and `--partition hash:1/4` sharding work with names like
//! `llama3_8b::attention::correctness`.

use crate::plan::{Plan, Settings};
use crate::spec::ModuleTest;
use libtest_mimic::{Arguments, Failed, Trial};

/// One test per (case, check). A module test with one dtype and device is named
/// `name::check`; with several, `name::dtype_device::check`.
pub fn trials(tests: &[ModuleTest], settings: &Settings) -> crate::Result<Vec<Trial>> {
    let plan = Plan::new(tests, settings)?;
    let per_name = |name: &str| plan.cases.iter().filter(|c| c.name == name).count();
    let mut out = Vec::new();
    for case in &plan.cases {
        let stem = if per_name(&case.name) > 1 {
            format!("{}::{}_{}", case.name, crate::device::dtype_name(case.dtype), case.device.replace(':', ""))
        } else {
            case.name.clone()
        };
        for &check in &case.checks {
            let case = case.clone();
            out.push(Trial::test(format!("{stem}::{check}"), move || {
                let r = crate::runner::run_single(&case, check);
                if let Some(why) = &r.outcome.skipped {
                    println!("skipped: {why}");
                }
                for note in &r.outcome.notes {
                    println!("note: {note}");
                }
                if r.outcome.passed {
                    Ok(())
                } else {
                    Err(Failed::from(r.outcome.errors.join("\n")))
                }
            }));
        }
    }
    Ok(out)
}

/// Runs `tests` as a libtest-compatible test binary and exits with its status. Checks run one
/// at a time unless `--test-threads` says otherwise: timing and memory measurements must not
/// share the machine with other checks.
pub fn main(tests: Vec<ModuleTest>) -> ! {
    let mut args = Arguments::from_args();
    if args.test_threads.is_none() {
        args.test_threads = Some(1);
    }
    match trials(&tests, &Settings::default()) {
        Ok(trials) => libtest_mimic::run(&args, trials).exit(),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
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
                    std::process::exit(2);
                }
            };
            $(tests.extend($extra);)*
            $crate::harness::main(tests)
        }
    };
}
