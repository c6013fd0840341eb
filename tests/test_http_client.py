"""socket2.http.Client against the standard library's http.server and a
scripted raw-socket socket2 server: bodies, redirects, decoding,
streaming, Expect, timeouts and the malformed responses that must be
ProtocolErrors."""
import gzip
import json
import os
import sys
import time
import zlib

import pytest

import socket2
from conftest import UNDER_WINE
import socket2.http as http
from socket2.http import client as client_mod

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "peers"))
from client_peers import RawServer, StdlibServer, respond  # noqa: E402


@pytest.fixture
def stdlib():
    s = StdlibServer()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def client():
    with http.Client(timeout=5) as c:
        yield c


def raw(handler, **kw):
    return RawServer(handler, **kw)


# ---------------------------------------------------------------------------
# Plain exchanges with http.server


def test_get_headers_and_body(stdlib, client):
    r = client.get(stdlib.url("/path?q=1"), headers={"X-Mine": "yes"})
    assert r.status == 200 and r.reason == "OK"
    assert r.http_version == "HTTP/1.1"
    assert r.url == stdlib.url("/path?q=1")
    got = r.json()
    assert got["method"] == "GET" and got["path"] == "/path?q=1"
    assert got["headers"]["x-mine"] == "yes"
    assert got["headers"]["host"] == "127.0.0.1:%d" % stdlib.port
    assert "gzip" in got["headers"]["accept-encoding"]
    # case-insensitive, repeated fields kept
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers.get_list("x-twice") == ["one", "two"]
    assert r.headers["X-TWICE"] == "one, two"
    assert ("x-twice", "two") in r.headers.items()
    assert "content-length" in r.headers and "nope" not in r.headers
    assert r.read() is r.read()           # kept


def test_chunked_response(stdlib, client):
    r = client.get(stdlib.url("/chunked"))
    assert r.read() == b"hello chunked world"
    assert r.headers["transfer-encoding"] == "chunked"


def test_request_bodies(stdlib, client, tmp_path):
    r = client.post(stdlib.url("/"), json={"a": [1, 2]})
    got = r.json()
    assert json.loads(got["body"]) == {"a": [1, 2]}
    assert got["headers"]["content-type"] == "application/json"
    r = client.put(stdlib.url("/"), body=b"raw bytes")
    got = r.json()
    assert got["body"] == "raw bytes"
    assert got["headers"]["content-length"] == "9"
    f = tmp_path / "up.bin"
    f.write_bytes(b"F" * 300000)
    with open(f, "rb") as fh:
        got = client.post(stdlib.url("/"), body=fh).json()
    assert got["headers"]["content-length"] == "300000"
    assert got["body"] == "F" * 300000
    got = client.post(stdlib.url("/"),
                      body=(b"%d," % i for i in range(1000))).json()
    assert got["headers"]["transfer-encoding"] == "chunked"
    assert got["body"] == "".join("%d," % i for i in range(1000))
    got = client.post(stdlib.url("/")).json()   # no body: length 0
    assert got["headers"]["content-length"] == "0"


def test_url_forms(stdlib, client):
    got = client.get(stdlib.url("/caf\u00e9?q=\u00fc")).json()
    assert got["path"] == "/caf%C3%A9?q=%C3%BC"
    url = "http://user:pw@127.0.0.1:%d/auth" % stdlib.port
    got = client.get(url).json()
    assert got["headers"]["authorization"] == "Basic dXNlcjpwdw=="
    got = client.get(stdlib.url("/auth")).json()     # not remembered
    assert "authorization" not in got["headers"]
    with raw(lambda c, head, body: respond(c)) as srv:
        client.get(srv.url(), headers=[("X-A", "1"), ("X-A", "2"),
                                       ("user-agent", "mine")])
        head = srv.requests[0]
    assert b"\r\nX-A: 1\r\nX-A: 2\r\n" in head
    assert b"\r\nuser-agent: mine\r\n" in head
    assert head.count(b"ser-Agent") + head.count(b"ser-agent") == 1


def test_bad_arguments(client):
    with pytest.raises(ValueError, match="only http:// and https://"):
        client.get("ftp://example.org/")
    with pytest.raises(ValueError, match="no host"):
        client.get("http:///path")
    with pytest.raises(TypeError, match="encode it first"):
        client.post("http://127.0.0.1:1/", body="text")
    with pytest.raises(TypeError, match="not both"):
        client.post("http://127.0.0.1:1/", body=b"x", json={})
    with pytest.raises(ValueError, match="CR, LF"):
        client.get("http://127.0.0.1:1/", headers={"X": "a\r\nB: c"})
    with pytest.raises(ValueError, match="timeout"):
        client.get("http://127.0.0.1:1/", timeout=-1)
    with pytest.raises(ValueError, match="max_per_host"):
        http.Client(max_per_host=0)


