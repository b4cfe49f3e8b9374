#!/usr/bin/env python3
"""Security (issue 8, label `reliability`): secrets never leak, TLS is
verified by default.

1. A full sync with known secret values (a dedicated SELECT-only MySQL user
   with a distinctive password, an SMTP username + password, a Telegram bot
   token, a table that fails so the error paths run, a Telegram reply that
   quotes the token back) and every output grepped for each secret: stdout and
   stderr at info, at debug and as JSON logs, the journal (`sqlite3 .dump`),
   `mbq-state inspect` as text and JSON, the metrics file, the mails received
   and the Telegram stand-in's requests (the token is in the request path by
   the Bot API's design: it must be there and nowhere else).
2. A service-account key whose token endpoint is closed: the error names the
   key file and never shows the private key's body. Application Default
   Credentials (authorized_user, external_account): refresh tokens, client
   secrets, subject tokens and access tokens never shown either.
3. TLS: a self-signed HTTPS BigQuery endpoint is refused by default and
   accepted, with a warning, only with `bigquery.tls_insecure: true`; MySQL
   with `ssl` against a server without TLS fails instead of falling back to
   plain text.
"""
import glob
import http.server
import json
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mbqtest import (Workspace, check, check_eq, check_no_sanitizer, expect_ok, mysql,
                     require_services, run, run_cases, private_emulator)

HERE = os.path.dirname(os.path.abspath(__file__))
TAG = secrets.token_hex(4)
# Distinctive values: none can occur in an output by chance.
MYSQL_USER = "mbq_sec_%s" % TAG
MYSQL_PW = "MyPw-Sec%s-q7Zr" % TAG
WRONG_MYSQL_PW = "WrongPw-Sec%s-k2Vb" % TAG
SMTP_USER = "smtp-user-%s" % TAG
SMTP_PW = "SmtpPw-Sec%s-x9Lm" % TAG
BOT_TOKEN = "424242:BotTok-Sec%s-Hn3Pw" % TAG

ITEMS = ("CREATE TABLE items (id BIGINT NOT NULL PRIMARY KEY, val VARCHAR(40), "
         "updated_at DATETIME(6) NOT NULL);"
         "INSERT INTO items VALUES (1,'a','2024-01-01 00:00:01'),(2,'b','2024-01-01 00:00:02');")


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def find_leaks(text, where, names=None):
    """Every (secret name, where) whose value occurs in `text`."""
    names = names or {"mysql password": MYSQL_PW, "wrong mysql password": WRONG_MYSQL_PW,
                      "smtp password": SMTP_PW, "bot token": BOT_TOKEN,
                      # the part after the bot id: a token cut at ':' is still a leak
                      "bot token secret part": BOT_TOKEN.split(":", 1)[1]}
    return ["%s in %s" % (n, where) for n, v in names.items() if v in text]


def start_telegram(responses, echo_path=False):
    d = tempfile.mkdtemp(prefix="mbq-tg-sec-")
    port_file, log = os.path.join(d, "port"), os.path.join(d, "requests.jsonl")
    args = [sys.executable, os.path.join(HERE, "..", "standins", "telegram_standin.py"),
            "--port-file", port_file, "--log", log, "--responses", responses]
    if echo_path:
        args.append("--echo-path")
    p = subprocess.Popen(args)
    for _ in range(200):
        if os.path.exists(port_file) and open(port_file).read().strip():
            break
        time.sleep(0.05)
    return p, "http://127.0.0.1:%s" % open(port_file).read().strip(), log, d


