"""The response to one request: ``start_response``, the checks PEP 3333
asks of a server, the framing, and the writes.

Framing is decided once, when the head goes out:

- no body for ``HEAD``, 204 and 304 (the head keeps what the application
  said, its ``Content-Length`` included);
- the application's ``Content-Length`` when it gave one (a body longer
  than that is cut, a shorter one closes the connection: the client must
  not read the next response from the middle of this one);
- otherwise ``Content-Length`` when the whole body was at hand at once (a
  list or tuple, or a file whose size is known);
- otherwise chunked (HTTP/1.1), or until close (HTTP/1.0).

Headers are checked before anything is sent: ``str`` names that are tokens,
``str`` values without control characters (CR or LF would split the
response), hop-by-hop fields refused (they are the server's; an
application's ``Connection: close`` is honoured).  An application that
fails before its head went out gets a 500; after, the connection closes.
"""
import io
import os
import re
import stat
from http import HTTPStatus

from greenlet import GreenletExit

from ..errors import Error
from . import _parser

__all__ = ["Reply", "ReplyBase", "FileWrapper", "status_line"]

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_STATUS = re.compile(r"([1-9][0-9][0-9]) [^\x00-\x08\x0a-\x1f\x7f]*")
_HOP = frozenset(("connection", "keep-alive", "proxy-connection",
                  "transfer-encoding", "te", "trailer", "upgrade"))
_NAMES = {}                  # a checked header name -> its lowercase form
_PHRASES = {s.value: s.phrase for s in HTTPStatus}
_FILE_PIECE = 1 << 18        # sendfile() in pieces, each within send_timeout
_QUEUE_MAX = 65536           # a response larger than this is not held back


class FileWrapper:
    """``wsgi.file_wrapper``: an application returns
    ``environ['wsgi.file_wrapper'](file, blksize)``; on plain TCP the
    server sends a regular file with ``sendfile()`` from its current
    position, elsewhere it reads and sends blocks of *blksize* bytes."""

    __slots__ = ("filelike", "blksize")

    def __init__(self, filelike, blksize=65536):
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self):
        read = self.filelike.read
        while True:
            data = read(self.blksize)
            if not data:
                return
            yield data

    def close(self):
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


# A response that is itself one of these is sent as a file too; and the
# files sendfile() may read (not a GzipFile: its fileno() is the
# compressed file's).
_FILES = (FileWrapper, io.BufferedReader, io.FileIO)
_PLAIN_FILES = (io.BufferedReader, io.FileIO)


def status_line(code):
    """``'404 Not Found'`` for 404."""
    return "%d %s" % (code, _PHRASES.get(code, "Unknown"))


def _name(name):
    if type(name) is not str:        # (before the cache: it compares equal)
        raise TypeError("response header names must be str, not %s"
                        % type(name).__name__)
    low = _NAMES.get(name)
    if low is None:
        if _TOKEN.fullmatch(name) is None:
            raise ValueError("response header name %r is not a token "
                             "(RFC 9110 5.1)" % (name,))
        low = name.lower()
        if len(_NAMES) < 4096:
            _NAMES[name] = low
    return low


# (status, headers) an application gave -> what _check made of them: most
# responses of an application repeat a few of these.
_CHECKED = {}


def _check(status, headers):
    """Check a start_response() call's status and headers (PEP 3333 and
    RFC 9110); returns ``(first part of the head: status line and the
    application's header lines, status code, its Content-Length or None,
    whether it asked to close, whether it sent its own Date)``: the
    server's Date then stays out (one Date per response, RFC 9110)."""
    if type(status) is not str:
        raise TypeError("status must be a str such as '200 OK', not %s"
                        % type(status).__name__)
    m = _STATUS.fullmatch(status)
    if m is None or status[0] == "1":
        raise ValueError("status %r is not a final status line such as "
                         "'200 OK'" % (status,))
    if type(headers) is not list:
        raise TypeError("response headers must be a list of (name, value) "
                        "tuples, not %s" % type(headers).__name__)
    lines = ["HTTP/1.1 ", status, "\r\n"]
    length = None
    close = date = False
    for item in headers:
        if type(item) is not tuple or len(item) != 2:
            raise TypeError("each response header must be a (name, value) "
                            "tuple, not %r" % (item,))
        name, value = item
        low = _name(name)
        if type(value) is not str:
            raise TypeError("response header %s's value must be str, not %s"
                            % (name, type(value).__name__))
        if _BAD_VALUE.search(value) is not None:
            raise ValueError("response header %s's value has a control "
                             "character (CR or LF would split the "
                             "response): %r" % (name, value))
        if low in _HOP:
            if low == "connection" and value.strip().lower() == "close":
                close = True
                continue
            raise ValueError("hop-by-hop header %s is the server's to send, "
                             "not the application's (PEP 3333)" % name)
        if low == "content-length":
            v = value.strip()
            if not v.isdigit() or not v.isascii() or length is not None:
                raise ValueError("Content-Length %r is not one decimal "
                                 "number" % (value,))
            length = int(v)
        elif low == "date":
            date = True
        lines.append("%s: %s\r\n" % (name, value))
    # PEP 3333: latin-1 only (UnicodeEncodeError names the character).
    return ("".join(lines).encode("latin-1"), int(m.group(1)), length,
            close, date)


