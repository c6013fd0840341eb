"""Coordination between threads: Event, Lock, Semaphore, BoundedSemaphore,
Condition, Queue, group() and run_in_thread().

One waiting mechanism serves them all.  A waiter is a small record (the
greenlet, its hub, whether it has been woken) kept in an ``OrderedDict``
per primitive: first come, first served, O(1) to append, to wake the
first, and to remove a waiter that gave up.  Waking means handing the
waiter what it waited for and scheduling it on its hub's ready queue; the
waker never switches.  Nothing polls and no timer outlives its wait
(``hub.suspend`` cancels its own).

The rule every wait here follows: **an operation either happened and
returns, or did not happen and raises -- never both.**  The danger is the
moment between a hand-off and the waiter's turn to run: an interruption
(``kill()``, a group's cancel, a timeout scope) that lands then replaces the
queued wake-up (``hub._throw``), so the waiter raises although its
operation was completed for it.  So:

- A waker (``_wake``) hands over only what the waiter can give back until
  it runs: a lock, a permit, a notification, an item, a free slot in a
  queue.  What cannot be undone is done by the waiter itself, in its own
  greenlet, once it runs: a waiting putter is handed a *slot*, and its
  item enters the queue when it runs, not when a getter made room.
- A waiter interrupted before it was woken removes itself (``_park``); one
  interrupted after (``_given``) gives back what it was handed -- the lock
  or permit to the next waiter, the item to the head of the queue, the
  notification or the slot to the next waiter -- and raises.
- What a wait must restore whatever happens is restored shielded:
  ``Condition.wait`` takes its lock back through any number of
  interruptions, then raises the interruption (``_reacquire``).
- Where the other party's work cannot be called back (a put carried into
  the queue's OS thread, done there), the waiter settles with it under a
  lock: either the work is called off before it runs and the waiter
  raises, or it was done and the waiter returns; the interruption is then
  raised at the thread's next wait (``_raise_later``): late, never lost.
- Of two interruptions only one can be raised: a kill beats a timeout
  (``_preferred``), so that no timeout scope swallows a kill.

``run_in_thread`` is outside the rule by its nature: its function runs in
another OS thread and cannot be stopped, so an interrupted call is
abandoned (documented there): its exception means "stopped waiting", not
"did not run".

``Event`` is the one primitive that may be set from another OS thread: its
waiters are resumed in their own hubs (``hub.call_threadsafe``), and an
Event wait never counts as a deadlock, because another OS thread may set
it.  ``Queue.put`` and ``put_nowait`` may be called from another OS thread
too: the call is carried into the queue's own OS thread (the one that
created it) and done there, so the same-thread path pays one comparison of
thread idents and takes no lock.  Everything else belongs to one OS thread.
"""
import sys
import _thread
from collections import OrderedDict, deque

from greenlet import getcurrent, GreenletExit

from . import _offload
from .errors import Error, TimeoutError as _Timeout
from .hub import Thread, _deadline, clock, get_hub, start_thread

__all__ = ["Event", "Lock", "Semaphore", "BoundedSemaphore", "Condition",
           "Queue", "group", "Group", "Cancelled", "run_in_thread",
           "thread_pool_size"]

# Bound at import: socket2.monkey may replace _thread's names with
# cooperative ones; these primitives need the OS thread's.
_get_ident = _thread.get_ident
_allocate_lock = _thread.allocate_lock
_RLock = _thread.RLock


def _stdqueue():
    """The standard library's queue module (for its Full and Empty), loaded
    when first needed rather than with socket2."""
    import queue
    return queue


class Cancelled(BaseException):
    """Raised in the body of a :func:`group` when a child failed, so that
    the block stops waiting for more work; the ``with`` swallows it and
    raises the children's failures instead.  A ``BaseException``, like
    ``GreenletExit``, so that ``except Exception`` does not swallow it."""


class _Waiter:
    __slots__ = ("g", "hub", "value", "woken")

    def __init__(self, hub, value=None):
        self.g = getcurrent()
        self.hub = hub
        self.value = value
        self.woken = False


