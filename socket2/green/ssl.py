"""A cooperative ``ssl`` module: the standard library's names, with an
``SSLContext`` whose ``wrap_socket`` returns a cooperative ``SSLSocket``.

``SSLSocket`` is the standard ``ssl.SSLSocket`` with its blocking calls
(handshake, read, write, unwrap) done on a non-blocking descriptor: on
``SSLWantReadError``/``SSLWantWriteError`` the thread waits on socket2's
hub, under the standard timeout semantics of the socket it wraps.

Contexts made before ``socket2.monkey.patch_all()`` cooperate too: patching
sets ``sslsocket_class`` on the standard ``SSLContext`` class itself, which
is what every context's ``wrap_socket`` consults.  No class is replaced and
no property redefined, so nothing recurses (the trap gevent's and
eventlet's users met when ``ssl`` was patched after a context existed).

Each SSL call starts with OpenSSL's per-thread error queue empty: greenlets
share their OS thread's queue, and an entry another one left there turns
"want read" into a fatal ``SSLError`` (see socket2.tls).
"""
import errno as _errno
import ssl as __ssl__
from ssl import *  # noqa: F401,F403

from ..tls import _error_queue_clearer
from .socket import _GreenIO
from .socket import gaierror as _gaierror, socket as _gsocket
from .socket import timeout as _timeout

_clear_errors = _error_queue_clearer()

__all__ = [n for n in dir(__ssl__) if not n.startswith("_")]

_WantRead = __ssl__.SSLWantReadError
_WantWrite = __ssl__.SSLWantWriteError


