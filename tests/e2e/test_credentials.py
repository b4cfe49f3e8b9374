#!/usr/bin/env python3
"""End-to-end: `mbq check` and `mbq sync` with no key file, through each
Application Default Credentials source a user without service-account keys
has, against tests/standins/google_auth_standin.py (OAuth token endpoint,
STS, IAM Credentials, metadata server) and tests/standins/bq_front.py, the
HTTPS front of the emulator that lets through only requests with a token an
issuer confirms:

1. authorized_user from gcloud's well-known file ($CLOUDSDK_CONFIG), as
   `gcloud auth application-default login` leaves it;
2. external_account (a Kubernetes-style projected token file exchanged at
   STS) impersonating a service account, named by
   GOOGLE_APPLICATION_CREDENTIALS;
3. the metadata server (GCE_METADATA_HOST), as on GCE, GKE or Cloud Run.

Each: `mbq check` names the source and the principal and proves the
permissions (a dry-run query, a scratch table created and deleted), then a
sync whose target equals the source. Then: a principal the front refuses
jobs or tables gets a check failure naming the missing role, and no secret
(refresh token, client secret, subject token, any access token issued) is in
any output, the journal or `mbq-state inspect --json`."""
import json
import os
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mbqtest import (Workspace, assert_target_equals_source, check, check_eq,  # noqa: E402
                     check_no_sanitizer, expect_ok, mysql, private_emulator, require_services,
                     run, run_cases)
from test_production import Env  # noqa: E402  (CA, key pair, process helpers)

HERE = os.path.dirname(os.path.abspath(__file__))
STANDINS = os.path.join(HERE, "..", "standins")
USER = "ada@example.com"
CLIENT_ID = "764086051850-e2e.apps.googleusercontent.com"
CLIENT_SECRET = "GOCSPX-e2eClientSecret-7f3k"
REFRESH_TOKEN = "1//0e2e-Refresh-Token-q8w7e6r5t4"
SUBJECT = "eyJhbGciOiJSUzI1NiJ9.e2e-Subject-Token-k8s.sig"
TARGET = "mbq-sync@mbq-test.iam.gserviceaccount.com"
MD_EMAIL = "1234-compute@developer.gserviceaccount.com"
AUDIENCE = ("//iam.googleapis.com/projects/1234/locations/global/workloadIdentityPools/"
            "ci/providers/k8s")
COLS = ["id", "name", "updated_at"]


