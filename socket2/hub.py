"""The hub: one greenlet per OS thread that runs the poll loop.

How it works, top to bottom:

- A *thread* (``newthread``) is a greenlet whose parent is the hub.  When it
  must wait, it records itself where the waking party will find it (a
  socket's reader or writer slot, a timer, a joiner list) and switches to
  the hub.  Whoever wakes it clears that record first, so a greenlet is
  never resumed twice for one wait.
- The hub loop: run the ready queue, compute how long it may sleep (next
  timer), ask the poller for events, switch into the reader/writer of each
  ready socket, fire the due timers.  One dict lookup and one ``switch()``
  per event: a thread that parks while a batch of events is being
  dispatched takes the batch's next event itself and switches straight to
  its waiter, and to the hub only when the batch is done (the batch and
  its cursor live in the hub's ``HubCore``, so whoever delivers an event,
  each is delivered once and in order).  That dispatch and the socket
  layer's waits are the hot path, compiled (socket2/_hotpath.py says how
  and where).
- The main greenlet is not special: a blocking call made there parks it in
  a slot like any thread and switches to the hub, which runs every other
  thread until that call can complete.
- Every greenlet that is not running is in exactly one place: a wait
  (slot, timer, joiner list) or the ready queue.  Interrupts (close, kill,
  timeouts) go through :meth:`Hub._throw`, which handles both places.

The rules every layer above keeps (each was broken once; see issue 17):

- **A wake-up is a hint, never a completion.**  An event may be stale (a
  batch can hold one for a socket closed earlier in the same batch, whose
  number a new socket took), so every operation asks the kernel again
  after waking: recv/send/accept retry their call, connect() asks whether
  it is connected (sockets.py ``_connect_one``, green ``_g_connect_state``).
  And no kernel registration outlives its socket's number: where the
  open file description may be shared (a dup, a fork, a descriptor from
  outside), close deletes it explicitly (sockets.py
  ``_unregister_for_close``, pollers/epoll.py's docstring).
- **A hand-off either happened or did not.**  An operation completed by
  another party (a lock passed on, an item taken, a notification) is never
  also reported as interrupted, and an interrupted one did nothing:
  whoever wakes a waiter hands over only what the waiter can give back
  until it runs (sync.py's docstring, ``_park``/``_wake``).  A kill queued
  for a greenlet is never replaced by a timeout (:func:`_supersedes`).
- **A shortcut trusts only state that cannot change underneath.**  The
  short-read shortcut (``Waiters.rready``, socket2/_hotpath.py) is
  cleared only right after a short read by the socket layer's own recv;
  every read wait, whatever consumed the edge, re-arms it.
- **The hub's own greenlets survive anything raised into them** (see
  ``_run`` and ``_waker_loop``), and a greenlet is only ever resumed by
  its own OS thread: other threads go through :meth:`Hub.call_threadsafe`.
"""
import heapq
from builtins import TimeoutError as _BuiltinTimeout
import os
import sys
import _thread
import time
from _weakref import ref as _weakref
from collections import deque

from greenlet import getcurrent, greenlet, GreenletExit

from . import _hotpath, pollers as _pollers
from .pollers import Waiters as _Waiters, TryFirstWaiters as _TryFirstWaiters
from .errors import Error, TimeoutError

__all__ = [
    "Thread", "newthread", "poll", "start", "stop", "current", "clock",
    "sleep", "sleep_until", "runafter", "runat", "runevery", "get_hub",
]

clock = time.monotonic
_local = _thread._local()     # threading.local (threading not imported)
# Bound at import: socket2.monkey (thread=True) replaces _thread's names
# with cooperative ones, and the hub's own locks and idents must stay the
# OS thread's.
_get_ident = _thread.get_ident
_allocate_lock = _thread.allocate_lock
_RLock = _thread.RLock
_INF = float("inf")
# The longest single wait handed to a poller: a far deadline (a huge
# timeout) is reached by waiting again, so no C timeout argument overflows.
_MAX_WAIT = 86400.0
_OWNERS = {}    # fd -> the Hub whose socket it is (for shared pollers)
# The hub get_hub() made for each OS thread, until the thread ends (what
# the exit parks, see _park_other_hubs).
_THREAD_HUBS = {}
_finalizing = sys.is_finalizing


class _Timer:
    """A handle on a pending timer: ``cancel()`` stops it."""
    __slots__ = ("_hub", "_entry")

    def __init__(self, hub, entry):
        self._hub = hub
        self._entry = entry

    def cancel(self):
        """Stop the timer; no effect if it already fired or was cancelled."""
        self._hub._cancel_timer(self._entry)

    @property
    def pending(self):
        return self._entry[2] is not None


def _supersedes(new, old):
    """Whether the exception *new* replaces *old*, already queued for a
    greenlet that has not run yet: a timeout never replaces another
    interruption (a kill, a close, a group's cancel), which would then be
    lost -- a timeout scope with ``raise_=False`` would swallow it."""
    return old is None or not isinstance(new, _BuiltinTimeout) \
        or isinstance(old, _BuiltinTimeout)


