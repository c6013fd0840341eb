"""Cooperative waits for child processes: ``os.waitpid()`` and
``os.wait()`` that let the other socket2 threads run.

``waitpid(pid, 0)`` for one child, where the OS has ``pidfd_open``
(Linux 5.3 and later), waits on a process descriptor in the hub like any
other descriptor, then reaps the child with ``WNOHANG``.  Elsewhere, and
for "any child" (``pid`` <= 0, ``os.wait()``) or stop/continue reports
(``WUNTRACED``/``WCONTINUED``), the blocking call runs in one of socket2's
worker OS threads (``run_in_thread``) while the caller waits
cooperatively: nothing polls.  Such a call cannot be taken back: if the
waiting thread is killed, the worker still reaps the child it was waiting
for.  ``WNOHANG`` calls, and calls made where nothing may wait (the hub's
own greenlets), are the standard ones.

``os.fork()`` needs nothing here: socket2's hubs renew their pollers in
the child (``os.register_at_fork``, see hub.py).
"""
import os as __os__
import sys

from greenlet import getcurrent

from .. import sync as _sync
from ..hub import _existing_hub
from . import select as _gselect

# Only what this OS has (Windows: waitpid on a process handle, no wait).
__implements__ = [n for n in ("waitpid", "wait") if hasattr(__os__, n)]
__all__ = list(__implements__)

_real_waitpid = getattr(__os__, "waitpid", None)
_real_wait = getattr(__os__, "wait", None)
_pidfd_open = getattr(__os__, "pidfd_open", None)
_WNOHANG = getattr(__os__, "WNOHANG", 1)
_REPORTS = getattr(__os__, "WUNTRACED", 0) | getattr(__os__, "WCONTINUED",
                                                       0)


def _cooperative():
    """Whether the caller may wait on a hub (not in a hub's own
    greenlets, not while the interpreter finalizes)."""
    if sys.is_finalizing():
        return False
    hub = _existing_hub()
    g = getcurrent()
    return hub is None or not (g is hub.greenlet or g is hub._waker)


def wait_exit(pid, timeout=None):
    """Wait (cooperatively) until child *pid* has exited, without reaping
    it; return False if *timeout* seconds passed first.  Returns None if
    the OS gives no process descriptor (the caller then waits its own
    way)."""
    if _pidfd_open is None:
        return None
    try:
        fd = _pidfd_open(pid)
    except OSError:
        return None         # reaped already, or no pidfd support
    try:
        ready = _gselect.select([fd], [], [], timeout)[0]
        return bool(ready)
    finally:
        __os__.close(fd)


def waitpid(pid, options):
    """``os.waitpid`` waiting cooperatively (see the module docstring)."""
    if (options & _WNOHANG and __os__.name == "posix") \
            or not _cooperative():
        return _real_waitpid(pid, options)
    if pid > 0 and not options & _REPORTS and _pidfd_open is not None:
        # (pidfd_open exists on Linux only: POSIX waitpid semantics.)
        while True:
            result = _real_waitpid(pid, options | _WNOHANG)
            if result[0] != 0:
                return result
            if wait_exit(pid) is None:
                break
    return _sync.run_in_thread(_real_waitpid, pid, options)


def wait():
    """``os.wait`` waiting cooperatively (in a worker OS thread)."""
    if not _cooperative():
        return _real_wait()
    return _sync.run_in_thread(_real_wait)
