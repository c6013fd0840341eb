"""The C TLS engine (socket2/tls.py ``_CEngine``, socket2/ffi/build_openssl.py
and tls_speedups.c): how it is chosen, how it proves it may drive the
standard library's SSL object, and the paths its compiled recv/sendall
hand back to Python (waits, failures, big writes, odd buffers).

The rest of the TLS suite runs on it too (the ``engine`` fixture)."""
import os
import ssl

import pytest

import socket2
from socket2 import _hotpath, pollers
import importlib
tls_mod = importlib.import_module("socket2.tls")

from test_tls import _tls_pair, client_ctx, server_ctx

pytestmark = pytest.mark.skipif(
    pollers.completion_based(),
    reason="completion ports use the bio engine")


def _c_or_skip():
    tls_mod._load_ssl()
    if tls_mod._c_engine() is None:
        pytest.skip("the C TLS engine cannot run: %s" % tls_mod._C_UNUSABLE)
    return tls_mod._c


def test_c_engine_is_the_default_where_it_can_run(pki, monkeypatch):
    _c_or_skip()
    monkeypatch.delenv("SOCKET2_TLS", raising=False)
    ct, st = _tls_pair(pki)
    with ct, st:
        assert ct.engine == st.engine == "c"
        assert ct._ssl != 0
        ct.sendall(b"ping")
        buf = bytearray(16)
        assert st.recv(buf) == 4 and buf[:4] == b"ping"
    assert ct._ssl == 0 and st._ssl == 0     # cleared by close()
    if _hotpath.COMPILED:
        assert socket2.TLSSocket.recv is tls_mod._TLSBase._c_recv
    else:
        assert socket2.TLSSocket.recv is socket2.TLSSocket._recv_py


def test_an_unknown_engine_name_is_refused_by_name(monkeypatch):
    monkeypatch.setenv("SOCKET2_TLS", "openssl")
    with pytest.raises(socket2.Error) as info:
        tls_mod._engine_name()
    assert "'c', 'fd' or 'bio'" in str(info.value)


def test_adoption_proves_the_object_before_driving_it(pki):
    """s2_tls_adopt gives the SSL pointer only for the very object, its
    own context and its descriptor; anything else is NULL (and tls()
    would fall back to the fd engine), never a crash."""
    ffi, lib = _c_or_skip()[:2]
    import socket as pysocket
    a, b = pysocket.socketpair()
    with a, b:
        ctx = client_ctx(pki)
        other = client_ctx(pki)
        owner = ssl.SSLObject.__new__(ssl.SSLObject)
        obj = ctx._wrap_socket(a, False, "localhost", owner=owner,
                               session=None)

        def adopt(o, c, fd, size=None):
            return lib.s2_tls_adopt(ffi.cast("void *", id(o)),
                                    ffi.cast("void *", id(c)),
                                    type(o).__basicsize__ if size is None
                                    else size, fd)

        assert adopt(obj, ctx, a.fileno()) != ffi.NULL
        assert adopt(obj, other, a.fileno()) == ffi.NULL     # not its context
        assert adopt(obj, ctx, b.fileno()) == ffi.NULL       # not its fd
        assert adopt(obj, ctx, a.fileno(), size=16) == ffi.NULL
        # An object of another layout: its slots are compared, never
        # followed.
        assert adopt(bytearray(200), ctx, a.fileno()) == ffi.NULL


def test_same_openssl_check_names_the_ssl_module():
    _, lib = _c_or_skip()[:2]
    import _ssl
    assert lib.s2_tls_same_openssl(os.fsencode(_ssl.__file__)) == 1
    # A library that is not loaded (or has no OpenSSL) is not "the same".
    assert lib.s2_tls_same_openssl(b"/nonexistent/libssl.so") == 0


def test_a_corrupt_record_is_a_tls_error_with_openssl_reason(pki, engine):
    ct, st = _tls_pair(pki)
    with ct, st:
        ct.sendall(b"fine")
        buf = bytearray(64)
        assert st.recv(buf) == 4
        # An application-data record whose bytes were never encrypted.
        ct._sock.sendall(b"\x17\x03\x03\x00\x20" + bytes(range(32)))
        with pytest.raises(socket2.TLSError) as info:
            st.recv(buf, timeout=5)
        e = info.value
        assert e.err == "tls"
        assert e.reason and e.reason.upper() == e.reason, e.reason
        assert "TLS recv" in str(e)


def test_compiled_and_python_paths_agree_on_buffers_and_maxlen(pki, engine):
    ct, st = _tls_pair(pki)
    with ct, st:
        ct.sendall(memoryview(b"0123456789abcdef")[2:12])   # "23456789ab"
        ct.sendall(bytearray(b"XYZ"), 2)                      # "XY"
        got = bytearray()
        buf = bytearray(5)
        while len(got) < 12:
            n = st.recv(memoryview(buf)[1:], 3)
            assert 0 < n <= 3
            got += buf[1:1 + n]
        assert got == b"23456789abXY"
        with pytest.raises(TypeError):
            st.recv(b"read-only")
        with pytest.raises(ValueError):
            st.recv(bytearray(4), 5)
        with pytest.raises(TypeError):
            ct.sendall("text")
        with pytest.raises(ValueError):
            ct.sendall(b"abc", 4)
        assert ct.sendall(b"") == 0 and st.recv(bytearray(4), 0) == 0


def test_big_sendall_and_a_waiting_reader(pki, engine):
    """A sendall larger than one write (the C path hands the rest to
    Python) while the reader waits for each record (the wait path)."""
    ct, st = _tls_pair(pki)
    with ct, st:
        data = os.urandom(3 << 20)
        got = bytearray(len(data))
        r = socket2.newthread(st.recvn, got)
        socket2.sleep(0.01)         # the reader is parked before any byte
        assert ct.sendall(data) == len(data)
        r.join(timeout=30)
        assert got == data


def test_read_after_the_peer_closes_is_0_on_every_path(pki, engine):
    ct, st = _tls_pair(pki)
    with st:
        t = socket2.newthread(st.recv, bytearray(10))
        socket2.sleep(0.01)         # parked in the wait path
        ct.shutdown()
        assert t.join(timeout=5) == 0
        assert st.recv(bytearray(10)) == 0      # the plain path
        ct.close()


def test_close_while_a_compiled_read_waits(pki, engine):
    ct, st = _tls_pair(pki)
    with st:
        buf = bytearray(1 << 16)
        t = socket2.newthread(ct.recv, buf)
        socket2.sleep(0.01)
        ct.close()
        with pytest.raises(socket2.Error) as info:
            t.join(timeout=5)
        assert info.value.err == "closed"
        buf[:] = bytes(len(buf))        # no view of it is left exported
        assert len(buf) == 1 << 16
