"""A cooperative ``socket`` module: the standard library's names, with
blocking calls that wait on socket2's hub.

``socket`` here is a subclass of the standard ``socket.socket`` (so of
``_socket.socket``: ``ssl`` and other C code accept it).  Underneath, the
descriptor is always non-blocking; the standard library's timeout
semantics are kept in Python: ``settimeout(None)`` blocks (cooperatively),
``0`` raises ``BlockingIOError``, a number raises ``socket.timeout``.  Each
call tries the system call first and waits on the hub only on "would
block".  ``connect``/``accept`` go through socket2's own sockets, so they
use ConnectEx/AcceptEx on completion ports; data calls wait for readiness
(on IOCP, a stream waits with a zero-byte receive).

Host name lookups (``getaddrinfo``, ``gethostbyname`` ...) run in socket2's
worker OS threads; a non-ASCII host name is IDNA-encoded in the calling
thread first, so no worker ever imports the codec (the import-lock deadlock
gevent's threaded resolver met).
"""
import _socket
import errno as _errno
import operator as _operator
import os as _os
import socket as __socket__
import sys as _sys
import encodings.idna  # noqa: F401  (imported here, never in a worker)

from socket import *  # noqa: F401,F403  (the standard names and constants)

from .. import _offload
from ..errors import Error as _S2Error
from ..errors import TimeoutError as _S2Timeout
from ..errors import taken_error as _taken_error
from ..hub import clock as _clock, get_hub as _get_hub, sleep as _sleep
from ..hub import _existing_hub
from .. import pollers as _pollers
from . import select as _gselect

__all__ = list(__socket__.__all__)
_finalizing = _sys.is_finalizing

# The standard functions, as they are before any patching (patch_all()
# imports this module first): the green ones call these, never the
# module's attributes, which may be the green ones by then.
_orig = {name: getattr(__socket__, name) for name in (
    "getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr",
    "getnameinfo", "getfqdn", "create_server", "socketpair")}
for _f in _orig.values():
    assert getattr(_f, "__module__", None) != __name__, "socket is patched"

_std = __socket__.socket
_UNSET = object()
_GLOBAL_DEFAULT_TIMEOUT = __socket__._GLOBAL_DEFAULT_TIMEOUT
_COMPLETION = _pollers.completion_based()
_STREAM = SOCK_STREAM
# A wait in an OS thread that is not the registration's home lasts this
# many seconds at a time (a close from another thread is noticed within
# one slice; see _GreenIO).
_FOREIGN_SLICE = 0.2
_real_poll = _gselect._real_poll
_real_select = _gselect._real_select
_POLLIN = getattr(_gselect, "POLLIN", 1)
_POLLOUT = getattr(_gselect, "POLLOUT", 4)
# A call with this flag never waits, whatever the socket's timeout (as
# with the standard blocking socket: the kernel answers EAGAIN at once).
_DONTWAIT = getattr(__socket__, "MSG_DONTWAIT", 0)
timeout = __socket__.timeout
error = OSError
_default_timeout = None


def getdefaulttimeout():
    """The timeout new sockets get (``None``: blocking)."""
    return _default_timeout


def setdefaulttimeout(t):
    """Set the timeout new sockets get."""
    global _default_timeout
    _default_timeout = None if t is None else _check_timeout(t)


def _check_timeout(t):
    """*t* as the standard library takes a timeout: a float or an integer
    (``TypeError`` for anything else), not NaN, not negative."""
    if isinstance(t, float):
        if t != t:
            raise ValueError("Invalid value NaN (not a number)")
    else:
        t = _operator.index(t)      # the standard TypeError for 'spam'
    t = float(t)
    if t < 0:
        raise ValueError("Timeout value out of range")
    return t


def _os_error(e):
    """The standard library's exception for socket2's error *e*."""
    if isinstance(e, _S2Timeout):
        return timeout("timed out")
    if e.err == "closed":
        return OSError(_errno.EBADF, "Bad file descriptor")
    if e.errno:
        return OSError(e.errno, e.strerror or str(e))
    return OSError(str(e))


