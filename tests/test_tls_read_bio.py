"""How a TLS server reads what the network delivers: records that arrive
together, records that trickle in byte by byte, and plain bytes that
follow a close_notify in the same segment (STARTTLS going back to plain
text).  The peer is the standard library's TLS over memory BIOs in an OS
thread, so each test decides which bytes go out in which send.

On the C engine reads go through socket2's buffered read BIO
(socket2/ffi/build_openssl.py, ``s2_rbio``): one system call reads a
whole record (or several), and after a short read the next read says
"want read" without asking the kernel.  These tests hold every engine to
the same results; reads are made with no timeout (the compiled path) in a
thread the test joins with one, so a read that waits for data it already
holds fails instead of hanging.
"""
import socket
import ssl
import threading
import time

import pytest

import socket2

from test_tls import client_ctx, server_ctx


class MemPeer:
    """A TLS client over a plain blocking socket, driven through memory
    BIOs: records are made first and sent when and how the test says."""

    def __init__(self, sock, ctx):
        self.sock = sock
        self.inc = ssl.MemoryBIO()
        self.out = ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_side=False,
                                server_hostname="localhost")

    def _pump(self, fn, *args):
        while True:
            try:
                r = fn(*args)
            except ssl.SSLWantReadError:
                self.flush()
                data = self.sock.recv(65536)
                if not data:
                    raise EOFError("the server closed")
                self.inc.write(data)
                continue
            self.flush()
            return r

    def flush(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def handshake(self):
        self._pump(self.obj.do_handshake)

    def records(self, *chunks):
        """The encrypted bytes of *chunks*, one record each (not sent)."""
        for c in chunks:
            self.obj.write(c)
        return self.out.read()

    def read(self, n):
        return self._pump(self.obj.read, n)


@pytest.fixture
def conn(pki, engine):
    """(server TLSSocket with no timeout, MemPeer, run) where run(fn)
    calls fn() in the peer's OS thread and returns a join function."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(1)
    c = socket2.tcp()
    c.connect("127.0.0.1", lst.getsockname()[1])
    plain, _ = lst.accept()
    lst.close()
    plain.settimeout(10)
    # Here the peer is the client and socket2 the server (what a TLS
    # server reads is what these tests are about).
    peer = MemPeer(plain, client_ctx(pki))

    def run(fn):
        box = {}

        def body():
            try:
                box["value"] = fn()
            except BaseException as e:     # reported by join
                box["error"] = e

        th = threading.Thread(target=body)
        th.start()

        def join(timeout=10):
            deadline = time.monotonic() + timeout
            while th.is_alive() and time.monotonic() < deadline:
                socket2.sleep(0.005)
            assert not th.is_alive(), "the peer thread did not finish"
            if "error" in box:
                raise box["error"]
            return box.get("value")
        return join

    hs = run(peer.handshake)
    t = socket2.newthread(socket2.tls, c, server_ctx(pki), server_side=True)
    st = t.join(timeout=10)
    hs()
    try:
        yield st, peer, run
    finally:
        st.close()
        plain.close()


def _recv(st, size=4096):
    """st.recv into a fresh buffer, with no timeout, in a socket2 thread
    joined with one: bytes, or a TimeoutError if it found nothing."""
    buf = bytearray(size)
    t = socket2.newthread(st.recv, buf)
    try:
        n = t.join(timeout=5)
    except socket2.TimeoutError:
        t.kill()
        raise
    return bytes(buf[:n])


def _recv_to_end(st):
    """Every byte until recv() returns 0, read as _recv does."""
    got = b""
    while True:
        chunk = _recv(st, 65536)
        if not chunk:
            return got
        got += chunk


def test_records_sent_together_are_read_without_waiting(conn, engine):
    st, peer, run = conn
    wire = peer.records(b"one", b"two", b"three")
    run(lambda: peer.sock.sendall(wire))()
    socket2.sleep(0.05)             # all of it is in the socket's queue
    assert _recv(st, 3) == b"one"
    if engine == "c":
        # The rest came in with the first record: the descriptor is not
        # readable any more, pending() says what is held.
        assert st.pending() > 0
    assert _recv(st) == b"two"
    assert _recv(st) == b"three"
    assert st.pending() == 0


def test_a_record_trickled_byte_by_byte(conn):
    st, peer, run = conn
    payload = bytes(range(64)) * 4
    wire = peer.records(payload, b"tail")

    def trickle():
        for i in range(len(wire)):
            peer.sock.sendall(wire[i:i + 1])
            time.sleep(0.0005)
    done = run(trickle)
    got = b""
    while len(got) < len(payload) + 4:
        got += _recv(st)
    done()
    assert got == payload + b"tail"


def test_records_split_across_sends_at_every_boundary(conn):
    """Record headers and bodies cut at different places, several sends
    each, with pauses: each read still returns the records in order."""
    st, peer, run = conn
    chunks = [bytes([65 + i]) * (1 + 37 * i) for i in range(12)]
    wire = peer.records(*chunks)

    def send():
        cuts = [0, 1, 3, 5, 6, 40, 41, 300, 301, 302, 1000, 1500]
        cuts = sorted(set(c for c in cuts if c < len(wire))) + [len(wire)]
        for a, b in zip(cuts, cuts[1:]):
            peer.sock.sendall(wire[a:b])
            time.sleep(0.01)
    done = run(send)
    want = b"".join(chunks)
    got = b""
    while len(got) < len(want):
        got += _recv(st, 65536)
    done()
    assert got == want


def test_big_records_and_a_reply_each(conn):
    """16 KiB records (bigger than the read BIO's first buffer), each
    answered: nothing is lost or read twice as the buffer grows."""
    st, peer, run = conn
    blocks = [bytes([i]) * 16384 for i in range(8)]

    def client():
        replies = []
        for b in blocks:
            peer.sock.sendall(peer.records(b))
            replies.append(peer.read(100))
        return replies
    done = run(client)
    for b in blocks:
        got = b""
        while len(got) < len(b):
            got += _recv(st, 65536)
        assert got == b
        st.sendall(b"ok %d" % b[0])
    assert done() == [b"ok %d" % i for i in range(8)]


def test_unwrap_keeps_plain_bytes_sent_with_the_close_notify(conn):
    """The peer's close_notify and its first plain bytes in one send: the
    plain bytes are the plain socket's after unwrap(), on every engine."""
    st, peer, run = conn
    wire = peer.records(b"last secret")
    try:
        peer.obj.unwrap()       # puts our close_notify in the out BIO
    except ssl.SSLWantReadError:
        pass
    wire += peer.out.read() + b"PLAIN AGAIN\n"
    run(lambda: peer.sock.sendall(wire))()
    socket2.sleep(0.05)
    assert _recv(st) == b"last secret"
    t = socket2.newthread(st.unwrap)
    plain = t.join(timeout=5)
    assert plain.readline(timeout=5) == b"PLAIN AGAIN\n"
    plain.sendall(b"bye")
    # The peer gets the server's close_notify, then the plain reply.
    while True:
        try:
            peer.obj.unwrap()
            break
        except ssl.SSLWantReadError:
            peer.inc.write(peer.sock.recv(4096))
    rest = peer.inc.read()
    while len(rest) < 3:
        rest += peer.sock.recv(10)
    assert rest == b"bye"
    plain.close()


def test_a_peer_that_closes_without_close_notify(conn):
    """A FIN without close_notify ends the stream (0), as on every engine,
    after what came before it is read."""
    st, peer, run = conn
    wire = peer.records(b"before the end")

    def send_and_close():
        peer.sock.sendall(wire)
        peer.sock.shutdown(socket.SHUT_WR)
    run(send_and_close)()
    assert _recv(st) == b"before the end"
    assert _recv(st) == b""


@pytest.mark.parametrize("size", [5, 16384, 65536])
def test_close_notify_without_fin_ends_the_stream_every_time(conn, size):
    """The peer's close_notify with the TCP connection left open: recv()
    returns what came before it, then 0, and 0 again -- it never waits
    for bytes that cannot come.  (The 14th review: the C engine's shortcut
    answered "want read" once OpenSSL held the close_notify, and a body
    ending on a 16 KiB record boundary never saw its end.)"""
    st, peer, run = conn
    body = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    wire = b"".join(peer.records(body[i:i + 16384])
                    for i in range(0, len(body), 16384))
    try:
        peer.obj.unwrap()
    except ssl.SSLWantReadError:
        pass
    wire += peer.out.read()
    run(lambda: peer.sock.sendall(wire))()
    got = _recv_to_end(st)
    assert got == body
    assert _recv(st) == b""
    assert _recv(st) == b""


def test_a_stdlib_peer_that_waits_for_our_close_notify(conn, pki):
    """The standard library's unwrap(): the body, its close_notify, then
    it waits for ours.  The reader sees the end and answers."""
    st, peer, run = conn
    # (the MemPeer is unused here: a second, plain stdlib connection)
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(1)
    body = bytes(range(256)) * 256          # 64 KiB: 4 full records
    result = {}

    def server():
        s, _ = lst.accept()
        s.settimeout(10)
        t = server_ctx(pki).wrap_socket(s, server_side=True)
        t.sendall(body)
        try:
            t.unwrap()              # waits for our close_notify
            result["unwrapped"] = True
        finally:
            s.close()
            lst.close()
    done = run(server)
    c = socket2.tcp()
    c.connect("127.0.0.1", lst.getsockname()[1])
    t = socket2.newthread(socket2.tls, c, client_ctx(pki),
                          server_hostname="localhost")
    ct = t.join(timeout=10)
    try:
        got = _recv_to_end(ct)
        assert got == body
        ct.shutdown()               # our close_notify: the peer's unwrap ends
        done()
        assert result == {"unwrapped": True}
    finally:
        ct.close()
