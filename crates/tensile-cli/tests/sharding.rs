//! End-to-end: `tensile run --shard K/N` and `tensile report merge` as separate processes, the
//! way a CI matrix or a Slurm array runs them, including the recipes in examples/sharding/
//! executed line for line.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::{assert_usage_error, stderr, stdout, tensile};

const PLAN: [&str; 8] = ["run", "--model", "tiny-llama", "--seq-len", "32", "--checks", "correctness,determinism", "--no-progress"];

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

fn run_to(dir: &Path, file: &str, extra: &[&str]) -> (Output, Value) {
    let json = dir.join(file).display().to_string();
    let mut args = PLAN.to_vec();
    args.extend(extra);
    args.extend(["--report-json", &json]);
    let o = tensile(&args);
    (o, read(Path::new(&json)))
}

/// The parts of a report a merge must reproduce: each case's identity and verdicts, the
/// totals, the coverage and the plan. Timings differ between any two runs.
fn verdicts(r: &Value) -> Value {
    let cases: Vec<Value> = r["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let checks: Vec<Value> = c["checks"].as_array().unwrap().iter().map(|k| serde_json::json!([k["check"], k["passed"], k["skipped"]])).collect();
            serde_json::json!([c["index"], c["name"], c["dtype"], c["device"], c["passed"], checks])
        })
        .collect();
    serde_json::json!({"cases": cases, "totals": r["totals"], "coverage": r["coverage"], "plan": r["plan"], "devices": r["devices"], "commit": r["commit"]})
}

fn names(r: &Value) -> Vec<String> {
    r["cases"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_string()).collect()
}

#[test]
fn two_shards_merge_into_the_report_of_the_unsharded_run_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (o, whole) = run_to(d, "whole.json", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let (o1, s1) = run_to(d, "s1.json", &["--shard", "1/2"]);
    let (o2, s2) = run_to(d, "s2.json", &["--shard", "2/2"]);
    assert_eq!((o1.status.code(), o2.status.code()), (Some(0), Some(0)), "{}{}", stderr(&o1), stderr(&o2));
    assert!(stderr(&o1).contains("shard 1/2: "), "{}", stderr(&o1));
    assert_eq!(s1["shard"], serde_json::json!({"index": 1, "count": 2, "by": "hash"}));
    let (mut a, b) = (names(&s1), names(&s2));
    assert!(!a.is_empty() && !b.is_empty(), "tiny-llama's four modules split {a:?} / {b:?}");
    a.extend(b);
    a.sort();
    let mut all = names(&whole);
    all.sort();
    assert_eq!(a, all, "every case in exactly one shard");

    let out = |f: &str| d.join(f).display().to_string();
    let (mj, xml, html, md) = (out("merged.json"), out("merged.xml"), out("merged.html"), out("merged.md"));
    let m = tensile(&["report", "merge", &out("s2.json"), &out("s1.json"), "--report-json", &mj, "--junit", &xml, "--html", &html, "--markdown", &md]);
    assert_eq!(m.status.code(), Some(0), "{}{}", stdout(&m), stderr(&m));
    let merged = read(Path::new(&mj));
    assert_eq!(verdicts(&merged), verdicts(&whole));
    assert_eq!(merged["merged"].as_array().unwrap().len(), 2);
    assert!(merged["shard"].is_null());
    let junit = std::fs::read_to_string(&xml).unwrap();
    assert_eq!(junit.matches("<testcase ").count(), whole["totals"]["checks"].as_u64().unwrap() as usize, "{junit}");
    assert!(std::fs::read_to_string(&html).unwrap().contains("tiny-llama::attention"));
    assert!(std::fs::read_to_string(&md).unwrap().contains("tiny-llama::mlp"));
}

