#!/usr/bin/env python3
"""End-to-end on production settings: `mbq sync` as a user runs it against
BigQuery, through tests/standins/bq_front.py in front of the emulator.

What production runs, and what this test runs:
- gzip staging files and streamed first loads (`compression` and
  `stream_load` at their defaults);
- resumable uploads in chunks of BigQuery's granularity, 256 KiB
  (`upload_chunk_size: 256KiB`). `multipart_max` is scaled down by the same
  factor (256 KiB instead of 5 MiB) so that files of test size take the path
  that files of production size take, several chunks each;
- OAuth with a service-account key file (`auth: service_account`) whose
  token_uri is the front, which passes it to the token stand-in
  (tests/standins/bq_standin.py verifies the RS256 JWT); the front refuses
  every BigQuery request without a token the stand-in issued;
- HTTPS with certificate verification on, against a certificate of a test
  CA that mbq trusts through `ca_file` (and only through it: without it the
  run is refused).

The SQL semantics come from the emulator (patched where it differed from
BigQuery: README, emulator divergences). The cases run in order on one
table: a first sync, an incremental sync of updates and inserts, and a
schema change (a column added in MariaDB, then rows updated and inserted),
each compared with MariaDB row by row, with the cursor committed."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mbqtest import (Workspace, assert_target_equals_source, bq_field_types, bq_query, check,
                     check_clean_failure, check_eq, check_no_sanitizer, expect_ok, mysql,
                     private_emulator, require_services, run_cases)

HERE = os.path.dirname(os.path.abspath(__file__))
STANDINS = os.path.join(HERE, "..", "standins")
EMAIL = "mbq-prod@mbq-test.iam.gserviceaccount.com"
QUANTUM = 256 * 1024
FIRST_ROWS = 1200
NEW_ROWS = 30

# Each row carries 2 KiB of hex (SHA-512 digests): about 1 KiB after gzip, so
# the first load is several 256 KiB chunks. The incremental runs change few
# rows: the emulator's MERGE time grows with target rows x staged rows
# (README, divergence 11; 613 x 2,500 of these rows took 160 s).
DDL = """
CREATE TABLE events (
  id BIGINT NOT NULL PRIMARY KEY,
  kind VARCHAR(20) NOT NULL,
  amount DECIMAL(12,2),
  body TEXT,
  updated_at DATETIME(6) NOT NULL
);
"""
COLS = ["id", "kind", "amount", "body", "updated_at"]
BODY = "CONCAT(%s)" % ", ".join("SHA2(CONCAT('%s', {n}, '{salt}'), 512)" % c
                                 for c in "abcdefghijklmnop")


class Env:
    """The test CA, the token stand-in, the front, the key file, the config."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="mbq-prod-")
        self.procs = []
        self.make_certs()
        self.make_key()
        self.standin_port = self.start([os.path.join(STANDINS, "bq_standin.py"),
                                        os.path.join(self.dir, "standin.port"),
                                        os.path.join(self.dir, "standin"), self.pub, EMAIL],
                                       "standin.port", mkdir="standin")
        self.front_log = os.path.join(self.dir, "front.jsonl")
        self.front_port = self.start([os.path.join(STANDINS, "bq_front.py"),
                                      os.path.join(self.dir, "front.port"), self.srv_cert,
                                      self.srv_key, os.environ["BIGQUERY_EMULATOR_HOST"],
                                      "127.0.0.1:%d" % self.standin_port, self.front_log],
                                     "front.port")
        self.endpoint = "https://127.0.0.1:%d" % self.front_port
        self.token_uri = self.endpoint + "/token"
        self.control({"token_aud": self.token_uri})
        with open(self.key_file, "w") as f:
            json.dump({"type": "service_account", "project_id": "mbq-test",
                       "private_key_id": "test-key-id", "private_key": self.pem,
                       "client_email": EMAIL, "client_id": "1", "token_uri": self.token_uri}, f)
        os.chmod(self.key_file, 0o600)

    def openssl(self, *args):
        subprocess.run(["openssl"] + list(args), check=True, capture_output=True, timeout=120,
                       cwd=self.dir)

    def make_certs(self):
        """A CA, and a server certificate it signs for 127.0.0.1."""
        self.ca = os.path.join(self.dir, "ca.pem")
        self.srv_key = os.path.join(self.dir, "srv.key")
        self.srv_cert = os.path.join(self.dir, "srv.pem")
        self.openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                     "-subj", "/CN=mbq test CA", "-addext", "basicConstraints=critical,CA:TRUE",
                     "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                     "-keyout", "ca.key", "-out", self.ca)
        self.openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
                     "-keyout", self.srv_key, "-out", "srv.csr")
        with open(os.path.join(self.dir, "srv.ext"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                    "extendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
        self.openssl("x509", "-req", "-in", "srv.csr", "-CA", self.ca, "-CAkey", "ca.key",
                     "-CAcreateserial", "-days", "2", "-extfile", "srv.ext", "-out", self.srv_cert)

    def make_key(self):
        rsa = os.path.join(self.dir, "sa.pem")
        self.pub = os.path.join(self.dir, "sa.pub.pem")
        self.openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                     "-out", rsa)
        self.openssl("pkey", "-in", rsa, "-pubout", "-out", self.pub)
        with open(rsa) as f:
            self.pem = f.read()
        self.key_file = os.path.join(self.dir, "sa-key.json")

    def start(self, argv, port_file, mkdir=None):
        if mkdir:
            os.makedirs(os.path.join(self.dir, mkdir), exist_ok=True)
        log = open(os.path.join(self.dir, os.path.basename(argv[0]) + ".log"), "ab")
        p = subprocess.Popen([sys.executable] + argv, stdout=log, stderr=log,
                             stdin=subprocess.DEVNULL)
        self.procs.append(p)
        path = os.path.join(self.dir, port_file)
        for _ in range(600):
            if os.path.exists(path):
                with open(path) as f:
                    return int(f.read())
            check(p.poll() is None, "%s exited at start" % argv[0])
            time.sleep(0.05)
        raise RuntimeError("%s did not start" % argv[0])

    def control(self, ctl):
        req = urllib.request.Request("http://127.0.0.1:%d/_control" % self.standin_port,
                                     data=json.dumps(ctl).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            r.read()

    def standin_state(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/_state" % self.standin_port,
                                    timeout=30) as r:
            return json.loads(r.read())

    def requests(self):
        """The front's log: one dict per request, in order."""
        if not os.path.exists(self.front_log):
            return []
        with open(self.front_log) as f:
            return [json.loads(line) for line in f if line.strip()]

    def write_config(self, ws, ca_file=True):
        lines = [
            "tables:",
            "  - name: events",
            "    primary_key: id",
            "    updated_column: updated_at",
            "mysql:",
            "  host: 127.0.0.1",
            "  port: %s" % os.environ["MBQ_TEST_MYSQL_PORT"],
            "  user: %s" % os.environ["MBQ_TEST_MYSQL_RO_USER"],
            "  password: ${MBQ_E2E_MYSQL_PASSWORD}",
            "  database: %s" % ws.db,
            "bigquery:",
            "  project_id: %s" % os.environ.get("MBQ_TEST_BQ_PROJECT", "mbq-test"),
            "  dataset: %s" % ws.dataset,
            "  endpoint: %s" % self.endpoint,
            "  auth: service_account",
            "  credentials: %s" % self.key_file,
            "  upload_chunk_size: 256KiB",
            "  multipart_max: 256KiB",
            "  max_retries: 2",
            "  retry_max_elapsed: 20s",
        ]
        if ca_file:
            lines.append("  ca_file: %s" % self.ca)
        lines += ["state:", "  dir: %s" % ws.state]
        with open(ws.config, "w") as f:
            f.write("\n".join(lines) + "\n")

    def stop(self):
        for p in self.procs:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


E = None
WS = None
MARK = [0]  # index into the front's log where the current case's requests start


def sync(**env):
    e = WS.env(**env)
    e.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    MARK[0] = len(E.requests())
    r = WS.sync(env=e, timeout=600)
    check_no_sanitizer(r)
    return r


def since_mark():
    return E.requests()[MARK[0]:]


def cursor():
    return WS.inspect("events")["tables"][0]["cursor"]


def source_max_cursor():
    return mysql("SELECT DATE_FORMAT(MAX(updated_at), '%Y-%m-%d %H:%i:%s.%f') FROM events",
                 db=WS.db)[0][0]


def uploads(reqs):
    """The upload requests among `reqs`, grouped per load: each multipart
    POST alone, each resumable session (its POST and its PUTs) together."""
    out, cur = [], None
    for r in reqs:
        if not r["path"].startswith("/upload/"):
            continue
        if r["method"] == "POST" and "uploadType=multipart" in r["qs"]:
            out.append([r])
            cur = None
        elif r["method"] == "POST" and "uploadType=resumable" in r["qs"]:
            cur = [r]
            out.append(cur)
        elif r["method"] == "PUT" and cur is not None:
            cur.append(r)
    return out


def check_gzip_uploads_with_length(reqs, what):
    """Every upload that reached BigQuery sent gzip data with a length
    (multipart with Content-Length, or resumable chunks)."""
    ok = [u for u in uploads(reqs) if u[-1]["status"] in (200, 201)]
    check(ok, "%s: a load reached BigQuery: %s" % (what, uploads(reqs)))
    for u in ok:
        data = u if u[0]["qs"].startswith("uploadType=multipart") else u[1:]
        check(data and all(not p["chunked"] for p in data), "%s: sent with a length: %s"
              % (what, u))
        check(data[0]["gzip"], "%s: the data is gzip: %s" % (what, u[:2]))
    return len(ok)


def check_chunked_gzip_load(reqs, min_chunks, what):
    """Of the uploads in `reqs`, the ones that reached BigQuery: resumable
    sessions whose data went in 256 KiB chunks (all but the last a multiple
    of it), gzip, at least `min_chunks` of them in one session."""
    loads = [u for u in uploads(reqs) if u[-1]["status"] in (200, 201)]
    check(loads, "%s: a load reached BigQuery: %s" % (what, uploads(reqs)))
    best = 0
    for u in loads:
        puts = [p for p in u[1:] if p["content_length"] > 0]
        check(u[0]["method"] == "POST" and "uploadType=resumable" in u[0]["qs"],
              "%s: a resumable session, not %s" % (what, u[0]))
        check(puts and puts[0]["gzip"], "%s: the data is gzip: %s" % (what, u[:2]))
        for p in puts[:-1]:
            check_eq(p["content_length"] % QUANTUM, 0, "%s: a chunk of 256 KiB multiples (%s)"
                     % (what, p["content_range"]))
            check(p["content_range"].endswith("/*"), "%s: chunk before the last: %s"
                  % (what, p["content_range"]))
        check(not puts[-1]["content_range"].endswith("/*"), "%s: the last chunk names the total"
              % what)
        best = max(best, len(puts))
    check(best >= min_chunks, "%s: %d chunks in the largest session, expected at least %d"
          % (what, best, min_chunks))
    return best


def insert_rows(lo, hi, salt, stamp, tag=False):
    cols = "id, kind, amount, body, updated_at" + (", tag" if tag else "")
    vals = ("seq, ELT(1 + seq %% 3, 'click', 'view', 'caf\u00e9'), seq + 0.25, %s, "
            "'%s' + INTERVAL seq MICROSECOND" % (BODY.format(n="seq", salt=salt), stamp))
    if tag:
        vals += ", CONCAT('new-', seq)"
    mysql("INSERT INTO events (%s) SELECT %s FROM seq_%d_to_%d" % (cols, vals, lo, hi), db=WS.db)


# ---- cases -------------------------------------------------------------------

def test_certificate_of_an_unknown_ca_is_refused():
    """Verification is on: without `ca_file` the test CA is not trusted, the
    token request fails on the certificate, nothing reaches BigQuery."""
    E.write_config(WS, ca_file=False)
    r = sync()
    check_clean_failure(r, (1, 69, 77), ["certificate"], "sync without ca_file")
    check_eq(since_mark(), [], "no request got past the TLS handshake")
    check_eq(E.standin_state()["tokens"], 0, "no token issued")
    E.write_config(WS)


def test_first_sync_gzip_chunked_oauth_https():
    mysql(DDL, db=WS.db)
    insert_rows(1, FIRST_ROWS, "v1", "2024-03-01 00:00:00")
    r = sync()
    expect_ok(r, "first sync")
    check_eq(assert_target_equals_source(WS, "events", COLS, "id", ["updated_at"]), FIRST_ROWS,
             "rows after the first sync")
    check_eq(cursor(), source_max_cursor(), "cursor committed at the source's high-water mark")
    n = check_chunked_gzip_load(since_mark(), 4, "first sync")
    print("     (first sync: %d rows, %d chunks of 256 KiB)" % (FIRST_ROWS, n))


def test_incremental_sync_merges_updates_and_inserts():
    mysql("UPDATE events SET kind = 'upd', body = %s, updated_at = '2024-03-02 00:00:00' + "
          "INTERVAL id MICROSECOND WHERE id %% 40 = 0" % BODY.format(n="id", salt="v2"), db=WS.db)
    insert_rows(FIRST_ROWS + 1, FIRST_ROWS + NEW_ROWS, "v2", "2024-03-02 00:00:00")
    r = sync()
    expect_ok(r, "incremental sync")
    total = FIRST_ROWS + NEW_ROWS
    check_eq(assert_target_equals_source(WS, "events", COLS, "id", ["updated_at"]), total,
             "rows after the incremental sync")
    check_eq(bq_query("SELECT COUNT(*) FROM `%s.events` WHERE kind = 'upd'" % WS.dataset),
             [[str(FIRST_ROWS // 40)]], "updated rows")
    check_eq(cursor(), source_max_cursor(), "cursor committed")
    jobs = [q["job"] for q in since_mark() if q["job"]]
    check_eq([j for j in jobs if j.get("load") == "events"], [], "no load into the target")
    check_eq([j["query"] for j in jobs if "query" in j].count("MERGE"), 1, "one MERGE: %s" % jobs)
    check_gzip_uploads_with_length(since_mark(), "incremental sync")


def test_added_column_is_filled_for_new_and_updated_rows():
    mysql("ALTER TABLE events ADD COLUMN tag VARCHAR(20) NULL AFTER kind;"
          "UPDATE events SET tag = CONCAT('upd-', id), updated_at = '2024-03-03 00:00:00' + "
          "INTERVAL id MICROSECOND WHERE id % 50 = 1", db=WS.db)
    insert_rows(FIRST_ROWS + NEW_ROWS + 1, FIRST_ROWS + 2 * NEW_ROWS, "v3", "2024-03-03 00:00:00",
                tag=True)
    r = sync()
    expect_ok(r, "sync after ADD COLUMN")
    check_eq(bq_field_types(WS, "events").get("tag"), "STRING", "the column was added")
    check_gzip_uploads_with_length(since_mark(), "sync after ADD COLUMN")
    total = FIRST_ROWS + 2 * NEW_ROWS
    check_eq(assert_target_equals_source(WS, "events", COLS[:2] + ["tag"] + COLS[2:], "id",
                                         ["updated_at"]), total, "rows after the schema change")
    counts = bq_query("SELECT COUNTIF(tag IS NULL), COUNTIF(tag LIKE 'upd-%%'), "
                      "COUNTIF(tag LIKE 'new-%%') FROM `%s.events`" % WS.dataset)
    updated = len([i for i in range(1, FIRST_ROWS + NEW_ROWS + 1) if i % 50 == 1])
    check_eq(counts, [[str(total - updated - NEW_ROWS), str(updated), str(NEW_ROWS)]],
             "NULL in old rows, filled in updated and new rows")
    check_eq(cursor(), source_max_cursor(), "cursor committed")


def test_every_bigquery_request_carried_a_valid_token():
    reqs = E.requests()
    bq = [r for r in reqs if r["token"] != "-"]
    check(len(bq) > 20, "requests went through the front: %d" % len(bq))
    bad = [r for r in bq if r["token"] != "valid" or r["status"] == 401]
    check_eq(bad, [], "requests without a valid Bearer token")
    st = E.standin_state()
    check_eq(st["token_errors"], [], "every JWT verified (RS256, iss, aud, scope, iat, exp)")
    tokens = [r for r in reqs if r["token"] == "-"]
    check(st["tokens"] >= 1 and all(r["status"] == 200 for r in tokens),
          "tokens issued over HTTPS: %s" % tokens)
    print("     (%d BigQuery requests, %d tokens issued)" % (len(bq), st["tokens"]))


def test_no_upload_was_refused_for_want_of_a_length():
    """BigQuery's front ends refuse a media upload without Content-Length
    (411): a streamed load must go by a resumable session (or with its
    length), never relying on the fallback from the staged file."""
    refused = [r for r in E.requests() if r["status"] == 411]
    check_eq(refused, [], "uploads refused with 411 Length Required")


if __name__ == "__main__":
    require_services()
    private_emulator()  # a fresh emulator of its own (mbqtest.py says why)
    E = Env()
    WS = Workspace("production")
    try:
        E.write_config(WS)
        run_cases([
            test_certificate_of_an_unknown_ca_is_refused,
            test_first_sync_gzip_chunked_oauth_https,
            test_incremental_sync_merges_updates_and_inserts,
            test_added_column_is_filled_for_new_and_updated_rows,
            test_every_bigquery_request_carried_a_valid_token,
            test_no_upload_was_refused_for_want_of_a_length,
        ])
    finally:
        E.stop()
        WS.cleanup()
