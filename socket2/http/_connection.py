"""One client connection: a socket2 stream, the bytes received on it, and
the three body readers (length / chunked / until-close).

A connection is in one of four states (httpcore's): *new* (just
opened), *active* (carrying a request), *idle* (in the pool, the last
response read to its end) or *closed*.  It receives into one buffer of
its own (``buf`` between ``start`` and ``end``); heads are parsed in
place by the compiled parser, bodies are cut out of the buffer or
received straight into the caller's memory.  Every wait is bounded by
the request's one deadline, passed down as ``expires=``.
"""
import select as _select

from ..errors import Error
from .errors import ProtocolError

__all__ = ["Connection", "NoResponse", "LengthReader", "ChunkedReader",
           "CloseReader", "BUFSIZE", "dropped", "drain", "tunnel"]

BUFSIZE = 65536
GROW_FROM = 1 << 20      # a body read whole is allocated at once up to
#                          this; a longer one grows with what arrives
REDIRECT_DRAIN = 65536   # a redirect's body is read up to this, else its
#                          connection is closed
NEW, ACTIVE, IDLE, CLOSED = "new", "active", "idle", "closed"

# Errors that mean "the server dropped this connection": on a reused
# connection, before any byte of the response, the request may be retried.
_DROPPED = frozenset(("connection_reset", "broken_pipe", "eof", "closed",
                      "connection_aborted", "not_connected", "tls"))


class NoResponse(Error):
    """The server closed the connection before sending any byte of a
    response (``err == 'no_response'``)."""

    def __init__(self, message="the server closed the connection without "
                               "sending a response"):
        super().__init__("no_response", message)


def dropped(exc):
    """Whether *exc* says the peer dropped the connection (as a server
    closing an idle keep-alive connection does)."""
    return isinstance(exc, NoResponse) or (
        isinstance(exc, Error) and getattr(exc, "err", None) in _DROPPED)


class Connection:
    """A keep-alive connection to one origin (or proxy) of a pool."""
    __slots__ = ("sock", "key", "buf", "view", "start", "end", "parser",
                 "state", "reused", "idle_since", "received", "tls",
                 "_poll", "__weakref__")

    def __init__(self, sock, key, parser):
        self.sock = sock
        self.key = key
        self.buf = bytearray(BUFSIZE)
        self.view = memoryview(self.buf)
        self.start = self.end = 0
        self.parser = parser         # the pool's (one per OS thread)
        self.state = NEW
        self.reused = False
        self.idle_since = 0.0
        self.received = 0            # bytes of the current response
        self.tls = False             # sock is a TLSSocket (see tls_pending)
        self._poll = None

    # -- sending ---------------------------------------------------------

    def send(self, data, deadline):
        """Send all of *data*."""
        if deadline is None:
            self.sock.sendall(data)
        else:
            self.sock.sendall(data, expires=deadline)

    # -- receiving -------------------------------------------------------

    def recv(self, deadline, limit=BUFSIZE):
        """Receive up to *limit* more bytes into the buffer; return the
        count (0: the peer closed)."""
        if self.start == self.end:
            self.start = self.end = 0
        elif self.end == len(self.buf):
            self._compact()
        end = self.end
        room = len(self.buf) - end
        v = self.view[end:end + (limit if limit < room else room)]
        n = self.sock.recv(v) if deadline is None \
            else self.sock.recv(v, expires=deadline)
        self.end = end + n
        self.received += n
        return n

    def _compact(self):
        start, end = self.start, self.end
        if start == 0:
            # The parser's limits refuse a head long before this.
            raise ProtocolError("a response line does not fit in %d bytes"
                                % len(self.buf))
        self.buf[:end - start] = bytes(self.view[start:end])
        self.start, self.end = 0, end - start

    def read_head(self, method, deadline):
        """Receive and parse the next response head (1xx included: the
        caller skips them).  Raises :class:`NoResponse` when the peer
        closed before any byte, :class:`ProtocolError` when it closed
        within the head or sent a malformed one."""
        parse = self.parser.response
        while True:
            if self.end > self.start:
                head = parse(self.view[:self.end], self.start, method)
                if head is not None:
                    self.start = head.end
                    return head
            if not self.recv(deadline):
                if self.received == 0:
                    raise NoResponse()
                raise ProtocolError(
                    "the server closed the connection in the middle of the "
                    "response head (after %d bytes)" % (self.end - self.start))

    def take(self, n):
        """Up to *n* buffered bytes, consumed."""
        start = self.start
        k = self.end - start
        if n < k:
            k = n
        self.start = start + k
        return bytes(self.view[start:start + k])

    # -- the pool's view -------------------------------------------------

    def reusable(self):
        """Whether it may carry another request: nothing left unread, in
        the buffer or inside TLS (bytes after a response are no one's
        answer: the next request would take them for its own)."""
        return self.state == ACTIVE and self.start == self.end \
            and not self.sock.closed \
            and not (self.tls and tls_pending(self.sock))

    def alive(self):
        """An idle connection that is readable is dead: the server closed
        it (or sent something nobody asked for)."""
        if self.sock.closed or self.tls and tls_pending(self.sock):
            return False
        p = self._poll
        if p is None:
            if not hasattr(_select, "poll"):       # Windows
                r, _, _ = _select.select([self.sock.fileno()], [], [], 0)
                return not r
            p = self._poll = _select.poll()
            p.register(self.sock.fileno(), _select.POLLIN)
        return not p.poll(0)

    def close(self):
        """Close the socket (idempotent)."""
        self.state = CLOSED
        self._poll = None
        self.sock.close()

    def __repr__(self):
        return "<Connection %s %s>" % (self.key[:3], self.state)


