"""TLS over socket2 streams, through the standard library's ``ssl``.

``socket2.tls(sock, context, ...)`` completes a handshake over a connected
``tcp`` and returns a :class:`TLSSocket` with the same stream API.  Three
engines sit behind that one class:

- **c** (the default where it can run: socket2 built with OpenSSL's
  headers, and the ``ssl`` module on the very same OpenSSL): the fd
  engine's SSL object, read and written from C (``_CEngine``,
  socket2/ffi/build_openssl.py).  Its reads go through socket2's own read
  BIO: one system call takes a whole record, none is made to hear EAGAIN
  after a short read (the plain sockets' shortcut, _hotpath.Waiters), and
  what follows a close_notify is handed to the plain socket on
  ``unwrap()``.

- **fd** (readiness pollers: epoll, kqueue, poll): OpenSSL reads and
  writes the socket's descriptor itself, through the SSL object the
  context's ``_wrap_socket`` makes over a non-blocking standard-library
  socket object that shares socket2's descriptor and never closes it (it
  is detached on every way out).  No ``ssl.SSLSocket`` is made: one owns
  its descriptor, and one left half-made by a failure closes it when it is
  collected -- by then, often another connection's.  socket2 only waits:
  ``SSLWantReadError`` parks the thread until the descriptor is readable,
  ``SSLWantWriteError`` until it is writable.  OpenSSL then has read (or
  written) until the kernel said EAGAIN, so an edge-triggered poller's
  next edge is sure to come.
- **bio** (completion ports, where there is no readiness; selectable
  anywhere with ``SOCKET2_TLS=bio``): an ``ssl.SSLObject`` between two
  ``MemoryBIO``s, fed by the socket's own cooperative ``recv`` and drained
  by its ``sendall``.  One thread at a time receives into the incoming BIO
  and one at a time sends from the outgoing one (two socket2 locks), so a
  reader and a writer may work at once, and either may move the other's
  bytes (OpenSSL may write during a read).

The traps both engines avoid, each with a test: an ``SSL_write`` that must
be retried is retried with the very same bytes, even after a timeout cut
the call short (the record is committed: its bytes go out first, before
anything written later, and count as sent); empty writes never reach
OpenSSL (an empty record reads as EOF to some peers); TLS 1.3 session
tickets that a client never reads cannot stall it; a close wakes threads
waiting in TLS reads and writes with ``err='closed'``; host names are
checked during the handshake, before any data moves; a ``server_hostname``
that is not a host name is refused before the socket is touched; and
OpenSSL's per-thread error queue is emptied before each SSL call (see
``_error_queue_clearer``).
"""
import errno as _errno
import os
import _socket
import sys

from . import _hotpath, pollers as _pollers
from ._socket_ffi import ffi, lib as _lib
from .errors import (Error, TLSError, TimeoutError, closed_error,
                     os_error, taken_error)
from .hub import _deadline, clock, sleep
from .sockets import TCPSocket, _Stream, _maxlen, _rbuf, _wbuf
from .sync import Lock

__all__ = ["tls", "TLSSocket"]

_UNSET = object()
_WRITE_CHUNK = 256 * 1024     # the most one SSL write takes (bio: per flush)
_RECORD = 16384               # the largest TLS record's plaintext

# The ssl module costs ~35 ms to import: it is loaded at the first tls().
ssl = _WantRead = _WantWrite = _SSLError = _Closed = _Raw = None
_clear_errors = None


def _load_ssl():
    global ssl, _WantRead, _WantWrite, _SSLError, _Closed, _Raw, \
        _clear_errors
    if ssl is None:
        import ssl as _ssl
        import _socket

        class _Raw(_socket.socket):
            """The standard socket object the fd engine's SSL object reads
            and writes through (the C type, never the green one; weakly
            referenced by the SSL object).  It never closes the
            descriptor: the engine detaches it on every way out, and if
            the collector frees it first (a TLSSocket in a reference
            cycle), its finalizer lets go of the number unclosed -- by
            then it may be another socket's."""
            __slots__ = ("__weakref__",)

            def __del__(self):
                try:
                    self.detach()
                except Exception:   # noqa: B902 - nothing to let go of
                    pass

        # A read after close_notify both ways (ZERO_RETURN) or a ragged EOF
        # (suppressed, as the standard library does): the end, 0.
        _Closed = (_ssl.SSLZeroReturnError, _ssl.SSLEOFError)
        _WantRead = _ssl.SSLWantReadError
        _WantWrite = _ssl.SSLWantWriteError
        _SSLError = _ssl.SSLError
        _clear_errors = _error_queue_clearer()
        ssl = _ssl
    return ssl


def _error_queue_clearer():
    """OpenSSL's ``ERR_clear_error``, from the libcrypto the ssl module
    runs on (a no-op if it cannot be found: a statically linked _ssl).

    OpenSSL keeps one error queue per OS thread, and ``SSL_get_error``
    looks at it *before* it looks at why an SSL call stopped: one entry
    left by an unrelated call turns "want read" into a fatal
    ``SSLError``.  The ssl module does not empty it before its calls
    (CPython issues 81891, 148594), and greenlets share their OS thread's
    queue: an entry another thread left while this one waited would end
    this connection.  So every SSL read, write, handshake and shutdown
    step here is preceded by a clear (~0.13 us)."""
    import ctypes
    import _ssl
    # The module's own handle finds the libcrypto it was linked with (its
    # dependencies are searched); Windows looks names up per DLL.
    for name in (_ssl.__file__, "libcrypto-3-x64", "libcrypto-3",
                 "libcrypto-1_1-x64", "libcrypto-1_1"):
        try:
            f = ctypes.PyDLL(name).ERR_clear_error
        except (OSError, AttributeError):
            continue
        f.restype = None
        f.argtypes = ()
        return f
    return lambda: None


def _pinned(sock, fn, *args):
    """fn(*args), an OpenSSL call that may read or write *sock*'s
    descriptor, with the descriptor pinned: Python code OpenSSL calls back
    (a message or SNI callback) may close the socket, and the call goes on
    afterwards on the same number -- which must not be another
    connection's by then.  A close meanwhile keeps the number taken until
    the call returns (sockets.py _release, _close_held)."""
    sock._busy += 1
    try:
        return fn(*args)
    finally:
        sock._busy -= 1
        if sock._held >= 0:
            sock._close_held()


def _server_hostname(name, server_side):
    """*name* as the ssl module gives it to OpenSSL (IDNA-encoded ASCII),
    or ``None``; raises ``ValueError``/``TypeError`` naming what is wrong.
    Called before an engine is made: a bad name never gets as far as the
    descriptor."""
    if name is None:
        return None
    if server_side:
        raise ValueError("server_hostname is for a client; a server "
                         "(server_side=True) takes none")
    if isinstance(name, str):
        try:
            text = name.encode("idna").decode("ascii")
        except UnicodeError as e:
            raise ValueError("server_hostname %r is not a valid host name "
                             "(%s)" % (name, e)) from None
    elif isinstance(name, (bytes, bytearray)):
        try:
            text = bytes(name).decode("ascii")
        except UnicodeError:
            raise ValueError("server_hostname %r is not ASCII" % (name,)) \
                from None
    else:
        raise TypeError("server_hostname must be a str, not %s"
                        % type(name).__name__)
    if not text or text.startswith("."):
        raise ValueError("server_hostname %r is not a host name (empty, or "
                         "it starts with a dot)" % (name,))
    if "\0" in text:
        raise ValueError("server_hostname %r holds a NUL character"
                         % (name,))
    if len(text.rstrip(".")) > 253:
        # The longest DNS name (RFC 1035); OpenSSL refuses longer SNI.
        raise ValueError("server_hostname is %d characters long; a host "
                         "name has at most 253" % len(text))
    return text