def _park(waiters, w, deadline):
    """Queue *w* in *waiters* and wait until a waker hands it a value
    (``_wake``).  On an exception: if *w* was not woken yet it leaves the
    queue and the exception propagates; if it was, ``w.woken`` stays True
    so that the caller gives back what it was handed (``_given``) before
    it raises: the operation did not happen (module docstring)."""
    waiters[w] = None
    try:
        return w.hub.suspend(deadline)
    except BaseException:
        if not w.woken:
            w.woken = True       # nobody can hand it anything any more
            w.value = _GAVE_UP
            del waiters[w]
        raise


_GAVE_UP = object()


def _wake(waiters, value=None):
    """Hand *value* to the first waiter and schedule it; return it.  The
    value must be something the waiter can give back if an interruption
    reaches it before it runs (module docstring)."""
    w = waiters.popitem(last=False)[0]
    w.woken = True
    w.value = value
    w.hub.schedule(w.g, value)
    return w


def _given(w):
    """Whether *w* (interrupted) had already been handed something."""
    return w.woken and w.value is not _GAVE_UP


def _preferred(kept, new):
    """Of two interruptions of one wait, the one to raise: a kill (anything
    but a timeout) beats a timeout, which a scope with ``raise_=False``
    would swallow, and with it the kill; otherwise the first stays."""
    if kept is None or (isinstance(kept, TimeoutError)
                        and not isinstance(new, TimeoutError)):
        return new
    return kept


def _raise_later(hub, g, exc):
    """Raise *exc* in *g* (running now) at its next wait: the operation it
    interrupted had completed and cannot be undone, so the operation
    returns and the interruption is delivered late rather than lost.  A
    timer due at once does it from the hub, through ``hub._throw`` like any
    kill, once *g* has switched away."""
    hub._add_timer(clock(), _rethrow, (hub, g, exc))


def _rethrow(args):
    hub, g, exc = args
    hub._throw(g, exc)


# ---------------------------------------------------------------------------
# Event


class Event:
    """A flag that threads can wait for: ``set()``, ``clear()``,
    ``is_set()``, ``wait()``.

    ``set()`` may be called from any OS thread; waiters are resumed in their
    own hubs.  A wait on an Event never counts as a deadlock (another OS
    thread may set it), so ``socket2.start()`` keeps running while one is
    waited on.
    """

    __slots__ = ("_flag", "_waiters", "_lock", "__weakref__")

    def __init__(self):
        self._flag = False
        self._waiters = OrderedDict()
        # Re-entrant: a Python signal handler may call set() while this
        # OS thread is inside set() or wait() of the same Event (handlers
        # run between any two bytecodes); a plain lock would deadlock.
        # Both are written to stay right when re-entered so.
        self._lock = _RLock()

    def is_set(self):
        """True once :meth:`set` was called (and not :meth:`clear` since)."""
        return self._flag

    def set(self):
        """Set the flag and wake every waiter (from any OS thread)."""
        with self._lock:
            self._flag = True
            if not self._waiters:
                return
            waiters = list(self._waiters)
            self._waiters.clear()
        me = _get_ident()
        for w in waiters:
            if w.hub.thread_ident == me:
                _deliver(w)
            else:
                w.hub.call_threadsafe(_deliver, w)

    def clear(self):
        """Reset the flag: later waits wait again."""
        self._flag = False

    def wait(self, timeout=None, expires=None):
        """Wait until the flag is set; return ``True``.  Raises
        ``socket2.TimeoutError`` when *timeout* seconds (or the ``clock()``
        deadline *expires*) pass first."""
        if self._flag:
            return True
        deadline = _deadline(timeout, expires)
        hub = get_hub()
        w = _Waiter(hub)
        # Counted (and the hub's waker started) before another OS thread
        # can see the waiter and wake it through that waker.
        hub.begin_external()
        try:
            with self._lock:
                if self._flag:
                    return True
                self._waiters[w] = None
            if self._flag and not w.woken:
                # set() ran re-entered (a signal handler) before w was
                # queued: it could not see w.
                w.woken = True
                with self._lock:
                    self._waiters.pop(w, None)
                return True
            hub.suspend(deadline)
        except BaseException:
            if not w.woken:
                w.woken = True
                with self._lock:
                    self._waiters.pop(w, None)
            raise
        finally:
            hub.end_external()
        return True

    def __repr__(self):
        return "<socket2.Event %s, %d waiting>" % (
            "set" if self._flag else "unset", len(self._waiters))


