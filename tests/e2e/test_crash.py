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
of four tables killed while other tables are in flight. The number of kill
points covered is printed at the end."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mbqtest import (Workspace, assert_target_equals_source, check, check_eq, expect_ok, mysql,
                     require_services, run_cases, private_emulator)

COLS = ["id", "val", "n", "updated_at"]

POINTS_REPLACE = ["schema-check.done", "extract.enter", "extract.before_rename", "extract.done",
                  "stage.enter", "stage.done", "commit-metadata.enter", "commit-metadata.done",
                  "cleanup.done", "mirror.done"]
POINTS_MERGE = ["schema-check.done", "extract.enter", "extract.before_rename", "extract.done",
                "stage.enter", "stage.done", "merge.enter", "merge.done",
                "commit-metadata.enter", "commit-metadata.done", "cleanup.done", "mirror.done"]

covered = []


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
    """Inserts and updates rows from another connection while a sync runs."""

    def __init__(self, ws, start_id):
        self.ws, self.next_id, self.stop = ws, start_id, threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        while not self.stop.is_set():
            mysql("INSERT INTO items (id, val, n) VALUES (%d, 'churn', 0);"
                  "UPDATE items SET n = n + 1 WHERE id = %d" % (self.next_id, self.next_id % 40 + 1),
                  db=self.ws.db)
            self.next_id += 1
            time.sleep(0.02)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def killed_sync(ws, point, hit=1):
    r = ws.sync(env=ws.env(MBQ_FAULT=point, MBQ_FAULT_HIT=hit))
    check(r.returncode == -9, "sync was not killed at '%s' (point never reached?): %r" % (point, r))
    covered.append(point)


def boundary_changes(ws, base):
    # A row at exactly the committed cursor's timestamp (a late commit
    # that ties at the boundary), an update and an insert.
    cur = mysql("SELECT DATE_FORMAT(MAX(updated_at), '%Y-%m-%d %H:%i:%s.%f') FROM items",
                db=ws.db)[0][0]
    mysql("INSERT INTO items (id, val, n, updated_at) VALUES (%d, 'tie', 7, '%s');"
          "UPDATE items SET val = 'after-crash' WHERE id = 5;"
          "INSERT INTO items (id, val, n) VALUES (%d, 'new', 8)" % (base, cur, base + 1), db=ws.db)


def resume_and_verify(ws):
    expect_ok(ws.sync(), "resumed sync")
    expect_ok(ws.sync(), "second sync")
    n = assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"])
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
            covered.append(p + " (jobs)")
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
    print("kill points covered: %d (%d distinct)" % (len(covered), len(set(covered))))
    check(len(covered) >= len(POINTS_REPLACE) + 2 * len(POINTS_MERGE) + 1, "every point was hit")


if __name__ == "__main__":
    require_services()
    private_emulator()  # a fresh emulator of its own (mbqtest.py says why)
    run_cases([test_kill_at_every_point_of_a_first_sync,
               test_kill_at_every_point_of_an_incremental_sync,
               test_kill_in_the_middle_of_an_extract_stream,
               test_kill_at_every_point_with_parallel_tables,
               test_report_kill_points])