def _engine_name():
    """The TLS engine new connections use: ``SOCKET2_TLS`` if set (``c``,
    ``fd`` or ``bio``), else ``c`` where it can run, ``fd`` on other
    readiness pollers, ``bio`` on completion ports."""
    forced = os.environ.get("SOCKET2_TLS", "").strip().lower()
    if forced in ("fd", "c") and _pollers.completion_based():
        raise Error("unsupported", "SOCKET2_TLS=%s needs a readiness poller; "
                    "completion ports (IOCP) use the bio engine" % forced)
    if forced == "c" and _c_engine() is None:
        raise Error("unsupported", "SOCKET2_TLS=c: " + _C_UNUSABLE)
    if forced in ("fd", "bio", "c"):
        return forced
    if forced:
        raise Error("unsupported", "SOCKET2_TLS must be 'c', 'fd' or 'bio', "
                    "not %r" % forced)
    if _pollers.completion_based():
        return "bio"
    return "c" if _c_engine() is not None else "fd"


def _tls_error(e, what):
    """A socket2 error for the ssl module's exception *e*."""
    if isinstance(e, ssl.SSLCertVerificationError):
        msg = "%s: certificate verify failed: %s" % (
            what, e.verify_message or e.reason)
        return TLSError("certificate_verify_failed", msg, reason=e.reason)
    if isinstance(e, _SSLError):
        reason = getattr(e, "reason", None)
        if reason is None and isinstance(e, (ssl.SSLEOFError,
                                             ssl.SSLZeroReturnError)):
            reason = "UNEXPECTED_EOF"
        return TLSError("tls", "%s: %s" % (what, e.args[-1] if e.args
                                           else e), reason=reason)
    if isinstance(e, OSError) and e.errno:
        return os_error(e.errno, what)
    return Error("tls", "%s: %s" % (what, e))


# -- the fd engine -------------------------------------------------------------

_ECONNRESET = _errno.ECONNRESET
_IPPROTO_TCP = _socket.IPPROTO_TCP
_TCP_INFO = getattr(_socket, "TCP_INFO", None) \
    if sys.platform.startswith("linux") else None
_TCP_CLOSE = 7          # tcpi_state (linux/tcp_states.h)


def _taken_error(sock):
    """The socket error a poller took with its event (kqueue: the kernel
    then reports a plain EOF), left in the socket's slot record: as an
    OSError to raise (once), or None.  EPIPE is the write side's news: the
    data read up to the end stands (as sockets._Socket._eof says)."""
    err = taken_error(sock._w)
    return os_error(err, "TLS recv") if err else None


