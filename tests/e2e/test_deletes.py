#!/usr/bin/env python3
"""Deletes reach BigQuery (label `state`): tables[].deletes hard and soft
against the real MariaDB and the emulator, composite keys in several chunks,
the guard (max_delete_fraction), --dry-run, a kill at every point of a
reconciliation, and concurrent deletes and inserts while one runs. Each
case proves by content that the rows deleted in MySQL are gone (hard) or
flagged (soft) and that nothing else was removed."""
import os
import random
import sqlite3
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mbqtest import (Workspace, assert_target_equals_source, bq_query, check, check_eq,
                     check_no_sanitizer, expect_ok, mysql, private_emulator, require_services,
                     run_cases)

COLS = ["id", "val", "updated_at"]

ITEMS_DDL = """
CREATE TABLE items (
  id BIGINT NOT NULL PRIMARY KEY,
  val VARCHAR(100),
  updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
);
"""


def items_ws(name, n_rows=50, **table):
    ws = Workspace(name)
    mysql(ITEMS_DDL, db=ws.db)
    values = ",".join("(%d, 'v%d', '2024-01-01 00:00:00' + INTERVAL %d SECOND)" % (i, i, i)
                      for i in range(1, n_rows + 1))
    mysql("INSERT INTO items (id, val, updated_at) VALUES %s" % values, db=ws.db)
    t = {"name": "items", "primary_key": "id", "updated_column": "updated_at",
         "deletes": "hard", "reconcile_every": "0s"}
    t.update(table)
    ws.write_config([t])
    return ws


def reconciles(ws):
    """The journal's reconciliations, oldest first, as dicts."""
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(ws.state, "state.db"), uri=True)
    db.row_factory = sqlite3.Row
    rows = [dict(r) for r in db.execute("SELECT * FROM reconciles ORDER BY id")]
    db.close()
    return rows


def target_ids(ws, table="items", where=""):
    return sorted(int(r[0]) for r in bq_query("SELECT id FROM `%s.%s` %s" % (ws.dataset, table, where)))


def source_ids(ws, table="items"):
    return sorted(int(r[0]) for r in mysql("SELECT id FROM `%s`" % table, db=ws.db))


