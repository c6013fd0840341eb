"""TLS over socket2 streams, through the standard library's ``ssl``.

``socket2.tls(sock, context, ...)`` completes a handshake over a connected
``tcp`` and returns a :class:`TLSSocket` with the same stream API.  Two
engines sit behind that one class:

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
import os
import sys

from . import pollers as _pollers
from ._socket_ffi import ffi, lib as _lib
from .errors import Error, TLSError, TimeoutError, closed_error, os_error
from .hub import _deadline, clock, sleep
from .sockets import TCPSocket, _Stream, _maxlen
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
    forced = os.environ.get("SOCKET2_TLS", "").strip().lower()
    if forced == "fd" and _pollers.completion_based():
        raise Error("unsupported", "SOCKET2_TLS=fd needs a readiness poller; "
                    "completion ports (IOCP) use the bio engine")
    if forced in ("fd", "bio"):
        return forced
    if forced:
        raise Error("unsupported", "SOCKET2_TLS must be 'fd' or 'bio', not %r"
                    % forced)
    return "bio" if _pollers.completion_based() else "fd"


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


class _FdEngine:
    """OpenSSL on socket2's descriptor (see the module docstring)."""

    __slots__ = ("ssl", "c", "raw", "sock", "wpending", "done")

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
                return op(*args)
            except _WantRead:
                want = 0
            except _WantWrite:
                want = 1
            except _Closed:
                if op == self.c.read:
                    return 0
                raise _tls_error(sys.exc_info()[1], what) from None
            except (_SSLError, OSError) as e:
                if self.sock._fd < 0:
                    raise closed_error() from None
                raise _tls_error(e, what) from None
            self.wait(want, deadline, reading)

    def read(self, buf, n, timeout, expires, owner):
        c = self.c
        if self.done:
            return 0      # TLS ended both ways (what follows is plain)
        _clear_errors()                     # (see _error_queue_clearer)
        try:
            r = c.read(n, buf)              # the common case: data is there
            if r < _RECORD or r >= n:
                return r
            return self.more(buf, r, n)     # a full record: likely more
        except _WantRead:
            want = 0
        except _WantWrite:
            want = 1
        except _Closed:
            return 0
        except (_SSLError, OSError, ValueError) as e:
            if self.sock._fd < 0:
                raise closed_error() from None
            raise _tls_error(e, "TLS recv") from None
        deadline = owner._deadline(timeout, expires)
        self.wait(want, deadline, True)
        return self.call(c.read, (n, buf), deadline, True, "TLS recv")

    def more(self, buf, got, n):
        """Streaming: one SSL_read returns one record (16 KiB at most); fill
        more of the caller's buffer while records are there, so a bulk
        reader makes one call per buffer, not per record."""
        view = memoryview(buf).cast("B")
        c = self.c
        try:
            while got < n:
                r = c.read(n - got, view[got:])
                if r == 0:
                    break
                got += r
        except _Closed:
            pass        # the end: what came before it is returned first
        except (_WantRead, _WantWrite):
            pass        # what is there is returned; the next call says more
        except (_SSLError, OSError) as e:
            if got == 0:
                raise _tls_error(e, "TLS recv") from None
        return got

    def write(self, view, deadline):
        """Write up to len(view) bytes (at least one); return the count."""
        if self.wpending is not None:
            self.flush_pending(deadline)
        data = view[:_WRITE_CHUNK]
        _clear_errors()
        try:
            return self.c.write(data)
        except _WantWrite:
            want = 1
        except _WantRead:
            want = 0
        except (_SSLError, OSError, ValueError) as e:
            if self.sock._fd < 0:
                raise closed_error() from None
            raise _tls_error(e, "TLS send") from None
        # OpenSSL made a record of these bytes: it must be given the very
        # same bytes again until it has written it.
        data = bytes(data)
        self.wpending = data
        try:
            self.wait(want, deadline, False)
            n = self.call(self.c.write, (data,), deadline, False, "TLS send")
        except TimeoutError as e:
            e.sent = len(data)      # committed: flushed before the next write
            raise
        self.wpending = None
        return n

    def flush_pending(self, deadline):
        data = self.wpending
        self.call(self.c.write, (data,), deadline, False, "TLS send")
        self.wpending = None

    def handshake(self, deadline):
        self.call(self.ssl.do_handshake, (), deadline, True, "TLS handshake")

    def shutdown(self, deadline):
        """Send close_notify (without waiting for the peer's)."""
        if self.wpending is not None:
            self.flush_pending(deadline)
        while True:
            _clear_errors()
            try:
                self.ssl.unwrap()     # first SSL_shutdown: sends ours
                self.done = True      # ... and the peer's was in already
                return
            except _WantRead:
                return                # ours is out; the peer's is not in
            except _WantWrite:
                self.wait(1, deadline, False)
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
            obj = self.ssl
            self.raw = self.ssl = self.c = None
            obj._sslobj = None        # nothing can reach the fd through it
            raw.detach()              # releases the fd without closing it

    def info(self):
        return self.ssl


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
        with self.wlock:
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
        n = self.call(self.c.write, (data,), deadline, "TLS send",
                      flush=False)
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