class _FdEngine:
    """OpenSSL on socket2's descriptor (see the module docstring)."""

    __slots__ = ("ssl", "c", "raw", "sock", "wpending", "done", "failed",
                 "ended")

    def __init__(self, sock, context, server_side, server_hostname):
        raw = _Raw(sock._family, sock._type, sock._proto, sock._fd)
        try:
            raw.setblocking(False)    # before the SSL object: its BIO too
            # What SSLSocket._create does, without an SSLSocket (see the
            # module docstring); the SSL object's owner, which SNI
            # callbacks are given, is an ssl.SSLObject, as on the bio
            # engine.
            obj = ssl.SSLObject.__new__(ssl.SSLObject)
            obj._sslobj = context._wrap_socket(raw, server_side,
                                               server_hostname, owner=obj,
                                               session=None)
        except BaseException:
            raw.detach()          # the descriptor stays socket2's, once
            raise
        self.raw = raw
        self.ssl = obj
        # The C object itself: its read/write skip ssl.py's per-call
        # checks (a third of the cost of a small record).
        self.c = obj._sslobj
        self.sock = sock
        self.wpending = None      # the bytes of a write cut short (committed)
        self.done = False         # both close_notifys exchanged
        self.failed = None        # a failure met after bytes were returned
        self.ended = False        # a read met the end (see _end)

    def wait(self, want, deadline, reading):
        """Wait for what OpenSSL asked for: readable (0) or writable (1).
        If the other direction's thread is already parked on that
        readiness (a read that must write, rare), retry shortly instead."""
        sock = self.sock
        if sock._fd < 0:
            raise closed_error()
        w = sock._w
        if want == 0:
            if reading or w.rg is None:
                return sock._hub.wait_readable(w, deadline, sock._fd)
        elif not reading or w.wg is None:
            return sock._hub.wait_writable(w, deadline, sock._fd)
        if deadline is not None and clock() >= deadline:
            raise TimeoutError()
        sleep(0.001)

    def call(self, op, args, deadline, reading, what):
        while True:
            _clear_errors()       # others ran while this thread waited
            try:
                return _pinned(self.sock, op, *args)
            except _WantRead:
                want = 0
            except _WantWrite:
                want = 1
            except _Closed as e:
                c = self.c
                if c is None:       # closed meanwhile (another OS thread)
                    raise closed_error() from None
                if op == c.read:
                    failure = self._end(e)
                    if failure is not None:
                        raise failure from None
                    return 0
                raise _tls_error(e, what) from None
            except (_SSLError, OSError) as e:
                if self.sock._fd < 0 or self.c is None:
                    raise closed_error() from None     # (closed meanwhile)
                raise _tls_error(e, what) from None
            self.wait(want, deadline, reading)

    def read(self, buf, n, timeout, expires, owner):
        c = self.c
        if self.done:
            return 0      # TLS ended both ways (what follows is plain)
        if self.sock._fd < 0 or c is None:
            # (its number may be another connection's by now)
            raise closed_error("TLS socket")
        if self.failed is not None:
            failure = self.failed
            if self.ended:
                # The end's error (a reset): once, as the socket reports
                # it; then the end, and the bytes a buffered read kept
                # before it are still returned.
                self.failed = None
            raise failure.with_traceback(None)
        _clear_errors()                     # (see _error_queue_clearer)
        try:
            # the common case: data is there
            r = _pinned(self.sock, c.read, n, buf)
            if r < _RECORD or r >= n:
                return r
            return self.more(buf, r, n)     # a full record: likely more
        except _WantRead:
            want = 0
        except _WantWrite:
            want = 1
        except _Closed as e:
            if self.sock._fd < 0 or self.c is None:
                raise closed_error() from None     # (closed meanwhile)
            failure = self._end(e)
            if failure is not None:
                raise failure from None
            return 0
        except (_SSLError, OSError, ValueError) as e:
            if self.sock._fd < 0 or self.c is None:
                raise closed_error() from None     # (closed meanwhile)
            raise _tls_error(e, "TLS recv") from None
        deadline = owner._deadline(timeout, expires)
        self.wait(want, deadline, True)
        return self.call(c.read, (n, buf), deadline, True, "TLS recv")

    def _end(self, e):
        """A read met the end of the stream (*e*: the ssl module's
        SSLZeroReturnError for the peer's close_notify, SSLEOFError for an
        EOF without one): None for the end itself (the read returns 0), or
        the error to raise when that EOF was the socket failing, as the
        other engines and plain sockets raise it.  Only the first end is
        judged: every read after it is the end again (and, on OpenSSL 3,
        a reasonless SSLEOFError whatever the first was).

        - The standard library reads an ECONNRESET during SSL_read as an
          SSLEOFError (it loses the errno).  OpenSSL 3 names a real EOF
          (UNEXPECTED_EOF_WHILE_READING), so a first SSLEOFError without a
          reason is the socket's error; OpenSSL 1.1 says the same for
          both, and TCP_INFO tells them apart where it exists (Linux): a
          reset connection is CLOSED, one the peer shut down CLOSE_WAIT.
        - A poller that takes the socket's error with its event (kqueue:
          the kernel then reports a plain EOF) left it in the socket's
          slot record (``soerr``)."""
        if self.ended:
            return None
        self.ended = True
        if not isinstance(e, ssl.SSLEOFError):
            return None         # close_notify: the end the peer meant
        if getattr(e, "reason", None) is None and self._reset_seen():
            return os_error(_ECONNRESET, "TLS recv")
        return _taken_error(self.sock)

    def _reset_seen(self):
        """After a reasonless SSLEOFError: whether it was a reset."""
        if ssl.OPENSSL_VERSION_INFO >= (3,):
            return True
        raw = self.raw
        if _TCP_INFO is None or raw is None:
            return False
        try:
            return raw.getsockopt(_IPPROTO_TCP, _TCP_INFO, 1)[0] == _TCP_CLOSE
        except (OSError, ValueError):
            return False        # not TCP, or gone meanwhile

    def more(self, buf, got, n):
        """Streaming: one SSL_read returns one record (16 KiB at most); fill
        more of the caller's buffer while records are there, so a bulk
        reader makes one call per buffer, not per record."""
        view = memoryview(buf).cast("B")
        c = self.c
        if c is None:
            return got      # closed meanwhile: the next read says so
        try:
            while got < n:
                r = _pinned(self.sock, c.read, n - got, view[got:])
                if r == 0:
                    break
                got += r
        except _Closed as e:
            # The end: what came before it is returned first (a reset is
            # the next read's).
            self.failed = self._end(e)
        except (_WantRead, _WantWrite):
            pass        # what is there is returned; the next call says more
        except (_SSLError, OSError) as e:
            # The bytes before it are returned first; the failure is the
            # next read's (OpenSSL would answer that one with a plain EOF).
            self.failed = closed_error() if self.c is None else \
                _tls_error(e, "TLS recv")
            if got == 0:
                raise self.failed from None
        return got

    def write(self, view, deadline):
        """Write up to len(view) bytes (at least one); return the count."""
        if self.wpending is not None:
            self.flush_pending(deadline)
        if self.sock._fd < 0:
            # (its number may be another connection's by now)
            raise closed_error("TLS socket")
        data = view[:_WRITE_CHUNK]
        want = self._try_write(data)
        if want is None:
            return len(data)
        # OpenSSL made a record of these bytes: it must be given the very
        # same bytes again until it has written it.
        data = bytes(data)
        self.wpending = data
        try:
            self.wait(want, deadline, False)
            self.flush_pending(deadline)
        except TimeoutError as e:
            e.sent = len(data)      # committed: flushed before the next write
            raise
        return len(data)

    def flush_pending(self, deadline):
        """Write the committed record until it is out.  Another writer
        (two threads writing at once) may have written it meanwhile:
        then there is nothing left to do, never a second copy."""
        while True:
            data = self.wpending
            if data is None:
                return
            if self.sock._fd < 0 or self.c is None:
                raise closed_error()
            want = self._try_write(data)
            if want is None:
                self.wpending = None
                return
            self.wait(want, deadline, False)

    def _try_write(self, data):
        """One SSL write of all of *data* (partial writes are off): None
        when it went out, else what OpenSSL wants first (0: readable, 1:
        writable)."""
        c = self.c
        if c is None:   # detached meanwhile (closed from another OS thread)
            raise closed_error()
        _clear_errors()
        try:
            _pinned(self.sock, c.write, data)
            return None
        except _WantWrite:
            return 1
        except _WantRead:
            return 0
        except (_SSLError, OSError, ValueError) as e:
            if self.sock._fd < 0 or self.c is None:
                raise closed_error() from None     # (closed meanwhile)
            raise _tls_error(e, "TLS send") from None

    def handshake(self, deadline):
        self.call(self.ssl.do_handshake, (), deadline, True, "TLS handshake")

    def shutdown(self, deadline):
        """Send close_notify (without waiting for the peer's)."""
        if self.wpending is not None:
            self.flush_pending(deadline)
        while True:
            obj = self.ssl
            if obj is None or self.sock._fd < 0:
                raise closed_error("TLS socket")
            _clear_errors()
            try:
                # (the first SSL_shutdown: sends ours)
                _pinned(self.sock, obj.unwrap)
                self.done = True      # ... and the peer's was in already
                return
            except _WantRead:
                return                # ours is out; the peer's is not in
            except _WantWrite:
                self.wait(1, deadline, False)
            except ssl.SSLEOFError:
                # The standard library's unwrap() reads once after ours is
                # out; a peer that has already closed (without its own
                # close_notify) ends that read.  Ours was sent: done.
                self.done = True
                return
            except (_SSLError, OSError, ValueError) as e:
                raise _tls_error(e, "TLS shutdown") from None

    def unwrap(self, deadline):
        """close_notify both ways; the descriptor stays open."""
        if self.wpending is not None:
            self.flush_pending(deadline)
        self.call(self.ssl.unwrap, (), deadline, True, "TLS unwrap")
        self.detach()
        # OpenSSL read the descriptor itself: whatever a short read proved
        # about its queue before is stale (what followed the peer's
        # close_notify is still there).  Re-arm the shortcut
        # (_hotpath.Waiters).
        self.sock._w.rready = True

    def pending_input(self):
        return b""

    def detach(self):
        raw = self.raw
        if raw is not None:
            self._forget_fd()
            obj = self.ssl
            self.raw = self.ssl = self.c = None
            obj._sslobj = None        # nothing can reach the fd through it
            raw.detach()              # releases the fd without closing it

    def _forget_fd(self):
        """Point the SSL object's BIOs at no descriptor (-1): an OpenSSL
        call under way whose callback closed this socket fails with EBADF
        rather than reading or writing the connection that takes the
        number next (s2_tls_forget_fd).  The standard library's object is
        reached through the C engine's proof of its layout; where the C
        engine cannot run, there is nothing to reach it with."""
        c = self.c
        if _c_engine() is None or c is None:
            return
        ffi_, lib = _c[0], _c[1]
        p = lib.s2_tls_adopt(ffi_.cast("void *", id(c)),
                             ffi_.cast("void *", id(c.context)),
                             type(c).__basicsize__, self.raw.fileno())
        if p != ffi_.NULL:
            lib.s2_tls_forget_fd(p)

    def info(self):
        return self.ssl