#[test]
fn a_failing_shard_makes_the_merge_fail_with_the_same_counts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A tolerance no float32 module meets: every correctness check fails, on every run.
    let strict = ["--tolerance", "1e-15"];
    let (_, whole) = run_to(d, "whole.json", &strict);
    let (o1, _) = run_to(d, "s1.json", &[&strict[..], &["--shard", "1/2"]].concat());
    let _ = run_to(d, "s2.json", &[&strict[..], &["--shard", "2/2"]].concat());
    assert_eq!(o1.status.code(), Some(1));
    let mj = d.join("m.json").display().to_string();
    let m = tensile(&["report", "merge", &d.join("s1.json").display().to_string(), &d.join("s2.json").display().to_string(), "--report-json", &mj]);
    assert_eq!(m.status.code(), Some(1), "{}", stderr(&m));
    let merged = read(Path::new(&mj));
    assert!(merged["totals"]["checks_failed"].as_u64().unwrap() >= 4);
    assert_eq!(verdicts(&merged), verdicts(&whole));
}

#[test]
fn bad_shards_and_mismatched_reports_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |extra: &[&str]| tensile(&[&PLAN[..], extra].concat());
    assert_usage_error(&run(&["--shard", "0/2"]), "numbered from 1");
    assert_usage_error(&run(&["--shard", "3/2"]), "between 1 and 2");
    let auto = Command::new(env!("CARGO_BIN_EXE_tensile")).args(PLAN).args(["--shard", "auto"]).env_remove("SLURM_ARRAY_TASK_ID").output().unwrap();
    assert_usage_error(&auto, "SLURM_ARRAY_TASK_ID");
    assert_usage_error(&run(&["--shard-by-time", "nowhere.json"]), "--shard");

    let (_, _) = run_to(d, "a1.json", &["--shard", "1/3"]);
    let (_, _) = run_to(d, "a2.json", &["--shard", "2/3"]);
    let (_, _) = run_to(d, "a3.json", &["--shard", "3/3"]);
    let p = |f: &str| d.join(f).display().to_string();
    assert_usage_error(&tensile(&["report", "merge", &p("a1.json"), &p("a3.json")]), "shard 2/3 not given");
    assert_usage_error(&tensile(&["report", "merge", &p("a1.json"), &p("a1.json"), &p("a2.json"), &p("a3.json")]), "shard 1/3 is given twice");
    // A shard of another plan: another sequence length.
    let other = p("b2.json");
    let o = tensile(&[
        "run",
        "--model",
        "tiny-llama",
        "--seq-len",
        "16",
        "--checks",
        "correctness,determinism",
        "--no-progress",
        "--shard",
        "2/3",
        "--report-json",
        &other,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_usage_error(&tensile(&["report", "merge", &p("a1.json"), &other, &p("a3.json")]), "different plans");
    let forced = tensile(&["report", "merge", &p("a1.json"), &other, &p("a3.json"), "--force"]);
    assert!(stderr(&forced).contains("warning: different plans"), "{}", stderr(&forced));
    // No output may overwrite an input.
    assert_usage_error(&tensile(&["report", "merge", &p("a1.json"), &p("a2.json"), &p("a3.json"), "--report-json", &p("a2.json")]), "a2.json");
    std::fs::write(d.join("junk.json"), "{\"schema_version\": 7}").unwrap();
    assert_usage_error(&tensile(&["report", "merge", &p("junk.json")]), "schema 7");
}

/// The shards of the last merged report, balanced by its durations, merge to the same verdicts.
#[test]
fn shards_balanced_by_a_previous_report_cover_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_, whole) = run_to(d, "whole.json", &[]);
    let record = d.join("whole.json").display().to_string();
    let (o1, s1) = run_to(d, "t1.json", &["--shard", "1/2", "--shard-by-time", &record]);
    let (o2, s2) = run_to(d, "t2.json", &["--shard", "2/2", "--shard-by-time", &record]);
    assert_eq!((o1.status.code(), o2.status.code()), (Some(0), Some(0)), "{}{}", stderr(&o1), stderr(&o2));
    assert_eq!(s1["shard"]["by"], "time");
    assert_eq!(names(&s1).len() + names(&s2).len(), names(&whole).len());
    let m = tensile(&[
        "report",
        "merge",
        &d.join("t1.json").display().to_string(),
        &d.join("t2.json").display().to_string(),
        "--report-json",
        &d.join("m.json").display().to_string(),
    ]);
    assert_eq!(m.status.code(), Some(0), "{}", stderr(&m));
    assert_eq!(verdicts(&read(&d.join("m.json"))), verdicts(&whole));
}

