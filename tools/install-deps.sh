#!/usr/bin/env bash
# Install everything mbq's build, tests, fuzzing, benchmarks and local services
# need on Debian 12, then build (or reuse) the BigQuery emulator.
#
# Idempotent and quick when nothing is missing: it asks dpkg what is installed
# and runs `apt-get update` / `apt-get install` only for what is not, so it
# also works without root on a machine that already has everything.
set -euo pipefail

SELF_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() {
    echo "install-deps: $*" >&2
    exit 1
}

PACKAGES=(
    # build
    cmake ninja-build gcc libc6-dev pkg-config
    libmariadb-dev libcurl4-openssl-dev libjson-c-dev libyaml-dev uuid-dev
    libssl-dev zlib1g-dev libsqlite3-dev
    # the dashboard's HTTP server (mbq-state serve)
    libmicrohttpd-dev
    # fuzzing (libFuzzer's runtime lives in libclang-rt-14-dev on Debian 12)
    clang libclang-rt-14-dev
    # local services: MariaDB, the SMTP sink (Debian's python3 + aiosmtpd),
    # openssl for the sink's test certificate, curl to probe the emulator,
    # procps/util-linux for pgrep/ps/setsid
    mariadb-server mariadb-client python3 python3-aiosmtpd openssl curl
    procps util-linux ca-certificates
    # tests and benchmarks: sqlite3 to look into the journal, mydumper and
    # /usr/bin/time as the comparison and the measure
    sqlite3 mydumper time
    # the emulator build fetches modules through the Go proxy (TLS) and git
    git
    # packaging: dpkg-shlibdeps computes the .deb's Depends (tests/test_package.sh)
    dpkg-dev
    # systemd-analyze verifies the shipped units (tests/test_units.sh)
    systemd
    # the dashboard's browser test: headless chromium and its driver, and a
    # venv (python3-venv) for the pinned selenium (tools/browser-venv.sh)
    chromium chromium-driver python3-venv
)

missing=()
for p in "${PACKAGES[@]}"; do
    st="$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)"
    [ "${st:0:2}" = ii ] || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing packages: ${missing[*]}; run as root (sudo bash tools/install-deps.sh)"
    echo "install-deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    # mbq's tests start their own mariadbd on a free port; the packaged
    # service is not wanted. A temporary policy-rc.d (honoured by invoke-rc.d
    # and deb-systemd-invoke) keeps apt from starting it, so that nothing is
    # left running and port 3306 stays free -- unless the machine already has
    # a policy, which is left alone.
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        own_policy=1
    fi
    cleanup_policy() { if [ "$own_policy" = 1 ]; then rm -f "$policy"; fi; }
    trap cleanup_policy EXIT
    # `update` only when the package lists are missing or older than a day,
    # or when an install from the current lists fails.
    if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null | head -n 1)" ]; then
        apt-get update
    fi
    if ! apt-get install -y --no-install-recommends "${missing[@]}"; then
        apt-get update
        apt-get install -y --no-install-recommends "${missing[@]}"
    fi
    cleanup_policy
    trap - EXIT
fi

# Go is not taken from apt (Debian 12's is too old for the emulator's
# modules); it is expected preinstalled at /usr/local/go. It is needed only
# to build the emulator once; a cached binary needs no Go.
export PATH="$PATH:/usr/local/go/bin"
if ! command -v go >/dev/null; then
    if [ ! -x "${MBQ_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mbq}/bigquery-emulator-${MBQ_EMULATOR_VERSION:-v0.8.1}/bigquery-emulator" ]; then
        die "go is not installed (expected at /usr/local/go/bin/go, Go >= 1.25): it is needed once to build the BigQuery emulator (tools/build-emulator.sh)"
    fi
fi

# The browser test's pinned selenium, in a venv cached outside the work tree.
bash "$SELF_DIR/browser-venv.sh" >/dev/null || die "cannot create the browser test's venv (tools/browser-venv.sh)"

# Cached by version outside the work tree; a cold build takes ~7 minutes.
bin="$(bash "$SELF_DIR/build-emulator.sh")" || die "building the BigQuery emulator failed"
echo "install-deps: all dependencies present; emulator: $bin" >&2