class _GreenIO:
    """The waiting half shared by the green socket and the green
    ``ssl.SSLSocket``: the user's timeout, the socket2 socket that waits
    (the descriptor's registration with one hub), and the close protocol.

    Which hub waits: the descriptor is registered once, with the hub of
    the first OS thread that has to wait on it (its *home*), and stays
    there: nothing moves under a thread parked in it.  A call from another
    OS thread that has to wait does so through its own hub, with a
    registration made for that wait alone (in that hub's own kernel set),
    or by poll(2) in a thread that has no hub (nothing else runs there),
    a slice at a time so that a close is noticed (``_g_wait_foreign``).
    So one green socket may be used from several OS threads at once, one
    reading while another writes, as the standard library allows.  A close
    from another OS thread is handed to the home hub (``call_threadsafe``),
    which wakes the threads parked there with ``EBADF``.

    The short-read shortcut (``Waiters.rready``, see _hotpath.py): every
    wait for readability through the home hub leaves it True (the edge it
    took may have brought more than the caller then reads); only ``recv``
    and ``recv_into`` of a stream socket, without flags, in the home
    thread, clear it after a short read, exactly like sockets.py's
    ``_recv_loop``.

    The descriptor has one owner: the standard socket object, which closes
    it.  The socket2 socket over it only holds the registration (its class
    never closes anything, see ``_reg_class``), so a garbage cycle holding
    both cannot close the number twice.
    """

    # Set lazily: ssl.SSLSocket._create() bypasses __init__.
    _g_timeout = None
    _g_s2 = None

    def _g_init(self, s2=None):
        self._g_timeout = _default_timeout
        self._g_s2 = s2
        _std.settimeout(self, 0.0)          # the descriptor: non-blocking

    # -- the standard timeout API, kept in Python ----------------------------

    def settimeout(self, value):
        self._g_timeout = None if value is None else _check_timeout(value)
        _std.settimeout(self, 0.0)

    def gettimeout(self):
        return self._g_timeout

    def setblocking(self, flag):
        self.settimeout(None if flag else 0.0)

    def getblocking(self):
        return self._g_timeout != 0.0

    @property
    def timeout(self):
        return self._g_timeout

    # -- waiting --------------------------------------------------------------

    def _g_sock(self):
        """The socket2 socket holding this descriptor's registration: made
        on first use, with the calling OS thread's hub (which becomes its
        home for as long as that hub lives)."""
        s2 = self._g_s2
        if s2 is not None:
            if not getattr(s2._hub, "_closed", False):
                return s2
            # Its home hub is closed (its OS thread ended): nothing waits
            # there any more, and the registration moves to this thread.
            self._g_s2 = None
            s2._fd = -1
        fd = self.fileno()
        if fd < 0:
            raise OSError(_errno.EBADF, "Bad file descriptor")
        hub = _get_hub()
        if hub._waker is None:
            # Another OS thread may close this socket: it hands the close
            # to this hub with call_threadsafe, which needs the waker.
            hub._start_waker()
        # A select() of this thread may watch the number (a registration
        # of its own): it lets go, and looks again later.
        _gselect._let_go_fd(hub, fd)
        tcp, udp = _reg_class()
        cls = tcp if self.type == SOCK_STREAM else udp
        s2 = self._g_s2 = cls._from_fd(fd, self.family, self.type,
                                       self.proto, hub)
        if self.family in (AF_INET, AF_INET6):
            try:     # bound by the standard bind(): ConnectEx must not rebind
                s2._bound = self.getsockname()[1] != 0
            except OSError:
                pass
        return s2

    def _g_here(self):
        """The registration, if it belongs to the calling OS thread's hub
        (else None: not made yet, or another thread's)."""
        s2 = self._g_s2
        if s2 is not None and s2._hub is _existing_hub():
            return s2
        return None

    def _g_deadline(self):
        t = self._g_timeout
        return None if t is None else _clock() + t

    def _g_wait(self, write, deadline):
        """Wait until the descriptor is readable (or writable); raise
        ``socket.timeout`` at *deadline*.  A wake-up is a hint: the caller
        tries its system call again."""
        if _finalizing():   # (no hub is made then: no switches)
            return self._g_wait_foreign(write, deadline)
        try:
            s2 = self._g_sock()
        except _S2Error as e:
            if e.err != "closed":
                raise
            # This OS thread is ending and its hub closed (a finalizer of
            # a threading.local value): a wait in the thread, without one.
            return self._g_wait_foreign(write, deadline)
        hub = s2._hub
        if hub is not _existing_hub():
            return self._g_wait_foreign(write, deadline)
        try:
            if _COMPLETION:
                return self._g_wait_completion(s2, write, deadline)
            w = s2._w
            if write:
                if w.wg is not None:
                    _gselect._let_go(w)     # a select() may hold the slot
                hub.wait_writable(w, deadline, s2._fd)
            else:
                if w.rg is not None:
                    _gselect._let_go(w)
                hub.wait_readable(w, deadline, s2._fd)
                # This wait took the edge; what it brought is not known to
                # be read yet (see the class docstring).
                w.rready = True
                if w.soerr and s2._type != _STREAM:
                    # A datagram socket's error (an ICMP refusal) the
                    # poller took with the event: the kernel would have
                    # reported it to the next read, which would now block.
                    self._g_taken()
        except _S2Error as e:
            raise _os_error(e) from None

    def _g_wait_foreign(self, write, deadline):
        """Wait in an OS thread that is not the registration's home: through
        this thread's own hub (a registration for this wait only, in its
        own kernel set), or, in a thread without a hub (nothing else to
        run there), by poll(2) in this thread.  At most a slice at a time:
        the caller tries its call again after each, so a close from another
        thread ends the wait (``EBADF``) and nothing can strand it."""
        fd = self.fileno()
        if fd < 0:
            raise OSError(_errno.EBADF, "Bad file descriptor")
        step = _FOREIGN_SLICE
        if deadline is not None:
            left = deadline - _clock()
            if left <= 0:
                raise timeout("timed out")
            if left < step:
                step = left
        if _existing_hub() is None or _finalizing():
            _poll_one(fd, write, step)      # (finalizing: no switches)
        else:
            _gselect._wait_any({fd: (not write, write)}, _clock() + step)
        if self.fileno() != fd:
            raise OSError(_errno.EBADF, "Bad file descriptor")

    def _g_wait_completion(self, s2, write, deadline):
        # A completion port reports no readiness: a connected stream waits
        # for data with a zero-byte receive; anything else is looked at
        # again shortly (on the hub's timers, never blocking the thread).
        hub = s2._hub
        if not write and self.type == SOCK_STREAM:
            rop = s2._w.rop
            if rop is None or not rop.pending:
                hub._prime_read(s2._fd, s2._w, s2._type)
            hub.wait_readable(s2._w, deadline, s2._fd)
            # The zero-byte receive failed: that is the socket's error (a
            # reset), which the read that follows may no longer be told.
            rop = s2._w.rop
            if rop is not None and not rop.pending and rop.done_err:
                raise s2._fail(-rop.done_err, "recv")
            return
        if deadline is not None and _clock() >= deadline:
            raise _S2Timeout()
        _sleep(0.001)

    def _g_call(self, write, fn, *args):
        """``fn(*args)`` (a non-blocking C call), waiting while it would
        block, as the timeout says."""
        try:
            return fn(*args)
        except BlockingIOError:
            if self._g_timeout == 0.0:
                raise
        except InterruptedError:
            pass
        return self._g_retry(write, self._g_deadline(), fn, *args)

    def _g_flagged(self, write, flags, fn, *args):
        """``_g_call``, unless *flags* has ``MSG_DONTWAIT``: then one try,
        ``BlockingIOError`` if it would block."""
        if flags & _DONTWAIT:
            return fn(*args)
        return self._g_call(write, fn, *args)

    def _g_retry(self, write, deadline, fn, *args):
        """Wait, then ``fn(*args)``, until it does not block."""
        while True:
            self._g_wait(write, deadline)
            try:
                return fn(*args)
            except (BlockingIOError, InterruptedError):
                pass
            except BrokenPipeError:
                if write:
                    # (the reset the poller took, as the kernel says it)
                    self._g_taken(_errno.EPIPE)
                raise

    # -- connections (shared with the green SSLSocket) -------------------------

    def _g_connect_state(self):
        """Where a non-blocking connect stands: 0 connected, an errno if it
        failed, None while it is still in progress.  A wake-up alone proves
        nothing (a stale event of a closed socket whose number this one
        reused can carry the writable bit while the handshake is still
        under way, with SO_ERROR 0); the kernel's own answer does."""
        err = self.getsockopt(SOL_SOCKET, SO_ERROR)
        if not err:
            s2 = self._g_here()
            if s2 is not None:      # the backend took it (kqueue)?
                err = _taken_error(s2._w, 0)
        if err:
            return err
        try:
            self.getpeername()
            return 0
        except OSError as e:
            # It may have failed in between.
            err = self.getsockopt(SOL_SOCKET, SO_ERROR)
            if err:
                return err
            if e.errno == _errno.ENOTCONN:
                return None
            return e.errno or _errno.EIO

    def _connect_completion(self, address):
        host, port = _resolved(self, address)[:2]
        try:
            self._g_sock().connect(host, port, timeout=self._g_timeout)
        except _S2Error as e:
            raise _os_error(e) from None

    def _accept_completion(self):
        s2 = self._g_sock()
        try:
            if self._g_timeout == 0.0:
                fd, addr = self._accept()       # raises BlockingIOError
                return socket(self.family, self.type, self.proto, fd), addr
            conn = s2.accept(timeout=self._g_timeout)
        except _S2Error as e:
            raise _os_error(e) from None
        fd = conn._fd
        conn.__class__ = _reg_class()[0]        # the green socket closes fd
        sock = socket(self.family, self.type, self.proto, fileno=fd)
        sock._g_s2 = conn                       # its hub registration
        return sock, sock.getpeername()

    # -- closing --------------------------------------------------------------

    def _g_forget(self, closing=True):
        """Let go of socket2's hold on the descriptor before the standard
        socket closes it (*closing*) or hands it on: unregister it from its
        home hub and wake the threads parked there with ``EBADF``.  From
        another OS thread, the home hub does that in its own thread."""
        s2 = self._g_s2
        self._g_s2 = None
        if s2 is None or s2._fd < 0:
            return
        fd, w, hub = s2._fd, s2._w, s2._hub
        s2._fd = -1
        if hub is _existing_hub():
            # A kernel registration (epoll) is deleted explicitly, not left
            # to the close: the open file description may outlive this
            # number (dup(), fromfd(), a forked child), and with it the
            # registration, whose events would reach the number's next
            # socket.  (A completion port's association ends with the
            # handle: nothing to delete.)
            _release(hub, fd, w, not (closing and _COMPLETION))
        else:
            # The fd is closed (or handed on) before the home hub runs
            # this: it must not delete by number any more, which may be
            # another socket's by then.  So a kernel registration that
            # could outlive the number is deleted here and now (any OS
            # thread may), and the home hub only drops its record.
            drop = getattr(hub.poller, "drop", None)
            if drop is not None:
                drop(fd)
            if hub.call_threadsafe(_release, hub, fd, w, False) is False:
                # Closed: its OS thread has ended, nothing runs there.
                _release(hub, fd, w, False)

    def _real_close(self, _ss=_socket.socket):
        self._g_forget()
        _ss.close(self)

    def detach(self):
        """Hand the descriptor on, in the mode the standard socket would
        leave it: blocking if the timeout is None (``multiprocessing.Pipe``
        detaches a socketpair and then reads it with a blocking
        ``os.read``).  (O_NONBLOCK belongs to the open file: a ``dup()``
        of this socket still in use sees the change too.)"""
        self._g_forget(closing=False)   # the descriptor lives on elsewhere
        if self._g_timeout is None and self.fileno() >= 0:
            try:
                _std.setblocking(self, True)
            except OSError:
                pass
        return super().detach()

    def __del__(self):
        # An unclosed green socket: socket2 lets go first (nobody can be
        # parked on it: a parked thread would hold it), then the standard
        # finalizer closes the descriptor, once, with its warning.
        try:
            self._g_forget()
        except Exception:
            pass
        sup = getattr(super(), "__del__", None)
        if sup is not None:
            sup()


