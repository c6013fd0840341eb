import threading

import pytest

import socket2
from socket2 import hub as _hub


def test_newthread_runs_at_once_and_returns_at_first_wait():
    order = []

    def f(x):
        order.append(("start", x))
        socket2.sleep(0.01)
        order.append(("end", x))
        return x * 2

    t = socket2.newthread(f, 21)
    order.append("caller")
    assert order == [("start", 21), "caller"]
    assert t.join() == 42
    assert order[-1] == ("end", 21)
    assert t.finished and t.dead


def test_thread_that_never_waits():
    t = socket2.newthread(lambda a, b=0: a + b, 1, b=2)
    assert t.finished and t.join() == 3


def test_start_returns_when_nothing_is_left():
    done = []
    socket2.newthread(lambda: (socket2.sleep(0.02), done.append(1)))
    socket2.newthread(lambda: (socket2.sleep(0.01), done.append(2)))
    assert socket2.start() is True
    assert done == [2, 1]


def test_start_timeout_and_stop():
    t0 = socket2.clock()
    timer = socket2.runevery(0.005, lambda: None)
    assert socket2.start(0.05) is False          # ran out of time
    assert 0.04 <= socket2.clock() - t0 < 1.0

    def stopper():
        socket2.sleep(0.02)
        socket2.stop()

    socket2.newthread(stopper)
    assert socket2.start() is True               # stopped, timer still live
    timer.cancel()
    assert socket2.start() is True               # nothing left


def test_poll_returns_false_on_timeout_and_true_on_event():
    with socket2.udp() as r, socket2.udp() as s:
        r.bind("127.0.0.1", 0)
        t = socket2.newthread(r.recv, bytearray(10))
        assert socket2.poll(0.01) is False
        s.send(b"x", None, "127.0.0.1", r.local_port)
        assert socket2.poll(1) is True
        assert t.finished and t.join() == 1
    assert socket2.poll(0) is False              # nothing to wait for


def test_exception_in_thread_is_reported_and_the_loop_goes_on(capfd):
    def bad():
        socket2.sleep(0.001)
        raise ValueError("boom in thread")

    results = []
    socket2.newthread(bad)
    socket2.newthread(lambda: (socket2.sleep(0.01), results.append("ok")))
    socket2.start()
    assert results == ["ok"]
    err = capfd.readouterr().err
    assert "ValueError: boom in thread" in err and "Traceback" in err


def test_join_reraises_and_kill_cancels_a_wait():
    def bad():
        socket2.sleep(0.001)
        raise KeyError("k")

    t = socket2.newthread(bad)
    with pytest.raises(KeyError):
        t.join()
    with socket2.udp() as u:
        u.bind("127.0.0.1", 0)
        waiting = socket2.newthread(u.recv, bytearray(1))
        waiting.kill()
        assert waiting.finished and waiting.join() is None
        waiting.kill()             # finished: no-op
        # the socket is usable again: no reader is left in its slot
        t = socket2.newthread(u.recv, bytearray(1))
        t.kill(socket2.Error("cancelled", "stop"))
        with pytest.raises(socket2.Error):
            t.join()


def test_timeout_on_recv_leaves_socket_usable():
    with socket2.udp() as r, socket2.udp() as s:
        r.bind("127.0.0.1", 0)
        buf = bytearray(10)
        t0 = socket2.clock()
        with pytest.raises(socket2.TimeoutError) as e:
            r.recv(buf, timeout=0.05)
        assert isinstance(e.value, TimeoutError) and e.value.err == "timeout"
        assert 0.04 <= socket2.clock() - t0 < 1.0
        s.send(b"after", None, "127.0.0.1", r.local_port)
        assert r.recv(buf, timeout=1) == 5


def test_timers():
    fired = []
    socket2.runafter(0.02, fired.append, "after")
    socket2.runat(socket2.clock() + 0.01, fired.append, "at")
    h = socket2.runafter(0.01, fired.append, "cancelled")
    h.cancel()
    every = []
    e = socket2.runevery(0.005, lambda: every.append(1))
    socket2.sleep(0.05)
    e.cancel()
    socket2.start()
    assert fired == ["at", "after"]
    assert 3 <= len(every) <= 12


def test_sleep_zero_yields():
    order = []

    def other():
        order.append("other")

    socket2.newthread(lambda: (socket2.sleep(0), order.append("yielder")))
    socket2.newthread(other)
    socket2.start()
    assert order == ["other", "yielder"]


def test_epoll_fd_get_and_set(poller):
    if poller != "epoll":
        with pytest.raises(socket2.Error) as e:
            socket2.epoll_fd()
        assert e.value.err == "unsupported"
        return
    fd = socket2.epoll_fd()
    assert isinstance(fd, int) and fd >= 0
    assert socket2.epoll_fd(fd) == fd
    with pytest.raises(socket2.Error) as e:
        socket2.epoll_fd(fd + 1000)
    assert e.value.err == "busy"
    with pytest.raises(TypeError):
        socket2.epoll_fd("3")


def test_each_os_thread_has_its_own_hub():
    seen = {}

    def worker():
        with socket2.udp() as a:
            a.bind("127.0.0.1", 0)
            with pytest.raises(socket2.TimeoutError):
                a.recv(bytearray(1), timeout=0.01)
            seen["hub"] = _hub.get_hub()
        _hub.get_hub().close()

    th = threading.Thread(target=worker)
    th.start()
    th.join()
    assert seen["hub"] is not _hub.get_hub()


def test_misuse_is_reported():
    with pytest.raises(TypeError, match="callable"):
        socket2.newthread(42)
    with pytest.raises(ValueError):
        socket2.sleep(-1)
    with pytest.raises(ValueError):
        socket2.runevery(0, print)
    t = socket2.newthread(lambda: socket2.current())
    assert t.join() is t