def test_connection_refused(client):
    with socket2.tcp() as s:
        s.bind("127.0.0.1", 0)
        port = s.local_port         # bound, not listening: refused
        with pytest.raises(socket2.Error) as ei:
            client.get("http://127.0.0.1:%d/" % port)
    assert ei.value.err == "connection_refused"


def test_raise_for_status(client):
    def h(c, head, body):
        return respond(c, 404, b"missing", reason=b"Not Found")
    with raw(h) as srv:
        r = client.get(srv.url("/x"))
        assert r.status == 404 and not r.ok
        with pytest.raises(http.HTTPStatusError, match="404 Not Found") as ei:
            r.raise_for_status()
        assert ei.value.response is r and ei.value.status == 404
        assert ei.value.err == "http_status"


def test_module_level_functions(stdlib):
    try:
        assert http.get(stdlib.url("/a")).json()["path"] == "/a"
        assert http.post(stdlib.url("/b"), json=1).json()["body"] == "1"
        assert http.request("DELETE", stdlib.url("/c")).json()[
            "method"] == "DELETE"
    finally:
        client_mod._client().close()


# ---------------------------------------------------------------------------
# Redirects


def test_redirect_methods(stdlib, client):
    to = stdlib.url("/landed")
    for code, method, want in ((301, "POST", "GET"), (302, "POST", "GET"),
                               (303, "PUT", "GET"), (307, "POST", "POST"),
                               (308, "PUT", "PUT"), (301, "PUT", "PUT")):
        r = client.request(method, stdlib.url("/redirect?code=%d&to=%s"
                                              % (code, to)), body=b"data")
        got = r.json()
        assert got["method"] == want, (code, method)
        assert got["body"] == ("data" if want != "GET" else "")
        assert [h.status for h in r.history] == [code]
        assert r.url == to


def test_redirect_drops_authorization_across_hosts(stdlib, client):
    same = stdlib.url("/here")
    other = stdlib.url("/there", host="localhost")
    r = client.get(stdlib.url("/redirect?to=" + same),
                   headers={"Authorization": "Bearer x"})
    assert r.json()["headers"]["authorization"] == "Bearer x"
    r = client.get(stdlib.url("/redirect?to=" + other),
                   headers={"Authorization": "Bearer x"})
    assert "authorization" not in r.json()["headers"]
    assert r.url == other


def test_redirect_limits(stdlib, client):
    def h(c, head, body):
        path = head.split(b" ")[1]
        if path == b"/loop":
            return respond(c, 302, headers=[(b"Location", b"/loop")])
        n = int(path.strip(b"/") or 0)
        return respond(c, 302, headers=[(b"Location", b"/%d" % (n + 1))])
    with raw(h) as srv:
        with pytest.raises(http.RedirectError, match="redirect loop") as ei:
            client.get(srv.url("/loop"))
        assert ei.value.err == "redirect_loop"
        with pytest.raises(http.RedirectError, match="more than 10") as ei:
            client.get(srv.url("/0"))
        assert ei.value.err == "too_many_redirects"
        r = client.get(srv.url("/0"), follow_redirects=False)
        assert r.status == 302 and r.history == []
        with http.Client(max_redirects=2, timeout=5) as c2:
            with pytest.raises(http.RedirectError, match="more than 2"):
                c2.get(srv.url("/0"))
    # a 307 cannot resend a body already streamed from an iterable
    with pytest.raises(http.RedirectError, match="iterable"):
        client.post(stdlib.url("/redirect?code=307&to=/x"),
                    body=iter([b"once"]))


# ---------------------------------------------------------------------------
# Framing: HEAD, 204, 304, until-close


def test_head_204_304_need_no_body(client):
    def h(c, head, body):
        path = head.split(b" ")[1]
        if path == b"/204":
            c.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
        elif path == b"/304":
            c.sendall(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99"
                      b"\r\n\r\n")
        else:   # HEAD: the length of the body a GET would get
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        return True
    with raw(h) as srv:
        for _ in range(2):
            assert client.get(srv.url("/204")).read() == b""
            assert client.get(srv.url("/304")).status == 304
            r = client.head(srv.url("/head"))
            assert r.read() == b"" and r.headers["content-length"] == "1000"
        assert srv.accepts == 1            # all on one connection


def test_read_until_close(client):
    def h(c, head, body):
        c.sendall(b"HTTP/1.0 200 OK\r\n\r\nuntil the end")
        return False
    with raw(h) as srv:
        r = client.get(srv.url())
        assert r.http_version == "HTTP/1.0"
        assert r.read() == b"until the end"
        assert client.get(srv.url()).read() == b"until the end"
        assert srv.accepts == 2