class Hub:
    """The scheduler of one OS thread (see the module docstring)."""

    def __init__(self, poller=None):
        self.poller = _pollers.make_poller(poller)
        # A backend may bring its own slot record (IOCP: one with room for
        # its per-socket operations); else exact edges decide.
        self._waiters_class = getattr(self.poller, "waiters_class", None) or (
            _Waiters if getattr(self.poller, "exact_edges", True)
            else _TryFirstWaiters)
        # Backends whose registration goes with the descriptor's last close
        # (epoll) have nothing to do for unregister(fd, closing=True): the
        # call is left out (a close per connection).
        self._close_drops = getattr(self.poller, "close_unregisters", False)
        # Backends that watch an fd only while a thread waits on it (kqueue)
        # are told when one parks; None for the others (epoll, poll).
        self._arm = getattr(self.poller, "arm", None)
        # Completion backends (IOCP) have no readiness to wait for: they
        # post an operation that completes when data arrives (serve()).
        self._prime_read = getattr(self.poller, "prime_read", None)
        self._fdmap = {}           # fd -> _Waiters
        self._ready = deque()      # entries [greenlet, exception, value]
        self._queued = {}          # greenlet -> its entry in _ready
        self._turn = 0             # entries of this turn left (_run_ready)
        self._in_turn = False      # _run_ready is under way
        self._busy = 0             # busy turns of the loop (_loop)
        self._sole = None          # the forking thread's, in a child
        self._live = 0             # ... and the child's threads alive
        self._exit_status = None   # ... or how the child's program ended
        self._timers = []          # heap of [deadline, seq, callback, arg]
        self._seq = 0
        self._ncancelled = 0
        self._starter = None       # greenlet inside start()/poll()
        self._start_deadline = None
        self._poll_once = False
        self._stopping = False
        self._external = 0         # pending jobs in other OS threads
        self._waker = None
        self._completed = deque()  # finished jobs, appended by OS threads
        self._calls = deque()      # (func, args) from other OS threads
        # Other OS threads wake this hub under this lock, and close() takes
        # it too: no wakeup is written to a descriptor number after close()
        # released it (the number may be another file's by then).
        # Reentrant: a signal handler (run at any call, the wakeup's
        # included) or a finalizer the collector runs may call
        # call_threadsafe again in the thread that holds it.
        self._calls_lock = _RLock()
        self._closed = False
        # Tokens to deliver on the next turn: events for our fds that other
        # hubs polled (shared pollers), and the rest of a batch an
        # exception interrupted (see dispatch).
        self._forwarded = deque()
        root = getcurrent()
        while root.parent is not None:
            root = root.parent
        self._root = root
        # Where what reaches the hub is raised (a signal handler's
        # exception, the deadlock error): the main program, or in a
        # forked child the thread that forked (keep_only).
        self._main = root
        self.greenlet = greenlet(self._run, parent=root)
        self.thread_ident = _get_ident()
        self._pid = os.getpid()      # (a forked child: see _thread_ended)
        # The thread state it was made in (see _hub_of_an_ending_thread).
        self._tstate = _hotpath.thread_state_id()
        # The hot path (socket2/_hotpath.py: compiled or Python): the waits
        # of the socket layer, the dispatch of events and the count of
        # greenlets parked on a socket (nio).
        self._core = _hotpath.HubCore(self.greenlet, self._arm,
                                      self._wait_with_deadline)
        #: ``wait_readable(w, deadline, fd=-1)``: park the current greenlet
        #: in *w*'s reader slot until the fd is readable, *deadline* (a
        #: ``clock()`` value or ``None``) passes (``TimeoutError``) or the
        #: socket is closed (``Error('closed')``).
        self.wait_readable = self._core.wait_readable
        #: ``wait_writable(w, deadline, fd=-1)``: the same for the writer.
        self.wait_writable = self._core.wait_writable
        #: ``register(fd)``: watch *fd*; return its reader/writer slots.
        #: ``unregister(fd, closing=False)``: stop watching it; *closing*:
        #: it is about to be closed, which drops kernel registrations by
        #: itself (no system call needed).  (The core's: a pair per
        #: connection.)
        self._core.configure_fds(self, self._fdmap, _OWNERS,
                                 self._waiters_class, self.poller.register,
                                 self.poller.unregister, self._close_drops,
                                 self.poller)
        self.register = self._core.register
        self.unregister = self._core.unregister
        # start_when_readable(sock, func, args, kwargs, on_cancel=None) is
        # the core's too (one per connection): see its description below.
        self._core.configure_threads(Thread, _close_unstarted,
                                     self._prime_read)
        self.start_when_readable = self._core.start_when_readable
        # The waker from the start: another OS thread can reach this hub at
        # any time (call_threadsafe: a cross-thread close, Event.set, the
        # interpreter's exit), and only this OS thread can create it.
        self._start_waker()

    # -- registration ----------------------------------------------------

    # register() and unregister() are the core's (see __init__).

    # -- waiting ---------------------------------------------------------

    def _switch_to_hub(self):
        """Leave the running greenlet (parked, or queued to run again):
        to the next ready one directly while the hub is running its ready
        queue (one switch instead of two, see _hand_over), else to the
        hub."""
        g = self.greenlet
        if getcurrent() is g:
            raise Error("hub", "cannot wait inside the hub's own greenlet")
        if self._in_turn:
            entry = self._hand_over()
            if entry is not None:
                # The value explicitly, as the hub passes it: a bare
                # switch() would hand the resumed greenlet () instead.
                return entry[0].switch(entry[2])
        return g.switch()

    def _hand_over(self):
        """While the hub runs its ready queue (``_turn``: how many of the
        entries queued before this turn are still to run), a greenlet that
        leaves takes the next entry itself: the one the hub would resume
        next, in the same order and out of the same count, so the hub's
        loop (I/O every few turns, timers, the deadlock check) sees the
        same turns.  Returns the entry taken, or None.  Only a plain
        resume (the value None or True: nothing to keep alive, see below)
        of a greenlet that is running (parked) is taken: a throw, another
        value to pass, a greenlet that never started (it would start on
        this greenlet's stack, which greenlet then copies at every switch
        of its life) or the caller itself are left to the hub.  What is
        switched to is kept alive by this greenlet's switch() until it is
        resumed itself (greenlet's rule): a bare greenlet (a Thread is a
        record holding one), so nothing of a thread's outlives it."""
        ready = self._ready
        if not ready:
            return None
        if self._turn <= 0:
            # This turn is over: start the next one here when the loop
            # would (_loop: not a turn that polls, nothing for start()
            # to decide), on the loop's own count.
            if self._starter is not None and (
                    self._stopping or self._poll_once or not self._core.nio
                    or self._start_deadline is not None):
                return None
            busy = self._busy + 1
            if not busy & 7:
                return None
            self._busy = busy
            self._turn = len(ready)
        entry = ready[0]
        g, exc, value = entry
        if exc is not None or (value is not None and value is not True) \
                or not g or g is getcurrent():
            return None
        ready.popleft()
        del self._queued[g]
        self._turn -= 1
        self._core.activity = True
        return entry

    def _wait_with_deadline(self, g, deadline):
        entry = self._add_timer(deadline, self._fire_timeout, g)
        try:
            return self._switch_to_hub()
        finally:
            self._cancel_timer(entry)

    def _fire_timeout(self, g):
        # A queued greenlet's wait has already ended (it was woken, and the
        # timer is cancelled when it runs): the timeout came too late.
        if g not in self._queued:
            g.throw(TimeoutError())

    def _fire_resume(self, g):
        if g not in self._queued:
            g.switch(None)

    def suspend(self, deadline=None):
        """Park the current greenlet until someone schedules it (or
        *deadline* passes: ``TimeoutError``); return the value it was
        scheduled with."""
        if deadline is None:
            return self._switch_to_hub()
        return self._wait_with_deadline(getcurrent(), deadline)

    # -- scheduling ------------------------------------------------------

    def schedule(self, g, value=None, exc=None):
        """Queue *g* (parked, not running) to be resumed with *value* or to
        have *exc* raised in it on the next turn of the loop."""
        entry = self._queued.get(g)
        if entry is not None:
            if exc is not None and _supersedes(exc, entry[1]):
                entry[1] = exc
            return
        entry = [g, exc, value]
        self._queued[g] = entry
        self._ready.append(entry)

    def schedule_first(self, g):
        """Queue the running greenlet *g* to resume before everything else
        queued (newthread's caller)."""
        entry = [g, None, None]
        self._queued[g] = entry
        self._ready.appendleft(entry)

    def _throw(self, g, exc):
        """Raise *exc* in the parked or queued greenlet *g*, now if it is
        parked (the caller is queued to resume after it), at its turn if it
        is queued already.

        A :class:`Thread` that never started (a connection's thread that
        serve() deferred until its socket is readable, see
        start_when_readable) has no wait to raise into.  A kill (a
        ``GreenletExit``, or any exception given to :meth:`Thread.kill`)
        ends it without running its function (Thread.run); anything else
        (its socket's close) is the event it waits for: it starts, and its
        function meets the closed socket like any other thread would.  The
        hub's own waker is never interrupted."""
        if g is self._waker:
            return
        entry = self._queued.get(g)
        if entry is not None:
            if _supersedes(exc, entry[1]):
                entry[1] = exc
            return
        cur = getcurrent()
        if cur is g:
            raise exc
        if g.dead:
            return
        if not g:
            t = thread_of(g)
            if not (t is not None and (
                    t._cancelled is not None
                    or isinstance(exc, GreenletExit))):
                self.schedule(g)
                return
            t._cancelled = exc
        if cur is not self.greenlet:
            self.schedule(cur)
        if g:
            g.throw(exc)
        else:
            g.switch()      # a cancelled thread: run() ends it at once

    def _run_ready(self):
        ready = self._ready
        # Only what was queued before this turn: a thread that keeps
        # yielding must not starve the poller.  The count is the hub's, not
        # this frame's: a greenlet that leaves meanwhile runs the next
        # entry itself (_hand_over) and counts it.
        self._turn = len(ready)
        self._in_turn = True
        try:
            while self._turn > 0 and ready:
                self._turn -= 1
                self._resume_entry(ready.popleft())
        finally:
            self._turn = 0
            self._in_turn = False

    def _resume_entry(self, entry):
        g, exc, value = entry
        del self._queued[g]
        if not g.dead:
            self._core.activity = True
            if exc is not None:
                t = None if g else thread_of(g)
                if t is not None:
                    # A kill of a thread that never started (see _throw):
                    # run() ends it without calling its function (a throw
                    # would end the greenlet without run()'s bookkeeping).
                    t._cancelled = exc
                    g.switch()
                else:
                    g.throw(exc)
            elif g:
                g.switch(value)
            else:
                g.switch()      # never started: run() takes no value

    # -- timers ----------------------------------------------------------

    def _add_timer(self, deadline, callback, arg):
        self._seq += 1
        entry = [deadline, self._seq, callback, arg]
        heapq.heappush(self._timers, entry)
        return entry

    def _cancel_timer(self, entry):
        if entry[2] is None:
            return
        entry[2] = entry[3] = None
        self._ncancelled += 1
        # Rebuild once cancelled entries are half the heap: the heap never
        # holds more than twice its live timers, at O(1) amortised cost.
        timers = self._timers
        if self._ncancelled > 64 and self._ncancelled * 2 > len(timers):
            timers[:] = [e for e in timers if e[2] is not None]
            heapq.heapify(timers)
            self._ncancelled = 0

    def _run_timers(self):
        timers = self._timers
        now = clock()
        while timers and timers[0][0] <= now:
            entry = heapq.heappop(timers)
            callback, arg = entry[2], entry[3]
            if callback is None:
                self._ncancelled -= 1
                continue
            entry[2] = entry[3] = None
            self._core.activity = True
            callback(arg)

    def live_timers(self):
        return len(self._timers) - self._ncancelled

    def call_at(self, deadline, func, args=(), kwargs=None, interval=None):
        """Run ``func(*args)`` in a new thread at *deadline* (and every
        *interval* seconds after, if given); return a handle."""
        timer = _Timer(self, None)

        def fire(_):
            if interval is not None:
                timer._entry = self._add_timer(
                    max(clock(), timer._entry[0] + interval), fire, None)
            Thread(self, func, args, kwargs or {})._g.switch()

        timer._entry = self._add_timer(deadline, fire, None)
        return timer

    # -- the loop --------------------------------------------------------

    def _run(self, *_):
        # *_: a thread that ends before the hub ever ran passes its return
        # value to the hub greenlet's first switch.
        #
        # The hub's own greenlets (this one and the waker) survive any
        # exception raised into them: a signal handler's (KeyboardInterrupt,
        # a SIGALRM handler that raises), an error in the loop or in a
        # call from another OS thread.  It is raised in the root greenlet,
        # where the user's code can see it, and the loop goes on at the
        # next call.  Delivery itself is inside the try: an exception that
        # lands while one is being delivered is delivered next, and a waker
        # that died meanwhile is replaced.  Only GreenletExit ends the hub
        # greenlet: that is greenlet tearing it down (the hub is freed).
        failed = None
        while True:
            try:
                if failed is not None:
                    e, failed = failed, None
                    self._throw(self._main, e)
                if self._waker.dead:
                    self._restart_waker()
                self._loop()
            except GreenletExit:
                return
            except BaseException as e:   # noqa: B902 - delivered, not lost
                failed = e

    def _loop(self):
        ready = self._ready
        timers = self._timers
        poll = self.poller.poll
        core = self._core
        dispatch = core.dispatch
        fdmap = self._fdmap
        forward = self._forward
        forwarded = self._forwarded
        while True:
            if ready:
                self._run_ready()
            # start() running with nothing to decide (no stop, no poll(),
            # no deadline, threads still parked) is the common case of every
            # server: test it inline instead of calling _starter_done().
            if self._starter is not None and (
                    self._stopping or self._poll_once or not core.nio
                    or self._start_deadline is not None) \
                    and self._starter_done():
                continue
            if ready:
                # Threads that keep the ready queue busy (sleep(0), lock
                # and queue hand-offs) would pay a zero-timeout poll per
                # turn; I/O and timers are looked at every 8th busy turn
                # instead, which still never starves them.
                self._busy += 1
                if self._busy & 7:
                    continue
                timeout = 0.0
            elif timers:
                while timers and timers[0][2] is None:
                    heapq.heappop(timers)
                    self._ncancelled -= 1
                timeout = max(0.0, timers[0][0] - clock()) if timers else -1.0
            else:
                timeout = -1.0
            if self._start_deadline is not None:
                left = max(0.0, self._start_deadline - clock())
                if timeout < 0 or left < timeout:
                    timeout = left
            elif timeout < 0 and core.nio == 0 and self._deadlocked():
                continue
            if timeout > _MAX_WAIT:
                timeout = _MAX_WAIT
            if forwarded:
                timeout = 0.0   # events handed over or left by a failed batch
            tokens = poll(timeout)
            if forwarded:
                tokens = self._add_forwarded(tokens)
            if tokens:
                dispatch(tokens, fdmap, forward, forwarded)
            if timers and timers[0][0] <= clock():
                self._run_timers()

    def _forward(self, token):
        """An event for an fd this hub does not own: on a shared poller it
        may be another hub's; hand it over (never resume its greenlets from
        this OS thread)."""
        owner = _OWNERS.get(token >> 3)
        if owner is not None and owner is not self:
            owner._forwarded.append(token)
            owner._poke()

    def _add_forwarded(self, tokens):
        forwarded = self._forwarded
        tokens = list(tokens)
        while forwarded:
            tokens.append(forwarded.popleft())
        return tokens

    def _starter_done(self):
        """Resume the greenlet in start()/poll() if its wait is over; return
        whether it was resumed."""
        if self._stopping:
            result = True
        elif self._poll_once and self._core.activity:
            result = True
        elif (self._start_deadline is not None
              and clock() >= self._start_deadline):
            result = False
        elif (not self._ready and self._core.nio == 0 and not self._external
              and not self.live_timers()):
            if self._poll_once and self._start_deadline is not None:
                # poll(timeout): sleep it out; work may still come from other
                # OS threads (forwarded events, finished lookups).
                return False
            result = not self._poll_once   # poll() with nothing to wait for
        else:
            return False
        g = self._starter
        self._starter = self._start_deadline = None
        self._stopping = self._poll_once = False
        g.switch(result)
        return True

    def _deadlocked(self):
        """Nothing is parked on a socket and no timer is pending: no event
        can ever wake anyone.  If the main program is parked (in a join, a
        sleep job ...), raise an error there instead of hanging forever."""
        if self._external:
            return False
        main = self._main
        if main.dead or self._starter is not None:
            return False
        self._throw(main, Error("deadlock", "the main program is waiting "
                                "for something no thread can deliver (no "
                                "socket is waited on and no timer is set)"))
        return True

    # start_when_readable(sock, func, args, kwargs, on_cancel=None) is the
    # core's (set in __init__; _hotpath.HubCore.start_when_readable):
    #
    # Run ``func(sock, *args, **kwargs)`` in a new thread once *sock*
    # has something to read (or fails, or is closed).  Until then the
    # connection holds no greenlet stack at all: the unstarted thread sits
    # in the socket's reader slot, and the hub's ordinary dispatch starts
    # it with the same ``switch()`` that resumes a parked reader.
    #
    # If the thread is killed before it starts, *func* never runs and
    # ``on_cancel(sock, *args, **kwargs)`` runs instead (by default
    # ``sock.close()``: *func* would have owned the socket, and nobody
    # else closes it).  A socket already closed is an Error('closed').

    # -- work done in other OS threads -----------------------------------------

    def begin_external(self):
        """Count a job another OS thread will complete (keeps the loop and
        the deadlock check aware of it).  The waiter calls
        :meth:`end_external` if it stops waiting first (a timeout, a
        kill); the job's completion then counts no more."""
        if self._waker.dead:
            self._restart_waker()
        self._external += 1

    def end_external(self):
        """A wait counted by :meth:`begin_external` is over."""
        self._external -= 1

    def complete_external(self, job, value, exc):
        """From any OS thread: hand a finished job back to this hub (a
        closed hub drops it)."""
        item = (job, value, exc)
        with self._calls_held() as held:
            if not held or self._closed:
                return
            self._completed.append(item)
            self.poller.wakeup()

    def call_threadsafe(self, func, *args, orphaned=None):
        """From any OS thread: run ``func(*args)`` in this hub's OS thread
        (in its waker greenlet: *func* must not wait), at its next turn.
        Returns True, or False when the hub is closed (its OS thread
        ended, see get_hub): nothing runs there any more, and the caller
        does what it asked for itself.  If the hub closes before the call
        ran, ``orphaned(*args)`` (when given) runs instead, in the closing
        thread: what must happen anyway (a descriptor's release)."""
        item = (func, args, orphaned)
        with self._calls_held() as held:
            if not held or self._closed:
                return False
            self._calls.append(item)
            self.poller.wakeup()
        return True

    def _poke(self):
        """From any OS thread: make this hub's poll return (not after
        close(): the wakeup descriptor's number may be another file's)."""
        with self._calls_held() as held:
            if held and not self._closed:
                self.poller.wakeup()

    def _start_waker(self):
        """Create the waker (once; every hub has one from the start)."""
        if self._waker is not None:
            return
        w = self._wake_w = _Waiters()
        fd = self.poller.wakeup_fd(w)   # lives in the poller's private set
        self._fdmap[fd] = w
        # Parked in the reader slot before it ever ran: the first wake-up
        # starts it (it is not counted as a parked thread).
        self._waker = w.rg = greenlet(self._waker_loop, parent=self.greenlet)

    def _restart_waker(self):
        """Replace a waker that ended (GreenletExit, or an exception raised
        while it was handing on another, see _run), in the same slot, and
        make it run at the next turn: work may be waiting for it."""
        self._waker = self._wake_w.rg = greenlet(self._waker_loop,
                                                 parent=self.greenlet)
        self._poke()

    def _waker_loop(self):
        """Hand on what other OS threads sent (see _take_external), then
        park on the wakeup fd again (never armed: the wakeup is permanent).

        An exception raised in here (a signal handler's: Python runs them
        in whatever greenlet of the main thread is running; or a call's)
        goes to the root greenlet, as the loop's own do (see _run), and the
        waker goes on; what was not handed on yet is handed on by the next
        pass.  GreenletExit ends it: greenlet tearing it down."""
        w = self._wake_w
        while True:
            try:
                self._take_external()
                w.rg = self._waker
                self.greenlet.switch()
            except GreenletExit:
                return
            except BaseException as e:   # noqa: B902 - delivered, not lost
                self._throw(self._main, e)

    def _take_external(self):
        """Schedule the greenlets whose external jobs finished and run the
        calls other OS threads queued.

        A Python signal handler runs, and its exception is raised, only
        where the interpreter checks for pending work: at a call (after it
        returns, and on entry to a Python function) and at a backward jump
        of a loop.  A finished job is settled and scheduled below with no
        call in between (the inline form of schedule()), and taken off the
        queue only after that: whatever lands, a job is handed on exactly
        once.  A call is taken off before it runs: at most once."""
        self.poller.drain_wakeup()
        completed, calls = self._completed, self._calls
        ready, queued = self._ready, self._queued
        while completed:
            job, value, exc = completed[0]
            if not job.cancelled:        # else its waiter uncounted it
                # Settled: a kill that reaches the waiter before it runs
                # must not uncount the job a second time.
                job.cancelled = True
                self._external -= 1
                g = job.g
                if g in queued:
                    if exc is not None:
                        queued[g][1] = exc
                else:
                    entry = [g, exc, value]
                    queued[g] = entry
                    ready.append(entry)
            del completed[0]
        while calls:
            func, args, _ = calls.popleft()
            func(*args)

    def run_until(self, deadline, once):
        """Run the loop for the calling greenlet (start/poll)."""
        if self._starter is not None:
            raise Error("busy", "start() or poll() is already running in "
                        "this OS thread")
        g = getcurrent()
        if g is self.greenlet:
            raise Error("hub", "cannot run the loop from inside the hub")
        self._starter = g
        self._start_deadline = deadline
        self._poll_once = once
        self._core.activity = False
        try:
            return self.greenlet.switch()
        finally:
            if self._starter is g:
                self._starter = self._start_deadline = None
                self._poll_once = False

    def stop(self):
        self._stopping = self._starter is not None

    def after_fork(self):
        """In the child of ``os.fork()``: give this hub a poller state of
        its own (the inherited kernel set and wakeup are the parent's; the
        child must neither take the parent's events nor be woken by them).
        Descriptors stay registered; parked threads stay parked."""
        after = getattr(self.poller, "after_fork", None)
        if after is None:
            import warnings
            warnings.warn("socket2: the %s poller cannot be carried into a "
                          "forked child; this OS thread's hub is unusable "
                          "there" % self.poller.name, RuntimeWarning)
            return
        # A lock another OS thread held at the fork stays held here.
        self._calls_lock = _RLock()
        self._pid = os.getpid()
        wake = [fd for fd, w in self._fdmap.items() if w is self._wake_w]
        for fd in wake:
            del self._fdmap[fd]
        after([fd for fd in self._fdmap])
        self._completed.clear()
        self._calls.clear()
        self._external = 0      # the parent's worker threads are not here
        if wake:
            self._fdmap[self.poller.wakeup_fd(self._wake_w)] = self._wake_w

    def keep_only(self, g):
        """In the child of a fork made by greenlet *g* (the main program,
        or a socket2 thread): only *g* lives on, as with OS threads
        (socket2.monkey's ``threading`` asks for it; the parent's other
        threads must not run again in the child, where they would do the
        parent's work a second time).  Every other greenlet of this hub
        stays parked for good: the ready queue, the timers and the slots'
        waiters are dropped; what reaches the hub (a signal handler's
        exception, the deadlock error) is raised in *g*.  If *g* is a
        socket2 thread, the process exits when the last of the child's
        threads (*g* and those started after the fork) ends, as a process
        whose last thread ends does: status 0, after flushing
        ``sys.stdout`` and ``sys.stderr`` (``SystemExit`` or
        ``KeyboardInterrupt`` in one of them ends it at once, with its
        status)."""
        self._ready.clear()
        self._queued.clear()
        self._timers.clear()
        self._ncancelled = 0
        for w in self._fdmap.values():
            if w is not self._wake_w:
                w.rg = w.wg = None
        self._core.nio = 0
        self._starter = self._start_deadline = None
        self._main = g
        if thread_of(g) is not None:
            self._sole = g
            self._live = 1

    def close(self):
        """Close the hub's poller (idempotent).  Later ``call_threadsafe``
        calls return False.  A hub made by :func:`get_hub` is closed when
        its OS thread ends."""
        with self._calls_held() as held:
            if not held or self._closed:
                return
            self._closed = True
        # Outside the lock: a wakeup() from another OS thread that was
        # under way has finished (it held the lock), and none starts once
        # _closed is set; the lock is held for a few bytecodes only.
        self.poller.close()
        self._orphan_calls()

    def _calls_held(self):
        """What to hold ``_calls_lock`` with, for close(),
        call_threadsafe() ...: ``with hub._calls_held() as held:``.
        Mostly the lock itself, whose C ``__enter__``/``__exit__`` make the
        block signal-safe: a handler that raises as the acquire returns
        (Ctrl-C's KeyboardInterrupt: the interpreter runs handlers after a
        C call) is inside the block, and its exit lets go of the level
        this block took, and of no other (an acquire written in Python
        left the lock taken: the hub's own thread and every thread handing
        it events then waited for ever, a hang at Ctrl-C).  At the
        interpreter's exit the lock is tried, not waited for: a daemon
        thread that was inside call_threadsafe() when the exit began keeps
        it for good (daemon threads stop where they are), and waiting
        would hang the exit; then *held* is False and the hub is marked
        closed -- the process is ending, its descriptors with it."""
        if not _finalizing():
            return self._calls_lock
        if self._calls_lock.acquire(False):
            return _Held(self._calls_lock)
        self._closed = True
        return _NOT_HELD

    def _orphan_calls(self):
        """The hub closed with calls from other OS threads not run: run
        what each asked to happen anyway (see call_threadsafe)."""
        calls = self._calls
        while calls:
            _, args, orphaned = calls.popleft()
            if orphaned is not None:
                try:
                    orphaned(*args)
                except Exception:   # noqa: B902 - the thread is gone
                    pass

    def _thread_ended(self):
        """This hub's OS thread ended: nothing can run here any more.
        What hangs on its root greenlet goes (at_greenlet_end: its
        ``threading.local`` values): the root greenlet itself may be kept
        a while by this hub's own greenlets."""
        if self._pid != os.getpid():
            # In a forked child, CPython ends the parent's other OS
            # threads' states (which runs this for their hubs): a lock one
            # of them, or a thread calling in, held at the fork stays held
            # here for good, and closing would wait on it for ever.
            self._calls_lock = _RLock()
            self._pid = os.getpid()
        self._root.__dict__.clear()
        self._unwind()
        if getattr(self.poller, "shared", False):
            # Other OS threads' hubs wait on this poller's set: it stays.
            with self._calls_held():
                self._closed = True
            self._orphan_calls()
            release = getattr(self.poller, "release_shared", None)
            if release is not None:
                release()       # (its own descriptors: the set stays)
            return
        try:
            self.close()
        except OSError:
            pass    # a descriptor a fork did not carry over (kqueue on BSD)


    def _unwind(self):
        """End the hub's own greenlets (the loop, then the waker, whose
        parent the loop is) with GreenletExit, in the OS thread that is
        ending, while it still can run them.  A suspended greenlet of an
        ended thread is never run or unwound again: whatever its frames
        hold (this hub, its core, poller and records) would stay for
        good, ~16 KiB per OS thread that used socket2.  Greenlets of
        socket2 threads still parked are left as they are: their code may
        want to wait, and nothing runs here any more."""
        if _finalizing() or _get_ident() != self.thread_ident:
            return      # (a daemon thread's hub at exit: the process ends)
        for g in (self.greenlet, self._waker):
            if g is not None and g and g is not getcurrent():
                try:
                    g.throw(GreenletExit)
                except GreenletExit:
                    pass
                except Exception:   # noqa: B902 - it ends either way
                    pass


