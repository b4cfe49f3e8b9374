#!/usr/bin/env python3
"""A local stand-in for the parts of BigQuery and Google's OAuth token endpoint
that goccy/bigquery-emulator does not behave like (EMULATOR.md). It answers as
BigQuery's documentation says:

- jobs.insert of an existing job id -> 409 duplicate;
- resumable uploads: chunks of 256 KiB multiples with "Content-Range: bytes
  a-b/*", 308 + "Range: bytes=0-N", the status query "bytes */total", the
  final chunk -> 200 with the Job resource;
- a job that fails later: jobs.get says DONE with status.errorResult;
- a created job whose answer is cut where the connection's close ends it;
- locations: the dataset lives where `dataset_location` says; a job inserted
  in another location fails (404 notFound, as BigQuery refuses a job whose
  dataset is not in the job's location), and jobs.get / getQueryResults of a
  job outside the US and EU multi-regions without its `location=` answer
  404 notFound, as BigQuery does;
- a job that fails with a chosen errorResult reason (`job_errors`), and
  jobs.get answering 404 right after a job was accepted (`notfound_gets`, a
  known BigQuery race);
- a multipart upload without Content-Length (chunked transfer encoding) is
  refused with 411 Length Required, as Google's front end refuses it;
- the token endpoint verifies the JWT's RS256 signature with the public key
  (openssl CLI) and checks iss, scope, aud, iat, exp.

Scenario knobs and counters: POST /_control (JSON merged into `ctl`),
GET /_state (JSON). Uploaded data is written to DIR/upload_<job>.bin.

GET /tokeninfo?access_token=T answers 200 for a token it issued, 400
otherwise (as Google's tokeninfo endpoint does): a front in front of the
emulator (tests/standins/bq_front.py) checks Bearer tokens there.

usage: bq_standin.py PORT_FILE DIR PUBKEY_PEM CLIENT_EMAIL
"""
import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT_FILE, DIR, PUBKEY, EMAIL = sys.argv[1:5]
QUANTUM = 256 * 1024
lock = threading.Lock()
ctl = {
    "fail_next": [],          # statuses to answer to the next BigQuery requests
    "drop_put_at": [],        # 1-based PUT numbers whose connection is dropped mid-body
    "keep_quantum": True,     # a dropped PUT keeps only whole 256 KiB units
    "expires_in": 3600,       # token lifetime
    "token_aud": None,        # the token endpoint's URL as the client knows it (through
                              # tests/standins/bq_front.py); None = this server's /token
    "require_token": False,   # BigQuery requests need a valid Bearer token
    "unauthorized_next": 0,   # answer 401 to this many requests
    "fail_later": [],         # job ids that are RUNNING at insert, failed on jobs.get
    "insert_done": True,      # jobs are DONE at insert (unless fail_later)
    "cut_insert_answer": 0,   # this many created jobs are answered with half a body that
                              # ends with the connection (no Content-Length)
    "dataset_location": "US",  # where every dataset lives
    "dataset_table_expiration_ms": None,  # the datasets' defaultTableExpirationMs (None: unset)
    "job_errors": {},         # job id -> errorResult.reason: RUNNING at insert, then DONE
                              # with that error on jobs.get
    "notfound_gets": 0,       # answer 404 to this many jobs.get of existing jobs
    "complete_any_put": False,  # NOT BigQuery: complete a session on any piece, as the
                              # emulator does (a client must not take that for success)
}
state = {"requests": 0, "tokens": 0, "token_errors": [], "puts": [], "status_queries": 0,
         "inserts": 0, "tokens_seen": [], "upload_content_types": [], "jobs_get": 0, "datasets_get": 0,
         "cut_answers": 0, "job_locations": [], "chunked_multipart": 0}
jobs = {}        # job id -> Job resource
sessions = {}    # upload id -> {"config":..., "data": bytearray}
valid_tokens = set()
token_serial = [0]


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def verify_jwt(assertion, aud):
    parts = assertion.split(".")
    if len(parts) != 3:
        return "not three parts"
    header = json.loads(b64url_decode(parts[0]))
    claims = json.loads(b64url_decode(parts[1]))
    sig = b64url_decode(parts[2])
    if header.get("alg") != "RS256" or header.get("typ") != "JWT":
        return "bad header %r" % header
    sigfile = os.path.join(DIR, "sig.bin")
    datafile = os.path.join(DIR, "signed.txt")
    with open(sigfile, "wb") as f:
        f.write(sig)
    with open(datafile, "wb") as f:
        f.write((parts[0] + "." + parts[1]).encode())
    r = subprocess.run(["openssl", "dgst", "-sha256", "-verify", PUBKEY, "-signature", sigfile,
                        datafile], capture_output=True)
    if r.returncode != 0:
        return "signature does not verify: %s" % r.stdout.decode().strip()
    now = int(time.time())
    if claims.get("iss") != EMAIL:
        return "iss %r" % claims.get("iss")
    if claims.get("scope") != "https://www.googleapis.com/auth/bigquery":
        return "scope %r" % claims.get("scope")
    if claims.get("aud") != aud:
        return "aud %r != %r" % (claims.get("aud"), aud)
    iat = claims.get("iat")
    if not isinstance(iat, int) or abs(iat - now) > 60:
        return "iat %r" % iat
    if claims.get("exp") != iat + 3600:
        return "exp %r" % claims.get("exp")
    if header.get("kid") != "test-key-id":
        return "kid %r" % header.get("kid")
    return None


