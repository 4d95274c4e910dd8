#!/usr/bin/env bash
# The flake table of bench/RESULTS.md: runs the healthy presets and the planted faults with
# `--repeat 20` while one core is kept busy by a competing process, and prints how often each
# check failed. Healthy checks (the presets, and a module against its own saved baseline) must
# fail 0 times (0 flaky), planted faults 20 of 20.
#
#   bash bench/stability.sh            # about 15 minutes on 2 cores
#   REPEAT=5 bash bench/stability.sh   # a quicker look
#
# The competing process is a plain busy loop (`sh -c 'while :; do :; done'`): one core at 100%
# for the whole measurement, which is what a second job on a 2-core CI runner does.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPEAT=${REPEAT:-20}
OUT=${OUT:-target/stability}
cargo build --release --locked -p tensile-cli
BIN=target/release/tensile
mkdir -p "$OUT"
rm -rf "$OUT/baselines"
sh -c 'while :; do :; done' &
LOAD=$!
disown $LOAD
trap 'kill -9 $LOAD 2>/dev/null || true' EXIT
run() { "$BIN" run --no-progress --repeat "$REPEAT" "$@" >"$OUT/last.log" 2>&1 || true; }
run --model tiny-llama --report-json "$OUT/tiny-llama.json"
run --model tiny-bert --report-json "$OUT/tiny-bert.json"
run --model tiny-llama-lora --report-json "$OUT/tiny-llama-lora.json"
run --model tiny-llama-q8 --report-json "$OUT/tiny-llama-q8.json"
run --model tiny-llama-q4 --report-json "$OUT/tiny-llama-q4.json"
run --spec bench/stability/faults.toml --report-json "$OUT/faults.json"
"$BIN" run --no-progress --spec bench/stability/baseline_healthy.toml --save-baseline healthy --baseline-dir "$OUT/baselines" >/dev/null 2>&1 || true
run --spec bench/stability/baseline_slow.toml --baseline healthy --baseline-dir "$OUT/baselines" --report-json "$OUT/slower.json"
run --spec bench/stability/baseline_healthy.toml --baseline healthy --baseline-dir "$OUT/baselines" --report-json "$OUT/same.json"
kill -9 $LOAD 2>/dev/null || true
python3 - "$OUT" "$REPEAT" <<'PY'
import json, os, subprocess, sys
out, repeat = sys.argv[1], int(sys.argv[2])
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown cpu")
print(f"machine: {os.cpu_count()} cores, {cpu}; one core busy; commit {commit}; --repeat {repeat}\n")
print("| run | case | check | expected | runs | failed | flaky |")
print("|---|---|---|---|---|---|---|")
bad = 0
for run, healthy in [("tiny-llama", True), ("tiny-bert", True), ("tiny-llama-lora", True), ("tiny-llama-q8", True), ("tiny-llama-q4", True),
                     ("same", True), ("faults", False), ("slower", False)]:
    report = json.load(open(os.path.join(out, f"{run}.json")))
    for case in report["cases"]:
        for check in case["checks"]:
            if check.get("skipped"):
                continue
            r = check.get("repeat") or {"runs": 1, "failures": 0 if check["passed"] else 1, "flaky": False}
            want = "pass" if healthy else "fail"
            ok = (r["failures"] == 0) if healthy else (r["failures"] == r["runs"])
            bad += not ok
            print(f"| {run} | {case['name']} | {check['check']} | {want} | {r['runs']} | {r['failures']} | {'yes' if r['flaky'] else 'no'} |{'' if ok else ' ✗'}")
print(f"\n{'all verdicts stable' if bad == 0 else f'{bad} unstable verdicts'}")
sys.exit(1 if bad else 0)
PY
