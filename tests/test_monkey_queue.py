"""patch_all(queue=True): the standard queue classes between socket2
threads and real OS threads, in programs run under ``python -m
socket2.monkey`` (see test_monkey_threading.py)."""
import pytest

from test_monkey_threading import NEEDS_THREADS, run_program

pytestmark = [pytest.mark.one_poller, NEEDS_THREADS]


def test_queue_pipeline_between_socket2_threads(tmp_path):
    res, _ = run_program(tmp_path, """
        import json, queue, threading, time
        q, results = queue.Queue(maxsize=2), queue.Queue()
        def producer():
            for i in range(20):
                q.put(i)                 # waits while two are queued
            q.put(None)
        def consumer():
            while True:
                item = q.get()
                if item is None:
                    q.task_done()
                    break
                time.sleep(0.01)
                results.put(item * 2)
                q.task_done()
        t0 = time.monotonic()
        ts = [threading.Thread(target=producer),
              threading.Thread(target=consumer)]
        [t.start() for t in ts]
        q.join()
        [t.join() for t in ts]
        got = [results.get_nowait() for _ in range(results.qsize())]
        out = {"got": got, "t": time.monotonic() - t0}
        # get(timeout=) raises Empty, put(timeout=) Full, in time
        try:
            queue.Queue().get(timeout=0.05)
        except queue.Empty:
            out["empty"] = True
        full = queue.Queue(1); full.put(1)
        try:
            full.put(2, timeout=0.05)
        except queue.Full:
            out["full"] = True
        lifo, prio = queue.LifoQueue(), queue.PriorityQueue()
        for i in (3, 1, 2):
            lifo.put(i); prio.put(i)
        out["lifo"] = [lifo.get() for _ in range(3)]
        out["prio"] = [prio.get() for _ in range(3)]
        # one consumer blocked on get(): the others keep running
        ticks = []
        blocked = queue.Queue()
        def block():
            out["late"] = blocked.get()
        b = threading.Thread(target=block); b.start()
        for _ in range(5):
            time.sleep(0.01); ticks.append(1)
        blocked.put("late")
        b.join()
        out["ticks"] = len(ticks)
        print(json.dumps(out))
    """)
    assert res["got"] == [i * 2 for i in range(20)]
    assert res["t"] < 2
    assert res["empty"] is True and res["full"] is True
    assert res["lifo"] == [2, 1, 3] and res["prio"] == [1, 2, 3]
    assert res["late"] == "late" and res["ticks"] == 5


def test_simple_queue_is_cooperative(tmp_path):
    res, _ = run_program(tmp_path, """
        import json, queue, threading, time
        import socket2, socket2.monkey
        OSThread = socket2.monkey.original("threading", "Thread")
        q = queue.SimpleQueue()
        out = {"type": type(q).__module__}
        t0 = time.monotonic()
        try:
            q.get(timeout=0.1)
        except queue.Empty:
            out["empty"] = time.monotonic() - t0
        try:
            q.get_nowait()
        except queue.Empty:
            out["nowait"] = True
        try:
            q.get(timeout=-1)
        except ValueError:
            out["negative"] = True
        # 8 socket2 threads each wait 0.5 s for an item: concurrently
        got = []
        def getter(i):
            try:
                q.get(timeout=0.5)
            except queue.Empty:
                got.append(i)
        t0 = time.monotonic()
        ts = [threading.Thread(target=getter, args=(i,)) for i in range(8)]
        [t.start() for t in ts]; [t.join() for t in ts]
        out["parallel"] = [len(got), time.monotonic() - t0]
        # a real OS thread puts, socket2 threads get; and the reverse
        items = []
        def consume(n):
            for _ in range(n):
                items.append(q.get(timeout=5))
        c = threading.Thread(target=consume, args=(100,)); c.start()
        p = OSThread(target=lambda: [q.put(i) for i in range(100)])
        p.start(); p.join(); c.join()
        out["from_os"] = items == list(range(100))
        back = queue.SimpleQueue()
        c2 = OSThread(target=lambda: items.append(back.get(timeout=5)))
        c2.start()
        time.sleep(0.05)
        back.put("to os")
        c2.join()
        out["to_os"] = items[-1]
        out["size"] = [q.qsize(), q.empty()]
        print(json.dumps(out))
    """)
    assert res["type"] == "socket2.green.queue"
    assert 0.09 <= res["empty"] < 1.0 and res["nowait"] and res["negative"]
    assert res["parallel"][0] == 8 and res["parallel"][1] < 2, res
    assert res["from_os"] is True and res["to_os"] == "to os"
    assert res["size"] == [0, True]


