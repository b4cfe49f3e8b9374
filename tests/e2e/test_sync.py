#!/usr/bin/env python3
"""End-to-end tests of `mbq sync`, `mbq check` and `mbq-state` against the real
MariaDB and the BigQuery emulator (label `state`). Each case works in its own
database and dataset and proves one behaviour by content."""
import fcntl
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mbqtest import (Workspace, assert_target_equals_source, bq_query, bq_table, check, check_eq,
                     expect_ok, mysql, require_services, run, run_cases, private_emulator)

COLS = ["id", "val", "n", "updated_at"]

ITEMS_DDL = """
CREATE TABLE items (
  id BIGINT NOT NULL PRIMARY KEY,
  val VARCHAR(100),
  n INT,
  updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
);
"""


def items_ws(name, n_rows=50, table_extra=None, **cfg):
    ws = Workspace(name)
    mysql(ITEMS_DDL, db=ws.db)
    if n_rows:
        values = ",".join("(%d, 'v%d', %d, '2024-01-01 00:00:%02d.000000')" % (i, i, i, i % 60)
                          for i in range(1, n_rows + 1))
        mysql("INSERT INTO items (id, val, n, updated_at) VALUES %s" % values, db=ws.db)
    t = {"name": "items", "primary_key": "id", "updated_column": "updated_at"}
    t.update(table_extra or {})
    ws.write_config([t], **cfg)
    return ws