# ---------------------------------------------------------------------------
# Malformed responses


@pytest.mark.parametrize("reply, match", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
     "truncated body: .* after 5 of 10 bytes"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
     "chunk size is not hexadecimal"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
     "truncated chunked body"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: "
     b"chunked\r\n\r\n0\r\n\r\n", "both Content-Length and Transfer"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"
     b"abcd", "several different Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n", "Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Le", "in the middle of the response "
                                      "head"),
    (b"HTTP/1.1 2000 OK\r\n\r\n", "status"),
    (b"SSH-2.0-OpenSSH\r\n\r\n", "malformed HTTP version"),
    (b"HTTP/1.1 200 OK\nContent-Length: 0\n\n", "bare CR or LF"),
])
def test_malformed_responses(client, reply, match):
    def h(c, head, body):
        c.sendall(reply)
        return False
    with raw(h) as srv:
        with pytest.raises(http.ProtocolError, match=match) as ei:
            client.get(srv.url())
        assert ei.value.err == "protocol"
        assert client.stats()["total"] == 0    # the connection is gone


def test_no_response_at_all(client):
    with raw(lambda c, head, body: False) as srv:
        with pytest.raises(socket2.Error, match="without sending a "
                                                "response") as ei:
            client.post(srv.url(), body=b"x")
        assert ei.value.err == "no_response"


# ---------------------------------------------------------------------------
# Timeouts


@pytest.mark.parametrize("where", ["head", "body"])
def test_trickling_server_cannot_stretch_the_timeout(client, where):
    def h(c, head, body):
        reply = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + \
            b"x" * 1000
        if where == "body":
            c.sendall(reply[:60])
            reply = reply[60:]
        for i in range(len(reply)):
            c.sendall(reply[i:i + 1])
            socket2.sleep(0.02)
        return True
    with raw(h) as srv:
        t0 = time.monotonic()
        with pytest.raises(socket2.TimeoutError, match="within the timeout "
                                                       "of 0.4s"):
            client.get(srv.url(), timeout=0.4)
        assert time.monotonic() - t0 < 1.0


def test_timeout_bounds_a_streamed_body(client):
    def h(c, head, body):
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        socket2.sleep(2)
        return False
    with raw(h) as srv:
        r = client.get(srv.url(), stream=True, timeout=0.3)
        with pytest.raises(socket2.TimeoutError):
            r.read()
        r.close()


# ---------------------------------------------------------------------------
# Streaming


@pytest.mark.skipif(
    UNDER_WINE, reason="wine's sockets may take a whole 32 MB send at once "
    "(the test needs a sender the receive window holds back)")
def test_stream_never_reads_ahead(client):
    size = 32 << 20      # more than the kernel buffers hold
    state = {"sent": False}

    def h(c, head, body):
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        c.sendall(b"s" * size)
        state["sent"] = True
        return True
    with raw(h) as srv:
        with client.get(srv.url(), stream=True) as r:
            assert r.status == 200
            socket2.sleep(0.2)
            assert not state["sent"]          # the client read nothing yet
            got = 0
            pieces = 0
            for piece in r.iter_bytes(100000):
                assert len(piece) <= 100000
                got += len(piece)
                pieces += 1
            assert got == size and pieces >= size // 100000
            assert state["sent"]
        assert client.stats()["idle"] == 1     # read to the end: kept


def test_stream_closed_early_closes_the_connection(client):
    def h(c, head, body):
        respond(c, body=b"z" * 500000)
        return True
    with raw(h) as srv:
        with client.get(srv.url(), stream=True) as r:
            first = next(r.iter_bytes(1000))
            assert first == b"z" * len(first)
        assert client.stats()["total"] == 0
        with pytest.raises(ValueError, match="consumed by iter_bytes"):
            r.read()
        assert len(client.get(srv.url()).read()) == 500000
        assert srv.accepts == 2


# ---------------------------------------------------------------------------
# Content decoding


@pytest.mark.parametrize("coding", ["gzip", "deflate", "raw-deflate",
                                    "br", "zstd", "gzip-chunked"])
