#!/usr/bin/env bash
# The Python venv of the dashboard's browser test: the pinned packages of
# tools/requirements-browser.txt (selenium and its dependencies) on Debian's
# python3, cached outside the work tree under a name that changes with the
# pins, so a new pin gets a new venv.
#
#   bash tools/browser-venv.sh          create it if missing; print its python
#   bash tools/browser-venv.sh --path   print where its python is (or would be)
set -euo pipefail

SELF_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
req="$SELF_DIR/requirements-browser.txt"
cache="${MBQ_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mbq}"
tag="$(sha256sum "$req" | cut -c1-12)"
venv="$cache/browser-venv-$tag"
py="$venv/bin/python3"

if [ "${1:-}" = --path ]; then
    echo "$py"
    exit 0
fi
if [ ! -x "$py" ] || ! "$py" -c 'import selenium' 2>/dev/null; then
    mkdir -p "$cache"
    rm -rf "$venv.tmp"
    /usr/bin/python3 -m venv "$venv.tmp" >&2
    # --no-deps: exactly the pinned set, nothing resolved on the day.
    "$venv.tmp/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$req" >&2
    rm -rf "$venv"
    mv "$venv.tmp" "$venv"
    # A venv's scripts name their directory: the rename is safe for
    # `python3 -m`, which is all the test uses.
fi
echo "$py"
