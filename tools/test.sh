#!/usr/bin/env bash
# The README's second command: install what is missing, build with
# AddressSanitizer + UndefinedBehaviorSanitizer and warnings as errors into
# build-ci/, and run the whole suite through ctest. ctest's `services.start`
# fixture starts MariaDB, the BigQuery emulator and the SMTP sink
# (tools/services.sh) and `services.stop` stops them after the last test.
#
# MBQ_REQUIRE_SERVICES=1 makes an integration test that finds no service fail
# instead of skipping: under this command every test runs for real.
#
# Extra arguments go to ctest, e.g. `bash tools/test.sh -L unit` or
# `bash tools/test.sh -R smoke_bq`. The exit code is ctest's.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BUILD="$ROOT/build-ci"

bash tools/install-deps.sh

cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DMBQ_SANITIZE=ON -DMBQ_WERROR=ON
cmake --build "$BUILD" --parallel "$(nproc)"

# If ctest is interrupted between services.start and services.stop, stop the
# services here: nothing may be left running after this command.
stop_services() { bash tools/services.sh stop "$BUILD/services" >/dev/null 2>&1 || true; }
trap stop_services EXIT
trap 'stop_services; exit 130' INT TERM

# detect_leaks stays on (ASan's default); abort_on_error gives a core/trace,
# halt_on_error makes UBSan findings fail the test.
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export MBQ_REQUIRE_SERVICES=1

rc=0
# Fuzzing (issue 8): libFuzzer needs clang, so the harnesses build in their
# own tree build-fuzz/; `ctest -L fuzz` runs each for about a minute and
# fails on any crash, leak or sanitizer report. It runs first, so that the
# last lines of this command are the whole suite's summary. Skipped when
# ctest was given a selection (e.g. `-L unit`) or MBQ_SKIP_FUZZ=1.
if [ "$#" -eq 0 ] && [ "${MBQ_SKIP_FUZZ:-0}" != 1 ]; then
    FUZZ="$ROOT/build-fuzz"
    CC=clang cmake -S "$ROOT" -B "$FUZZ" -G Ninja -DMBQ_FUZZ=ON -DMBQ_SANITIZE=ON
    cmake --build "$FUZZ" --parallel "$(nproc)" --target fuzz_config fuzz_bq_json fuzz_encoder fuzz_binlog
    (cd "$FUZZ" && ctest -L fuzz --output-on-failure --no-tests=error --parallel 4) || rc=1
fi

cd "$BUILD"
# --no-tests=error: a selection that matches no test fails instead of passing.
ctest --output-on-failure --no-tests=error --parallel 2 "$@" || rc=$?
exit "$rc"
