#!/usr/bin/env python3
"""Faults proof (label `reliability`, issue 8).

Network and server faults between mbq and the BigQuery emulator and between
mbq and MariaDB (tools/faultproxy.py, and an HTTP-aware cutter where one
request must be addressed), disk full for the staging directory and for the
journal, damaged or locked journals, and concurrent runs. Each faulty run
either completes or fails cleanly (a documented exit code, a message saying
what failed, no signal, no sanitizer report); the next run completes; the
target then equals the source row for row, with no duplicate key.

The test starts its own MariaDB, emulator and SMTP sink (tools/services.sh)
so that it can restart and stop them without disturbing tests that run in
parallel. Prints "network fault cases: N" and the rows lost / duplicated."""
import fcntl
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mbqtest  # noqa: E402
from mbqtest import (LOSS, FaultProxy, HttpCutter, Workspace, assert_target_equals_source,  # noqa: E402
                     check, check_clean_failure, check_eq, check_no_sanitizer, config_set,
                     count_loss, expect_ok, load_services_env, mysql, require_services, run_cases)

COLS = ["id", "val", "n", "updated_at"]
SERVICES_SH = os.path.join(os.environ.get("MBQ_SOURCE_DIR", "."), "tools", "services.sh")
SVC_DIR = None
WORK = tempfile.mkdtemp(prefix="mbq-faults-")
NET_CASES = []
LOCAL_CASES = []
# (dataset, key) of every source row compared with its target: the figure
# counts each row once however many runs compared it.
ROWS_COMPARED = set()
EXIT_UNAVAILABLE, EXIT_FAILED, EXIT_IOERR, EXIT_LOCKED = 69, 1, 74, 75


def services(cmd):
    p = subprocess.run(["bash", SERVICES_SH, cmd, SVC_DIR], capture_output=True, timeout=300,
                       stdin=subprocess.DEVNULL)
    check(p.returncode == 0, "services.sh %s failed: %s" % (cmd, p.stderr.decode()[-2000:]))


def start_private_services():
    global SVC_DIR
    SVC_DIR = os.path.join(WORK, "svc")
    services("start")
    os.environ.update(load_services_env(os.path.join(SVC_DIR, "env")))


def make_ws(name, rows=30, width=10, random_bytes=0, extra_bigquery=""):
    """`random_bytes` > 0: each val is that many random bytes in hex, which
    gzip (the staging files' default) cannot shrink below about half, so a
    test that must cut or fill something by byte count still can."""
    ws = Workspace("flt_" + name)
    mysql("CREATE TABLE items (id BIGINT NOT NULL PRIMARY KEY, val TEXT, n INT, "
          "updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) "
          "ON UPDATE CURRENT_TIMESTAMP(6))", db=ws.db)
    batch = []
    for i in range(1, rows + 1):
        val = ("'%s'" % os.urandom(random_bytes).hex() if random_bytes
               else "REPEAT('v%d', %d)" % (i, width))
        batch.append("(%d, %s, %d, '2024-01-01 00:00:%02d.000000')" % (i, val, i, i % 60))
        if len(batch) == 500 or i == rows:
            mysql("INSERT INTO items (id, val, n, updated_at) VALUES " + ",".join(batch), db=ws.db)
            batch = []
    ws.write_config([{"name": "items", "primary_key": "id", "updated_column": "updated_at"}],
                    extra_bigquery=extra_bigquery)
    return ws


def change_rows(ws, base):
    """An update, an insert and a row tying the committed cursor."""
    mysql("UPDATE items SET val = 'changed-%d', updated_at = NOW(6) WHERE id IN (2, 3);"
          "INSERT INTO items (id, val, n) VALUES (%d, 'new', 1)" % (base, base), db=ws.db)


def mysql_via(ws, port):
    config_set(ws, "mysql", "port", port)


def bq_env(ws, port):
    return ws.env(MBQ_E2E_BQ_ENDPOINT="http://127.0.0.1:%d" % port)


def cursor(ws):
    return ws.inspect("items")["tables"][0]["cursor"]


