"""Several OS threads, each with its own hub, sharing one poller (an epoll
set, or a kqueue) among them."""
import os
import threading

import pytest

import socket2
from socket2 import hub as _hub

# Sharing turns the hub's poller into a shared one for good: not the
# session's hub, then.
pytestmark = pytest.mark.fresh_hub

_HANDLE = {"epoll": socket2.epoll_fd, "kqueue": socket2.kqueue_fd,
           "iocp": socket2.iocp}


@pytest.fixture
def shared(no_leaks):
    """(the test's hub, the getter/setter of its poller's shareable
    handle); the test runs once per poller, as everywhere."""
    name = no_leaks.poller.name
    if name not in _HANDLE:
        pytest.skip("the %s poller keeps no kernel set to share" % name)
    return no_leaks, _HANDLE[name]


def test_four_threads_400_connections_share_one_poller(shared):
    main_hub, handle = shared
    epfd = handle()
    errors, resumed_elsewhere = [], []
    ready = threading.Barrier(5)

    def worker(k):
        try:
            handle(epfd)                    # join before any other call
            me = threading.get_ident()
            hub = _hub.get_hub()
            assert hub is not main_hub and hub.poller.fileno() == epfd
            with socket2.tcp() as srv:
                srv.listen("127.0.0.1", 0)

                def echo(conn):
                    with conn:
                        buf = bytearray(4096)
                        while True:
                            n = conn.recv(buf)
                            if threading.get_ident() != me:
                                resumed_elsewhere.append("server")
                            if n == 0:
                                return
                            conn.sendall(buf, n)

                socket2.newthread(socket2.serve, srv, echo)
                ready.wait()

                def client(i):
                    data = os.urandom(20000 + i)
                    with socket2.tcp() as c:
                        c.connect("127.0.0.1", srv.local_port)
                        got = bytearray(len(data))
                        r = socket2.newthread(c.recvn, got)
                        c.sendall(data)
                        r.join(timeout=30)
                        if threading.get_ident() != me:
                            resumed_elsewhere.append("client")
                        assert got == data

                clients = [socket2.newthread(client, i) for i in range(100)]
                for t in clients:
                    t.join(timeout=60)
            socket2.start(5)
        except BaseException as e:   # reported to the test below
            errors.append(e)
        finally:
            try:
                ready.abort()
            except threading.BrokenBarrierError:
                pass
            _hub.get_hub().close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    try:
        ready.wait(timeout=30)
    except threading.BrokenBarrierError:
        pass
    # The main thread's hub (the set's creator) keeps polling meanwhile, so
    # it too picks up events of the workers' sockets and must hand them on.
    while any(t.is_alive() for t in threads):
        socket2.poll(0.01)
    for t in threads:
        t.join()
    assert not errors, errors
    assert not resumed_elsewhere
    assert main_hub.poller.shared


def test_wakeups_reach_their_own_thread_on_a_shared_poller(shared):
    # Name lookups finish in worker OS threads and come back through the
    # hub's wakeup: on a shared poller it must reach the hub that asked,
    # whichever thread is waiting on the set at that moment.
    main_hub, handle = shared
    fd = handle()
    errors, done = [], []

    def worker(k):
        try:
            handle(fd)
            hub = _hub.get_hub()
            assert hub is not main_hub
            for i in range(20):
                ai = socket2.addr("localhost", 1000 + i, type="tcp")
                try:
                    assert ai.addr.port() == 1000 + i
                finally:
                    ai.free()
                socket2.sleep(0.001 * (k + 1))
            done.append(k)
        except BaseException as e:   # reported to the test below
            errors.append(e)
        finally:
            _hub.get_hub().close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        socket2.poll(0.01)
    for t in threads:
        t.join()
    assert not errors, errors
    assert sorted(done) == [0, 1, 2]


def test_joining_after_first_use_is_refused(shared):
    _, handle = shared
    fd = handle()
    with pytest.raises(socket2.Error) as e:
        handle(fd + 1)
    assert e.value.err == "busy"