def test_compiled_put_get_with_os_threads_and_every_fallback(tmp_path):
    """The put/get that need not wait (compiled: green_speedups.c, or the
    Python twin) against real OS threads on both sides, and the paths
    they hand to Python: waits, block=False, timeouts, maxsize reassigned,
    LifoQueue and PriorityQueue, a subclass overriding a hook."""
    res, _ = run_program(tmp_path, """
        import json, queue, threading
        from socket2 import _hotpath, monkey
        out = {"compiled": queue.Queue.put.__name__ == "_c_put",
               "expect": _hotpath.COMPILED}
        Thread = monkey.original("threading", "Thread")
        q = queue.Queue(maxsize=8)
        N = 20000
        got = []
        def produce(base):
            for i in range(N):
                q.put(base + i)
        def consume():
            for _ in range(2 * N):
                got.append(q.get())
        # One real OS thread and one socket2 thread producing, a real OS
        # thread consuming: every item once, each producer's in order.
        os_t = [Thread(target=produce, args=(0,)), Thread(target=consume)]
        [t.start() for t in os_t]
        g = threading.Thread(target=produce, args=(10 ** 6,))
        g.start(); g.join()
        [t.join() for t in os_t]
        a = [x for x in got if x < 10 ** 6]
        b = [x - 10 ** 6 for x in got if x >= 10 ** 6]
        out["transfer"] = [len(got), a == list(range(N)),
                           b == list(range(N))]
        out["tasks"] = q.unfinished_tasks
        for _ in range(2 * N):
            q.task_done()
        q.join()
        e = []
        try:
            q.get(block=False)
        except queue.Empty:
            e.append("empty")
        try:
            q.get(timeout=0.01)
        except queue.Empty:
            e.append("empty-timeout")
        for i in range(8):
            q.put(i)
        try:
            q.put(9, block=False)
        except queue.Full:
            e.append("full")
        q.maxsize = 10           # reassigned: room for two more
        q.put(9); q.put(10)
        try:
            q.put_nowait(11)
        except queue.Full:
            e.append("full-after-resize")
        out["errors"] = e
        out["drained"] = [q.get() for _ in range(10)]
        lq, pq = queue.LifoQueue(), queue.PriorityQueue()
        for i in (3, 1, 2):
            lq.put(i); pq.put(i)
        out["lifo"] = [lq.get() for _ in range(3)]
        out["prio"] = [pq.get() for _ in range(3)]
        class Doubling(queue.Queue):
            def _put(self, item):
                self.queue.append(item * 2)
        d = Doubling()
        d.put(21)
        out["subclass"] = d.get()
        print(json.dumps(out))
    """)
    assert res["compiled"] == res["expect"]
    assert res["transfer"] == [40000, True, True]
    assert res["tasks"] == 40000
    assert res["errors"] == ["empty", "empty-timeout", "full",
                             "full-after-resize"]
    assert res["drained"] == [0, 1, 2, 3, 4, 5, 6, 7, 9, 10]
    assert res["lifo"] == [2, 1, 3]
    assert res["prio"] == [1, 2, 3]
    assert res["subclass"] == 42


def test_a_waiting_put_goes_through_after_maxsize_is_raised(tmp_path):
    """A put waiting for room while maxsize is reassigned (the queue moves
    to the locked path): a get then lets it through (it hung: it kept
    waiting for a room token no get gave back any more)."""
    res, _ = run_program(tmp_path, """
        import json, queue, threading, time
        q = queue.Queue(1)
        q.put(1)
        done = []
        def putter():
            q.put(2); done.append(1)
        t = threading.Thread(target=putter); t.start()
        time.sleep(0.1)
        q.maxsize = 5
        first = q.get()
        t.join(5)
        print(json.dumps([first, bool(done), q.get(timeout=1)]))
    """)
    assert res == [1, True, 2]


