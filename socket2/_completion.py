"""The socket layer's I/O loops for completion-based pollers (IOCP).

On a readiness poller a socket tries the system call and, on "would block",
waits for readiness (sockets.py).  A completion port has no readiness: the
socket submits the operation itself (WSARecv, WSASend, AcceptEx,
ConnectEx) and waits for its completion in the same reader or writer slot.
sockets.py puts these functions into its classes when the build's poller
says ``completion_based`` (``install``), so the readiness hot path is
untouched and the backend never reaches up into the socket layer.  The
facts about IOCP they depend on are written down in pollers/iocp.py.
"""
from ._iocp_ffi import ffi, lib
from ._socket_ffi import ffi as _sffi, lib as _slib
from .addr import SockAddr
from .errors import TimeoutError, os_error

SEND_CHUNK = 256 * 1024     # the most one pending send copies
_EMSGSIZE = lib.WSAEMSGSIZE  # a datagram cut to the buffer: not an error
_WOULDBLOCK = -_slib.S2_EWOULDBLOCK
_RETRY_ACCEPT = (_slib.S2_ECONNABORTED, _slib.S2_EPROTO)
_STREAM = _slib.SOCK_STREAM
_UNSET = object()


def install(socket_cls, tcp_cls, udp_cls):
    """Put the completion-based I/O loops into the socket classes."""
    socket_cls._recv_loop = _recv_loop
    socket_cls._send_loop = _send_loop
    socket_cls._connect_one = _connect_one
    socket_cls._reopen = _reopen
    tcp_cls.accept = _accept
    udp_cls._recvfrom = _recvfrom
    udp_cls._sendto = _sendto


def _wait_op(sock, op, deadline, write):
    """Wait until *op* (pending) completes.  A timeout cancels it and waits
    for the cancellation; if the operation completed after all, the timeout
    is dropped and its result stands.  Anything else (the socket closed, a
    kill) leaves the op, cancelled, to the poller and raises."""
    hub, w = sock._hub, sock._w
    wait = hub.wait_writable if write else hub.wait_readable
    try:
        try:
            while op.pending:
                wait(w, deadline)
        except TimeoutError:
            if op.pending:
                lib.s2_iocp_cancel(op)
                while op.pending:
                    wait(w, None)   # the cancellation's own completion
            if op.done_err and op.done_err != _EMSGSIZE:
                raise
            # It completed as the timer fired: its result stands.
    except BaseException:
        if op.pending:
            if sock._fd >= 0:
                lib.s2_iocp_cancel(op)
            hub.poller.orphan(op, w.wkeep if write else w.rkeep)
            if write:
                w.wop = None
            else:
                w.rop = None
        raise
    finally:
        if write:
            w.wkeep = None
        else:
            w.rkeep = None


def _finish(sock, op, r, deadline, write, what):
    """The rest of an operation submitted with result *r* (0: done at once,
    1: pending, < 0: failed at once): wait if it is pending, raise if it
    failed, and return the bytes it moved, or None for a datagram cut to
    the buffer (WSAEMSGSIZE: as on POSIX, not an error)."""
    if r == 1:
        _wait_op(sock, op, deadline, write)
        err = op.done_err
    elif r < 0:
        if write:
            sock._w.wkeep = None
        else:
            sock._w.rkeep = None
        err = -r
    else:
        err = 0
    if err == _EMSGSIZE:
        return None
    if err:
        raise sock._fail(-err, what)
    return op.done_bytes


def _recv_loop(self, p, n, timeout, expires):
    deadline = _UNSET
    while True:
        r = _slib.s2_recv(self._fd, p, n)
        if r >= 0:
            return r
        if r != _WOULDBLOCK:
            raise self._fail(r, "recv")
        if deadline is _UNSET:
            deadline = self._deadline(timeout, expires)
        w = self._w
        op = w.op("rop")
        got = ffi.new("unsigned long *")
        token = self._fd << 3 | 1
        if self._type == _STREAM:
            # Wait for data with a zero-byte receive, then recv() again.
            r = lib.s2_iocp_recv(op, self._fd, ffi.NULL, 0, token, got)
            _finish(self, op, r, deadline, False, "recv")
            continue
        buf = w.rkeep = ffi.new("char[]", n)
        r = lib.s2_iocp_recv(op, self._fd, buf, n, token, got)
        k = _finish(self, op, r, deadline, False, "recv")
        k = n if k is None else k
        ffi.memmove(p, buf, k)
        return k


def _send_loop(self, p, n, timeout, expires):
    deadline = _UNSET
    while True:
        r = _slib.s2_send(self._fd, p, n)
        if r >= 0:
            return r
        if r != _WOULDBLOCK:
            raise self._fail(r, "send")
        if deadline is _UNSET:
            deadline = self._deadline(timeout, expires)
        w = self._w
        op = w.op("wop")
        k = min(n, SEND_CHUNK)
        buf = w.wkeep = ffi.new("char[]", k)
        ffi.memmove(buf, p, k)
        got = ffi.new("unsigned long *")
        r = lib.s2_iocp_send(op, self._fd, buf, k, self._fd << 3 | 2, got)
        return _finish(self, op, r, deadline, True, "send")