def _after_fork_in_child():
    from . import _offload
    _offload.after_fork()
    me = _get_ident()
    for ident in [i for i in _THREAD_HUBS if i != me]:
        del _THREAD_HUBS[ident]     # their OS threads are not in the child
    hub = getattr(_local, "hub", None)
    if hub is not None:
        hub.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# ---------------------------------------------------------------------------
# The interpreter's exit and the hubs of other OS threads
#
# Up to Python 3.13, a thread that wants the GIL back after the interpreter
# began to finalize (a daemon thread whose system call returned) is ended
# with pthread_exit(), which unwinds its C stack (glibc, FreeBSD).  An OS
# thread with a hub spends its idle time in the hub greenlet, inside the
# poller's wait with the GIL released: it is ended there, on a greenlet's
# stack.  A greenlet's stack is a slice of the thread's stack copied in and
# out; above its first frame lie whatever frames the thread's other
# greenlets have there now, not the ones that were there when it started.
# The unwinder walks into those stale frames, runs C++ cleanups on stale
# pointers and jumps to stale addresses: the process dies with SIGSEGV or
# "corrupted double-linked list" after the program's last line, in a good
# share of runs (a ThreadingHTTPServer in a daemon thread does it: its
# connection threads and serve_forever() wait in their hubs).
#
# So before the interpreter finalizes (atexit runs after the non-daemon
# threads were joined, before finalizing begins), each other OS thread's
# hub is parked for good: a call sent through its waker blocks in a C call
# with the GIL released and never returns, so that thread never takes the
# GIL again and is never unwound; the process's exit ends it.  This is what
# Python 3.14 does with every such thread (it hangs them instead of calling
# pthread_exit).  The exit waits, at most a second in all, until each hub
# that its thread is running (in its poll, say) is parked.  A thread that is
# running its own main greenlet is waited for too: it may be about to enter
# its hub, whose poll releases the GIL before it gets to the park call (not
# waiting for those crashed 1 exit in 10 with four busy daemon threads: the
# eighteenth review); unless it has stood at one instruction for 20 ms
# (blocked outside socket2: it is ended there, on its own stack, as every
# Python thread is).


