"""Thread identity and locks for socket2 threads and OS threads alike:
the core of ``socket2.green.thread`` (and so of the patched ``threading``).

How a lock works from greenlets and from OS threads alike
---------------------------------------------------------

This is where monkey-patching libraries break: a lock made after patching
is shared by socket2 threads *and* by real OS threads (a ``run_in_thread``
worker, a thread a C extension starts, the interpreter's shutdown code,
``logging``'s and ``concurrent.futures``' internals), and a wait must
block only what is waiting: a greenlet must let its hub run, an OS thread
with no hub to run must block in the kernel, and a release in one OS
thread must wake a waiter in another.

So a lock (:class:`_Sem`, a counting semaphore; :class:`LockType` is one
of value 1) keeps its count and a FIFO of waiters under a real
``_thread`` lock, the *mutex*, held only for a few bytecodes and never
across a switch (reentrant: a finalizer or signal handler that runs in
the middle may use the same lock).  A waiter is one of two kinds, chosen
by where the wait happens:

- in a socket2 thread, or a root greenlet whose OS thread has a hub: a
  *greenlet waiter* parks in its hub (``hub.suspend``), counted as an
  external wait so that the hub never declares a deadlock while another
  OS thread may still release the lock;
- in the hub's own greenlets (a callback, a signal handler run there),
  in an OS thread without a hub, and while the interpreter finalizes: an
  *OS waiter* blocks its OS thread on a private real lock.

``release()`` gives the permit back under the mutex and passes it on,
then wakes the waiter outside the mutex:

- to a waiter that runs as soon as it is woken -- an OS waiter (its
  kernel wait returns) or a greenlet of the releasing OS thread (it runs
  at this hub's next turn) -- the permit is *handed over*: nobody barges
  past the queue;
- a greenlet of another OS thread is only *notified*, through its hub's
  ``call_threadsafe`` (only a hub's own OS thread may resume its
  greenlets; the hub module says why).  That hub may be busy, or blocked,
  for a long time, and a permit reserved for it would stall every other
  thread meanwhile: a lock handed to a greenlet whose OS thread is
  blocked joining the releasing thread would never come back.  It takes
  the permit when it runs if one is still free, else queues again at
  the head.

A waiter whose wait ends otherwise (its timeout, a kill) settles under
the mutex: if a permit was handed to it meanwhile, it owns it (a timeout
then returns ``True``; a kill passes it on and raises); if not, it leaves
the queue (a timeout returns ``False``) and a notification it had goes to
the next waiter.  A wake-up that arrives after the waiter settled finds
it ``done`` and does nothing.  So an acquire either got the lock or did
not, whichever thread released it, and no release is lost.

Locks made before patching stay the standard library's: ``logging``'s
module lock when ``logging`` was imported first, say.  They still work
(they block the OS thread while held elsewhere, which for such short
critical sections is harmless) but do not cooperate; ``patch_all`` warns
about modules that copied the old names.

Compiled, the waiter record and the uncontended acquire and release of
:class:`LockType` and :class:`RLock` are C (``socket2/ffi/green_speedups.c``:
the same steps, the mutex taken as here); this module is their reference
and the pure-Python twin, and every wait and wake-up stays here.
"""
import itertools
import sys
import _thread as __thread__
from collections import deque

from greenlet import getcurrent

from .. import _hotpath
from ..errors import TimeoutError as _S2Timeout
from ..hub import _existing_hub, clock

_real_get_ident = __thread__.get_ident
_real_get_native_id = getattr(__thread__, "get_native_id", None)
_real_allocate_lock = __thread__.allocate_lock
_real_RLock = __thread__.RLock
_finalizing = sys.is_finalizing


# ---------------------------------------------------------------------------
# Idents


# A greenlet -> the ident it acts under while it runs a signal handler:
# the main thread's (green/signal.py), as the standard library runs
# handlers in the main thread (its RLocks are the handler's too).
_AS_MAIN = {}


class _OSThread:
    """Stands for the running greenlet where greenlet refuses to say (the
    interpreter finalizes): the OS thread itself (a root greenlet)."""
    parent = None