def job_resource(job_id, config, state_="DONE", error=None, rows=None, location="US"):
    j = {"kind": "bigquery#job",
         "jobReference": {"projectId": "standin", "jobId": job_id, "location": location},
         "configuration": config, "status": {"state": state_}, "statistics": {}}
    if error:
        j["status"]["errorResult"] = error
        j["status"]["errors"] = [error]
    if rows is not None:
        j["statistics"]["load"] = {"outputRows": str(rows)}
    return j


def error_body(code, reason, message):
    return {"error": {"code": code, "message": message,
                      "errors": [{"reason": reason, "message": message, "domain": "global"}]}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, code, obj=None, headers=None):
        body = json.dumps(obj).encode() if obj is not None else b""
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if obj is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_PUT(self):
        self.route("PUT")

    def do_DELETE(self):
        self.route("DELETE")

    def route(self, method):
        url = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(url.query)
        path = url.path
        if path == "/_control":
            with lock:
                ctl.update(json.loads(self.read_body() or b"{}"))
            return self.reply(200, {})
        if path == "/_state":
            with lock:
                return self.reply(200, dict(state, ctl=ctl))
        if path == "/token":
            return self.token()
        if path == "/tokeninfo":
            return self.tokeninfo(q)
        # Everything else is BigQuery.
        with lock:
            state["requests"] += 1
            fail = ctl["fail_next"].pop(0) if ctl["fail_next"] else None
            unauthorized = ctl["unauthorized_next"] > 0
            if unauthorized:
                ctl["unauthorized_next"] -= 1
            auth = self.headers.get("Authorization", "")
            state["tokens_seen"].append(auth[7:] if auth.startswith("Bearer ") else "")
            token_ok = auth.startswith("Bearer ") and auth[7:] in valid_tokens
        if ctl["require_token"] and (unauthorized or not token_ok):
            self.read_body()
            return self.reply(401, error_body(401, "unauthorized", "Request had invalid "
                                              "authentication credentials."))
        if fail:
            self.read_body()
            if fail == 404:
                return self.reply(404, error_body(404, "notFound", "Not found: " + path))
            return self.reply(fail, error_body(fail, "backendError", "Backend error, try again"))
        parts = path.strip("/").split("/")
        # /bigquery/v2/projects/P/datasets/D
        if method == "GET" and len(parts) == 6 and parts[4] == "datasets":
            with lock:
                state["datasets_get"] += 1
            ds = {"datasetReference": {"projectId": parts[3], "datasetId": parts[5]},
                  "location": ctl["dataset_location"]}
            if ctl["dataset_table_expiration_ms"] is not None:
                # int64 as a JSON string, as BigQuery sends it (REST reference, Dataset)
                ds["defaultTableExpirationMs"] = str(ctl["dataset_table_expiration_ms"])
            return self.reply(200, ds)
        if method == "POST" and path.endswith("/jobs") and parts[0] == "bigquery":
            return self.insert(json.loads(self.read_body()))
        if method == "GET" and len(parts) == 6 and parts[4] in ("jobs", "queries"):
            with lock:
                j = jobs.get(parts[5])
                wrong = j and not self.location_ok(j, q.get("location", [None])[0])
            if wrong:
                # BigQuery looks a job up in the location it is asked for.
                return self.reply(404, error_body(404, "notFound", "Not found: Job standin:" +
                                                  parts[5]))
            if parts[4] == "queries":
                return self.query_results(parts[5])
            return self.get_job(parts[5])
        if parts[0] == "upload":
            return self.upload(method, q)
        self.reply(404, error_body(404, "notFound", "Not found: " + path))

    def tokeninfo(self, q):
        """Like Google's tokeninfo endpoint: 200 for an access token this
        server issued, 400 invalid_token otherwise (a front checks the
        Bearer tokens of BigQuery requests here)."""
        tok = q.get("access_token", [""])[0]
        with lock:
            ok = tok in valid_tokens
        if not ok:
            return self.reply(400, {"error": "invalid_token",
                                    "error_description": "Invalid Value"})
        return self.reply(200, {"email": EMAIL, "scope": "https://www.googleapis.com/auth/bigquery",
                                "expires_in": str(ctl["expires_in"])})

    def token(self):
        form = urllib.parse.parse_qs(self.read_body().decode())
        aud = ctl["token_aud"] or "http://127.0.0.1:%d/token" % self.server.server_port
        err = None
        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
            err = "grant_type %r" % form.get("grant_type")
        else:
            err = verify_jwt(form.get("assertion", [""])[0], aud)
        with lock:
            if err:
                state["token_errors"].append(err)
                return self.reply(400, {"error": "invalid_grant", "error_description": err})
            token_serial[0] += 1
            tok = "standin-token-%d-%s" % (token_serial[0], os.urandom(6).hex())
            valid_tokens.add(tok)
            state["tokens"] += 1
            return self.reply(200, {"access_token": tok, "expires_in": ctl["expires_in"],
                                    "token_type": "Bearer"})

    @staticmethod
    def location_ok(job, asked):
        have = job["jobReference"]["location"]
        if asked is None:
            return have.upper() in ("US", "EU")
        return asked.lower() == have.lower()

    def wrong_dataset_location(self, job_id, location):
        """BigQuery runs a job where its jobReference says; the dataset is
        not there: 404 notFound."""
        if (location or "US").lower() == ctl["dataset_location"].lower():
            return False
        self.reply(404, error_body(404, "notFound", "Not found: Dataset standin:d was not "
                                   "found in location %s" % (location or "US")))
        return True

    def query_results(self, job_id):
        with lock:
            j = jobs.get(job_id)
        if not j:
            return self.reply(404, error_body(404, "notFound", "Not found: Job standin:" + job_id))
        return self.reply(200, {"kind": "bigquery#getQueryResultsResponse", "jobComplete": True,
                                "jobReference": j["jobReference"], "totalRows": "1",
                                "schema": {"fields": [{"name": "n", "type": "INTEGER"}]},
                                "rows": [{"f": [{"v": "1"}]}]})

    def insert(self, job):
        job_id = job["jobReference"]["jobId"]
        location = job["jobReference"].get("location")
        with lock:
            state["inserts"] += 1
            state["job_locations"].append(location)
            if job_id in jobs:
                return self.reply(409, error_body(409, "duplicate",
                                                  "Already Exists: Job standin:US." + job_id))
            if self.wrong_dataset_location(job_id, location):
                return None
            if job_id in ctl["fail_later"] or job_id in ctl["job_errors"]:
                jobs[job_id] = job_resource(job_id, job["configuration"], "RUNNING",
                                            location=location or "US")
            else:
                jobs[job_id] = job_resource(job_id, job["configuration"],
                                            "DONE" if ctl["insert_done"] else "RUNNING",
                                            location=location or "US")
                if "query" in job["configuration"]:
                    jobs[job_id]["statistics"]["query"] = {
                        "statementType": "INSERT", "numDmlAffectedRows": "3",
                        "dmlStats": {"insertedRowCount": "3"}}
            if ctl["cut_insert_answer"] > 0:
                ctl["cut_insert_answer"] -= 1
                state["cut_answers"] += 1
                body = json.dumps(jobs[job_id]).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body[:len(body) // 2])
                self.close_connection = True
                return None
            return self.reply(200, jobs[job_id])

    def get_job(self, job_id):
        with lock:
            state["jobs_get"] += 1
            j = jobs.get(job_id)
            if j and ctl["notfound_gets"] > 0:
                ctl["notfound_gets"] -= 1
                j = None  # the race: accepted, yet not found for a moment
            if not j:
                return self.reply(404, error_body(404, "notFound", "Not found: Job standin:" +
                                                  job_id))
            if j["status"]["state"] != "DONE":
                if job_id in ctl["job_errors"]:
                    j["status"]["state"] = "DONE"
                    reason = ctl["job_errors"][job_id]
                    err = {"reason": reason, "message": "injected job failure: " + reason}
                    j["status"]["errorResult"] = err
                    j["status"]["errors"] = [err]
                elif job_id in ctl["fail_later"]:
                    j["status"]["state"] = "DONE"
                    err = {"reason": "invalid",
                           "message": "Could not parse 'abc' as INT64 for field n"}
                    j["status"]["errorResult"] = err
                    j["status"]["errors"] = [err]
                else:
                    j["status"]["state"] = "DONE"
            return self.reply(200, j)

    def upload(self, method, q):
        utype = q.get("uploadType", [""])[0]
        if method == "POST" and utype == "multipart":
            if self.headers.get("Content-Length") is None:
                # Google's front end answers a body without a length (chunked
                # transfer encoding) with 411 Length Required.
                with lock:
                    state["chunked_multipart"] += 1
                self.close_connection = True
                body = b"411. Length Required. POST requests require a Content-length header."
                self.send_response(411)
                self.send_header("Content-Type", "text/html; charset=UTF-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
                return None
            ctype = self.headers.get("Content-Type", "")
            body = self.read_body()
            boundary = ctype.split("boundary=", 1)[1].encode()
            segs = body.split(b"--" + boundary)
            cfg = json.loads(segs[1].split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n", 1)[0])
            data = segs[2].split(b"\r\n\r\n", 1)[1][:-2]
            with lock:
                state["upload_content_types"].append(ctype.split(";")[0])
            return self.finish_upload(cfg, data)
        if method == "POST" and utype == "resumable":
            cfg = json.loads(self.read_body())
            uid = "u" + os.urandom(4).hex()
            with lock:
                sessions[uid] = {"config": cfg, "data": bytearray(),
                                 "total": int(self.headers.get("X-Upload-Content-Length", -1))}
            # Like the emulator: an unspecified host the client must rewrite.
            loc = "http://0.0.0.0:%d/upload/bigquery/v2/projects/standin/jobs?" \
                  "uploadType=resumable&upload_id=%s" % (self.server.server_port, uid)
            return self.reply(200, None, {"Location": loc})
        if method == "PUT":
            return self.put_chunk(q.get("upload_id", [""])[0])
        self.reply(400, error_body(400, "invalid", "bad upload"))

    def put_chunk(self, uid):
        s = sessions.get(uid)
        if not s:
            self.read_body()
            return self.reply(404, error_body(404, "notFound", "no such upload session"))
        cr = self.headers.get("Content-Range", "")
        n = int(self.headers.get("Content-Length") or 0)
        with lock:
            state["puts"].append(cr)
            put_no = len(state["puts"])
        spec = cr[len("bytes "):]
        rng, total = spec.split("/")
        have = len(s["data"])
        if rng == "*":
            with lock:
                state["status_queries"] += 1
            self.read_body()
            if total != "*" and have == int(total) and s.get("done"):
                return self.reply(200, s["done"])
            if total != "*" and have == int(total):
                # "bytes */total" with every byte there completes the upload.
                s["done"] = self.finish_upload(s["config"], bytes(s["data"]), reply=True)
                return None
            return self.range_reply(have)
        a, b = (int(x) for x in rng.split("-"))
        if ctl["complete_any_put"]:
            s["data"] += self.rfile.read(n)
            s["done"] = self.finish_upload(s["config"], bytes(s["data"]), reply=True)
            return None
        if a != have:
            self.read_body()
            return self.reply(400, error_body(400, "invalid", "chunk starts at %d, server has "
                                              "%d" % (a, have)))
        last = total != "*"
        if not last and (b - a + 1) % QUANTUM != 0:
            self.read_body()
            return self.reply(400, error_body(400, "invalid", "chunk not a multiple of 256 KiB"))
        if put_no in ctl["drop_put_at"]:
            # Read part of the body, keep what a server would have persisted
            # (whole 256 KiB units), then drop the connection without answer.
            part = self.rfile.read(n // 2)
            keep = len(part) // QUANTUM * QUANTUM if ctl["keep_quantum"] else len(part)
            s["data"] += part[:keep]
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        data = self.rfile.read(n)
        s["data"] += data
        if last and len(s["data"]) == int(total):
            s["done"] = self.finish_upload(s["config"], bytes(s["data"]), reply=True)
            return
        self.range_reply(len(s["data"]))

    def range_reply(self, have):
        hdrs = {"Range": "bytes=0-%d" % (have - 1)} if have else {}
        self.reply(308, None, hdrs)

    def finish_upload(self, cfg, data, reply=True):
        job_id = cfg["jobReference"]["jobId"]
        location = cfg["jobReference"].get("location")
        with lock:
            state["inserts"] += 1
            state["job_locations"].append(location)
            if job_id in jobs:
                return self.reply(409, error_body(409, "duplicate", "Already Exists: Job " +
                                                  job_id))
            if self.wrong_dataset_location(job_id, location):
                return None
            with open(os.path.join(DIR, "upload_%s.bin" % job_id), "wb") as f:
                f.write(data)
            rows = data.count(b"\n") if data[:2] != b"\x1f\x8b" else 0
            jobs[job_id] = job_resource(job_id, cfg["configuration"], "RUNNING", rows=rows,
                                        location=location or "US")
        self.reply(200, jobs[job_id])
        return jobs[job_id]


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
with open(PORT_FILE + ".tmp", "w") as f:
    f.write(str(server.server_port))
os.rename(PORT_FILE + ".tmp", PORT_FILE)
server.serve_forever()
