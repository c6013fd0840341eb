"""TCP, UDP and raw sockets whose blocking calls wait cooperatively.

Every socket is non-blocking underneath and registered with its hub's poller
once, at creation.  Each operation tries the system call first and parks the
calling greenlet only when the kernel says "would block" (see hub.py).
"""
import os
import warnings
from _thread import get_ident as _get_ident

from ._socket_ffi import ffi, lib
from . import _hotpath, _names, pollers as _pollers
from .addr import AddrInfo, SockAddr, addr
from .errors import Error, closed_error, os_error, taken_error
from .hub import clock, get_hub, sleep, _deadline

__all__ = ["tcp", "udp", "raw", "TCPSocket", "UDPSocket", "RawSocket"]

# Hot-path names bound once (a global or attribute lookup per call adds up).
_from_buffer = ffi.from_buffer
_release = ffi.release
_recv = lib.s2_recv
_send = lib.s2_send
_accept = lib.s2_accept
_EAGAIN = -lib.S2_EAGAIN
_EWOULDBLOCK = -lib.S2_EWOULDBLOCK
_EINPROGRESS = -lib.S2_EINPROGRESS
_ACCEPT_RETRY = (-lib.S2_ECONNABORTED, -lib.S2_EPROTO, -lib.S2_EINTR)
_STREAM = lib.SOCK_STREAM
_SHUT = {"r": lib.SHUT_RD, "w": lib.SHUT_WR, "rw": lib.SHUT_RDWR}
_UNSET = object()
_os_sendfile = getattr(os, "sendfile", None)   # POSIX
_pread = getattr(os, "pread", None)

# Bumped in both parent and child by every os.fork(): a socket made before
# the last fork shares its open file description with the other process,
# so its close() must delete its kernel registration explicitly (see
# _Socket._unregister_for_close).
_forks = [0]


def _forked():
    _forks[0] += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_parent=_forked, after_in_child=_forked)


def _wbuf(buf, what):
    """A writable cdata view of *buf* (any writable buffer)."""
    try:
        return _from_buffer("char[]", buf, True)
    except TypeError:
        raise TypeError("%s needs a writable buffer (bytearray, memoryview, "
                        "array...), not %s" % (what, type(buf).__name__)) \
            from None
    except BufferError:
        raise TypeError("%s needs a writable buffer (contiguous); this %s "
                        "is read-only or not contiguous"
                        % (what, type(buf).__name__)) from None


# A cdata that from_buffer() made over the caller's buffer holds an export of
# it until the cdata goes.  Every method that makes one releases it when an
# exception leaves the method (_drop): the exception's traceback keeps the
# frames it passed through alive, locals and arguments included, and if
# the caller keeps the exception in a reference cycle (``err = e`` in the
# frame that caught it is enough) with a memoryview as the buffer, the
# garbage collector may clear that memoryview while the export still holds
# it.  CPython then prints "BufferError: memoryview has 1 exported buffer"
# and crashes when the export is released afterwards (memory_clear drops
# the view's managed buffer; memory_dealloc then dereferences it).  A
# normal return frees the frame, and the export, at once: no cost there.
# (The compiled recv/sendall hold their Py_buffer on the C stack, which the
# collector does not see, and release it before returning.)
def _drop(p):
    """Release the export *p* holds (``_rbuf`` may have returned bytes)."""
    if type(p) is not bytes:
        _release(p)


def _rbuf(buf, what):
    """A cdata view (or the bytes object itself) of a readable buffer."""
    if type(buf) is bytes:
        return buf
    try:
        return _from_buffer(buf)
    except TypeError:
        raise TypeError("%s needs a bytes-like object, not %s"
                        % (what, type(buf).__name__)) from None


def _maxlen(maxlen, size):
    if maxlen is None:
        return size
    if isinstance(maxlen, bool) or not isinstance(maxlen, int):
        raise TypeError("maxlen must be an int, not %s" % type(maxlen).__name__)
    if not 0 <= maxlen <= size:
        raise ValueError("maxlen must be between 0 and the buffer's length "
                         "(%d), got %d" % (size, maxlen))
    return maxlen


