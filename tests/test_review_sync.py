"""Cancellation during a hand-off (issue 17, class B): an operation either
happened and returns, or did not happen and raises -- never both; and
``Condition.wait`` always returns or raises holding its lock.

Each interruption comes in three kinds: ``kill()``, a group's cancel and a
timeout scope.  Where the interruption must land between a hand-off and the
waiter's turn to run, both are made due timers and the OS thread is held
(``time.sleep``) past both, so that they fire in one pass of the hub's
timers, in deadline order, before the woken waiter runs."""
import queue
import threading
import time

import pytest
from greenlet import GreenletExit

import socket2
from socket2 import hub as _hub


KINDS = ["kill", "cancel", "scope"]


def _no_timers():
    assert _hub.get_hub().live_timers() == 0


class _Interruptible:
    """Run *fn* in a thread that one of the three kinds of interruption
    can reach: ``interrupt()`` kills it, cancels its group, or (``scope``)
    nothing: *fn* runs under ``socket2.timeout(expires=scope_at)``."""

    def __init__(self, kind, fn, scope_at=None):
        self.kind = kind
        self.group = None
        if kind == "scope":
            def scoped():
                with socket2.timeout(expires=scope_at, raise_=False):
                    fn()
            self.thread = socket2.newthread(scoped)
        elif kind == "cancel":
            started = []

            def body():
                with socket2.group() as g:
                    self.group = g
                    started.append(g.spawn(fn))
            self.body = socket2.newthread(body)
            self.thread = started[0]
        else:
            self.thread = socket2.newthread(fn)

    def interrupt(self):
        if self.kind == "kill":
            self.thread.kill()
        elif self.kind == "cancel":
            self.group.cancel()

    def finish(self):
        """Let it run out; the group's body too."""
        deadline = time.monotonic() + 2
        while not self.thread.finished and time.monotonic() < deadline:
            socket2.sleep(0.001)
        if self.kind == "cancel":
            self.body.join(timeout=2)   # its child ended quietly: no error
        assert self.thread.finished

    @property
    def expected(self):
        return "TimeoutError" if self.kind == "scope" else "GreenletExit"


def _outcome(log):
    """Append what the call did to *log*: 'done' or the exception's name."""
    def wrap(fn):
        def run():
            try:
                fn()
            except BaseException as e:   # noqa: B902 - recorded, re-raised
                log.append(type(e).__name__)
                raise
            log.append("done")
        return run
    return wrap


# -- 4: Condition.wait interrupted while taking its lock back -----------------


@pytest.mark.parametrize("kind", KINDS)
def test_condition_wait_interrupted_while_reacquiring_holds_the_lock(kind):
    cond = socket2.Condition()
    seen, inside = [], []

    def waiter():
        with cond:
            try:
                cond.wait()
            except BaseException as e:   # noqa: B902 - recorded, re-raised
                # The lock is ours here.
                seen.append((type(e).__name__, cond._lock.locked()))
                raise

    a = _Interruptible(kind, waiter, scope_at=socket2.clock() + 0.01)
    socket2.sleep(0)                 # a waits on the condition
    cond.acquire()                   # the main program is inside now
    cond.notify()
    socket2.sleep(0)                 # a runs and waits for the lock
    # A third thread wants in too; it must wait for the main program.
    c = socket2.newthread(lambda: (cond.acquire(), inside.append("c"),
                                   cond.release()))
    a.interrupt()
    socket2.sleep(0.03)              # kill/cancel delivered; scope fires
    # a did not leave with the lock released under the main program's feet.
    assert cond._lock.locked(), "a's with-block released a lock it lacked"
    assert inside == [] and seen == [] and not a.thread.finished
    cond.release()                   # a gets the lock, raises, releases it
    a.finish()
    c.join(timeout=2)
    assert seen == [(a.expected, True)]
    assert inside == ["c"] and not cond._lock.locked()
    _no_timers()