def _deliver(w):
    """In *w*'s own OS thread: resume it unless it gave up meanwhile."""
    if not w.woken:
        w.woken = True
        w.hub.schedule(w.g, True)


# ---------------------------------------------------------------------------
# Semaphores and locks


class Semaphore:
    """A counter of permits: ``acquire()`` takes one, waiting while there is
    none; ``release()`` gives one back.  Waiters are served strictly first
    come, first served: a release hands its permit straight to the first
    waiter, so nobody barges past the queue.
    """

    __slots__ = ("_value", "_waiters")

    def __init__(self, value=1):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("semaphore value must be an int, not %s"
                            % type(value).__name__)
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        self._value = value
        self._waiters = OrderedDict()

    def acquire(self, blocking=True, timeout=None, expires=None):
        """Take a permit.  Returns ``True``; with ``blocking=False``
        returns ``False`` at once instead of waiting.  Raises
        ``socket2.TimeoutError`` if *timeout*/*expires* pass first."""
        if self._value > 0:
            self._value -= 1
            return True
        if not blocking:
            if timeout is not None:
                raise ValueError("can't specify a timeout for a "
                                 "non-blocking call")
            return False
        w = _Waiter(get_hub())
        try:
            _park(self._waiters, w, _deadline(timeout, expires))
        except BaseException:
            if _given(w):           # handed the permit, then interrupted
                self._release()
            raise
        return True

    def _release(self):
        if self._waiters:
            _wake(self._waiters, True)   # the permit passes on: value stays
        else:
            self._value += 1

    def release(self, n=1):
        """Give back *n* permits (each wakes the first waiter, if any)."""
        if n < 1:
            raise ValueError("release() needs n >= 1")
        for _ in range(n):
            self._release()

    def locked(self):
        """True when an ``acquire()`` would wait."""
        return self._value == 0

    @property
    def value(self):
        """The permits available now."""
        return self._value

    def __enter__(self):
        if self._value > 0:         # the uncontended case, inline
            self._value -= 1
            return self
        self.acquire()
        return self

    def __exit__(self, typ, value, tb):
        self.release()

    def __repr__(self):
        return "<socket2.%s value=%d, %d waiting>" % (
            type(self).__name__, self._value, len(self._waiters))


class BoundedSemaphore(Semaphore):
    """A :class:`Semaphore` that raises ``ValueError`` when released more
    often than acquired (the standard library's behaviour)."""

    __slots__ = ("_initial",)

    def __init__(self, value=1):
        Semaphore.__init__(self, value)
        self._initial = value

    def release(self, n=1):
        if n < 1:
            raise ValueError("release() needs n >= 1")
        if self._value + n > self._initial:
            raise ValueError("Semaphore released too many times")
        Semaphore.release(self, n)


class Lock(Semaphore):
    """A mutual-exclusion lock (not reentrant): ``acquire``/``release`` or
    ``with lock:``.  Releasing an unlocked lock raises ``RuntimeError``, as
    the standard library's does.

    A Lock has no owner, like ``threading.Lock``, whose ``release()`` "can
    be called from any thread, not only the thread which has acquired the
    lock" (its documentation): so any thread may release this one, by
    design.  Code written for ``threading`` uses a lock as a binary
    semaphore (acquired in one thread, released by another as a signal),
    and a cooperative ``threading.Lock`` may be built on this class, so an
    owner check here would break correct programs.  Checking the owner is
    the business of a reentrant lock, which has one.  The defect an owner
    check would have caught -- a ``Condition.wait`` interrupted while
    taking its lock back, whose ``with`` then released a lock another
    thread held -- is fixed at its root: ``wait`` always returns or raises
    holding the lock.
    """

    __slots__ = ()

    def __init__(self):
        Semaphore.__init__(self, 1)

    def release(self):
        """Unlock; the first waiter, if any, gets the lock."""
        if self._value:
            raise RuntimeError("release unlocked lock")
        if self._waiters:
            _wake(self._waiters, True)   # handed over: stays locked
        else:
            self._value = 1

    def __exit__(self, typ, value, tb):
        if self._waiters:
            _wake(self._waiters, True)
        elif self._value:
            raise RuntimeError("release unlocked lock")
        else:
            self._value = 1

    def __repr__(self):
        return "<socket2.Lock %s, %d waiting>" % (
            "locked" if self._value == 0 else "unlocked", len(self._waiters))