class _Socket(_hotpath.SocketBase):
    """What every socket has; see TCPSocket, UDPSocket, RawSocket."""

    # The base (compiled or not, see _hotpath.py) holds _fd, _type, _w,
    # _hub, _core, _rb and timeout: the fields recv/sendall read.
    # (and _family, _proto, _bound, _opts, _excl: filled by the compiled
    # accept() too)
    __slots__ = ("__weakref__",)

    _default_type = None

    def __init__(self, family="inet", protocol=None):
        fam = _names.lookup(_names.FAMILIES, family, "family")
        proto = _names.lookup(_names.PROTOCOLS, protocol, "protocol",
                              allow_none=True) or 0
        # The hub first: where none may be had (a finalizer of an ending
        # thread, see hub.get_hub) no descriptor is made to leak.
        hub = get_hub()
        fd = lib.s2_socket(fam, self._default_type, proto)
        if fd < 0:
            raise os_error(-fd, "socket(%s, %s, %s)" % (
                _names.family_name(fam), _names.type_name(self._default_type),
                protocol))
        self._setup(fd, fam, self._default_type, proto, hub)

    def _setup(self, fd, family, socktype, proto, hub, exclusive=True):
        self._fd = fd
        # Whether this descriptor's open file description is socket2's
        # alone (see _unregister_for_close): the fork generation it was
        # made in, or -1 for a descriptor someone else may hold a copy of.
        self._excl = _forks[0] if exclusive else -1
        self._family = family
        self._type = socktype
        self._proto = proto
        self._bound = False
        self._opts = None    # options set by setopt(), for _reopen
        self._busy = 0       # OpenSSL calls under way on fd (tls.py)
        self._held = -1      # fd, if a close waits for them (_release)
        self._rb = None      # read-ahead of read()/readline(), when used
        self.timeout = None
        self._hub = hub
        try:
            self._core = hub._core
            self._w = hub.register(fd)
        except BaseException:
            lib.s2_close(fd)
            self._fd = -1
            raise

    @classmethod
    def _from_fd(cls, fd, family, socktype, proto, hub, exclusive=True):
        """A socket over the descriptor *fd*, which it now owns.
        *exclusive*: socket2 made the descriptor (socket(), accept()) and
        nobody else can hold a copy of it; False for one that came from
        outside (the standard library's socket, dup(), fromfd())."""
        s = cls.__new__(cls)
        s._setup(fd, family, socktype, proto, hub, exclusive)
        return s

    def _unregister_for_close(self, fd):
        """Drop *fd*'s registration before it is closed.  A kernel
        registration (epoll) belongs to the open file description, not the
        number: closing the number removes it only when no copy of the
        description is left open elsewhere (a dup(), a forked child).  If
        one may be, the registration is deleted explicitly, or its events
        would go on arriving under the number the next socket reuses."""
        self._hub.unregister(fd, closing=self._excl == _forks[0])

    # -- identity and lifetime ---------------------------------------------

    def fileno(self):
        """The OS descriptor (-1 once closed)."""
        return self._fd

    @property
    def closed(self):
        return self._fd < 0

    def type(self):
        """``'tcp'``, ``'udp'`` or ``'raw'``."""
        return _names.type_name(self._type)

    def family(self):
        """``'inet'``, ``'inet6'`` or ``'unix'``."""
        return _names.family_name(self._family)

    def protocol(self):
        """``'tcp'``, ``'udp'``, ``'icmp'`` ... (``None`` for unix)."""
        return _names.protocol_name(self._proto, self._type, self._family)

    def close(self):
        """Close the socket; idempotent.  Threads waiting on it get
        ``socket2.Error`` with ``err == 'closed'``.

        From another OS thread than the one whose hub the socket belongs
        to, the socket is closed for every caller at once (later calls
        say ``'closed'``), and the owner's hub releases the descriptor and
        wakes its waiters at its next turn: a greenlet can only be resumed
        by its own OS thread.  If that thread has ended, the descriptor is
        released here."""
        fd = self._fd
        if fd < 0:
            return
        self._fd = -1
        hub = self._hub
        if hub.thread_ident != _get_ident():
            if hub.call_threadsafe(self._release, fd,
                                   orphaned=self._release_quietly):
                return
            # Its OS thread has ended: nothing is left to wake there (its
            # greenlets can never run again).
            self._release_quietly(fd)
            return
        self._release(fd)

    def _close_held(self):
        """Close the descriptor a close() left open while OpenSSL calls
        ran on it (see _release), once none does."""
        fd = self._held
        if fd >= 0 and not self._busy:
            self._held = -1
            lib.s2_close(fd)

    def _release_quietly(self, fd):
        """Release *fd* with nobody to wake (its hub's thread has ended)."""
        self._release(fd, wake=False)

    def _release(self, fd, wake=True):
        """Unregister and close *fd* (this socket's, already marked
        closed), then wake the threads that waited on it."""
        w, hub = self._w, self._hub
        rg, wg = w.rg, w.wg
        w.rg = w.wg = None
        busy = self._busy
        # Detach the waiters before the fd number can be reused, then
        # release it; only then wake them (which may switch away).
        hub.unregister(fd, closing=self._excl == _forks[0] and not busy)
        if busy:
            # Closed from a callback of an OpenSSL call under way on fd
            # (tls.py pins it around them): the call goes on after the
            # callback, on the number -- which must not be another
            # connection's by then.  It stays taken until the call
            # returns (_close_held).
            self._held = fd
        else:
            lib.s2_close(fd)     # (_unregister_for_close, inlined)
        if not wake or (rg is None and wg is None):
            return
        closed = Error("closed", "socket was closed while this thread was "
                       "waiting on it")
        if rg is not None:
            hub._throw(rg, closed)
        if wg is not None and wg is not rg:   # one waiter in both (select)
            hub._throw(wg, closed)

    def _finalize_open(self):
        """The finalizer's work for a socket collected open (the base's
        ``__del__``, _hotpath.SocketBase, calls it only then)."""
        fd = self._fd
        self._fd = -1
        handed = False
        try:
            hub = self._hub
            closing = self._excl == _forks[0]
            # The collector may run this in any OS thread: the hub's own
            # state is only touched in its thread (see close()).
            if hub.thread_ident != _get_ident() and \
                    hub.call_threadsafe(_release_fd, hub, fd, closing,
                                        orphaned=_release_fd):
                handed = True        # that hub releases and closes it
            else:
                hub.unregister(fd, closing=closing)
        except Exception:
            pass
        finally:
            if not handed:
                lib.s2_close(fd)     # whatever was raised above
        # Last: under -W error the warning raises, after the release.
        try:
            warnings.warn("unclosed socket2 socket %r (fd %d)" % (
                self.type(), fd), ResourceWarning, source=self)
        except Exception:
            pass

    # __enter__ and __exit__ (close) are the base's (_hotpath.SocketBase).

    def __repr__(self):
        if self._fd < 0:
            return "<socket2 %s (closed)>" % self.type()
        try:
            where = " %s" % self.getsockname().tostring() if self._bound else ""
        except Error:
            where = ""
        return "<socket2 %s fd=%d%s>" % (self.type(), self._fd, where)

    # -- helpers --------------------------------------------------------------

    def _fail(self, neg, what):
        if self._fd < 0:
            return closed_error()
        return os_error(-neg, what)

    def _deadline(self, timeout, expires):
        return _deadline(self.timeout if timeout is None else timeout,
                         expires)

    def _resolve(self, host, port, passive):
        """(ai, owned): *host* as an ai of this socket's family and type."""
        if isinstance(host, AddrInfo):
            if port is not None:
                raise TypeError("give either an ai or a host and port, "
                                "not both")
            host._owner.check()
            return host, False
        ai = addr(host, 0 if port is None else port, type=self._type,
                  family=self._family, protocol=self._proto or None,
                  flags="passive" if passive else None)
        return ai, True

    def _accepts(self, p):
        """Whether this socket can use the ai node *p* (same family, and the
        same type unless the node leaves it open)."""
        return p.ai_family == self._family and p.ai_socktype in (0, self._type)

    # -- addresses ------------------------------------------------------------

    def _name(self, fn, what):
        ss = ffi.new("struct sockaddr_storage *")
        n = ffi.new("socklen_t *")
        r = fn(self._fd, ss, n)
        if r < 0:
            raise self._fail(r, what)
        return SockAddr(ss, n[0], ss)

    def getsockname(self):
        """The local socket address (a ``SockAddr``)."""
        return self._name(lib.s2_getsockname, "getsockname")

    def getpeername(self):
        """The peer's socket address (a ``SockAddr``)."""
        return self._name(lib.s2_getpeername, "getpeername")

    @property
    def local_addr(self):
        """The local IP as text (or the unix path)."""
        return self.getsockname().ip()

    @property
    def local_port(self):
        """The local port (the real one after binding to port 0)."""
        return self.getsockname().port()

    @property
    def remote_addr(self):
        """The peer's IP as text (or unix path), once connected."""
        return self.getpeername().ip()

    @property
    def remote_port(self):
        """The peer's port, once connected."""
        return self.getpeername().port()

    # -- setup ----------------------------------------------------------------

    def bind(self, host="*", port=None):
        """Bind to ``bind(ai)`` or ``bind(host, port)``; ``'*'`` means all
        interfaces, port 0 a free port (see ``local_port``)."""
        ai, owned = self._resolve(host, port, passive=True)
        try:
            err = None
            for node in ai:
                p = node._p
                if not self._accepts(p):
                    continue
                r = lib.s2_bind(self._fd, p.ai_addr, p.ai_addrlen)
                if r == 0:
                    self._bound = True
                    return
                err = self._fail(r, "bind to %s" % node.tostring())
            raise err or Error("address_family_not_supported",
                               "no %s address in %r" % (self.family(), ai))
        finally:
            if owned:
                ai.free()

    def setopt(self, name, value):
        """Set a socket option by name (``'so_reuseaddr'``,
        ``'tcp_nodelay'``, ``'so_linger'`` ...); see ``socket2.OPTIONS``."""
        from . import _options
        _options.setopt(self, name, value)
        # Remembered so a connect() that moves on to the next address (on
        # a fresh socket, see _reopen) keeps what the caller set up.
        if self._opts is None:
            self._opts = {}
        self._opts[name.lower()] = value

    def getopt(self, name):
        """Read a socket option by name; see :meth:`setopt`."""
        from . import _options
        return _options.getopt(self, name)

    # -- shared I/O loops -----------------------------------------------------

    def _connect(self, host, port, timeout, expires):
        deadline = self._deadline(timeout, expires)
        ai, owned = self._resolve(host, port, passive=False)
        try:
            nodes = [n for n in ai if self._accepts(n._p)]
            if not nodes:
                raise Error("address_family_not_supported",
                            "no %s address for %r" % (self.family(), host))
            for i, node in enumerate(nodes):
                try:
                    return self._connect_one(node, deadline)
                except Error as e:
                    if e.err in ("timeout", "closed") or i == len(nodes) - 1:
                        raise
                    self._reopen()   # a failed connect leaves the socket
                                     # in an unspecified state (POSIX)
        finally:
            if owned:
                ai.free()

    def _connect_node(self, node, deadline):
        """Connect to the one address of the ai node *node* (not the nodes
        after it, as connect(ai) would: Happy Eyeballs gives each attempt
        its own node)."""
        node._owner.check()
        if not self._accepts(node._p):
            raise Error("address_family_not_supported", "a %s socket cannot "
                        "connect to %s" % (self.family(), node.tostring()))
        self._connect_one(node, deadline)

    def _connect_one(self, node, deadline):
        p = node._p
        while True:
            r = lib.s2_connect(self._fd, p.ai_addr, p.ai_addrlen)
            if r == 0:
                return
            if r == _EINPROGRESS:
                w = self._w
                # A wake-up is only a hint, never a completion (hub.py's
                # rule): a stale event of a closed socket whose number this
                # one reused can wake us while the handshake is still
                # under way.  Connected means the kernel says so.
                while True:
                    self._hub.wait_writable(w, deadline, self._fd)
                    r = lib.s2_connect_state(self._fd)
                    if r == 0 and w.soerr:  # the backend took it (kqueue)
                        r, w.soerr = -w.soerr, 0
                    if r != 0:
                        break
                if r == 1:
                    return
            elif r in (_EAGAIN, _EWOULDBLOCK) and self._family == lib.AF_UNIX:
                # A unix listener's backlog is full: the socket will not
                # signal when there is room, so poll for it gently.
                if deadline is not None and clock() >= deadline:
                    from .errors import TimeoutError
                    raise TimeoutError()
                sleep(0.001)
                continue
            raise self._fail(r, "connect to %s" % node.tostring())

    def _reopen(self):
        state = self._setup_state()
        fd = lib.s2_socket(self._family, self._type, self._proto)
        if fd < 0:
            raise os_error(-fd, "socket")
        self._hub.unregister(self._fd)
        os.dup2(fd, self._fd, inheritable=False)
        os.close(fd)
        self._w = self._hub.register(self._fd)
        self._restore_state(state)

    def _setup_state(self):
        """What the caller set up on this socket before connect(): the
        options given to setopt() and the bound address.  A connect that
        falls through to the next address needs a fresh socket
        (_reopen), which gets both again."""
        return self._opts, self.getsockname() if self._bound else None

    def _restore_state(self, state):
        opts, bound = state
        self._bound = False
        if opts:
            from . import _options
            for name, value in opts.items():
                _options.setopt(self, name, value)
        if bound is not None:
            sa = bound._sa()
            r = lib.s2_bind(self._fd, sa, bound._len)
            if r < 0:
                raise self._fail(r, "bind to %s again for the next address "
                                 "(connect() moved on from a failed one)"
                                 % bound.tostring())
            self._bound = True

    def _recv_loop(self, p, n, timeout, expires):
        w = self._w
        deadline = _UNSET
        # A stream socket whose last read came back short has an empty
        # queue: skip the recv() that would only say EAGAIN and wait for
        # the edge the next data brings (hub.py sets rready if that edge
        # comes while nobody waits).  Datagram sockets always try.
        # Clearing rready after a short read, here and below, is the
        # shortcut's one proof that the queue is empty; everything that
        # may make it stale sets rready again (the rule: _hotpath.Waiters).
        if w.rready:
            r = _recv(self._fd, p, n)
            if r > 0:
                if r < n and self._type == _STREAM and not w.hup:
                    w.rready = False
                return r
            if r == 0:
                return self._eof(w)
            if r != _EAGAIN and r != _EWOULDBLOCK:
                raise self._fail(r, "recv")
        while True:
            if deadline is _UNSET:
                deadline = self._deadline(timeout, expires)
            self._hub.wait_readable(w, deadline, self._fd)
            r = _recv(self._fd, p, n)
            if r > 0:
                w.rready = not (r < n and self._type == _STREAM and not w.hup)
                return r
            if r == 0:
                return self._eof(w)
            if r != _EAGAIN and r != _EWOULDBLOCK:
                raise self._fail(r, "recv")

    def _eof(self, w):
        """recv() gave 0: the end of the stream, unless the backend saw the
        socket fail (a reset whose error the kernel no longer reports).
        EPIPE is the write side's news (this end wrote after the peer
        stopped reading): the data read up to the end stands."""
        err = taken_error(w)
        if err:
            raise os_error(err, "recv")
        return 0

    def _send_loop(self, p, n, timeout, expires):
        deadline = _UNSET
        while True:
            r = _send(self._fd, p, n)
            if r >= 0:
                return r
            if r != _EAGAIN and r != _EWOULDBLOCK:
                raise self._fail(r, "send")
            if deadline is _UNSET:
                deadline = self._deadline(timeout, expires)
            self._hub.wait_writable(self._w, deadline, self._fd)


