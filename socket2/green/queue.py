"""A cooperative ``queue`` module: the standard library's names, with
cooperative ``Queue``, ``LifoQueue``, ``PriorityQueue`` and
``SimpleQueue``.

``Queue`` (and its two subclasses) has the standard semantics --
``maxsize``, ``put``/``get`` with ``block`` and ``timeout``, ``Full`` and
``Empty``, ``task_done``/``join``, the ``_init``/``_qsize``/``_put``/
``_get`` hooks that subclasses override, the ``queue`` and ``mutex``
attributes -- but is not built on ``threading.Condition``.  A put or get
that does not wait takes no lock at all (single atomic deque operations,
see :class:`Queue`); the waiter lists are guarded by a real ``_thread``
lock (``mutex``) held for a few bytecodes and never across a switch, and
a thread that has to wait parks a waiter of ``_locks`` (the machinery of
the cooperative locks): a socket2 thread waits in its hub, a real OS
thread (a ``run_in_thread`` worker, a thread of a C library, the
interpreter's shutdown) blocks on a private real lock, and a put or get
in any OS thread wakes a waiter in any other.  A woken waiter looks again
(a notification, not a hand-over); one that is killed after being
notified passes the notification on, so none is lost.

``not_empty``, ``not_full`` and ``all_tasks_done`` are kept for code that
reaches into them (the "clear the queue" recipe: ``with q.mutex:
q.queue.clear(); q.all_tasks_done.notify_all()``): each is the mutex as a
context manager with ``notify``/``notify_all``/``wait``.

The standard ``SimpleQueue`` is written in C and waits in C, so
:class:`SimpleQueue` here is a cooperative one, built on the same lock
machinery as ``socket2.green.thread``'s locks (``_locks``): a ``get``
waits in the calling socket2 thread's hub (or blocks a real OS thread),
and a ``put`` from any thread wakes it.
"""
import queue as __queue__
from queue import *  # noqa: F401,F403
import sys
from collections import deque
from heapq import heappop as _heappop, heappush as _heappush
import types

from .. import _hotpath
from ..errors import TimeoutError as _S2Timeout
from ..hub import clock as _clock
from ._locks import (_DONE, _MISS, _Sem, _Waiter, _make_waiter,
                     _real_allocate_lock, _real_get_ident, _wake)

__implements__ = ["SimpleQueue", "Queue", "LifoQueue", "PriorityQueue"]
__all__ = list(__queue__.__all__)


# -- waiting (module docstring) --------------------------------------------------



def _block(w, end):
    """Wait as waiter *w* until it is woken or *end* (a clock() value,
    None: no limit) passes; whether it was woken."""
    if w.os_lock is not None:
        if end is None:
            return w.os_lock.acquire()
        return w.os_lock.acquire(True, max(0.0, end - _clock()))
    hub = w.hub
    hub.begin_external()            # another OS thread may wake it
    try:
        hub.suspend(end)
        return True
    except _S2Timeout:
        return False
    finally:
        w.done = True
        hub.end_external()


def _cancel(mutex, waiters, w, pass_on):
    """*w* stops waiting: out of the list if still there; if it was
    notified and *pass_on*, the next waiter is woken instead."""
    if w.notified and not pass_on:
        # Taken off the list by _notify (under the mutex) before it set
        # the flag: nobody looks at *w* any more, no lock is needed.
        return
    with mutex:
        if w.notified:
            w.notified = False
            if pass_on:
                _notify(waiters, 1)
        else:
            try:
                waiters.remove(w)
            except ValueError:
                pass


