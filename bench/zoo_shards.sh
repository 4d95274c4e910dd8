#!/usr/bin/env bash
# Wall time of the whole preset zoo (every preset of `tensile list`, every declared check),
# run three ways on this machine, one after the other:
#   unsharded   one process per preset, in turn, with every core;
#   2 shards    `--shard 1/2` and `--shard 2/2` side by side, each with half the cores
#               (RAYON_NUM_THREADS), as two CI jobs on a machine of half the size would;
#   2 shards, all cores each   the same, each shard with every core (oversubscribed); only
#               with OVERSUBSCRIBED=1, as it adds a third pass over the zoo.
# Each way's shard reports are merged per preset; the merged totals are printed beside the
# unsharded ones. Usage: bash bench/zoo_shards.sh [PRESET...] (default: every preset).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release -q -p tensile-cli
T=target/release/tensile
OUT=${OUT:-target/zoo-shards}
rm -rf "$OUT" && mkdir -p "$OUT"
if [ $# -gt 0 ]; then presets=("$@"); else mapfile -t presets < <($T list | grep -v '^ ' | awk '{print $1}'); fi
cores=$(nproc)
half=$(( cores > 1 ? cores / 2 : 1 ))

zoo() { # label threads shard...
    local label=$1 threads=$2; shift 2
    for p in "${presets[@]}"; do
        RAYON_NUM_THREADS=$threads $T run --model "$p" --no-progress "$@" --report-json "$OUT/$label-$p.json" >/dev/null 2>>"$OUT/$label.log" || true
    done
}
now() { date +%s.%N; }
seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

t0=$(now); zoo whole "$cores"; t1=$(now)
zoo s1 "$half" --shard 1/2 & zoo s2 "$half" --shard 2/2 & wait; t2=$(now)
if [ "${OVERSUBSCRIBED:-0}" = 1 ]; then
    zoo o1 "$cores" --shard 1/2 & zoo o2 "$cores" --shard 2/2 & wait
fi
t3=$(now)

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); commit $(git rev-parse --short HEAD); $(date -u +%F)"
echo "presets: ${presets[*]}"
printf "%-36s %10s\n" "way" "wall s"
printf "%-36s %10s\n" "unsharded, $cores threads" "$(seconds "$t0" "$t1")"
printf "%-36s %10s\n" "2 shards side by side, $half thread(s) each" "$(seconds "$t1" "$t2")"
[ "${OVERSUBSCRIBED:-0}" = 1 ] && printf "%-36s %10s\n" "2 shards side by side, $cores threads each" "$(seconds "$t2" "$t3")"
echo
printf "%-18s %-26s %-26s %-26s\n" preset "unsharded passed/cases" "merged (half threads)" "merged (all threads)"
for p in "${presets[@]}"; do
    row=()
    for way in whole "s1 s2" "o1 o2"; do
        [ "$way" = "o1 o2" ] && [ "${OVERSUBSCRIBED:-0}" != 1 ] && { row+=("not run"); continue; }
        if [ "$way" = whole ]; then f="$OUT/whole-$p.json"; else
            set -- $way
            f="$OUT/merged-$1-$p.json"
            $T report merge "$OUT/$1-$p.json" "$OUT/$2-$p.json" --report-json "$f" >/dev/null 2>&1 || true
        fi
        row+=("$(python3 -c 'import json,sys; t=json.load(open(sys.argv[1]))["totals"]; print("%d/%d (%d checks failed)" % (t["cases_passed"], t["cases"], t["checks_failed"]))' "$f" 2>/dev/null || echo "no report")")
    done
    printf "%-18s %-26s %-26s %-26s\n" "$p" "${row[0]}" "${row[1]}" "${row[2]}"
done
