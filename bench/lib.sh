# Sourced by the benchmarks (bench/*.sh): a Release build, fresh local
# services, and GNU time measurements. The caller sets ROOT (the checkout)
# and WORK (its scratch directory) first, and calls bench_cleanup from its
# EXIT trap.
#
#   bench_build                 Release build of mbq into $BUILD (default
#                               build-bench/, no sanitizers); sets MBQ
#   bench_services NAME         fresh MariaDB + emulator under $WORK/NAME (the
#                               ones started before are stopped); sets SVC,
#                               MYSQL_PWD, M (the mariadb client), BQ and UP
#                               (the emulator's REST and upload roots)
#   bench_fresh_emulator        a new, empty emulator on the same ports
#   measure NAME CMD...         run CMD under GNU time after a `sync`: sets
#                               NAME_wall (s), NAME_cpu (user+sys s) and
#                               NAME_rss (KiB); its output in $WORK/NAME.out/.err
#   median                      the median of the numbers on stdin
#   bench_cleanup               stop the services; remove $WORK unless BENCH_KEEP=1

BUILD="${BUILD:-$ROOT/build-bench}"
MBQ="$BUILD/mbq"
SVC=""

bench_note() { echo "bench/$(basename "$0" .sh): $*" >&2; }

bench_build() {
    cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMBQ_TESTS=OFF \
        -DMBQ_SANITIZE=OFF >&2
    cmake --build "$BUILD" --parallel "$(nproc)" >&2
}

bench_services() {
    [ -n "$SVC" ] && bash "$ROOT/tools/services.sh" stop "$SVC" >/dev/null 2>&1 || true
    SVC="$WORK/$1"
    unset MYSQL_PWD # services.sh sets the root password up itself
    bash "$ROOT/tools/services.sh" start "$SVC" >&2
    # shellcheck disable=SC1091
    source "$SVC/env"
    export MYSQL_PWD="$MBQ_TEST_MYSQL_PASSWORD"
    M=(mariadb --no-defaults -h 127.0.0.1 -P "$MBQ_TEST_MYSQL_PORT" -u root)
    BQ="http://$BIGQUERY_EMULATOR_HOST/bigquery/v2/projects/$MBQ_TEST_BQ_PROJECT"
    UP="http://$BIGQUERY_EMULATOR_HOST/upload/bigquery/v2/projects/$MBQ_TEST_BQ_PROJECT"
}

bench_fresh_emulator() {
    bash "$ROOT/tools/services.sh" stop-bq "$SVC" >&2
    rm -f "$SVC/bq/emulator.db"
    bash "$ROOT/tools/services.sh" start-bq "$SVC" >&2
}

measure() {
    local name=$1
    shift
    sync
    if ! /usr/bin/time -f "%e %U %S %M" -o "$WORK/$name.time" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"; then
        bench_note "$name failed:"
        tail -n 30 "$WORK/$name.err" >&2
        exit 1
    fi
    local w u s r
    read -r w u s r <"$WORK/$name.time"
    eval "${name}_wall=$w ${name}_cpu=$(awk -v u="$u" -v s="$s" 'BEGIN{printf "%.2f", u+s}') ${name}_rss=$r"
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

bench_cleanup() {
    [ -n "$SVC" ] && bash "$ROOT/tools/services.sh" stop "$SVC" >/dev/null 2>&1 || true
    if [ "${BENCH_KEEP:-0}" = 1 ]; then bench_note "logs kept in $WORK"; else rm -rf "$WORK"; fi
}