def test_decompression(client, coding):
    data = b"compress me " * 5000
    if coding.startswith("gzip"):
        enc, name = gzip.compress(data), b"gzip"
    elif coding == "deflate":
        enc, name = zlib.compress(data), b"deflate"
    elif coding == "raw-deflate":
        co = zlib.compressobj(wbits=-15)
        enc, name = co.compress(data) + co.flush(), b"deflate"
    elif coding == "br":
        brotli = pytest.importorskip("brotli", reason="pip install brotli")
        enc, name = brotli.compress(data), b"br"
    else:
        zstd = pytest.importorskip("zstandard",
                                   reason="pip install zstandard")
        enc, name = zstd.ZstdCompressor().compress(data), b"zstd"

    def h(c, head, body):
        if coding == "gzip-chunked":
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n")
            for i in range(0, len(enc), 100):
                part = enc[i:i + 100]
                c.sendall(b"%x\r\n%s\r\n" % (len(part), part))
            c.sendall(b"0\r\n\r\n")
            return True
        return respond(c, body=enc, headers=[(b"Content-Encoding", name)])
    with raw(h) as srv:
        assert client.get(srv.url()).read() == data
        with client.get(srv.url(), stream=True) as r:
            assert b"".join(r.iter_bytes(1000)) == data
        with http.Client(decompress=False, timeout=5) as c2:
            r = c2.get(srv.url())
            assert r.read() == enc
            assert r.headers["content-encoding"] == name.decode()


def test_two_codings_and_text(client):
    text = "caf\u00e9 " * 1000
    enc = gzip.compress(zlib.compress(text.encode("latin-1")))

    def h(c, head, body):
        return respond(c, body=enc, headers=[
            (b"Content-Encoding", b"deflate"), (b"Content-Encoding", b"gzip"),
            (b"Content-Type", b"text/plain; charset=ISO-8859-1")])
    with raw(h) as srv:
        r = client.get(srv.url())
        assert r.text == text
        assert r.headers["content-encoding"] == "deflate, gzip"
        with client.get(srv.url(), stream=True) as r:
            assert b"".join(r.iter_raw()) == enc


def test_corrupt_gzip_is_a_protocol_error(client):
    def h(c, head, body):
        return respond(c, body=b"\x1f\x8bnot gzip at all",
                       headers=[(b"Content-Encoding", b"gzip")])
    with raw(h) as srv:
        with pytest.raises(http.ProtocolError, match="not valid gzip"):
            client.get(srv.url())


# ---------------------------------------------------------------------------
# Expect: 100-continue


def test_expect_100_continue(client):
    seen = []

    def h(c, head, body):
        path = head.split(b" ")[1]
        if path == b"/go":
            c.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            data = c.read(int(head.lower().split(b"content-length: ")[1]
                              .split(b"\r\n")[0]))
            return respond(c, body=b"got " + data)
        # refuse without reading the body: it must not come
        respond(c, 401, b"no", reason=b"Unauthorized")
        c.shutdown("w")
        try:
            seen.append(c.recv(bytearray(100000), timeout=0.3))
        except socket2.TimeoutError:
            seen.append("nothing")
        return False
    with raw(h) as srv:
        hdr = {"Expect": "100-continue"}
        r = client.put(srv.url("/go"), body=b"B" * 100000, headers=hdr)
        assert r.read() == b"got " + b"B" * 100000
        r = client.put(srv.url("/no"), body=b"B" * 100000, headers=hdr)
        assert r.status == 401
        socket2.sleep(0.4)
        assert seen[-1] in ("nothing", 0)


# ---------------------------------------------------------------------------
# socket2's own WSGI server


def _wsgi_app(environ, start_response):
    if environ["PATH_INFO"] == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (b"part %d;" % i for i in range(100))     # chunked
    body = environ["wsgi.input"].read()
    out = json.dumps({"method": environ["REQUEST_METHOD"],
                      "body": body.decode()}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(out)))])
    return [out]


@pytest.fixture
def wsgi_server():
    if not hasattr(http, "serve"):
        pytest.skip("socket2.http.serve is not there yet")
    lst = socket2.tcp()
    lst.listen("127.0.0.1", 0)
    t = socket2.newthread(http.serve, lst, _wsgi_app)
    try:
        yield lst.local_port
    finally:
        lst.close()
        t.join(timeout=5)


def test_against_socket2_wsgi_server(client, wsgi_server):
    url = "http://127.0.0.1:%d/" % wsgi_server
    for i in range(5):
        assert client.post(url, json=i).json() == {
            "method": "POST", "body": str(i)}
    got = client.post(url, body=iter([b"a", b"b"])).json()
    assert got["body"] == "ab"
    got = client.put(url, body=b"E" * 200000,
                     headers={"Expect": "100-continue"}).json()
    assert got["body"] == "E" * 200000
    r = client.get(url + "stream")
    assert r.headers["transfer-encoding"] == "chunked"
    assert r.read() == b"".join(b"part %d;" % i for i in range(100))
    assert client.stats()["total"] == 1
    client.close()
