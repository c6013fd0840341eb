"""``socket2.http.serve()``: a WSGI server (PEP 3333) on a socket2 listener.

Each connection is a socket2 thread (socket2.serve() accepts; a thread
starts when its connection first has bytes to read); the loop of one
connection is socket2/http/wsgi.py, the response socket2/http/_reply.py,
the request body socket2/http/_input.py.  Requests are parsed by the strict
parser of socket2/http/_parser.py, so malformed or ambiguous framing is
answered (400, 414, 431, 501, ...) and never reaches the application.

Stopping: closing the listener stops the accept loop; connections that
never sent anything and keep-alive connections waiting for their next
request are closed at once; a request in flight is finished and answered
with ``Connection: close``.  serve() returns when the last connection has
ended, so a caller bounds the drain by joining serve's thread with a
timeout and killing it past that (killing serve kills its connections).
"""
import sys
import time

from greenlet import getcurrent

from ..hub import clock, current, newthread, sleep
from ..serve import serve as _serve_connections
from ..sync import Event
from ._reply import FileWrapper
from .limits import Limits
from . import wsgi
from .wsgi import Connection, HeadReader

__all__ = ["serve"]

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep",
           "Oct", "Nov", "Dec")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def serve(listener, app, *, tls=None, tls_timeout=10, limits=None,
          access_log=None, environ=None):
    """Run the WSGI application *app* on the listening ``tcp`` *listener*
    until the listener is closed and the connections it accepted have
    ended: once it is closed, idle connections close at once, a request
    head still arriving gets a second more (then a 408), and requests in
    flight are finished (answered with ``Connection: close``).

    Each connection runs in its own thread: an application that waits
    (socket2 I/O, a patched library) lets the others go on.  *tls* is a
    server ``ssl.SSLContext`` (its ALPN is set to ``http/1.1``, the only
    protocol this server speaks); each TLS handshake must finish within
    *tls_timeout* seconds.  *limits* is a :class:`Limits` (default: the
    SPEC's).  *access_log* is None or a writable text stream (anything with
    ``write(str)``) that gets a Common Log Format line per request.
    *environ* is a dict of extra keys for every request's environ (say
    ``{'wsgi.multiprocess': True}`` when several processes serve, or a
    ``SCRIPT_NAME`` the application is mounted under).

    Raises ``TypeError``/``ValueError`` for a bad argument before serving.
    """
    if not callable(app):
        raise TypeError("app must be a WSGI application (a callable), not "
                        "%s" % type(app).__name__)
    if limits is None:
        limits = Limits()
    elif type(limits) is not Limits:
        raise TypeError("limits must be a socket2.http.Limits, not %s"
                        % type(limits).__name__)
    if access_log is not None and not callable(getattr(access_log, "write",
                                                       None)):
        raise TypeError("access_log must have a write(str) method (a text "
                        "stream such as sys.stderr), not %s"
                        % type(access_log).__name__)
    if tls is not None:
        import ssl                   # deferred: plain HTTP never loads ssl
        if isinstance(tls, ssl.SSLContext):
            tls.set_alpn_protocols(["http/1.1"])
    if environ is not None and not isinstance(environ, dict):
        raise TypeError("environ must be a dict of extra environ keys, not "
                        "%s" % type(environ).__name__)
    srv = _Server(listener, app, limits, access_log, tls is not None)
    if environ:
        srv.environ.update(environ)
    if wsgi.COMPILED:
        # (each request's environ is a copy of it, plus ~10 keys and one
        # per header: a copy keeps the table, so none has to grow)
        srv.environ = wsgi._http_speedups.roomy(srv.environ, 30)
    sweeper = newthread(_sweep, srv)
    try:
        _serve_connections(listener, _connection, srv, tls=tls,
                           tls_timeout=tls_timeout,
                           silent_timeout=limits.header_timeout,
                           make_room=srv.make_room)
        srv.drain()
    finally:
        sweeper.kill()
        srv.stop()


def _sweep(srv):
    """Close the connections past their deadline (wsgi.py: the idle and
    send deadlines are checked here, not by a timer per wait)."""
    limits = srv.limits
    every = min(1.0, limits.keepalive_timeout / 4, limits.send_timeout / 4)
    conns = srv.conns
    while True:
        sleep(every)
        now = clock()
        expired = [c for c in conns if c.deadline is not None and
                   c.deadline <= now]
        for conn in expired:
            conn.expire()


def _connection(sock, srv):
    conn = Connection(sock, srv)
    # (current(), inlined: a call per connection; a connection's thread
    # is always a socket2 Thread)
    srv.conns[conn] = getcurrent()._s2_thread
    try:
        conn.run()
    finally:
        del srv.conns[conn]
        sock.close()
        if srv.draining and not srv.conns:
            srv.ended.set()