def verify(ws, what, env=None):
    """The next (healthy) run completes; target == source, no duplicate,
    no run left in flight; the figures count the rows."""
    r = ws.sync(env=env)
    check_no_sanitizer(r, what)
    expect_ok(r, "%s: the next run" % what)
    assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"])
    ROWS_COMPARED.update((ws.dataset, k) for (k,) in mysql("SELECT id FROM items", db=ws.db))
    lost, dups = count_loss(ws, "items", "id")
    check_eq((lost, dups), (0, 0), "%s: rows lost, duplicated" % what)
    t = ws.inspect("items")["tables"][0]
    check_eq(t["in_flight"], None, "%s: no run in flight" % what)


def done_or_clean(r, codes, fragments, what):
    """A run under a fault: it completed, or failed cleanly."""
    if r.returncode == 0:
        check_no_sanitizer(r, what)
        return "completed"
    check_clean_failure(r, codes, fragments, what)
    return "failed cleanly"


# ---- network: BigQuery side ----------------------------------------------------

def bq_proxy(name):
    return FaultProxy(os.environ["BIGQUERY_EMULATOR_HOST"], WORK, name)


def test_bigquery_connection_refused():
    ws = make_ws("bq_refused")
    px = bq_proxy("bq_refused")
    try:
        px.set(mode="refuse")
        r = ws.sync(env=bq_env(ws, px.port))
        check_clean_failure(r, [EXIT_UNAVAILABLE], ["bigquery"], "sync with BigQuery refusing")
        t = ws.inspect("items")["tables"][0]
        check_eq(t["cursor"], None, "no cursor committed by a failed first run")
        px.set(mode="pass")
        verify(ws, "bigquery refused", env=bq_env(ws, px.port))
    finally:
        px.stop()
    NET_CASES.append("bigquery connection refused")
    ws.cleanup()


def test_bigquery_cut_during_upload():
    # 600 rows of 2 KB of random bytes (~2.2 KB each gzip'd): the upload
    # body dominates the connection's bytes, so a cut after 600 KB
    # client->server falls inside it.
    ws = make_ws("bq_cut_upload", rows=600, random_bytes=2000)
    px = bq_proxy("bq_cut_upload")
    try:
        px.set(mode="pass", cut_after_bytes=600000, cut_direction="c2s", complete=True)
        w = px.pass_after_first("cut client->server")
        r = ws.sync(env=bq_env(ws, px.port))
        w.join(5)
        check("cut client->server" in px.log(), "the upload was not cut: %s" % px.log())
        # One cut, then a healthy network: the retry must complete the run
        # and load every row. (The emulator registers the job id of a
        # truncated upload and later reports it DONE without rows or
        # statistics; BigQuery creates no job for it. mbq must not then
        # commit the cursor on "job found from an earlier try" unverified.)
        check_no_sanitizer(r)
        expect_ok(r, "sync with one upload cut (retried)")
        verify(ws, "cut during upload", env=bq_env(ws, px.port))
        # And an upload cut on every attempt: a clean failure, then recovery.
        change_rows(ws, 1000)
        mysql("UPDATE items SET updated_at = NOW(6)", db=ws.db)
        px.set(mode="pass", cut_after_bytes=300000, cut_direction="c2s", complete=True)
        r = ws.sync(env=bq_env(ws, px.port))
        check_clean_failure(r, [EXIT_FAILED, EXIT_UNAVAILABLE], ["items"],
                            "sync with every upload cut")
        px.set(mode="pass")
        verify(ws, "cut during every upload", env=bq_env(ws, px.port))
    finally:
        px.stop()
    NET_CASES.append("bigquery cut during upload (once, every time)")
    ws.cleanup()


def is_job_insert(kind):
    def pred(method, path, body):
        if method != "POST" or "/jobs" not in path.split("?")[0]:
            return False
        if kind == "load":
            return "/upload/" in path
        return b'"query"' in body and (kind.encode() in body)
    return pred


def is_job_get(method, path, body):
    return method == "GET" and "/jobs/" in path and "/queries/" not in path


def job_id_in(body):
    import re
    m = re.search(rb'"jobId"\s*:\s*"([^"]+)"', body)
    return m.group(1).decode() if m else None


