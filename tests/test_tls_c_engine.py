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


# -- the review of the C engine (each failed before its fix) -----------------


def test_review_1_a_closed_tcp_whose_number_was_reused(pki, engine):
    """The tcp under a TLSSocket is closed and a new connection takes its
    descriptor number: the old TLSSocket must say 'closed', never write a
    record into (or read from) the new connection."""
    ct, st = _tls_pair(pki)
    with st:
        ct._sock.close()
        with socket2.tcp() as lst:
            lst.listen("127.0.0.1", 0)
            victim = socket2.tcp()
            victim.connect("127.0.0.1", lst.local_port)
            peer = lst.accept()
            with victim, peer:
                for call in (lambda: ct.sendall(b"SECRET"),
                             lambda: ct.recv(bytearray(100), timeout=0.5)):
                    with pytest.raises(socket2.Error) as info:
                        call()
                    assert info.value.err == "closed"
                with pytest.raises(socket2.TimeoutError):
                    peer.recv(bytearray(100), timeout=0.2)   # nothing came
                peer.sendall(b"plain")
                assert victim.recvn(bytearray(5), timeout=5) == 5
        ct.close()


def test_review_2_a_failure_after_full_records_is_reported(pki, engine):
    """Two full 16 KiB records and then a forged one, all queued: the good
    bytes come first, then the failure -- not a clean end of stream -- and
    every later read and write fails too."""
    ct, st = _tls_pair(pki)
    with ct, st:
        ct.sendall(b"A" * 16384 * 2)
        ct._sock.sendall(b"\x17\x03\x03\x00\x20" + bytes(32))
        socket2.sleep(0.05)
        got = bytearray()
        buf = bytearray(1 << 16)
        with pytest.raises(socket2.TLSError) as info:
            while True:
                n = st.recv(buf, timeout=5)
                assert n, "the forged record read as a clean EOF"
                got += buf[:n]
        assert bytes(got) == b"A" * 32768
        assert info.value.reason == "DECRYPTION_FAILED_OR_BAD_RECORD_MAC"
        with pytest.raises(socket2.Error):
            st.recv(buf, timeout=5)


def test_review_5_a_context_the_c_engine_cannot_adopt(pki, monkeypatch):
    """A context whose _wrap_socket is another context's: that connection
    runs on the fd engine, and the C-engine connections already open keep
    working."""
    _c_or_skip()
    monkeypatch.delenv("SOCKET2_TLS", raising=False)
    ct, st = _tls_pair(pki)
    with ct, st:
        inner = client_ctx(pki)

        class Delegating(ssl.SSLContext):
            def _wrap_socket(self, *a, **k):
                return inner._wrap_socket(*a, **k)
        d = Delegating(ssl.PROTOCOL_TLS_CLIENT)
        d.load_verify_locations(pki["ca"])
        with socket2.tcp() as srv:
            srv.listen("127.0.0.1", 0)
            c = socket2.tcp()
            c.connect("127.0.0.1", srv.local_port)
            a = srv.accept()
        s2 = socket2.newthread(socket2.tls, a, server_ctx(pki),
                               server_side=True, timeout=5)
        c2 = socket2.tls(c, d, server_hostname="localhost", timeout=5)
        with c2, s2.join(timeout=5) as a2:
            assert c2.engine == "fd" and a2.engine == "c"
            c2.sendall(b"hi")
            assert a2.recvn(bytearray(2), timeout=5) == 2
        assert ct.engine == "c"
        r = socket2.newthread(st.recvn, bytearray(1000000))
        ct.sendall(b"x" * 1000000)
        assert r.join(timeout=10) == 1000000


def test_review_6_two_writers_never_send_a_record_twice(pki, engine):
    """(Two writers at once is not the supported use, but it must not
    duplicate or lose bytes.)  A's sendall is parked on a committed
    record; B's send flushes it first."""
    ct, st = _tls_pair(pki)
    with ct, st:
        a_data = b"A" * (8 << 20)
        wa = socket2.newthread(ct.sendall, a_data)
        got = bytearray()

        def reader():
            b = bytearray(1 << 16)
            while True:
                n = st.recv(b, timeout=20)
                if n == 0:
                    return
                got.extend(b[:n])
        r = socket2.newthread(reader)
        try:
            b_sent = ct.send(b"B" * 10)
            assert b_sent == 10
        except socket2.Error as e:
            # B had to wait for writability while A was parked for it:
            # one writer at a time, refused as such.
            assert e.err == "busy", e
            b_sent = 0
        assert wa.join(timeout=20) == len(a_data)
        ct.shutdown()
        r.join(timeout=20)
        assert len(got) == len(a_data) + b_sent
        assert got.count(b"B") == b_sent


def test_review_7_8_odd_buffers_and_copies_are_refused_alike(pki, engine):
    import copy
    ct, st = _tls_pair(pki)
    with ct, st:
        with pytest.raises(TypeError):
            ct.sendall(memoryview(b"abcdef")[::2])      # not contiguous
        with pytest.raises(TypeError) as info:
            st.recv(memoryview(bytearray(8))[::2])
        assert "contiguous" in str(info.value)
        with pytest.raises(TypeError):
            copy.copy(ct)


