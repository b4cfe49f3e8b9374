#!/usr/bin/env python3
"""Kills from outside at random instants (label `crash`).

tests/e2e/test_crash.py kills mbq at named points; this test kills it where
nobody chose: `mbq sync` runs again and again while another connection
commits multi-statement transactions (inserts, updates of other columns,
updates that move the cursor, a pause inside the transaction so that rows
commit after a later statement's NOW()), and each run is ended by SIGKILL
in one of three ways, chosen by a seeded random generator:

- after a random delay (anywhere: extract, upload, polling, the journal);
- inside SQLite's commit of the journal: MBQ_FAULT=journal.wal_write,
  journal.wal_sync with a random MBQ_FAULT_HIT (src/fault.c's VFS kills
  before the Nth write or fsync of the write-ahead log, i.e. in the middle
  of one of mbq's transactions);
- while a BigQuery job is still running: BigQuery runs jobs asynchronously
  (jobs.insert answers RUNNING; the job completes later whether or not the
  client is still there), the emulator synchronously (README divergence 9).
  `AsyncJobs` below stands between mbq and the emulator and gives jobs
  BigQuery's timing: it answers a job insert at once with RUNNING, runs the
  job on the emulator after a random delay, answers jobs.get with RUNNING
  until then and a re-submitted id with 409 `duplicate` (BigQuery's
  jobs.insert reference). The kill comes while mbq polls such a job.

After every killed run the journal must open; after every kill whose
journal names a job that BigQuery had accepted, the next run must find that
job (mbq's log: "exists already") and never submit it again (AsyncJobs'
insert log: one insert per job id, ever). After the churn stops, two syncs;
then the target equals the source row for row with no duplicate key, the
cursor is the source's maximum and nothing is in flight.

The seed is printed (`seed=N`); MBQ_KILL_SEED=N replays a run's choices.
Figures are printed as `FIGURE name=value` lines for the README."""
import http.client
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mbqtest import (Workspace, _read_chunked, assert_target_equals_source, check, check_eq,  # noqa: E402
                     expect_ok, mysql, private_emulator, require_services, run_cases)

COLS = ["id", "val", "n", "updated_at"]
ROUNDS = int(os.environ.get("MBQ_KILL_ROUNDS", "24"))
SEED = int(os.environ.get("MBQ_KILL_SEED") or random.SystemRandom().randrange(1 << 31))
FIG = {}


def figure(name, value):
    FIG[name] = value
    print("FIGURE %s=%s" % (name, value), flush=True)


# ---- BigQuery's asynchronous jobs in front of the emulator ---------------------

def read_request(f):
    """(method, path, headers, body) of one HTTP/1.1 request, or None at EOF.
    Bodies come with Content-Length or chunked (mbq streams a first load)."""
    line = f.readline()
    if not line:
        return None
    method, path, _ = line.decode("latin-1").split(" ", 2)
    headers = []
    while True:
        h = f.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        k, _, v = h.decode("latin-1").partition(":")
        headers.append((k.strip(), v.strip()))
    low = {k.lower(): v for k, v in headers}
    if "chunked" in low.get("transfer-encoding", "").lower():
        body = _read_chunked(f)  # raises for a body cut short: never forwarded
    else:
        n = int(low.get("content-length", "0"))
        body = f.read(n) if n else b""
        if len(body) < n:
            # The client died mid-request: BigQuery creates no job for an
            # upload that never ended, so nothing is forwarded.
            raise ValueError("request cut inside its body")
    return method, path, headers, body


