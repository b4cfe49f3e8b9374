#!/usr/bin/env bash
# End-to-end benchmark (issue 11): `mbq sync` against the floor, side by side
# in one run, on fresh local services (MariaDB + goccy/bigquery-emulator).
#
#   bash bench/run.sh                 # everything (4-6 min on a 2-vCPU VM: the emulator
#                                     # loads 1M bench rows in ~55-115 s, twice)
#   BENCH_ROWS=200000 bash bench/run.sh   # a smaller big table (quick look)
#   BENCH_EXTRACT_ROWS=0 ...          # skip the 5M-row `mbq extract` RSS check
#
# What it does:
#  1. tools/install-deps.sh (installs only what is missing), a Release build of
#     mbq into build-bench/ (no sanitizers).
#  2. Big table: fresh services in $WORK/svc-big; table bench_big of BENCH_ROWS
#     (default 1,000,000) rows, built deterministically (bigint unsigned PK,
#     int, enum, decimal(12,2), varchar(200), json, datetime(6), timestamp(6)).
#     - mbq: `mbq sync` (initial: one WRITE_TRUNCATE load straight into the
#       target), timed by GNU time (wall, user+sys CPU, max RSS).
#     - floor: a FRESH emulator (the emulator slows as it holds more), then
#       `mariadb --quick --batch` extract of the same table to a file (timed)
#       plus ONE multipart upload of mbq's own NDJSON of that table (made by
#       `mbq extract --no-compress`, not timed) with the schema mbq gave the
#       target, WRITE_TRUNCATE: `cat head file tail | curl -X POST -T -`, so the
#       body streams through a pipe (curl's RSS is not the file's size); the
#       emulator runs the load inside the request, and a jobs.get confirms it
#       (timed). The load side is thus byte-identical; floor wall = extract +
#       upload/load (each measured, summed; RSS is the larger of the two).
#  3. Small tables: fresh services in $WORK/svc-small; 7 tables, 12,456 rows in
#     all, with bench_big's DDL. The floor first, on the fresh emulator, as ONE
#     measured script: for each table the mariadb extract, then one streamed
#     curl upload/load of mbq's own NDJSON of it (wall, CPU of all processes,
#     max RSS of the largest). Then a fresh emulator: mbq initial sync (its
#     targets' schema is checked against the floor's), an incremental round
#     (10% of the rows updated, 2% inserted) synced by mbq, then a sync with
#     no change, which must run no BigQuery job: counted with jobs.list on the
#     emulator, and the journal (`mbq-state inspect --json`) must show no
#     load/merge job and no mirror for its runs. The incremental's per-stage
#     timings come from the journal.
#  4. `mbq extract --no-compress` of BENCH_EXTRACT_ROWS (default 5,000,000)
#     rows: max RSS must stay under 64 MiB.
# Prints one Markdown table; the raw logs stay in $WORK (printed at the end)
# when BENCH_KEEP=1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=bench/table.sh
source "$ROOT/bench/table.sh"
ROWS="${BENCH_ROWS:-1000000}"
XROWS="${BENCH_EXTRACT_ROWS:-5000000}"
WORK="$(mktemp -d /tmp/mbq-bench.XXXXXX)"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
trap bench_cleanup EXIT
trap 'exit 130' INT TERM
note() { echo "bench: $*" >&2; }

bash tools/install-deps.sh >&2
bench_build

# ---- helpers -------------------------------------------------------------

start_services() { # NAME: fresh MariaDB + emulator under $WORK/NAME
    bench_services "$1"
    "${M[@]}" -e "CREATE DATABASE IF NOT EXISTS bench"
}

fresh_emulator() { bench_fresh_emulator; }

write_config() { # FILE TABLE...
    local f=$1
    shift
    {
        echo "tables:"
        for t in "$@"; do
            printf '  - name: %s\n    primary_key: id\n    updated_column: updated_at\n' "$t"
        done
        cat <<YAML
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
  multipart_max: 5MiB
state:
  dir: $WORK/state-$(basename "$f" .yml)
log:
  level: warn
YAML
    } >"$f"
}

add() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a+b}'; }
maxi() { awk -v a="$1" -v b="$2" 'BEGIN{print (a>b?a:b)}'; }

make_big() { # TABLE ROWS
    "${M[@]}" bench -e "$(bench_table_sql "$1" "$2")"
}