def _release_fd(hub, fd, closing):
    """In *hub*'s OS thread: unregister and close the descriptor of a
    socket that was collected unclosed elsewhere (nothing waits on it)."""
    hub.unregister(fd, closing=closing)
    lib.s2_close(fd)


class _Stream:
    """The reading helpers every stream has (TCP and TLS alike), written
    over the stream's ``_recv_loop(p, n, timeout, expires)`` (*p*: a cffi
    pointer to writable memory), ``_deadline`` and ``_rb`` (the
    read-ahead of ``read``/``readline``, or ``None``)."""

    __slots__ = ()

    def recvn(self, buf, n=None, timeout=None, expires=None):
        """Fill exactly *n* bytes of *buf* (default: all of it).  If the
        peer closes first, raises ``Error(err='eof')`` with ``.received``."""
        p = _wbuf(buf, "recvn()")
        got = 0
        try:
            n = _maxlen(n, len(p))
            deadline = self._deadline(timeout, expires)
            got = self._take(p, n) if self._rb else 0
            while got < n:
                r = self._recv_loop(p + got, n - got, None, deadline)
                if r == 0:
                    raise Error("eof", "peer closed the connection after %d "
                                "of %d bytes" % (got, n))
                got += r
        except Error as e:
            _release(p)     # (see _drop)
            e.received = got
            raise
        except BaseException:
            _release(p)
            raise
        return got

    def recvall(self, timeout=None, expires=None, chunk=65536):
        """Receive until the peer closes; return everything as bytes."""
        deadline = self._deadline(timeout, expires)
        s = self._scratch
        if 0 < chunk <= len(s.buf):
            p, view = s.p, s.view       # (see _fill)
        else:
            buf = bytearray(chunk)
            p, view = _from_buffer(buf), memoryview(buf)
        parts = []
        if self._rb:
            parts.append(bytes(self._rb))
            self._rb.clear()
        while True:
            r = self._recv_loop(p, chunk, None, deadline)
            if r == 0:
                return b"".join(parts)
            parts.append(bytes(view[:r]))

    # -- buffered reading ----------------------------------------------------
    # read() and readline() read ahead into one bytearray; recv(), recvn()
    # and recvall() hand out what it holds first.  Consuming from the front
    # of a bytearray is amortised O(1) in CPython, so nothing is copied
    # twice.  They receive into this OS thread's scratch buffer, not into
    # room grown for the purpose: a reader parked waiting for its line
    # holds only the bytes it already has.

    _scratch = _hotpath.ReadScratch(65536, _from_buffer)

    def _take(self, p, n):
        rb = self._rb
        k = min(n, len(rb))
        ffi.memmove(p, rb, k)
        del rb[:k]
        return k

    def _fill(self, deadline):
        """Append one recv() worth to the read-ahead; return its size."""
        s = self._scratch
        r = self._recv_loop(s.p, len(s.buf), None, deadline)
        if r:
            # Copied before anything else runs in this OS thread, so the
            # next reader of the scratch cannot overwrite it first.
            self._rb += s.view[:r]
        return r

    def read(self, n=-1, timeout=None, expires=None):
        """Return *n* bytes (fewer only if the peer closes first); with
        ``n < 0``, everything until the peer closes."""
        if self._rb is None:
            self._rb = bytearray()
        if n is None or n < 0:
            return self.recvall(timeout, expires)
        deadline = self._deadline(timeout, expires)
        rb = self._rb
        while len(rb) < n and self._fill(deadline):
            pass
        out = bytes(rb[:n])
        del rb[:n]
        return out

    def readline(self, limit=-1, timeout=None, expires=None):
        """Return one line including its ``b'\\n'`` (the rest at EOF, or
        *limit* bytes if the line is longer)."""
        if self._rb is None:
            self._rb = bytearray()
        deadline = self._deadline(timeout, expires)
        rb = self._rb
        start = 0
        while True:
            i = rb.find(b"\n", start)
            if i >= 0:
                end = i + 1
                break
            if 0 <= limit <= len(rb):
                end = limit
                break
            start = len(rb)
            if not self._fill(deadline):
                end = len(rb)
                break
        if 0 <= limit < end:
            end = limit
        out = bytes(rb[:end])
        del rb[:end]
        return out


