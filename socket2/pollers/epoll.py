"""The Linux epoll backend.

Some facts about epoll that this file depends on:

- A registration belongs to the *open file description*, not the fd
  number, and the kernel drops it only when the description is closed.
  A socket socket2 made itself (socket(), accept()) and that no fork()
  has copied since is the description's only holder, so close() alone
  unregisters (``unregister(fd, closing=True)``: one system call less per
  connection).  Wherever the description may outlive the number -- a
  descriptor that came from outside (the green layer: dup(), fromfd(),
  the standard library's socket), any socket after a fork(), _reopen's
  dup2 -- the socket layer passes ``closing=False`` and the registration
  is deleted explicitly first (sockets.py ``_unregister_for_close``), so
  its events can never be reported for the number's next socket.
- Edge-triggered mode (EPOLLET) reports a change of state once.  The hub
  always tries the system call first and waits only after EAGAIN (or after a
  short read, which proves the queue empty), so the next edge is guaranteed
  to come.  A socket is therefore registered once, for both directions, at
  creation: no epoll_ctl per wait.
- An edge that arrives while no greenlet waits is remembered by the hub
  (rready).  An event can still be stale: one batch may hold an event for
  a socket that a greenlet resumed earlier in the same batch closed, and
  whose number a new socket took.  So a wake-up is only a hint, never a
  completion: recv/send/accept retry their system call and wait again on
  EAGAIN, and connect() asks the kernel whether it is connected
  (``s2_connect_state``) instead of trusting the wake-up.
- Several OS threads may wait on one epoll set; each ready event goes to one
  of them.  When a set is shared (``socket2.epoll_fd(fd)`` in another OS
  thread), every hub on it waits on a private epoll that holds its own
  wakeup fd and the set (level-triggered), so a wakeup is never consumed by
  the wrong thread; an event for another hub's socket is forwarded to that
  hub by hub.py.  The hub that created the set switches to this mode when
  the first other thread joins (``_go_nested``), kicked out of a wait it may
  be in on the set by a one-off eventfd.
"""
import os
import _thread
import time

from .._epoll_ffi import ffi, lib
from ..errors import Error, os_error

_ADD_ADDR = int(ffi.cast("uintptr_t", ffi.addressof(lib, "s2_epoll_add")))

BATCH = 512  # events per epoll_wait: large enough for 10k connections' bursts

_CREATORS = {}   # epoll fd -> the EpollPoller that created it (set owner)
_SETS = {}       # epoll fd -> its _SetUse, while open
_JOIN_LOCK = _thread.allocate_lock()


class _SetUse:
    """Who uses one epoll set: socket2's pollers on it (its creator and the
    hubs that joined it), and whether socket2 made it and its creator's
    thread ended while others still used it: then the last of them to go
    closes it (see EpollPoller._leave), so rounds of threads sharing sets
    leave none behind.  A set the user made is theirs to close.  Each
    poller holds its record, so one that leaves late never counts against
    a new set under the same number."""
    __slots__ = ("fd", "users", "orphaned", "closed")

    def __init__(self, fd):
        self.fd = fd
        self.users = 0
        self.orphaned = False
        self.closed = False


def _create():
    fd = lib.s2_epoll_create()
    if fd < 0:
        raise os_error(-fd, "epoll_create1")
    return fd


