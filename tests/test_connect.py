"""socket2.connect(): resolution off the OS thread, Happy Eyeballs (RFC
8305) over IPv6 and IPv4, on loopback listeners of one family or both."""
import socket
import time

import pytest

import socket2
from socket2.serve import _interleave


def _families(host):
    try:
        return {ai[0] for ai in socket.getaddrinfo(host, 80, 0,
                                                   socket.SOCK_STREAM)}
    except OSError:
        return set()


DUAL = _families("localhost") >= {socket.AF_INET, socket.AF_INET6}
needs_dual = pytest.mark.skipif(
    not DUAL, reason="'localhost' must resolve to ::1 and 127.0.0.1 "
    "(Debian's default /etc/hosts line '::1 localhost ip6-localhost "
    "ip6-loopback'; .ci/run adds it where it is missing)")


def _listener(host, port=0):
    s = socket2.tcp("inet6" if ":" in host else "inet")
    s.listen(host, port)
    return s


def _accept_one(srv):
    return socket2.newthread(lambda: srv.accept(timeout=5).close())


def test_interleave_alternates_families_starting_with_the_first():
    nodes = [("inet6", 1), ("inet6", 2), ("inet6", 3), ("inet", 4),
             ("inet", 5)]
    assert [n for _, n in _interleave(nodes)] == [1, 4, 2, 5, 3]
    assert [n for _, n in _interleave([("inet", 1), ("inet6", 2),
                                       ("inet", 3)])] == [1, 2, 3]


def test_connect_to_an_ip_and_by_name():
    with _listener("127.0.0.1") as srv:
        t = _accept_one(srv)
        with socket2.connect("127.0.0.1", srv.local_port) as c:
            assert isinstance(c, socket2.TCPSocket)
            assert c.remote_port == srv.local_port
        t.join()
        t = _accept_one(srv)
        with socket2.connect("localhost", srv.local_port, timeout=5,
                             local=("127.0.0.1", 0)) as c:
            assert c.remote_addr == "127.0.0.1"
            assert c.local_addr == "127.0.0.1"
        t.join()


def test_every_address_refused_raises_the_last_error():
    with socket2.tcp() as probe:
        probe.listen("127.0.0.1", 0)
        port = probe.local_port
    with pytest.raises(socket2.Error) as info:
        socket2.connect("localhost", port, timeout=5)
    assert info.value.err == "connection_refused"


def test_bad_arguments():
    with pytest.raises(ValueError, match="NaN"):
        socket2.connect("127.0.0.1", 1, happy_eyeballs=float("nan"))
    with pytest.raises(socket2.Error) as info:
        socket2.connect("no-such-host.invalid", 80, timeout=10)
    assert info.value.err == "host_not_found"


@needs_dual
@pytest.mark.parametrize("only", ["127.0.0.1", "::1"])
def test_dual_stack_name_against_one_family(only):
    # A free port on both families, then a listener on one of them only.
    port = _free_on_both()
    with _listener(only, port) as srv:
        t = _accept_one(srv)
        with socket2.connect("localhost", port, timeout=5) as c:
            assert c.remote_addr == only
        t.join()


def _free_on_both():
    """A port free on ::1 and on 127.0.0.1 at once.  A port the kernel
    picked for ::1 may be in use on 127.0.0.1 (another socket's local
    port, one in TIME_WAIT): pick again then."""
    for _ in range(50):
        with socket2.tcp("inet6") as a, socket2.tcp() as b:
            a.bind("::1", 0)
            port = a.local_port
            try:
                b.bind("127.0.0.1", port)
            except socket2.Error as e:
                if e.err != "address_already_in_use":
                    raise
                continue
            return port
    raise AssertionError("no port free on both ::1 and 127.0.0.1 in 50 tries")


def _stalled(host, port):
    """A listener whose accept queue is full: SYNs to it go unanswered."""
    srv = socket2.tcp("inet6" if ":" in host else "inet")
    srv.listen(host, port, backlog=0)
    fillers = []
    try:
        for _ in range(20):
            c = socket2.tcp(srv.family())
            fillers.append(c)
            c.connect(host, port, timeout=0.2)
    except socket2.TimeoutError:
        return srv, fillers
    for c in fillers:
        c.close()
    srv.close()
    pytest.skip("could not fill a listen queue on %s" % host)


@needs_dual
def test_a_stalled_first_address_loses_to_the_next_one():
    port = _free_on_both()
    first = socket.getaddrinfo("localhost", port, 0, socket.SOCK_STREAM)[0]
    slow_host = "::1" if first[0] == socket.AF_INET6 else "127.0.0.1"
    fast_host = "127.0.0.1" if slow_host == "::1" else "::1"
    stalled, fillers = _stalled(slow_host, port)
    try:
        with _listener(fast_host, port) as srv:
            t = _accept_one(srv)
            t0 = time.monotonic()
            with socket2.connect("localhost", port, happy_eyeballs=0.05,
                                 timeout=10) as c:
                assert c.remote_addr == fast_host
            assert time.monotonic() - t0 < 2   # not the stalled one's wait
            t.join()
    finally:
        for c in fillers:
            c.close()
        stalled.close()
