"""Regressions from the review of issue 17 in the socket layer: a stale
event never completes a connect (A1), a registration never outlives its
socket's number (A2), a close from another OS thread wakes the waiter
(10), and a connect that moves on to the next address keeps the socket's
setup (12)."""
import os
import socket as stdsocket
import subprocess
import sys
import threading
import time

import pytest

import socket2
from conftest import connected_pair, fill_holes

TWO = "s2-two.test"   # two IPv4 loopback addresses in /etc/hosts (.ci/run)


def test_stale_event_in_a_batch_does_not_complete_a_connect(stuck_listener):
    """A1: one poll batch holds events for X and Y; the thread woken for X
    closes Y and connects a new socket Z on Y's number.  Y's event (still
    in the batch, with the writable bit) must not complete Z's connect."""
    with socket2.tcp() as srv:
        srv.listen("127.0.0.1", 0)
        x, xpeer = connected_pair(srv)
        y, ypeer = connected_pair(srv)
    socket2.poll(0.05)            # the setup's own edges are delivered
    outcome = []

    def woken_for_x():
        x.recv(bytearray(16))
        yfd = y.fileno()
        held = fill_holes(yfd)
        try:
            y.close()
            z = socket2.tcp()
        finally:
            for fd in held:
                os.close(fd)
        try:
            assert z.fileno() == yfd, "precondition: Z reuses Y's number"
            t0 = time.monotonic()
            try:
                z.connect("127.0.0.1", stuck_listener, timeout=0.3)
                outcome.append(("connected", time.monotonic() - t0))
            except socket2.TimeoutError:
                outcome.append(("timeout", time.monotonic() - t0))
        finally:
            z.close()

    t = socket2.newthread(woken_for_x)
    # X's data first, then Y's: one batch, X before Y, Y's token carries
    # readable and writable.
    xpeer.sendall(b"x")
    ypeer.sendall(b"y")
    t.join(timeout=5)
    for s in (x, xpeer, ypeer):
        s.close()
    assert outcome and outcome[0][0] == "timeout", outcome


def _epoll_watches(hub, fd):
    """Whether the hub's epoll set holds a registration for *fd* (from
    the kernel's own listing in /proc/self/fdinfo)."""
    with open("/proc/self/fdinfo/%d" % hub.poller.fileno()) as f:
        for line in f:
            if line.startswith("tfd:") and int(line.split()[1]) == fd:
                return True
    return False


def test_close_after_fork_deletes_the_registration(no_leaks):
    """A2: a socket made before fork() shares its open file description
    with the child.  Closing it in the parent must remove its epoll
    registration: the kernel would keep it (the child still holds the
    description) and report its events under the reused number."""
    hub = no_leaks
    if hub.poller.name != "epoll":
        pytest.skip("only epoll keeps a registration per open file "
                    "description (%s watches numbers)" % hub.poller.name)
    with socket2.tcp() as srv:
        srv.listen("127.0.0.1", 0)
        a, b = connected_pair(srv)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                       # the child holds the descriptions
        try:
            os.close(w)
            os.read(r, 1)
        finally:
            os._exit(0)
    os.close(r)
    try:
        fd = a.fileno()
        assert _epoll_watches(hub, fd)
        a.close()
        assert not _epoll_watches(hub, fd), \
            "the closed socket's registration outlived its number"
        # Events of the old description do not reach the number's next
        # socket: the peer's data would arrive as an edge for it.
        b.sendall(b"data for the closed socket")
    finally:
        os.close(w)
        os.waitpid(pid, 0)
        b.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork()")
def test_socket_made_before_fork_still_works_in_the_parent(pair):
    """Sockets made before and after a fork keep working in the parent
    (their close() now deletes the registration explicitly)."""
    c, a = pair
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    c.sendall(b"ping")
    buf = bytearray(4)
    assert a.recvn(buf, timeout=5) == 4 and buf == b"ping"


def _two_ips():
    """The two IPv4 addresses of TWO, in the order a lookup gives them
    (or skip, saying how to get them)."""
    why = ("needs two IPv4 loopback addresses for %s in /etc/hosts (.ci/run "
           "adds '127.0.0.2 %s' and '127.0.0.3 %s')" % (TWO, TWO, TWO))
    try:
        ai = socket2.addr(TWO, 0, type="tcp", family="inet")
    except socket2.Error:
        pytest.skip(why)
    try:
        ips = [n.addr.ip() for n in ai]
    finally:
        ai.free()
    if len(ips) < 2:
        pytest.skip(why)
    return ips


def test_connect_moving_on_to_the_next_address_keeps_setup():
    """12: the first address refuses; the socket tried next still has the
    caller's bind (address and port) and options."""
    ips = _two_ips()
    with socket2.tcp() as srv:
        srv.listen(ips[1], 0)        # only the second address listens
        ai = socket2.addr(TWO, srv.local_port, type="tcp", family="inet")
        with socket2.tcp() as c:
            c.setopt("so_keepalive", True)
            c.setopt("so_rcvbuf", 65536)
            c.setopt("tcp_nodelay", True)
            c.bind("127.0.0.1", 0)
            bound = c.local_port
            try:
                c.connect(ai, timeout=5)
            finally:
                ai.free()
            with srv.accept(timeout=5) as peer:
                assert c.remote_addr == ips[1]
                assert c.local_port == bound
                assert peer.remote_port == bound
                assert c.getopt("so_keepalive") is True
                assert c.getopt("tcp_nodelay") is True
                # Linux doubles the value it was given.
                assert c.getopt("so_rcvbuf") in (65536, 131072)


