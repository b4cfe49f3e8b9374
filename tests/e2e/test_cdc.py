#!/usr/bin/env python3
"""Change data capture end to end (label `cdc`): `mbq cdc` against MariaDB's
binlog and the BigQuery emulator.

Each case builds a table, lets `mbq cdc` snapshot and follow it, changes it
(multi-statement transactions, primary-key changes, deletes) and then
compares the BigQuery target with MySQL row for row (no duplicate key):
the snapshot hand-off with writes during the snapshot; churn in several
batches; hard and soft deletes; SIGKILL at every fault point of the batch
and the snapshot and at random instants of a follower with writes between
the kill and the resume; ADD COLUMN mid-stream; binlog rotation inside a
batch; a purged binlog (a clear failure naming the reset, exit 1); SIGTERM
(exit 0, nothing lost); `mbq sync` of another table beside a running
follower (separate locks) and a second follower refused (exit 75)."""
import glob
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mbqtest import (FaultProxy, Result, Workspace, assert_target_equals_source, bq_query, check, check_eq,
                     check_clean_failure, check_no_sanitizer, mysql, private_emulator, require_services,
                     run_cases)

COLS = ["id", "v", "n", "amount", "ts"]
DT = ("ts",)
SERVER_ID = [4100 + os.getpid() % 1000]
FOUND_JOBS = []  # job ids a resumed follower found instead of submitting again