def _release(hub, fd, w, delete):
    """In *hub*'s OS thread: drop the registration *w* of *fd* (if the
    number is still its: it may be a new socket's by now) and wake the
    threads parked in it with ``EBADF``.  *delete*: the descriptor is
    still open, delete its kernel registration explicitly."""
    if hub._fdmap.get(fd) is w:
        hub.unregister(fd, closing=not delete)
    rg, wg = w.rg, w.wg
    w.rg = w.wg = None
    for g in (rg, wg):
        if g is not None:
            # A select() parked in several slots gives up all of them
            # first, so nothing else can resume it before its turn.
            _gselect._let_go_greenlet(g)
            hub.schedule(g, exc=OSError(_errno.EBADF, "Bad file descriptor"))


_REG = []


def _reg_class():
    """The socket2 socket classes a green socket's registration is made
    of: TCPSocket and UDPSocket that never close the descriptor (from
    ``__del__`` either): the standard socket owns it."""
    if not _REG:
        from ..sockets import TCPSocket, UDPSocket

        def _no_close(self):
            # The green socket forgets this registration itself (it holds
            # it); the descriptor is the standard socket's to close.
            pass

        _REG.append(type("_GreenTCPRegistration", (TCPSocket,), {
            "__slots__": (), "__del__": _no_close,
            "__doc__": "A green stream socket's registration."}))
        _REG.append(type("_GreenUDPRegistration", (UDPSocket,), {
            "__slots__": (), "__del__": _no_close,
            "__doc__": "A green datagram socket's registration."}))
    return _REG


