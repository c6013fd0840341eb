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
- On the BSD kernels closing a descriptor removes its kevents; libkqueue
  does not.  It keeps a knote per (filter, descriptor number) in its own
  map, and its epoll registration under it, until the one-shot fires or
  is deleted.  A one-shot still pending when its descriptor is closed (the
  thread's wait timed out or was killed) outlives the socket; the next
  socket that gets the same number then finds that knote, libkqueue
  "modifies" it instead of creating one, and its events never come (a
  connect() parked forever).  So the poller remembers which one-shots are
  applied and not yet fired (``_armed``) and deletes those before the
  descriptor is closed: one system call, only where a wait ended without
  its event; on a BSD kernel the deletion is merely redundant.
- A queued arming for an fd that is closed before the wait is dropped, so
  a reused fd number can never inherit it.
- The wakeup is an EVFILT_USER event whose ident is the kqueue's own fd
  number (no socket can have it), triggered with NOTE_TRIGGER from any OS
  thread.

Sharing one kqueue between OS threads (``socket2.kqueue_fd(fd)``) cannot
use epoll's nesting: libkqueue does not report a kqueue registered in
another.  It uses leader/followers instead, which needs nothing but plain
kevent() calls.  At most one hub at a time (the leader) waits on the shared
kqueue and takes every socket event; hub.py forwards the events of other
hubs' sockets to their owners.  The others (followers) apply their one-shot
arms to the shared kqueue, never taking its events (a wakeup meant for the
leader would be lost in a follower), and then sleep on a private kqueue that
holds only their wakeup.  When the leader's wait ends, it wakes one sleeping follower,
which takes the lead, so the set is watched whenever anyone sleeps.  A
wakeup is triggered where its target sleeps (the shared kqueue for the
leader, its private one for a follower) and is also recorded as a flag, all
under one lock with the state changes, so no wakeup is lost or
misdelivered: one that lands on another leader is dropped there, and the
flag still delivers it.
"""
import os

from .._kqueue_ffi import ffi, lib
from .shared import Member, Registry
from ..errors import Error, os_error

BATCH = 512
_KQUEUES = Registry()


def _check(r, what):
    if r < 0:
        raise os_error(-r, what)
    return r


class KqueuePoller(Member):
    """Readiness poller over one kqueue; see EpollPoller for the surface."""

    name = "kqueue"

    def __init__(self, fd=None):
        self._init_member()
        self._arms = {}           # fd << 1 | write -> None, for the next wait
        self._armed = set()       # fd << 1 | write applied, not yet fired
        self._armv = ffi.new("int[]", 64)
        self._tokens = ffi.new("int[]", BATCH)
        self._errs = ffi.new("int[]", BATCH)
        self._user = False
        self._pkq = -1            # private kqueue (followers sleep there)
        if fd is None:
            self._kq = _check(lib.s2_kqueue_create(), "kqueue")
            self._owned = True
            self._wake_ident = self._kq
            self._slots = {}      # fd -> the hub's _Waiters (for soerr)
            _KQUEUES.creators[self._kq] = self
            return
        self._kq = fd
        self._owned = False

        def prepare(sh):
            self._pkq = _check(lib.s2_kqueue_create(), "kqueue")
            self._wake_ident = self._pkq
            try:
                _check(lib.s2_kqueue_user_add(self._pkq, self._pkq),
                       "kevent(EVFILT_USER)")
                _check(lib.s2_kqueue_user_add(fd, self._pkq),
                       "kevent(EVFILT_USER) on shared kqueue %d" % fd)
            except Error:
                os.close(self._pkq)
                raise
            self._user = True
            self._slots = sh.data.setdefault("slots", {})
            self._armed = sh.data.setdefault("armed", set())
            self._become_member(sh)

        _KQUEUES.join(fd, prepare)

    def _go_shared(self, sh):
        """The creator, when a first thread joins: a private kqueue for its
        wakeup (same ident: the hub maps its token), slots shared."""
        pkq = _check(lib.s2_kqueue_create(), "kqueue")
        lib.s2_kqueue_user_add(pkq, self._wake_ident)
        if not self._user:
            lib.s2_kqueue_user_add(self._kq, self._wake_ident)
            self._user = True
        self._pkq = pkq
        slots = sh.data.setdefault("slots", {})
        slots.update(self._slots)
        self._slots = slots
        armed = sh.data.setdefault("armed", set())
        armed.update(self._armed)
        self._armed = armed

    @property
    def _wake_token(self):
        return self._wake_ident << 3 | 1

    def fileno(self):
        return self._kq

    def after_fork(self, fds):
        """In a child after fork(): a kqueue of its own, with the waits of
        the hub's parked threads armed again (*fds*, the hub's registered
        descriptors, need nothing: kqueue keeps no registration but the
        one-shots).  A kqueue is not inherited by a forked child (the BSDs;
        libkqueue closes its own in the child the same way): the number is
        not this process's any more, so it is left alone, not closed.  The
        wakeup is added again by the hub (wakeup_fd), under the new
        kqueue's number."""
        if self._sh is not None:
            raise Error("unsupported", "a shared kqueue cannot be carried "
                        "into a forked child")
        _KQUEUES.creators.pop(self._kq, None)
        self._init_member()         # its lock may be held by a lost thread
        self._kq = _check(lib.s2_kqueue_create(), "kqueue")
        self._wake_ident = self._kq
        self._user = False
        _KQUEUES.creators[self._kq] = self
        # One-shots applied to the parent's kqueue and not fired yet (or
        # fired there and never collected) are the waits of threads still
        # parked: armed again with the next wait, on this kqueue.  An event
        # that fired meanwhile fires again at once (the socket is ready).
        for a in self._armed:
            self._arms[a] = None
        self._armed.clear()

    # Edges as libkqueue emulates them are not exact enough for the hub's
    # "a short read proves the queue empty" shortcut: recv always tries.
    exact_edges = False

    def register(self, fd, slots):
        self._slots[fd] = slots

    def arm(self, fd, write):
        """A thread is about to park on *fd*: watch it once (applied with
        the next wait).  Without its descriptor (closed meanwhile, or a
        wait not given one) nothing would ever wake the thread: that is
        said instead of parking for good."""
        if fd < 0:
            raise Error("closed", "no descriptor to wait on: the socket "
                        "is closed, or the wait was not given its fd")
        self._arms[fd << 1 | write] = None

    def unregister(self, fd, closing=False):
        self._slots.pop(fd, None)
        self._arms.pop(fd << 1, None)
        self._arms.pop(fd << 1 | 1, None)
        armed = self._armed
        pending = (fd << 1) in armed or (fd << 1 | 1) in armed
        if pending:
            armed.discard(fd << 1)
            armed.discard(fd << 1 | 1)
        if pending or not closing:
            # A one-shot that has not fired: delete it while the number is
            # still this socket's (libkqueue keeps it past close()).
            lib.s2_kqueue_del(self._kq, fd)

    def _take_arms(self):
        arms = self._arms
        n = len(arms)
        if n:
            if n > len(self._armv):
                self._armv = ffi.new("int[]", max(n, 2 * len(self._armv)))
            armv = self._armv
            for i, a in enumerate(arms):
                armv[i] = a
            self._armed.update(arms)
            arms.clear()
        return n

    def poll(self, timeout):
        if self._sh is not None:
            return self._poll_shared(timeout)
        return self.poll_alone(self._wait_leader, timeout)

    def _wait_leader(self, timeout):
        n = self._take_arms()
        return self._result(lib.s2_kqueue_wait(
            self._kq, self._armv, n, self._tokens, self._errs, BATCH, timeout))

    def _wait_follower(self, timeout):
        n = self._take_arms()
        if n:
            # Arm on the shared kqueue without taking its events (they are
            # the leader's).  A failed arming wakes its waiters: no sleeping
            # this turn.
            if n > len(self._tokens):
                self._tokens = ffi.new("int[]", n)
                self._errs = ffi.new("int[]", n)
            k = lib.s2_kqueue_arm(self._kq, self._armv, n, self._tokens)
            if k:
                tokens = ffi.unpack(self._tokens, k)
                self._fired(tokens)
                return tokens
        return self._result(lib.s2_kqueue_wait(
            self._pkq, self._armv, 0, self._tokens, self._errs, BATCH,
            timeout))

    def _fired(self, tokens):
        """These one-shots are spent (fired, or their arming failed)."""
        discard = self._armed.discard
        for t in tokens:
            a = t >> 2 & ~1          # fd << 1
            if t & 1:
                discard(a)
            if t & 2:
                discard(a | 1)

    def _result(self, k):
        if k > 0:
            tokens = ffi.unpack(self._tokens, k)
            self._fired(tokens)
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

    def _kick_shared(self):
        lib.s2_kqueue_user_trigger(self._kq, self._wake_ident)

    def _kick_private(self):
        lib.s2_kqueue_user_trigger(self._pkq, self._wake_ident)

    def wakeup_fd(self, slots=None):
        if not self._user:
            r = lib.s2_kqueue_user_add(self._kq, self._wake_ident)
            if r < 0:
                raise os_error(-r, "kevent(EVFILT_USER)")
            self._user = True
        return self._wake_ident

    def wakeup(self):
        if self._sh is not None:
            self._wakeup_shared()
        elif self._user:
            lib.s2_kqueue_user_trigger(self._kq, self._wake_ident)

    def drain_wakeup(self):
        pass                        # EV_CLEAR: nothing to drain

    def release_shared(self):
        """This poller's OS thread ended while its kqueue is shared: leave
        the members, drop its wakeup from the shared kqueue and close its
        private one; the kqueue, its slots and armed one-shots stay for
        the OS threads that still wait on it -- and the last of them to
        go, once its creator went, closes it."""
        sh = self._sh
        if sh is None:
            return          # (released already: an explicit close first)
        self._leave()
        _KQUEUES.forget(self, self._kq, False)
        if self._user and self._kq >= 0:
            lib.s2_kqueue_user_del(self._kq, self._wake_ident)
            self._user = False
        if self._pkq >= 0:
            os.close(self._pkq)
            self._pkq = -1
        self._arms.clear()
        kq, self._kq, self._sh = self._kq, -1, None     # done with it
        if _KQUEUES.leave(sh, self._owned) and kq >= 0:
            os.close(kq)

    def close(self):
        if self._sh is not None:
            # Others may still wait on the kqueue: it is left to them as
            # at a thread's end (the last of them closes it).
            self.release_shared()
            return
        _KQUEUES.forget(self, self._kq, self._owned)
        if self._kq >= 0 and self._owned:
            os.close(self._kq)
        self._kq = -1
        self._arms.clear()
        self._slots.clear()
        self._armed.clear()