class _Parking:
    """One pthread mutex and condition that hubs park on at exit.  The
    hand-over is in C: ``pthread_cond_wait`` releases the mutex only once
    the parking thread is inside it (the GIL already released by ctypes),
    so when the exiting thread gets the mutex, every hub that reported in
    is blocked for good.  The exiting thread keeps the mutex until the
    process ends: no parked thread can return even from a spurious
    wake-up, and a hub that comes late blocks on the mutex itself."""

    def __init__(self):
        import ctypes
        libc = ctypes.CDLL(None)
        self._lock = libc.pthread_mutex_lock
        self._wait = libc.pthread_cond_wait
        # Room for any platform's pthread_mutex_t / pthread_cond_t.
        self._m = ctypes.create_string_buffer(256)
        self._c = ctypes.create_string_buffer(256)
        if libc.pthread_mutex_init(self._m, None) or \
                libc.pthread_cond_init(self._c, None):
            raise OSError("pthread_mutex_init/pthread_cond_init failed")
        self.parked = set()     # idents of the OS threads parked

    def park(self):
        """Sent to a hub (call_threadsafe): never returns."""
        self._lock(self._m)
        self.parked.add(_get_ident())
        while True:
            self._wait(self._c, self._m)

    def hold(self, waits):
        """Wait until each hub of *waits* ((hub, seconds) pairs) parked or
        its thread ended, at most its seconds, then take the mutex for
        good."""
        start = clock()
        nap = _allocate_lock()
        nap.acquire()
        parked = self.parked
        seen = {}       # ident -> (top frame, its f_lasti, since when)
        while waits:
            now = clock() - start
            waits = [(h, t) for h, t in waits
                     if now < t and h.thread_ident not in parked
                     and not h._closed and not self._stuck(h, seen, now)]
            if waits:
                nap.acquire(True, 0.001)    # a real sleep, whatever is patched
        self._lock(self._m)

    @staticmethod
    def _stuck(hub, seen, now):
        """Whether *hub*'s thread, running its main greenlet, has been at
        the same instruction for 20 ms: blocked in a call outside socket2
        (a plain time.sleep, input()), not on its way into its hub."""
        if hub._root.gr_frame is not None:
            return False            # switched out: it is in the hub
        frame = sys._current_frames().get(hub.thread_ident)
        if frame is None:
            return True             # its thread is gone
        here = (frame, frame.f_lasti)
        was = seen.get(hub.thread_ident)
        if was is None or was[:2] != here:
            seen[hub.thread_ident] = here + (now,)
            return False
        return now - was[2] >= 0.02


