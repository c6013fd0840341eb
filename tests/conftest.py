"""Shared fixtures: every test is checked for leaked descriptors and for
threads left parked in the hub, and is stopped if it hangs."""
import gc
import os
import signal
import time

import pytest
from greenlet import GreenletExit

import socket2
from socket2 import hub as _hub

TEST_TIME_LIMIT = int(os.environ.get("S2_TEST_LIMIT", 30))   # seconds; a hang fails the test instead of the run


def _is_open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


_FD_DIR = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"


def _open_fds():
    # The listing itself holds a descriptor while it runs: keep only those
    # still open afterwards, or that number would mask the next leak.
    return set(fd for fd in map(int, os.listdir(_FD_DIR)) if _is_open(fd))


def _describe(fd):
    try:
        return os.readlink("%s/%d" % (_FD_DIR, fd))
    except OSError:
        return "fd %d" % fd


def _kill_parked(hub):
    """Kill threads a failed test left parked, so later tests start clean."""
    for w in list(hub._fdmap.values()):
        for g in (w.rg, w.wg):
            if g is not None and g is not hub._root:
                hub._throw(g, GreenletExit())


class TestHung(Exception):
    pass


POLLERS = socket2.pollers()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "one_poller: run once, not once per available poller "
        "(tests of subprocesses and tooling)")


def pytest_generate_tests(metafunc):
    # The whole suite runs once per poller this build has (epoll, poll,
    # kqueue where libkqueue is installed): the same tests, parametrised.
    if "poller" in metafunc.fixturenames:
        if metafunc.definition.get_closest_marker("one_poller"):
            names = [socket2.poller_name()]
        else:
            names = POLLERS
        metafunc.parametrize("poller", names, indirect=True)


@pytest.fixture
def poller(request):
    return request.param


@pytest.fixture(autouse=True)
def no_leaks(poller):
    """Give the test a fresh hub on *poller*; fail it if it leaves a
    descriptor open or a thread parked; stop it if it hangs."""
    hub = _hub.Hub(poller)
    _hub._local.hub = hub
    # The hub's own poller and wakeup fds are not leaks.
    hub._start_waker()
    gc.collect()
    before = _open_fds()

    def on_alarm(signum, frame):
        raise TestHung("test ran over %ds" % TEST_TIME_LIMIT)

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TEST_TIME_LIMIT)
    try:
        yield hub
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    # Let threads that are finishing (woken by a close, say) run out.
    for _ in range(3):
        if not hub._ready and hub._nio == 0:
            break
        socket2.poll(0.05)
    parked = hub._nio
    if parked:
        _kill_parked(hub)
    gc.collect()
    del _hub._local.hub
    hub.close()      # its own fds (incl. any made during the test) go too
    leaked = _open_fds() - before
    # libkqueue frees a closed kqueue's own descriptors (an epoll set, a
    # pipe, eventfds) in its monitoring thread, a moment later.
    deadline = time.monotonic() + 2
    while leaked and hub.poller.name == "kqueue" \
            and time.monotonic() < deadline:
        time.sleep(0.01)
        leaked = _open_fds() - before
    details = {fd: _describe(fd) for fd in sorted(leaked)}
    assert not details, "test leaked file descriptors: %r" % details
    assert parked == 0, "test left %d threads parked on sockets" % parked


@pytest.fixture
def server():
    """A loopback echo server in a socket2 thread; yields its port."""
    srv = socket2.tcp()
    srv.listen("127.0.0.1", 0)
    conns = []

    def serve(c):
        buf = bytearray(65536)
        with c:
            try:
                while True:
                    n = c.recv(buf)
                    if n == 0:
                        return
                    c.sendall(buf, n)
            except socket2.Error:
                pass

    def accept_loop():
        while True:
            try:
                c = srv.accept()
            except socket2.Error:
                return
            conns.append(c)
            socket2.newthread(serve, c)

    t = socket2.newthread(accept_loop)
    try:
        yield srv.local_port
    finally:
        srv.close()
        for c in conns:
            c.close()
        t.join(timeout=5)


@pytest.fixture
def pair():
    """A connected TCP pair on loopback: (client, accepted server side)."""
    with socket2.tcp() as srv:
        srv.listen("127.0.0.1", 0)
        c = socket2.tcp()
        c.connect("127.0.0.1", srv.local_port)
        a = srv.accept()
    with c, a:
        yield c, a
