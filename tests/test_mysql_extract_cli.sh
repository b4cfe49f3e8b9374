#!/usr/bin/env bash
# `mbq extract` end to end against the real MariaDB: --help, a full extract
# with its printed figures (rows, checksum equal to the file's SHA-256, high),
# --since on the cursor, and the exit codes of a table missing from the
# config (2), a table missing from MySQL (1) and a wrong password (77), with
# no file left behind. Works in database mbq_t_cli.
set -uo pipefail
[ -n "${MBQ_TEST_MYSQL_PORT:-}" ] || { echo "SKIP: MBQ_TEST_MYSQL_PORT is not set" >&2; [ "${MBQ_REQUIRE_SERVICES:-}" = 1 ] && exit 1; exit 77; }
MBQ="${MBQ_BIN:?}"
export MYSQL_PWD="$MBQ_TEST_MYSQL_PASSWORD"
M=(mariadb -h "$MBQ_TEST_MYSQL_HOST" -P "$MBQ_TEST_MYSQL_PORT" -u "$MBQ_TEST_MYSQL_USER")
W="$(mktemp -d /tmp/mbq-test-cli.XXXXXX)"
trap 'rm -rf "$W"; "${M[@]}" -e "DROP DATABASE IF EXISTS mbq_t_cli" >/dev/null 2>&1' EXIT
fail=0
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi; }

"${M[@]}" -e "DROP DATABASE IF EXISTS mbq_t_cli; CREATE DATABASE mbq_t_cli;
  CREATE TABLE mbq_t_cli.items (id INT PRIMARY KEY, name VARCHAR(20), updated_at DATETIME(3));
  INSERT INTO mbq_t_cli.items VALUES (1,'a','2024-01-01 00:00:01'),(2,'b','2024-01-01 00:00:02'),(3,'c','2024-01-01 00:00:03');" || exit 1

config() { # FILE PASSWORD_VAR
    cat >"$1" <<YAML
tables:
  - name: items
    primary_key: id
    updated_column: updated_at
  - name: gone
    primary_key: id
mysql:
  host: $MBQ_TEST_MYSQL_HOST
  port: $MBQ_TEST_MYSQL_PORT
  user: $MBQ_TEST_MYSQL_USER
  password: \${$2}
  database: mbq_t_cli
bigquery:
  project_id: mbq-test
  dataset: mbq_t_cli
state:
  dir: $W/state
YAML
}
config "$W/ok.yml" MYSQL_PWD
export WRONG_PW=wrong-password-123
config "$W/bad.yml" WRONG_PW

"$MBQ" extract --help >"$W/help" 2>&1
check "help exits 0 and lists --since" '[ $? -eq 0 ] && grep -q -- "--since" "$W/help"'

"$MBQ" extract --config "$W/ok.yml" --table items --out "$W/all.json.gz" >"$W/out" 2>"$W/err"
rc=$?
check "full extract exits 0" '[ $rc -eq 0 ]'
check "prints rows 3 and the high-water mark" 'grep -q "^rows *3$" "$W/out" && grep -q "^high *2024-01-01 00:00:03.000$" "$W/out"'
sum="sha256:$(gzip -dc "$W/all.json.gz" | sha256sum | cut -d" " -f1)"
check "printed checksum is the SHA-256 of the NDJSON" 'grep -q "^checksum *$sum$" "$W/out"'
check "file is gzip NDJSON with 3 lines" '[ "$(gzip -dc "$W/all.json.gz" | wc -l)" = 3 ]'

"$MBQ" extract --config "$W/ok.yml" --table items --since "2024-01-01 00:00:02" --no-compress --out "$W/since.json" >"$W/out" 2>"$W/err"
check "--since is inclusive (2 rows), plain with --no-compress" '[ "$(wc -l <"$W/since.json")" = 2 ] && head -c 9 "$W/since.json" | grep -q "^{\"id\":2,"'

"$MBQ" extract --config "$W/ok.yml" --table nosuch --out "$W/x.json" >/dev/null 2>"$W/err"
rc=$?
check "table not in config: exit 2" '[ $rc -eq 2 ] && grep -q "nosuch" "$W/err"'

"$MBQ" extract --config "$W/ok.yml" --table gone --out "$W/gone.json" >/dev/null 2>"$W/err"
rc=$?
check "table missing in MySQL: exit 1, named, no file" '[ $rc -eq 1 ] && grep -q "mbq_t_cli.gone" "$W/err" && [ ! -e "$W/gone.json" ] && [ ! -e "$W/gone.json.tmp" ]'

"$MBQ" extract --config "$W/bad.yml" --table items --out "$W/bad.json" >/dev/null 2>"$W/err"
rc=$?
check "wrong password: exit 77, no password in the message" '[ $rc -eq 77 ] && grep -q "Access denied" "$W/err" && ! grep -q "wrong-password-123" "$W/err" && [ ! -e "$W/bad.json" ]'

exit $fail
