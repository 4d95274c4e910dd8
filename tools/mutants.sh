#!/usr/bin/env bash
# Mutation testing of the numeric core and the blocks with cargo-mutants (opt-in, not in CI).
#
#   bash tools/mutants.sh [all|core|blocks|core.stats|core.metrics|core.checks] [--iterate] [cargo-mutants options]
#
# "core" mutates tensile's numeric code in three groups: statistics and baselines
# (core.stats), metrics, tolerance and the numeric and spec-file validation (core.metrics), and
# every check (core.checks). "blocks" mutates every block of tensile-nn, reference twins,
# configs, layers and models included, and runs all of tensile-nn's tests.
#
# Each group's results go to target/mutants-out/<group>/mutants.out, and a copy of each run to
# target/mutants-out/<core|blocks>/history/<n>. tools/mutants_summary.py then merges every run
# of a set (each mutant counts with its latest outcome) and writes the per-file table (mutants,
# caught, missed, timed out, unviable) with the dates and commits into docs/testing.md.
# `--iterate` re-tests only the mutants the group's last run did not catch.
#
# Needs cargo-mutants (`cargo install cargo-mutants --locked`, tested with 27.1.0).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
set_name="${1:-all}"
shift || true
command -v cargo-mutants >/dev/null || { echo "mutants.sh: cargo-mutants is not installed (cargo install cargo-mutants --locked)" >&2; exit 2; }