def make_secret_ws(tg_url):
    ws = Workspace("security")
    mysql(ITEMS, db=ws.db)
    # A user of this test only, allowed SELECT on its database and nothing else:
    # the least privilege the README states must be enough for a full sync.
    mysql("DROP USER IF EXISTS '{u}'@'%'; DROP USER IF EXISTS '{u}'@'localhost';"
          "CREATE USER '{u}'@'%' IDENTIFIED BY '{p}'; CREATE USER '{u}'@'localhost' IDENTIFIED BY '{p}';"
          "GRANT SELECT ON `{db}`.* TO '{u}'@'%'; GRANT SELECT ON `{db}`.* TO '{u}'@'localhost';"
          .format(u=MYSQL_USER, p=MYSQL_PW, db=ws.db))
    grants = "\n".join(r[0] for r in mysql("SHOW GRANTS FOR '%s'@'%%'" % MYSQL_USER))
    check("GRANT SELECT ON `%s`.*" % ws.db in grants and "ALL PRIVILEGES" not in grants,
          "the test user has SELECT only: %s" % grants)
    ws.rcpt = "sec-%s@alerts.test" % TAG
    extra = ["alerting:", "  email:",
             "    host: 127.0.0.1", "    port: %s" % os.environ["MBQ_TEST_SMTP_PORT"],
             "    tls: none", "    username: %s" % SMTP_USER,
             # literal in the file (not ${VAR}): a secret written in the config must be masked too
             "    password: %s" % SMTP_PW,
             "    from: mbq@alerts.test", "    to: [%s]" % ws.rcpt, "    on: always",
             "  telegram:", "    bot_token: ${MBQ_SEC_BOT_TOKEN}", "    chat_id: \"-100777\"",
             "    api_url: %s" % tg_url, "    on: always"]
    ws.write_config([{"name": "items", "primary_key": "id", "updated_column": "updated_at"},
                     # does not exist in MySQL: the failure path, its alert and its journal rows
                     {"name": "ghost", "primary_key": "id", "updated_column": "updated_at"}],
                    extra="\n".join(extra))
    with open(ws.config) as f:
        text = f.read()
    text = text.replace("  user: %s\n" % os.environ["MBQ_TEST_MYSQL_RO_USER"], "  user: %s\n" % MYSQL_USER, 1)
    with open(ws.config, "w") as f:
        f.write(text)
    return ws


def sec_env(ws, **extra):
    e = dict(MBQ_E2E_MYSQL_PASSWORD=MYSQL_PW, MBQ_SEC_BOT_TOKEN=BOT_TOKEN, MBQ_NOTIFY_BACKOFF_MS=50)
    e.update(extra)
    return ws.env(**e)