def tls_pending(sock):
    """Whether the TLS socket *sock* holds received bytes not read yet
    (decrypted ones, or the bio engine's encrypted ones): a poll() on the
    descriptor cannot see them."""
    return sock.pending() > 0


# ---------------------------------------------------------------------------
# Body readers: read(size, deadline) -> bytes (b'' at the end),
# read_all(deadline) -> bytes, done.


class LengthReader:
    """A body of ``Content-Length`` bytes."""
    __slots__ = ("conn", "remaining", "length")

    def __init__(self, conn, length):
        self.conn = conn
        self.length = self.remaining = length

    @property
    def done(self):
        return self.remaining == 0

    def _truncated(self):
        return ProtocolError(
            "truncated body: the server closed the connection after %d of "
            "%d bytes (Content-Length)" % (self.length - self.remaining,
                                           self.length))

    def read(self, size, deadline):
        rem = self.remaining
        if rem == 0:
            return b""
        c = self.conn
        if c.start == c.end:
            if not c.recv(deadline, rem if rem < size else size):
                raise self._truncated()
        data = c.take(rem if rem < size else size)
        self.remaining = rem - len(data)
        return data

    def read_all(self, deadline):
        c = self.conn
        n = self.remaining
        have = c.end - c.start
        if have >= n:
            self.remaining = 0
            return c.take(n)
        # The buffer grows with what arrives (doubling, up to n): the
        # server's Content-Length alone allocates nothing.
        out = bytearray(n if n <= GROW_FROM else max(have, GROW_FROM))
        out[:have] = c.view[c.start:c.end]
        c.start = c.end = 0
        got = have
        sock = c.sock
        while got < n:
            if got == len(out):
                out.extend(bytes(min(n, 2 * got) - got))
            mv = memoryview(out)[got:]
            r = sock.recv(mv) if deadline is None \
                else sock.recv(mv, expires=deadline)
            mv.release()            # (out may grow: no view of it left)
            if r == 0:
                self.remaining = n - got
                raise self._truncated()
            got += r
            c.received += r
        self.remaining = 0
        return bytes(out)


class ChunkedReader:
    """A ``Transfer-Encoding: chunked`` body."""
    __slots__ = ("conn", "decoder")

    def __init__(self, conn, decoder):
        self.conn = conn
        self.decoder = decoder

    @property
    def done(self):
        return self.decoder.done

    def read(self, size, deadline):
        c = self.conn
        d = self.decoder
        while not d.done:
            if c.end > c.start:
                c.start, data = d.decode(c.buf, c.start, c.end)
                if data:
                    return data
                if d.done:
                    break
            if not c.recv(deadline, size):
                raise ProtocolError(
                    "truncated chunked body: the server closed the "
                    "connection before the last chunk")
        return b""

    def read_all(self, deadline):
        parts = []
        while True:
            data = self.read(BUFSIZE, deadline)
            if not data:
                return b"".join(parts)
            parts.append(data)


class CloseReader:
    """A body that ends when the server closes the connection."""
    __slots__ = ("conn", "done")

    def __init__(self, conn):
        self.conn = conn
        self.done = False

    def read(self, size, deadline):
        if self.done:
            return b""
        c = self.conn
        if c.start == c.end and not c.recv(deadline, size):
            self.done = True
            return b""
        return c.take(size)

    def read_all(self, deadline):
        parts = []
        while True:
            data = self.read(BUFSIZE, deadline)
            if not data:
                return b"".join(parts)
            parts.append(data)


# ---------------------------------------------------------------------------
# Redirect bodies and proxy tunnels


def drain(r):
    """Read a redirect's (small) body so that its connection is reused;
    close the connection instead when it is large or fails."""
    reader = r._reader
    if reader is None:
        return
    if isinstance(reader, LengthReader) and reader.remaining \
            > REDIRECT_DRAIN:
        r.close()
        return
    try:
        got = 0
        while got <= REDIRECT_DRAIN:
            data = reader.read(65536, r._deadline)
            if not data:
                r._finish()
                return
            got += len(data)
    except Error:
        pass
    r.close()


def tunnel(conn, t, proxy, deadline):
    """``CONNECT host:port`` through the proxy on *conn*; raises
    ``Error('proxy')`` when the proxy refuses."""
    hostport = "%s:%d" % ("[%s]" % t.host if ":" in t.host else t.host,
                          t.port)
    lines = ["CONNECT %s HTTP/1.1\r\nHost: %s\r\n" % (hostport, hostport)]
    if proxy.auth:
        lines.append("Proxy-Authorization: %s\r\n" % proxy.auth)
    conn.send(("".join(lines) + "\r\n").encode("latin-1"), deadline)
    h = conn.read_head(b"CONNECT", deadline)
    if not 200 <= h.status < 300:
        raise Error("proxy", "the proxy %s refused CONNECT %s: %d %s" % (
            proxy.url, hostport, h.status, h.reason.decode("latin-1")))
    if conn.end > conn.start:
        raise ProtocolError("the proxy sent bytes after its answer to "
                            "CONNECT, before TLS started")
    conn.start = conn.end = conn.received = 0