class TCPSocket(_Stream, _Socket):
    """A TCP (stream) socket; also used for unix stream sockets."""

    __slots__ = ()
    _default_type = lib.SOCK_STREAM

    def listen(self, *args, backlog=None, host=_UNSET, port=_UNSET):
        """Listen for connections; bind first if not bound yet.

        Forms: ``listen(host='*', port=0, backlog=None)``, ``listen(ai)``,
        and the original order ``listen(backlog, host, port)``.  The
        default backlog is the largest the OS allows.  An address in use
        raises ``Error(err='address_already_in_use')``.
        """
        args = list(args)
        if args and isinstance(args[0], int) and not isinstance(args[0], bool):
            if backlog is not None:
                raise TypeError("backlog given twice")
            backlog = args.pop(0)
        if len(args) > 3:
            raise TypeError("listen() takes at most 3 positional arguments")
        if len(args) == 3:
            if backlog is not None:
                raise TypeError("backlog given twice")
            backlog = args.pop()
        if host is not _UNSET:
            args[0:1] = [host]
        if port is not _UNSET:
            args[1:2] = [port] if args else ["*", port]
        if backlog is None:
            backlog = -1
        elif isinstance(backlog, bool) or not isinstance(backlog, int):
            raise TypeError("backlog must be an int")
        if not self._bound:
            if self._family != lib.AF_UNIX and os.name != "nt":
                # Let a restarted server bind while old connections linger
                # in TIME_WAIT (a listening port still conflicts).
                self.setopt("so_reuseaddr", True)
            self.bind(*args) if args else self.bind()
        elif args:
            raise Error("invalid_argument", "socket is already bound; call "
                        "listen() without an address")
        r = lib.s2_listen(self._fd, backlog)
        if r < 0:
            raise self._fail(r, "listen")

    def accept(self, timeout=None, expires=None):
        """Wait for and return the next connection (a ``TCPSocket`` that
        knows its peer: ``remote_addr``, ``remote_port``)."""
        deadline = _UNSET
        while True:
            fd = _accept(self._fd)
            if fd >= 0:
                s = TCPSocket.__new__(TCPSocket)   # (_from_fd, inlined)
                try:
                    family, stype, proto, hub = \
                        self._family, self._type, self._proto, self._hub
                except BaseException:    # (a field deleted meanwhile)
                    lib.s2_close(fd)
                    raise
                s._setup(fd, family, stype, proto, hub)
                return s
            if fd == _EAGAIN or fd == _EWOULDBLOCK:
                if deadline is _UNSET:
                    deadline = self._deadline(timeout, expires)
                self._hub.wait_readable(self._w, deadline, self._fd)
            elif fd not in _ACCEPT_RETRY:   # the peer gave up: next one
                raise self._fail(fd, "accept")

    def connect(self, host, port=None, timeout=None, expires=None):
        """Connect to ``connect(ai)`` or ``connect(host, port)``, trying
        each address of the lookup in turn; the last failure is raised
        (``err='connection_refused'``, ``'timeout'`` ...)."""
        self._connect(host, port, timeout, expires)

    def send(self, buf, maxlen=None, timeout=None, expires=None):
        """Send at least one byte of *buf* (up to *maxlen*); return how
        many were sent, waiting while the kernel buffer is full."""
        p = _rbuf(buf, "send()")
        try:
            return self._send_loop(p, _maxlen(maxlen, len(p)), timeout,
                                   expires)
        except BaseException:
            _drop(p)        # (see _drop)
            raise

    def recv(self, buf, maxlen=None, timeout=None, expires=None):
        """Receive into the writable *buf* (up to *maxlen* bytes); return
        the count, 0 when the peer closed its side."""
        # The hot path (compiled: _hotpath.socket_methods, which hands
        # anything but the plain case here): straight-line, one Python
        # frame, no wait machinery unless the kernel has nothing for us.
        try:
            p = _from_buffer("char[]", buf, True)
        except (TypeError, BufferError):
            p = _wbuf(buf, "recv()")   # raises the explanatory error
        try:
            n = len(p) if maxlen is None else _maxlen(maxlen, len(p))
            if self._rb:
                return self._take(p, n)
            return self._recv_loop(p, n, timeout, expires)
        except BaseException:
            _release(p)     # (see _drop)
            raise

    def sendall(self, buf, maxlen=None, timeout=None, expires=None):
        """Send all of *buf* (or its first *maxlen* bytes).  On failure the
        raised ``Error`` has ``.sent``, the count that did go out."""
        # The hot path (compiled: _hotpath.socket_methods, which hands
        # anything but a plain call here, and a send the kernel did not
        # take whole to _sendall_rest).
        if type(buf) is bytes:
            p = buf
        else:
            try:
                p = _from_buffer(buf)
            except TypeError:
                p = _rbuf(buf, "sendall()")   # raises the explanatory error
        try:
            n = len(p) if maxlen is None else _maxlen(maxlen, len(p))
            # The hot path: the kernel takes it all at once.
            r = _send(self._fd, p, n)
            if r == n:
                return n
            return self._sendall_slow(p, n, r, timeout, expires)
        except BaseException:
            _drop(p)        # (see _drop)
            raise

    def _sendall_rest(self, buf, maxlen, r):
        """The compiled sendall's first send() returned *r*, not the whole
        length: go on from there (no timeout was given)."""
        p = _rbuf(buf, "sendall()")
        try:
            n = len(p) if maxlen is None else _maxlen(maxlen, len(p))
            return self._sendall_slow(p, n, r, None, None)
        except BaseException:
            _drop(p)        # (see _drop)
            raise

    def _sendall_slow(self, p, n, r, timeout, expires):
        """Go on after a first send() of *p* that returned *r* (a count
        short of *n*, "would block", or an error to raise)."""
        if r < 0:
            if r != _EAGAIN and r != _EWOULDBLOCK:
                e = self._fail(r, "send")
                e.sent = 0
                raise e
            r = 0
        sent = r
        deadline = self._deadline(timeout, expires)
        try:
            if type(p) is bytes:
                p = _from_buffer(p)
            while sent < n:
                sent += self._send_loop(p + sent, n - sent, None, deadline)
        except Error as e:
            e.sent = sent
            raise
        return sent

    def sendfile(self, file, offset=0, count=None, timeout=None,
                 expires=None):
        """Send *count* bytes (default: up to the end) of *file*, an open
        regular file (or its descriptor), starting at byte *offset*.  The
        kernel copies the bytes (``sendfile()``) where the OS has the call;
        elsewhere they are read and sent with :meth:`sendall`.  Returns how
        many were sent: fewer than *count* only if the file is shorter.
        *timeout*/*expires* bound the whole call; on failure the raised
        ``Error`` has ``.sent``."""
        fd = file if isinstance(file, int) else file.fileno()
        if isinstance(offset, bool) or not isinstance(offset, int) \
                or offset < 0:
            raise ValueError("sendfile(): offset must be an int >= 0, not %r"
                             % (offset,))
        if count is None:
            count = max(0, os.fstat(fd).st_size - offset)
        elif isinstance(count, bool) or not isinstance(count, int) \
                or count < 0:
            raise ValueError("sendfile(): count must be an int >= 0 or "
                             "None, not %r" % (count,))
        if self._fd < 0:
            raise closed_error()
        deadline = self._deadline(timeout, expires)
        if _os_sendfile is None:
            return self._sendfile_copy(fd, offset, count, deadline)
        sent = 0
        try:
            while sent < count:
                try:
                    r = _os_sendfile(self._fd, fd, offset + sent,
                                     min(count - sent, 1 << 30))
                except (BlockingIOError, InterruptedError):
                    self._hub.wait_writable(self._w, deadline, self._fd)
                    continue
                except OSError as e:
                    raise self._fail(-e.errno, "sendfile") from None
                if r == 0:
                    break                    # the file ended early
                sent += r
        except Error as e:
            e.sent = sent
            raise
        return sent

    def _sendfile_copy(self, fd, offset, count, deadline):
        """sendfile() where the OS has no such call: read, then send
        (without pread(), Windows, this moves the descriptor's offset)."""
        sent = 0
        try:
            while sent < count:
                n = min(count - sent, 65536)
                if _pread is not None:
                    data = _pread(fd, n, offset + sent)
                else:
                    os.lseek(fd, offset + sent, os.SEEK_SET)
                    data = os.read(fd, n)
                if not data:
                    break
                sent += self.sendall(data, expires=deadline)
        except Error as e:
            e.sent = sent + getattr(e, "sent", 0)
            raise
        return sent

    def shutdown(self, how="rw"):
        """Shut down reading (``'r'``), writing (``'w'``) or both."""
        try:
            h = _SHUT[how]
        except (KeyError, TypeError):
            raise ValueError("shutdown() needs 'r', 'w' or 'rw', not %r"
                             % (how,)) from None
        r = lib.s2_shutdown(self._fd, h)
        if r < 0:
            raise self._fail(r, "shutdown")


