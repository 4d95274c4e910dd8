#!/usr/bin/env bash
# Data-parallel training on this machine: tokens/s of one process with every core against
# `mpirun -np 2` (MPI) and two torchrun-style processes (RANK/WORLD_SIZE/MASTER_ADDR: the TCP
# engine) with one thread per rank, the same config and global batch, measured in one run and
# alternated ROUNDS times; and each step's time spent exchanging gradients against its compute. Needs Open MPI (Debian: openmpi-bin libopenmpi-dev libclang-dev). Results go to
# bench/RESULTS.md.
#
#   bash bench/foundry_dp.sh        # STEPS=20 ROUNDS=3 LAYERS=4 HIDDEN=256 SEQ=128 BATCH=8 ACCUM=2
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
STEPS=${STEPS:-20} ROUNDS=${ROUNDS:-3} LAYERS=${LAYERS:-4} HIDDEN=${HIDDEN:-256} SEQ=${SEQ:-128} BATCH=${BATCH:-8} ACCUM=${ACCUM:-2}
cargo build --release --locked -q -p tensile-cli --features mpi
T=$PWD/target/release/tensile
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/dp.toml" <<TOML
experiment_name = "dp"
random_seed = 1
[data]
sources = ["$PWD/crates/tensile-foundry/tests/data/tiny_corpus/*.txt"]
output_dir = "data"
max_sequence_length = $SEQ
batch_size = $BATCH
validation_fraction = 0.05
document_separator = ""
[tokenizer]
vocab_size = 400
output_dir = "tokenizer"
[model]
architecture = "llama"
num_hidden_layers = $LAYERS
hidden_size = $HIDDEN
intermediate_size = $(( HIDDEN * 11 / 4 ))
num_attention_heads = 4
[training]
learning_rate = 1e-3
train_steps = $STEPS
gradient_accumulation_steps = $ACCUM
checkpoint_every = 0
eval_every = 0
output_dir = "run"
TOML
$T foundry preprocess --config "$tmp/dp.toml" --no-progress > /dev/null
# Median tokens/s of the steps after the first two, mean exchange share, from rank 0's metrics.
summary() {
    python3 - "$1" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"tokens_per_second"' in l][2:]
tps = statistics.median(r["tokens_per_second"] for r in rows)
ex = sum(r.get("exchange_seconds", 0) for r in rows) / len(rows)
sec = sum(r["seconds"] for r in rows) / len(rows)
print(f"{tps:.0f} {ex * 1000:.1f} {sec * 1000:.1f} {rows[-1]['loss']!r}")
PY
}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
: > "$tmp/one"; : > "$tmp/two"; : > "$tmp/tcp"
# What `torchrun --nproc-per-node 2 --no-python tensile foundry train ...` starts.
torchrun_like() {
    local port=$((29500 + RANDOM % 1000))
    for r in 0 1; do
        (cd "$tmp" && RANK=$r LOCAL_RANK=$r WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port RAYON_NUM_THREADS=1 \
            $T foundry train --config dp.toml --no-progress --skip-module-tests > /dev/null) &
    done
    wait
}
for _ in $(seq "$ROUNDS"); do
    rm -rf "$tmp/run"
    (cd "$tmp" && RAYON_NUM_THREADS=$(nproc) $T foundry train --config dp.toml --no-progress --skip-module-tests > /dev/null)
    summary "$tmp/run/metrics.jsonl" >> "$tmp/one"
    rm -rf "$tmp/run"
    (cd "$tmp" && mpirun --oversubscribe -np 2 -x RAYON_NUM_THREADS=1 $T foundry train --config dp.toml --no-progress --skip-module-tests > /dev/null)
    summary "$tmp/run/metrics.jsonl" >> "$tmp/two"
    rm -rf "$tmp/run"
    torchrun_like
    summary "$tmp/run/metrics.jsonl" >> "$tmp/tcp"
done
echo "config: $LAYERS layers × $HIDDEN, seq $SEQ, global batch $BATCH × $ACCUM accumulation, $STEPS steps, $(nproc) cores; commit $(git rev-parse --short HEAD); $(date -u +%F)"
echo "| way | tokens/s (median of rounds) | exchange ms/step | step ms | last loss |"
echo "|---|---|---|---|---|"
med() { awk -v k="$2" '{print $k}' "$1" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo "| 1 process, $(nproc) threads | $(med "$tmp/one" 1) | - | $(med "$tmp/one" 3) | $(tail -1 "$tmp/one" | cut -d' ' -f4) |"
echo "| mpirun -np 2, 1 thread each | $(med "$tmp/two" 1) | $(med "$tmp/two" 2) | $(med "$tmp/two" 3) | $(tail -1 "$tmp/two" | cut -d' ' -f4) |"
echo "| torchrun-style, 2 ranks over TCP, 1 thread each | $(med "$tmp/tcp" 1) | $(med "$tmp/tcp" 2) | $(med "$tmp/tcp" 3) | $(tail -1 "$tmp/tcp" | cut -d' ' -f4) |"
# The same run in one process with one thread: bitwise the two ranks' loss (the tree fixes the
# sums; one thread a rank fixes the kernels' own splits).
rm -rf "$tmp/run"
(cd "$tmp" && RAYON_NUM_THREADS=1 $T foundry train --config dp.toml --no-progress --skip-module-tests > /dev/null)
echo "| 1 process, 1 thread | $(summary "$tmp/run/metrics.jsonl" | cut -d' ' -f1) | - | $(summary "$tmp/run/metrics.jsonl" | cut -d' ' -f3) | $(summary "$tmp/run/metrics.jsonl" | cut -d' ' -f4) |"
