#!/usr/bin/env python3
"""A small TCP fault proxy for mbq's reliability tests (Python stdlib only).

    faultproxy.py --listen PORT --target HOST:PORT --control FILE [--host 127.0.0.1]

Listens on 127.0.0.1:PORT (0 = a free port) and prints the port it listens on,
alone on one line of stdout, once it accepts connections. Every connection is
forwarded to HOST:PORT according to the JSON control FILE, which is re-read
for each new connection (a missing or empty file means {"mode": "pass"}), so
a test changes the fault between requests by rewriting the file (write a temp
file and rename it, so the proxy never reads half of it):

    {"mode": "pass"}            forward both ways (the default)
    {"mode": "refuse"}          accept and close at once, nothing sent upstream
    {"mode": "stall"}           accept, read and drop what the client sends,
                                never connect upstream, never answer
    "delay_ms": N               hold the first byte of the response for N ms
                                (the request is forwarded at once)
    "cut_after_bytes": N,       forward N bytes in that direction, then close
    "cut_direction": "s2c"      both sides ("c2s": client->server, the server
                                gets a truncated request; "s2c", the default:
                                the client gets a truncated response)
    "complete": true            the client going away does not reach the
                                server (see below)

Why "complete": real BigQuery finishes a job it has accepted whatever the
client does, but goccy/bigquery-emulator cancels the statement when its client
disconnects, and a create or drop cut off that way can leave a table it can no
longer query or drop (README, "Emulator divergences", point 10). With
complete, when the client disconnects (killed, timed out) or the proxy cuts
the response (s2c), the proxy keeps the upstream connection open and reads
until every request it has forwarded whole has had its whole response
(HTTP/1.1 framing: Content-Length or chunked), then closes. A request the
client sent only part of is never completed (BigQuery would not have
received it either). For traffic that is not HTTP the proxy reads upstream
until it has been idle for --idle-ms. The HTTP parsing is used only here.

A line per connection goes to stderr: "conn N: mode ..., c2s B bytes,
s2c B bytes, <how it ended>", which tests can read from the proxy's log.
"""
import argparse
import asyncio
import json
import os
import sys
import time


class HttpFramer:
    """Counts complete HTTP/1.1 messages in a byte stream (requests or
    responses), without keeping more than one header block in memory.
    Sets .broken when the stream does not parse (then callers fall back to
    the idle rule)."""

    def __init__(self, is_response):
        self.is_response = is_response
        self.buf = b""
        self.state = "head"  # head | body | chunk_size | chunk_data | chunk_crlf | trailer | eof_body
        self.remaining = 0
        self.complete = 0
        self.broken = False
        self.in_message = False  # bytes of an unfinished message seen

    def feed(self, data):
        if self.broken:
            return
        self.buf += data
        try:
            while self._step():
                pass
        except (ValueError, IndexError):
            self.broken = True

    def _finish(self):
        self.complete += 1
        self.in_message = False
        self.state = "head"

    def _step(self):
        if self.state == "head":
            if self.buf:
                self.in_message = True
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > 1 << 20:
                    raise ValueError("header too long")
                return False
            head = self.buf[:end].decode("latin-1")
            self.buf = self.buf[end + 4:]
            lines = head.split("\r\n")
            first = lines[0].split(" ")
            headers = {}
            for ln in lines[1:]:
                k, _, v = ln.partition(":")
                headers[k.strip().lower()] = v.strip()
            if self.is_response:
                if not first[0].startswith("HTTP/"):
                    raise ValueError("not an HTTP response")
                status = int(first[1])
                if 100 <= status < 200:
                    # 100 Continue and friends: not the final response.
                    return True
                if status in (204, 304):
                    self._finish()
                    return True
            elif len(first) != 3 or not first[2].startswith("HTTP/"):
                raise ValueError("not an HTTP request")
            if "chunked" in headers.get("transfer-encoding", "").lower():
                self.state = "chunk_size"
            elif "content-length" in headers:
                self.remaining = int(headers["content-length"])
                self.state = "body"
            elif self.is_response:
                self.state = "eof_body"  # body runs until the server closes
            else:
                self._finish()
            return True
        if self.state == "body":
            k = min(self.remaining, len(self.buf))
            self.buf = self.buf[k:]
            self.remaining -= k
            if self.remaining == 0:
                self._finish()
                return True
            return False
        if self.state == "chunk_size":
            end = self.buf.find(b"\r\n")
            if end < 0:
                return False
            size = int(self.buf[:end].split(b";")[0].strip(), 16)
            self.buf = self.buf[end + 2:]
            if size == 0:
                self.state = "trailer"
            else:
                self.remaining = size
                self.state = "chunk_data"
            return True
        if self.state == "chunk_data":
            k = min(self.remaining, len(self.buf))
            self.buf = self.buf[k:]
            self.remaining -= k
            if self.remaining == 0:
                self.state = "chunk_crlf"
                return True
            return False
        if self.state == "chunk_crlf":
            if len(self.buf) < 2:
                return False
            self.buf = self.buf[2:]
            self.state = "chunk_size"
            return True
        if self.state == "trailer":
            end = self.buf.find(b"\r\n")
            if end < 0:
                return False
            line = self.buf[:end]
            self.buf = self.buf[end + 2:]
            if line == b"":
                self._finish()
            return True
        if self.state == "eof_body":
            self.buf = b""
            return False
        return False

    def upstream_closed(self):
        if self.state == "eof_body":
            self._finish()


