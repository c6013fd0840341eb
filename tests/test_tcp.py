import array
import errno
import gc
import os
import random
import warnings

import pytest

import socket2
from socket2._socket_ffi import ffi

from conftest import UNDER_WINE


def echo_roundtrip(port, data, host="127.0.0.1", family="inet"):
    with socket2.tcp(family) as c:
        c.connect(host, port)
        got = bytearray(len(data))

        def reader():
            c.recvn(got)

        t = socket2.newthread(reader)   # full duplex: read while writing
        c.sendall(data)
        t.join(timeout=10)
        return bytes(got)


def test_echo_from_main_greenlet(server):
    assert echo_roundtrip(server, b"hello") == b"hello"


def test_many_concurrent_clients_byte_for_byte(server):
    rng = random.Random(1)
    payloads = [rng.randbytes(rng.randint(1, 200000)) for _ in range(60)]
    results = {}

    def client(i):
        results[i] = echo_roundtrip(server, payloads[i])

    threads = [socket2.newthread(client, i) for i in range(len(payloads))]
    for t in threads:
        t.join(timeout=20)
    assert all(results[i] == payloads[i] for i in range(len(payloads)))


def test_large_transfer_both_directions(server):
    data = os.urandom(8 << 20)
    assert echo_roundtrip(server, data) == data


def test_ipv6_echo():
    with socket2.tcp("inet6") as srv:
        srv.listen("::1", 0)
        assert srv.local_addr == "::1"

        def serve():
            with srv.accept() as c:
                assert c.remote_addr == "::1"
                buf = bytearray(100)
                n = c.recv(buf)
                c.sendall(buf, n)

        t = socket2.newthread(serve)
        assert echo_roundtrip(srv.local_port, b"six", "::1", "inet6") == b"six"
        t.join(timeout=5)


@pytest.mark.unix
def test_unix_stream_echo(tmp_path):
    path = str(tmp_path / "echo.sock")
    with socket2.tcp("unix") as srv:
        srv.listen(path)
        assert srv.local_addr == path
        assert srv.protocol() is None and srv.family() == "unix"

        def serve():
            with srv.accept() as c:
                buf = bytearray(100)
                while (n := c.recv(buf)):
                    c.sendall(buf, n)

        t = socket2.newthread(serve)
        assert echo_roundtrip(path, b"unix!" * 10000, path, "unix") \
            == b"unix!" * 10000
        t.join(timeout=5)


def test_listen_forms():
    # host, port
    with socket2.tcp() as s:
        s.listen("127.0.0.1", 0)
        assert s.local_addr == "127.0.0.1" and s.local_port > 0
    # an ai
    with socket2.tcp() as s:
        ai = socket2.addr("127.0.0.1", 0, "tcp", flags="passive")
        s.listen(ai)
        ai.free()
        assert s.local_addr == "127.0.0.1"
    # the original order: backlog, host, port
    with socket2.tcp() as s:
        s.listen(16, "127.0.0.1", 0)
        assert s.local_addr == "127.0.0.1"
    # backlog alone: all interfaces, any port
    with socket2.tcp() as s:
        s.listen(16)
        assert s.local_addr == "0.0.0.0" and s.local_port > 0
    # keywords
    with socket2.tcp() as s:
        s.listen(host="127.0.0.1", port=0, backlog=8)
        assert s.local_addr == "127.0.0.1"
    # already bound: listen() without an address
    with socket2.tcp() as s:
        s.bind("127.0.0.1", 0)
        s.listen()
        assert s.getopt("so_reuseaddr") is False  # bind was the user's
        with pytest.raises(socket2.Error):
            s.listen("127.0.0.1", 0)


def _somaxconn():
    """The OS's listen backlog limit, where it can be read."""
    try:
        with open("/proc/sys/net/core/somaxconn") as f:
            return int(f.read())
    except OSError:
        import subprocess
        out = subprocess.run(["sysctl", "-n", "kern.ipc.somaxconn"],
                             capture_output=True, text=True)
        return int(out.stdout) if out.returncode == 0 else 128


def test_default_backlog_is_the_system_maximum():
    limit = _somaxconn()
    if limit <= 128:
        pytest.skip("this OS allows a backlog of only %d: nothing above "
                    "the common default to observe" % limit)
    with socket2.tcp() as srv:
        srv.listen("127.0.0.1", 0)
        # Connections complete in the kernel (no accept) up to the backlog:
        # more than the 128 a small default would allow.
        clients = []
        try:
            for _ in range(min(300, limit)):
                c = socket2.tcp()
                clients.append(c)
                c.connect("127.0.0.1", srv.local_port, timeout=5)
        finally:
            for c in clients:
                c.close()