class UDPSocket(_Socket):
    """A UDP (datagram) socket; also used for unix datagram sockets."""

    __slots__ = ()
    _default_type = lib.SOCK_DGRAM

    def connect(self, host, port=None):
        """Set the default peer: ``send``/``recv`` without an address use
        it, and datagrams from others are dropped by the kernel."""
        ai, owned = self._resolve(host, port, passive=False)
        try:
            err = None
            for node in ai:
                p = node._p
                if not self._accepts(p):
                    continue
                r = lib.s2_connect(self._fd, p.ai_addr, p.ai_addrlen)
                if r == 0:
                    return
                err = self._fail(r, "connect to %s" % node.tostring())
            raise err or Error("address_family_not_supported",
                               "no %s address for %r" % (self.family(), host))
        finally:
            if owned:
                ai.free()

    def send(self, buf, maxlen=None, host=None, port=None, timeout=None,
             expires=None):
        """Send one datagram from *buf* (up to *maxlen* bytes) to
        ``ai``/``host, port``, or to the connected peer; return its size."""
        p = _rbuf(buf, "send()")
        try:
            n = _maxlen(maxlen, len(p))
            if host is None and port is None:
                return self._send_loop(p, n, timeout, expires)
            ai, owned = self._resolve(host, port, passive=False)
            try:
                return self._sendto(p, n, ai, timeout, expires)
            finally:
                if owned:
                    ai.free()
        except BaseException:
            _drop(p)        # (see _drop)
            raise

    def _sendto(self, p, n, ai, timeout, expires):
        sa = ai._p
        deadline = _UNSET
        while True:
            r = lib.s2_sendto(self._fd, p, n, sa.ai_addr, sa.ai_addrlen)
            if r >= 0:
                return r
            if r != _EAGAIN and r != _EWOULDBLOCK:
                raise self._fail(r, "sendto %s" % ai.tostring())
            if deadline is _UNSET:
                deadline = self._deadline(timeout, expires)
            self._hub.wait_writable(self._w, deadline, self._fd)

    def recv(self, buf, maxlen=None, host=None, port=None, timeout=None,
             expires=None):
        """Receive one datagram into *buf*; return its size.  With
        ``ai``/``host, port``, datagrams from other senders are skipped."""
        p = _wbuf(buf, "recv()")
        try:
            n = _maxlen(maxlen, len(p))
            if host is None and port is None:
                return self._recv_loop(p, n, timeout, expires)
            return self._recv_from_peer(p, n, host, port, timeout, expires)
        except BaseException:
            _release(p)     # (see _drop)
            raise

    def _recv_from_peer(self, p, n, host, port, timeout, expires):
        ai, owned = self._resolve(host, port, passive=False)
        try:
            wanted = [node.addr for node in ai]
            deadline = self._deadline(timeout, expires)
            while True:
                r, sa = self._recvfrom(p, n, deadline)
                if any(sa == w for w in wanted):
                    return r
        finally:
            if owned:
                ai.free()

    def recvfrom(self, buf, maxlen=None, timeout=None, expires=None):
        """Receive one datagram; return ``(size, sender)`` where sender is
        a ``SockAddr``."""
        p = _wbuf(buf, "recvfrom()")
        try:
            return self._recvfrom(p, _maxlen(maxlen, len(p)),
                                  self._deadline(timeout, expires))
        except BaseException:
            _release(p)     # (see _drop)
            raise

    def _recvfrom(self, p, n, deadline):
        ss = ffi.new("struct sockaddr_storage *")
        sl = ffi.new("socklen_t *")
        while True:
            r = lib.s2_recvfrom(self._fd, p, n, ss, sl)
            if r >= 0:
                return r, SockAddr(ss, sl[0], ss)
            if r != _EAGAIN and r != _EWOULDBLOCK:
                raise self._fail(r, "recvfrom")
            self._hub.wait_readable(self._w, deadline, self._fd)


