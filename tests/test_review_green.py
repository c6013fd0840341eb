"""Regressions from the review of issue 17 in socket2.green: every read
variant keeps the short-read shortcut right (7), select([], [], []) sleeps
instead of spinning (11), select/poll make no kernel object per call (E),
an unclosed green socket in a garbage cycle closes its descriptor once
(E), one green socket used from two OS threads at once (10), and a stale
event never completes a green connect (A1)."""
import errno
import gc
import os
import socket as stdsocket
import subprocess
import sys
import threading
import time
import warnings

import pytest

import socket2
from conftest import connected_pair, fill_holes
from socket2 import hub as _hub
from socket2.pollers import TryFirstWaiters
from socket2.green import select as gselect
from socket2.green import socket as gsocket


needs_proc = pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd"),
    reason="counts descriptors in /proc/self/fd")
posix_only = pytest.mark.skipif(
    os.name == "nt", reason="sockets are descriptors only on POSIX")

# Readiness pollers only: on a completion port (IOCP) a green wait is a
# posted zero-byte receive, there is no short-read shortcut (rready) to
# keep right, no kernel object per select, and the cross-OS-thread and
# select-in-slots paths below wait on readiness.
_READINESS = pytest.mark.skipif(
    socket2.pollers.completion_based(),
    reason="readiness pollers only (IOCP waits by completion: see above)")
_POSIX_SELECT = pytest.mark.skipif(
    sys.platform == "win32",
    reason="Windows' select() refuses three empty lists (WinError 10022)")



def _open_fds():
    return set(int(n) for n in os.listdir("/proc/self/fd"))


def _registered_pair():
    """A green socket pair whose reader has waited once (so it has its
    hub registration) and then read short: the queue is known empty."""
    a, b = gsocket.socketpair()
    a.settimeout(0.5)
    socket2.runafter(0.01, b.sendall, b"ab")
    assert a.recv(100) == b"ab"         # waited, then a short read
    if not isinstance(a._g_s2._w, TryFirstWaiters):
        # Exact edges (epoll): the short read proved the queue empty.
        # Backends without the shortcut (kqueue, poll) always try first.
        assert not a._g_s2._w.rready, "precondition: the shortcut is armed"
    return a, b


# -- 7: every read variant that waits keeps rready right ----------------------


def _peek(a):
    assert a.recv(1, gsocket.MSG_PEEK) == b"c"
    return b"cdef"


def _recvfrom(a):
    assert a.recvfrom(1)[0] == b"c"
    return b"def"


def _recvfrom_into(a):
    buf = bytearray(1)
    assert a.recvfrom_into(buf, 1)[0] == 1 and buf == b"c"
    return b"def"


def _recvmsg(a):
    assert a.recvmsg(1)[0] == b"c"
    return b"def"


def _recvmsg_into(a):
    buf = bytearray(1)
    assert a.recvmsg_into([buf])[0] == 1 and buf == b"c"
    return b"def"


def _select(a):
    assert gselect.select([a], [], [], 2)[0] == [a]
    return b"cdef"


def _poll(a):
    p = gselect.poll()
    p.register(a, gselect.POLLIN)
    assert p.poll(2000) == [(a.fileno(), gselect.POLLIN)]
    return b"cdef"


def _makefile(a):
    f = a.makefile("rb", buffering=0)
    try:
        assert f.read(1) == b"c"
    finally:
        f.close()
    return b"def"


@pytest.mark.parametrize("variant", [
    _peek, _recvfrom, _recvfrom_into, _recvmsg, _recvmsg_into, _select,
    _poll, _makefile], ids=lambda f: f.__name__.strip("_"))
@_READINESS
def test_recv_after_a_read_variant_that_waited(variant):
    """7: the variant waits for the data (taking the edge) and leaves some
    of it queued; the next recv() must read it, not wait for an edge that
    will never come."""
    a, b = _registered_pair()
    with a, b:
        socket2.runafter(0.02, b.sendall, b"cdef")
        rest = variant(a)
        assert a.recv(100) == rest