# -- the C engine ------------------------------------------------------------------

_c = None     # socket2._openssl_ffi's (ffi, lib, err cell, message buffer)
_C_UNUSABLE = None      # why the C engine cannot run here (None: unknown yet)


def _c_engine():
    """``socket2._openssl_ffi`` when the C engine can drive the standard
    library's SSL objects in this process, else None (and
    ``_C_UNUSABLE`` says why)."""
    global _c, _C_UNUSABLE
    if _c is not None or _C_UNUSABLE is not None:
        return _c
    try:
        from . import _openssl_ffi
    except ImportError as e:
        _C_UNUSABLE = ("socket2 was built without OpenSSL's headers (%s); "
                       "Debian: apt-get install libssl-dev, then reinstall"
                       % e)
        return None
    import _ssl
    path = getattr(_ssl, "__file__", None)
    if not path or not _openssl_ffi.lib.s2_tls_same_openssl(
            os.fsencode(path)):
        _C_UNUSABLE = ("the ssl module runs on another OpenSSL than the one "
                       "socket2 was built with")
        return None
    ffi_, lib = _openssl_ffi.ffi, _openssl_ffi.lib
    if lib.s2_tls_init() < 0:
        _C_UNUSABLE = "OpenSSL gave no ex-data index for the C engine"
        return None
    if hasattr(_TLSBase, "_c_recv"):
        from . import _tls_speedups
        _tls_speedups.configure(
            int(ffi_.cast("intptr_t", ffi_.addressof(lib, "s2_tls_read"))),
            int(ffi_.cast("intptr_t", ffi_.addressof(lib, "s2_tls_write"))),
            lib.S2_TLS_WANT_READ, lib.S2_TLS_WANT_WRITE, _WRITE_CHUNK,
            _ssl._SSLSocket)
    _c = (ffi_, lib, ffi_.new("int *"), ffi_.new("char[512]"))
    return _c