def test_accept_knows_the_peer(server):
    with socket2.tcp() as srv:
        srv.listen("127.0.0.1", 0)
        with socket2.tcp() as c:
            c.connect("127.0.0.1", srv.local_port)
            with srv.accept() as a:
                assert (a.remote_addr, a.remote_port) == (c.local_addr,
                                                          c.local_port)
                assert (a.local_addr, a.local_port) == ("127.0.0.1",
                                                        srv.local_port)
                assert (c.remote_addr, c.remote_port) == ("127.0.0.1",
                                                          srv.local_port)
                assert str(a.getpeername()) == "%s:%d" % (c.local_addr,
                                                          c.local_port)


def test_connect_with_ai_and_implicit_bind(server):
    ai = socket2.addr("127.0.0.1", server, "tcp")
    with socket2.tcp() as c:
        c.connect(ai)
        assert c.local_port > 0    # bound implicitly
    ai.free()


def test_connect_tries_each_tcp_address():
    with socket2.tcp() as probe, socket2.tcp() as srv:
        probe.bind("127.0.0.1", 0)      # bound, never listening: refused
        srv.listen("127.0.0.1", 0)
        first = socket2.addr("127.0.0.1", probe.local_port, "tcp")
        second = socket2.addr("127.0.0.1", srv.local_port, "tcp")
        first._p.ai_next = second._p
        try:
            with socket2.tcp() as c:
                c.connect(first)
                with srv.accept() as a:
                    c.sendall(b"ok")
                    assert a.recvn(bytearray(2)) == 2
        finally:
            first._p.ai_next = ffi.NULL     # each list frees its own nodes
            first.free()
            second.free()


@pytest.mark.unix
def test_connect_tries_each_address(tmp_path):
    good = str(tmp_path / "good.sock")
    with socket2.tcp("unix") as srv:
        srv.listen(good)
        # A two-node C list: a path nobody listens on, then the listener.
        first = socket2.addr(str(tmp_path / "nobody.sock"), family="unix")
        second = socket2.addr(good, family="unix")
        first._p.ai_next = second._p
        try:
            with socket2.tcp("unix") as c:
                c.connect(first)
                with srv.accept() as a:
                    c.sendall(b"ok")
                    assert a.recvn(bytearray(2)) == 2
            with socket2.tcp("unix") as c:   # the last failure is raised
                with pytest.raises(socket2.Error) as e:
                    c.connect(str(tmp_path / "nobody.sock"))
                assert e.value.err == "not_found"
        finally:
            first._p.ai_next = ffi.NULL     # each list frees its own nodes
            first.free()
            second.free()


def test_connection_refused():
    with socket2.tcp() as probe:
        probe.bind("127.0.0.1", 0)
        port = probe.local_port     # bound, never listening: refused
        with socket2.tcp() as c:
            with pytest.raises(socket2.Error) as e:
                c.connect("127.0.0.1", port)
            assert e.value.err == "connection_refused"
            assert e.value.errno == errno.ECONNREFUSED
            assert "127.0.0.1:%d" % port in str(e.value)


def test_address_in_use():
    with socket2.tcp() as a, socket2.tcp() as b:
        a.listen("127.0.0.1", 0)
        with pytest.raises(socket2.Error) as e:
            b.listen("127.0.0.1", a.local_port)
        assert e.value.err == "address_already_in_use"
        assert e.value.errno == errno.EADDRINUSE


def test_recv_returns_zero_when_peer_closes(pair):
    c, a = pair
    c.sendall(b"bye")
    c.close()
    buf = bytearray(10)
    assert a.recv(buf) == 3
    assert a.recv(buf) == 0


def test_shutdown_write_sends_eof(pair):
    c, a = pair
    c.sendall(b"request")
    c.shutdown("w")
    assert a.recvall() == b"request"
    a.sendall(b"response")
    a.shutdown("rw")
    assert c.recvall() == b"response"
    with pytest.raises(ValueError, match="'r', 'w' or 'rw'"):
        c.shutdown("x")


def test_close_wakes_a_blocked_reader_writer_and_acceptor():
    with socket2.tcp() as srv:
        srv.listen("127.0.0.1", 0)
        c = socket2.tcp()
        c.connect("127.0.0.1", srv.local_port)
        a = srv.accept()
        a.setopt("so_rcvbuf", 4096)
        c.setopt("so_sndbuf", 4096)
        errs = {}

        def reader():
            try:
                c.recv(bytearray(10))
            except socket2.Error as e:
                errs["r"] = e.err

        def writer():
            try:
                c.sendall(b"x" * (50 << 20))   # the peer never reads
            except socket2.Error as e:
                errs["w"] = (e.err, e.sent)

        def acceptor():
            try:
                srv.accept()
            except socket2.Error as e:
                errs["a"] = e.err

        threads = [socket2.newthread(f) for f in (reader, writer, acceptor)]
        assert not errs            # all three are waiting
        c.close()
        srv.close()
        for t in threads:
            t.join(timeout=5)
        assert errs["r"] == "closed" and errs["a"] == "closed"
        assert errs["w"][0] == "closed" and errs["w"][1] > 0
        a.close()


