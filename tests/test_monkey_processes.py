"""patch_all(subprocess=True, os=True, signal=True): child processes and
signal handlers, in programs run under ``python -m socket2.monkey`` (see
test_monkey_threading.py)."""
import os
import signal

import pytest

from test_monkey_threading import BOUND, N, NEEDS_THREADS, run_program

pytestmark = [pytest.mark.one_poller, NEEDS_THREADS,
              pytest.mark.skipif(os.name != "posix", reason="POSIX only")]


def test_subprocess_runs_in_parallel(tmp_path):
    res, _ = run_program(tmp_path, """
        import json, subprocess, threading, time
        out = {}
        def timed(fn):
            res = []
            t0 = time.monotonic()
            ts = [threading.Thread(target=lambda: res.append(fn()))
                  for _ in range(NTHREADS)]
            [t.start() for t in ts]; [t.join() for t in ts]
            return res, time.monotonic() - t0
        sh = ["sh", "-c", "sleep 0.5; echo hi"]
        for name, fn in (
                ("check_output", lambda: subprocess.check_output(sh)),
                ("run", lambda: subprocess.run(sh, capture_output=True)
                 .stdout),
                ("call", lambda: subprocess.call(["sleep", "0.5"])),
                ("wait", lambda: subprocess.Popen(["sleep", "0.5"]).wait()),
                ("communicate_in", lambda: subprocess.Popen(
                    ["sh", "-c", "sleep 0.5; cat"], stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE).communicate(b"x" * 200000)[0]
                 .count(b"x"))):
            res, t = timed(fn)
            out[name] = [sorted(set(map(str, res))), t]
        # wait(timeout=) gives up in time, then the child is reaped
        p = subprocess.Popen(["sleep", "5"])
        t0 = time.monotonic()
        try:
            p.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            out["timeout"] = time.monotonic() - t0
        p.kill()
        out["killed"] = p.wait()
        try:
            subprocess.run(["sleep", "5"], timeout=0.2)
        except subprocess.TimeoutExpired:
            out["run_timeout"] = True
        out["text"] = subprocess.run(["cat"], input="abc\\n", text=True,
                                     capture_output=True).stdout
        print(json.dumps(out))
    """.replace("NTHREADS", str(N)))
    assert res["check_output"][0] == ["b'hi\\n'"]
    assert res["run"][0] == ["b'hi\\n'"]
    assert res["call"][0] == res["wait"][0] == ["0"]
    assert res["communicate_in"][0] == ["200000"]
    for name in ("check_output", "run", "call", "wait", "communicate_in"):
        assert res[name][1] < BOUND, (name, res)
    assert 0.19 <= res["timeout"] < 1.5
    assert res["killed"] == -signal.SIGKILL
    assert res["run_timeout"] is True
    assert res["text"] == "abc\n"


def test_waitpid_and_wait_let_threads_run(tmp_path):
    res, _ = run_program(tmp_path, """
        import json, os, threading, time
        ticks = []
        def ticker():
            while len(ticks) < 10:
                time.sleep(0.02)
                ticks.append(1)
        out = {}
        t = threading.Thread(target=ticker); t.start()
        pid = os.fork()
        if pid == 0:
            time.sleep(0.3)
            os._exit(7)
        got, status = os.waitpid(pid, 0)
        out["waitpid"] = [got == pid, os.waitstatus_to_exitcode(status),
                          len(ticks) >= 5]
        t.join()
        ticks.clear()
        t = threading.Thread(target=ticker); t.start()
        pid = os.fork()
        if pid == 0:
            time.sleep(0.3)
            os._exit(3)
        got, status = os.wait()
        out["wait"] = [got == pid, os.waitstatus_to_exitcode(status),
                       len(ticks) >= 5]
        t.join()
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            out["reaped"] = True
        print(json.dumps(out))
    """)
    assert res["waitpid"] == [True, 7, True]
    assert res["wait"] == [True, 3, True]
    assert res["reaped"] is True


