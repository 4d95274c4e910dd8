//! Per-case isolation: each case runs in a child process (the same binary), so an abort, an
//! out-of-memory kill, a stack overflow or (under a timeout) an endless loop fails that case,
//! with the signal or exit code and the last lines the child wrote to stderr, and the run goes
//! on.
//!
//! The parent starts the child through a [`Launcher`] (the `tensile` binary re-runs its own
//! command line with `--child-case N`; the cargo harness re-runs its test binary). The child
//! builds the same plan, runs case `N` alone with [`crate::runner::run_child`], and prints each finished check
//! and then the finished case on stdout as one JSON line each, behind [`MARKER`]. The parent
//! forwards the checks to its reporters as they arrive, so a child that dies halfway keeps the
//! results it sent. Under a timeout the parent kills the child when its time is up.

use crate::event::{CaseResult, CheckResult, Event, Reporter};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Marks the child's event lines on stdout (from the marker to the end of the line: a test
/// harness may have printed the start of the line); other output on stdout is ignored.
pub const MARKER: &str = "@tensile-event ";
/// How often a waiting parent (or in-process runner) looks at the clock and the interrupt flag.
pub(crate) const POLL: Duration = Duration::from_millis(50);
/// Lines of the child's stderr kept for the failure message.
const STDERR_LINES: usize = 6;
/// The line a parent writes to its child's stdin to ask it to stop at its next check boundary.
///
/// A pipe rather than a signal: a SIGINT that reaches a child before it has installed its
/// handler (while it is still starting up or loading the spec) would kill it, and the case
/// would be reported as failed instead of interrupted. A line in the pipe waits until the
/// child reads it.
const STOP_LINE: &[u8] = b"stop\n";

/// Starts the child process that runs the case with the given plan index.
#[derive(Clone)]
pub struct Launcher(Arc<dyn Fn(usize) -> Command + Send + Sync>);

impl Launcher {
    /// A launcher from a function giving the command for a case index.
    pub fn new(f: impl Fn(usize) -> Command + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }
}

impl std::fmt::Debug for Launcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Launcher(..)")
    }
}

/// `d` as people write it: `30s`, `1.5s`, `2m`, `250ms`.
pub fn duration_text(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1.0 {
        format!("{}ms", d.as_millis())
    } else if s >= 60.0 && s % 60.0 == 0.0 {
        format!("{}m", s / 60.0)
    } else {
        format!("{s}s")
    }
}

/// Parses `30s`, `1.5s`, `250ms`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is not a duration (e.g. 30s, 500ms, 2m)");
    let (v, unit) = crate::validate::number_and_unit(text).ok_or_else(bad)?;
    let scale = match unit {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad()),
    };
    let secs = v * scale;
    if secs.is_finite() && secs > 0.0 && secs <= 7.0 * 86400.0 {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(format!("`{text}`: a timeout must be positive and at most a week"))
    }
}

/// Prints `event` on stdout as one marked JSON line, flushed at once so the parent has it even
/// if the process dies right after.
pub fn print_event(event: &Event) {
    if let Ok(line) = serde_json::to_string(event) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{MARKER}{line}");
        let _ = out.flush();
    }
}

/// Prints check and case results with [`print_event`]: the reporter of a child process.
pub struct ChildReporter;

impl Reporter for ChildReporter {
    fn on_event(&mut self, event: &Event) {
        if matches!(event, Event::CheckFinished { .. } | Event::CaseFinished(_)) {
            print_event(event);
        }
    }
}

/// What a child process gave back for its case.
#[derive(Debug, Default)]
pub struct ChildRun {
    /// The checks it finished, in order.
    pub checks: Vec<CheckResult>,
    /// Its finished case, when it got that far.
    pub finished: Option<CaseResult>,
    /// Why it ended without finishing: killed, timed out, exited early (with its last stderr
    /// lines).
    pub failure: Option<String>,
    /// Whether it was stopped by the user's interrupt (a SIGINT it received itself).
    pub interrupted: bool,
}

/// Lines of `reader`, decoded lossily: a child that prints bytes that are not UTF-8 must not
/// end the reading (its later results would be lost).
fn lossy_lines(reader: impl std::io::Read) -> impl Iterator<Item = String> {
    let mut reader = BufReader::new(reader);
    std::iter::from_fn(move || {
        let mut buf = Vec::new();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(String::from_utf8_lossy(&buf).trim_end_matches(['\n', '\r']).to_string()),
        }
    })
}

/// What the child's stdout reader passes on.
enum Message {
    Event(Box<Event>),
    /// A marked line that is not a valid event.
    Garbled(String),
}

