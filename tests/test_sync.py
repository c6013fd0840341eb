"""Coordination primitives: Event, Lock, Semaphore, BoundedSemaphore,
Condition, Queue, group() and run_in_thread(), on every poller."""
import queue
import sys
import threading
import time

import pytest
from greenlet import GreenletExit

import socket2
from socket2 import hub as _hub


def _no_timers():
    assert _hub.get_hub().live_timers() == 0


def _in_other_os_thread(fn):
    """Run *fn* in a new OS thread (which gets a hub of its own, closed
    afterwards); return the thread, started."""
    def run():
        try:
            fn()
        finally:
            h = getattr(_hub._local, "hub", None)
            if h is not None:
                h.close()
    t = threading.Thread(target=run)
    t.start()
    return t


# -- Event --------------------------------------------------------------------


def test_event_set_wait_clear():
    ev = socket2.Event()
    assert not ev.is_set()
    woke = []
    for i in range(3):
        socket2.newthread(lambda i=i: woke.append((i, ev.wait())))
    socket2.sleep(0.01)
    assert woke == []
    ev.set()
    assert ev.is_set() and ev.wait() is True
    socket2.sleep(0)
    assert woke == [(0, True), (1, True), (2, True)]
    ev.clear()
    with pytest.raises(socket2.TimeoutError):
        ev.wait(timeout=0.01)
    _no_timers()


def test_event_set_from_another_os_thread_wakes_main():
    ev = socket2.Event()
    t = threading.Timer(0.05, ev.set)
    t.start()
    t0 = time.monotonic()
    # Nothing else to wait for in this hub: an Event wait is not a
    # deadlock, since another OS thread may set it (and does).
    assert ev.wait(timeout=5) is True
    assert time.monotonic() - t0 < 2
    t.join()


def test_event_set_from_another_hub_resumes_waiters_in_their_own_hub():
    ev = socket2.Event()
    seen = []

    def other():
        def waiter():
            ev.wait(timeout=5)
            seen.append(("other", threading.get_ident()))
        socket2.newthread(waiter)
        socket2.start(timeout=5)

    me = threading.get_ident()
    socket2.newthread(lambda: (ev.wait(timeout=5),
                               seen.append(("main", threading.get_ident()))))
    t = _in_other_os_thread(other)
    socket2.sleep(0.05)
    _in_other_os_thread(ev.set).join()
    socket2.sleep(0.05)
    t.join()
    assert ("main", me) in seen
    assert [s for s in seen if s[0] == "other"][0][1] == t.ident


def test_event_waiter_killed_leaves_no_trace():
    ev = socket2.Event()
    t = socket2.newthread(ev.wait)
    t.kill()
    assert t.finished and not ev._waiters
    assert _hub.get_hub()._external == 0
    ev.set()


# -- Lock and semaphores ------------------------------------------------------


def test_lock_basics_and_errors():
    lock = socket2.Lock()
    assert lock.acquire() is True and lock.locked()
    assert lock.acquire(blocking=False) is False
    with pytest.raises(socket2.TimeoutError):
        lock.acquire(timeout=0.01)
    lock.release()
    with pytest.raises(RuntimeError, match="release unlocked lock"):
        lock.release()
    with lock:
        assert lock.locked()
    assert not lock.locked()
    _no_timers()


def test_lock_is_first_come_first_served_without_barging():
    lock = socket2.Lock()
    order = []
    lock.acquire()

    def worker(i):
        with lock:
            order.append(i)
            socket2.sleep(0)

    for i in range(5):
        socket2.newthread(worker, i)
    lock.release()
    # The lock went straight to worker 0: a newcomer cannot take it.
    assert lock.acquire(blocking=False) is False
    socket2.sleep(0.01)
    assert order == [0, 1, 2, 3, 4]
    assert not lock.locked()


def test_main_greenlet_waits_for_a_lock_held_by_a_thread():
    lock = socket2.Lock()
    socket2.newthread(lambda: (lock.acquire(), socket2.sleep(0.02),
                               lock.release()))
    t0 = time.monotonic()
    with lock:
        assert time.monotonic() - t0 >= 0.015


def test_killed_lock_waiter_holds_nothing():
    lock = socket2.Lock()
    lock.acquire()
    got = []
    a = socket2.newthread(lambda: (lock.acquire(), got.append("a")))
    b = socket2.newthread(lambda: (lock.acquire(), got.append("b"),
                                   lock.release()))
    a.kill()
    lock.release()
    socket2.sleep(0)
    assert got == ["b"] and not lock.locked() and b.finished