/// A folder whose `tensile` is the binary under test, for running the recipes' command lines.
fn path_with_tensile(dir: &Path) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_tensile"), bin.join("tensile")).unwrap();
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default())
}

fn recipe(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sharding").join(name)
}

fn bash(script: &str, cwd: &Path, path: &str, env: &[(&str, String)]) -> Output {
    let o = Command::new("bash").arg("-c").arg(script).current_dir(cwd).env("PATH", path).envs(env.iter().map(|(k, v)| (*k, v.as_str()))).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{script}\n{}{}", stdout(&o), stderr(&o));
    o
}

#[test]
fn the_github_actions_recipe_runs_as_local_processes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = path_with_tensile(d);
    let yaml = std::fs::read_to_string(recipe("github-actions.yml")).unwrap();
    let lines: Vec<&str> = yaml.lines().filter_map(|l| l.trim().strip_prefix("- run: ")).filter(|l| l.starts_with("tensile ")).collect();
    let [shard, merge] = lines[..] else { panic!("the recipe should have one `tensile run` and one `tensile report merge` line: {lines:?}") };
    let shards: Vec<String> =
        yaml.lines().find_map(|l| l.trim().strip_prefix("shard: [")).unwrap().trim_end_matches(']').split(',').map(|s| s.trim().to_string()).collect();
    for k in &shards {
        bash(&shard.replace("${{ matrix.shard }}", k), d, &path, &[]);
    }
    let summary = d.join("summary.md");
    bash(merge, d, &path, &[("GITHUB_STEP_SUMMARY", summary.display().to_string())]);
    let merged = read(&d.join("merged.json"));
    assert_eq!(merged["merged"].as_array().unwrap().len(), shards.len());
    assert_eq!(merged["totals"]["cases"], merged["plan"]["cases"]);
    assert!(std::fs::read_to_string(summary).unwrap().contains("tiny-llama"));
    assert!(d.join("junit.xml").is_file() && d.join("report.html").is_file());
}

#[test]
fn the_slurm_recipe_runs_as_local_processes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = path_with_tensile(d);
    let script = std::fs::read_to_string(recipe("slurm-array.sbatch")).unwrap();
    let array = script.lines().find_map(|l| l.strip_prefix("#SBATCH --array=")).unwrap();
    let (lo, hi) = array.split_once('-').unwrap();
    let (lo, hi): (usize, usize) = (lo.parse().unwrap(), hi.parse().unwrap());
    for id in lo..=hi {
        let env = [("SLURM_ARRAY_TASK_ID", id.to_string()), ("SLURM_ARRAY_TASK_MIN", lo.to_string()), ("SLURM_ARRAY_TASK_COUNT", (hi - lo + 1).to_string())];
        let o = bash(&script, d, &path, &env);
        assert!(stderr(&o).contains(&format!("shard {}/{}", id - lo + 1, hi - lo + 1)), "{}", stderr(&o));
    }
    bash(&std::fs::read_to_string(recipe("slurm-merge.sh")).unwrap(), d, &path, &[]);
    let merged = read(&d.join("reports/merged.json"));
    assert_eq!(merged["merged"].as_array().unwrap().len(), hi - lo + 1);
    assert_eq!(merged["totals"]["cases"], merged["plan"]["cases"]);
    assert_eq!(merged["totals"]["cases_passed"], merged["totals"]["cases"]);
}