def test_initial_sync_loads_every_row_and_commits_cursor():
    ws = items_ws("initial")
    r = ws.sync()
    expect_ok(r)
    check("streamed while extracting" in r.stderr, "the first load streams: %r" % r)
    check_eq(assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"]), 50, "rows")
    st = ws.inspect("items")
    t = st["tables"][0]
    check_eq(t["cursor"], "2024-01-01 00:00:50.000000", "committed cursor")
    check_eq(t["in_flight"], None, "no run in flight")
    run0 = t["recent_runs"][0]
    check_eq(run0["load_mode"], "replace", "first sync loads straight into the target")
    check_eq(run0["merge_job_id"], None, "first sync runs no MERGE")
    ws.cleanup()


def test_first_sync_without_streaming_loads_from_the_file():
    ws = items_ws("nostream", extra_bigquery="stream_load: false")
    r = ws.sync("--log-level", "debug")
    expect_ok(r)
    check("streamed" not in r.stderr, "no stream when stream_load is off: %r" % r)
    check_eq(assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"]), 50, "rows")
    # A first sync reads in key order (no filesort of the whole table); an
    # incremental window in cursor order.
    check("ORDER BY `id`" in r.stderr and "ORDER BY `updated_at`" not in r.stderr,
          "first sync in key order: %r" % r)
    mysql("UPDATE items SET val = 'x' WHERE id = 1", db=ws.db)
    r = ws.sync("--log-level", "debug")
    expect_ok(r)
    check("ORDER BY `updated_at`, `id`" in r.stderr, "a window in cursor order: %r" % r)
    assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"])
    ws.cleanup()


def test_incremental_sync_upserts_changes_and_boundary_ties():
    ws = items_ws("incremental")
    expect_ok(ws.sync())
    # Updates, inserts, and a new row sharing the committed cursor's exact
    # timestamp (a late commit at the boundary): all must arrive.
    mysql("UPDATE items SET val = 'changed', updated_at = '2024-01-02 00:00:00' WHERE id IN (3, 7);"
          "INSERT INTO items VALUES (100, 'tie', 0, '2024-01-01 00:00:50.000000');"
          "INSERT INTO items VALUES (101, 'new', 1, '2024-01-03 00:00:00');", db=ws.db)
    r = ws.sync()
    expect_ok(r)
    check_eq(assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"]), 52, "rows")
    t = ws.inspect("items")["tables"][0]
    check_eq(t["cursor"], "2024-01-03 00:00:00.000000", "cursor moves to the new high")
    check_eq(t["recent_runs"][0]["load_mode"], "merge", "incremental runs MERGE")
    ws.cleanup()


def test_unchanged_table_runs_no_job():
    ws = items_ws("unchanged", table_extra={"lookback": "10s"})
    expect_ok(ws.sync())
    # The very next run, though it re-reads the boundary and the lookback
    # window, finds the same rows and runs no job.
    r = ws.sync()
    expect_ok(r)
    run0 = ws.inspect("items")["tables"][0]["recent_runs"][0]
    check_eq(run0["load_job_id"], None, "an unchanged table loads nothing")
    check_eq(run0["merge_job_id"], None, "an unchanged table merges nothing")
    check("no changes" in r.stderr, "log says no changes: %r" % r)
    meta = bq_query("SELECT COUNT(*) FROM `%s.sync_metadata`" % ws.dataset)
    check_eq(meta, [["1"]], "no metadata job either: one mirrored run (the first)")
    # A change inside the lookback window is not mistaken for no change.
    # (updated_at kept: the row stays inside [cursor - lookback, cursor])
    mysql("UPDATE items SET val = 'touched', updated_at = updated_at WHERE id = 45", db=ws.db)
    r = ws.sync()
    expect_ok(r)
    check(ws.inspect("items")["tables"][0]["recent_runs"][0]["merge_job_id"] is not None,
          "a changed row inside the window is merged")
    assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"])
    ws.cleanup()


def test_second_sync_while_one_holds_the_lock_exits_75():
    ws = items_ws("lock", n_rows=1)
    os.makedirs(ws.state, exist_ok=True)
    with open(os.path.join(ws.state, "lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        r = ws.sync()
    check_eq(r.returncode, 75, "exit code with the lock held: %r" % r)
    check("holds the lock" in r.stderr, "message: %r" % r)
    check(bq_table(ws.dataset, "items") is None, "nothing was done")
    ws.cleanup()


def test_dry_run_prints_plan_and_changes_nothing():
    ws = items_ws("dryrun")
    r = ws.sync("--dry-run")
    expect_ok(r, "dry run")
    check("would create table 'items'" in r.stdout, "plan names the new target: %r" % r)
    check("first sync" in r.stdout, "plan names the window: %r" % r)
    check(not os.path.exists(os.path.join(ws.state, "state.db")), "no journal written")
    check(bq_table(ws.dataset, "items") is None, "no table created")
    expect_ok(ws.sync())
    mysql("ALTER TABLE items ADD COLUMN extra INT", db=ws.db)
    r = ws.sync("--dry-run")
    check("would add: added column 'extra' INT64" in r.stdout, "dry run shows the column: %r" % r)
    tbl = bq_table(ws.dataset, "items")
    check("extra" not in [f["name"] for f in tbl["schema"]["fields"]], "dry run added nothing")
    ws.cleanup()


def test_check_validates_tables_keys_and_cursor():
    ws = items_ws("check", n_rows=1)
    r = run([os.environ["MBQ_BIN"], "check", "--config", ws.config], ws.env())
    check_eq(r.returncode, 0, "check on a good config: %r" % r)
    check("ok    table 'items'" in r.stdout, "table checked: %r" % r)
    # What the configuration guarantees about late commits is said.
    check("note  table 'items': no lookback" in r.stdout, "no lookback noted: %r" % r)
    ws.write_config([{"name": "items", "primary_key": "id", "updated_column": "updated_at",
                      "lookback": "5m"}])
    r = run([os.environ["MBQ_BIN"], "check", "--config", ws.config], ws.env())
    check_eq(r.returncode, 0, "check with a lookback: %r" % r)
    check("timestamp cursor, lookback 300 s" in r.stdout and "note" not in r.stdout,
          "the lookback is shown, no note: %r" % r)
    ws.write_config([{"name": "items", "primary_key": "id", "updated_column": "nope"},
                     {"name": "missing", "primary_key": "id"}])
    r = run([os.environ["MBQ_BIN"], "check", "--config", ws.config], ws.env())
    check_eq(r.returncode, 1, "check with bad tables: %r" % r)
    check("nope" in r.stdout and "missing" in r.stdout, "names the column and table: %r" % r)
    check(bq_table(ws.dataset, "items") is None, "check created nothing")
    ws.cleanup()


def test_one_failing_table_does_not_stop_the_others():
    ws = items_ws("partial")
    ws.write_config([{"name": "nosuchtable", "primary_key": "id", "updated_column": "updated_at"},
                     {"name": "items", "primary_key": "id", "updated_column": "updated_at"}])
    r = ws.sync()
    check_eq(r.returncode, 1, "exit code when one table fails: %r" % r)
    check("nosuchtable" in r.stderr, "error names the table: %r" % r)
    assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"])
    st = ws.inspect()
    bad = [t for t in st["tables"] if t["name"] == "nosuchtable"][0]
    check_eq(bad["consecutive_failures"], 1, "failure counted")
    ws.cleanup()


def test_full_refresh_table_replaces_content():
    ws = items_ws("full", table_extra={"mode": "full"})
    ws.write_config([{"name": "items", "primary_key": "id", "mode": "full"}])
    expect_ok(ws.sync())
    mysql("DELETE FROM items WHERE id <= 10; UPDATE items SET val = 'x' WHERE id = 20", db=ws.db)
    expect_ok(ws.sync())
    check_eq(assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"]), 40,
             "deleted rows are gone after a full refresh")
    ws.cleanup()


def test_integer_cursor():
    ws = Workspace("intcursor")
    mysql("CREATE TABLE events (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, "
          "payload VARCHAR(50));"
          "INSERT INTO events (payload) VALUES ('a'),('b'),('c');", db=ws.db)
    ws.write_config([{"name": "events", "primary_key": "id", "updated_column": "id"}])
    expect_ok(ws.sync())
    mysql("INSERT INTO events (payload) VALUES ('d'),('e')", db=ws.db)
    expect_ok(ws.sync())
    assert_target_equals_source(ws, "events", ["id", "payload"], "id")
    t = ws.inspect("events")["tables"][0]
    check_eq(t["cursor"], "5", "integer cursor")
    check_eq(t["cursor_kind"], "integer", "cursor kind detected from the column")
    ws.cleanup()


def test_reset_validates_moves_and_clears_cursor():
    ws = items_ws("reset")
    expect_ok(ws.sync())
    r = ws.state_cmd("reset", "items", "--cursor", "not-a-time", "--yes")
    check_eq(r.returncode, 2, "unparseable cursor: %r" % r)
    check("cannot parse cursor value 'not-a-time'" in r.stderr, "message: %r" % r)
    r = ws.state_cmd("reset", "items", "--full")
    check_eq(r.returncode, 0, "reset without --yes: %r" % r)
    check("nothing changed" in r.stdout, "says nothing changed: %r" % r)
    check_eq(ws.inspect("items")["tables"][0]["cursor"], "2024-01-01 00:00:50.000000",
             "cursor untouched without --yes")
    r = ws.state_cmd("reset", "items", "--cursor", "2024-01-01 00:00:30", "--yes")
    check_eq(r.returncode, 0, "reset --cursor: %r" % r)
    st = ws.inspect("items")
    check_eq(st["tables"][0]["cursor"], "2024-01-01 00:00:30.000000", "cursor moved")
    check(any(e["kind"] == "reset" for e in st["events"]), "reset journaled as an event")
    r = ws.state_cmd("reset", "items", "--full", "--yes")
    check_eq(r.returncode, 0, "reset --full: %r" % r)
    check_eq(ws.inspect("items")["tables"][0]["cursor"], None, "cursor cleared")
    mysql("DELETE FROM items WHERE id > 40", db=ws.db)
    expect_ok(ws.sync())
    # A full resync replaces the target: the deleted rows are gone too.
    check_eq(assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"]), 40, "rows")
    ws.cleanup()


def test_metadata_mirror_failure_is_retried_next_run():
    ws = items_ws("mirror")
    # A metadata table whose schema cannot take mbq's rows makes the mirror
    # fail; the data must still commit, and the next run must mirror it.
    from mbqtest import bq_request
    bq_request("POST", "/datasets", {"datasetReference": {"datasetId": ws.dataset,
                                                          "projectId": "mbq-test"}})
    bq_request("POST", "/datasets/%s/tables" % ws.dataset,
               {"tableReference": {"projectId": "mbq-test", "datasetId": ws.dataset,
                                   "tableId": "sync_metadata"},
                "schema": {"fields": [{"name": "something_else", "type": "INT64"}]}})
    r = ws.sync()
    check_eq(r.returncode, 0, "a failed mirror does not fail the run: %r" % r)
    check("metadata mirror to BigQuery failed" in r.stderr, "warned: %r" % r)
    assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"])
    check_eq(ws.inspect("items")["tables"][0]["recent_runs"][0]["mirror"], "pending",
             "mirror pending in the journal")
    from mbqtest import bq_request as req
    req("DELETE", "/datasets/%s/tables/sync_metadata" % ws.dataset)
    r = ws.sync()
    expect_ok(r)
    rows = bq_query("SELECT table_name, last_sync_timestamp, rows_synced, status FROM "
                    "`%s.sync_metadata` ORDER BY table_run_id" % ws.dataset)
    check(len(rows) >= 1 and rows[0][0] == "items" and rows[0][1] == "2024-01-01 00:00:50.000000"
          and rows[0][2] == "50", "mirrored row of the first run: %r" % rows)
    check_eq(ws.inspect("items")["tables"][0]["recent_runs"][1]["mirror"], "done", "mirrored")
    ws.cleanup()


def test_config_error_exits_2_with_line_and_column():
    ws = items_ws("badconfig", n_rows=0)
    with open(ws.config, "a") as f:
        f.write("tabels: []\n")
    r = ws.sync()
    check_eq(r.returncode, 2, "config error exit code: %r" % r)
    check("line" in r.stderr and "column" in r.stderr and "tabels" in r.stderr, "message: %r" % r)
    ws.cleanup()


def test_unreachable_mysql_fails_every_table_with_exit_69():
    ws = items_ws("unreachable", n_rows=0)
    cfg = open(ws.config).read().replace("port: %s" % os.environ["MBQ_TEST_MYSQL_PORT"], "port: 1")
    open(ws.config, "w").write(cfg)
    r = ws.sync()
    check_eq(r.returncode, 69, "exit code: %r" % r)
    check("cannot connect to MySQL at 127.0.0.1:1" in r.stderr, "message: %r" % r)
    check(os.environ["MBQ_TEST_MYSQL_RO_PASSWORD"] not in r.stderr + r.stdout, "no password")
    ws.cleanup()


JOB_TABLES = ["t1", "t2", "t3", "t4"]


def jobs_ws(name, tables=JOB_TABLES, n_rows=30):
    ws = Workspace(name)
    for t in tables:
        mysql(ITEMS_DDL.replace("CREATE TABLE items", "CREATE TABLE " + t), db=ws.db)
        mysql("INSERT INTO %s (id, val, n, updated_at) SELECT seq, CONCAT('v', seq), seq, "
              "'2024-01-01' + INTERVAL seq SECOND FROM seq_1_to_%d" % (t, n_rows), db=ws.db)
    ws.write_config([{"name": t, "primary_key": "id", "updated_column": "updated_at"}
                     for t in tables])
    return ws


def table_order(stderr):
    """The tables named by the log lines ('[t2/extract] ...'), in order."""
    return [line.split("[", 1)[1].split("/", 1)[0] for line in stderr.splitlines()
            if "] " in line and "[" in line and "/" in line.split("[", 1)[1].split("]")[0]]


def interleaved(order):
    """True when some table's log lines are split by another table's: tables
    ran at the same time. One after another, each table's lines are one block."""
    seen, last = set(), None
    for t in order:
        if t != last and t in seen:
            return True
        seen.add(t)
        last = t
    return False


def check_jobs_tables(ws, tables=JOB_TABLES):
    for t in tables:
        assert_target_equals_source(ws, t, COLS, "id", ["updated_at"])
    for t in ws.inspect()["tables"]:
        if t["name"] not in tables:
            continue
        check_eq(t["in_flight"], None, "%s: no run in flight" % t["name"])
        want = mysql("SELECT DATE_FORMAT(MAX(updated_at), '%%Y-%%m-%%d %%H:%%i:%%s.%%f') FROM %s"
                     % t["name"], db=ws.db)[0][0]
        check_eq(t["cursor"], want, "%s: committed cursor is the source's maximum" % t["name"])


def change_every_table(ws, n, tables=JOB_TABLES):
    for t in tables:
        # updated_at moves to now (ON UPDATE CURRENT_TIMESTAMP(6)), as in production
        mysql("UPDATE %s SET val = 'changed%d' WHERE id IN (2, 3); "
              "INSERT INTO %s (id, val, n) VALUES (%d, 'new', 0)" % (t, n, t, 1000 + n), db=ws.db)


def test_jobs_sync_tables_at_the_same_time():
    # The --jobs cases come last and run many jobs: a fresh emulator for
    # them, before the long-lived one runs out of memory (README, emulator
    # divergence 23; the patched emulator's table rebuilds run more
    # statements through its engine).
    private_emulator()
    ws = jobs_ws("jobs")
    r = ws.sync("--jobs", "3")
    expect_ok(r)
    check("syncing 4 tables, 3 at a time" in r.stderr, "workers announced: %r" % r)
    check(interleaved(table_order(r.stderr)), "tables ran at the same time: %r" % r)
    check_jobs_tables(ws)
    # Incremental windows (stage + MERGE) in parallel.
    change_every_table(ws, 1)
    r = ws.sync("--jobs", "4")
    expect_ok(r)
    check(interleaved(table_order(r.stderr)), "incremental tables at the same time: %r" % r)
    check_jobs_tables(ws)
    # The control: without --jobs each table's lines form one block.
    change_every_table(ws, 2)
    r = ws.sync()
    expect_ok(r)
    check(not interleaved(table_order(r.stderr)), "--jobs 1: one after another: %r" % r)
    check("at a time" not in r.stderr, "no workers without --jobs: %r" % r)
    check_jobs_tables(ws)
    # sync.jobs in the config does the same; --jobs overrides it.
    ws.write_config([{"name": t, "primary_key": "id", "updated_column": "updated_at"}
                     for t in JOB_TABLES], extra="sync:\n  jobs: 3")
    change_every_table(ws, 3)
    r = ws.sync()
    expect_ok(r)
    check("syncing 4 tables, 3 at a time" in r.stderr, "sync.jobs from the config: %r" % r)
    check_jobs_tables(ws)
    change_every_table(ws, 4)
    r = ws.sync("--jobs", "1")
    expect_ok(r)
    check("at a time" not in r.stderr, "--jobs 1 overrides sync.jobs: %r" % r)
    check_jobs_tables(ws)
    ws.cleanup()


def test_jobs_one_failing_table_does_not_stop_the_others():
    ws = jobs_ws("jobsfail", tables=["t1", "t2", "t3"])
    ws.write_config([{"name": t, "primary_key": "id", "updated_column": "updated_at"}
                     for t in ["t1", "nosuchtable", "t2", "t3"]])
    r = ws.sync("--jobs", "2")
    check_eq(r.returncode, 1, "exit code when one table fails: %r" % r)
    check("nosuchtable" in r.stderr, "the error names the table: %r" % r)
    check_jobs_tables(ws, ["t1", "t2", "t3"])
    bad = [t for t in ws.inspect()["tables"] if t["name"] == "nosuchtable"][0]
    check_eq(bad["consecutive_failures"], 1, "failure journaled by its worker")
    ws.cleanup()


def test_jobs_worker_that_cannot_connect_leaves_its_tables_to_the_others():
    # A MySQL user allowed one connection, the run's own (held for the whole
    # run): none of the three workers can connect. Every table must still
    # sync, on the run's connection.
    ws = jobs_ws("jobslimit")
    mysql("DROP USER IF EXISTS 'mbq_limited'@'%%';"
          "CREATE USER 'mbq_limited'@'%%' IDENTIFIED BY 'limited-pw' "
          "WITH MAX_USER_CONNECTIONS 1;"
          "GRANT SELECT ON `%s`.* TO 'mbq_limited'@'%%'" % ws.db)
    cfg = open(ws.config).read().replace("user: %s" % os.environ["MBQ_TEST_MYSQL_RO_USER"],
                                         "user: mbq_limited")
    open(ws.config, "w").write(cfg)
    r = ws.sync("--jobs", "4", env=ws.env(MBQ_E2E_MYSQL_PASSWORD="limited-pw"))
    expect_ok(r)
    check_eq(r.stderr.count("a parallel worker cannot connect"), 3,
             "the workers over the user's limit leave: %r" % r)
    check("limited-pw" not in r.stderr, "no password in the warning")
    check_jobs_tables(ws)
    mysql("DROP USER 'mbq_limited'@'%'")
    ws.cleanup()


def test_jobs_out_of_range_is_a_usage_error():
    ws = items_ws("jobsbad", n_rows=0)
    for bad in ("0", "33", "x", "", "-1"):
        r = ws.sync("--jobs", bad)
        check_eq(r.returncode, 2, "--jobs %r: %r" % (bad, r))
        check("--jobs" in r.stderr, "message names the option: %r" % r)
    ws.cleanup()


if __name__ == "__main__":
    require_services()
    private_emulator()  # a fresh emulator of its own (mbqtest.py says why)
    run_cases([
        test_initial_sync_loads_every_row_and_commits_cursor,
        test_first_sync_without_streaming_loads_from_the_file,
        test_incremental_sync_upserts_changes_and_boundary_ties,
        test_unchanged_table_runs_no_job,
        test_second_sync_while_one_holds_the_lock_exits_75,
        test_dry_run_prints_plan_and_changes_nothing,
        test_check_validates_tables_keys_and_cursor,
        test_one_failing_table_does_not_stop_the_others,
        test_full_refresh_table_replaces_content,
        test_integer_cursor,
        test_reset_validates_moves_and_clears_cursor,
        test_metadata_mirror_failure_is_retried_next_run,
        test_config_error_exits_2_with_line_and_column,
        test_unreachable_mysql_fails_every_table_with_exit_69,
        test_jobs_sync_tables_at_the_same_time,
        test_jobs_one_failing_table_does_not_stop_the_others,
        test_jobs_worker_that_cannot_connect_leaves_its_tables_to_the_others,
        test_jobs_out_of_range_is_a_usage_error,
    ], fresh_emulator_every=6)