def _park_other_hubs():
    """atexit: park the hubs of the other OS threads still running (see
    above)."""
    me = _get_ident()
    # First say that the exit began: a thread that makes its hub from now
    # on parks at once (get_hub), before it ever switches into it.  A
    # thread that made it before is in _THREAD_HUBS below: the GIL orders
    # its registration and this mark.
    _exiting[0] = me
    if _parking[0] is None:
        _prepare_parking()
    live = sys._current_frames()
    hubs = [hub for ident, hub in list(_THREAD_HUBS.items())
            if ident != me and ident in live and not hub._closed]
    parking = _parking[0]
    if not hubs or not parking:
        return
    # A signal handler may raise anywhere in here (a SIGALRM storm, a late
    # Ctrl-C): the parking must still happen, or a thread is unwound
    # across greenlet stacks.  Asking a hub twice is harmless (it parks
    # at the first).
    for _ in range(10):
        try:
            waits = []
            for hub in hubs:
                if hub.call_threadsafe(parking.park):
                    # (its main greenlet running: it may be about to enter
                    # its hub, or blocked outside socket2, _stuck)
                    waits.append((hub, 1.0))
            parking.hold(waits)
            return
        except BaseException:   # noqa: B902 - exiting: parking comes first
            continue


_parking = [None]       # the _Parking, made with the first other thread's hub
_exiting = [None]       # the ident of the thread running the exit's parking