/// Parent side: runs the case with plan index `index` and name `name` in a child process
/// started by `launcher`, calling `on_check` with each check result as it arrives; kills the
/// child after `timeout`.
///
/// The child runs in a process group of its own, so a Ctrl-C at the terminal reaches only
/// the parent, which passes it on once through the child's stdin ([`STOP_LINE`]): the child
/// then stops at its next check boundary instead of dying mid-check. The parent holds that
/// pipe open; a child whose parent is gone sees it close and exits ([`exit_with_parent`]).
pub fn run_in_child(index: usize, name: &str, timeout: Option<Duration>, launcher: &Launcher, mut on_check: impl FnMut(&CheckResult)) -> ChildRun {
    let mut command = (launcher.0)(index);
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return ChildRun { failure: Some(format!("could not start the case's process: {e}")), ..ChildRun::default() },
    };
    // Held until the child has been reaped: closing it tells the child its parent is gone.
    let mut stdin = child.stdin.take();
    let (tx, rx) = mpsc::channel::<Message>();
    let stdout = child.stdout.take().map(|out| {
        std::thread::spawn(move || {
            for line in lossy_lines(out) {
                let Some((_, json)) = line.split_once(MARKER) else { continue };
                let message = serde_json::from_str::<Event>(json).map_or_else(|e| Message::Garbled(format!("{e}")), |e| Message::Event(Box::new(e)));
                if tx.send(message).is_err() {
                    break;
                }
            }
        })
    });
    let tail = Arc::new(Mutex::new(VecDeque::new()));
    let stderr = child.stderr.take().map(|err| {
        let tail = tail.clone();
        std::thread::spawn(move || {
            for line in lossy_lines(err) {
                if is_backtrace(&line) {
                    continue;
                }
                let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                if t.len() == STDERR_LINES {
                    t.pop_front();
                }
                t.push_back(line);
            }
        })
    });
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut checks: Vec<CheckResult> = Vec::new();
    let mut finished = None;
    let mut protocol: Option<String> = None;
    let mut timed_out = false;
    let mut forwarded_interrupt = false;
    let accept = |info: &crate::event::CaseInfo, protocol: &mut Option<String>| {
        let same = info.index == index && info.name == name;
        if !same && protocol.is_none() {
            *protocol =
                Some(format!("the case's process ran another case ({} #{}) than {name} #{index}: was the spec changed during the run?", info.name, info.index));
        }
        same
    };
    loop {
        if crate::interrupt::requested() && !forwarded_interrupt {
            forwarded_interrupt = true;
            forward_interrupt(stdin.as_mut());
        }
        // Whatever has arrived counts, even at the deadline.
        let wait = deadline.map_or(POLL, |d| d.saturating_duration_since(Instant::now()).min(POLL));
        match rx.recv_timeout(wait).map(|m| match m {
            Message::Event(e) => Ok(*e),
            Message::Garbled(e) => Err(e),
        }) {
            Ok(Ok(Event::CheckFinished { case, result })) => {
                if accept(&case, &mut protocol) {
                    on_check(&result);
                    checks.push(result);
                }
            }
            Ok(Ok(Event::CaseFinished(result))) => {
                if accept(&result.case, &mut protocol) {
                    finished = Some(result);
                }
            }
            Ok(Err(e)) => {
                protocol.get_or_insert_with(|| format!("the case's process sent a result that could not be read ({e})"));
            }
            Ok(Ok(_)) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    timed_out = true;
                    let _ = child.kill();
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    // The child closed its stdout; it still must exit, within the deadline.
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if deadline.is_some_and(|d| Instant::now() >= d) => {
                timed_out = true;
                let _ = child.kill();
                break child.wait();
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => break Err(e),
        }
    };
    drop(stdin);
    for t in [stdout, stderr].into_iter().flatten() {
        let _ = t.join();
    }
    if let (Some(_), false, None) = (&finished, timed_out, &protocol) {
        return ChildRun { checks, finished, failure: None, interrupted: false };
    }
    // A child runs in a process group of its own, but a Ctrl-C that arrives while it is being
    // spawned (before it leaves the parent's group) reaches it too and kills it: that is the
    // user's interrupt, which the parent is about to see as well, not the module's failure.
    if !timed_out && protocol.is_none() && killed_by_sigint(&status) {
        crate::interrupt::request();
        return ChildRun { checks, finished: None, failure: None, interrupted: true };
    }
    let mut reason = if timed_out {
        format!("timed out: the case's process was killed after {}", duration_text(timeout.unwrap_or_default()))
    } else if let Some(p) = protocol {
        p
    } else {
        match &status {
            Ok(s) => describe(s),
            Err(e) => format!("the case's process was lost: {e}"),
        }
    };
    let tail: Vec<String> = tail.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect();
    if !tail.is_empty() {
        reason.push_str(&format!("; its last stderr lines: {}", tail.join(" | ")));
    }
    ChildRun { checks, finished: None, failure: Some(reason), interrupted: false }
}