# floor_load TABLE NDJSON SCHEMA_JSON: print shell commands for ONE multipart
# upload of the ready NDJSON with curl. The body (JSON part, the file, the
# closing boundary) is streamed through a pipe into `curl -T -` (chunked POST),
# so neither curl nor cat holds the file in memory. The emulator runs the load
# inside the request; then jobs.get must say DONE.
floor_load() {
    local t=$1 file=$2 schema=$3 job="floor_${1}_$$_$RANDOM" b="mbqbenchboundary7f3a"
    printf -- '--%s\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{"jobReference":{"projectId":"%s","jobId":"%s"},"configuration":{"load":{"destinationTable":{"projectId":"%s","datasetId":"bench","tableId":"%s"},"schema":{"fields":%s},"sourceFormat":"NEWLINE_DELIMITED_JSON","writeDisposition":"WRITE_TRUNCATE","createDisposition":"CREATE_IF_NEEDED"}}}\r\n--%s\r\nContent-Type: application/octet-stream\r\n\r\n' \
        "$b" "$MBQ_TEST_BQ_PROJECT" "$job" "$MBQ_TEST_BQ_PROJECT" "$t" "$schema" "$b" >"$WORK/pre.$t"
    printf -- '\r\n--%s--\r\n' "$b" >"$WORK/post.$t"
    echo "cat '$WORK/pre.$t' '$file' '$WORK/post.$t' | curl -sS -f -X POST -T - -H 'Content-Type: multipart/related; boundary=$b' -H 'Expect:' '$UP/jobs?uploadType=multipart' >/dev/null"
    echo "curl -sS -f '$BQ/jobs/$job' | grep -q '\"DONE\"'"
}

# floor_extract TABLE OUT: print the floor's extract command.
floor_extract() {
    echo "mariadb -h 127.0.0.1 -P '$MBQ_TEST_MYSQL_PORT' -u root --quick --batch -e 'SELECT * FROM bench.$1' > '$2'"
}

bq_schema() { # TABLE -> fields JSON of the target mbq made
    curl -sS -f "$BQ/datasets/bench/tables/$1" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["schema"]["fields"]))'
}

bq_rows() { # TABLE -> row count by a query
    curl -sS -f -H 'Content-Type: application/json' -d "{\"query\":\"SELECT COUNT(*) FROM bench.$1\",\"useLegacySql\":false}" "$BQ/queries" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["rows"][0]["f"][0]["v"])'
}

bq_jobs() { # the ids of the jobs the emulator holds, one a line
    curl -sS -f "$BQ/jobs?maxResults=100000&allUsers=true" | python3 -c 'import json,sys; [print(j["jobReference"]["jobId"]) for j in json.load(sys.stdin).get("jobs",[])]' | sort
}

create_dataset() {
    curl -sS -f -H 'Content-Type: application/json' \
        -d "{\"datasetReference\":{\"projectId\":\"$MBQ_TEST_BQ_PROJECT\",\"datasetId\":\"bench\"}}" "$BQ/datasets" >/dev/null
}

ROWS_OUT=()
row() { # LABEL ROWS WALL CPU RSS_KiB FLOOR_WALL
    local rps ratio
    rps=$(awk -v n="$2" -v w="$3" 'BEGIN{printf "%.0f", (w > 0 ? n / w : 0)}')
    ratio=$(awk -v a="$3" -v b="$6" 'BEGIN{ if (b > 0) printf "%.2f", a / b; else printf "-" }')
    ROWS_OUT+=("$(printf '| %s | %s | %s | %s | %.1f | %s | %s |' "$1" "$2" "$3" "$4" "$(awk -v k="$5" 'BEGIN{print k/1024}')" "$rps" "$ratio")")
}

# script NAME LINE...: write the lines into $WORK/NAME.sh under `set -e`
script() {
    local f="$WORK/$1.sh"
    shift
    { echo "set -e"; printf '%s\n' "$@"; } >"$f"
    echo "$f"
}

inspect_json() { # CONFIG OUT: the journal as `mbq-state inspect --json` shows it
    "$BUILD/mbq-state" inspect --json --config "$1" >"$2"
}

