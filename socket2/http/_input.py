"""``wsgi.input``: a request body as the application reads it.

The body comes out of the connection's read buffer first, then from the
socket, decoded from ``Content-Length`` or chunked framing, and ends with
``b''`` (``wsgi.input_terminated``).  Reading never goes past the body, so
the next request on the connection is never read from the middle of one.

- ``Expect: 100-continue``: ``100 Continue`` goes out on the first read,
  never otherwise (an application that answers without reading gets no
  body sent, and the connection closes after its response).
- ``Limits.body_timeout`` is a budget for the time spent *waiting* for
  body bytes, across all reads of one body: a client trickling a byte a
  second runs out of it, one that sends at any useful rate never does.
  Past it, ``socket2.TimeoutError`` is raised and the connection closes.
- ``Limits.max_body``: a chunked body that grows past it raises
  :class:`BodyTooLarge` (the server answers 413 if it still can).
"""
from ..errors import Error, TimeoutError
from ..hub import clock
from ._parser import ChunkedDecoder

__all__ = ["Input", "BodyTooLarge", "EMPTY"]

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
DRAIN_LIMIT = 65536          # bytes of an unread body read to reuse the
DRAIN_SECONDS = 5.0          # connection, and the time they may take


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
                 "_continue", "_budget", "_max", "_total")

    def __init__(self, conn, head, limits):
        self._conn = conn
        self._continue = head.expect_continue
        self._budget = limits.body_timeout
        self._max = limits.max_body
        self._total = 0
        self._pending = b""          # decoded bytes not handed out yet
        if head.content_length is not None:
            self._left = head.content_length
            self._chunks = None
            self._done = self._left == 0
        else:
            self._left = None
            self._chunks = ChunkedDecoder()
            self._done = False

    @property
    def finished(self):
        """The whole body was read (the connection is at the next
        request)."""
        return self._done and not self._pending

    @property
    def started(self):
        """False while an ``Expect: 100-continue`` was not answered: the
        client may not have sent the body at all."""
        return not self._continue

    # -- what the application calls ----------------------------------------

    def read(self, size=-1):
        """Up to *size* bytes of the body (all that is left with
        ``size < 0`` or None); ``b''`` at its end."""
        if size is None or size < 0:
            parts = [self._take(-1)]
            while not self._done:
                self._more()
                parts.append(self._take(-1))
            return b"".join(parts)
        if size == 0:
            return b""
        while not self._pending and not self._done:
            self._more()
        return self._take(size)

    def readline(self, size=-1):
        """One line, ``b'\\n'`` included (at most *size* bytes)."""
        if size is None:
            size = -1
        while True:
            i = self._pending.find(b"\n")
            if i >= 0 and (size < 0 or i < size):
                return self._take(i + 1)
            if 0 <= size <= len(self._pending) or self._done:
                return self._take(size)
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
        """Whether the connection can still carry another request after
        the response (asked when the response head goes out): not if the
        client may not have sent the body (100-continue never answered),
        or if what is left is more than the server drains."""
        if self._continue:
            return False
        return self._left is None or self._left <= DRAIN_LIMIT

    def drain(self, limit=DRAIN_LIMIT, seconds=DRAIN_SECONDS):
        """Read and drop what is left of the body, up to *limit* bytes
        within *seconds*; True if the body ended (the connection can carry
        another request)."""
        if self._continue:
            return self._done and not self._pending
        self._pending = b""
        self._budget = min(self._budget, seconds)
        dropped = 0
        try:
            while not self._done:
                if self._left is not None and self._left > limit - dropped:
                    return False
                self._more()
                dropped += len(self._pending)
                self._pending = b""
                if dropped > limit:
                    return False
        except (Error, BodyTooLarge):
            return False
        return True

    def _take(self, size):
        p = self._pending
        if size < 0 or size >= len(p):
            self._pending = b""
            return p
        self._pending = p[size:]
        return p[:size]

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
        while True:
            pos, out = self._chunks.decode(data)
            if pos or out or self._chunks.done:
                break
            # Only part of a size line (or CRLF, or trailer line): those
            # are consumed whole, so wait for the rest of it.
            data += self._receive()
        if pos < len(data):
            conn.give_back(data[pos:])
        self._done = self._chunks.done
        if out:
            self._total += len(out)
            if self._max is not None and self._total > self._max:
                raise BodyTooLarge(self._max)
            self._pending += out

    def _receive(self):
        if self._budget <= 0:
            raise TimeoutError("timeout", "request body not received "
                               "within body_timeout")
        t0 = clock()
        try:
            data = self._conn.receive(self._budget)
        except TimeoutError:
            self._budget = 0
            raise TimeoutError("timeout", "request body not received "
                               "within body_timeout") from None
        finally:
            self._budget -= clock() - t0
        if not data:
            raise Error("eof", "client closed the connection in the middle "
                        "of the request body")
        return data


class _Empty:
    """``wsgi.input`` of a request without a body."""
    __slots__ = ()
    finished = started = True

    def may_keep(self):
        return True

    def read(self, size=-1):
        return b""

    def readline(self, size=-1):
        return b""

    def readlines(self, hint=-1):
        return []

    def __iter__(self):
        return iter(())

    def drain(self, limit=DRAIN_LIMIT, seconds=DRAIN_SECONDS):
        return True


EMPTY = _Empty()
