#!/usr/bin/env bash
# Change data capture benchmark: `mbq cdc` following a steady write load on
# fresh local services (MariaDB with a ROW binlog + goccy/bigquery-emulator).
#
#   bash bench/cdc.sh                         # ~6-8 min on a 2-vCPU VM
#   BENCH_CDC_SECONDS=60 bash bench/cdc.sh    # a shorter load (quick look)
#
# Knobs: BENCH_CDC_RATE (row changes/s, default 100), BENCH_CDC_SECONDS (the
# load's length, default 120), BENCH_CDC_TXN_ROWS (row changes per
# transaction, default 10: 3 inserts, 4 updates, 3 deletes), BENCH_CDC_ROWS
# (rows before the load, default 200), BENCH_CDC_BULK_ROWS (rows of the
# decode+encode comparison, default 5000), BENCH_CDC_DELAY (max_batch_delay,
# default 5s).
#
# The emulator bounds the figures, not mbq: it runs a MERGE (and the
# counts before it) as a nested loop over target x batch rows, so its apply
# time grows with the target's size times the batch's; the defaults keep a
# small target so that the load reaches a steady state. The batch apply
# times are reported from the journal, next to the client's CPU per row.
#
# What it does:
#  1. A Release build of mbq into build-bench/ (no sanitizers).
#  2. bench_cdc (bench/table.sh's shape) with BENCH_CDC_ROWS rows, `mode: cdc`.
#     `mbq cdc` starts (snapshot, then follows) under GNU time; once the table
#     streams, bench/cdc_load.py writes BENCH_CDC_RATE row changes a second
#     in multi-row transactions (inserts, updates, deletes: the table keeps
#     its size) for
#     BENCH_CDC_SECONDS, and samples the follower's journal once a second
#     (cdc_stream.lag_ms: how far BigQuery is behind the source; the rows
#     applied). When everything written is applied and the lag is 0, SIGTERM.
#     Reported: row changes applied per second end to end (written / time
#     from the load's start to caught up), lag p50/p95/max over the load
#     (after a 15 s warm-up), the follower's CPU (user+sys) and max RSS; then
#     BigQuery must equal MySQL (count, sum of qty, sum of price, max id).
#  3. One batch: BENCH_CDC_BULK_ROWS rows inserted (1,000 per transaction)
#     while the follower is stopped, then `mbq cdc --once` applies them
#     (wall: mostly the emulator's load and MERGE; client CPU per row: binlog
#     decode, NDJSON encode, the staged file, its upload, the job polls and
#     the journal), next to `mbq extract --no-compress` of the table.
#  4. decode+encode alone: tests/test_binlog_speed.c in a Release build
#     (build-bench-t/) reads BENCH_CDC_SPEED_ROWS (default 100000) rows of
#     the same shape back from the binlog, encoding every value as the
#     batch files do, against the snapshot path's extract of the same
#     rows: client CPU per row, one process.
# Prints one Markdown table; the logs stay in $WORK when BENCH_KEEP=1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=bench/table.sh
source "$ROOT/bench/table.sh"
RATE="${BENCH_CDC_RATE:-100}"
SECS="${BENCH_CDC_SECONDS:-120}"
TXN="${BENCH_CDC_TXN_ROWS:-10}"
INIT="${BENCH_CDC_ROWS:-200}"
BULK="${BENCH_CDC_BULK_ROWS:-5000}"
SPEED_ROWS="${BENCH_CDC_SPEED_ROWS:-100000}"
DELAY="${BENCH_CDC_DELAY:-5s}"
WORK="$(mktemp -d /tmp/mbq-bench-cdc.XXXXXX)"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
TPID=""

cleanup() {
    [ -n "$TPID" ] && kill "$TPID" 2>/dev/null || true
    bench_cleanup
}
trap cleanup EXIT
trap 'exit 130' INT TERM
note() { echo "bench: $*" >&2; }

bench_build
bench_services svc
"${M[@]}" -e "CREATE DATABASE IF NOT EXISTS bench"
"${M[@]}" bench -e "$(bench_table_sql bench_cdc "$INIT")"

CFG="$WORK/cdc.yml"
STATE="$WORK/state"
cat >"$CFG" <<YAML
tables:
  - name: bench_cdc
    primary_key: id
    mode: cdc
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
  dir: $STATE
cdc:
  server_id: 4000000123
  max_batch_delay: $DELAY
  heartbeat: 1s
log:
  level: warn
YAML

jq_state() { # SQL -> first column of the first row, from the journal
    python3 - "$STATE/state.db" "$1" <<'PY'
import sqlite3, sys
try:
    c = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True, timeout=2)
    r = c.execute(sys.argv[2]).fetchone()
    print(r[0] if r and r[0] is not None else "")
except Exception:
    print("")
PY
}