_AS_OS_THREAD = _OSThread()


def _is_hub_greenlet(g):
    """Whether *g* is the root greenlet of its OS thread or one of its
    hub's own greenlets: those act for the OS thread itself."""
    if g.parent is None:
        return True
    hub = _existing_hub()
    return hub is not None and (g is hub.greenlet or g is hub._waker)


def get_ident():
    """The running thread's ident: ``id()`` of the socket2 thread (a
    greenlet), or the OS thread's own ident outside socket2 threads."""
    try:
        g = getcurrent()
    except RuntimeError:        # the interpreter finalizes: greenlet
        return _real_get_ident()    # refuses, only the OS thread is left
    if "_s2_thread" in g.__dict__:      # a socket2 thread's (hub.Thread)
        return _AS_MAIN.get(g, id(g)) if _AS_MAIN else id(g)
    if g.parent is None or _is_hub_greenlet(g):
        return _real_get_ident()
    return id(g)


_native_ids = itertools.count(1 << 32)   # above any kernel thread id


def get_native_id():
    """Like :func:`get_ident`, distinct per socket2 thread (a number of
    its own, never reused while the process runs, above any kernel
    thread id); the kernel's thread id outside socket2 threads."""
    try:
        g = getcurrent()
    except RuntimeError:        # the interpreter finalizes: greenlet
        return _real_get_native_id()    # refuses, only the OS thread is left
    if _is_hub_greenlet(g) or g in _AS_MAIN:
        return _real_get_native_id()
    try:
        return g._s2_native_id
    except AttributeError:
        g._s2_native_id = n = next(_native_ids)
        return n


if _real_get_native_id is None:     # platforms without native ids
    del get_native_id


# ---------------------------------------------------------------------------
# Locks (see the module docstring)


class _Waiter:
    __slots__ = ("g", "hub", "os_lock", "given", "notified", "done")

    def __init__(self, g, hub, os_lock):
        self.g = g
        self.hub = hub
        self.os_lock = os_lock
        self.given = False      # handed a permit (under the mutex)
        self.notified = False   # told to try again (under the mutex)
        self.done = False       # set by the waiter once it stops waiting


_speedups = None
if _hotpath.COMPILED:
    try:    # socket2/ffi/green_speedups.c: the waiter, the locks' fast paths
        from .. import _green_speedups as _speedups
    except ImportError:     # a source tree whose extension is not built
        pass
    else:
        _Waiter = _speedups.Waiter      # noqa: F811 - the same record in C


def _make_waiter():
    """A waiter for the calling context (module docstring)."""
    if _finalizing():       # greenlet refuses (getcurrent() raises):
        hub = None          # only the OS thread is left, and it blocks
        g = _AS_OS_THREAD
    else:
        g = getcurrent()
        hub = _existing_hub()
    if hub is None or hub._closed or g is hub.greenlet or g is hub._waker:
        lock = _real_allocate_lock()
        lock.acquire()
        return _Waiter(g, None, lock)
    return _Waiter(g, hub, None)


def _deliver(w):
    """In *w*'s own OS thread: resume it unless it stopped waiting."""
    if not w.done:
        w.hub.schedule(w.g)


def _wake(w):
    """Resume *w* (given a permit, or notified), outside the mutex.
    Returns False when *w* will never run again: its OS thread ended and
    its hub is closed (a waiter left in the list by a thread that
    returned while one of its greenlets waited).  The caller passes on
    what *w* was given or told (_Sem._wake_all, queue's _notify)."""
    if w.os_lock is not None:
        w.os_lock.release()
        return True
    hub = w.hub
    if hub.thread_ident == _real_get_ident():
        if not w.done:              # _deliver, inline
            hub.schedule(w.g)
        return True
    if hub.call_threadsafe(_deliver, w):
        return True
    w.done = True
    return False


def _timeout_arg(blocking, timeout):
    """The standard library's checks of ``acquire()``'s arguments, by the
    standard library itself: a fresh lock of ``_thread`` is acquired with
    them (free, so it returns at once when they are valid; its errors,
    types and messages are this Python's).  Returns the timeout in
    seconds, or -1 for none."""
    _real_allocate_lock().acquire(blocking, timeout)
    return timeout