@_READINESS
def test_a_full_read_after_a_wait_still_arms_the_shortcut():
    """The shortcut still works: a short recv() after a wait clears rready
    (only recv/recv_into of a stream, without flags, may)."""
    a, b = _registered_pair()
    if isinstance(a._g_s2._w, TryFirstWaiters):
        a.close()
        b.close()
        pytest.skip("this poller has no short-read shortcut (its edges "
                    "are not exact): rready is always true")
    with a, b:
        socket2.runafter(0.01, b.sendall, b"xy")
        assert a.recv(1, gsocket.MSG_PEEK) == b"x"
        assert a._g_s2._w.rready
        assert a.recv(100) == b"xy"
        assert not a._g_s2._w.rready


# -- 11: select([], [], []) sleeps --------------------------------------------


@_POSIX_SELECT
def test_select_with_nothing_and_no_timeout_sleeps_until_killed(no_leaks):
    hub = no_leaks
    t = socket2.newthread(gselect.select, [], [], [])
    socket2.sleep(0.05)
    # Spinning on sleep(0), it would be queued again each time we look.
    assert not t.finished and t not in hub._queued
    t.kill()
    assert t.join(timeout=1) is None and t.finished


@_POSIX_SELECT
def test_select_with_nothing_and_a_timeout_sleeps_it_out():
    t0 = time.monotonic()
    assert gselect.select([], [], [], 0.05) == ([], [], [])
    assert time.monotonic() - t0 >= 0.045


# -- E: no kernel object per select/poll call ---------------------------------


@needs_proc
@_READINESS
def test_select_and_poll_wait_without_a_descriptor_of_their_own():
    r, w = os.pipe()
    a, b = gsocket.socketpair()
    try:
        before = _open_fds()
        t = socket2.newthread(gselect.select, [r, a], [], [], 5)
        during = _open_fds()
        os.write(w, b"x")
        assert t.join(timeout=5) == ([r], [], [])
        assert during == before, "select() made %r" % (during - before)
        p = gselect.poll()
        p.register(a, gselect.POLLIN)
        t = socket2.newthread(p.poll, 5000)
        during = _open_fds()
        b.sendall(b"y")
        assert t.join(timeout=5) == [(a.fileno(), gselect.POLLIN)]
        assert during == before, "poll() made %r" % (during - before)
    finally:
        os.close(r)
        os.close(w)
        a.close()
        b.close()


_EMFILE_CHILD = r"""
import errno, os, resource, sys
import socket2
from socket2.green import select as gselect

r, w = os.pipe()
assert gselect.select([r], [], [], 0.01) == ([], [], [])   # the hub exists
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 256), hard))
held = []
try:
    while True:
        held.append(os.dup(r))
except OSError as e:
    assert e.errno == errno.EMFILE, e
try:
    socket2.runafter(0.02, os.write, w, b"x")
    print(gselect.select([r], [], [], 5))
    os.read(r, 1)
    p = gselect.poll()
    p.register(r, gselect.POLLIN)
    socket2.runafter(0.02, os.write, w, b"x")
    print(p.poll(5000))
except OSError as e:
    print("failed:", e)
"""