class CdcWs(Workspace):
    """A workspace whose tables are followed through the binlog (as root:
    the replication privileges), with short batch delays and heartbeats."""

    def __init__(self, name, tables=None, deletes=None, rcpt=None):
        Workspace.__init__(self, "cdc_" + name)
        SERVER_ID[0] += 1
        t = {"name": "t", "primary_key": "id", "mode": "cdc"}
        if deletes:
            t["deletes"] = deletes
        extra = ("cdc:\n  server_id: %d\n  max_batch_delay: 1s\n  heartbeat: 1s\n"
                 "  reconnect_max: 4s" % SERVER_ID[0])
        if rcpt:
            extra += ("\nalerting:\n  email:\n    host: 127.0.0.1\n    port: %s\n    tls: none\n"
                      "    from: mbq@alerts.test\n    to: [%s]\n    on: failure"
                      % (os.environ["MBQ_TEST_SMTP_PORT"], rcpt))
        self.write_config(tables or [t], extra=extra)
        with open(self.config) as f:
            text = f.read().replace("user: %s" % os.environ["MBQ_TEST_MYSQL_RO_USER"],
                                    "user: %s" % os.environ["MBQ_TEST_MYSQL_USER"])
        with open(self.config, "w") as f:
            f.write(text)

    def env(self, **extra):
        e = Workspace.env(self, **extra)
        e["MBQ_E2E_MYSQL_PASSWORD"] = os.environ["MBQ_TEST_MYSQL_PASSWORD"]
        return e

    def cdc(self, *args, env=None, timeout=180):
        p = subprocess.run([os.environ["MBQ_BIN"], "cdc", "--config", self.config] + list(args),
                           env=env or self.env(), capture_output=True, timeout=timeout)
        r = Result(p)
        check_no_sanitizer(r, "mbq cdc")
        for line in r.stderr.splitlines():
            if "exists already" in line:
                FOUND_JOBS.append(line)
        return r

    def once(self, env=None):
        r = self.cdc("--once", env=env)
        check(r.returncode == 0, "mbq cdc --once failed: %r" % r)
        return r

    def follow(self, *args, env=None):
        return subprocess.Popen([os.environ["MBQ_BIN"], "cdc", "--config", self.config] + list(args),
                                env=env or self.env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

    def sql(self, text):
        return mysql(text, db=self.db)

    def journal(self, q):
        db = sqlite3.connect(os.path.join(self.state, "state.db"))
        try:
            return db.execute(q).fetchall()
        finally:
            db.close()


def create_table(ws, name="t", rows=20):
    ws.sql("CREATE TABLE `%s` (id INT PRIMARY KEY, v VARCHAR(40), n BIGINT, amount DECIMAL(12,2), "
           "ts DATETIME(6)) ENGINE=InnoDB" % name)
    if rows:
        ws.sql("INSERT INTO `%s` VALUES %s" % (name, ", ".join(
            "(%d, 'v%d', %d, %d.25, '2024-01-01 00:00:%02d.123456')" % (i, i, i * 10, i, i % 60)
            for i in range(1, rows + 1))))


def same(ws, table="t", cols=COLS):
    """The target equals MySQL row for row (DECIMAL compared as numbers:
    BigQuery prints NUMERIC without trailing zeros)."""
    plain = [c for c in cols if c != "amount"]
    n = assert_target_equals_source(ws, table, plain, "id", dt_cols=DT)
    src = [[r[0], Decimal(r[1]) if r[1] is not None else None]
           for r in mysql("SELECT id, amount FROM `%s` ORDER BY id" % table, db=ws.db)]
    dst = [[r[0], Decimal(r[1]) if r[1] is not None else None]
           for r in bq_query("SELECT id, amount FROM `%s.%s` ORDER BY id" % (ws.dataset, table))]
    check_eq(dst, src, "amounts of %s" % table)
    return n


class Writer:
    """Another connection changing the table while mbq runs: inserts,
    updates and deletes in multi-statement transactions, and key changes."""

    def __init__(self, ws, table="t", first_id=1000, seed=1):
        self.ws, self.table, self.next_id = ws, table, first_id
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.thread = None
        self.txns = 0

    def step(self):
        r, t = self.rng, self.table
        stmts = []
        for _ in range(r.randint(1, 4)):
            k = r.random()
            if k < 0.45:
                self.next_id += 1
                stmts.append("INSERT INTO `%s` VALUES (%d, 'w%d', %d, 1.50, NOW(6))"
                             % (t, self.next_id, self.next_id, r.randint(0, 10 ** 12)))
            elif k < 0.75:
                stmts.append("UPDATE `%s` SET v = CONCAT('u', n), n = n + 1, ts = NOW(6) "
                             "WHERE id = (SELECT id FROM (SELECT id FROM `%s` ORDER BY RAND() "
                             "LIMIT 1) x)" % (t, t))
            elif k < 0.9:
                stmts.append("DELETE FROM `%s` WHERE id = (SELECT id FROM (SELECT id FROM `%s` "
                             "ORDER BY RAND() LIMIT 1) x)" % (t, t))
            else:
                self.next_id += 1
                stmts.append("UPDATE `%s` SET id = %d WHERE id = (SELECT id FROM (SELECT id "
                             "FROM `%s` ORDER BY RAND() LIMIT 1) x)" % (t, self.next_id, t))
        self.ws.sql("START TRANSACTION; %s; COMMIT" % "; ".join(stmts))
        self.txns += 1

    def burst(self, n):
        for _ in range(n):
            self.step()

    def _loop(self):
        while not self.stop.is_set():
            self.step()
            time.sleep(0.02)

    def start(self):
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def join(self):
        self.stop.set()
        if self.thread:
            self.thread.join()


# ---- cases ---------------------------------------------------------------------

def test_snapshot_handoff_with_writes_during_the_snapshot():
    """Rows written while the snapshot is read are either in it or applied
    from the binlog after it: never lost, never applied twice."""
    ws = CdcWs("handoff")
    create_table(ws, rows=300)
    w = Writer(ws, seed=11)
    w.start()
    try:
        r = ws.once()
    finally:
        w.join()
    check("snapshot of" in r.stderr, "no snapshot taken: %r" % r)
    w.burst(5)
    ws.once()
    same(ws)
    state = ws.journal("SELECT state, snapshot_file, snapshot_pos FROM cdc_tables")
    check_eq(state[0][0], "streaming", "cdc table state")
    check(w.txns > 5, "the writer made too few transactions during the snapshot")
    ws.cleanup()


def test_churn_in_several_batches_with_key_changes():
    ws = CdcWs("churn")
    create_table(ws, rows=30)
    ws.once()
    config_cdc(ws, "max_batch_rows", "7")
    Writer(ws, seed=22).burst(40)
    ws.once()
    same(ws)
    batches = ws.journal("SELECT COUNT(*) FROM cdc_batches WHERE state = 'committed'")[0][0]
    check(batches >= 3, "expected several batches (max_batch_rows 7), got %d" % batches)
    ins, upd, dele = ws.journal("SELECT rows_inserted, rows_updated, rows_deleted FROM cdc_tables")[0]
    check(ins > 0 and upd > 0 and dele > 0, "I/U/D counters: %r" % ((ins, upd, dele),))
    # A --once run leaves the cdc families for the textfile collector,
    # next to the sync's metrics_file.
    with open(ws.config) as f:
        text = f.read()
    with open(ws.config, "w") as f:
        f.write(text + "\nmetrics_file: %s\n" % os.path.join(ws.dir, "mbq.prom"))
    ws.once()
    prom = os.path.join(ws.dir, "mbq-cdc.prom")
    check(os.path.exists(prom), "mbq cdc --once wrote %s" % prom)
    text = open(prom).read() if os.path.exists(prom) else ""
    check('mbq_cdc_rows_applied_total{table="t",op="insert"} %d' % ins in text,
          "applied rows in the textfile: %r" % text[:600])
    check("mbq_cdc_lag_seconds" in text, "lag in the textfile")
    ws.cleanup()


def config_cdc(ws, key, value):
    with open(ws.config) as f:
        text = f.read()
    text = text.replace("cdc:\n", "cdc:\n  %s: %s\n" % (key, value), 1)
    with open(ws.config, "w") as f:
        f.write(text)


def test_hard_and_soft_deletes():
    hard = CdcWs("hard")
    create_table(hard, rows=10)
    hard.once()
    hard.sql("DELETE FROM t WHERE id IN (2, 3); INSERT INTO t VALUES (50, 'x', 1, 1, NOW(6)); "
             "DELETE FROM t WHERE id = 50")
    hard.once()
    same(hard)
    soft = CdcWs("soft", deletes="soft")
    create_table(soft, rows=10)
    soft.once()
    soft.sql("DELETE FROM t WHERE id IN (2, 3); DELETE FROM t WHERE id = 4; "
             "INSERT INTO t VALUES (4, 'back', 4, 4, NOW(6))")
    soft.once()
    flagged = bq_query("SELECT id FROM `%s.t` WHERE _mbq_deleted ORDER BY id" % soft.dataset)
    check_eq([r[0] for r in flagged], ["2", "3"], "rows flagged deleted")
    live = bq_query("SELECT id, v FROM `%s.t` WHERE NOT COALESCE(_mbq_deleted, FALSE) ORDER BY id"
                    % soft.dataset)
    check_eq(live, soft.sql("SELECT id, v FROM t ORDER BY id"), "live rows equal MySQL's")
    hard.cleanup()
    soft.cleanup()


BATCH_POINTS = ["cdc.batch_closed", "cdc.loaded", "cdc.merged", "cdc.before_commit",
                "cdc.after_commit"]
SNAPSHOT_POINTS = ["cdc.snapshot_taken", "cdc.snapshot_loaded"]


def test_kill_at_every_batch_state():
    ws = CdcWs("kills")
    create_table(ws, rows=15)
    ws.once()
    w = Writer(ws, seed=33)
    for point in BATCH_POINTS:
        w.burst(4)
        r = ws.cdc("--once", env=ws.env(MBQ_FAULT=point))
        check(r.returncode == -signal.SIGKILL, "%s: not killed there: %r" % (point, r))
        w.burst(3)  # writes between the kill and the resume
        ws.once()
        same(ws)
        left = ws.journal("SELECT COUNT(*) FROM cdc_batches WHERE state = 'closed'")[0][0]
        check_eq(left, 0, "%s: batches left closed after the resume" % point)
    ws.cleanup()


def test_kill_during_the_snapshot():
    for point in SNAPSHOT_POINTS:
        ws = CdcWs("snapkill")
        create_table(ws, rows=25)
        r = ws.cdc("--once", env=ws.env(MBQ_FAULT=point))
        check(r.returncode == -signal.SIGKILL, "%s: not killed there: %r" % (point, r))
        Writer(ws, seed=44).burst(5)
        r = ws.once()
        same(ws)
        ws.cleanup()


def test_random_kills_of_a_follower_under_writes():
    """Killed at random instants, mid-request too: BigQuery finishes a job it
    accepted whatever the client does, which the emulator does not (it
    cancels the statement and can leave a table broken, EMULATOR.md 10); a
    pass-through proxy that completes every request it has received whole
    stands in front of it, as in the sync's kill tests."""
    ws = CdcWs("random")
    create_table(ws, rows=20)
    px = FaultProxy(os.environ["BIGQUERY_EMULATOR_HOST"], ws.dir, "bq")
    px.set(mode="pass", complete=True)
    env = ws.env(MBQ_E2E_BQ_ENDPOINT="http://127.0.0.1:%d" % px.port)
    w = Writer(ws, seed=55)
    rng = random.Random(5)
    w.start()
    try:
        for _ in range(4):
            p = ws.follow(env=env)
            time.sleep(rng.uniform(1.0, 4.0))
            p.kill()
            _, err = p.communicate(timeout=30)
            check("Sanitizer" not in err.decode(errors="replace"), "sanitizer report")
            time.sleep(0.3)  # writes between kill and resume
    finally:
        w.join()
    ws.once(env=env)
    px.stop()
    same(ws)
    ws.cleanup()


def test_add_column_mid_stream():
    ws = CdcWs("ddl")
    create_table(ws, rows=5)
    ws.once()
    ws.sql("INSERT INTO t VALUES (100, 'before', 1, 1, NOW(6)); "
           "ALTER TABLE t ADD COLUMN extra VARCHAR(20) NULL; "
           "INSERT INTO t (id, v, n, amount, ts, extra) VALUES (101, 'after', 2, 2, NOW(6), 'x1'); "
           "UPDATE t SET extra = 'x2' WHERE id = 1")
    r = ws.once()
    check("DDL at binlog" in r.stderr, "the DDL was not seen: %r" % r)
    same(ws, cols=COLS + ["extra"])
    ws.cleanup()


def test_statement_logged_change_fails_the_table_then_resnapshots():
    """A session that logs its DML as statements (binlog_format STATEMENT)
    leaves no row images: the table stops with what to do instead of
    losing the change, and its next start takes a new snapshot."""
    ws = CdcWs("stmt")
    create_table(ws, rows=5)
    ws.once()
    ws.sql("SET SESSION binlog_format = 'STATEMENT'; "
           "INSERT INTO t VALUES (60, 'stmt', 6, 6, '2024-02-02 00:00:00')")
    r = ws.cdc("--once")
    check_clean_failure(r, (1,), ["binlog_format", "mbq-state reset t --full"], "statement DML")
    check_eq(ws.journal("SELECT state FROM cdc_tables")[0][0], "failed", "table state")
    r = ws.once()
    check("snapshot of 6 rows" in r.stderr, "no new snapshot: %r" % r)
    same(ws)
    ws.cleanup()


def test_binlog_rotation_inside_a_batch():
    ws = CdcWs("rotate")
    create_table(ws, rows=5)
    ws.once()
    config_cdc(ws, "max_batch_rows", "100000")
    w = Writer(ws, seed=66)
    w.burst(5)
    mysql("FLUSH BINARY LOGS")
    w.burst(5)
    mysql("FLUSH BINARY LOGS")
    ws.once()
    same(ws)
    files = ws.journal("SELECT from_file, to_file FROM cdc_batches WHERE state = 'committed'")
    check(any(a != b for a, b in files), "no batch spans a rotation: %r" % files)
    ws.cleanup()


def test_sigterm_stops_cleanly_and_loses_nothing():
    ws = CdcWs("sigterm")
    create_table(ws, rows=10)
    ws.once()
    p = ws.follow()
    w = Writer(ws, seed=77)
    w.burst(10)
    time.sleep(3)
    w.burst(5)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    err = err.decode(errors="replace")
    check_eq(p.returncode, 0, "exit after SIGTERM (stderr: %s)" % err[-2000:])
    check("Sanitizer" not in err, "sanitizer report")
    st = ws.journal("SELECT status, pid FROM cdc_stream")[0]
    check_eq(st, ("stopped", None), "stream status after SIGTERM")
    ws.once()
    same(ws)
    ws.cleanup()


def test_sync_beside_a_running_follower():
    ws = CdcWs("beside", tables=[
        {"name": "t", "primary_key": "id", "mode": "cdc"},
        {"name": "plain", "primary_key": "id", "updated_column": "ts"}])
    create_table(ws, rows=5)
    create_table(ws, name="plain", rows=5)
    ws.once()
    p = ws.follow()
    try:
        time.sleep(2)
        r = ws.sync()
        check(r.returncode == 0, "mbq sync beside mbq cdc: %r" % r)
        same(ws, table="plain")
        r2 = ws.cdc("--once")
        check_clean_failure(r2, (75,), ["another 'mbq cdc' holds the lock"], "second follower")
        ws.sql("INSERT INTO t VALUES (77, 'live', 7, 7, NOW(6))")
        deadline = time.time() + 30
        while time.time() < deadline:
            if bq_query("SELECT COUNT(*) FROM `%s.t` WHERE id = 77" % ws.dataset)[0][0] == "1":
                break
            time.sleep(0.5)
        else:
            raise AssertionError("the follower did not apply a row within 30 s")
    finally:
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=60)
    check_eq(p.returncode, 0, "follower exit")
    same(ws)
    ws.cleanup()


