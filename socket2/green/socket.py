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
import os as _os
import socket as __socket__
import encodings.idna  # noqa: F401  (imported here, never in a worker)

from socket import *  # noqa: F401,F403  (the standard names and constants)

from .. import _offload
from ..errors import Error as _S2Error
from ..errors import TimeoutError as _S2Timeout
from ..hub import clock as _clock, get_hub as _get_hub, sleep as _sleep
from .. import pollers as _pollers

__all__ = list(__socket__.__all__)

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
    t = float(t)
    if t != t or t < 0:
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
    (registered with this OS thread's hub), and the close protocol."""

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
        """The socket2 socket over this descriptor (made on first wait)."""
        s2 = self._g_s2
        hub = _get_hub()
        if s2 is not None and s2._fd >= 0:
            if s2._hub is hub:
                return s2
            # Used from another OS thread now: move to that thread's hub.
            s2._hub.unregister(s2._fd)
            s2._fd = -1
        from ..sockets import TCPSocket, UDPSocket
        fd = self.fileno()
        if fd < 0:
            raise OSError(_errno.EBADF, "Bad file descriptor")
        cls = TCPSocket if self.type == SOCK_STREAM else UDPSocket
        s2 = self._g_s2 = cls._from_fd(fd, self.family, self.type,
                                       self.proto, hub)
        if self.family in (AF_INET, AF_INET6):
            try:     # bound by the standard bind(): ConnectEx must not rebind
                s2._bound = self.getsockname()[1] != 0
            except OSError:
                pass
        return s2

    def _g_deadline(self):
        t = self._g_timeout
        return None if t is None else _clock() + t

    def _g_wait(self, write, deadline):
        """Wait until the descriptor is readable (or writable); raise
        ``socket.timeout`` at *deadline*."""
        s2 = self._g_sock()
        try:
            if _COMPLETION:
                return self._g_wait_completion(s2, write, deadline)
            if write:
                s2._hub.wait_writable(s2._w, deadline, s2._fd)
            else:
                s2._hub.wait_readable(s2._w, deadline, s2._fd)
        except _S2Error as e:
            raise _os_error(e) from None

    def _g_wait_completion(self, s2, write, deadline):
        # A completion port reports no readiness: a connected stream waits
        # for data with a zero-byte receive; anything else is looked at
        # again shortly (on the hub's timers, never blocking the thread).
        hub = s2._hub
        if not write and self.type == SOCK_STREAM:
            rop = s2._w.rop
            if rop is None or not rop.pending:
                hub._prime_read(s2._fd, s2._w, s2._type)
            return hub.wait_readable(s2._w, deadline, s2._fd)
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
        deadline = self._g_deadline()
        while True:
            self._g_wait(write, deadline)
            try:
                return fn(*args)
            except (BlockingIOError, InterruptedError):
                pass

    # -- closing --------------------------------------------------------------

    def _g_forget(self, closing=True):
        """Wake threads waiting on this descriptor (``EBADF``), unregister
        it from the hub, and let go of socket2's hold: the standard socket
        closes the descriptor itself (*closing*), or hands it on."""
        s2 = self._g_s2
        if s2 is not None and s2._fd >= 0:
            fd, w, hub = s2._fd, s2._w, s2._hub
            s2._fd = -1
            rg, wg = w.rg, w.wg
            w.rg = w.wg = None
            hub.unregister(fd, closing=closing)
            for g in (rg, wg):
                if g is not None:
                    hub._throw(g, OSError(_errno.EBADF,
                                          "Bad file descriptor"))
        self._g_s2 = None

    def _real_close(self, _ss=_socket.socket):
        self._g_forget()
        _ss.close(self)

    def detach(self):
        self._g_forget(closing=False)   # the descriptor lives on elsewhere
        return super().detach()

    def __del__(self):
        # An unclosed green socket: socket2 lets go first, then the
        # standard finalizer closes the descriptor once (with its warning).
        s2 = self._g_s2
        if s2 is not None and s2._fd >= 0:
            try:
                s2._hub.unregister(s2._fd, closing=True)
            except Exception:
                pass
            s2._fd = -1
        sup = getattr(super(), "__del__", None)
        if sup is not None:
            sup()


class socket(_GreenIO, _std):
    """The standard ``socket.socket``, cooperative (see the module
    docstring)."""

    def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
        _std.__init__(self, family, type, proto, fileno)
        self._g_init()

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
        sock = socket(self.family, self.type, self.proto, fileno=fd)
        sock._g_s2 = conn                       # its hub registration
        return sock, sock.getpeername()

    def connect(self, address):
        """Connect to *address*, waiting cooperatively."""
        if _COMPLETION and self.type == SOCK_STREAM:
            return self._connect_completion(address)
        address = _resolved(self, address)
        try:
            return _std.connect(self, address)
        except BlockingIOError:
            if self._g_timeout == 0.0:
                raise
        except InterruptedError:
            pass
        self._g_wait(True, self._g_deadline())
        err = self.getsockopt(SOL_SOCKET, SO_ERROR)
        w = self._g_s2._w
        if not err and w.soerr:     # the backend took it (kqueue)
            err, w.soerr = w.soerr, 0
        if err:
            raise OSError(err, _os.strerror(err))

    def _connect_completion(self, address):
        host, port = _resolved(self, address)[:2]
        try:
            self._g_sock().connect(host, port, timeout=self._g_timeout)
        except _S2Error as e:
            raise _os_error(e) from None

    def connect_ex(self, address):
        try:
            self.connect(address)
        except OSError as e:
            return e.errno or _errno.EIO
        return 0

    # -- data ---------------------------------------------------------------------

    # recv and recv_into keep socket2's "a short read proves the queue
    # empty" shortcut (see sockets.py): after one, the next call waits for
    # the edge instead of paying a recv() that can only say EAGAIN, and the
    # BlockingIOError it raises.  The hub sets rready again on the edge.

    def recv(self, bufsize, flags=0):
        s2 = self._g_s2
        if s2 is not None and not s2._w.rready and self._g_timeout != 0.0 \
                and not flags:
            self._g_wait(False, self._g_deadline())
        data = self._g_call(False, _std.recv, self, bufsize, flags)
        s2 = self._g_s2
        if s2 is not None and data and not flags \
                and self.type == SOCK_STREAM:
            w = s2._w
            w.rready = len(data) == bufsize or w.hup
        return data

    def recv_into(self, buffer, nbytes=0, flags=0):
        s2 = self._g_s2
        if s2 is not None and not s2._w.rready and self._g_timeout != 0.0 \
                and not flags:
            self._g_wait(False, self._g_deadline())
        n = self._g_call(False, _std.recv_into, self, buffer, nbytes, flags)
        s2 = self._g_s2
        if s2 is not None and n and not flags and self.type == SOCK_STREAM:
            w = s2._w
            w.rready = n == (nbytes or memoryview(buffer).nbytes) or w.hup
        return n

    def recvfrom(self, bufsize, flags=0):
        return self._g_call(False, _std.recvfrom, self, bufsize, flags)

    def recvfrom_into(self, buffer, nbytes=0, flags=0):
        return self._g_call(False, _std.recvfrom_into, self, buffer, nbytes,
                            flags)

    if hasattr(_std, "recvmsg"):
        def recvmsg(self, *args):
            return self._g_call(False, _std.recvmsg, self, *args)

        def sendmsg(self, *args):
            return self._g_call(True, _std.sendmsg, self, *args)

    def send(self, data, flags=0):
        return self._g_call(True, _std.send, self, data, flags)

    def sendto(self, data, *args):
        return self._g_call(True, _std.sendto, self, data, *args)

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
                if self._g_timeout == 0.0:
                    raise
            except InterruptedError:
                continue
            self._g_wait(True, deadline)

    def sendfile(self, file, offset=0, count=None):
        """Send a file's contents (read in chunks and sent cooperatively)."""
        return self._sendfile_use_send(file, offset, count)



SocketType = socket


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
    return _lookup(_orig["getnameinfo"], sockaddr, flags)


def getfqdn(name=""):
    return _lookup(_orig["getfqdn"], name)


def create_connection(address, timeout=_GLOBAL_DEFAULT_TIMEOUT,
                      source_address=None, *, all_errors=False):
    """Connect to *address* (host, port): every address of the lookup in
    turn, as the standard library does; return the connected socket."""
    host, port = address
    errors = []
    for af, socktype, proto, _, sa in getaddrinfo(host, port, 0,
                                                  SOCK_STREAM):
        sock = None
        try:
            sock = socket(af, socktype, proto)
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