/// Whether the child was ended by SIGINT.
fn killed_by_sigint(status: &std::io::Result<std::process::ExitStatus>) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        matches!(status, Ok(s) if s.signal() == Some(libc::SIGINT))
    }
    #[cfg(not(unix))]
    {
        let _ = status;
        false
    }
}

/// Child side: requests a stop ([`crate::interrupt::request`]) when the parent writes
/// [`STOP_LINE`] to stdin, and exits the process (code [`crate::exit::INTERRUPTED`]) when
/// stdin closes, which is how a child learns that its parent is gone (killed outright, or
/// after its own second signal); otherwise an isolated case would go on running unsupervised.
pub fn exit_with_parent() {
    std::thread::spawn(|| {
        let mut stdin = std::io::stdin().lock();
        let mut line = Vec::new();
        while matches!(stdin.read_until(b'\n', &mut line), Ok(n) if n > 0) {
            if line == STOP_LINE {
                crate::interrupt::request();
            }
            line.clear();
        }
        std::process::exit(i32::from(crate::exit::INTERRUPTED));
    });
}

/// Whether `line` belongs to a Rust backtrace, which says where, not what: the reason kept
/// is the message above it (`memory allocation of … bytes failed`, a panic message).
fn is_backtrace(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("stack backtrace:")
        || t.starts_with("at ")
        || t.starts_with("note: Some details are omitted")
        || t.starts_with("note: run with `RUST_BACKTRACE")
        || t.split_once(": ").is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

/// Passes a stop request on to the child through its stdin; the child stops at its next
/// check boundary and reports. A child that already exited cannot take it, and needs not.
fn forward_interrupt(stdin: Option<&mut std::process::ChildStdin>) {
    if let Some(pipe) = stdin {
        let _ = pipe.write_all(STOP_LINE).and_then(|()| pipe.flush());
    }
}

/// Why a child ended without reporting its case.
fn describe(status: &std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            let name = match signal {
                libc::SIGABRT => "SIGABRT: an abort, e.g. a failed allocation or a stack overflow",
                libc::SIGKILL => "SIGKILL: e.g. the out-of-memory killer",
                libc::SIGSEGV => "SIGSEGV: a segmentation fault",
                libc::SIGBUS => "SIGBUS: a bus error",
                libc::SIGILL => "SIGILL: an illegal instruction",
                libc::SIGFPE => "SIGFPE: an arithmetic fault",
                libc::SIGTERM => "SIGTERM",
                libc::SIGINT => "SIGINT",
                _ => "a signal",
            };
            return format!("the case's process was killed by signal {signal} ({name})");
        }
    }
    match status.code() {
        Some(code) => format!("the case's process exited with code {code} before reporting its result"),
        None => "the case's process ended before reporting its result".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backtraces_are_left_out_of_the_reason() {
        for line in
            ["stack backtrace:", "  12: tensile::main", "             at /src/main.rs:5:3", "note: Some details are omitted, run with `RUST_BACKTRACE=full`"]
        {
            assert!(is_backtrace(line), "{line}");
        }
        for line in ["memory allocation of 17179869184 bytes failed", "thread 'main' panicked at src/x.rs:1:1:", "error: 3: bad"] {
            assert!(!is_backtrace(line), "{line}");
        }
    }

    #[test]
    fn durations_parse_and_print() {
        for (text, secs) in [("30s", 30.0), ("1.5s", 1.5), ("250ms", 0.25), ("2m", 120.0), ("1h", 3600.0), ("10", 10.0)] {
            assert_eq!(parse_duration(text), Ok(Duration::from_secs_f64(secs)), "{text}");
        }
        for bad in ["", "soon", "0s", "-1s", "nan", "inf", "3 fortnights", "9999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(duration_text(Duration::from_millis(250)), "250ms");
        assert_eq!(duration_text(Duration::from_secs(120)), "2m");
        assert_eq!(duration_text(Duration::from_secs_f64(1.5)), "1.5s");
    }

    /// The stop request travels through the pipe and waits there for a child that has not
    /// started reading yet (here `head`, which reads only after it has started up).
    #[cfg(unix)]
    #[test]
    fn a_stop_request_reaches_the_child_through_its_stdin() {
        let mut child = Command::new("head").arg("-n1").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let mut stdin = child.stdin.take();
        forward_interrupt(stdin.as_mut());
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.stdout, STOP_LINE);
        // A child without a stdin pipe: nothing to write to, and no panic.
        forward_interrupt(None);
    }

    #[cfg(unix)]
    #[test]
    fn exit_statuses_are_described() {
        use std::os::unix::process::ExitStatusExt;
        assert!(describe(&std::process::ExitStatus::from_raw(libc::SIGABRT)).contains("signal 6 (SIGABRT"));
        assert!(describe(&std::process::ExitStatus::from_raw(libc::SIGKILL)).contains("out-of-memory"));
        assert!(describe(&std::process::ExitStatus::from_raw(3 << 8)).contains("exited with code 3"));
    }
}
