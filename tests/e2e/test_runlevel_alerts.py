#!/usr/bin/env python3
"""Runs that stop before any table are heard (label `alerts`): exit 74 (a
corrupt journal), 75 (the lock held, only past alerting.lock_alert_after),
70 (an internal error, by a failed allocation) and 69 (MySQL unreachable
while finding the tables of a `discover` entry). Each is checked against the
real SMTP sink, the Telegram stand-in, the metrics file and the BigQuery
metadata table; the `change` policy sends the first of a streak and the
recovery only."""
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mbqtest import (Workspace, bq_query, check, check_eq, expect_ok, mysql, private_emulator,
                     require_services, run_cases)

HERE = os.path.dirname(os.path.abspath(__file__))
BOT_TOKEN = "123456:SECRET-bot-token-xyz"
os.environ["MBQ_E2E_BOT_TOKEN"] = BOT_TOKEN

ITEMS = ("CREATE TABLE items (id BIGINT NOT NULL PRIMARY KEY, val VARCHAR(20), "
         "updated_at DATETIME(6) NOT NULL);"
         "INSERT INTO items VALUES (1,'a','2024-01-01 00:00:01'),(2,'b','2024-01-01 00:00:02');")


def mails_to(rcpt):
    """Subjects and bodies the sink received for `rcpt`, oldest first."""
    import email
    import email.policy
    import glob
    out = []
    paths = glob.glob(os.path.join(os.environ["MBQ_TEST_SMTP_MAILDIR"], "*.json"))
    for meta_path in sorted(paths, key=lambda p: int(os.path.basename(p).split(".")[0])):
        meta = json.load(open(meta_path))
        if rcpt in meta["rcpt_tos"]:
            raw = open(meta_path[:-5] + ".eml", "rb").read()
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            out.append((str(msg["subject"]), msg.get_content()))
    return out


class Telegram:
    """tests/standins/telegram_standin.py answering ok:true, its requests logged."""

    def __init__(self, workdir):
        self.log = os.path.join(workdir, "tg.log")
        port_file = os.path.join(workdir, "tg.port")
        self.p = subprocess.Popen([sys.executable, os.path.join(HERE, "..", "standins",
                                                                "telegram_standin.py"),
                                   "--port-file", port_file, "--log", self.log])
        for _ in range(200):
            if os.path.exists(port_file) and open(port_file).read().strip():
                break
            time.sleep(0.05)
        self.url = "http://127.0.0.1:%s" % open(port_file).read().strip()

    def texts(self):
        if not os.path.exists(self.log):
            return []
        return [json.loads(json.loads(l)["body"])["text"] for l in open(self.log) if l.strip()]

    def stop(self):
        self.p.terminate()
        self.p.wait()


def runlevel_ws(name, on, tg, tables=None, extra_alerting="", mysql_port=None):
    ws = Workspace(name)
    mysql(ITEMS, db=ws.db)
    ws.rcpt = "%s-%s@alerts.test" % (name, os.path.basename(ws.dir).rsplit("-", 1)[-1].lower())
    ws.metrics = os.path.join(ws.dir, "mbq.prom")
    extra = ["alerting:", "  email:",
             "    host: 127.0.0.1", "    port: %s" % os.environ["MBQ_TEST_SMTP_PORT"],
             "    tls: none", "    from: mbq@alerts.test", "    to: %s" % ws.rcpt,
             "    on: %s" % on,
             "  telegram:", "    bot_token: ${MBQ_E2E_BOT_TOKEN}", "    chat_id: \"-100123\"",
             "    api_url: %s" % tg.url, "    on: %s" % on]
    extra += ["  " + l for l in extra_alerting.strip().splitlines() if l]
    extra += ["metrics_file: %s" % ws.metrics]
    ws.write_config(tables or [{"name": "items", "primary_key": "id",
                                "updated_column": "updated_at"}], extra="\n".join(extra))
    if mysql_port:
        text = open(ws.config).read()
        text = text.replace("port: %s\n" % os.environ["MBQ_TEST_MYSQL_PORT"],
                            "port: %s\n" % mysql_port, 1)
        open(ws.config, "w").write(text)
    return ws


def sync(ws, *args, **env):
    return ws.sync(*args, env=ws.env(MBQ_NOTIFY_BACKOFF_MS=50, **env))


def metrics(ws):
    out = {}
    for line in open(ws.metrics):
        if line.startswith("#") or not line.strip():
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$', line.strip())
        check(m is not None, "prometheus text line: %r" % line)
        out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def run_rows(ws):
    """The metadata table's rows for runs that stopped: (run_id, status)."""
    return [(r[0], r[1]) for r in bq_query(
        "SELECT run_id, status FROM `%s.sync_metadata` WHERE table_name = '(run)' "
        "ORDER BY updated_at" % ws.dataset)]


