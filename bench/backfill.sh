#!/usr/bin/env bash
# Chunked backfill benchmark: huge first syncs read in primary-key chunks.
#
#   bash bench/backfill.sh                      # 10M rows extract, 1M rows sync
#   BENCH_ROWS=1000000 BENCH_SYNC_ROWS=200000 bash bench/backfill.sh   # quick look
#   BENCH_PARTS=C BENCH_SYNC_ROWS=100000 bash bench/backfill.sh         # only part C
#   (BENCH_PARTS: A = extraction and undo history, C = first sync; BUILD: build dir)
#
# On fresh local services (tools/services.sh: MariaDB + the emulator), with the
# table of bench/table.sh (bigint unsigned PK, int, enum, decimal, varchar(200),
# json, datetime(6), timestamp(6)):
#  A. Extraction of BENCH_ROWS (default 10,000,000) rows, ROUNDS (default 3)
#     interleaved rounds on the warm server, timed by GNU time (wall, client
#     user+sys CPU, max RSS):
#       mydumper -t 2 --rows CHUNK --trx-consistency-only (plain SQL files)
#       mbq extract --chunk-rows CHUNK --jobs 2 --no-compress (a backfill's
#         read side: key walk, then 2 connections, a snapshot per chunk)
#       mbq extract --no-compress (today's single snapshot, for reference)
#  B. The server's undo history ("History list length" of SHOW ENGINE INNODB
#     STATUS, sampled every 0.5 s) while a writer updates random rows of the
#     same table, during the single-snapshot extract and during the chunked
#     one: max and mean.
#  C. First sync of BENCH_SYNC_ROWS (default 1,000,000) rows with chunk_rows
#     SYNC_CHUNK (default 100,000) and --jobs 2, against
#     the patched emulator (copy jobs are patch 0013), vs the
#     floor (mariadb extract + one multipart load of the same NDJSON, on a
#     fresh emulator); then the same sync killed after half its chunks
#     (MBQ_FAULT=backfill.chunk_loaded) and resumed: chunks and rows read
#     again on resume.
# Prints Markdown tables; logs stay in $WORK with BENCH_KEEP=1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=bench/table.sh
source "$ROOT/bench/table.sh"
ROWS="${BENCH_ROWS:-10000000}"
SROWS="${BENCH_SYNC_ROWS:-1000000}"
CHUNK="${CHUNK:-500000}"
SCHUNK="${SYNC_CHUNK:-100000}"
ROUNDS="${ROUNDS:-3}"
PARTS=" ${BENCH_PARTS:-A B C} "
WORK="$(mktemp -d /tmp/mbq-bench-backfill.XXXXXX)"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
WRITER_PID=""

