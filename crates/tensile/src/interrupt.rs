//! Stopping a run cleanly on SIGINT (Ctrl-C) or SIGTERM.
//!
//! The handler only raises a flag; the runner looks at it before every check, stops there,
//! and every reporter still receives `RunFinished` with `totals.interrupted` set, so the
//! reports written are complete for what ran and say that the run was cut short (a report
//! left from an earlier run at the same path would otherwise look current). A second signal
//! ends the process at once with exit code 130, for a check that does not come back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

fn flag() -> &'static Arc<AtomicBool> {
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// Installs the SIGINT and SIGTERM handlers (once per process; later calls do nothing).
pub fn install() -> std::io::Result<()> {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    if INSTALLED.get().is_some() {
        return Ok(());
    }
    #[cfg(unix)]
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Registered first, so it sees the flag as it was before this signal: set by an
        // earlier one, it exits.
        signal_hook::flag::register_conditional_shutdown(signal, crate::exit::INTERRUPTED as i32, flag().clone())?;
        signal_hook::flag::register(signal, flag().clone())?;
    }
    let _ = INSTALLED.set(());
    Ok(())
}

/// Whether a stop was requested.
pub fn requested() -> bool {
    flag().load(Ordering::SeqCst)
}

/// Requests a stop, as the signal handler does (for tests and embedding programs).
pub fn request() {
    flag().store(true, Ordering::SeqCst);
}

/// Clears a request (for tests and for programs that run several plans).
pub fn reset() {
    flag().store(false, Ordering::SeqCst);
}
