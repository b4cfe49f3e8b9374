"""Helpers for mbq's end-to-end tests: a real MariaDB and the BigQuery
emulator from tools/services.sh (addresses in the environment), the built
`mbq` / `mbq-state` programs (MBQ_BIN, MBQ_STATE_BIN), and comparisons of a
BigQuery target with its MySQL source by content.

Standard library only: tests run on a fresh machine with no pip installs."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

PASSED = 0
FAILED = 0
CURRENT = None


def require_services():
    if os.environ.get("BIGQUERY_EMULATOR_HOST") and os.environ.get("MBQ_TEST_MYSQL_PORT"):
        return
    if os.environ.get("MBQ_REQUIRE_SERVICES") == "1":
        print("FAIL: services not started but MBQ_REQUIRE_SERVICES=1")
        sys.exit(1)
    print("SKIP: this end-to-end test runs under the harness (ctest in the README's test build)")
    sys.exit(77)


class CheckFailed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise CheckFailed(what)


def check_eq(got, want, what):
    if got != want:
        raise CheckFailed("%s: got %r, expected %r" % (what, got, want))


def run_cases(cases, fresh_emulator_every=0):
    """Run each (name, fn); print one line per case and the closing line."""
    global PASSED, FAILED, CURRENT
    if not cases:  # a run of no case proved nothing
        print("FAIL: no test case to run")
        sys.exit(1)
    for i, fn in enumerate(cases):
        CURRENT = fn.__name__
        # The emulator's SQL analyzer keeps memory from every statement until
        # it panics past 2 GiB ("slice bounds out of range", README
        # divergence 23): a suite on a private emulator gets a fresh one
        # every few cases (for suites whose cases each make their own
        # dataset and tables).
        if i and fresh_emulator_every and _PRIVATE.get("proc") and i % fresh_emulator_every == 0:
            private_emulator()
        t0 = time.time()
        try:
            fn()
            PASSED += 1
            print("ok   %s (%.1f s)" % (fn.__name__, time.time() - t0), flush=True)
        except Exception as e:  # noqa: BLE001 - report every failure the same way
            FAILED += 1
            print("FAIL %s: %s: %s" % (fn.__name__, type(e).__name__, e), flush=True)
    print("%d passed, %d failed" % (PASSED, FAILED))
    sys.exit(1 if FAILED else 0)


# ---- MariaDB ----------------------------------------------------------------

def mysql(sql, db=None, user=None, password=None):
    """Run SQL as root (or `user`); return rows as lists of strings (None for NULL)."""
    args = ["mariadb", "-h", os.environ["MBQ_TEST_MYSQL_HOST"], "-P", os.environ["MBQ_TEST_MYSQL_PORT"],
            "-u", user or os.environ["MBQ_TEST_MYSQL_USER"],
            "-p" + (password or os.environ["MBQ_TEST_MYSQL_PASSWORD"]),
            "--batch", "--skip-column-names", "--raw", "--default-character-set=utf8mb4"]
    if db:
        args.append(db)
    p = subprocess.run(args, input=sql.encode(), capture_output=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError("mariadb failed: %s" % p.stderr.decode(errors="replace"))
    rows = []
    for line in p.stdout.decode().splitlines():
        rows.append([None if v == "NULL" else v for v in line.split("\t")])
    return rows


# ---- BigQuery emulator (REST) ------------------------------------------------

def bq_url(path):
    return "http://%s/bigquery/v2/projects/%s%s" % (
        os.environ["BIGQUERY_EMULATOR_HOST"], os.environ.get("MBQ_TEST_BQ_PROJECT", "mbq-test"), path)


def bq_request(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(bq_url(path), data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, {"raw": raw.decode(errors="replace")}


def bq_query(sql):
    """Rows of a query as lists of strings (None for NULL)."""
    st, body = bq_request("POST", "/queries", {"query": sql, "useLegacySql": False})
    if st != 200 or "errors" in body and body.get("errors"):
        raise RuntimeError("bigquery query failed (%s): %s" % (st, json.dumps(body)[:800]))
    out = []
    for row in body.get("rows", []) or []:
        out.append([c.get("v") for c in row["f"]])
    return out


def bq_table(dataset, table):
    st, body = bq_request("GET", "/datasets/%s/tables/%s" % (dataset, table))
    return body if st == 200 else None


def bq_drop_dataset(dataset):
    bq_request("DELETE", "/datasets/%s?deleteContents=true" % dataset)


# ---- mbq ---------------------------------------------------------------------

class Workspace:
    """A database, a dataset and a state directory of one test, and its config."""

    def __init__(self, name):
        self.name = name
        self.db = "e2e_" + name
        self.dataset = "e2e_" + name
        self.dir = tempfile.mkdtemp(prefix="mbq-e2e-%s-" % name)
        self.state = os.path.join(self.dir, "state")
        self.config = os.path.join(self.dir, "mbq.yml")
        mysql("DROP DATABASE IF EXISTS `%s`; CREATE DATABASE `%s`" % (self.db, self.db))
        bq_drop_dataset(self.dataset)

    def write_config(self, tables, extra_bigquery="", extra=""):
        lines = ["tables:"]
        for t in tables:
            lines.append("  - name: %s" % t["name"])
            for k, v in t.items():
                if k == "name":
                    continue
                lines.append("    %s: %s" % (k, json.dumps(v) if not isinstance(v, str) else v))
        lines += [
            "mysql:",
            "  host: 127.0.0.1",
            "  port: %s" % os.environ["MBQ_TEST_MYSQL_PORT"],
            "  user: %s" % os.environ["MBQ_TEST_MYSQL_RO_USER"],
            "  password: ${MBQ_E2E_MYSQL_PASSWORD}",
            "  database: %s" % self.db,
            "bigquery:",
            "  endpoint: ${MBQ_E2E_BQ_ENDPOINT}",
            "  project_id: %s" % os.environ.get("MBQ_TEST_BQ_PROJECT", "mbq-test"),
            "  dataset: %s" % self.dataset,
            "  max_retries: 2",
            "  retry_max_elapsed: 20s",
        ]
        if extra_bigquery:
            lines += ["  " + l for l in extra_bigquery.strip().splitlines()]
        lines += ["state:", "  dir: %s" % self.state]
        if extra:
            lines += extra.strip().splitlines()
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")

    def env(self, **extra):
        e = dict(os.environ)
        e["MBQ_E2E_MYSQL_PASSWORD"] = os.environ["MBQ_TEST_MYSQL_RO_PASSWORD"]
        e.setdefault("MBQ_E2E_BQ_ENDPOINT", "http://" + os.environ["BIGQUERY_EMULATOR_HOST"])
        e.pop("MBQ_FAULT", None)
        e.pop("MBQ_FAULT_HIT", None)
        e.update({k: str(v) for k, v in extra.items()})
        return e

    def sync(self, *args, env=None, timeout=300):
        return run([os.environ["MBQ_BIN"], "sync", "--config", self.config] + list(args),
                   env or self.env(), timeout)

    def state_cmd(self, *args, env=None):
        return run([os.environ["MBQ_STATE_BIN"]] + list(args[:1]) + ["--config", self.config]
                   + list(args[1:]), env or self.env())

    def inspect(self, table=None):
        args = ["inspect", "--json"] + ([table] if table else [])
        r = self.state_cmd(*args)
        check_eq(r.returncode, 0, "mbq-state inspect exit code (stderr: %s)" % r.stderr)
        return json.loads(r.stdout)

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class Result:
    def __init__(self, p):
        self.returncode = p.returncode
        self.stdout = p.stdout.decode(errors="replace")
        self.stderr = p.stderr.decode(errors="replace")

    def __repr__(self):
        return "exit %s\nstdout:\n%s\nstderr:\n%s" % (self.returncode, self.stdout[-3000:],
                                                      self.stderr[-3000:])


def run(args, env, timeout=300):
    return Result(subprocess.run(args, env=env, capture_output=True, timeout=timeout))


def expect_ok(r, what="mbq"):
    check(r.returncode == 0, "%s failed: %r" % (what, r))


# ---- content comparison ------------------------------------------------------

def norm_dt(v):
    """BigQuery returns DATETIME as 2024-01-01T00:00:00.123456 (fraction trimmed);
    MySQL as 2024-01-01 00:00:00.123456. Compare as the same text."""
    if v is None:
        return None
    v = v.replace("T", " ")
    if "." in v:
        head, frac = v.split(".", 1)
        return head + "." + frac.ljust(6, "0")
    return v + ".000000" if len(v) == 19 else v


def source_rows(ws, table, cols, key):
    rows = mysql("SELECT %s FROM `%s` ORDER BY %s" % (", ".join("`%s`" % c for c in cols), table, key),
                 db=ws.db)
    return rows


def target_rows(ws, table, cols, key):
    return bq_query("SELECT %s FROM `%s.%s` ORDER BY %s" % (", ".join("`%s`" % c for c in cols),
                                                             ws.dataset, table, key))


def assert_target_equals_source(ws, table, cols, key, dt_cols=()):
    """Row for row, by content; and no duplicate keys in the target."""
    src = source_rows(ws, table, cols, key)
    dst = target_rows(ws, table, cols, key)
    idx = [cols.index(c) for c in dt_cols]
    for rows in (src, dst):
        for r in rows:
            for i in idx:
                r[i] = norm_dt(r[i])
    dups = bq_query("SELECT %s, COUNT(*) c FROM `%s.%s` GROUP BY %s HAVING c > 1"
                    % (key, ws.dataset, table, key))
    check_eq(dups, [], "duplicate keys in target %s" % table)
    if src != dst:
        s, d = {tuple(r) for r in map(tuple, src)}, {tuple(r) for r in map(tuple, dst)}
        raise CheckFailed("target %s differs from source: %d source rows, %d target rows; "
                          "missing in target %s; extra in target %s"
                          % (table, len(src), len(dst), sorted(s - d)[:5], sorted(d - s)[:5]))
    return len(src)


# ---- reliability helpers (issue 8) ---------------------------------------------

def config_set(ws, section, key, value):
    """Put `key: value` into the top-level `section` of ws.config (replacing
    the key if the section has it, else adding it as the section's first key)."""
    with open(ws.config) as f:
        lines = f.read().splitlines()
    out, i, done = [], 0, False
    while i < len(lines):
        line = lines[i]
        out.append(line)
        if not done and line == section + ":":
            j = i + 1
            while j < len(lines) and lines[j].startswith("  "):
                if lines[j].startswith("  %s:" % key):
                    lines[j] = "  %s: %s" % (key, value)
                    done = True
                j += 1
            if not done:
                out.append("  %s: %s" % (key, value))
                done = True
        i += 1
    if not done:
        out += [section + ":", "  %s: %s" % (key, value)]
    with open(ws.config, "w") as f:
        f.write("\n".join(out) + "\n")


SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "UndefinedBehaviorSanitizer")


