#!/usr/bin/env python3
"""Late commits and daylight-saving time (label `crash`): what a cursor
guarantees, proven both ways so that the README stays true.

Late commits. `updated_at = NOW()` is a statement's start time, not its
commit time: a transaction that is open while mbq takes its snapshot can
commit rows whose cursor lies below the high-water mark mbq has already
committed. The test opens such a transaction (an insert and an update),
lets a later row commit, syncs (the snapshot cannot see the open
transaction), commits the transaction, and syncs again:
- with `lookback` covering the transaction's age, its rows arrive (exactly
  once, target equals source);
- without `lookback`, they never arrive: the documented loss, asserted so
  that the README's guarantee is tested as written.

Daylight-saving time. A DATETIME column holds wall-clock time; filled by
NOW() in a session whose time zone has DST (Europe/Berlin), the clock runs
the hour 02:00-03:00 twice on the night of the fall-back (2024-10-27), so a
row written in the second pass gets a cursor below rows written in the
first. A TIMESTAMP column holds an instant (mbq reads it in UTC) and only
moves forward. The writer session pins NOW() to real instants around the
fall-back (`SET timestamp`), in Europe/Berlin:
- TIMESTAMP cursor, no lookback: every row arrives;
- DATETIME cursor, lookback of the shift (1h) or more: every row arrives;
- DATETIME cursor, no lookback: the second pass's rows are lost (asserted:
  the documented guarantee)."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mbqtest import (Workspace, assert_target_equals_source, bq_query, check, check_eq,  # noqa: E402
                     expect_ok, mysql, require_services, run_cases)

COLS = ["id", "val", "updated_at"]


def figure(name, value):
    print("FIGURE %s=%s" % (name, value), flush=True)


class Session:
    """One MariaDB client session kept open (a transaction can span calls).
    `run` sends statements and waits until the server has executed them."""

    def __init__(self, db):
        self.p = subprocess.Popen(
            ["mariadb", "-h", os.environ["MBQ_TEST_MYSQL_HOST"], "-P", os.environ["MBQ_TEST_MYSQL_PORT"],
             "-u", os.environ["MBQ_TEST_MYSQL_USER"], "-p" + os.environ["MBQ_TEST_MYSQL_PASSWORD"],
             "--batch", "--skip-column-names", "--unbuffered", db],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.n = 0

    def run(self, sql):
        self.n += 1
        mark = "done-%d" % self.n
        self.p.stdin.write(("%s;\nSELECT '%s';\n" % (sql.rstrip().rstrip(";"), mark)).encode())
        self.p.stdin.flush()
        while True:
            line = self.p.stdout.readline().decode()
            if not line:
                raise RuntimeError("mariadb session ended: %s" % self.p.stderr.read().decode())
            if line.strip() == mark:
                return

    def close(self):
        self.p.stdin.close()
        rc = self.p.wait(60)
        check_eq(rc, 0, "mariadb session exit (stderr: %s)" % self.p.stderr.read().decode())


# ---- late commits ----------------------------------------------------------------

def late_commit_ws(name, lookback):
    ws = Workspace(name)
    mysql("CREATE TABLE items (id BIGINT NOT NULL PRIMARY KEY, val VARCHAR(40), "
          "updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) "
          "ON UPDATE CURRENT_TIMESTAMP(6));"
          "INSERT INTO items (id, val) VALUES (1, 'a'), (2, 'b'), (3, 'c')", db=ws.db)
    t = {"name": "items", "primary_key": "id", "updated_column": "updated_at"}
    if lookback:
        t["lookback"] = lookback
    ws.write_config([t])
    expect_ok(ws.sync(), "initial sync")
    return ws


def late_commit_scenario(ws):
    """An open transaction writes (cursor T1), a later row commits (T2 >
    T1), mbq syncs (cursor := T2), the transaction commits, mbq syncs."""
    tx = Session(ws.db)
    tx.run("START TRANSACTION; INSERT INTO items (id, val) VALUES (10, 'late-insert');"
           "UPDATE items SET val = 'late-update' WHERE id = 2")
    mysql("DO SLEEP(0.05); INSERT INTO items (id, val) VALUES (11, 'after')", db=ws.db)
    expect_ok(ws.sync(), "sync while the transaction is open")
    cursor = ws.inspect("items")["tables"][0]["cursor"]
    t1 = mysql("SELECT DATE_FORMAT(updated_at, '%Y-%m-%d %H:%i:%s.%f') FROM items WHERE id = 11",
               db=ws.db)[0][0]
    check_eq(cursor, t1, "the committed cursor is the later row's")
    tx.run("COMMIT")
    tx.close()
    late = mysql("SELECT DATE_FORMAT(updated_at, '%Y-%m-%d %H:%i:%s.%f') FROM items WHERE id = 10",
                 db=ws.db)[0][0]
    check(late < cursor, "the late row's cursor %s lies below the committed %s" % (late, cursor))
    expect_ok(ws.sync(), "sync after the commit")
    expect_ok(ws.sync(), "one more sync")


def test_late_commit_arrives_with_lookback():
    ws = late_commit_ws("late_lb", "5m")
    late_commit_scenario(ws)
    n = assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"])
    figure("late_commit_rows_verified_with_lookback", n)
    ws.cleanup()


def test_late_commit_without_lookback_is_lost_as_documented():
    ws = late_commit_ws("late_nolb", None)
    late_commit_scenario(ws)
    got = bq_query("SELECT id, val FROM `%s.items` ORDER BY id" % ws.dataset)
    check_eq(got, [["1", "a"], ["2", "b"], ["3", "c"], ["11", "after"]],
             "without lookback the late transaction's insert and update never arrive (README)")
    figure("late_commit_rows_lost_without_lookback", 2)
    ws.cleanup()


# ---- daylight-saving time --------------------------------------------------------

ZONE = "Europe/Berlin"
# 2024-10-27: CEST (UTC+2) until 01:00 UTC, then CET (UTC+1): the wall clock
# shows 02:00-02:59 twice.
FIRST_PASS = 1729989000    # 2024-10-27 00:30:00 UTC = 02:30 CEST
SECOND_PASS = 1729991400   # 2024-10-27 01:10:00 UTC = 02:10 CET
BEFORE = 1729985400        # 2024-10-26 23:30:00 UTC = 01:30 CEST


def load_zone():
    """Europe/Berlin into MariaDB's time zone tables, unless there already
    (tools/services.sh starts a server whose tables are empty)."""
    have = mysql("SELECT COUNT(*) FROM mysql.time_zone_name WHERE Name = '%s'" % ZONE)[0][0]
    if have == "0":
        sql = subprocess.run(["mariadb-tzinfo-to-sql", "/usr/share/zoneinfo/" + ZONE, ZONE],
                             capture_output=True, check=True).stdout.decode()
        mysql(sql, db="mysql")
    check_eq(mysql("SELECT CONVERT_TZ('2024-10-27 00:30:00', '+00:00', '%s'), "
                   "CONVERT_TZ('2024-10-27 01:10:00', '+00:00', '%s')" % (ZONE, ZONE))[0],
             ["2024-10-27 02:30:00", "2024-10-27 02:10:00"], "the server knows %s's fall-back" % ZONE)


def test_dst_fall_back_datetime_and_timestamp_cursors():
    load_zone()
    ws = Workspace("dst")
    for t, typ in (("dt", "DATETIME(6)"), ("dt_lb", "DATETIME(6)"), ("ts", "TIMESTAMP(6)")):
        mysql("CREATE TABLE %s (id BIGINT NOT NULL PRIMARY KEY, val VARCHAR(40), "
              "updated_at %s NOT NULL DEFAULT CURRENT_TIMESTAMP(6) "
              "ON UPDATE CURRENT_TIMESTAMP(6))" % (t, typ), db=ws.db)
    ws.write_config([{"name": "dt", "primary_key": "id", "updated_column": "updated_at"},
                     {"name": "dt_lb", "primary_key": "id", "updated_column": "updated_at",
                      "lookback": "1h"},
                     {"name": "ts", "primary_key": "id", "updated_column": "updated_at"}])

    def write(at, sql):
        mysql("SET time_zone = '%s'; SET timestamp = %d; %s" % (ZONE, at, sql), db=ws.db)

    for t in ("dt", "dt_lb", "ts"):
        write(BEFORE, "INSERT INTO %s (id, val) VALUES (1, 'before')" % t)
        write(FIRST_PASS, "INSERT INTO %s (id, val) VALUES (2, 'first-pass')" % t)
    expect_ok(ws.sync(), "sync after the first 02:30")
    cur = {t["name"]: t["cursor"] for t in ws.inspect()["tables"]}
    check_eq(cur["dt"], "2024-10-27 02:30:00.000000", "DATETIME cursor: wall-clock time")
    for t in ("dt", "dt_lb", "ts"):
        write(SECOND_PASS, "INSERT INTO %s (id, val) VALUES (3, 'second-pass');"
                           "UPDATE %s SET val = 'updated-second-pass' WHERE id = 1" % (t, t))
    check_eq(mysql("SELECT DATE_FORMAT(updated_at, '%H:%i') FROM dt WHERE id = 3", db=ws.db),
             [["02:10"]], "the second pass's wall clock is below the committed cursor")
    expect_ok(ws.sync(), "sync after the second 02:10")
    expect_ok(ws.sync(), "one more sync")
    # A TIMESTAMP is an instant: compared as microseconds since the epoch
    # (the REST API returns it as epoch seconds, MariaDB in its session's
    # zone), with the other columns as text.
    n = assert_target_equals_source(ws, "ts", ["id", "val"], "id")
    check_eq(bq_query("SELECT id, UNIX_MICROS(updated_at) FROM `%s.ts` ORDER BY id" % ws.dataset),
             mysql("SELECT id, CAST(UNIX_TIMESTAMP(updated_at) * 1000000 AS UNSIGNED) FROM ts "
                   "ORDER BY id", db=ws.db), "TIMESTAMP cursor values, as instants")
    n += assert_target_equals_source(ws, "dt_lb", COLS, "id", ["updated_at"])
    got = bq_query("SELECT id, val FROM `%s.dt` ORDER BY id" % ws.dataset)
    check_eq(got, [["1", "before"], ["2", "first-pass"]],
             "DATETIME cursor without lookback loses the repeated hour's rows (README)")
    figure("dst_rows_verified", n)
    ws.cleanup()


if __name__ == "__main__":
    require_services()
    run_cases([test_late_commit_arrives_with_lookback,
               test_late_commit_without_lookback_is_lost_as_documented,
               test_dst_fall_back_datetime_and_timestamp_cursors])
