#!/usr/bin/env python3
"""A local stand-in for Google's credential endpoints, answering as Google's
documentation says, on one loopback HTTP port:

- `POST /token`: the OAuth 2.0 token endpoint (oauth2.googleapis.com/token)
  for the refresh-token grant (authorized_user credentials): client_id,
  client_secret and refresh_token must match; answers {access_token,
  expires_in, token_type, scope, id_token (a JWT whose claims name the
  user's email)}; a wrong or revoked refresh token gets 400
  {"error": "invalid_grant", "error_description": ...}.
- `POST /v1/token`: Security Token Service (sts.googleapis.com/v1/token),
  RFC 8693 token exchange: grant_type, audience, subject_token_type,
  requested_token_type, scope and a subject token it knows; answers
  {access_token, issued_token_type, token_type, expires_in}; otherwise 400
  invalid_grant / invalid_request.
- `POST /v1/projects/-/serviceAccounts/EMAIL:generateAccessToken`: IAM
  Credentials. Needs `Authorization: Bearer T` with a live token of a
  principal allowed to impersonate EMAIL (401 UNAUTHENTICATED for a missing,
  unknown or expired token, 403 PERMISSION_DENIED otherwise); answers
  {accessToken, expireTime (RFC 3339)} for the scope asked.
- The metadata server: `GET /` (the detection ping) and
  `GET /computeMetadata/v1/...` (instance/service-accounts/default/token,
  .../email, project/project-id). Every request needs `Metadata-Flavor:
  Google` (403 otherwise); every answer carries `Metadata-Flavor: Google`.
- `GET /tokeninfo?access_token=T`: 200 with the token's principal when the
  token is live, 400 otherwise (what bq_front.py asks before letting a
  request through to the emulator).

- `GET /bigquery/v2/...`: BigQuery as far as tokens go: 401 with
  BigQuery's error body for a missing or stale token, else 404 notFound.

Test controls: `POST /_control` with JSON {"lifetime_s": N (tokens issued
from now on), "lifetime_by_kind": {"user"|"sts"|"impersonated"|"metadata": N}, "metadata_delay_s": S (every metadata answer waits S),
"expire_all": true (every token issued so far is stale: 401 from here on)},
and `GET /_state`: requests per endpoint, tokens issued per kind, the
subject tokens and refresh tokens seen (the test greps outputs for them),
and errors.

usage: google_auth_standin.py PORT_FILE CONFIG.json
CONFIG: {"users": [{"client_id", "client_secret", "refresh_token",
"email"}], "subject_tokens": {TOKEN: "principal"}, "audience": "...",
"impersonation": {"TARGET_EMAIL": ["principal allowed", ...]},
"metadata": {"email": "...", "project": "..."}}
Standard library only."""
import base64
import json
import os
import secrets
import sys
import threading
import time
import urllib.parse
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT_FILE, CONFIG = sys.argv[1:3]
with open(CONFIG) as f:
    CFG = json.load(f)

lock = threading.Lock()
STATE = {"requests": {}, "tokens": {}, "errors": [], "lifetime_s": 3600, "lifetime_by_kind": {},
         "metadata_delay_s": 0.0, "scopes": []}
TOKENS = {}  # token -> {"principal", "expiry", "kind"}


def count(what):
    with lock:
        STATE["requests"][what] = STATE["requests"].get(what, 0) + 1


def issue(kind, principal):
    tok = "ya29.standin-%s-%s" % (kind, secrets.token_hex(16))
    with lock:
        life = STATE["lifetime_by_kind"].get(kind, STATE["lifetime_s"])
        TOKENS[tok] = {"principal": principal, "expiry": time.time() + life, "kind": kind}
        STATE.setdefault("issued", []).append(tok)
        STATE["tokens"][kind] = STATE["tokens"].get(kind, 0) + 1
    return tok, life


def live(tok):
    with lock:
        t = TOKENS.get(tok)
        return t if t and t["expiry"] > time.time() else None


def b64(d):
    return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()


def id_token(email, aud):
    """A JWT-shaped id_token; the signature is not meant to verify."""
    now = int(time.time())
    return "%s.%s.%s" % (b64({"alg": "RS256", "typ": "JWT"}),
                         b64({"iss": "https://accounts.google.com", "aud": aud, "email": email,
                              "email_verified": True, "iat": now, "exp": now + 3600}),
                         b64({"sig": secrets.token_hex(8)}))


