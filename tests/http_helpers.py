"""What the HTTP server tests share: a server running an app in a socket2
thread, a raw client, and a small response splitter that knows nothing of
socket2's parser (so the server is not checked by its own code)."""
import contextlib
import json
import re

import socket2
import socket2.http

_STATUS = re.compile(rb"HTTP/1\.([01]) (\d\d\d) ([^\r\n]*)\r\n")


@contextlib.contextmanager
def running(app, host="127.0.0.1", **kwargs):
    """Serve *app* on a fresh loopback listener; yields the listener.
    On exit the listener closes and serve() must return (drain)."""
    lst = socket2.tcp("inet6" if ":" in host else "inet")
    lst.listen(host, 0)
    t = socket2.newthread(socket2.http.serve, lst, app, **kwargs)
    try:
        yield lst
    finally:
        lst.close()
        try:
            t.join(timeout=10)
        except socket2.TimeoutError:
            t.kill()
            raise AssertionError("serve() did not return after its "
                                 "listener closed")


def connect(lst, timeout=5):
    c = socket2.tcp(lst.family())
    c.connect(lst.local_addr, lst.local_port, timeout=timeout)
    return c


def talk(lst, data, timeout=5):
    """Send *data* on a new connection, read until the server closes."""
    with connect(lst) as c:
        c.sendall(data)
        return c.recvall(timeout=timeout)


class Response:
    def __init__(self, version, status, reason, headers, body, framing):
        self.version, self.status, self.reason = version, status, reason
        self.headers, self.body, self.framing = headers, body, framing

    def header(self, name):
        vals = [v for k, v in self.headers if k == name.lower()]
        return vals[0] if vals else None

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<Response %d %r %r>" % (self.status, self.headers,
                                        self.body[:80])


def split(data, head_only=()):
    """Split the bytes a server sent into Responses (framing by
    Content-Length, chunked, or the rest).  *head_only*: indexes of the
    responses that answer HEAD (no body)."""
    out = []
    pos = 0
    while pos < len(data):
        m = _STATUS.match(data, pos)
        assert m, "no status line at %d: %r" % (pos, data[pos:pos + 80])
        end = data.index(b"\r\n\r\n", pos)
        headers = []
        for line in data[m.end():end].split(b"\r\n"):
            if line:
                k, v = line.split(b":", 1)
                headers.append((k.decode().lower(), v.strip().decode()))
        pos = end + 4
        status = int(m.group(2))
        hd = dict(headers)
        if len(out) in head_only or status in (204, 304) or \
                100 <= status < 200:
            body, framing = b"", "none"
        elif "transfer-encoding" in hd:
            assert hd["transfer-encoding"] == "chunked", hd
            parts = []
            while True:
                eol = data.index(b"\r\n", pos)
                size = int(data[pos:eol], 16)
                pos = eol + 2
                if size == 0:
                    assert data[pos:pos + 2] == b"\r\n", data[pos:pos + 20]
                    pos += 2
                    break
                parts.append(data[pos:pos + size])
                assert data[pos + size:pos + size + 2] == b"\r\n"
                pos += size + 2
            body, framing = b"".join(parts), "chunked"
        elif "content-length" in hd:
            n = int(hd["content-length"])
            body, framing = data[pos:pos + n], "length"
            assert len(body) == n, "truncated: %d of %d" % (len(body), n)
            pos += n
        else:
            body, framing = data[pos:], "close"
            pos = len(data)
        out.append(Response(int(m.group(1)), status, m.group(3), headers,
                            body, framing))
    return out


def read_one(c, timeout=5):
    """Read exactly one Content-Length response from the connection *c*."""
    data = b""
    while not data.endswith(b"\r\n\r\n"):
        data += c.read(1, timeout=timeout)
        assert data, "connection closed before a response"
    n = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", data).group(1))
    (r,) = split(data + c.read(n, timeout=timeout))
    return r


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello, World!"]


def echo(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [body]


def show(environ, start_response):
    """Answers with the environ's str values as JSON."""
    data = {k: v for k, v in environ.items() if isinstance(v, str)}
    data["wsgi.input_terminated"] = environ["wsgi.input_terminated"]
    data["wsgi.url_scheme"] = environ["wsgi.url_scheme"]
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(data).encode()]


def get(path="/", extra=b"", version=b"1.1", close=True, method=b"GET"):
    return b"".join((method, b" ", path.encode() if isinstance(path, str)
                     else path, b" HTTP/", version, b"\r\nHost: t\r\n",
                     extra, b"Connection: close\r\n" if close else b"",
                     b"\r\n"))
