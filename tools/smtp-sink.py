#!/usr/bin/python3
"""A real SMTP server for mbq's alert tests: accepts every message and writes
it to MAILDIR/<n>.eml, where tests read it back.

Runs on Debian's python3 with python3-aiosmtpd (tools/services.sh starts it).

- Each message is written atomically: first the envelope sidecar
  MAILDIR/<n>.json ({"mail_from", "rcpt_tos", "auth_user", "tls"}), then the
  message to a hidden temp name, fsync'd and renamed to <n>.eml. A reader that
  sees <n>.eml sees the whole message and its sidecar. The message also starts
  with X-Mbq-Mail-From / X-Mbq-Rcpt-To headers carrying the envelope.
- AUTH LOGIN and PLAIN accept any credentials, also without TLS (aiosmtpd
  refuses plain-text auth unless auth_require_tls=False). Auth is offered,
  never required, so a client that does not log in is accepted too.
- STARTTLS is offered when --cert/--key are given (a self-signed pair made by
  services.sh; tests trust it through MBQ_TEST_SMTP_CA).
- Failure injection for retry tests: while the file --fail-file exists
  (default: MAILDIR/../fail), DATA is answered with the SMTP reply written in
  it (e.g. "451 4.3.0 try again later"; empty file = that default).
"""
import argparse
import asyncio
import json
import os
import signal
import ssl
import sys
import threading

from aiosmtpd.smtp import SMTP, AuthResult


class Sink:
    def __init__(self, maildir, fail_file):
        self.maildir = maildir
        self.fail_file = fail_file
        self.lock = threading.Lock()
        # Continue numbering after what is already there (a restart keeps mail).
        self.n = 0
        for name in os.listdir(maildir):
            stem, ext = os.path.splitext(name)
            if ext == ".eml" and stem.isdigit():
                self.n = max(self.n, int(stem))

    def _write(self, path, data):
        tmp = os.path.join(self.maildir, ".%s.tmp" % os.path.basename(path))
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)

    async def handle_DATA(self, server, session, envelope):
        if os.path.exists(self.fail_file):
            with open(self.fail_file) as f:
                reply = f.read().strip()
            return reply or "451 4.3.0 mbq test sink: failure injected"
        with self.lock:
            self.n += 1
            n = self.n
        auth = session.auth_data
        if isinstance(auth, bytes):
            auth = auth.decode("utf-8", "replace")
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "auth_user": auth if isinstance(auth, str) else None,
            "tls": session.ssl is not None,
        }
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8")
        head = (
            "X-Mbq-Mail-From: %s\r\nX-Mbq-Rcpt-To: %s\r\n"
            % (envelope.mail_from, ", ".join(envelope.rcpt_tos))
        ).encode("utf-8")
        self._write(
            os.path.join(self.maildir, "%d.json" % n), json.dumps(meta).encode() + b"\n"
        )
        self._write(os.path.join(self.maildir, "%d.eml" % n), head + content)
        print("received message %d from %s to %s" % (n, meta["mail_from"], meta["rcpt_tos"]),
              flush=True)
        return "250 2.0.0 OK: queued as %d" % n


def accept_any(server, session, envelope, mechanism, auth_data):
    # LOGIN/PLAIN hand over a LoginPassword; record the login name only.
    login = getattr(auth_data, "login", None)
    if isinstance(login, bytes):
        login = login.decode("utf-8", "replace")
    return AuthResult(success=True, auth_data=login)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--maildir", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--fail-file")
    ap.add_argument("--ready-file", help="created once the server listens")
    args = ap.parse_args()

    os.makedirs(args.maildir, exist_ok=True)
    fail_file = args.fail_file or os.path.join(os.path.dirname(os.path.abspath(args.maildir)), "fail")
    sink = Sink(args.maildir, fail_file)

    tls = None
    if args.cert and args.key:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.cert, args.key)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    def factory():
        return SMTP(
            sink,
            hostname="mbq-test-smtp",
            tls_context=tls,
            require_starttls=False,
            auth_required=False,
            auth_require_tls=False,
            authenticator=accept_any,
            loop=loop,
        )

    try:
        server = loop.run_until_complete(loop.create_server(factory, args.host, args.port))
    except OSError as e:
        print("smtp-sink: cannot listen on %s:%d: %s" % (args.host, args.port, e),
              file=sys.stderr, flush=True)
        return 1
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("smtp-sink: listening on %s:%d, mail in %s" % (args.host, args.port, args.maildir),
          flush=True)
    if args.ready_file:
        with open(args.ready_file, "w") as f:
            f.write("%d\n" % args.port)
    loop.run_until_complete(stop.wait())
    server.close()
    loop.run_until_complete(server.wait_closed())
    loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
