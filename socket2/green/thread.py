"""A cooperative ``_thread`` module: locks, thread idents, thread-local
data and ``start_new_thread`` for socket2 threads.

``socket2.monkey.patch_all(thread=True)`` puts the names of
``__implements__`` into the standard ``_thread`` module (and, through
``socket2.green.threading``, into ``threading``); the rest of the
standard module is re-exported unchanged.

Who is a thread
---------------

A *socket2 thread* is any greenlet of a hub other than the hub's own (its
loop and its waker).  ``get_ident()`` is ``id()`` of the running greenlet
for those; the root greenlet of an OS thread, and the hub's greenlets
(which run callbacks and signal handlers on behalf of the OS thread), have
the OS thread's own ident.  So the main program keeps the ident that
``threading`` gave the main thread at import, and a real OS thread keeps
its own.  ``start_new_thread`` starts a socket2 thread in the calling OS
thread's hub; from an OS thread that has no hub and is not the main
thread (a ``run_in_thread`` worker, a thread a C library made), which
would never run the new thread's hub, it starts a real OS thread.

How its locks work from greenlets and from OS threads alike is the
subject of ``socket2.green._locks``; ``threading.local`` per socket2
thread is ``socket2.green._local``.
"""
import functools
import sys
import _thread as __thread__
from _thread import *  # noqa: F401,F403

from greenlet import getcurrent

from .. import _offload
from ..hub import Thread as _S2Thread, _existing_hub, _main_ident
from ..hub import at_os_thread_end as _at_os_thread_end
from ..hub import get_hub as _get_hub, start_thread as _start_thread
from ..hub import clock as _clock, sleep as _sleep
from ._locks import (LockType, RLock, get_ident,  # noqa: F401 - exported
                     _is_hub_greenlet, _real_get_ident)
from ._local import _local  # noqa: F401 - exported
from . import _locks

__implements__ = ["allocate_lock", "allocate", "LockType", "RLock",
                  "get_ident", "get_native_id", "start_new_thread",
                  "start_new", "_local", "_set_sentinel", "_count"]

__all__ = [n for n in dir(__thread__) if not n.startswith("__")]

if hasattr(_locks, "get_native_id"):
    get_native_id = _locks.get_native_id
else:                               # platforms without native ids
    __implements__.remove("get_native_id")

_real_start_new_thread = __thread__.start_new_thread
_real_count = getattr(__thread__, "_count", lambda: 0)
_real_set_sentinel = getattr(__thread__, "_set_sentinel", None)
_finalizing = sys.is_finalizing


# The class itself, not a function: code keeps the standard lock factory as
# a class attribute (``lock_type = threading.Lock``) and calls it through
# an instance, which would bind a function as a method.
allocate_lock = allocate = LockType


# ---------------------------------------------------------------------------
# Starting threads

# A running green thread -> the sentinel locks to release when it ends
# (threading's Thread.join waits on them).
_sentinels = {}


def _bootstrap(function, args, kwargs):
    g = getcurrent()
    _sentinels[g] = []
    try:
        function(*args, **kwargs)
    except SystemExit:
        pass                # as the standard library: ends the thread
    except Exception as e:  # noqa: B902 - reported as _thread does
        _unraisable(e, function)
    finally:
        # The thread no longer counts as running (_count, and threading's
        # dummy of a thread that is not one, see green/threading._dummy);
        # what belongs to it (its threading.local values, whose finalizers
        # may still wait) goes next, then its joiners resume: the
        # interpreter clears a thread's state before it releases join()'s
        # lock.  (Without this the locals would go only as the greenlet
        # ends, after the sentinels: hub.at_greenlet_end.)
        locks = _sentinels.pop(g, ())
        _end_thread_hooks(g)
        for lock in locks:
            _release_sentinel(lock)


def _end_thread_hooks(g):
    gd = g.__dict__
    gd.pop("_s2_locals", None)      # (a local used from here on: see _local)
    hooks = gd.pop("_s2_at_end", None)
    while hooks:
        hooks.pop(0)    # (its _AtEnd runs the callback as it goes)


class _UnraisableArgs:
    """What ``sys.unraisablehook`` is given (the C type cannot be made
    from Python)."""

    __slots__ = ("exc_type", "exc_value", "exc_traceback", "err_msg",
                 "object")

    def __init__(self, e, err_msg, obj):
        self.exc_type = type(e)
        self.exc_value = e
        self.exc_traceback = e.__traceback__
        self.err_msg = err_msg
        self.object = obj


def _unraisable(e, function):
    """Report *e* as the standard ``_thread`` does: to
    ``sys.unraisablehook``, "Exception ignored in thread started by"."""
    msg = "Exception ignored in thread started by"
    hook = sys.unraisablehook
    if hook is not sys.__unraisablehook__:
        try:
            hook(_UnraisableArgs(e, msg, function))
            return
        except Exception:   # noqa: B902 - a broken hook: print it plainly
            pass
    import traceback    # only when there is something to print
    sys.stderr.write("%s: %r\n" % (msg, function))
    traceback.print_exception(type(e), e, e.__traceback__)


def _count():
    """How many threads started by :func:`start_new_thread` (socket2
    threads and OS threads) are still running."""
    return _real_count() + len(_sentinels)


