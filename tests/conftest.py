"""Shared fixtures: every test is checked for leaked descriptors and for
threads left parked in the hub, and is stopped if it hangs."""
import gc
import os
import signal
import socket
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
    if not os.path.isdir(_FD_DIR):
        # Windows: sockets are handles, not descriptors, and there is no
        # table to list; every socket2 socket is registered with its hub
        # until closed, so the registry is what a leak would stay in.
        return set(_hub._OWNERS)
    # The listing itself holds a descriptor while it runs: keep only those
    # still open afterwards, or that number would mask the next leak.
    return set(fd for fd in map(int, os.listdir(_FD_DIR)) if _is_open(fd))


def _describe(fd):
    try:
        what = os.readlink("%s/%d" % (_FD_DIR, fd))
    except OSError:
        return "fd %d" % fd
    if what.startswith("socket:"):
        # Which socket: its addresses and whose it is (a server's
        # connection, a client's) say which code forgot to close it.
        try:
            s = socket.socket(fileno=os.dup(fd))
        except OSError:
            return what
        with s:
            for name in ("getsockname", "getpeername"):
                try:
                    what += " %s=%r" % (name[3:7], getattr(s, name)())
                except OSError:
                    pass
            for name in ("SO_TYPE", "SO_ACCEPTCONN"):
                try:
                    what += " %s=%d" % (name, s.getsockopt(
                        socket.SOL_SOCKET, getattr(socket, name)))
                except (OSError, AttributeError):
                    pass
    return what


def _kill_parked(hub):
    """Kill threads a failed test left parked, so later tests start clean."""
    for w in list(hub._fdmap.values()):
        for g in (w.rg, w.wg):
            if g is not None and g is not hub._root:
                hub._throw(g, GreenletExit())


class TestHung(Exception):
    pass


class _Watchdog:
    """SIGALRM's stand-in where there is none (Windows): after *limit*
    seconds, raise TestHung in the main thread and wake its hub, so the
    test fails and the run goes on."""

    def __init__(self, hub, limit):
        import threading
        self._done = threading.Event()
        self._hub = hub
        self._limit = limit
        self._main = threading.get_ident()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        import ctypes
        if self._done.wait(self._limit):
            return
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(self._main),
            ctypes.py_object(TestHung))
        while not self._done.wait(0.1):   # until the main thread runs
            self._hub.poller.wakeup()

    def stop(self):
        self._done.set()


POLLERS = socket2.pollers()


def _has_unix_sockets():
    from socket2._socket_ffi import lib
    fd = lib.s2_socket(lib.AF_UNIX, lib.SOCK_STREAM, 0)
    if fd < 0:
        return False
    lib.s2_close(fd)
    return True


HAS_UNIX = _has_unix_sockets()


def _under_wine():
    if os.name != "nt":
        return False
    import ctypes
    return hasattr(ctypes.WinDLL("ntdll"), "wine_get_version")


# Windows run under wine (tests/windows/run.sh): a few of wine's sockets
# differ from Windows' own; the tests that meet them say so.
UNDER_WINE = _under_wine()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "one_poller: run once, not once per available poller "
        "(tests of subprocesses and tooling)")
    config.addinivalue_line(
        "markers", "time_limit(seconds): this test may run longer than "
        "S2_TEST_LIMIT before it counts as hung")
    config.addinivalue_line(
        "markers", "fresh_hub: run on a hub of its own instead of the "
        "session's (tests that turn the hub's poller into a shared one)")
    config.addinivalue_line(
        "markers", "unix: uses unix sockets (skipped where the OS has none, "
        "e.g. Windows under wine)")
    config.addinivalue_line(
        "markers", "long: runs for minutes (the suite under wine): started "
        "first, so that parallel workers (tools/dev.sh test runs pytest-"
        "xdist) do not wait for it at the end")


def pytest_collection_modifyitems(config, items):
    # (a stable sort: the rest keeps its order)
    items.sort(key=lambda item: item.get_closest_marker("long") is None)
    if HAS_UNIX:
        return
    skip = pytest.mark.skip(reason="this OS cannot create unix sockets")
    for item in items:
        if item.get_closest_marker("unix"):
            item.add_marker(skip)


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


# One hub per poller for the whole session, as in a program that runs for
# days: descriptor numbers, kernel registrations and the backend's own
# bookkeeping carry over from test to test, so a stale registration left by
# one test meets the sockets of the next (a fresh hub per test hid exactly
# that: libkqueue's knotes outliving their descriptors).  Between tests the
# hub must be back to idle, which the fixture checks.
_HUBS = {}


def _session_hub(poller):
    hub = _HUBS.get(poller)
    if hub is None:
        hub = _HUBS[poller] = _hub.Hub(poller)
        hub._start_waker()   # its fd is the hub's own, not a test's leak
    return hub


def pytest_sessionfinish(session, exitstatus):
    for hub in _HUBS.values():
        hub.close()
    _HUBS.clear()


def _hub_leftovers(hub):
    """What a test left in the shared hub that the next one would inherit."""
    left = []
    stray = [fd for fd in hub._fdmap if hub._fdmap[fd] is not hub._wake_w]
    if stray:
        left.append("descriptors still registered: %r" % stray)
    if hub.live_timers():
        left.append("%d timers still pending" % hub.live_timers())
    if hub._ready:
        left.append("%d greenlets still queued" % len(hub._ready))
    if hub._starter is not None or hub._stopping:
        left.append("start()/poll()/stop() state left over")
    return left


