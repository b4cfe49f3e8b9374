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


def run_cases(cases):
    """Run each (name, fn); print one line per case and the closing line."""
    global PASSED, FAILED, CURRENT
    for fn in cases:
        CURRENT = fn.__name__
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
            "  compression: none",
            "  upload_chunk_size: 0",
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