def test_signal_handlers_with_the_hub(tmp_path):
    res, _ = run_program(tmp_path, """
        import json, os, signal, socket, threading, time
        out = {}
        class Alarm(Exception):
            pass
        def raiser(signum, frame):
            raise Alarm()
        signal.signal(signal.SIGALRM, raiser)
        out["getsignal"] = signal.getsignal(signal.SIGALRM) is raiser
        # alarm() interrupts a sleeping main program (the hub sleeps in
        # its poller meanwhile)
        signal.alarm(1)
        t0 = time.monotonic()
        try:
            time.sleep(5)
        except Alarm:
            out["alarm"] = 0.9 <= time.monotonic() - t0 < 2.5
        # setitimer keeps firing while the hub sleeps; the handler may wait
        # (it joins a thread) without blocking the hub
        ticks = []
        def tick(signum, frame):
            t = threading.Thread(target=time.sleep, args=(0.01,))
            t.start(); t.join()
            ticks.append(1)
        signal.signal(signal.SIGALRM, tick)
        signal.setitimer(signal.ITIMER_REAL, 0.05, 0.05)
        time.sleep(0.6)
        signal.setitimer(signal.ITIMER_REAL, 0)
        out["ticks"] = len(ticks) >= 5
        # a handler that raises while the main program waits for a thread
        # parked on a socket: the main program gets it, the hub lives on
        a, b = socket.socketpair()
        rt = threading.Thread(target=lambda: out.setdefault(
            "read", a.recv(10).decode()))
        rt.start()
        signal.signal(signal.SIGALRM, raiser)
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        try:
            time.sleep(2)
        except Alarm:
            out["interrupted"] = True
        b.send(b"after")
        rt.join()
        a.close(); b.close()
        # Ctrl-C
        signal.signal(signal.SIGINT, signal.default_int_handler)
        threading.Timer(0.1, os.kill, args=(os.getpid(),
                                             signal.SIGINT)).start()
        try:
            time.sleep(3)
        except KeyboardInterrupt:
            out["sigint"] = True
        print(json.dumps(out))
    """)
    assert res == {"getsignal": True, "alarm": True, "ticks": True,
                   "interrupted": True, "read": "after", "sigint": True}


def test_multiprocessing_pool_under_patch_all(tmp_path):
    """A process pool: its task and result handlers are socket2 threads of
    one OS thread, so the pipes they read and write and the semaphores
    they wait on must all wait cooperatively (each of these hung: the
    result pipe's read, the task pipe's write once full, the queue lock
    in terminate()).  Also big payloads (many pipe writes), a task that
    raises, and a thread that keeps ticking meanwhile."""
    res, _ = run_program(tmp_path, """
        import json, multiprocessing as mp, threading, time

        def square(x):
            return x * x

        def fail(x):
            raise ValueError("no %d" % x)

        def echo(b):
            return b[::-1]

        if __name__ == "__main__":
            ticks = []
            stop = []
            def ticker():
                while not stop:
                    time.sleep(0.01)
                    ticks.append(1)
            t = threading.Thread(target=ticker); t.start()
            out = {}
            with mp.Pool(2) as p:
                out["map"] = sum(p.map(square, range(5000), chunksize=1))
                out["async"] = [p.apply_async(square, (i,)).get(timeout=10)
                                for i in range(5)]
                big = bytes(range(256)) * 8192            # 2 MiB
                out["big"] = p.apply(echo, (big,)) == big[::-1]
                try:
                    p.apply(fail, (3,))
                except ValueError as e:
                    out["raised"] = str(e)
            with mp.Pool(1) as p:
                r = p.map_async(square, range(10))
            out["terminated"] = True
            stop.append(1); t.join()
            out["ticked"] = len(ticks) > 5
            print(json.dumps(out))
    """)
    assert res["map"] == sum(i * i for i in range(5000))
    assert res["async"] == [0, 1, 4, 9, 16]
    assert res["big"] is True
    assert res["raised"] == "no 3"
    assert res["terminated"] is True
    assert res["ticked"] is True