def _poll_one(fd, write, seconds):
    """Whether *fd* became readable (or writable) within *seconds*, by a
    blocking poll(2) (select(2) where there is none) in this OS thread."""
    if _real_poll is not None:
        p = _real_poll()
        p.register(fd, _POLLOUT if write else _POLLIN)
        return bool(p.poll(seconds * 1000.0))
    r, w, x = _real_select([] if write else [fd], [fd] if write else [],
                           [fd], seconds)
    return bool(r or w or x)


class socket(_GreenIO, _std):
    """The standard ``socket.socket``, cooperative (see the module
    docstring)."""

    def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
        _std.__init__(self, family, type, proto, fileno)
        self._g_init()
        if fileno is None and type != -1 and type & _NONBLOCK_FLAG:
            self._g_timeout = 0.0       # as the standard socket does

    def __repr__(self):
        return _std.__repr__(self).replace("<socket.socket",
                                           "<socket2.green.socket", 1)

    def dup(self):
        fd = _socket.dup(self.fileno())     # WSADuplicateSocket on Windows
        sock = self.__class__(self.family, self.type, self.proto, fileno=fd)
        sock.settimeout(self.gettimeout())
        return sock

    # -- connections -------------------------------------------------------------

    def accept(self):
        """Wait for a connection; return ``(socket, address)``."""
        if _COMPLETION:
            return self._accept_completion()
        fd, addr = self._g_call(False, self._accept)
        return socket(self.family, self.type, self.proto, fileno=fd), addr

    def connect(self, address):
        """Connect to *address*, waiting cooperatively."""
        if _COMPLETION and self.type == SOCK_STREAM:
            return self._connect_completion(address)
        address = _resolved(self, address)
        deadline = _UNSET
        while True:
            try:
                return _std.connect(self, address)
            except BlockingIOError as e:
                if self._g_timeout == 0.0:
                    raise
                if e.errno in (_errno.EINPROGRESS, _errno.EALREADY) or \
                        self.family != getattr(__socket__, "AF_UNIX", None):
                    break
            except InterruptedError:
                break   # the connection goes on in the background
            # EAGAIN from a unix socket: the listener's backlog is full and
            # no event will say when there is room: try again shortly.
            if deadline is _UNSET:
                deadline = self._g_deadline()
            if deadline is not None and _clock() >= deadline:
                raise timeout("timed out")
            _sleep(0.001)
        if deadline is _UNSET:
            deadline = self._g_deadline()
        while True:
            self._g_wait(True, deadline)
            err = self._g_connect_state()
            if err is None:
                continue    # a wake-up is a hint: still connecting
            if err:
                raise OSError(err, _os.strerror(err))
            return

    def connect_ex(self, address):
        """``connect``, returning an errno instead of raising it
        (``EWOULDBLOCK`` when the timeout ran out, as the standard one)."""
        try:
            self.connect(address)
        except timeout:
            return _errno.EWOULDBLOCK
        except gaierror:
            raise                   # a lookup error is raised, not returned
        except OSError as e:
            return e.errno or _errno.EIO
        return 0

    # -- data ---------------------------------------------------------------------

    # recv and recv_into keep socket2's "a short read proves the queue
    # empty" shortcut (see sockets.py): after one, the next call waits for
    # the edge instead of paying a recv() that can only say EAGAIN, and the
    # BlockingIOError it raises.  The hub sets rready again on the edge;
    # every other read (flags such as MSG_PEEK, recvfrom, recvmsg ...) that
    # waits leaves it set (_g_wait), and only these two, without flags, on
    # a stream, in the registration's own OS thread, clear it.

    def recv(self, bufsize, flags=0):
        s2 = self._g_s2
        if s2 is None or flags or s2._w.rready or self._g_timeout == 0.0 \
                or s2._hub is not _existing_hub():
            data = self._g_flagged(False, flags, _std.recv, self, bufsize,
                                   flags)
        else:
            data = self._g_retry(False, self._g_deadline(), _std.recv, self,
                                 bufsize, flags)
        if data and not flags:
            s2 = self._g_s2
            if s2 is not None and s2._type == _STREAM \
                    and s2._hub is _existing_hub():
                w = s2._w
                w.rready = len(data) == bufsize or w.hup
        elif bufsize:
            self._g_eof()
        return data

    def recv_into(self, buffer, nbytes=0, flags=0):
        s2 = self._g_s2
        if s2 is None or flags or s2._w.rready or self._g_timeout == 0.0 \
                or s2._hub is not _existing_hub():
            n = self._g_flagged(False, flags, _std.recv_into, self, buffer,
                                nbytes, flags)
        else:
            n = self._g_retry(False, self._g_deadline(), _std.recv_into,
                              self, buffer, nbytes, flags)
        if n and not flags:
            s2 = self._g_s2
            if s2 is not None and s2._type == _STREAM \
                    and s2._hub is _existing_hub():
                w = s2._w
                w.rready = n == (nbytes or memoryview(buffer).nbytes) \
                    or w.hup
        elif nbytes or memoryview(buffer).nbytes:
            self._g_eof()
        return n

    def _g_eof(self):
        """A read of a stream came to the end: unless the poller took the
        socket's error with its event (kqueue through libkqueue: the
        kernel then reports a plain EOF), which is raised here once, as
        the kernel would have (a RST that came while the read was parked
        read as the end).  EPIPE is the write side's news: the end
        stands.  (An empty datagram is no end.)"""
        if self.type == SOCK_STREAM:
            self._g_taken(_errno.EPIPE)

    def _g_taken(self, but=0):
        """Raise, once, the socket error the poller took with its event
        (see _g_eof), unless there is none or it is *but*."""
        s2 = self._g_s2
        if s2 is None:
            return
        err = _taken_error(s2._w, but)
        if err:
            raise OSError(err, _os.strerror(err))

    def recvfrom(self, bufsize, flags=0):
        r = self._g_flagged(False, flags, _std.recvfrom, self, bufsize,
                            flags)
        if not r[0] and bufsize:
            self._g_eof()
        return r

    def recvfrom_into(self, buffer, nbytes=0, flags=0):
        r = self._g_flagged(False, flags, _std.recvfrom_into, self,
                            buffer, nbytes, flags)
        if not r[0] and (nbytes or memoryview(buffer).nbytes):
            self._g_eof()
        return r

    if hasattr(_std, "recvmsg"):
        def recvmsg(self, bufsize, ancbufsize=0, flags=0):
            r = self._g_flagged(False, flags, _std.recvmsg, self,
                                bufsize, ancbufsize, flags)
            if not r[0] and not r[1] and bufsize:
                self._g_eof()
            return r

        def recvmsg_into(self, buffers, ancbufsize=0, flags=0):
            r = self._g_flagged(False, flags, _std.recvmsg_into, self,
                                buffers, ancbufsize, flags)
            if not r[0] and not r[1]:
                self._g_eof()
            return r

        def sendmsg(self, buffers, ancdata=(), flags=0, address=None):
            if address is None:
                return self._g_flagged(True, flags, _std.sendmsg, self,
                                       buffers, ancdata, flags)
            return self._g_flagged(True, flags, _std.sendmsg, self, buffers,
                                   ancdata, flags, address)

    if hasattr(_std, "sendmsg_afalg"):
        def sendmsg_afalg(self, *args, **kwargs):
            return self._g_flagged(True, kwargs.get("flags", 0),
                                   lambda: _std.sendmsg_afalg(
                                       self, *args, **kwargs))

    def send(self, data, flags=0):
        return self._g_flagged(True, flags, _std.send, self, data, flags)

    def sendto(self, data, *args):
        # (data, address) or (data, flags, address); the C call checks
        # the arguments, with the standard messages.
        flags = args[0] if len(args) == 2 and isinstance(args[0], int) else 0
        return self._g_flagged(True, flags, _std.sendto, self, data, *args)

    def sendall(self, data, flags=0):
        """Send all of *data*; the timeout bounds the whole call."""
        try:
            n = _std.send(self, data, flags)    # the common case: all at once
            if n == len(data) and type(data) in (bytes, bytearray):
                return
        except (BlockingIOError, InterruptedError):
            n = 0
        view = memoryview(data).cast("B")
        if n == len(view):
            return
        return self._sendall_rest(view, n, flags)

    def _sendall_rest(self, view, sent, flags):
        total = len(view)
        deadline = self._g_deadline()
        while sent < total:
            try:
                sent += _std.send(self, view[sent:], flags)
                continue
            except BlockingIOError:
                if self._g_timeout == 0.0 or flags & _DONTWAIT:
                    raise
            except InterruptedError:
                continue
            except BrokenPipeError:
                self._g_taken(_errno.EPIPE)     # (see _g_retry)
                raise
            self._g_wait(True, deadline)

    def sendfile(self, file, offset=0, count=None):
        """Send a file's contents (read in chunks and sent cooperatively)."""
        return self._sendfile_use_send(file, offset, count)