note() { echo "bench/backfill: $*" >&2; }
cleanup() {
    [ -n "$WRITER_PID" ] && kill -- -"$WRITER_PID" 2>/dev/null || true
    bench_cleanup
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v mydumper >/dev/null || { note "mydumper is missing (tools/install-deps.sh)"; exit 1; }
bench_build
MBQ_MYSQL_BUFFER_POOL="${BUFFER_POOL:-3G}" bench_services svc
"${M[@]}" -e "CREATE DATABASE bench"

write_config() { # FILE TABLE CHUNK_ROWS ENDPOINT
    cat >"$1" <<YAML
tables:
  - name: $2
    primary_key: id
    updated_column: updated_at
    chunk_rows: $3
mysql:
  host: 127.0.0.1
  port: $MBQ_TEST_MYSQL_PORT
  user: root
  password: \${MYSQL_PWD}
  database: bench
bigquery:
  endpoint: $4
  project_id: $MBQ_TEST_BQ_PROJECT
  dataset: bench
  compression: none
  upload_chunk_size: 0
  multipart_max: 1GiB
  stream_load: false
state:
  dir: $WORK/state-$(basename "$1" .yml)
log:
  level: info
YAML
}


if [[ "$PARTS" == *" A "* ]]; then
# ---- A. extraction ---------------------------------------------------------

note "building bench_x ($ROWS rows)"
"${M[@]}" bench -e "$(bench_table_sql bench_x "$ROWS")"
"${M[@]}" --quick --batch -e "SELECT * FROM bench.bench_x" >/dev/null # warm the buffer pool
write_config "$WORK/x.yml" bench_x "$CHUNK" "http://$BIGQUERY_EMULATOR_HOST"
: >"$WORK/xresults"
for round in $(seq 1 "$ROUNDS"); do
    for tool in mydumper mbq_chunked mbq_single; do
        rm -rf "$WORK/out"
        mkdir -p "$WORK/out"
        case $tool in
        mydumper)
            measure x mydumper -h 127.0.0.1 -P "$MBQ_TEST_MYSQL_PORT" -u root -p "$MYSQL_PWD" -t 2 \
                --rows "$CHUNK" --trx-consistency-only -B bench -T bench_x -o "$WORK/out" ;;
        mbq_chunked)
            measure x "$MBQ" extract --config "$WORK/x.yml" --table bench_x --out "$WORK/out/d" \
                --chunk-rows "$CHUNK" --jobs 2 --no-compress
            grep -q "^rows *$ROWS\$" "$WORK/x.out" || { note "mbq extracted the wrong row count"; exit 1; } ;;
        mbq_single)
            measure x "$MBQ" extract --config "$WORK/x.yml" --table bench_x --out "$WORK/out/f" \
                --no-compress
            grep -q "^rows *$ROWS\$" "$WORK/x.out" || { note "mbq extracted the wrong row count"; exit 1; } ;;
        esac
        echo "$tool $round $x_wall $x_cpu $x_rss $(du -sm "$WORK/out" | cut -f1)" >>"$WORK/xresults"
        note "round $round $tool: $x_wall s"
    done
done
rm -rf "$WORK/out"

echo
echo "### Extraction of $ROWS rows (chunks of $CHUNK rows, $ROUNDS rounds)"
echo
echo "| tool | median wall s | walls s | client CPU s | max RSS MiB | output MB | median / mydumper |"
echo "|---|---:|---|---:|---:|---:|---:|"
MYD=$(awk '$1=="mydumper"{print $3}' "$WORK/xresults" | median)
for tool in mydumper mbq_chunked mbq_single; do
    med=$(awk -v t=$tool '$1==t{print $3}' "$WORK/xresults" | median)
    walls=$(awk -v t=$tool '$1==t{printf "%s ", $3}' "$WORK/xresults")
    cpu=$(awk -v t=$tool '$1==t{print $4}' "$WORK/xresults" | median)
    rss=$(awk -v t=$tool '$1==t{print $5}' "$WORK/xresults" | sort -n | tail -1)
    mb=$(awk -v t=$tool '$1==t{print $6}' "$WORK/xresults" | tail -1)
    label=$tool
    [ $tool = mydumper ] && label="mydumper -t 2 --rows $CHUNK"
    [ $tool = mbq_chunked ] && label="**mbq extract --chunk-rows $CHUNK --jobs 2**"
    [ $tool = mbq_single ] && label="mbq extract (one snapshot)"
    printf '| %s | %s | %s| %s | %.1f | %s | %.2f |\n' "$label" "$med" "$walls" "$cpu" \
        "$(awk -v k="$rss" 'BEGIN{print k/1024}')" "$mb" "$(awk -v a="$med" -v b="$MYD" 'BEGIN{print a/b}')"
done

# ---- B. undo history -------------------------------------------------------

