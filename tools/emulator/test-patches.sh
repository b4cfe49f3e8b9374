#!/usr/bin/env bash
# Run the Go tests that the emulator patches add (tools/emulator/patches),
# in the patched source tree that tools/build-emulator.sh keeps beside the
# binary it builds (building it first if needed).
#
# The tests to run are the `func TestX(t *testing.T)` that the patches add;
# extra arguments go to `go test` (e.g. -v). Exit 77 (ctest's skip) when Go
# is not installed.
set -euo pipefail

SELF_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PATCH_DIR="${MBQ_EMULATOR_PATCHES:-$SELF_DIR/patches}"
export PATH="$PATH:/usr/local/go/bin"

command -v go >/dev/null || { echo "test-patches: go is not installed: skipped" >&2; exit 77; }

shopt -s nullglob
patches=("$PATCH_DIR"/*.patch)
shopt -u nullglob
if [ "${#patches[@]}" -eq 0 ]; then
    echo "test-patches: no patches in $PATCH_DIR" >&2
    exit 77
fi

# Test functions added by the patches, per package directory.
tests="$(sed -n 's/^+func \(Test[A-Za-z0-9_]*\)(t \*testing\.T).*/\1/p' "${patches[@]}" | LC_ALL=C sort -u)"
[ -n "$tests" ] || { echo "test-patches: the patches add no Go test" >&2; exit 1; }
pkgs="$(sed -n 's|^+++ b/\(.*\)/[^/]*_test\.go$|./\1/|p' "${patches[@]}" | LC_ALL=C sort -u)"

bin="$(bash "$SELF_DIR/../build-emulator.sh")"
src="$(dirname "$bin")/src"
[ -d "$src" ] || { echo "test-patches: no patched source tree at $src" >&2; exit 1; }

regex="^($(printf '%s\n' "$tests" | paste -sd '|'))\$"
echo "test-patches: in $src: go test -run '$regex' $(echo $pkgs)" >&2
cd "$src"
# -count=1: the tests run every time, not from Go's test cache.
exec env GOFLAGS="${GOFLAGS:+$GOFLAGS }-buildvcs=false" CGO_ENABLED=0 \
    go test -count=1 -run "$regex" "$@" $pkgs
