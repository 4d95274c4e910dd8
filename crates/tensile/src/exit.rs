//! Exit codes, the same for the `tensile` binary and for test binaries made with
//! [`crate::harness!`]: a script can tell "the model is wrong" from "the command was wrong".

/// Every check passed (skipped checks included).
pub const OK: u8 = 0;
/// At least one check failed, or was flaky under `--repeat`.
pub const FAILED: u8 = 1;
/// A usage, spec or file error: nothing trustworthy could be computed, and nothing ran.
pub const USAGE: u8 = 2;
/// Checks ran and every one was skipped (e.g. `--device cuda` on a build or machine without
/// CUDA): nothing was verified. `--allow-skips` (or `TENSILE_ALLOW_SKIPS=1`) turns it into 0.
pub const ALL_SKIPPED: u8 = 3;
/// The run was stopped by SIGINT or SIGTERM; the reports written say `interrupted` and hold
/// what ran (128 + SIGINT, as shells report it).
pub const INTERRUPTED: u8 = 130;

/// The exit code of a finished run: interrupted, failed, nothing verified, or passed.
pub fn of_run(totals: &crate::event::Totals, passed: bool, allow_skips: bool) -> u8 {
    if totals.interrupted {
        INTERRUPTED
    } else if !passed {
        FAILED
    } else if totals.all_skipped() && !allow_skips {
        ALL_SKIPPED
    } else {
        OK
    }
}