class _SemBase:
    """_Sem's fields (in C with the compiled path: green_speedups.c's
    SemBase, which also has LockType's uncontended acquire and release)."""

    __slots__ = ("_mutex", "_value", "_waiters", "__weakref__")


class _RLockBase:
    """RLock's fields (in C with the compiled path: green_speedups.c's
    RLockBase, which also has its uncontended acquire and release)."""

    __slots__ = ("_block", "_mutex", "_owner", "_count", "__weakref__")


if _speedups is not None:
    _SemBase = _speedups.SemBase        # noqa: F811
    _RLockBase = _speedups.RLockBase    # noqa: F811


class _Sem(_SemBase):
    """A counting semaphore for greenlets and OS threads alike (hand-over
    and notification as the module docstring says); the base of
    :class:`LockType` and of the cooperative ``queue.SimpleQueue``."""

    __slots__ = ()

    # The mutex is reentrant: a finalizer or a signal handler may run in
    # the middle of an acquire and release (the standard SimpleQueue's put
    # is reentrant, and concurrent.futures relies on it); the count is
    # looked at again after the only allocations made under it.

    def __init__(self, value=0):
        self._mutex = _real_RLock()
        self._value = value
        self._waiters = deque()

    def _acquire(self, blocking, timeout):
        mutex = self._mutex
        mutex.acquire()
        if self._value:
            self._value -= 1
            mutex.release()
            return True
        if not blocking:
            mutex.release()
            return False
        try:
            w = _make_waiter()
            if self._value:         # released by a finalizer meanwhile
                self._value -= 1
                return True
            self._waiters.append(w)
        finally:
            mutex.release()
        if w.os_lock is not None:
            return self._wait_os(w, timeout)
        return self._wait_green(w, timeout)

    def _dispatch(self):
        """Under the mutex: pass the free permits on to waiters (see the
        class docstring); return the waiters to wake."""
        woken = []
        free = self._value
        waiters = self._waiters
        me = _real_get_ident()
        while free and waiters:
            w = waiters.popleft()
            if w.os_lock is not None or w.hub.thread_ident == me:
                self._value -= 1
                w.given = True
            else:
                w.notified = True
            free -= 1
            woken.append(w)
        return woken

    def _retry(self, w):
        """*w* was notified and runs: take a free permit, or queue again
        at the head.  Returns whether it has one."""
        with self._mutex:
            if w.given:
                return True
            w.notified = False
            if self._value:
                self._value -= 1
                return True
            self._waiters.appendleft(w)
            return False

    def _settle(self, w):
        """*w* stops waiting: whether it holds a permit (else it left the
        queue; a notification it had goes to the next waiter)."""
        with self._mutex:
            if w.given:
                return True
            if w.notified:
                w.notified = False
                woken = self._dispatch()
            else:
                self._waiters.remove(w)
                woken = ()
        self._wake_all(woken)
        return False

    def _wake_all(self, woken):
        """Wake *woken* (outside the mutex); what a waiter that will never
        run again was given or told (see _wake) goes to the next ones."""
        while woken:
            dead = [w for w in woken if not _wake(w)]
            if not dead:
                return
            with self._mutex:
                for w in dead:
                    if w.given:
                        w.given = False
                        self._value += 1
                    w.notified = False
                woken = self._dispatch() if self._waiters else ()

    def _wait_green(self, w, timeout):
        hub = w.hub
        deadline = None if timeout < 0 else clock() + timeout
        # hub.begin_external(), inline: another OS thread may release it.
        if hub._waker.dead:
            hub._restart_waker()
        hub._external += 1
        try:
            while True:
                if deadline is None:
                    hub._switch_to_hub()    # hub.suspend(), inline
                else:
                    hub.suspend(deadline)
                if w.given or (w.notified and self._retry(w)):
                    return True
        except BaseException as e:
            owned = self._settle(w)
            if isinstance(e, _S2Timeout) and deadline is not None \
                    and clock() >= deadline:
                return owned        # our own timeout: no exception
            if owned:
                self._release()     # handed over, then interrupted
            raise
        finally:
            w.done = True
            hub._external -= 1      # hub.end_external(), inline

    def _wait_os(self, w, timeout):
        try:
            if w.os_lock.acquire(True, timeout):
                return True
        except BaseException:
            if self._settle(w):
                self._release()
            raise
        return self._settle(w)

    def _release(self, bound=None):
        """Give a permit back (to a waiter, if any: class docstring).
        *bound*: the value that may not be reached (``RuntimeError`` for a
        lock released while unlocked)."""
        mutex = self._mutex
        mutex.acquire()
        if bound is not None and self._value >= bound:
            mutex.release()
            raise RuntimeError("release unlocked lock")
        self._value += 1
        if self._waiters:
            woken = self._dispatch()
            mutex.release()
            self._wake_all(woken)
            return
        mutex.release()

    def _exit_one(self, t=None, v=None, tb=None):
        """``__exit__`` of a lock: ``release()`` inline."""
        mutex = self._mutex
        mutex.acquire()
        if self._value or self._waiters:
            mutex.release()
            self._release(1)
            return
        self._value = 1
        mutex.release()

    def _reinit(self, value):
        self._mutex = _real_RLock()
        self._value = value
        self._waiters = deque()


