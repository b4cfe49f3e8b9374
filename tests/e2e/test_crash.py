#!/usr/bin/env python3
"""Crash and resume proof (label `crash`).

For every fault point of the state machine (listed in include/mbq/fault.h,
plus the extractor's), a sync is killed there with SIGKILL
(MBQ_FAULT=<point>), while another connection keeps inserting and updating
rows; then more rows change (including rows sharing the committed cursor's
exact timestamp), and `mbq sync` runs again, twice. After that the BigQuery
target must equal the MariaDB table row for row, hold no duplicate key, the
cursor must be the source's maximum, and the journal must hold no run in
flight. Scenario A kills the first sync (a replace load), scenario B an
incremental one (staging + MERGE), scenario C an incremental `sync --jobs 4`
of four tables killed while other tables are in flight.

Counting kill points honestly: a fault point's name is not a kill point.
After each kill the test looks at what the killed run left behind (the
journal's state for the table and whether a cursor is committed, the files
in the staging directory, the load and MERGE jobs and the staging table the
journal names, the target and the sync_metadata mirror) and records that as
the point's fingerprint. Two names that leave the same fingerprint (e.g.
"commit-metadata.enter" and "commit-metadata.done", which fire on the two
sides of nothing) are one kill point. The distinct fingerprints are printed
as `FIGURE kill_points_distinct=N` (and the kills as `FIGURE kills=N`); the
kills of the `--jobs 4` runs are the same points with other tables in
flight and are counted apart (`kills_with_tables_in_flight`)."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mbqtest import (Workspace, assert_target_equals_source, bq_query, bq_request, bq_table, check,
                     check_eq, expect_ok, mysql, require_services, run_cases, private_emulator)

COLS = ["id", "val", "n", "updated_at"]

POINTS_REPLACE = ["schema-check.done", "extract.enter", "extract.before_rename", "extract.done",
                  "stage.enter", "stage.done", "commit-metadata.enter", "commit-metadata.done",
                  "cleanup.done", "mirror.done"]
POINTS_MERGE = ["schema-check.done", "extract.enter", "extract.before_rename", "extract.done",
                "stage.enter", "stage.done", "merge.enter", "merge.done",
                "commit-metadata.enter", "commit-metadata.done", "cleanup.done", "mirror.done"]

covered = []          # (point, fingerprint) of each single-table kill
covered_jobs = []     # points killed in a `--jobs 4` run
FOUND = []            # journaled jobs a resumed run found by their id
ROWS_VERIFIED = {}    # dataset -> distinct source rows compared with the target
# The honest count this tree must reach (test_report_kill_points prints the
# names that share each point). First sync, 8: schema checked; extract
# begun; rows in a temp file (extract.mid = extract.before_rename); staged
# file; journal at stage with the streamed load done (stage.enter =
# stage.done: the load ran inside the extract); journal at commit
# (commit-metadata.enter = commit-metadata.done: nothing happens between);
# cursor committed and staging cleaned; mirror row written. Incremental, 9
# more: the same up to the staged file but with a committed cursor (4),
# stage before and after its load (2), merge before and after the MERGE
# (2), journal at commit (1); its cleanup.done and mirror.done leave what
# the first sync's do. A change that merges two points or adds one moves
# this and fails the test until the expectation is revisited.
EXPECTED_DISTINCT = 17


def make_ws(name, rows=40, width=20):
    ws = Workspace(name)
    mysql("CREATE TABLE items (id BIGINT NOT NULL PRIMARY KEY, val VARCHAR(2000), n INT, "
          "updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) "
          "ON UPDATE CURRENT_TIMESTAMP(6))", db=ws.db)
    batch = []
    for i in range(1, rows + 1):
        batch.append("(%d, REPEAT('v%d', %d), %d, '2024-01-01 00:00:%02d.000000')"
                     % (i, i, width, i, i % 30))
        if len(batch) == 1000 or i == rows:
            mysql("INSERT INTO items (id, val, n, updated_at) VALUES " + ",".join(batch), db=ws.db)
            batch = []
    # lookback covers rows that concurrent transactions commit late.
    ws.write_config([{"name": "items", "primary_key": "id", "updated_column": "updated_at",
                      "lookback": "3s"}])
    return ws


class Churn:
    """Transactions of inserts and updates from another connection while a
    sync runs; an error of the writer fails the test."""

    def __init__(self, ws, start_id):
        self.ws, self.next_id, self.stop = ws, start_id, threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.error = None
        self.writes = 0

    def loop(self):
        try:
            while not self.stop.is_set():
                # One transaction of several statements: an insert, an
                # update that moves the cursor (ON UPDATE), another one.
                mysql("START TRANSACTION;"
                      "INSERT INTO items (id, val, n) VALUES (%d, 'churn', 0);"
                      "UPDATE items SET n = n + 1 WHERE id = %d;"
                      "UPDATE items SET val = CONCAT(val, '+') WHERE id = %d;"
                      "COMMIT" % (self.next_id, self.next_id % 40 + 1, self.next_id % 17 + 1),
                      db=self.ws.db)
                self.next_id += 1
                self.writes += 1
                time.sleep(0.02)
        except Exception as e:  # noqa: BLE001 - handed to the test's thread
            self.error = e

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        # A writer that failed would leave the test proving less than it
        # says: its error fails the test.
        check(self.error is None, "churn writer failed: %s" % self.error)
        check(self.writes > 0, "churn writer wrote nothing")


def bq_job_state(job_id):
    if not job_id:
        return None
    st, body = bq_request("GET", "/jobs/%s" % job_id)
    return (body.get("status") or {}).get("state", "?") if st == 200 else "absent"


def fingerprint(ws, table="items"):
    """What a killed run left behind, as observed (not as named): the
    journal's state for the table and whether a cursor is committed, the
    kinds of files staged, the jobs and staging table the journal names,
    whether the target holds rows, and whether the last run's mirror row
    exists."""
    t = [x for x in ws.inspect()["tables"] if x["name"] == table][0]
    fl = t["in_flight"] or {}
    sdir = os.path.join(ws.state, "staging")
    files = sorted({"tmp" if f.endswith(".tmp") else "staged"
                    for f in (os.listdir(sdir) if os.path.isdir(sdir) else [])})
    target = bq_table(ws.dataset, table)
    target_rows = int(bq_query("SELECT COUNT(*) FROM `%s.%s`" % (ws.dataset, table))[0][0]) \
        if target else None
    # The mirror's side effect is a row for the run: is the last run's there?
    last = (t.get("recent_runs") or [{}])[0].get("run_id")
    mirror = bq_query("SELECT COUNT(*) FROM `%s.sync_metadata` WHERE run_id = '%s'"
                      % (ws.dataset, last))[0][0] \
        if last and bq_table(ws.dataset, "sync_metadata") else "0"
    journal = ("journal", fl.get("state", "done"), "cursor" if t["cursor"] else "no cursor")
    if fl.get("state") == "extract":
        # Resumed at extract, a run reads a new snapshot under a new attempt
        # (new job ids), after waiting for any job the journal names: what
        # a streamed load had reached when the kill cut it is timing (and
        # emulator divergence 22), not a different recovery. The files tell
        # the cases apart: none, a temp file, the staged file.
        return (journal, ("files",) + tuple(files))
    return (journal,
            ("files",) + tuple(files),
            ("load job", bq_job_state(fl.get("load_job_id"))),
            ("merge job", bq_job_state(fl.get("merge_job_id"))),
            ("staging table", bool(fl.get("staging_table")
                                   and bq_table(ws.dataset, fl["staging_table"]))),
            ("target", None if target is None else target_rows > 0),
            ("last run mirrored", mirror))


def killed_sync(ws, point, hit=1):
    r = ws.sync(env=ws.env(MBQ_FAULT=point, MBQ_FAULT_HIT=hit))
    check(r.returncode == -9, "sync was not killed at '%s' (point never reached?): %r" % (point, r))
    fp = fingerprint(ws)
    covered.append((point, fp))
    # The job the journal names for the state it resumes in, if BigQuery
    # has it: the next run must find it by its id, not submit it again.
    fl = ws.inspect("items")["tables"][0]["in_flight"] or {}
    jid = {"stage": fl.get("load_job_id"), "merge": fl.get("merge_job_id")}.get(fl.get("state"))
    ws.journaled_job = jid if jid and bq_job_state(jid) == "DONE" else None
    print("  killed at %-22s -> %s" % (point, fp), flush=True)


def boundary_changes(ws, base):
    # A row at exactly the committed cursor's timestamp (a late commit
    # that ties at the boundary), an update and an insert.
    cur = mysql("SELECT DATE_FORMAT(MAX(updated_at), '%Y-%m-%d %H:%i:%s.%f') FROM items",
                db=ws.db)[0][0]
    mysql("INSERT INTO items (id, val, n, updated_at) VALUES (%d, 'tie', 7, '%s');"
          "UPDATE items SET val = 'after-crash' WHERE id = 5;"
          "INSERT INTO items (id, val, n) VALUES (%d, 'new', 8)" % (base, cur, base + 1), db=ws.db)


def resume_and_verify(ws):
    r = ws.sync()
    expect_ok(r, "resumed sync")
    jid = getattr(ws, "journaled_job", None)
    if jid:
        check("job '%s' exists already" % jid in r.stderr,
              "the resumed run did not find the journaled job '%s': %r" % (jid, r))
        FOUND.append(jid)
    expect_ok(ws.sync(), "second sync")
    n = assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"])
    ROWS_VERIFIED[ws.dataset] = n  # each workspace's rows once, however often compared
    st = ws.inspect("items")
    t = st["tables"][0]
    check_eq(t["in_flight"], None, "journal: no run in flight")
    want = mysql("SELECT DATE_FORMAT(MAX(updated_at), '%Y-%m-%d %H:%i:%s.%f') FROM items",
                 db=ws.db)[0][0]
    check_eq(t["cursor"], want, "committed cursor is the source's maximum")
    return n


def scenario_replace(point):
    ws = make_ws("crash_a_" + point.replace(".", "_").replace("-", "_"))
    with Churn(ws, 100000):
        killed_sync(ws, point)
    boundary_changes(ws, 200000)
    resume_and_verify(ws)
    ws.cleanup()


def scenario_merge(point):
    ws = make_ws("crash_b_" + point.replace(".", "_").replace("-", "_"))
    expect_ok(ws.sync(), "initial sync")
    mysql("UPDATE items SET val = 'before-crash', updated_at = '2024-01-02 00:00:00' "
          "WHERE id IN (1, 2, 3)", db=ws.db)
    with Churn(ws, 100000):
        killed_sync(ws, point)
    boundary_changes(ws, 200000)
    resume_and_verify(ws)
    ws.cleanup()


def test_kill_at_every_point_of_a_first_sync():
    for i, p in enumerate(POINTS_REPLACE):
        if i and i % 6 == 0:
            private_emulator()  # the emulator's memory grows with every job
        try:
            scenario_replace(p)
        except Exception as e:
            raise type(e)("at '%s': %s" % (p, e))


def test_kill_at_every_point_of_an_incremental_sync():
    for i, p in enumerate(POINTS_MERGE):
        if i and i % 6 == 0:
            private_emulator()  # the emulator's memory grows with every job
        try:
            scenario_merge(p)
        except Exception as e:
            raise type(e)("at '%s': %s" % (p, e))


def test_kill_in_the_middle_of_an_extract_stream():
    private_emulator()
    # 3 MiB of rows: the extractor hands 1 MiB chunks to its writer thread
    # and the fault point fires after each; die after the second.
    ws = make_ws("crash_mid", rows=6000, width=100)
    killed_sync(ws, "extract.mid", hit=2)
    leftovers = [f for f in os.listdir(os.path.join(ws.state, "staging"))
                 if not f.endswith(".tmp")]
    check_eq(leftovers, [], "no staged file under a final name after a kill mid-extract")
    boundary_changes(ws, 200000)
    resume_and_verify(ws)
    ws.cleanup()


def test_kill_at_every_point_with_parallel_tables():
    """`sync --jobs 4` over four tables, killed the second time any worker
    reaches each point of an incremental run (so other tables are elsewhere
    in flight; the once-per-run mirror at its first), rows change again, and
    two `--jobs 4` runs resume them all."""
    from test_sync import JOB_TABLES, change_every_table, check_jobs_tables, jobs_ws
    private_emulator()
    for i, p in enumerate(POINTS_MERGE):
        if i and i % 4 == 0:
            private_emulator()  # the emulator's memory grows with every job
        try:
            ws = jobs_ws("crash_j_" + p.replace(".", "_").replace("-", "_"))
            expect_ok(ws.sync("--jobs", "4"), "initial sync")
            change_every_table(ws, 1)
            hit = 1 if p == "mirror.done" else 2  # the mirror runs once per run
            r = ws.sync("--jobs", "4", env=ws.env(MBQ_FAULT=p, MBQ_FAULT_HIT=hit))
            check_eq(r.returncode, -9, "killed at hit %d of '%s': %r" % (hit, p, r))
            covered_jobs.append(p)
            in_flight = [t["name"] for t in ws.inspect()["tables"] if t["in_flight"]]
            if not p.startswith(("cleanup", "mirror")):
                check(len(in_flight) >= 2, "several tables in flight: %r" % in_flight)
            change_every_table(ws, 2)
            expect_ok(ws.sync("--jobs", "4"), "resumed sync")
            expect_ok(ws.sync("--jobs", "4"), "next sync")
            check_jobs_tables(ws, JOB_TABLES)
            ws.cleanup()
        except Exception as e:
            raise type(e)("at '%s': %s" % (p, e))


def test_report_kill_points():
    """One line per distinct kill point with the names that reached it; the
    figures; and the expectations: every named point killed, and the count
    of distinct points what this tree's state machine has."""
    names = len(POINTS_REPLACE) + len(POINTS_MERGE) + 1
    check_eq(len(covered), names, "single-table kills (every named point of both paths)")
    check_eq(len(covered_jobs), len(POINTS_MERGE), "kills with tables in flight")
    by_fp = {}
    for point, fp in covered:
        by_fp.setdefault(fp, []).append(point)
    for fp, points in by_fp.items():
        print("  %s (%d kills): %s" % (" = ".join(sorted(set(points))), len(points), fp))
    print("FIGURE kills=%d" % len(covered))
    print("FIGURE kill_point_names=%d" % len({p for p, _ in covered}))
    print("FIGURE kill_points_distinct=%d" % len(by_fp))
    print("FIGURE kills_with_tables_in_flight=%d" % len(covered_jobs))
    print("FIGURE crash_rows_verified=%d" % sum(ROWS_VERIFIED.values()))
    print("FIGURE crash_resumes_found_journaled_job=%d" % len(FOUND))
    check_eq(len(by_fp), EXPECTED_DISTINCT, "distinct kill points (fingerprints)")


if __name__ == "__main__":
    require_services()
    private_emulator()  # a fresh emulator of its own (mbqtest.py says why)
    run_cases([test_kill_at_every_point_of_a_first_sync,
               test_kill_at_every_point_of_an_incremental_sync,
               test_kill_in_the_middle_of_an_extract_stream,
               test_kill_at_every_point_with_parallel_tables,
               test_report_kill_points])