class RawSocket(UDPSocket):
    """A raw IP socket (needs privilege: ``err='access_denied'`` without
    it).  Received datagrams include the IP header (IPv4)."""

    __slots__ = ()
    _default_type = lib.SOCK_RAW

    def __init__(self, family="inet", protocol="raw"):
        super().__init__(family, protocol)


def tcp(family="inet", protocol=None):
    """A new TCP socket (``family='unix'`` for a unix stream socket)."""
    return TCPSocket(family, protocol)


def udp(family="inet", protocol=None):
    """A new UDP socket (``family='unix'`` for a unix datagram socket)."""
    return UDPSocket(family, protocol)


def raw(family="inet", protocol="raw"):
    """A new raw socket, e.g. ``raw('inet', 'icmp')`` for ping."""
    return RawSocket(family, protocol)


if _pollers.completion_based():
    # Completion ports (IOCP): waiting means submitting the operation.
    from . import _completion
    _completion.install(_Socket, TCPSocket, UDPSocket)
elif _hotpath.socket_methods is not None:
    # The compiled recv/sendall: the plain calls (no timeout, no read-ahead)
    # run in C; every other call, and every error, goes to the Python
    # methods, kept as _recv_py/_sendall_py.
    _hotpath.configure_sockets(
        int(ffi.cast("uintptr_t", ffi.addressof(lib, "s2_recv"))),
        int(ffi.cast("uintptr_t", ffi.addressof(lib, "s2_send"))),
        _EAGAIN, _EWOULDBLOCK, _STREAM)
    _hotpath.configure_accept(
        int(ffi.cast("uintptr_t", ffi.addressof(lib, "s2_accept_peer"))),
        int(ffi.cast("uintptr_t", ffi.addressof(lib, "s2_close"))),
        TCPSocket, _forks, _ACCEPT_RETRY)
    TCPSocket._recv_py = TCPSocket.recv
    TCPSocket._sendall_py = TCPSocket.sendall
    TCPSocket._accept_py = TCPSocket.accept
    _Socket._close_py = _Socket.close
    TCPSocket.recv = _hotpath.socket_methods["recv"]
    TCPSocket.sendall = _hotpath.socket_methods["sendall"]
    TCPSocket.accept = _hotpath.socket_methods["accept"]
    _Socket.close = _hotpath.socket_methods["close"]