class Condition:
    """Wait for a condition under a lock: ``with cond: while not ok:
    cond.wait()``; ``notify(n=1)``, ``notify_all()``.  *lock* defaults to
    a new :class:`Lock`.  ``wait()`` releases the lock while it waits and
    takes it again before it returns (or raises).  A notified waiter that
    is killed or times out before it runs passes its notification on.
    """

    __slots__ = ("_lock", "_waiters", "acquire", "release")

    def __init__(self, lock=None):
        self._lock = Lock() if lock is None else lock
        self._waiters = OrderedDict()
        self.acquire = self._lock.acquire
        self.release = self._lock.release

    def __enter__(self):
        self._lock.acquire()
        return self

    def __exit__(self, *exc):
        self._lock.release()

    def _check_locked(self, what):
        if not self._lock.locked():
            raise RuntimeError("cannot %s on an un-acquired lock" % what)

    def wait(self, timeout=None, expires=None):
        """Release the lock, wait for a notification, take the lock again;
        return ``True``.  Raises ``socket2.TimeoutError`` if *timeout* /
        *expires* pass first.

        ``wait`` returns or raises holding the lock, like the standard
        library's, whatever interrupts it (``kill()``, a group's cancel, a
        timeout scope): an interruption that lands while the lock is being
        taken back is held until the lock is taken, then raised.  A waiter
        that raises passes a notification it was given on to the next
        waiter.  One case cannot hold the lock: ``Error('deadlock')`` (the
        lock can never be had) is raised at once, without it.
        """
        self._check_locked("wait")
        deadline = _deadline(timeout, expires)
        w = _Waiter(get_hub())
        self._lock.release()
        interrupted = None
        try:
            _park(self._waiters, w, deadline)
        except BaseException as e:   # noqa: B902 - raised below, locked
            interrupted = e
            if _given(w):            # notified, then interrupted: pass it on
                self._notify(1)
        interrupted = self._reacquire(interrupted)
        if interrupted is not None:
            raise interrupted
        return True

    def _reacquire(self, interrupted):
        """Take the lock back, shielded: an interruption while waiting for
        it is kept (``_preferred``) and the lock waited for again.  Returns
        the interruption to raise, if any."""
        notified = interrupted is None
        while True:
            try:
                self._lock.acquire()
                return interrupted
            except BaseException as e:   # noqa: B902 - raised by wait()
                if isinstance(e, Error) and e.err == "deadlock":
                    raise        # nothing can release it: waiting is futile
                if notified:     # the notification goes unused: pass it on
                    notified = False
                    self._notify(1)
                interrupted = _preferred(interrupted, e)

    def wait_for(self, predicate, timeout=None, expires=None):
        """Wait until ``predicate()`` is true (checked under the lock);
        return its value."""
        deadline = _deadline(timeout, expires)
        result = predicate()
        while not result:
            self.wait(expires=deadline)
            result = predicate()
        return result

    def _notify(self, n):
        waiters = self._waiters
        while n > 0 and waiters:
            _wake(waiters, True)
            n -= 1

    def notify(self, n=1):
        """Wake up to *n* waiters (first come, first served)."""
        self._check_locked("notify")
        self._notify(n)

    def notify_all(self):
        """Wake every waiter."""
        self._check_locked("notify")
        self._notify(len(self._waiters))

    def __repr__(self):
        return "<socket2.Condition %r, %d waiting>" % (
            self._lock, len(self._waiters))


# ---------------------------------------------------------------------------
# Queue


