"""Timeouts, scoped deadlines, sleeps, sleep jobs, kill and join."""
import gc
import os

import pytest

import socket2
from socket2 import hub as _hub


def elapsed(t0):
    return socket2.clock() - t0


def test_connect_timeout_on_a_full_backlog():
    with socket2.tcp() as srv:
        srv.listen("127.0.0.1", 0, backlog=0)
        port = srv.local_port
        fillers = []
        try:
            # Fill the accept queue (never accepted): later SYNs are dropped.
            with pytest.raises(socket2.TimeoutError):
                for _ in range(20):
                    c = socket2.tcp()
                    fillers.append(c)
                    c.connect("127.0.0.1", port, timeout=0.2)
            t0 = socket2.clock()
            with socket2.tcp() as c:
                with pytest.raises(socket2.TimeoutError):
                    c.connect("127.0.0.1", port, timeout=0.1)
                assert 0.08 <= elapsed(t0) < 2
        finally:
            for c in fillers:
                c.close()


def test_accept_timeout_then_accept_works():
    with socket2.tcp() as srv:
        srv.listen("127.0.0.1", 0)
        t0 = socket2.clock()
        with pytest.raises(socket2.TimeoutError):
            srv.accept(timeout=0.05)
        assert 0.04 <= elapsed(t0) < 2
        with socket2.tcp() as c:
            c.connect("127.0.0.1", srv.local_port)
            with srv.accept(timeout=5):
                pass


def test_recv_timeout_and_expires(pair):
    c, a = pair
    buf = bytearray(4)
    with pytest.raises(socket2.TimeoutError):
        c.recv(buf, timeout=0.03)
    with pytest.raises(socket2.TimeoutError):
        c.recv(buf, expires=socket2.clock() + 0.03)
    a.sendall(b"ok")
    assert c.recv(buf, timeout=5) == 2           # still usable


def test_send_timeout_to_a_peer_that_does_not_read(pair):
    c, a = pair
    c.setopt("so_sndbuf", 4096)
    with pytest.raises(socket2.TimeoutError) as e:
        c.sendall(b"x" * (20 << 20), timeout=0.1)
    assert 0 < e.value.sent < (20 << 20)
    # drain what went out, and the socket still sends
    got = 0
    while got < e.value.sent:
        got += a.recv(bytearray(65536))
    c.sendall(b"!")
    assert a.recv(bytearray(1)) == 1


def test_socket_default_timeout(pair):
    c, _ = pair
    c.timeout = 0.03
    t0 = socket2.clock()
    with pytest.raises(socket2.TimeoutError):
        c.recv(bytearray(1))
    assert elapsed(t0) < 2
    with pytest.raises(socket2.TimeoutError):    # explicit beats default
        c.recv(bytearray(1), timeout=0.01)


def test_join_timeout():
    t = socket2.newthread(socket2.sleep, 0.2)
    with pytest.raises(socket2.TimeoutError):
        t.join(timeout=0.01)
    assert t.join(timeout=5) is None


def test_scoped_deadline_covers_a_block(pair):
    c, a = pair
    buf = bytearray(1)
    t0 = socket2.clock()
    with pytest.raises(socket2.TimeoutError):
        with socket2.timeout(0.1) as scope:
            a.sendall(b"1")
            c.recv(buf)                  # returns at once
            socket2.sleep(0.05)          # still inside the 0.1 s
            c.recv(buf)                  # waits: the scope fires here
    assert scope.expired
    assert 0.08 <= elapsed(t0) < 2
    a.sendall(b"2")
    assert c.recv(buf, timeout=5) == 1   # the socket is fine


def test_scoped_deadline_swallowed_with_raise_false():
    with socket2.timeout(0.02, raise_=False) as scope:
        socket2.sleep(10)
    assert scope.expired


def test_nested_scopes_earliest_wins_and_each_claims_its_own():
    outer = socket2.timeout(0.05)
    inner = socket2.timeout(10)
    with pytest.raises(socket2.TimeoutError):
        with outer:
            with inner:
                socket2.sleep(5)
    assert outer.expired and not inner.expired
    # inner fires first; the outer scope lets it through untouched
    with socket2.timeout(10) as outer:
        with pytest.raises(socket2.TimeoutError):
            with socket2.timeout(0.02) as inner:
                socket2.sleep(5)
        assert inner.expired and not outer.expired
    assert socket2.timeout(None).deadline is None


def test_scope_that_never_fires_leaves_no_timer():
    hub = _hub.get_hub()
    with socket2.timeout(60):
        pass
    assert hub.live_timers() == 0


def test_a_million_unfired_timeouts_leave_the_heap_empty():
    hub = _hub.get_hub()
    for _ in range(1_000_000):
        with socket2.timeout(60):
            pass
        assert len(hub._timers) <= 130
    assert hub.live_timers() == 0


def test_waits_with_timeouts_do_not_grow_the_heap(pair):
    c, a = pair
    hub = _hub.get_hub()
    buf = bytearray(1)

    def echo():
        for _ in range(20000):
            a.recvn(buf, timeout=60)
            a.sendall(buf, timeout=60)

    t = socket2.newthread(echo)
    for _ in range(20000):
        c.sendall(b"x", timeout=60)
        c.recvn(buf, timeout=60)
        assert len(hub._timers) <= 130
    t.join()
    assert hub.live_timers() == 0