def test_bigquery_cut_during_load_job_response_and_polling():
    """The load job is accepted (the emulator runs it) and its answer cut;
    mbq sends the insert again, learns the job exists, and polls it
    (jobs.get), and that answer is cut too (first sync), or lost twice
    (incremental sync). Each time exactly those requests are cut, and the
    run completes (exit 0) without a second load."""
    # The first sync loads its file in one multipart request, whose answer
    # is the Job: a streamed first load goes through a resumable session,
    # where a cut session start is only a new session (no job yet) and the
    # last piece's answer is asked of the session, not of jobs.get
    # (test_bigquery_cut_during_upload cuts that).
    ws = make_ws("bq_cut_poll", extra_bigquery="stream_load: false")
    hc = HttpCutter(os.environ["BIGQUERY_EMULATOR_HOST"])
    cut = {}

    def load_insert(tag):
        def pred(method, path, body):
            if not is_job_insert("load")(method, path, body):
                return False
            cut[tag] = job_id_in(body)
            return True
        return pred

    def poll_of(tag):
        # Only a jobs.get of the job whose insert was cut: the poll.
        return lambda m, p, b: is_job_get(m, p, b) and bool(cut.get(tag)) and cut[tag] in p

    try:
        hc.add("load insert", load_insert("first"), "cut", 60)
        hc.add("jobs.get", poll_of("first"), "cut", 30)
        r = ws.sync(env=bq_env(ws, hc.port))
        check(hc.fired == ["load insert", "jobs.get"], "requests cut (first sync): %s; requests:\n%s\n%r"
              % (hc.fired, hc.trace(), r))
        check(cut.get("first"), "the cut insert names its job id")
        check_no_sanitizer(r, "sync with cut responses")
        expect_ok(r, "sync with the load's answer and its poll cut")
        verify(ws, "cut during a load job's response and its polling", env=bq_env(ws, hc.port))
        # Incremental: the insert's answer cut inside its status line, and
        # two polls of that job lost without an answer.
        change_rows(ws, 1000)
        hc.add("load insert 2", load_insert("second"), "cut", 10)
        hc.add("jobs.get 2", poll_of("second"), "drop", None, times=2)
        r = ws.sync(env=bq_env(ws, hc.port))
        check_eq(hc.fired[2:], ["load insert 2", "jobs.get 2", "jobs.get 2"],
                 "requests cut (incremental sync)")
        check_no_sanitizer(r, "incremental, cut")
        expect_ok(r, "incremental sync with the load's answer cut and two polls lost")
        verify(ws, "cut while polling (incremental)", env=bq_env(ws, hc.port))
    finally:
        hc.stop()
    NET_CASES.append("bigquery cut during a load job's response")
    NET_CASES.append("bigquery cut while polling a job")
    ws.cleanup()


