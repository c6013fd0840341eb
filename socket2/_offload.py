"""Blocking C calls run in a small pool of OS threads while the calling
greenlet waits cooperatively (used for getaddrinfo() on host names).

The worker appends the result to the hub's completion queue and pokes the
hub's wakeup fd; the hub's waker greenlet (see Hub._waker) schedules the
waiting greenlet.  A waiter that is killed or times out marks its job
cancelled, so a late result never resumes it.
"""
import threading
from queue import SimpleQueue

from greenlet import getcurrent

MAX_WORKERS = 8

_jobs = SimpleQueue()
_lock = threading.Lock()
_workers = 0
_idle = 0


class _Job:
    __slots__ = ("hub", "g", "fn", "args", "cancelled")

    def __init__(self, hub, g, fn, args):
        self.hub = hub
        self.g = g
        self.fn = fn
        self.args = args
        self.cancelled = False


def _worker():
    global _idle
    while True:
        with _lock:
            _idle += 1
        job = _jobs.get()
        with _lock:
            _idle -= 1
        try:
            result, exc = job.fn(*job.args), None
        except BaseException as e:   # noqa: B902 - handed to the waiter
            result, exc = None, e
        job.fn = job.args = None
        job.hub.complete_external(job, result, exc)


def _start_worker():
    global _workers
    with _lock:
        if _idle or _workers >= MAX_WORKERS:
            return
        _workers += 1
    threading.Thread(target=_worker, name="socket2-offload",
                     daemon=True).start()


def run(hub, fn, *args):
    """Run ``fn(*args)`` in a worker OS thread; wait cooperatively for its
    result (or exception).  From the hub greenlet, just call it."""
    g = getcurrent()
    if g is hub.greenlet:
        return fn(*args)
    job = _Job(hub, g, fn, args)
    hub.begin_external()
    _start_worker()
    _jobs.put(job)
    try:
        return hub.suspend()
    except BaseException:
        job.cancelled = True
        raise