def _main_ident():
    """The main thread's ident (the one that runs atexit), or None if it
    cannot be told (threading never imported: then every hub counts as
    another thread's).  socket2 may be imported in any thread."""
    threading = sys.modules.get("threading")
    if threading is None:
        return None
    return threading.main_thread().ident


def _prepare_parking():
    """Made ahead (ctypes imported, the mutex initialised) so that the exit
    has nothing left to import or allocate that a signal could break."""
    try:
        _parking[0] = _Parking()
    except Exception:   # noqa: B902 - no ctypes, no pthreads: nothing to do
        _parking[0] = False


_PARK_AT_EXIT = os.name == "posix" and sys.version_info < (3, 14)
if _PARK_AT_EXIT:
    import atexit
    atexit.register(_park_other_hubs)


class _Held:
    """An acquired lock, let go of at the end of a ``with`` block (see
    Hub._calls_held)."""
    __slots__ = ("lock",)

    def __init__(self, lock):
        self.lock = lock

    def __enter__(self):
        return True

    def __exit__(self, *exc):
        self.lock.release()


class _NotHeld:
    """A lock that could not be had (see Hub._calls_held)."""
    __slots__ = ()

    def __enter__(self):
        return False

    def __exit__(self, *exc):
        pass


_NOT_HELD = _NotHeld()


def get_hub():
    """The hub of the calling OS thread (created on first use, closed when
    the thread ends)."""
    try:
        return _local.hub
    except AttributeError:
        hub = _hub_of_an_ending_thread()
        if hub is not None:
            return hub
        hub = _local.hub = Hub()
        end = getattr(_local, "os_end", None)
        if end is None:
            _local.ending = _ThreadEnd(hub)
        else:       # (its place in the thread's end: _OSThreadEnd)
            end.ending = _ThreadEnd(hub)
        _THREAD_HUBS[hub.thread_ident] = hub
        if _parking[0] is None and _PARK_AT_EXIT and \
                hub.thread_ident != _main_ident():
            _prepare_parking()
        if _exiting[0] is not None:
            _park_late(hub)
        return hub


def _park_late(hub):
    """A thread made its hub after the exit's parking began (it was
    starting, say): the exit did not see that hub, so this thread parks
    itself, on its own stack, before its hub ever runs.  Without this,
    its first wait entered the hub's poll, released the GIL there, and
    was unwound across greenlet stacks at the exit (SIGSEGV, 1 exit in
    40 with six daemon threads starting as the program ended)."""
    parking = _parking[0]
    if parking and hub.thread_ident != _exiting[0]:
        parking.park()



# OS thread ident -> (a weak reference to the root greenlet, the thread
# state id) of the thread whose hub closed as it ended (see
# _hub_of_an_ending_thread).
_ENDED = {}


def _hub_of_an_ending_thread():
    """None, or the hub to use, when the calling OS thread's locals are
    being dropped as it ends.  The interpreter drops them one
    ``threading.local`` at a time, in its own order (the first touched
    first on 3.11, the last first on 3.13), and a finalizer of one of them
    that calls socket2 reads locals reset under it:

    - before _ThreadEnd ran, the thread's hub is still open (in
      _THREAD_HUBS, same root greenlet): that one serves, not a new one
      made in locals the interpreter never frees (an epoll set and an
      eventfd per thread: the eighteenth review);
    - after it ran, the hub is closed: the call is refused, saying why.

    The thread is told by its root greenlet (an ident is reused by the
    next thread; the root greenlet is not) and its thread state (a native
    OS thread that calls into Python again gets a new one, and a hub as
    any thread: see Hub._tstate).  A thread that had no hub
    cannot be told from one starting: a finalizer there makes a hub in
    locals nothing frees.  Such a hub is closed here when the next thread
    with that ident asks for one, so they never pile up."""
    ident = _get_ident()
    hub = _THREAD_HUBS.get(ident)
    ended = _ENDED.get(ident)
    if hub is None and ended is None:
        return None
    g = getcurrent()
    while g.parent is not None:
        g = g.parent
    if hub is not None:
        if hub._root is g and hub._tstate == _hotpath.thread_state_id():
            return None if hub._closed else hub
        # Another thread's (idents are unique among live threads), or an
        # earlier thread state's of this OS thread (a native thread's
        # previous call into Python): its thread state is gone.
        _close_stale(ident, hub)
    if ended is None:
        return None
    root, tstate = ended
    if root() is g and tstate == _hotpath.thread_state_id():
        raise Error("closed", "this OS thread is ending and its hub is "
                    "closed: socket2 cannot run here (a finalizer of one "
                    "of the thread's threading.local values?)")
    # A new thread with the ended one's ident, or the same OS thread
    # calling into Python again from C (a native thread's next callback,
    # in a new thread state): a hub as always.
    _ENDED.pop(ident, None)
    return None


def _close_stale(ident, hub):
    """Close the hub an ended OS thread left under *ident* (see
    _hub_of_an_ending_thread); nothing runs there any more."""
    if _THREAD_HUBS.get(ident) is hub:
        del _THREAD_HUBS[ident]
    try:
        hub.close()
    except Exception:   # noqa: B902 - its descriptors are what matters
        pass


class _ThreadEnd:
    """Kept in the thread-local storage beside the OS thread's hub.  The
    interpreter drops a thread's locals when the thread ends (in that
    thread; for a daemon thread still there at exit, in the finalizing
    one), and with them this, which closes the hub: a thread that used
    socket2 leaves no descriptor open (an epoll set, a wakeup fd), and
    ``call_threadsafe`` knows nothing runs there any more."""
    __slots__ = ("hub",)

    def __init__(self, hub):
        self.hub = hub

    def __del__(self):
        self.run()

    def run(self):
        """Close the hub (once: _OSThreadEnd may call this first)."""
        hub, self.hub = self.hub, None
        if hub is None:
            return
        try:
            if _THREAD_HUBS.get(hub.thread_ident) is hub:
                del _THREAD_HUBS[hub.thread_ident]
            ident = hub.thread_ident
            if _get_ident() == ident:
                _ENDED[ident] = (_weakref(
                    hub._root, lambda r, i=ident:
                    _ENDED.get(i, (None,))[0] is r and _ENDED.pop(i, None)),
                    hub._tstate)
            hub._thread_ended()
        except Exception:   # noqa: B902 - see below
            # At the interpreter's exit modules are torn down in no set
            # order (a poller module's globals may be gone): the process
            # is ending, its descriptors with it.
            if _finalizing is not None and not _finalizing():
                raise