def check_no_sanitizer(r, what="mbq"):
    for m in SANITIZER_MARKS:
        check(m not in r.stderr, "%s: sanitizer report (%s): %r" % (what, m, r))


def check_clean_failure(r, codes, fragments, what="mbq"):
    """A failed run that says why: one of `codes`, every fragment in its
    stderr (case-insensitive), no signal, no sanitizer report."""
    check_no_sanitizer(r, what)
    check(r.returncode in codes, "%s: exit %s, expected one of %s: %r" % (what, r.returncode, codes, r))
    low = (r.stderr + r.stdout).lower()  # `mbq check` reports on stdout
    for frag in fragments:
        check(frag.lower() in low, "%s: output lacks %r: %r" % (what, frag, r))


LOSS = {"rows": 0, "lost": 0, "duplicated": 0}


def count_loss(ws, table, key):
    """Rows of the source missing from the target, and target keys held
    more than once; added to LOSS (the README's figures)."""
    src = {tuple(r) for r in mysql("SELECT %s FROM `%s`" % (key, table), db=ws.db)}
    dst_rows = bq_query("SELECT %s FROM `%s.%s`" % (key, ws.dataset, table))
    dst = [tuple(r) for r in dst_rows]
    lost = len(src - set(dst))
    dups = len(dst) - len(set(dst))
    LOSS["rows"] += len(src)
    LOSS["lost"] += lost
    LOSS["duplicated"] += dups
    return lost, dups


