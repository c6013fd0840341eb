"""patch_all(thread=True): threading and _thread on socket2 threads.

Each case is a program run as users run it (``python -m socket2.monkey
script.py``) in its own process, so that patching never leaks into the
test process; the program prints one JSON line of findings.  Concurrency
is proven by time: N threads that each wait 0.5 s finish in about 0.5 s.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

# threading's machinery changed in 3.13 (joinable thread handles), which
# socket2.green.threading does not patch yet: thread=True warns there.
THREADS_PATCHABLE = (3, 10) <= sys.version_info[:2] < (3, 13)
NEEDS_THREADS = pytest.mark.skipif(
    not THREADS_PATCHABLE, reason="patch_all(thread=True) supports Python "
    "3.10 to 3.12 (3.13 reworked threading's thread handles)")
pytestmark = [pytest.mark.one_poller, NEEDS_THREADS]

N = 8
BOUND = 2.5        # seconds: well under N x 0.5 = 4 s
NOISE = ("Exception ignored", "Traceback", "Fatal Python error",
         "Warning")


def run_program(tmp_path, code, *args, monkey=True, timeout=60,
                quiet=True, env=None):
    """Run *code* (through ``python -m socket2.monkey`` unless *monkey* is
    False; *env*: variables to add) and return (its last stdout line as
    JSON, stderr).  With *quiet*, stderr must hold no traceback, warning
    or 'Exception ignored' (the exit must be clean)."""
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent(code))
    argv = [sys.executable] + (["-m", "socket2.monkey"] if monkey else []) \
        + [str(script)] + [str(a) for a in args]
    out = subprocess.run(argv, capture_output=True, text=True,
                         timeout=timeout, cwd=str(tmp_path),
                         env=None if env is None else dict(os.environ, **env))
    assert out.returncode == 0, out.stderr[-3000:]
    if quiet:
        assert not any(n in out.stderr for n in NOISE), out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert lines, out.stderr[-3000:]
    return json.loads(lines[-1]), out.stderr


def test_threads_are_socket2_threads(tmp_path):
    res, _ = run_program(tmp_path, """
        import json, sys, threading, time, _thread
        seen = {}
        def work(i):
            me = threading.current_thread()
            time.sleep(0.5)
            seen[i] = (me.name, threading.get_ident(), _thread.get_ident(),
                       me.ident, me.native_id, me.daemon,
                       threading.current_thread() is me,
                       me is not threading.main_thread())
        t0 = time.monotonic()
        ts = [threading.Thread(target=work, args=(i,), name="w%d" % i,
                               daemon=bool(i % 2)) for i in range(NTHREADS)]
        before = [t.is_alive() for t in ts]
        for t in ts:
            t.start()
        during = [t.is_alive() for t in ts]
        count = threading.active_count()
        names = sorted(t.name for t in threading.enumerate())
        for t in ts:
            t.join()
        after = [t.is_alive() for t in ts]
        real = set(sys._current_frames())
        print(json.dumps({
            "t": time.monotonic() - t0, "seen": [seen[i] for i in range(NTHREADS)],
            "before": before, "during": during, "after": after,
            "count": count, "names": names,
            "main": [threading.current_thread() is threading.main_thread(),
                     threading.main_thread().ident == threading.get_ident(),
                     threading.get_ident() in real],
            "real": [s[1] in real for s in seen.values()],
            "count_after": threading.active_count()}))
    """.replace("NTHREADS", str(N)))
    assert res["t"] < BOUND, res
    seen = res["seen"]
    assert [s[0] for s in seen] == ["w%d" % i for i in range(N)]
    idents = {s[1] for s in seen}
    assert len(idents) == N                          # distinct per thread
    assert all(s[1] == s[2] == s[3] for s in seen)   # threading == _thread
    assert len({s[4] for s in seen}) == N            # native_id distinct
    assert [s[5] for s in seen] == [bool(i % 2) for i in range(N)]
    assert all(s[6] and s[7] for s in seen)
    assert res["before"] == [False] * N and res["during"] == [True] * N
    assert res["after"] == [False] * N
    assert res["count"] == N + 1 and res["count_after"] == 1
    assert res["names"] == sorted(["MainThread"] +
                                  ["w%d" % i for i in range(N)])
    assert res["main"] == [True, True, True]         # the main keeps its
    assert res["real"] == [False] * N                # no OS thread each


def test_lock_semantics(tmp_path):
    res, _ = run_program(tmp_path, """
        import json, threading, time, _thread
        out = {}
        lock = threading.Lock()
        lock.acquire()
        t0 = time.monotonic()
        out["timeout"] = [lock.acquire(timeout=0.1),
                          time.monotonic() - t0,
                          lock.acquire(False), lock.locked()]
        errors = []
        for call in (lambda: lock.acquire(False, 1),
                     lambda: lock.acquire(timeout=-2),
                     lambda: lock.acquire(timeout=1e100)):
            try:
                call()
            except (ValueError, OverflowError) as e:
                errors.append(type(e).__name__)
        out["errors"] = errors
        lock.release()
        try:
            lock.release()
        except RuntimeError as e:
            out["unlocked"] = str(e)
        # A release from another thread hands the lock on (Lock has no owner).
        lock.acquire()
        threading.Timer(0.05, lock.release).start()
        out["released_elsewhere"] = lock.acquire(timeout=2)
        lock.release()
        # RLock: recursion and ownership.
        r = threading.RLock()
        with r:
            with r:
                out["recursive"] = r._is_owned()
            def other():
                got = r.acquire(timeout=0.05)
                try:
                    r.release()
                except RuntimeError:
                    return [got, "not owner"]
            t = threading.Thread(target=lambda: out.setdefault("rother",
                                                               other()))
            t.start(); t.join()
        out["rfree"] = r.acquire(False)
        r.release()
        # Condition.wait returns holding the lock, with or without notify.
        c = threading.Condition()
        with c:
            out["cwait_timeout"] = [c.wait(0.05), c._is_owned()]
            threading.Timer(0.05, lambda: [c.acquire(), c.notify(),
                                           c.release()]).start()
            out["cwait_notified"] = [c.wait(2), c._is_owned()]
            out["wait_for"] = c.wait_for(lambda: True, 0.01)
        # Event.wait returns the flag.
        e = threading.Event()
        out["event"] = [e.wait(0.05)]
        threading.Timer(0.05, e.set).start()
        out["event"].append(e.wait(2))
        # Semaphores.
        s = threading.Semaphore(2)
        out["sem"] = [s.acquire(), s.acquire(), s.acquire(timeout=0.05)]
        b = threading.BoundedSemaphore(1)
        b.acquire(); b.release()
        try:
            b.release()
        except ValueError:
            out["bounded"] = True
        # Barrier of three parties.
        bar = threading.Barrier(3)
        got = []
        ts = [threading.Thread(target=lambda: got.append(bar.wait(2)))
              for _ in range(3)]
        [t.start() for t in ts]; [t.join() for t in ts]
        out["barrier"] = sorted(got)
        bar2 = threading.Barrier(2)
        try:
            bar2.wait(0.05)
        except threading.BrokenBarrierError:
            out["broken"] = bar2.broken
        # Timer fires, or is cancelled.
        fired = []
        t1 = threading.Timer(0.05, fired.append, args=["a"])
        t2 = threading.Timer(0.05, fired.append, args=["b"])
        t1.start(); t2.start(); t2.cancel(); t1.join(); t2.join()
        out["timer"] = fired
        out["types"] = [type(lock).__module__, type(r).__module__,
                        type(_thread.allocate_lock()).__module__]
        print(json.dumps(out))
    """)
    got, waited, nowait, locked = res["timeout"]
    assert [got, nowait, locked] == [False, False, True]
    assert 0.09 <= waited < 1.0
    assert res["errors"] == ["ValueError", "ValueError", "OverflowError"]
    assert res["unlocked"] == "release unlocked lock"
    assert res["released_elsewhere"] is True
    assert res["recursive"] is True
    assert res["rother"] == [False, "not owner"]
    assert res["rfree"] is True
    assert res["cwait_timeout"] == [False, True]
    assert res["cwait_notified"] == [True, True]
    assert res["wait_for"] is True
    assert res["event"] == [False, True]
    assert res["sem"] == [True, True, False]
    assert res["bounded"] is True
    assert res["barrier"] == [0, 1, 2]
    assert res["broken"] is True
    assert res["timer"] == ["a"]
    assert all(t.startswith("socket2.green.") for t in res["types"])


def test_local_is_per_socket2_thread(tmp_path):
    res, _ = run_program(tmp_path, """
        import json, threading, time, _threading_local
        class Counter(threading.local):
            def __init__(self, start):
                self.n = start
            @property
            def double(self):
                return self.n * 2
            def bump(self):
                self.n += 1
                return self.n
        plain = threading.local()
        other = _threading_local.local()
        c = Counter(10)
        plain.x = "main"; other.x = "main"
        out = {}
        def work(i):
            plain.x = i; other.x = -i
            for _ in range(i):
                c.bump()
            time.sleep(0.05)           # the others run meanwhile
            out[i] = [plain.x, other.x, c.n, c.double,
                      sorted(plain.__dict__)]
        ts = [threading.Thread(target=work, args=(i,)) for i in range(1, 5)]
        [t.start() for t in ts]; [t.join() for t in ts]
        try:
            threading.local(1)
            err = None
        except TypeError as e:
            err = str(e)
        print(json.dumps({"out": [out[i] for i in range(1, 5)],
                          "main": [plain.x, other.x, c.n],
                          "err": err}))
    """)
    assert res["out"] == [[i, -i, 10 + i, 2 * (10 + i), ["x"]]
                          for i in range(1, 5)]
    assert res["main"] == ["main", "main", 10]
    assert res["err"] == "Initialization arguments are not supported"


def test_locks_shared_with_real_os_threads(tmp_path):
    # Socket2 threads and real OS threads (original('threading','Thread'),
    # run_in_thread workers) share patched locks and conditions: a wait
    # blocks only the waiter, a release in one OS thread wakes a waiter in
    # another, nothing is lost.
    res, _ = run_program(tmp_path, """
        import json, threading, time
        import socket2, socket2.monkey
        OSThread = socket2.monkey.original("threading", "Thread")
        lock = threading.RLock()
        count = [0]
        def green():
            for i in range(2000):
                with lock:
                    with lock:
                        v = count[0]
                        if i % 50 == 0:
                            time.sleep(0)      # switch while holding it
                        count[0] = v + 1
        def real():
            for i in range(2000):
                with lock:
                    v = count[0]
                    count[0] = v + 1
        ts = [threading.Thread(target=green) for _ in range(4)] + \\
             [OSThread(target=real) for _ in range(3)]
        [t.start() for t in ts]; [t.join(20) for t in ts]
        out = {"count": count[0], "alive": [t.is_alive() for t in ts]}
        cond = threading.Condition()
        items, got = [], [[], []]
        def consumer(k):
            for _ in range(300):
                with cond:
                    while not items:
                        cond.wait()
                    got[k].append(items.pop(0))
        def producer():
            for i in range(300):
                with cond:
                    items.append(i)
                    cond.notify()
                if i % 10 == 0:
                    time.sleep(0.001)
        ts = [threading.Thread(target=consumer, args=(0,)),
              OSThread(target=consumer, args=(1,)), OSThread(target=producer),
              threading.Thread(target=producer)]
        [t.start() for t in ts]; [t.join(20) for t in ts]
        out["cond"] = [len(got[0]) + len(got[1]),
                       [t.is_alive() for t in ts]]
        # A run_in_thread worker waits for a lock a socket2 thread holds;
        # the socket2 threads keep running meanwhile.
        held = threading.Lock()
        held.acquire()
        ticks = []
        def ticker():
            for _ in range(5):
                time.sleep(0.02)
                ticks.append(1)
            held.release()
        threading.Thread(target=ticker).start()
        t0 = time.monotonic()
        out["worker"] = socket2.run_in_thread(held.acquire, timeout=5)
        out["ticks"] = len(ticks)
        # and a worker's release wakes a socket2 thread.
        socket2.run_in_thread(lambda: (time.sleep(0.05), held.release()))
        out["woken"] = held.acquire(timeout=5)
        # A socket2 thread joins a real OS thread without blocking its hub.
        beat = []
        def beater():
            while len(beat) < 5:
                time.sleep(0.02)
                beat.append(1)
        b = threading.Thread(target=beater); b.start()
        slow = OSThread(target=__import__("socket2").monkey.original(
            "time", "sleep"), args=(0.3,))
        slow.start()
        slow.join()
        out["beat"] = len(beat)
        b.join()
        print(json.dumps(out))
    """, timeout=90)
    assert res["count"] == 7 * 2000 and res["alive"] == [False] * 7
    assert res["cond"] == [600, [False] * 4]
    assert res["worker"] is True and res["ticks"] == 5
    assert res["woken"] is True
    assert res["beat"] == 5         # the hub ran while main joined


def test_thread_pool_executor_runs_socket2_threads(tmp_path):
    res, _ = run_program(tmp_path, """
        import json, sys, threading, time
        from concurrent.futures import ThreadPoolExecutor, wait
        def job(i):
            time.sleep(0.5)
            return i, threading.get_ident()
        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=NTHREADS) as ex:
            futs = [ex.submit(job, i) for i in range(NTHREADS)]
            wait(futs, timeout=10)
            real = set(sys._current_frames())
            res = [f.result() for f in futs]
        # one left running at exit: the interpreter waits for it
        ex2 = ThreadPoolExecutor(2)
        late = ex2.submit(time.sleep, 0.2)
        print(json.dumps({"t": time.monotonic() - t0,
                          "ids": [r[0] for r in res],
                          "real": [r[1] in real for r in res],
                          "threads": len(set(r[1] for r in res))}))
    """.replace("NTHREADS", str(N)))
    assert res["t"] < BOUND and res["ids"] == list(range(N)), res
    assert res["real"] == [False] * N and res["threads"] == N


_EXIT_CASES = {
    # daemon threads parked forever, in sleep, a lock and a queue
    "daemon_parked": """
        import threading, time, queue
        lock = threading.Lock(); lock.acquire()
        q = queue.Queue()
        for target in (lambda: time.sleep(100), lock.acquire, q.get):
            threading.Thread(target=target, daemon=True).start()
        print('{"ok": 1}')
    """,
    # a non-daemon thread still running when the main program ends: the
    # interpreter waits for it (threading._shutdown), cooperatively
    "non_daemon_finishes": """
        import threading, time, sys
        def late():
            time.sleep(0.3)
            print('{"ok": "late"}', flush=True)
        threading.Thread(target=late).start()
        print('{"ok": "main"}', flush=True)
    """,
    # atexit and threading's own exit hooks, logging's locks at exit
    "atexit_hooks": """
        import atexit, logging, threading, time
        logging.basicConfig(level=logging.INFO)
        log = logging.getLogger("exit")
        done = threading.Event()
        threading._register_atexit(done.set)
        threading.Thread(target=done.wait).start()   # released at exit
        def hook():
            t = threading.Thread(target=lambda: time.sleep(0.05))
            t.start(); t.join()
            with threading.RLock():
                pass
            print('{"ok": "atexit"}', flush=True)
        atexit.register(hook)
        print('{"ok": "main"}', flush=True)
    """,
    # an executor that was never shut down, with a job in flight
    "executor_left_open": """
        import time
        from concurrent.futures import ThreadPoolExecutor
        ex = ThreadPoolExecutor(4)
        f = ex.submit(time.sleep, 0.2)
        print('{"ok": 1}', flush=True)
    """,
    # real OS threads (non-daemon) still running at exit, sharing a
    # patched lock with the main program
    "os_thread_at_exit": """
        import threading, time, socket2.monkey
        OSThread = socket2.monkey.original("threading", "Thread")
        lock = threading.Lock()
        def work():
            for _ in range(20):
                with lock:
                    socket2.monkey.original("time", "sleep")(0.005)
        OSThread(target=work).start()
        with lock:
            time.sleep(0.05)
        print('{"ok": 1}', flush=True)
    """,
}


@pytest.mark.parametrize("case", sorted(_EXIT_CASES))
def test_clean_exit(tmp_path, case):
    res, err = run_program(tmp_path, _EXIT_CASES[case], timeout=30)
    assert res["ok"], res
    assert err.strip() == "" or err.startswith("INFO"), err


def test_patching_late_warns_about_copies(tmp_path):
    (tmp_path / "early.py").write_text(textwrap.dedent("""
        from threading import Lock, Thread
        class Worker(Thread):
            pass
    """))
    res, err = run_program(tmp_path, """
        import json, warnings
        warnings.simplefilter("always")
        import early
        import socket2.monkey
        with warnings.catch_warnings(record=True) as w:
            socket2.monkey.patch_all()
        msgs = [str(x.message) for x in w]
        import threading
        t = early.Worker(target=lambda: None)
        t.start(); t.join()
        print(json.dumps({
            "copied": [m for m in msgs if "copied names from threading" in m],
            "derived": [m for m in msgs if "derived classes" in m],
            "patched": [socket2.monkey.is_patched(n) for n in (
                "threading", "_thread", "queue", "subprocess", "os",
                "signal")],
            "original": socket2.monkey.original("threading", "Thread") is
                        early.Thread}))
    """, monkey=False, quiet=False)
    assert len(res["copied"]) == 1 and "early" in res["copied"][0]
    assert len(res["derived"]) == 1 and "early" in res["derived"][0]
    assert res["patched"] == [True] * 6
    assert res["original"] is True


def test_fork_with_threading_patched(tmp_path):
    if not hasattr(os, "fork"):
        pytest.skip("needs os.fork()")
    res, _ = run_program(tmp_path, """
        import json, os, threading, time
        lock = threading.Lock()
        bg = threading.Thread(target=lambda: time.sleep(0.3), daemon=True)
        bg.start()
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                got = []
                t = threading.Thread(target=lambda: got.append(
                    threading.current_thread().name))
                t.start(); t.join()
                with lock:
                    pass
                os.write(w, json.dumps([len(got), threading.current_thread()
                                        is threading.main_thread()]).encode())
            finally:
                os._exit(0)
        os.close(w)
        child = json.loads(os.read(r, 1000))
        os.close(r)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"child": child, "status": status}))
    """)
    assert res == {"child": [1, True], "status": 0}


def test_patching_after_threads_started_exits_cleanly(tmp_path):
    # threading imported and a real OS thread running before patch_all():
    # that thread stays an OS thread, the main thread keeps its identity,
    # and the exit waits for both kinds of thread without noise.
    res, err = run_program(tmp_path, """
        import json, sys, threading, time
        early = threading.Thread(target=time.sleep, args=(0.3,))
        early.start()
        main_ident = threading.get_ident()
        import warnings
        warnings.simplefilter("ignore")
        import socket2.monkey
        socket2.monkey.patch_all()
        late = threading.Thread(target=time.sleep, args=(0.3,))
        late.start()
        out = {"main": [threading.get_ident() == main_ident,
                        threading.current_thread() is threading.main_thread()],
               "early_real": early.ident in sys._current_frames(),
               "late_real": late.ident in sys._current_frames(),
               "alive": [early.is_alive(), late.is_alive()]}
        early.join(); late.join()
        out["joined"] = [early.is_alive(), late.is_alive()]
        threading.Thread(target=lambda: time.sleep(0.2)).start()
        print(json.dumps(out), flush=True)
    """, monkey=False)
    assert res == {"main": [True, True], "early_real": True,
                   "late_real": False, "alive": [True, True],
                   "joined": [False, False]}
    assert err == ""


def test_start_new_thread_and_its_errors(tmp_path):
    res, _ = run_program(tmp_path, """
        import json, _thread, threading, time
        out = {}
        done = threading.Event()
        def f(a, b=0):
            out["args"] = [a, b, _thread.get_ident() != threading.main_thread().ident]
            done.set()
        ident = _thread.start_new_thread(f, (1,), {"b": 2})
        done.wait(5)
        out["ident"] = isinstance(ident, int)
        errs = []
        for args in ((1, ()), (f, [1]), (f, (1,), [])):
            try:
                _thread.start_new_thread(*args)
            except TypeError as e:
                errs.append(str(e))
        out["errs"] = errs
        # a thread started by a run_in_thread worker is a real OS thread
        import socket2, sys
        def in_worker():
            r = []
            t = threading.Thread(target=lambda: r.append(
                threading.get_ident() in sys._current_frames()))
            t.start(); t.join()
            return r
        out["worker"] = socket2.run_in_thread(in_worker, timeout=10)
        print(json.dumps(out))
    """)
    assert res["args"] == [1, 2, True] and res["ident"] is True
    assert res["errs"] == ["first arg must be callable",
                           "2nd arg must be a tuple",
                           "optional 3rd arg must be a dictionary"]
    assert res["worker"] == [True]


def test_original_and_unpatch_all(tmp_path):
    res, _ = run_program(tmp_path, """
        import json, queue, threading, _thread, subprocess, os, signal
        import socket2.monkey as monkey
        std = {"Thread": threading.Thread, "Lock": threading.Lock,
               "get_ident": _thread.get_ident, "SimpleQueue": queue.SimpleQueue,
               "Popen": subprocess.Popen, "waitpid": os.waitpid,
               "signal": signal.signal}
        monkey.patch_all()
        out = {"patched": [threading.Thread is not std["Thread"],
                           threading.Lock is not std["Lock"],
                           _thread.get_ident is not std["get_ident"],
                           queue.SimpleQueue is not std["SimpleQueue"],
                           subprocess.Popen is not std["Popen"],
                           os.waitpid is not std["waitpid"],
                           signal.signal is not std["signal"]],
               "original": [monkey.original("threading", "Thread") is
                            std["Thread"],
                            monkey.original("_thread", "get_ident") is
                            std["get_ident"],
                            monkey.original("queue", "SimpleQueue") is
                            std["SimpleQueue"]]}
        try:
            monkey.original("threading", "no_such_name")
        except AttributeError:
            out["missing"] = True
        monkey.unpatch_all()
        out["restored"] = [threading.Thread is std["Thread"],
                           threading.Lock is std["Lock"],
                           _thread.get_ident is std["get_ident"],
                           queue.SimpleQueue is std["SimpleQueue"],
                           subprocess.Popen is std["Popen"],
                           os.waitpid is std["waitpid"],
                           signal.signal is std["signal"],
                           monkey.is_patched("threading")]
        print(json.dumps(out))
    """, monkey=False)
    assert res == {"patched": [True] * 7, "original": [True] * 3,
                   "missing": True, "restored": [True] * 7 + [False]}


def test_review_locals_of_an_os_thread_that_waited_go_when_it_ends(tmp_path):
    # review: a real OS thread that waited cooperatively once (so it has a
    # hub) kept its threading.local values after it ended: its root
    # greenlet outlives it, held by its hub's greenlets.
    res, _ = run_program(tmp_path, """
        import gc, json, threading, time, weakref
        import socket2.monkey
        OSThread = socket2.monkey.original("threading", "Thread")
        class Obj:
            pass
        loc = threading.local()
        refs = []
        def setv():
            o = Obj(); loc.v = o; refs.append(weakref.ref(o))
            time.sleep(0.01)
        for i in range(20):
            t = OSThread(target=setv); t.start(); t.join()
        gc.collect()
        print(json.dumps({"alive": sum(r() is not None for r in refs)}))
    """)
    assert res == {"alive": 0}


def test_lock_fast_paths_and_what_they_hand_to_python(tmp_path):
    """The uncontended acquire/release of Lock and RLock (compiled:
    green_speedups.c's SemBase/RLockBase; pure: _locks.py): ownership
    from a socket2 thread, the root greenlet, a plain greenlet of the
    user's and a real OS thread; the argument forms the compiled acquire
    hands to Python; mutual exclusion between socket2 threads and OS
    threads; Condition over an RLock held twice."""
    res, _ = run_program(tmp_path, """
        import json, threading
        import greenlet
        from socket2 import _hotpath, monkey
        out = {"compiled": _hotpath.COMPILED}
        L, R = threading.Lock(), threading.RLock()
        out["c_methods"] = [type(L).__enter__.__name__,
                            type(R).__enter__.__name__]
        # Argument forms: positional bool, int, keywords, timeout.
        L.acquire()
        out["lock_forms"] = [L.acquire(False), L.acquire(0),
                             L.acquire(blocking=False),
                             L.acquire(True, 0.01), L.locked()]
        L.release()
        out["lock_free"] = [L.acquire(1), L.locked()]
        L.release()
        # RLock ownership per context.
        def plain():
            with R:
                with R:
                    return [R._is_owned(), R._recursion_count()]
        out["plain_greenlet"] = greenlet.greenlet(plain).switch()
        with R:
            inner = []
            g = greenlet.greenlet(lambda: inner.append(
                [R.acquire(False), R.acquire(timeout=0.01)]))
            g.switch()
            out["other_greenlet"] = inner[0]
            try:
                greenlet.greenlet(R.release).switch()
            except RuntimeError as e:
                out["release_by_other"] = str(e)
        out["released"] = [R._is_owned(), R.acquire(blocking=False)]
        R.release()
        try:
            R.release()
        except RuntimeError as e:
            out["release_free"] = str(e)
        # Condition over an RLock held twice: wait drops both levels.
        c = threading.Condition(threading.RLock())
        with c:
            with c:
                threading.Timer(0.02, lambda: [c.acquire(), c.notify(),
                                               c.release()]).start()
                out["cond"] = [c.wait(2), c._lock._recursion_count()]
        # Mutual exclusion: 2 socket2 threads and 2 OS threads.
        OS = monkey.original("threading", "Thread")
        for lock in (threading.Lock(), threading.RLock()):
            box = [0, 0]
            def work():
                for _ in range(3000):
                    with lock:
                        v = box[0]
                        box[1] = max(box[1], 1)
                        box[0] = v + 1
            ts = [threading.Thread(target=work) for _ in range(2)] + \\
                [OS(target=work) for _ in range(2)]
            [t.start() for t in ts]; [t.join() for t in ts]
            out.setdefault("counts", []).append(box[0])
        print(json.dumps(out))
    """)
    if res["compiled"]:
        assert res["c_methods"] == ["_c_lock_enter", "_c_enter"]
    else:
        assert res["c_methods"] == ["__enter__", "__enter__"]
    assert res["lock_forms"] == [False, False, False, False, True]
    assert res["lock_free"] == [True, True]
    assert res["plain_greenlet"] == [True, 2]
    assert res["other_greenlet"] == [False, False]
    assert res["release_by_other"] == "cannot release un-acquired lock"
    assert res["released"] == [False, True]
    assert res["release_free"] == "cannot release un-acquired lock"
    assert res["cond"] == [True, 2]
    assert res["counts"] == [12000, 12000]


def test_review_exit_after_hubs_in_os_threads_shared_locks(tmp_path):
    # review: two OS threads with a hub each, a bare OS thread and the main
    # program's threads shared a Lock, an RLock, a Condition and a
    # Queue(1); after every join, the exit hung about one run in two (pure
    # Python): the main hub's close at finalization waited for a lock an
    # ended OS thread held.  Eight runs, each must exit.
    code = """
        import json, queue, threading, time
        import socket2
        from socket2 import monkey
        OS = monkey.original("threading", "Thread")
        L, R = threading.Lock(), threading.RLock()
        C = threading.Condition(threading.RLock())
        q = queue.Queue(1)
        box = [0]
        def work(tag):
            for i in range(800):
                with L:
                    if i % 7 == 0:
                        time.sleep(0)
                    box[0] += 1
                with R:
                    with R:
                        pass
                with C:
                    C.notify()
                    if i % 11 == 0:
                        C.wait(0.001)
                q.put(i)
                q.get()
        def with_hub():
            ts = [socket2.newthread(work, j) for j in range(3)]
            [t.join() for t in ts]
        ths = [OS(target=with_hub) for _ in range(2)] + [OS(target=work,
                                                            args=("bare",))]
        main = [socket2.newthread(work, j) for j in range(2)]
        [t.start() for t in ths]
        [t.join() for t in main]
        [t.join() for t in ths]
        print(json.dumps(box[0]))
    """
    for _ in range(8):
        res, _ = run_program(tmp_path, code, timeout=30)
        assert res == 9 * 800


def test_review_a_waiter_whose_os_thread_ended_passes_the_wake_up_on(
        tmp_path):
    # review: an OS thread returned while one of its socket2 threads waited
    # on a shared Queue and Lock (its hub closed, the waiter stayed first
    # in the lists); a put and a release then went to that waiter, which
    # never runs, and the live waiter behind it waited out its timeout
    # (the lock free all along), or forever without one.
    res, _ = run_program(tmp_path, """
        import json, queue, threading, time
        import socket2
        from socket2 import monkey
        OS = monkey.original("threading", "Thread")
        q = queue.Queue()
        lock = threading.Lock(); lock.acquire()
        def abandoned():
            socket2.newthread(q.get)
            socket2.newthread(lock.acquire)
            time.sleep(0.05)            # both park, then this thread ends
        t = OS(target=abandoned); t.start(); t.join()
        time.sleep(0.1)
        out = {"left": [len(q._getters), len(lock._waiters)]}
        got = {}
        def live():
            t0 = time.monotonic()
            got["q"] = q.get(timeout=5)
            got["lock"] = lock.acquire(timeout=5)
            got["took"] = time.monotonic() - t0
        o = OS(target=live); o.start()
        time.sleep(0.2)
        q.put("x")
        time.sleep(0.05)
        lock.release()
        o.join()
        out.update(got)
        print(json.dumps(out))
    """, quiet=False)
    assert res["left"] == [1, 1]
    assert res["q"] == "x" and res["lock"] is True
    assert res["took"] < 2, res


_ARGUMENT_CASES = """
    import json, queue, sys, threading
    out = []
    def t(f):
        try:
            out.append(repr(f()))
        except Exception as e:
            out.append("%s: %s" % (type(e).__name__, e))
    def held(L, **kw):
        lock = L()
        lock.acquire()
        got = []
        def other():
            try:
                got.append(lock.acquire(**kw))
            except Exception as e:
                got.append(type(e).__name__)
        th = threading.Thread(target=other)
        th.start()
        th.join(5)
        return got
    for L in (threading.Lock, threading.RLock):
        t(lambda: L().acquire(None))
        t(lambda: L().acquire("x", 0.01))
        t(lambda: L().acquire(timeout="1"))
        t(lambda: L().acquire(True, None))
        t(lambda: L().acquire(2))
        t(lambda: L().acquire(blocking=0.5))
        t(lambda: L().acquire(False, 1))
        t(lambda: L().acquire(timeout=float("nan")))
        for bad in (-2, float("-inf"), float("inf"), 1e300, 2 ** 70):
            t(lambda: L().acquire(timeout=bad))
        t(lambda: held(L, timeout=None))
        t(lambda: held(L, timeout=0.01))
    t(lambda: threading.Semaphore(1).acquire(timeout=None))
    for size in (2.0, 2.5, 10 ** 9):
        def fill(size=size):
            q = queue.Queue(size)
            for i in range(3):
                q.put(i, timeout=0.01)
            return q.full(), q.qsize(), [q.get() for _ in range(3)]
        t(fill)
    print(json.dumps(out))
"""


def test_lock_and_queue_arguments_as_the_standard_library(tmp_path):
    """acquire()'s argument checks and odd queue bounds, patched and not,
    compared case by case: timeout=None on a held lock waited for ever
    (the standard raises TypeError), acquire(None) took the lock, NaN was
    a timeout, and queue.Queue(2.5) failed to build ([None] * 2.5; the
    standard's holds 3), Queue(10**9) allocated its room up front (the
    second review of the green layer)."""
    plain, _ = run_program(tmp_path, _ARGUMENT_CASES, monkey=False)
    patched, _ = run_program(tmp_path, _ARGUMENT_CASES)
    assert patched == plain
    assert "TypeError" in plain[0]


_AT_FINALIZATION = """
    import os, queue, resource, select, signal, socket, subprocess, sys
    import threading, time, types

    def rlock():
        lock = threading.RLock()
        with lock:
            with lock:
                return lock._is_owned()

    def held(lock):
        t = threading.Thread(target=lock.acquire)
        t.start()
        t.join()
        return lock

    class C:
        def __init__(self):
            self.a, self.b = socket.socketpair()
            self.p = subprocess.Popen(
                [sys.executable, "-c", "import os, time; time.sleep(0.3); "
                 "os.write(%d, b'x')" % self.b.fileno()],
                pass_fds=[self.b.fileno()])
            self.lock = held(threading.Lock())
            self.rlock = held(threading.RLock())
            self.event = threading.Event()
            self.cond = threading.Condition()
            self.sem = threading.Semaphore(0)
            self.q = queue.Queue()
            self.full = queue.Queue(1)
            self.full.put(1)
            self.sq = queue.SimpleQueue()
            self.local = threading.local()
            self.local.x = 1
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            if soft < 2048 and (hard >= 2048 or hard < 0):
                resource.setrlimit(resource.RLIMIT_NOFILE, (2048, hard))
            soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            self.high = os.dup2(self.a.fileno(),
                                1500 if soft < 0 else min(1500, soft - 1))

        def set_local(self):
            self.local.y = 2
            return self.local.y

        def poll_high(self):
            p = select.poll()       # (select() refuses numbers >= 1024)
            p.register(self.high, select.POLLIN)
            return p.poll(20)

        def alarm(self):
            got = []
            signal.signal(signal.SIGALRM, lambda *a: got.append("alarm"))
            signal.setitimer(signal.ITIMER_REAL, 0.01)
            time.sleep(0.1)
            signal.signal(signal.SIGALRM, signal.SIG_IGN)
            return got

        def wait_cond(self):
            with self.cond:
                return self.cond.wait(0.02)

        def __del__(self, print=print):
            print("finalizing", sys.is_finalizing(), flush=True)
            for what, f in (
                    ("sleep", lambda: time.sleep(0.01)),
                    ("local", lambda: self.local.x),
                    ("set-local", self.set_local),
                    ("current", lambda: threading.current_thread().name),
                    ("native-id", lambda: threading.get_native_id() > 0),
                    ("rlock", rlock),
                    ("lock", lambda: self.lock.acquire(timeout=0.02)),
                    ("lock-nb", lambda: self.lock.acquire(False)),
                    ("rlock-held", lambda: self.rlock.acquire(timeout=0.02)),
                    ("event", lambda: self.event.wait(0.02)),
                    ("cond", self.wait_cond),
                    ("sem", lambda: self.sem.acquire(timeout=0.02)),
                    ("get", lambda: self.q.get(timeout=0.02)),
                    ("put", lambda: self.full.put(2, timeout=0.02)),
                    ("sq-get", lambda: self.sq.get(timeout=0.02)),
                    ("select", lambda: select.select([self.a], [], [], 0.02)),
                    ("poll-high-fd", self.poll_high),
                    ("recv", lambda: self.a.recv(1)),
                    ("wait", self.p.wait),
                    ("handler", self.alarm)):
                try:
                    print(what, repr(f()), flush=True)
                except BaseException as e:
                    print(what, "raised", type(e).__name__, e, flush=True)

    # Kept by a module of sys.modules: its __del__ runs as the interpreter
    # finalizes (a global of __main__ may go before, when the program is
    # run by socket2.monkey's runpy).
    keep = sys.modules["_keep"] = types.ModuleType("_keep")
    keep.c = C()
    print("end", flush=True)
"""


def test_waits_in_a_finalizer_as_the_interpreter_finalizes(tmp_path):
    """A ``__del__`` of an object kept by a module runs while the
    interpreter finalizes, when greenlet refuses to switch: time.sleep(),
    a recv that had to wait (a new hub was even made for it), and then
    (the third review) contended lock acquires, Event/Condition waits,
    queue gets and puts, select(), ``threading.local`` attributes,
    get_native_id() and a signal handler raised RuntimeError('greenlet
    is being finalized') (and a poll() of a descriptor above 1023 then
    raised ValueError: it was waited for with select());
    they now work (and block the OS thread) as the standard library's
    do."""
    prog = tmp_path / "fin.py"
    prog.write_text(textwrap.dedent(_AT_FINALIZATION))
    outs = []
    for argv in ([sys.executable, str(prog)],
                 [sys.executable, "-m", "socket2.monkey", str(prog)]):
        out = subprocess.run(argv, capture_output=True, text=True,
                             timeout=30, cwd=str(tmp_path))
        assert out.returncode == 0, out.stderr
        outs.append(out.stdout)
    assert outs[1] == outs[0] == (
        "end\nfinalizing True\nsleep None\nlocal 1\nset-local 2\n"
        "current 'MainThread'\nnative-id True\nrlock True\nlock False\n"
        "lock-nb False\nrlock-held False\nevent False\ncond False\n"
        "sem False\nget raised Empty \nput raised Full \n"
        "sq-get raised Empty \nselect ([], [], [])\npoll-high-fd []\n"
        "recv b'x'\nwait 0\nhandler ['alarm']\n"
    ), outs


_THREAD_AT_FINALIZATION = """
    import sys, threading, types

    class C:
        def __del__(self, print=print):
            t = threading.Thread(target=print, args=("ran",))
            try:
                t.start()
            except RuntimeError as e:
                print("start raised", e, flush=True)
            else:
                t.join(1)

    keep = sys.modules["_keep"] = types.ModuleType("_keep")
    keep.c = C()
"""


def test_a_thread_started_as_the_interpreter_finalizes(tmp_path):
    """Starting a thread while the interpreter finalizes raised
    RuntimeError('greenlet is being finalized'), or hung in start() where
    a real OS thread was started (as plain Python 3.11 does: the new
    thread may never take the GIL); it now raises Python 3.12's error."""
    prog = tmp_path / "fin.py"
    prog.write_text(textwrap.dedent(_THREAD_AT_FINALIZATION))
    out = subprocess.run([sys.executable, "-m", "socket2.monkey", str(prog)],
                         capture_output=True, text=True, timeout=30,
                         cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout == \
        "start raised can't create new thread at interpreter shutdown\n", \
        out.stdout


_HANDLER_AS_MAIN = """
    import json, os, signal, threading, time
    time.sleep(0.01)                # (patched: the main hub exists)
    lock = threading.RLock()
    done = threading.Event()
    seen = []

    def handler(signum, frame):
        with lock:                  # the main thread holds it: re-entered
            seen.append((threading.current_thread().name,
                         threading.get_ident() == threading.main_thread()
                         .ident))
        done.set()

    signal.signal(signal.SIGALRM, handler)
    out = []
    with lock:
        # 1: the main thread waits (patched: the hub runs the handler)
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        out.append(done.wait(5))
    print(json.dumps([out, seen]))
"""


def test_a_signal_handler_runs_as_the_main_thread(tmp_path):
    """Patched, a handler ran as a new socket2 thread (a Dummy-N) or as
    the green thread it interrupted: an RLock the main thread held was not
    its to take again, and the handler deadlocked the program (the second
    review of the green layer).  It now acts as the main thread.  (One
    that interrupts a running socket2 thread runs inline in it, as that
    thread: run elsewhere, it deadlocked on that thread's RLock or broke
    the hub's run queue, the third and fourth reviews.)"""
    plain, _ = run_program(tmp_path, _HANDLER_AS_MAIN, monkey=False)
    patched, _ = run_program(tmp_path, _HANDLER_AS_MAIN, timeout=30)
    assert plain == [[True], [["MainThread", True]]]
    assert patched == plain


_NESTED_HANDLER = """
    import json, os, signal, subprocess, sys, threading, time
    seen = []

    def inner(signum, frame):
        raise ValueError("from the inner handler")

    def outer(signum, frame):
        try:
            os.kill(os.getpid(), signal.SIGUSR2)
            end = time.monotonic() + 2
            while time.monotonic() < end:
                pass
            seen.append("outer: not interrupted")
        except ValueError as e:
            seen.append("outer caught: %s" % e)

    signal.signal(signal.SIGUSR1, outer)
    signal.signal(signal.SIGUSR2, inner)
    if sys.argv[1] == "thread":     # the outer handler interrupts a thread
        def later():
            time.sleep(0.2)
            os.kill(os.getpid(), signal.SIGUSR1)
        threading.Thread(target=later).start()
    else:                           # ... or the hub, asleep in its poller
        subprocess.Popen(["sh", "-c", "sleep 0.2; kill -USR1 %d"
                          % os.getpid()])
    try:
        time.sleep(1)
        seen.append("main: slept")
    except ValueError as e:
        seen.append("main caught: %s" % e)
    time.sleep(0.5)
    print(json.dumps(seen))
"""


@pytest.mark.parametrize("sender", ["thread", "process"])
def test_a_nested_handlers_exception_goes_to_the_outer_handler(tmp_path,
                                                               sender):
    """A handler interrupted by another signal whose handler raises: the
    exception reached the main program (cutting its sleep short), not the
    outer handler that it interrupted, as without socket2."""
    plain, _ = run_program(tmp_path, _NESTED_HANDLER, sender, monkey=False)
    patched, _ = run_program(tmp_path, _NESTED_HANDLER, sender, timeout=30)
    assert plain == ["outer caught: from the inner handler", "main: slept"]
    assert patched == plain


_SEVERAL_JOINERS = """
    import json, sys, threading, time
    try:
        from socket2.monkey import original
        OSThread = original("threading", "Thread")
    except ImportError:
        OSThread = threading.Thread
    kinds = {"o": OSThread, "g": threading.Thread}
    out = []
    for mode in ("oo", "og", "go", "gg"):   # target's kind, joiners' kind
        t = kinds[mode[0]](target=time.sleep, args=(0.2,))
        t.start()
        res = []

        def join():
            try:
                t.join()
                res.append("ok")
            except BaseException as e:
                res.append(type(e).__name__)

        joiners = [kinds[mode[1]](target=join) for _ in range(3)]
        for j in joiners:
            j.start()
        for j in joiners:
            j.join()
        out.append([mode, sorted(res), t.is_alive()])
    print(json.dumps(out))
"""


def test_several_threads_join_one_thread(tmp_path):
    """Three threads join one: the sentinel lock's release handed it to
    the next joiner, so threading's _stop() found it still locked (all
    but one joiner failed, AssertionError and RuntimeError; an adversarial
    review).  A thread's sentinel now opens for every joiner at once."""
    plain, _ = run_program(tmp_path, _SEVERAL_JOINERS, monkey=False)
    patched, _ = run_program(tmp_path, _SEVERAL_JOINERS)
    assert plain[0] == ["oo", ["ok", "ok", "ok"], False]
    assert patched == plain


_HUB_CLOSED_AT_JOIN = """
    import json, os, threading, time
    from socket2.monkey import original
    OSThread = original("threading", "Thread")
    time.sleep(0)               # (the main thread's hub, before the count)
    base = set(os.listdir("/proc/self/fd"))
    left = 0
    for i in range(100):
        t = OSThread(target=time.sleep, args=(0.002,))  # (makes a hub)
        t.start()
        t.join()
        left += bool(set(os.listdir("/proc/self/fd")) - base)
    print(json.dumps(left))
"""


def test_an_os_threads_hub_is_closed_when_join_returns(tmp_path):
    """join() of an OS thread that used socket2 could return before the
    thread's hub had closed its descriptors (an adversarial review: 32 of
    200 joins compiled, 103 of 200 pure Python); the join sentinels now
    open after the hub's end."""
    left, _ = run_program(tmp_path, _HUB_CLOSED_AT_JOIN)
    assert left == 0


_REAL_AND_GREEN_LOCALS = """
    import json, threading, time
    try:
        from socket2.monkey import original
        OSThread = original("threading", "Thread")
        RealLocal = original("threading", "local")
    except ImportError:
        OSThread, RealLocal = threading.Thread, threading.local
    out = []
    real, green = RealLocal(), threading.local()

    class Fin:
        def __init__(self, name):
            self.name = name

        def __del__(self):
            time.sleep(0.05)
            out.append(self.name)

    def body():
        green.v = Fin("green")
        real.v = Fin("real")

    t = OSThread(target=body)
    t.start()
    t.join()
    out.append("joined")
    time.sleep(0.3)
    print(json.dumps(out))
"""


def test_join_waits_for_real_thread_locals_finalizers(tmp_path):
    """A real ``_thread._local`` (a library's, made before patching) of an
    OS thread: its finalizer ran after join() had returned, patched; the
    join now also waits for the interpreter's own sentinel (an
    adversarial review)."""
    plain, _ = run_program(tmp_path, _REAL_AND_GREEN_LOCALS, monkey=False)
    patched, _ = run_program(tmp_path, _REAL_AND_GREEN_LOCALS)
    assert plain == ["green", "real", "joined"]
    assert patched == plain


_SIGNAL_WHILE_A_HANDLER_WAITS = """
    import json, os, signal, subprocess, time
    log = []

    class E(Exception):
        pass

    def inner(signum, frame):
        log.append("inner")
        raise E("from the inner handler")

    def outer(signum, frame):
        log.append("outer starts")
        try:
            time.sleep(1)           # the second signal comes meanwhile
            log.append("outer: not interrupted")
        except E as e:
            log.append("outer caught: %s" % e)

    signal.signal(signal.SIGUSR1, outer)
    signal.signal(signal.SIGUSR2, inner)
    sender = subprocess.Popen(["sh", "-c", "sleep 0.2; kill -USR1 %d; "
                               "sleep 0.3; kill -USR2 %d"
                               % (os.getpid(), os.getpid())])
    try:
        time.sleep(1.5)
        log.append("main: slept")
    except E as e:
        log.append("main caught: %s" % e)
    sender.wait()
    print(json.dumps(log))
"""


def test_a_signal_while_a_handler_waits_raises_in_that_handler(tmp_path):
    """A second signal comes while the first one's handler sleeps (run in
    a thread of its own, acting as the main thread); the second handler
    raises: the exception reached the main program, where without socket2
    it is raised in the sleeping handler (an adversarial review)."""
    plain, _ = run_program(tmp_path, _SIGNAL_WHILE_A_HANDLER_WAITS,
                           monkey=False)
    patched, _ = run_program(tmp_path, _SIGNAL_WHILE_A_HANDLER_WAITS,
                             timeout=30)
    assert plain == ["outer starts", "inner",
                     "outer caught: from the inner handler", "main: slept"]
    assert patched == plain


_XLIST_AT_FINALIZATION = """
    import os, select, socket, sys, time, types
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen()
    c = socket.create_connection(ls.getsockname())
    s, _ = ls.accept()
    if os.fork() == 0:
        time.sleep(0.3)
        c.send(b"!", socket.MSG_OOB)
        time.sleep(0.2)
        os._exit(0)

    class Late:
        def __init__(self):
            self.fd = os.dup(s.fileno())

        def __del__(self, print=print):
            x = select.select([], [], [self.fd])[2]     # (no timeout)
            print("xlist", x == [self.fd], sys.is_finalizing(), flush=True)

    keep = sys.modules["_keep"] = types.ModuleType("_keep")
    keep.late = Late()
"""


def test_select_of_an_xlist_as_the_interpreter_finalizes(tmp_path):
    """select() on exceptional conditions only, as the interpreter
    finalizes: patched, it waited on nothing (forever, without a
    timeout); it is now the standard select() then (an adversarial
    review)."""
    prog = tmp_path / "fin.py"
    prog.write_text(textwrap.dedent(_XLIST_AT_FINALIZATION))
    for argv in ([sys.executable, str(prog)],
                 [sys.executable, "-m", "socket2.monkey", str(prog)]):
        out = subprocess.run(argv, capture_output=True, text=True,
                             timeout=30, cwd=str(tmp_path))
        assert out.returncode == 0, out.stderr
        assert out.stdout == "xlist True True\n", (argv, out.stdout)


_INTERRUPTED_JOIN = """
    import json, signal, threading, time
    try:
        from socket2.monkey import original
        OSThread = original("threading", "Thread")
    except ImportError:
        OSThread = threading.Thread
    t = OSThread(target=time.sleep, args=(0.6,))
    t.start()
    threading.Timer(0.2, signal.raise_signal, (signal.SIGINT,)).start()
    try:
        t.join()
        got = "returned"
    except KeyboardInterrupt:
        got = "KeyboardInterrupt"
    except BaseException as e:
        got = type(e).__name__
    t.join()
    print(json.dumps([got, t.is_alive()]))
"""


def test_ctrl_c_in_the_join_of_an_os_thread(tmp_path):
    """KeyboardInterrupt in join() of an OS thread: threading's fallback
    (bpo-45274) releases the sentinel and checks it is unlocked; the
    sentinel also counted the interpreter's own, still held, and the
    program got an AssertionError, then 'release unlocked lock' at exit
    (a stranger's review)."""
    plain, _ = run_program(tmp_path, _INTERRUPTED_JOIN, monkey=False)
    patched, _ = run_program(tmp_path, _INTERRUPTED_JOIN)
    assert plain == ["KeyboardInterrupt", False]
    assert patched == plain


_LOCAL_FINALIZER = """
    import json, socket, subprocess, sys, threading, time
    try:
        from socket2.monkey import original
        OSThread = original("threading", "Thread")
    except ImportError:
        OSThread = threading.Thread
    out = []

    class Res:
        def __init__(self):
            self.a, b = socket.socketpair()
            self.a.settimeout(5)
            self.p = subprocess.Popen(
                [sys.executable, "-c", "import os, time; time.sleep(0.3); "
                 "os.write(%d, b'x')" % b.fileno()], pass_fds=[b.fileno()])
            b.close()

        def __del__(self):
            try:
                time.sleep(0.01)
                time.sleep(0)
                out.append(repr(self.a.recv(1)))    # waits for the child
            except BaseException as e:
                out.append("%s: %s" % (type(e).__name__, e))
            self.a.close()
            self.p.wait()

    loc = threading.local()

    def body():
        time.sleep(0.01)            # (patched: this OS thread has a hub)
        loc.r = Res()

    t = OSThread(target=body)
    t.start()
    t.join()
    out.append("joined")    # (after the finalizer, as unpatched)
    time.sleep(0.5)
    print(json.dumps(out))
"""


def test_a_thread_local_finalizer_of_an_ending_thread_may_wait(tmp_path):
    """An OS thread that used socket2 ends; a finalizer of one of its
    threading.local values sleeps and waits on a socket: socket2 refused
    ('this OS thread is ending and its hub is closed'), where the standard
    library blocks the thread.  Now those waits block the thread too (the
    second review of the green layer).  And join() returned before that
    finalizer had finished (the join sentinel went first); it now returns
    after, as unpatched."""
    plain, _ = run_program(tmp_path, _LOCAL_FINALIZER, monkey=False)
    patched, _ = run_program(tmp_path, _LOCAL_FINALIZER)
    assert plain == ["b'x'", "joined"]
    assert patched == plain


_GREEN_THREAD_LOCAL_FINALIZER = """
    import json, threading, time
    out = []
    green = threading.local()

    class Fin:
        def __del__(self):
            time.sleep(0.05)        # waits (other threads run meanwhile)
            out.append("finalizer")

    def body():
        green.v = Fin()

    t = threading.Thread(target=body)
    t.start()
    t.join()
    out.append("joined")
    time.sleep(0.3)
    print(json.dumps(out))
"""


def test_join_of_a_thread_waits_for_its_locals_finalizers(tmp_path):
    """A thread (a socket2 thread, patched) whose threading.local value's
    finalizer sleeps: join() returned while that finalizer slept (the
    sentinel opened before the thread's locals went); now its locals go
    first, as the interpreter clears a thread's state before it releases
    join()'s lock."""
    plain, _ = run_program(tmp_path, _GREEN_THREAD_LOCAL_FINALIZER,
                           monkey=False)
    patched, _ = run_program(tmp_path, _GREEN_THREAD_LOCAL_FINALIZER)
    assert plain == ["finalizer", "joined"]
    assert patched == plain


_ENDING_THREAD_SEEN_BY_ITS_LOCALS = """
    import _thread, json, threading, time
    loc = threading.local()
    counts = []

    class Fin:
        def __del__(self):
            threading.current_thread()  # (logging's %(threadName)s does)
            counts.append(_thread._count())

    def worker():
        loc.v = Fin()
        time.sleep(0.001)

    for _ in range(10):
        ts = [threading.Thread(target=worker) for _ in range(20)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    time.sleep(0.1)
    print(json.dumps([threading.active_count() < 100, max(counts)
                      <= 19]))
"""


def test_a_locals_finalizer_sees_its_thread_ended(tmp_path):
    """As a thread's locals go (before join() returns), the thread no
    longer counts (_thread._count) and threading.current_thread() there
    makes a dummy that goes with the thread: a review of the change that
    ran the locals' finalizers first found the dummies of 1,000 threads
    kept in threading._active, and each thread counted in its own
    finalizers."""
    plain, _ = run_program(tmp_path, _ENDING_THREAD_SEEN_BY_ITS_LOCALS,
                           monkey=False)
    patched, _ = run_program(tmp_path, _ENDING_THREAD_SEEN_BY_ITS_LOCALS)
    assert plain == [True, True]
    assert patched == plain
