"""Blocking C calls run in a small pool of OS threads while the calling
greenlet waits cooperatively (used for getaddrinfo() on host names).

The worker appends the result to the hub's completion queue and pokes the
hub's wakeup fd; the hub's waker greenlet (see Hub._waker_loop) schedules
the waiting greenlet.  A waiter that is killed or times out marks its job
cancelled, so a late result never resumes it: such a result is dropped, so
a function whose result owns a resource must return it owned (an object
that frees it when collected; see addr._getaddrinfo).

A worker that has had no job for ``IDLE_SECONDS`` ends: an idle program
keeps no extra OS thread, and code that counts threads
(``threading.enumerate()``, a test suite's thread-leak check) does not
find socket2's lingering after a host name lookup.
"""
import _thread
from _queue import Empty as _Empty, SimpleQueue

from greenlet import getcurrent

# Bound at import: socket2.monkey may later replace _thread's names with
# cooperative ones, and the pool must keep real locks and real threads.
_allocate_lock = _thread.allocate_lock
_get_ident = _thread.get_ident
# threading is imported with the first worker, not with socket2 (import
# time); the lock is the same object threading.Lock() would make.
_lock = _allocate_lock()
_room = None         # threading.Condition(_lock), made with the first job:
                     # notified when a running job ends
_jobs = SimpleQueue()
_max_workers = 8     # settable: socket2.thread_pool_size(n)
_workers = 0         # worker threads alive
_idle = 0            # of which waiting for a job
_queued = 0          # jobs not yet taken by a worker
_running = 0         # jobs running now (at most _max_workers)
# A worker with nothing to do for this many seconds ends.
IDLE_SECONDS = 0.5


class _Job:
    __slots__ = ("hub", "g", "fn", "args", "kwargs", "cancelled")

    def __init__(self, hub, g, fn, args, kwargs):
        self.hub = hub
        self.g = g
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.cancelled = False


_worker_idents = set()     # the OS threads that are pool workers


def is_worker():
    """Whether the calling OS thread is one of the pool's workers (a
    thread started there would never have its hub run: it is a real OS
    thread even when threading is patched)."""
    return _get_ident() in _worker_idents


def _os_thread_class(threading):
    """The standard ``threading.Thread`` (a real OS thread) even when
    ``socket2.monkey`` replaced it with the cooperative subclass."""
    cls = threading.Thread
    return getattr(cls, "_s2_os_thread_class", cls)


def _worker():
    _worker_idents.add(_get_ident())
    try:
        _work()
    finally:
        _worker_idents.discard(_get_ident())


def _work():
    global _idle, _queued, _workers, _running
    while True:
        with _lock:
            if _workers > _max_workers and not _queued:
                _workers -= 1          # the pool was made smaller
                return
            _idle += 1
        try:
            job = _jobs.get(timeout=IDLE_SECONDS)
        except _Empty:
            with _lock:
                _idle -= 1
                if not _queued:
                    # Idle for a while: the thread ends (the next job
                    # starts one again), so that no OS thread of socket2's
                    # lingers where a program or a test suite counts them.
                    _workers -= 1
                    return
            continue        # a job is on its way: _submit counted on us
        with _lock:
            _idle -= 1
            _queued -= 1
            # Workers made before the pool was shrunk wait their turn here.
            while _running >= _max_workers:
                _room.wait()
            _running += 1
        try:
            if job.cancelled:
                result = exc = None
            else:
                try:
                    result, exc = job.fn(*job.args, **job.kwargs), None
                except BaseException as e:   # noqa: B902 - to the waiter
                    result, exc = None, e
        finally:
            with _lock:
                _running -= 1
                _room.notify()
        job.fn = job.args = job.kwargs = None
        job.hub.complete_external(job, result, exc)
        del job, result, exc


def _submit(job):
    """Queue *job* for the pool, starting a worker if none is free.  If
    the worker cannot start (the OS refused a thread) and no other worker
    exists, the job is not queued and the error is raised: nothing is
    counted for a job no thread will ever run."""
    global _workers, _queued, _room
    if _room is None:
        import threading
        with _lock:
            if _room is None:
                _room = threading.Condition(_lock)
    with _lock:
        _queued += 1
        start = _queued > _idle and _workers < _max_workers
        if start:
            _workers += 1
    if start:
        import threading
        try:
            _os_thread_class(threading)(target=_worker,
                                        name="socket2-offload",
                                        daemon=True).start()
        except BaseException:
            with _lock:
                _workers -= 1
                # Other workers take it when one is free; with none, it
                # would wait forever.
                stranded = _workers == 0
                if stranded:
                    _queued -= 1
            if stranded:
                raise
    _jobs.put(job)


def after_fork():
    """In a forked child: the parent's worker threads are not there."""
    global _lock, _room, _jobs, _workers, _idle, _queued, _running
    _lock = _allocate_lock()
    _room = None
    _jobs = SimpleQueue()
    _workers = _idle = _queued = _running = 0
    _worker_idents.clear()


def pool_size(n=None):
    """The most worker OS threads the pool runs at once; with *n*, set it
    (extra workers end after their current job)."""
    global _max_workers
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError("the thread pool size must be an int >= 1, "
                             "got %r" % (n,))
        with _lock:
            _max_workers = n
            if _room is not None:       # else no worker waits on it
                _room.notify_all()
    return _max_workers


def run(hub, fn, *args, deadline=None, kwargs=None):
    """Run ``fn(*args, **kwargs)`` in a worker OS thread; wait
    cooperatively for its result (or exception) until *deadline* (a
    ``clock()`` value: ``TimeoutError``, the call is abandoned).  From the
    hub greenlet, or from a worker itself, just call it."""
    g = getcurrent()
    if g is hub.greenlet or (deadline is None and
                             _get_ident() in _worker_idents):
        # A worker that needs a lookup itself (the standard getfqdn calls
        # gethostbyaddr, patched) makes it there: waiting for another
        # worker would deadlock once every worker does the same.  (With
        # a deadline it waits, as asked, for at most that long.)
        return fn(*args, **(kwargs or {}))
    job = _Job(hub, g, fn, args, kwargs or {})
    # Counted before another OS thread can complete it; every way out but
    # the completion (a job no worker could take, a timeout, a kill) gives
    # the count back, so start() never waits for a job that will not come.
    hub.begin_external()
    try:
        _submit(job)
        return hub.suspend(deadline)
    except BaseException:
        if not job.cancelled:
            job.cancelled = True
            hub.end_external()
        raise