# runs_of JSON: one line per run the journal holds: table id state load_mode
# load_job merge_job mirror schema/extract/stage/merge/commit ms
runs_of() {
    python3 - "$1" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
out = []
def walk(o, table=None):
    if isinstance(o, dict):
        t = o.get("name") or o.get("table") or table
        if "timings" in o and "run_id" in o:
            tm = o["timings"]
            out.append("%s %s %s %s %s %s %s %d/%d/%d/%d/%d" % (
                t, o.get("id"), o.get("state"), o.get("load_mode"), o.get("load_job_id") or "-",
                o.get("merge_job_id") or "-", o.get("mirror") or "-",
                tm["schema_check_ms"], tm["extract_ms"], tm["stage_ms"], tm["merge_ms"], tm["commit_ms"]))
        for v in o.values():
            walk(v, t)
    elif isinstance(o, list):
        for v in o:
            walk(v, table)
walk(doc)
print("\n".join(sorted(set(out))))
PY
}

# stage_sum FIELD: the sum of one timing (1 schema-check .. 5 commit) over the
# runs_of lines on stdin, in seconds
stage_sum() { awk -v f="$1" 'NF {split($8, a, "/"); s += a[f]} END {printf "%.2f", s / 1000}'; }

# ---- 1. the big table ----------------------------------------------------

note "load before the run: $(uptime)"
LOAD_START="$(uptime | sed 's/.*load average: //')"
start_services svc-big
note "building bench_big ($ROWS rows)"
make_big bench_big "$ROWS"
write_config "$WORK/big.yml" bench_big
sed -i 's/^  level: warn$/  level: info/' "$WORK/big.yml" # to see "(streamed while extracting)"
"${M[@]}" --quick --batch -e "SELECT * FROM bench.bench_big" >/dev/null # warm the buffer pool

note "mbq sync of $ROWS rows"
measure mbq_big "$MBQ" sync --config "$WORK/big.yml"
[ "$(bq_rows bench_big)" = "$ROWS" ] || { echo "bench: mbq loaded the wrong row count" >&2; exit 1; }
STREAMED=$(grep -c "streamed while extracting" "$WORK/mbq_big.err" || true)
inspect_json "$WORK/big.yml" "$WORK/big.inspect.json"
BIG_RUN="$(runs_of "$WORK/big.inspect.json")"
SCHEMA="$(bq_schema bench_big)"
"$MBQ" extract --config "$WORK/big.yml" --table bench_big --out "$WORK/big.ndjson" --no-compress >/dev/null
BIG_BYTES=$(stat -c %s "$WORK/big.ndjson")

note "floor: mariadb --quick --batch + one streamed upload of the same NDJSON, on a fresh emulator"
fresh_emulator
create_dataset
measure floor_x bash "$(script floor_x "$(floor_extract bench_big "$WORK/big.tsv")")"
mapfile -t FL < <(floor_load floor_big "$WORK/big.ndjson" "$SCHEMA")
measure floor_l bash "$(script floor_l "${FL[@]}")"
[ "$(bq_rows floor_big)" = "$ROWS" ] || { echo "bench: the floor loaded the wrong row count" >&2; exit 1; }
floor_big_wall=$(add "$floor_x_wall" "$floor_l_wall")
floor_big_cpu=$(add "$floor_x_cpu" "$floor_l_cpu")
floor_big_rss=$(maxi "$floor_x_rss" "$floor_l_rss")
rm -f "$WORK/big.tsv" "$WORK/big.ndjson"
row "**mbq sync**, initial, 1 table (streamed: $STREAMED)" "$ROWS" "$mbq_big_wall" "$mbq_big_cpu" "$mbq_big_rss" "$floor_big_wall"
row "floor: mariadb extract ($floor_x_wall s, $floor_x_cpu s CPU, $(awk -v k="$floor_x_rss" 'BEGIN{printf "%.1f", k/1024}') MiB) + one streamed upload/load ($floor_l_wall s, $floor_l_cpu s CPU, $(awk -v k="$floor_l_rss" 'BEGIN{printf "%.1f", k/1024}') MiB)" "$ROWS" "$floor_big_wall" "$floor_big_cpu" "$floor_big_rss" "$floor_big_wall"

# ---- 2. seven small tables -----------------------------------------------

start_services svc-small
SIZES=(5000 3000 2000 1200 800 356 100) # 12,456 rows
SMALL=()
for i in "${!SIZES[@]}"; do
    t="small_$((i + 1))"
    SMALL+=("$t")
    make_big "$t" "${SIZES[$i]}"