def test_condition_notified_then_killed_while_reacquiring_passes_it_on():
    cond = socket2.Condition()
    woke = []

    def waiter(name):
        with cond:
            cond.wait()
            woke.append(name)

    a = socket2.newthread(waiter, "a")
    socket2.newthread(waiter, "b")
    with cond:
        cond.notify()                # a is notified ...
        socket2.sleep(0)             # ... runs, and waits for the lock
        a.kill()                     # ... and is killed there
    socket2.sleep(0.01)
    # a raised: its notification went to b, which would wait for ever else.
    assert a.finished and woke == ["b"] and not cond._lock.locked()


def test_condition_reacquire_keeps_a_kill_that_follows_a_timeout():
    cond = socket2.Condition()
    log = []

    def waiter():
        with socket2.timeout(0.01, raise_=False):
            with cond:
                cond.wait()
        log.append("went on")        # the scope swallowed the kill: wrong

    a = socket2.newthread(_outcome(log)(waiter))
    cond.acquire()
    cond.notify()
    socket2.sleep(0.03)              # a waits for the lock; its scope fires
    a.kill()                         # ... and then a kill comes
    cond.release()
    socket2.sleep(0.01)
    assert a.finished and log == ["GreenletExit"]
    assert not cond._lock.locked()


def test_condition_reacquire_gives_up_on_a_deadlock():
    # The main program waits on a condition whose lock a thread holds while
    # it waits for a lock the main program holds: nothing can ever run.
    # The shielded re-acquire must raise the deadlock, not retry it forever.
    cond = socket2.Condition()
    other = socket2.Lock()
    other.acquire()

    def thread():
        with cond:
            cond.notify()
            other.acquire()
        other.release()

    cond.acquire()
    t = socket2.newthread(lambda: (socket2.sleep(0.005), thread()))
    t0 = time.monotonic()
    with pytest.raises(socket2.Error) as info:
        cond.wait()
    assert info.value.err == "deadlock" and time.monotonic() - t0 < 1
    other.release()                  # the thread finishes
    t.join(timeout=2)
    assert t.finished and not cond._lock.locked()


# -- 5: Queue.put interrupted after a getter made room ------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_queue_put_interrupted_after_room_was_made_did_not_put(kind):
    q = socket2.Queue(1)
    q.put("a")
    log, got = [], []
    start = socket2.clock()
    p = _Interruptible(kind, _outcome(log)(lambda: q.put("b")),
                       scope_at=start + 0.02)
    socket2.sleep(0)                          # p waits: the queue is full
    socket2.runafter(0.005, lambda: got.append(q.get()))  # makes room ...
    if kind != "scope":
        socket2.runafter(0.02, p.interrupt)   # ... then the interruption
    time.sleep(0.05)                 # both are due: they fire in one pass
    socket2.sleep(0.01)
    p.finish()
    assert got == ["a"]
    # Never both: raised and enqueued (a caller retrying would duplicate).
    assert log == [p.expected]
    assert q.qsize() == 0 and q._unfinished == 1
    # The slot it was handed is free again.
    q.put_nowait("c")
    assert q.get_nowait() == "c" and q.empty()
    _no_timers()


def test_queue_put_interrupted_after_room_was_made_passes_the_slot_on():
    q = socket2.Queue(1)
    q.put("a")
    log = []
    first = socket2.newthread(_outcome(log)(lambda: q.put("b")))
    second = socket2.newthread(_outcome(log)(lambda: q.put("c")))
    socket2.runafter(0.005, q.get)           # room for the first putter ...
    socket2.runafter(0.01, first.kill)       # ... killed before it runs
    time.sleep(0.03)
    socket2.sleep(0.01)
    # The slot the first was handed went to the second, which would wait
    # for ever else (the queue is not full).
    assert log == ["GreenletExit", "done"]
    assert first.finished and second.finished
    assert q.get_nowait() == "c" and q.empty()
    q.put_nowait("d")                        # no slot is left reserved
    assert q.full() and q.get_nowait() == "d"
    _no_timers()


