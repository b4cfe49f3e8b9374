#!/usr/bin/env bash
# Build goccy/bigquery-emulator once into a cache directory outside the work
# tree, keyed by its version, and print the binary's path.
#
# `go install ...@v0.8.1` does not work here: it asks the module proxy for the
# version list, which is refused. A throw-away module that requires the tag
# and builds the command does (../shared/EMULATOR.md). A cold build takes about
# 7 minutes and 6 GB of memory; afterwards the cached binary is reused.
set -euo pipefail

VERSION="${MBQ_EMULATOR_VERSION:-v0.8.1}"
CACHE="${MBQ_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mbq}"
DIR="$CACHE/bigquery-emulator-$VERSION"
BIN="$DIR/bigquery-emulator"

if [ -x "$BIN" ]; then
    echo "$BIN"
    exit 0
fi

command -v go >/dev/null || { echo "build-emulator: go is not installed" >&2; exit 1; }
mkdir -p "$DIR"
W="$(mktemp -d "$DIR/build.XXXXXX")"
trap 'rm -rf "$W"' EXIT
(
    cd "$W"
    printf 'module local/bqemu\n\ngo 1.25.0\n\nrequire github.com/goccy/bigquery-emulator %s\n' "$VERSION" > go.mod
    printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/goccy/bigquery-emulator/cmd/bigquery-emulator"\n' > tools.go
    echo "build-emulator: building bigquery-emulator $VERSION into $DIR (cold build: ~7 min)" >&2
    GOFLAGS=-mod=mod go mod tidy >&2
    CGO_ENABLED=0 go build -o "$BIN.tmp" github.com/goccy/bigquery-emulator/cmd/bigquery-emulator >&2
)
mv -f "$BIN.tmp" "$BIN"
echo "$BIN"
