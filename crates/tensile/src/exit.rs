//! Exit codes, the same for the `tensile` binary and for test binaries made with
//! [`crate::harness!`]: a script can tell "the model is wrong" from "the command was wrong".

/// Every check passed (skipped checks included).
pub const OK: u8 = 0;
/// At least one check failed, or was flaky under `--repeat`.
pub const FAILED: u8 = 1;
/// A usage, spec or file error: nothing trustworthy could be computed, and nothing ran.
pub const USAGE: u8 = 2;