class _CEngine(_FdEngine):
    """The fd engine's SSL object, read and written from C
    (socket2/ffi/build_openssl.py): a "want" is a return code, not a
    raised exception, and one call fills a bulk reader's buffer.  The
    standard library still makes the SSL object and runs the handshake,
    ``unwrap()`` and everything the handshake agreed (``info()``);
    ``shutdown()`` is one SSL_shutdown from C.

    ``recv``/``sendall`` are TLSSocket's on this engine; with the compiled
    hot path (socket2/ffi/tls_speedups.c) the plain calls never reach them,
    only ``_read_wait`` and ``_sendall_rest`` do, which that C hands what
    it could not finish."""

    __slots__ = ("p", "notified", "leftover")

    def __init__(self, sock, context, server_side, server_hostname):
        self.notified = False    # our close_notify went out (shutdown)
        self.leftover = b""      # read past the close_notify (unwrap)
        _FdEngine.__init__(self, sock, context, server_side, server_hostname)
        ffi_, lib = _c[0], _c[1]
        c = self.c
        p = lib.s2_tls_adopt(ffi_.cast("void *", id(c)),
                             ffi_.cast("void *", id(context)),
                             type(c).__basicsize__, sock._fd)
        if p == ffi_.NULL:
            self.p = None
            self.detach()
            raise _NotAdopted()
        self.p = p
        # Reads go through socket2's buffered read BIO: a record in one
        # system call, and none to hear EAGAIN after a short read
        # (build_openssl.py, s2_rbio).  If it cannot be made, OpenSSL's
        # socket BIO reads, which is slower but the same.
        lib.s2_tls_buffer(p, sock._fd)

    def buffered(self):
        """How many received bytes the read BIO holds that OpenSSL has not
        taken yet (encrypted; SSL_pending does not count them)."""
        p = self.p
        return 0 if p is None else _c[1].s2_tls_buffered(p)

    def unwrap(self, deadline):
        """close_notify both ways; the descriptor stays open, and what the
        read BIO holds past the peer's close_notify is kept for
        ``pending_input()``."""
        if self.wpending is not None:
            self.flush_pending(deadline)
        self.call(self.ssl.unwrap, (), deadline, True, "TLS unwrap")
        n = self.buffered()
        if n:
            ffi_, lib = _c[0], _c[1]
            out = ffi_.new("char[]", n)
            self.leftover = ffi_.buffer(out, lib.s2_tls_take_buffered(
                self.p, out, n))[:]
        self.detach()
        # (as _FdEngine.unwrap: re-arm the plain socket's shortcut)
        self.sock._w.rready = True

    def pending_input(self):
        data, self.leftover = self.leftover, b""
        return data

    def address(self):
        """The SSL object's address, for TLSSocket._ssl (0: none)."""
        p = self.p
        return 0 if p is None else int(_c[0].cast("intptr_t", p))

    def _failed(self, r, err, what):
        """The socket2 error for the C call's failure code *r* (*err*: the
        errno of an OS error)."""
        if self.sock._fd < 0 or self.p is None:
            return closed_error()
        ffi_, lib, _, msg = _c
        if r == lib.S2_TLS_OS_ERROR:
            return os_error(err, what)
        lib.s2_tls_error(msg, len(msg))
        text = ffi_.string(msg).decode("ascii", "replace")
        reason = text[text.find(": ") + 2:text.find("]")] \
            if text.startswith("[") else None
        return TLSError("tls", "%s: %s" % (what, text), reason=reason)

    def shutdown(self, deadline):
        """Send close_notify, reading nothing (s2_tls_shutdown): what the
        peer sent before it stays to be read, as TLSSocket.shutdown
        promises (the fd engine's, the standard library's unwrap(), reads
        once after sending)."""
        if self.wpending is not None:
            self.flush_pending(deadline)
        ffi_, lib, err, _ = _c
        while True:
            if self.sock._fd < 0 or self.p is None:
                raise closed_error("TLS socket")
            if self.notified:
                # Sent already: SSL_shutdown would now read (for the
                # peer's close_notify), which is what this avoids.
                return
            held = self.c
            r = _pinned(self.sock, lib.s2_tls_shutdown, self.p, err)
            del held
            if r >= 0:
                self.notified = True
                if r == 1:
                    self.done = True  # the peer's close_notify was in too
                return
            if r == lib.S2_TLS_WANT_WRITE:
                self.wait(1, deadline, False)
            elif r == lib.S2_TLS_WANT_READ:
                self.wait(0, deadline, False)
            else:
                raise self._failed(r, err[0], "TLS shutdown")

    # -- reading --------------------------------------------------------------------

    def recv(self, buf, maxlen, timeout, expires, owner):
        """TLSSocket.recv on this engine (with no read-ahead bytes)."""
        if self.done:
            return 0      # TLS ended both ways (what follows is plain)
        ffi_, lib, err, _ = _c
        try:
            p = ffi_.from_buffer("char[]", buf, True)
        except (TypeError, BufferError):
            p = _wbuf(buf, "recv()")   # raises the explanatory error
        try:
            n = len(p) if maxlen is None else _maxlen(maxlen, len(p))
            if n == 0:
                return 0
            if self.sock._fd < 0 or self.p is None:
                # (its number may be another connection's by now)
                raise closed_error("TLS socket")
            held = self.c      # through the call (TLSSocket._sslobj)
            r = _pinned(self.sock, lib.s2_tls_read, self.p, p, n, err,
                        ffi_.NULL)
            del held
            if r > 0:
                return r
            if r == 0:
                return self._eof()
            return self._read_wait(p, n, r, err[0], timeout, expires, owner)
        except BaseException:
            ffi_.release(p)     # no view outlives the call (sockets._drop)
            raise

    def read(self, buf, n, timeout, expires, owner):
        """For the _Stream helpers (recvn, readline ...): *buf* is a cffi
        buffer of at least *n* bytes."""
        if self.done:
            return 0
        return self.recv(buf, n, timeout, expires, owner)

    def _eof(self):
        """A read came back 0: the end (0), or the socket error a poller
        took with its event (kqueue: the kernel then reports a plain EOF;
        see _taken_error), raised once as a plain recv raises it -- unless
        the peer's close_notify came in, which is the end it meant.  (The
        compiled recv calls this only when that error is there.)"""
        p = self.p
        if p is not None and _c[1].s2_tls_peer_closed(p):
            return 0
        failure = _taken_error(self.sock)
        if failure is not None:
            raise failure
        return 0

    def _read_wait(self, buf, n, r, err, timeout, expires, owner):
        """The read into *buf* (a cffi pointer, or any writable buffer)
        that came back *r* (a want or a failure, *err* its errno): wait as
        OpenSSL asked and read again until bytes, the end or an error."""
        ffi_, lib, cell, _ = _c
        p = buf if isinstance(buf, ffi_.CData) else \
            ffi_.from_buffer("char[]", buf, True)
        try:
            deadline = owner._deadline(timeout, expires)
            while True:
                if r == -1:         # S2_TLS_WANT_READ
                    self.wait(0, deadline, True)
                elif r == -2:       # S2_TLS_WANT_WRITE
                    self.wait(1, deadline, True)
                else:
                    raise self._failed(r, err, "TLS recv")
                ssl_, held = self.p, self.c
                if ssl_ is None:
                    raise closed_error()
                r = _pinned(self.sock, lib.s2_tls_read, ssl_, p, n, cell,
                            ffi_.NULL)
                del held
                if r > 0:
                    return r
                if r == 0:
                    return self._eof()
                err = cell[0]
        finally:
            if p is not buf:
                ffi_.release(p)

    # -- writing --------------------------------------------------------------------

    def sendall(self, buf, maxlen, timeout, expires, owner):
        """TLSSocket.sendall on this engine."""
        ffi_, lib, err, _ = _c
        if type(buf) is bytes:
            p = buf
        else:
            try:
                p = ffi_.from_buffer(buf)
            except TypeError:
                p = _rbuf(buf, "sendall()")   # raises the explanatory error
            except BufferError:
                raise TypeError("sendall() needs a contiguous bytes-like "
                                "object") from None
        try:
            n = len(p) if maxlen is None else _maxlen(maxlen, len(p))
            if n == 0:
                return 0
            if self.sock._fd < 0 or self.p is None:
                # (its number may be another connection's by now)
                raise closed_error("TLS socket")
            if self.wpending is not None:
                r = 0           # the slow path writes it all
            else:
                held = self.c       # through the call (TLSSocket._sslobj)
                r = _pinned(self.sock, lib.s2_tls_write, self.p, p,
                            min(n, _WRITE_CHUNK), err)
                del held
                if r == n:
                    return n    # the common case: one write, taken whole
            return self._sendall_rest(p, n, r, err[0], owner, timeout,
                                      expires)
        except BaseException:
            if type(p) is not bytes:
                ffi_.release(p)
            raise

    def _sendall_rest(self, buf, maxlen, r, err, owner, timeout=None,
                      expires=None):
        """Go on with a sendall of *buf* (its first *maxlen* bytes) whose
        first write of ``min(n, _WRITE_CHUNK)`` bytes came back *r*: the
        count written, a want (OpenSSL made a record of those bytes: the
        very same bytes must be given again until it is written) or a
        failure (*err*: its errno)."""
        ffi_ = _c[0]
        view = memoryview(ffi_.buffer(buf) if isinstance(buf, ffi_.CData)
                          else buf).cast("B")
        n = len(view) if maxlen is None else _maxlen(maxlen, len(view))
        sent = 0
        try:
            deadline = owner._deadline(timeout, expires)
            if r == -1 or r == -2:
                sent = self._commit(view[:min(n, _WRITE_CHUNK)], r, deadline)
            elif r < 0:
                raise self._failed(r, err, "TLS send")
            else:
                sent = r
            while sent < n:
                sent += self.write(view[sent:n], deadline)
        except Error as e:
            e.sent = sent + getattr(e, "sent", 0)
            raise
        return sent

    def write(self, view, deadline):
        """Write up to len(view) bytes (at least one); return the count."""
        if self.wpending is not None:
            self.flush_pending(deadline)
        data = view[:_WRITE_CHUNK]
        ffi_, lib, err, _ = _c
        n = len(data)
        p, held = self.p, self.c
        if p is None or self.sock._fd < 0:
            raise closed_error()
        r = _pinned(self.sock, lib.s2_tls_write, p, ffi_.from_buffer(data), n,
                    err)
        del held
        if r >= 0:
            return r
        if r != -1 and r != -2:
            raise self._failed(r, err[0], "TLS send")
        return self._commit(data, r, deadline)

    def _commit(self, data, r, deadline):
        """The write of *data* came back the want *r*: OpenSSL made a
        record of these bytes, and must be given the very same bytes again
        until it has written it.  Return their count."""
        self.wpending = bytes(data)
        try:
            self.wait(0 if r == -1 else 1, deadline, False)
            self.flush_pending(deadline)
        except TimeoutError as e:
            e.sent = len(data)  # committed: flushed before the next write
            raise
        return len(data)

    def flush_pending(self, deadline):
        ffi_, lib, err, _ = _c
        while True:
            data = self.wpending
            if data is None:
                return      # another writer wrote it meanwhile
            p, held = self.p, self.c
            if p is None or self.sock._fd < 0:
                raise closed_error()
            r = _pinned(self.sock, lib.s2_tls_write, p, data, len(data), err)
            del held
            if r >= 0:
                self.wpending = None
                return
            if r != -1 and r != -2:
                raise self._failed(r, err[0], "TLS send")
            self.wait(0 if r == -1 else 1, deadline, False)

    def _forget_fd(self):
        p = self.p
        if p is not None:
            _c[1].s2_tls_forget_fd(p)     # (see _FdEngine._forget_fd)

    def detach(self):
        if self.raw is not None:
            self._forget_fd()
        self.p = None
        _FdEngine.detach(self)


class _NotAdopted(Exception):
    """The standard library's SSL object is not laid out as _CEngine
    expects: the fd engine serves instead."""


# -- the bio engine --------------------------------------------------------------