def test_lock_handed_over_then_killed_passes_it_on():
    lock = socket2.Lock()
    lock.acquire()
    got = []

    def waiter(name):
        try:
            lock.acquire()
        except GreenletExit:
            got.append(name + " killed")
            raise
        got.append(name)
        lock.release()

    a = socket2.newthread(waiter, "a")
    socket2.newthread(waiter, "b")
    lock.release()          # handed to a, which is queued, not running yet
    a.kill()                # ... and killed before it runs
    socket2.sleep(0.01)
    assert got == ["a killed", "b"] and not lock.locked()


def test_timed_out_waiter_leaves_the_queue():
    lock = socket2.Lock()
    lock.acquire()
    with pytest.raises(socket2.TimeoutError):
        lock.acquire(timeout=0.01)
    assert not lock._waiters
    lock.release()
    _no_timers()


def test_semaphore_and_bounded_semaphore():
    sem = socket2.Semaphore(2)
    inside, peak = [0], [0]

    def worker():
        with sem:
            inside[0] += 1
            peak[0] = max(peak[0], inside[0])
            socket2.sleep(0.001)
            inside[0] -= 1

    ts = [socket2.newthread(worker) for _ in range(10)]
    for t in ts:
        t.join()
    assert peak[0] == 2 and sem.value == 2
    sem.release()
    assert sem.value == 3       # a plain semaphore may grow
    b = socket2.BoundedSemaphore(1)
    with pytest.raises(ValueError, match="released too many times"):
        b.release()
    with pytest.raises(ValueError):
        socket2.Semaphore(-1)
    assert b.acquire(blocking=False) and not b.acquire(blocking=False)
    b.release()


# -- Condition ----------------------------------------------------------------


def test_condition_notify_and_notify_all_in_order():
    cond = socket2.Condition()
    woke = []

    def waiter(i):
        with cond:
            cond.wait()
            woke.append(i)

    for i in range(4):
        socket2.newthread(waiter, i)
    with cond:
        cond.notify()
    socket2.sleep(0)
    assert woke == [0]
    with cond:
        cond.notify_all()
    socket2.sleep(0)
    assert woke == [0, 1, 2, 3]
    with pytest.raises(RuntimeError):
        cond.notify()
    with pytest.raises(RuntimeError):
        cond.wait()


def test_condition_wait_timeout_holds_the_lock_again():
    cond = socket2.Condition()
    with cond:
        with pytest.raises(socket2.TimeoutError):
            cond.wait(timeout=0.01)
        assert cond._lock.locked()
    assert not cond._lock.locked()
    _no_timers()


def test_notified_then_killed_passes_the_notification_on():
    cond = socket2.Condition()
    woke = []

    def waiter(name):
        with cond:
            cond.wait()
            woke.append(name)

    a = socket2.newthread(waiter, "a")
    socket2.newthread(waiter, "b")
    with cond:
        cond.notify()       # a is handed the notification ...
    a.kill()                # ... and killed before it runs
    socket2.sleep(0.01)
    assert woke == ["b"]


def test_condition_wait_for_producer_consumer():
    cond = socket2.Condition()
    items = []

    def producer():
        for i in range(5):
            socket2.sleep(0.001)
            with cond:
                items.append(i)
                cond.notify()

    socket2.newthread(producer)
    got = []
    while len(got) < 5:
        with cond:
            cond.wait_for(lambda: items, timeout=5)
            got.append(items.pop(0))
    assert got == [0, 1, 2, 3, 4]


# -- Queue --------------------------------------------------------------------


def test_queue_fifo_nowait_and_bounds():
    q = socket2.Queue(2)
    q.put(1)
    q.put_nowait(2)
    assert q.full() and q.qsize() == 2
    with pytest.raises(queue.Full):
        q.put_nowait(3)
    with pytest.raises(socket2.TimeoutError):
        q.put(3, timeout=0.01)
    assert q.get() == 1 and q.get_nowait() == 2
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(socket2.TimeoutError):
        q.get(timeout=0.01)
    assert q.empty()
    _no_timers()


def test_queue_blocking_put_and_get_order():
    q = socket2.Queue(1)
    got = []

    def getter(i):
        got.append((i, q.get()))

    for i in range(3):
        socket2.newthread(getter, i)
    for x in "abc":
        q.put(x)
    socket2.sleep(0)
    assert got == [(0, "a"), (1, "b"), (2, "c")]
    q.put("x")
    order = []
    for x in "yz":
        socket2.newthread(lambda x=x: (q.put(x), order.append(x)))
    assert [q.get() for _ in range(3)] == ["x", "y", "z"]


def test_killed_getter_takes_no_item():
    q = socket2.Queue()
    a = socket2.newthread(q.get)
    b = socket2.newthread(q.get)
    a.kill()
    q.put("item")
    assert b.join() == "item"