def test_a_fork_in_a_socket2_thread_leaves_only_that_thread_in_the_child(
        tmp_path):
    """As with OS threads, the child of a fork made by a (patched) thread
    has only that thread: the parent's main program and its other
    threads must not run there (a multiprocessing.Pool replacing a worker
    forks from its worker-handler thread, and the child ran the parent's
    main code a second time).  The child ends when its thread does, with
    status 0; and Pool(maxtasksperchild=) works."""
    res, err = run_program(tmp_path, """
        import json, multiprocessing as mp, os, sys, threading, time

        def square(x):
            return x * x, os.getpid()

        if __name__ == "__main__":
            me = os.getpid()
            ticks = []
            stop = []
            def ticker():
                while not stop:
                    time.sleep(0.005)
                    if os.getpid() != me:
                        print("TICKER RAN IN THE CHILD", file=sys.stderr,
                              flush=True)
                    ticks.append(1)
            t = threading.Thread(target=ticker); t.start()
            statuses = []
            import socket2
            other = socket2.newthread(socket2.sleep, 30)
            r, w = os.pipe()
            def forker():
                pid = os.fork()
                if pid == 0:
                    time.sleep(0.2)     # the child's hub runs meanwhile
                    try:                # a thread that is not in the child
                        other.join()
                        os.write(w, b"joined")
                    except socket2.Error as e:
                        os.write(w, e.err.encode())
                    return              # its only thread ends: it exits
                statuses.append(os.waitpid(pid, 0)[1])
                statuses.append(os.read(r, 100).decode())
                other.kill()
            f = threading.Thread(target=forker); f.start(); f.join()
            with mp.Pool(2, maxtasksperchild=2) as p:
                r = p.map(square, range(20), chunksize=1)
            stop.append(1); t.join()
            if os.getpid() != me:
                print("MAIN RAN IN THE CHILD", file=sys.stderr, flush=True)
            print(json.dumps({"status": statuses,
                              "sum": sum(x for x, _ in r),
                              "workers": len({w for _, w in r}),
                              "ticked": len(ticks) > 5}))
    """)
    assert "RAN IN THE CHILD" not in err
    assert res["status"] == [0, "deadlock"]
    assert res["sum"] == sum(i * i for i in range(20))
    assert res["workers"] >= 10       # replaced every 2 tasks
    assert res["ticked"] is True


def test_review_a_forked_childs_threads_signals_and_exit_status(tmp_path):
    """Review of the above: in a child forked by a thread, a signal
    handler's exception (SIGINT) is raised in that thread, never in the
    parent's main program; threads the child starts run to their end
    before it exits; SystemExit in a socket2 thread gives its status."""
    res, _ = run_program(tmp_path, """
        import json, os, signal, sys, threading, time
        import socket2
        me = os.getpid()
        out = {}
        r, w = os.pipe()
        def sigint_child():
            pid = os.fork()
            if pid == 0:
                try:
                    time.sleep(5)
                    os.write(w, b"slept")
                except KeyboardInterrupt:
                    os.write(w, b"interrupted")
                return
            time.sleep(0.3)
            os.kill(pid, signal.SIGINT)
            out["sigint"] = [os.waitpid(pid, 0)[1], os.read(r, 100).decode()]
        def worker_child():
            pid = os.fork()
            if pid == 0:
                def late():
                    time.sleep(0.2)
                    os.write(w, b"worker done")
                threading.Thread(target=late).start()
                return              # not the last thread: no exit yet
            out["worker"] = [os.waitpid(pid, 0)[1], os.read(r, 100).decode()]
        def exit_child():
            pid = os.fork()
            if pid == 0:
                sys.exit(3)
            out["exit"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        try:
            for f in (sigint_child, worker_child):
                t = threading.Thread(target=f); t.start(); t.join()
            socket2.newthread(exit_child).join()
        finally:
            if os.getpid() != me:
                os.write(w, b"MAIN RAN IN THE CHILD")
                os._exit(9)
        print(json.dumps(out))
    """)
    assert res == {"sigint": [0, "interrupted"], "worker": [0, "worker done"],
                   "exit": 3}
