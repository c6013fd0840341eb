"""``wsgi.input``: a request body as the application reads it.

The body comes out of the connection's read buffer first, then from the
socket, decoded from ``Content-Length`` or chunked framing, and ends with
``b''`` (``wsgi.input_terminated``).  Reading never goes past the body, so
the next request on the connection is never read from the middle of one.

- ``Expect: 100-continue``: ``100 Continue`` goes out on the first read,
  never otherwise, and never once the response's head went out (an
  application that answers without reading gets no body sent, and the
  connection closes after its response).
- ``Limits.body_timeout`` bounds a stall: no wait for body bytes may last
  longer.  It is also a budget that slow bodies spend: each wait takes its
  time from the budget and each KiB received gives a second back (up to
  ``body_timeout``), so a body arriving slower than 1 KiB/s on average --
  a byte a second, say -- runs out, while any useful rate never does.
  Past it, the read raises ``socket2.TimeoutError`` and the server answers
  408 (if it still can) and closes.
- ``Limits.max_body``: a chunked body that grows past it raises
  :class:`BodyTooLarge` (the server answers 413 if it still can).

A failure of the client's -- a malformed chunk, the connection closed in
the middle of the body, the budget spent -- is recorded on the connection
(``Connection.client_error``), so the server answers it as the client's
fault (400, 408) without a traceback, even if the application caught the
exception.
"""
from ..errors import Error, TimeoutError
from ..hub import clock
from ._parser import ChunkedDecoder
from .errors import ProtocolError

__all__ = ["Input", "BodyTooLarge", "EMPTY"]

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
DRAIN_LIMIT = 65536          # bytes of an unread body read to reuse the
DRAIN_SECONDS = 5.0          # connection, and the time they may take
_EARN = 1.0 / 1024           # seconds of waiting each received byte earns


class BodyTooLarge(Error):
    """A request body went past ``Limits.max_body``."""

    def __init__(self, limit):
        super().__init__("protocol", "request body larger than max_body "
                         "(%d bytes)" % limit)
        self.limit = limit


