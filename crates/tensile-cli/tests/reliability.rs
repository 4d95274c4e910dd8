//! End-to-end reliability of `tensile run`: admission control, isolation, timeouts, interrupts,
//! preflighted outputs and honest exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{assert_usage_error, stderr, stdout, tensile};

/// A small test that passes quickly.
fn good(name: &str) -> String {
    format!("[[test]]\nname = \"{name}\"\nmodule = \"llama.mlp\"\nconfig = {{ hidden_size = 64, intermediate_size = 128, num_attention_heads = 4 }}\ninput_shape = [1, 8, 64]\nchecks = [\"correctness\"]\n\n")
}

/// An 8B-scale MLP on 2²⁰ tokens: within every parse-time limit, but ~1 TB at run time.
const HUGE: &str = "[[test]]\nname = \"huge\"\nmodule = \"llama.mlp\"\nconfig = { hidden_size = 4096, intermediate_size = 14336, num_attention_heads = 32 }\ninput_shape = [64, 16384, 4096]\nchecks = [\"correctness\", \"performance\"]\n\n";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn a_huge_case_between_good_ones_fails_alone_with_its_predicted_memory() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path(), "three.toml", &(good("first") + HUGE + &good("last")));
    let (report, junit, events) = (dir.path().join("r.json"), dir.path().join("r.xml"), dir.path().join("events.jsonl"));
    let o = tensile(&["run", "--spec", s(&spec), "--no-progress", "--report-json", s(&report), "--junit", s(&junit), "--events", s(&events)]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let r = json(&report);
    let cases = r["cases"].as_array().unwrap();
    let verdicts: Vec<(&str, bool)> = cases.iter().map(|c| (c["name"].as_str().unwrap(), c["passed"].as_bool().unwrap())).collect();
    assert_eq!(verdicts, [("first", true), ("huge", false), ("last", true)]);
    let reason = cases[1]["checks"][0]["errors"][0].as_str().unwrap();
    assert!(reason.contains("predicted peak memory") && reason.contains("GiB") && reason.contains("exceeds the memory budget"), "{reason}");
    assert!(stdout(&o).contains("predicted peak memory"));
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(xml.matches("<testsuite ").count(), 3, "{xml}");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&events).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["run_started", "case_finished", "case_finished", "case_finished", "run_finished"]);
}

#[test]
fn an_explicit_budget_names_its_source_and_planning_allocates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Twenty 8B-scale MLPs: 14 GB of weights if parsing built them.
    let many: String = (0..20).map(|i| format!("[[test]]\nname = \"mlp{i}\"\nmodule = \"llama.mlp\"\nconfig = {{ hidden_size = 4096, intermediate_size = 14336, num_attention_heads = 32 }}\n\n")).collect();
    let spec = write(dir.path(), "many.toml", &many);
    // Under a 1 GB address space: parsing, planning, coverage and listing build no weights
    // (the 8B presets included).
    for cmd in [format!("coverage --spec {}", s(&spec)), "list".to_string(), "coverage --model llama3-8b".to_string()] {
        let script = format!("ulimit -v 1000000 && exec {} {cmd}", env!("CARGO_BIN_EXE_tensile"));
        let o = Command::new("sh").args(["-c", &script]).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{cmd}: {}", stderr(&o));
        assert!(stdout(&o).contains("llama.mlp"), "{cmd}");
    }
    let o = tensile(&["run", "--spec", s(&spec), "--no-progress", "--filter", "mlp1", "--max-memory", "64MiB"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("exceeds the memory budget of 64.0 MiB (--max-memory)"), "{}", stdout(&o));
}

#[test]
fn limits_and_bad_numbers_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path(), "ok.toml", &good("ok"));
    for (args, mentions) in [
        (vec!["--max-memory", "lots"], "not a memory size"),
        (vec!["--max-memory", "0"], "at least one byte"),
        (vec!["--timeout=-1s"], "timeout must be positive"),
        (vec!["--timeout", "soon"], "not a duration"),
        (vec!["--seq-len", "100000000"], "2^24"),
        (vec!["--dtype", "f64"], "reference twins' own dtype"),
    ] {
        let mut all = vec!["run", "--spec", s(&spec), "--no-progress"];
        all.extend(args.iter().copied());
        let o = tensile(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(mentions), "{args:?}: {}", stderr(&o));
    }
    let sweep = write(
        dir.path(),
        "sweep.toml",
        &format!("{}\nseq_lengths = [{}]\n", good("s").trim_end(), (1..=100).map(|i| i.to_string()).collect::<Vec<_>>().join(", ")),
    );
    assert_usage_error(&tensile(&["run", "--spec", s(&sweep)]), "limit of 64 per sweep");
    let big = write(dir.path(), "big.toml", &good("b").replace("[1, 8, 64]", "[1, 100000000, 64]"));
    assert_usage_error(&tensile(&["run", "--spec", s(&big)]), "2^24");
}