def _sendto(self, p, n, ai, timeout, expires):
    sa = ai._p
    deadline = _UNSET
    while True:
        r = _slib.s2_sendto(self._fd, p, n, sa.ai_addr, sa.ai_addrlen)
        if r >= 0:
            return r
        if r != _WOULDBLOCK:
            raise self._fail(r, "sendto %s" % ai.tostring())
        if deadline is _UNSET:
            deadline = self._deadline(timeout, expires)
        w = self._w
        op = w.op("wop")
        buf = w.wkeep = ffi.new("char[]", n)
        ffi.memmove(buf, p, n)
        got = ffi.new("unsigned long *")
        r = lib.s2_iocp_sendto(op, self._fd, buf, n, sa.ai_addr,
                               sa.ai_addrlen, self._fd << 3 | 2, got)
        return _finish(self, op, r, deadline, True,
                       "sendto %s" % ai.tostring())


def _recvfrom(self, p, n, deadline):
    ss = _sffi.new("struct sockaddr_storage *")
    sl = _sffi.new("socklen_t *")
    r = _slib.s2_recvfrom(self._fd, p, n, ss, sl)
    if r >= 0:
        return r, SockAddr(ss, sl[0], ss)
    if r != _WOULDBLOCK:
        raise self._fail(r, "recvfrom")
    w = self._w
    op = w.op("rop")
    buf = w.rkeep = ffi.new("char[]", max(n, 1))
    got = ffi.new("unsigned long *")
    r = lib.s2_iocp_recvfrom(op, self._fd, buf, n, self._fd << 3 | 1, got)
    k = _finish(self, op, r, deadline, False, "recvfrom")
    k = n if k is None else k
    ffi.memmove(p, buf, k)
    _sffi.memmove(ss, ffi.addressof(op, "addr"), op.addrlen)
    return k, SockAddr(ss, op.addrlen, ss)


def _accept(self, timeout=None, expires=None):
    """Wait for and return the next connection (a ``TCPSocket`` that
    knows its peer: ``remote_addr``, ``remote_port``)."""
    deadline = _UNSET
    cls = type(self)
    while True:
        fd = _slib.s2_accept(self._fd)
        if fd >= 0:
            return cls._from_fd(fd, self._family, self._type, self._proto,
                                self._hub)
        if -fd in _RETRY_ACCEPT:
            continue
        if fd != _WOULDBLOCK:
            raise self._fail(fd, "accept")
        if deadline is _UNSET:
            deadline = self._deadline(timeout, expires)
        new = _slib.s2_socket(self._family, self._type, self._proto)
        if new < 0:
            raise os_error(-new, "socket (for AcceptEx)")
        op = self._w.op("rop")
        try:
            r = lib.s2_iocp_accept(op, self._fd, new, self._fd << 3 | 1)
            if r < 0:
                raise self._fail(r, "AcceptEx")
            if r == 1:
                _wait_op(self, op, deadline, False)
            if op.done_err in _RETRY_ACCEPT:   # the peer gave up: next one
                _slib.s2_close(new)
                continue
            if op.done_err:
                raise self._fail(-op.done_err, "accept")
            r = lib.s2_iocp_accept_done(op)
            if r < 0:
                raise os_error(-r, "SO_UPDATE_ACCEPT_CONTEXT")
        except BaseException:
            # A pending AcceptEx (orphaned by _wait_op) fails when the
            # socket it was given is closed; its op stays with the poller.
            _slib.s2_close(new)
            raise
        return cls._from_fd(new, self._family, self._type, self._proto,
                            self._hub)


def _connect_one(self, node, deadline):
    p = node._p
    if not self._bound:
        self.bind("*", 0)           # ConnectEx needs a bound socket
    op = self._w.op("wop")
    r = lib.s2_iocp_connect(op, self._fd, p.ai_addr, p.ai_addrlen,
                            self._fd << 3 | 2)
    _finish(self, op, r, deadline, True, "connect to %s" % node.tostring())
    r = lib.s2_iocp_connect_done(op)
    if r < 0:
        raise self._fail(r, "connect to %s" % node.tostring())


def _reopen(self):
    """A new socket in place of one whose connect failed (Windows cannot
    dup2 a socket onto the old number)."""
    state = self._setup_state()
    fd = _slib.s2_socket(self._family, self._type, self._proto)
    if fd < 0:
        raise os_error(-fd, "socket")
    old = self._fd
    self._unregister_for_close(old)
    _slib.s2_close(old)
    self._fd = fd
    self._bound = False
    self._w = self._hub.register(fd)
    self._restore_state(state)   # options and bound address again