class AsyncJobs:
    """An HTTP proxy in front of the emulator with BigQuery's job timing.

    A job insert (query, or a multipart upload) read whole is answered at
    once: 200 with the job RUNNING; the request itself goes to the emulator
    after `hold()` seconds, in a thread of its own, so it completes whether
    or not the client is still there (as BigQuery finishes an accepted job).
    Until it has, jobs.get answers RUNNING and getQueryResults
    jobComplete=false; then jobs.get answers what the emulator answered the
    insert if it failed (its jobs.get forgets a failure, README divergence
    3), else the emulator's jobs.get answers. An insert
    of an id already accepted is answered 409 `duplicate`. A request cut
    before its body ends is never forwarded (BigQuery creates no job for
    it). Everything else passes through."""

    def __init__(self, upstream, hold):
        self.upstream, self.hold = upstream, hold
        self.lock = threading.Lock()
        self.jobs = {}          # job id -> {"final": (status, body) or None}
        self.inserts = []       # (job id, answer status), every insert seen
        self.polled_running = threading.Event()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def forward(self, method, path, headers, body):
        up = http.client.HTTPConnection(self.upstream, timeout=600)
        up.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for k, v in headers:
            if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                up.putheader(k, v)
        up.putheader("Content-Length", str(len(body)))
        up.endheaders(body)
        resp = up.getresponse()
        data = resp.read()
        up.close()
        return resp.status, resp.getheader("Content-Type") or "application/json", data

    @staticmethod
    def job_resource(job_id, state):
        return {"kind": "bigquery#job", "id": "mbq-test:US.%s" % job_id,
                "jobReference": {"projectId": os.environ.get("MBQ_TEST_BQ_PROJECT", "mbq-test"),
                                 "jobId": job_id, "location": "US"},
                "status": {"state": state}}

    def _run_later(self, job_id, req, delay):
        time.sleep(delay)
        try:
            st, _ct, data = self.forward(*req)
        except OSError as e:
            st, data = 503, json.dumps({"error": {"code": 503, "message": str(e)}}).encode()
        try:
            body = json.loads(data)
        except ValueError:
            body = {}
        final = "upstream"  # from now on the emulator's jobs.get answers
        if st != 200:
            # The emulator refused the job at insert (a bad row: divergence
            # 3); BigQuery reports that as a job DONE with errorResult.
            err = (body.get("error") or {})
            reason = ((err.get("errors") or [{}])[0]).get("reason", "invalid")
            final = self.job_resource(job_id, "DONE")
            final["status"]["errorResult"] = {"reason": reason,
                                              "message": err.get("message", "failed")}
        elif (body.get("status") or {}).get("errorResult"):
            final = body  # its jobs.get would forget the error (divergence 3)
        with self.lock:
            self.jobs[job_id]["final"] = final

    def _job_insert(self, method, path, body):
        p = path.split("?")[0]
        if method != "POST" or not p.endswith("/jobs"):
            return None
        if p.startswith("/upload/") and "uploadType=multipart" not in path:
            return None
        m = re.search(rb'"jobId"\s*:\s*"([^"]+)"', body)
        return m.group(1).decode() if m else None

    def _serve(self, c):
        f = c.makefile("rb")
        try:
            while True:
                req = read_request(f)
                if req is None:
                    return
                method, path, headers, body = req
                st, ctype, data = self._answer(method, path, headers, body)
                head = "HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (
                    st, ctype, len(data))
                c.sendall(head.encode("latin-1") + data)
        except (OSError, ValueError):
            return
        finally:
            try:
                f.close()
                c.close()
            except OSError:
                pass

    def _answer(self, method, path, headers, body):
        js = "application/json"
        job_id = self._job_insert(method, path, body)
        if job_id:
            with self.lock:
                known = job_id in self.jobs
                self.inserts.append((job_id, 409 if known else 200))
                if not known:
                    self.jobs[job_id] = {"final": None}
            if known:
                msg = "Already Exists: Job mbq-test:US.%s" % job_id
                return 409, js, json.dumps({"error": {"code": 409, "message": msg, "errors": [
                    {"reason": "duplicate", "message": msg, "domain": "global"}]}}).encode()
            threading.Thread(target=self._run_later, daemon=True,
                             args=(job_id, (method, path, headers, body), self.hold())).start()
            return 200, js, json.dumps(self.job_resource(job_id, "RUNNING")).encode()
        m = re.match(r"^/bigquery/v2/projects/[^/]+/(jobs|queries)/([^/?]+)", path)
        if method == "GET" and m:
            with self.lock:
                j = self.jobs.get(m.group(2))
                final = j and j["final"]
            if j and not final:
                self.polled_running.set()
                if m.group(1) == "jobs":
                    return 200, js, json.dumps(self.job_resource(m.group(2), "RUNNING")).encode()
                return 200, js, json.dumps({"kind": "bigquery#getQueryResultsResponse",
                                            "jobComplete": False,
                                            "jobReference": self.job_resource(
                                                m.group(2), "RUNNING")["jobReference"]}).encode()
            if j and m.group(1) == "jobs" and final != "upstream":
                return 200, js, json.dumps(final).encode()
        return self.forward(method, path, headers, body)

    def settled(self, timeout=120):
        """Wait until every accepted job has run on the emulator."""
        end = time.time() + timeout
        while time.time() < end:
            with self.lock:
                if all(j["final"] is not None for j in self.jobs.values()):
                    return
            time.sleep(0.05)
        raise AssertionError("jobs still pending after %d s" % timeout)

    def inserts_of(self, job_id):
        with self.lock:
            return [s for j, s in self.inserts if j == job_id]

    def stop(self):
        self.sock.close()


