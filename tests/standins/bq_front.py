#!/usr/bin/env python3
"""An HTTPS front for the local BigQuery emulator that makes it answer the
way BigQuery's front ends do where mbq's production settings depend on it:

- TLS with a certificate from a test CA (the client verifies it: mbq's
  `bigquery.ca_file`); HTTP/1.1 by ALPN (HTTP/2 is tested separately);
- `POST /token` is passed to the token stand-in (tests/standins/bq_standin.py,
  which verifies the RS256 JWT), so the key file's token_uri is HTTPS too;
- every other request needs `Authorization: Bearer T` with a token the
  stand-in (or another issuer given after LOG) issued (checked at its
  /tokeninfo); otherwise 401 with BigQuery's
  error body, and the emulator never sees the request;
- a principal listed in LOG.deny (a JSON file the test writes) is refused
  jobs.insert or tables.insert with 403 accessDenied, as IAM refuses a
  principal without the role;
- a POST upload with chunked transfer encoding (no Content-Length) is
  refused with 411 Length Required, as Google's front ends answer a media
  upload without a length; the emulator never sees it;
- every other request is forwarded whole to the emulator (plain HTTP, a
  fresh connection each, Content-Encoding and Content-Range kept) and its
  answer returned whole; a `Location` pointing at the emulator (resumable
  sessions) is rewritten to this front, as a reverse proxy does.

Each request is appended to LOG as one JSON line: method, path, qs (the
query string), job (a load's table and write disposition, or a query's
first word), token ("valid", "invalid", "none" or "-" for /token), content_encoding,
content_range, content_length, chunked, gzip (the body starts with the
gzip magic), status. The test reads the log to assert what was sent.

usage: bq_front.py PORT_FILE CERT KEY EMULATOR_HOST:PORT STANDIN_HOST:PORT LOG
                   [MORE_TOKEN_ISSUERS_HOST:PORT...]
Standard library only."""
import http.client
import json
import os
import ssl
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT_FILE, CERT, KEY, EMULATOR, STANDIN, LOG = sys.argv[1:7]
# Token issuers asked at /tokeninfo: the service-account stand-in first,
# then any given after LOG (tests/standins/google_auth_standin.py).
AUTH_STANDINS = [STANDIN] + sys.argv[7:]
log_lock = threading.Lock()
# Tokens the stand-in confirmed: one /tokeninfo round trip per token, not per
# request (a front caches its token checks too).
known_tokens = set()
principals = {}  # token -> the email its issuer named

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-connection", "host", "content-length"}

# The page Google's front ends send for a request body without a length.
LENGTH_REQUIRED = (b"<!DOCTYPE html>\n<html lang=en>\n<title>Error 411 (Length Required)!!1"
                   b"</title>\n<p><b>411.</b> <ins>That\xe2\x80\x99s an error.</ins>\n"
                   b"<p>POST requests require a <code>Content-length</code> header.  "
                   b"<ins>That\xe2\x80\x99s all we know.</ins>\n")


def record(entry):
    line = json.dumps(entry, sort_keys=True) + "\n"
    with log_lock:
        with open(LOG, "a") as f:
            f.write(line)


def job_of(body):
    """What a jobs.insert (or an upload's metadata) asks for: the load's
    table and write disposition, or a query's first word; None otherwise."""
    start = body.find(b"{", 0, 4096)
    if start < 0 or b'"configuration"' not in body[:65536]:
        return None
    try:
        meta, _ = json.JSONDecoder().raw_decode(body[start:start + 1048576].decode("utf-8",
                                                                                   "replace"))
        cfg = meta["configuration"]
    except (ValueError, KeyError, TypeError):
        return None
    if "load" in cfg:
        return {"load": cfg["load"]["destinationTable"]["tableId"],
                "write": cfg["load"].get("writeDisposition")}
    if "query" in cfg:
        return {"query": cfg["query"]["query"].split(None, 1)[0].upper()}
    return None


def token_valid(tok):
    if tok in known_tokens:
        return True
    ok = False
    for standin in AUTH_STANDINS:
        c = http.client.HTTPConnection(standin, timeout=30)
        try:
            c.request("GET", "/tokeninfo?" + urllib.parse.urlencode({"access_token": tok}))
            r = c.getresponse()
            ok = r.status == 200
            info = r.read()
        finally:
            c.close()
        if ok:
            try:
                principals[tok] = json.loads(info).get("email")
            except ValueError:
                pass
            break
    if ok:
        known_tokens.add(tok)
    return ok


