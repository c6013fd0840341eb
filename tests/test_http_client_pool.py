"""socket2.http.Client's pool (reuse, limits, idle connections the server
closed, retries), proxies (a CONNECT tunnel, plain HTTP through a proxy,
the environment's settings) and the requests adapter."""
import os
import ssl
import sys
import time

import pytest

import socket2
import socket2.http as http
from socket2.http._request import bypass_proxy, env_proxies


sys.path.insert(0, os.path.join(os.path.dirname(__file__), "peers"))
from client_peers import (Proxy, RawServer, StdlibServer,  # noqa: E402
                          respond)


def ok(c, head, body):
    return respond(c, body=b"ok")


def slow_ok(c, head, body):
    socket2.sleep(0.01)
    return respond(c, body=b"ok")


# ---------------------------------------------------------------------------
# Reuse and limits


def test_connections_are_reused():
    with RawServer(ok) as srv, http.Client(timeout=5) as c:
        for _ in range(20):
            assert c.get(srv.url()).read() == b"ok"
        c.post(srv.url(), body=b"x" * 1000).read()
        assert srv.accepts == 1
        assert c.stats() == {"total": 1, "idle": 1, "waiting": 0}


def test_limits_hold_under_50_concurrent_requests():
    with RawServer(slow_ok) as srv, \
            http.Client(timeout=10, max_per_host=5) as c:
        results = []

        def one():
            results.append(c.get(srv.url()).read())
        with socket2.group() as g:
            for _ in range(50):
                g.spawn(one)
        assert results == [b"ok"] * 50
        assert srv.max_open <= 5 and srv.accepts <= 5
        assert c.stats()["total"] <= 5


def test_max_connections_across_hosts():
    with RawServer(slow_ok, host="127.0.0.1") as srv, \
            http.Client(timeout=10, max_connections=3, max_per_host=3) as c:
        # 127.0.0.1 and localhost are two pool keys on one server
        urls = [srv.url(), srv.url(host="localhost")] * 15
        results = []
        totals = []

        def one(u):
            r = c.get(u, stream=True)
            totals.append(c.stats()["total"])
            results.append(r.read())
        with socket2.group() as g:
            for u in urls:
                g.spawn(one, u)
        assert results == [b"ok"] * 30
        # the server may see one more open for a moment: a connection the
        # client closed to make room has not been read as closed there yet
        assert max(totals) <= 3 and srv.max_open <= 4
        assert srv.accepts > 3       # idle ones were closed for the other


def test_waiting_for_a_connection_is_bounded_by_the_timeout():
    with RawServer(lambda c, h, b: respond(c, body=b"x" * 100000)) as srv, \
            http.Client(timeout=5, max_per_host=1) as c:
        held = c.get(srv.url(), stream=True)     # holds the only slot
        t0 = time.monotonic()
        with pytest.raises(socket2.TimeoutError, match="no connection "
                                                       "became free"):
            c.get(srv.url(), timeout=0.2)
        assert 0.15 < time.monotonic() - t0 < 1
        # released: the next request gets the connection
        t = socket2.newthread(lambda: c.get(srv.url()).read())
        socket2.sleep(0.05)
        assert len(held.read()) == 100000
        assert len(t.join(timeout=5)) == 100000
        assert srv.accepts == 1


def test_idle_connection_closed_by_the_server_is_not_reused():
    def once(c, head, body):
        respond(c, body=b"ok")
        return False                   # closes without saying so
    with RawServer(once) as srv, http.Client(timeout=5) as c:
        assert c.get(srv.url()).read() == b"ok"
        socket2.sleep(0.05)
        # a POST is not retried: it must get a live connection up front
        assert c.post(srv.url(), body=b"p").read() == b"ok"
        assert srv.accepts == 2


def test_idempotent_request_retried_once_when_dropped():
    state = {"n": 0}

    def drops_second(c, head, body):
        state["n"] += 1
        if state["n"] == 2:
            return False               # the race: closes, no answer
        return respond(c, body=b"ok")
    with RawServer(drops_second) as srv, http.Client(timeout=5) as c:
        assert c.get(srv.url()).read() == b"ok"
        assert c.get(srv.url()).read() == b"ok"     # retried
        assert srv.accepts == 2 and state["n"] == 3
        # a POST is not retried
        state["n"] = 1
        with pytest.raises(socket2.Error) as ei:
            c.post(srv.url(), body=b"once")
        assert ei.value.err == "no_response"
        # a fresh connection that fails is not retried either
        state["n"] = 1
        with http.Client(timeout=5) as c2:
            with pytest.raises(socket2.Error, match="without sending"):
                c2.get(srv.url())


