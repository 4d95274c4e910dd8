#!/usr/bin/env bash
# Mutation testing of the numeric core and the blocks with cargo-mutants (opt-in, not in CI).
#
#   bash tools/mutants.sh [core|blocks|all] [--iterate] [more cargo-mutants options]
#
# "core" mutates tensile's numeric code (metrics, tolerance, statistics, baselines, the
# numeric validator, spec-file validation and every check) and runs tensile's unit tests plus
# the integration tests that exercise those files. "blocks" mutates every block of
# tensile-nn, reference twins included, and runs all of tensile-nn's tests. The test targets
# are chosen so that one full run ("all") takes about an hour on 2 cores; the slow scaling
# test (planted_scaling, ~10 s) is left out because it would double the core run.
#
# Results go to target/mutants-out/<set>/mutants.out; afterwards tools/mutants_summary.py
# writes the per-file table (tried, caught, missed, timed out) with the date and commit into
# docs/testing.md. `--iterate` re-tests only the mutants that were not caught last time, and
# the summary then merges both runs (the table says so).
#
# Needs cargo-mutants (`cargo install cargo-mutants --locked`, tested with 27.1.0).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
set_name="${1:-all}"
shift || true
command -v cargo-mutants >/dev/null || { echo "mutants.sh: cargo-mutants is not installed (cargo install cargo-mutants --locked)" >&2; exit 2; }

core_files=(
    crates/tensile/src/metrics.rs
    crates/tensile/src/tolerance.rs
    crates/tensile/src/stats.rs
    crates/tensile/src/baseline.rs
    crates/tensile/src/validate.rs
    crates/tensile/src/specfile.rs
    crates/tensile/src/checks/*.rs
)
core_tests=(--lib --test baseline_statistics --test statistics_reference --test planted_faults --test golden_cases --test repeat_and_baseline)
block_tests=()
block_files=(
    crates/tensile-nn/src/activation.rs
    crates/tensile-nn/src/attention.rs
    crates/tensile-nn/src/rotary.rs
    crates/tensile-nn/src/rms_norm.rs
    crates/tensile-nn/src/layer_norm.rs
    crates/tensile-nn/src/linear.rs
    crates/tensile-nn/src/swiglu.rs
    crates/tensile-nn/src/gelu_mlp.rs
    crates/tensile-nn/src/embedding.rs
    crates/tensile-nn/src/bert/*.rs
    crates/tensile-nn/src/llama/*.rs
)

run_set() {
    local name="$1" package="$2"
    shift 2
    local files=() tests=()
    if [ "$name" = core ]; then files=("${core_files[@]}"); tests=("${core_tests[@]}"); else files=("${block_files[@]}"); tests=("${block_tests[@]}"); fi
    local args=() iterate=false
    for f in "${files[@]}"; do args+=(--file "$f"); done
    for a in "$@"; do [ "$a" = --iterate ] && iterate=true; done
    local out="$PWD/target/mutants-out/$name"
    mkdir -p "$out/history"
    local universe
    universe="$(mktemp)"
    cargo mutants --dir "$src" --list --json --package "$package" "${args[@]}" >"$universe"
    echo "mutants.sh: $name: $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$universe") mutants" >&2
    local start rc=0
    start=$(date +%s)
    # Exit code 2 means "some mutants were missed" and 3 "some timed out": both are results,
    # which the summary reports; anything else is a failure of the run itself.
    # The test targets go to the build as well as the test phase (--cargo-arg), so each mutant
    # links only the test binaries that run.
    local cargo_args=()
    for t in "${tests[@]}"; do cargo_args+=(--cargo-arg "$t"); done
    cargo mutants --dir "$src" --copy-target=true --package "$package" "${args[@]}" --profile mutants \
        --jobs "${MUTANTS_JOBS:-2}" --minimum-test-timeout 60 --output "$out" "${cargo_args[@]}" "$@" || rc=$?
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 2 ] && [ "$rc" -ne 3 ]; then
        echo "mutants.sh: cargo mutants failed on $name (exit $rc)" >&2
        exit "$rc"
    fi
    # Keep this run beside the earlier ones: the summary merges a full run with the
    # `--iterate` runs after it.
    local n=1
    while [ -e "$out/history/$n" ]; do n=$((n + 1)); done
    mkdir -p "$out/history/$n"
    cp "$out/mutants.out/outcomes.json" "$out/history/$n/"
    mv "$universe" "$out/history/$n/universe.json"
    cat >"$out/history/$n/run.json" <<JSON
{"commit": "$commit", "date": "$(date -u +%Y-%m-%d)", "iterate": $iterate,
 "cargo_mutants": "$(cargo mutants --version | cut -d' ' -f2)", "machine": "$(nproc) cores, $(uname -m)",
 "tests": "cargo test -p $package ${tests[*]:-(all targets)}", "minutes": $(( ($(date +%s) - start) / 60 ))}
JSON
}

# cargo-mutants copies the tree it mutates once per job. It mutates a clean export of the
# committed HEAD (target/mutants-src; uncommitted changes are not measured), whose own
# target/ holds a warm build in the mutants profile: the copies start from it instead of
# building every dependency again (the export keeps its target/ from run to run).
commit="$(git rev-parse --short HEAD)"
src="$PWD/target/mutants-src"
mkdir -p "$src"
find "$src" -mindepth 1 -maxdepth 1 ! -name target -exec rm -rf {} +
git archive HEAD | tar -x -C "$src"
[ -d test-data ] && ln -s "$PWD/test-data" "$src/test-data"
echo "mutants.sh: warming the build of $commit in $src/target" >&2
(cd "$src" && cargo test --profile mutants --no-run -p tensile -p tensile-nn --locked >/dev/null 2>&1) || {
    echo "mutants.sh: the unmutated tree does not build; run cargo test first" >&2
    exit 2
}

case "$set_name" in
    core) run_set core tensile "$@" ;;
    blocks) run_set blocks tensile-nn "$@" ;;
    all) run_set core tensile "$@"; run_set blocks tensile-nn "$@" ;;
    *) echo "mutants.sh: unknown set '$set_name' (expected core, blocks or all)" >&2; exit 2 ;;
esac
python3 tools/mutants_summary.py target/mutants-out docs/testing.md