def test_hard_deletes_rows_gone_from_mysql_and_nothing_else():
    ws = items_ws("del_hard")
    r = ws.sync()
    expect_ok(r)
    check_eq(reconciles(ws)[-1]["rows_deleted"], 0, "nothing to delete after the first sync")
    mysql("DELETE FROM items WHERE id IN (3, 7, 20);"
          "UPDATE items SET val = 'changed' WHERE id = 4;"
          "INSERT INTO items (id, val) VALUES (51, 'new')", db=ws.db)
    metrics = os.path.join(ws.dir, "metrics.prom")
    r = ws.sync("--metrics-file", metrics)
    expect_ok(r)
    check("deleted 3 of 51 rows" in r.stderr, "log names the count: %r" % r)
    with open(metrics) as f:
        check('mbq_table_rows_deleted{table="items"} 3' in f.read(), "metric")
    ins = ws.inspect("items")["tables"][0]["reconciliations"][0]
    check_eq((ins["state"], ins["rows_deleted"], ins["target_rows"], ins["keys"]),
             ("done", 3, 51, 48), "mbq-state inspect shows the reconciliation")
    meta = bq_query("SELECT load_mode, rows_deleted FROM `%s.sync_metadata` WHERE status = "
                    "'reconciled' ORDER BY updated_at" % ws.dataset)
    check_eq(meta, [["reconcile-hard", "0"], ["reconcile-hard", "3"]],
             "one metadata row per reconciliation, with rows_deleted")
    check_eq(assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"]), 48, "rows")
    rec = reconciles(ws)[-1]
    check_eq((rec["state"], rec["mode"], rec["rows_deleted"], rec["target_rows"], rec["keys"]),
             ("done", "hard", 3, 51, 48), "journaled reconciliation")
    ws.cleanup()


def test_soft_flags_deleted_rows_and_clears_a_key_that_comes_back():
    ws = items_ws("del_soft", deletes="soft")
    expect_ok(ws.sync())
    mysql("DELETE FROM items WHERE id IN (3, 7, 9)", db=ws.db)
    r = ws.sync()
    expect_ok(r)
    check("flagged 3 of 50 rows" in r.stderr, "log: %r" % r)
    check_eq(target_ids(ws), list(range(1, 51)), "soft mode keeps every row")
    check_eq(target_ids(ws, where="WHERE _mbq_deleted"), [3, 7, 9], "the deleted keys are flagged")
    at = bq_query("SELECT COUNT(*) FROM `%s.items` WHERE _mbq_deleted AND _mbq_deleted_at IS NOT "
                  "NULL" % ws.dataset)
    check_eq(at, [["3"]], "flagged rows carry the time")
    # Back with a new cursor (the sync's MERGE clears the flag) and back with
    # an old cursor the sync has passed (the reconciliation clears it).
    mysql("INSERT INTO items (id, val) VALUES (3, 'back');"
          "INSERT INTO items (id, val, updated_at) VALUES (7, 'v7', '2024-01-01 00:00:07')",
          db=ws.db)
    r = ws.sync()
    expect_ok(r)
    check_eq(target_ids(ws, where="WHERE _mbq_deleted"), [9], "keys that came back are live")
    check_eq(bq_query("SELECT val, _mbq_deleted_at FROM `%s.items` WHERE id = 3" % ws.dataset),
             [["back", None]], "the row that came back has its new values and no flag time")
    live = [r for r in bq_query("SELECT id, val FROM `%s.items` WHERE COALESCE(_mbq_deleted, "
                                "FALSE) = FALSE ORDER BY id" % ws.dataset)]
    src = mysql("SELECT id, val FROM items ORDER BY id", db=ws.db)
    check_eq(live, src, "live target rows are the source rows")
    ws.cleanup()


def test_reinserted_key_deleted_in_hard_mode_comes_back():
    ws = items_ws("del_reinsert")
    expect_ok(ws.sync())
    mysql("DELETE FROM items WHERE id = 5", db=ws.db)
    expect_ok(ws.sync())
    check(5 not in target_ids(ws), "deleted")
    mysql("INSERT INTO items (id, val) VALUES (5, 'again')", db=ws.db)
    expect_ok(ws.sync())
    assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"])
    ws.cleanup()


def test_rows_newer_than_the_key_snapshot_are_never_deleted():
    """A target row whose cursor is above the snapshot's high-water mark is
    left alone even when its key is not among the staged keys: here the
    newest row is deleted in MySQL, and stays until the mark passes it."""
    ws = items_ws("del_bound")
    expect_ok(ws.sync())
    mysql("DELETE FROM items WHERE id IN (50, 10)", db=ws.db)  # 50 holds the max cursor
    r = ws.sync()
    expect_ok(r)
    check_eq(target_ids(ws), [i for i in range(1, 51) if i != 10],
             "id 50's cursor is above the new high-water mark: kept for now")
    mysql("INSERT INTO items (id, val) VALUES (60, 'later')", db=ws.db)
    expect_ok(ws.sync())
    assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"])
    ws.cleanup()


def test_integer_cursor_bounds_by_the_highest_id():
    """An append-only table with an integer cursor (the id itself): the
    bound is MAX(id) in the snapshot, an INT64 literal."""
    ws = Workspace("del_intcur")
    mysql("CREATE TABLE events (id BIGINT UNSIGNED NOT NULL PRIMARY KEY, v INT)", db=ws.db)
    mysql("INSERT INTO events VALUES %s" % ",".join("(%d, %d)" % (i, i) for i in range(1, 31)),
          db=ws.db)
    ws.write_config([{"name": "events", "primary_key": "id", "updated_column": "id",
                      "deletes": "hard", "reconcile_every": "0s"}])
    expect_ok(ws.sync())
    mysql("DELETE FROM events WHERE id IN (4, 30); INSERT INTO events VALUES (31, 31)", db=ws.db)
    r = ws.sync()
    expect_ok(r)
    check("deleted 2 of 31 rows" in r.stderr, "log: %r" % r)
    check_eq(target_ids(ws, "events"), source_ids(ws, "events"), "target keys are the source's")
    ws.cleanup()


COMPOSITE_DDL = """
CREATE TABLE pairs (
  region VARCHAR(20) NOT NULL,
  id INT NOT NULL,
  val VARCHAR(20),
  updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (region, id)
) DEFAULT CHARSET utf8mb4 COLLATE utf8mb4_general_ci;
"""


def test_composite_key_in_chunks():
    ws = Workspace("del_composite")
    mysql(COMPOSITE_DDL, db=ws.db)
    # Case and accents order differently in the collation than in bytes: the
    # chunks follow the index's order.
    regions = ["a", "B", "c", "É", "z", "Zz"]
    vals = ",".join("('%s', %d, 'x', '2024-01-01')" % (r, i) for r in regions for i in range(1, 8))
    mysql("INSERT INTO pairs (region, id, val, updated_at) VALUES %s" % vals, db=ws.db)
    ws.write_config([{"name": "pairs", "primary_key": "[region, id]",
                      "updated_column": "updated_at", "deletes": "hard",
                      "reconcile_every": "0s", "reconcile_chunk_rows": 4}])
    expect_ok(ws.sync())
    mysql("DELETE FROM pairs WHERE (region = 'B' AND id IN (2, 5)) OR (region = 'É' AND id = 7) "
          "OR region = 'Zz'", db=ws.db)
    r = ws.sync()
    expect_ok(r)
    check("deleted 10 of 42 rows" in r.stderr, "log: %r" % r)
    rec = reconciles(ws)[-1]
    check_eq((rec["keys"], rec["chunks"]), (32, 9), "32 keys in chunks of 4 (the last empty)")
    src = sorted(tuple(r) for r in mysql("SELECT region, id FROM pairs", db=ws.db))
    dst = sorted(tuple(r) for r in bq_query("SELECT region, CAST(id AS STRING) FROM `%s.pairs`"
                                            % ws.dataset))
    check_eq(dst, src, "target keys are the source keys")
    ws.cleanup()


def test_guard_refuses_to_wipe_the_target_then_the_override_applies():
    ws = items_ws("del_guard")
    expect_ok(ws.sync())
    mysql("DELETE FROM items WHERE id <= 40", db=ws.db)
    r = ws.sync()
    check_no_sanitizer(r)
    check_eq(r.returncode, 1, "a refused reconciliation fails the table: %r" % r)
    check("would delete 40 of 50 rows (80.0%)" in r.stderr and "max_delete_fraction" in r.stderr,
          "message names the fraction and the override: %r" % r)
    check_eq(len(target_ids(ws)), 50, "nothing deleted")
    rec = reconciles(ws)[-1]
    check_eq((rec["state"], rec["rows_deleted"], rec["target_rows"]), ("refused", 40, 50),
             "journaled as refused")
    ws.write_config([{"name": "items", "primary_key": "id", "updated_column": "updated_at",
                      "deletes": "hard", "reconcile_every": "0s", "max_delete_fraction": 0.9}])
    r = ws.sync()
    expect_ok(r)
    assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"])
    ws.cleanup()


def test_dry_run_counts_without_deleting():
    ws = items_ws("del_dry")
    expect_ok(ws.sync())
    mysql("DELETE FROM items WHERE id IN (1, 2, 3, 4, 5)", db=ws.db)
    n = len(reconciles(ws))
    r = ws.sync("--dry-run")
    expect_ok(r, "dry run")
    check("deletes: hard; would delete 5 of 50 rows" in r.stdout, "dry run counts: %r" % r)
    check_eq(len(target_ids(ws)), 50, "nothing deleted")
    check_eq(len(reconciles(ws)), n, "nothing journaled")
    ws.cleanup()


def test_soft_mode_refuses_a_mysql_column_named_like_its_flag():
    ws = Workspace("del_flagname")
    mysql("CREATE TABLE items (id BIGINT NOT NULL PRIMARY KEY, `_MBQ_Deleted` TINYINT, "
          "updated_at DATETIME(6) NOT NULL)", db=ws.db)
    mysql("INSERT INTO items VALUES (1, 0, '2024-01-01')", db=ws.db)
    ws.write_config([{"name": "items", "primary_key": "id", "updated_column": "updated_at",
                      "deletes": "soft"}])
    r = ws.sync()
    check_eq(r.returncode, 1, "the table fails: %r" % r)
    check("column '_MBQ_Deleted' has the BigQuery name '_MBQ_Deleted', which 'deletes: soft' "
          "adds to the target" in r.stderr + r.stdout, "the clash is named: %r" % r)
    check_no_sanitizer(r)
    ws.write_config([{"name": "items", "primary_key": "id", "updated_column": "updated_at",
                      "deletes": "hard"}])
    expect_ok(ws.sync(), "hard mode adds no column")
    check_eq(target_ids(ws), [1], "synced")
    ws.cleanup()


def test_reconcile_every_spaces_reconciliations():
    ws = items_ws("del_every", reconcile_every="1h")
    expect_ok(ws.sync())
    mysql("DELETE FROM items WHERE id = 8", db=ws.db)
    expect_ok(ws.sync())
    check_eq(len(reconciles(ws)), 1, "one reconciliation per hour")
    check(8 in target_ids(ws), "not reconciled yet")
    ws.cleanup()


def committed_cursor(ws):
    return ws.inspect("items")["tables"][0]["cursor"]


def check_nothing_wrongly_deleted(ws, what):
    """Every source row at or below the committed cursor is in the target
    (rows above it may not have been synced yet)."""
    cur = committed_cursor(ws)
    if not cur:
        return
    src = {int(r[0]) for r in mysql("SELECT id FROM items WHERE updated_at <= '%s'" % cur,
                                    db=ws.db)}
    missing = sorted(src - set(target_ids(ws)))
    check_eq(missing, [], "%s: source rows missing from the target" % what)


KILL_POINTS = [("reconcile.scan.enter", 1), ("reconcile.scan.done", 1),
               ("reconcile.load.enter", 1), ("reconcile.load.done", 1),
               ("reconcile.scan.enter", 3), ("reconcile.scan.done", 2),
               ("reconcile.load.enter", 3), ("reconcile.load.done", 2),
               ("reconcile.apply.enter", 1), ("reconcile.counted", 1),
               ("reconcile.apply.done", 1), ("reconcile.done.enter", 1)]


def kill_and_resume(name, points):
    """Killed (SIGKILL) at each of `points` in turn, with deletes, inserts and
    a re-insert of a deleted key between the kill and the resume: the next
    run finishes the reconciliation first, removes exactly the deleted rows
    and loses nothing."""
    ws = items_ws(name, n_rows=60, reconcile_chunk_rows=10)
    expect_ok(ws.sync())
    next_id = 100
    for k, (point, hit) in enumerate(points):
        victim, victim2 = 2 * k + 1, 2 * k + 2
        mysql("DELETE FROM items WHERE id IN (%d, %d); INSERT INTO items (id, val) VALUES (%d, 'n')"
              % (victim, victim2, next_id), db=ws.db)
        next_id += 1
        r = ws.sync(env=ws.env(MBQ_FAULT=point, MBQ_FAULT_HIT=hit))
        check(r.returncode in (-9, 137), "%s#%d: killed: %r" % (point, hit, r))
        check_nothing_wrongly_deleted(ws, "after a kill at %s#%d" % (point, hit))
        # Concurrent writes before the resume: a deleted key comes back, one
        # more row goes, one more arrives.
        mysql("INSERT INTO items (id, val) VALUES (%d, 'back'); DELETE FROM items WHERE id = %d;"
              "INSERT INTO items (id, val) VALUES (%d, 'n')" % (victim, 59 - k, next_id), db=ws.db)
        next_id += 1
        r = ws.sync()
        expect_ok(r, "resume after %s#%d" % (point, hit))
        check("resuming reconciliation" in r.stderr or point == "reconcile.done.enter",
              "%s#%d: the reconciliation resumed: %r" % (point, hit, r))
        check_nothing_wrongly_deleted(ws, "after the resume from %s#%d" % (point, hit))
        assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"])
        states = [x["state"] for x in reconciles(ws)]
        check(all(s == "done" for s in states), "%s#%d: every reconciliation done: %s"
              % (point, hit, states))
    ws.cleanup()


def test_kill_while_reading_the_first_chunk():
    kill_and_resume("del_kill1", KILL_POINTS[0:2])


def test_kill_before_and_after_the_first_load():
    kill_and_resume("del_kill2", KILL_POINTS[2:4])


def test_kill_while_reading_a_later_chunk():
    kill_and_resume("del_kill3", KILL_POINTS[4:6])


def test_kill_while_loading_a_later_chunk_and_at_apply():
    kill_and_resume("del_kill4", KILL_POINTS[6:9])


def test_kill_around_the_statement():
    kill_and_resume("del_kill5", KILL_POINTS[9:12])


def test_concurrent_deletes_and_inserts_during_reconciliation():
    """A writer deletes, inserts, updates and re-inserts keys while syncs
    with reconciliations in small chunks run: after every run no source row
    at or below the committed cursor is missing from the target, and once
    the writer stops one run makes the target equal the source."""
    ws = items_ws("del_concurrent", n_rows=300, reconcile_chunk_rows=25, lookback="2s")
    expect_ok(ws.sync())
    stop = threading.Event()
    errors = []

    def writer():
        rnd = random.Random(7)
        nid = 1000
        try:
            while not stop.is_set():
                op = rnd.random()
                if op < 0.35:
                    mysql("DELETE FROM items WHERE id = %d" % rnd.randint(1, nid), db=ws.db)
                elif op < 0.6:
                    nid += 1
                    mysql("INSERT INTO items (id, val) VALUES (%d, 'w')" % nid, db=ws.db)
                elif op < 0.8:
                    mysql("INSERT IGNORE INTO items (id, val) VALUES (%d, 'again')"
                          % rnd.randint(1, 300), db=ws.db)
                else:
                    mysql("UPDATE items SET val = 'u' WHERE id = %d" % rnd.randint(1, nid), db=ws.db)
                time.sleep(0.02)
        except Exception as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    th = threading.Thread(target=writer)
    th.start()
    try:
        for i in range(4):
            r = ws.sync("--log-level", "debug")
            expect_ok(r, "sync %d under writes" % i)
            check("reconcile" in r.stderr, "a reconciliation ran: %r" % r)
            check_nothing_wrongly_deleted(ws, "run %d under writes" % i)
    finally:
        stop.set()
        th.join()
    check_eq(errors, [], "writer errors")
    expect_ok(ws.sync())
    time.sleep(2.1)  # past the lookback: the final run's mark covers every write
    mysql("INSERT INTO items (id, val) VALUES (999999, 'last')", db=ws.db)
    expect_ok(ws.sync())
    assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"])
    check(sum(x["rows_deleted"] or 0 for x in reconciles(ws)) > 0, "rows were deleted")
    ws.cleanup()


CASES = [
    test_hard_deletes_rows_gone_from_mysql_and_nothing_else,
    test_soft_flags_deleted_rows_and_clears_a_key_that_comes_back,
    test_reinserted_key_deleted_in_hard_mode_comes_back,
    test_rows_newer_than_the_key_snapshot_are_never_deleted,
    test_composite_key_in_chunks,
    test_integer_cursor_bounds_by_the_highest_id,
    test_guard_refuses_to_wipe_the_target_then_the_override_applies,
    test_dry_run_counts_without_deleting,
    test_soft_mode_refuses_a_mysql_column_named_like_its_flag,
    test_reconcile_every_spaces_reconciliations,
    test_kill_while_reading_the_first_chunk,
    test_kill_before_and_after_the_first_load,
    test_kill_while_reading_a_later_chunk,
    test_kill_while_loading_a_later_chunk_and_at_apply,
    test_kill_around_the_statement,
    test_concurrent_deletes_and_inserts_during_reconciliation,
]

if __name__ == "__main__":
    require_services()
    private_emulator()  # a fresh emulator of its own, and one per case (mbqtest.py says why)
    only = os.environ.get("MBQ_E2E_ONLY")
    run_cases([c for c in CASES if not only or only in c.__name__], fresh_emulator_every=1)
