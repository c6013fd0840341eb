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
from ..hub import _existing_hub, _hub_of_an_ending_thread_closed
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
    if hub is None and _hub_of_an_ending_thread_closed():
        return False        # this OS thread is ending, its hub closed
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


def connection_recv(conn, size, read=None):
    """``multiprocessing.connection.Connection._recv`` reading its pipe
    cooperatively: a pool's result-handler thread (a socket2 thread under
    ``patch_all``) reads the workers' pipe, and the standard one's blocking
    ``os.read`` held the whole OS thread, hub and all, until a worker
    answered -- and the task-handler thread that sends the work could not
    run: ``multiprocessing.Pool`` hung.  Waits for readability through the
    cooperative ``select`` before each read."""
    if not _cooperative():
        return _real_connection_recv(conn, size)
    from . import select as _gselect

    def read_when_ready(fd_, n):
        _gselect.select([fd_], [], [])
        return __os__.read(fd_, n)
    return _real_connection_recv(conn, size, read_when_ready)


def connection_send(conn, buf, write=None):
    """``multiprocessing.connection.Connection._send`` writing its pipe
    cooperatively (the pool's task handler fills the workers' pipe while
    its result handler, in the same OS thread, must keep draining theirs):
    each write waits for writability through the cooperative ``select``
    and writes at most ``PIPE_BUF`` bytes, which a writable pipe takes
    without blocking; the standard loop goes on with the rest."""
    if not _cooperative():
        return _real_connection_send(conn, buf)
    from . import select as _gselect
    chunk = getattr(_gselect, "PIPE_BUF", 512)

    def write_when_ready(fd_, data):
        _gselect.select([], [fd_], [])
        return __os__.write(fd_, data[:chunk])
    return _real_connection_send(conn, buf, write_when_ready)


_real_connection_send = None


def _connection_original(name):
    """``multiprocessing.connection.Connection.<name>`` as it is now, or
    None where there is no such thing."""
    try:
        from multiprocessing.connection import Connection
    except ImportError:
        return None
    return getattr(Connection, name, None)


_real_connection_recv = None


def semlock_make_methods(self):
    """``multiprocessing.synchronize.SemLock._make_methods`` with an
    ``acquire`` that waits cooperatively.  A process-shared semaphore has
    no descriptor to wait on, and the standard blocking acquire held the
    OS thread while the pool's handler threads -- socket2 threads in that
    same OS thread -- were the ones to release it: ``Pool.terminate()``
    (``with Pool() as p:``) hung.  A blocked acquire tries again after
    sleeping cooperatively, 0.5 ms at first, doubling up to 50 ms: the
    only polling wait in socket2, for a lock with nothing to poll."""
    _real_semlock_make_methods(self)
    try_acquire = self._semlock.acquire

    def acquire(block=True, timeout=None):
        if not block or not _cooperative():
            return try_acquire(block, timeout)
        if try_acquire(False):
            return True
        from ..hub import clock, sleep
        end = None if timeout is None else clock() + max(0.0, timeout)
        delay = 0.0005
        while True:
            if end is not None:
                left = end - clock()
                if left <= 0:
                    return False
                sleep(min(delay, left))
            else:
                sleep(delay)
            if try_acquire(False):
                return True
            delay = min(delay * 2, 0.05)
    self.acquire = acquire


def semlock_enter(self):
    """``SemLock.__enter__`` through the cooperative ``acquire``."""
    return self.acquire()


def _semlock_originals():
    try:
        from multiprocessing.synchronize import SemLock
    except ImportError:     # no sem_open on this system
        return None
    return SemLock._make_methods


_real_semlock_make_methods = None