done
TOTAL=12456
write_config "$WORK/small.yml" "${SMALL[@]}"
for t in "${SMALL[@]}"; do # warm, as for the big table
    "${M[@]}" --quick --batch -e "SELECT * FROM bench.$t" >/dev/null
done

# The floor for the 7 tables, measured as ONE command (wall, CPU of every
# process, max RSS of the largest): for each table the mariadb extract, then
# one streamed upload/load of mbq's own NDJSON of it (made untimed, before).
# The tables have the DDL of bench_big, so the schema is the one mbq gave
# bench_big's target (checked against mbq's small targets below).
note "floor for the 7 tables: mariadb extract + one streamed upload/load each"
for t in "${SMALL[@]}"; do
    "$MBQ" extract --config "$WORK/small.yml" --table "$t" --out "$WORK/$t.ndjson" --no-compress >/dev/null
done
create_dataset
FS=()
for t in "${SMALL[@]}"; do
    FS+=("$(floor_extract "$t" "$WORK/$t.tsv")")
    mapfile -t FL < <(floor_load "$t" "$WORK/$t.ndjson" "$SCHEMA")
    FS+=("${FL[@]}")
done
measure floor_s bash "$(script floor_s "${FS[@]}")"
for i in "${!SMALL[@]}"; do
    [ "$(bq_rows "${SMALL[$i]}")" = "${SIZES[$i]}" ] || { echo "bench: floor ${SMALL[$i]}: wrong row count" >&2; exit 1; }
done
rm -f "$WORK"/small_*.tsv "$WORK"/small_*.ndjson
fresh_emulator

note "mbq sync of 7 tables, $TOTAL rows, on a fresh emulator"
measure mbq_small "$MBQ" sync --config "$WORK/small.yml"
for i in "${!SMALL[@]}"; do
    [ "$(bq_rows "${SMALL[$i]}")" = "${SIZES[$i]}" ] || { echo "bench: ${SMALL[$i]}: wrong row count" >&2; exit 1; }
    [ "$(bq_schema "${SMALL[$i]}")" = "$SCHEMA" ] || note "WARNING: ${SMALL[$i]}: mbq's schema differs from the floor's"
done
inspect_json "$WORK/small.yml" "$WORK/small.init.json"

# incremental round: 10% updated, 2% inserted, deterministically
for i in "${!SMALL[@]}"; do
    t=${SMALL[$i]} n=${SIZES[$i]}
    "${M[@]}" bench -e "SET time_zone = '+00:00';
      UPDATE $t SET qty = qty + 1, note = CONCAT(note, ' upd'), updated_at = '2025-01-01 00:00:00' + INTERVAL id MICROSECOND WHERE id % 10 = 3;
      INSERT INTO $t SELECT $n + seq, seq, 1, 1.5, CONCAT('new ', seq), JSON_OBJECT('n', seq),
        '2025-01-02', '2025-01-02 00:00:00' + INTERVAL seq MICROSECOND FROM seq_1_to_$(((n + 49) / 50));"
done
CHANGED=$("${M[@]}" -N bench -e "SELECT $(printf "(SELECT COUNT(*) FROM %s WHERE updated_at >= '2025-01-01')+" "${SMALL[@]}")0")
note "mbq incremental sync ($CHANGED changed rows)"
measure mbq_incr "$MBQ" sync --config "$WORK/small.yml"
for t in "${SMALL[@]}"; do
    [ "$(bq_rows "$t")" = "$("${M[@]}" -N bench -e "SELECT COUNT(*) FROM $t")" ] || { echo "bench: $t: wrong row count after the incremental sync" >&2; exit 1; }
done
inspect_json "$WORK/small.yml" "$WORK/small.incr.json"
INCR_RUNS="$(comm -13 <(runs_of "$WORK/small.init.json") <(runs_of "$WORK/small.incr.json"))"

note "mbq sync with nothing changed"
jobs_before=$(bq_jobs)
measure mbq_noop "$MBQ" sync --config "$WORK/small.yml"
jobs_after=$(bq_jobs)
inspect_json "$WORK/small.yml" "$WORK/small.noop.json"
NOOP_IDS=$(comm -13 <(echo "$jobs_before") <(echo "$jobs_after") | tr '\n' ' ')
NOOP_JOBS=$(echo "$NOOP_IDS" | wc -w)
NOOP_RUNS="$(comm -13 <(runs_of "$WORK/small.incr.json") <(runs_of "$WORK/small.noop.json"))"
NOOP_WITH_JOB=$(printf '%s\n' "$NOOP_RUNS" | awk 'NF && ($5 != "-" || $6 != "-" || ($7 != "-" && $7 != "none" && $7 != "null")) {n++} END {print n+0}')