class Queue:
    """A FIFO queue between threads.

    ``put(item)`` waits while the queue holds *maxsize* items (``0``: no
    limit); ``get()`` waits while it is empty.  ``put_nowait``/``get_nowait``
    raise the standard library's ``queue.Full``/``queue.Empty``.  After
    ``close()``, ``put`` raises ``Error('closed')`` and ``get`` returns what
    is left, then raises ``Error('closed')``; ``for item in q`` ends when
    the queue is closed and drained.  ``task_done()``/``join()`` work as in
    the standard library.  ``put``/``put_nowait`` may be called from
    another OS thread (the put is carried into this queue's OS thread); so,
    like an Event wait, a ``get`` wait never counts as a deadlock: a main
    program waiting on an empty queue nobody will fill waits, it is not
    told ``Error('deadlock')``.

    A putter that waited for room puts its item when it runs: a get hands
    it the free slot (reserved for it, so that nobody barges past it), not
    the item's place in the queue.  So a put interrupted before it ran did
    not happen (its slot passes on), and a put that returned did.
    """

    def __init__(self, maxsize=0):
        if isinstance(maxsize, bool) or not isinstance(maxsize, int):
            raise TypeError("maxsize must be an int")
        self.maxsize = maxsize
        self._items = deque()
        self._getters = OrderedDict()
        self._putters = OrderedDict()    # waiting putters -> None
        self._reserved = 0               # slots handed to putters not yet run
        self._closed = False
        self._unfinished = 0
        self._joiners = OrderedDict()
        self._ident = _get_ident()
        self._hub = None                 # the owning hub, for foreign puts

    # -- state ----------------------------------------------------------------

    def qsize(self):
        """How many items are in the queue."""
        return len(self._items)

    def __len__(self):
        return len(self._items)

    def empty(self):
        return not self._items

    def full(self):
        """True when the queue's slots are taken (by items, or reserved
        for putters about to put theirs)."""
        return 0 < self.maxsize <= len(self._items) + self._reserved

    @property
    def closed(self):
        return self._closed

    # -- put ------------------------------------------------------------------

    def put(self, item, block=True, timeout=None, expires=None):
        """Add *item*, waiting while the queue is full (``block=False``:
        raise ``queue.Full`` instead).  Raises ``socket2.TimeoutError`` if
        *timeout*/*expires* pass first, ``Error('closed')`` once closed.
        When it raises, the item was not added; when it returns, it was."""
        home = self._hub
        if home is not None and home._closed:
            # Its home OS thread has ended (nobody waits there any more):
            # the queue, items and all, moves to this thread.
            self._hub = None
            self._ident = _get_ident()
        if self._ident != _get_ident():
            return self._put_foreign(item, block, timeout, expires)
        if self._closed:
            raise Error("closed", "put() on a closed queue")
        if not self._putters:            # else they go first
            if self._getters:
                _wake(self._getters, item)   # empty: straight to a getter
                self._unfinished += 1
                return
            if self.maxsize <= 0 or \
                    len(self._items) + self._reserved < self.maxsize:
                self._items.append(item)
                self._unfinished += 1
                return
        if not block:
            raise _stdqueue().Full
        w = _Waiter(get_hub())
        try:
            _park(self._putters, w, _deadline(timeout, expires))
        except BaseException:
            if _given(w):       # handed a slot, then interrupted: pass it on
                self._reserved -= 1
                self._free_slots()
            raise
        # Handed a slot (reserved for us until now): the put happens here.
        self._reserved -= 1
        if self._closed:
            raise Error("closed", "put() on a closed queue")
        if self._getters:
            _wake(self._getters, item)   # the slot stays free
        else:
            self._items.append(item)
        self._unfinished += 1
        if self._putters:
            self._free_slots()

    def _free_slots(self):
        """Hand each free slot to the next waiting putter (reserved for it
        until it runs)."""
        putters = self._putters
        while putters and len(self._items) + self._reserved < self.maxsize:
            self._reserved += 1
            _wake(putters, True)

    def put_nowait(self, item):
        """Add *item* or raise ``queue.Full``."""
        self.put(item, block=False)

    def _put_foreign(self, item, block, timeout, expires):
        """put() from another OS thread: done in the queue's own thread; a
        blocking put waits (cooperatively, in this thread) for the result.
        A put that is interrupted either is called off before it is done
        there, or was done and returns (``_carry``)."""
        owner = self._hub
        if owner is None:
            raise Error("wrong_thread", "this queue was made in another OS "
                        "thread that has not used it yet; make it in the "
                        "thread that gets from it")
        deadline = _deadline(timeout, expires)
        full = _stdqueue().Full
        while True:
            outcome = _carry(owner, self, item, deadline)
            if outcome is _DONE:
                return
            if not (block and isinstance(outcome, full)):
                raise outcome
            # Full: try again a moment later (a foreign producer has no
            # place in the queue's waiter list, which is per-thread).
            pause = 0.001
            if deadline is not None:
                left = deadline - clock()
                if left <= 0:
                    raise _Timeout()
                pause = min(pause, left)
            from .hub import sleep
            sleep(pause)

    # -- get ------------------------------------------------------------------

    def get(self, block=True, timeout=None, expires=None):
        """Remove and return the first item, waiting while the queue is
        empty (``block=False``: raise ``queue.Empty`` instead).  Raises
        ``socket2.TimeoutError`` if *timeout*/*expires* pass first, and
        ``Error('closed')`` once the queue is closed and empty."""
        items = self._items
        if items:
            item = items.popleft()
            if self._putters:
                self._free_slots()   # the slot goes to the first putter
            return item
        if self._closed:
            raise Error("closed", "get() on a closed, empty queue")
        if not block:
            raise _stdqueue().Empty
        hub = get_hub()
        if self._hub is not hub:
            # The thread that gets is the queue's home: puts from any other
            # OS thread are carried here, puts from this one are local.
            self._hub = hub
            self._ident = hub.thread_ident
        w = _Waiter(hub)
        hub.begin_external()        # another OS thread may put
        try:
            return _park(self._getters, w, _deadline(timeout, expires))
        except BaseException:
            if _given(w):           # handed an item, then interrupted
                self._unfinished -= 1
                self._putback(w.value)
            raise
        finally:
            hub.end_external()

    def get_nowait(self):
        """Remove and return the first item or raise ``queue.Empty``."""
        return self.get(block=False)

    def _putback(self, item):
        if self._getters:
            _wake(self._getters, item)
            self._unfinished += 1
        else:
            self._items.appendleft(item)
            self._unfinished += 1

    # -- close, iterate, join -------------------------------------------------

    def close(self):
        """No more puts: waiting putters get ``Error('closed')`` (their items
        are not added); getters drain what is left, then get the error."""
        if self._closed:
            return
        self._closed = True
        for waiters in (self._getters, self._putters):
            while waiters:
                w = waiters.popitem(last=False)[0]
                w.woken = True
                w.value = _GAVE_UP
                w.hub._throw(w.g, Error("closed", "the queue was closed"))

    def __iter__(self):
        """Items until the queue is closed and drained."""
        while True:
            try:
                yield self.get()
            except Error as e:
                if e.err == "closed" and self._closed:
                    return
                raise

    def task_done(self):
        """Mark one got item as processed (for :meth:`join`)."""
        if self._unfinished <= 0:
            raise ValueError("task_done() called too many times")
        self._unfinished -= 1
        if self._unfinished == 0:
            while self._joiners:
                _wake(self._joiners, True)

    def join(self, timeout=None, expires=None):
        """Wait until every item put has been marked :meth:`task_done`."""
        if self._unfinished == 0:
            return
        _park(self._joiners, _Waiter(get_hub()), _deadline(timeout, expires))

    def __repr__(self):
        return "<socket2.Queue %d items%s%s>" % (
            len(self._items),
            ", maxsize=%d" % self.maxsize if self.maxsize > 0 else "",
            ", closed" if self._closed else "")


