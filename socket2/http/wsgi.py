"""One HTTP/1.1 connection of the WSGI server (PEP 3333): read a request
head, build its environ, call the application, write its response; again
while the connection stays open.

The loop is straight-line: a connection is a socket2 thread, so a wait is
a plain call.  Its buffer is ``bytes`` plus an offset; a ``recv`` lands in
the server's scratch buffer (one per serve(), its connections share an OS
thread and none switches between a ``recv`` and the copy of what it got),
so an idle connection holds no buffer at all.

Deadlines that almost never fire -- an idle keep-alive connection's
``keepalive_timeout``, a response write's ``send_timeout`` -- are not
timers: the connection writes ``deadline`` (a clock value) before it waits
and clears it after, and the server's sweeper (server.py) closes any
connection whose deadline has passed, which wakes its wait.  A request
then costs no timer at all, and its reads and writes take the compiled
hot path.  The rarer waits (a head or body arriving in pieces) use the
socket's own ``timeout=``/``expires=``.

Pipelining: a response whose whole body is at hand when the next request
is already in the buffer is queued, and the queue is written in one
``sendall`` before the connection waits for anything (a read, a ``100
Continue``, a streamed body): responses go out in order, together.
"""
import re
import sys
import traceback
from urllib.parse import unquote_to_bytes

from greenlet import getcurrent

from ..errors import Error, TimeoutError
from ..hub import clock, get_hub
from . import _parser
from ._heads import BODIES, BODY_NONE
from ._input import EMPTY, Input
from ._parser_py import _host_ok
from .errors import ProtocolError, protocol_error
from ._reply import _CHECKED, FileWrapper, Reply, status_line

__all__ = ["Connection", "FileWrapper", "HeadReader", "COMPILED"]

# Header name (lowercased bytes, as the parser gives it) -> environ key, or
# None for names the server drops: a name with "_" would collide with its
# "-" twin in the environ (the CVE-2015-0219 class).
_KEYS = {b"content-type": "CONTENT_TYPE", b"content-length": "CONTENT_LENGTH"}
_KEYS_MAX = 4096             # names cached, each at most 64 bytes long
# An absolute-form target: http(s), an authority without userinfo, then
# the path and query (if any).
_ABSOLUTE = re.compile(rb"(?i)https?://([^/?#@]+)([/?][^#]*)?")


def _key(name):
    key = _KEYS.get(name)
    if key is None and name not in _KEYS:
        key = None if b"_" in name else \
            "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
        if len(_KEYS) < _KEYS_MAX and len(name) <= 64:
            _KEYS[name] = key
    return key


class HeadReader:
    """Reads a connection's request heads (one per serve(): it owns the
    parser's arrays).  ``read(buf, pos, base, remote)`` returns the head
    at ``buf[pos:]`` (None while incomplete; :class:`ProtocolError` when
    invalid).

    This is the Python twin: its heads carry ``environ = None`` and the
    connection builds the environ (:meth:`Connection.environ`).  The
    compiled one (``socket2/ffi/http_speedups.c``) returns heads whose
    ``environ`` is already built, the same dict, from the base entries
    *base* and ``remote = (REMOTE_ADDR, REMOTE_PORT)``."""

    __slots__ = ("request",)

    def __init__(self, max_line, max_header_bytes, max_headers, keys=None,
                 key_fn=None):
        self.request = _parser.HeadParser(max_line, max_header_bytes,
                                          max_headers).request

    def read(self, buf, pos, base, remote):
        return self.request(buf, pos)


def _peer_address(sock):
    """``(REMOTE_ADDR, REMOTE_PORT)`` of a connection (empty for a unix
    socket)."""
    try:
        # (a TLSSocket's address is its raw socket's)
        peer = getattr(sock, "_sock", sock).getpeername()  # one system call
        port = peer.port()
    except (Error, OSError, TypeError, AttributeError):
        return ("", "")
    if port is None:
        return ("", "")      # a unix socket: no address, no port
    return (peer.ip(), str(port))


# What the compiled loop returns when the next step is the Python loop's.
_SLOW = object()

