"""Regressions found by the adversarial review of the issue 17 fixes, each
a small program run in a process of its own (they involve OS threads,
signals and interpreter exit), under the test's poller and hot-path build:

- a signal handler that wakes another OS thread while the main thread is
  waking it too (call_threadsafe re-entered: it deadlocked);
- a put carried to another OS thread that completed while a timeout scope
  expired (the scope's TimeoutError escaped it later);
- a Queue made in one OS thread and used in another (a local put was
  carried to itself);
- a dup'ed green socket closed from another OS thread (its epoll
  registration outlived the number);
- a green select() in both slots of a socket that is closed (woken twice);
- a put to a queue whose OS thread has ended (hung for ever; the queue
  now moves to the putting thread);
- close() of a socket whose OS thread ended with a thread parked on it
  (greenlet.error);
- unclosed sockets collected in another OS thread (the owner's hub was
  changed from the wrong thread);
- exit during a storm of signal handlers that raise (the exit-time
  parking of daemon threads' hubs was skipped: SIGSEGV).
"""
import os
import signal
import subprocess
import sys

import pytest

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "programs")


def _run(poller, name, *args, timeout=30):
    env = dict(os.environ, SOCKET2_POLLER=poller)
    p = subprocess.run([sys.executable, os.path.join(HERE, name), *args],
                       capture_output=True, text=True, timeout=timeout,
                       env=env)
    return p.returncode, p.stdout + p.stderr


@pytest.mark.skipif(not hasattr(signal, "SIGALRM"),
                    reason="needs POSIX signals (SIGALRM, setitimer)")
def test_signal_handler_waking_another_thread_does_not_deadlock(poller):
    rc, out = _run(poller, "signal_wakes_other_thread.py")
    assert rc == 0 and "no hang" in out, out[-2000:]


def test_carried_put_does_not_leak_its_scope_timeout(poller):
    rc, out = _run(poller, "carried_put_in_timeout_scope.py")
    assert rc == 0 and "OK: no stray exception" in out, out[-2000:]


def test_queue_made_in_one_thread_used_in_another(poller):
    rc, out = _run(poller, "queue_made_elsewhere.py")
    assert "hung): False [0, 1, 2, 'done']" in out, out[-2000:]


def test_dup_of_green_socket_closed_from_another_thread(poller):
    if poller != "epoll":
        pytest.skip("only epoll keeps registrations per open file "
                    "description")
    rc, out = _run(poller, "green_dup_closed_from_other_thread.py")
    assert rc == 0 and "OK: recv timed out" in out, out[-2000:]


def test_select_in_both_slots_of_a_closed_socket_is_woken_once(poller):
    rc, out = _run(poller, "select_in_both_slots_closed.py")
    assert rc == 0 and "('sleep', 'ok')" in out, out[-2000:]


def test_put_to_a_queue_whose_thread_ended_moves_it_here(poller):
    rc, out = _run(poller, "put_to_queue_of_ended_thread.py")
    assert rc == 0 and "got x y" in out and "home moved back: 2" in out, \
        out[-2000:]
    secs = float(out.split("puts returned after ")[1].split("s")[0])
    assert secs < 1, out[-2000:]


def test_close_after_the_owner_thread_ended(poller):
    rc, out = _run(poller, "close_after_owner_thread_ended.py")
    assert rc == 0 and "close: ok" in out and "peer sees EOF: True" in out, \
        out[-2000:]


def test_sockets_collected_in_another_thread(poller):
    rc, out = _run(poller, "collected_in_other_thread.py")
    assert rc == 0 and "errors in A: []" in out, out[-2000:]


@pytest.mark.skipif(not hasattr(signal, "SIGALRM"),
                    reason="needs POSIX signals (SIGALRM, setitimer)")
def test_exit_in_a_storm_of_raising_signal_handlers(poller):
    deaths = []
    for _ in range(8):
        rc, out = _run(poller, "exit_in_signal_storm.py", timeout=20)
        # SIGALRM's own default action may end it (Python restores it late
        # in finalization): any other signal is a crash.
        if rc < 0 and -rc != signal.SIGALRM or rc > 128 and \
                rc - 128 != signal.SIGALRM:
            deaths.append((rc, out[-500:]))
    assert not deaths, deaths


@pytest.mark.skipif(sys.platform == "win32",
                    reason="sockets are descriptors only on POSIX")
@pytest.mark.parametrize("how", ["del", "close"])
def test_released_when_the_owner_thread_ends_before_its_hub_runs(poller,
                                                                 how):
    """A socket closed (or collected) in another OS thread while its own
    thread is busy, which then ends without another turn of its hub: the
    release handed to that hub still happens (call_threadsafe's
    orphaned), the descriptor does not leak."""
    rc, out = _run(poller, "del_foreign_then_exit.py", how)
    assert rc == 0 and "fd closed (ok)" in out, out[-2000:]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX exit path")
def test_exit_when_socket2_was_imported_in_a_worker_thread(poller):
    """The exit-time parking is prepared for a hub in any thread but the
    main one, whichever thread imported socket2 first."""
    for _ in range(4):
        rc, out = _run(poller, "exit_import_in_thread.py", "thread")
        assert rc == 0, (rc, out[-1000:])