def test_getter_handed_an_item_then_killed_gives_it_back():
    q = socket2.Queue()
    a = socket2.newthread(q.get)
    q.put("first")          # handed to a, queued, not running yet
    a.kill()
    socket2.sleep(0)        # a runs, sees the kill, and gives the item back
    assert a.finished and q.get_nowait() == "first"


def test_queue_close_and_iteration():
    q = socket2.Queue(1)
    waiting_getter = None
    q2 = socket2.Queue()
    waiting_getter = socket2.newthread(q2.get)
    q2.close()
    with pytest.raises(socket2.Error) as e:
        waiting_getter.join()
    assert e.value.err == "closed"

    def producer():
        for i in range(5):
            q.put(i)
        q.close()

    socket2.newthread(producer)
    assert list(q) == [0, 1, 2, 3, 4]
    with pytest.raises(socket2.Error) as e:
        q.put(9)
    assert e.value.err == "closed"
    with pytest.raises(socket2.Error):
        q.get()
    # A waiting putter is refused too, its item not added.
    q3 = socket2.Queue(1)
    q3.put(1)
    p = socket2.newthread(q3.put, 2)
    q3.close()
    with pytest.raises(socket2.Error):
        p.join()
    assert list(q3) == [1]


def test_queue_task_done_and_join():
    q = socket2.Queue()
    for i in range(3):
        q.put(i)

    def worker():
        for _ in range(3):
            q.get()
            socket2.sleep(0.001)
            q.task_done()

    socket2.newthread(worker)
    q.join(timeout=5)
    assert q._unfinished == 0
    with pytest.raises(ValueError):
        q.task_done()


def test_queue_put_from_another_os_thread():
    q = socket2.Queue(2)
    got = []
    first = socket2.newthread(lambda: got.append(q.get()))   # owns the hub
    t = _in_other_os_thread(lambda: [q.put(i, timeout=5) for i in range(10)])
    while len(got) < 10:
        got.append(q.get(timeout=5))
    t.join()
    first.join()
    assert sorted(got) == list(range(10))
    assert got[1:] == sorted(got[1:])


# -- group ---------------------------------------------------------------------


def test_group_waits_for_every_thread():
    done = []
    with socket2.group() as g:
        for i in range(5):
            t = g.spawn(lambda i=i: (socket2.sleep(0.001 * i), done.append(i)))
            assert isinstance(t, socket2.Thread)
    assert sorted(done) == [0, 1, 2, 3, 4]
    assert len(g) == 0


def test_group_failure_kills_the_rest_and_is_raised():
    cleaned = []

    def slow(i):
        try:
            socket2.sleep(10)
        finally:
            cleaned.append(i)

    def bad():
        socket2.sleep(0.01)
        raise KeyError("boom")

    t0 = time.monotonic()
    with pytest.raises(BaseException) as info:
        with socket2.group() as g:
            for i in range(3):
                g.spawn(slow, i)
            g.spawn(bad)
    assert time.monotonic() - t0 < 5
    assert sorted(cleaned) == [0, 1, 2]     # each saw the kill in finally
    if sys.version_info >= (3, 11):
        assert isinstance(info.value, BaseExceptionGroup)
        assert [type(e) for e in info.value.exceptions] == [KeyError]
    else:
        assert isinstance(info.value, KeyError)
    _no_timers()


def test_group_failure_interrupts_a_waiting_body():
    with pytest.raises(BaseException) as info:
        with socket2.group() as g:
            g.spawn(lambda: (socket2.sleep(0.01), 1 / 0))
            socket2.sleep(10)           # the body waits for something else
    excs = getattr(info.value, "exceptions", [info.value])
    assert [type(e) for e in excs] == [ZeroDivisionError]


def test_group_limit_is_never_exceeded():
    running, peak, total = [0], [0], [0]

    def job():
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        socket2.sleep(0.001)
        running[0] -= 1
        total[0] += 1

    with socket2.group(limit=3) as g:
        for _ in range(30):
            g.spawn(job)
            assert running[0] <= 3
    assert peak[0] == 3 and total[0] == 30


def test_group_cancel_and_body_exception():
    ended = []

    def forever(i):
        try:
            socket2.sleep(10)
        finally:
            ended.append(i)

    with socket2.group() as g:
        g.spawn(forever, 1)
        g.spawn(forever, 2)
        g.cancel()
        with pytest.raises(socket2.Error, match="cancelled"):
            g.spawn(forever, 3)
    assert sorted(ended) == [1, 2]
    with pytest.raises(RuntimeError, match="outside"):
        g.spawn(forever, 3)
    ended.clear()
    with pytest.raises(ValueError, match="body"):
        with socket2.group() as g:
            g.spawn(forever, 1)
            raise ValueError("body")
    assert ended == [1]


