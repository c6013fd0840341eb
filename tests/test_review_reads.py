"""Reads that must neither stall nor lose a byte, nor cost memory while
they wait (issue 17: items 3, 6, 8 and 13, and section E's OpenSSL error
queue), and a randomized mix of every read API of one stream against a
peer that cuts what it sends at random.

The short-read shortcut (socket2/_hotpath.py, Waiters) skips the recv()
that could only say EAGAIN after a short read; each test here is a way its
state went stale: a TLS engine or unwrap() that consumed the edge (6), a
short read that stopped at TCP's urgent mark (8).  Every test runs on each
poller and, through SOCKET2_PURE_PYTHON, on both hot paths.
"""
import gc
import os
import random
import socket
import ssl
import sys
import time

import pytest

import socket2

from conftest import tcp_pair

HOST = "localhost"


def server_ctx(pki):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki["server"])
    return ctx


def client_ctx(pki):
    return ssl.create_default_context(cafile=pki["ca"])


class BioPeer:
    """The server end of a TLS connection: the standard library's
    SSLObject over memory BIOs, on a plain socket2 ``tcp``, so the test
    decides how the records' bytes are cut into TCP sends."""

    def __init__(self, sock, ctx):
        self.sock = sock
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_side=True)
        self.buf = bytearray(65536)

    def feed(self):
        n = self.sock.recv(self.buf, timeout=5)
        if n == 0:
            self.inc.write_eof()
        else:
            self.inc.write(bytes(self.buf[:n]))

    def flush(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def handshake(self):
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.flush()
                self.feed()
        self.flush()

    def records(self, data):
        """The wire bytes of *data* as TLS records (not sent)."""
        self.obj.write(data)
        return self.out.read()

    def wait_close_notify(self):
        """Read until the other side's close_notify."""
        while True:
            try:
                if not self.obj.read(65536):
                    return          # (ZERO_RETURN after close_notify: b"")
            except ssl.SSLZeroReturnError:
                return
            except ssl.SSLWantReadError:
                self.feed()


def _tls_client(pki, c):
    return socket2.tls(c, client_ctx(pki), server_hostname=HOST, timeout=5)


def _handshaken(pki, c, a):
    """A TLS client on *c* and a BioPeer server on *a* (the test cuts its
    records), their handshake done: (client TLSSocket, peer)."""
    p = BioPeer(a, server_ctx(pki))
    t = socket2.newthread(p.handshake)
    ct = _tls_client(pki, c)
    t.join(timeout=5)
    return ct, p


# -- the rule: a wait for readability leaves the shortcut armed ---------------


@pytest.mark.skipif(socket2.pollers.completion_based(),
                    reason="readiness pollers only: a completion port's "
                    "reads are posted receives, with no short-read shortcut")
@pytest.mark.parametrize("how", ["edge", "timeout"])
def test_a_read_wait_leaves_the_shortcut_armed(pair, how):
    # Whoever waits on the socket's reader slot and then reads some other
    # way (a TLS engine, unwrap(), a green recv(MSG_PEEK)) proves nothing
    # about the queue: the wait itself re-arms the shortcut.
    c, a = pair
    buf = bytearray(100)
    a.sendall(b"x")
    assert c.read(1, timeout=5) == b"x"      # short: "queue empty" (epoll)
    hub = c._hub
    if how == "edge":
        t = socket2.newthread(hub.wait_readable, c._w, None, c.fileno())
        socket2.sleep(0.01)
        a.sendall(b"yz")
        t.join(timeout=5)                   # the edge is taken here
    else:                                   # however the wait ended
        with pytest.raises(socket2.TimeoutError):
            hub.wait_readable(c._w, socket2.clock() + 0.01, c.fileno())
        assert c._w.rready
        a.sendall(b"yz")
    assert c._w.rready
    assert c.recv(buf, timeout=2) == 2 and buf[:2] == b"yz"


# -- 6: STARTTLS, then unwrap(), then plain reads -----------------------------


def test_plain_readline_after_starttls_and_unwrap(pki, engine):
    # readline() before STARTTLS leaves "queue empty" recorded; the TLS
    # waits consume the edges; the peer's close_notify and its next plain
    # line come in one segment, of which OpenSSL reads only the alert.
    c, a = tcp_pair()
    with c, a:
        def peer():
            assert a.readline(timeout=5) == b"STARTTLS\n"
            a.sendall(b"GO\n")
            p = BioPeer(a, server_ctx(pki))
            p.handshake()
            p.wait_close_notify()           # the client's unwrap() began
            p.obj.unwrap()                  # ours: TLS is over both ways
            a.sendall(p.out.read() + b"PLAIN AGAIN\n")     # one segment

        t = socket2.newthread(peer)
        c.sendall(b"STARTTLS\n")
        assert c.readline(timeout=5) == b"GO\n"
        plain = _tls_client(pki, c).unwrap(timeout=5)
        assert plain is c
        assert plain.readline(timeout=2) == b"PLAIN AGAIN\n"
        t.join(timeout=5)


# -- 8: TCP urgent data -------------------------------------------------------


@pytest.mark.parametrize("oobinline", [False, True], ids=["oob", "oobinline"])
def test_urgent_data_does_not_stall_the_bytes_after_the_mark(oobinline):
    # A read stops short at the urgent mark with more queued behind it:
    # taken as "queue empty", the rest waited for an edge that never came.
    with socket2.tcp() as srv:
        srv.listen("127.0.0.1", 0)
        peer = socket.create_connection(("127.0.0.1", srv.local_port))
        c = srv.accept()
    with c, peer:
        c.setopt("so_oobinline", oobinline)
        buf = bytearray(100)
        r = socket2.newthread(c.recv, buf)
        socket2.sleep(0.02)                 # parked: one edge for all three
        peer.send(b"before")
        peer.send(b"!", socket.MSG_OOB)
        peer.send(b"after")
        got = bytes(buf[:r.join(timeout=5)])
        while len(got) < len(b"before!after") - (not oobinline):
            n = c.recv(buf, timeout=2)
            assert n > 0
            got += bytes(buf[:n])
        assert got == (b"before!after" if oobinline else b"beforeafter")


# -- 13: what a parked reader holds -------------------------------------------


def _parked(sock):
    """Wait until a thread is parked reading *sock* (a tcp)."""
    for _ in range(200):
        if sock._w.rg is not None:
            return
        socket2.sleep(0.005)
    raise AssertionError("the reader never parked")


@pytest.mark.parametrize("api", ["readline", "read"])
def test_parked_reader_holds_no_read_ahead_buffer(api):
    line = b"partial line, done\n"
    c, a = tcp_pair()
    with c, a:
        r = socket2.newthread(c.readline if api == "readline"
                              else lambda: c.read(len(line)))
        _parked(c)
        a.sendall(line[:8])             # read ahead, then parked again
        socket2.sleep(0.02)
        _parked(c)
        assert bytes(c._rb) == line[:8]
        # About what the bytes themselves take: the read-ahead is not
        # grown by a 64 KiB receive buffer while the reader waits.
        assert sys.getsizeof(c._rb) < 1024
        a.sendall(line[8:])
        assert r.join(timeout=5) == line


def test_parked_tls_reader_holds_no_read_ahead_buffer(pki, engine):
    c, a = tcp_pair()
    st = socket2.newthread(socket2.tls, a, server_ctx(pki), server_side=True,
                           timeout=5)
    ct = _tls_client(pki, c)
    with ct, st.join(timeout=5) as s:
        r = socket2.newthread(ct.readline)
        socket2.sleep(0.02)
        s.sendall(b"partial ")
        socket2.sleep(0.05)
        assert not r.finished and bytes(ct._rb) == b"partial "
        assert sys.getsizeof(ct._rb) < 1024
        s.sendall(b"line\n")
        assert r.join(timeout=5) == b"partial line\n"


# -- 3: tls() and the descriptor it is given ----------------------------------


def _reuses_number(fd):
    """A new socket2 tcp on descriptor number *fd* (free now), or None."""
    made = []
    try:
        for _ in range(8):
            s = socket2.tcp()
            if s.fileno() == fd:
                return s
            made.append(s)
        return None
    finally:
        for s in made:
            s.close()


def _still_mine(s):
    """*s* is open and is still the socket it was (nobody closed its
    descriptor behind its back)."""
    s.listen("127.0.0.1", 0)
    with socket2.tcp() as probe:
        probe.connect("127.0.0.1", s.local_port, timeout=5)
        s.accept(timeout=5).close()


@pytest.mark.parametrize("name", ["bad..example", ".leading.dot", "",
                                  "nul\0char", "x" * 64 + ".example"])
def test_tls_refuses_a_bad_server_hostname_before_using_the_socket(
        pki, engine, name):
    c, a = tcp_pair()
    with c, a:
        fd = c.fileno()
        with pytest.raises(ValueError) as info:
            socket2.tls(c, client_ctx(pki), server_hostname=name)
        assert "server_hostname" in str(info.value)
        del info
        gc.collect()
        # An argument error: the socket is the caller's still, untouched.
        assert not c.closed and c.fileno() == fd
        c.sendall(b"ok")
        assert a.read(2, timeout=5) == b"ok"


class _FailingContext(ssl.SSLContext):
    """A context whose SSL object cannot be made (anything may raise
    there: memory, a bad setting): tls() must close the socket once."""

    def _wrap_socket(self, *args, **kwargs):
        raise RuntimeError("no SSL object today")

    def _wrap_bio(self, *args, **kwargs):
        raise RuntimeError("no SSL object today")


def test_failed_tls_closes_the_descriptor_exactly_once(pki, engine):
    c, a = tcp_pair()
    with a:
        fd = c.fileno()
        ctx = _FailingContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        try:
            socket2.tls(c, ctx)
        except RuntimeError as e:
            err = e
        assert "no SSL object" in str(err) and c.closed
        # The number is free: the next socket gets it.  Whatever the
        # failed attempt left behind must not close it again.
        d = _reuses_number(fd)
        assert d is not None, "descriptor %d was not free" % fd
        with d:
            del err
            gc.collect()
            _still_mine(d)


# -- E: OpenSSL's per-thread error queue --------------------------------------


def _leave_openssl_error():
    """Leave an entry in this OS thread's OpenSSL error queue, as a call
    by another greenlet may (here: the standard library's own certificate
    decoder, given a file that holds no certificate)."""
    decode = getattr(ssl._ssl, "_test_decode_cert", None)
    if decode is None:
        pytest.skip("this Python has no ssl._ssl._test_decode_cert")
    try:
        decode(__file__)
    except ssl.SSLError:
        pass


def _tls_pair(pki):
    """A TLS connection, both ends socket2, past its first exchange (TLS
    1.3 session tickets go through OpenSSL's state machine, which clears
    the error queue itself: the reads after them are the ones at risk)."""
    c, a = tcp_pair()
    st = socket2.newthread(socket2.tls, a, server_ctx(pki), server_side=True,
                           timeout=5)
    ct = _tls_client(pki, c)
    st = st.join(timeout=5)
    ct.sendall(b"?")
    assert st.read(1, timeout=5) == b"?"
    st.sendall(b"!")
    assert ct.read(1, timeout=5) == b"!"
    return ct, st


def test_stale_openssl_error_does_not_fail_a_tls_read(pki, engine):
    ct, st = _tls_pair(pki)
    with ct, st:
        _leave_openssl_error()
        r = socket2.newthread(ct.recv, bytearray(10))   # must wait
        socket2.sleep(0.02)
        st.sendall(b"hello")
        assert r.join(timeout=5) == 5


def test_stale_openssl_error_does_not_fail_a_tls_read_of_a_split_record(
        pki, engine):
    # The bio engine hands OpenSSL only what came: a record cut in two
    # makes its read want more, which a stale entry turned into a failure.
    c, a = tcp_pair()
    with a:
        ct, p = _handshaken(pki, c, a)
        with ct:
            a.sendall(p.records(b"!"))
            assert ct.read(1, timeout=5) == b"!"        # tickets read too
            wire = p.records(b"hello")
            got = bytearray(5)
            r = socket2.newthread(ct.recvn, got)
            socket2.sleep(0.02)
            _leave_openssl_error()
            a.sendall(wire[:7])
            socket2.sleep(0.02)
            a.sendall(wire[7:])
            assert r.join(timeout=5) == 5 and got == b"hello"


def test_stale_openssl_error_does_not_fail_a_tls_write(pki, engine):
    ct, st = _tls_pair(pki)
    with ct, st:
        ct.sendall(b"x" * 1000)
        _leave_openssl_error()
        with pytest.raises(socket2.TimeoutError):    # the peer reads nothing
            ct.sendall(bytes(32 << 20), timeout=0.3)


def test_stale_openssl_error_does_not_fail_a_green_ssl_read(pki):
    from socket2.green import socket as gsocket
    from socket2.green import ssl as gssl
    sctx = gssl.SSLContext(gssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(pki["server"])
    cctx = gssl.create_default_context(cafile=pki["ca"])
    srv = gsocket.create_server(("127.0.0.1", 0))
    with srv:
        def serve():
            conn, _ = srv.accept()
            return sctx.wrap_socket(conn, server_side=True)

        t = socket2.newthread(serve)
        raw = gsocket.create_connection(srv.getsockname())
        with cctx.wrap_socket(raw, server_hostname=HOST) as s, \
                t.join(timeout=5) as peer:
            peer.sendall(b"!")
            assert s.recv(1) == b"!"
            _leave_openssl_error()
            r = socket2.newthread(s.recv, 10)
            socket2.sleep(0.02)
            peer.sendall(b"hello")
            assert r.join(timeout=5) == b"hello"


# -- every read API at once, against random cuts ------------------------------

SEEDS = [int(os.environ["S2_SEED"])] if os.environ.get("S2_SEED") else [2, 3]
OOB = 0xFF        # the urgent bytes; the data never holds it


def _payload(rng, size):
    """*size* random bytes without OOB, with a newline every ~60."""
    data = bytearray(rng.randbytes(size))
    for i in range(size):
        if data[i] == OOB:
            data[i] = 0
        elif rng.random() < 1 / 60:
            data[i] = 10
    return bytes(data)


def _mixed_reads(s, rng, until=None):
    """Read *s* with a random mix of its read APIs, up to *until* bytes
    (they must come) or else to EOF; end with recvall(), which must find
    nothing more.  Some calls have a timeout (the Python path), most none
    (the compiled one): a watchdog closes *s* if anything hangs."""
    got = bytearray()
    eof = False
    while not eof and (until is None or len(got) < until):
        left = 1 << 30 if until is None else until - len(got)
        op = rng.randrange(7)
        t = rng.choice((None, None, 5))
        if op <= 1:                               # recv, any buffer size
            buf = bytearray(rng.choice((1, 3, 100, 1500, 16384, 65536)))
            if op == 1:
                n = s.recv(buf, rng.randint(1, len(buf)), timeout=t)
            else:
                n = s.recv(buf) if t is None else s.recv(buf, timeout=t)
            got += buf[:n]
            eof = n == 0
        elif op == 2:                             # recvn
            buf = bytearray(rng.randint(1, min(left, 20000)))
            try:
                s.recvn(buf, timeout=t)
                got += buf
            except socket2.Error as e:
                assert e.err == "eof" and until is None, e
                got += buf[:e.received]
                eof = True
        elif op == 3:                             # read(n)
            n = rng.randint(0, min(left, 20000))
            part = s.read(n, timeout=t)
            got += part
            eof = len(part) < n
        elif op == 4 and until is None and rng.random() < 0.05:
            got += s.read(timeout=t)              # read(): to EOF
            eof = True
        else:                                     # readline
            limit = rng.choice((-1, -1, rng.randint(1, 200)))
            line = s.readline(limit, timeout=t)
            got += line
            eof = not line or (limit < 0 and not line.endswith(b"\n")) or \
                (0 < len(line) < limit and not line.endswith(b"\n"))
    if until is None:
        assert s.recvall(timeout=5) == b""
    return bytes(got)


def _pause(rng):
    """Let the reader run now, soon, or not before more bytes come."""
    x = rng.random()
    if x < 0.4:
        return
    socket2.sleep(0 if x < 0.8 else rng.uniform(0.0002, 0.002))


def _chunks(rng, data):
    i = 0
    while i < len(data):
        x = rng.random()
        n = rng.randint(1, 10) if x < 0.3 else rng.randint(10, 1500) \
            if x < 0.8 else rng.randint(1500, 20000)
        yield data[i:i + n]
        i += n


def _readable(fd):
    """How many bytes a read of *fd* would get now, in band (a peek: what
    the kernel holds stays for the reader)."""
    peek = socket.socket(fileno=fd)
    try:
        return len(peek.recv(65536, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except BlockingIOError:
        return 0
    finally:
        peek.detach()


def _stalled(c):
    """A thread is parked reading the tcp *c* while the kernel holds bytes
    it could read."""
    return not c.closed and c._w.rg is not None and _readable(c.fileno()) > 0


def _no_stall(c):
    """Fail if a reader of *c* stays parked with bytes readable (a moment
    is allowed: the edge may be on its way through the hub).  A stall is
    counted in turns of the hub, not only in time, so that a loaded
    machine cannot make a slow hub look like a lost edge."""
    if not hasattr(socket, "MSG_DONTWAIT"):
        return
    deadline = time.monotonic() + 1
    turns = 0
    while _stalled(c):
        if turns >= 100 and time.monotonic() > deadline:
            raise AssertionError("the reader waits with %d bytes readable"
                                 % _readable(c.fileno()))
        socket2.sleep(0.002)      # the hub polls and dispatches meanwhile
        turns += 1


def _watched(s, limit):
    """Close *s* after *limit* seconds: a hung read fails, it cannot hang."""
    return socket2.runafter(limit, s.close)


def _finish(reader, dog, sock):
    """However the test went: no watchdog left, and the reader ended (if it
    still runs, closing its socket wakes it) and joined."""
    dog.cancel()
    if not reader.finished:
        sock.close()
    try:
        reader.join(timeout=5)
    except Exception:
        pass


def _with_seed(seed, fn):
    try:
        fn()
    except BaseException as e:
        raise AssertionError("failed with seed %d (S2_SEED=%d reruns it): "
                             "%r" % (seed, seed, e)) from e


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("oobinline", [False, True], ids=["oob", "oobinline"])
def test_random_reads_of_tcp_against_random_cuts_and_urgent_bytes(
        seed, oobinline):
    def run():
        rng = random.Random(seed)
        with socket2.tcp() as srv:
            srv.listen("127.0.0.1", 0)
            peer = socket.create_connection(("127.0.0.1", srv.local_port))
            c = srv.accept()
        with c, peer:
            c.setopt("so_oobinline", oobinline)
            peer.setblocking(False)
            data = _payload(rng, 150000)
            sent = bytearray()                      # in order, urgent too
            reader = socket2.newthread(_mixed_reads, c,
                                       random.Random(rng.random()))
            dog = _watched(c, 15)
            try:
                for chunk in _chunks(rng, data):
                    if rng.random() < 0.05:
                        _send(peer, bytes([OOB]), socket.MSG_OOB)
                        sent.append(OOB)
                    _send(peer, chunk, 0)
                    sent += chunk
                    _pause(rng)
                    if rng.random() < 0.2:
                        _no_stall(c)
                _no_stall(c)
                peer.shutdown(socket.SHUT_WR)
                got = reader.join(timeout=5)
            finally:
                _finish(reader, dog, c)
        if oobinline:
            assert got == bytes(sent)
        else:
            # Out of band, an urgent byte leaves the stream, unless a later
            # one took its place first (then it stays in line): nothing
            # else may be missing.
            assert got.replace(bytes([OOB]), b"") == data
            assert got.count(OOB) <= sent.count(OOB)

    _with_seed(seed, run)


def _send(sock, data, flags):
    """All of *data* on the non-blocking standard socket *sock*."""
    view = memoryview(data)
    while view:
        try:
            view = view[sock.send(view, flags):]
        except BlockingIOError:
            socket2.sleep(0.001)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_reads_of_tls_against_random_cuts_then_plain_again(
        pki, engine, seed):
    # TLS records cut anywhere (a record over several segments, several
    # records and half of the next in one); then unwrap(), the peer's
    # close_notify in the same segment as the first plain bytes, and plain
    # reads to the end (STARTTLS in reverse).
    def run():
        rng = random.Random(seed)
        c, a = tcp_pair()
        with a:
            ct, p = _handshaken(pki, c, a)
            with ct, c:
                secret = _payload(rng, 120000) + b"\n"
                plain = _payload(rng, 30000)
                wire = b"".join(p.records(chunk)
                                for chunk in _chunks(rng, secret))
                rr = random.Random(rng.random())

                def read_all():
                    got = _mixed_reads(ct, rr, until=len(secret))
                    s = ct.unwrap(timeout=5)
                    return got, _mixed_reads(s, rr)

                reader = socket2.newthread(read_all)
                dog = _watched(c, 15)
                try:
                    for piece in _chunks(rng, wire):
                        a.sendall(piece)
                        _pause(rng)
                        if rng.random() < 0.2:
                            _no_stall(c)
                    p.wait_close_notify()
                    p.obj.unwrap()
                    tail = p.out.read() + plain
                    cut = rng.randint(len(tail) - len(plain) + 1, len(tail))
                    a.sendall(tail[:cut])           # the alert, plain bytes
                    _pause(rng)
                    _no_stall(c)
                    for piece in _chunks(rng, tail[cut:]):
                        a.sendall(piece)
                        _pause(rng)
                        if rng.random() < 0.2:
                            _no_stall(c)
                    _no_stall(c)
                    a.shutdown("w")
                    got_secret, got_plain = reader.join(timeout=5)
                finally:
                    _finish(reader, dog, c)
            assert got_secret == secret
            assert got_plain == plain

    _with_seed(seed, run)


# -- the second review: TLS edges ---------------------------------------------


class _Cyclic:
    """An object that refers to itself (through a bound method), holding a
    TLSSocket: freed only by the cycle collector."""

    def __init__(self, t):
        self.t = t
        self.again = self.close

    def close(self):
        pass


def test_tls_socket_freed_in_a_cycle_closes_no_other_socket(pki, engine):
    """A TLSSocket left in a reference cycle after its tcp was closed is
    freed by the collector after the number was reused: the new socket on
    that number stays open (the fd engine's socket object let go of it)."""
    c, a = tcp_pair()

    def server():
        with a:
            t = socket2.tls(a, server_ctx(pki), server_side=True, timeout=5)
            t.sendall(b"hello\n")
            socket2.sleep(0.2)

    st = socket2.newthread(server)
    gc.disable()
    try:
        with c:
            holder = _Cyclic(_tls_client(pki, c))
            assert holder.t.readline(timeout=5) == b"hello\n"
            fd = c.fileno()
        del holder
        c2, a2 = tcp_pair()
        with c2, a2:
            victim = c2 if c2.fileno() == fd else a2
            gc.collect()
            victim.getsockname()      # still this socket's (raises if not)
            other = a2 if victim is c2 else c2
            other.sendall(b"x")
            assert victim.recv(bytearray(4), timeout=5) == 1
    finally:
        gc.enable()
        st.join(timeout=5)


def test_reads_after_a_close_notify_with_tcp_still_open_end(pki, engine):
    """The peer sends its close_notify and keeps TCP open, waiting for
    ours (s_server and other bidirectional-shutdown peers): every read
    after it returns the end at once, never waits."""
    c, a = tcp_pair()
    with a:
        ct, p = _handshaken(pki, c, a)
        with ct, c:
            p.obj.write(b"line one\nlast, no newline")
            p.flush()
            try:
                p.obj.unwrap()
            except ssl.SSLWantReadError:
                pass                  # ours is in the BIO: sent below
            p.flush()
            assert ct.readline(timeout=5) == b"line one\n"
            assert ct.readline(timeout=5) == b"last, no newline"
            assert ct.readline(timeout=5) == b""
            assert ct.read(-1, timeout=5) == b""
            assert ct.recv(bytearray(8), timeout=5) == 0


def test_reads_after_the_end_keep_returning_it(pki, engine):
    """After the peer's close_notify and FIN, read/readline/recv all say
    the end (b'' / 0), every time, on either engine."""
    c, a = tcp_pair()

    def server():
        with a:
            t = socket2.tls(a, server_ctx(pki), server_side=True, timeout=5)
            t.sendall(b"all of it\n")
            t.close()

    st = socket2.newthread(server)
    ct = _tls_client(pki, c)
    with ct, c:
        assert ct.read(-1, timeout=5) == b"all of it\n"
        assert ct.readline(timeout=5) == b""
        assert ct.read(-1, timeout=5) == b""
        assert ct.recv(bytearray(8), timeout=5) == 0
    st.join(timeout=5)


def test_serve_refuses_a_client_context_at_once(pki):
    """serve(tls=) with a context that checks host names (a client's)
    fails once, at the start, instead of leaking every connection."""
    ctx = ssl.create_default_context()
    ctx.load_cert_chain(pki["server"])
    with socket2.tcp() as lst:
        lst.listen("127.0.0.1", 0)
        with pytest.raises(ValueError, match="server context"):
            socket2.serve(lst, lambda conn: None, tls=ctx)
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.check_hostname = False
        with pytest.raises(ValueError, match="server context"):
            socket2.serve(lst, lambda conn: None, tls=client)


@pytest.mark.parametrize("kwargs, error", [
    ({"server_hostname": ".".join(["a" * 63] * 5)}, ValueError),
    ({"server_hostname": HOST, "server_side": "yes"}, TypeError),
    ({"server_hostname": HOST, "server_side": None}, TypeError),
    ({"server_hostname": HOST, "wrong_side": True}, ValueError),
])
def test_tls_argument_errors_leave_the_socket_open(pki, kwargs, error):
    c, a = tcp_pair()
    with c, a:
        kwargs = dict(kwargs)
        ctx = client_ctx(pki)
        if kwargs.pop("wrong_side", False):
            ctx = server_ctx(pki)
        with pytest.raises(error):
            socket2.tls(c, ctx, timeout=1, **kwargs)
        assert not c.closed
        c.getsockname()               # the descriptor is still open