def read_control(path):
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return {"mode": "pass"}
    if not text.strip():
        return {"mode": "pass"}
    ctl = json.loads(text)
    if not isinstance(ctl, dict):
        raise ValueError("control file must hold a JSON object")
    return ctl


class Proxy:
    def __init__(self, args):
        self.args = args
        host, _, port = args.target.rpartition(":")
        self.target = (host or "127.0.0.1", int(port))
        self.n = 0

    def log(self, msg):
        print(msg, file=sys.stderr, flush=True)

    async def handle(self, creader, cwriter):
        self.n += 1
        n = self.n
        try:
            ctl = read_control(self.args.control)
        except (ValueError, OSError) as e:
            self.log("conn %d: bad control file %s: %s; passing" % (n, self.args.control, e))
            ctl = {"mode": "pass"}
        mode = ctl.get("mode", "pass")
        try:
            if mode == "refuse":
                self.log("conn %d: mode refuse: closed at once" % n)
                return
            if mode == "stall":
                total = 0
                while True:
                    data = await creader.read(65536)
                    if not data:
                        break
                    total += len(data)
                self.log("conn %d: mode stall: dropped %d bytes, client left" % (n, total))
                return
            await self.forward(n, ctl, creader, cwriter)
        except Exception as e:  # a test proxy logs and goes on with the next connection
            self.log("conn %d: error: %r" % (n, e))
        finally:
            cwriter.close()

    async def forward(self, n, ctl, creader, cwriter):
        complete = bool(ctl.get("complete", False))
        delay_s = float(ctl.get("delay_ms", 0)) / 1000.0
        cut = ctl.get("cut_after_bytes")
        cut_dir = ctl.get("cut_direction", "s2c")
        if cut_dir not in ("c2s", "s2c"):
            raise ValueError("cut_direction must be c2s or s2c")
        try:
            ureader, uwriter = await asyncio.open_connection(*self.target)
        except OSError as e:
            self.log("conn %d: cannot connect to %s:%d: %s" % (n, self.target[0], self.target[1], e))
            return
        req = HttpFramer(False) if complete else None
        resp = HttpFramer(True) if complete else None
        # client_dead: nothing more can or may be written to the client.
        st = {"c2s": 0, "s2c": 0, "client_gone": False, "client_dead": False, "cut": False,
              "upstream_closed": False}
        client_done = asyncio.Event()  # client EOF/error, or the proxy cut
        upstream_done = asyncio.Event()

        async def c2s():
            try:
                while True:
                    data = await creader.read(65536)
                    if not data:
                        st["client_gone"] = True
                        break
                    if cut is not None and cut_dir == "c2s":
                        room = int(cut) - st["c2s"]
                        if room <= 0:
                            st["cut"] = True
                            break
                        if len(data) >= room:
                            data = data[:room]
                            uwriter.write(data)
                            await uwriter.drain()
                            st["c2s"] += len(data)
                            st["cut"] = True
                            break
                    if req:
                        req.feed(data)
                    uwriter.write(data)
                    await uwriter.drain()
                    st["c2s"] += len(data)
            except (ConnectionError, OSError):
                st["client_gone"] = True
            client_done.set()

        async def s2c():
            first = True
            try:
                while True:
                    data = await ureader.read(65536)
                    if not data:
                        st["upstream_closed"] = True
                        if resp:
                            resp.upstream_closed()
                        break
                    if resp:
                        resp.feed(data)
                    if st["client_dead"]:
                        if complete:
                            continue  # completing: read and drop
                        break
                    if first and delay_s > 0:
                        await asyncio.sleep(delay_s)
                    first = False
                    if cut is not None and cut_dir == "s2c":
                        room = int(cut) - st["s2c"]
                        if len(data) >= room:
                            data = data[:max(room, 0)]
                            st["cut"] = True
                    try:
                        if data:
                            cwriter.write(data)
                            await cwriter.drain()
                            st["s2c"] += len(data)
                    except (ConnectionError, OSError):
                        st["client_dead"] = True
                        client_done.set()
                        continue
                    if st["cut"]:
                        st["client_dead"] = True
                        client_done.set()
                        cwriter.close()
            except (ConnectionError, OSError):
                st["upstream_closed"] = True
            upstream_done.set()

        t1 = asyncio.ensure_future(c2s())
        t2 = asyncio.ensure_future(s2c())
        how = ""
        # Pass-through until the client side ends (EOF, error, c2s cut, or
        # the response was cut) or upstream closes.
        await asyncio.wait(
            [asyncio.ensure_future(client_done.wait()), asyncio.ensure_future(upstream_done.wait())],
            return_when=asyncio.FIRST_COMPLETED,
        )
        if upstream_done.is_set():
            # Upstream closed: the client got what was sent; we close it.
            how = "upstream closed"
        elif st["cut"] and cut_dir == "c2s":
            how = "cut client->server after %d bytes" % st["c2s"]
        elif complete:
            how = await self.complete_requests(n, req, resp, upstream_done, st)
        elif st["cut"]:
            how = "cut server->client after %d bytes" % st["s2c"]
        else:
            # Client EOF: it may only have half-closed (shutdown(SHUT_WR))
            # and still read. Pass the half-close on and keep forwarding the
            # response until upstream closes or the client cannot take more.
            try:
                uwriter.write_eof()
            except (OSError, RuntimeError):
                pass
            await upstream_done.wait()
            how = "client sent EOF, upstream closed" if not st["client_dead"] else "client left"
        t1.cancel()
        t2.cancel()
        uwriter.close()
        cwriter.close()
        self.log(
            "conn %d: mode %s, c2s %d bytes, s2c %d bytes, %s"
            % (n, ctl.get("mode", "pass"), st["c2s"], st["s2c"], how)
        )

    async def complete_requests(self, n, req, resp, upstream_done, st):
        """The client is gone (or its response was cut): keep upstream open
        until each request forwarded whole has had its whole response."""
        deadline = time.monotonic() + self.args.complete_timeout_ms / 1000.0
        idle_s = self.args.idle_ms / 1000.0
        last = (st["s2c"], resp.complete)
        last_change = time.monotonic()
        while not upstream_done.is_set() and time.monotonic() < deadline:
            if not (req.broken or resp.broken):
                if resp.complete >= req.complete:
                    return "completed %d request(s) after the client left" % req.complete
            else:
                # Not HTTP: read until upstream is idle.
                now = (st["s2c"], resp.buf)
                if now != last:
                    last, last_change = now, time.monotonic()
                elif time.monotonic() - last_change > idle_s:
                    return "client left; upstream idle, closed (not HTTP)"
            await asyncio.sleep(0.02)
        if upstream_done.is_set():
            return "client left; upstream closed after %d response(s)" % resp.complete
        return "client left; gave up completing after %d ms" % self.args.complete_timeout_ms


async def amain(args):
    proxy = Proxy(args)
    server = await asyncio.start_server(proxy.handle, args.host, args.listen)
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    async with server:
        await server.serve_forever()


def main():
    ap = argparse.ArgumentParser(description="TCP fault proxy for mbq's reliability tests")
    ap.add_argument("--listen", type=int, required=True, help="port to listen on (0 = any free)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--target", required=True, help="HOST:PORT to forward to")
    ap.add_argument("--control", required=True, help="JSON control file, re-read per connection")
    ap.add_argument("--complete-timeout-ms", type=int, default=600000)
    ap.add_argument("--idle-ms", type=int, default=2000)
    args = ap.parse_args()
    try:
        asyncio.run(amain(args))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
