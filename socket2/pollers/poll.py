"""The portable poll(2) backend (``SOCKET2_POLLER=poll``).

poll(2) is level-triggered and keeps no registrations: each call lists the
descriptors again.  So this backend watches only what someone waits for, in
the direction they wait (a readable socket nobody reads from would
otherwise wake the loop forever), by looking at the reader and writer slots
the hub gives it at registration.  Level triggering makes the hub's
"known empty after a short read" shortcut safe here too: a waiter's fd is
polled, and data already there reports at once.  Cost is O(watched fds) per
turn of the loop: the fallback, not the fast path.
"""
import os

from .._poll_ffi import ffi, lib
from ..errors import Error, os_error


class PollPoller:
    """Readiness poller over poll(2); see EpollPoller for the surface."""

    name = "poll"

    def __init__(self, fd=None):
        if fd is not None:
            raise Error("unsupported", "the poll backend has no shareable "
                        "handle")
        self._slots = {}          # fd -> the hub's _Waiters
        self._cap = 0
        self._grow(64)
        self._pipe = None

    def _grow(self, n):
        self._cap = n
        self._pfds = ffi.new("struct pollfd[]", n)
        self._tokens = ffi.new("int[]", n)

    def fileno(self):
        return -1

    def register(self, fd, waiters):
        self._slots[fd] = waiters

    def unregister(self, fd, closing=False):
        self._slots.pop(fd, None)

    def poll(self, timeout):
        slots = self._slots
        if len(slots) > self._cap:
            self._grow(max(len(slots), self._cap * 2))
        pfds = self._pfds
        n = 0
        pollin, pollout = lib.POLLIN, lib.POLLOUT
        for fd, w in slots.items():
            ev = (pollin if w.rg is not None else 0) | \
                 (pollout if w.wg is not None else 0)
            if ev:
                p = pfds[n]
                p.fd = fd
                p.events = ev
                p.revents = 0
                n += 1
        k = lib.s2_poll(pfds, n, self._tokens, timeout)
        if k > 0:
            return ffi.unpack(self._tokens, k)
        if k == 0 or k == -4:     # -EINTR: the caller runs signal handlers
            return ()
        raise os_error(-k, "poll")

    def wakeup_fd(self, slots=None):
        if self._pipe is None:
            fds = ffi.new("int[2]")
            r = lib.s2_pipe(fds)
            if r < 0:
                raise os_error(-r, "pipe")
            self._pipe = (fds[0], fds[1])
        if slots is not None:
            self._slots[self._pipe[0]] = slots
        return self._pipe[0]

    def after_fork(self, fds):
        """In a child after fork(): a wakeup pipe of its own (poll(2) keeps
        no kernel set, so nothing else is shared with the parent)."""
        if self._pipe is not None:
            rfd = self._pipe[0]
            self._slots.pop(rfd, None)
            for fd in self._pipe:
                os.close(fd)
            self._pipe = None

    def wakeup(self):
        if self._pipe is not None:
            lib.s2_pipe_signal(self._pipe[1])

    def drain_wakeup(self):
        lib.s2_pipe_drain(self._pipe[0])

    def close(self):
        if self._pipe is not None:
            for fd in self._pipe:
                os.close(fd)
            self._pipe = None
        self._slots.clear()