def test_second_reader_gets_a_clear_error(pair):
    c, a = pair
    first = socket2.newthread(c.recv, bytearray(10))
    with pytest.raises(socket2.Error) as e:
        c.recv(bytearray(10))
    assert e.value.err == "busy"
    a.sendall(b"done")
    assert first.join(timeout=5) == 4


def test_full_duplex_reader_and_writer_threads(server):
    data = os.urandom(4 << 20)
    with socket2.tcp() as c:
        c.connect("127.0.0.1", server)
        got = bytearray(len(data))
        r = socket2.newthread(c.recvn, got)
        w = socket2.newthread(c.sendall, data)
        assert w.join(timeout=10) == len(data)
        assert r.join(timeout=10) == len(data)
        assert got == data


def test_send_to_a_reset_peer_raises_instead_of_sigpipe(pair):
    c, a = pair
    a.setopt("so_linger", 0)   # close() sends RST
    a.close()
    with pytest.raises(socket2.Error) as e:
        for _ in range(100):
            c.sendall(b"x" * 65536)
            socket2.sleep(0.001)
    assert e.value.err in ("connection_reset", "broken_pipe")


def test_buffers_of_every_kind(server):
    with socket2.tcp() as c:
        c.connect("127.0.0.1", server)
        c.sendall(bytearray(b"abc"))
        c.sendall(memoryview(b"xdefx")[1:4])
        c.sendall(array.array("B", b"ghi"))
        c.send(b"jklmnop", 3)
        got = bytearray(12)
        mv = memoryview(got)
        c.recvn(mv[:6])
        arr = array.array("B", bytes(6))
        c.recvn(arr)
        assert bytes(got[:6]) + arr.tobytes() == b"abcdefghijkl"


def test_bad_buffers_and_lengths_are_rejected(server):
    with socket2.tcp() as c:
        c.connect("127.0.0.1", server)
        with pytest.raises(TypeError, match="writable buffer"):
            c.recv(b"read-only")
        with pytest.raises(TypeError, match="bytes-like"):
            c.send("text")
        with pytest.raises(ValueError, match="maxlen"):
            c.send(b"abc", 4)
        with pytest.raises(ValueError, match="maxlen"):
            c.recv(bytearray(3), 4)
        with pytest.raises(TypeError, match="maxlen"):
            c.recv(bytearray(3), "2")


def test_use_after_close_raises_closed():
    c = socket2.tcp()
    c.close()
    c.close()   # idempotent
    assert c.closed and c.fileno() == -1
    for op in (lambda: c.recv(bytearray(1)), lambda: c.send(b"x"),
               lambda: c.connect("127.0.0.1", 1), lambda: c.listen(),
               lambda: c.accept(), lambda: c.local_port,
               lambda: c.setopt("tcp_nodelay", True)):
        with pytest.raises(socket2.Error) as e:
            op()
        assert e.value.err == "closed", op


def test_forgotten_socket_is_closed_by_gc():
    c = socket2.tcp()
    fd = c.fileno()
    with pytest.warns(ResourceWarning):
        del c
        gc.collect()
    with pytest.raises(OSError):
        os.fstat(fd)              # the descriptor is closed


def test_forgotten_socket_under_warnings_as_errors(no_leaks):
    # -W error::ResourceWarning makes the finalizer's warning raise: the
    # descriptor is still released, and the hub keeps no record of it.
    hub = no_leaks
    c = socket2.tcp()
    fd = c.fileno()
    assert fd in hub._fdmap
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        del c
        gc.collect()
    assert fd not in hub._fdmap
    with pytest.raises(OSError):
        os.fstat(fd)


def test_options_round_trip():
    with socket2.tcp() as s:
        s.setopt("tcp_nodelay", True)
        assert s.getopt("tcp_nodelay") is True
        s.setopt("TCP_NODELAY", False)
        assert s.getopt("tcp_nodelay") is False
        s.setopt("so_keepalive", 1)
        assert s.getopt("so_keepalive") is True
        s.setopt("so_rcvbuf", 65536)
        assert s.getopt("so_rcvbuf") >= 65536
        s.setopt("so_linger", 3)
        assert s.getopt("so_linger") == 3
        s.setopt("so_linger", None)
        assert s.getopt("so_linger") is None
        if "so_reuseport" in socket2.OPTIONS:      # not on Windows
            s.setopt("so_reuseport", True)
            assert s.getopt("so_reuseport") is True
        else:
            with pytest.raises(socket2.Error, match="not supported on this "
                               "system") as e:
                s.setopt("so_reuseport", True)
            assert e.value.err == "unsupported"
        assert s.getopt("so_error") == 0
        assert s.getopt("so_type") == socket2.SOCK_STREAM
        with pytest.raises(ValueError, match="unknown socket option 'so_bogus'.*tcp_nodelay"):
            s.setopt("so_bogus", 1)
        with pytest.raises(ValueError, match="read-only"):
            s.setopt("so_error", 1)
        with pytest.raises(TypeError):
            s.setopt("so_rcvbuf", "big")
    with socket2.tcp("inet6") as s:
        s.setopt("ipv6_v6only", True)
        assert s.getopt("ipv6_v6only") is True