# Mutant groups: files and the test targets that exercise them. Each group runs only the
# tests that can catch its mutants: every integration test target costs a second compile of
# tensile (as a library) and a link per mutant. The checks' group adds `alloc`, the one binary
# that installs the counting allocator, without which the memory check only skips. The slow
# scaling test (planted_scaling, ~10 s) is left out because it would double the checks'
# group, whose unit tests cover the scaling arithmetic.
group_set() { case "$1" in core.*) echo core ;; *) echo blocks ;; esac; }
group_files() {
    case "$1" in
        core.stats) echo crates/tensile/src/stats.rs crates/tensile/src/baseline.rs ;;
        core.metrics) echo crates/tensile/src/metrics.rs crates/tensile/src/tolerance.rs crates/tensile/src/validate.rs crates/tensile/src/specfile.rs ;;
        core.checks) echo crates/tensile/src/checks/*.rs ;;
        blocks) echo crates/tensile-nn/src/{activation,attention,rotary,rms_norm,layer_norm,linear,swiglu,gelu_mlp,embedding}.rs crates/tensile-nn/src/bert/*.rs crates/tensile-nn/src/llama/*.rs ;;
    esac
}
group_tests() {
    case "$1" in
        core.stats) echo --lib --test statistics_reference --test baseline_statistics ;;
        core.metrics) echo --lib ;;
        core.checks) echo --lib --test planted_faults --test alloc ;;
        blocks) echo "" ;; # every test target of tensile-nn
    esac
}
groups_of() {
    case "$1" in
        all) echo core.stats core.metrics core.checks blocks ;;
        core) echo core.stats core.metrics core.checks ;;
        core.stats | core.metrics | core.checks | blocks) echo "$1" ;;
        *) echo "mutants.sh: unknown set '$1' (expected all, core, blocks, core.stats, core.metrics or core.checks)" >&2; exit 2 ;;
    esac
}

run_group() {
    local group="$1"
    shift
    local set package files=() tests=() all_files=() args=() universe_args=() iterate=false
    set="$(group_set "$group")"
    package=tensile
    [ "$set" = blocks ] && package=tensile-nn
    read -r -a files <<<"$(group_files "$group")"
    read -r -a tests <<<"$(group_tests "$group")"
    for a in "$@"; do [ "$a" = --iterate ] && iterate=true; done
    for f in "${files[@]}"; do args+=(--file "$f"); done
    # The universe is every mutant of the whole set at this commit: the summary reports a
    # mutant no run has tested as untested.
    for g in $(groups_of "$set"); do read -r -a all_files <<<"$(group_files "$g")"; for f in "${all_files[@]}"; do universe_args+=(--file "$f"); done; done
    local out="$PWD/target/mutants-out/$group" hist="$PWD/target/mutants-out/$set/history"
    mkdir -p "$out" "$hist"
    local universe
    universe="$(mktemp)"
    cargo mutants --dir "$src" --list --json --package "$package" "${universe_args[@]}" >"$universe"
    echo "mutants.sh: $group" >&2
    local start rc=0
    start=$(date +%s)
    # The test targets go to the build as well as the test phase (--cargo-arg), so each mutant
    # links only the test binaries that run.
    local cargo_args=()
    for t in "${tests[@]}"; do cargo_args+=(--cargo-arg "$t"); done
    # Exit code 2 means "some mutants were missed" and 3 "some timed out": both are results,
    # which the summary reports; anything else is a failure of the run itself.
    cargo mutants --dir "$src" --in-place --package "$package" "${args[@]}" --profile mutants \
        --minimum-test-timeout 60 --output "$out" "${cargo_args[@]}" "$@" || rc=$?
    # Anything else means the run stopped early (interrupted, or a broken tree): what it
    # tested so far is kept as a run that did not finish, and `--iterate` resumes it.
    local complete=true
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 2 ] && [ "$rc" -ne 3 ]; then
        echo "mutants.sh: cargo mutants stopped on $group (exit $rc); keeping what it tested" >&2
        complete=false
        [ -f "$out/mutants.out/outcomes.json" ] || exit "$rc"
    fi
    # Keep this run beside the earlier ones: the summary merges every run of the set.
    local n=1
    while [ -e "$hist/$n" ]; do n=$((n + 1)); done
    mkdir -p "$hist/$n"
    cp "$out/mutants.out/outcomes.json" "$hist/$n/"
    mv "$universe" "$hist/$n/universe.json"
    cat >"$hist/$n/run.json" <<JSON
{"group": "$group", "commit": "$commit", "date": "$(date -u +%Y-%m-%d)", "iterate": $iterate, "complete": $complete,
 "cargo_mutants": "$(cargo mutants --version | cut -d' ' -f2)", "machine": "$(nproc) cores, $(uname -m)",
 "tests": "cargo test -p $package ${tests[*]:-(all targets)}", "minutes": $(( ($(date +%s) - start) / 60 ))}
JSON
}

# cargo-mutants mutates a clean export of the committed HEAD in place (target/mutants-src;
# uncommitted changes are not measured), one mutant at a time, restoring each file after its
# mutant. The export's own target/ holds a warm build in the mutants profile, kept from run
# to run, so each mutant costs an incremental rebuild of one crate (a few seconds) and its
# tests. In place rather than in copies (--jobs): cargo-mutants copies a tree without its
# files' modification times, which makes cargo rebuild every dependency in every copy, about
# five minutes of both cores per group and job, more than a second job wins back.
groups_of "$set_name" >/dev/null
commit="$(git rev-parse --short HEAD)"
src="$PWD/target/mutants-src"
mkdir -p "$src"
find "$src" -mindepth 1 -maxdepth 1 ! -name target -exec rm -rf {} +
git archive HEAD | tar -x -C "$src"
# git archive stamps every file with the commit's time, older than the artifacts the last run
# left in the export's target/ (built from its last mutant, or from another commit): cargo
# would take them as fresh and the baseline would test a stale binary. Newer stamps make the
# warm build rebuild our crates (not the dependencies) from these sources.
find "$src" -path "$src/target" -prune -o -type f -exec touch {} +
[ -d test-data ] && ln -s "$PWD/test-data" "$src/test-data"
echo "mutants.sh: warming the build of $commit in $src/target" >&2
# One build per package, as cargo-mutants builds them (the packages named on one command line
# decide which features of shared dependencies are built), and with the same rustc flags:
# flags are part of every crate's fingerprint, so a warm build made with a flag that
# cargo-mutants does not pass (27.x passes none unless --cap-lints is given) is rebuilt from
# scratch in every job's copy.
warm() { (cd "$src" && env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS cargo test --profile mutants --no-run --locked "$@" >/dev/null 2>&1); }
packages=()
case "$set_name" in all) packages=(tensile tensile-nn) ;; blocks) packages=(tensile-nn) ;; *) packages=(tensile) ;; esac
for p in "${packages[@]}"; do warm -p "$p" || {
        echo "mutants.sh: the unmutated tree does not build; run cargo test first" >&2
        exit 2
    }
done

for group in $(groups_of "$set_name"); do
    run_group "$group" "$@"
done
python3 tools/mutants_summary.py target/mutants-out docs/testing.md
