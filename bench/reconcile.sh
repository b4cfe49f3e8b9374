#!/usr/bin/env bash
# Benchmark: reconcile 1M keys (deletes reach BigQuery), wall time and the
# client's max RSS, on fresh local services (MariaDB + goccy/bigquery-emulator).
#
#   bash bench/reconcile.sh                      # 1,000,000 keys
#   BENCH_KEYS=200000 bash bench/reconcile.sh    # a quick look
#   BENCH_CHUNK=100000 ...                       # keys per chunk (default 1,000,000)
#   BENCH_APPLY=1 BENCH_KEYS=20000 ...           # also step 2 (see below)
#
# The source table has BENCH_KEYS rows (BIGINT key, a short string, a
# DATETIME(6) cursor). The target holds only BENCH_TARGET (default 1,000) of
# them: the first sync loads that many, the other rows are then inserted
# below the committed cursor (a sync never reads them; only the key read
# does). 1% of the target's keys are then deleted in MySQL. Two timed runs
# (GNU time: wall, user+sys CPU, max RSS):
#   1. `mbq sync` killed (MBQ_FAULT) when the reconciliation enters apply:
#      mbq's own work, the key read of every key and the staging loads;
#   2. `mbq sync` again: it resumes the reconciliation at apply (the count
#      and the one statement, which are BigQuery's work: on the emulator a
#      MERGE costs target rows x staged rows, README divergence 11, hence
#      the small target) and checks the target lost exactly the deleted rows.
#      The emulator runs that join row by row: a 1,000-row target against
#      100,000 keys outlasts its 5-minute transaction limit (measured), so
#      step 2 is off by default (BENCH_APPLY=1 for small sizes); on BigQuery
#      it is one MERGE, priced by the bytes of the two tables.
# Prints one Markdown table.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
KEYS="${BENCH_KEYS:-1000000}"
TARGET="${BENCH_TARGET:-1000}"
CHUNK="${BENCH_CHUNK:-1000000}"
WORK="$(mktemp -d /tmp/mbq-bench-rec.XXXXXX)"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

bench_build
bench_services svc

"${M[@]}" -e "CREATE DATABASE bench; CREATE TABLE bench.rk (id BIGINT NOT NULL PRIMARY KEY,
  val VARCHAR(20), updated_at DATETIME(6) NOT NULL)"
"${M[@]}" bench -e "INSERT INTO rk SELECT seq, CONCAT('v', seq),
  '2024-06-01' + INTERVAL seq SECOND FROM seq_1_to_${TARGET}"

cat >"$WORK/mbq.yml" <<YAML
tables:
  - name: rk
    primary_key: id
    updated_column: updated_at
    deletes: hard
    reconcile_every: 0s
    max_delete_fraction: 0.5
    reconcile_chunk_rows: $CHUNK
mysql:
  host: 127.0.0.1
  port: $MBQ_TEST_MYSQL_PORT
  user: root
  password: \${MYSQL_PWD}
  database: bench
bigquery:
  endpoint: http://$BIGQUERY_EMULATOR_HOST
  project_id: $MBQ_TEST_BQ_PROJECT
  dataset: bench
  compression: none
  upload_chunk_size: 0
state:
  dir: $WORK/state
YAML

echo "bench: first sync of $TARGET rows (and a first reconciliation)" >&2
"$MBQ" sync --config "$WORK/mbq.yml" 2>"$WORK/first.err"
# The rest of the keys, below the committed cursor: never synced, only read
# by the reconciliation. Then 1% of the target's keys deleted.
"${M[@]}" bench -e "INSERT INTO rk SELECT seq, CONCAT('v', seq),
  '2024-01-01' FROM seq_$((TARGET + 1))_to_${KEYS}"
DELETED=$((TARGET / 100))
"${M[@]}" bench -e "DELETE FROM rk WHERE id % 100 = 7 AND id <= $TARGET LIMIT $DELETED"
DELETED=$(( TARGET - $("${M[@]}" -N bench -e "SELECT COUNT(*) FROM rk WHERE id <= $TARGET") ))
SRC=$("${M[@]}" -N bench -e "SELECT COUNT(*) FROM rk")

echo "bench: reconciliation of $SRC keys against a $TARGET-row target" >&2
timed() { # NAME ENV... -- runs mbq sync under GNU time; a SIGKILL (the fault point) is expected
    local name=$1
    shift
    sync
    env "$@" /usr/bin/time -f "%e %U %S %M" -o "$WORK/$name.time" \
        "$MBQ" sync --config "$WORK/mbq.yml" 2>"$WORK/$name.err" || true
    tail -n 1 "$WORK/$name.time"
}
read -r kw ku ks krss < <(timed keys MBQ_FAULT=reconcile.apply.enter)
grep -q "staged $SRC keys" "$WORK/keys.err" || { cat "$WORK/keys.err" >&2; exit 1; }
mib() { awk -v r="$1" 'BEGIN{printf "%.1f", r/1024}'; }
cpu() { awk -v u="$1" -v s="$2" 'BEGIN{printf "%.2f", u+s}'; }
chunks=$(( (SRC + CHUNK) / CHUNK ))
row1() {
    printf '| key read + %d staging load(s) (mbq) | %s | %s | %s | - | %s | %s | %s |\n' "$chunks" \
        "$SRC" "$CHUNK" "$TARGET" "$kw" "$(cpu "$ku" "$ks")" "$(mib "$krss")"
}
header() {
    echo
    echo "| step | keys | chunk | target rows | deleted | wall s | client CPU s | client max RSS MiB |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
}
if [ "${BENCH_APPLY:-0}" = 0 ]; then
    header
    row1
    exit 0
fi
read -r aw au as arss < <(timed apply BENCH_PHASE=apply)
grep -q "deleted $DELETED of $TARGET rows" "$WORK/apply.err" || {
    echo "bench: the reconciliation did not delete $DELETED of $TARGET rows:" >&2
    cat "$WORK/apply.err" >&2
    exit 1
}
left=$(curl -s -X POST -H 'Content-Type: application/json' \
    "http://$BIGQUERY_EMULATOR_HOST/bigquery/v2/projects/$MBQ_TEST_BQ_PROJECT/queries" \
    -d '{"query":"SELECT COUNT(*) FROM bench.rk","useLegacySql":false}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["rows"][0]["f"][0]["v"])')
[ "$left" = $((TARGET - DELETED)) ] || { echo "bench: target holds $left rows" >&2; exit 1; }
header
row1
printf '| resume at apply: count + statement (emulator) | %s | %s | %s | %s | %s | %s | %s |\n' "$SRC" \
    "$CHUNK" "$TARGET" "$DELETED" "$aw" "$(cpu "$au" "$as")" "$(mib "$arss")"