def test_queue_put_order_with_slots_handed_to_waiting_putters():
    q = socket2.Queue(2)
    q.put(0)
    q.put(1)
    for i in range(2, 6):
        socket2.newthread(q.put, i)
    got = [q.get() for _ in range(6)]      # each get makes room for one
    assert got == [0, 1, 2, 3, 4, 5]
    socket2.sleep(0)
    assert q.empty() and not q.full()
    q.put_nowait(6)                          # no slot is left reserved
    q.put_nowait(7)
    with pytest.raises(queue.Full):
        q.put_nowait(8)
    assert [q.get_nowait(), q.get_nowait()] == [6, 7]


def test_queue_closed_before_a_putter_handed_a_slot_ran_refuses_it():
    q = socket2.Queue(1)
    q.put("a")
    log = []
    p = socket2.newthread(_outcome(log)(lambda: q.put("b")))
    assert q.get() == "a"            # p is handed the slot, not yet run
    q.close()
    socket2.sleep(0)
    # Refused like any putter still waiting at close(): not added.
    assert p.finished and log == ["Error"] and list(q) == []


# -- a put carried from another OS thread -------------------------------------


def _queue_with_owner():
    """A queue whose own OS thread is this one (a get waited here once)."""
    q = socket2.Queue()
    t = socket2.newthread(q.get)
    t.kill()
    return q


def test_foreign_put_that_timed_out_is_not_done_later():
    q = _queue_with_owner()
    log = []
    returned, finish = threading.Event(), threading.Event()

    def foreign():
        try:
            q.put("x", timeout=0.02)
        except socket2.TimeoutError:
            log.append("timeout")
        else:
            log.append("done")
        returned.set()
        finish.wait(2)             # keep this thread's hub open meanwhile

    t = threading.Thread(target=_in_own_hub(foreign))
    t.start()
    # This OS thread's hub is held: the carried put waits for it while the
    # putter's deadline passes.
    assert returned.wait(2)
    socket2.sleep(0.02)            # now the carried put is looked at
    finish.set()
    t.join(2)
    assert log == ["timeout"]
    assert q.qsize() == 0, "the put raised TimeoutError but was done"
    _no_timers()


def test_foreign_put_done_then_killed_returns_and_is_killed_after():
    q = _queue_with_owner()
    log = []
    waiting, put_done = threading.Event(), threading.Event()

    def foreign():
        def putter():
            try:
                q.put("x")
                log.append("returned")
                socket2.sleep(5)       # the kill is delivered here
            except GreenletExit:
                log.append("killed")
                raise
        p = socket2.newthread(putter)  # waits for the carried put
        waiting.set()
        # The put is done in the queue's thread while this hub is held,
        # so its outcome has not reached p when the kill comes.
        put_done.wait(2)
        p.kill()
        p.join(timeout=2)

    t = threading.Thread(target=_in_own_hub(foreign))
    t.start()
    assert waiting.wait(2)
    deadline = time.monotonic() + 2
    while q.qsize() == 0 and time.monotonic() < deadline:
        socket2.sleep(0.001)
    put_done.set()
    t.join(2)
    assert not t.is_alive()
    # The item is in once, and the put said so; the kill was not lost.
    assert log == ["returned", "killed"]
    assert q.get_nowait() == "x" and q.empty()


def _in_own_hub(fn):
    def run():
        try:
            fn()
        finally:
            h = getattr(_hub._local, "hub", None)
            if h is not None:
                h.close()
    return run


# -- group: two interruptions -------------------------------------------------


def test_group_exit_raises_a_kill_that_follows_a_timeout():
    log = []

    def child():
        try:
            socket2.sleep(10)
        finally:
            socket2.sleep(0.05)      # cleanup that waits: exit waits too

    def body():
        with socket2.timeout(0.01, raise_=False):
            with socket2.group() as g:
                g.spawn(child)
        log.append("went on")        # the scope swallowed the kill: wrong

    b = socket2.newthread(_outcome(log)(body))
    socket2.sleep(0.03)              # the scope fired; the child cleans up
    b.kill()                         # the body is killed meanwhile
    socket2.sleep(0.1)
    assert b.finished and log == ["GreenletExit"]
    _no_timers()
