#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for a bounded time: tools/fuzz.sh [SECONDS_PER_TARGET]
# (default 30). Exits non-zero when a target crashes, hangs (a run over 10 s) or exceeds
# 2 GB of memory; libFuzzer then writes the input to fuzz/artifacts/TARGET/. New inputs that
# reach new code are added to fuzz/corpus/TARGET/ (committed; minimise with
# `cargo +nightly fuzz cmin TARGET` before committing). Without a nightly toolchain or
# cargo-fuzz it says so and exits 0. See docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds="${1:-30}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: tools/fuzz.sh [SECONDS_PER_TARGET] (a positive whole number)" >&2
    exit 2
fi
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz.sh: skipped: no nightly toolchain (rustup toolchain install nightly)"
    exit 0
fi
if ! cargo +nightly fuzz --help >/dev/null 2>&1; then
    echo "fuzz.sh: skipped: cargo-fuzz is not installed (cargo install cargo-fuzz)"
    exit 0
fi
targets=(spec_file reference_case baseline embed_config)
cd fuzz
# One build for all targets first, so its time is not taken from the first target's budget.
cargo +nightly fuzz build
failed=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    echo "fuzz.sh: $t for ${seconds}s"
    if ! cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1; then
        failed+=("$t")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: crashes in: ${failed[*]} (inputs in fuzz/artifacts/; reproduce with cargo +nightly fuzz run TARGET FILE)" >&2
    exit 1
fi
echo "fuzz.sh: every target ran ${seconds}s without a crash"
