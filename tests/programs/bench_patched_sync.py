"""Cost of the patched threading primitives: socket2.monkey against
gevent.monkey and against the unpatched standard library.

    python tests/programs/bench_patched_sync.py socket2|gevent|none

Prints one line: an uncontended ``with threading.Lock()`` and ``RLock()``
(ns per round trip), a ``Condition`` hand-off between two threads (us per
hand-off) and a ``queue.Queue(100)`` between a producer and a consumer
thread (us per item); best of three runs each.  (gevent replaces
``queue.Queue`` with its own compiled queue; socket2 keeps the standard
one over its cooperative locks.)
"""
import sys
import time

if len(sys.argv) != 2 or sys.argv[1] not in ("socket2", "gevent", "none"):
    print(__doc__)
    sys.exit(0 if sys.argv[1:] in (["-h"], ["--help"]) else 2)
MODE = sys.argv[1]
if MODE == "gevent":
    from gevent import monkey
    monkey.patch_all()
elif MODE == "socket2":
    import socket2.monkey
    socket2.monkey.patch_all()

import queue  # noqa: E402 - after patching
import threading  # noqa: E402


def best(fn, n=3):
    return min(fn() for _ in range(n))


def lock_round_trip(factory, n=200000):
    lock = factory()
    t0 = time.perf_counter()
    for _ in range(n):
        with lock:
            pass
    return (time.perf_counter() - t0) / n * 1e9


def condition_hand_off(n=20000):
    cond = threading.Condition()
    turn = [0]

    def player(me):
        for _ in range(n):
            with cond:
                while turn[0] % 2 != me:
                    cond.wait()
                turn[0] += 1
                cond.notify()
    t0 = time.perf_counter()
    ts = [threading.Thread(target=player, args=(i,)) for i in (0, 1)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    return (time.perf_counter() - t0) / (2 * n) * 1e6


def queue_transfer(n=50000):
    q = queue.Queue(maxsize=100)

    def produce():
        for i in range(n):
            q.put(i)

    def consume():
        for _ in range(n):
            q.get()
    t0 = time.perf_counter()
    ts = [threading.Thread(target=produce), threading.Thread(target=consume)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    return (time.perf_counter() - t0) / n * 1e6


print("%-8s Lock %4.0f ns  RLock %4.0f ns  Condition hand-off %5.2f us  "
      "queue.Queue %5.2f us/item" % (
          MODE, best(lambda: lock_round_trip(threading.Lock)),
          best(lambda: lock_round_trip(threading.RLock)),
          best(condition_hand_off), best(queue_transfer)))