def load_services_env(path):
    """The `export K=V` lines of a tools/services.sh env file, as a dict."""
    import shlex
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("export "):
                k, _, v = line[len("export "):].partition("=")
                env[k] = shlex.split(v)[0] if v else ""
    return env


class FaultProxy:
    """tools/faultproxy.py in front of HOST:PORT; `set(...)` rewrites its
    control file (read again for each new connection)."""

    def __init__(self, target, workdir, name):
        self.control = os.path.join(workdir, name + ".ctl")
        self.logpath = os.path.join(workdir, name + ".log")
        self.set(mode="pass")
        self.logf = open(self.logpath, "w")
        self.p = subprocess.Popen(
            [sys.executable, os.path.join(os.environ["MBQ_SOURCE_DIR"], "tools", "faultproxy.py"),
             "--listen", "0", "--target", target, "--control", self.control],
            stdout=subprocess.PIPE, stderr=self.logf, stdin=subprocess.DEVNULL)
        self.port = int(self.p.stdout.readline().decode().strip())

    def set(self, **ctl):
        tmp = self.control + ".tmp"
        with open(tmp, "w") as f:
            json.dump(ctl, f)
        os.replace(tmp, self.control)

    def log(self):
        with open(self.logpath) as f:
            return f.read()

    def pass_after_first(self, word="cut"):
        """Back to pass mode as soon as one connection's log line has `word`
        (a one-shot fault: the retry that follows finds the network healthy)."""
        import threading
        start = len(self.log())

        def watch():
            for _ in range(6000):
                if word in self.log()[start:]:
                    self.set(mode="pass")
                    return
                time.sleep(0.01)
        t = threading.Thread(target=watch, daemon=True)
        t.start()
        return t

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.logf.close()