hll() { "${M[@]}" -N -e "SHOW ENGINE INNODB STATUS\G" | sed -n 's/.*History list length \([0-9]*\).*/\1/p'; }
history_during() { # NAME CMD...: max and mean history length while CMD runs under churn
    local name=$1
    shift
    # One writer session: an endless stream of single-row autocommit updates.
    setsid bash -c "yes 'SET @i = 1 + FLOOR(RAND() * $ROWS); UPDATE bench_x SET qty = qty + 1 WHERE id = @i; DO SLEEP(0.002);' | mariadb --no-defaults -h 127.0.0.1 -P $MBQ_TEST_MYSQL_PORT -u root bench" >/dev/null 2>&1 &
    WRITER_PID=$!
    sleep 2
    "$@" >"$WORK/$name.hout" 2>&1 &
    local pid=$! samples=()
    while kill -0 "$pid" 2>/dev/null; do
        samples+=("$(hll)")
        sleep 0.5
    done
    wait "$pid"
    kill -- -"$WRITER_PID" 2>/dev/null || true
    wait "$WRITER_PID" 2>/dev/null || true
    WRITER_PID=""
    printf '%s\n' "${samples[@]}" | awk -v n="$name" '{s+=$1; if ($1>m) m=$1} END {printf "| %s | %d | %.0f | %d |\n", n, m, s/NR, NR}'
    sleep 5 # let purge catch up
}
echo
echo "### Undo history during the extract of $ROWS rows, a writer updating random rows"
echo
echo "| extract | max history list length | mean | samples (0.5 s) |"
echo "|---|---:|---:|---:|"
rm -rf "$WORK/out"
history_during "one snapshot (today)" "$MBQ" extract --config "$WORK/x.yml" --table bench_x \
    --out "$WORK/out.f" --no-compress
rm -f "$WORK/out.f"
history_during "chunks of $CHUNK, 2 connections" "$MBQ" extract --config "$WORK/x.yml" \
    --table bench_x --out "$WORK/out" --chunk-rows "$CHUNK" --jobs 2 --no-compress
rm -rf "$WORK/out"
"${M[@]}" bench -e "DROP TABLE bench_x"

fi

if [[ "$PARTS" == *" C "* ]]; then
# ---- C. first sync, floor, kill at half -----------------------------------

fresh_emulator() {
    bench_fresh_emulator
}
bq_rows() {
    curl -sS -f -H 'Content-Type: application/json' -d "{\"query\":\"SELECT COUNT(*) FROM bench.$1\",\"useLegacySql\":false}" "$BQ/queries" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["rows"][0]["f"][0]["v"])'
}

note "building bench_s ($SROWS rows)"
"${M[@]}" bench -e "$(bench_table_sql bench_s "$SROWS")"
"${M[@]}" --quick --batch -e "SELECT * FROM bench.bench_s" >/dev/null
fresh_emulator
write_config "$WORK/s.yml" bench_s "$SCHUNK" "http://$BIGQUERY_EMULATOR_HOST"
note "mbq sync, chunked, --jobs 2"
measure sync "$MBQ" sync --jobs 2 --config "$WORK/s.yml"
[ "$(bq_rows bench_s)" = "$SROWS" ] || { note "mbq loaded the wrong row count"; exit 1; }
SCHEMA="$(curl -sS -f "$BQ/datasets/bench/tables/bench_s" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["schema"]["fields"]))')"
CHUNKS_S=$(grep -c "chunk [0-9]*: " "$WORK/sync.err" || true)
COPY_S=$(grep -o "in one copy job" "$WORK/sync.err" | head -1 || true)

note "floor: mariadb extract + one multipart load of the same NDJSON, fresh emulator"
"$MBQ" extract --config "$WORK/s.yml" --table bench_s --out "$WORK/s.ndjson" --no-compress >/dev/null
fresh_emulator
curl -sS -f -H 'Content-Type: application/json' \
    -d "{\"datasetReference\":{\"projectId\":\"$MBQ_TEST_BQ_PROJECT\",\"datasetId\":\"bench\"}}" "$BQ/datasets" >/dev/null
measure fx sh -c "mariadb --no-defaults -h 127.0.0.1 -P $MBQ_TEST_MYSQL_PORT -u root --quick --batch -e 'SELECT * FROM bench.bench_s' > '$WORK/s.tsv'"
B=mbqbenchboundary7f3a
printf -- '--%s\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{"jobReference":{"projectId":"%s","jobId":"floor_%s"},"configuration":{"load":{"destinationTable":{"projectId":"%s","datasetId":"bench","tableId":"floor_s"},"schema":{"fields":%s},"sourceFormat":"NEWLINE_DELIMITED_JSON","writeDisposition":"WRITE_TRUNCATE","createDisposition":"CREATE_IF_NEEDED"}}}\r\n--%s\r\nContent-Type: application/octet-stream\r\n\r\n' \
    "$B" "$MBQ_TEST_BQ_PROJECT" "$$" "$MBQ_TEST_BQ_PROJECT" "$SCHEMA" "$B" >"$WORK/pre"