class _Sentinel(LockType):
    """threading's ``_tstate_lock`` of a thread: held while the thread
    runs; released when it ends.  A release never hands it to a waiting
    joiner, as other locks do: it tells every waiter to try again (a
    joiner releases it, then threading's ``_stop()`` checks that it is
    unlocked; handed to the next joiner, it was not, and with several
    joiners all but one failed with AssertionError or RuntimeError).

    An OS thread's also holds the interpreter's own sentinel (``_real``),
    released once the thread's state is wholly cleared, after socket2's
    part of the thread's end (hub.at_os_thread_end) released this one: an
    acquire also waits, cooperatively, for the interpreter's, so the
    finalizers of the thread's other thread-local values (a real
    ``_thread._local``) run before join() returns, as unpatched."""

    __slots__ = ("_real", "_taken")

    def __init__(self):
        LockType.__init__(self)
        self._real = None
        self._taken = False     # by the thread itself, as it starts

    def acquire(self, blocking=True, timeout=-1):
        if not LockType.acquire(self, blocking, timeout):
            return False
        real = self._real
        if not self._taken:     # (the thread's own: it holds the real one)
            self._taken = True
            return True
        if real is None or self._wait_real(real, blocking, timeout):
            return True
        LockType.release(self)      # (the interpreter's end is not done)
        return False

    acquire_lock = acquire

    def __enter__(self):
        return self.acquire()

    def __exit__(self, t=None, v=None, tb=None):
        self.release()

    def locked(self):
        # Not the interpreter's: a join() interrupted in its wait releases
        # this one, and threading's _stop() then checks it is unlocked
        # (bpo-45274; the thread is still running, holding the other).
        return LockType.locked(self)

    locked_lock = _is_owned = locked

    def _at_fork_reinit(self):
        LockType._at_fork_reinit(self)
        self._taken = False     # (threading takes it again, in the child)

    def _wait_real(self, real, blocking, timeout):
        """The interpreter's sentinel: polled (it is released while the
        ending thread still holds the GIL, so a joiner that gets to run
        almost always finds it released at the first look)."""
        deadline = None if timeout < 0 else _clock() + timeout
        while not real.acquire(False):
            if not blocking or (deadline is not None
                                and _clock() >= deadline):
                return False
            _sleep(0.0005)
        real.release()
        self._real = None
        return True

    def _dispatch(self):
        """Under the mutex: every waiter is told to try again; none is
        given the lock (see the class docstring)."""
        woken = list(self._waiters)
        self._waiters.clear()
        for w in woken:
            w.notified = True
        return woken

    def _wait_os(self, w, timeout):
        """An OS thread's wait: woken, it tries again (_dispatch)."""
        deadline = None if timeout < 0 else _clock() + timeout
        while True:
            left = -1 if deadline is None else max(0.0, deadline - _clock())
            try:
                woke = w.os_lock.acquire(True, left)
            except BaseException:
                if self._settle(w):
                    self._release()
                raise
            if not woke:
                return self._settle(w)
            if w.given or (w.notified and self._retry(w)):
                return True


def _release_sentinel(lock):
    # As the C sentinel: released if still locked (an interrupted join()
    # may have released it already, see threading's
    # _wait_for_tstate_lock).
    try:
        lock.release()
    except RuntimeError:
        pass


def _starts_green():
    """Whether a new thread started here is a socket2 thread (module
    docstring): not in a ``run_in_thread`` worker, nor in an OS thread
    without a hub other than the main one, nor while finalizing."""
    if _finalizing() or _offload.is_worker():
        return False
    hub = _existing_hub()
    if hub is not None:
        return not hub._closed
    return _real_get_ident() == _main_ident()


def start_new_thread(function, args, kwargs=None):
    """Start ``function(*args, **kwargs)`` in a new socket2 thread of the
    calling OS thread's hub (it runs at once, until it first waits) and
    return its ident; see the module docstring for when it is a real OS
    thread instead."""
    if not callable(function):
        raise TypeError("first arg must be callable")
    if not isinstance(args, tuple):
        raise TypeError("2nd arg must be a tuple")
    if kwargs is None:
        kwargs = {}
    elif not isinstance(kwargs, dict):
        raise TypeError("optional 3rd arg must be a dictionary")
    if _finalizing():
        # As Python 3.12's own: a thread started now could never run (the
        # interpreter lets no new thread take the GIL; 3.11 then waits for
        # it forever in Thread.start()).
        raise RuntimeError("can't create new thread at interpreter shutdown")
    if not _starts_green():
        return _real_start_new_thread(function, args, kwargs)
    hub = _get_hub()
    owner = getattr(function, "__self__", None)
    name = getattr(owner, "name", None) or getattr(function, "__name__",
                                                    "thread")
    t = _S2Thread(hub, _bootstrap, (function, args, kwargs), {},
                  name=name if isinstance(name, str) else None)
    ident = id(t._g)
    _start_thread(hub, t)
    return ident


start_new = start_new_thread


def _set_sentinel():
    """A cooperative lock released when the calling thread ends: a
    socket2 thread's when its function returns, an OS thread's when the
    interpreter drops its state (the standard sentinel, a C lock, would
    make a socket2 thread that joins an OS thread block its whole hub)."""
    g = getcurrent()
    registered = _sentinels.get(g)
    if registered is None and not _is_hub_greenlet(g):
        return _real_set_sentinel()     # a greenlet of no hub's
    lock = _Sentinel()
    if registered is not None:
        registered.append(lock)
    else:
        # An OS thread's: released after its locals' finalizers have run
        # (as the standard sentinel is, by the thread state's clearing).
        _at_os_thread_end(functools.partial(_release_at_end, lock),
                          last=True)
        if _real_set_sentinel is not None:
            real = _real_set_sentinel()     # (see _Sentinel)
            real.acquire()
            lock._real = real
    return lock


def _release_at_end(lock):
    try:
        _release_sentinel(lock)
    except Exception:   # noqa: B902 - the process is ending
        pass


__all__ += [n for n in __implements__ if n not in __all__]