def _syn_sent_to(ip, port):
    """How many sockets of this machine are in SYN_SENT towards ip:port
    (from the kernel's table, /proc/net/tcp)."""
    a = stdsocket.inet_aton(ip)[::-1].hex().upper()
    want = "%s:%04X" % (a, port)
    with open("/proc/net/tcp") as f:
        next(f)
        return sum(1 for line in f
                   if line.split()[2] == want and line.split()[3] == "02")


def test_happy_eyeballs_tries_each_address_once():
    """E: each Happy Eyeballs attempt connects to its own address only; an
    attempt whose address refuses does not go on to the next address
    (which has an attempt of its own), so no address is tried twice."""
    if not os.path.exists("/proc/net/tcp"):
        pytest.skip("reads the kernel's TCP table from /proc/net/tcp")
    ips = _two_ips()
    lst = socket2.tcp()
    lst.listen(0, ips[1], 0)           # the second address: never answers
    port = lst.local_port
    filler = socket2.tcp()
    filler.connect(ips[1], port, timeout=5)
    counts = []

    def look():
        socket2.sleep(0.25)
        counts.append(_syn_sent_to(ips[1], port))

    t = socket2.newthread(look)
    try:
        with pytest.raises(socket2.TimeoutError):
            # ips[0] refuses at once (nothing listens on its port).
            socket2.connect(TWO, port, family="inet", timeout=0.5,
                            happy_eyeballs=0.05)
        t.join(timeout=5)
    finally:
        filler.close()
        lst.close()
    assert counts == [1], "connections attempted to %s: %s" % (ips[1], counts)


_SERVER = r"""
import resource, sys
import socket2
resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))
def handler(conn):
    with conn:
        line = conn.readline(timeout=5)
        conn.sendall(b"echo " + line)
lst = socket2.tcp()
lst.listen("127.0.0.1", 0)
print(lst.local_port, flush=True)
socket2.newthread(socket2.serve, lst, handler)
socket2.start(timeout=%(limit)s)
"""


@pytest.mark.skipif(sys.platform == "win32",
                    reason="needs RLIMIT_NOFILE (POSIX resource limits)")
def test_serve_out_of_descriptors_drops_the_longest_silent_client():
    """E: silent clients that fill the server's descriptor table do not
    lock out the next client: the one silent longest is dropped to make
    room, and the shortage is reported a few times, not every 0.1 s."""
    proc = subprocess.Popen([sys.executable, "-c", _SERVER % {"limit": 8}],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    silent = []
    try:
        port = int(proc.stdout.readline())
        for _ in range(60):            # more than the server can hold
            s = socket2.tcp()
            silent.append(s)
            s.connect("127.0.0.1", port, timeout=5)
        socket2.sleep(0.3)             # the server meets EMFILE meanwhile
        with socket2.tcp() as c:
            c.connect("127.0.0.1", port, timeout=5)
            c.sendall(b"hello\n")
            assert c.readline(timeout=3) == b"echo hello\n"
        # The oldest silent clients were the ones dropped.
        assert silent[0].recv(bytearray(1), timeout=3) == 0
    finally:
        for s in silent:
            s.close()
        proc.kill()
        _, err = proc.communicate(timeout=10)
    reports = [l for l in err.decode().splitlines() if "socket2.serve" in l]
    assert 1 <= len(reports) <= 3, err.decode()[-2000:]


def _is_open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def test_close_from_another_os_thread_wakes_the_waiter(pair):
    """10: close() called from another OS thread wakes the thread parked
    on the socket (err 'closed') through the owner's hub, and closes the
    descriptor once."""
    c, a = pair
    fd = a.fileno()
    got = []

    def reader():
        try:
            a.recv(bytearray(8))
        except socket2.Error as e:
            got.append(e.err)

    t = socket2.newthread(reader)
    errors = []

    def closer():
        try:
            a.close()
        except BaseException as e:      # e.g. greenlet.error
            errors.append(e)

    th = threading.Thread(target=closer)
    th.start()
    th.join(5)
    t.join(timeout=5)
    assert errors == [] and got == ["closed"], (errors, got)
    assert a.closed and not _is_open(fd)
    with pytest.raises(socket2.Error) as info:
        a.recv(bytearray(1))
    assert info.value.err == "closed"


@pytest.mark.skipif(sys.platform == "win32",
                    reason="sockets are descriptors only on POSIX")
def test_close_of_a_socket_whose_os_thread_ended():
    """10: a socket made in an OS thread that has ended (its hub closed
    with it) is closed in the caller's thread."""
    made = []
    th = threading.Thread(target=lambda: made.append(socket2.tcp()))
    th.start()
    th.join(5)
    s = made[0]
    fd = s.fileno()
    assert _is_open(fd)
    s.close()
    assert s.closed and not _is_open(fd)
