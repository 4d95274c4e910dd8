#!/usr/bin/env bash
# Training throughput of the foundry's step against PyTorch (transformers LlamaForCausalLM,
# ../shared/anchors/torch_cpu_train.py), same configs, f32, 2 threads, measured alternately in
# one run: compare the ratio, not numbers from different runs. Results go to bench/RESULTS.md.
#
#   bash bench/foundry_train.sh            # PYTHON=... picks the interpreter with torch
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
ANCHOR=${ANCHOR:-../shared/anchors/torch_cpu_train.py}
ROUNDS=${ROUNDS:-3}
cargo build --release --locked -p tensile-foundry --example train_bench
have_torch=1
if ! "$PY" -c "import torch, transformers" 2>/dev/null || [ ! -f "$ANCHOR" ]; then
    echo "skipping PyTorch: $PY lacks torch/transformers or $ANCHOR is missing (set PYTHON=...)" >&2
    have_torch=0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
configs=("2 64 2 2 128 1000 32 2" "4 256 4 4 688 8192 256 8")
names=("tiny (2×64, vocab 1000, seq 32, batch 2)" "small (4×256, vocab 8192, seq 256, batch 8)")
echo "| config | PyTorch tokens/s | tensile tokens/s | tensile / PyTorch |"
echo "|---|---|---|---|"
for i in "${!configs[@]}"; do
    c=${configs[$i]}
    : > "$tmp/t"; : > "$tmp/p"
    for _ in $(seq "$ROUNDS"); do
        RAYON_NUM_THREADS=2 target/release/examples/train_bench $c | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["tokens_per_s"])' >> "$tmp/t"
        if [ "$have_torch" = 1 ]; then
            "$PY" "$ANCHOR" "$tmp/out.json" $c > /dev/null
            "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["tokens_per_s"])' "$tmp/out.json" >> "$tmp/p"
        fi
    done
    med() { sort -g "$1" | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
    t=$(med "$tmp/t"); p=$(med "$tmp/p")
    ratio=$(awk -v t="$t" -v p="$p" 'BEGIN { if (p == "nan") print "-"; else printf "%.2f", t / p }')
    printf "| %s | %s | %.0f | %s |\n" "${names[$i]}" "$( [ "$p" = nan ] && echo skipped || printf %.0f "$p")" "$t" "$ratio"
done