# -- the fifteenth review (each crashed or misbehaved before its fix) -------


def _untimed_pair(pki):
    """A TLS pair whose reads take the compiled path (no default timeout)."""
    ct, st = _tls_pair(pki)
    ct.timeout = st.timeout = None
    return ct, st


def _pair_on(lst, server_context, pki):
    """(client, server) TLSSockets over a connection to the listener
    *lst*, the server's with *server_context*; untimed server reads."""
    c = socket2.tcp()
    c.connect("127.0.0.1", lst.local_port)
    a = lst.accept()
    th = socket2.newthread(socket2.tls, a, server_context, server_side=True)
    ct = socket2.tls(c, client_ctx(pki), server_hostname="localhost")
    st = th.join(timeout=5)
    st.timeout = None
    return ct, st


@pytest.mark.parametrize("when", ["before", "parked"])
def test_review_15_a_deleted_sock_field(pki, engine, when):
    """``del tls._sock`` is misuse, but it must not crash the compiled
    recv (it read the field as a socket2 socket): the read goes on over
    the engine's own reference, as on the fd engine."""
    ct, st = _untimed_pair(pki)
    sock = st._sock
    try:
        buf = bytearray(100)
        if when == "before":
            ct.sendall(b"hello")
            socket2.sleep(0.05)
            del st._sock
            assert st.recv(buf) == 5
        else:
            t = socket2.newthread(st.recv, buf)
            socket2.sleep(0.05)             # parked in the compiled wait
            del st._sock
            ct.sendall(b"hello")
            assert t.join(timeout=5) == 5
        assert bytes(buf[:5]) == b"hello"
    finally:
        st._sock = sock
        st.close()
        ct.close()


def test_review_15_a_foreign_hub_core_on_the_socket(pki, engine):
    """The socket under TLS with a ``_core`` that is not a hub core: the
    compiled wait leaves it to the socket's hub (the Python wait), as the
    plain compiled recv does, instead of raising TypeError."""
    ct, st = _untimed_pair(pki)
    core = st._sock._core
    try:
        st._sock._core = None
        t = socket2.newthread(st.recv, bytearray(10))
        socket2.sleep(0.05)
        ct.sendall(b"abc")
        assert t.join(timeout=5) == 3
    finally:
        st._sock._core = core
        st.close()
        ct.close()


def test_review_15_closed_by_openssl_calling_back_mid_read(pki, engine):
    """A message callback (Python code OpenSSL calls while it reads)
    closes the socket: the read must not use the freed SSL object
    (it crashed), and ends with the closed error or the end of stream."""
    if not hasattr(ssl.SSLContext, "_msg_callback"):
        pytest.skip("this Python's ssl has no _msg_callback hook")
    import gc
    ctx = server_ctx(pki)
    box = {}

    def cb(conn, direction, version, content_type, msg_type, data):
        if direction == "read" and box.get("armed"):
            box["armed"] = False
            box["st"].close()
            gc.collect()
            box["closed"] = True
    ctx._msg_callback = cb
    with socket2.tcp() as srv:
        srv.listen("127.0.0.1", 0)
        ct, st = _pair_on(srv, ctx, pki)
    box["st"] = st
    try:
        ct.sendall(b"x" * 50000)
        socket2.sleep(0.05)
        box["armed"] = True
        buf = bytearray(65536)
        try:
            n = st.recv(buf)
        except socket2.Error as e:
            assert e.err == "closed", e
        else:
            assert 0 <= n <= len(buf)
        assert box.get("closed")
    finally:
        st.close()
        ct.close()


# -- the sixteenth review (each hung, crashed or misbehaved before its fix) --


def test_review_16_shutdown_while_a_compiled_read_waits(pki, engine):
    """One thread parks in recv; another sends close_notify (shutdown).
    Reading goes on after a shutdown, so the parked read must take the
    data that arrives: it hung, waiting again without reading."""
    ct, st = _untimed_pair(pki)
    try:
        buf = bytearray(100)
        t = socket2.newthread(st.recv, buf)
        socket2.sleep(0.05)             # parked in the compiled wait
        st.shutdown()
        ct.sendall(b"after")
        assert t.join(timeout=5) == 5
        assert bytes(buf[:5]) == b"after"
    finally:
        st.close()
        ct.close()


def test_review_16_the_ssl_fields_cannot_be_replaced(pki, engine):
    """``_ssl`` (the SSL object's address) and ``_sslobj`` (its owner,
    held through every OpenSSL call) are the compiled calls' own: a
    replaced owner let a callback free the SSL object mid-call (SIGSEGV),
    a replaced address is any pointer.  Both refuse assignment alike in
    the compiled and the Python builds."""
    ct, st = _untimed_pair(pki)
    try:
        for name, value in (("_ssl", 1234), ("_sslobj", None),
                            ("_sslobj", object())):
            with pytest.raises(AttributeError):
                setattr(st, name, value)
            with pytest.raises((AttributeError, TypeError)):
                delattr(st, name)
        ct.sendall(b"still")
        buf = bytearray(10)
        assert st.recv(buf) == 5 and bytes(buf[:5]) == b"still"
    finally:
        st.close()
        ct.close()