def test_closed_client_refuses_requests():
    with RawServer(ok) as srv:
        c = http.Client(timeout=5)
        c.get(srv.url()).read()
        c.close()
        with pytest.raises(socket2.Error, match="closed"):
            c.get(srv.url())


# ---------------------------------------------------------------------------
# TLS


def test_tls_verified_by_default(pki):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki["server_crt"], pki["server_key"])
    with RawServer(ok, tls=ctx) as srv:
        with http.Client(timeout=5) as c:
            with pytest.raises(socket2.TLSError) as ei:
                c.get(srv.url(host="localhost"))
            assert ei.value.err == "certificate_verify_failed"
        trust = ssl.create_default_context(cafile=pki["ca"])
        with http.Client(timeout=5, tls=trust) as c:
            for _ in range(3):
                assert c.get(srv.url(host="localhost")).read() == b"ok"
        assert srv.accepts == 2


# ---------------------------------------------------------------------------
# Proxies


def test_https_through_a_connect_proxy(pki):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki["server_crt"], pki["server_key"])
    trust = ssl.create_default_context(cafile=pki["ca"])
    with RawServer(ok, tls=ctx) as srv, Proxy() as proxy:
        with http.Client(timeout=5, tls=trust, proxy=proxy.url) as c:
            for _ in range(3):
                assert c.get(srv.url(host="localhost")).read() == b"ok"
        assert len(proxy.connects) == 1
        assert proxy.connects[0].startswith(
            b"CONNECT localhost:%d HTTP/1.1\r\n" % srv.port)
        assert srv.accepts == 1


def test_http_through_a_proxy_uses_absolute_form():
    with Proxy() as proxy, http.Client(timeout=5,
                                       proxy="user:pw@127.0.0.1:%d"
                                       % proxy.port) as c:
        r = c.get("http://example.invalid:8080/path?q=1")
        assert r.read() == b"proxied"
        head = proxy.requests[0]
        assert head.startswith(b"GET http://example.invalid:8080/path?q=1 "
                               b"HTTP/1.1\r\n")
        assert b"\r\nProxy-Authorization: Basic dXNlcjpwdw==\r\n" in head


def test_proxy_refusing_connect():
    def refuse(c, head, body):
        return respond(c, 403, b"no", reason=b"Forbidden")
    with RawServer(refuse) as fake, http.Client(timeout=5,
                                                proxy=fake.url()) as c:
        with pytest.raises(socket2.Error, match="refused CONNECT") as ei:
            c.get("https://example.invalid/")
        assert ei.value.err == "proxy"


def test_environment_proxies(monkeypatch):
    env = {"http_proxy": "http://p1:3128", "HTTPS_PROXY": "p2:8080",
           "no_proxy": "localhost,.internal.test, 10.0.0.0/8,host:81"}
    http_p, https_p, no = env_proxies(env)
    assert (http_p.host, http_p.port) == ("p1", 3128)
    assert (https_p.host, https_p.port) == ("p2", 8080)
    assert bypass_proxy("localhost", 80, no)
    assert bypass_proxy("a.internal.test", 80, no)
    assert bypass_proxy("internal.test", 80, no)
    assert bypass_proxy("10.1.2.3", 80, no)
    assert bypass_proxy("host", 81, no) and not bypass_proxy("host", 80, no)
    assert not bypass_proxy("example.com", 80, no)
    assert not bypass_proxy("notinternal.test", 80, no)
    assert bypass_proxy("anything", 1, ["*"])
    # CGI: HTTP_PROXY may come from a request header (httpoxy): ignored
    assert env_proxies({"HTTP_PROXY": "http://evil:1",
                        "REQUEST_METHOD": "GET"})[0] is None
    assert env_proxies({"HTTP_PROXY": "http://p:1"})[0].host == "p"
    assert env_proxies({"all_proxy": "http://a:1"})[1].host == "a"
    # an unusable proxy fails the requests that would use it, not before
    assert env_proxies({"https_proxy": "socks5://s:1080"})[1].url \
        == "socks5://s:1080"
    with Proxy() as proxy, RawServer(ok) as srv:
        monkeypatch.setenv("http_proxy", proxy.url)
        monkeypatch.setenv("no_proxy", "localhost")
        with http.Client(timeout=5) as c:
            assert c.get("http://via.invalid/").read() == b"proxied"
            assert c.get(srv.url()).read() == b"proxied"
            assert c.get(srv.url(host="localhost")).read() == b"ok"
        with http.Client(timeout=5, trust_env=False) as c:
            assert c.get(srv.url()).read() == b"ok"
        assert len(proxy.requests) == 2 and srv.accepts == 2


