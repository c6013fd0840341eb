"""A cooperative ``threading`` module: the standard library's, whose
threads are socket2 threads and whose locks cooperate.

``threading``'s own code stays the standard library's: ``Condition``,
``Event``, ``Semaphore``, ``BoundedSemaphore``, ``Barrier``, ``join()``,
``enumerate()`` ... are built on ``_allocate_lock``, ``RLock``,
``get_ident`` and ``_start_new_thread``, and ``socket2.monkey`` replaces
those (``__implements__``) with ``socket2.green.thread``'s, so each keeps
the standard library's exact semantics (``acquire(timeout=)`` returning
``False``, ``Condition.wait`` returning with the lock held, ``Event.wait``
returning the flag) and waits cooperatively -- from socket2 threads and
real OS threads alike (``socket2.green.thread`` says how).
``socket2.sync``'s primitives are not used for them: those belong to one
OS thread and raise ``TimeoutError`` where ``threading``'s return
``False``.

:class:`Thread` is a subclass of the standard class whose ``start()``
starts a socket2 thread in the calling OS thread's hub; the standard
class itself (``socket2.monkey.original('threading', 'Thread')``, and
classes derived from it before patching) still starts real OS threads:
``_start_new_thread`` tells the two apart by the thread object.
``current_thread()`` in a socket2 thread that neither ``threading`` nor
``_thread`` started (``socket2.newthread``, a server's connection thread)
gives a dummy ``Thread`` that is dropped when that socket2 thread goes
away (the standard one would stay in ``threading._active`` forever).

Supported on Python 3.10 to 3.12 (3.13 reworked how ``threading`` starts
and joins threads).
"""
import sys
import threading as __threading__
from threading import *  # noqa: F401,F403

from greenlet import getcurrent, GreenletExit

from . import thread as _gthread
from ..hub import at_greenlet_end as _at_greenlet_end, thread_of as _thread_of

__implements__ = ["Thread", "Timer", "Lock", "RLock", "_CRLock",
                  "_allocate_lock", "get_ident", "get_native_id",
                  "_start_new_thread", "_set_sentinel", "local",
                  "current_thread", "currentThread"]

__all__ = list(__threading__.__all__)

SUPPORTED = (3, 10) <= sys.version_info[:2] < (3, 13)

_StdThread = __threading__.Thread
_real_start_new_thread = _gthread._real_start_new_thread

Lock = _allocate_lock = _gthread.allocate_lock
RLock = _CRLock = _gthread.RLock
get_ident = _gthread.get_ident
if hasattr(_gthread, "get_native_id"):
    get_native_id = _gthread.get_native_id
else:
    __implements__.remove("get_native_id")
_set_sentinel = _gthread._set_sentinel
local = _gthread._local


class Thread(_StdThread):
    """``threading.Thread`` whose ``start()`` starts a socket2 thread in
    the calling OS thread's hub (see ``socket2.green.thread`` for the
    cases where that is a real OS thread).  Everything else is the
    standard class's: ``join()``, ``is_alive()``, ``daemon``, ``name``,
    ``ident``, ``native_id``..."""

    #: the standard class, which starts real OS threads (socket2's own
    #: worker pool uses it).
    _s2_os_thread_class = _StdThread

    def __init__(self, *args, **kwargs):
        _StdThread.__init__(self, *args, **kwargs)
        report = self._invoke_excepthook

        def invoke_excepthook(thread):
            # GreenletExit: the greenlet was torn down (its hub went away
            # at the interpreter's exit): not an error of the thread's.
            if not isinstance(sys.exc_info()[1], GreenletExit):
                report(thread)

        self._invoke_excepthook = invoke_excepthook


def _start_new_thread(function, args, kwargs=None):
    """threading's hook: a cooperative :class:`Thread` starts a socket2
    thread, a standard one a real OS thread."""
    if isinstance(getattr(function, "__self__", None), Thread):
        return _gthread.start_new_thread(function, args, kwargs)
    return _real_start_new_thread(function, args, kwargs or {})


class Timer(Thread):
    """``threading.Timer`` as a socket2 thread: calls ``function(*args,
    **kwargs)`` after *interval* seconds unless ``cancel()`` came first."""

    def __init__(self, interval, function, args=None, kwargs=None):
        Thread.__init__(self)
        self.interval = interval
        self.function = function
        self.args = args if args is not None else []
        self.kwargs = kwargs if kwargs is not None else {}
        self.finished = Event()

    def cancel(self):
        """Stop the timer if it has not fired yet."""
        self.finished.set()

    def run(self):
        self.finished.wait(self.interval)
        if not self.finished.is_set():
            self.function(*self.args, **self.kwargs)
        self.finished.set()


def current_thread():
    """The running thread's ``Thread`` object (a dummy one for a socket2
    thread that ``threading`` did not start, dropped with it)."""
    try:
        return __threading__._active[get_ident()]
    except KeyError:
        return _dummy()


def currentThread():
    """Deprecated alias of :func:`current_thread` (warns, as the standard
    one does)."""
    import warnings
    warnings.warn("currentThread() is deprecated, use current_thread() "
                  "instead", DeprecationWarning, stacklevel=2)
    return current_thread()


def _dummy():
    dummy = __threading__._DummyThread()
    g = getcurrent()
    ident = dummy.ident
    # A thread _thread.start_new_thread started keeps its dummy, as the
    # standard library's does; socket2's own threads (a server's, one per
    # connection) would pile them up forever.
    if ident == id(g) and g not in _gthread._sentinels:
        def drop(ident=ident, dummy=dummy):
            if __threading__._active.get(ident) is dummy:
                __threading__._active.pop(ident, None)
        _at_greenlet_end(g, drop)
    return dummy


# ---------------------------------------------------------------------------
# os.fork()
#
# In the child of a fork only the forking OS thread exists, and threading's
# own after-fork hook marks every other Thread stopped.  With threading
# patched, socket2 threads are threads: in the child only the forking one
# lives on, whether it is the main program or another socket2 thread
# (Hub.keep_only).  The others -- a pool's task and result handlers, a
# ticker, a server's connections -- would otherwise go on in the child and
# do the parent's work there a second time (a multiprocessing.Pool forks
# its workers, and later their replacements, from such threads).  In a
# child forked by a socket2 thread, signals and the deadlock error reach
# that thread, and the child exits when the last of its threads ends.


def _after_fork_in_child():
    hub = _gthread._existing_hub()
    me = getcurrent()
    if hub is not None and (me.parent is None or _thread_of(me) is not None):
        hub.keep_only(me)
    for g in [g for g in _gthread._sentinels if g is not me]:
        del _gthread._sentinels[g]   # their threads are not here


_fork_hooks = []     # registered once: os.register_at_fork cannot undo


def install_fork_hooks():
    """Called by ``socket2.monkey`` when it patches threading."""
    import os
    if not _fork_hooks and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _fork_hooks.append(True)