_PENDING = object()      # a carried put: not done yet
_CALLED_OFF = object()   # its caller gave up first: it will not be done
_DONE = object()         # done: the item is in the queue


class _Carried:
    """A put carried from another OS thread into the queue's own.  Both
    threads settle its outcome under *lock*: it is done there only while
    ``state`` is still pending, and a caller that gives up calls it off
    only while it is; so it either happened or it will not."""

    __slots__ = ("queue", "item", "lock", "state", "w")

    def __init__(self, queue, item, w):
        self.queue = queue
        self.item = item
        self.lock = _allocate_lock()
        self.state = _PENDING
        self.w = w


def _do_carried(c):
    """In the queue's OS thread (its hub greenlet): put, unless called off,
    then wake the caller in its own hub."""
    with c.lock:
        if c.state is not _PENDING:
            return                   # called off: its caller raised already
        interrupt = None
        try:
            c.queue.put(c.item, block=False)
            c.state = _DONE
        except (Error, _stdqueue().Full) as e:   # the put's own answers
            c.state = e
        except BaseException as e:   # noqa: B902 - a signal handler's
            # Not the put's outcome: it belongs to this thread's main
            # program (the waker hands it there).  The caller is told.
            interrupt = e
            c.state = Error("interrupted", "the put was interrupted in the "
                            "queue's OS thread by %r" % (e,))
        c.item = None
        # Still under the lock: the caller learns the outcome only after
        # this, so its hub is still open (it waits for us until then).
        w = c.w
        w.hub.call_threadsafe(_deliver, w)
    if interrupt is not None:
        raise interrupt


