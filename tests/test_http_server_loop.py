"""The WSGI server's request loop where its compiled path (C:
socket2/ffi/http_speedups.c, ConnBase._serve_simple) hands over to the
Python one (socket2/http/wsgi.py, _reply.py), and back: every case runs
on one keep-alive connection between plain requests, so that each
hand-off is followed by a request the compiled loop serves again.  The
suite runs this file compiled and pure-Python alike."""
import gc
import sys

import pytest

import socket2.http
from socket2.http import Limits, wsgi
from socket2.http._reply import Reply

from http_helpers import connect, get, running, split, talk

pytestmark = pytest.mark.one_poller


def _app(environ, start_response):
    """A path per behaviour; "/" is the plain request."""
    path = environ["PATH_INFO"]
    ok = [("Content-Type", "text/plain")]
    if path == "/":
        start_response("200 OK", ok)
        return [b"plain"]
    if path == "/two-pieces":
        start_response("200 OK", ok)
        return [b"two ", b"pieces"]
    if path == "/generator":
        start_response("200 OK", ok)
        return (x for x in (b"gen", b"erated"))
    if path == "/bytearray":
        start_response("200 OK", ok)
        return [bytearray(b"copied")]
    if path == "/str":
        start_response("200 OK", ok)
        return ["not bytes"]
    if path == "/no-start":
        return [b"never started"]
    if path == "/twice":
        start_response("200 OK", ok)
        start_response("200 OK", ok)
        return [b"x"]
    if path == "/exc-info":
        try:
            raise ValueError("before the head")
        except ValueError:
            start_response("200 OK", ok)
            start_response("503 Service Unavailable", ok, sys.exc_info())
        return [b"recovered"]
    if path == "/write":
        write = start_response("200 OK", ok)
        write(b"written ")
        return [b"then returned"]
    if path == "/204":
        start_response("204 No Content", ok)
        return [b"dropped"]
    if path == "/short":
        start_response("200 OK", ok + [("Content-Length", "10")])
        return [b"short"]
    if path == "/long":
        start_response("200 OK", ok + [("Content-Length", "3")])
        return [b"longer"]
    if path == "/close":
        start_response("200 OK", ok + [("Connection", "close")])
        return [b"bye"]
    if path == "/raise":
        raise RuntimeError("the application failed")
    if path == "/keyword":
        start_response(status="200 OK", headers=ok)
        return [b"keywords"]
    if path == "/tuple-headers":
        start_response("200 OK", (("Content-Type", "text/plain"),))
        return [b"x"]
    if path == "/big":
        start_response("200 OK", ok)
        return [b"b" * 200000]
    if path == "/post":
        start_response("200 OK", ok)
        return [environ["wsgi.input"].read()]
    raise AssertionError(path)


PLAIN = (200, b"plain")

# path -> (status, body, whether the connection stays open)
CASES = {
    "/two-pieces": (200, b"two pieces", True),
    "/generator": (200, b"generated", True),
    "/bytearray": (200, b"copied", True),
    "/str": (500, None, False),
    "/no-start": (500, None, False),
    "/twice": (500, None, False),
    "/exc-info": (503, b"recovered", True),
    "/write": (200, b"written then returned", True),
    "/204": (204, b"", True),
    "/long": (200, b"lon", False),
    "/close": (200, b"bye", False),
    "/raise": (500, None, False),
    "/keyword": (200, b"keywords", True),
    "/tuple-headers": (500, None, False),
    "/big": (200, b"b" * 200000, True),
}


def read_one(c, head=False):
    """One whole response (any framing but until-close) off *c*."""
    data = b""
    while True:
        if b"\r\n\r\n" in data:
            try:
                rs = split(data, head_only=(0,) if head else ())
            except (AssertionError, ValueError):
                rs = None
            if rs:
                assert len(rs) == 1, rs
                return rs[0]
        buf = bytearray(65536)
        n = c.recv(buf, timeout=5)
        assert n, "closed before a whole response: %r" % data[:200]
        data += buf[:n]


def _expect(r, status, body):
    assert r.status == status, (r.status, r.body[:200])
    if body is not None:
        assert r.body == body


@pytest.mark.parametrize("path", sorted(CASES))
def test_each_hand_off_then_plain_requests_again(path, capfd):
    status, body, stays = CASES[path]
    with running(_app) as lst, connect(lst) as c:
        c.sendall(get("/", close=False))
        _expect(read_one(c), *PLAIN)
        c.sendall(get(path, close=False))
        r = read_one(c)
        _expect(r, status, body)
        if stays:
            assert r.header("connection") is None
            for _ in range(2):
                c.sendall(get("/", close=False))
                _expect(read_one(c), *PLAIN)
        else:
            assert r.header("connection") == "close" or status != 500
            assert c.recvall(timeout=5) == b""
    err = capfd.readouterr().err
    assert ("socket2.http: error in the application" in err) == \
        (status == 500)