COMPILED = False
if _parser.COMPILED:         # the compiled request path rides with the parser
    try:
        from .. import _http_speedups
    except ImportError:      # a source tree (or an OS) that did not build it
        _http_speedups = None
    if _http_speedups is not None:
        _http_speedups.configure(BODIES, protocol_error, Reply, EMPTY,
                                 _CHECKED, Error, _SLOW)

        class HeadReader(_http_speedups.HeadReader):   # noqa: F811
            __doc__ = HeadReader.__doc__
            __slots__ = ()

            def __init__(self, max_line, max_header_bytes, max_headers,
                         keys=_KEYS, key_fn=_key):
                super().__init__(max_line, max_header_bytes, max_headers,
                                 keys, key_fn)

        if hasattr(_http_speedups, "peer_address"):
            _peer_py = _peer_address

            def _peer_address(sock, _c=_http_speedups.peer_address):  # noqa
                """(compiled: the address the compiled accept() kept, or
                getpeername, and inet_ntop in one C call)"""
                kept = getattr(sock, "_peer_sockaddr", None)
                if kept is not None:
                    peer = _c(kept())
                    if peer is not None:
                        return peer
                return _c(sock.fileno()) or _peer_py(sock)
        COMPILED = True


HEAD_SLICE = 1.0     # see Connection.head_wait


class ConnBase:
    """A connection's fields and their start: the Python twin of the C
    ``ConnBase`` (socket2/ffi/http_speedups.c), which adds
    ``_serve_simple()``: the request loop of :class:`Connection` for the
    common request, in C."""

    __slots__ = ("sock", "srv", "buf", "pos", "out", "remote", "served",
                 "idle", "gone", "deadline", "client_error", "linger",
                 "flush_timer", "flusher", "fast")

    def __init__(self, sock, srv):
        self.sock = sock
        self.srv = srv
        self.buf = b""
        self.pos = 0
        self.out = []
        self.served = 0
        self.idle = False
        self.gone = False            # a read or write on it failed
        self.deadline = None         # the sweeper closes it past this
        self.client_error = None     # (status, why): the client's failure
        self.linger = False          # unread bytes may follow: see close()
        self.flush_timer = None      # writes held responses if an app parks
        self.flusher = None          # the thread that timer started
        self.fast = srv.fast         # the compiled loop's settings, or None
        self.remote = _peer_address(sock)


if COMPILED:
    # (its __init__, in C, takes the peer from what accept() kept, else
    # from _peer_address)
    _http_speedups.configure_peer(_peer_address)
    ConnBase = _http_speedups.ConnBase          # noqa: F811


