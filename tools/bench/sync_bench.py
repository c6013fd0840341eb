#!/usr/bin/env python3
"""Coordination primitives side by side: socket2 against gevent.

    bash tools/dev.sh bench-sync          # or: python tools/bench/sync_bench.py

Measures, each in a fresh interpreter (socket2 in socket2's venv, gevent in
the peers' venv that tools/bench/run.py installs), the cost of:

- an uncontended ``Lock`` acquire/release pair (``with lock:``);
- a ``Queue`` put/get pair with nothing waiting;
- a contended hand-off: two threads passing one Lock back and forth (each
  pair includes a switch to the other thread);
- a producer/consumer pair over a bounded Queue(1) (a switch per item);
- and, after each library's ``patch_all()``, the standard ``threading.Lock``
  and ``RLock``, a ``Condition`` hand-off and a ``queue.Queue(100)``
  producer/consumer (tests/programs/bench_patched_sync.py).

Prints nanoseconds per pair (best of 5 runs) and socket2's ratio to gevent
(below 1.00x: socket2 is faster).
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

WORKLOAD = r'''
import json, sys, time
lib = sys.argv[1]
if lib == "gevent":
    import gevent
    from gevent.lock import Semaphore as Lock
    from gevent.queue import Queue
    spawn, joinall, sleep0 = gevent.spawn, gevent.joinall, lambda: gevent.sleep(0)
else:
    import socket2
    from socket2 import Lock, Queue
    spawn = socket2.newthread
    def joinall(ts):
        for t in ts:
            t.join()

def best(fn, n, runs=5):
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn(n)
        out.append((time.perf_counter() - t0) / n * 1e9)
    return min(out)

def lock_pair(n):
    lock = Lock()
    for _ in range(n):
        with lock:
            pass

def queue_pair(n):
    q = Queue()
    put, get = q.put, q.get
    for i in range(n):
        put(i)
        get()

def lock_handoff(n):
    lock = Lock()
    def worker():
        for _ in range(n // 2):
            with lock:
                sleep0() if lib == "gevent" else socket2.sleep(0)
    joinall([spawn(worker), spawn(worker)])

def queue_pingpong(n):
    q = Queue(1)
    def producer():
        for i in range(n):
            q.put(i)
    def consumer():
        for _ in range(n):
            q.get()
    joinall([spawn(producer), spawn(consumer)])

print(json.dumps({
    "Lock acquire/release, uncontended": best(lock_pair, 200000),
    "Queue put/get, nobody waiting": best(queue_pair, 200000),
    "Lock hand-off between 2 threads": best(lock_handoff, 20000),
    "Queue(1) producer -> consumer": best(queue_pingpong, 20000),
}))
'''


def measure(python, lib):
    out = subprocess.run([python, "-c", WORKLOAD, lib], capture_output=True,
                         text=True, timeout=600,
                         env=dict(os.environ, PYTHONPATH=os.path.dirname(
                             os.path.dirname(HERE))))
    if out.returncode != 0:
        raise SystemExit("sync_bench: %s failed:\n%s" % (lib, out.stderr))
    return json.loads(out.stdout)


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.parse_args(argv)
    import run
    s2 = measure(sys.executable, "socket2")
    gv = measure(run.peers_python(), "gevent")
    width = max(map(len, s2)) + 14
    print("%-*s  %10s  %10s  %s" % (width, "ns per pair (best of 5)",
                                    "socket2", "gevent", "socket2/gevent"))
    for k in s2:
        print("%-*s  %10.0f  %10.0f  %.2fx" % (width, k, s2[k], gv[k],
                                               s2[k] / gv[k]))
    # The standard library's primitives after each one's patch_all().
    s2 = measure_patched(sys.executable, "socket2")
    gv = measure_patched(run.peers_python(), "gevent")
    for k in s2:
        print("%-*s  %10.0f  %10.0f  %.2fx" % (width, k, s2[k], gv[k],
                                               s2[k] / gv[k]))
    return 0


def measure_patched(python, lib):
    """tests/programs/bench_patched_sync.py's rows (ns) for *lib*."""
    script = os.path.join(os.path.dirname(os.path.dirname(HERE)), "tests",
                          "programs", "bench_patched_sync.py")
    out = subprocess.run([python, script, "--json", lib],
                         capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, PYTHONPATH=os.path.dirname(
                             os.path.dirname(HERE))))
    if out.returncode != 0:
        raise SystemExit("sync_bench: patched %s failed:\n%s"
                         % (lib, out.stderr))
    return json.loads(out.stdout)


if __name__ == "__main__":
    sys.exit(main())