def test_type_family_protocol_and_bad_constructor_args():
    with socket2.tcp() as s:
        assert (s.type(), s.family(), s.protocol()) == ("tcp", "inet", "tcp")
        assert "tcp" in repr(s)
    with socket2.tcp(socket2.AF_INET6, socket2.IPPROTO_TCP) as s:
        assert (s.family(), s.protocol()) == ("inet6", "tcp")
    with pytest.raises(ValueError, match="unknown family"):
        socket2.tcp("inet7")
    with pytest.raises(TypeError):
        socket2.tcp(family=3.5)
    with pytest.raises(socket2.Error) as e:
        socket2.tcp("inet", "udp")   # a stream socket with the UDP protocol
    assert e.value.err == "protocol_not_supported"


def test_recv_after_a_short_read_sees_later_data_eof_and_reset(pair):
    # A short read means the queue was empty: socket2 then waits for the
    # next edge instead of calling recv() again.  Data, EOF and RST that
    # arrive afterwards must all still be seen.
    c, a = pair
    buf = bytearray(10)
    a.sendall(b"x")
    assert c.recv(buf) == 1                  # short
    a.sendall(b"yz")
    a.close()                                # data and FIN together
    assert c.recv(buf) == 2 and buf[:2] == b"yz"
    assert c.recv(buf) == 0
    assert c.recv(buf) == 0                  # EOF stays EOF


@pytest.mark.skipif(UNDER_WINE, reason="wine reports a reset as the end of "
                    "the stream (to CPython's own sockets too)")
def test_recv_after_a_short_read_sees_a_reset():
    with socket2.tcp() as srv:
        srv.listen("127.0.0.1", 0)
        with socket2.tcp() as c:
            c.connect("127.0.0.1", srv.local_port)
            a = srv.accept()
            a.sendall(b"x")
            assert c.recv(bytearray(10)) == 1
            a.setopt("so_linger", 0)
            a.close()                        # RST
            with pytest.raises(socket2.Error) as e:
                c.recv(bytearray(10), timeout=5)
            assert e.value.err == "connection_reset"


def test_serve_runs_a_thread_per_connection_started_by_its_first_byte():
    from socket2 import hub as _hub
    hub = _hub.get_hub()
    handled = []

    def handler(conn, tag):
        with conn:
            buf = bytearray(16)
            n = conn.recv(buf)
            handled.append((tag, bytes(buf[:n])))
            conn.sendall(buf, n)

    with socket2.tcp() as srv:
        srv.listen("127.0.0.1", 0)
        server = socket2.newthread(socket2.serve, srv, handler, "t")
        silent = [socket2.tcp() for _ in range(50)]
        for c in silent:
            c.connect("127.0.0.1", srv.local_port)
        socket2.sleep(0.05)               # all accepted, none has a thread
        assert handled == []
        assert hub._core.nio >= 50             # ... yet all count as waiting
        with socket2.tcp() as c:
            c.connect("127.0.0.1", srv.local_port)
            c.sendall(b"hi")
            assert c.recvn(bytearray(2)) == 2
        assert handled == [("t", b"hi")]
        for c in silent:                  # EOF starts each handler: recv 0
            c.close()
        socket2.sleep(0.05)
        assert len(handled) == 51
    server.join(timeout=5)                # serve() returns: listener closed


def test_serve_threads_of_never_active_connections_end_cleanly():
    seen = []

    def handler(conn):
        with conn:
            try:
                conn.recv(bytearray(1))
            except socket2.Error as e:
                seen.append(e.err)

    with socket2.tcp() as srv:
        srv.listen("127.0.0.1", 0)
        t = socket2.newthread(socket2.serve, srv, handler)
        with socket2.tcp() as c:
            c.connect("127.0.0.1", srv.local_port)
            socket2.sleep(0.02)
            # close the server side while its thread has not started yet
            (conn,) = [s for s in gc_sockets()
                       if s._w.rg is not None and not s._w.rg
                       and socket2.hub.thread_of(s._w.rg) is not None]
            conn.close()
            socket2.sleep(0.02)
    t.join(timeout=5)
    assert seen == ["closed"]


def gc_sockets():
    return [o for o in gc.get_objects() if isinstance(o, socket2.TCPSocket)]
