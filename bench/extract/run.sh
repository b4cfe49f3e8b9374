#!/usr/bin/env bash
# Extraction benchmark (issue 4): `mbq extract` against `mariadb --quick
# --batch` and `mydumper -t 2` on the same table of the same server, in one
# run, as interleaved rounds.
#
#   bench/extract/run.sh [ROWS ...]        (default: 1000000 5000000)
#
# Environment: ROUNDS (default 7), BUILD (default build-bench-extract: a
# Release build made here), BUFFER_POOL (default 3G: InnoDB's buffer pool,
# large enough to hold the 5M-row table, so every tool reads from memory).
#
# What it does:
#  - builds mbq (Release, no sanitizers) and starts a fresh MariaDB only
#    (tools/services.sh with MBQ_SERVICES=mysql) under a temporary directory,
#    stopped again on exit;
#  - per size, creates table mbq_bench.bench_<ROWS> deterministically (bigint
#    unsigned PK, int, enum, decimal(12,2), varchar(200), json, datetime(6),
#    timestamp(6)) and reads it twice to warm the buffer pool;
#  - runs ROUNDS rounds; each round runs every tool once, the order rotating
#    from round to round so that no tool always follows the same neighbour:
#      mariadb --quick --batch -e 'SELECT * ...' > file
#      mydumper -t 2 (plain SQL files), the same followed by `sync` (its files
#        durable when it ends, as mbq's are: mbq fsyncs before it renames),
#        and mydumper -t 2 -c (gzip)
#      mbq extract --no-compress, and mbq extract (gzip level 1, the default)
#  - prints, per tool, the median and the minimum wall time, the peak RSS
#    (largest over the rounds), the output size, the ratios of the medians to
#    mariadb and to mydumper, and for mbq the range of its per-round ratio to
#    mydumper (both measured in the same round, seconds apart).
# Wall time and RSS come from GNU time. Each tool's output is deleted before
# its next run, and `sync` runs before every measurement.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=bench/table.sh
source "$ROOT/bench/table.sh"
BUILD="${BUILD:-$ROOT/build-bench-extract}"
ROUNDS="${ROUNDS:-7}"
BUFFER_POOL="${BUFFER_POOL:-3G}"
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(1000000 5000000)

die() {
    echo "bench/extract: $*" >&2
    exit 1
}
command -v mydumper >/dev/null || die "mydumper is missing (bash tools/install-deps.sh installs it)"
[ -x /usr/bin/time ] || die "GNU time is missing (bash tools/install-deps.sh installs it)"

cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DMBQ_TESTS=OFF >/dev/null
cmake --build "$BUILD" -j2 --target mbq >/dev/null
MBQ="$BUILD/mbq"

WORK="$(mktemp -d /tmp/mbq-bench-extract.XXXXXX)"
cleanup() {
    bash "$ROOT/tools/services.sh" stop "$WORK/svc" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
MBQ_SERVICES=mysql MBQ_MYSQL_BUFFER_POOL="$BUFFER_POOL" \
    bash "$ROOT/tools/services.sh" start "$WORK/svc" >&2
# shellcheck disable=SC1091
source "$WORK/svc/env"
HOST="$MBQ_TEST_MYSQL_HOST"
PORT="$MBQ_TEST_MYSQL_PORT"
export MYSQL_PWD="$MBQ_TEST_MYSQL_PASSWORD"
M=(mariadb --no-defaults -h "$HOST" -P "$PORT" -u root)
"${M[@]}" -e "CREATE DATABASE mbq_bench"

make_table() { # ROWS
    "${M[@]}" mbq_bench -e "$(bench_table_sql "bench_$1" "$1")"
}

# measure TAG ROUND CMD...: one line "TAG ROUND wall_s rss_kib" into results.
measure() {
    local tag=$1 round=$2
    shift 2
    sync
    /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >"$WORK/$tag.stdout" 2>"$WORK/$tag.stderr" || {
        echo "$tag failed:" >&2
        cat "$WORK/$tag.stderr" >&2
        exit 1
    }
    echo "$tag $round $(cat "$WORK/time")" >>"$WORK/results"
}

run_tool() { # TAG ROUND ROWS
    local tag=$1 round=$2 n=$3
    rm -rf "$WORK/out"
    mkdir -p "$WORK/out"
    case $tag in
    mariadb)
        measure "$tag" "$round" sh -c "mariadb --no-defaults -h '$HOST' -P '$PORT' -u root \
            --quick --batch -e 'SELECT * FROM mbq_bench.bench_$n' > '$WORK/out/t.tsv'" ;;
    mydumper | mydumper_gz)
        local z=()
        [ "$tag" = mydumper_gz ] && z=(-c)
        measure "$tag" "$round" mydumper -h "$HOST" -P "$PORT" -u root -p "$MYSQL_PWD" -t 2 \
            -B mbq_bench -T "bench_$n" -o "$WORK/out/dump" --no-schemas --trx-consistency-only \
            "${z[@]}" ;;
    mydumper_sync) # its files on disk when it ends, as mbq's (fsync) are
        measure "$tag" "$round" sh -c "mydumper -h '$HOST' -P '$PORT' -u root -p \"\$MYSQL_PWD\" \
            -t 2 -B mbq_bench -T 'bench_$n' -o '$WORK/out/dump' --no-schemas \
            --trx-consistency-only && sync" ;;
    mbq)
        measure "$tag" "$round" "$MBQ" extract --config "$WORK/mbq.yml" --table "bench_$n" \
            --out "$WORK/out/t.json" --no-compress
        grep -q "^rows *$n\$" "$WORK/mbq.stdout" || die "mbq extracted the wrong row count" ;;
    mbq_gz)
        measure "$tag" "$round" "$MBQ" extract --config "$WORK/mbq-gz.yml" --table "bench_$n" \
            --out "$WORK/out/t.json.gz"
        grep -q "^rows *$n\$" "$WORK/mbq_gz.stdout" || die "mbq extracted the wrong row count" ;;
    esac
    echo "$tag $(du -sb "$WORK/out" | cut -f1)" >>"$WORK/sizes"
}

