#!/usr/bin/env bash
# tests/with-services.sh DIR cmd...: run an integration test with the
# addresses of the services that `tools/services.sh start DIR` started (the
# ctest fixture `services.start`). Without DIR/env the command runs anyway and
# the test skips (exit 77) or, under MBQ_REQUIRE_SERVICES=1, fails, through
# test_require_env() in tests/test.h.
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: with-services.sh SERVICES_DIR command [args...]" >&2
    exit 2
fi
dir="$1"
shift
if [ -f "$dir/env" ]; then
    # shellcheck disable=SC1091
    . "$dir/env"
fi
exec "$@"
