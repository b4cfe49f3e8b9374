#!/usr/bin/env python3
"""Alerts and observability through `mbq sync` (label `alerts`): mails
received by the real SMTP sink, the Telegram stand-in's requests, the
`change` policy across runs, a failing notifier that leaves the exit code
alone, the Prometheus metrics file, and JSON logs."""
import email
import email.policy
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mbqtest import (Workspace, check, check_eq, expect_ok, mysql, require_services, run_cases, private_emulator)

HERE = os.path.dirname(os.path.abspath(__file__))
BOT_TOKEN = "123456:SECRET-bot-token-xyz"
os.environ["MBQ_E2E_BOT_TOKEN"] = BOT_TOKEN  # every mbq and mbq-state run of this file

ITEMS = ("CREATE TABLE items (id BIGINT NOT NULL PRIMARY KEY, val VARCHAR(20), n INT, "
         "updated_at DATETIME(6) NOT NULL);"
         "INSERT INTO items VALUES (1,'a',1,'2024-01-01 00:00:01'),(2,'b',2,'2024-01-01 00:00:02'),"
         "(3,'c',3,'2024-01-01 00:00:03');")


def mails_to(rcpt):
    """Messages the sink received for `rcpt`: (meta, parsed message)."""
    out = []
    for meta_path in sorted(glob.glob(os.path.join(os.environ["MBQ_TEST_SMTP_MAILDIR"], "*.json")),
                            key=lambda p: int(os.path.basename(p).split(".")[0])):
        meta = json.load(open(meta_path))
        if rcpt in meta["rcpt_tos"]:
            raw = open(meta_path[:-5] + ".eml", "rb").read()
            out.append((meta, email.message_from_bytes(raw, policy=email.policy.default)))
    return out


def alert_ws(name, on="failure", tables=None, telegram=None):
    ws = Workspace(name)
    mysql(ITEMS, db=ws.db)
    # Unique per run: the sink's maildir outlives a test.
    rcpt = "%s-%s@alerts.test" % (name, os.path.basename(ws.dir).rsplit("-", 1)[-1].lower())
    extra = ["alerting:", "  email:",
             "    host: 127.0.0.1", "    port: %s" % os.environ["MBQ_TEST_SMTP_PORT"],
             "    tls: none", "    from: mbq@alerts.test", "    to: [%s, second-%s]" % (rcpt, rcpt),
             "    on: %s" % on]
    if telegram:
        extra += ["  telegram:", "    bot_token: ${MBQ_E2E_BOT_TOKEN}", "    chat_id: \"-100123\"",
                  "    api_url: %s" % telegram, "    on: always"]
    ws.write_config(tables or [{"name": "items", "primary_key": "id",
                                "updated_column": "updated_at"}], extra="\n".join(extra))
    ws.rcpt = rcpt
    return ws


def sync(ws, *args):
    return ws.sync(*args, env=ws.env(MBQ_NOTIFY_BACKOFF_MS=50))


def test_failure_mail_lists_every_failed_table_once():
    ws = alert_ws("mailfail", tables=[
        {"name": "items", "primary_key": "id", "updated_column": "updated_at"},
        {"name": "ghost1", "primary_key": "id", "updated_column": "updated_at"},
        {"name": "ghost2", "primary_key": "id"}])
    r = sync(ws)
    check_eq(r.returncode, 1, "exit code: %r" % r)
    mails = mails_to(ws.rcpt)
    check_eq(len(mails), 1, "one message per run")
    meta, msg = mails[0]
    check_eq(sorted(meta["rcpt_tos"]), sorted([ws.rcpt, "second-" + ws.rcpt]), "both recipients")
    check("FAILED: 2 of 3 tables failed" in msg["subject"], "subject: %s" % msg["subject"])
    body = msg.get_content()
    for want in ("ghost1", "ghost2", "schema-check", "UTC"):
        check(want in body, "body names %r: %s" % (want, body))
    ev = [e for e in ws.inspect()["events"] if e["kind"] == "alert.sent"]
    check_eq(len(ev), 1, "alert journaled")
    ws.cleanup()


def test_change_policy_sends_on_failure_once_and_on_recovery():
    ws = alert_ws("mailchange", on="change", tables=[
        {"name": "later", "primary_key": "id", "updated_column": "updated_at"}])
    check_eq(sync(ws).returncode, 1, "first failing run")
    check_eq(len(mails_to(ws.rcpt)), 1, "sent when the table starts failing")
    check_eq(sync(ws).returncode, 1, "second failing run")
    check_eq(len(mails_to(ws.rcpt)), 1, "nothing sent while it keeps failing")
    mysql("CREATE TABLE later (id INT PRIMARY KEY, updated_at DATETIME(6));"
          "INSERT INTO later VALUES (1, '2024-01-01')", db=ws.db)
    expect_ok(sync(ws), "recovered run")
    mails = mails_to(ws.rcpt)
    check_eq(len(mails), 2, "sent once on recovery")
    check("RECOVERED" in mails[1][1]["subject"], "subject: %s" % mails[1][1]["subject"])
    expect_ok(sync(ws), "healthy run")
    check_eq(len(mails_to(ws.rcpt)), 2, "nothing sent for a healthy run")
    ws.cleanup()