def test_short_body_closes_after_what_it_sent():
    with running(_app) as lst, connect(lst) as c:
        c.sendall(get("/short", close=False))
        data = c.recvall(timeout=5)
    assert data.endswith(b"\r\n\r\nshort")
    assert b"Content-Length: 10\r\n" in data


def test_head_and_http10_and_a_body_between_plain_requests():
    with running(_app) as lst:
        raw = (get("/", close=False, method=b"HEAD")
               + b"POST /post HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n"
               + b"body"
               + get("/", close=False, version=b"1.0",
                     extra=b"Connection: keep-alive\r\n")
               + get("/"))
        rs = split(talk(lst, raw), head_only=(0,))
    assert [r.status for r in rs] == [200, 200, 200, 200]
    assert rs[0].header("content-length") == "5" and rs[0].body == b""
    assert rs[1].body == b"body"
    assert rs[2].header("connection") == "keep-alive"
    assert rs[2].body == b"plain"
    assert rs[3].header("connection") == "close"


def test_pipelined_hand_offs_stay_in_order():
    paths = ["/", "/generator", "/", "/write", "/two-pieces", "/", "/204",
             "/", "/exc-info", "/"]
    with running(_app) as lst:
        raw = b"".join(get(p, close=False) for p in paths) + get("/")
        rs = split(talk(lst, raw))
    assert [r.status for r in rs] == [CASES.get(p, PLAIN + (True,))[0]
                                      for p in paths] + [200]
    assert rs[1].body == b"generated" and rs[3].body == b"written then " \
        b"returned" and rs[8].body == b"recovered"


def test_max_requests_and_access_log_on_the_plain_path():
    import io
    log = io.StringIO()
    with running(_app, limits=Limits(max_requests_per_connection=3),
                 access_log=log) as lst:
        raw = b"".join(get("/", close=False) for _ in range(5))
        rs = split(talk(lst, raw))
    assert [r.status for r in rs] == [200, 200, 200]
    assert rs[2].header("connection") == "close"
    lines = log.getvalue().splitlines()
    assert len(lines) == 3 and all('"GET / HTTP/1.1" 200 5' in x
                                   for x in lines)


class _Tuple(tuple):
    pass


class _Str(str):
    pass


@pytest.mark.parametrize("odd", ["tuple", "name", "value", "status"])
def test_subclasses_equal_to_checked_headers_are_still_refused(odd, capfd):
    """start_response's check cache compares by equality: a tuple or str
    subclass equal to an item already checked must still get its 500
    (PEP 3333 asks for exact types), cold or after a plain request."""
    def app(environ, start_response):
        status, name, value = "200 OK", "Content-Type", "text/plain"
        item = (name, value)
        if environ["PATH_INFO"] == "/odd":
            if odd == "tuple":
                item = _Tuple(item)
            elif odd == "name":
                item = (_Str(name), value)
            elif odd == "value":
                item = (name, _Str(value))
            else:
                status = _Str(status)
        start_response(status, [item])
        return [b"x"]

    with running(app) as lst:
        cold = split(talk(lst, get("/odd")))
        warm = split(talk(lst, get("/", close=False) + get("/odd")))
    assert [r.status for r in cold] == [500]
    assert [r.status for r in warm] == [200, 500]
    capfd.readouterr()


def test_replies_in_a_cycle_are_collected():
    """An application that keeps its start_response in the environ makes
    a reply -> environ -> reply cycle: the collector frees it."""
    def app(environ, start_response):
        environ["keep"] = start_response
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"cycle"]

    gc.collect()
    before = sum(1 for o in gc.get_objects() if type(o) is Reply)
    with running(app) as lst:
        raw = b"".join(get("/", close=False) for _ in range(20)) + get("/")
        rs = split(talk(lst, raw))
    assert len(rs) == 21
    gc.collect()
    after = sum(1 for o in gc.get_objects() if type(o) is Reply)
    assert after <= before


def test_compiled_loop_is_the_one_running():
    """The compiled build serves through ConnBase._serve_simple (the
    pure-Python one through next_head)."""
    served = []

    def app(environ, start_response):
        import inspect
        frames = [f.function for f in inspect.stack()]
        served.append("next_head" not in frames and "respond" not in frames)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"x"]

    with running(app) as lst:
        split(talk(lst, get("/", close=False) + get("/")))
    assert served == [wsgi.COMPILED] * 2


@pytest.mark.parametrize("change", ["remote", "remote-list", "del-out",
                                    "del-buf", "del-remote", "buf-none",
                                    "fast", "del-sock", "del-environ"])