class _BioEngine:
    """OpenSSL between memory BIOs, fed and drained by the socket."""

    __slots__ = ("ssl", "c", "sock", "inc", "out", "rlock", "wlock",
                 "unsent", "eof", "ended")

    def __init__(self, sock, context, server_side, server_hostname):
        self.inc = ssl.MemoryBIO()
        self.out = ssl.MemoryBIO()
        self.ssl = context.wrap_bio(self.inc, self.out,
                                    server_side=server_side,
                                    server_hostname=server_hostname)
        self.c = getattr(self.ssl, "_sslobj", None) or self.ssl
        self.sock = sock
        self.rlock = Lock()       # one thread receives into inc at a time
        self.wlock = Lock()       # one thread sends from out at a time
        self.unsent = b""         # bytes out of the BIO not yet on the wire
        self.eof = False          # TCP ended (a recv gave 0)
        self.ended = False        # a read met the peer's close_notify
        if sock._rb:              # read ahead of the handshake (STARTTLS)
            self.inc.write(bytes(sock._rb))
            sock._rb.clear()

    def flush(self, deadline):
        """Send what OpenSSL wrote to the outgoing BIO, in order."""
        if not self.out.pending and not self.unsent:
            return
        # (another thread's send may hold it: the wait keeps the deadline)
        self.wlock.acquire(expires=deadline)
        try:
            while True:
                data = self.unsent or self.out.read()
                if not data:
                    return
                self.unsent = b""
                try:
                    self.sock.sendall(data, expires=deadline)
                except Error as e:
                    self.unsent = data[getattr(e, "sent", 0):]
                    raise
        finally:
            self.wlock.release()

    def fill(self, deadline):
        """Receive more input for OpenSSL.  If another thread is already
        receiving, wait for it to finish: what it gets feeds us too."""
        if self.rlock.locked():
            self.rlock.acquire(expires=deadline)
            self.rlock.release()
            return
        with self.rlock:
            if self.eof:
                raise Error("eof", "the peer closed the connection")
            # Into the OS thread's scratch buffer, as read()/readline() do
            # (sockets.py _Stream): no 64 KiB per connection.
            s = self.sock._scratch
            n = self.sock._recv_loop(s.p, len(s.buf), None, deadline)
            if n == 0:
                self.eof = True
                self.inc.write_eof()
            else:
                self.inc.write(s.view[:n])

    def call(self, op, args, deadline, what, flush=True):
        while True:
            _clear_errors()       # (see _error_queue_clearer)
            try:
                r = op(*args)
            except _WantRead:
                self.flush(deadline)
                try:
                    self.fill(deadline)
                except Error as e:
                    if e.err == "eof":
                        raise TLSError("tls", "%s: the peer closed the "
                                       "connection" % what,
                                       reason="UNEXPECTED_EOF") from None
                    raise
                continue
            except (_SSLError, ValueError) as e:
                if self.sock._fd < 0:
                    raise closed_error() from None
                self._send_alert(deadline)
                raise _tls_error(e, what) from None
            if flush:
                self.flush(deadline)
            return r

    def _send_alert(self, deadline):
        """A failing handshake leaves its alert in the outgoing BIO: send
        it, so the peer learns why (best effort: we are failing anyway)."""
        try:
            self.flush(deadline)
        except Error:
            pass

    def read(self, buf, n, timeout, expires, owner):
        c = self.c
        deadline = _UNSET
        if self.sock._fd < 0 or c is None:
            # (its number may be another connection's by now)
            raise closed_error("TLS socket")
        # Only ask OpenSSL when it has something to work on: an empty BIO
        # would cost a WantRead exception per wait.
        if not (self.inc.pending or c.pending()):
            if self.ended or self.eof:
                # The peer's close_notify was read (it may keep TCP open,
                # waiting for ours), or TCP ended: the end, every time.
                return 0
            deadline = owner._deadline(timeout, expires)
            self.refill(deadline)
        while True:
            _clear_errors()
            try:
                r = c.read(n, buf)
            except _WantRead:
                pass
            except _Closed:
                self.ended = True
                return 0
            except (_SSLError, ValueError) as e:
                if self.sock._fd < 0:
                    raise closed_error() from None
                raise _tls_error(e, "TLS recv") from None
            else:
                if r == 0 and n:      # the peer's close_notify (no error)
                    self.ended = True
                return r
            if deadline is _UNSET:
                deadline = owner._deadline(timeout, expires)
            self.refill(deadline)

    def refill(self, deadline):
        if self.unsent or self.out.pending:
            self.flush(deadline)
        self.fill(deadline)

    def write(self, view, deadline):
        """OpenSSL takes the bytes at once (into the BIO: they are committed
        then); a send cut short keeps the rest for the next flush, and the
        error's ``sent`` counts the committed bytes."""
        data = view[:_WRITE_CHUNK]
        c = self.c
        if c is None:   # detached meanwhile (closed from another OS thread)
            raise closed_error()
        n = self.call(c.write, (data,), deadline, "TLS send", flush=False)
        try:
            self.flush(deadline)
        except Error as e:
            e.sent = n
            raise
        return n

    def handshake(self, deadline):
        self.call(self.ssl.do_handshake, (), deadline, "TLS handshake")

    def shutdown(self, deadline):
        _clear_errors()
        try:
            self.ssl.unwrap()
        except _WantRead:
            pass                      # ours is in the BIO; not the peer's
        except (_SSLError, ValueError) as e:
            raise _tls_error(e, "TLS shutdown") from None
        self.flush(deadline)

    def unwrap(self, deadline):
        self.call(self.ssl.unwrap, (), deadline, "TLS unwrap")

    def pending_input(self):
        """Bytes received after the peer's close_notify (plain again)."""
        return self.inc.read() if self.inc.pending else b""

    def detach(self):
        self.ssl = self.c = None

    def info(self):
        return self.ssl


# -- the socket ------------------------------------------------------------------


_ENGINES = {"c": _CEngine, "fd": _FdEngine, "bio": _BioEngine}


class _TLSBase:
    """The fields a TLSSocket keeps (in C with the compiled hot path:
    socket2/ffi/tls_speedups.c's TLSBase, which also has the compiled
    ``_c_recv``/``_c_sendall``)."""

    __slots__ = ("_sock", "_io", "_rb", "timeout", "_ssl_", "_sslobj_")

    # The SSL object the compiled calls drive and its owner are set
    # together, by TLSSocket only: read-only attributes, as in C (a
    # replaced owner would let the SSL object be freed mid-call).
    _ssl = property(lambda self: self._ssl_,
                    doc="The C engine's SSL object's address, or 0.")
    _sslobj = property(lambda self: self._sslobj_,
                       doc="The object that owns ``_ssl``, or None.")

    def _set_ssl(self, address, owner, /):
        if type(address) is not int:
            raise TypeError("_set_ssl(): the address must be an int")
        if (address == 0) != (owner is None):
            raise ValueError("_set_ssl() needs an owner with an address, "
                             "and None with 0")
        if owner is not None and (
                type(owner).__name__ != "_SSLSocket" or _c is None
                or int(_c[0].cast("intptr_t", _c[0].cast(
                    "void **", id(owner))[3])) != address):
            # (as in C: the one address taken is the SSL * the owner holds,
            # its field 3, the layout s2_tls_adopt proved)
            raise ValueError("_set_ssl(): the address is not the SSL object "
                             "its owner (an _ssl._SSLSocket) holds")
        self._ssl_ = address
        self._sslobj_ = owner