def test_bigquery_cut_during_merge_response():
    ws = make_ws("bq_cut_merge")
    expect_ok(ws.sync(), "initial sync")
    change_rows(ws, 1000)
    hc = HttpCutter(os.environ["BIGQUERY_EMULATOR_HOST"])
    try:
        # Cut inside the answer's headers: curl would take the close as an
        # empty 200; mbq treats it as a cut connection, re-sends the insert,
        # learns the job exists and waits for it: the run completes.
        hc.add("merge", is_job_insert("MERGE"), "cut", 100)
        r = ws.sync(env=bq_env(ws, hc.port))
        check_eq(hc.fired, ["merge"], "the MERGE's response was cut")
        check_no_sanitizer(r, "sync with MERGE cut")
        expect_ok(r, "sync with the MERGE's answer cut")
        check("job found from an earlier try" in r.stderr,
              "the cut MERGE was not found by its id: %r" % r)
        verify(ws, "cut during a MERGE's response", env=bq_env(ws, hc.port))
        # Every MERGE answer lost for the whole run: clean failure, recovery.
        # mbq's reaction is judged on a run whose MERGE the cutter dropped.
        # Once in CI a run's MERGE went through untouched (exit 0), for a
        # reason not reproduced here in 80 tries. If the cutter saw the
        # MERGE and let it pass, that is the harness, not mbq: the run is
        # shown with the cutter's trace and the scenario repeated (at most
        # twice). A MERGE that never reached the cutter (the configured
        # endpoint) would be mbq's fault and fails the test at once.
        hc.add("merge always", is_job_insert("MERGE"), "drop", None, times=100)
        for attempt in range(3):
            change_rows(ws, 2000 + 1000 * attempt)
            fired, seen = len(hc.fired), len(hc.seen)
            r = ws.sync(env=bq_env(ws, hc.port))
            if "merge always" in hc.fired[fired:]:
                break
            trace = hc.trace(seen)
            check(any(m == "POST" and b"mbq_merge_" in b for m, _p, _n, b in hc.seen[seen:]),
                  "the MERGE did not go through the configured endpoint (the cutter); its "
                  "requests:\n%s\n%r" % (trace, r))
            print("  (attempt %d: the cutter saw this run's MERGE but did not drop it; exit %d; "
                  "its requests:\n%s)" % (attempt + 1, r.returncode, trace), flush=True)
        check("merge always" in hc.fired[fired:],
              "no MERGE request was dropped in 3 runs; requests:\n%s\n%r" % (hc.trace(), r))
        check_clean_failure(r, [EXIT_FAILED, EXIT_UNAVAILABLE], ["items"], "every MERGE lost")
        with hc.lock:
            hc.rules = []
        verify(ws, "every MERGE answer lost", env=bq_env(ws, hc.port))
    finally:
        hc.stop()
    NET_CASES.append("bigquery cut during a MERGE's response")
    ws.cleanup()


def test_bigquery_stalled_server_times_out():
    ws = make_ws("bq_stall")
    config_set(ws, "bigquery", "request_timeout", "2s")
    config_set(ws, "bigquery", "max_retries", "1")
    px = bq_proxy("bq_stall")
    try:
        px.set(mode="stall")
        t0 = time.time()
        try:
            r = ws.sync(env=bq_env(ws, px.port), timeout=90)
        except subprocess.TimeoutExpired:
            raise mbqtest.CheckFailed("a stalled BigQuery was not given up on within 90 s "
                                      "(bigquery.request_timeout: 2s not applied)")
        took = time.time() - t0
        check_clean_failure(r, [EXIT_UNAVAILABLE, EXIT_FAILED], ["bigquery"], "stalled BigQuery")
        check(took < 60, "stalled BigQuery detected only after %.0f s" % took)
        px.set(mode="pass")
        verify(ws, "stalled BigQuery", env=bq_env(ws, px.port))
    finally:
        px.stop()
    NET_CASES.append("bigquery stalled (timeout)")
    ws.cleanup()


# ---- network: MySQL side -------------------------------------------------------

def my_proxy(name):
    return FaultProxy("127.0.0.1:%s" % os.environ["MBQ_TEST_MYSQL_PORT"], WORK, name)


def test_mysql_connection_refused():
    ws = make_ws("my_refused")
    px = my_proxy("my_refused")
    try:
        mysql_via(ws, px.port)
        px.set(mode="refuse")
        r = ws.sync()
        check_clean_failure(r, [EXIT_UNAVAILABLE], ["mysql"], "sync with MySQL refusing")
        px.set(mode="pass")
        verify(ws, "mysql refused")
    finally:
        px.stop()
    NET_CASES.append("mysql connection refused")
    ws.cleanup()


def test_mysql_cut_during_extraction():
    # ~3 MB in 1,000 wide rows: the cut at 1 MB lands mid-stream, and the
    # MERGE that follows stays small (the emulator's MERGE time grows with
    # target x staged rows: 3,000 x 3,000 took over 200 s on a busy machine).
    ws = make_ws("my_cut", rows=1000, width=600)
    expect_ok(ws.sync(), "initial sync")
    cur = cursor(ws)
    mysql("UPDATE items SET val = CONCAT(val, 'x'), updated_at = NOW(6)", db=ws.db)
    px = my_proxy("my_cut")
    try:
        mysql_via(ws, px.port)
        px.set(mode="pass", cut_after_bytes=1000000, cut_direction="s2c")
        w = px.pass_after_first("s2c 1000000 bytes")
        r = ws.sync()
        w.join(5)
        check("s2c 1000000 bytes" in px.log(), "extraction was not cut: %s" % px.log())
        done_or_clean(r, [EXIT_FAILED, EXIT_UNAVAILABLE], ["items"], "sync with extraction cut")
        if r.returncode != 0:
            t = ws.inspect("items")["tables"][0]
            check_eq(t["cursor"], cur, "cursor kept by a failed run")
        left = [f for f in os.listdir(os.path.join(ws.state, "staging")) if not f.endswith(".tmp")]
        check_eq(left, [], "no half-extracted file under a final name")
        verify(ws, "cut during extraction")
    finally:
        px.stop()
    NET_CASES.append("mysql cut during extraction")
    ws.cleanup()