def test_no_secret_in_any_output_of_a_full_sync():
    tg, tg_url, tg_log, tg_dir = start_telegram("500,200", echo_path=True)
    ws = make_secret_ws(tg_url)
    leaks, outputs = [], []
    try:
        metrics = os.path.join(ws.dir, "metrics.prom")
        runs = [("sync (info, text)", []),
                ("sync (debug, text)", ["--log-level", "debug"]),
                ("sync (debug, json)", ["--log-level", "debug", "--log-format", "json"])]
        for i, (what, args) in enumerate(runs):
            if i:
                mysql("INSERT INTO items VALUES (%d,'n%d',NOW(6))" % (10 + i, i), db=ws.db)
            r = ws.sync("--metrics-file", metrics, *args, env=sec_env(ws))
            check_no_sanitizer(r, what)
            check_eq(r.returncode, 1, "%s: items syncs, ghost fails: %r" % (what, r))
            check("ghost" in r.stderr, "%s: the failing table is reported: %r" % (what, r))
            outputs += [(what + " stdout", r.stdout), (what + " stderr", r.stderr)]
            outputs.append((what + " metrics file", open(metrics).read()))
        check('"level"' in outputs[-2][1] or '"msg"' in outputs[-2][1],
              "the JSON run logged JSON: %s" % outputs[-2][1][:300])
        # The MySQL password was used (items arrived) and then a wrong one, through `check`.
        rows = mysql("SELECT COUNT(*) FROM items", db=ws.db)[0][0]
        got = os.environ.get("MBQ_TEST_BQ_PROJECT", "mbq-test")
        from mbqtest import bq_query
        check_eq(bq_query("SELECT COUNT(*) FROM `%s.items`" % ws.dataset)[0][0], rows,
                 "the SELECT-only user synced every row (project %s)" % got)
        for cmd in (["check"], ["sync", "--log-level", "debug"]):
            r = run([os.environ["MBQ_BIN"]] + cmd + ["--config", ws.config],
                    sec_env(ws, MBQ_E2E_MYSQL_PASSWORD=WRONG_MYSQL_PW), timeout=120)
            check_no_sanitizer(r, "%s with a wrong password" % cmd[0])
            check(r.returncode != 0, "a wrong MySQL password fails `mbq %s`: %r" % (cmd[0], r))
            check("access denied" in (r.stdout + r.stderr).lower(), "says access denied: %r" % r)
            outputs += [("%s, wrong password stdout" % cmd[0], r.stdout),
                        ("%s, wrong password stderr" % cmd[0], r.stderr)]
        # The journal, every row of it.
        dump = subprocess.run(["sqlite3", "-readonly", os.path.join(ws.state, "state.db"), ".dump"],
                              capture_output=True, timeout=60)
        check_eq(dump.returncode, 0, "sqlite3 .dump: %s" % dump.stderr)
        check(b"ghost" in dump.stdout, "the journal holds the failure")
        outputs.append(("journal dump", dump.stdout.decode("utf-8", "replace")))
        for args in (["inspect"], ["inspect", "--json"], ["inspect", "ghost"], ["inspect", "--json", "items"]):
            r = ws.state_cmd(*args, env=sec_env(ws))
            expect_ok(r, "mbq-state %s" % " ".join(args))
            outputs += [("mbq-state %s stdout" % " ".join(args), r.stdout),
                        ("mbq-state %s stderr" % " ".join(args), r.stderr)]
        # The mails the sink received: whole messages, headers included.
        mails = []
        for meta_path in glob.glob(os.path.join(os.environ["MBQ_TEST_SMTP_MAILDIR"], "*.json")):
            meta = json.load(open(meta_path))
            if ws.rcpt in meta["rcpt_tos"]:
                mails.append(meta)
                outputs.append(("mail %s" % os.path.basename(meta_path),
                                open(meta_path[:-5] + ".eml", "rb").read().decode("utf-8", "replace")))
                outputs.append(("mail meta %s" % os.path.basename(meta_path), json.dumps(meta)))
        # one per run (on: always), the wrong-password sync's failure mail included
        check_eq(len(mails), len(runs) + 1, "one mail per sync run")
        check_eq(mails[0].get("auth_user"), SMTP_USER, "mbq logged in to the SMTP server")
        # Telegram: the token is the request path's second segment and only there.
        reqs = [json.loads(l) for l in open(tg_log)]
        check(len(reqs) >= len(runs) + 1, "telegram retried after the 500 and sent each run: %d" % len(reqs))
        for i, q in enumerate(reqs):
            check_eq(q["path"], "/bot%s/sendMessage" % BOT_TOKEN, "request %d path" % i)
            rest = dict(q)
            del rest["path"]
            outputs.append(("telegram request %d (without its path)" % i, json.dumps(rest)))
        # The grep itself works: the config file holds the literal SMTP password.
        check_eq(find_leaks(open(ws.config).read(), "config"), ["smtp password in config"],
                 "control: the secret grep finds a secret")
        for what, text in outputs:
            leaks += find_leaks(text, what)
        check(not leaks, "secrets leaked: %s" % "; ".join(leaks))
    finally:
        tg.terminate()
        tg.wait(10)
        shutil.rmtree(tg_dir, ignore_errors=True)
        mysql("DROP USER IF EXISTS '{u}'@'%'; DROP USER IF EXISTS '{u}'@'localhost';".format(u=MYSQL_USER))
    ws.cleanup()


def make_key(d):
    """An RSA key made by openssl and a service-account JSON holding it, whose
    token_uri is a closed local port."""
    pem_path = os.path.join(d, "rsa.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", pem_path], check=True, capture_output=True, timeout=60)
    pem = open(pem_path).read()
    key_path = os.path.join(d, "sa-key-%s.json" % TAG)
    with open(key_path, "w") as f:
        json.dump({"type": "service_account", "project_id": "mbq-test", "private_key_id": "kid-%s" % TAG,
                   "private_key": pem, "client_email": "mbq@mbq-test.iam.gserviceaccount.com",
                   "client_id": "1", "token_uri": "http://127.0.0.1:%d/token" % closed_port()}, f)
    os.chmod(key_path, 0o600)
    body = [l for l in pem.splitlines() if l and not l.startswith("-----")]
    return key_path, body


