"""The kqueue backend (macOS, the BSDs; Linux through libkqueue).

Some facts about kqueue that this file depends on:

- Reads and writes are separate filters, armed per wait: when a thread
  parks, a one-shot EVFILT_READ or EVFILT_WRITE is queued (hub.arm) and
  handed to the kevent() call that waits, so arming costs no system call of
  its own, and a one-shot fires at once if the socket is ready already.
  Edge-triggered EV_CLEAR registrations made once (as the epoll backend
  does) lose edges under libkqueue when an fd has both filters: under load,
  readers and writers stayed parked forever.  One-shots are correct on
  every kqueue.
- Closing a descriptor removes its kevents, so close() needs no EV_DELETE.
- A queued arming for an fd that is closed before the wait is dropped, so
  a reused fd number can never inherit it.
- The wakeup is an EVFILT_USER event whose ident is the kqueue's own fd
  number (no socket can have it), triggered with NOTE_TRIGGER from any OS
  thread.
"""
import os

from ._kqueue_ffi import ffi, lib
from .errors import Error, os_error

BATCH = 512


class KqueuePoller:
    """Readiness poller over one kqueue; see EpollPoller for the surface."""

    name = "kqueue"

    def __init__(self, fd=None):
        if fd is not None:
            raise Error("unsupported", "sharing a kqueue between OS threads "
                        "is not supported yet (epoll sets are)")
        kq = lib.s2_kqueue_create()
        if kq < 0:
            raise os_error(-kq, "kqueue")
        self._kq = kq
        self._arms = {}           # fd << 1 | write -> None, for the next wait
        self._slots = {}          # fd -> the hub's _Waiters (for soerr)
        self._armv = ffi.new("int[]", 64)
        self._tokens = ffi.new("int[]", BATCH)
        self._errs = ffi.new("int[]", BATCH)
        self._user = False

    def fileno(self):
        return self._kq

    # Edges as libkqueue emulates them are not exact enough for the hub's
    # "a short read proves the queue empty" shortcut: recv always tries.
    exact_edges = False

    def register(self, fd, slots):
        self._slots[fd] = slots

    def arm(self, fd, write):
        """A thread is about to park on *fd*: watch it once (applied with
        the next wait)."""
        self._arms[fd << 1 | write] = None

    def unregister(self, fd, closing=False):
        self._slots.pop(fd, None)
        self._arms.pop(fd << 1, None)
        self._arms.pop(fd << 1 | 1, None)
        if not closing:
            lib.s2_kqueue_del(self._kq, fd)

    def poll(self, timeout):
        arms = self._arms
        n = len(arms)
        if n:
            if n > len(self._armv):
                self._armv = ffi.new("int[]", max(n, 2 * len(self._armv)))
            armv = self._armv
            for i, a in enumerate(arms):
                armv[i] = a
            arms.clear()
        k = lib.s2_kqueue_wait(self._kq, self._armv, n, self._tokens,
                               self._errs, BATCH, timeout)
        if k > 0:
            tokens = ffi.unpack(self._tokens, k)
            errs = self._errs
            for i in range(k):
                if errs[i]:
                    w = self._slots.get(tokens[i] >> 3)
                    if w is not None:
                        w.soerr = errs[i]
            return tokens
        if k == 0 or k == -4:       # -EINTR: the caller runs signal handlers
            return ()
        raise os_error(-k, "kevent")

    def wakeup_fd(self, slots=None):
        if not self._user:
            r = lib.s2_kqueue_user_add(self._kq, self._kq)
            if r < 0:
                raise os_error(-r, "kevent(EVFILT_USER)")
            self._user = True
        return self._kq

    def wakeup(self):
        if self._user:
            lib.s2_kqueue_user_trigger(self._kq, self._kq)

    def drain_wakeup(self):
        pass                        # EV_CLEAR: nothing to drain

    def close(self):
        if self._kq >= 0:
            os.close(self._kq)
            self._kq = -1
        self._arms.clear()
        self._slots.clear()