def _carry(owner, queue, item, deadline):
    """Have *owner* (the queue's hub) put *item*; wait for the outcome:
    ``_DONE`` or the exception the put raised there.  Raises
    ``TimeoutError`` at *deadline* and any interruption if the put was
    called off in time; if it was done, returns ``_DONE`` and raises the
    interruption at this thread's next wait instead (module docstring)."""
    hub = get_hub()
    w = _Waiter(hub)
    c = _Carried(queue, item, w)
    # Counted (and the waker started) before the other OS thread can wake
    # us through that waker.
    hub.begin_external()
    timer = None
    try:
        if not owner.call_threadsafe(_do_carried, c):
            raise Error("closed", "the queue's OS thread has ended: nothing "
                        "gets from this queue any more")
        if deadline is not None:
            # The deadline wakes us like the outcome would (first wins);
            # what happened is then settled under the lock below.
            timer = hub._add_timer(deadline, _deliver, w)
        hub.suspend()
    except BaseException as e:   # noqa: B902 - re-raised, or raised later
        w.woken = True           # a late outcome must not resume us
        with c.lock:
            state = c.state
            if state is _PENDING:
                c.state = _CALLED_OFF
        if state is not _DONE:
            raise                # not done, and now it never will be
        if not isinstance(e, TimeoutError):
            # A kill is delivered late rather than lost; a timeout that
            # lost to the completed put is dropped (a scope's, raised at
            # the next wait, would land outside its scope).
            _raise_later(hub, w.g, e)
        return _DONE
    finally:
        w.woken = True
        if timer is not None:
            hub._cancel_timer(timer)
        hub.end_external()
    with c.lock:
        state = c.state
        if state is _PENDING:    # the deadline came first: call it off
            c.state = _CALLED_OFF
    if state is _PENDING:
        raise _Timeout()
    return state


# ---------------------------------------------------------------------------
# Structured groups


