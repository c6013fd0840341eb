"""Descriptor numbers are reused at once by the OS: a socket closed while
the poller still watches it for a thread whose wait ended without its
event (a timeout, a kill) must leave nothing behind that the next socket
with the same number would meet.  libkqueue kept exactly that (a pending
one-shot's knote), and a new socket's events never came.  Each state a
direction can be in at close (never waited, waited and timed out, waited
and woken) is combined with each of the other direction's, on every
poller, and the sockets made afterwards on the same numbers must connect,
receive, send and time out normally."""
import itertools

import pytest

import socket2

STATES = ("none", "pending", "fired")
BIG = bytes(8 << 20)


def _pair():
    srv = socket2.tcp()
    srv.listen("127.0.0.1", 0)
    a = socket2.tcp()
    a.connect("127.0.0.1", srv.local_port, timeout=5)
    b = srv.accept(timeout=5)
    srv.close()
    return a, b


def _read(a, b, state):
    if state == "pending":          # the wait ends without its event
        with pytest.raises(socket2.TimeoutError):
            a.recv(bytearray(8), timeout=0.02)
    elif state == "fired":          # the wait ends with its event
        socket2.runafter(0.01, b.sendall, b"12345678")
        assert a.recvn(bytearray(8), timeout=5) == 8


def _write(a, b, state):
    if state == "none":
        return
    # Fill the send path, so that the next send has to wait.
    with pytest.raises(socket2.TimeoutError) as info:
        a.sendall(BIG, timeout=0.05)
    sent = info.value.sent
    if state == "fired":
        drained = []

        def drain():
            buf = bytearray(1 << 16)
            got = 0
            while got < sent + 1:
                got += b.recv(buf)
            drained.append(got)

        t = socket2.newthread(drain)
        assert a.send(b"!", timeout=5) == 1   # waits until drain makes room
        t.join(timeout=5)


def _works(a, b):
    """The sockets now on the reused numbers behave: a wait for reading is
    woken, a wait for writing is woken, a timeout times out."""
    socket2.runafter(0.01, b.sendall, b"ping")
    buf = bytearray(4)
    assert a.recvn(buf, timeout=5) == 4 and buf == b"ping"
    with pytest.raises(socket2.TimeoutError):
        b.recv(bytearray(4), timeout=0.02)
    with pytest.raises(socket2.TimeoutError) as info:
        b.sendall(BIG, timeout=0.05)
    sent = info.value.sent

    def drain():
        got, chunk = 0, bytearray(1 << 16)
        while got < sent + 4:
            got += a.recv(chunk, timeout=5)

    t = socket2.newthread(drain)
    b.sendall(b"pong", timeout=5)
    t.join(timeout=5)


@pytest.mark.parametrize("rstate,wstate",
                         list(itertools.product(STATES, STATES)))
def test_reused_descriptor_numbers_get_their_events(rstate, wstate):
    a, b = _pair()
    old = {a.fileno(), b.fileno()}
    try:
        _read(a, b, rstate)
        _write(a, b, wstate)
    finally:
        a.close()
        b.close()
    a, b = _pair()              # the lowest free numbers: the ones just freed
    try:
        assert old & {a.fileno(), b.fileno()}, "no number was reused"
        _works(a, b)
    finally:
        a.close()
        b.close()


def test_the_reported_sequence():
    # Issue 9: the second round's connect() parked forever on libkqueue.
    for _ in range(3):
        a, b = _pair()
        with pytest.raises(socket2.TimeoutError):
            a.recv(bytearray(8), timeout=0.05)
        a.close()
        b.close()


def test_refused_connect_after_many_connections():
    for _ in range(50):
        a, b = _pair()
        with pytest.raises(socket2.TimeoutError):
            b.recv(bytearray(1), timeout=0.001)
        a.close()
        b.close()
    with socket2.tcp() as probe:
        probe.listen("127.0.0.1", 0)
        port = probe.local_port
    with socket2.tcp() as c:
        with pytest.raises(socket2.Error) as info:
            c.connect("127.0.0.1", port, timeout=5)
        assert info.value.err == "connection_refused"


def test_killed_waiters_leave_nothing_behind():
    a, b = _pair()
    old = a.fileno()
    t = socket2.newthread(a.recv, bytearray(8))
    t.kill()
    a.close()
    b.close()
    a, b = _pair()
    try:
        assert old in (a.fileno(), b.fileno())
        _works(a, b)
    finally:
        a.close()
        b.close()