def test_an_app_that_breaks_its_connection_ends_only_that_one(change,
                                                              capfd):
    """The application can reach its connection (start_response's
    reply): fields changed or deleted while the loop runs end that
    connection with an exception (the compiled loop checks them again
    after every call into Python), never the process; the server goes
    on serving."""
    def app(environ, start_response):
        if environ["PATH_INFO"] == "/break":
            conn = start_response.__self__.conn
            if change == "remote":
                conn.remote = ("127.0.0.1",)
            elif change == "remote-list":
                conn.remote = [1, 2]
            elif change == "del-out":
                del conn.out
            elif change == "del-buf":
                del conn.buf
            elif change == "del-remote":
                del conn.remote
            elif change == "buf-none":
                conn.buf = None
            elif change == "fast":
                conn.fast = None
                conn.srv.fast = None
            elif change == "del-sock":
                del conn.sock
            else:
                del start_response.__self__.environ
        start_response("200 OK", [("Content-Length", "2")])
        return [b"hi"]

    with running(app) as lst:
        with connect(lst) as c:
            c.sendall(get("/break", close=False) + get("/", close=False) +
                      get("/"))
            c.recvall(timeout=5)        # whatever it got before it ended
        rs = split(talk(lst, get("/", close=False) + get("/")))
        assert [r.body for r in rs] == [b"hi", b"hi"]
    capfd.readouterr()


@pytest.mark.parametrize("hook", ["draining-drops-status",
                                  "draining-empties-the-body",
                                  "environ-drops-buf",
                                  "sendall-drops-sock"])
def test_python_code_run_by_the_loop_cannot_break_it(hook, capfd):
    """Code the loop runs between its steps (srv.draining, srv.environ,
    sock.sendall, all replaceable by an application) may drop or empty
    what the loop was about to use: the loop holds its own references
    and checks the fields again, so that connection ends (or goes on)
    and the process lives."""
    def app(environ, start_response):
        body = [b"x" * 100000]
        if environ["PATH_INFO"] == "/hook":
            reply = start_response.__self__
            conn = reply.conn
            real_srv, real_sock = conn.srv, conn.sock

            class Srv:
                def __getattr__(self, name):
                    return getattr(real_srv, name)

                @property
                def draining(self):
                    if hook == "draining-drops-status":
                        del reply.status
                    elif hook == "draining-empties-the-body":
                        body.clear()
                    elif hook == "sendall-drops-sock" and conn.out == []:
                        conn.out.append(b"")     # a second flush
                    return False

                @property
                def environ(self):
                    if hook == "environ-drops-buf":
                        del conn.buf
                    return real_srv.environ

            class Sock:
                def __getattr__(self, name):
                    return getattr(real_sock, name)

                def sendall(self, data, *args, **kwargs):
                    r = real_sock.sendall(data, *args, **kwargs)
                    if data == b"" and hook == "sendall-drops-sock":
                        del conn.sock
                    return r

            conn.srv = Srv()
            conn.sock = Sock()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return body

    with running(app) as lst:
        with connect(lst) as c:
            c.sendall(get("/hook", close=False) + get("/", close=False) +
                      get("/"))
            c.recvall(timeout=5)
        rs = split(talk(lst, get("/", close=False) + get("/")))
        assert [len(r.body) for r in rs] == [100000, 100000]
    capfd.readouterr()


def test_hooks_that_drop_their_own_object_or_the_environ(capfd):
    """A server wrapper whose attribute lookup drops the last reference
    to itself, and an access-log lookup that drops the reply's environ:
    the loop holds its own references across both."""
    import io

    def app(environ, start_response):
        reply = start_response.__self__
        conn = reply.conn
        real = conn.srv
        if environ["PATH_INFO"] == "/self":
            class Srv:
                def __getattribute__(self, name):
                    if name == "draining":
                        conn.srv = real          # the last reference
                        raise AttributeError(name)
                    return getattr(real, name)

                def __getattr__(self, name):
                    [bytearray(64) for _ in range(1000)]
                    return getattr(real, name)

            conn.srv = Srv()
        elif environ["PATH_INFO"] == "/log":
            reply.environ = dict(environ)        # the reply's only
            base = type(real)

            class Sub(base):
                @property
                def log_access(self):
                    del reply.environ
                    real.__class__ = base
                    return base.log_access.__get__(self)

            real.__class__ = Sub
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hi"]

    log = io.StringIO()
    with running(app, access_log=log) as lst:
        for path in ("/self", "/log"):
            # (that connection may end: the Python loop needs the
            # environ it lost; the compiled one holds its own)
            talk(lst, get(path, close=False) + get("/"))
            rs = split(talk(lst, get("/", close=False) + get("/")))
            assert [r.body for r in rs] == [b"hi", b"hi"], path
    capfd.readouterr()
