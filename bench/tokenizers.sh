#!/usr/bin/env bash
# Tokenizer throughput of tensile-foundry and of Python `tokenizers`, one after the other in
# one run on the same corpus (default test-data/fortunes): compare the ratio, not the numbers
# of different runs. Results go to bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CORPUS=${1:-test-data/fortunes}
cargo build --release --locked -p tensile-foundry --example tokenizer_bench
target/release/examples/tokenizer_bench "$CORPUS"
"${PYTHON:-python3}" bench/tokenizers_throughput.py "$CORPUS" --repeat 3