if _hotpath.COMPILED:
    try:
        from ._tls_speedups import TLSBase as _TLSBase    # noqa: F811
    except ImportError:     # a source tree whose extension is not built
        pass


class TLSSocket(_TLSBase, _Stream):
    """A TLS stream over a socket2 ``tcp`` (see :func:`tls`): ``send``,
    ``recv``, ``sendall``, ``recvn``, ``recvall``, ``read``, ``readline``,
    ``shutdown``, ``unwrap``, ``close``, and ``timeout=``/``expires=`` on
    every wait, like ``tcp``; plus ``version()``, ``cipher()``,
    ``alpn_protocol()``, ``getpeercert()``.  One thread may read while
    another writes."""

    __slots__ = ("__weakref__",)

    def __init__(self, sock, io):
        self._sock = sock
        self._io = io
        self._rb = None
        self.timeout = sock.timeout
        # The SSL object the compiled recv/sendall drive (0: they hand
        # every call to the Python methods); cleared before anything
        # ends TLS or lets go of the engine; and the standard library's
        # object that owns it, which the
        # compiled calls hold while OpenSSL runs (Python code it calls
        # back, a message callback say, may close this socket meanwhile).
        if type(io) is _CEngine and io.address():
            self._set_ssl(io.address(), io.c)
        else:
            self._set_ssl(0, None)

    # -- identity -------------------------------------------------------------

    def fileno(self):
        return self._sock._fd if self._io is not None else -1

    def _peer_sockaddr(self):
        """The peer's address as accept() returned it, if kept (see
        _hotpath.SocketBase), else None."""
        kept = getattr(self._sock, "_peer_sockaddr", None)
        return kept() if kept is not None and self._io is not None else None

    @property
    def closed(self):
        return self._io is None or self._sock._fd < 0

    @property
    def engine(self):
        """How OpenSSL reaches the socket: ``'c'`` (records read and written
        from C), ``'fd'`` (through the ssl module, on the descriptor) or
        ``'bio'`` (memory BIOs)."""
        io = self._io
        return "c" if isinstance(io, _CEngine) else \
            "fd" if isinstance(io, _FdEngine) else "bio"

    local_addr = property(lambda self: self._sock.local_addr,
                          doc="The local IP as text (or the unix path).")
    local_port = property(lambda self: self._sock.local_port,
                          doc="The local port.")
    remote_addr = property(lambda self: self._sock.remote_addr,
                           doc="The peer's IP as text (or unix path).")
    remote_port = property(lambda self: self._sock.remote_port,
                           doc="The peer's port.")

    def family(self):
        return self._sock.family()

    def _deadline(self, timeout, expires):
        return _deadline(self.timeout if timeout is None else timeout,
                         expires)

    def _live(self):
        io = self._io
        if io is None or self._sock._fd < 0:
            raise closed_error("TLS socket")
        return io

    # -- what the handshake agreed -------------------------------------------------

    def version(self):
        """The protocol version agreed (``'TLSv1.3'``, ``'TLSv1.2'``)."""
        return self._live().info().version()

    def cipher(self):
        """``(name, protocol, secret bits)`` of the cipher in use."""
        return self._live().info().cipher()

    def alpn_protocol(self):
        """The ALPN protocol agreed (``'h2'``, ``'http/1.1'``) or None."""
        return self._live().info().selected_alpn_protocol()

    def getpeercert(self, binary_form=False):
        """The peer's certificate: a dict (only when it was verified), or
        with *binary_form* the DER bytes; None without one."""
        return self._live().info().getpeercert(binary_form)

    # -- reading --------------------------------------------------------------------

    def pending(self):
        """How many received bytes this socket holds that a ``poll()`` on
        its descriptor cannot see: read-ahead, data OpenSSL decrypted,
        and encrypted bytes not decrypted yet (the C engine's read buffer,
        the bio engine's memory BIO).  A connection
        pool uses it to tell whether a response left bytes behind.  0 once
        closed."""
        io = self._io
        if io is None:
            return 0
        n = len(self._rb) if self._rb else 0
        c = io.c
        if c is not None:
            n += c.pending()
            if type(io) is _CEngine:
                n += io.buffered()
        inc = getattr(io, "inc", None)
        if inc is not None:
            n += inc.pending
        return n

    def recv(self, buf, maxlen=None, timeout=None, expires=None):
        """Receive into the writable *buf* (up to *maxlen* bytes); return
        the count, 0 when the peer closed (close_notify or not)."""
        io = self._io
        if type(io) is _CEngine and not self._rb:
            return io.recv(buf, maxlen, timeout, expires, self)
        if io is None:
            raise closed_error("TLS socket")
        if type(buf) is bytearray:
            size = len(buf)
        else:   # checked now: a read-only buffer must not wait for data
            p = _wbuf(buf, "recv()")
            size = len(p)
            ffi.release(p)
        n = size if maxlen is None else _maxlen(maxlen, size)
        if self._rb:
            p = ffi.from_buffer("char[]", buf, True)
            return self._take(p, n)
        if n == 0:
            return 0
        return io.read(buf, n, timeout, expires, self)

    def _recv_loop(self, p, n, timeout, expires):
        """For the _Stream helpers: *p* is a cffi pointer."""
        if n == 0:
            return 0
        return self._live().read(ffi.buffer(p, n), n, timeout, expires, self)

    # -- writing --------------------------------------------------------------------

    def send(self, buf, maxlen=None, timeout=None, expires=None):
        """Send at least one byte of *buf* (up to *maxlen*); return how many
        were sent.  An empty send returns 0 (nothing reaches OpenSSL)."""
        io = self._live()
        view = memoryview(buf).cast("B")
        n = len(view) if maxlen is None else _maxlen(maxlen, len(view))
        if n == 0:
            return 0
        return io.write(view[:n], self._deadline(timeout, expires))

    def sendall(self, buf, maxlen=None, timeout=None, expires=None):
        """Send all of *buf* (or its first *maxlen* bytes).  On failure the
        raised ``Error`` has ``.sent``: the bytes that went out, or are
        committed to go out first (a TLS record cut short by a timeout)."""
        io = self._live()
        if type(io) is _CEngine:
            return io.sendall(buf, maxlen, timeout, expires, self)
        view = memoryview(buf).cast("B")
        n = len(view) if maxlen is None else _maxlen(maxlen, len(view))
        deadline = self._deadline(timeout, expires)
        sent = 0
        try:
            while sent < n:
                sent += io.write(view[sent:n], deadline)
        except Error as e:
            e.sent = sent + getattr(e, "sent", 0)
            raise
        return sent

    # -- ending ---------------------------------------------------------------------

    def shutdown(self, timeout=None, expires=None):
        """Send close_notify and shut the socket's write side: the peer
        reads 0.  Reading goes on until the peer closes too, and what the
        peer sent before is still read (on the ``fd`` engine, the fallback
        where the C engine cannot run, the standard library reads once
        after sending close_notify, and OpenSSL 3 drops application data
        it meets there)."""
        io = self._live()
        self._set_ssl(0, None)
        io.shutdown(self._deadline(timeout, expires))
        try:
            self._sock.shutdown("w")
        except Error as e:
            if e.err not in ("not_connected", "connection_reset"):
                raise

    def unwrap(self, timeout=None, expires=None):
        """End TLS (close_notify sent and received) and return the plain
        ``tcp``, for protocols that go back to plain text (STARTTLS).
        Threads parked in a ``recv`` or ``send`` of this TLS socket get
        ``Error('closed')`` first."""
        io = self._live()
        self._set_ssl(0, None)
        self._evict_waiters()
        io.unwrap(self._deadline(timeout, expires))
        leftover = io.pending_input()
        if self._rb:
            leftover = bytes(self._rb) + leftover
        self._io = None
        io.detach()
        sock = self._sock
        if leftover:
            if sock._rb is None:
                sock._rb = bytearray()
            sock._rb[:0] = leftover
        return sock

    def _evict_waiters(self):
        """unwrap() ends TLS on a socket that stays open: threads parked in
        a TLS recv or send on it get ``Error('closed')`` now (they would
        otherwise wait for plain bytes they cannot read, and unwrap()
        itself must read the peer's close_notify)."""
        sock = self._sock
        w = sock._w
        rg, wg = w.rg, w.wg
        if (rg is None or rg.dead) and (wg is None or wg.dead):
            return
        w.rg = w.wg = None
        closed = Error("closed", "TLS was ended (unwrap) while this thread "
                       "was waiting on it")
        hub = sock._hub
        if rg is not None:
            hub._throw(rg, closed)
        if wg is not None and wg is not rg:
            hub._throw(wg, closed)

    def close(self):
        """Close the connection (without close_notify: see ``shutdown``);
        threads waiting on it get ``Error('closed')``.  Idempotent."""
        io = self._io
        if io is None:
            return
        self._set_ssl(0, None)
        self._io = None
        io.detach()       # the fd engine lets go of the descriptor first
        _discard_input(self._sock)
        self._sock.close()

    def __del__(self):
        # Whoever drops a TLSSocket unclosed: the SSLSocket must let go of
        # the descriptor before anything closes it, so only socket2's
        # socket does (once).
        io = getattr(self, "_io", None)
        if io is not None:
            self._set_ssl(0, None)
            self._io = None
            io.detach()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __reduce_ex__(self, protocol):
        raise TypeError("a TLSSocket cannot be copied or pickled")

    def __repr__(self):
        if self.closed:
            return "<socket2 TLSSocket (closed)>"
        return "<socket2 TLSSocket fd=%d %s %s>" % (
            self.fileno(), self.engine, self._io.info().version() or
            "handshaking")


