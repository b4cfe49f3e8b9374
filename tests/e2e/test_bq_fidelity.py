#!/usr/bin/env python3
"""End-to-end tests of what real BigQuery does that the emulator hides
(label `bigquery`): the real `mbq sync` against MariaDB and the emulator,
through a stand-in in front of the emulator (cases named `..._standin`) that
records every request and answers some as BigQuery's documentation says:

- a job that BigQuery accepted and then failed on its own side
  (status.errorResult reason backendError, rateLimitExceeded) or for good
  (invalid): answered without the emulator ever seeing the job;
- a target table with metadata users put on it (column descriptions, policy
  tags, a maxLength): its tables.get answer carries them, as BigQuery's does.

Also: cluster_by with a column whose BigQuery name is mapped (README "Column
names"), against the emulator alone."""
import http.client
import json
import os
import re
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mbqtest import (Workspace, assert_target_equals_source, bq_request, bq_table, check,
                     check_eq, expect_ok, mysql, require_services, run, run_cases,
                     private_emulator)

DDL = """
CREATE TABLE items (
  id BIGINT NOT NULL PRIMARY KEY,
  val VARCHAR(20),
  n INT,
  updated_at DATETIME(6) NOT NULL
);
"""
COLS = ["id", "val", "n", "updated_at"]


def items_ws(name, n_rows=5, full=False):
    ws = Workspace("bqf_" + name)
    mysql(DDL, db=ws.db)
    add_rows(ws, 1, n_rows)
    t = {"name": "items", "primary_key": "id"}
    if full:
        t["mode"] = "full"
    else:
        t["updated_column"] = "updated_at"
    ws.write_config([t])
    expect_ok(ws.sync(), "first sync")
    return ws


def add_rows(ws, first, last, day=1):
    mysql("INSERT INTO items (id, val, n, updated_at) VALUES %s" % ",".join(
        "(%d, 'v%d', %d, '2024-01-%02d 00:00:%02d')" % (i, i, i, day, i % 60)
        for i in range(first, last + 1)), db=ws.db)