def test_review_bound_set_while_a_getter_waits_and_clean_exceptions(
        tmp_path):
    # review: a getter waiting on an unbounded queue, then maxsize set: the
    # item it takes must wake a putter held up by the new bound (its put
    # waited out its whole timeout); and Empty/Full carry no IndexError as
    # context (the standard library's have none).
    res, _ = run_program(tmp_path, """
        import json, queue, threading, time
        q = queue.Queue()
        got = []
        def consumer():
            got.append(q.get())
            got.append(q.get())
        t = threading.Thread(target=consumer, daemon=True); t.start()
        time.sleep(0.1)
        q.maxsize = 1
        q.put(1)
        t0 = time.monotonic()
        q.put(2, timeout=5)
        took = time.monotonic() - t0
        t.join(5)
        contexts = []
        for op in (lambda: queue.Queue().get_nowait(),
                   lambda: queue.Queue().get(timeout=0.01)):
            try:
                op()
            except (queue.Empty, queue.Full) as e:
                contexts.append(repr(e.__context__))
        full = queue.Queue(1)
        full.put(0)
        for op in (full.put_nowait, lambda x: full.put(x, timeout=0.01)):
            try:
                op(1)
            except queue.Full as e:
                contexts.append(repr(e.__context__))
        print(json.dumps({"got": got, "took": took, "contexts": contexts}))
    """)
    assert res["got"] == [1, 2]
    assert res["took"] < 2.5
    assert res["contexts"] == ["None"] * 4


def test_plain_waits_killed_woken_and_passed_on(tmp_path):
    """The plain put and get that wait (compiled: green_speedups.c's
    qb_wait; pure: _wait_for): FIFO wake-ups; a getter killed after it
    was woken passes the item on to the next getter; a putter killed
    while it waits for room puts nothing; the waiter lists end empty; the
    same from a real OS thread putting into a queue socket2 threads
    wait on."""
    res, _ = run_program(tmp_path, """
        import json, queue, threading, time
        import socket2
        from socket2 import _hotpath, monkey
        out = {"compiled": _hotpath.COMPILED, "waiter": None}
        q = queue.Queue()
        got = []
        def getter(name):
            got.append((name, q.get()))
        ts = [socket2.newthread(getter, n) for n in "abc"]
        socket2.sleep(0.05)
        out["waiter"] = type(q._getters[0]).__module__
        q.put(1)            # wakes a; b, c wait
        ts[0].kill()        # a is killed before it runs: b gets the item
        socket2.sleep(0.05)
        out["after_kill"] = sorted(got)
        q.put(2)
        socket2.sleep(0.05)
        out["all"] = sorted(got)
        out["getters_left"] = len(q._getters)
        # A putter killed while it waits for room puts nothing.
        b = queue.Queue(1)
        b.put("first")
        p = socket2.newthread(b.put, "never")
        socket2.sleep(0.05)
        p.kill()
        socket2.sleep(0.05)
        out["bounded"] = [b.qsize(), b.get(), b.qsize(),
                          len(b._putters)]
        # A real OS thread feeds socket2 getters (cross-thread wake-ups).
        OS = monkey.original("threading", "Thread")
        x = queue.Queue(4)
        seen = []
        def consume():
            for _ in range(500):
                seen.append(x.get())
        cs = [threading.Thread(target=consume) for _ in range(2)]
        [c.start() for c in cs]
        feeder = OS(target=lambda: [x.put(i) for i in range(1000)])
        feeder.start()
        [c.join() for c in cs]
        feeder.join()
        out["cross"] = [len(seen), sorted(seen) == list(range(1000)),
                        len(x._getters), len(x._putters)]
        print(json.dumps(out))
    """)
    assert res["waiter"] == ("socket2._green_speedups" if res["compiled"]
                             else "socket2.green._locks")
    assert res["after_kill"] == [["b", 1]]
    assert res["all"] == [["b", 1], ["c", 2]]
    assert res["getters_left"] == 0
    assert res["bounded"] == [1, "first", 0, 0]
    assert res["cross"] == [1000, True, 0, 0]


def test_review_a_container_that_replaces_itself_during_a_put(tmp_path):
    # review: the compiled put called the items' bound append without a
    # reference of its own; an append (here a generator's send) that
    # replaced q.queue while it ran dropped the last reference to itself
    # and ran on freed memory (a crash under PYTHONMALLOC=debug).
    res, _ = run_program(tmp_path, """
        import collections, json, queue
        q = queue.Queue()
        ran = []
        def sink():
            while True:
                x = yield
                q.queue = collections.deque([x])   # drops this generator
                big = [object() for _ in range(1000)]   # reuse the memory
                ran.append(len(big))
        g = sink(); next(g)
        class Box:
            pass
        b = Box(); b.append = g.send; b.popleft = lambda: None
        q.queue = b
        del g, b
        q.put("item")
        print(json.dumps([ran, q.get(timeout=1)]))
    """, env={"PYTHONMALLOC": "debug"})
    assert res == [[1000], "item"]