bq_one() { # SQL -> the first row's values, tab-separated
    curl -sS -f -H 'Content-Type: application/json' \
        -d "$(python3 -c 'import json,sys; print(json.dumps({"query": sys.argv[1], "useLegacySql": False}))' "$1")" \
        "$BQ/queries" | python3 -c 'import json,sys; print("\t".join(c["v"] or "" for c in json.load(sys.stdin)["rows"][0]["f"]))'
}

# ---- 1. follow a steady load ------------------------------------------------
note "mbq cdc: snapshot of $INIT rows, then follow"
/usr/bin/time -f "%e %U %S %M" -o "$WORK/follow.time" "$MBQ" cdc --config "$CFG" \
    >"$WORK/follow.out" 2>"$WORK/follow.err" &
TPID=$!
t_start=$(date +%s.%N)
for _ in $(seq 1 1200); do
    [ "$(jq_state "SELECT state FROM cdc_tables WHERE table_name = 'bench_cdc'")" = streaming ] &&
        [ "$(jq_state "SELECT status FROM cdc_stream")" = running ] && break
    kill -0 "$TPID" 2>/dev/null || { tail -20 "$WORK/follow.err" >&2; exit 1; }
    sleep 0.5
done
t_streaming=$(date +%s.%N)
note "streaming after $(awk -v a="$t_start" -v b="$t_streaming" 'BEGIN{printf "%.1f", b-a}') s; load: $RATE row changes/s for $SECS s"

python3 bench/cdc_load.py "$STATE/state.db" "$RATE" "$SECS" "$TXN" $((INIT + 1)) "$INIT" \
    "$WORK/load.json" -- "${M[@]}" bench
MPID=$(pgrep -P "$TPID" -x mbq || true)
[ -n "$MPID" ] && kill -TERM "$MPID"
wait "$TPID" || { note "mbq cdc exited non-zero"; tail -20 "$WORK/follow.err" >&2; exit 1; }
TPID=""
read -r f_wall f_user f_sys f_rss <"$WORK/follow.time"

read -r my_n my_qty my_price my_max < <("${M[@]}" -N bench -e \
    "SELECT COUNT(*), SUM(qty), SUM(price), MAX(id) FROM bench_cdc")
IFS=$'\t' read -r bq_n bq_qty bq_price bq_max < <(bq_one \
    "SELECT COUNT(*), SUM(qty), CAST(SUM(price) AS STRING), MAX(id) FROM bench.bench_cdc")
equal=yes
[ "$my_n $my_qty $my_max" = "$bq_n $bq_qty $bq_max" ] || equal=no
awk -v a="$my_price" -v b="$bq_price" 'BEGIN{exit (a+0 == b+0) ? 0 : 1}' || equal=no
note "MySQL: $my_n rows, qty $my_qty, price $my_price, max id $my_max; BigQuery: $bq_n, $bq_qty, $bq_price, $bq_max"

read -r written applied_ps write_ps lag50 lag95 lagmax catchup < <(python3 - "$WORK/load.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
c = d["counts"]
written = c["I"] + c["U"] + c["D"]
t0, end = d["t0"], d["written_end"]
lags = sorted(s["lag_ms"] for s in d["samples"]
              if "lag_ms" in s and s["lag_ms"] is not None and t0 + 15 <= s["t"] <= end)
def pct(p):
    return lags[min(len(lags) - 1, int(round(p / 100.0 * (len(lags) - 1))))] / 1000.0 if lags else -1
up = d["caught_up_at"]
print(written, "%.0f" % (written / (up - t0)) if up else "-", "%.0f" % (written / d["write_seconds"]),
      "%.1f" % pct(50), "%.1f" % pct(95), "%.1f" % (lags[-1] / 1000.0 if lags else -1),
      "%.1f" % (up - end) if up else "-")
PY
)
f_cpu=$(awk -v u="$f_user" -v s="$f_sys" 'BEGIN{printf "%.1f", u+s}')
f_us=$(awk -v u="$f_user" -v s="$f_sys" -v n="$written" 'BEGIN{printf "%.0f", (u+s)*1e6/n}')
# Each batch's rows and its apply time (closed -> committed: load, the
# last-change table, the MERGE, on the emulator).
read -r n_batches rows_p50 apply_p50 apply_p95 < <(python3 - "$STATE/state.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
b = c.execute("SELECT rows, committed_ms - closed_ms FROM cdc_batches WHERE state = 'committed' "
              "ORDER BY batch_id").fetchall()
rows = sorted(r for r, _ in b)
ap = sorted(a for _, a in b)
p = lambda v, q: v[min(len(v) - 1, int(round(q * (len(v) - 1))))] if v else 0
print(len(b), p(rows, .5), "%.1f" % (p(ap, .5) / 1000.0), "%.1f" % (p(ap, .95) / 1000.0))
PY
)

