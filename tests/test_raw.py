import os
import struct

import pytest

import socket2


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def icmp_echo_request(ident, seq, payload):
    header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    csum = checksum(header + payload)
    return struct.pack("!BBHHH", 8, 0, csum, ident, seq) + payload


IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.mark.skipif(not IS_ROOT, reason="raw sockets need root "
                    "(CAP_NET_RAW; an administrator on Windows); the "
                    "unprivileged path is tested below")
def test_icmp_echo_to_loopback():
    with socket2.raw("inet", "icmp") as s:
        assert (s.type(), s.protocol()) == ("raw", "icmp")
        ident = os.getpid() & 0xFFFF
        s.send(icmp_echo_request(ident, 1, b"socket2"), None, "127.0.0.1")
        buf = bytearray(1500)
        for _ in range(10):   # our own request is looped back too
            n = s.recv(buf, None, "127.0.0.1", timeout=5)
            ihl = (buf[0] & 0x0F) * 4
            icmp = bytes(buf[ihl:n])
            typ, _, _, rid, seq = struct.unpack("!BBHHH", icmp[:8])
            if typ == 0 and rid == ident:
                assert seq == 1 and icmp[8:] == b"socket2"
                return
        pytest.fail("no ICMP echo reply")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="drops privilege in a "
                    "forked child (POSIX)")
def test_raw_without_privilege_is_access_denied():
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:   # child: drop to nobody (if root), then try
        try:
            os.close(r)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            try:
                socket2.raw("inet", "icmp").close()
                msg = b"no error"
            except socket2.Error as e:
                msg = ("%s %s" % (e.err, e)).encode()
            os.write(w, msg)
        finally:
            os._exit(0)
    os.close(w)
    msg = os.read(r, 1000).decode()
    os.close(r)
    os.waitpid(pid, 0)
    if os.geteuid() != 0 and msg == "no error":
        pytest.skip("this system grants raw sockets without privilege")
    assert msg.startswith("access_denied "), msg
