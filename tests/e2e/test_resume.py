#!/usr/bin/env python3
"""Resume, then catch up (label `crash`).

A sync killed under continuous writes leaves a table run in flight whose
snapshot is older than the next run's start. ONE `mbq sync` must then finish
that run AND sync what changed since, so that its exit 0 means "every table
is current as of the run's start": after the writers stop, one sync, and the
target equals the source row for row.

Also here, what happens when BigQuery loses a table under mbq:
- the target vanished while a cursor is committed (a dataset's default table
  expiration, the sandbox's 60 days, someone dropped it): mbq stops the table
  with the reset command (default), or reloads it in full
  (`on_missing_target: reload`); never recreates it empty and goes on;
- the staging table of a merge expired before the MERGE ran: the run goes
  back to stage (the journaled file, if its checksum still matches) or to
  extract, and completes."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mbqtest import (Workspace, assert_target_equals_source, bq_request, bq_table, check,
                     check_eq, events_of, expect_ok, mysql, private_emulator, require_services,
                     run, run_cases)

COLS = ["id", "val", "n", "updated_at"]


def make_ws(name, rows=40, full=False, extra_table="", mail=False):
    ws = Workspace(name)
    mysql("CREATE TABLE items (id BIGINT NOT NULL PRIMARY KEY, val VARCHAR(200), n INT, "
          "updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) "
          "ON UPDATE CURRENT_TIMESTAMP(6))", db=ws.db)
    mysql("INSERT INTO items (id, val, n, updated_at) VALUES "
          + ",".join("(%d, 'v%d', %d, '2024-01-01 00:00:%02d.000000')" % (i, i, i, i % 30)
                     for i in range(1, rows + 1)), db=ws.db)
    t = {"name": "items", "primary_key": "id"}
    if not full:
        t.update({"updated_column": "updated_at", "lookback": "3s"})
    extra = ""
    if mail:
        # Unique per run: the SMTP sink's maildir outlives a test.
        ws.rcpt = "%s-%s@alerts.test" % (name, os.path.basename(ws.dir).rsplit("-", 1)[-1].lower())
        extra = "\n".join(["alerting:", "  email:", "    host: 127.0.0.1",
                           "    port: %s" % os.environ["MBQ_TEST_SMTP_PORT"], "    tls: none",
                           "    from: mbq@alerts.test", "    to: [%s]" % ws.rcpt,
                           "    on: failure"])
    ws.write_config([t], extra_bigquery=extra_table, extra=extra)
    return ws


def mails(ws):
    """(subject, body) of each alert mail the SMTP sink received for ws."""
    import email
    import email.policy
    import glob
    import json
    out = []
    for meta_path in sorted(glob.glob(os.path.join(os.environ["MBQ_TEST_SMTP_MAILDIR"], "*.json")),
                            key=lambda p: int(os.path.basename(p).split(".")[0])):
        with open(meta_path) as f:
            meta = json.load(f)
        if ws.rcpt in meta["rcpt_tos"]:
            with open(meta_path[:-5] + ".eml", "rb") as f:
                msg = email.message_from_bytes(f.read(), policy=email.policy.default)
            out.append((str(msg["subject"]), msg.get_content()))
    return out


class Churn:
    """Writes from another connection while syncs run and are killed: each
    transaction inserts a row and updates two others (several statements,
    one commit). A writer error fails the test (check())."""

    def __init__(self, ws, start_id):
        self.ws, self.next_id, self.stop = ws, start_id, threading.Event()
        self.errors, self.commits = [], 0
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        while not self.stop.is_set():
            i = self.next_id
            try:
                mysql("START TRANSACTION;"
                      "INSERT INTO items (id, val, n) VALUES (%d, 'churn', 0);"
                      "UPDATE items SET n = n + 1, val = 'upd%d' WHERE id = %d;"
                      "UPDATE items SET n = n + 1 WHERE id = %d;"
                      "COMMIT" % (i, i, i % 40 + 1, (i * 7) % 40 + 1), db=self.ws.db)
            except Exception as e:  # noqa: BLE001 - any writer failure fails the test
                self.errors.append(repr(e))
                return
            self.commits += 1
            self.next_id += 1
            time.sleep(0.02)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()

    def check(self):
        check_eq(self.errors, [], "churn writer errors")
        check(self.commits > 0, "the churn writer committed transactions")


def killed_sync(ws, point, hit=1):
    r = ws.sync(env=ws.env(MBQ_FAULT=point, MBQ_FAULT_HIT=hit))
    check(r.returncode == -9, "sync was not killed at '%s' (point never reached?): %r" % (point, r))


def one_sync_then_current(ws, full=False):
    """ONE sync after the writers stopped: exit 0, target == source, nothing
    in flight, the cursor at the source's maximum."""
    r = ws.sync()
    expect_ok(r, "the one sync after the kills")
    assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"])
    t = ws.inspect("items")["tables"][0]
    check_eq(t["in_flight"], None, "journal: no run in flight")
    if not full:
        want = mysql("SELECT DATE_FORMAT(MAX(updated_at), '%Y-%m-%d %H:%i:%s.%f') FROM items",
                     db=ws.db)[0][0]
        check_eq(t["cursor"], want, "committed cursor is the source's maximum")
    return r


