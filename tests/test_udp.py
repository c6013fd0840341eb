import pytest

import socket2


def test_send_and_recv_with_addresses():
    with socket2.udp() as a, socket2.udp() as b:
        a.bind("127.0.0.1", 0)
        b.bind("127.0.0.1", 0)
        assert b.send(b"ping", None, "127.0.0.1", a.local_port) == 4
        buf = bytearray(100)
        n, sa = a.recvfrom(buf)
        assert buf[:n] == b"ping"
        assert (sa.ip(), sa.port()) == ("127.0.0.1", b.local_port)
        assert str(sa) == "127.0.0.1:%d" % b.local_port
        ai = socket2.addr("127.0.0.1", b.local_port, "udp")
        a.send(b"pong!", 4, ai)           # maxlen and an ai
        ai.free()
        assert b.recv(buf) == 4 and buf[:4] == b"pong"


def test_recv_from_an_address_skips_other_senders():
    with socket2.udp() as r, socket2.udp() as good, socket2.udp() as other:
        r.bind("127.0.0.1", 0)
        good.bind("127.0.0.1", 0)
        other.bind("127.0.0.1", 0)
        other.send(b"noise", None, "127.0.0.1", r.local_port)
        good.send(b"signal", None, "127.0.0.1", r.local_port)
        buf = bytearray(100)
        n = r.recv(buf, None, "127.0.0.1", good.local_port)
        assert buf[:n] == b"signal"


def test_recv_waits_for_a_datagram():
    with socket2.udp() as r, socket2.udp() as s:
        r.bind("127.0.0.1", 0)
        buf = bytearray(10)
        t = socket2.newthread(r.recv, buf)     # parks: nothing sent yet
        assert not t.finished
        s.send(b"late", None, "127.0.0.1", r.local_port)
        assert t.join(timeout=5) == 4


def test_connected_udp():
    with socket2.udp() as a, socket2.udp() as b:
        a.bind("127.0.0.1", 0)
        b.bind("127.0.0.1", 0)
        a.connect("127.0.0.1", b.local_port)
        b.connect("127.0.0.1", a.local_port)
        assert (a.remote_addr, a.remote_port) == ("127.0.0.1", b.local_port)
        a.send(b"hello")
        buf = bytearray(10)
        assert b.recv(buf) == 5 and buf[:5] == b"hello"


def test_udp_ipv6():
    with socket2.udp("inet6") as a, socket2.udp("inet6") as b:
        a.bind("::1", 0)
        b.send(b"v6", None, "::1", a.local_port)
        buf = bytearray(10)
        n, sa = a.recvfrom(buf)
        assert buf[:n] == b"v6" and sa.family() == "inet6" and sa.ip() == "::1"


@pytest.mark.unix
def test_unix_datagrams(tmp_path):
    pa, pb = str(tmp_path / "a"), str(tmp_path / "b")
    with socket2.udp("unix") as a, socket2.udp("unix") as b:
        a.bind(pa)
        b.bind(pb)
        b.send(b"local", None, pa)
        buf = bytearray(10)
        n, sa = a.recvfrom(buf)
        assert buf[:n] == b"local" and sa.tostring() == pb
        assert sa.family() == "unix" and sa.port() is None


def test_datagram_truncated_to_buffer():
    with socket2.udp() as a, socket2.udp() as b:
        a.bind("127.0.0.1", 0)
        b.send(b"0123456789", None, "127.0.0.1", a.local_port)
        buf = bytearray(4)
        assert a.recv(buf) == 4 and buf == b"0123"


def test_udp_type_and_errors():
    with socket2.udp() as u:
        assert (u.type(), u.protocol()) == ("udp", "udp")
        with pytest.raises(socket2.Error) as e:
            u.send(b"x")            # not connected, no address
        assert e.value.err in ("destination_address_required", "edestaddrreq",
                               "not_connected",
                               "invalid_argument")    # Windows: WSAEINVAL
