"""The Linux epoll backend.

Some facts about epoll that this file depends on:

- A registration belongs to the *open file description*, not the fd
  number, and the kernel drops it when the description is closed.  socket2
  still deletes it explicitly before close(), so a number reused by a new
  socket never inherits an old registration (dup'ed fds would otherwise
  keep it alive).
- Edge-triggered mode (EPOLLET) reports a change of state once.  The hub
  always tries the system call first and waits only after EAGAIN, so every
  wait starts from an empty buffer (reads) or a full one (writes) and the
  next edge is guaranteed to come.  A socket is therefore registered once,
  for both directions, at creation: no epoll_ctl per wait.
- An edge that arrives while no greenlet waits is simply dropped, and a
  spurious wake-up (an fd number reused within one batch) only makes the
  woken greenlet retry its system call and wait again.
"""
from ._epoll_ffi import ffi, lib
from .errors import os_error

BATCH = 512  # events per epoll_wait: large enough for 10k connections' bursts


class EpollPoller:
    """Readiness poller over one epoll instance.

    The backend surface (shared by every poller): ``register(fd, slots)``
    (*slots* is the hub's reader/writer record for the fd, for backends
    that must know who waits),
    ``unregister(fd)``, ``poll(timeout) -> list of tokens`` where a token is
    ``fd << 3 | readable | writable << 1 | hangup << 2`` (hang-up: the peer
    closed or the socket failed), ``wakeup()`` (callable from any
    OS thread), ``fileno()``, ``close()`` and ``name``.
    """

    name = "epoll"

    def __init__(self, fd=None):
        if fd is None:
            fd = lib.s2_epoll_create()
            if fd < 0:
                raise os_error(-fd, "epoll_create1")
            self._owned = True
        else:
            self._owned = False   # shared with other hubs: not ours to close
        self._fd = fd
        self._tokens = ffi.new("int[]", BATCH)
        self._wakefd = -1

    def fileno(self):
        return self._fd

    def register(self, fd, waiters):
        r = lib.s2_epoll_add(self._fd, fd)
        if r < 0:
            raise os_error(-r, "epoll_ctl(ADD, %d)" % fd)

    def unregister(self, fd):
        lib.s2_epoll_del(self._fd, fd)   # ENOENT/EBADF: already gone, fine

    def poll(self, timeout, _wait=lib.s2_epoll_wait, _unpack=ffi.unpack):
        """Wait up to *timeout* seconds (negative: forever); return tokens."""
        n = _wait(self._fd, self._tokens, BATCH, timeout)
        if n > 0:
            return _unpack(self._tokens, n)
        if n == 0 or n == -4:   # -EINTR: the caller runs signal handlers
            return ()
        raise os_error(-n, "epoll_wait")

    def wakeup_fd(self):
        """An fd that, once registered, makes ``poll`` return when
        ``wakeup()`` is called from any OS thread (created on first use)."""
        if self._wakefd < 0:
            fd = lib.s2_eventfd()
            if fd < 0:
                raise os_error(-fd, "eventfd")
            self._wakefd = fd
        return self._wakefd

    def wakeup(self):
        lib.s2_eventfd_signal(self._wakefd)

    def drain_wakeup(self):
        lib.s2_eventfd_drain(self._wakefd)

    def close(self):
        if self._wakefd >= 0:
            import os
            os.close(self._wakefd)
            self._wakefd = -1
        if self._fd >= 0 and self._owned:
            import os
            os.close(self._fd)
        self._fd = -1