def churn_kills(ws, points, settle_s=1.5):
    """Kill a sync at each point in turn while the writer runs; the writer
    goes on after the last kill (rows newer than every killed snapshot)."""
    with Churn(ws, 100000) as ch:
        for p in points:
            killed_sync(ws, p)
        time.sleep(settle_s)
    ch.check()


def test_one_sync_after_kills_of_an_incremental_run_catches_up():
    # Killed after its extract, then the resumed run killed before its MERGE:
    # the run that finally merges holds rows from the first killed snapshot.
    ws = make_ws("resume_catchup_merge")
    expect_ok(ws.sync(), "initial sync")
    churn_kills(ws, ["extract.done", "merge.enter"])
    r = one_sync_then_current(ws)
    check("catches up" in r.stderr, "the sync says it catches up: %r" % r)
    ws.cleanup()


def test_one_sync_after_a_kill_at_commit_catches_up():
    ws = make_ws("resume_catchup_commit")
    expect_ok(ws.sync(), "initial sync")
    churn_kills(ws, ["commit-metadata.enter"])
    one_sync_then_current(ws)
    ws.cleanup()


def test_one_sync_after_kills_of_a_first_sync_catches_up():
    ws = make_ws("resume_catchup_first")
    churn_kills(ws, ["extract.done", "stage.done"])
    one_sync_then_current(ws)
    ws.cleanup()


def test_one_sync_after_a_kill_of_a_full_refresh_catches_up():
    ws = make_ws("resume_catchup_full", full=True)
    expect_ok(ws.sync(), "initial sync")
    churn_kills(ws, ["stage.enter"])
    one_sync_then_current(ws, full=True)
    ws.cleanup()