def _close_unstarted(sock, *args, **kwargs):
    """start_when_readable's default on_cancel: the socket the function
    never got is closed here."""
    sock.close()


def _hub_of_an_ending_thread_closed():
    """Whether the calling OS thread is ending and its hub closed (see
    _hub_of_an_ending_thread)."""
    try:
        _hub_of_an_ending_thread()
    except Error as e:
        return e.err == "closed"
    return False


def _existing_hub():
    return getattr(_local, "hub", None)


# ---------------------------------------------------------------------------
# Threads


def _exit_as_last_thread(status):
    """The last of a forked child's threads ended, or one of them raised
    SystemExit/KeyboardInterrupt (Hub.keep_only)."""
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except Exception:   # noqa: B902 - closed or gone: nothing to flush
            pass
    os._exit(status)


def _status_of(e):
    """The exit status a process gets from *e* (SystemExit's code, as
    the interpreter maps it; 1 after printing anything else)."""
    if isinstance(e, SystemExit):
        code = e.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code & 0xff
        print(code, file=sys.stderr)
        return 1
    import traceback
    traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)
    return 1


def thread_of(g):
    """The :class:`Thread` whose greenlet *g* is (while it has not ended),
    or None: the hub's own greenlets, an OS thread's root greenlet, a
    greenlet of the user's own."""
    try:
        return g._s2_thread
    except AttributeError:
        return None


def at_greenlet_end(g, callback):
    """Run ``callback()`` when the greenlet *g* ends: a socket2 thread's
    when its function returns (its greenlet's attributes are dropped then,
    see Thread), any other greenlet's when it is freed.  A thread's
    greenlet may outlive its thread for a while (a thread that handed it
    the CPU holds it until it runs again, see Hub._switch_to_hub): what
    belongs to the thread (``threading.local`` values, its dummy in
    ``threading``) goes with the thread, not with the greenlet."""
    hooks = g.__dict__.get("_s2_at_end")
    if hooks is None:
        hooks = g._s2_at_end = []
    hooks.append(_AtEnd(callback))


def at_os_thread_end(callback, last=False):
    """Run ``callback()`` when the calling OS thread's state is cleared
    (as the interpreter drops the thread's ``threading.local`` values,
    before ``join()`` of it returns); with *last*, after every callback
    registered without it (``join()``'s sentinels: a joiner resumes only
    after the finalizers of the thread's locals have run, as unpatched).
    Its root greenlet is freed only later (greenlet's own clean-up),
    which at_greenlet_end waits for."""
    end = getattr(_local, "os_end", None)
    if end is None:
        end = _local.os_end = _OSThreadEnd()
        # The hub's end, if the thread has one, moves here: see below.
        end.ending = _local.__dict__.pop("ending", None)
    (end.last if last else end.first).append(_AtEnd(callback))


class _OSThreadEnd:
    """Kept in a real thread-local (hub's ``_local``): dropped with the
    OS thread's state, it runs the callbacks in order, then closes the
    thread's hub (its _ThreadEnd), then runs the *last* callbacks (the
    join sentinels: a joiner resumes after the thread's locals' finalizers,
    which may still use the hub, and after its descriptors are closed).
    (A thread's thread-local values are dropped in the order the locals
    were first used in it: no order one could rely on.)"""

    __slots__ = ("first", "last", "ending")

    def __init__(self):
        self.first = []
        self.last = []
        self.ending = None

    def __del__(self):
        try:
            first = self.first
            while first:
                first.pop(0)    # (its _AtEnd runs the callback as it goes)
            ending, self.ending = self.ending, None
            if ending is not None:
                ending.run()
        finally:    # (whatever failed above, no joiner may wait forever)
            last = self.last
            while last:
                last.pop(0)


class _AtEnd:
    __slots__ = ("callback",)

    def __init__(self, callback):
        self.callback = callback

    def __del__(self):
        callback, self.callback = self.callback, None
        if callback is not None:
            callback()


class Thread(_hotpath.ThreadBase):
    """A cooperative thread: a greenlet scheduled by the hub.

    Created and started by :func:`newthread`.  ``join()`` waits for it and
    returns its result (or re-raises its exception); ``kill()`` raises
    ``GreenletExit`` (or a given exception) in it where it waits.

    The record is not the greenlet: it holds a plain ``greenlet``
    (``_g``), which refers back to it (``_s2_thread``, see
    :func:`thread_of`) only while the thread runs.  A greenlet that
    hands the CPU straight to another one keeps that one alive until it
    is resumed itself (greenlet's rule), possibly long after it ended;
    what is kept is then an empty, dead greenlet, never the thread's
    result, traceback or sockets.  (A plain greenlet also switches
    faster: greenlet checks a subclass's type at every switch.)
    """

    # Its fields are ThreadBase's (_hotpath.py; C when compiled, which
    # also makes the record and runs its greenlet's ``_run`` without a
    # Python frame: one thread per connection); other attributes go in a
    # __dict__, made when first used.
    __slots__ = ("__dict__", "__weakref__")

    # -- the rare paths of ThreadBase._run ---------------------------------

    def _start_cancelled(self):
        """Killed before it ever ran (see Hub._throw): the function never
        runs, and on_cancel releases what it would have been handed
        (serve(): the connection).  The kill is raised here, so the
        bookkeeping after it is the same as for a thread killed while it
        ran."""
        exc = self._cancelled
        self._cancelled = None
        if self._on_cancel is not None:
            self._on_cancel(*self._args, **self._kwargs)
        raise exc

    def _failed(self, e):
        """The function raised *e* (not GreenletExit): keep it for join()
        and say so where it belongs."""
        self._exc = e
        if not isinstance(e, Exception):
            # KeyboardInterrupt/SystemExit belong to the program: raise
            # them in the main greenlet (in a forked child whose program
            # is its threads, they end the process).
            if self._hub._sole is not None:
                self._hub._exit_status = _status_of(e)
            else:
                self._hub.schedule(self._hub._root, exc=e)
        elif self._group is not None:
            self._group._child_failed(self, e)
        elif not self._joiners:
            self._report(e)

    def _wake_joiners(self):
        """The thread finished: resume the greenlets in join(), tell its
        group."""
        joiners = self._joiners
        if joiners:
            hub = self._hub
            for g in joiners:
                hub.schedule(g)
        self._joiners = None
        if self._group is not None:
            self._group._child_done(self)

    def _sole_ended(self):
        """A forked child's thread ended (keep_only): the last one, or an
        exit asked for, ends the process."""
        hub = self._hub
        hub._live -= 1
        if hub._live <= 0 or hub._exit_status is not None:
            _exit_as_last_thread(hub._exit_status or 0)

    def _report(self, e):
        import traceback
        sys.stderr.write("socket2: exception in thread %r (nobody joined "
                         "it):\n" % self.name)
        traceback.print_exception(type(e), e, e.__traceback__,
                                  file=sys.stderr)
        sys.stderr.flush()

    @property
    def finished(self):
        """True once the thread's function returned or raised."""
        return self._finished

    @property
    def dead(self):
        """True once the thread's greenlet has ended (after ``finished``
        is set; a thread killed before it started is dead too)."""
        return self._g.dead

    def join(self, timeout=None, expires=None):
        """Wait for the thread to finish; return its result or re-raise its
        exception.  Raises ``socket2.TimeoutError`` if *timeout* seconds
        (or the ``clock()`` value *expires*) pass first."""
        if not self._finished:
            g = getcurrent()
            if g is self._g:
                raise Error("deadlock", "a thread cannot join itself")
            deadline = _deadline(timeout, expires)
            if self._joiners is None:
                self._joiners = []
            self._joiners.append(g)
            try:
                self._hub.suspend(deadline)
            finally:
                if self._joiners is not None and g in self._joiners:
                    self._joiners.remove(g)
        if self._exc is not None:
            raise self._exc
        return self._result

    def kill(self, exc=None):
        """Raise *exc* (default ``GreenletExit``, which ends the thread
        quietly) in the thread where it waits; its waits are cleaned up.
        A thread that never started (serve()'s, before its connection sent
        anything) ends without running its function.  Killing a finished
        thread does nothing."""
        g = self._g
        if self._finished or g.dead:
            return
        if exc is None:
            exc = GreenletExit()
        if not g:
            # Never started (serve()'s connection thread before its first
            # byte): it ends without running its function.
            self._cancelled = exc
        self._hub._throw(g, exc)

    def __repr__(self):
        state = "finished" if self._finished else "running"
        return "<socket2 Thread %r %s>" % (self.name, state)


