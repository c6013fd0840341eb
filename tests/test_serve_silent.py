"""socket2.serve(silent_timeout=...): one timer for every silent
connection (serve.py's _Silent), each still closed at its own accept
time + silent_timeout, its handler never run; a connection that speaks
in time is served whatever the others do."""
import socket2
from socket2 import clock, sleep

import pytest

pytestmark = pytest.mark.one_poller

T = 0.3


def _server(handled, **kwargs):
    lst = socket2.tcp()
    lst.listen("127.0.0.1", 0)

    def handler(conn):
        with conn:
            handled.append(conn.read(5, timeout=5))
            conn.sendall(b"ok")

    t = socket2.newthread(socket2.serve, lst, handler, **kwargs)
    return lst, t


def _closed_at(c, start):
    """When the server closed *c* (it never answers a silent client)."""
    buf = bytearray(16)
    assert c.recv(buf, timeout=5) == 0
    return clock() - start


def test_each_silent_connection_closes_at_its_own_time():
    handled = []
    lst, t = _server(handled, silent_timeout=T)
    try:
        start = clock()
        a = socket2.tcp()
        a.connect("127.0.0.1", lst.local_port)
        sleep(T / 2)
        b = socket2.tcp()
        b.connect("127.0.0.1", lst.local_port)
        talker = socket2.tcp()
        talker.connect("127.0.0.1", lst.local_port)
        with a, b, talker:
            talker.sendall(b"hello")
            assert talker.read(2, timeout=5) == b"ok"
            ta = _closed_at(a, start)
            tb = _closed_at(b, start)
        assert T * 0.9 <= ta < T + 0.25, ta
        assert T * 1.4 <= tb < T * 1.5 + 0.25, tb
        # A connection that speaks late is still refused: the timer went
        # on after the first ones.
        late = socket2.tcp()
        with late:
            late.connect("127.0.0.1", lst.local_port)
            t0 = clock()
            took = _closed_at(late, t0)
        assert T * 0.9 <= took < T + 0.25, took
        assert handled == [b"hello"]
    finally:
        lst.close()
        t.join(timeout=5)


def test_many_silent_and_talking_connections_mixed():
    handled = []
    lst, t = _server(handled, silent_timeout=T)
    try:
        silent, talking = [], []
        for i in range(40):
            c = socket2.tcp()
            c.connect("127.0.0.1", lst.local_port)
            (talking if i % 2 else silent).append(c)
        for c in talking:
            c.sendall(b"abcde")
        for c in talking:
            assert c.read(2, timeout=5) == b"ok"
        start = clock()
        for c in silent:
            assert _closed_at(c, start) < T + 0.25
        for c in silent + talking:
            c.close()
        assert len(handled) == 20
    finally:
        lst.close()
        t.join(timeout=5)


def test_serve_killed_or_closed_leaves_no_timer():
    """(The suite's leak check fails a test that leaves a timer.)"""
    handled = []
    lst, t = _server(handled, silent_timeout=30)
    c = socket2.tcp()
    c.connect("127.0.0.1", lst.local_port)
    sleep(0.05)
    t.kill()
    c.close()
    lst.close()
    lst, t = _server(handled, silent_timeout=30)
    c = socket2.tcp()
    c.connect("127.0.0.1", lst.local_port)
    sleep(0.05)
    lst.close()
    t.join(timeout=5)
    buf = bytearray(4)
    assert c.recv(buf, timeout=5) == 0     # dropped: never spoke
    c.close()


def test_killed_serve_still_closes_its_silent_connections():
    """serve() killed: the connections it accepted that never spoke are
    still closed at their own deadline, and the timer goes with the
    last of them."""
    from socket2.hub import get_hub
    handled = []
    lst, t = _server(handled, silent_timeout=T)
    silent = socket2.tcp()
    talker = socket2.tcp()
    with silent, talker:
        silent.connect("127.0.0.1", lst.local_port)
        talker.connect("127.0.0.1", lst.local_port)
        sleep(0.05)
        start = clock()
        t.kill()
        lst.close()
        talker.sendall(b"hello")          # its thread still serves it
        assert talker.read(2, timeout=5) == b"ok"
        took = _closed_at(silent, start)
        assert took < T + 0.25, took
    sleep(0.05)
    assert get_hub().live_timers() == 0
    assert handled == [b"hello"]


def test_the_connection_that_makes_the_record_prune_stays_in_it():
    """Pruning the record of silent connections (when it has doubled)
    drops those whose thread started or that closed; the one just
    accepted, whose thread is parked only after, must stay (else
    silent_timeout never closes it: found by a review, at the 1,025th
    silent client)."""
    from socket2.serve import _Silent
    from socket2.hub import get_hub
    silent = _Silent(get_hub())
    silent._limit = 1
    with socket2.tcp() as old, socket2.tcp() as new:
        silent._conns[old] = 0.0
        silent._conns[new] = 1.0
        silent.added(new, 1.0)
        assert list(silent._conns) == [new]