class CredEnv(Env):
    """Env's CA and token stand-in (service accounts), plus the Google auth
    stand-in, and the front trusting both."""

    def __init__(self):  # noqa: super().__init__ starts a front of its own
        import tempfile
        self.dir = tempfile.mkdtemp(prefix="mbq-cred-")
        self.procs = []
        self.make_certs()
        self.make_key()
        self.standin_port = self.start([os.path.join(STANDINS, "bq_standin.py"),
                                        os.path.join(self.dir, "standin.port"),
                                        os.path.join(self.dir, "standin"), self.pub,
                                        "unused@mbq-test.iam.gserviceaccount.com"],
                                       "standin.port", mkdir="standin")
        cfg = os.path.join(self.dir, "auth.json")
        with open(cfg, "w") as f:
            json.dump({"users": [{"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                                  "refresh_token": REFRESH_TOKEN, "email": USER}],
                       "subject_tokens": {SUBJECT: "principal://ci/k8s/mbq"},
                       "audience": AUDIENCE,
                       "impersonation": {TARGET: ["principal://ci/k8s/mbq"]},
                       "metadata": {"email": MD_EMAIL, "project": "mbq-test"}}, f)
        self.auth_port = self.start([os.path.join(STANDINS, "google_auth_standin.py"),
                                     os.path.join(self.dir, "auth.port"), cfg], "auth.port")
        self.auth = "http://127.0.0.1:%d" % self.auth_port
        self.front_log = os.path.join(self.dir, "front.jsonl")
        self.front_port = self.start([os.path.join(STANDINS, "bq_front.py"),
                                      os.path.join(self.dir, "front.port"), self.srv_cert,
                                      self.srv_key, os.environ["BIGQUERY_EMULATOR_HOST"],
                                      "127.0.0.1:%d" % self.standin_port, self.front_log,
                                      "127.0.0.1:%d" % self.auth_port], "front.port")
        self.endpoint = "https://127.0.0.1:%d" % self.front_port

    def auth_state(self):
        with urllib.request.urlopen(self.auth + "/_state", timeout=30) as r:
            return json.loads(r.read())

    def deny(self, rules):
        with open(self.front_log + ".deny", "w") as f:
            json.dump(rules, f)

    def write_file(self, name, obj):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(obj if isinstance(obj, str) else json.dumps(obj))
        os.chmod(path, 0o600)
        return path


E = None
WS = None
OUTPUTS = []  # every stdout/stderr of every run, for the secrets check


def write_config(extra=""):
    lines = [
        "tables:",
        "  - name: people",
        "    primary_key: id",
        "    updated_column: updated_at",
        "mysql:",
        "  host: 127.0.0.1",
        "  port: %s" % os.environ["MBQ_TEST_MYSQL_PORT"],
        "  user: %s" % os.environ["MBQ_TEST_MYSQL_RO_USER"],
        "  password: ${MBQ_E2E_MYSQL_PASSWORD}",
        "  database: %s" % WS.db,
        "bigquery:",
        "  project_id: %s" % os.environ.get("MBQ_TEST_BQ_PROJECT", "mbq-test"),
        "  dataset: %s" % WS.dataset,
        "  endpoint: %s" % E.endpoint,
        "  auth: adc",
        "  ca_file: %s" % E.ca,
        "  max_retries: 2",
        "  retry_max_elapsed: 20s",
    ] + ["  " + l for l in extra.splitlines() if l] + ["state:", "  dir: %s" % WS.state]
    with open(WS.config, "w") as f:
        f.write("\n".join(lines) + "\n")


def env(**extra):
    """No credentials anywhere but what the case gives."""
    e = WS.env()
    for k in ("GOOGLE_APPLICATION_CREDENTIALS", "GCE_METADATA_HOST", "GCE_METADATA_ROOT",
              "MBQ_IAM_CREDENTIALS_ENDPOINT"):
        e.pop(k, None)
    e["CLOUDSDK_CONFIG"] = os.path.join(E.dir, "no-gcloud")
    e["GCE_METADATA_IP"] = "127.0.0.1:9"  # nothing listens: off Google Cloud
    e.update(extra)
    return e


def mbq(args, e):
    r = run([os.environ["MBQ_BIN"]] + args + ["--config", WS.config], e, timeout=600)
    check_no_sanitizer(r)
    OUTPUTS.append(("mbq %s" % args[0], r.stdout + r.stderr))
    return r


def check_and_sync(e, kind, source_words, principal, new_rows):
    r = mbq(["check"], e)
    expect_ok(r, "mbq check (%s)" % kind)
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("ok    credentials:")]
    check(line and kind in line[0] and all(w in line[0] for w in source_words)
          and ("principal '%s'" % principal) in line[0],
          "check names %s, %s and %s: %r" % (kind, source_words, principal, r.stdout))
    check("may run jobs in project" in r.stdout, "dry-run proven: %r" % r.stdout)
    print("     (%s)" % line[0])
    mysql("INSERT INTO people VALUES %s" % ", ".join(
        "(%d, 'n%d', '2024-05-01 00:00:%02d')" % (i, i, i % 60) for i in new_rows), db=WS.db)
    r = mbq(["sync", "--log-level", "debug"], e)
    expect_ok(r, "mbq sync (%s)" % kind)
    n = assert_target_equals_source(WS, "people", COLS, "id", ["updated_at"])
    r = mbq(["check"], e)  # the dataset exists now: table write access proven
    expect_ok(r, "mbq check after sync (%s)" % kind)
    check("may create and delete tables in dataset '%s'" % WS.dataset in r.stdout,
          "write access proven: %r" % r.stdout)
    return n


# ---- cases -------------------------------------------------------------------

def test_authorized_user_from_gcloud_file_check_and_sync():
    mysql("CREATE TABLE people (id BIGINT NOT NULL PRIMARY KEY, name VARCHAR(40), "
          "updated_at DATETIME(6) NOT NULL)", db=WS.db)
    gdir = os.path.join(E.dir, "gcloud")
    os.makedirs(gdir, exist_ok=True)
    E.write_file("gcloud/application_default_credentials.json",
                 {"type": "authorized_user", "client_id": CLIENT_ID,
                  "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN,
                  "token_uri": E.auth + "/token"})
    write_config()
    before = E.auth_state()["tokens"].get("user", 0)
    n = check_and_sync(env(CLOUDSDK_CONFIG=gdir), "authorized_user", ["gcloud file"], USER,
                       range(1, 21))
    check_eq(n, 20, "rows after the sync")
    check(E.auth_state()["tokens"].get("user", 0) > before, "user tokens were issued")


def test_external_account_with_impersonation_check_and_sync():
    tok = E.write_file("k8s-token", SUBJECT + "\n")
    path = E.write_file("wif.json", {
        "type": "external_account", "audience": AUDIENCE,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": E.auth + "/v1/token",
        "service_account_impersonation_url":
            E.auth + "/v1/projects/-/serviceAccounts/%s:generateAccessToken" % TARGET,
        "credential_source": {"file": tok, "format": {"type": "text"}}})
    write_config()
    st = E.auth_state()["tokens"]
    n = check_and_sync(env(GOOGLE_APPLICATION_CREDENTIALS=path), "impersonated_service_account",
                       ["external_account", "GOOGLE_APPLICATION_CREDENTIALS", TARGET], TARGET,
                       range(21, 31))
    check_eq(n, 30, "rows after the sync")
    st2 = E.auth_state()["tokens"]
    check(st2.get("sts", 0) > st.get("sts", 0) and
          st2.get("impersonated", 0) > st.get("impersonated", 0),
          "STS and IAM Credentials both issued tokens: %s -> %s" % (st, st2))


def test_metadata_server_check_and_sync():
    write_config()
    host = "127.0.0.1:%d" % E.auth_port
    e = env(GCE_METADATA_HOST=host)
    e.pop("GCE_METADATA_IP")
    n = check_and_sync(e, "metadata", ["metadata server", host], MD_EMAIL, range(31, 41))
    check_eq(n, 40, "rows after the sync")


def test_impersonate_service_account_config_key():
    """bigquery.impersonate_service_account on top of the metadata server's
    identity (the IAM Credentials base from MBQ_IAM_CREDENTIALS_ENDPOINT):
    refused without Token Creator, with the role named."""
    write_config("impersonate_service_account: %s" % TARGET)
    host = "127.0.0.1:%d" % E.auth_port
    e = env(GCE_METADATA_HOST=host, MBQ_IAM_CREDENTIALS_ENDPOINT=E.auth)
    e.pop("GCE_METADATA_IP")
    r = mbq(["check"], e)
    check_eq(r.returncode, 77, "check exit code: %r" % r)
    check("roles/iam.serviceAccountTokenCreator" in r.stdout, "role named: %r" % r.stdout)


def test_missing_bigquery_roles_are_named():
    write_config()
    host = "127.0.0.1:%d" % E.auth_port
    e = env(GCE_METADATA_HOST=host)
    e.pop("GCE_METADATA_IP")
    E.deny({MD_EMAIL: ["jobs"]})
    r = mbq(["check"], e)
    check(r.returncode != 0 and "roles/bigquery.jobUser" in r.stdout,
          "no jobs: role named: %r" % r)
    E.deny({MD_EMAIL: ["tables"]})
    r = mbq(["check"], e)
    check(r.returncode != 0 and "roles/bigquery.dataEditor" in r.stdout,
          "no tables: role named: %r" % r)
    E.deny({})


def test_no_secret_in_any_output():
    st = E.auth_state()
    secrets = {"refresh token": REFRESH_TOKEN, "client secret": CLIENT_SECRET,
               "subject token": SUBJECT}
    for i, t in enumerate(st.get("issued", [])):
        secrets["access token %d" % i] = t
    check(len(secrets) > 6, "tokens were issued: %d" % len(secrets))
    texts = list(OUTPUTS)
    r = WS.state_cmd("inspect", "--json")
    texts.append(("inspect --json", r.stdout + r.stderr))
    r = WS.state_cmd("inspect")
    texts.append(("inspect", r.stdout + r.stderr))
    db = os.path.join(WS.state, "state.db")
    if os.path.exists(db):
        dump = subprocess.run(["sqlite3", db, ".dump"], capture_output=True, timeout=60)
        texts.append(("journal", dump.stdout.decode(errors="replace")))
    leaks = ["%s in %s" % (n, where) for where, text in texts for n, v in secrets.items()
             if v in text]
    check_eq(leaks, [], "secrets in outputs")
    print("     (%d outputs checked for %d secrets)" % (len(texts), len(secrets)))


if __name__ == "__main__":
    require_services()
    private_emulator()
    E = CredEnv()
    WS = Workspace("credentials")
    try:
        run_cases([
            test_authorized_user_from_gcloud_file_check_and_sync,
            test_external_account_with_impersonation_check_and_sync,
            test_metadata_server_check_and_sync,
            test_impersonate_service_account_config_key,
            test_missing_bigquery_roles_are_named,
            test_no_secret_in_any_output,
        ])
    finally:
        E.stop()
        WS.cleanup()
