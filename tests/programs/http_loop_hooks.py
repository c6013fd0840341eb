"""Hooks that run Python code inside the compiled WSGI loop at odd points
and free or drop what it was using (run with ``python -X dev``, which
poisons freed memory: a borrowed reference used after that crashes).
Prints "lived" when the process survives all of them.  Used by
tests/test_http_speedups.py."""
import gc
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from http_helpers import get, running, talk       # noqa: E402
from socket2 import _http_speedups                # noqa: E402
from socket2.http import _input, wsgi             # noqa: E402

assert wsgi.COMPILED, "run without SOCKET2_PURE_PYTHON"
OK = [("Content-Length", "2")]


def hello(environ, start_response):
    start_response("200 OK", OK)
    return [b"hi"]


def start_response_property_drops_the_environ():
    """A start_response property that deletes the reply's environ."""
    Reply = wsgi.Reply
    base = Reply.__mro__[1].start_response

    def evil(self):
        del self.environ
        return base.__get__(self)

    def app(environ, start_response):
        Reply.start_response = property(evil)
        return hello(environ, start_response)

    try:
        with running(app) as lst:
            talk(lst, get("/", close=False) + get("/"))
    finally:
        del Reply.start_response


def finalizer_drops_out_during_an_allocation():
    """A collection run by an allocation calls a finalizer that deletes
    the connection's out list."""
    class Bomb:
        def __del__(self):
            del self.conn.out

    def app(environ, start_response):
        conn = start_response.__self__.conn
        real = conn.srv

        class Srv:
            calls = 0

            def __getattr__(self, name):
                return getattr(real, name)

            @property
            def draining(self):
                Srv.calls += 1
                if Srv.calls == 2:
                    gc.disable()
                    b = Bomb()
                    b.conn = conn
                    b.cycle = b
                    del b
                    gc.set_threshold(1)
                    gc.enable()
                return real.draining

        if not hasattr(conn.srv, "calls"):
            conn.srv = Srv()
        return hello(environ, start_response)

    threshold = gc.get_threshold()
    try:
        with running(app) as lst:
            talk(lst, get("/", close=False) + get("/"))
    finally:
        gc.set_threshold(*threshold)


def after_lookup_replaces_the_empty_body():
    """The after() lookup (a property) configures another EMPTY and drops
    the old one's last references."""
    Conn = wsgi.Connection
    saved = wsgi.EMPTY

    def use_body(self, r, environ, body, keep):
        type(body)
        return False

    def getter(self):
        new = type(wsgi.EMPTY)()
        _http_speedups.configure(wsgi.BODIES, wsgi.protocol_error,
                                 wsgi.Reply, new, wsgi._CHECKED, wsgi.Error,
                                 wsgi._SLOW)
        wsgi.EMPTY = _input.EMPTY = new
        return use_body.__get__(self)

    def app(environ, start_response):
        reply = start_response.__self__
        reply.body = None
        del environ["wsgi.input"]
        reply.conn.client_error = (400, "x")
        Conn.after = property(getter)
        return hello(environ, start_response)

    real_after = Conn.__dict__["after"]
    try:
        with running(app) as lst:
            talk(lst, get("/"))
    finally:
        Conn.after = real_after
        _http_speedups.configure(wsgi.BODIES, wsgi.protocol_error,
                                 wsgi.Reply, saved, wsgi._CHECKED,
                                 wsgi.Error, wsgi._SLOW)
        wsgi.EMPTY = _input.EMPTY = saved


def negative_reply_length():
    """The application sets its reply's length below zero."""
    for n in (-5, -1, -100):
        def app(environ, start_response, n=n):
            start_response("200 OK", [])
            start_response.__self__.length = n
            return [b"hi"]

        with running(app) as lst:
            talk(lst, get("/"))


for case in (negative_reply_length,
             start_response_property_drops_the_environ,
             finalizer_drops_out_during_an_allocation,
             after_lookup_replaces_the_empty_body):
    case()
print("lived")