class EpollPoller:
    """Readiness poller over one epoll instance.

    The backend surface (shared by every poller): ``register(fd, slots)``
    (*slots* is the hub's reader/writer record for the fd, for backends
    that must know who waits), ``unregister(fd)``, ``poll(timeout) -> tokens``
    (a list of ints, or a view of C ints valid until the next poll) where
    a token is ``fd << 3 | readable | writable << 1 |
    hangup << 2`` (hang-up: the peer closed or the socket failed),
    ``wakeup_fd(slots)`` / ``wakeup()`` (callable from any OS thread) /
    ``drain_wakeup()``, ``fileno()``, ``close()`` and ``name``.  Optional,
    for backends that need them: ``exact_edges = False`` (recv always
    tries first), ``arm(fd, write)`` (kqueue: watch an fd once a thread
    parks), ``waiters_class``, ``prime_read(fd, slots, socktype)`` and
    ``completion_based = True`` (IOCP: per-socket operations, serve()'s
    first receive, and the socket layer's completion-based loops in
    ``socket2/_completion.py``), ``drop(fd)`` (epoll: delete a kernel
    registration from any OS thread), ``close_unregisters = True`` (epoll:
    ``unregister(fd, closing=True)`` has nothing to do, and the hub leaves
    the call out), ``native_register`` (epoll: ``(address, handle)`` of a
    C function ``int f(int handle, int fd)`` doing register()'s work, 0 or
    a negative errno, which the hub's compiled core calls instead of
    register(); register() still runs for an error's exception).
    """

    name = "epoll"

    def __init__(self, fd=None):
        self._tokens = ffi.new("int[]", BATCH)
        # poll() hands out slices of this view of the array: the hub's
        # dispatch copies them out at once, and no int object is made
        # per event.
        self._view = memoryview(ffi.buffer(self._tokens)).cast("i")
        self._wakefd = -1
        self._in_wait = False
        self._polls = 0
        self._use = None        # the set's _SetUse, while this uses it
        # ``(address, handle)``: register() as a C function ``int f(int
        # handle, int fd)`` returning 0 or a negative errno, for the hub's
        # compiled core (a registration per connection without a Python
        # call; on an error the core calls register() for its exception).
        # The core reads it at each registration: it changes after fork().
        self.native_register = None
        if fd is None:
            self._set = self._waitfd = _create()
            self._owned = True
            self.shared = False
            _CREATORS[self._set] = self
            self._use = _SETS[self._set] = _SetUse(self._set)
            self._use.users = 1
            self.native_register = (_ADD_ADDR, self._set)
        else:
            # Joining a set another hub (or the user) created.
            self._owned = False
            self._set = fd
            self._waitfd = _create()
            r = lib.s2_epoll_add_level(self._waitfd, fd)
            if r < 0:
                os.close(self._waitfd)
                raise os_error(-r, "epoll_ctl(ADD, shared epoll fd %d)" % fd)
            self.shared = True
            self.native_register = (_ADD_ADDR, fd)
            # Forwarded events are announced through the wakeup fd: a shared
            # poller always has one.
            self.wakeup_fd()
            with _JOIN_LOCK:      # two threads joining at once migrate once
                use = _SETS.get(fd)
                if use is None:     # (the user's own set)
                    use = _SETS[fd] = _SetUse(fd)
                use.users += 1
                self._use = use
                creator = _CREATORS.get(fd)
                if creator is not None and not creator.shared:
                    creator._go_nested()

    def fileno(self):
        """The epoll set sockets are registered in (shareable)."""
        return self._set

    def after_fork(self, fds):
        """In a child after fork(): an epoll set (and a wakeup fd) of its
        own, with *fds* registered again.  The inherited set is the
        parent's: the child must never take its events."""
        if self.shared:
            raise Error("unsupported", "a shared epoll set cannot be carried "
                        "into a forked child")
        old = self._set
        _CREATORS.pop(old, None)
        _SETS.pop(old, None)
        self._set = self._waitfd = _create()
        _CREATORS[self._set] = self
        self._use = _SETS[self._set] = _SetUse(self._set)
        self._use.users = 1
        self.native_register = (_ADD_ADDR, self._set)
        os.close(old)
        if self._wakefd >= 0:
            os.close(self._wakefd)      # the parent's eventfd, shared
            self._wakefd = -1
        for fd in fds:
            lib.s2_epoll_add(self._set, fd)

    def register(self, fd, slots):
        r = lib.s2_epoll_add(self._set, fd)
        if r < 0:
            raise os_error(-r, "epoll_ctl(ADD, %d)" % fd)

    # unregister(fd, closing=True) does nothing here (the hub skips it):
    # the registration goes with the description's last descriptor.
    close_unregisters = True

    def unregister(self, fd, closing=False):
        # closing=True: the caller is about to close the description's only
        # descriptor, which drops the registration with it (see the module
        # docstring); anything else deletes it explicitly.
        if not closing:
            lib.s2_epoll_del(self._set, fd)   # ENOENT: already gone, fine

    def drop(self, fd):
        """From any OS thread: delete *fd*'s kernel registration now (a
        socket closed from another OS thread than its hub's, whose
        description may outlive the number).  Optional in the backend
        surface: only backends with per-description registrations have
        it.  The hub's own record goes later, in its thread."""
        lib.s2_epoll_del(self._set, fd)   # ENOENT: already gone, fine

    def poll(self, timeout):
        """Wait up to *timeout* seconds (negative: forever); return tokens
        (a view of this poller's array, valid until the next poll)."""
        self._in_wait = True   # before reading _waitfd: see _go_nested
        if self.shared:
            n = lib.s2_epoll_wait_nested(self._waitfd, self._set, self._tokens,
                                         BATCH, timeout)
        else:
            n = lib.s2_epoll_wait(self._waitfd, self._tokens, BATCH, timeout)
        self._in_wait = False
        self._polls += 1
        if n > 0:
            return self._view[:n]
        if n == 0 or n == -4:   # -EINTR: the caller runs signal handlers
            return ()
        raise os_error(-n, "epoll_wait")

    def _go_nested(self):
        """Called from a joining OS thread: move this (creator) poller to a
        private epoll so its wakeups stay its own."""
        priv = _create()
        lib.s2_epoll_add_level(priv, self._set)
        if self._wakefd >= 0:
            lib.s2_epoll_del(self._set, self._wakefd)
            lib.s2_epoll_add(priv, self._wakefd)
        else:
            self._wakefd = self._new_eventfd()
            lib.s2_epoll_add(priv, self._wakefd)
        self._waitfd = priv
        polls = self._polls
        self.shared = True
        if self._in_wait:
            # It may be blocked on the set itself: an event there ends that
            # wait (no other thread polls the set yet, so it is the one to
            # get it), and every later wait uses the private epoll.
            kick = self._new_eventfd()
            lib.s2_epoll_add(self._set, kick)
            lib.s2_eventfd_signal(kick)
            deadline = time.monotonic() + 5
            while self._polls == polls and self._in_wait \
                    and time.monotonic() < deadline:
                time.sleep(0.0005)
            lib.s2_epoll_del(self._set, kick)
            os.close(kick)

    @staticmethod
    def _new_eventfd():
        fd = lib.s2_eventfd()
        if fd < 0:
            raise os_error(-fd, "eventfd")
        return fd

    def wakeup_fd(self, slots=None):
        """An fd that makes ``poll`` return when ``wakeup()`` is called from
        any OS thread (created and registered on first use)."""
        if self._wakefd < 0:
            self._wakefd = self._new_eventfd()
            r = lib.s2_epoll_add(self._waitfd, self._wakefd)
            if r < 0:
                raise os_error(-r, "epoll_ctl(ADD, eventfd)")
        return self._wakefd

    def wakeup(self):
        if self._wakefd >= 0:
            lib.s2_eventfd_signal(self._wakefd)

    def drain_wakeup(self):
        lib.s2_eventfd_drain(self._wakefd)

    def release_shared(self):
        """This poller's OS thread ended while its set is shared: close
        what is its own (its private epoll and its eventfd, two descriptors
        per thread that joined), and leave the set to the OS threads that
        still wait on it."""
        if self._wakefd >= 0:
            os.close(self._wakefd)
            self._wakefd = -1
        if self._waitfd >= 0 and self._waitfd != self._set:
            os.close(self._waitfd)
        self._waitfd = -1
        self._leave(self._owned)

    def _leave(self, orphan):
        """This poller stops using its set (*orphan*: it made the set and
        leaves it to the others); the last user of an orphaned set closes
        it.  See _SetUse."""
        use, self._use = self._use, None
        if use is None:
            return
        with _JOIN_LOCK:
            if _CREATORS.get(use.fd) is self:
                del _CREATORS[use.fd]
            if orphan:
                use.orphaned = True
            use.users -= 1
            if use.users > 0 or use.closed or not use.orphaned:
                return
            use.closed = True
            if _SETS.get(use.fd) is use:
                del _SETS[use.fd]
        os.close(use.fd)

    def close(self):
        if self.shared:
            # Others may still wait on the set: it is left to them as at
            # a thread's end (the last of them closes it, see _SetUse).
            self.release_shared()
            self._set = -1
            return
        if self._wakefd >= 0:
            os.close(self._wakefd)
            self._wakefd = -1
        if self._waitfd >= 0 and self._waitfd != self._set:
            os.close(self._waitfd)
        use = self._use
        self._leave(False)
        if self._set >= 0 and self._owned:
            if use is not None:
                with _JOIN_LOCK:
                    use.closed = True
                    if _SETS.get(use.fd) is use:
                        del _SETS[use.fd]
            os.close(self._set)
        self._set = self._waitfd = -1