@posix_only
@pytest.mark.time_limit(60)
def test_select_and_poll_work_with_no_descriptor_left(poller):
    """E: a process out of descriptors can still wait in select()/poll(),
    as with the standard library (no epoll instance per call)."""
    env = dict(os.environ, SOCKET2_POLLER=poller)
    out = subprocess.run([sys.executable, "-c", _EMFILE_CHILD], env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    r_line, p_line = out.stdout.split("\n")[:2]
    assert r_line.startswith("([") and r_line.endswith("], [], [])"), \
        out.stdout
    assert p_line.startswith("[(") and "failed" not in out.stdout, out.stdout


@_READINESS
def test_a_green_socket_waiting_takes_its_slot_back_from_select():
    """A select() parked on a green socket's registration lets go when the
    socket itself must wait there; both still get their events."""
    a, b = _registered_pair()
    with a, b:
        a.settimeout(2)
        sel = socket2.newthread(gselect.select, [a], [], [], 0.3)
        rd = socket2.newthread(a.recv, 100)
        socket2.sleep(0.02)
        assert not sel.finished and not rd.finished
        b.sendall(b"data")
        assert rd.join(timeout=2) == b"data"
        assert sel.join(timeout=2) in (([a], [], []), ([], [], []))


@_READINESS
def test_select_on_a_socket_closed_meanwhile():
    a, b = _registered_pair()
    with b:
        t = socket2.newthread(gselect.select, [a], [], [], 2)
        socket2.sleep(0.01)
        a.close()
        with pytest.raises((ValueError, OSError)):
            t.join(timeout=2)


# -- E: a garbage cycle closes the descriptor once ----------------------------


class _TakeNumber:
    """In a garbage cycle: its finalizer opens descriptors until it gets
    *target* (free only if someone closed it already) or a higher one."""

    def __init__(self, target, got):
        self.target = target
        self.got = got

    def __del__(self):
        spare = []
        while True:
            fd = os.open(os.devnull, os.O_RDONLY)
            if fd >= self.target:
                break
            spare.append(fd)
        for n in spare:
            os.close(n)
        if fd == self.target:
            self.got.append(fd)
        else:
            os.close(fd)


@posix_only
def test_an_unclosed_green_socket_in_a_garbage_cycle_closes_once():
    """E: the registration (a socket2 socket) and the green socket over the
    same descriptor are finalized in one collection, in either order; only
    the green socket closes the descriptor.  Here the registration goes
    first and a descriptor opened between the two finalizers takes the
    number: it must stay open."""
    a, b = gsocket.socketpair()
    got = []
    gc.disable()
    try:
        gc.collect(0)           # *a* is older than what follows
        socket2.runafter(0.01, b.sendall, b"x")
        assert a.recv(1) == b"x"     # made its registration (generation 0)
        n = a.fileno()
        taker = _TakeNumber(n, got)
        a.cycle = [a, taker]
        del a, taker
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
    finally:
        gc.enable()
        b.close()
    try:
        for fd in got:
            os.fstat(fd)        # EBADF: closed twice, the second time ours
        if not got:
            with pytest.raises(OSError):
                os.fstat(n)     # the green socket's own number: closed
    finally:
        for fd in got:
            os.close(fd)


# -- 10: one green socket, two OS threads -------------------------------------


def _thread_hub_done():
    h = _hub._existing_hub()
    if h is not None:
        h.close()
        del _hub._local.hub


@_READINESS
def test_one_socket_read_in_one_os_thread_while_another_sends():
    """10: the reader waits in this OS thread's hub; another OS thread's
    send() on the same socket has to wait for room.  Both are delivered:
    the registration does not move under the parked reader."""
    a, b = gsocket.socketpair()
    a.settimeout(5)
    b.settimeout(5)
    big = b"z" * (4 << 20)
    errors = []
    with a, b:
        reader = socket2.newthread(a.recv, 100)     # parks here first
        socket2.sleep(0.01)

        def writer():
            try:
                a.sendall(big)          # must wait: b drains it slowly
            except BaseException as e:  # noqa: B902 - reported below
                errors.append(e)
            finally:
                _thread_hub_done()

        def drain():
            got = 0
            while got < len(big):
                got += len(b.recv(65536))
                if got < len(big) // 2:
                    socket2.sleep(0.001)
            b.sendall(b"done")
            return got

        t = threading.Thread(target=writer)
        t.start()
        d = socket2.newthread(drain)
        assert reader.join(timeout=5) == b"done"
        assert d.join(timeout=5) == len(big)
        while t.is_alive():
            socket2.sleep(0.01)
    assert not errors, errors


@posix_only
def test_close_from_another_os_thread_wakes_the_parked_reader():
    """10: the close is handed to the hub the reader waits in: it gets
    EBADF, and the descriptor is closed once."""
    a, b = gsocket.socketpair()
    with b:
        reader = socket2.newthread(a.recv, 100)
        socket2.sleep(0.01)
        fd = a.fileno()
        errors = []

        def closer():
            try:
                a.close()
            except BaseException as e:  # noqa: B902 - reported below
                errors.append(e)

        t = threading.Thread(target=closer)
        t.start()
        t.join(5)
        assert not errors, errors
        with pytest.raises(OSError) as info:
            reader.join(timeout=2)
        assert info.value.errno == errno.EBADF
        with pytest.raises(OSError):
            os.fstat(fd)


@_READINESS
def test_a_waiter_in_another_os_thread_sees_the_close():
    """The other direction: a recv() waiting in an OS thread that is not
    the socket's home ends with EBADF when the socket is closed here."""
    a, b = _registered_pair()
    out = []

    def reader():
        try:
            out.append(a.recv(100))
        except OSError as e:
            out.append(e.errno)

    a.settimeout(5)
    with b:
        t = threading.Thread(target=reader)
        t.start()
        time.sleep(0.05)                # it waits in poll(2) meanwhile
        a.close()
        t.join(2)
        assert not t.is_alive() and out == [errno.EBADF]


@_READINESS
def test_a_socket_homed_elsewhere_works_from_this_os_thread():
    """A socket first used (registered) in an OS thread that has ended is
    still usable here: its waits poll the descriptor in this thread."""
    a, b = gsocket.socketpair()

    def first_use():
        try:
            socket2.runafter(0.01, b.sendall, b"1")
            a.recv(1)                   # registers with that thread's hub
            socket2.runafter(0.01, b.sendall, b"2")
            a.recv(1)
        finally:
            _thread_hub_done()

    t = threading.Thread(target=first_use)
    t.start()
    t.join(5)
    with a, b:
        a.settimeout(2)
        socket2.runafter(0.02, b.sendall, b"later")
        assert a.recv(100) == b"later"
        a.settimeout(0.05)
        with pytest.raises(gsocket.timeout):
            a.recv(100)


@_READINESS
def test_a_wait_in_another_os_thread_lets_that_thread_run():
    """The socket's home is this OS thread; another OS thread with a hub
    of its own waits on it through that hub, so its other threads (here a
    timer) go on running meanwhile."""
    a, b = _registered_pair()
    out = []

    def other():
        try:
            ticks = []
            socket2.runafter(0.01, ticks.append, 1)
            a.settimeout(2)
            out.append(a.recv(100))
            out.append(ticks)
        except BaseException as e:  # noqa: B902 - reported below
            out.append(e)
        finally:
            _thread_hub_done()

    with a, b:
        t = threading.Thread(target=other)
        t.start()
        socket2.sleep(0.1)
        b.sendall(b"late")
        while t.is_alive():
            socket2.sleep(0.01)
    assert out == [b"late", [1]]


# -- A1: a stale event never completes a green connect ------------------------


@posix_only
def test_stale_event_does_not_complete_a_green_connect(stuck_listener):
    """A1 (green): the thread woken for X closes Y and starts a green
    connect on Y's number; Y's token, later in the same batch, wakes it
    with the writable bit while it is still in SYN_SENT."""
    with socket2.tcp() as srv:
        srv.listen("127.0.0.1", 0)
        x, xpeer = connected_pair(srv)
        y, ypeer = connected_pair(srv)
    socket2.poll(0.05)
    outcome = []

    def woken_for_x():
        x.recv(bytearray(16))
        yfd = y.fileno()
        held = fill_holes(yfd)
        try:
            y.close()
            z = gsocket.socket()
        finally:
            for fd in held:
                os.close(fd)
        try:
            assert z.fileno() == yfd, "precondition: Z reuses Y's number"
            z.settimeout(0.3)
            try:
                err = z.connect_ex(("127.0.0.1", stuck_listener))
                outcome.append(("connect_ex", err))
            except Exception as e:
                outcome.append(("raised", e))
        finally:
            z.close()

    t = socket2.newthread(woken_for_x)
    xpeer.sendall(b"x")
    ypeer.sendall(b"y")
    t.join(timeout=5)
    for s in (x, xpeer, ypeer):
        s.close()
    assert outcome and outcome[0][0] == "connect_ex", outcome
    assert outcome[0][1] != 0, "connected while still in SYN_SENT"


def test_green_connect_still_completes_and_fails():
    with gsocket.create_server(("127.0.0.1", 0)) as srv:
        port = srv.getsockname()[1]
        with gsocket.create_connection(("127.0.0.1", port), timeout=2) as c:
            conn, _ = srv.accept()
            with conn:
                assert c.getpeername() == conn.getsockname()
    with gsocket.socket() as c:
        assert c.connect_ex(("127.0.0.1", port)) == errno.ECONNREFUSED


@pytest.mark.skipif(not hasattr(stdsocket, "AF_UNIX"), reason="no unix")
def test_green_unix_connect(tmp_path):
    path = str(tmp_path / "s")
    with gsocket.socket(gsocket.AF_UNIX) as srv:
        srv.bind(path)
        srv.listen()
        with gsocket.socket(gsocket.AF_UNIX) as c:
            c.settimeout(2)
            c.connect(path)
            conn, _ = srv.accept()
            with conn:
                c.sendall(b"u")
                assert conn.recv(1) == b"u"