def test_mysql_stalled_server_times_out():
    # (a) a server that accepts and never answers: connect_timeout fires;
    # (b) a query that never returns a byte (the table is locked by another
    # session): read_timeout fires.
    ws = make_ws("my_stall")
    config_set(ws, "mysql", "connect_timeout", "2s")
    config_set(ws, "mysql", "read_timeout", "2s")
    px = my_proxy("my_stall")
    try:
        mysql_via(ws, px.port)
        px.set(mode="stall")
        t0 = time.time()
        r = ws.sync(timeout=120)
        check_clean_failure(r, [EXIT_UNAVAILABLE], ["mysql"], "stalled MySQL at connect")
        check(time.time() - t0 < 60, "connect_timeout did not fire in time")
        px.set(mode="pass")
        verify(ws, "stalled MySQL at connect")
        change_rows(ws, 1000)
        with table_locked(ws):
            t0 = time.time()
            r = ws.sync(timeout=120)
            took = time.time() - t0
        check_clean_failure(r, [EXIT_FAILED, EXIT_UNAVAILABLE], ["items"], "stalled MySQL query")
        check(took < 60, "read_timeout did not fire in time (%.0f s)" % took)
        verify(ws, "stalled MySQL query")
    finally:
        px.stop()
    NET_CASES.append("mysql stalled at connect (connect_timeout)")
    NET_CASES.append("mysql stalled query (read_timeout)")
    ws.cleanup()