class Connection(ConnBase):
    """One client connection: its buffer, its pending output, and the
    request loop (:meth:`run`).

    Compiled, ``_serve_simple()`` (C) runs the loop while requests are
    plain: an origin-form target, no body, an application returning a
    list of one ``bytes`` whose ``start_response`` call was seen before.
    It returns a head it parsed but leaves to :meth:`respond`, None when
    the connection should close, or ``_SLOW`` for :meth:`next_head` to
    take over (a head arriving in pieces, an invalid one).  Each step it
    takes is the step of the Python methods here, in the same order."""

    __slots__ = ()

    # -- the loop --------------------------------------------------------------

    def run(self):
        """Serve requests until the connection ends (an error on it ends it
        quietly: a client that goes away is no server failure)."""
        try:
            simple = self._serve_simple if self.fast is not None else None
            while True:
                if simple is not None:
                    head = simple()
                    if head is _SLOW:
                        head = self.next_head()
                else:
                    head = self.next_head()
                if head is None or not self.respond(head):
                    break
            if self.out or self.flush_timer is not None or \
                    self.flusher is not None:
                self.flush()             # (only when it has work: a call)
            if self.linger:
                self.lingering_close()
        except Error:
            pass

    def lingering_close(self):
        """Closing a socket whose receive queue holds unread bytes makes
        the kernel send a reset, which can destroy the response still on
        its way to the client: so after a response that left a body
        unread, say we are done (FIN or close_notify) and read and drop
        what the client still sends, for up to 2 s and 16 MiB (a request
        body of a few MiB still in flight is let through), before the
        caller closes."""
        sock = self.sock
        if hasattr(sock, "unwrap"):           # TLS: close_notify
            sock.shutdown(timeout=1)
        else:
            sock.shutdown("w")
        deadline = self.srv.clock() + 2.0
        dropped = 0
        while dropped < (16 << 20):
            try:
                data = self.receive(expires=deadline)
            except TimeoutError:
                return
            if not data:
                return
            dropped += len(data)

    def next_head(self):
        """The next request's head, or None when the connection should
        close (idle past keepalive_timeout, closed by the client, the
        server draining, or a bad request already answered)."""
        srv = self.srv
        read = srv.reader.read
        deadline = None
        while True:
            buf, pos = self.buf, self.pos
            if pos < len(buf):
                try:
                    head = read(buf, pos, srv.environ, self.remote)
                except ProtocolError as e:
                    self.flush()
                    self.linger = True
                    self.refuse(e.status, str(e))
                    return None
                if head is not None:
                    self.pos = head.end
                    return head
                if deadline is None:
                    deadline = srv.clock() + srv.limits.header_timeout
                buf = buf[pos:]
                while True:
                    try:
                        data = self.receive(expires=self.head_wait(deadline))
                    except TimeoutError:
                        now = srv.clock()
                        if now < deadline and (not srv.draining or
                                               now < srv.drained_by):
                            continue     # a slice: look at draining again
                        self.refuse(408, "request head not received within "
                                    "header_timeout" if not srv.draining else
                                    "request head not complete as the "
                                    "server stopped")
                        return None
                    if not data:
                        return None      # closed in the middle of a head
                    buf += data
                    # Parse again only once a line ended (or the head grew
                    # past its limits): a head trickled a byte at a time
                    # costs a parse per line, not one per byte.
                    if b"\n" in data or len(buf) > srv.head_max:
                        break
                self.buf, self.pos = buf, 0
                continue
            self.flush()
            if srv.draining:
                return None
            self.idle = True
            # A TLS connection's thread starts with its handshake, so its
            # first request has not been waited for yet: header_timeout.
            self.deadline = srv.clock() + (
                srv.limits.keepalive_timeout if self.served
                else srv.limits.header_timeout)
            try:
                data = self.receive()
            finally:
                self.idle = False
                self.deadline = None
            if not data:
                return None
            self.buf, self.pos = data, 0
            deadline = None

    def head_wait(self, deadline):
        """Until when the rest of a head is waited for: its *deadline*,
        looked at again every HEAD_SLICE seconds (a stop may begin), and
        once the server drains, at most until its drained_by.  (A head
        that arrives whole never gets here.)"""
        srv = self.srv
        if srv.draining:
            return min(deadline, srv.drained_by or srv.clock())
        return min(deadline, srv.clock() + HEAD_SLICE)

    # -- reading and writing ---------------------------------------------------

    def receive(self, timeout=None, expires=None):
        """One recv() worth of bytes (b'' when the client closed); pending
        responses are written first."""
        if self.out:
            self.flush()
        srv = self.srv
        try:
            if timeout is None and expires is None:
                n = self.sock.recv(srv.scratch)      # the compiled path
            else:
                n = self.sock.recv(srv.scratch, timeout=timeout,
                                   expires=expires)
        except TimeoutError:
            # A slow client is not gone: its answer (408) still goes out,
            # and the close after it lingers (a reset would destroy it).
            raise
        except Error:
            self.gone = True
            raise
        return srv.view[:n].tobytes()

    def expire(self):
        """The sweeper found it past its deadline: close it (its wait ends
        with Error('closed'), and the loop ends quietly)."""
        self.gone = True
        self.sock.close()

    def take_buffered(self):
        """What the buffer holds past the head (the start of a body)."""
        buf, pos = self.buf, self.pos
        self.buf, self.pos = b"", 0
        return buf[pos:] if pos else buf

    def give_back(self, data):
        """Bytes read past the end of a body: the next request's."""
        self.buf, self.pos = data + self.buf[self.pos:], 0

    def hold_while_app_runs(self):
        """Responses are held (pipelining: the next request was already
        here) while an application runs: if it parks (waits for anything),
        the hub writes them out meanwhile, so a slow application never
        delays the answers to the requests before it.  One timer per
        batch, due at once: it fires only when this thread parks."""
        if self.flush_timer is None and self.flusher is None:
            self.flush_timer = get_hub().call_at(clock(), self._flush_held)

    def _flush_held(self):
        """(Its own thread, started by the timer.)"""
        self.flush_timer = None
        out = self.out
        if not out or self.gone:
            return
        self.flusher = getcurrent()
        data = b"".join(out)
        out.clear()
        try:
            self._write(data)
        except Error:
            self.gone = True         # the application's writes fail next
        finally:
            if self.flusher is getcurrent():
                self.flusher = None

    def settle(self):
        """No held-response flush pending or running from here on (it is
        waited for: what it writes goes first)."""
        timer = self.flush_timer
        if timer is not None:
            self.flush_timer = None
            timer.cancel()
        flusher = self.flusher
        if flusher is not None:
            self.flusher = None
            if not flusher.dead:
                flusher.join()
            if self.gone:
                raise Error("closed", "the connection failed while its "
                            "held responses were written")

    def send(self, data):
        """Write *data* after the queued responses (and after those a
        held-response flush is writing)."""
        if self.flush_timer is not None or self.flusher is not None:
            self.settle()
        out = self.out
        if out:
            out.append(data)
            data = b"".join(out)
            out.clear()
        self._write(data)

    def _write(self, data):
        """Write *data*.

        ``send_timeout`` bounds each stall: a piece up to 64 KiB goes out
        in one ``sendall`` (compiled) within it; a larger one in as many
        ``send`` calls as the client's reading allows, each progress
        earning time back as a request body's does (_input.py), so a
        client reading slower than 1 KiB/s on average runs out of it."""
        srv = self.srv
        clock = srv.clock
        stall = srv.limits.send_timeout
        try:
            if len(data) <= 65536:
                self.deadline = clock() + stall
                self.sock.sendall(data)
                return
            view = memoryview(data)
            budget = stall
            sent = 0
            while sent < len(data):
                t0 = clock()
                self.deadline = t0 + min(budget, stall)
                n = self.sock.send(view[sent:])
                sent += n
                budget = min(stall, budget - (clock() - t0) + n / 1024)
                if budget <= 0:
                    self.expire()
        except Error:
            self.gone = True
            raise
        finally:
            self.deadline = None

    def send_interim(self, data):
        """An interim response (100 Continue): after every queued one."""
        self.out.append(data)
        self.flush()

    def flush(self):
        """Write the queued responses."""
        out = self.out
        if out:
            data = out.pop() if len(out) == 1 else b""
            self.send(data)
        elif self.flush_timer is not None or self.flusher is not None:
            self.settle()

    def refuse(self, status, why, environ=None):
        """Answer a request that never reaches the application (or whose
        application failed before its head), and close."""
        body = ("%d %s: %s\n" % (status, status_line(status)[4:], why)
                ).encode("latin-1", "replace")
        try:
            self.send(b"".join((
                b"HTTP/1.1 ", status_line(status).encode("latin-1"),
                b"\r\nContent-Type: text/plain\r\nContent-Length: ",
                str(len(body)).encode(), b"\r\nConnection: close\r\n",
                b"Date: ", self.srv.date(), b"\r\n\r\n", body)))
        except Error:
            self.gone = True
        self.srv.log_access(self, environ, status, len(body))

    # -- one request ---------------------------------------------------------

    def respond(self, head):
        """Run the application for *head*; True if the connection may
        carry another request."""
        srv = self.srv
        limits = srv.limits
        self.served += 1
        # A request refused here leaves its body (and what follows it)
        # unread: each refusal's close lingers, so the client reads it.
        if head.expect_unknown:
            self.linger = True
            self.refuse(417, "unsupported Expect")
            return False
        if head.method == b"CONNECT":
            self.linger = True
            self.refuse(405, "CONNECT is not served here")
            return False
        if limits.max_body is not None and head.content_length is not None \
                and head.content_length > limits.max_body:
            self.linger = True
            self.refuse(413, "request body larger than max_body")
            return False
        environ = head.environ       # compiled: built with the head
        if environ is None:
            environ = self.environ(head)
        if environ is None:
            self.linger = True
            self.refuse(400, "request target is not origin-form, an "
                        "http(s) absolute URI, or * (RFC 9112 3.2)")
            return False
        body = EMPTY if head.body is BODY_NONE else Input(self, head, limits)
        environ["wsgi.input"] = body
        keep = head.keep_alive and not srv.draining
        if limits.max_requests_per_connection is not None and \
                self.served >= limits.max_requests_per_connection:
            keep = False
        r = Reply(self, head, environ, keep, body)
        if self.out:
            self.hold_while_app_runs()
        keep = r.run(srv.app)
        return self.after(r, environ, body, keep)

    def after(self, r, environ, body, keep):
        """A request's end (its reply *r* returned *keep*): whether the
        connection may carry another one."""
        if self.client_error is not None:
            # The client failed its body (even if the app caught it).
            self.linger = not self.gone
            if not r.head_sent:
                self.refuse(*self.client_error, environ=environ)
            return False
        if not body.finished:
            if keep:
                keep = body.drain()
            self.linger = not keep
        return keep

    def environ(self, head):
        """The WSGI environ of a request (PEP 3333)."""
        env = self.srv.environ.copy()
        env["REMOTE_ADDR"], env["REMOTE_PORT"] = self.remote
        env["REQUEST_METHOD"] = head.method.decode("latin-1")
        target = head.target
        env["RAW_URI"] = env["REQUEST_URI"] = raw = target.decode("latin-1")
        env["SERVER_PROTOCOL"] = "HTTP/1.1" if head.version == 11 \
            else "HTTP/1.0"
        authority = None
        if target[:1] != b"/":
            if target == b"*":
                env["PATH_INFO"], env["QUERY_STRING"] = "*", ""
                target = None
            else:
                # absolute-form (RFC 9112 3.2.2): the authority replaces
                # Host; the scheme stays the transport's (a client cannot
                # make a plain request look like https).
                m = _ABSOLUTE.fullmatch(target)
                if m is None:
                    return None
                authority, target = m.group(1), m.group(2) or b"/"
                if not _host_ok(authority, 0, len(authority)):
                    return None     # what a Host header may not be either
                if target[:1] == b"?":
                    target = b"/" + target
        if target is not None:
            path, q, query = target.partition(b"?")
            env["QUERY_STRING"] = query.decode("latin-1") if q else ""
            env["PATH_INFO"] = (unquote_to_bytes(path) if b"%" in path
                                else path).decode("latin-1")
        for name, value in head.headers:
            key = _KEYS[name] if name in _KEYS else _key(name)
            if key is None or key == "CONTENT_LENGTH":
                continue
            value = value.decode("latin-1")
            if key in env:
                if key == "HTTP_COOKIE":
                    value = env[key] + "; " + value
                elif key[:5] == "HTTP_":
                    value = env[key] + "," + value
            env[key] = value
        if head.content_length is not None and head.body is not BODY_NONE:
            # The parser's one value ("5, 5" is 5), as the app must read.
            env["CONTENT_LENGTH"] = str(head.content_length)
        if authority is not None:
            env["HTTP_HOST"] = authority.decode("latin-1")
        return env

    # -- errors ------------------------------------------------------------------

    def report(self, environ):
        """An application error: its traceback to wsgi.errors."""
        errors = environ.get("wsgi.errors") or sys.stderr
        try:
            errors.write("socket2.http: error in the application serving "
                         "%s %s:\n%s" % (
                             environ.get("REQUEST_METHOD"),
                             environ.get("RAW_URI"),
                             traceback.format_exc()))
            errors.flush()
        except Exception:            # noqa: BLE001 - a broken log stream
            pass