def test_lost_connection_reconnects_and_goes_on():
    """The follower's binlog connection ended on the server (as a network
    cut or a restart of the source ends it): the follower reconnects with
    backoff from the committed position, the batch it was reading is read
    again, and rows written after the cut arrive while it keeps running."""
    ws = CdcWs("reconnect")
    create_table(ws, rows=5)
    ws.once()
    p = ws.follow()
    err = ""
    try:
        time.sleep(2)
        ws.sql("INSERT INTO t VALUES (80, 'before the cut', 8, 8, NOW(6))")
        killed = 0
        for _ in range(20):
            for row in mysql("SELECT ID FROM information_schema.PROCESSLIST "
                             "WHERE COMMAND LIKE 'Binlog Dump%'"):
                try:
                    mysql("KILL %s" % row[0])
                    killed += 1
                except RuntimeError:
                    pass
            if killed:
                break
            time.sleep(0.2)
        check(killed > 0, "no binlog dump connection to end")
        ws.sql("INSERT INTO t VALUES (81, 'after the cut', 8, 8, NOW(6)); "
               "UPDATE t SET v = 'changed after the cut' WHERE id = 1; DELETE FROM t WHERE id = 2")
        deadline = time.time() + 60
        while time.time() < deadline:
            if bq_query("SELECT COUNT(*) FROM `%s.t` WHERE id = 81" % ws.dataset)[0][0] == "1":
                break
            time.sleep(0.5)
        else:
            raise AssertionError("the follower did not apply a row written after the cut")
    finally:
        p.send_signal(signal.SIGTERM)
        _, e = p.communicate(timeout=60)
        err = e.decode(errors="replace")
    check_eq(p.returncode, 0, "follower exit (stderr: %s)" % err[-2000:])
    check("lost the binlog connection" in err and err.count("reading the binlog from") >= 2,
          "the cut and the new connection are logged: %s" % err[-2000:])
    check("Sanitizer" not in err, "sanitizer report")
    same(ws)
    ws.cleanup()