def _wait_for(mutex, waiters, attempt, end):
    """``attempt()`` until it does not return ``_MISS``, waiting on
    *waiters* between tries, until *end*; its result, or ``_MISS`` once
    *end* has passed.  The waiter is queued before each try that may be
    followed by a wait, so a put or get that comes between a failed try
    and the wait does wake it; after a wake-up it tries first, and queues
    again only if that fails."""
    w = _make_waiter()
    hub = w.hub
    while True:
        with mutex:
            waiters.append(w)
        try:
            got = attempt()
            if got is not _MISS:
                _cancel(mutex, waiters, w, False)
                return got
            woken = end is None or end > _clock()
            if not woken:
                pass
            elif hub is None:
                woken = _block(w, end)
            else:
                # _block, inline for a greenlet waiter (the common case).
                if hub._waker.dead:
                    hub._restart_waker()
                hub._external += 1      # another OS thread may wake it
                try:
                    if end is None:
                        hub._switch_to_hub()    # hub.suspend(), inline
                    else:
                        hub.suspend(end)
                except _S2Timeout:
                    woken = False
                finally:
                    w.done = True
                    hub._external -= 1
        except BaseException:
            _cancel(mutex, waiters, w, True)
            raise
        _cancel(mutex, waiters, w, False)
        got = attempt()     # woken: what it waited for is most likely there
        if got is not _MISS or not woken:
            return got
        # A waiter serves one wait (a late wake-up finds it done).
        w = _make_waiter() if hub is None else _Waiter(w.g, hub, None)


def _notify1(waiters):
    """Under the mutex: wake the first of *waiters*, if any (_notify(w, 1)
    with _wake inline for a greenlet of this OS thread: every put and get
    that must wake a waiter comes here)."""
    while waiters:
        w = waiters.popleft()
        w.notified = True
        hub = w.hub
        if hub is not None and hub.thread_ident == _real_get_ident():
            if not w.done:
                hub.schedule(w.g)
            return
        if _wake(w):
            return
        # (A waiter whose OS thread ended, see _wake: the next one.)


def _notify(waiters, n):
    """Under the mutex: wake up to *n* of *waiters* (each looks again;
    one whose OS thread ended does not count, see _wake)."""
    while n and waiters:
        w = waiters.popleft()
        w.notified = True
        if _wake(w):
            n -= 1


class _Condition:
    """``Queue.not_empty``/``not_full``/``all_tasks_done``: the queue's
    mutex as a context manager, and ``notify``/``notify_all``/``wait`` on
    one of its waiter lists (for code that reaches into them)."""

    __slots__ = ("_mutex", "_waiters")

    def __init__(self, mutex, waiters):
        self._mutex = mutex
        self._waiters = waiters

    def __enter__(self):
        return self._mutex.__enter__()

    def __exit__(self, *exc):
        return self._mutex.__exit__(*exc)

    def notify(self, n=1):
        """Wake up to *n* waiters (the caller holds the mutex)."""
        _notify(self._waiters, n)

    def notify_all(self):
        """Wake every waiter (the caller holds the mutex)."""
        _notify(self._waiters, len(self._waiters))

    def wait(self, timeout=None):
        """Wait until notified (the caller holds the mutex, which is let
        go meanwhile); False on a timeout."""
        w = _make_waiter()
        self._waiters.append(w)
        self._mutex.release()
        try:
            woken = _block(w, None if timeout is None else _clock() + timeout)
        finally:
            self._mutex.acquire()
            if not w.notified:
                try:
                    self._waiters.remove(w)
                except ValueError:
                    pass
            w.notified = False
        return woken


def _end(timeout):
    """The standard checks of put/get's *timeout*; its clock() deadline,
    None for no limit."""
    if timeout is None:
        return None
    if timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")
    return _clock() + timeout


# Where the interpreter has a GIL, one call of deque.append/popleft or
# list.append/pop is atomic: Queue and LifoQueue need no lock for a put
# or get that does not wait (see Queue).
_GIL = getattr(sys, "_is_gil_enabled", lambda: True)()
_HOOKS = ("_init", "_qsize", "_put", "_get")


class _QueueBase:
    """The fields the lock-free put and get read (in C with the compiled
    path: socket2/ffi/green_speedups.c's QueueBase, which also has the
    compiled ``_c_put``/``_c_get`` and their plain waits)."""

    __slots__ = ("_slots", "_tasks", "_append", "_take", "_getters",
                 "_putters", "_fast", "__weakref__")


