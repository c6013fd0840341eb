"""The Windows IOCP backend: completion-based, behind the same surface.

The mechanics are in C (``socket2/ffi/iocp.c``, run by a test harness under
wine and natively on Windows CI); this file is the thin Python side: it
turns completions into the same tokens as the readiness backends
(``fd << 3 | 1`` for a receive-side operation, ``| 2`` for a send-side one),
so the hub resumes the greenlet in the socket's reader or writer slot as it
does for epoll, and it supplies the socket classes' I/O loops
(``install_socket_io``), where waiting means submitting the operation.

Some facts about IOCP this file depends on:

- Every call is tried first without waiting (sockets are non-blocking as
  well as overlapped): data already there costs no completion round trip.
- A stream socket waits for data with a zero-byte WSARecv, which completes
  when data (or the end of the stream) arrives and holds no buffer, so
  10,000 idle connections pin no memory; the non-blocking recv() that
  follows reads into the caller's buffer.  Datagram sockets cannot do
  that (a zero-byte receive would consume the datagram): they receive into
  a buffer of the socket's own.
- A pending send owns a copy of the bytes it sends, so the caller's buffer
  is free the moment the call returns or raises.
- FILE_SKIP_COMPLETION_PORT_ON_SUCCESS: an operation that completes at once
  posts nothing; the C call says "done" (0) or "pending" (1).
- The kernel owns an OVERLAPPED (and its buffer) until its completion has
  been dequeued, cancelled or not.  An operation interrupted by a timeout
  is cancelled (CancelIoEx) and its completion awaited before the caller
  hears of the timeout; if it completed after all (data sent, connection
  accepted), that result is returned instead of being lost.  A socket
  closed under a pending operation hands it to the poller (``_orphans``),
  which keeps it alive until its aborted completion arrives.
- AcceptEx needs a fresh socket and SO_UPDATE_ACCEPT_CONTEXT; ConnectEx a
  bound socket and SO_UPDATE_CONNECT_CONTEXT (done in iocp.c).
"""
import math

from ._iocp_ffi import ffi, lib
from ._socket_ffi import ffi as _sffi, lib as _slib
from .addr import SockAddr
from .errors import Error, TimeoutError, os_error
from ._shared import Member, Registry
from .hub import _TryFirstWaiters

BATCH = 256
SEND_CHUNK = 256 * 1024     # the most one pending send copies
_EMSGSIZE = lib.WSAEMSGSIZE  # a datagram cut to the buffer: not an error
_WOULDBLOCK = -_slib.S2_EWOULDBLOCK
_RETRY_ACCEPT = (_slib.S2_ECONNABORTED, _slib.S2_EPROTO)
_STREAM = _slib.SOCK_STREAM
_UNSET = object()
_PORTS = Registry()


class IocpWaiters(_TryFirstWaiters):
    """A socket's slots plus its two operations (created on first use) and
    what each keeps alive while pending (a send's copy, a receive buffer)."""
    __slots__ = ("rop", "wop", "rkeep", "wkeep")

    def __init__(self):
        super().__init__()
        self.rop = self.wop = self.rkeep = self.wkeep = None


def _addr(op):
    return int(ffi.cast("uintptr_t", op))


