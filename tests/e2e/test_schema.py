#!/usr/bin/env python3
"""End-to-end tests of schema monitoring (label `schema`): an ALTER TABLE in
MariaDB between two syncs, then the target's schema (tables.get), its rows,
the journal's events and the exit code.

They run against the patched emulator (tools/emulator/patches: added
columns queryable and filled, a load honouring its schema, ALTER COLUMN SET
DATA TYPE), which behaves as BigQuery does for these changes: every change
BigQuery applies must end in exit 0 with the target equal to the source and
the cursor committed. Some cases put a recording proxy in front of the
emulator to assert which statements and load jobs mbq sent."""
import http.client
import json
import os
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mbqtest import (Workspace, assert_target_equals_source, bq_field_types, bq_query,
                     check, check_eq, events_of, expect_ok, mysql, require_services, run_cases, private_emulator)

DDL = """
CREATE TABLE items (
  id BIGINT NOT NULL PRIMARY KEY,
  val VARCHAR(20),
  code VARCHAR(10),
  n INT,
  price DECIMAL(10,2),
  updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
);
"""
COLS = ["id", "val", "code", "n", "price", "updated_at"]


def items_ws(name, policy=None, n_rows=5):
    """A workspace whose `items` table is synced once (exit 0)."""
    ws = Workspace("sch_" + name)
    mysql(DDL, db=ws.db)
    mysql("INSERT INTO items (id, val, code, n, price, updated_at) VALUES %s" % ",".join(
        "(%d, 'v%d', '%d', %d, %d.25, '2024-01-01 00:00:%02d')" % (i, i, 100 + i, i, i, i)
        for i in range(1, n_rows + 1)), db=ws.db)
    t = {"name": "items", "primary_key": "id", "updated_column": "updated_at"}
    if policy:
        t["on_incompatible_change"] = policy
    ws.write_config([t])
    r = ws.sync()
    expect_ok(r, "first sync")
    return ws


def cursor_of(ws):
    return ws.inspect("items")["tables"][0]["cursor"]


def events_like(ws, kind, column=None, action=None):
    return [e for e in events_of(ws, "items") if e["kind"] == kind
            and (column is None or e["column"] == column) and (action is None or e["action"] == action)]


def target_snapshot(ws):
    return bq_query("SELECT TO_JSON_STRING(t) FROM `%s.items` AS t ORDER BY id" % ws.dataset)


# ---- a recording stand-in in front of the emulator ---------------------------

class Recorder:
    """Forwards every request to the emulator and records it (which load
    jobs and which statements mbq sent)."""

    def __init__(self):
        self.requests = []
        upstream = os.environ["BIGQUERY_EMULATOR_HOST"]
        rec = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _answer(self, status, body, ctype="application/json", extra=()):
                self.send_response(status)
                for k, v in extra:
                    self.send_header(k, v)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self):
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    # a streamed upload (mbq's pipeline): read it whole
                    body = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        chunk = self.rfile.read(size) if size else b""
                        self.rfile.readline()  # the CRLF after each chunk
                        if not size:
                            break
                        body += chunk
                else:
                    n = int(self.headers.get("Content-Length") or 0)
                    body = self.rfile.read(n) if n else b""
                rec.requests.append((self.command, self.path, body))
                c = http.client.HTTPConnection(upstream, timeout=300)
                hdrs = {k: v for k, v in self.headers.items()
                        if k.lower() not in ("host", "connection", "transfer-encoding",
                                             "content-length")}
                c.request(self.command, self.path, body=body if body else None, headers=hdrs)
                r = c.getresponse()
                data = r.read()
                c.close()
                # A resumable upload session's Location and Range go back as they are.
                extra = [(k, v) for k, v in r.getheaders() if k.lower() in ("location", "range")]
                self._answer(r.status, data, r.getheader("Content-Type") or "application/json",
                             extra)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.endpoint = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def queries(self):
        out = []
        for m, p, b in self.requests:
            if m == "POST" and urllib.parse.urlparse(p).path.endswith("/jobs") and b.startswith(b"{"):
                q = json.loads(b).get("configuration", {}).get("query")
                if q:
                    out.append(q["query"])
        return out

    def loads(self):
        """The configuration.load of every load job sent (a multipart upload, or
        the request that opens a resumable session)."""
        out = []
        for m, p, b in self.requests:
            if m == "POST" and "/upload/" in p:
                start = b.index(b"{")
                # The JSON part only: the data after it may be gzip.
                meta, _ = json.JSONDecoder().raw_decode(b[start:].decode("utf-8", "replace"))
                out.append(meta["configuration"]["load"])
        return out