# ---------------------------------------------------------------------------
# The requests adapter


@pytest.fixture
def session():
    requests = pytest.importorskip("requests", reason="pip install requests")
    from socket2.http.requests_adapter import Adapter
    s = requests.Session()
    s.mount("http://", Adapter())
    s.mount("https://", Adapter())
    s.trust_env = False
    try:
        yield s
    finally:
        s.close()


def test_requests_adapter(session):
    import requests
    srv = StdlibServer()
    try:
        r = session.get(srv.url("/a"), params={"x": "1"})
        assert r.status_code == 200 and r.json()["path"] == "/a?x=1"
        assert r.headers["x-twice"] == "one, two"
        assert r.headers["Content-Type"] == "application/json"
        r = session.post(srv.url("/p"), json={"k": "v"})
        assert r.json()["body"] == '{"k": "v"}'
        r = session.post(srv.url("/p"), data=(b"%d" % i for i in range(3)))
        assert r.json()["body"] == "012"
        assert r.json()["headers"]["transfer-encoding"] == "chunked"
        r = session.get(srv.url("/chunked"), stream=True)
        assert b"".join(r.iter_content(4)) == b"hello chunked world"
        r = session.get(srv.url("/redirect?to=/landed"))
        assert r.url == srv.url("/landed") and len(r.history) == 1
        session.get(srv.url("/cookie"))
        assert session.cookies.get("session") == "abc"
        assert session.get(srv.url("/c")).json()["headers"]["cookie"] \
            == "session=abc"
        with pytest.raises(requests.exceptions.ConnectionError):
            session.get("http://127.0.0.1:1/")
    finally:
        session.close()
        srv.close()


def test_requests_adapter_timeout(session):
    import requests

    def slow(c, head, body):
        socket2.sleep(2)
        return False
    with RawServer(slow) as srv:
        with pytest.raises(requests.exceptions.Timeout):
            session.get(srv.url(), timeout=0.2)


def test_requests_adapter_session(monkeypatch):
    pytest.importorskip("requests", reason="pip install requests")
    from socket2.http.requests_adapter import Session
    with Proxy() as proxy, RawServer(ok) as srv:
        monkeypatch.setenv("http_proxy", proxy.url)
        monkeypatch.setenv("no_proxy", "localhost")
        s = Session()
        try:
            for _ in range(3):
                assert s.get("http://via.invalid/x").content == b"proxied"
                assert s.get(srv.url(host="localhost")).content == b"ok"
            assert len(proxy.requests) == 3 and srv.accepts == 1
            s.trust_env = False            # now the environment is ignored
            assert s.get(srv.url()).content == b"ok"
            assert len(proxy.requests) == 3
        finally:
            s.close()


def test_dns_answer_reused_for_a_while():
    def once(c, head, body):
        respond(c, body=b"ok", headers=[(b"Connection", b"close")])
        return False
    with RawServer(once) as srv, http.Client(timeout=5) as c:
        for _ in range(3):
            assert c.get(srv.url(host="localhost")).read() == b"ok"
        assert srv.accepts == 3
        ip, until = c._dns[("localhost", srv.port)]
        assert ip == "127.0.0.1" and until > socket2.clock()
        # a stale answer is dropped and looked up again
        c._dns[("localhost", srv.port)] = ("127.0.0.9", until)
        assert c.get(srv.url(host="localhost")).read() == b"ok"
        assert c._dns[("localhost", srv.port)][0] == "127.0.0.1"


def test_connect_timeout(stuck_listener):
    with http.Client(timeout=0.3) as c:
        t0 = time.monotonic()
        with pytest.raises(socket2.TimeoutError, match="0.3s"):
            c.get("http://127.0.0.1:%d/" % stuck_listener)
        assert time.monotonic() - t0 < 1
        assert c.stats()["total"] == 0        # the slot was given back