class ReplyBase:
    """A reply's fields, and ``start_response``: the Python twin of the C
    ``ReplyBase`` (socket2/ffi/http_speedups.c), whose ``start_response``
    answers a call whose checks are cached by itself and hands every
    other call to :meth:`Reply._start_response`."""

    __slots__ = ("conn", "environ", "body", "keep", "code", "status",
                 "length", "left", "head_sent", "chunked", "no_body", "sent",
                 "version", "is_head", "ended", "app_date")

    def start_response(self, status, headers, exc_info=None):
        """PEP 3333's start_response: returns the legacy ``write``."""
        return self._start_response(status, headers, exc_info)


if _parser.COMPILED:         # the compiled request path rides with the parser
    try:
        from .._http_speedups import ReplyBase   # noqa: F811
    except ImportError:      # a source tree (or an OS) that did not build it
        pass


class Reply(ReplyBase):
    """The response of one request, written through its connection.

    The compiled server creates its replies without ``__init__`` (the C
    fills the same fields) and runs :meth:`run`'s common case itself: an
    application that returns a list of one ``bytes``; anything else
    continues here, in :meth:`finish` and :meth:`_raised`."""

    __slots__ = ()

    def __init__(self, conn, head, environ, keep, body):
        self.conn = conn
        self.environ = environ
        self.body = body             # the server's own wsgi.input
        self.keep = keep
        self.version = head.version
        self.no_body = self.is_head = head.method == b"HEAD"
        self.status = None
        self.code = 0
        self.length = None           # the application's Content-Length
        self.left = None             # bytes still owed under it
        self.head_sent = False
        self.chunked = False
        self.sent = 0                # body bytes written (access log)
        self.ended = False           # write() refused from then on
        self.app_date = False        # the application sent its own Date

    # -- what the application calls ----------------------------------------

    def _start_response(self, status, headers, exc_info=None):
        if exc_info is not None:
            try:
                if self.head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response() called twice without "
                                 "exc_info")
        key = checked = None         # not a list: checked (and refused)
        if type(headers) is list and type(status) is str:
            try:
                key = (status, tuple(headers))
                checked = _CHECKED.get(key)
            except TypeError:        # unhashable: checked (and refused)
                key = checked = None
            # The cache compares by equality: subclasses of tuple or str
            # equal to checked items must still meet _check's exact types.
            if checked is not None and not all(
                    type(i) is tuple and type(i[0]) is str and
                    type(i[1]) is str for i in headers):
                key = checked = None
        if checked is None:
            checked = _check(status, headers)
            if key is not None and len(checked[0]) <= 2048:
                if len(_CHECKED) >= 512:
                    _CHECKED.clear()
                _CHECKED[key] = checked
        self.status, self.code, self.length, close, self.app_date = checked
        if close:
            self.keep = False
        if self.code == 204 or self.code == 304:
            self.no_body = True
        return self.write

    def write(self, data):
        """Send a piece of the body (the legacy ``write`` callable, also
        what the body's iteration uses)."""
        if self.ended:
            raise AssertionError("write() called after the response ended")
        if type(data) is not bytes:
            data = _bytes(data)
        if not self.head_sent:
            head = self._head(None)
            if not data or self.no_body:
                self.conn.send(head)
                return
        else:
            head = None
            if not data or self.no_body:
                return
        left = self.left
        if left is not None:
            if len(data) > left:
                data = data[:left]   # past the length it announced
                self.keep = False
            self.left = left - len(data)
        self.sent += len(data)
        if self.chunked:
            parts = [b"%x\r\n" % len(data), data, b"\r\n"]
        else:
            parts = [data]
        if head is not None:
            parts.insert(0, head)
        self.conn.send(b"".join(parts) if len(parts) > 1 else data)

    # -- the server's side ---------------------------------------------------

    def run(self, app):
        """Call the application and send its response; returns whether
        the connection may carry another request."""
        try:
            result = app(self.environ, self.start_response)
        except BaseException as e:   # noqa: B902 - sorted in _raised
            self.ended = True
            return self._raised(e)
        return self.finish(result)

    def finish(self, result):
        """Send the response of an application that returned *result*."""
        try:
            try:
                try:
                    if type(result) is list and not self.head_sent:
                        self._whole(result)
                    elif isinstance(result, _FILES) and not self.head_sent:
                        self._file(result)
                    else:
                        write = self.write
                        for data in result:
                            write(data)
                        self._end()
                finally:
                    close = getattr(result, "close", None)
                    if close is not None:
                        close()
            finally:
                self.ended = True
        except BaseException as e:   # noqa: B902 - sorted in _raised
            return self._raised(e)
        conn = self.conn
        conn.srv.log_access(conn, self.environ, self.code, self.sent)
        return self.keep

    def _raised(self, e):
        """The application (or sending its response) raised *e*: a kill
        or Ctrl-C goes on up; the client's failure or the server's close
        ends the connection quietly; anything else is the application's
        (reported, and a 500 if nothing was sent).  Returns whether the
        connection may carry another request."""
        conn = self.conn
        try:
            raise e                  # (the traceback report needs it)
        except (GreenletExit, KeyboardInterrupt):
            raise                    # a kill, or Ctrl-C: not the app's
        except BaseException:        # noqa: B902 - SystemExit included
            if conn.gone or conn.client_error is not None:
                return False         # the client's failure, not the app's
            if isinstance(e, Error) and e.err == "closed" and \
                    conn.sock.closed:
                return False         # the server closed it (drain, kill)
            return self._failed()
        finally:
            e = None                 # (no cycle through this frame)

    def _whole(self, result):
        """The body was a list: one write, head and body together."""
        if len(result) == 1:
            data = result[0]
            if type(data) is not bytes:
                data = _bytes(data)
        else:
            data = b"".join(result)
        if self.status is None:
            raise AssertionError("the application returned without calling "
                                 "start_response()")
        head = self._head(len(data))
        conn = self.conn
        if self.no_body:
            data = b""
        elif self.left is not None and len(data) != self.left:
            if len(data) > self.left:
                data = data[:self.left]
            self.keep = False
        self.sent = len(data)
        conn.out.append(head + data if data else head)
        # Pipelining: another request already here is answered before this
        # response goes out, so both leave in one write (a bounded queue).
        if not self.keep or conn.pos >= len(conn.buf) or \
                len(conn.out) >= 16 or len(data) > _QUEUE_MAX:
            conn.flush()

    def _file(self, result):
        """A wsgi.file_wrapper (or a file): sendfile() on plain TCP, from
        a regular file with a size (a file of /proc says 0)."""
        f = result.filelike if type(result) is FileWrapper else result
        conn = self.conn
        fd = None
        if isinstance(f, _PLAIN_FILES) and conn.srv.sendfile:
            try:
                fd = f.fileno()
                st = os.fstat(fd)
                pos = f.tell()
            except (OSError, AttributeError, ValueError):
                fd = None
        if fd is None or not stat.S_ISREG(st.st_mode) or \
                st.st_size == 0 or self.status is None:
            if type(result) is not FileWrapper:
                result = FileWrapper(f)     # blocks, not lines
            for data in result:
                self.write(data)
            self._end()
            return
        size = max(0, st.st_size - pos)
        if self.length is not None:
            size = min(size, self.length)
        conn.send(self._head(size))
        if self.no_body:
            return
        sock, timeout = conn.sock, conn.srv.limits.send_timeout
        done = 0
        try:
            while done < size:
                n = sock.sendfile(fd, pos + done,
                                  min(size - done, _FILE_PIECE),
                                  timeout=timeout)
                if n == 0:
                    break                # the file shrank
                done += n
        except Error:
            conn.gone = True
            raise
        finally:
            self.sent += done
        if done < size or (self.length is not None and done < self.length):
            self.keep = False
        self.left = 0

    def _end(self):
        if not self.head_sent:
            if self.status is None:
                raise AssertionError("the application returned without "
                                     "calling start_response()")
            self.conn.send(self._head(0 if self.sent == 0 else None))
        if self.chunked:
            self.conn.send(b"0\r\n\r\n")
        elif self.left:
            self.keep = False        # fewer bytes than its Content-Length

    def _head(self, total):
        """The response head; *total* is the body's size when known."""
        if self.status is None:
            raise AssertionError("the application sent a body before "
                                 "calling start_response()")
        self.head_sent = True
        conn = self.conn
        # may_keep() also ends any 100-continue: never after a final head.
        if not self.body.may_keep() or conn.srv.draining:
            self.keep = False        # stopping, or a body left unread
        parts = [self.status] if self.app_date else \
            [self.status, conn.srv.date_line()]
        if self.no_body:
            pass                     # the app's Content-Length, if any
        elif self.length is not None:
            self.left = self.length
        elif total is not None:
            parts.append(b"Content-Length: %d\r\n" % total)
            self.left = total
        elif self.version == 11:
            parts.append(b"Transfer-Encoding: chunked\r\n")
            self.chunked = True
        else:
            self.keep = False        # HTTP/1.0: the body ends at close
        if self.is_head and self.length is None and total is not None:
            parts.append(b"Content-Length: %d\r\n" % total)
        if not self.keep:
            parts.append(b"Connection: close\r\n\r\n")
        elif self.version == 10:
            parts.append(b"Connection: keep-alive\r\n\r\n")
        else:
            parts.append(b"\r\n")
        return b"".join(parts)

    def _failed(self):
        """The application raised: report it; a 500 if nothing was sent."""
        conn = self.conn
        conn.report(self.environ)
        if not self.head_sent:
            self.head_sent = True
            conn.refuse(500, "the application failed (see the server's "
                        "log)", self.environ)
        return False


def _bytes(data):
    """A body piece that is not bytes: a bytes-like object is copied,
    anything else refused (PEP 3333: bytestrings only)."""
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError("a response body is made of bytes, not %s%s"
                    % (type(data).__name__, ": encode it first"
                       if isinstance(data, str) else ""))
