//! A case's process killed by SIGINT (the user's Ctrl-C reaching it while it was being
//! spawned, before it left the terminal's process group) is an interrupted case, not a
//! failed one. A binary of its own: the interrupt flag is process-wide.

#[cfg(unix)]
#[test]
fn a_child_ended_by_sigint_is_interrupted_and_stops_the_run() {
    use std::process::Command;
    assert!(!tensile::interrupt::requested());
    let launcher = tensile::isolate::Launcher::new(|_| {
        let mut c = Command::new("sh");
        c.args(["-c", "kill -INT $$"]);
        // The shell must be able to die of SIGINT. A test run started in the background of a
        // non-interactive shell (`nohup cargo test &`) has SIGINT ignored, and a child
        // inherits that (the CLI's own handler resets it for its children; this test binary
        // installs none).
        // SAFETY: signal(2) is async-signal-safe, as code between fork and exec must be.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut c, || {
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                Ok(())
            });
        }
        c
    });
    let run = tensile::isolate::run_in_child(0, "c", None, &launcher, |_| {});
    assert!(run.interrupted && run.failure.is_none() && run.finished.is_none(), "{run:?}");
    assert!(tensile::interrupt::requested(), "the parent stops too");
    // Any other signal is the module's failure, named.
    tensile::interrupt::reset();
    let launcher = tensile::isolate::Launcher::new(|_| {
        let mut c = Command::new("sh");
        c.args(["-c", "kill -TERM $$"]);
        c
    });
    let run = tensile::isolate::run_in_child(0, "c", None, &launcher, |_| {});
    assert!(!run.interrupted && run.failure.as_deref().is_some_and(|f| f.contains("SIGTERM")), "{run:?}");
    assert!(!tensile::interrupt::requested());
}