row "**mbq sync**, initial, 7 tables" "$TOTAL" "$mbq_small_wall" "$mbq_small_cpu" "$mbq_small_rss" "$floor_s_wall"
row "floor: mariadb extract + one streamed upload/load per table (7 tables, one measurement)" "$TOTAL" "$floor_s_wall" "$floor_s_cpu" "$floor_s_rss" "$floor_s_wall"
row "**mbq sync**, incremental ($CHANGED rows changed)" "$CHANGED" "$mbq_incr_wall" "$mbq_incr_cpu" "$mbq_incr_rss" ""
row "**mbq sync**, nothing changed ($NOOP_JOBS BigQuery jobs)" 0 "$mbq_noop_wall" "$mbq_noop_cpu" "$mbq_noop_rss" ""
bash tools/services.sh stop-bq "$SVC" >&2 # the emulator is done; free its memory for the 5M build

# ---- 3. 5M-row extract: memory stays flat --------------------------------

if [ "$XROWS" -gt 0 ]; then
    note "building bench_x ($XROWS rows) for the extract RSS check"
    make_big bench_x "$XROWS"
    write_config "$WORK/x.yml" bench_x
    measure mbq_x "$MBQ" extract --config "$WORK/x.yml" --table bench_x --out "$WORK/x.ndjson" --no-compress
    rm -f "$WORK/x.ndjson"
    measure mbq_xgz "$MBQ" extract --config "$WORK/x.yml" --table bench_x --out "$WORK/x.ndjson.gz"
    rm -f "$WORK/x.ndjson.gz"
    row "**mbq extract --no-compress** (no upload)" "$XROWS" "$mbq_x_wall" "$mbq_x_cpu" "$mbq_x_rss" ""
    row "**mbq extract** (gzip -1, no upload)" "$XROWS" "$mbq_xgz_wall" "$mbq_xgz_cpu" "$mbq_xgz_rss" ""
fi

echo
echo "| run | rows | wall s | client CPU s (user+sys) | client max RSS MiB | rows/s | wall / floor |"
echo "|---|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${ROWS_OUT[@]}"
echo
echo "machine: $(nproc) vCPU, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/^Mem:/{print $2}') GiB RAM; $(mariadb --version | awk '{print $1, $2, $3, $5}' | tr -d ,); emulator goccy v0.8.1"
echo "disk: $(df -h --output=source,fstype,size "$WORK" | tail -n 1 | tr -s ' '); $(lsblk -d -n -o NAME,ROTA,SIZE 2>/dev/null | tr -s ' ' | paste -sd ';' -) (ROTA 0 = not rotational)"
echo "load average: before $LOAD_START; after $(uptime | sed 's/.*load average: //')"
echo "1M initial sync: 'streamed while extracting' logged $STREAMED time(s); NDJSON $BIG_BYTES bytes; journal run (table id state mode load_job merge_job mirror schema/extract/stage/merge/commit ms):"
echo "  $BIG_RUN"
echo "incremental: stage timings summed over its 7 runs: schema-check $(printf "%s\n" "$INCR_RUNS" | stage_sum 1) s, extract $(printf "%s\n" "$INCR_RUNS" | stage_sum 2) s, stage $(printf "%s\n" "$INCR_RUNS" | stage_sum 3) s, merge $(printf "%s\n" "$INCR_RUNS" | stage_sum 4) s, commit $(printf "%s\n" "$INCR_RUNS" | stage_sum 5) s; its runs:"
printf '%s\n' "$INCR_RUNS" | sed 's/^/  /'
echo "no-change sync: $NOOP_JOBS BigQuery job(s) new on the emulator (jobs.list: $(echo "$jobs_before" | grep -c . || true) jobs before, $(echo "$jobs_after" | grep -c . || true) after): ${NOOP_IDS:-none}; new journal runs: $(printf '%s\n' "$NOOP_RUNS" | grep -c . || true), of them with a load/merge job or a mirror: $NOOP_WITH_JOB"
[ -z "$NOOP_RUNS" ] || printf '%s\n' "$NOOP_RUNS" | sed 's/^/  /'