# ---- the writer ----------------------------------------------------------------

class Churn:
    """Multi-statement transactions from another connection, until stopped:
    an insert, an update that moves the cursor (ON UPDATE sets updated_at),
    an update of another column that moves it too, a pause inside the
    transaction (its rows commit after their NOW()), and now and then a
    transaction rolled back. Any error of the writer fails the test."""

    def __init__(self, ws, rng, first_id):
        self.ws, self.rng, self.next_id = ws, rng, first_id
        self.stop_ev = threading.Event()
        self.error = None
        self.committed = self.rolled_back = 0
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        try:
            while not self.stop_ev.is_set():
                rid = self.next_id
                a, b = self.rng.randrange(1, rid), self.rng.randrange(1, rid)
                pause = self.rng.choice([0, 0, 0.05, 0.2, 0.5])
                end = "ROLLBACK" if self.rng.random() < 0.1 else "COMMIT"
                mysql("START TRANSACTION;"
                      "INSERT INTO items (id, val, n) VALUES (%d, 'churn-%d', 0);"
                      "UPDATE items SET val = CONCAT('upd-', %d) WHERE id = %d;"
                      "DO SLEEP(%s);"
                      "UPDATE items SET n = n + 1 WHERE id = %d;"
                      "%s" % (rid, rid, rid, a, pause, b, end), db=self.ws.db)
                if end == "COMMIT":
                    self.committed += 1
                    self.next_id += 1
                else:
                    self.rolled_back += 1
                time.sleep(self.rng.uniform(0.05, 0.3))
        except Exception as e:  # noqa: BLE001 - raised in the test's thread by stop()
            self.error = e

    def start(self):
        self.thread.start()

    def stop(self):
        self.stop_ev.set()
        self.thread.join()
        check(self.error is None, "churn writer failed: %s" % self.error)
        check(self.committed > 0, "churn writer committed nothing")


# ---- the test ------------------------------------------------------------------

def make_ws():
    ws = Workspace("rkill")
    mysql("CREATE TABLE items (id BIGINT NOT NULL PRIMARY KEY, val VARCHAR(200), n INT, "
          "updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) "
          "ON UPDATE CURRENT_TIMESTAMP(6))", db=ws.db)
    mysql("INSERT INTO items (id, val, n, updated_at) VALUES " + ",".join(
        "(%d, REPEAT('r', %d), %d, '2024-01-01 00:00:%02d.000000')" % (i, 20 + i % 50, i, i % 60)
        for i in range(1, 301)), db=ws.db)
    # lookback above the writer's longest transaction (0.5 s pause): rows
    # that commit after a later high-water mark are read again (README).
    ws.write_config([{"name": "items", "primary_key": "id", "updated_column": "updated_at",
                      "lookback": "5s"}])
    return ws


def journal_in_flight(ws):
    r = ws.state_cmd("inspect", "--json", "items")
    check_eq(r.returncode, 0, "the journal opens after the kill (stderr: %s)" % r.stderr)
    return json.loads(r.stdout)["tables"][0]["in_flight"]


def sqlite_integrity(ws):
    p = subprocess.run(["sqlite3", os.path.join(ws.state, "state.db"), "PRAGMA integrity_check"],
                       capture_output=True, timeout=60)
    return p.stdout.decode().strip()