def test_one_parallel_sync_after_kills_catches_up_every_table():
    # `--jobs 2`, killed at the second merge.enter either worker reaches
    # (the other table in flight or just committed), writes go on into both.
    ws = make_ws("resume_catchup_jobs")
    mysql("CREATE TABLE items2 LIKE items; INSERT INTO items2 SELECT * FROM items", db=ws.db)
    t = {"updated_column": "updated_at", "lookback": "3s", "primary_key": "id"}
    ws.write_config([dict(t, name="items"), dict(t, name="items2")])
    expect_ok(ws.sync("--jobs", "2"), "initial sync")

    stop, errors = threading.Event(), []

    def writer():
        i = 500000
        while not stop.is_set():
            try:
                mysql("START TRANSACTION;"
                      "INSERT INTO items (id, val, n) VALUES (%d, 'churn', 0);"
                      "INSERT INTO items2 (id, val, n) VALUES (%d, 'churn', 0);"
                      "UPDATE items2 SET n = n + 1 WHERE id = %d;"
                      "COMMIT" % (i, i, i % 40 + 1), db=ws.db)
            except Exception as e:  # noqa: BLE001 - any writer failure fails the test
                errors.append(repr(e))
                return
            i += 1
            time.sleep(0.02)
    th = threading.Thread(target=writer, daemon=True)
    th.start()
    try:
        r = ws.sync("--jobs", "2", env=ws.env(MBQ_FAULT="merge.enter", MBQ_FAULT_HIT=2))
        check_eq(r.returncode, -9, "killed at the second merge.enter: %r" % r)
        time.sleep(1.5)
    finally:
        stop.set()
        th.join()
    check_eq(errors, [], "churn writer errors")
    in_flight = [x["name"] for x in ws.inspect()["tables"] if x["in_flight"]]
    check(in_flight, "a table in flight after the kill")
    expect_ok(ws.sync("--jobs", "2"), "the one sync after the kill")
    for table in ("items", "items2"):
        assert_target_equals_source(ws, table, COLS, "id", ["updated_at"])
    ws.cleanup()


def test_a_resume_that_extracts_again_needs_no_catch_up():
    # Killed before its extract: the resumed run's snapshot is taken by the
    # resuming process itself, after its start; one table run is enough.
    ws = make_ws("resume_no_catchup")
    expect_ok(ws.sync(), "initial sync")
    churn_kills(ws, ["schema-check.done"])
    r = one_sync_then_current(ws)
    check("catches up" not in r.stderr, "no second table run: %r" % r)
    ws.cleanup()


# ---- a target that vanished under a committed cursor ------------------------

def drop_bq_table(ws, table):
    st, body = bq_request("DELETE", "/datasets/%s/tables/%s" % (ws.dataset, table))
    check(st in (200, 204), "drop %s: %s %r" % (table, st, body))
    check(bq_table(ws.dataset, table) is None, "table %s is gone" % table)


def change_rows(ws, base):
    mysql("INSERT INTO items (id, val, n) VALUES (%d, 'later', 1);"
          "UPDATE items SET val = 'changed' WHERE id = 3" % base, db=ws.db)


def target_missing_events(ws):
    return [e for e in events_of(ws, "items") if e["kind"] == "target.missing"]


def test_a_vanished_target_stops_the_table_by_default():
    ws = make_ws("vanish_fail", mail=True)
    expect_ok(ws.sync(), "initial sync")
    change_rows(ws, 1000)
    drop_bq_table(ws, "items")
    for attempt in (1, 2):
        r = ws.sync()
        check_eq(r.returncode, 1, "sync %d with the target gone: exit code (%r)" % (attempt, r))
        for frag in ("'items'", "gone from bigquery", "mbq-state reset items --full --yes"):
            check(frag in r.stderr.lower(), "the error says %r: %r" % (frag, r))
        check(bq_table(ws.dataset, "items") is None,
              "the target is not recreated empty (sync %d)" % attempt)
    ev = target_missing_events(ws)
    check_eq([e["action"] for e in ev], ["stopped"], "journaled once, as stopped")
    m = mails(ws)
    check_eq(len(m), 2, "one failure alert per failed run")
    check("FAILED" in m[0][0] and "items" in m[0][0], "alert subject: %r" % m[0][0])
    check("mbq-state reset items --full --yes" in m[0][1], "alert body: %r" % m[0][1])
    t = ws.inspect("items")["tables"][0]
    check(t["cursor"] is not None, "the cursor stays committed until the user decides")
    # The command the error gives recovers the table, every row included.
    r = ws.state_cmd("reset", "items", "--full", "--yes")
    expect_ok(r, "mbq-state reset --full")
    expect_ok(ws.sync(), "sync after the reset")
    assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"])
    ws.cleanup()