def denied(principal, method, path):
    """What LOG.deny (JSON {principal: ["jobs", "tables"]}) takes from a
    principal, as IAM would without roles/bigquery.jobUser ("jobs":
    jobs.insert) or roles/bigquery.dataEditor ("tables": tables.insert)."""
    try:
        with open(LOG + ".deny") as f:
            rules = json.load(f).get(principal or "", [])
    except (OSError, ValueError):
        return None
    if "jobs" in rules and method == "POST" and path.endswith("/jobs"):
        return "bigquery.jobs.create"
    if "tables" in rules and method == "POST" and path.endswith("/tables"):
        return "bigquery.tables.create"
    return None


def bq_error(code, reason, message):
    return json.dumps({"error": {"code": code, "message": message, "status": reason.upper(),
                                 "errors": [{"reason": reason, "message": message,
                                             "domain": "global"}]}}).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def answer(self, status, body, headers):
        self.send_response(status)
        for k, v in headers:
            if k.lower() not in HOP_BY_HOP:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        """The whole body, from Content-Length or chunked transfer encoding."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size:
                    out += self.rfile.read(size)
                self.rfile.readline()  # the CRLF after each chunk (and after the last)
                if not size:
                    return bytes(out), True
        n = int(self.headers.get("Content-Length") or 0)
        return (self.rfile.read(n) if n else b""), False

    def forward(self, upstream, body):
        c = http.client.HTTPConnection(upstream, timeout=900)
        try:
            c.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            c.putheader("Host", upstream)
            for k, v in self.headers.items():
                if k.lower() not in HOP_BY_HOP:
                    c.putheader(k, v)
            c.putheader("Content-Length", str(len(body)))
            c.endheaders(body)
            r = c.getresponse()
            return r.status, r.getheaders(), r.read()
        finally:
            c.close()

    def handle_any(self):
        url = urllib.parse.urlparse(self.path)
        body, chunked = self.read_body()
        entry = {"method": self.command, "path": url.path, "qs": url.query, "job": job_of(body),
                 "content_encoding": self.headers.get("Content-Encoding"),
                 "content_range": self.headers.get("Content-Range"),
                 "content_length": len(body), "chunked": chunked,
                 "gzip": body[:2] == b"\x1f\x8b" or b"\r\n\r\n\x1f\x8b" in body[:4096]}
        if url.path == "/token":
            entry["token"] = "-"
            status, headers, data = self.forward(STANDIN, body)
            entry["status"] = status
            record(entry)
            return self.answer(status, data, headers)
        auth = self.headers.get("Authorization") or ""
        if not auth.startswith("Bearer "):
            entry["token"] = "none"
        else:
            entry["token"] = "valid" if token_valid(auth[7:]) else "invalid"
        if entry["token"] != "valid":
            entry["status"] = 401
            record(entry)
            return self.answer(401, bq_error(401, "unauthorized", "Request is missing required "
                                             "authentication credential."),
                               [("Content-Type", "application/json; charset=UTF-8"),
                                ("WWW-Authenticate", 'Bearer realm="https://accounts.google.com/"')])
        perm = denied(principals.get(auth[7:]), self.command, url.path)
        if perm:
            entry["status"] = 403
            record(entry)
            msg = ("Access Denied: %s: Permission %s denied (or it may not exist)."
                   % (url.path, perm))
            return self.answer(403, bq_error(403, "accessDenied", msg),
                               [("Content-Type", "application/json; charset=UTF-8")])
        if chunked and self.command == "POST" and url.path.startswith("/upload/"):
            entry["status"] = 411
            record(entry)
            return self.answer(411, LENGTH_REQUIRED, [("Content-Type", "text/html; charset=UTF-8")])
        status, headers, data = self.forward(EMULATOR, body)
        me = "https://127.0.0.1:%d" % self.server.server_port
        out = []
        for k, v in headers:
            if k.lower() == "location":
                loc = urllib.parse.urlparse(v)
                if loc.scheme in ("http", "https"):
                    v = me + v[len("%s://%s" % (loc.scheme, loc.netloc)):]
            out.append((k, v))
        entry["status"] = status
        record(entry)
        self.answer(status, data, out)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any


def main():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(CERT, KEY)
    ctx.set_alpn_protocols(["http/1.1"])
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    with open(PORT_FILE + ".tmp", "w") as f:
        f.write(str(server.server_port))
    os.rename(PORT_FILE + ".tmp", PORT_FILE)
    server.serve_forever()


if __name__ == "__main__":
    main()