def _time_arg(value, what, kind):
    """*value* as a float (``None`` for ``None`` or ``inf``: no limit);
    non-numbers raise ``TypeError`` and NaN ``ValueError`` (a NaN would
    also break the timer heap's order).  *kind* names it in the message."""
    if value is None:
        return None
    t = type(value)
    if t is not float and t is not int:
        import numbers
        if not isinstance(value, numbers.Real):
            raise TypeError("%s must be %s, not %s" % (what, kind,
                                                       t.__name__))
        value = float(value)
    if value != value:
        raise ValueError("%s must be %s, not NaN" % (what, kind))
    return None if value == _INF else value


def seconds_arg(value, what="timeout"):
    """*value* as seconds for a wait: a float >= 0, or ``None`` for no
    limit (``None`` or ``inf``).  NaN, negatives and non-numbers raise."""
    value = _time_arg(value, what, "a number of seconds")
    if value is not None and value < 0:
        raise ValueError("%s must be >= 0, got %r" % (what, value))
    return value


def deadline_arg(value, what="expires"):
    """*value* as a ``clock()`` deadline: ``None`` (or ``inf``) for none;
    NaN and non-numbers raise."""
    return _time_arg(value, what, "a clock() value")


def _deadline(timeout, expires):
    """The earlier of ``clock() + timeout`` and *expires*, validated;
    ``None`` when neither limits the wait."""
    if expires is not None:
        expires = deadline_arg(expires)
    if timeout is not None:
        timeout = seconds_arg(timeout)
        if timeout is not None:
            d = clock() + timeout
            return d if expires is None or d < expires else expires
    return expires


def newthread(func, *args, **kwargs):
    """Start ``func(*args, **kwargs)`` in a new cooperative thread.

    The new thread runs at once; control comes back to the caller when it
    first waits (or finishes).  Returns the :class:`Thread`.
    """
    if not callable(func):
        raise TypeError("newthread() needs a callable, not %s"
                        % type(func).__name__)
    hub = get_hub()
    return start_thread(hub, Thread(hub, func, args, kwargs))


def start_thread(hub, t):
    """Run the new :class:`Thread` *t* now; return it when it first waits
    (or finishes)."""
    cur = getcurrent()
    if cur is not hub.greenlet:
        # At the head of the ready queue, not its tail: when the new thread
        # first waits, its caller is the next to run, however deep threads
        # nest and whatever else is queued.
        hub.schedule_first(cur)
    t._g.switch()
    return t


def current():
    """The running :class:`Thread` (or the current greenlet outside one:
    the main greenlet, a greenlet of the user's own)."""
    g = getcurrent()
    try:
        return g._s2_thread
    except AttributeError:
        return g


def poll(timeout=None):
    """Wait for the next I/O event or timer (at most *timeout* seconds),
    resume the threads waiting on it, and return ``True``; return ``False``
    if the timeout passed first or nothing is left to wait for."""
    hub = get_hub()
    return hub.run_until(_deadline(timeout, None), once=True)


def start(timeout=None):
    """Run the loop until :func:`stop` is called, nothing is left to wait
    for, or *timeout* seconds pass.  Returns ``True`` unless the timeout
    ended it."""
    hub = get_hub()
    return hub.run_until(_deadline(timeout, None), once=False)


def stop():
    """Make the running :func:`start` return after this turn of the loop."""
    hub = _existing_hub()
    if hub is not None:
        hub.stop()


def sleep_until(t):
    """Wait until ``clock()`` reaches *t* (``inf``: until killed); other
    threads run meanwhile."""
    t = deadline_arg(t, "sleep_until()'s time")
    if t is not None and _finalizing():
        _nap_until(t)
        return
    try:
        hub = get_hub()
    except Error as e:
        if e.err != "closed" or t is None:
            raise
        _nap_until(t)       # this OS thread is ending, its hub closed
        return
    if t is None:
        hub._switch_to_hub()
        return
    entry = hub._add_timer(t, hub._fire_resume, getcurrent())
    try:
        hub._switch_to_hub()
    finally:
        hub._cancel_timer(entry)


def _nap_until(t):
    """Block this OS thread until ``clock()`` reaches *t*: the interpreter
    is finalizing (a ``__del__`` of a module's global), when greenlets
    can no longer switch, or this OS thread is ending and its hub closed
    (a finalizer of a ``threading.local`` value); a real sleep, whatever
    is patched."""
    nap = _allocate_lock()
    nap.acquire()
    while True:
        left = t - clock()
        if left <= 0:
            return
        nap.acquire(True, min(left, _thread.TIMEOUT_MAX))


def sleep(seconds):
    """Wait *seconds* (``inf``: until killed); ``sleep(0)`` lets every
    other ready thread run."""
    seconds = seconds_arg(seconds, "sleep()'s seconds")
    if seconds is None:
        sleep_until(None)
        return
    if seconds == 0:
        hub = getattr(_local, "hub", None)      # (get_hub's own first try)
        if hub is None or _finalizing():
            if _finalizing() or _hub_of_an_ending_thread_closed():
                return      # (nothing else runs: see _nap_until)
            hub = get_hub()
        hub.schedule(getcurrent())
        hub._switch_to_hub()
        return
    sleep_until(clock() + seconds)


def _never(hub):
    """A handle for a timer set at infinity: it never fires."""
    return _Timer(hub, [_INF, 0, None, None])


def runat(t, func, *args, **kwargs):
    """Run ``func(*args)`` in a new thread when ``clock()`` reaches *t*;
    return a handle with ``cancel()``."""
    t = deadline_arg(t, "runat()'s time")
    hub = get_hub()
    if t is None:
        return _never(hub)
    return hub.call_at(t, func, args, kwargs)


def runafter(seconds, func, *args, **kwargs):
    """Run ``func(*args)`` in a new thread after *seconds*."""
    seconds = seconds_arg(seconds, "runafter()'s seconds")
    hub = get_hub()
    if seconds is None:
        return _never(hub)
    return hub.call_at(clock() + seconds, func, args, kwargs)


def runevery(seconds, func, *args, **kwargs):
    """Run ``func(*args)`` in a new thread every *seconds* until the
    handle's ``cancel()``."""
    seconds = seconds_arg(seconds, "runevery()'s interval")
    hub = get_hub()
    if seconds is None:
        return _never(hub)
    if seconds == 0:
        raise ValueError("runevery() needs an interval > 0")
    return hub.call_at(clock() + seconds, func, args, kwargs,
                       interval=seconds)