def run_example(name, args, banner, talk, stop_signal):
    """Start examples/<name> on a free port, check its banner, run
    talk(port), stop it with *stop_signal*, expect a clean exit."""
    import signal
    import socket
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.Popen([sys.executable, os.path.join(root, "examples", name),
                          *args, "--port", str(port)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert banner in p.stdout.readline()
        talk(port)
    finally:
        p.send_signal(getattr(signal, stop_signal))
        try:
            out, err = p.communicate(timeout=20)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
    assert p.returncode == 0, err


_NO_REUSEPORT = pytest.mark.skipif(
    "so_reuseport" not in socket2.OPTIONS or not hasattr(os, "fork"),
    reason="the example runs a listener per thread or process on one port, "
    "with SO_REUSEPORT (and fork() for processes), which this OS lacks")


@_NO_REUSEPORT
@pytest.mark.one_poller
def test_threaded_echo_example_runs():
    import socket

    def talk(port):
        socks = []
        try:
            for _ in range(60):
                socks.append(socket.create_connection(("127.0.0.1", port),
                                                      timeout=10))
            for i, s in enumerate(socks):
                s.sendall(b"hello %d" % i)
            for i, s in enumerate(socks):
                want, got = b"hello %d" % i, b""
                while len(got) < len(want):
                    got += s.recv(100)
                assert got == want
        finally:
            for s in socks:
                s.close()

    run_example("threaded_echo_server.py", ["--threads", "3"], "3 threads",
                talk, "SIGINT")


@_NO_REUSEPORT
@pytest.mark.one_poller
def test_echo_server_workers():
    import socket
    import time

    def talk(port):
        for i in range(20):
            for _ in range(100):
                try:
                    s = socket.create_connection(("127.0.0.1", port), timeout=10)
                    break
                except ConnectionRefusedError:   # workers still starting
                    time.sleep(0.05)
            with s:
                s.sendall(b"w%d" % i)
                assert s.recv(10) == b"w%d" % i

    run_example("echo_server.py", ["--workers", "2"], "2 worker processes",
                talk, "SIGTERM")


def _open_handles():
    """How many descriptors (POSIX, from /proc/self/fd) or handles
    (Windows) this process has open; None where neither can be counted."""
    if os.path.isdir("/proc/self/fd"):
        return len(os.listdir("/proc/self/fd"))
    if os.name == "nt":
        import ctypes
        from ctypes import wintypes
        n = wintypes.DWORD()
        k32 = ctypes.windll.kernel32
        if k32.GetProcessHandleCount(k32.GetCurrentProcess(),
                                     ctypes.byref(n)):
            return n.value
    return None


def test_threads_that_joined_a_shared_set_leave_no_descriptor(shared):
    """An OS thread that joined a shared set and ended without closing its
    hub: its own descriptors (epoll's private set and eventfd, a kqueue's
    private kqueue, a completion port's private port) are closed with it,
    and it leaves the set's members; the set stays for the others.  Two
    descriptors leaked per thread before (the eighteenth review: 100
    threads, 8 -> 209 descriptors), and kqueue and IOCP kept every ended
    member in the set's list."""
    main_hub, handle = shared
    fd = handle()

    def worker():
        handle(fd)
        socket2.sleep(0.001)

    def members():
        sh = getattr(main_hub.poller, "_sh", None)
        return None if sh is None else len(sh.members)

    t = threading.Thread(target=worker)   # (the set's first sharer)
    t.start()
    t.join()
    before, before_members = _open_handles(), members()
    for _ in range(20):
        t = threading.Thread(target=worker)
        t.start()
        t.join()
    if before is not None:
        # (libkqueue frees a closed kqueue's own descriptors lazily, at a
        # later kqueue(): a few may be pending, never some per thread)
        slack = 8 if main_hub.poller.name == "kqueue" else 1
        assert _open_handles() - before <= slack
    if before_members is not None:
        assert members() == before_members == 1   # the test's own hub
    socket2.sleep(0.001)                  # the set still serves this hub


def _create_and_hand_out(name, handle, box, made, joined):
    """In a new OS thread: a hub on the *name* poller with a set of its
    own, handed out (``box['fd']``, *made*); it runs once and waits until
    the other thread *joined*."""
    socket2.pollers.preset(name, None)
    box["fd"] = handle()
    made.set()
    socket2.sleep(0.001)
    joined.wait(10)


@pytest.mark.parametrize("order", ["creator_first", "joiner_first",
                                   "creator_closes"])
def test_rounds_of_threads_sharing_a_set_leave_no_descriptor(shared, order):
    """Rounds of: an OS thread makes a hub and hands out its set, another
    joins it, both end (the creator first, or the joiner).  The last user
    of a set whose creator's thread ended closes it: before, one epoll set
    per round stayed open (four descriptors with libkqueue's kqueue: the
    nineteenth review).  *creator_closes*: the creator closes its hub
    first, and its thread's end releases the set again (a kqueue leaked
    per round then)."""
    main_hub, handle = shared
    name = main_hub.poller.name

    def one_round():
        box = {}
        made, joined, joiner_done, closed = (
            threading.Event() for _ in range(4))

        def creator():
            _create_and_hand_out(name, handle, box, made, joined)
            if order == "creator_closes":
                # The joiner ends after this close, and this thread's end
                # releases the set a second time.
                _hub.get_hub().close()
                closed.set()
                tj.join(10)
            elif order == "joiner_first":
                joiner_done.wait(10)

        def joiner():
            made.wait(10)
            handle(box["fd"])
            socket2.sleep(0.001)
            joined.set()
            if order == "creator_first":
                tc.join(10)
            elif order == "creator_closes":
                closed.wait(10)
            joiner_done.set()

        tc = threading.Thread(target=creator)
        tj = threading.Thread(target=joiner)
        tc.start()
        tj.start()
        tc.join(10)
        tj.join(10)
        assert not tc.is_alive() and not tj.is_alive()

    one_round()
    before = _open_handles()
    for _ in range(20):
        one_round()
    if before is not None:
        # libkqueue frees a closed kqueue's own descriptors lazily (at a
        # later kqueue()): a few may be pending, never one set per round.
        slack = 8 if name == "kqueue" else 1
        assert _open_handles() - before <= slack
    socket2.sleep(0.001)                  # this hub's own set is untouched


@pytest.mark.parametrize("third_set", [False, True])
def test_closing_the_creators_hub_leaves_the_set_to_those_still_on_it(
        shared, third_set):
    """The hub that made a shared set is closed explicitly while another
    thread's hub still waits on the set, and (*third_set*) a third thread
    then makes a set of its own, which may take the closed one's number:
    the other
    thread's sockets go on being woken.  The creator's close used to close
    the set under it -- errors (EINVAL, ENOENT), a move into the third
    thread's set (epoll), or a recv never woken (kqueue: the nineteenth
    review)."""
    main_hub, handle = shared
    name = main_hub.poller.name
    box = {}
    made, joined, closed, third_ready, done = (
        threading.Event() for _ in range(5))

    def creator():
        _create_and_hand_out(name, handle, box, made, joined)
        _hub.get_hub().close()
        closed.set()

    def third():
        closed.wait(10)
        if not third_set:
            third_ready.set()
            return
        socket2.pollers.preset(name, None)
        handle()
        third_ready.set()
        while not done.is_set():
            socket2.sleep(0.05)     # its hub waits on its own set meanwhile

    def joiner():
        try:
            made.wait(10)
            handle(box["fd"])
            socket2.sleep(0.001)
            joined.set()
            third_ready.wait(10)
            with socket2.tcp() as lst:
                lst.listen("127.0.0.1", 0)
                c = socket2.tcp()
                c.connect("127.0.0.1", lst.local_port, timeout=5)
                with c, lst.accept(timeout=5) as a:
                    sender = threading.Timer(0.1, c.sendall, (b"hi",))
                    sender.start()
                    box["got"] = a.recv(bytearray(10), timeout=5)
                    sender.join()
        except Exception as e:      # noqa: B902 - reported below
            box["error"] = e
        finally:
            done.set()

    threads = [threading.Thread(target=f) for f in (creator, joiner, third)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert not any(t.is_alive() for t in threads)
    assert "error" not in box, box
    assert box["got"] == 2