@pytest.mark.parametrize("call", ["recv", "sendall"])
def test_review_16_an_engine_field_set_to_none(pki, engine, call):
    """``tls._io = None`` is how the socket says "closed": the compiled
    calls must say so too (recv read the data, sendall raised
    AttributeError) instead of driving the SSL object."""
    ct, st = _untimed_pair(pki)
    io = st._io
    try:
        ct.sendall(b"queued")
        socket2.sleep(0.05)
        st._io = None
        with pytest.raises(socket2.Error) as info:
            if call == "recv":
                st.recv(bytearray(10))
            else:
                st.sendall(b"x")
        assert info.value.err == "closed"
    finally:
        st._io = io
        st.close()
        ct.close()


@pytest.mark.parametrize("what", ["tls", "tcp"])
@pytest.mark.parametrize("direction", ["write", "read"])
def test_review_16_a_callback_closes_and_the_number_is_reused(
        pki, engine, direction, what):
    """A message callback (Python code OpenSSL runs in the middle of a
    read or a write) closes the TLS socket and opens a new connection,
    which takes the freed descriptor number.  The rest of OpenSSL's call
    must not read from or write into the new connection: a record went to
    the wrong peer."""
    if engine == "bio":
        pytest.skip("memory BIOs never touch a descriptor")
    if not hasattr(ssl.SSLContext, "_msg_callback"):
        pytest.skip("this Python's ssl has no _msg_callback hook")
    ctx = server_ctx(pki)
    box = {}

    def cb(conn, way, version, content_type, msg_type, data):
        if way == direction and box.get("armed"):
            box["armed"] = False
            fd = box["st"].fileno()
            if what == "tls":
                box["st"].close()
            else:                       # the tcp under it (review 17)
                box["st"]._sock.close()
            victim = socket2.tcp()
            victim.connect("127.0.0.1", box["lst"].local_port)
            box["victim"] = victim
            box["reused"] = victim.fileno() == fd
    ctx._msg_callback = cb
    lst = socket2.tcp()
    lst.listen("127.0.0.1", 0)
    box["lst"] = lst
    ct, st = _pair_on(lst, ctx, pki)
    box["st"] = st
    peer = None
    try:
        if direction == "read":
            ct.sendall(b"first")
            socket2.sleep(0.05)
        box["armed"] = True
        try:
            if direction == "write":
                st.sendall(b"y" * 100)
            else:
                while st.recv(bytearray(100)):
                    pass
        except socket2.Error as e:
            assert e.err == "closed", e
        assert box.get("victim") is not None
        peer = lst.accept(timeout=5)
        if direction == "read":
            peer.sendall(b"Z" * 20)     # must stay for the victim to read
        socket2.sleep(0.05)
        got = bytearray(100)
        if direction == "write":
            with pytest.raises(socket2.TimeoutError):
                n = peer.recv(got, timeout=0.2)
                pytest.fail("a record reached the new connection: %r"
                            % bytes(got[:n]))
        else:
            assert box["victim"].recvn(got, 20, timeout=5) == 20
            assert bytes(got[:20]) == b"Z" * 20
    finally:
        for s in (peer, box.get("victim"), st, ct, lst):
            if s is not None:
                s.close()


# -- the seventeenth review ----------------------------------------------------


def test_review_17_an_sni_callback_closes_the_tcp_mid_handshake(pki, engine):
    """An SNI callback closes the connection being handshaken (the tcp:
    no TLSSocket exists yet) and opens a new one.  OpenSSL goes on with
    the handshake after the callback: its records went to the new
    connection, which had taken the descriptor's number.  The number now
    stays taken until OpenSSL's call returns."""
    box = {}
    lst = socket2.tcp()
    lst.listen("127.0.0.1", 0)

    def sni(sslobj, name, ctx):
        box["a"].close()
        v = box["v"] = socket2.tcp()
        v.connect("127.0.0.1", lst.local_port)
    ctx = server_ctx(pki)
    ctx.sni_callback = sni
    c = socket2.tcp()
    c.connect("127.0.0.1", lst.local_port)
    a = box["a"] = lst.accept()
    th = socket2.newthread(socket2.tls, a, ctx, server_side=True)
    peer = ct = None
    try:
        try:
            ct = socket2.tls(c, client_ctx(pki), server_hostname="localhost",
                             timeout=2)
        except socket2.Error:
            pass                # (the client may see the close first)
        with pytest.raises(socket2.Error) as info:
            th.join(timeout=5)
        assert info.value.err == "closed"
        peer = lst.accept(timeout=5)    # the new connection's other end
        with pytest.raises(socket2.TimeoutError):
            n = peer.recv(bytearray(100), timeout=0.3)
            pytest.fail("%d bytes of the handshake reached the new "
                        "connection" % n)
    finally:
        for s in (peer, box.get("v"), ct, c, lst):
            if s is not None:
                s.close()