def _reset_hub(hub):
    for entry in hub._timers:
        entry[2] = entry[3] = None
    hub._timers.clear()
    hub._ncancelled = 0
    hub._ready.clear()
    hub._queued.clear()
    hub._starter = hub._start_deadline = None
    hub._stopping = hub._poll_once = False
    for fd in [fd for fd, w in hub._fdmap.items() if w is not hub._wake_w]:
        hub.unregister(fd)


@pytest.fixture(autouse=True)
def no_leaks(poller, request):
    """Give the test this session's hub on *poller*; fail it if it leaves a
    descriptor open, a thread parked or the hub busy; stop it if it hangs
    (after TEST_TIME_LIMIT seconds, or its ``time_limit`` marker's)."""
    marker = request.node.get_closest_marker("time_limit")
    limit = marker.args[0] if marker else TEST_TIME_LIMIT
    fresh = request.node.get_closest_marker("fresh_hub") is not None
    if fresh:
        hub = _hub.Hub(poller)
        hub._start_waker()
    else:
        hub = _session_hub(poller)
    _hub._local.hub = hub
    gc.collect()
    before = _open_fds()

    def on_alarm(signum, frame):
        raise TestHung("test ran over %ds" % limit)

    if hasattr(signal, "SIGALRM"):
        old = signal.signal(signal.SIGALRM, on_alarm)
        signal.alarm(limit)
    else:
        watchdog = _Watchdog(hub, limit)
    try:
        yield hub
    finally:
        if hasattr(signal, "SIGALRM"):
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)
        else:
            watchdog.stop()
    # Let threads that are finishing (woken by a close, say) run out.
    for _ in range(3):
        if not hub._ready and hub._core.nio == 0:
            break
        socket2.poll(0.05)
    parked = hub._core.nio
    if parked:
        _kill_parked(hub)
    gc.collect()
    if getattr(_hub._local, "hub", None) is hub:
        del _hub._local.hub
    left = _hub_leftovers(hub)
    if fresh:
        hub.close()
    elif left:
        _reset_hub(hub)
    leaked = _open_fds() - before
    # Descriptors another OS thread is closing right now go in a moment:
    # - libkqueue frees a closed kqueue's own descriptors (an epoll set, a
    #   pipe, eventfds) in its monitoring thread;
    # - a garbage collection that started in another thread (a
    #   run_in_thread worker: requests leaves urllib3's pools to a
    #   weakref.finalize) runs the finalizers that close sockets, and
    #   while it runs gc.collect() here returns at once, collecting
    #   nothing.  Seen once in ~60 runs of a Flask test: the worker was
    #   inside urllib3's _close_pool_connections, in socket.close().
    # A descriptor still open after this is a leak.
    deadline = time.monotonic() + 2
    while leaked and time.monotonic() < deadline:
        time.sleep(0.01)
        gc.collect()
        leaked = _open_fds() - before
    details = {fd: _describe(fd) for fd in sorted(leaked)}
    assert not details, "test leaked file descriptors: %r" % details
    assert parked == 0, "test left %d threads parked on sockets" % parked
    assert not left, "test left the hub busy: %s" % "; ".join(left)


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """The test certificates (tests/pki.py: a CA, server and client
    certificates, expired and self-signed ones), made once per run."""
    import pki as _pki          # deferred: trustme is a test extra
    return _pki.pki(tmp_path_factory)


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


def tcp_pair():
    """A connected TCP pair on loopback: (client, accepted server side);
    the caller closes both."""
    with socket2.tcp() as srv:
        srv.listen("127.0.0.1", 0)
        c = socket2.tcp()
        c.connect("127.0.0.1", srv.local_port)
        return c, srv.accept()


@pytest.fixture
def pair():
    """A connected TCP pair on loopback: (client, accepted server side)."""
    c, a = tcp_pair()
    with c, a:
        yield c, a


@pytest.fixture(params=["c", "fd", "bio"])
def engine(request, monkeypatch):
    """The TLS engine the test runs on (SOCKET2_TLS): the C engine (records
    read and written from C), the fd engine (the ssl module on the
    descriptor) and the bio engine (memory BIOs)."""
    if request.param in ("c", "fd") and socket2.pollers.completion_based():
        pytest.skip("completion ports have no readiness: TLS runs on the "
                    "bio engine there")
    if request.param == "c":
        import importlib
        _tls = importlib.import_module("socket2.tls")
        _tls._load_ssl()
        if _tls._c_engine() is None:
            pytest.skip("the C TLS engine cannot run: %s" % _tls._C_UNUSABLE)
    monkeypatch.setenv("SOCKET2_TLS", request.param)
    return request.param


@pytest.fixture
def stuck_listener():
    """A listener whose accept queue is full: a new connect() to it stays
    in SYN_SENT (its SYNs are dropped), i.e. never completes by itself.
    Yields its port."""
    lst = socket2.tcp()
    lst.listen(0, "127.0.0.1", 0)
    filler = socket2.tcp()
    filler.connect("127.0.0.1", lst.local_port, timeout=5)
    try:
        yield lst.local_port
    finally:
        filler.close()
        lst.close()


def connected_pair(srv):
    """A client connected to the listening socket2 *srv*, and the accepted
    side: (client, server side); the caller closes both."""
    c = socket2.tcp()
    c.connect("127.0.0.1", srv.local_port, timeout=5)
    return c, srv.accept(timeout=5)


def fill_holes(below):
    """Open /dev/null on every free descriptor number under *below*, so
    the next socket gets *below* itself; returns them for closing."""
    held = []
    for n in range(below):
        try:
            os.fstat(n)
        except OSError:
            held.append(os.open(os.devnull, os.O_RDONLY))
    return held