def test_random_sigkill_under_churn():
    rng = random.Random(SEED)
    print("seed=%d (replay: MBQ_KILL_SEED=%d MBQ_KILL_ROUNDS=%d)" % (SEED, SEED, ROUNDS),
          flush=True)
    ws = make_ws()
    aj = AsyncJobs(os.environ["BIGQUERY_EMULATOR_HOST"], lambda: rng.uniform(0.2, 2.5))
    env = ws.env(MBQ_E2E_BQ_ENDPOINT="http://127.0.0.1:%d" % aj.port)
    churn = Churn(ws, rng, 1000)
    churn.start()
    kinds = {"delay": 0, "sqlite": 0, "job-running": 0}
    killed = {"delay": 0, "sqlite": 0, "job-running": 0}
    completed = found = not_resubmitted = 0
    pending_check = None   # job ids the last killed run's journal names that BigQuery accepted
    try:
        for rnd in range(ROUNDS):
            kind = rng.choice(["delay", "sqlite", "job-running"])
            kinds[kind] += 1
            e = dict(env)
            if kind == "sqlite":
                e.update(MBQ_FAULT="journal.wal_write,journal.wal_sync",
                         MBQ_FAULT_HIT=str(rng.randint(1, 30)))
            aj.polled_running.clear()
            p = subprocess.Popen([os.environ["MBQ_BIN"], "sync", "--config", ws.config], env=e,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            delay = rng.uniform(0.0, 5.0)  # an incremental run here takes 3-6 s
            if kind == "job-running":
                # Kill while mbq polls a job BigQuery still runs.
                t0 = time.time()
                while not aj.polled_running.is_set() and p.poll() is None and time.time() - t0 < 60:
                    time.sleep(0.01)
                delay = rng.uniform(0.0, 0.3)
            try:
                p.wait(delay)
            except subprocess.TimeoutExpired:
                if kind != "sqlite":
                    p.send_signal(signal.SIGKILL)
            out, err = p.communicate(timeout=300)
            err = err.decode(errors="replace")
            rc = p.returncode
            if pending_check:
                # The run after a kill: every journaled job BigQuery had
                # accepted is found by its id, never inserted again.
                for jid in pending_check:
                    check_eq(aj.inserts_of(jid), [200],
                             "round %d: inserts of the journaled job '%s'" % (rnd, jid))
                    not_resubmitted += 1
                    if rc == 0:
                        check("job '%s' exists already" % jid in err,
                              "round %d: the resumed run did not find job '%s': %s"
                              % (rnd, jid, err[-3000:]))
                    if "job '%s' exists already" % jid in err:
                        found += 1  # also by a run killed after it found the job
                pending_check = None
            if rc == 0:
                completed += 1
                print("  round %2d %-11s completed (exit 0)" % (rnd, kind), flush=True)
                continue
            check_eq(rc, -9, "round %d (%s): exit of a killed run: %s" % (rnd, kind, err[-3000:]))
            killed[kind] += 1
            fl = journal_in_flight(ws)
            if kind == "sqlite":
                check_eq(sqlite_integrity(ws), "ok", "round %d: journal integrity" % rnd)
            state = fl["state"] if fl else "done"
            # Which of the journaled jobs did BigQuery accept before the kill?
            names = []
            if fl and fl["state"] in ("stage", "merge"):
                names = [fl["load_job_id"]] if fl["state"] == "stage" else [fl["merge_job_id"]]
            pending_check = [j for j in names if j and aj.inserts_of(j)]
            print("  round %2d %-11s killed in state %-15s (journaled jobs accepted: %s)"
                  % (rnd, kind, state, pending_check or "-"), flush=True)
        churn.stop()
        tx = (churn.committed, churn.rolled_back)
        churn = None
        # The run after the last kill, then one more.
        r = ws.sync(env=env)
        expect_ok(r, "first sync after the kills")
        for jid in pending_check or []:
            check_eq(aj.inserts_of(jid), [200], "inserts of the journaled job '%s'" % jid)
            not_resubmitted += 1
            check("job '%s' exists already" % jid in r.stderr, "the job '%s' was not found" % jid)
            found += 1
        expect_ok(ws.sync(env=env), "second sync after the kills")
        aj.settled()
        # Every job id submitted once: a run that finds a journaled id looks
        # it up instead (a second insert would have been answered 409).
        again = sorted({j for j, st in aj.inserts if st == 409})
        check_eq(again, [], "job ids submitted more than once")
        figure("random_kill_jobs_submitted", len(aj.inserts))
        n = assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"])
        t = ws.inspect("items")["tables"][0]
        check_eq(t["in_flight"], None, "nothing in flight")
        want = mysql("SELECT DATE_FORMAT(MAX(updated_at), '%Y-%m-%d %H:%i:%s.%f') FROM items",
                     db=ws.db)[0][0]
        check_eq(t["cursor"], want, "the cursor is the source's maximum")
    finally:
        if churn:
            churn.stop_ev.set()
            churn.thread.join()
        aj.stop()
    figure("random_kill_seed", SEED)
    figure("random_kill_rounds", ROUNDS)
    figure("random_kills", sum(killed.values()))
    figure("random_kills_after_delay", killed["delay"])
    figure("random_kills_in_sqlite_commit", killed["sqlite"])
    figure("random_kills_while_job_running", killed["job-running"])
    figure("random_kill_rounds_completed", completed)
    figure("resumes_found_journaled_job", found)
    figure("resumes_not_resubmitting_journaled_job", not_resubmitted)
    figure("random_kill_churn_commits", tx[0])
    figure("random_kill_churn_rollbacks", tx[1])
    figure("random_kill_rows_verified", n)
    ws.cleanup()


def test_killed_while_a_streamed_first_load_runs():
    """A first sync streams its rows into one WRITE_TRUNCATE load job; mbq
    is killed while BigQuery still runs that job. The next run extracts a
    newer snapshot and loads it under a new job id. The abandoned job
    still completes (BigQuery finishes what it accepted): if it ended after
    the new one, it would put the older snapshot under the newer cursor, and
    the rows changed in between would never arrive. The resumed run must
    let it end first; the target must equal the source after it has."""
    ws = Workspace("rkill_stream")
    mysql("CREATE TABLE items (id BIGINT NOT NULL PRIMARY KEY, val VARCHAR(200), n INT, "
          "updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) "
          "ON UPDATE CURRENT_TIMESTAMP(6));"
          "INSERT INTO items (id, val, n) VALUES (1, 'old', 1), (2, 'old', 2), (3, 'old', 3)",
          db=ws.db)
    ws.write_config([{"name": "items", "primary_key": "id", "updated_column": "updated_at"}])
    holds = [6.0]  # the first job (the streamed load) runs 6 s; later ones 0.2 s
    aj = AsyncJobs(os.environ["BIGQUERY_EMULATOR_HOST"], lambda: holds.pop(0) if holds else 0.2)
    env = ws.env(MBQ_E2E_BQ_ENDPOINT="http://127.0.0.1:%d" % aj.port)
    try:
        p = subprocess.Popen([os.environ["MBQ_BIN"], "sync", "--config", ws.config], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        t0 = time.time()
        while not aj.polled_running.is_set() and p.poll() is None and time.time() - t0 < 60:
            time.sleep(0.01)
        check(aj.polled_running.is_set(), "mbq never polled a running job")
        p.send_signal(signal.SIGKILL)
        p.communicate(timeout=60)
        fl = journal_in_flight(ws)
        check(fl and fl["load_job_id"] and aj.inserts_of(fl["load_job_id"]) == [200],
              "the running job is journaled: %r" % fl)
        mysql("UPDATE items SET val = 'new' WHERE id = 2; INSERT INTO items (id, val, n) "
              "VALUES (4, 'new', 4)", db=ws.db)
        expect_ok(ws.sync(env=env), "the run after the kill")
        aj.settled()
        n = assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"])
        expect_ok(ws.sync(env=env), "one more run")
        n = assert_target_equals_source(ws, "items", COLS, "id", ["updated_at"])
        figure("streamed_load_abandoned_rows_verified", n)
    finally:
        aj.stop()
    ws.cleanup()


if __name__ == "__main__":
    require_services()
    private_emulator()  # a fresh emulator of its own (mbqtest.py says why)
    run_cases([test_killed_while_a_streamed_first_load_runs, test_random_sigkill_under_churn])