def test_a_vanished_target_is_reloaded_in_full_with_reload():
    # bigquery-level default; the e2e config has no per-table key.
    ws = make_ws("vanish_reload", extra_table="on_missing_target: reload", mail=True)
    expect_ok(ws.sync(), "initial sync")
    change_rows(ws, 1000)
    drop_bq_table(ws, "items")
    r = ws.sync()
    expect_ok(r, "sync with the target gone, policy reload")
    check("reloading in full" in r.stderr, "the log says it reloads: %r" % r)
    # Every row, the ones older than the cursor too.
    assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"])
    check_eq([e["action"] for e in target_missing_events(ws)], ["reload"], "journaled as reload")
    m = mails(ws)
    check_eq(len(m), 1, "the reload is alerted although the table synced (alert on: failure)")
    check("reloaded in full" in m[0][1], "alert body says what happened: %r" % m[0][1])
    change_rows(ws, 2000)
    expect_ok(ws.sync(), "the next incremental sync")
    assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"])
    check_eq(len(mails(ws)), 1, "no alert for the ordinary sync after it")
    ws.cleanup()


def test_check_warns_about_expirations():
    ws = make_ws("check_expiry")
    ds = {"datasetReference": {"projectId": os.environ.get("MBQ_TEST_BQ_PROJECT", "mbq-test"),
                               "datasetId": ws.dataset},
          "defaultTableExpirationMs": str(60 * 86400 * 1000),
          "defaultPartitionExpirationMs": str(90 * 86400 * 1000)}
    st, body = bq_request("POST", "/datasets", ds)
    check_eq(st, 200, "create the dataset with default expirations: %r" % body)
    st, body = bq_request("POST", "/datasets/%s/tables" % ws.dataset, {
        "tableReference": {"projectId": ds["datasetReference"]["projectId"],
                           "datasetId": ws.dataset, "tableId": "items"},
        "schema": {"fields": [{"name": "id", "type": "INT64"}]},
        "expirationTime": "1893456000000"})  # 2030-01-01T00:00:00Z
    check_eq(st, 200, "create a target with an expirationTime: %r" % body)
    r = run([os.environ["MBQ_BIN"], "check", "--config", ws.config], ws.env())
    check_eq(r.returncode, 0, "warnings do not fail the check: %r" % r)
    for want in ("warn  dataset '%s' has a default table expiration of 60 days" % ws.dataset,
                 "warn  dataset '%s' has a default partition expiration of 90 days" % ws.dataset,
                 "warn  table 'items': target '%s.items' expires at 2030-01-01T00:00:00.000Z"
                 % ws.dataset):
        check(want in r.stdout, "mbq check says %r: %r" % (want, r))
    # Without them: no warning.
    bq_request("DELETE", "/datasets/%s?deleteContents=true" % ws.dataset)
    st, body = bq_request("POST", "/datasets", {"datasetReference": ds["datasetReference"]})
    check_eq(st, 200, "create a plain dataset: %r" % body)
    r = run([os.environ["MBQ_BIN"], "check", "--config", ws.config], ws.env())
    check_eq(r.returncode, 0, "check: %r" % r)
    check("warn " not in r.stdout, "no warning without expirations: %r" % r)
    ws.cleanup()


def test_a_target_vanished_under_an_in_flight_merge_is_reloaded():
    # The run in flight staged a window for a MERGE into a target that is
    # now gone: it must go back to extract and load every row.
    ws = make_ws("vanish_inflight", extra_table="on_missing_target: reload")
    expect_ok(ws.sync(), "initial sync")
    change_rows(ws, 1000)
    killed_sync(ws, "merge.enter")
    drop_bq_table(ws, "items")
    change_rows(ws, 2000)
    expect_ok(ws.sync(), "resumed sync with the target gone")
    assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"])
    check_eq(ws.inspect("items")["tables"][0]["in_flight"], None, "nothing in flight")
    ws.cleanup()


