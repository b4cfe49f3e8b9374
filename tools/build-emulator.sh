#!/usr/bin/env bash
# Build goccy/bigquery-emulator once into a cache directory outside the work
# tree, with the project's patch series applied, and print the binary's path.
#
# `go install ...@v0.8.1` does not work here: it asks the module proxy for the
# version list, which is refused. A throw-away module that requires the tag
# and builds the command does (../shared/EMULATOR.md). The patches
# (tools/emulator/patches/*.patch, applied in sorted order) fix the emulator
# where it differs from BigQuery in ways mbq depends on: the pristine module
# source of the tag is copied, patched, and the throw-away module builds the
# command from that copy through a `replace` directive. Everything comes from
# the module proxy (or the module cache): the build stays offline-reproducible.
#
# The cache is keyed by the tag and a hash of the patch set: a new or changed
# patch builds a new binary, an unchanged set reuses it. The patched source
# tree is kept beside the binary (DIR/src, a git repository with one commit
# per patch) so that the patches' Go tests can be run from it
# (tests/emulator.cmake). A cold build takes about 7 minutes and 6 GB of
# memory; with a warm Go build cache only the patched packages and the link
# are redone. Concurrent callers wait for each other (flock) instead of
# building the same thing twice.
set -euo pipefail

SELF_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VERSION="${MBQ_EMULATOR_VERSION:-v0.8.1}"
CACHE="${MBQ_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mbq}"
PATCH_DIR="${MBQ_EMULATOR_PATCHES:-$SELF_DIR/emulator/patches}"
MODULE=github.com/goccy/bigquery-emulator

die() {
    echo "build-emulator: $*" >&2
    exit 1
}

shopt -s nullglob
patches=("$PATCH_DIR"/*.patch)
shopt -u nullglob
# Sorted by name in the C locale, so that 0002 comes before 0010 everywhere.
if [ "${#patches[@]}" -gt 0 ]; then
    mapfile -t patches < <(printf '%s\n' "${patches[@]}" | LC_ALL=C sort)
fi

# The key covers each patch's name and content: renaming, editing, adding or
# removing a patch gives another directory. Without patches the directory is
# the one an unpatched build always had.
if [ "${#patches[@]}" -gt 0 ]; then
    key="$(for p in "${patches[@]}"; do
        printf '%s\n' "$(basename "$p")"
        sha256sum <"$p"
    done | sha256sum | cut -c1-12)"
    DIR="$CACHE/bigquery-emulator-$VERSION-p$key"
else
    DIR="$CACHE/bigquery-emulator-$VERSION"
fi
BIN="$DIR/bigquery-emulator"

if [ -x "$BIN" ]; then
    echo "$BIN"
    exit 0
fi

command -v go >/dev/null || die "go is not installed"
mkdir -p "$CACHE"
exec 9>"$DIR.lock"
if ! flock -n 9; then
    echo "build-emulator: another build of $(basename "$DIR") is running; waiting for it" >&2
    flock 9
fi
if [ -x "$BIN" ]; then
    echo "$BIN"
    exit 0
fi

mkdir -p "$DIR"
W="$(mktemp -d "$DIR/build.XXXXXX")"
trap 'rm -rf "$W"' EXIT
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-buildvcs=false"

# Pristine source of the tag from the module proxy (or the module cache).
src_of_tag() {
    local json dir
    json="$(cd "$W" && GOFLAGS=-mod=mod go mod download -json "$MODULE@$VERSION")" ||
        die "go mod download $MODULE@$VERSION failed"
    dir="$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
    [ -n "$dir" ] && [ -d "$dir" ] || die "no source directory for $MODULE@$VERSION in: $json"
    printf '%s\n' "$dir"
}

# Copy the tag's source and apply every patch, one git commit each, failing
# loudly on the first one that does not apply.
patched_tree() {
    local pristine="$1" tree="$2" p subject
    cp -R "$pristine" "$tree"
    chmod -R u+w "$tree"
    (
        cd "$tree"
        export GIT_AUTHOR_NAME=mbq GIT_AUTHOR_EMAIL=mbq@localhost \
            GIT_COMMITTER_NAME=mbq GIT_COMMITTER_EMAIL=mbq@localhost
        git init -q
        git add -A
        git commit -q --no-gpg-sign -m "$MODULE $VERSION (module proxy)"
        git tag "$VERSION"
        for p in "${patches[@]}"; do
            echo "build-emulator: applying $(basename "$p")" >&2
            git apply --index --whitespace=nowarn "$p" ||
                die "patch $(basename "$p") does not apply to $MODULE $VERSION"
            # The Subject header, unfolded (format-patch wraps long ones).
            subject="$(awk '/^Subject: / { s = substr($0, 10)
                    while ((getline l) > 0 && l ~ /^[ \t]/) s = s l
                    print s; exit }' "$p" | sed 's/^\[PATCH[^]]*\] //')"
            git commit -q --no-gpg-sign -m "${subject:-$(basename "$p")}" -m "$(basename "$p")"
        done
    )
}

pristine="$(src_of_tag)"
if [ "${#patches[@]}" -gt 0 ]; then
    patched_tree "$pristine" "$W/src"
    replace="replace $MODULE => ./src"
else
    replace=""
fi
(
    cd "$W"
    printf 'module local/bqemu\n\ngo 1.25.0\n\nrequire %s %s\n\n%s\n' "$MODULE" "$VERSION" "$replace" >go.mod
    printf '//go:build tools\n\npackage tools\n\nimport _ "%s/cmd/bigquery-emulator"\n' "$MODULE" >tools.go
    echo "build-emulator: building bigquery-emulator $VERSION with ${#patches[@]} patch(es) into $DIR" \
        "(cold build: ~7 min)" >&2
    GOFLAGS="$GOFLAGS -mod=mod" go mod tidy >&2
    CGO_ENABLED=0 go build -o "$W/bigquery-emulator" "$MODULE/cmd/bigquery-emulator" >&2
)
# The patched tree stays for the patches' Go tests; the binary comes last, so
# that its presence means the whole directory is complete.
if [ -d "$W/src" ]; then
    rm -rf "$DIR/src"
    mv "$W/src" "$DIR/src"
fi
mv -f "$W/bigquery-emulator" "$BIN"
echo "$BIN"