class table_locked:
    """Another session holds LOCK TABLES items WRITE: a SELECT on it waits."""

    def __init__(self, ws):
        self.ws = ws

    def __enter__(self):
        args = ["mariadb", "-h", "127.0.0.1", "-P", os.environ["MBQ_TEST_MYSQL_PORT"], "-u",
                os.environ["MBQ_TEST_MYSQL_USER"], "-p" + os.environ["MBQ_TEST_MYSQL_PASSWORD"],
                self.ws.db, "-e", "LOCK TABLES items WRITE; SELECT SLEEP(600)"]
        self.p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            rows = mysql("SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                         "WHERE INFO LIKE 'SELECT SLEEP(600)%'")
            if rows[0][0] != "0":
                return self
            time.sleep(0.05)
        raise mbqtest.CheckFailed("the locking session did not start")

    def __exit__(self, *exc):
        # Killing the client leaves its SLEEP (and the lock) running in the
        # server: end the session there.
        for (tid,) in mysql("SELECT ID FROM information_schema.PROCESSLIST "
                            "WHERE INFO LIKE 'SELECT SLEEP(600)%'"):
            mysql("KILL %s" % tid)
        self.p.kill()
        self.p.wait()


def wait_reader_blocked(ws, timeout=60):
    """Until mbq's reader waits on the locked table (an extract's SELECT)."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        rows = mysql("SELECT STATE, INFO FROM information_schema.PROCESSLIST WHERE USER = '%s' "
                     "AND DB = '%s' AND INFO LIKE 'SELECT%%'"
                     % (os.environ["MBQ_TEST_MYSQL_RO_USER"], ws.db))
        for st, info in rows:
            if st and "lock" in st.lower() and "items" in (info or ""):
                return info
        time.sleep(0.05)
    raise mbqtest.CheckFailed("mbq never reached the extraction's SELECT")


# ---- server restarts -----------------------------------------------------------

def test_mariadb_restarted_during_extraction():
    ws = make_ws("my_restart")
    expect_ok(ws.sync(), "initial sync")
    change_rows(ws, 1000)
    lock = table_locked(ws).__enter__()
    try:
        p = subprocess.Popen([os.environ["MBQ_BIN"], "sync", "--config", ws.config],
                             env=ws.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        info = wait_reader_blocked(ws)
        check("items" in info, "blocked in the extraction: %s" % info)
        services("restart-mysql")
        out, err = p.communicate(timeout=120)
    finally:
        lock.__exit__()
    r = mbqtest.Result(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    done_or_clean(r, [EXIT_FAILED, EXIT_UNAVAILABLE], ["items"], "sync across a MariaDB restart")
    verify(ws, "MariaDB restarted during extraction")
    NET_CASES.append("mariadb restarted during extraction")
    ws.cleanup()


def test_emulator_restarted_between_stage_and_merge():
    ws = make_ws("bq_restart")
    expect_ok(ws.sync(), "initial sync")
    change_rows(ws, 1000)
    hc = HttpCutter(os.environ["BIGQUERY_EMULATOR_HOST"])
    try:
        # The MERGE request arrives after the staging load: the emulator is
        # restarted then, and the request is lost with the old process.
        hc.add("restart before merge", is_job_insert("MERGE"), "hook",
               lambda: services("restart-bq"))
        r = ws.sync(env=bq_env(ws, hc.port))
        check_eq(hc.fired, ["restart before merge"], "the emulator restarted before the MERGE")
        done_or_clean(r, [EXIT_FAILED, EXIT_UNAVAILABLE], ["items"], "sync across a restart")
        verify(ws, "emulator restarted between stage and merge", env=bq_env(ws, hc.port))
        # Down between stage and merge for the whole run: clean failure.
        change_rows(ws, 2000)
        hc.add("down before merge", is_job_insert("MERGE"), "hook", lambda: services("stop-bq"))
        r = ws.sync(env=bq_env(ws, hc.port))
        services("start-bq")
        check_clean_failure(r, [EXIT_FAILED, EXIT_UNAVAILABLE], ["items"], "emulator down")
        verify(ws, "emulator down between stage and merge", env=bq_env(ws, hc.port))
    finally:
        hc.stop()
    NET_CASES.append("emulator restarted between stage and merge")
    NET_CASES.append("emulator down between stage and merge")
    ws.cleanup()


# ---- disk full -----------------------------------------------------------------

def mount_small(path, size):
    os.makedirs(path, exist_ok=True)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", path],
                       capture_output=True)
    return p.returncode == 0


def umount(path):
    subprocess.run(["umount", "-l", path], capture_output=True)


def fsize_limit(limit):
    def pre():
        import resource
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return pre


def sync_limited(ws, limit):
    p = subprocess.run([os.environ["MBQ_BIN"], "sync", "--config", ws.config], env=ws.env(),
                       capture_output=True, timeout=300, preexec_fn=fsize_limit(limit))
    return mbqtest.Result(p)


def integrity(ws):
    p = subprocess.run(["sqlite3", "-readonly", os.path.join(ws.state, "state.db"),
                        "PRAGMA integrity_check"], capture_output=True, timeout=60)
    return p.stdout.decode().strip()


def test_disk_full_in_staging_directory():
    ws = make_ws("disk_staging")
    expect_ok(ws.sync(), "initial sync")
    cur = cursor(ws)
    # ~4 MB gzip'd (the staging files' default): 2 KiB of hex digests per row.
    digests = ", ".join("SHA2(CONCAT(id, '%s'), 512)" % c for c in "abcdefghijklmnop")
    mysql("INSERT INTO items (id, val, n) SELECT id + 10000, CONCAT(%s), 0 "
          "FROM (SELECT seq AS id FROM seq_1_to_4000) s" % digests, db=ws.db)
    staging = os.path.join(ws.state, "staging")
    how = "tmpfs"
    if mount_small(staging, "2m"):
        try:
            r = ws.sync()
        finally:
            umount(staging)
    else:
        how = "RLIMIT_FSIZE"
        r = sync_limited(ws, 2 * 1024 * 1024)
    check_clean_failure(r, [EXIT_FAILED, EXIT_IOERR], ["items"], "sync with full staging (%s)" % how)
    low = r.stderr.lower()
    check("no space" in low or "too large" in low or "disk" in low,
          "the error names the full disk: %r" % r)
    check_eq(integrity(ws), "ok", "journal integrity after disk full")
    check_eq(cursor(ws), cur, "cursor kept")
    verify(ws, "disk full in staging")
    print("  (disk full simulated by %s)" % how)
    ws.cleanup()


def test_disk_full_for_the_journal():
    ws = make_ws("disk_journal")
    how = "tmpfs"
    staging = os.path.join(ws.state, "staging")
    if mount_small(ws.state, "1m"):
        try:
            mount_small(staging, "64m")
            expect_ok(ws.sync(), "initial sync")
            cur = cursor(ws)
            change_rows(ws, 1000)
            filler = os.path.join(ws.state, "filler")
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                while True:
                    os.write(fd, b"\0" * 4096)
            except OSError:
                pass
            finally:
                os.close(fd)
            r = ws.sync()
            check_clean_failure(r, [EXIT_IOERR, EXIT_FAILED], ["journal"],
                                "sync with the journal's disk full")
            os.unlink(filler)
            check_eq(integrity(ws), "ok", "journal integrity after disk full")
            check_eq(cursor(ws), cur, "cursor kept")
            verify(ws, "disk full for the journal")
        finally:
            umount(staging)
            umount(ws.state)
    else:
        how = "RLIMIT_FSIZE"
        expect_ok(ws.sync(), "initial sync")
        change_rows(ws, 1000)
        size = os.path.getsize(os.path.join(ws.state, "state.db"))
        r = sync_limited(ws, 4096)  # below the journal's size: every write fails
        check_clean_failure(r, [EXIT_IOERR, EXIT_FAILED], ["journal"], "journal over RLIMIT_FSIZE")
        check(os.path.getsize(os.path.join(ws.state, "state.db")) >= size, "journal not truncated")
        check_eq(integrity(ws), "ok", "journal integrity")
        verify(ws, "disk full for the journal")
    print("  (disk full simulated by %s)" % how)
    ws.cleanup()


# ---- damaged or locked journals -------------------------------------------------

def journal_case(name, damage, fragments, code=EXIT_IOERR):
    ws = make_ws("jr_" + name)
    expect_ok(ws.sync(), "initial sync")
    cur = cursor(ws)
    db = os.path.join(ws.state, "state.db")
    good = open(db, "rb").read()
    damage(db, good)
    r = ws.sync()
    check_clean_failure(r, [code], fragments, "sync on a %s journal" % name)
    r2 = ws.state_cmd("inspect")
    check_clean_failure(r2, [code], fragments, "inspect on a %s journal" % name)
    check(not os.path.exists(db) or open(db, "rb").read() != good or name == "v99",
          "journal left as it was")
    # Put the journal back: the cursor is still there and the next run works.
    with open(db, "wb") as f:
        f.write(good)
    for ext in ("-wal", "-shm"):
        if os.path.exists(db + ext):
            os.unlink(db + ext)
    check_eq(cursor(ws), cur, "cursor after restoring the journal")
    verify(ws, "journal %s restored" % name)
    ws.cleanup()


def test_truncated_journal_is_refused():
    def half(db, good):
        with open(db, "r+b") as f:
            f.truncate(len(good) // 2)
    journal_case("truncated", half, ["journal", "corrupt"])


def test_journal_truncated_to_zero_bytes_is_refused():
    # A state.db emptied by a crash of whatever copied or restored it. Today
    # mbq opens it as a new journal and starts over: every cursor silently
    # reset (data survives only because the target is then fully reloaded).
    def zero(db, good):
        open(db, "wb").close()
    journal_case("zero", zero, ["journal"])


def test_garbage_journal_is_refused():
    def garbage(db, good):
        with open(db, "wb") as f:
            f.write(os.urandom(len(good)))
    journal_case("garbage", garbage, ["journal", "not a database"])


def test_journal_from_a_newer_mbq_is_refused():
    def v99(db, good):
        subprocess.run(["sqlite3", db, "PRAGMA user_version=99"], check=True)
    journal_case("v99", v99, ["journal", "schema version 99", "newer"])


def test_stale_lock_holder_killed_next_run_proceeds():
    ws = make_ws("jr_stale_lock")
    expect_ok(ws.sync(), "initial sync")
    cur = cursor(ws)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        "f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX)\n"
        "f.truncate(0); f.write('%d\\n' % os.getpid()); f.flush()\n"
        "print('locked', flush=True); time.sleep(600)\n"), os.path.join(ws.state, "lock")],
        stdout=subprocess.PIPE)
    check_eq(holder.stdout.readline().strip(), b"locked", "holder took the lock")
    r = ws.sync()
    check_clean_failure(r, [EXIT_LOCKED], ["lock", str(holder.pid)], "sync while locked")
    holder.kill()
    holder.wait()
    change_rows(ws, 1000)
    check_eq(cursor(ws), cur, "cursor kept across the stale lock")
    verify(ws, "stale lock")
    ws.cleanup()


def test_twenty_concurrent_starts_exactly_one_runs():
    """Twenty `mbq sync` started at once on one state directory: exactly one
    runs (exit 0), nineteen are refused with 75 saying why; twice."""
    ws = make_ws("concurrent")
    expect_ok(ws.sync(), "initial sync")
    # Each run waits 1 s for every BigQuery answer, so the one that takes
    # the lock holds it for many seconds, well past the time twenty
    # processes need to start on two busy cores.
    px = bq_proxy("concurrent")
    px.set(mode="pass", delay_ms=1000)
    try:
        env = bq_env(ws, px.port)
        for rnd in range(2):
            mysql("INSERT INTO items (id, val, n) VALUES (%d, 'c', %d)" % (5000 + rnd, rnd),
                  db=ws.db)
            ps = [subprocess.Popen([os.environ["MBQ_BIN"], "sync", "--config", ws.config],
                                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                  for _ in range(20)]
            res = [(p.communicate(timeout=300)[1].decode(errors="replace"), p.returncode)
                   for p in ps]
            codes = sorted(c for _e, c in res)
            check_eq(codes, [0] + [EXIT_LOCKED] * 19,
                     "round %d: exit codes of twenty simultaneous runs" % rnd)
            for e, c in res:
                check_no_sanitizer(StderrOnly(e), "concurrent run")
                if c == EXIT_LOCKED:
                    check("holds the lock" in e, "round %d: the refused run says why: %s" % (rnd, e))
            print("FIGURE concurrent_starts=20 exit0=%d exit75=%d"
                  % (codes.count(0), codes.count(EXIT_LOCKED)), flush=True)
        verify(ws, "twenty concurrent starts", env=env)
    finally:
        px.stop()
    ws.cleanup()


class StderrOnly:
    """Just enough of mbqtest.Result for check_no_sanitizer."""

    def __init__(self, stderr):
        self.stderr, self.stdout, self.returncode = stderr, "", None


if __name__ == "__main__":
    require_services()
    start_private_services()
    cases = [v for k, v in list(globals().items()) if k.startswith("test_") and callable(v)]
    only = os.environ.get("MBQ_FAULTS_ONLY")
    if only:
        cases = [c for c in cases if only in c.__name__]
    try:
        mbqtest.PASSED = 0
        orig_exit = sys.exit

        def report_and_exit(code):
            print("network fault cases: %d (%s)" % (len(NET_CASES), "; ".join(NET_CASES)))
            print("row comparisons: %d, rows lost: %d, rows duplicated: %d"
                  % (LOSS["rows"], LOSS["lost"], LOSS["duplicated"]))
            print("FIGURE fault_network_cases=%d" % len(NET_CASES))
            print("FIGURE fault_rows_verified_distinct=%d" % len(ROWS_COMPARED))
            print("FIGURE fault_rows_lost=%d" % LOSS["lost"])
            print("FIGURE fault_rows_duplicated=%d" % LOSS["duplicated"])
            orig_exit(code)
        sys.exit = report_and_exit
        run_cases(cases)
    finally:
        services("stop")
