"""Cost of the patched threading primitives: socket2.monkey against
gevent.monkey and against the unpatched standard library.

    python tests/programs/bench_patched_sync.py [--json] socket2|gevent|none

Prints one line: an uncontended ``with threading.Lock()`` and ``RLock()``
(ns per round trip), a ``Condition`` hand-off between two threads (us per
hand-off) and a ``queue.Queue(100)`` between a producer and a consumer
thread (us per item); best of three runs each.  (gevent replaces
``queue.Queue`` with its own compiled queue, for greenlets of one OS
thread; socket2 with ``socket2.green.queue.Queue``, whose put and get
take no lock unless they wait, and which real OS threads may share.)
"""
import sys
import time

JSON = "--json" in sys.argv[1:]
ARGS = [a for a in sys.argv[1:] if a != "--json"]
if len(ARGS) != 1 or ARGS[0] not in ("socket2", "gevent", "none"):
    print(__doc__)
    sys.exit(0 if ARGS in (["-h"], ["--help"]) else 2)
MODE = ARGS[0]
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


rows = {
    "patched Lock, uncontended (ns)": best(
        lambda: lock_round_trip(threading.Lock)),
    "patched RLock, uncontended (ns)": best(
        lambda: lock_round_trip(threading.RLock)),
    "patched Condition hand-off (ns)": best(condition_hand_off) * 1000,
    "patched queue.Queue(100), per item (ns)": best(queue_transfer) * 1000,
}
if JSON:
    import json
    print(json.dumps(rows))
else:
    print("%-8s Lock %4.0f ns  RLock %4.0f ns  Condition hand-off %5.2f us  "
          "queue.Queue %5.2f us/item" % ((MODE,) + tuple(
              v / (1000 if i >= 2 else 1)
              for i, v in enumerate(rows.values()))))