# As in the standard module: the C type, of which the green socket is a
# subclass (isinstance() checks against it hold).
SocketType = _socket.socket
_NONBLOCK_FLAG = getattr(__socket__, "SOCK_NONBLOCK", 0)


def _resolved(sock, address):
    """*address* with its host name looked up off the OS thread."""
    if sock.family not in (AF_INET, AF_INET6) or not isinstance(
            address, tuple) or len(address) < 2:
        return address
    host = address[0]
    try:
        _socket.inet_pton(sock.family, host)
        return address
    except (OSError, TypeError, ValueError):
        pass
    infos = getaddrinfo(host, address[1], sock.family, sock.type)
    return infos[0][4][:1] + tuple(address[1:])


# -- functions ---------------------------------------------------------------------


def _idna(host):
    if isinstance(host, str):
        try:
            host.encode("ascii")
        except UnicodeEncodeError:
            return host.encode("idna")
    return host


def _lookup(fn, *args):
    return _offload.run(_get_hub(), fn, *args)


def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
    """The standard ``getaddrinfo``, run in a worker OS thread (numeric
    hosts are answered at once)."""
    if host is None or isinstance(host, (str, bytes)) and _numeric(host):
        return _orig["getaddrinfo"](host, port, family, type, proto, flags)
    return _lookup(_orig["getaddrinfo"], _idna(host), port, family, type,
                   proto, flags)