class Input:
    """The body of one request (``wsgi.input``): ``read(size=-1)``,
    ``readline(size=-1)``, ``readlines(hint=-1)``, iteration by lines.
    Reads return ``b''`` at the end of the body."""

    __slots__ = ("_conn", "_left", "_chunks", "_pending", "_done",
                 "_continue", "_budget", "_stall", "_max", "_total",
                 "_scan")

    def __init__(self, conn, head, limits):
        self._conn = conn
        self._stall = self._budget = limits.body_timeout
        self._max = limits.max_body
        self._total = 0
        self._pending = bytearray()  # decoded bytes not handed out yet
        self._scan = 0               # _pending[:_scan] has no b"\n"
        if head.content_length is not None:
            self._left = head.content_length
            self._chunks = None
            self._done = self._left == 0
        else:
            self._left = None
            self._chunks = ChunkedDecoder()
            self._done = False
        self._continue = head.expect_continue and not self._done

    @property
    def finished(self):
        """The whole body was read (the connection is at the next
        request)."""
        return self._done and not self._pending

    # -- what the application calls ----------------------------------------

    def read(self, size=-1):
        """Up to *size* bytes of the body (all that is left with
        ``size < 0`` or None); ``b''`` at its end."""
        if size is None or size < 0:
            while not self._done:
                self._more()
            return self._take(-1)
        if size == 0:
            return b""
        while not self._pending and not self._done:
            self._more()
        return self._take(size)

    def readline(self, size=-1):
        """One line, ``b'\\n'`` included (at most *size* bytes)."""
        if size is None:
            size = -1
        p = self._pending
        while True:
            i = p.find(b"\n", self._scan)
            if i >= 0 and (size < 0 or i < size):
                return self._take(i + 1)
            if 0 <= size <= len(p) or self._done:
                return self._take(size)
            self._scan = len(p)      # searched: only new bytes next time
            self._more()

    def readlines(self, hint=-1):
        """The remaining lines (stopping once *hint* bytes were read)."""
        lines, total = [], 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                return lines

    def __iter__(self):
        return self

    def __next__(self):
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    # -- the server's side ---------------------------------------------------

    def may_keep(self):
        """Whether the connection can carry another request after the
        response; asked when the response head goes out (after which no
        ``100 Continue`` may be sent).  Not if the client may not have
        sent the body (100-continue never answered), nor if what is left
        of it is unknown (chunked) or more than the server drains."""
        keep = self._done or (not self._continue and self._left is not None
                              and self._left <= DRAIN_LIMIT)
        self._continue = False
        return keep

    def drain(self, limit=DRAIN_LIMIT, seconds=DRAIN_SECONDS):
        """Read and drop what is left of the body, up to *limit* bytes
        within *seconds*; True if the body ended (the connection can carry
        another request)."""
        del self._pending[:]
        self._budget = self._stall = min(self._stall, seconds)
        dropped = 0
        try:
            while not self._done:
                if self._left is not None and self._left > limit - dropped:
                    return False
                self._more()
                dropped += len(self._pending)
                del self._pending[:]
                if dropped > limit:
                    return False
        except Error:
            return False
        return True

    def _take(self, size):
        p = self._pending
        if size < 0 or size >= len(p):
            out = bytes(p)
            del p[:]
            self._scan = 0
            return out
        out = bytes(p[:size])
        del p[:size]                 # amortised O(1) at a bytearray's front
        self._scan = max(0, self._scan - size)
        return out

    def _more(self):
        """Decode at least one more piece of the body into _pending (or
        reach its end)."""
        conn = self._conn
        if self._continue:
            self._continue = False
            conn.send_interim(_CONTINUE)
        data = conn.take_buffered()
        if not data:
            data = self._receive()
        if self._chunks is None:
            left = self._left
            if len(data) > left:
                conn.give_back(data[left:])
                data = data[:left]
            self._left = left - len(data)
            self._done = self._left == 0
            self._pending += data
            return
        try:
            while True:
                pos, out = self._chunks.decode(data)
                if pos or out or self._chunks.done:
                    break
                # Only part of a size line (or CRLF, or trailer line):
                # those are consumed whole, so wait for the rest of it.
                data += self._receive()
        except ProtocolError as e:
            conn.client_error = (e.status, str(e))
            raise
        if pos < len(data):
            conn.give_back(data[pos:])
        self._done = self._chunks.done
        if out:
            self._total += len(out)
            if self._max is not None and self._total > self._max:
                conn.client_error = (413, "request body larger than "
                                     "max_body")
                raise BodyTooLarge(self._max)
            self._pending += out

    def _receive(self):
        conn = self._conn
        wait = min(self._budget, self._stall)
        if wait <= 0:
            return self._timed_out()
        t0 = clock()
        try:
            data = conn.receive(wait)
        except TimeoutError:
            return self._timed_out()
        except Error:
            conn.client_error = (400, "connection failed in the middle of "
                                 "the request body")
            raise
        self._budget = min(self._stall, self._budget - (clock() - t0) +
                           len(data) * _EARN)
        if not data:
            conn.client_error = (400, "client closed the connection in the "
                                 "middle of the request body")
            raise Error("eof", "client closed the connection in the middle "
                        "of the request body")
        return data

    def _timed_out(self):
        self._budget = 0
        self._conn.client_error = (408, "request body not received within "
                                   "body_timeout")
        raise TimeoutError("timeout", "request body not received within "
                           "body_timeout (stalled, or slower than 1 KiB/s)")


class _Empty:
    """``wsgi.input`` of a request without a body."""
    __slots__ = ()
    finished = True

    def read(self, size=-1):
        return b""

    def readline(self, size=-1):
        return b""

    def readlines(self, hint=-1):
        return []

    def __iter__(self):
        return iter(())

    def may_keep(self):
        return True

    def drain(self, limit=DRAIN_LIMIT, seconds=DRAIN_SECONDS):
        return True


EMPTY = _Empty()