if _hotpath.COMPILED:
    try:
        from .. import _green_speedups
    except ImportError:     # a source tree whose extension is not built
        pass
    else:   # (configured by _locks)
        _QueueBase = _green_speedups.QueueBase  # noqa: F811


_ROOM_MAX = 1 << 16     # the largest bound counted in room tokens


class Queue(_QueueBase):
    """``queue.Queue``: a FIFO queue of at most *maxsize* items (unbounded
    if ``<= 0``), cooperative and shared safely with real OS threads (see
    the module docstring).

    How a put or get that does not wait costs no lock: the items are a
    deque, room is a second deque of *maxsize* tokens and the unfinished
    tasks a third, each changed by single C calls, which the GIL makes
    atomic; a put takes a token, then appends; a get pops, then gives a
    token back.  The mutex guards only the waiter lists: a thread that
    must wait queues its waiter first and tries again before it sleeps,
    and the other side looks at the waiter list after its own change, so
    one of the two always sees the other.  A subclass that overrides a
    hook (``_init``, ``_qsize``, ``_put``, ``_get``: ``PriorityQueue``'s
    heap calls comparisons, which may run Python code) runs every put and
    get under the mutex instead, as does a free-threaded interpreter.
    Emptying ``queue`` by hand (``q.queue.clear()``) is only supported for
    an unbounded ``Queue``: a bounded one does not get its room back.
    """

    _atomic = _GIL
    _TAKE = "popleft"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if any(n in cls.__dict__ for n in _HOOKS) and \
                "_TAKE" not in cls.__dict__:
            cls._atomic = False

    def __init__(self, maxsize=0):
        self.maxsize = maxsize
        self._init(maxsize)
        self.mutex = _real_allocate_lock()
        self._getters = deque()        # waiters for an item
        self._putters = deque()        # waiters for room
        self._joiners = deque()        # waiters for unfinished_tasks == 0
        self._tasks = deque()          # one None per unfinished task
        if type(maxsize) is int and maxsize <= _ROOM_MAX:
            self._slots = deque([None] * maxsize) if maxsize > 0 else None
        else:
            # A float bound (the standard library compares, so 2.5 holds
            # 3), or one too large to count in tokens: the locked path.
            self._slots = None
            if maxsize > 0:
                self._atomic = False
        self.not_empty = _Condition(self.mutex, self._getters)
        self.not_full = _Condition(self.mutex, self._putters)
        self.all_tasks_done = _Condition(self.mutex, self._joiners)
        # The compiled put/get take the lock-free path only while this
        # holds (see _QueueBase; the maxsize setter clears it).
        self._fast = bool(self._atomic)

    @property
    def maxsize(self):
        """The bound (0: none).  Reassigning it, which the standard
        library allows, moves this queue to the locked path: that one
        reads ``maxsize`` on every put, the lock-free one counts room
        tokens made for the first value."""
        return self._maxsize

    @maxsize.setter
    def maxsize(self, value):
        if "_maxsize" in self.__dict__:
            self._atomic = False
            self._fast = False
            # Putters waiting for a room token look again, on the locked
            # path (see _put_wait).
            with self.mutex:
                _notify(self._putters, len(self._putters))
        self._maxsize = value

    @property
    def queue(self):
        """The container of the items (a deque; a list for LifoQueue and
        PriorityQueue)."""
        return self._items

    @queue.setter
    def queue(self, items):
        self._items = items
        # Bound once: the lock-free put and get call these.
        self._append = getattr(items, "append", None)
        self._take = getattr(items, self._TAKE, None)

    @property
    def unfinished_tasks(self):
        """Items put and not yet marked done with ``task_done``."""
        return len(self._tasks)

    @unfinished_tasks.setter
    def unfinished_tasks(self, n):
        self._tasks.clear()
        self._tasks.extend([None] * n)

    def task_done(self):
        """One item taken with ``get`` is processed; the last one wakes
        the threads in ``join``.  ``ValueError`` if called more often than
        items were put."""
        tasks = self._tasks
        try:
            tasks.pop()
        except IndexError:
            raise ValueError("task_done() called too many times") from None
        if not tasks and self._joiners:
            with self.mutex:
                _notify(self._joiners, len(self._joiners))

    def join(self):
        """Wait until every item put has been taken and processed."""
        tasks = self._tasks
        if tasks:
            _wait_for(self.mutex, self._joiners,
                      lambda: _MISS if tasks else True, None)

    def qsize(self):
        """How many items are queued (a snapshot)."""
        if self._atomic:
            return len(self.queue)
        with self.mutex:
            return self._qsize()

    def empty(self):
        """Whether the queue is empty (a snapshot)."""
        return not self.qsize()

    def full(self):
        """Whether the queue is full (a snapshot)."""
        return 0 < self.maxsize <= self.qsize()

    def put(self, item, block=True, timeout=None):
        """Add *item*, waiting for room if *block* (at most *timeout*
        seconds); ``queue.Full`` when there is none."""
        if timeout is not None and block and self.maxsize > 0:
            _end(timeout)               # the standard ValueError if < 0
        if self._atomic:
            slots = self._slots
            if slots is not None:
                try:
                    slots.pop()
                except IndexError:
                    slots = _MISS
                if slots is _MISS:   # (outside the except: Full has no
                    # IndexError for context)
                    return self._put_wait(item, block, timeout)
            # Counted first: a get and task_done may come before the end.
            self._tasks.append(None)
            self._append(item)          # deque's or list's: atomic
            if self._getters:
                with self.mutex:
                    _notify1(self._getters)
            return
        if self._put_locked(item) is _MISS:
            self._put_wait(item, block, timeout)

    def _put_locked(self, item):
        with self.mutex:
            if 0 < self.maxsize <= self._qsize():
                return _MISS
            self._put(item)
            self._tasks.append(None)
            _notify(self._getters, 1)
        return True

    def _take_slot(self):
        slots = self._slots
        if not slots:
            return _MISS        # (the common miss, without an exception)
        try:
            slots.pop()
            return True
        except IndexError:      # another OS thread took it meanwhile
            return _MISS

    def _put_attempt(self, item):
        """One try of a put that waits on the lock-free path: True (a room
        token taken), _DONE (put on the locked path) or _MISS."""
        if self._atomic:
            return self._take_slot()
        # maxsize was reassigned while this put waited: the room tokens
        # are no longer kept, the locked path puts it.
        return _DONE if self._put_locked(item) is not _MISS else _MISS

    def _put_wait(self, item, block, timeout):
        if not block:
            raise Full
        end = _end(timeout)
        if self._atomic:
            got = _wait_for(self.mutex, self._putters,
                            lambda: self._put_attempt(item), end)
            if got is _MISS:
                raise Full
            if got is _DONE:
                return
            self._tasks.append(None)
            self._append(item)          # deque's or list's: atomic
            if self._getters:
                with self.mutex:
                    _notify1(self._getters)
        elif _wait_for(self.mutex, self._putters,
                       lambda: self._put_locked(item), end) is _MISS:
            raise Full

    def get(self, block=True, timeout=None):
        """Remove and return an item, waiting for one if *block* (at most
        *timeout* seconds); ``queue.Empty`` when there is none."""
        if timeout is not None and block:
            _end(timeout)               # the standard ValueError if < 0
        if self._atomic:
            try:
                item = self._take()
            except IndexError:
                item = _MISS
            if item is _MISS:       # (outside the except: Empty has no
                # IndexError for context)
                return self._get_wait(block, timeout)
            slots = self._slots
            if slots is not None:
                slots.append(None)
                if self._putters:
                    with self.mutex:
                        _notify(self._putters, 1)
            return item
        item = self._get_locked()
        if item is _MISS:
            item = self._get_wait(block, timeout)
        return item

    def _get_locked(self):
        with self.mutex:
            if not self._qsize():
                return _MISS
            item = self._get()
            _notify(self._putters, 1)
        return item

    def _get_atomic(self):
        if not self._atomic:
            # maxsize was reassigned while this get waited: the locked
            # path takes it (and wakes a putter the new bound holds up).
            return self._get_locked()
        if not self._items:
            return _MISS        # (the common miss, without an exception)
        try:
            item = self._take()
        except IndexError:      # another OS thread took it meanwhile
            return _MISS
        slots = self._slots
        if slots is not None:
            slots.append(None)
            if self._putters:
                with self.mutex:
                    _notify1(self._putters)
        return item

    def _get_wait(self, block, timeout):
        if not block:
            raise Empty
        attempt = self._get_atomic if self._atomic else self._get_locked
        item = _wait_for(self.mutex, self._getters, attempt,
                         None if timeout is None else _end(timeout))
        if item is _MISS:
            raise Empty
        return item

    def put_nowait(self, item):
        """``put(item, block=False)``."""
        return self.put(item, block=False)

    def get_nowait(self):
        """``get(block=False)``."""
        return self.get(block=False)

    # The hooks subclasses override (called with the mutex held).

    def _init(self, maxsize):
        self.queue = deque()

    def _qsize(self):
        return len(self.queue)

    def _put(self, item):
        self.queue.append(item)

    def _get(self):
        return self.queue.popleft()

    __class_getitem__ = classmethod(types.GenericAlias)