#[test]
fn a_run_where_every_check_skipped_is_not_a_pass() {
    if tensile::device::parse_device("cuda").is_ok() {
        eprintln!("skipping: CUDA is available here, so nothing is skipped");
        return;
    }
    let o = tensile(&["run", "--model", "tiny-llama", "--device", "cuda", "--no-progress", "--filter", "*norm"]);
    assert_eq!(o.status.code(), Some(tensile::exit::ALL_SKIPPED as i32), "{}", stdout(&o));
    let o = tensile(&["run", "--model", "tiny-llama", "--device", "cuda", "--no-progress", "--filter", "*norm", "--allow-skips"]);
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn flags_that_do_not_apply_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path(), "ok.toml", &good("fixed"));
    let o = tensile(&["run", "--spec", s(&spec), "--no-progress", "--seq-len", "32"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("--seq-len do not apply to tests with an explicit input_shape: fixed"), "{}", stderr(&o));
}

#[test]
fn outputs_are_checked_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path(), "self.toml", &good("ok"));
    let before = std::fs::read_to_string(&spec).unwrap();
    let x = dir.path().join("x.json");
    let folder = dir.path().join("folder");
    std::fs::create_dir(&folder).unwrap();
    let baseline_file = write(dir.path(), "not-a-dir", "x");
    let inside = format!("{}/b.json", s(&folder));
    for (extra, mentions) in [
        (vec!["--report-json", s(&spec)], "input of this run"),
        (vec!["--report-json", s(&x), "--junit", s(&x)], "is also the path of --report-json"),
        (vec!["--html", s(&folder)], "is a folder"),
        (vec!["--markdown", "/dev/full"], "not a regular file"),
        (vec!["--save-baseline", "b", "--baseline-dir", s(&baseline_file)], "not a folder"),
        (vec!["--report-json", inside.as_str(), "--save-baseline", "b", "--baseline-dir", s(&folder)], "is also the path"),
    ] {
        let mut args = vec!["run", "--spec", s(&spec), "--no-progress"];
        args.extend(extra.iter().copied());
        let o = tensile(&args);
        assert_usage_error(&o, mentions);
        assert!(stdout(&o).is_empty(), "nothing ran: {}", stdout(&o));
    }
    assert_eq!(std::fs::read_to_string(&spec).unwrap(), before, "the spec is untouched");
}

#[cfg(unix)]
#[test]
fn an_unwritable_folder_is_found_before_the_run() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path(), "ok.toml", &good("ok"));
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    if std::fs::write(ro.join("probe"), "x").is_ok() {
        eprintln!("skipping: this user (root?) can write a read-only folder");
        return;
    }
    assert_usage_error(&tensile(&["run", "--spec", s(&spec), "--report-json", s(&ro.join("r.json"))]), "cannot be written");
}

/// Runs `tensile` with `args`, returns its output, failing the test if it runs past `limit`.
fn run_bounded(cmd: &mut Command, limit: Duration) -> std::process::Output {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("still running after {limit:?}");
        }
        std::thread::yield_now();
    }
    child.wait_with_output().unwrap()
}

#[cfg(unix)]
#[test]
fn an_abort_in_an_isolated_case_fails_that_case_only() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path(), "three.toml", &(good("first") + HUGE + &good("last")));
    let report = dir.path().join("r.json");
    // Admission is lifted and the address space capped at 4 GB, so the huge case's input
    // allocation really fails and the child process aborts.
    let script = format!(
        "ulimit -v 4000000 && exec {} run --spec {} --no-progress --isolate --max-memory 100TiB --report-json {}",
        env!("CARGO_BIN_EXE_tensile"),
        s(&spec),
        s(&report)
    );
    let o = run_bounded(Command::new("sh").args(["-c", &script]), Duration::from_secs(300));
    assert_eq!(o.status.code(), Some(1), "{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let r = json(&report);
    let cases = r["cases"].as_array().unwrap();
    assert_eq!(cases.iter().map(|c| c["passed"].as_bool().unwrap()).collect::<Vec<_>>(), [true, false, true]);
    let reason = cases[1]["checks"][0]["errors"][0].as_str().unwrap();
    assert!(reason.contains("signal 6 (SIGABRT") && reason.contains("memory allocation"), "{reason}");
}

