#!/usr/bin/env bash
# Issue 18's embedding row: `tensile embed` on all-MiniLM-L6-v2 against sentence-transformers,
# the anchor's 256 sentences (../shared/anchors/torch_cpu_modules.py), batch 32, 2 threads,
# alternating runs in one go, model load excluded on both sides (tensile reports the rate of
# its embedding loop on stderr; sentence-transformers is timed around `encode` after a warm-up).
#
#   bash bench/embed.sh                  # RUNS=5 by default
#
# The model comes from test-data/ (bash tools/fetch-test-data.sh). sentence-transformers comes
# from bench/.venv (see cpu_modules.sh), installed there from PyPI when missing; without it the
# PyTorch column says why and tensile's is still measured.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUNS=${RUNS:-5}
MODEL=test-data/all-MiniLM-L6-v2
[ -f "$MODEL/config.json" ] || bash tools/fetch-test-data.sh >&2
py=bench/.venv/bin/python
has_st() { [ -x "$py" ] && "$py" -c "import sentence_transformers" 2>/dev/null; }
has_st || { [ -x "$py" ] && "$py" -m pip install --quiet sentence-transformers >&2; } || true
has_st || { echo "embed.sh: no sentence-transformers in bench/.venv (run bench/cpu_modules.sh first, or no network); its column is skipped" >&2; py=""; }
cargo build --release --locked -p tensile-cli >&2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for i in $(seq 0 255); do echo "sentence number $i about transformers, tests and kernels on a small machine"; done >"$tmp/sentences.txt"
for r in $(seq "$RUNS"); do
    RAYON_NUM_THREADS=2 target/release/tensile embed --model "$MODEL" --input "$tmp/sentences.txt" --batch-size 32 2>"$tmp/err" >/dev/null
    grep -o '[0-9.]* texts/s' "$tmp/err" | head -1 | cut -d' ' -f1 >>"$tmp/tensile"
    if [ -n "$py" ]; then
        OMP_NUM_THREADS=2 "$py" - "$MODEL" "$tmp/sentences.txt" >>"$tmp/torch" <<'PY'
import sys, time, torch
from sentence_transformers import SentenceTransformer
torch.set_num_threads(2)
m = SentenceTransformer(sys.argv[1], device="cpu")
sents = open(sys.argv[2]).read().splitlines()
m.encode(sents[:32])
t = time.perf_counter(); m.encode(sents, batch_size=32); dt = time.perf_counter() - t
print(len(sents) / dt)
PY
    fi
done
python3 - "$tmp" <<'PY'
import os, statistics, sys
tmp = sys.argv[1]
read = lambda n: [float(x) for x in open(f"{tmp}/{n}").read().split()] if os.path.exists(f"{tmp}/{n}") else []
t, p = read("tensile"), read("torch")
fmt = lambda v: f"{statistics.median(v):.0f} (runs: {', '.join(f'{x:.0f}' for x in v)})" if v else "skipped"
print("| side | texts/s, median |\n|---|---|")
print(f"| sentence-transformers | {fmt(p)} |")
print(f"| tensile embed | {fmt(t)} |")
if t and p:
    print(f"\ntensile / sentence-transformers throughput: {statistics.median(t) / statistics.median(p):.2f}")
PY
