#!/usr/bin/env python3
"""Probe a bigquery-emulator binary for the divergences the patch series fixes.

    python3 tools/emulator/probe.py BINARY

starts BINARY on free local ports with a throw-away database, sends each
probe through plain HTTP (as mbq does) and prints one line per probe: what
the emulator answered and what BigQuery answers. Used to measure each
divergence before (v0.8.1) and after (the patched build); the results are in
tools/emulator/README.md. Exit status 0 whatever the answers: it measures.
"""
import gzip
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

PROJECT = "probe"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Emulator:
    def __init__(self, binary):
        self.dir = tempfile.TemporaryDirectory()
        self.port = free_port()
        self.log = open(os.path.join(self.dir.name, "emulator.log"), "wb")
        self.proc = subprocess.Popen(
            [binary, f"--project={PROJECT}", "--host=127.0.0.1", f"--port={self.port}",
             f"--grpc-port={free_port()}", f"--database={self.dir.name}/db"],
            stdout=self.log, stderr=subprocess.STDOUT,
            # MERGE counts are asked for (patch 0004; they cost a join).
            env=dict(os.environ, BIGQUERY_EMULATOR_COUNT_MERGE="1"))
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                self.call("GET", f"/bigquery/v2/projects/{PROJECT}/datasets")
                return
            except OSError:
                time.sleep(0.2)
        raise SystemExit("probe: the emulator did not start")

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()
        self.dir.cleanup()

    def call(self, method, path, body=None, headers=None):
        """(status, headers, decoded JSON body or None)"""
        if isinstance(body, str):
            body = body.encode()
        req = urllib.request.Request(self.base + path, data=body, method=method,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                status, hdrs, data = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            status, hdrs, data = e.code, e.headers, e.read()
        try:
            doc = json.loads(data) if data.strip() else None
        except ValueError:
            doc = None
        return status, hdrs, doc

    def query(self, sql):
        _, _, doc = self.call("POST", f"/bigquery/v2/projects/{PROJECT}/queries",
                              json.dumps({"query": sql, "useLegacySql": False}),
                              {"Content-Type": "application/json"})
        try:
            return [[c["v"] for c in r["f"]] for r in doc["rows"]]
        except (TypeError, KeyError):
            return doc

    def insert_job(self, job_id, sql):
        return self.call("POST", f"/bigquery/v2/projects/{PROJECT}/jobs", json.dumps({
            "jobReference": {"projectId": PROJECT, "jobId": job_id},
            "configuration": {"query": {"query": sql, "useLegacySql": False}}}),
            {"Content-Type": "application/json"})

    def get_job(self, job_id):
        return self.call("GET", f"/bigquery/v2/projects/{PROJECT}/jobs/{job_id}")


def load_meta(job_id, table):
    return json.dumps({
        "jobReference": {"projectId": PROJECT, "jobId": job_id},
        "configuration": {"load": {
            "sourceFormat": "NEWLINE_DELIMITED_JSON",
            "destinationTable": {"projectId": PROJECT, "datasetId": "d", "tableId": table},
            "schema": {"fields": [{"name": "id", "type": "INTEGER"},
                                  {"name": "name", "type": "STRING"}]}}}})


def multipart(meta, data):
    b = b"PROBEBOUNDARY"
    body = (b"--" + b + b"\r\nContent-Type: application/json\r\n\r\n" + meta.encode() + b"\r\n--" + b +
            b"\r\nContent-Type: application/octet-stream\r\n\r\n" + data + b"\r\n--" + b + b"--\r\n")
    return body, {"Content-Type": "multipart/related; boundary=PROBEBOUNDARY"}


ROWS = b'{"id":1,"name":"a"}\n{"id":2,"name":"b"}\n{"id":3,"name":"c"}\n'
UPLOAD = f"/upload/bigquery/v2/projects/{PROJECT}/jobs"


def err(doc):
    e = (doc or {}).get("error") or {}
    reason = ((e.get("errors") or [{}])[0]).get("reason") or ""
    return f"{reason} {e.get('status', '')}".strip()


def count(emu, table):
    rows = emu.query(f"SELECT COUNT(*) FROM d.{table}")
    return rows[0][0] if isinstance(rows, list) and rows else "?"


def probe_gzip(emu):
    body, hdrs = multipart(load_meta("gz1", "gz1"), gzip.compress(ROWS))
    st, _, doc = emu.call("POST", UPLOAD + "?uploadType=multipart", body, hdrs)
    yield "gzip NDJSON file, multipart", f"HTTP {st} {err(doc)}, rows {count(emu, 'gz1')}", "HTTP 200, rows 3"
    body, hdrs = multipart(load_meta("gz2", "gz2"), ROWS)
    st, _, doc = emu.call("POST", UPLOAD + "?uploadType=multipart", gzip.compress(body),
                          dict(hdrs, **{"Content-Encoding": "gzip"}))
    yield "multipart body with Content-Encoding: gzip", f"HTTP {st} {err(doc)}, rows {count(emu, 'gz2')}", \
        "HTTP 200, rows 3"


def start_session(emu, job_id, table):
    st, hdrs, doc = emu.call("POST", UPLOAD + "?uploadType=resumable", load_meta(job_id, table),
                             {"Content-Type": "application/json"})
    loc = hdrs.get("Location", "")
    return st, doc, loc[loc.index("/upload/"):] if "/upload/" in loc else None


def probe_resumable(emu):
    _, _, url = start_session(emu, "rs1", "rs1")
    n = len(ROWS)
    # The first chunk ends inside a row.
    st1, h1, _ = emu.call("PUT", url, ROWS[:10], {"Content-Range": "bytes 0-9/*"})
    stq, hq, _ = emu.call("PUT", url, b"", {"Content-Range": f"bytes */{n}"})
    st2, _, doc = emu.call("PUT", url, ROWS[10:], {"Content-Range": f"bytes 10-{n - 1}/{n}"})
    yield ("resumable upload in 2 chunks",
           f"chunk 1: HTTP {st1} Range {h1.get('Range')}; status query: HTTP {stq} Range {hq.get('Range')}; "
           f"last chunk: HTTP {st2} {err(doc)}; rows {count(emu, 'rs1')}",
           "308 bytes=0-9; 308 bytes=0-9; 200; rows 3")


def probe_duplicate(emu):
    emu.insert_job("dup_create", "CREATE TABLE d.dup (id INT64)")
    emu.insert_job("dup_q", "INSERT INTO d.dup (id) VALUES (1)")
    st, _, doc = emu.insert_job("dup_q", "INSERT INTO d.dup (id) VALUES (1)")
    yield "query job id inserted twice", f"HTTP {st} {err(doc)}, rows {count(emu, 'dup')}", \
        "HTTP 409 duplicate ALREADY_EXISTS, rows 1"
    body, hdrs = multipart(load_meta("dup_u", "dup_u"), ROWS)
    emu.call("POST", UPLOAD + "?uploadType=multipart", body, hdrs)
    st, _, doc = emu.call("POST", UPLOAD + "?uploadType=multipart", body, hdrs)
    yield "upload job id inserted twice", f"HTTP {st} {err(doc)}, rows {count(emu, 'dup_u')}", \
        "HTTP 409 duplicate ALREADY_EXISTS, rows 3"
    body, hdrs = multipart(load_meta("cut", "cut"), ROWS)
    st, _, doc = emu.call("POST", UPLOAD + "?uploadType=multipart", body[:body.index(b'{"id":2')], hdrs)
    gst, _, _ = emu.get_job("cut")
    body, hdrs = multipart(load_meta("cut", "cut"), ROWS)
    rst, _, rdoc = emu.call("POST", UPLOAD + "?uploadType=multipart", body, hdrs)
    yield ("multipart upload cut mid-body, then retried whole",
           f"cut: HTTP {st} {err(doc)}; jobs.get: HTTP {gst}; retry: HTTP {rst} {err(rdoc)}",
           "cut: 400; jobs.get: 404; retry: 200")


def status_error(doc):
    er = ((doc or {}).get("status") or {}).get("errorResult")
    return f"errorResult {er.get('reason')}" if er else "no errorResult"


def probe_results(emu):
    emu.insert_job("bad_q", "SELECT * FROM d.missing")
    _, _, doc = emu.get_job("bad_q")
    yield "jobs.get of a failed query job", status_error(doc), "errorResult (DONE)"
    body, hdrs = multipart(load_meta("bad_l", "bad_l"), b'{"id":"x","name":"a"}\n')
    st, _, doc = emu.call("POST", UPLOAD + "?uploadType=multipart", body, hdrs)
    _, _, gdoc = emu.get_job("bad_l")
    yield "load of a row the schema refuses", \
        f"insert HTTP {st} {err(doc) or status_error(doc)}; jobs.get {status_error(gdoc)}", \
        "insert HTTP 200; jobs.get errorResult invalid"
    body, hdrs = multipart(load_meta("ok_l", "ok_l"), ROWS)
    emu.call("POST", UPLOAD + "?uploadType=multipart", body, hdrs)
    _, _, doc = emu.get_job("ok_l")
    load = ((doc or {}).get("statistics") or {}).get("load") or {}
    yield "load statistics (jobs.get)", f"outputRows {load.get('outputRows')}, " \
        f"inputFileBytes {load.get('inputFileBytes')}", f"outputRows 3, inputFileBytes {len(ROWS)}"
    emu.insert_job("s_create", "CREATE TABLE d.s AS SELECT 1 AS id, 'A' AS name UNION ALL SELECT 9, 'I'")
    for job_id, sql in (("upd", "UPDATE d.ok_l SET name = 'z' WHERE id >= 2"),
                        ("mrg", "MERGE d.ok_l AS T USING d.s AS S ON T.id = S.id "
                                "WHEN MATCHED THEN UPDATE SET name = S.name "
                                "WHEN NOT MATCHED THEN INSERT (id, name) VALUES (S.id, S.name)")):
        _, _, doc = emu.insert_job(job_id, sql)
        q = ((doc or {}).get("statistics") or {}).get("query") or {}
        yield f"{sql.split()[0]} job statistics", \
            f"statementType {q.get('statementType')}, numDmlAffectedRows {q.get('numDmlAffectedRows')}, " \
            f"dmlStats {q.get('dmlStats')}", \
            {"upd": "UPDATE, 2, updated 2", "mrg": "MERGE, 2, updated 1 + inserted 1"}[job_id]


def probe_dry_run(emu):
    st, _, doc = emu.call("POST", f"/bigquery/v2/projects/{PROJECT}/jobs", json.dumps({
        "configuration": {"dryRun": True, "query": {"query": "SELECT 1", "useLegacySql": False}}}),
        {"Content-Type": "application/json"})
    yield "dry-run query job without jobReference", f"HTTP {st} {err(doc)}", "HTTP 200"


def copy_job(emu, job_id, src, dst, write):
    def ref(table):
        return {"projectId": PROJECT, "datasetId": "d", "tableId": table}
    return emu.call("POST", f"/bigquery/v2/projects/{PROJECT}/jobs", json.dumps({
        "jobReference": {"projectId": PROJECT, "jobId": job_id},
        "configuration": {"copy": {"sourceTable": ref(src), "destinationTable": ref(dst),
                                   "writeDisposition": write, "createDisposition": "CREATE_NEVER"}}}),
        {"Content-Type": "application/json"})


def probe_copy(emu):
    body, hdrs = multipart(load_meta("c_src", "c_src"), ROWS)
    emu.call("POST", UPLOAD + "?uploadType=multipart", body, hdrs)
    emu.insert_job("c_dst", "CREATE TABLE d.c_dst AS SELECT 7 AS id, 'x' AS name")
    st, _, doc = copy_job(emu, "cp1", "c_src", "c_dst", "WRITE_TRUNCATE")
    _, _, gdoc = emu.get_job("cp1")
    copied = (((gdoc or {}).get("statistics") or {}).get("copy") or {}).get("copiedRows")
    yield "copy job WRITE_TRUNCATE over a table with 1 row", \
        f"insert HTTP {st} {err(doc) or status_error(doc)}; jobs.get copiedRows {copied}; " \
        f"rows {count(emu, 'c_dst')}", "insert HTTP 200; copiedRows 3; rows 3"
    st, _, doc = copy_job(emu, "cp2", "c_src", "c_dst", "WRITE_EMPTY")
    yield "copy job WRITE_EMPTY into a table with rows", \
        f"insert HTTP {st} {err(doc) or status_error(doc)}; rows {count(emu, 'c_dst')}", \
        "insert HTTP 200 errorResult duplicate; rows 3"


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    emu = Emulator(sys.argv[1])
    try:
        emu.call("POST", f"/bigquery/v2/projects/{PROJECT}/datasets",
                 json.dumps({"datasetReference": {"projectId": PROJECT, "datasetId": "d"}}),
                 {"Content-Type": "application/json"})
        for probe in (probe_gzip, probe_resumable, probe_duplicate, probe_results, probe_dry_run,
                      probe_copy):
            for what, got, want in probe(emu):
                print(f"{what}\n    emulator: {got}\n    BigQuery: {want}")
    finally:
        emu.close()


if __name__ == "__main__":
    main()