def test_service_account_key_error_names_the_file_not_the_key():
    d = tempfile.mkdtemp(prefix="mbq-sec-key-")
    key_path, body = make_key(d)
    ws = Workspace("security_key")
    mysql(ITEMS, db=ws.db)
    ws.write_config([{"name": "items", "primary_key": "id", "updated_column": "updated_at"}],
                    extra_bigquery="credentials: %s" % key_path)
    with open(ws.config) as f:
        text = f.read()
    # No endpoint override: mbq must authenticate, as against BigQuery itself.
    text = text.replace("  endpoint: ${MBQ_E2E_BQ_ENDPOINT}\n", "", 1)
    with open(ws.config, "w") as f:
        f.write(text)
    env = ws.env()
    env.pop("BIGQUERY_EMULATOR_HOST", None)
    env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    for what, args in (("check", ["check", "--config", ws.config]),
                       ("sync", ["sync", "--config", ws.config, "--log-level", "debug"]),
                       ("sync json", ["sync", "--config", ws.config, "--log-level", "debug",
                                      "--log-format", "json"])):
        r = run([os.environ["MBQ_BIN"]] + args, env, timeout=120)
        check_no_sanitizer(r, what)
        out = r.stdout + r.stderr
        check(r.returncode != 0, "%s: auth against a closed token endpoint fails: %r" % (what, r))
        check(key_path in out or os.path.basename(key_path) in out,
              "%s: the error names the key file %s: %r" % (what, key_path, r))
        check("token" in out.lower(), "%s: the error says it is the token request: %r" % (what, r))
        for i, line in enumerate(body):
            # Any 16 consecutive characters of the key's base64 body.
            for j in range(0, max(1, len(line) - 16), 8):
                check(line[j:j + 16] not in out, "%s: private key body (line %d) in output: %r" % (what, i, r))
        check("PRIVATE KEY" not in out, "%s: PEM armour in output: %r" % (what, r))
    ws.cleanup()
    shutil.rmtree(d, ignore_errors=True)