class TLSSocket(_Stream):
    """A TLS stream over a socket2 ``tcp`` (see :func:`tls`): ``send``,
    ``recv``, ``sendall``, ``recvn``, ``recvall``, ``read``, ``readline``,
    ``shutdown``, ``unwrap``, ``close``, and ``timeout=``/``expires=`` on
    every wait, like ``tcp``; plus ``version()``, ``cipher()``,
    ``alpn_protocol()``, ``getpeercert()``.  One thread may read while
    another writes."""

    __slots__ = ("_sock", "_io", "_rb", "timeout", "__weakref__")

    def __init__(self, sock, io):
        self._sock = sock
        self._io = io
        self._rb = None
        self.timeout = sock.timeout

    # -- identity -------------------------------------------------------------

    def fileno(self):
        return self._sock._fd if self._io is not None else -1

    @property
    def closed(self):
        return self._io is None or self._sock._fd < 0

    @property
    def engine(self):
        """``'fd'`` or ``'bio'``: how OpenSSL reaches the socket."""
        return "fd" if isinstance(self._io, _FdEngine) else "bio"

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
        and (bio engine) encrypted bytes not decrypted yet.  A connection
        pool uses it to tell whether a response left bytes behind.  0 once
        closed."""
        io = self._io
        if io is None:
            return 0
        n = len(self._rb) if self._rb else 0
        c = io.c
        if c is not None:
            n += c.pending()
        inc = getattr(io, "inc", None)
        if inc is not None:
            n += inc.pending
        return n

    def recv(self, buf, maxlen=None, timeout=None, expires=None):
        """Receive into the writable *buf* (up to *maxlen* bytes); return
        the count, 0 when the peer closed (close_notify or not)."""
        io = self._io
        if io is None:
            raise closed_error("TLS socket")
        size = len(buf) if type(buf) is bytearray else memoryview(buf).nbytes
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
        reads 0.  Reading goes on until the peer closes too."""
        io = self._live()
        io.shutdown(self._deadline(timeout, expires))
        try:
            self._sock.shutdown("w")
        except Error as e:
            if e.err not in ("not_connected", "connection_reset"):
                raise

    def unwrap(self, timeout=None, expires=None):
        """End TLS (close_notify sent and received) and return the plain
        ``tcp``, for protocols that go back to plain text (STARTTLS)."""
        io = self._live()
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

    def close(self):
        """Close the connection (without close_notify: see ``shutdown``);
        threads waiting on it get ``Error('closed')``.  Idempotent."""
        io = self._io
        if io is None:
            return
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
            self._io = None
            io.detach()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

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
    engine = _BioEngine if (_engine_name() == "bio" or sock._rb) \
        else _FdEngine
    # From here the socket is closed exactly once on any failure: each
    # engine lets go of the descriptor itself if making it fails (the fd
    # engine detaches its socket object), and detach() lets go after.
    io = None
    try:
        io = engine(sock, context, server_side, server_hostname)
        io.handshake(deadline)
    except BaseException:
        if io is not None:
            io.detach()
        sock.close()
        raise
    # Made only now: a failed handshake leaves no TLSSocket to finalize
    # (a finalizer is where a Ctrl-C would be lost).
    return TLSSocket(sock, io)