printf -- '\r\n--%s--\r\n' "$B" >"$WORK/post"
measure fl sh -c "cat '$WORK/pre' '$WORK/s.ndjson' '$WORK/post' | curl -sS -f -X POST -T - -H 'Content-Type: multipart/related; boundary=$B' -H 'Expect:' '$UP/jobs?uploadType=multipart' >/dev/null"
[ "$(bq_rows floor_s)" = "$SROWS" ] || { note "the floor loaded the wrong row count"; exit 1; }
FLOOR=$(awk -v a="$fx_wall" -v b="$fl_wall" 'BEGIN{printf "%.2f", a+b}')
rm -f "$WORK/s.tsv" "$WORK/s.ndjson"

note "kill at about half the chunked sync's wall time, then resume"
fresh_emulator
write_config "$WORK/k.yml" bench_s "$SCHUNK" "http://$BIGQUERY_EMULATOR_HOST"
HALF_S=$(awk -v w="$sync_wall" 'BEGIN{printf "%.1f", w / 2}')
"$MBQ" sync --jobs 2 --config "$WORK/k.yml" >"$WORK/k1.out" 2>"$WORK/k1.err" &
KPID=$!
sleep "$HALF_S"
kill -9 "$KPID" 2>/dev/null || true
wait "$KPID" 2>/dev/null || true
LOADED=$("$BUILD/mbq-state" inspect --json --config "$WORK/k.yml" | python3 -c 'import json,sys; t=json.load(sys.stdin)["tables"][0]; b=(t["in_flight"] or {}).get("backfill") or {}; print(b.get("chunks_loaded", "-"), b.get("chunks", "-"), b.get("rows_loaded", "-"))')
measure resume "$MBQ" sync --jobs 2 --config "$WORK/k.yml"
[ "$(bq_rows bench_s)" = "$SROWS" ] || { note "the resumed sync loaded the wrong row count"; exit 1; }
REDONE=$(grep -c "chunk [0-9]*: " "$WORK/resume.err" || true)
NCH=$(( (SROWS + SCHUNK - 1) / SCHUNK ))

echo
echo "### First sync of $SROWS rows (chunks of $SCHUNK rows, --jobs 2; the patched emulator)"
echo
echo "| run | wall s | client CPU s | max RSS MiB (whole process) | wall / floor |"
echo "|---|---:|---:|---:|---:|"
printf '| **mbq sync**, chunked (%s chunks, %s) | %s | %s | %.1f | %.2f |\n' "$CHUNKS_S" "${COPY_S:-copy?}" \
    "$sync_wall" "$sync_cpu" "$(awk -v k="$sync_rss" 'BEGIN{print k/1024}')" "$(awk -v a="$sync_wall" -v b="$FLOOR" 'BEGIN{print a/b}')"
printf '| floor: mariadb extract (%s s) + one multipart load (%s s) | %s | %s | %.1f | 1.00 |\n' \
    "$fx_wall" "$fl_wall" "$FLOOR" "$(awk -v a="$fx_cpu" -v b="$fl_cpu" 'BEGIN{print a+b}')" \
    "$(awk -v a="$fx_rss" -v b="$fl_rss" 'BEGIN{print (a>b?a:b)/1024}')"
echo
LOST=$(awk -v h="$HALF_S" -v r="$resume_wall" -v w="$sync_wall" 'BEGIN{printf "%.1f", h + r - w}')
PER=$(awk -v w="$sync_wall" -v n="$NCH" 'BEGIN{printf "%.1f", w / n}')
echo "Killed with SIGKILL after $HALF_S s (half the chunked sync's wall time), same settings:"
echo "the journal said chunks loaded / planned / rows loaded = $LOADED. The resumed run"
echo "took $resume_wall s and did $REDONE chunks. Work lost: $HALF_S + $resume_wall - $sync_wall"
echo "= $LOST s, against $PER s per chunk on average ($NCH chunks, 2 at a time)."
fi
