#!/usr/bin/env bash
# Extraction benchmark (issue 4): `mbq extract` against `mariadb --quick
# --batch` and `mydumper -t 2` on the same table, same server, one run.
#
#   bench/extract/run.sh [ROWS ...]     (default: 1000000 5000000)
#
# Needs: a Release build of mbq (BUILD, default build-my-rel), a MariaDB whose
# address is in the MBQ_TEST_MYSQL_* variables (tools/services.sh env DIR),
# mydumper and GNU time. Creates database mbq_bench, table bench_<ROWS>
# deterministically (bigint unsigned PK, int, enum, decimal(12,2),
# varchar(200), json, datetime(6), timestamp(6)) and prints, per size, wall
# time, peak RSS and the ratios mbq/mariadb and mbq/mydumper.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${BUILD:-$ROOT/build-my-rel}"
MBQ="$BUILD/mbq"
: "${MBQ_TEST_MYSQL_PORT:?set the MBQ_TEST_MYSQL_* variables (tools/services.sh env DIR)}"
HOST="${MBQ_TEST_MYSQL_HOST:-127.0.0.1}"
USER_="${MBQ_TEST_MYSQL_USER:-root}"
export MYSQL_PWD="${MBQ_TEST_MYSQL_PASSWORD:-}"
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(1000000 5000000)
WORK="$(mktemp -d /tmp/mbq-bench-extract.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
M=(mariadb -h "$HOST" -P "$MBQ_TEST_MYSQL_PORT" -u "$USER_")

"${M[@]}" -e "CREATE DATABASE IF NOT EXISTS mbq_bench"

make_table() { # ROWS: deterministic content, built once per size
    local n=$1 t=bench_$1
    if [ "$("${M[@]}" -N -e "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA='mbq_bench' AND TABLE_NAME='$t'")" = 1 ] &&
       [ "$("${M[@]}" -N -e "SELECT COUNT(*) FROM mbq_bench.$t")" = "$n" ]; then
        return
    fi
    "${M[@]}" mbq_bench -e "DROP TABLE IF EXISTS $t;
      CREATE TABLE $t (id BIGINT UNSIGNED NOT NULL PRIMARY KEY, qty INT NOT NULL,
        status ENUM('new','paid','shipped','cancelled') NOT NULL, price DECIMAL(12,2) NOT NULL,
        note VARCHAR(200) NOT NULL, attrs JSON, created_at DATETIME(6) NOT NULL,
        updated_at TIMESTAMP(6) NOT NULL DEFAULT '2000-01-01 00:00:00', KEY (updated_at));
      SET time_zone = '+00:00';
      INSERT INTO $t SELECT seq, seq % 1000, 1 + seq % 4, (seq % 100000) / 100,
        CONCAT('note ', seq, ' ', REPEAT(CHAR(97 + seq % 26), 20 + seq % 100)),
        JSON_OBJECT('k', seq % 17, 'tags', JSON_ARRAY('a', seq % 5), 's', CONCAT('v', seq)),
        '2024-01-01' + INTERVAL seq SECOND + INTERVAL (seq % 1000000) MICROSECOND,
        '2024-06-01' + INTERVAL seq SECOND + INTERVAL (seq % 999999) MICROSECOND
      FROM seq_1_to_$n;"
}

# measure NAME CMD...: wall seconds and max RSS (KiB) from GNU time.
measure() {
    local name=$1
    shift
    sync
    /usr/bin/time -f "%e %M" -o "$WORK/$name.time" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || {
        echo "$name failed:" >&2
        cat "$WORK/$name.err" >&2
        exit 1
    }
    read -r wall rss <"$WORK/$name.time"
    eval "${name}_wall=$wall ${name}_rss=$rss"
}

printf '| rows | tool | wall s | peak RSS MiB | output MB | wall / mariadb | wall / mydumper |\n|---:|---|---:|---:|---:|---:|---:|\n'
for n in "${SIZES[@]}"; do
    make_table "$n"
    cat >"$WORK/mbq.yml" <<YAML
tables:
  - name: bench_$n
    primary_key: id
mysql:
  host: $HOST
  port: $MBQ_TEST_MYSQL_PORT
  user: $USER_
  password: \${MYSQL_PWD}
  database: mbq_bench
bigquery:
  project_id: mbq-bench
  dataset: mbq_bench
  compression: none
state:
  dir: $WORK/state
YAML
    # the same with gzip (bigquery.compression's default)
    grep -v 'compression: none' "$WORK/mbq.yml" >"$WORK/mbq-gz.yml"
    rm -rf "$WORK/dump"
    # warm the buffer pool once so that no tool pays the first read
    "${M[@]}" --quick --batch -e "SELECT * FROM mbq_bench.bench_$n" >/dev/null
    measure mariadb sh -c "mariadb -h '$HOST' -P '$MBQ_TEST_MYSQL_PORT' -u '$USER_' --quick --batch -e 'SELECT * FROM mbq_bench.bench_$n' > '$WORK/mariadb.tsv'"
    measure mydumper mydumper -h "$HOST" -P "$MBQ_TEST_MYSQL_PORT" -u "$USER_" -p "$MYSQL_PWD" -t 2 \
        -B mbq_bench -T "bench_$n" -o "$WORK/dump" --no-schemas --trx-consistency-only
    measure mbq "$MBQ" extract --config "$WORK/mbq.yml" --table "bench_$n" --out "$WORK/mbq.json" --no-compress
    measure mbqgz "$MBQ" extract --config "$WORK/mbq-gz.yml" --table "bench_$n" --out "$WORK/mbq.json.gz"
    grep -q "^rows *$n\$" "$WORK/mbq.out" || { echo "mbq extracted the wrong row count" >&2; cat "$WORK/mbq.out" >&2; exit 1; }
    size() { du -sm "$1" | cut -f1; }
    ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
    mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
    row() { # NAME LABEL OUTPUT
        local w r
        w=$(eval echo "\$${1}_wall")
        r=$(eval echo "\$${1}_rss")
        printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$n" "$2" "$w" "$(mib "$r")" "$(size "$3")" \
            "$(ratio "$w" "$mariadb_wall")" "$(ratio "$w" "$mydumper_wall")"
    }
    row mariadb 'mariadb --quick --batch' "$WORK/mariadb.tsv"
    row mydumper 'mydumper -t 2' "$WORK/dump"
    row mbq '**mbq extract --no-compress**' "$WORK/mbq.json"
    row mbqgz 'mbq extract (gzip -1)' "$WORK/mbq.json.gz"
    rm -rf "$WORK/dump" "$WORK"/mbq.json* "$WORK/mariadb.tsv"
done