class Front:
    """Forwards to the emulator and records (method, path, job) of every job
    submitted. `fail` rules answer a job submission as BigQuery answers a
    job that ran and failed: 200 with a DONE Job whose status carries
    errorResult; the emulator never sees that job, and jobs.get of its id
    answers the same Job. `decorate` adds attributes to a table's fields in
    tables.get answers, as BigQuery returns what users set on a table."""

    def __init__(self):
        self.jobs = []        # (kind, job id, configuration) of every job submitted
        self.fake = {}
        self.fail = []        # [pred(kind, config) -> bool, reason, times left]
        self.decorate = {}    # table id -> {column: {attr: value}}
        upstream = os.environ["BIGQUERY_EMULATOR_HOST"]
        front = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _answer(self, status, body, ctype="application/json", extra=()):
                self.send_response(status)
                for k, v in extra:
                    self.send_header(k, v)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _job_of(self, path, body):
                """(kind, job) of a job submission, else None."""
                if self.command != "POST":
                    return None
                if path.endswith("/jobs") and "/upload/" not in path and body.startswith(b"{"):
                    job = json.loads(body)
                    return ("query" if "query" in job.get("configuration", {}) else "job"), job
                if "/upload/" in path and b"{" in body:
                    start = body.index(b"{")
                    job, _ = json.JSONDecoder().raw_decode(body[start:].decode("utf-8", "replace"))
                    return "load", job
                return None

            def _handle(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                url = urllib.parse.urlparse(self.path)
                path = url.path
                kj = self._job_of(path, body)
                if kj:
                    kind, job = kj
                    cfg = job.get("configuration", {})
                    jid = job["jobReference"]["jobId"]
                    front.jobs.append((kind, jid, cfg))
                    for rule in front.fail:
                        if rule[2] > 0 and rule[0](kind, cfg):
                            rule[2] -= 1
                            err = {"reason": rule[1], "message": "injected: " + rule[1]}
                            done = {"kind": "bigquery#job", "jobReference": job["jobReference"],
                                    "configuration": cfg, "statistics": {},
                                    "status": {"state": "DONE", "errorResult": err,
                                               "errors": [err]}}
                            front.fake[jid] = done
                            return self._answer(200, json.dumps(done).encode())
                for jid, job in front.fake.items():
                    if self.command == "GET" and path.endswith("/jobs/" + jid):
                        return self._answer(200, json.dumps(job).encode())
                c = http.client.HTTPConnection(upstream, timeout=300)
                hdrs = {k: v for k, v in self.headers.items()
                        if k.lower() not in ("host", "connection", "content-length")}
                c.request(self.command, self.path, body=body if body else None, headers=hdrs)
                r = c.getresponse()
                data = r.read()
                c.close()
                m = re.search(r"/datasets/[^/]+/tables/([^/?]+)$", path)
                if self.command == "GET" and m and r.status == 200 and m.group(1) in front.decorate:
                    t = json.loads(data)
                    for f in t.get("schema", {}).get("fields", []):
                        f.update(front.decorate[m.group(1)].get(f["name"], {}))
                    data = json.dumps(t).encode()
                # A resumable session's Location and Range go back as they are.
                extra = [(k, v) for k, v in r.getheaders() if k.lower() in ("location", "range")]
                self._answer(r.status, data, r.getheader("Content-Type") or "application/json",
                             extra)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.endpoint = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def loads(self, table=None):
        return [(jid, cfg["load"]) for kind, jid, cfg in self.jobs
                if kind == "load" and (table is None or
                                       cfg["load"]["destinationTable"]["tableId"] == table)]

    def merges(self):
        return [jid for kind, jid, cfg in self.jobs
                if kind == "query" and cfg["query"]["query"].startswith("MERGE")]


def sync_through(ws, front):
    return ws.sync(env=ws.env(MBQ_E2E_BQ_ENDPOINT=front.endpoint))


def attempt_of(job_id):
    """The attempt number in a deterministic job id (its last '_' part)."""
    return int(job_id.rsplit("_", 1)[1])


# ---- cases ---------------------------------------------------------------------

def test_load_failing_on_bigquerys_side_runs_again_from_the_same_file_standin():
    """A load job that BigQuery fails with backendError: loaded again from
    the same staged file (one extract) under a new job id, in the same run."""
    ws = items_ws("load_backend")
    add_rows(ws, 6, 9, day=2)
    front = Front()
    front.fail.append([lambda kind, cfg: kind == "load", "backendError", 1])
    try:
        r = sync_through(ws, front)
    finally:
        front.close()
    expect_ok(r, "the sync with a load that failed once")
    loads = front.loads()
    check_eq(len(loads), 2, "two load jobs: %r" % [j for j, _ in loads])
    (id1, l1), (id2, l2) = loads
    check(id1 != id2, "the second load has a new job id")
    check(attempt_of(id2) > attempt_of(id1), "the new id carries a later attempt: %s %s"
          % (id1, id2))
    check_eq(l1["destinationTable"], l2["destinationTable"], "the same staging table")
    check_eq(len(re.findall(r"\[items/extract\] extracted \d+ rows", r.stderr)), 1,
             "one extract: %s" % r.stderr)
    check("backendError" in r.stderr and "new job id" in r.stderr, "logged: %s" % r.stderr)
    assert_target_equals_source(ws, "items", COLS, "id", dt_cols=("updated_at",))
    ws.cleanup()


def test_merge_rate_limited_runs_again_under_a_new_job_id_standin():
    ws = items_ws("merge_rate")
    add_rows(ws, 6, 8, day=2)
    front = Front()
    front.fail.append([lambda kind, cfg: kind == "query" and
                       cfg["query"]["query"].startswith("MERGE"), "rateLimitExceeded", 1])
    try:
        r = sync_through(ws, front)
    finally:
        front.close()
    expect_ok(r, "the sync with a MERGE that was rate limited once")
    merges = front.merges()
    check_eq(len(merges), 2, "two MERGE jobs: %r" % merges)
    check(merges[0] != merges[1], "a new job id")
    check_eq(len(front.loads()), 1, "the staged rows were loaded once")
    assert_target_equals_source(ws, "items", COLS, "id", dt_cols=("updated_at",))
    ws.cleanup()


def test_permanent_load_error_is_not_run_again_standin():
    """invalid: BigQuery refused the rows; running the same job again would
    fail again. One load job, exit 1, the next run extracts again."""
    ws = items_ws("load_invalid")
    add_rows(ws, 6, 7, day=2)
    front = Front()
    front.fail.append([lambda kind, cfg: kind == "load", "invalid", 1])
    try:
        r = sync_through(ws, front)
    finally:
        front.close()
    check_eq(r.returncode, 1, "a permanent failure fails the table: %r" % r)
    check_eq(len(front.loads()), 1, "not run again")
    t = ws.inspect("items")["tables"][0]
    check_eq((t["in_flight"] or {}).get("state"), "extract", "the next run extracts again")
    expect_ok(ws.sync(), "the next sync")
    assert_target_equals_source(ws, "items", COLS, "id", dt_cols=("updated_at",))
    ws.cleanup()


DECOR = {"val": {"description": "customer value",
                 "policyTags": {"names": ["projects/p/locations/us/taxonomies/1/policyTags/2"]},
                 "maxLength": "20"},
         "n": {"description": "a count"}}


def test_full_refresh_keeps_target_field_definitions_standin():
    """A full refresh loads with WRITE_TRUNCATE_DATA (rows replaced, the
    table's schema, descriptions, policy tags and constraints kept), its
    schema carrying the target's definitions. The emulator appends for that
    disposition (README divergences): mbq sees the row count, and loads
    again with WRITE_TRUNCATE whose schema carries the same definitions, so
    the policy tags are never dropped either way."""
    ws = items_ws("full_keep", full=True)
    mysql("DELETE FROM items WHERE id = 2", db=ws.db)
    add_rows(ws, 6, 7, day=2)
    front = Front()
    front.decorate["items"] = DECOR
    try:
        r = sync_through(ws, front)
    finally:
        front.close()
    expect_ok(r, "the full refresh")
    loads = front.loads("items")
    check(len(loads) in (1, 2), "one load (or a second after the emulator appended): %r\n%s"
          % (loads, r.stderr))
    check_eq(loads[0][1]["writeDisposition"], "WRITE_TRUNCATE_DATA", "the first load keeps metadata")
    for jid, ld in loads:
        fields = {f["name"]: f for f in ld["schema"]["fields"]}
        check_eq(fields["val"].get("policyTags"), DECOR["val"]["policyTags"],
                 "policy tags carried in %s" % jid)
        check_eq((fields["val"].get("description"), fields["val"].get("maxLength"),
                  fields["n"].get("description")),
                 ("customer value", "20", "a count"), "definitions carried in %s" % jid)
    if len(loads) == 2:
        check_eq(loads[1][1]["writeDisposition"], "WRITE_TRUNCATE", "the fallback")
        check("did not replace the rows" in r.stderr, "the fallback is logged: %s" % r.stderr)
    assert_target_equals_source(ws, "items", COLS, "id", dt_cols=("updated_at",))
    ws.cleanup()


def test_rebuild_keeps_descriptions_and_policy_tags_standin():
    """A rebuild (a type BigQuery cannot change in place) loads with
    WRITE_TRUNCATE and the new types; each column keeps its description and
    its policy tags, and the changed column drops what belonged to its old
    type (maxLength). The emulator then keeps the old type (README
    divergences) and mbq stops before its commit: only the load is checked."""
    ws = items_ws("rebuild_keep")
    ws.write_config([{"name": "items", "primary_key": "id", "updated_column": "updated_at",
                      "on_incompatible_change": "rebuild"}])
    mysql("UPDATE items SET val = id; ALTER TABLE items MODIFY val INT", db=ws.db)
    front = Front()
    front.decorate["items"] = DECOR
    try:
        sync_through(ws, front)
    finally:
        front.close()
    loads = front.loads("items")
    check(len(loads) >= 1, "a load into the target")
    ld = loads[0][1]
    check_eq(ld["writeDisposition"], "WRITE_TRUNCATE", "a rebuild replaces the schema")
    fields = {f["name"]: f for f in ld["schema"]["fields"]}
    check_eq(fields["val"]["type"], "INT64", "the new type")
    check_eq(fields["val"].get("policyTags"), DECOR["val"]["policyTags"], "policy tags kept")
    check_eq(fields["val"].get("description"), "customer value", "description kept")
    check("maxLength" not in fields["val"], "the old type's maxLength dropped: %r" % fields["val"])
    check_eq(fields["n"].get("description"), "a count", "other columns keep theirs")
    ws.cleanup()


def test_cluster_by_uses_mapped_column_names():
    """cluster_by names MySQL columns; the target is clustered by their
    BigQuery names (a MySQL name BigQuery cannot hold is mapped), as
    partition_by already was."""
    ws = Workspace("bqf_cluster")
    mysql("CREATE TABLE items (id BIGINT NOT NULL PRIMARY KEY, `Order-Region` VARCHAR(10), "
          "`2fa` INT, updated_at DATETIME(6) NOT NULL);"
          "INSERT INTO items VALUES (1, 'eu', 1, '2024-01-01 00:00:00')", db=ws.db)
    ws.write_config([{"name": "items", "primary_key": "id", "updated_column": "updated_at",
                      "cluster_by": ["Order-Region", "2fa"]}])
    expect_ok(ws.sync(), "sync of a table clustered by mapped names")
    t = bq_table(ws.dataset, "items")
    check_eq(t.get("clustering", {}).get("fields"), ["Order_Region", "_2fa"],
             "clustered by the BigQuery names")
    ws.cleanup()


def test_location_is_the_datasets_and_a_contradiction_is_refused():
    """A dataset mbq created in US: unset, bigquery.location is the
    dataset's (check says so); set to EU, check and sync refuse it before
    any job, naming both locations."""
    ws = items_ws("location")
    st, ds = bq_request("GET", "/datasets/%s" % ws.dataset)
    check_eq((st, ds.get("location")), (200, "US"), "the dataset mbq created is in US")
    r = run([os.environ["MBQ_BIN"], "check", "--config", ws.config], ws.env())
    check_eq(r.returncode, 0, "check: %r" % r)
    check("dataset '%s' exists in US (jobs run there)" % ws.dataset in r.stdout,
          "check names the location: %r" % r)
    ws.write_config([{"name": "items", "primary_key": "id", "updated_column": "updated_at"}],
                    extra_bigquery="location: EU")
    want = ("'bigquery.location' is 'EU' but dataset '%s' is in 'US': jobs must run in the "
            "dataset's location" % ws.dataset)
    r = run([os.environ["MBQ_BIN"], "check", "--config", ws.config], ws.env())
    check_eq(r.returncode, 2, "check with a contradicting location: %r" % r)
    check(want in r.stdout + r.stderr, "clear error: %r" % r)
    add_rows(ws, 6, 6, day=2)
    r = ws.sync()
    check(r.returncode != 0 and want in r.stderr, "sync refuses it too: %r" % r)
    ws.write_config([{"name": "items", "primary_key": "id", "updated_column": "updated_at"}],
                    extra_bigquery="location: us")
    expect_ok(ws.sync(), "the same location in another case")
    assert_target_equals_source(ws, "items", COLS, "id", dt_cols=("updated_at",))
    ws.cleanup()


if __name__ == "__main__":
    require_services()
    private_emulator()
    run_cases([
        test_cluster_by_uses_mapped_column_names,
        test_location_is_the_datasets_and_a_contradiction_is_refused,
        test_load_failing_on_bigquerys_side_runs_again_from_the_same_file_standin,
        test_merge_rate_limited_runs_again_under_a_new_job_id_standin,
        test_permanent_load_error_is_not_run_again_standin,
        test_full_refresh_keeps_target_field_definitions_standin,
        test_rebuild_keeps_descriptions_and_policy_tags_standin,
    ])