class HttpCutter:
    """An HTTP/1.1 fault proxy in front of the emulator that can address one
    request: tools/faultproxy.py counts bytes per connection, and curl's
    keep-alive puts many requests on one connection, so a byte count cannot
    name "the response of the MERGE job". Each request is forwarded whole on
    a fresh upstream connection and its response read whole before anything
    is sent back: a request the emulator received always completes, as on
    BigQuery (EMULATOR.md 10). A rule is (predicate(method, path, body),
    action, arg, times): action "cut" sends only the first `arg` bytes of the
    response and closes the client connection; "drop" closes it without
    answering; "hook" calls arg() before forwarding, then closes the client
    connection unanswered (a request lost in a server restart)."""

    def __init__(self, upstream):
        import socket
        import threading
        self.upstream = upstream
        self.rules = []
        self.fired = []
        # (method, path without query, rule or "-", body's first bytes): evidence
        self.seen = []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def add(self, name, pred, action, arg=None, times=1):
        with self.lock:
            self.rules.append({"name": name, "pred": pred, "action": action, "arg": arg,
                               "times": times})

    def _accept(self):
        import threading
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _rule(self, method, path, body):
        with self.lock:
            for r in self.rules:
                if r["times"] > 0 and r["pred"](method, path, body):
                    r["times"] -= 1
                    self.fired.append(r["name"])
                    self.seen.append((method, path.split("?")[0], r["name"], body[:160]))
                    return r
            self.seen.append((method, path.split("?")[0], "-", body[:160]))
        return None

    def trace(self, since=0):
        """The requests seen (from index `since`), one per line, with the rule
        that took each and the start of the body."""
        with self.lock:
            return "\n".join("%s %s [%s] %r" % s for s in self.seen[since:])

    def _serve(self, c):
        import http.client
        f = c.makefile("rb")
        try:
            while True:
                line = f.readline()
                if not line:
                    return
                method, path, _ = line.decode("latin-1").split(" ", 2)
                headers = []
                while True:
                    h = f.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = h.decode("latin-1").partition(":")
                    headers.append((k.strip(), v.strip()))
                n, chunked = 0, False
                for k, v in headers:
                    if k.lower() == "content-length":
                        n = int(v)
                    if k.lower() == "transfer-encoding" and "chunked" in v.lower():
                        chunked = True
                # A streamed upload (mbq's first load) comes chunked: read
                # it whole, or its chunks would be taken for requests.
                body = _read_chunked(f) if chunked else f.read(n) if n else b""
                rule = self._rule(method, path, body)
                if rule and rule["action"] == "drop":
                    return
                if rule and rule["action"] == "hook":
                    rule["arg"]()
                    return
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
                out = ["HTTP/1.1 %d %s" % (resp.status, resp.reason)]
                for k, v in resp.getheaders():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection",
                                         ):
                        out.append("%s: %s" % (k, v))
                out.append("Content-Length: %d" % len(data))
                raw = ("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + data
                if rule and rule["action"] == "cut":
                    c.sendall(raw[:rule["arg"]])
                    return
                c.sendall(raw)
        except (OSError, ValueError):
            return
        finally:
            try:
                f.close()
                c.close()
            except OSError:
                pass

    def stop(self):
        self.sock.close()


# ---- added for the schema tests (tests/e2e/test_schema.py) --------------------

def events_of(ws, table, n=200):
    """The table's journaled events (newest first), as `mbq-state inspect --json` shows them."""
    r = ws.state_cmd("inspect", "--json", "--events", str(n), table)
    check_eq(r.returncode, 0, "mbq-state inspect exit code (stderr: %s)" % r.stderr)
    return json.loads(r.stdout)["events"]


def bq_field_types(ws, table):
    """{column: type} of a target as tables.get returns it (None if it does not exist)."""
    t = bq_table(ws.dataset, table)
    if t is None:
        return None
    return {f["name"]: f["type"] for f in t["schema"]["fields"]}


# ---- a private emulator per suite ---------------------------------------------
# goccy v0.8.1 grows without bound as it works (several GB of RSS after a few
# hundred jobs) and then fails with a googlesqlite panic: "slice bounds out of
# range" (README, emulator divergences). One shared emulator for the whole
# suite would fall over in CI; each heavy suite starts its own, fresh, and may
# restart it between groups of cases.

_PRIVATE = {}


def _free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def private_emulator():
    """Start a fresh emulator for this process and point the tests (and the
    mbq runs they make) at it. Replaces any earlier private one."""
    import atexit
    import signal
    stop_private_emulator()
    here = os.path.dirname(os.path.abspath(__file__))
    binary = subprocess.run(["bash", os.path.join(here, "..", "..", "tools", "build-emulator.sh")],
                            capture_output=True, check=True).stdout.decode().strip()
    d = tempfile.mkdtemp(prefix="mbq-emu-")
    for _ in range(5):
        port, grpc = _free_port(), _free_port()
        log = open(os.path.join(d, "emulator.log"), "ab")
        p = subprocess.Popen([binary, "--project=%s" % os.environ.get("MBQ_TEST_BQ_PROJECT", "mbq-test"),
                              "--host=127.0.0.1", "--port=%d" % port, "--grpc-port=%d" % grpc,
                              "--database=%s" % os.path.join(d, "emulator.db")],
                             stdout=log, stderr=log, start_new_session=True,
                             # MERGE counts as BigQuery reports them (opt-in in
                             # the patched emulator: tools/emulator/README.md)
                             env=dict(os.environ, BIGQUERY_EMULATOR_COUNT_MERGE="1"))
        os.environ["BIGQUERY_EMULATOR_HOST"] = "127.0.0.1:%d" % port
        for _ in range(200):
            if p.poll() is not None:
                break
            try:
                st, _body = bq_request("GET", "/datasets")
                if st == 200:
                    _PRIVATE.update(proc=p, dir=d)
                    if not _PRIVATE.get("atexit"):
                        atexit.register(stop_private_emulator)
                        _PRIVATE["atexit"] = True
                    return
            except OSError:
                pass
            time.sleep(0.05)
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            pass
        p.wait()
    raise RuntimeError("cannot start a private emulator (log: %s/emulator.log)" % d)


def stop_private_emulator():
    import signal
    p = _PRIVATE.pop("proc", None)
    if p:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            pass
        p.wait()
    d = _PRIVATE.pop("dir", None)
    if d:
        shutil.rmtree(d, ignore_errors=True)


def _read_chunked(f):
    """The body of a request sent with Transfer-Encoding: chunked."""
    body = bytearray()
    while True:
        line = f.readline()
        if not line.endswith(b"\n"):
            raise ValueError("request cut inside its chunked body")  # never forwarded
        size = int(line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while f.readline() not in (b"\r\n", b"\n", b""):
                pass
            return bytes(body)
        chunk = f.read(size)
        if len(chunk) < size:
            raise ValueError("request cut inside its chunked body")
        body += chunk
        f.readline()