def corrupt_journal(ws):
    saved = os.path.join(ws.dir, "journal-backup")
    os.makedirs(saved, exist_ok=True)
    for f in os.listdir(ws.state):
        if f.startswith("state.db"):
            shutil.move(os.path.join(ws.state, f), os.path.join(saved, f))
    with open(os.path.join(ws.state, "state.db"), "wb") as f:
        f.write(b"this is not an SQLite database\n" * 100)
    return saved


def restore_journal(ws, saved):
    for f in os.listdir(ws.state):
        if f.startswith("state.db"):
            os.unlink(os.path.join(ws.state, f))
    for f in os.listdir(saved):
        shutil.move(os.path.join(saved, f), os.path.join(ws.state, f))


def test_exit_74_alerts_once_per_streak_and_recovers():
    tg = Telegram(tempfile_dir())
    try:
        ws = runlevel_ws("rl74", "change", tg)
        expect_ok(sync(ws))
        check_eq(metrics(ws).get("mbq_run_exit_code"), 0.0, "exit code metric after a good run")
        check_eq(metrics(ws).get('mbq_build_info{version="%s",commit="%s"}' % build_info()), 1.0,
                 "mbq_build_info names version and commit")
        saved = corrupt_journal(ws)
        r = sync(ws)
        check_eq(r.returncode, 74, "corrupt journal: %r" % r)
        mails = mails_to(ws.rcpt)
        check_eq(len(mails), 1, "one mail for the stopped run")
        subject, body = mails[0]
        check("FAILED: run stopped (exit 74)" in subject, "subject: %s" % subject)
        check("corrupt" in body and "journal" in body, "body has the error: %s" % body)
        check_eq(len(tg.texts()), 1, "one Telegram message")
        check("exit 74" in tg.texts()[0], "telegram text: %s" % tg.texts()[0])
        m = metrics(ws)
        check_eq(m.get("mbq_run_exit_code"), 74.0, "exit code metric")
        check_eq(m.get("mbq_run_stopped"), 1.0, "stopped metric")
        check_eq(m.get('mbq_table_rows_synced{table="items"}'), 2.0,
                 "the tables' series of the last run are kept")
        rows = run_rows(ws)
        check_eq([s for _, s in rows], ["run_failed: exit 74"], "metadata row for the run")
        # The same failure again: `change` stays quiet, the streak grows.
        r = sync(ws)
        check_eq(r.returncode, 74, "still corrupt: %r" % r)
        check_eq(len(mails_to(ws.rcpt)), 1, "no second mail under 'change'")
        check_eq(len(tg.texts()), 1, "no second Telegram message under 'change'")
        check_eq(metrics(ws).get("mbq_run_consecutive_stopped"), 2.0, "streak in the metrics")
        check_eq(len(run_rows(ws)), 2, "every stopped run gets its metadata row")
        # Repaired: the next run goes through and says so.
        restore_journal(ws, saved)
        expect_ok(sync(ws))
        mails = mails_to(ws.rcpt)
        check_eq(len(mails), 2, "a recovery mail")
        check("RECOVERED: runs go through again (after 2 stopped, exit 74)" in mails[1][0],
              "recovery subject: %s" % mails[1][0])
        check_eq(len(tg.texts()), 2, "a recovery Telegram message")
        m = metrics(ws)
        check_eq((m.get("mbq_run_exit_code"), m.get("mbq_run_stopped")), (0.0, 0.0),
                 "metrics after the recovery")
        check(not os.path.exists(os.path.join(ws.state, "run-failures")), "streak ended")
        ws.cleanup()
    finally:
        tg.stop()