def oauth_error(code, err, desc):
    return code, {"error": err, "error_description": desc}


def google_error(code, status, message):
    return code, {"error": {"code": code, "message": message, "status": status}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def send(self, status, body, extra=(), content_type="application/json; charset=utf-8"):
        data = body if isinstance(body, bytes) else (
            body.encode() if isinstance(body, str) else json.dumps(body).encode())
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    # ---- OAuth refresh-token grant ------------------------------------------
    def oauth_token(self, form):
        count("oauth")
        if form.get("grant_type") != "refresh_token":
            return oauth_error(400, "unsupported_grant_type", "Invalid grant_type: %s"
                               % form.get("grant_type"))
        for u in CFG.get("users", []):
            if form.get("client_id") == u["client_id"]:
                if form.get("client_secret") != u["client_secret"]:
                    return oauth_error(401, "invalid_client", "Unauthorized")
                if form.get("refresh_token") != u["refresh_token"] or u.get("revoked"):
                    return oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
                tok, life = issue("user", u["email"])
                return 200, {"access_token": tok, "expires_in": life, "token_type": "Bearer",
                             "scope": "openid https://www.googleapis.com/auth/userinfo.email "
                                      "https://www.googleapis.com/auth/cloud-platform",
                             "id_token": id_token(u["email"], u["client_id"])}
        return oauth_error(401, "invalid_client", "The OAuth client was not found.")

    # ---- STS token exchange -------------------------------------------------
    def sts_token(self, form):
        count("sts")
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange":
            return oauth_error(400, "unsupported_grant_type", "Invalid grant_type")
        if form.get("requested_token_type") != "urn:ietf:params:oauth:token-type:access_token":
            return oauth_error(400, "invalid_request", "Invalid requested_token_type")
        if not form.get("subject_token_type") or not form.get("scope"):
            return oauth_error(400, "invalid_request", "subject_token_type and scope required")
        if form.get("audience") != CFG.get("audience"):
            return oauth_error(400, "invalid_target", "The target service indicated by the "
                               "\"audience\" parameters is invalid.")
        principal = CFG.get("subject_tokens", {}).get(form.get("subject_token"))
        with lock:
            STATE.setdefault("subjects_seen", []).append(form.get("subject_token"))
        if not principal:
            return oauth_error(400, "invalid_grant", "The given subject token is invalid.")
        tok, life = issue("sts", principal)
        return 200, {"access_token": tok, "expires_in": life, "token_type": "Bearer",
                     "issued_token_type": "urn:ietf:params:oauth:token-type:access_token"}

    # ---- IAM Credentials ----------------------------------------------------
    def generate(self, email, body):
        count("iam")
        auth = self.headers.get("Authorization") or ""
        src = live(auth[7:]) if auth.startswith("Bearer ") else None
        if not src:
            return google_error(401, "UNAUTHENTICATED",
                                "Request had invalid authentication credentials. Expected OAuth "
                                "2 access token, login cookie or other valid authentication "
                                "credential.")
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        # Each link of the delegation chain needs Token Creator on the next
        # (IAM Credentials docs, "delegated requests").
        chain = [src["principal"]] + [d.split("/")[-1] for d in req.get("delegates", [])]
        links = list(zip(chain, chain[1:] + [email]))
        if any(a not in CFG.get("impersonation", {}).get(b, []) for a, b in links):
            return google_error(403, "PERMISSION_DENIED",
                                "Permission 'iam.serviceAccounts.getAccessToken' denied on "
                                "resource (or it may not exist).")
        if not req.get("scope"):
            return google_error(400, "INVALID_ARGUMENT", "Scope required.")
        with lock:
            STATE["scopes"].append(req["scope"])
        tok, life = issue("impersonated", email)
        exp = datetime.fromtimestamp(time.time() + life, timezone.utc)
        return 200, {"accessToken": tok,
                     "expireTime": exp.strftime("%Y-%m-%dT%H:%M:%S.") +
                     "%06dZ" % exp.microsecond}

    # ---- metadata server ----------------------------------------------------
    def metadata(self, path):
        count("metadata" + ("_ping" if path == "/" else ""))
        with lock:
            delay = STATE["metadata_delay_s"]
        if delay:
            time.sleep(delay)
        flavor = [("Metadata-Flavor", "Google")]
        if self.headers.get("Metadata-Flavor") != "Google":
            return self.send(403, "Missing Metadata-Flavor:Google header.", flavor, "text/html")
        md = CFG.get("metadata", {})
        base = "/computeMetadata/v1/"
        if path == "/":
            return self.send(200, "computeMetadata/\n", flavor, "application/text")
        if path == base + "instance/service-accounts/default/token":
            tok, life = issue("metadata", md["email"])
            return self.send(200, {"access_token": tok, "expires_in": life,
                                   "token_type": "Bearer"}, flavor)
        if path == base + "instance/service-accounts/default/email":
            return self.send(200, md["email"], flavor, "application/text")
        if path == base + "project/project-id":
            return self.send(200, md["project"], flavor, "application/text")
        return self.send(404, "Not found", flavor, "text/html")

    def do_POST(self):
        url = urllib.parse.urlparse(self.path)
        body = self.body()
        if url.path == "/_control":
            ctl = json.loads(body)
            with lock:
                for k in ("lifetime_s", "metadata_delay_s", "lifetime_by_kind"):
                    if k in ctl:
                        STATE[k] = ctl[k]
                if ctl.get("expire_all"):
                    for t in TOKENS.values():
                        t["expiry"] = 0
                for u in CFG.get("users", []):
                    if ctl.get("revoke") == u["email"]:
                        u["revoked"] = True
            return self.send(200, {})
        form = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace")))
        if url.path == "/token":
            status, out = self.oauth_token(form)
        elif url.path == "/v1/token":
            status, out = self.sts_token(form)
        elif url.path.startswith("/v1/projects/-/serviceAccounts/") and \
                url.path.endswith(":generateAccessToken"):
            email = urllib.parse.unquote(url.path[len("/v1/projects/-/serviceAccounts/"):
                                                  -len(":generateAccessToken")])
            status, out = self.generate(email, body)
        else:
            status, out = 404, {"error": "not found"}
        if status != 200:
            with lock:
                STATE["errors"].append({"path": url.path, "status": status, "answer": out})
        self.send(status, out)

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        if url.path == "/_state":
            with lock:
                return self.send(200, STATE)
        if url.path == "/tokeninfo":
            q = dict(urllib.parse.parse_qsl(url.query))
            t = live(q.get("access_token", ""))
            if not t:
                return self.send(400, {"error": "invalid_token",
                                       "error_description": "Invalid Value"})
            return self.send(200, {"email": t["principal"], "kind": t["kind"],
                                   "expires_in": int(t["expiry"] - time.time())})
        if url.path == "/" or url.path.startswith("/computeMetadata/"):
            return self.metadata(url.path)
        if url.path.startswith("/bigquery/v2/"):
            # BigQuery's front end as far as tokens go: 401 with BigQuery's
            # error body for a missing or stale token; past it, nothing
            # exists here (404 notFound).
            count("bigquery")
            auth = self.headers.get("Authorization") or ""
            t = live(auth[7:]) if auth.startswith("Bearer ") else None
            with lock:
                STATE.setdefault("bigquery_quota_projects", []).append(
                    self.headers.get("x-goog-user-project"))
            if not t:
                msg = "Request had invalid authentication credentials."
                return self.send(401, {"error": {"code": 401, "message": msg,
                                                 "errors": [{"reason": "authError",
                                                             "message": msg}],
                                                 "status": "UNAUTHENTICATED"}},
                                 [("WWW-Authenticate", 'Bearer realm="https://accounts.google.com/"')])
            msg = "Not found: %s" % url.path
            return self.send(404, {"error": {"code": 404, "message": msg,
                                             "errors": [{"reason": "notFound", "message": msg}],
                                             "status": "NOT_FOUND"}})
        self.send(404, {"error": "not found"})


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with open(PORT_FILE + ".tmp", "w") as f:
        f.write(str(server.server_port))
    os.rename(PORT_FILE + ".tmp", PORT_FILE)
    server.serve_forever()


if __name__ == "__main__":
    main()