def test_timeout_around_a_group_cancels_it_cleanly():
    ended = []

    def forever():
        try:
            socket2.sleep(10)
        finally:
            ended.append(1)

    with socket2.timeout(0.02, raise_=False) as scope:
        with socket2.group() as g:
            g.spawn(forever)
            g.spawn(forever)
    assert scope.expired and ended == [1, 1]
    _no_timers()


def test_nested_groups():
    log = []
    with socket2.group() as outer:
        for k in range(2):
            def inner_work(k=k):
                with socket2.group(limit=2) as inner:
                    for i in range(3):
                        inner.spawn(lambda i=i: (socket2.sleep(0.001),
                                                 log.append((k, i))))
                log.append((k, "done"))
            outer.spawn(inner_work)
    for k in range(2):
        assert log.index((k, "done")) > max(
            log.index((k, i)) for i in range(3))
    with pytest.raises(BaseException) as info:
        with socket2.group() as outer:
            def failing_inner():
                with socket2.group() as inner:
                    inner.spawn(lambda: 1 / 0)
            outer.spawn(failing_inner)
    flat = info.value
    while hasattr(flat, "exceptions"):
        flat = flat.exceptions[0]
    assert isinstance(flat, ZeroDivisionError)


# -- run_in_thread --------------------------------------------------------------


def test_run_in_thread_from_a_worker_keeps_its_timeout():
    """A worker OS thread may itself call run_in_thread: with a timeout
    it waits for another worker for at most that long (without one, the
    call runs in place: see _offload.run).  (In a process of its own:
    the worker's hub keeps its descriptors until the worker ends.)"""
    import subprocess
    code = """if 1:
        import time, socket2
        def outer():
            t0 = time.monotonic()
            try:
                socket2.run_in_thread(time.sleep, 2, timeout=0.2)
            except socket2.TimeoutError:
                return time.monotonic() - t0
            return None
        took = socket2.run_in_thread(outer)
        assert took is not None and took < 1.5, took
        assert socket2.run_in_thread(
            lambda: socket2.run_in_thread(pow, 2, 5)) == 32
        print("ok")
    """
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_run_in_thread_result_exception_and_concurrency():
    assert socket2.run_in_thread(pow, 2, 10) == 1024
    assert socket2.run_in_thread(int, "ff", base=16) == 255
    with pytest.raises(ZeroDivisionError):
        socket2.run_in_thread(lambda: 1 / 0)
    ticks = []
    ticker = socket2.runevery(0.01, ticks.append, 1)
    t0 = time.monotonic()
    with socket2.group() as g:
        for _ in range(4):
            g.spawn(socket2.run_in_thread, time.sleep, 0.2)
    elapsed = time.monotonic() - t0
    ticker.cancel()
    assert elapsed < 0.6            # in parallel, not 4 x 0.2 s in a row
    assert len(ticks) >= 5          # the hub kept running meanwhile


def test_run_in_thread_timeout_abandons_the_call():
    release = threading.Event()
    with pytest.raises(socket2.TimeoutError):
        socket2.run_in_thread(release.wait, 5, timeout=0.02)
    release.set()
    assert _hub.get_hub()._external == 0
    assert socket2.run_in_thread(lambda: "after") == "after"
    _no_timers()


def test_thread_pool_size():
    old = socket2.thread_pool_size()
    try:
        assert socket2.thread_pool_size(2) == 2
        t0 = time.monotonic()
        with socket2.group() as g:
            for _ in range(4):
                g.spawn(socket2.run_in_thread, time.sleep, 0.1)
        assert time.monotonic() - t0 >= 0.19      # two rounds of two
        with pytest.raises(ValueError):
            socket2.thread_pool_size(0)
    finally:
        socket2.thread_pool_size(old)


# -- stress ----------------------------------------------------------------------


@pytest.mark.time_limit(120)
def test_ten_thousand_threads_on_one_lock_and_one_queue():
    lock = socket2.Lock()
    q = socket2.Queue(maxsize=100)
    counter = [0]
    n = 10000

    def producer(i):
        with lock:
            v = counter[0]
            socket2.sleep(0)            # others run while the lock is held
            counter[0] = v + 1
        q.put(i)

    total = [0, 0]

    def consumer():
        for item in q:
            total[0] += item
            total[1] += 1

    consumers = [socket2.newthread(consumer) for _ in range(10)]
    with socket2.group() as g:
        for i in range(n):
            g.spawn(producer, i)
    q.close()
    for c in consumers:
        c.join()
    assert counter[0] == n
    assert total == [n * (n - 1) // 2, n]