def test_exit_75_alerts_only_past_lock_alert_after():
    tg = Telegram(tempfile_dir())
    try:
        ws = runlevel_ws("rl75", "failure", tg, extra_alerting="lock_alert_after: 10m")
        expect_ok(sync(ws))
        lock = os.path.join(ws.state, "lock")
        fd = os.open(lock, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.ftruncate(fd, 0)
            os.write(fd, b"%d\n" % os.getpid())  # a holder that just took the lock
            r = sync(ws)
            check_eq(r.returncode, 75, "lock held: %r" % r)
            check_eq(mails_to(ws.rcpt), [], "no mail for a lock held 0 s")
            check_eq(tg.texts(), [], "no Telegram message for a lock held 0 s")
            m = metrics(ws)
            check_eq(m.get("mbq_run_exit_code"), 75.0, "exit code metric")
            check(m.get("mbq_run_lock_held_seconds", -1) < 60, "lock held seconds: %r" % m)
            check_eq(m.get('mbq_table_up{table="items"}'), 1.0, "tables' series kept")
            check_eq(run_rows(ws), [], "no metadata row below the threshold")
            # The same holder, 2 hours later (its mtime says when it took it).
            old = time.time() - 7200
            os.utime(lock, (old, old))
            r = sync(ws)
            check_eq(r.returncode, 75, "lock still held: %r" % r)
            mails = mails_to(ws.rcpt)
            check_eq(len(mails), 1, "one mail past lock_alert_after")
            check("FAILED: run stopped (exit 75)" in mails[0][0], "subject: %s" % mails[0][0])
            check("pid %d" % os.getpid() in mails[0][1], "body names the holder: %s" % mails[0][1])
            check("held for 72" in mails[0][1], "body says how long: %s" % mails[0][1])
            check_eq(len(tg.texts()), 1, "one Telegram message past lock_alert_after")
            m = metrics(ws)
            check(7190 < m.get("mbq_run_lock_held_seconds", 0) < 7300, "held: %r" % m)
            check_eq([s for _, s in run_rows(ws)], ["run_failed: exit 75"], "metadata row")
            # `failure` alerts every such run (a holder stuck for hours).
            r = sync(ws)
            check_eq(r.returncode, 75, "lock still held: %r" % r)
            check_eq(len(mails_to(ws.rcpt)), 2, "failure policy: a mail per stopped run")
        finally:
            os.close(fd)
        expect_ok(sync(ws))
        ws.cleanup()
    finally:
        tg.stop()


def test_exit_70_internal_error_is_alerted():
    """An allocation made to fail (MBQ_FAIL_ALLOC=N) inside the run, before
    any table: the first N past the config's own allocations that stops the
    run with exit 70."""
    tg = Telegram(tempfile_dir())
    try:
        ws = runlevel_ws("rl70", "failure", tg)
        found = None
        for n in range(1, 600):
            before = len(mails_to(ws.rcpt))
            r = sync(ws, MBQ_FAIL_ALLOC=n)
            # A failure while the config loads has no config to alert by:
            # exit 70 with no mail. The first one with a mail is the run's.
            if r.returncode == 70 and len(mails_to(ws.rcpt)) > before:
                found = n
                break
        check(found is not None, "an allocation failure stopped the run with exit 70")
        mails = mails_to(ws.rcpt)
        check(len(mails) >= 1, "a mail for exit 70")
        check("FAILED: run stopped (exit 70)" in mails[-1][0], "subject: %s" % mails[-1][0])
        check("internal error" in mails[-1][1], "body explains 70: %s" % mails[-1][1])
        check(any("exit 70" in t for t in tg.texts()), "Telegram: %s" % tg.texts())
        check_eq(metrics(ws).get("mbq_run_exit_code"), 70.0, "exit code metric")
        check("run_failed: exit 70" in [s for _, s in run_rows(ws)], "metadata row")
        print("FIGURE runlevel_fail_alloc_n=%d" % found)
        ws.cleanup()
    finally:
        tg.stop()


def test_exit_69_while_discovering_is_alerted():
    """Only a `discover` entry, MySQL refusing connections: no table is
    known, so the run stops before any (exit 69), alerted as such; BigQuery
    still gets the run's row."""
    tg = Telegram(tempfile_dir())
    try:
        ws = runlevel_ws("rl69", "failure", tg, tables=[{"name": "'*'"}], mysql_port=1)
        r = sync(ws)
        check_eq(r.returncode, 69, "MySQL refused: %r" % r)
        mails = mails_to(ws.rcpt)
        check_eq(len(mails), 1, "one mail")
        check("FAILED: run stopped (exit 69): cannot find the tables to sync" in mails[0][0],
              "subject: %s" % mails[0][0])
        check_eq(len(tg.texts()), 1, "one Telegram message")
        check_eq(metrics(ws).get("mbq_run_exit_code"), 69.0, "exit code metric")
        check_eq([s for _, s in run_rows(ws)], ["run_failed: exit 69"], "metadata row")
        ws.cleanup()
    finally:
        tg.stop()


_TMP = []


def tempfile_dir():
    import tempfile
    d = tempfile.mkdtemp(prefix="mbq-rl-tg-")
    _TMP.append(d)
    return d


def build_info():
    r = subprocess.run([os.environ["MBQ_BIN"], "--version"], capture_output=True, text=True)
    m = re.match(r"mbq (\S+) \(commit (\S+)\)", r.stdout)
    check(m is not None, "--version first line: %r" % r.stdout)
    return m.group(1), m.group(2)


def test_version_names_commit_and_libraries():
    r = subprocess.run([os.environ["MBQ_BIN"], "--version"], capture_output=True, text=True)
    check_eq(r.returncode, 0, "--version exit code")
    for lib in ("libmariadb", "libcurl", "sqlite", "json-c", "libyaml", "openssl", "zlib"):
        check(re.search(r"^  %s +\S" % re.escape(lib), r.stdout, re.M) is not None,
              "--version names %s: %s" % (lib, r.stdout))
    print(r.stdout.strip())


if __name__ == "__main__":
    require_services()
    private_emulator()
    try:
        run_cases([test_version_names_commit_and_libraries,
                   test_exit_74_alerts_once_per_streak_and_recovers,
                   test_exit_75_alerts_only_past_lock_alert_after,
                   test_exit_70_internal_error_is_alerted,
                   test_exit_69_while_discovering_is_alerted])
    finally:
        for d in _TMP:
            shutil.rmtree(d, ignore_errors=True)
