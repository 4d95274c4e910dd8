#!/usr/bin/env bash
# Issue 18's CPU table: every block of bench/cpu_modules.toml timed by tensile's performance
# check and by PyTorch (bench/torch_cpu_modules.py, transformers' modules), f32, 2 threads,
# alternating rounds in one run, and the ratio tensile / PyTorch (below 1: tensile faster).
#
#   bash bench/cpu_modules.sh                 # ROUNDS=3 by default
#   PYTHON=/path/to/python bash bench/cpu_modules.sh
#   BEFORE=/tmp/tensile-old bash bench/cpu_modules.sh   # adds the times of another build
#
# PyTorch comes from PYTHON when it has torch and transformers, else from bench/.venv, which
# the script creates and fills from PyTorch's CPU wheel index, or from PyPI when that index
# cannot be reached (PyPI's Linux wheel is built for CUDA, 5.6 GB installed, and runs on the CPU). When neither works, the PyTorch column
# says why and the tensile column is still measured.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROUNDS=${ROUNDS:-3}
SPEC=bench/cpu_modules.toml
has_torch() { "$1" -c "import torch, transformers" 2>/dev/null; }
py=""
if [ -n "${PYTHON:-}" ] && has_torch "$PYTHON"; then
    py=$PYTHON
elif has_torch bench/.venv/bin/python; then
    py=bench/.venv/bin/python
else
    echo "cpu_modules.sh: installing torch and transformers into bench/.venv" >&2
    if python3 -m venv bench/.venv >&2 &&
        { bench/.venv/bin/pip install --quiet --index-url https://download.pytorch.org/whl/cpu torch >&2 ||
            bench/.venv/bin/pip install --quiet torch >&2; } &&
        bench/.venv/bin/pip install --quiet transformers >&2 && has_torch bench/.venv/bin/python; then
        py=bench/.venv/bin/python
    fi
fi
[ -n "$py" ] || echo "cpu_modules.sh: no PyTorch (no network or no pip); the PyTorch column is skipped" >&2
cargo build --release --locked -p tensile-cli >&2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for r in $(seq "$ROUNDS"); do
    echo "cpu_modules.sh: round $r of $ROUNDS" >&2
    RAYON_NUM_THREADS=2 target/release/tensile run --spec "$SPEC" --checks performance --no-progress \
        --report-json "$tmp/tensile.$r.json" >/dev/null
    [ -z "$py" ] || "$py" bench/torch_cpu_modules.py "$tmp/torch.$r.json"
    if [ -n "${BEFORE:-}" ]; then
        RAYON_NUM_THREADS=2 "$BEFORE" run --spec "$SPEC" --checks performance --no-progress --report-json "$tmp/before.$r.json" >/dev/null
    fi
done
python3 - "$tmp" "$ROUNDS" "${py:+yes}" "${BEFORE:+yes}" <<'PY'
import json, statistics, sys
tmp, rounds, have_torch, have_before = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "yes", sys.argv[4] == "yes"

def medians(prefix):
    out = {}
    for r in range(1, rounds + 1):
        for c in json.load(open(f"{tmp}/{prefix}.{r}.json"))["cases"]:
            for x in c["checks"]:
                if x["check"] == "performance" and "median_ms" in x.get("metrics", {}):
                    out.setdefault(c["name"], []).append(x["metrics"]["median_ms"])
    return {k: statistics.median(v) for k, v in out.items()}

t = medians("tensile")
b = medians("before") if have_before else {}
p = {}
if have_torch:
    for r in range(1, rounds + 1):
        for k, v in json.load(open(f"{tmp}/torch.{r}.json")).items():
            p.setdefault(k, []).append(v)
    p = {k: statistics.median(v) for k, v in p.items()}
head = "| case | PyTorch ms |" + (" before ms |" if b else "") + " tensile ms | tensile / PyTorch |"
print(head)
print("|---" * (head.count("|") - 1) + "|")
for name, tm in t.items():
    torch = f"{p[name]:.3g}" if name in p else "skipped (no PyTorch)"
    before = f" {b[name]:.3g} |" if b else ""
    ratio = f"{tm / p[name]:.2f}" if name in p else "-"
    print(f"| {name} | {torch} |{before} {tm:.3g} | {ratio} |")
PY