class TokenStandin:
    """Google's OAuth token endpoint as its documentation describes it: a
    POST of a signed JWT assertion answered with an access token. Records
    the assertions it received."""

    def __init__(self, token):
        owner = self
        self.assertions = []

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(n).decode())
                owner.assertions += form.get("assertion", [])
                body = json.dumps({"access_token": token, "expires_in": 3599,
                                   "token_type": "Bearer"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d/token" % self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


def test_access_token_and_signed_assertion_never_logged():
    """The token endpoint answers, BigQuery itself is out of reach (no
    endpoint override, no network here): the error paths that follow a
    successful token fetch, at debug level and as JSON, never show the
    access token, the signed JWT or the private key."""
    access_token = "ya29.AccTok-Sec%s-%s" % (TAG, secrets.token_hex(8))
    d = tempfile.mkdtemp(prefix="mbq-sec-tok-")
    tok = TokenStandin(access_token)
    key_path, body = make_key(d)
    key = json.load(open(key_path))
    key["token_uri"] = tok.url
    with open(key_path, "w") as f:
        json.dump(key, f)
    ws = Workspace("security_token")
    mysql(ITEMS, db=ws.db)
    try:
        ws.write_config([{"name": "items", "primary_key": "id", "updated_column": "updated_at"}],
                        extra_bigquery="credentials: %s\nrequest_timeout: 5s" % key_path)
        with open(ws.config) as f:
            text = f.read()
        text = text.replace("  endpoint: ${MBQ_E2E_BQ_ENDPOINT}\n", "", 1)
        with open(ws.config, "w") as f:
            f.write(text)
        env = ws.env()
        env.pop("BIGQUERY_EMULATOR_HOST", None)
        env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
        outs = []
        for what, args in (("check", ["check", "--config", ws.config]),
                           ("sync debug", ["sync", "--config", ws.config, "--log-level", "debug"]),
                           ("sync json", ["sync", "--config", ws.config, "--log-level", "debug",
                                          "--log-format", "json"])):
            r = run([os.environ["MBQ_BIN"]] + args, env, timeout=180)
            check_no_sanitizer(r, what)
            check(r.returncode != 0, "%s: BigQuery is out of reach here: %r" % (what, r))
            check("bigquery.googleapis.com" in r.stdout + r.stderr,
                  "%s: failed at a BigQuery request, after the token: %r" % (what, r))
            outs.append((what, r.stdout + r.stderr))
        check(tok.assertions, "mbq fetched an access token (the token endpoint was called)")
        r = ws.state_cmd("inspect")
        outs.append(("inspect", r.stdout + r.stderr))
        if os.path.exists(os.path.join(ws.state, "state.db")):
            dump = subprocess.run(["sqlite3", "-readonly", os.path.join(ws.state, "state.db"), ".dump"],
                                  capture_output=True, timeout=60)
            outs.append(("journal dump", dump.stdout.decode("utf-8", "replace")))
        jwt_sig = {a.rsplit(".", 1)[-1] for a in tok.assertions}
        for what, out in outs:
            check(access_token not in out and access_token.split(".", 1)[1] not in out,
                  "%s: the access token leaked: %s" % (what, out[-2000:]))
            for sig in jwt_sig:
                check(sig[:24] not in out, "%s: the signed JWT leaked: %s" % (what, out[-2000:]))
            for line in body:
                check(line[:24] not in out, "%s: the private key leaked" % what)
    finally:
        tok.stop()
    ws.cleanup()
    shutil.rmtree(d, ignore_errors=True)


# ---- TLS -------------------------------------------------------------------

def self_signed(d, cn="localhost"):
    key, cert = os.path.join(d, "key.pem"), os.path.join(d, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=%s" % cn, "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True, timeout=60)
    return key, cert


class HttpsToEmulator:
    """An HTTPS server with a self-signed certificate that passes every
    request on to the emulator (plain HTTP) and counts them."""

    def __init__(self, d):
        key, cert = self_signed(d)
        upstream = "http://" + os.environ["BIGQUERY_EMULATOR_HOST"]
        owner = self
        self.requests = 0

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _any(self):
                owner.requests += 1
                n = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(n) if n else None
                hdrs = {k: v for k, v in self.headers.items()
                        if k.lower() not in ("host", "content-length", "connection", "transfer-encoding")}
                req = urllib.request.Request(upstream + self.path, data=data, method=self.command, headers=hdrs)
                try:
                    with urllib.request.urlopen(req, timeout=120) as r:
                        status, body, ctype = r.status, r.read(), r.headers.get("Content-Type", "")
                except urllib.error.HTTPError as e:
                    status, body, ctype = e.code, e.read(), e.headers.get("Content-Type", "")
                self.send_response(status)
                self.send_header("Content-Type", ctype or "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.srv.socket = ctx.wrap_socket(self.srv.socket, server_side=True)
        self.url = "https://127.0.0.1:%d" % self.srv.server_address[1]
        self.t = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.t.start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


def test_https_endpoint_certificate_is_verified_unless_tls_insecure():
    d = tempfile.mkdtemp(prefix="mbq-sec-tls-")
    srv = HttpsToEmulator(d)
    ws = Workspace("security_tls")
    mysql(ITEMS, db=ws.db)
    try:
        ws.write_config([{"name": "items", "primary_key": "id", "updated_column": "updated_at"}])
        env = ws.env(MBQ_E2E_BQ_ENDPOINT=srv.url)
        r = run([os.environ["MBQ_BIN"], "check", "--config", ws.config], env, timeout=120)
        check_no_sanitizer(r, "check (verify)")
        out = (r.stdout + r.stderr).lower()
        check(r.returncode != 0, "a self-signed certificate is refused by default: %r" % r)
        check("certificate" in out, "the error says it is the certificate: %r" % r)
        check_eq(srv.requests, 0, "no request got through an unverified TLS connection")
        check("verification is off" not in out, "no insecure warning by default: %r" % r)

        ws.write_config([{"name": "items", "primary_key": "id", "updated_column": "updated_at"}],
                        extra_bigquery="tls_insecure: true")
        r = run([os.environ["MBQ_BIN"], "check", "--config", ws.config], env, timeout=120)
        check_no_sanitizer(r, "check (tls_insecure)")
        check_eq(r.returncode, 0, "with tls_insecure the check passes through TLS: %r" % r)
        check(srv.requests > 0, "requests reached the HTTPS server")
        check(re.search(r"warn.*certificate verification is off.*%s" % re.escape(srv.url), r.stderr, re.I),
              "a warning names the endpoint: %r" % r)
        r = ws.sync(env=env)
        check_no_sanitizer(r, "sync (tls_insecure)")
        expect_ok(r, "sync through the insecure HTTPS endpoint")
        check("certificate verification is off" in r.stderr.lower(), "sync warns too: %r" % r)
    finally:
        srv.stop()
    ws.cleanup()
    shutil.rmtree(d, ignore_errors=True)


def test_mysql_tls_never_falls_back_to_plain_text():
    """The harness's MariaDB has no TLS. `ssl` with a CA that signed nothing
    of the server's, and `ssl: {mode: required}`, must both fail with a TLS
    error, never connect in plain text."""
    d = tempfile.mkdtemp(prefix="mbq-sec-mytls-")
    _, other_ca = self_signed(d, cn="not-the-server-ca")
    have_ssl = mysql("SELECT @@have_ssl")[0][0]
    ws = Workspace("security_mytls")
    mysql(ITEMS, db=ws.db)
    try:
        for what, ssl_yaml in (("verify_identity with a foreign CA",
                                "  ssl:\n    mode: verify_identity\n    ca: %s\n" % other_ca),
                               ("required", "  ssl:\n    mode: required\n"),
                               ("ssl: true", "  ssl: true\n")):
            ws.write_config([{"name": "items", "primary_key": "id", "updated_column": "updated_at"}])
            with open(ws.config) as f:
                text = f.read()
            text = text.replace("  database: %s\n" % ws.db, "  database: %s\n%s" % (ws.db, ssl_yaml), 1)
            with open(ws.config, "w") as f:
                f.write(text)
            for cmd in ("check", "sync"):
                r = run([os.environ["MBQ_BIN"], cmd, "--config", ws.config], ws.env(), timeout=120)
                check_no_sanitizer(r, what)
                out = (r.stdout + r.stderr).lower()
                check(r.returncode != 0, "%s / %s: the server has no TLS (have_ssl=%s), must fail: %r"
                      % (what, cmd, have_ssl, r))
                check("ssl" in out or "tls" in out, "%s / %s: the error says TLS: %r" % (what, cmd, r))
        from mbqtest import bq_table
        check(bq_table(ws.dataset, "items") is None, "nothing was synced over plain text")
    finally:
        shutil.rmtree(d, ignore_errors=True)
    ws.cleanup()


def start_google_auth(d, cfg):
    """tests/standins/google_auth_standin.py with `cfg`; (process, base URL)."""
    path = os.path.join(d, "auth.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    port_file = os.path.join(d, "auth.port")
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "..", "standins",
                                                       "google_auth_standin.py"), port_file, path],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        if os.path.exists(port_file):
            with open(port_file) as f:
                return p, "http://127.0.0.1:%s" % f.read()
        time.sleep(0.05)
    p.kill()
    raise RuntimeError("google_auth_standin.py did not start")


def test_adc_secrets_never_in_outputs_or_journal():
    """Application Default Credentials: a refused refresh token, a refused
    subject token, and an accepted exchange followed by an unreachable
    BigQuery (the error paths after a token fetch). The refresh token, the
    client secret, the subject tokens and every access token issued are in
    no output (check, sync at debug, as JSON), nor in the journal or
    `mbq-state inspect --json`."""
    d = tempfile.mkdtemp(prefix="mbq-sec-adc-")
    refresh = "1//0Refresh-Sec%s-%s" % (TAG, secrets.token_hex(6))
    client_secret = "GOCSPX-Sec%s-%s" % (TAG, secrets.token_hex(6))
    subject_ok = "eyJ.SubjOk-Sec%s-%s.sig" % (TAG, secrets.token_hex(6))
    subject_bad = "eyJ.SubjBad-Sec%s-%s.sig" % (TAG, secrets.token_hex(6))
    aud = "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/x"
    proc, base = start_google_auth(d, {
        "users": [{"client_id": "cid-sec", "client_secret": client_secret,
                   "refresh_token": "another-refresh-token", "email": "u@example.com"}],
        "subject_tokens": {subject_ok: "principal://sec"}, "audience": aud})
    ws = Workspace("security_adc")
    mysql(ITEMS, db=ws.db)
    try:
        def cred_file(name, obj):
            path = os.path.join(d, name)
            with open(path, "w") as f:
                json.dump(obj, f)
            os.chmod(path, 0o600)
            return path

        def subject_file(name, token):
            path = os.path.join(d, name)
            with open(path, "w") as f:
                f.write(token)
            return path

        cases = [
            ("refused refresh token", cred_file("user.json", {
                "type": "authorized_user", "client_id": "cid-sec",
                "client_secret": client_secret, "refresh_token": refresh,
                "token_uri": base + "/token"})),
            ("refused subject token", cred_file("wif-bad.json", {
                "type": "external_account", "audience": aud,
                "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
                "token_url": base + "/v1/token",
                "credential_source": {"file": subject_file("bad", subject_bad)}})),
            ("BigQuery unreachable after the exchange", cred_file("wif-ok.json", {
                "type": "external_account", "audience": aud,
                "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
                "token_url": base + "/v1/token",
                "credential_source": {"file": subject_file("ok", subject_ok)}})),
        ]
        outputs = []
        for what, path in cases:
            ws.write_config([{"name": "items", "primary_key": "id",
                              "updated_column": "updated_at"}],
                            extra_bigquery="credentials: %s\nrequest_timeout: 5s" % path)
            with open(ws.config) as f:
                text = f.read()
            text = text.replace("  endpoint: ${MBQ_E2E_BQ_ENDPOINT}\n", "", 1)
            with open(ws.config, "w") as f:
                f.write(text)
            env = ws.env()
            env.pop("BIGQUERY_EMULATOR_HOST", None)
            env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
            for args in (["check"], ["sync", "--log-level", "debug"],
                         ["sync", "--log-level", "debug", "--log-format", "json"]):
                r = run([os.environ["MBQ_BIN"], args[0], "--config", ws.config] + args[1:], env,
                        timeout=180)
                check_no_sanitizer(r, what)
                check(r.returncode != 0, "%s: %s fails: %r" % (what, args[0], r))
                outputs.append(("%s: %s" % (what, " ".join(args)), r.stdout + r.stderr))
        r = ws.state_cmd("inspect", "--json")
        outputs.append(("inspect --json", r.stdout + r.stderr))
        db = os.path.join(ws.state, "state.db")
        if os.path.exists(db):
            dump = subprocess.run(["sqlite3", db, ".dump"], capture_output=True, timeout=60)
            outputs.append(("journal", dump.stdout.decode(errors="replace")))
        with urllib.request.urlopen(base + "/_state", timeout=30) as resp:
            issued = json.loads(resp.read()).get("issued", [])
        check(issued, "the exchange that should succeed issued a token")
        names = {"refresh token": refresh, "client secret": client_secret,
                 "subject token": subject_ok, "refused subject token": subject_bad}
        names.update({"access token %d" % i: t for i, t in enumerate(issued)})
        leaks = [leak for where, text in outputs for leak in find_leaks(text, where, names)]
        check_eq(leaks, [], "secrets in outputs")
        refused = [t for w, t in outputs if w.startswith("refused refresh token")]
        check(all("invalid_grant" in t for t in refused), "the refusal is quoted: %s" % refused)
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(d, ignore_errors=True)
        ws.cleanup()


if __name__ == "__main__":
    require_services()
    private_emulator()  # a fresh emulator of its own (mbqtest.py says why)
    run_cases([test_no_secret_in_any_output_of_a_full_sync,
               test_service_account_key_error_names_the_file_not_the_key,
               test_access_token_and_signed_assertion_never_logged,
               test_adc_secrets_never_in_outputs_or_journal,
               test_https_endpoint_certificate_is_verified_unless_tls_insecure,
               test_mysql_tls_never_falls_back_to_plain_text])