class _GreenSSL:
    """The blocking calls of ``ssl.SSLSocket``, done cooperatively."""

    def _g_ssl(self, fn, *args, block=False):
        """``fn(*args)`` on the SSL object, waiting while OpenSSL wants the
        descriptor readable or writable (the standard timeout applies to
        the whole call).  With a zero timeout (and not *block*), the
        ``SSLWantReadError``/``SSLWantWriteError`` goes to the caller, as
        with the standard non-blocking socket."""
        deadline = _UNSET
        while True:
            _clear_errors()
            try:
                return fn(*args)
            except _WantRead:
                if self._g_timeout == 0.0 and not block:
                    raise
                write = False
            except _WantWrite:
                if self._g_timeout == 0.0 and not block:
                    raise
                write = True
            if deadline is _UNSET:
                deadline = None if block and self._g_timeout == 0.0 \
                    else self._g_deadline()
            self._g_wait(write, deadline)

    def do_handshake(self, block=False):
        """The TLS handshake; with a zero timeout it raises
        ``SSLWantReadError``/``SSLWantWriteError`` unless *block* (the
        standard library's own argument: then it waits, without limit)."""
        self._check_connected()
        self._g_ssl(self._sslobj.do_handshake, block=block)

    def read(self, len=1024, buffer=None):
        self._checkClosed()
        if self._sslobj is None:
            raise ValueError("Read on closed or unwrapped SSL socket.")
        try:
            if buffer is not None:
                return self._g_ssl(self._sslobj.read, len, buffer)
            return self._g_ssl(self._sslobj.read, len)
        except __ssl__.SSLError as x:
            if x.args[0] == __ssl__.SSL_ERROR_EOF and self.suppress_ragged_eofs:
                return b"" if buffer is None else 0
            raise

    def write(self, data):
        self._checkClosed()
        if self._sslobj is None:
            raise ValueError("Write on closed or unwrapped SSL socket.")
        return self._g_ssl(self._sslobj.write, data)

    def recv(self, buflen=1024, flags=0):
        self._checkClosed()
        if self._sslobj is None:
            return _gsocket.recv(self, buflen, flags)
        if flags != 0:
            raise ValueError("non-zero flags not allowed in calls to recv() "
                             "on %s" % self.__class__)
        return self.read(buflen)

    def recv_into(self, buffer, nbytes=None, flags=0):
        self._checkClosed()
        if nbytes is None:
            # Bytes, not items: an array('I') holds four per item.
            nbytes = 1024
            if buffer is not None:
                with memoryview(buffer) as view:
                    nbytes = view.nbytes or 1024
        if self._sslobj is None:
            return _gsocket.recv_into(self, buffer, nbytes, flags)
        if flags != 0:
            raise ValueError("non-zero flags not allowed in calls to "
                             "recv_into() on %s" % self.__class__)
        return self.read(nbytes, buffer)

    # Clear-text calls (before the wrap, or after unwrap): the green
    # socket's, which wait; with TLS on, refused as the standard ones are.

    def recvfrom(self, buflen=1024, flags=0):
        self._checkClosed()
        if self._sslobj is not None:
            raise ValueError("recvfrom not allowed on instances of %s"
                             % self.__class__)
        return _gsocket.recvfrom(self, buflen, flags)

    def recvfrom_into(self, buffer, nbytes=None, flags=0):
        self._checkClosed()
        if self._sslobj is not None:
            raise ValueError("recvfrom_into not allowed on instances of %s"
                             % self.__class__)
        return _gsocket.recvfrom_into(self, buffer, nbytes or 0, flags)

    def sendto(self, data, flags_or_addr, addr=None):
        self._checkClosed()
        if self._sslobj is not None:
            raise ValueError("sendto not allowed on instances of %s"
                             % self.__class__)
        if addr is None:
            return _gsocket.sendto(self, data, flags_or_addr)
        return _gsocket.sendto(self, data, flags_or_addr, addr)

    def send(self, data, flags=0):
        self._checkClosed()
        if self._sslobj is None:
            return _gsocket.send(self, data, flags)
        if flags != 0:
            raise ValueError("non-zero flags not allowed in calls to send() "
                             "on %s" % self.__class__)
        if not data:
            return 0            # an empty record reads as EOF to some peers
        return self.write(data)

    def sendall(self, data, flags=0):
        self._checkClosed()
        if self._sslobj is None:
            return _gsocket.sendall(self, data, flags)
        if flags != 0:
            raise ValueError("non-zero flags not allowed in calls to "
                             "sendall() on %s" % self.__class__)
        view = memoryview(data).cast("B")
        sent = 0
        while sent < len(view):
            # The same bytes again after a WantWrite (OpenSSL's rule): the
            # retry loop is inside write(), on the same slice.
            sent += self.write(view[sent:sent + 262144])

    def unwrap(self):
        if self._sslobj is None:
            raise ValueError("No SSL wrapper around " + str(self))
        s = self._g_ssl(self._sslobj.shutdown)
        self._sslobj = None
        return s

    def _real_connect(self, addr, connect_ex):
        # The standard one, with the green socket's connect (which waits).
        if self.server_side:
            raise ValueError("can't connect in server-side mode")
        if self._connected or self._sslobj is not None:
            raise ValueError("attempt to connect already-connected "
                             "SSLSocket!")
        self._sslobj = self.context._wrap_socket(
            self, False, self.server_hostname, owner=self,
            session=self._session)
        try:
            rc = 0 if connect_ex else None
            try:
                _gsocket.connect(self, addr)
            except OSError as e:
                if not connect_ex or isinstance(e, _gaierror):
                    raise
                rc = _errno.EWOULDBLOCK if isinstance(e, _timeout) \
                    else e.errno or _errno.EIO
            if not rc:
                self._connected = True
                if self.do_handshake_on_connect:
                    self.do_handshake()
            return rc
        except (OSError, ValueError):
            self._sslobj = None
            raise

    def connect(self, addr):
        """Connect to *addr*, then do the TLS handshake (if
        ``do_handshake_on_connect``)."""
        self._real_connect(addr, False)

    def connect_ex(self, addr):
        """``connect`` returning an errno instead of raising it."""
        return self._real_connect(addr, True)

    def accept(self):
        newsock, addr = _gsocket.accept(self)
        newsock = self.context.wrap_socket(
            newsock, do_handshake_on_connect=self.do_handshake_on_connect,
            suppress_ragged_eofs=self.suppress_ragged_eofs, server_side=True)
        return newsock, addr

    def sendfile(self, file, offset=0, count=None):
        if self._sslobj is None:
            return _gsocket.sendfile(self, file, offset, count)
        return self._sendfile_use_send(file, offset, count)


_UNSET = object()

# When ssl was imported after socket was patched, the standard SSLSocket
# already derives from the green socket (and so from _GreenIO).
if issubclass(__ssl__.SSLSocket, _GreenIO):
    class SSLSocket(_GreenSSL, __ssl__.SSLSocket):
        """The standard ``ssl.SSLSocket``, cooperative."""
else:
    class SSLSocket(_GreenSSL, _GreenIO, __ssl__.SSLSocket):
        """The standard ``ssl.SSLSocket``, cooperative."""


class SSLContext(__ssl__.SSLContext):
    """The standard ``SSLContext``, whose ``wrap_socket`` gives a
    cooperative :class:`SSLSocket`."""

    sslsocket_class = SSLSocket


def create_default_context(purpose=Purpose.SERVER_AUTH, *, cafile=None,
                           capath=None, cadata=None):
    """The standard ``create_default_context``, as a green context."""
    ctx = __ssl__.create_default_context(purpose, cafile=cafile,
                                         capath=capath, cadata=cadata)
    ctx.sslsocket_class = SSLSocket
    return ctx


def wrap_socket(sock, *args, **kwargs):
    raise NotImplementedError("ssl.wrap_socket() is gone from the standard "
                              "library; use SSLContext.wrap_socket()")