# ---- 2. decode+encode per row -------------------------------------------------
note "decode+encode: $BULK rows inserted while the follower is stopped, then mbq cdc --once"
for ((i = 0; i < BULK / 1000; i++)); do
    echo "INSERT INTO bench_cdc SELECT $my_max + $i * 1000 + seq, seq % 1000, 1 + seq % 4,
      (seq % 100000) / 100, CONCAT('note ', seq, ' ', REPEAT(CHAR(97 + seq % 26), 20 + seq % 100)),
      JSON_OBJECT('k', seq % 17, 'tags', JSON_ARRAY('a', seq % 5), 's', CONCAT('v', seq)),
      '2024-01-01' + INTERVAL seq SECOND, '2024-06-01' + INTERVAL seq SECOND FROM seq_1_to_1000;"
done | "${M[@]}" bench
/usr/bin/time -f "%e %U %S %M" -o "$WORK/once.time" "$MBQ" cdc --config "$CFG" --once \
    >"$WORK/once.out" 2>"$WORK/once.err" || { tail -20 "$WORK/once.err" >&2; exit 1; }
read -r o_wall o_user o_sys o_rss <"$WORK/once.time"
n_all=$("${M[@]}" -N bench -e "SELECT COUNT(*) FROM bench_cdc")
/usr/bin/time -f "%e %U %S %M" -o "$WORK/x.time" "$MBQ" extract --config "$CFG" --table bench_cdc \
    --out "$WORK/x.ndjson" --no-compress >"$WORK/x.out" 2>"$WORK/x.err" || { tail -20 "$WORK/x.err" >&2; exit 1; }
read -r x_wall x_user x_sys x_rss <"$WORK/x.time"
note "decode+encode alone: test_binlog_speed, $SPEED_ROWS rows (Release build)"
cmake -S . -B "$ROOT/build-bench-t" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMBQ_TESTS=ON \
    -DMBQ_SANITIZE=OFF >&2
cmake --build "$ROOT/build-bench-t" --target test_binlog_speed >&2
MBQ_BINLOG_SPEED_ROWS="$SPEED_ROWS" "$ROOT/build-bench-t/tests/test_binlog_speed" >"$WORK/speed.out" 2>&1 ||
    { cat "$WORK/speed.out" >&2; exit 1; }
# "  N rows: binlog decode+encode X s CPU (R rows/s, U us/row); extract (plain) ... U us/row)"
read -r s_bl s_x < <(sed -n 's/.*rows\/s, \([0-9.]*\) us\/row); extract.*rows\/s, \([0-9.]*\) us\/row).*/\1 \2/p' "$WORK/speed.out")
o_us=$(awk -v u="$o_user" -v s="$o_sys" -v n="$BULK" 'BEGIN{printf "%.1f", (u+s)*1e6/n}')
x_us=$(awk -v u="$x_user" -v s="$x_sys" -v n="$n_all" 'BEGIN{printf "%.1f", (u+s)*1e6/n}')

cat <<EOF

| measure | value |
|---|---|
| steady load written | $RATE row changes/s for $SECS s in transactions of $TXN (30% insert, 40% update, 30% delete) on a table of $INIT rows: $written row changes, $write_ps/s achieved |
| applied end to end | $applied_ps row changes/s (load start to caught up; caught up $catchup s after the last write) |
| lag p50 / p95 / max | $lag50 s / $lag95 s / $lagmax s (max_batch_delay $DELAY, sampled each second from the journal) |
| batches | $n_batches committed; rows per batch p50 $rows_p50; apply time (load + MERGE on the emulator) p50 $apply_p50 s, p95 $apply_p95 s |
| mbq cdc (follow) CPU, max RSS | $f_cpu s user+sys over $f_wall s wall ($f_us µs per row change, snapshot included), $(awk -v k="$f_rss" 'BEGIN{printf "%.1f", k/1024}') MiB |
| BigQuery equals MySQL after the load | $equal ($bq_n rows) |
| one batch: mbq cdc --once of $BULK inserted rows | $o_wall s wall (the emulator's load and MERGE), client $o_us µs CPU/row (decode, encode, file, upload, job polls, journal), $(awk -v k="$o_rss" 'BEGIN{printf "%.1f", k/1024}') MiB |
| mbq extract of the table ($n_all rows) | $x_us µs CPU/row ($x_wall s wall, $(awk -v k="$x_rss" 'BEGIN{printf "%.1f", k/1024}') MiB) |
| decode+encode alone, $SPEED_ROWS rows (test_binlog_speed, Release) | binlog decode + NDJSON encode ${s_bl:-?} µs CPU/row; the snapshot path's extract ${s_x:-?} µs CPU/row |
EOF
[ "$equal" = yes ] || { note "BigQuery differs from MySQL"; exit 1; }
