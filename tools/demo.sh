#!/usr/bin/env bash
# The README's first command: from a fresh Debian 12 machine (as root) to rows
# in BigQuery. Installs what is missing, builds mbq (Release) into build/,
# starts a real MariaDB and the BigQuery emulator in a temporary directory,
# loads the sample database (sql/sample/sample.sql), runs `mbq sync`, shows
# what landed, changes rows and the schema in MariaDB, syncs again and shows
# the result and the journal. Services and temp files go away on exit.
#
# Nothing is faked: when `mbq sync` fails, the demo says so and exits with
# its exit code. The second sync adds the new column to the BigQuery table
# and fills it for the new and updated rows (NULL in the others).
# MBQ_DEMO_BUILD_DIR overrides the build directory.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BUILD="${MBQ_DEMO_BUILD_DIR:-$ROOT/build}"
CONFIG="$ROOT/config/mbq.demo.yml"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
die() {
    echo "demo: $*" >&2
    exit 1
}

step "Installing what is missing (tools/install-deps.sh)"
bash tools/install-deps.sh

step "Building mbq (Release) into ${BUILD#"$ROOT"/}"
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMBQ_TESTS=OFF >/dev/null
cmake --build "$BUILD" --parallel "$(nproc)"

step "Starting MariaDB and the BigQuery emulator (tools/services.sh)"
SVC="$(mktemp -d "${TMPDIR:-/tmp}/mbq-demo.XXXXXX")"
cleanup() {
    bash "$ROOT/tools/services.sh" stop "$SVC" >/dev/null 2>&1 || true
    rm -rf "$SVC"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
bash tools/services.sh start "$SVC"
# shellcheck disable=SC1091
. "$SVC/env"

# mbq reads with the SELECT-only user; the demo writes as root.
export MBQ_DEMO_MYSQL_PORT="$MBQ_TEST_MYSQL_PORT"
export MBQ_DEMO_MYSQL_USER="$MBQ_TEST_MYSQL_RO_USER"
export MBQ_DEMO_MYSQL_PASSWORD="$MBQ_TEST_MYSQL_RO_PASSWORD"
export MBQ_DEMO_MYSQL_DATABASE=mbq_demo
export MBQ_DEMO_STATE_DIR="$SVC/state"
export BIGQUERY_EMULATOR_HOST

mysql_root() {
    mariadb --no-defaults --socket="$MBQ_TEST_MYSQL_SOCKET" -uroot -p"$MBQ_TEST_MYSQL_PASSWORD" \
        --default-character-set=utf8mb4 "$@"
}

# bq_query SQL: run a query on the emulator (jobs.query) and print a table.
bq_query() {
    local body
    body="$(python3 -c 'import json, sys; print(json.dumps({"query": sys.argv[1], "useLegacySql": False}))' "$1")"
    curl -sS --max-time 120 -H 'Content-Type: application/json' -d "$body" \
        "$MBQ_TEST_BQ_ENDPOINT/bigquery/v2/projects/$MBQ_TEST_BQ_PROJECT/queries" |
        python3 -c '
import json, sys
r = json.load(sys.stdin)
if "error" in r:
    print("  query failed: " + r["error"].get("message", "?"))
    sys.exit(0)
names = [f["name"] for f in r.get("schema", {}).get("fields", [])]
rows = [["NULL" if c["v"] is None else str(c["v"]) for c in row["f"]] for row in r.get("rows", [])]
w = [max([len(n)] + [len(x[i]) for x in rows]) for i, n in enumerate(names)]
print("  " + "  ".join(n.ljust(w[i]) for i, n in enumerate(names)))
for x in rows:
    print("  " + "  ".join(v.ljust(w[i]) for i, v in enumerate(x)))
'
}

show_bigquery() {
    echo "Row counts in BigQuery (dataset mbq_demo):"
    bq_query "SELECT 'users' AS table_name, COUNT(*) AS row_count FROM mbq_demo.users
              UNION ALL SELECT 'orders', COUNT(*) FROM mbq_demo.orders
              UNION ALL SELECT 'products', COUNT(*) FROM mbq_demo.products
              UNION ALL SELECT 'order_items', COUNT(*) FROM mbq_demo.order_items
              ORDER BY table_name"
    echo "A few users:"
    bq_query "SELECT * FROM mbq_demo.users WHERE id IN (1, 2, 3, 100, 1001) ORDER BY id"
    echo "A few orders:"
    bq_query "SELECT id, user_id, status, total, currency, updated_at FROM mbq_demo.orders
              WHERE id IN (1, 2, 3, 3001) ORDER BY id"
}

# sync TITLE: run one sync; on failure show the journal and exit with its code.
sync() {
    local rc=0
    step "$1: $BUILD/mbq sync --config config/mbq.demo.yml"
    "$BUILD/mbq" sync --config "$CONFIG" || rc=$?
    if [ "$rc" -ne 0 ]; then
        echo >&2
        echo "demo: 'mbq sync' exited with code $rc: the demo stops here." >&2
        echo "demo: what the journal says:" >&2
        "$BUILD/mbq-state" inspect --config "$CONFIG" >&2 || true
        echo "demo: (exit codes are listed in README.md; against the emulator see its" >&2
        echo "demo:  'Emulator divergences' section)" >&2
        exit "$rc"
    fi
}

step "Loading the sample database (sql/sample/sample.sql) into MariaDB"
mysql_root -e 'CREATE DATABASE mbq_demo CHARACTER SET utf8mb4'
mysql_root mbq_demo <sql/sample/sample.sql
mysql_root mbq_demo -e "SELECT 'users' AS table_name, COUNT(*) AS row_count FROM users
    UNION ALL SELECT 'orders', COUNT(*) FROM orders
    UNION ALL SELECT 'products', COUNT(*) FROM products
    UNION ALL SELECT 'order_items', COUNT(*) FROM order_items"

sync "First sync"
step "What landed in BigQuery"
show_bigquery

step "Changing MariaDB: a new column, updated and inserted rows"
mysql_root mbq_demo -v <<'SQL'
ALTER TABLE users ADD COLUMN loyalty_tier VARCHAR(16) NULL AFTER status;
UPDATE users SET loyalty_tier = 'gold', balance = balance + 100.00 WHERE id IN (1, 2, 3);
INSERT INTO users (id, email, name, status, loyalty_tier, balance)
    VALUES (1001, 'new.user@example.com', 'Nouvelle Utilisatrice', 'active', 'silver', 12.34);
UPDATE orders SET status = 'shipped' WHERE id IN (1, 2, 3);
INSERT INTO orders (id, user_id, status, total, currency) VALUES (3001, 1001, 'pending', 99.99, 'EUR');
SQL

sync "Second sync"
step "What BigQuery holds now"
show_bigquery
echo "The new column users.loyalty_tier (NULL where MariaDB has NULL):"
bq_query "SELECT id, email, loyalty_tier, balance FROM mbq_demo.users
          WHERE id IN (1, 2, 3, 4, 1001) ORDER BY id"

step "The journal: $BUILD/mbq-state inspect --config config/mbq.demo.yml"
"$BUILD/mbq-state" inspect --config "$CONFIG"

step "Done. The services stop now; run 'bash tools/test.sh' for the test suite."