_SCRATCH = bytearray(65536)


def _discard_input(sock):
    """Read away what is waiting unread (without waiting): closing a socket
    with unread input makes the kernel send a reset instead of a FIN, and
    the peer may then lose what it had not read yet.  Under TLS 1.3 there
    is nearly always such input: the session tickets a client that only
    writes never reads."""
    fd = sock._fd
    if fd < 0:
        return
    p = ffi.from_buffer(_SCRATCH)
    for _ in range(64):
        if _lib.s2_recv(fd, p, len(_SCRATCH)) <= 0:
            return


def tls(sock, context=None, *, server_side=False, server_hostname=None,
        timeout=None, expires=None):
    """Wrap the connected ``tcp`` *sock* in TLS and complete the handshake
    (cooperatively, bounded by *timeout*/*expires*); return a
    :class:`TLSSocket`, which owns *sock* from then on.

    *context* is an ``ssl.SSLContext``; a client without one gets
    ``ssl.create_default_context()`` (certificates and host name verified),
    a server must give one.  A client whose context checks host names needs
    *server_hostname*.  A failed handshake closes *sock* (once, whatever
    failed) and raises ``socket2.TLSError``
    (``err='certificate_verify_failed'`` or ``'tls'``, with ``.reason``),
    ``socket2.TimeoutError`` or the socket's error.  Bad arguments (a
    ``server_hostname`` that is not a host name, a missing context) raise
    ``ValueError``/``TypeError`` and leave *sock* open and untouched.
    """
    if not isinstance(sock, TCPSocket):
        raise TypeError("tls() needs a socket2 tcp socket, not %s"
                        % type(sock).__name__)
    ssl = _load_ssl()
    if sock.closed:
        raise closed_error()
    if not isinstance(server_side, bool):
        raise TypeError("server_side must be True or False, not %r"
                        % (server_side,))
    if context is None:
        if server_side:
            raise ValueError("a TLS server needs an ssl.SSLContext with its "
                             "certificate (context=)")
        context = ssl.create_default_context()
    elif not isinstance(context, ssl.SSLContext):
        raise TypeError("context must be an ssl.SSLContext, not %s"
                        % type(context).__name__)
    side = {ssl.PROTOCOL_TLS_SERVER: True, ssl.PROTOCOL_TLS_CLIENT: False}
    if side.get(context.protocol, server_side) != server_side:
        raise ValueError("this context is for the %s side "
                         "(PROTOCOL_TLS_%s); tls() was asked for the %s side"
                         % (("server", "SERVER", "client") if server_side is
                            False else ("client", "CLIENT", "server")))
    if context.check_hostname and not server_hostname:
        if server_side:     # (refused as the standard library refuses it)
            raise ValueError("this context checks host names "
                             "(check_hostname), which a server has none of: "
                             "turn check_hostname off")
        raise ValueError("this context checks host names: give "
                         "server_hostname= (or turn check_hostname off)")
    server_hostname = _server_hostname(server_hostname, server_side)
    deadline = _deadline(sock.timeout if timeout is None else timeout,
                         expires)
    # Bytes read ahead of the handshake (STARTTLS after readline) can only
    # be handed to OpenSSL through a memory BIO.
    name = "bio" if sock._rb else _engine_name()
    engine = _ENGINES[name]
    # From here the socket is closed exactly once on any failure: each
    # engine lets go of the descriptor itself if making it fails (the fd
    # engine detaches its socket object), and detach() lets go after.
    io = None
    try:
        try:
            io = engine(sock, context, server_side, server_hostname)
        except _NotAdopted:
            # Not the SSL object _CEngine proves (a context whose
            # _wrap_socket is not the ssl module's, a future CPython's
            # layout): this connection runs on the standard library's
            # engine; the others are not affected.
            if os.environ.get("SOCKET2_TLS", "").strip().lower() == "c":
                raise Error("unsupported", "SOCKET2_TLS=c: the ssl module's "
                            "SSL object for this context is not one the C "
                            "engine can drive") from None
            io = _FdEngine(sock, context, server_side, server_hostname)
        io.handshake(deadline)
    except BaseException:
        if io is not None:
            io.detach()
        sock.close()
        raise
    # Made only now: a failed handshake leaves no TLSSocket to finalize
    # (a finalizer is where a Ctrl-C would be lost).
    return TLSSocket(sock, io)


# The compiled recv/sendall (socket2/ffi/tls_speedups.c) take the plain
# calls on the C engine and hand everything else to the Python methods,
# kept as _recv_py/_sendall_py.
TLSSocket._recv_py = TLSSocket.recv
TLSSocket._sendall_py = TLSSocket.sendall
if hasattr(_TLSBase, "_c_recv"):
    TLSSocket.recv = _TLSBase._c_recv
    TLSSocket.sendall = _TLSBase._c_sendall
