"""Peers for the HTTP client's tests: a scripted raw-socket socket2 server
(for the malformed and pool cases), a small socket2 proxy (CONNECT
tunnels, and plain HTTP answered on the proxy's behalf), and the
standard library's http.server in an OS thread."""
import http.server
import threading

import socket2


def read_request(c):
    """One request from *c*: ``(head bytes, body bytes)`` or ``None`` at
    EOF.  Content-Length and chunked bodies are read (unless the head
    says ``Expect: 100-continue``: then the handler reads the body)."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = c.readline(limit=65536)
        if not line:
            return None
        head += line
    low = head.lower()
    if b"expect: 100-continue" in low:
        return head, None
    return head, read_body(c, head)


def read_body(c, head):
    low = head.lower()
    if b"transfer-encoding: chunked" in low:
        body = b""
        while True:
            size = int(c.readline(limit=1024).split(b";")[0], 16)
            if size == 0:
                while c.readline(limit=1024) not in (b"\r\n", b""):
                    pass
                return body
            body += c.read(size)
            c.readline(limit=16)
    for line in low.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return c.read(int(line.split(b":")[1]))
    return b""


class RawServer:
    """A socket2 server on loopback: ``handler(conn, head, body)`` answers
    each request with whatever bytes it likes and returns True to keep
    the connection.  Counts ``accepts`` and the most connections open at
    once (``max_open``)."""

    def __init__(self, handler, host="127.0.0.1", tls=None):
        self.handler = handler
        self.tls = tls
        self.lst = socket2.tcp()
        self.lst.listen(host, 0)
        self.port = self.lst.local_port
        self.accepts = 0
        self.open = 0
        self.max_open = 0
        self.requests = []
        self.conns = []
        self.threads = []
        self.thread = socket2.newthread(self._accept)

    def url(self, path="/", host="127.0.0.1"):
        return "%s://%s:%d%s" % ("https" if self.tls else "http", host,
                                 self.port, path)

    def _accept(self):
        while True:
            try:
                c = self.lst.accept()
            except socket2.Error:
                return
            self.accepts += 1
            self.conns.append(c)
            self.threads.append(socket2.newthread(self._serve, c))

    def _serve(self, c):
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        try:
            if self.tls is not None:
                c = socket2.tls(c, self.tls, server_side=True, timeout=5)
                self.conns.append(c)
            while True:
                req = read_request(c)
                if req is None:
                    return
                self.requests.append(req[0])
                if not self.handler(c, *req):
                    return
        except socket2.Error:
            pass
        finally:
            self.open -= 1
            c.close()

    def close(self):
        self.lst.close()
        for c in self.conns:
            c.close()
        for t in self.threads:
            t.kill()
        self.thread.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def respond(c, status=200, body=b"", headers=(), reason=b"OK"):
    """Send a response with Content-Length."""
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
    lines += [b"%s: %s\r\n" % (n, v) for n, v in headers]
    lines.append(b"Content-Length: %d\r\n\r\n" % len(body))
    c.sendall(b"".join(lines) + body)
    return True


class Proxy:
    """A socket2 proxy: ``CONNECT host:port`` opens a tunnel (and is
    recorded in ``connects``); any other request is recorded in
    ``requests`` and answered by the proxy itself with ``proxied``."""

    def __init__(self):
        self.lst = socket2.tcp()
        self.lst.listen("127.0.0.1", 0)
        self.port = self.lst.local_port
        self.url = "http://127.0.0.1:%d" % self.port
        self.connects = []
        self.requests = []
        self.socks = []
        self.threads = []
        self.thread = socket2.newthread(self._accept)

    def _accept(self):
        while True:
            try:
                c = self.lst.accept()
            except socket2.Error:
                return
            self.socks.append(c)
            self.threads.append(socket2.newthread(self._serve, c))

    def _serve(self, c):
        try:
            req = read_request(c)
            if req is None:
                return
            head = req[0]
            line = head.split(b"\r\n")[0]
            method, target, _ = line.split(b" ")
            if method != b"CONNECT":
                while req is not None:
                    self.requests.append(req[0])
                    respond(c, body=b"proxied")
                    req = read_request(c)
                return
            self.connects.append(head)
            host, _, port = target.decode().rpartition(":")
            up = socket2.connect(host, int(port), timeout=5)
            self.socks.append(up)
            c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            t = socket2.newthread(_pipe, up, c)
            self.threads.append(t)
            _pipe(c, up)
            t.join(timeout=5)
        except socket2.Error:
            pass
        finally:
            c.close()

    def close(self):
        self.lst.close()
        for s in self.socks:
            s.close()
        self.thread.join(timeout=5)
        for t in self.threads:
            t.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _pipe(a, b):
    buf = bytearray(65536)
    try:
        while True:
            n = a.recv(buf)
            if n == 0:
                break
            b.sendall(buf, n)
    except socket2.Error:
        pass
    finally:
        a.close()
        b.close()


class EchoHandler(http.server.BaseHTTPRequestHandler):
    """The standard library's server: echoes what it got as JSON-ish
    headers; /chunked answers chunked, /redirect?to=URL&code=N
    redirects, /cookie sets a cookie, /headers repeats a field."""
    protocol_version = "HTTP/1.1"

    def _body(self):
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("content-length") or 0))

    def _answer(self):
        from urllib.parse import parse_qs, urlsplit
        u = urlsplit(self.path)
        q = parse_qs(u.query)
        body = self._body()
        if u.path == "/redirect":
            self.send_response(int(q.get("code", ["302"])[0]))
            self.send_header("Location", q["to"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if u.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for p in (b"hello ", b"chunked ", b"world"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(p), p))
            self.wfile.write(b"0\r\n\r\n")
            return
        import json
        out = json.dumps({
            "method": self.command, "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode("latin-1")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if u.path == "/cookie":
            self.send_header("Set-Cookie", "session=abc; Path=/")
        self.send_header("X-Twice", "one")
        self.send_header("X-Twice", "two")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _answer

    def log_message(self, *args):
        pass


class StdlibServer(http.server.ThreadingHTTPServer):
    """http.server in a background OS thread; ``close()`` waits for its
    connection threads (which end when the client closes)."""
    daemon_threads = False
    block_on_close = True

    def __init__(self, host="127.0.0.1"):
        super().__init__((host, 0), EchoHandler)
        self.port = self.server_address[1]
        self._t = threading.Thread(target=self.serve_forever, args=(0.05,),
                                   daemon=True)
        self._t.start()

    def url(self, path="/", host="127.0.0.1"):
        return "http://%s:%d%s" % (host, self.port, path)

    def close(self):
        self.shutdown()
        self.server_close()
        self._t.join(5)
