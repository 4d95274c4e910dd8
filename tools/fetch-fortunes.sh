#!/usr/bin/env bash
# Fetch Debian's `fortunes` package and keep its labelled text files (one file per category:
# computers, science, love, politics, sports, …) in <repo>/test-data/fortunes/, for the
# end-to-end classification workflow test.
#
# Idempotent: does nothing if test-data/fortunes/computers exists. Needs apt-get (to download
# the .deb, refreshing the package lists once if the first try fails) and dpkg-deb (to unpack
# it). Without them, or offline, it fails and the tests that need the corpus skip with a reason.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEST="$(cd "$SCRIPT_DIR/.." && pwd)/test-data/fortunes"

if [[ -f "$DEST/computers" ]]; then
    echo "fetch-fortunes: $DEST already present, nothing to do"
    exit 0
fi
command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || { echo "fetch-fortunes: needs apt-get and dpkg-deb" >&2; exit 1; }

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
SUDO=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO="sudo"
if ! (cd "$TMP" && apt-get download -qq fortunes >/dev/null 2>&1); then
    $SUDO apt-get update -qq >/dev/null 2>&1 || true
    (cd "$TMP" && apt-get download -qq fortunes >/dev/null 2>&1) || { echo "fetch-fortunes: apt-get download fortunes failed" >&2; exit 1; }
fi
dpkg-deb -x "$TMP"/fortunes_*.deb "$TMP/x"
SRC="$TMP/x/usr/share/games/fortunes"
[[ -f "$SRC/computers" ]] || { echo "fetch-fortunes: the package holds no computers file" >&2; exit 1; }

# Stage, then move into place, so an interrupted run never leaves a half-filled DEST.
STAGE="$TMP/stage"
mkdir -p "$STAGE"
for f in "$SRC"/*; do
    case "$f" in *.dat | *.u8) continue ;; esac
    [[ -f "$f" && ! -L "$f" ]] && cp "$f" "$STAGE/"
done
ls "$TMP"/fortunes_*.deb | sed 's|.*/||' >"$STAGE/SOURCE"
mkdir -p "$(dirname "$DEST")"
rm -rf "$DEST"
mv "$STAGE" "$DEST"
echo "fetch-fortunes: wrote $DEST ($(ls "$DEST" | wc -l) files)"