# ---- cases -------------------------------------------------------------------

def source_cursor(ws):
    """The source's high-water mark, as the journal writes a committed cursor."""
    return mysql("SELECT DATE_FORMAT(MAX(updated_at), '%Y-%m-%d %H:%i:%s.%f') FROM items",
                 db=ws.db)[0][0]


def test_added_columns_are_added_to_target_and_filled():
    """BigQuery: the new columns are added NULLABLE before the load; old rows
    read NULL, new and updated rows carry their values; the cursor moves."""
    ws = items_ws("add")
    mysql("ALTER TABLE items ADD COLUMN a INT AFTER id, ADD COLUMN b VARCHAR(10) AFTER code;"
          "UPDATE items SET a = 10, b = 'upd', updated_at = '2024-01-02 00:00:00' WHERE id = 1;"
          "INSERT INTO items (id, a, val, code, b, n, price, updated_at) "
          "VALUES (6, 60, 'v6', '106', 'bee', 6, 6.25, '2024-01-02 00:00:01')", db=ws.db)
    r = ws.sync()
    expect_ok(r, "sync after ADD COLUMN")
    types = bq_field_types(ws, "items")
    check_eq((types.get("a"), types.get("b")), ("INT64", "STRING"), "tables.get shows the added columns")
    cols = ["id", "a", "val", "code", "b", "n", "price", "updated_at"]
    check_eq(assert_target_equals_source(ws, "items", cols, "id", ["updated_at"]), 6, "rows")
    ab = {int(i): (x, y) for i, x, y in bq_query("SELECT id, a, b FROM `%s.items`" % ws.dataset)}
    check_eq(ab, {1: ("10", "upd"), 2: (None, None), 3: (None, None), 4: (None, None),
                  5: (None, None), 6: ("60", "bee")},
             "NULL in old rows, values in the updated and the new row")
    added = {e["column"]: e for e in events_like(ws, "schema.add_column", action="added")}
    check_eq(sorted(added), ["a", "b"], "one add_column event per added column")
    check_eq((added["a"]["new_type"], added["b"]["new_type"]), ("INT64", "STRING"), "event types")
    check_eq(cursor_of(ws), source_cursor(ws), "the cursor is committed")
    # The next run finds nothing to add and nothing to load.
    expect_ok(ws.sync(), "second sync")
    check_eq(len(events_like(ws, "schema.add_column", action="added")), 2, "events journaled once")
    check_eq(assert_target_equals_source(ws, "items", cols, "id", ["updated_at"]), 6, "rows")
    ws.cleanup()