class LockType(_Sem):
    """``_thread.lock`` for socket2 threads and OS threads alike (module
    docstring): ``acquire(blocking=True, timeout=-1)`` returns ``False``
    when it gives up, ``release()`` may be called by any thread and raises
    ``RuntimeError`` on an unlocked lock."""

    __slots__ = ()

    def __init__(self):
        _Sem.__init__(self, 1)

    # The uncontended paths are inlined (one mutex round trip each); the
    # rest is _Sem's.

    def acquire(self, blocking=True, timeout=-1):
        """Take the lock; see the class docstring."""
        if timeout != -1 or blocking is not True:
            timeout = _timeout_arg(blocking, timeout)
        mutex = self._mutex
        mutex.acquire()
        if self._value:
            self._value = 0
            mutex.release()
            return True
        mutex.release()
        return self._acquire(blocking, timeout)

    acquire_lock = acquire

    def __enter__(self):
        mutex = self._mutex
        mutex.acquire()
        if self._value:
            self._value = 0
            mutex.release()
            return True
        mutex.release()
        return self._acquire(True, -1)

    def release(self):
        """Unlock; the first waiter, in whatever thread, gets the lock."""
        mutex = self._mutex
        mutex.acquire()
        if self._value or self._waiters:
            mutex.release()
            self._release(1)        # raises, or wakes a waiter
            return
        self._value = 1
        mutex.release()

    release_lock = release
    __exit__ = _Sem._exit_one

    def locked(self):
        """Whether the lock is held."""
        return self._value == 0

    locked_lock = locked
    # threading.Condition asks this of its lock (else it tries a
    # non-blocking acquire and a release): held, by anyone.
    _is_owned = locked

    def _at_fork_reinit(self):
        self._reinit(1)

    def __repr__(self):
        return "<%s %s.lock object at %#x>" % (
            "locked" if self._value == 0 else "unlocked", __name__, id(self))