def _numeric(host):
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    for fam in (AF_INET, AF_INET6):
        try:
            _socket.inet_pton(fam, host.split("%")[0])
            return True
        except (OSError, ValueError):
            continue
    return False


def gethostbyname(hostname):
    return _lookup(_orig["gethostbyname"], _idna(hostname))


def gethostbyname_ex(hostname):
    return _lookup(_orig["gethostbyname_ex"], _idna(hostname))


def gethostbyaddr(ip_address):
    return _lookup(_orig["gethostbyaddr"], ip_address)


def getnameinfo(sockaddr, flags):
    """The standard ``getnameinfo``, run in a worker OS thread."""
    if not isinstance(sockaddr, tuple):
        # Checked here, holding no reference to the argument in the
        # traceback (as the C function holds none).
        del sockaddr
        raise TypeError("getnameinfo() argument 1 must be a tuple")
    return _lookup(_orig["getnameinfo"], sockaddr, flags)


def getfqdn(name=""):
    return _lookup(_orig["getfqdn"], name)


def create_connection(address, timeout=_GLOBAL_DEFAULT_TIMEOUT,
                      source_address=None, *, all_errors=False):
    """Connect to *address* (host, port): every address of the lookup in
    turn, as the standard library does; return the connected socket."""
    host, port = address
    errors = []
    # The green class, unless something replaced socket.socket after the
    # patching (a test's mock): then that, as the standard function does.
    cls = __socket__.socket
    if cls is _std or cls is SocketType:
        cls = socket
    for af, socktype, proto, _, sa in getaddrinfo(host, port, 0,
                                                  SOCK_STREAM):
        sock = None
        try:
            sock = cls(af, socktype, proto)
            if timeout is not _GLOBAL_DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sa)
            errors.clear()
            return sock
        except OSError as e:
            errors.append(e)
            if sock is not None:
                sock.close()
    if errors:
        if all_errors and len(errors) > 1:
            raise ExceptionGroup("create_connection failed", errors)
        raise errors[-1]
    raise OSError("getaddrinfo returns an empty list")


def create_server(address, *, family=AF_INET, backlog=None, reuse_port=False,
                  dualstack_ipv6=False):
    """The standard ``create_server``, returning a green socket."""
    std = _orig["create_server"](address, family=family, backlog=backlog,
                                   reuse_port=reuse_port,
                                   dualstack_ipv6=dualstack_ipv6)
    return _adopt(std)


def _adopt(std_sock):
    sock = socket(std_sock.family, std_sock.type, std_sock.proto,
                  fileno=std_sock.detach())
    return sock


def socketpair(family=None, type=SOCK_STREAM, proto=0):
    """A connected pair of green sockets."""
    if family is None:
        family = AF_UNIX if hasattr(__socket__, "AF_UNIX") else AF_INET
    a, b = _orig["socketpair"](family, type, proto)
    return _adopt(a), _adopt(b)


def fromfd(fd, family, type, proto=0):
    """A green socket on a duplicate of descriptor *fd*."""
    return socket(family, type, proto, fileno=_socket.dup(fd))


if hasattr(__socket__, "fromshare"):
    def fromshare(info):
        return _adopt(__socket__.fromshare(info))