#[test]
fn a_case_over_its_timeout_fails_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    // A sweep at long lengths takes seconds; the timeout is a tenth of a second.
    let slow = "[[test]]\nname = \"slow\"\nmodule = \"llama.mlp\"\nconfig = { hidden_size = 256, intermediate_size = 1024, num_attention_heads = 4 }\ninput_shape = [1, 8, 256]\nseq_lengths = [512, 1024, 2048, 4096]\nchecks = [\"scaling\", \"performance\"]\n\n";
    let spec = write(dir.path(), "t.toml", &(slow.to_string() + &good("quick")));
    for isolate in [false, true] {
        let report = dir.path().join(format!("r{isolate}.json"));
        let mut args = vec!["run", "--spec", s(&spec), "--no-progress", "--timeout", "100ms", "--report-json", s(&report)];
        if isolate {
            args.push("--isolate");
        }
        let o = run_bounded(Command::new(env!("CARGO_BIN_EXE_tensile")).args(&args), Duration::from_secs(120));
        assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
        let r = json(&report);
        let first = &r["cases"][0]["checks"][0]["errors"][0];
        assert!(first.as_str().unwrap().contains("timed out"), "{first}");
        assert_eq!(r["cases"][0]["checks"][1]["errors"][0].as_str().unwrap().starts_with("not run: timed out"), true);
        assert_eq!(r["cases"][1]["passed"], true, "isolate={isolate}");
    }
}

#[cfg(unix)]
#[test]
fn an_interrupted_run_writes_complete_reports_marked_interrupted() {
    interrupt(false);
}

#[cfg(unix)]
#[test]
fn an_interrupted_isolated_run_stops_its_child_and_writes_reports() {
    interrupt(true);
}

/// Starts a run of six cases, sends SIGINT once the first has finished, and checks the exit
/// code and every report.
#[cfg(unix)]
fn interrupt(isolate: bool) {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let cases: String = (0..6).map(|i| good(&format!("c{i}")).replace("[\"correctness\"]", "[\"correctness\", \"performance\"]")).collect();
    let spec = write(dir.path(), "many.toml", &cases);
    let [report, junit, html, md, events] = ["r.json", "r.xml", "r.html", "r.md", "e.jsonl"].map(|n| dir.path().join(n));
    std::fs::write(&report, "{\"stale\": true}").unwrap();
    let mut args = vec![
        "run",
        "--spec",
        s(&spec),
        "--no-progress",
        "--report-json",
        s(&report),
        "--junit",
        s(&junit),
        "--html",
        s(&html),
        "--markdown",
        s(&md),
        "--events",
        s(&events),
    ];
    if isolate {
        args.push("--isolate");
    }
    // Its own process group, like a job in a terminal, so the signal below reaches the whole
    // group as Ctrl-C would (an isolated case runs in a group of its own).
    let mut child = Command::new(env!("CARGO_BIN_EXE_tensile")).args(&args).stdout(Stdio::null()).stderr(Stdio::piped()).process_group(0).spawn().unwrap();
    // Interrupt once the first case has finished (the event log says so).
    let start = Instant::now();
    while std::fs::read_to_string(&events).map_or(0, |t| t.lines().count()) < 2 {
        assert!(start.elapsed() < Duration::from_secs(120) && child.try_wait().unwrap().is_none(), "the first case never finished");
        std::thread::yield_now();
    }
    unsafe { libc::kill(-(child.id() as i32), libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let r = json(&report);
    assert_eq!(r["totals"]["interrupted"], true, "{r}");
    let cases = r["cases"].as_array().unwrap();
    assert!((1..6).contains(&cases.len()), "{} cases ran", cases.len());
    // Every check of a reported case either ran to a verdict or says the stop kept it from
    // running; none is lost or blamed on the module.
    for c in cases {
        for k in c["checks"].as_array().unwrap() {
            let skipped = k["skipped"].as_str();
            assert!(k["passed"] == true && (skipped.is_none() || skipped == Some("not run: the run was interrupted")), "{k}");
        }
    }
    assert!(std::fs::read_to_string(&junit).unwrap().contains("<property name=\"interrupted\" value=\"true\"/>"));
    assert!(std::fs::read_to_string(&html).unwrap().contains("INTERRUPTED"));
    assert!(std::fs::read_to_string(&md).unwrap().contains("**Interrupted**"));
    let last = std::fs::read_to_string(&events).unwrap().lines().last().unwrap().to_string();
    assert!(last.contains("\"run_finished\"") && last.contains("\"interrupted\":true"), "{last}");
}