class RLock(_RLockBase):
    """A reentrant lock owned by a socket2 thread (or OS thread): the
    standard library's semantics (recursion, owner checks, ``False`` from
    an ``acquire`` that gives up) over :class:`LockType`."""

    __slots__ = ()

    def __init__(self):
        self._block = LockType()
        self._mutex = self._block._mutex     # its mutex, for the fast paths
        self._owner = None
        self._count = 0

    def acquire(self, blocking=True, timeout=-1):
        """Take the lock, or count one more level if the caller holds it."""
        if timeout != -1 or blocking is not True:
            _timeout_arg(blocking, timeout)     # (raises as the standard's)
        me = get_ident()
        if self._owner == me:
            self._count += 1
            return True
        if self._block.acquire(blocking, timeout):
            self._owner = me
            self._count = 1
            return True
        return False

    # The uncontended paths inline LockType's.

    def __enter__(self):
        try:
            g = getcurrent()
        except RuntimeError:            # the interpreter finalizes
            g = _AS_OS_THREAD
        # get_ident(), inline for the
        if "_s2_thread" in g.__dict__:  # two common cases
            me = _AS_MAIN.get(g, id(g)) if _AS_MAIN else id(g)
        elif g.parent is None:
            me = _real_get_ident()
        else:
            me = get_ident()
        if self._owner == me:
            self._count += 1
            return True
        block = self._block
        mutex = self._mutex
        mutex.acquire()
        if block._value:
            block._value = 0
            mutex.release()
        else:
            mutex.release()
            block._acquire(True, -1)
        self._owner = me
        self._count = 1
        return True

    def __exit__(self, t=None, v=None, tb=None):
        try:
            g = getcurrent()
        except RuntimeError:            # the interpreter finalizes
            g = _AS_OS_THREAD
        # get_ident(), as in __enter__
        if "_s2_thread" in g.__dict__:
            me = _AS_MAIN.get(g, id(g)) if _AS_MAIN else id(g)
        elif g.parent is None:
            me = _real_get_ident()
        else:
            me = get_ident()
        if self._owner != me:
            raise RuntimeError("cannot release un-acquired lock")
        self._count -= 1
        if not self._count:
            self._owner = None
            block = self._block
            mutex = self._mutex
            mutex.acquire()
            if block._waiters:
                mutex.release()
                block._release(1)
                return
            block._value = 1
            mutex.release()

    def release(self):
        """Drop one level; the last one unlocks."""
        self.__exit__()

    # Condition's interface.
    def _is_owned(self):
        try:
            g = getcurrent()
        except RuntimeError:            # the interpreter finalizes
            g = _AS_OS_THREAD
        # get_ident(), as in __enter__
        if "_s2_thread" in g.__dict__:
            return self._owner == (_AS_MAIN.get(g, id(g)) if _AS_MAIN
                                   else id(g))
        if g.parent is None:
            return self._owner == _real_get_ident()
        return self._owner == get_ident()

    def _release_save(self):
        if not self._count:
            raise RuntimeError("cannot release un-acquired lock")
        state = (self._count, self._owner)
        self._count = 0
        self._owner = None
        self._block.release()
        return state

    def _acquire_restore(self, state):
        self._block.acquire()
        self._count, self._owner = state

    def _recursion_count(self):
        return self._count if self._owner == get_ident() else 0

    def _at_fork_reinit(self):
        self._block._at_fork_reinit()
        self._mutex = self._block._mutex
        self._owner = None
        self._count = 0

    def __repr__(self):
        return "<%s %s.RLock object owner=%r count=%d at %#x>" % (
            "locked" if self._block.locked() else "unlocked", __name__,
            self._owner, self._count, id(self))


# What the compiled paths need, and the methods they replace (the Python
# ones stay as _py_acquire: the compiled acquire hands them every call
# with a timeout or keywords).
_MISS = object()     # what a queue's attempt returns when it could not
_DONE = object()     # ... and when it did the whole operation itself
LockType._py_acquire = LockType.acquire
RLock._py_acquire = RLock.acquire
if _speedups is not None:
    from ..hub import _local as _hub_local
    _speedups.configure(_hub_local, _wake, get_ident, _MISS, _DONE,
                        _AS_MAIN)
    LockType.acquire = LockType.acquire_lock = _SemBase._c_lock_acquire
    LockType.release = LockType.release_lock = _SemBase._c_lock_release
    LockType.__enter__ = _SemBase._c_lock_enter
    LockType.__exit__ = _SemBase._c_lock_exit
    RLock.acquire = _RLockBase._c_acquire
    RLock.release = _RLockBase._c_release
    RLock.__enter__ = _RLockBase._c_enter
    RLock.__exit__ = _RLockBase._c_exit
    RLock._is_owned = _RLockBase._c_is_owned