def test_widen_int_to_bigint_unsigned():
    """INT -> BIGINT UNSIGNED maps INT64 -> NUMERIC, a widening BigQuery
    does in place (ALTER COLUMN SET DATA TYPE): existing values kept, the new
    row's 2^64-1 loaded exactly, the cursor moves."""
    ws = items_ws("widen_emu")
    mysql("ALTER TABLE items MODIFY n BIGINT UNSIGNED;"
          "INSERT INTO items (id, val, code, n, price, updated_at) "
          "VALUES (6, 'v6', '106', 18446744073709551615, 6.25, '2024-01-02 00:00:00')", db=ws.db)
    r = ws.sync()
    expect_ok(r, "sync after INT -> BIGINT UNSIGNED")
    check_eq(bq_field_types(ws, "items")["n"], "NUMERIC", "target column widened")
    check_eq(assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"]), 6, "rows")
    check_eq(bq_query("SELECT CAST(n AS STRING) FROM `%s.items` WHERE id = 6" % ws.dataset),
             [["18446744073709551615"]], "2^64-1 exact")
    ev = events_like(ws, "schema.type_change", "n", "widened")
    check_eq([(e["old_type"], e["new_type"]) for e in ev], [("INT64", "NUMERIC")], "widened event")
    check_eq(cursor_of(ws), source_cursor(ws), "the cursor is committed")
    ws.cleanup()


def test_widen_sends_alter_set_data_type_and_journals():
    """BIGINT UNSIGNED (INT64 -> NUMERIC) and DECIMAL(10,2) -> DECIMAL(45,10)
    (35 integer digits: NUMERIC -> BIGNUMERIC): the mapping changes, BigQuery can widen, mbq
    sends ALTER COLUMN SET DATA TYPE (recorded on its way to the emulator)
    and goes on: the run exits 0 and the target holds the source."""
    ws = items_ws("widen_alter")
    mysql("ALTER TABLE items MODIFY n BIGINT UNSIGNED, MODIFY price DECIMAL(45,10);"
          "UPDATE items SET price = 12345678901234567890123456789012345.0123456789, "
          "updated_at = '2024-01-02 00:00:00' WHERE id = 2", db=ws.db)
    rec = Recorder()
    try:
        r = ws.sync(env=ws.env(MBQ_E2E_BQ_ENDPOINT=rec.endpoint))
    finally:
        rec.close()
    expect_ok(r, "sync after the widenings")
    alters = [q for q in rec.queries() if "SET DATA TYPE" in q]
    p = "`%s`.`%s`.`items`" % (os.environ.get("MBQ_TEST_BQ_PROJECT", "mbq-test"), ws.dataset)
    check_eq(sorted(alters), sorted(["ALTER TABLE %s ALTER COLUMN `n` SET DATA TYPE NUMERIC" % p,
                                     "ALTER TABLE %s ALTER COLUMN `price` SET DATA TYPE BIGNUMERIC" % p]),
             "the ALTER statements sent")
    w = {e["column"]: (e["old_type"], e["new_type"]) for e in events_like(ws, "schema.type_change",
                                                                         action="widened")}
    check_eq(w, {"n": ("INT64", "NUMERIC"), "price": ("NUMERIC", "BIGNUMERIC")}, "widened events")
    check("widened column 'n' INT64 -> NUMERIC" in r.stderr, "the run reports it: %r" % r)
    types = bq_field_types(ws, "items")
    check_eq((types["n"], types["price"]), ("NUMERIC", "BIGNUMERIC"), "the target's types")
    check_eq(bq_query("SELECT CAST(price AS STRING) FROM `%s.items` WHERE id = 2" % ws.dataset),
             [["12345678901234567890123456789012345.0123456789"]], "the widened value, exact")
    check_eq(cursor_of(ws), source_cursor(ws), "the cursor is committed")
    ws.cleanup()


def test_compatible_type_change_keeps_syncing():
    ws = items_ws("compatible")
    mysql("ALTER TABLE items MODIFY val VARCHAR(200);"
          "UPDATE items SET val = REPEAT('x', 150), updated_at = '2024-01-02 00:00:00' WHERE id = 2;"
          "INSERT INTO items (id, val, code, n, price, updated_at) "
          "VALUES (6, REPEAT('y', 180), '106', 6, 6.25, '2024-01-02 00:00:01')", db=ws.db)
    r = ws.sync()
    expect_ok(r, "sync after VARCHAR(20) -> VARCHAR(200)")
    check_eq(bq_field_types(ws, "items")["val"], "STRING", "still STRING")
    check_eq(assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"]), 6, "rows")
    ev = events_like(ws, "schema.type_change", "val", "compatible")
    check_eq([(e["old_type"], e["new_type"]) for e in ev], [("varchar(20)", "varchar(200)")],
             "compatible event")
    ws.cleanup()


def test_incompatible_change_under_fail_stops_and_leaves_target():
    ws = items_ws("incompat_fail")
    before = target_snapshot(ws)
    cur = cursor_of(ws)
    mysql("ALTER TABLE items MODIFY code INT;"
          "UPDATE items SET code = 999, updated_at = '2024-01-02 00:00:00' WHERE id = 1", db=ws.db)
    r = ws.sync()
    check_eq(r.returncode, 1, "exit code: %r" % r)
    for s in ("column 'code' changed type", "BigQuery has STRING", "maps to INT64",
              "mbq-state reset items --full --yes", "on_incompatible_change: rebuild"):
        check(s in r.stderr, "error says %r: %r" % (s, r))
    check_eq(bq_field_types(ws, "items")["code"], "STRING", "target type untouched")
    check_eq(target_snapshot(ws), before, "target rows untouched")
    check_eq(cursor_of(ws), cur, "cursor did not move")
    ev = events_like(ws, "schema.type_change", "code", "stopped")
    check_eq([(e["old_type"], e["new_type"]) for e in ev], [("STRING", "INT64")], "stopped event")
    ws.cleanup()


def test_incompatible_change_under_rebuild_reloads_with_new_schema():
    """Policy rebuild: one WRITE_TRUNCATE load of the whole table into the
    target with the new schema (recorded on its way to the emulator), which
    replaces rows and schema at once (jobs.insert, writeDisposition
    WRITE_TRUNCATE); no MERGE; the cursor moves; the next run has nothing
    to rebuild."""
    ws = items_ws("incompat_rebuild", policy="rebuild")
    mysql("ALTER TABLE items MODIFY code INT;"
          "INSERT INTO items (id, val, code, n, price, updated_at) "
          "VALUES (6, 'v6', 106, 6, 6.25, '2024-01-02 00:00:00')", db=ws.db)
    rec = Recorder()
    try:
        r = ws.sync(env=ws.env(MBQ_E2E_BQ_ENDPOINT=rec.endpoint))
    finally:
        rec.close()
    expect_ok(r, "sync that rebuilds")
    loads = rec.loads()
    check_eq(len(loads), 1, "one load job")
    ld = loads[0]
    check_eq((ld["destinationTable"]["tableId"], ld["writeDisposition"]), ("items", "WRITE_TRUNCATE"),
             "a WRITE_TRUNCATE load straight into the target")
    types = {f["name"]: f["type"] for f in ld["schema"]["fields"]}
    check_eq(types, {"id": "INT64", "val": "STRING", "code": "INT64", "n": "INT64",
                     "price": "NUMERIC", "updated_at": "DATETIME"}, "the load's schema is the new one")
    check_eq([q for q in rec.queries() if q.startswith("MERGE")], [], "no MERGE")
    ev = events_like(ws, "schema.type_change", "code", "rebuild")
    check_eq([(e["old_type"], e["new_type"]) for e in ev], [("STRING", "INT64")], "rebuild event")
    check_eq(bq_field_types(ws, "items")["code"], "INT64", "the target has the new type")
    check_eq(assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"]), 6, "rows")
    t = ws.inspect("items")["tables"][0]
    check_eq(t["recent_runs"][0]["load_mode"], "replace", "full reload")
    check_eq(t["cursor"], source_cursor(ws), "the cursor is committed")
    check_eq(t["in_flight"], None, "no run left in flight")
    # The next run sees the new type in place: no second rebuild.
    r = ws.sync()
    expect_ok(r, "run after the rebuild")
    check_eq(len(events_like(ws, "schema.type_change", "code", "rebuild")), 1, "rebuilt once")
    ws.cleanup()


def test_dropped_column_is_kept_and_null_in_new_rows():
    ws = items_ws("drop")
    mysql("ALTER TABLE items DROP COLUMN n;"
          "UPDATE items SET val = 'upd', updated_at = '2024-01-02 00:00:00' WHERE id = 1;"
          "INSERT INTO items (id, val, code, price, updated_at) "
          "VALUES (6, 'v6', '106', 6.25, '2024-01-02 00:00:01')", db=ws.db)
    r = ws.sync()
    expect_ok(r, "sync after DROP COLUMN")
    check_eq(bq_field_types(ws, "items").get("n"), "INT64", "dropped column kept in BigQuery")
    rest = [c for c in COLS if c != "n"]
    check_eq(assert_target_equals_source(ws, "items", rest, "id", ["updated_at"]), 6, "rows")
    n = dict((int(a), b) for a, b in bq_query("SELECT id, n FROM `%s.items`" % ws.dataset))
    check_eq(n[2], "2", "history kept in untouched rows")
    check_eq(n[6], None, "NULL in new rows")
    check_eq(n[1], None, "NULL in updated rows (the MERGE sets a dropped column to NULL)")
    check_eq(len(events_like(ws, "schema.drop_column", "n", "kept")), 1, "drop event")
    check("column 'n' was dropped in MySQL: kept in BigQuery" in r.stderr, "reported: %r" % r)
    ws.cleanup()


def test_rename_is_reported_as_probable_rename_and_moves_no_data():
    ws = items_ws("rename")
    before = bq_query("SELECT id, val FROM `%s.items` ORDER BY id" % ws.dataset)
    mysql("ALTER TABLE items RENAME COLUMN val TO label", db=ws.db)
    r = ws.sync()
    expect_ok(r, "sync after RENAME COLUMN")
    check("probably a rename of 'val'" in r.stdout + r.stderr, "reported as a rename: %r" % r)
    ren = events_like(ws, "schema.probable_rename", "label", "reported")
    check_eq([(e["old_type"], e["new_type"]) for e in ren], [("val", "label")], "rename event")
    check_eq(len(events_like(ws, "schema.drop_column", "val")), 1, "drop of val reported")
    types = bq_field_types(ws, "items")
    check_eq((types.get("val"), types.get("label")), ("STRING", "STRING"), "both columns in the target")
    # No data moved from `val` to `label`: rows the run did not read keep
    # `val` and have no `label`; the row re-read at the cursor's boundary
    # (id 5: its line changed with the column's name) is written as MySQL
    # has it now, `label` filled and `val` NULL like any dropped column in
    # an updated row.
    src = dict(mysql("SELECT id, label FROM items", db=ws.db))
    got = bq_query("SELECT id, val, label FROM `%s.items` ORDER BY id" % ws.dataset)
    want = [[i, v, None] for i, v in before[:4]] + [["5", None, src["5"]]]
    check_eq(got, want, "old rows untouched, the re-read row as MySQL has it")
    check_eq(cursor_of(ws), source_cursor(ws), "the cursor is committed")
    ws.cleanup()


def test_primary_key_change_stops_and_reset_recovers():
    ws = items_ws("pk")
    mysql("ALTER TABLE items DROP PRIMARY KEY, ADD PRIMARY KEY (id, code)", db=ws.db)
    ws.write_config([{"name": "items", "primary_key": ["id", "code"], "updated_column": "updated_at"}])
    r = ws.sync()
    check_eq(r.returncode, 1, "exit code: %r" % r)
    check("primary key changed" in r.stderr and "mbq-state reset items --full --yes" in r.stderr,
          "error with the reset command: %r" % r)
    ev = events_like(ws, "schema.key_changed", action="stopped")
    check_eq([(e["old_type"], e["new_type"]) for e in ev], [("id", "id,code")], "key event")
    rr = ws.state_cmd("reset", "items", "--full", "--yes")
    check_eq(rr.returncode, 0, "reset: %r" % rr)
    expect_ok(ws.sync(), "sync after reset")
    check_eq(assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"]), 5, "rows")
    ws.cleanup()


def test_cursor_column_gone_stops_and_reset_recovers():
    ws = items_ws("cursor")
    mysql("ALTER TABLE items CHANGE updated_at modified_at DATETIME(6) NOT NULL", db=ws.db)
    r = ws.sync()
    check_eq(r.returncode, 1, "exit code: %r" % r)
    check("cursor column 'updated_at' is gone" in r.stderr
          and "mbq-state reset items --full --yes" in r.stderr, "error with the reset command: %r" % r)
    check_eq(len(events_like(ws, "schema.cursor_changed", "updated_at", "stopped")), 1, "event")
    ws.write_config([{"name": "items", "primary_key": "id", "updated_column": "modified_at"}])
    r = ws.sync()
    check_eq(r.returncode, 1, "a new cursor column also needs the reset: %r" % r)
    check("cursor column changed" in r.stderr and "mbq-state reset items --full --yes" in r.stderr,
          "error with the reset command: %r" % r)
    rr = ws.state_cmd("reset", "items", "--full", "--yes")
    check_eq(rr.returncode, 0, "reset: %r" % rr)
    r = ws.sync()
    # The full resync brings modified_at, a column the target lacks: added,
    # and filled in every row by the reload.
    expect_ok(r, "full resync after the reset")
    check_eq(bq_field_types(ws, "items").get("modified_at"), "DATETIME", "new cursor column added")
    cols = COLS[:-1] + ["modified_at"]
    check_eq(assert_target_equals_source(ws, "items", cols, "id", ["modified_at"]), 5, "rows")
    check_eq(ws.inspect("items")["tables"][0]["cursor"],
             mysql("SELECT DATE_FORMAT(MAX(modified_at), '%Y-%m-%d %H:%i:%s.%f') FROM items",
                   db=ws.db)[0][0], "the cursor is committed on the new column")
    ws.cleanup()


def test_dry_run_shows_each_change_and_applies_none():
    ws = items_ws("dry")
    mysql("ALTER TABLE items ADD COLUMN extra INT AFTER val, DROP COLUMN n, MODIFY val VARCHAR(50),"
          " MODIFY price DECIMAL(45,10)", db=ws.db)
    n_events = len(events_of(ws, "items"))
    types_before = bq_field_types(ws, "items")
    r = ws.sync("--dry-run")
    check_eq(r.returncode, 0, "dry run exit code: %r" % r)
    out = r.stdout
    for s in ("would add: added column 'extra' INT64", "dropped column 'n'",
              "column 'val' changed type varchar(20) -> varchar(50)",
              "would widen: column 'price' widened NUMERIC -> BIGNUMERIC"):
        check(s in out, "dry run shows %r: %r" % (s, r))
    check_eq(bq_field_types(ws, "items"), types_before, "target schema unchanged")
    check_eq(len(events_of(ws, "items")), n_events, "nothing journaled")
    ws.write_config([{"name": "items", "primary_key": "id", "updated_column": "updated_at",
                      "on_incompatible_change": "rebuild"}])
    mysql("ALTER TABLE items MODIFY code INT", db=ws.db)
    r = ws.sync("--dry-run")
    check_eq(r.returncode, 0, "dry run exit code: %r" % r)
    check("would rebuild: column 'code' changed type STRING -> INT64" in r.stdout, "rebuild shown: %r" % r)
    check_eq(bq_field_types(ws, "items"), types_before, "target schema unchanged")
    ws.cleanup()


def test_kill_between_bigquery_alter_and_journal_resumes():
    ws = items_ws("kill_altered")
    mysql("ALTER TABLE items ADD COLUMN c1 INT AFTER id", db=ws.db)
    r = ws.sync(env=ws.env(MBQ_FAULT="schema-check.altered"))
    check_eq(r.returncode, -9, "killed at schema-check.altered: %r" % r)
    check_eq(bq_field_types(ws, "items").get("c1"), "INT64", "the column was added before the kill")
    check_eq(events_like(ws, "schema.add_column", "c1"), [], "not journaled before the kill")
    r = ws.sync()
    expect_ok(r, "resumed run")
    check_eq(len(events_like(ws, "schema.add_column", "c1", "added")), 1, "journaled by the next run")
    check_eq(assert_target_equals_source(ws, "items", ["id", "c1"] + COLS[1:], "id",
                                         ["updated_at"]), 5, "rows")
    expect_ok(ws.sync(), "third run")
    check_eq(len(events_like(ws, "schema.add_column", "c1", "added")), 1, "journaled once")
    ws.cleanup()


def test_kill_after_widen_alter_resumes():
    ws = items_ws("kill_widen")
    mysql("ALTER TABLE items MODIFY n BIGINT UNSIGNED", db=ws.db)
    rec = Recorder()
    try:
        env = ws.env(MBQ_E2E_BQ_ENDPOINT=rec.endpoint, MBQ_FAULT="schema-check.altered")
        r = ws.sync(env=env)
        check_eq(r.returncode, -9, "killed at schema-check.altered: %r" % r)
        check_eq(len([q for q in rec.queries() if "SET DATA TYPE" in q]), 1, "ALTER sent before the kill")
        check_eq(bq_field_types(ws, "items")["n"], "NUMERIC", "BigQuery widened the column")
        check_eq(events_like(ws, "schema.type_change", "n", "widened"), [], "not journaled yet")
        n_alters = len([q for q in rec.queries() if "SET DATA TYPE" in q])
        r = ws.sync(env=ws.env(MBQ_E2E_BQ_ENDPOINT=rec.endpoint))
        expect_ok(r, "resumed run")
        check_eq(len([q for q in rec.queries() if "SET DATA TYPE" in q]), n_alters,
                 "the resumed run does not ALTER again")
    finally:
        rec.close()
    ev = events_like(ws, "schema.type_change", "n", "widened")
    check_eq([(e["old_type"], e["new_type"]) for e in ev], [("INT64", "NUMERIC")],
             "journaled once by the resumed run")
    check_eq(assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"]), 5, "rows")
    check_eq(cursor_of(ws), source_cursor(ws), "the cursor is committed")
    ws.cleanup()


def test_inspect_text_lists_schema_events():
    ws = items_ws("inspect")
    mysql("ALTER TABLE items DROP COLUMN n", db=ws.db)
    expect_ok(ws.sync())
    r = ws.state_cmd("inspect", "items")
    check_eq(r.returncode, 0, "inspect: %r" % r)
    lines = [l for l in r.stdout.splitlines() if "schema.drop_column" in l]
    check(len(lines) == 1 and "n" in lines[0] and "kept" in lines[0], "event line in the text: %r" % r)
    ws.cleanup()


if __name__ == "__main__":
    require_services()
    private_emulator()  # a fresh emulator of its own (mbqtest.py says why)
    run_cases([
        test_added_columns_are_added_to_target_and_filled,
        test_widen_int_to_bigint_unsigned,
        test_widen_sends_alter_set_data_type_and_journals,
        test_compatible_type_change_keeps_syncing,
        test_incompatible_change_under_fail_stops_and_leaves_target,
        test_incompatible_change_under_rebuild_reloads_with_new_schema,
        test_dropped_column_is_kept_and_null_in_new_rows,
        test_rename_is_reported_as_probable_rename_and_moves_no_data,
        test_primary_key_change_stops_and_reset_recovers,
        test_cursor_column_gone_stops_and_reset_recovers,
        test_dry_run_shows_each_change_and_applies_none,
        test_kill_between_bigquery_alter_and_journal_resumes,
        test_kill_after_widen_alter_resumes,
        test_inspect_text_lists_schema_events,
    ])