def test_success_summary_has_rows_and_schema_changes():
    ws = alert_ws("mailok", on="always")
    expect_ok(sync(ws))
    mysql("ALTER TABLE items MODIFY val VARCHAR(200);"
          "INSERT INTO items VALUES (4,'d',4,'2024-01-02 00:00:00')", db=ws.db)
    expect_ok(sync(ws))
    mails = mails_to(ws.rcpt)
    check_eq(len(mails), 2, "a mail per run with on: always")
    subj, body = mails[1][1]["subject"], mails[1][1].get_content()
    check(subj.startswith("[mbq] OK"), "subject: %s" % subj)
    check("val" in body and "varchar(200)" in body, "schema change in the body: %s" % body)
    check("items" in body, "table in the body: %s" % body)
    ws.cleanup()


def start_telegram(responses):
    d = tempfile.mkdtemp(prefix="mbq-tg-")
    port_file, log = os.path.join(d, "port"), os.path.join(d, "requests.jsonl")
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "..", "standins", "telegram_standin.py"),
                          "--port-file", port_file, "--log", log, "--responses", responses])
    for _ in range(100):
        if os.path.exists(port_file) and open(port_file).read().strip():
            break
        time.sleep(0.05)
    return p, "http://127.0.0.1:%s" % open(port_file).read().strip(), log


def test_telegram_5xx_leaves_exit_code_and_is_journaled():
    p, url, log = start_telegram("500")
    try:
        ws = alert_ws("tg5xx", on="failure", telegram=url)
        r = sync(ws)
        check_eq(r.returncode, 0, "a failing notifier never fails the sync: %r" % r)
        reqs = [json.loads(l) for l in open(log)]
        check(len(reqs) >= 2, "retried: %d requests" % len(reqs))
        check(reqs[0]["path"] == "/bot123456:SECRET-bot-token-xyz/sendMessage", "path")
        body = json.loads(reqs[0]["body"])
        check_eq(body["chat_id"], "-100123", "chat id")
        check_eq(body["parse_mode"], "HTML", "parse mode")
        check("SECRET-bot-token" not in r.stderr + r.stdout, "token never in output")
        st = ws.inspect()
        failed = [e for e in st["events"] if e["kind"] == "alert.failed"]
        check_eq(len(failed), 1, "failure journaled")
        check("SECRET-bot-token" not in json.dumps(st), "token never in the journal")
        text = ws.state_cmd("inspect").stdout
        check("alert.failed" in text, "inspect shows the failed alert: %s" % text)
        ws.cleanup()
    finally:
        p.terminate()
        p.wait()


def test_metrics_file_holds_the_run():
    ws = alert_ws("metrics", on="failure", tables=[
        {"name": "items", "primary_key": "id", "updated_column": "updated_at"},
        {"name": "ghost", "primary_key": "id", "updated_column": "updated_at"}])
    path = os.path.join(ws.dir, "mbq.prom")
    r = sync(ws, "--metrics-file", path)
    check_eq(r.returncode, 1, "exit code")
    samples = {}
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$', line.strip())
        check(m is not None, "prometheus text line: %r" % line)
        samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    check_eq(samples.get('mbq_table_rows_synced{table="items"}'), 3.0, "rows synced")
    check_eq(samples.get('mbq_table_consecutive_failures{table="ghost"}'), 1.0, "failures")
    check_eq(samples.get('mbq_table_up{table="ghost"}'), 0.0, "ghost down")
    check_eq(samples.get('mbq_run_tables{result="failed"}'), 1.0, "failed tables")
    check(samples.get('mbq_table_last_success_timestamp_seconds{table="items"}', 0) > 1.7e9,
          "last success time")
    check(not [f for f in os.listdir(ws.dir) if ".tmp" in f], "no temp file left")
    ws.cleanup()


def test_json_logs_have_level_table_and_state():
    ws = alert_ws("jsonlog", on="failure")
    r = ws.sync("--log-format", "json", "--log-level", "debug")
    expect_ok(r)
    lines = [json.loads(l) for l in r.stderr.splitlines() if l.strip()]
    check(len(lines) > 3, "several log lines")
    for l in lines:
        check("ts" in l and "level" in l and "msg" in l, "fields: %r" % l)
    check(any(l.get("table") == "items" and l.get("state") == "extract" for l in lines),
          "table and state on table lines")
    ws.cleanup()


def test_progress_on_a_terminal_only():
    ws = alert_ws("progress", on="failure")
    # script(1) gives mbq a pseudo-terminal as stderr.
    cmd = "%s sync --config %s" % (os.environ["MBQ_BIN"], ws.config)
    p = subprocess.run(["script", "-qefc", cmd, "/dev/null"], env=ws.env(), capture_output=True,
                       timeout=300)
    out = p.stdout.decode(errors="replace")
    check_eq(p.returncode, 0, "sync on a terminal: %s" % out)
    check(re.search(r"items extract: 3 rows, [0-9.]+ [KMG]?i?B", out) is not None,
          "progress line on a terminal: %r" % out)
    mysql("INSERT INTO items VALUES (9,'z',9,'2024-02-01 00:00:00')", db=ws.db)
    r = ws.sync()
    expect_ok(r)
    check("items extract:" not in r.stderr, "no progress line off a terminal: %r" % r)
    ws.cleanup()


if __name__ == "__main__":
    require_services()
    private_emulator()  # a fresh emulator of its own (mbqtest.py says why)
    run_cases([test_failure_mail_lists_every_failed_table_once,
               test_change_policy_sends_on_failure_once_and_on_recovery,
               test_success_summary_has_rows_and_schema_changes,
               test_telegram_5xx_leaves_exit_code_and_is_journaled,
               test_metrics_file_holds_the_run,
               test_json_logs_have_level_table_and_state,
               test_progress_on_a_terminal_only])