TOOLS=(mariadb mydumper mydumper_sync mydumper_gz mbq mbq_gz)
for n in "${SIZES[@]}"; do
    echo "bench/extract: creating bench_$n" >&2
    make_table "$n"
    cat >"$WORK/mbq.yml" <<YAML
tables:
  - name: bench_$n
    primary_key: id
mysql:
  host: $HOST
  port: $PORT
  user: root
  password: \${MYSQL_PWD}
  database: mbq_bench
bigquery:
  project_id: mbq-bench
  dataset: mbq_bench
  compression: none
state:
  dir: $WORK/state
YAML
    grep -v 'compression: none' "$WORK/mbq.yml" >"$WORK/mbq-gz.yml" # gzip: the default
    for _ in 1 2; do
        "${M[@]}" --quick --batch -e "SELECT * FROM mbq_bench.bench_$n" >/dev/null
    done
    "${M[@]}" -e "ANALYZE TABLE mbq_bench.bench_$n" >/dev/null # fresh sizes below
    read -r data_mb pool_mb < <("${M[@]}" -N -e "SELECT ROUND((DATA_LENGTH + INDEX_LENGTH) / 1048576),
        ROUND(@@innodb_buffer_pool_size / 1048576) FROM information_schema.TABLES
        WHERE TABLE_SCHEMA = 'mbq_bench' AND TABLE_NAME = 'bench_$n'")
    echo "bench/extract: bench_$n is $data_mb MiB, buffer pool $pool_mb MiB; $ROUNDS rounds" >&2
    : >"$WORK/results"
    : >"$WORK/sizes"
    for ((r = 0; r < ROUNDS; r++)); do
        for ((k = 0; k < ${#TOOLS[@]}; k++)); do
            run_tool "${TOOLS[$(((k + r) % ${#TOOLS[@]}))]}" "$r" "$n"
        done
    done
    python3 - "$n" "$WORK/results" "$WORK/sizes" <<'PY'
import statistics, sys
n, results, sizes = sys.argv[1], sys.argv[2], sys.argv[3]
wall, rss, by_round, size = {}, {}, {}, {}
for line in open(results):
    tag, rnd, w, k = line.split()
    wall.setdefault(tag, []).append(float(w))
    rss[tag] = max(rss.get(tag, 0), int(k))
    by_round.setdefault(rnd, {})[tag] = float(w)
for line in open(sizes):
    tag, b = line.split()
    size[tag] = int(b)
label = {"mariadb": "mariadb --quick --batch", "mydumper": "mydumper -t 2",
         "mydumper_sync": "mydumper -t 2, then sync", "mydumper_gz": "mydumper -t 2 -c (gzip)", "mbq": "**mbq extract --no-compress**",
         "mbq_gz": "**mbq extract** (gzip -1)"}
med = {t: statistics.median(v) for t, v in wall.items()}
def per_round(tag, base):
    r = [v[tag] / v[base] for v in by_round.values() if v.get(base)]
    return "%.2f-%.2f" % (min(r), max(r))
print("| rows | tool | median wall s | min wall s | peak RSS MiB | output MB "
      "| median / mariadb | median / mydumper | per round / mydumper |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
for t in ["mariadb", "mydumper", "mydumper_sync", "mydumper_gz", "mbq", "mbq_gz"]:
    base = "mydumper_gz" if t == "mbq_gz" else "mydumper"
    vs = "%.2f" % (med[t] / med["mydumper"])
    if t == "mbq_gz":
        vs += " (%.2f of -c)" % (med[t] / med["mydumper_gz"])
    print("| %s | %s | %.2f | %.2f | %.1f | %.0f | %.2f | %s | %s |" % (
        format(int(n), ","), label[t], med[t], min(wall[t]), rss[t] / 1024, size[t] / 1e6,
        med[t] / med["mariadb"], vs,
        per_round(t, base) + (" (of -c)" if t == "mbq_gz" else "") if t.startswith("mbq") else "-"))
print()
print("Wall seconds per round (rounds in order; the tools' order rotates):")
print()
for t in ["mariadb", "mydumper", "mydumper_sync", "mydumper_gz", "mbq", "mbq_gz"]:
    print("- %s: %s" % (label[t].replace("*", ""), " ".join("%.2f" % w for w in wall[t])))
print()
PY
    "${M[@]}" -e "DROP TABLE mbq_bench.bench_$n"
done