DRAIN_HEAD = 1.0     # seconds a head still coming gets once draining began


class _Server:
    """What every connection of one serve() shares."""

    def __init__(self, listener, app, limits, access_log, tls):
        self.app = app
        self.limits = limits
        self.access_log = access_log
        self.reader = HeadReader(limits.max_request_line,
                                 limits.max_header_bytes, limits.max_headers)
        # Every recv lands here, then is copied out before anything else
        # runs: connections of one serve() share one OS thread.
        self.head_max = limits.max_request_line + limits.max_header_bytes
        self.scratch = bytearray(65536)
        self.view = memoryview(self.scratch)
        self.clock = clock
        self.sendfile = not tls
        self.draining = False
        self.drained_by = None       # when a head still coming is cut off
        self.conns = {}              # Connection -> its thread
        self.ended = Event()
        self._date = (None, b"")
        host, port = _address(listener)
        self.environ = {
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "https" if tls else "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
            "wsgi.file_wrapper": FileWrapper,
            "SCRIPT_NAME": "",
            "SERVER_NAME": host,
            "SERVER_PORT": port,
            "SERVER_SOFTWARE": "socket2.http",
        }
        if tls:
            self.environ["HTTPS"] = "on"
        # The compiled request loop's settings (wsgi.Connection).
        self.fast = None if not wsgi.COMPILED else \
            wsgi._http_speedups.FastConfig(
                self, self.reader, app, self.scratch,
                limits.keepalive_timeout, limits.header_timeout,
                limits.send_timeout, limits.max_requests_per_connection,
                access_log is not None, clock)

    def date(self):
        """The Date header's value (RFC 9110 6.6.1), made once a second."""
        return self.date_line()[6:-2]

    def date_line(self):
        """``b'Date: ...\\r\\n'``."""
        now = int(time.time())
        if self._date[0] != now:
            t = time.gmtime(now)
            self._date = (now, ("Date: %s, %02d %s %04d %02d:%02d:%02d GMT"
                                "\r\n" % (_DAYS[t.tm_wday], t.tm_mday,
                                          _MONTHS[t.tm_mon - 1], t.tm_year,
                                          t.tm_hour, t.tm_min, t.tm_sec)
                                ).encode())
        return self._date[1]

    def log_access(self, conn, environ, status, size):
        """One Common Log Format line, when an access log was asked for."""
        log = self.access_log
        if log is None:
            return
        if environ is None:
            request = "-"
            host = conn.remote[0] or "-"
        else:
            request = "%s %s %s" % (environ["REQUEST_METHOD"],
                                    environ["RAW_URI"],
                                    environ["SERVER_PROTOCOL"])
            host = environ["REMOTE_ADDR"] or "-"
        t = time.localtime()
        off = t.tm_gmtoff // 60
        stamp = "%02d/%s/%04d:%02d:%02d:%02d %s%02d%02d" % (
            t.tm_mday, _MONTHS[t.tm_mon - 1], t.tm_year, t.tm_hour,
            t.tm_min, t.tm_sec, "-" if off < 0 else "+", abs(off) // 60,
            abs(off) % 60)
        try:
            log.write('%s - - [%s] "%s" %d %s\n' % (
                host, stamp, request.replace('"', "%22"), status,
                size if size else "-"))
        except Exception:            # noqa: BLE001 - a broken log stream
            pass

    def drain(self):
        """The listener closed: close idle connections, wait for the
        others to finish their request.  A connection whose request head
        is still coming gets DRAIN_HEAD seconds more for it (then a 408),
        not all of header_timeout: a client that sent a byte of a head
        must not hold the server's stop (wsgi.Connection.next_head)."""
        self.drained_by = clock() + DRAIN_HEAD
        self.draining = True
        for conn in list(self.conns):
            if conn.idle:
                conn.sock.close()
        if self.conns:
            self.ended.wait()

    def make_room(self):
        """Descriptors ran out and serve() had no silent connection to
        drop: close the keep-alive connection that has waited longest
        for its next request (as nginx reuses its idle keep-alive
        connections), so new clients are served; False if none waits."""
        oldest = None
        for conn in self.conns:
            if conn.idle and conn.deadline is not None and (
                    oldest is None or conn.deadline < oldest.deadline):
                oldest = conn
        if oldest is None:
            return False
        oldest.expire()
        return True

    def stop(self):
        """serve() ends (or was killed): end every connection left."""
        self.draining = True
        me = current()
        for t in list(self.conns.values()):
            if t is not me:
                t.kill()


def _address(listener):
    try:
        return str(listener.local_addr), str(listener.local_port)
    except Exception:                # noqa: BLE001 - a unix socket
        return "localhost", ""