class Group:
    """The threads spawned in one ``with socket2.group() as g:`` block; see
    :func:`group`."""

    def __init__(self, limit=None):
        if limit is not None and (isinstance(limit, bool)
                                  or not isinstance(limit, int) or limit < 1):
            raise ValueError("group limit must be an int >= 1 or None, "
                             "got %r" % (limit,))
        self.limit = limit
        self._slots = Semaphore(limit) if limit else None
        self._children = OrderedDict()   # running Thread -> None
        self._failures = []
        self._body = None                # the greenlet in the with block
        self._waiting = None             # __exit__'s waiter
        self._active = False
        self._cancelling = False

    def __enter__(self):
        if self._active or self._body is not None:
            raise Error("busy", "a group is entered once")
        self._active = True
        self._body = getcurrent()
        return self

    def spawn(self, func, *args, **kwargs):
        """Start ``func(*args, **kwargs)`` in a new thread of this group
        (at once, like ``newthread``; with a limit, after waiting for a
        free slot) and return its :class:`Thread`."""
        if not self._active:
            raise RuntimeError("spawn() outside the group's with block")
        if self._cancelling:
            self._refuse()
        if self._slots is not None:
            self._slots.acquire()
            if self._cancelling:
                self._slots.release()
                self._refuse()
        hub = get_hub()
        t = Thread(hub, func, args, kwargs)
        t._group = self
        self._children[t] = None
        return start_thread(hub, t)

    def _refuse(self):
        if self._failures:
            raise Cancelled()     # a child failed: the with raises that
        raise Error("closed", "the group is cancelled")

    def _child_failed(self, t, e):
        self._failures.append(e)
        if not self._cancelling:
            self.cancel()
            body = self._body
            if body is not None and body is not getcurrent() \
                    and self._waiting is None and not body.dead:
                # The body may be busy waiting for something else: stop it.
                get_hub()._throw(body, Cancelled())

    def _child_done(self, t):
        self._children.pop(t, None)
        if self._slots is not None:
            self._slots.release()
        w = self._waiting
        if w is not None and not self._children and not w.woken:
            w.woken = True
            w.hub.schedule(w.g, None)

    def cancel(self):
        """Kill every thread of the group (each sees ``GreenletExit`` where
        it waits; its ``finally`` blocks run).  Later ``spawn`` raises."""
        self._cancelling = True
        hub = get_hub()
        me = getcurrent()
        for t in list(self._children):
            if not t.finished and t._g is not me:   # me: a failing child
                hub._throw(t._g, GreenletExit())

    def __len__(self):
        return len(self._children)

    def __exit__(self, typ, value, tb):
        if value is not None and not isinstance(value, Cancelled):
            self.cancel()
        hub = get_hub()
        interrupted = None
        while self._children:
            w = self._waiting = _Waiter(hub)
            try:
                hub.suspend()
            except BaseException as e:   # noqa: B902 - re-raised below
                # A timeout around the group, a kill of the body: cancel
                # the children, and still wait for them to finish.  A kill
                # that follows a timeout is the one raised (_preferred).
                if not isinstance(e, Cancelled):
                    interrupted = _preferred(interrupted, e)
                self.cancel()
            finally:
                w.woken = True
                self._waiting = None
        self._active = False
        self._body = None
        if interrupted is not None:
            raise interrupted
        failures = self._failures
        if failures:
            body_exc = value if value is not None and not isinstance(
                value, (Cancelled, GreenletExit)) else None
            raise _failure(failures + ([body_exc] if body_exc else []))
        if isinstance(value, Cancelled):
            return True
        return False

    def __repr__(self):
        return "<socket2.group %d running%s>" % (
            len(self._children),
            ", limit %d" % self.limit if self.limit else "")


def _failure(excs):
    if sys.version_info >= (3, 11):
        return BaseExceptionGroup("%d thread%s of a socket2.group failed" % (
            len(excs), "" if len(excs) == 1 else "s"), excs)
    return excs[0]


def group(limit=None):
    """Structured concurrency: ``with socket2.group() as g: g.spawn(f,
    *args)``.

    The block exits only when every spawned thread has finished.  If one
    raises, the others are killed (and the body too, if it is waiting for
    something) and the failure is raised from the ``with``: an
    ``ExceptionGroup`` of every failure on Python 3.11 and later, the first
    one on 3.10.  *limit* bounds how many run at once: ``spawn`` waits for
    a free slot.  ``g.cancel()`` kills them all, and so does an exception
    raised in the block itself (which then propagates).  A timeout scope
    around the group cancels it cleanly.
    """
    return Group(limit)


# ---------------------------------------------------------------------------
# Blocking work in OS threads


def run_in_thread(func, *args, timeout=None, expires=None, **kwargs):
    """Run the blocking ``func(*args, **kwargs)`` in a worker OS thread
    (the pool that host name lookups use; see :func:`thread_pool_size`)
    and wait cooperatively for its result, or re-raise its exception.
    Other threads run meanwhile.  When *timeout*/*expires* pass first the
    call is abandoned (it cannot be stopped; its result is dropped) and
    ``socket2.TimeoutError`` is raised; so is a kill's exception.  Such an
    exception means the caller stopped waiting, not that *func* did not
    run: it may have run, or still be running."""
    if not callable(func):
        raise TypeError("run_in_thread() needs a callable, not %s"
                        % type(func).__name__)
    return _offload.run(get_hub(), func, *args,
                        deadline=_deadline(timeout, expires), kwargs=kwargs)


def thread_pool_size(n=None):
    """The most worker OS threads :func:`run_in_thread` and host name
    lookups use at once (default 8); with *n*, set it."""
    return _offload.pool_size(n)