# The compiled put/get (socket2/ffi/green_speedups.c) take the plain calls
# (and their waits, in a greenlet) and hand everything else to the Python
# methods, kept as _put_py/_get_py.
Queue._put_py = Queue.put
Queue._get_py = Queue.get
if hasattr(_QueueBase, "_c_put"):
    Queue.put = _QueueBase._c_put
    Queue.get = _QueueBase._c_get


class PriorityQueue(Queue):
    """``queue.PriorityQueue``: the lowest item first."""

    def _init(self, maxsize):
        self.queue = []

    def _put(self, item):
        _heappush(self.queue, item)

    def _get(self):
        return _heappop(self.queue)


class LifoQueue(Queue):
    """``queue.LifoQueue``: the last item put first."""

    _TAKE = "pop"

    def _init(self, maxsize):
        self.queue = []

    def _qsize(self):
        return len(self.queue)

    def _put(self, item):
        self.queue.append(item)

    def _get(self):
        return self.queue.pop()


class SimpleQueue:
    """``queue.SimpleQueue``: an unbounded FIFO queue; ``put`` never
    waits, ``get(block=True, timeout=None)`` waits cooperatively and
    raises ``queue.Empty`` when it gives up."""

    __slots__ = ("_items", "_count", "__weakref__")

    def __init__(self):
        self._items = deque()
        self._count = _Sem(0)       # one permit per item

    def put(self, item, block=True, timeout=None):
        """Add *item* (never waits: *block* and *timeout* are ignored, as
        in the standard library)."""
        self._items.append(item)
        self._count._release()

    def put_nowait(self, item):
        """Add *item*."""
        self.put(item, False)

    def get(self, block=True, timeout=None):
        """Remove and return the first item, waiting for one if *block*
        (at most *timeout* seconds); raise ``queue.Empty`` otherwise."""
        if block and timeout is not None:
            if timeout < 0:
                raise ValueError("'timeout' must be a non-negative number")
            wait = timeout
        else:
            wait = -1
        if not self._count._acquire(block, wait):
            raise Empty
        return self._items.popleft()

    def get_nowait(self):
        """Remove and return the first item, or raise ``queue.Empty``."""
        return self.get(False)

    def empty(self):
        """Whether the queue is empty (a snapshot)."""
        return not self._items

    def qsize(self):
        """How many items are queued (a snapshot)."""
        return len(self._items)

    __class_getitem__ = classmethod(types.GenericAlias)