def test_purged_binlog_fails_clearly():
    """Last: it purges the server's old binlog files."""
    rcpt = "cdc-purge-%d@alerts.test" % os.getpid()
    ws = CdcWs("purge", rcpt=rcpt if os.environ.get("MBQ_TEST_SMTP_PORT") else None)
    create_table(ws, rows=5)
    ws.once()
    mysql("FLUSH BINARY LOGS")
    ws.sql("INSERT INTO t VALUES (90, 'gone', 1, 1, NOW(6))")
    mysql("FLUSH BINARY LOGS")
    cur = mysql("SHOW MASTER STATUS")[0][0]
    stream_file = ws.journal("SELECT binlog_file FROM cdc_stream")[0][0]
    # The server keeps a file a binlog dump thread still reads (one left by
    # an earlier case's killed follower, until the server notices): those
    # threads are ended first, and the purge is checked.
    for _ in range(20):
        for row in mysql("SELECT ID FROM information_schema.PROCESSLIST "
                         "WHERE COMMAND LIKE 'Binlog Dump%'"):
            try:
                mysql("KILL %s" % row[0])
            except RuntimeError:
                pass
        mysql("PURGE BINARY LOGS TO '%s'" % cur)
        if stream_file not in [r[0] for r in mysql("SHOW BINARY LOGS")]:
            break
        time.sleep(0.5)
    check(stream_file not in [r[0] for r in mysql("SHOW BINARY LOGS")],
          "the server did not purge %s" % stream_file)
    r = ws.cdc("--once")
    check_clean_failure(r, (1,), ["mbq-state reset", "--full"], "purged binlog")
    st = ws.journal("SELECT status, error FROM cdc_stream")[0]
    check_eq(st[0], "failed", "stream status")
    if os.environ.get("MBQ_TEST_SMTP_PORT"):
        mails = []
        for meta in glob.glob(os.path.join(os.environ["MBQ_TEST_SMTP_MAILDIR"], "*.json")):
            if rcpt in json.load(open(meta))["rcpt_tos"]:
                mails.append(open(meta[:-5] + ".eml", "rb").read().decode(errors="replace"))
        check_eq(len(mails), 1, "alert mails for the failed stream")
        check(mails and "mbq-state reset" in mails[0], "the alert names the reset")
    ws.cleanup()


if __name__ == "__main__":
    require_services()
    cases = [test_snapshot_handoff_with_writes_during_the_snapshot,
             test_churn_in_several_batches_with_key_changes,
             test_hard_and_soft_deletes,
             test_kill_at_every_batch_state,
             test_kill_during_the_snapshot,
             test_random_kills_of_a_follower_under_writes,
             test_add_column_mid_stream,
             test_statement_logged_change_fails_the_table_then_resnapshots,
             test_binlog_rotation_inside_a_batch,
             test_sigterm_stops_cleanly_and_loses_nothing,
             test_sync_beside_a_running_follower,
             test_lost_connection_reconnects_and_goes_on,
             test_purged_binlog_fails_clearly]
    only = os.environ.get("MBQ_CDC_ONLY")
    if only:
        cases = [c for c in cases if only in c.__name__]
    # A private emulator, fresh every few cases: the shared one's SQL
    # analyzer keeps memory from every statement until it panics (README
    # divergence 32), and each batch here runs several jobs and drops.
    private_emulator()
    try:
        run_cases(cases, fresh_emulator_every=3)
    finally:
        print("FIGURE cdc_resumes_found_journaled_job=%d" % len(FOUND_JOBS))