def test_a_killed_reload_still_loads_every_row():
    # Killed right after the reload created the target (empty): the next run
    # must not take that empty table for a synced one.
    ws = make_ws("vanish_killed", extra_table="on_missing_target: reload")
    expect_ok(ws.sync(), "initial sync")
    change_rows(ws, 1000)
    drop_bq_table(ws, "items")
    killed_sync(ws, "schema-check.done")
    check(bq_table(ws.dataset, "items") is not None, "the killed run created the target")
    expect_ok(ws.sync(), "sync after the killed reload")
    assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"])
    ws.cleanup()


# ---- an expired staging table -------------------------------------------------

def staging_events(ws):
    return [e for e in events_of(ws, "items") if e["kind"] == "staging.missing"]


def killed_at_merge_without_staging(name):
    ws = make_ws(name)
    expect_ok(ws.sync(), "initial sync")
    change_rows(ws, 1000)
    killed_sync(ws, "merge.enter")
    fl = ws.inspect("items")["tables"][0]["in_flight"]
    check(fl and fl["state"] == "merge" and fl["staging_table"], "a run in merge: %r" % fl)
    drop_bq_table(ws, fl["staging_table"])  # what its expirationTime does
    return ws, fl


def test_a_merge_whose_staging_table_expired_stages_the_file_again():
    ws, fl = killed_at_merge_without_staging("staging_gone")
    r = ws.sync()
    expect_ok(r, "resumed sync with the staging table gone")
    assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"])
    check_eq([e["action"] for e in staging_events(ws)], ["restage"], "journaled: restage")
    check_eq(ws.inspect("items")["tables"][0]["in_flight"], None, "nothing in flight")
    ws.cleanup()


def test_a_merge_whose_staging_table_and_file_are_gone_extracts_again():
    ws, fl = killed_at_merge_without_staging("staging_file_gone")
    os.unlink(fl["staged_path"])
    expect_ok(ws.sync(), "resumed sync with the staging table and file gone")
    assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"])
    check_eq([e["action"] for e in staging_events(ws)], ["re-extract"], "journaled: re-extract")
    ws.cleanup()


def test_a_staged_file_that_changed_is_not_loaded_again():
    ws, fl = killed_at_merge_without_staging("staging_file_changed")
    with open(fl["staged_path"], "ab") as f:  # not the rows the extract checksummed
        f.write(b'{"id": 999999, "val": "forged", "n": 0, "updated_at": "2024-01-01 00:00:00"}\n')
    expect_ok(ws.sync(), "resumed sync")
    assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"])
    check_eq([e["action"] for e in staging_events(ws)], ["re-extract"], "journaled: re-extract")
    ws.cleanup()


if __name__ == "__main__":
    require_services()
    private_emulator()  # a fresh emulator of its own (mbqtest.py says why)
    run_cases([test_one_sync_after_kills_of_an_incremental_run_catches_up,
               test_one_sync_after_a_kill_at_commit_catches_up,
               test_one_sync_after_kills_of_a_first_sync_catches_up,
               test_one_sync_after_a_kill_of_a_full_refresh_catches_up,
               test_one_parallel_sync_after_kills_catches_up_every_table,
               test_a_resume_that_extracts_again_needs_no_catch_up,
               test_a_vanished_target_stops_the_table_by_default,
               test_a_vanished_target_is_reloaded_in_full_with_reload,
               test_a_target_vanished_under_an_in_flight_merge_is_reloaded,
               test_a_killed_reload_still_loads_every_row,
               test_a_merge_whose_staging_table_expired_stages_the_file_again,
               test_a_merge_whose_staging_table_and_file_are_gone_extracts_again,
               test_a_staged_file_that_changed_is_not_loaded_again,
               test_check_warns_about_expirations])
