#!/usr/bin/env python3
"""Self-test of tools/faultproxy.py against tiny local servers: each mode does
what the reliability tests will rely on.

- pass: bytes go through both ways unchanged (an echo server)
- refuse: the client sees the connection closed with no data
- cut_after_bytes (s2c): the client gets exactly N bytes, then EOF
- cut_after_bytes (c2s): the server gets exactly N bytes, then EOF
- stall: the client gets nothing (a read times out) and the upstream server
  never sees a connection
- delay_ms: the response arrives no sooner than the delay
- complete: an HTTP server sees a client that left mid-wait as still there
  (the request completes); without complete it sees the disconnect
- the control file is re-read per connection
"""
import json
import os
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROXY = os.path.join(HERE, "..", "tools", "faultproxy.py")

failures = 0


def check(cond, what):
    global failures
    if cond:
        print("ok   " + what, flush=True)
    else:
        failures += 1
        print("FAIL " + what, flush=True)


class EchoServer:
    """Echoes every byte back; records how many bytes and connections it saw."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.received = {}  # connection number (1-based) -> bytes it sent
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            c, _ = self.sock.accept()
            self.connections += 1
            threading.Thread(target=self.one, args=(c, self.connections), daemon=True).start()

    def one(self, c, number):
        got = b""
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                got += d
                c.sendall(d)
        except OSError:
            pass
        self.received[number] = got
        c.close()


class SlowHttpServer:
    """Answers each request after 500 ms; records whether the client was still
    connected when the answer was due (as Go's net/http notices a client that
    went away and cancels the request's context)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.outcomes = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            c, _ = self.sock.accept()
            threading.Thread(target=self.one, args=(c,), daemon=True).start()

    def one(self, c):
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = c.recv(65536)
            if not d:
                c.close()
                return
            buf += d
        head, _, body = buf.partition(b"\r\n\r\n")
        n = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                n = int(line.split(b":")[1])
        while len(body) < n:
            body += c.recv(65536)
        time.sleep(0.5)
        # A peer that closed shows as readable with EOF.
        c.setblocking(False)
        try:
            gone = c.recv(1) == b""
        except BlockingIOError:
            gone = False
        c.setblocking(True)
        if gone:
            self.outcomes.append("cancelled")
            c.close()
            return
        payload = b'{"done":true}'
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                  % (len(payload), payload))
        self.outcomes.append("completed")
        time.sleep(0.2)
        c.close()


def start_proxy(target_port, control):
    p = subprocess.Popen(
        [sys.executable, PROXY, "--listen", "0", "--target", "127.0.0.1:%d" % target_port,
         "--control", control],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    line = p.stdout.readline()
    if not line.strip().isdigit():
        p.kill()
        raise SystemExit("faultproxy did not print its port: %r %s" % (line, p.stderr.read()))
    return p, int(line)


def set_control(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.rename(tmp, path)


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    return s


def recv_all(s, timeout=3.0):
    s.settimeout(timeout)
    got = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                return got, "eof"
            got += d
    except socket.timeout:
        return got, "timeout"
    except ConnectionResetError:
        return got, "reset"


def main():
    tmpdir = os.environ.get("TMPDIR", "/tmp")
    control = os.path.join(tmpdir, "faultproxy-test-%d.json" % os.getpid())
    echo = EchoServer()
    procs = []
    try:
        p, port = start_proxy(echo.port, control)
        procs.append(p)

        # No control file at all = pass.
        s = connect(port)
        s.sendall(b"hello proxy")
        s.shutdown(socket.SHUT_WR)
        got, how = recv_all(s)
        check(got == b"hello proxy", "pass: echo comes back unchanged (no control file)")
        s.close()

        set_control(control, {"mode": "pass"})
        s = connect(port)
        data = os.urandom(300000)
        threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR)),
                         daemon=True).start()
        got, how = recv_all(s)
        check(got == data, "pass: 300 kB of random bytes both ways, unchanged")
        s.close()

        set_control(control, {"mode": "refuse"})
        before = echo.connections
        s = connect(port)
        got, how = recv_all(s)
        check(got == b"" and how in ("eof", "reset"), "refuse: closed at once, no data")
        s.close()
        time.sleep(0.1)
        check(echo.connections == before, "refuse: nothing reaches the server")

        set_control(control, {"mode": "pass", "cut_after_bytes": 100})
        s = connect(port)
        s.sendall(b"x" * 1000)
        got, how = recv_all(s)
        check(len(got) == 100 and how in ("eof", "reset"),
              "cut s2c: client gets exactly 100 bytes then EOF (got %d, %s)" % (len(got), how))
        s.close()

        set_control(control, {"mode": "pass", "cut_after_bytes": 10, "cut_direction": "c2s"})
        # The connection is identified by number: an earlier connection's
        # handler may still be finishing when this one's records its bytes.
        number = echo.connections + 1
        s = connect(port)
        s.sendall(b"0123456789abcdefghij")
        got, how = recv_all(s)
        s.close()
        for _ in range(100):
            if number in echo.received:
                break
            time.sleep(0.05)
        check(echo.received.get(number) == b"0123456789",
              "cut c2s: server gets exactly 10 bytes then EOF (got %r)" % echo.received.get(number))

        set_control(control, {"mode": "stall"})
        before = echo.connections
        s = connect(port)
        s.sendall(b"anyone there?")
        got, how = recv_all(s, timeout=1.0)
        check(got == b"" and how == "timeout", "stall: no answer, the connection stays open")
        s.close()
        check(echo.connections == before, "stall: nothing reaches the server")

        set_control(control, {"mode": "pass", "delay_ms": 400})
        s = connect(port)
        t0 = time.monotonic()
        s.sendall(b"ping")
        s.settimeout(5)
        got = s.recv(100)
        waited = time.monotonic() - t0
        check(got == b"ping" and waited >= 0.35, "delay_ms: response held ~400 ms (%.0f ms)" % (waited * 1000))
        s.close()

        # complete: a slow HTTP server behind the proxy; the client sends a
        # whole request and leaves after 100 ms.
        http = SlowHttpServer()
        p2, port2 = start_proxy(http.port, control)
        procs.append(p2)
        req = b'POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 7\r\n\r\n{"a":1}'
        for flag, want in ((False, "cancelled"), (True, "completed")):
            set_control(control, {"mode": "pass", "complete": flag})
            n0 = len(http.outcomes)
            s = connect(port2)
            s.sendall(req)
            time.sleep(0.1)
            s.close()
            for _ in range(60):
                if len(http.outcomes) > n0:
                    break
                time.sleep(0.05)
            got = http.outcomes[n0] if len(http.outcomes) > n0 else "nothing"
            check(got == want, "complete=%s: server sees the request %s (saw: %s)" % (flag, want, got))

        # complete with the response cut: the server still completes.
        set_control(control, {"mode": "pass", "complete": True, "cut_after_bytes": 5})
        n0 = len(http.outcomes)
        s = connect(port2)
        s.sendall(req)
        got, how = recv_all(s, timeout=3.0)
        s.close()
        time.sleep(0.3)
        check(len(got) == 5 and http.outcomes[n0:] == ["completed"],
              "complete + cut s2c: client gets 5 bytes, server completes")
    finally:
        for p in procs:
            p.terminate()
            try:
                _, err = p.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                _, err = p.communicate()
            sys.stderr.write(err)
        for f in (control, control + ".tmp"):
            if os.path.exists(f):
                os.unlink(f)
    print("%d failed" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
