"""The Windows IOCP backend: completion-based, behind the same surface.

The mechanics are in C (``socket2/ffi/iocp.c``, run by a test harness under
wine and natively on Windows CI); this file is the thin Python side: it
turns completions into the same tokens as the readiness backends
(``fd << 3 | 1`` for a receive-side operation, ``| 2`` for a send-side one),
so the hub resumes the greenlet in the socket's reader or writer slot as it
does for epoll.

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

The socket side (the loops that submit operations and wait for them) is in
the socket layer, ``socket2/_completion.py``, which the socket classes use
when ``completion_based`` says so: the backend never reaches up.
"""
import math

from .._iocp_ffi import ffi, lib
from .._socket_ffi import lib as _slib
from ..errors import Error, os_error
from . import TryFirstWaiters
from .shared import Member, Registry

BATCH = 256
SEND_CHUNK = 256 * 1024     # the most one pending send copies
_STREAM = _slib.SOCK_STREAM
_PORTS = Registry()
# Operations still pending when the port they were orphaned on closed
# (see IocpPoller._close_port): kept alive for the process's life.
_LINGERING = []


class IocpWaiters(TryFirstWaiters):
    """A socket's slots plus its two operations (created on first use) and
    what each keeps alive while pending (a send's copy, a receive buffer)."""
    __slots__ = ("rop", "wop", "rkeep", "wkeep")

    def __init__(self):
        super().__init__()
        self.rop = self.wop = self.rkeep = self.wkeep = None

    def op(self, slot):
        """The socket's receive-side ("rop") or send-side ("wop")
        operation; a pending one belongs to another thread's call."""
        op = getattr(self, slot)
        if op is None:
            op = ffi.new("s2_op *")
            setattr(self, slot, op)
        elif op.pending:
            raise Error("busy", "another thread is already %s on this socket"
                        % ("receiving" if slot == "rop" else "sending"))
        return op


def _addr(op):
    return int(ffi.cast("uintptr_t", op))


class IocpPoller(Member):
    """Completion poller over one I/O completion port; see EpollPoller for
    the surface.  ``poll`` returns the tokens of completed operations.

    Sharing a port between OS threads (``socket2.iocp(handle)``) uses
    leader/followers (``shared.py``): the leader waits on the shared port,
    followers on a private port that only their wakeups are posted to."""

    name = "iocp"
    completion_based = True     # sockets use socket2/_completion.py's loops
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
        self._associated = set()  # sockets associated with the port
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
        # A socket stays associated with the port until it is closed (there
        # is no undoing it, and associating it again fails): one registered
        # again after an unregister without closing (a socket handed from
        # one wrapper to another, ssl's wrap_socket) is not associated twice.
        if fd not in self._associated:
            r = lib.s2_iocp_associate(self._port, fd)
            if r < 0:
                raise os_error(-r, "CreateIoCompletionPort(socket %d)" % fd)
            self._associated.add(fd)
        self._slots[fd] = slots

    def unregister(self, fd, closing=False):
        if closing:
            self._associated.discard(fd)
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

    def prime_read(self, fd, slots, socktype):
        """serve(): post the zero-byte receive whose completion starts the
        connection's thread (a datagram socket just starts at once)."""
        token = fd << 3 | 1
        if socktype == _STREAM:
            got = ffi.new("unsigned long *")
            if lib.s2_iocp_recv(slots.op("rop"), fd, ffi.NULL, 0,
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

    def release_shared(self):
        """This poller's OS thread ended while its port is shared: leave
        the members and close its private port; the shared port and the
        orphaned operations stay for the OS threads that still wait on it
        -- and the last of them to go, once its creator went, closes it."""
        sh = self._sh
        if sh is None:
            return          # (released already: an explicit close first)
        self._leave()
        _PORTS.forget(self, _addr(self._port), False)
        if self._private != ffi.NULL:
            lib.s2_iocp_close(self._private)
            self._private = ffi.NULL
        port, self._port, self._sh = self._port, ffi.NULL, None
        if _PORTS.leave(sh, self._owned) and port != ffi.NULL:
            self._close_port(port)

    def close(self):
        if self._sh is not None:
            # Others may still wait on the port: it is left to them as at
            # a thread's end (the last of them closes it).
            self.release_shared()
            return
        if self._private != ffi.NULL:
            lib.s2_iocp_close(self._private)
            self._private = ffi.NULL
        if self._port != ffi.NULL:
            _PORTS.forget(self, _addr(self._port), self._owned)
            port, self._port = self._port, ffi.NULL
            if self._owned:
                self._close_port(port)

    def _close_port(self, port):
        """Close a port socket2 made, once the aborted completions of the
        operations orphaned on it came in (the kernel writes into an
        OVERLAPPED until its completion is queued): at most ~1 s, and an
        operation still pending then is kept alive for good."""
        orphans = self._orphans
        for _ in range(100):
            if not orphans:
                break
            try:
                self._wait(port, 0.01)  # (drops the orphans it dequeues)
            except OSError:
                break
        if orphans:
            _LINGERING.append(dict(orphans))
            orphans.clear()
        lib.s2_iocp_close(port)