def test_kill_during_recv_accept_and_sleep():
    with socket2.tcp() as srv, socket2.udp() as u:
        srv.listen("127.0.0.1", 0)
        u.bind("127.0.0.1", 0)
        threads = [socket2.newthread(u.recv, bytearray(1)),
                   socket2.newthread(srv.accept),
                   socket2.newthread(socket2.sleep, 100)]
        for t in threads:
            assert not t.finished
            t.kill()
        assert all(t.finished for t in threads)
        # nothing is left parked, and the sockets take new waiters
        with pytest.raises(socket2.TimeoutError):
            u.recv(bytearray(1), timeout=0.01)
        with pytest.raises(socket2.TimeoutError):
            srv.accept(timeout=0.01)
    assert _hub.get_hub().live_timers() == 0


def test_sleep_and_sleep_until():
    t0 = socket2.clock()
    socket2.sleep(0.03)
    assert 0.025 <= elapsed(t0) < 2
    socket2.sleep_until(socket2.clock() + 0.01)
    assert elapsed(t0) >= 0.035


def test_sleep_job_wakeup_and_timeout():
    sj = socket2.sleep_job()
    assert sj.wakeup() is False          # nobody sleeps

    def waker():
        socket2.sleep(0.01)
        assert sj.wakeup("a", 2)

    socket2.newthread(waker)
    assert sj.sleep(10) == ("a", 2)
    socket2.newthread(lambda: sj.wakeup("one"))
    t = socket2.newthread(sj.sleep)      # sleeps until woken
    socket2.newthread(lambda: sj.wakeup("late"))
    assert t.join() == "late"
    t0 = socket2.clock()
    assert sj.sleep(0.02) is None        # time is up
    assert elapsed(t0) >= 0.015
    assert sj.sleep_until(socket2.clock() + 0.001) is None


def test_sleep_job_is_killable():
    sj = socket2.sleep_job()
    t = socket2.newthread(sj.sleep)
    assert sj.sleeping
    t.kill()
    assert not sj.sleeping and t.finished


def test_main_waiting_on_nothing_raises_deadlock_instead_of_hanging():
    sj = socket2.sleep_job()
    with pytest.raises(socket2.Error) as e:
        sj.sleep()
    assert e.value.err == "deadlock"
    t = socket2.newthread(socket2.sleep_job().sleep)
    with pytest.raises(socket2.Error) as e:
        t.join()
    assert e.value.err == "deadlock"
    t.kill()


def test_exception_reported_once(capfd):
    def bad():
        socket2.sleep(0.001)
        raise RuntimeError("only once")

    t = socket2.newthread(bad)
    socket2.start()
    with pytest.raises(RuntimeError):
        t.join()
    err = capfd.readouterr().err
    assert err.count("RuntimeError: only once") == 1
    # joined before it died: raised in the joiner, not printed
    t = socket2.newthread(bad)
    with pytest.raises(RuntimeError):
        t.join()
    assert "only once" not in capfd.readouterr().err


def test_thread_name_and_alias():
    def worker():
        return socket2.current().name

    t = socket2.thread(worker)
    assert t.join() == "worker" and t.name == "worker"
    assert "worker" in repr(t)


def test_sendall_50mb_through_a_slow_reader(pair):
    c, a = pair
    data = os.urandom(50 << 20)

    def slow_reader():
        got = bytearray()
        buf = bytearray(1 << 20)
        while len(got) < len(data):
            n = a.recv(buf)
            got += buf[:n]
            if len(got) < (4 << 20):
                socket2.sleep(0.0005)     # slow at first
        return bytes(got)

    t = socket2.newthread(slow_reader)
    assert c.sendall(data, timeout=60) == len(data)
    assert t.join(timeout=60) == data


def test_recvn_across_many_small_writes(pair):
    c, a = pair

    def writer():
        for i in range(3000):
            a.send(bytes([i % 256]))
            if i % 100 == 0:
                socket2.sleep(0)

    socket2.newthread(writer)
    buf = bytearray(3000)
    assert c.recvn(buf, timeout=10) == 3000
    assert buf == bytes(i % 256 for i in range(3000))


def test_recvn_eof_reports_what_arrived(pair):
    c, a = pair
    a.sendall(b"abc")
    a.close()
    with pytest.raises(socket2.Error) as e:
        c.recvn(bytearray(10))
    assert e.value.err == "eof" and e.value.received == 3


def test_readline_read_and_recv_share_the_buffer(pair):
    c, a = pair
    a.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\nBODY" + b"z" * 100000)
    assert c.readline() == b"GET / HTTP/1.0\r\n"
    assert c.readline() == b"Host: x\r\n"
    assert c.readline() == b"\r\n"
    assert c.read(4) == b"BODY"
    buf = bytearray(10)
    assert c.recv(buf) == 10 and buf == b"z" * 10     # from the read-ahead
    rest = bytearray(100000 - 10)
    c.recvn(rest)
    assert rest == b"z" * len(rest)
    a.sendall(b"long line without end")
    assert c.readline(limit=4) == b"long"
    a.sendall(b"\nlast")
    a.close()
    assert c.readline() == b" line without end\n"
    assert c.readline() == b"last"
    assert c.readline() == b""
    assert c.read(5) == b""


def test_read_many_lines_is_linear(pair):
    c, a = pair
    lines = [b"%d\n" % i for i in range(100000)]

    def writer():
        a.sendall(b"".join(lines))
        a.close()

    socket2.newthread(writer)
    t0 = socket2.clock()
    for line in lines:
        assert c.readline() == line
    assert c.read() == b""
    assert elapsed(t0) < 20   # loose: quadratic copying would take minutes