class IocpPoller(Member):
    """Completion poller over one I/O completion port; see EpollPoller for
    the surface.  ``poll`` returns the tokens of completed operations.

    Sharing a port between OS threads (``socket2.iocp(handle)``) uses
    leader/followers (``_shared.py``): the leader waits on the shared port,
    followers on a private port that only their wakeups are posted to."""

    name = "iocp"
    exact_edges = False
    waiters_class = IocpWaiters

    def __init__(self, handle=None):
        self._init_member()
        r = lib.s2_iocp_init()
        if r < 0:
            raise os_error(-r, "WSAStartup")
        self._ops = ffi.new("s2_op *[]", BATCH)
        self._tokens = ffi.new("unsigned long long[]", BATCH)
        self._bytes = ffi.new("unsigned long[]", BATCH)
        self._errs = ffi.new("int[]", BATCH)
        self._slots = {}          # fd -> IocpWaiters
        self._private = ffi.NULL  # followers' port, once shared
        if handle is None:
            self._port = self._new_port()
            self._owned = True
            # A handle value: unique among open handles, so no socket's
            # token can look like the wakeup's.
            self._ident = _addr(self._port)
            self._orphans = {}    # op address -> (op, what it keeps alive)
            _PORTS.creators[self._ident] = self
            return
        self._port = ffi.cast("void *", handle)
        self._owned = False

        def prepare(sh):
            self._private = self._new_port()
            self._ident = _addr(self._private)
            self._orphans = sh.data.setdefault("orphans", {})
            self._become_member(sh)

        _PORTS.join(handle, prepare)

    @staticmethod
    def _new_port():
        port = lib.s2_iocp_create()
        if port == ffi.NULL:
            raise Error("out_of_memory", "CreateIoCompletionPort failed")
        return port

    def _go_shared(self, sh):
        """The creator, when a first thread joins: a private port for its
        wakeups (same token), orphans seen by every member."""
        self._private = self._new_port()
        orphans = sh.data.setdefault("orphans", {})
        orphans.update(self._orphans)
        self._orphans = orphans

    @property
    def _wake_token(self):
        return self._ident << 3 | 1

    def fileno(self):
        return _addr(self._port)

    def register(self, fd, slots):
        r = lib.s2_iocp_associate(self._port, fd)
        if r < 0:
            raise os_error(-r, "CreateIoCompletionPort(socket %d)" % fd)
        self._slots[fd] = slots

    def unregister(self, fd, closing=False):
        w = self._slots.pop(fd, None)
        if w is None:
            return
        # The socket is about to be closed: closesocket() aborts what is
        # pending, and the aborted completions still write into the ops.
        for op, keep in ((w.rop, w.rkeep), (w.wop, w.wkeep)):
            if op is not None and op.pending:
                self._orphans[_addr(op)] = (op, keep)

    def poll(self, timeout):
        if self._sh is not None:
            return self._poll_shared(timeout)
        return self.poll_alone(self._wait_leader, timeout)

    def _wait_leader(self, timeout):
        return self._wait(self._port, timeout)

    def _wait_follower(self, timeout):
        return self._wait(self._private, timeout)

    def _wait(self, port, timeout):
        ms = -1 if timeout < 0 else int(math.ceil(timeout * 1000))
        n = lib.s2_iocp_wait(port, self._ops, self._tokens, self._bytes,
                             self._errs, BATCH, ms)
        if n > 0:
            tokens = ffi.unpack(self._tokens, n)
            if self._orphans:
                orphans, ops = self._orphans, self._ops
                tokens = [t for i, t in enumerate(tokens)
                          if orphans.pop(_addr(ops[i]), None) is None]
            return tokens
        if n == 0:
            return ()
        raise os_error(-n, "GetQueuedCompletionStatusEx")

    def _kick_shared(self):
        lib.s2_iocp_wakeup(self._port, self._wake_token)

    def _kick_private(self):
        lib.s2_iocp_wakeup(self._private, self._wake_token)

    def prime_read(self, sock):
        """serve(): post the zero-byte receive whose completion starts the
        connection's thread (a datagram socket just starts at once)."""
        token = sock._fd << 3 | 1
        if sock._type == _STREAM:
            got = ffi.new("unsigned long *")
            if lib.s2_iocp_recv(_op(sock._w, "rop"), sock._fd, ffi.NULL, 0,
                                token, got) == 1:
                return
        # Data (or an error) is there already, or a datagram socket: a
        # packet with the socket's token makes the loop start the thread
        # (on a shared port, whichever thread gets it forwards it).
        lib.s2_iocp_wakeup(self._port, token)

    def orphan(self, op, keep):
        """Keep *op* (still pending; its socket closed or its waiter gone)
        and *keep* alive until its completion arrives, then drop both."""
        self._orphans[_addr(op)] = (op, keep)

    def wakeup_fd(self, slots=None):
        return self._ident

    def wakeup(self):
        if self._sh is not None:
            self._wakeup_shared()
        else:
            lib.s2_iocp_wakeup(self._port, self._wake_token)

    def drain_wakeup(self):
        pass                      # a posted packet is consumed by the wait

    def close(self):
        self._leave()
        if self._private != ffi.NULL:
            lib.s2_iocp_close(self._private)
            self._private = ffi.NULL
        if self._port != ffi.NULL:
            _PORTS.forget(self, _addr(self._port), self._owned)
            if self._owned:
                lib.s2_iocp_close(self._port)
            self._port = ffi.NULL

    @staticmethod
    def install_socket_io(socket_cls, tcp_cls, udp_cls):
        """Put the completion-based I/O loops into the socket classes."""
        socket_cls._recv_loop = _recv_loop
        socket_cls._send_loop = _send_loop
        socket_cls._connect_one = _connect_one
        socket_cls._reopen = _reopen
        tcp_cls.accept = _accept
        udp_cls._recvfrom = _recvfrom
        udp_cls._sendto = _sendto


# -- the socket side ----------------------------------------------------------

def _op(w, slot):
    """The socket's receive-side ("rop") or send-side ("wop") operation;
    a pending one belongs to another thread's call."""
    op = getattr(w, slot)
    if op is None:
        op = ffi.new("s2_op *")
        setattr(w, slot, op)
    elif op.pending:
        raise Error("busy", "another thread is already %s on this socket"
                    % ("receiving" if slot == "rop" else "sending"))
    return op


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
        op = _op(w, "rop")
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
        op = _op(w, "wop")
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
        op = _op(w, "wop")
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
    op = _op(w, "rop")
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
        op = _op(self._w, "rop")
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
    op = _op(self._w, "wop")
    r = lib.s2_iocp_connect(op, self._fd, p.ai_addr, p.ai_addrlen,
                            self._fd << 3 | 2)
    _finish(self, op, r, deadline, True, "connect to %s" % node.tostring())
    r = lib.s2_iocp_connect_done(op)
    if r < 0:
        raise self._fail(r, "connect to %s" % node.tostring())


def _reopen(self):
    """A new socket in place of one whose connect failed (Windows cannot
    dup2 a socket onto the old number)."""
    fd = _slib.s2_socket(self._family, self._type, self._proto)
    if fd < 0:
        raise os_error(-fd, "socket")
    old = self._fd
    self._hub.unregister(old, closing=True)
    _slib.s2_close(old)
    self._fd = fd
    self._bound = False
    self._w = self._hub.register(fd)
