#!/usr/bin/env python3
"""A stand-in for the Telegram Bot API for mbq's alert tests (stdlib only).

Listens on 127.0.0.1 (port 0 = any free port, written to --port-file once
listening) and appends each request it receives to --log as one JSON line:
{"method", "path", "headers", "body"}. Answers by the list --responses, one
status per request in order, the last repeated (default "200"):
  200  -> {"ok": true, "result": {"message_id": N}}
  else -> {"ok": false, "error_code": S, "description": "..."}; with
          --echo-path the description quotes the request path (which holds
          the token), as a careless proxy might: mbq must mask it.
"""
import argparse
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--responses", default="200")
    ap.add_argument("--echo-path", action="store_true")
    args = ap.parse_args()
    statuses = [int(s) for s in args.responses.split(",")]
    lock = threading.Lock()
    state = {"n": 0}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *a):  # keep the test's stderr clean
            pass

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8", "replace")
            with lock:
                i = state["n"]
                state["n"] += 1
                with open(args.log, "a") as f:
                    f.write(json.dumps({"method": "POST", "path": self.path,
                                        "headers": dict(self.headers.items()),
                                        "body": body}) + "\n")
                    f.flush()
                    os.fsync(f.fileno())
            status = statuses[min(i, len(statuses) - 1)]
            if status == 200:
                out = {"ok": True, "result": {"message_id": i + 1}}
            else:
                desc = "Internal Server Error" if status >= 500 else "Bad Request"
                if args.echo_path:
                    desc += ": " + self.path
                out = {"ok": False, "error_code": status, "description": desc}
            data = json.dumps(out).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST

    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(tmp, args.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
