"""A read or write cut short (timeout, kill, the socket closed under it)
must not leave the caller's buffer exported.

The Python methods take a cffi view of the caller's buffer
(``ffi.from_buffer``), an export of it.  The exception that ends the call
keeps, through its traceback, the frames it left and their locals, that
view included.  When the caller keeps the exception in a reference cycle
and the buffer is a memoryview (a slice, typically), the garbage collector
may clear the memoryview while it is still exported: CPython prints
"BufferError: memoryview has 1 exported buffer" and then crashes
(SIGSEGV in memory_dealloc) when the export goes.  sockets.py releases the
view whenever an exception leaves the method that made it.

The direct tests check that no export is left (``memoryview.release()``
raises ``BufferError`` while one is); the crash itself is shown in a
child process, so that a segfault fails the test instead of killing the
run.  The compiled recv (no timeout) holds its Py_buffer on the C stack
and was already safe; with a timeout it hands over to the Python method.
"""
import os
import ssl
import subprocess
import sys

import pytest

import socket2

SIZE = 1000


def _slice(size=SIZE):
    return memoryview(bytearray(size))[10:size - 10]


def _assert_released(mv, err):
    # The traceback still holds the frames the call went through: the
    # test means something only while they are alive.
    assert err.__traceback__ is not None
    mv.release()            # BufferError if a cffi view of it survived


def _timed_out(call, mv):
    with pytest.raises(socket2.TimeoutError) as info:
        call(mv)
    return info.value


@pytest.mark.parametrize("api", ["recv", "recv_maxlen", "recvn"])
def test_tcp_read_timeout_leaves_no_export(pair, api):
    c, a = pair
    calls = {
        "recv": lambda mv: c.recv(mv, timeout=0.01),
        "recv_maxlen": lambda mv: c.recv(mv, 5, timeout=0.01),
        "recvn": lambda mv: c.recvn(mv, timeout=0.01),
    }
    mv = _slice()
    _assert_released(mv, _timed_out(calls[api], mv))


def test_tcp_recvn_eof_leaves_no_export(pair):
    c, a = pair
    a.sendall(b"abc")
    a.shutdown("w")
    mv = _slice()
    with pytest.raises(socket2.Error) as info:
        c.recvn(mv, timeout=5)
    assert info.value.err == "eof" and info.value.received == 3
    _assert_released(mv, info.value)


@pytest.mark.parametrize("api", ["send", "sendall"])
def test_tcp_write_timeout_leaves_no_export(pair, api):
    c, a = pair
    c.setopt("so_sndbuf", 4096)
    big = memoryview(bytearray(1 << 22))[1:]
    fn = c.send if api == "send" else c.sendall
    with pytest.raises(socket2.TimeoutError) as info:
        while True:                      # send() returns until it is full
            fn(big, timeout=0.01)
    _assert_released(big, info.value)


@pytest.mark.parametrize("api", ["recv", "recv_from_peer", "recvfrom"])
def test_udp_read_timeout_leaves_no_export(api):
    with socket2.udp() as u:
        u.bind("127.0.0.1", 0)
        calls = {
            "recv": lambda mv: u.recv(mv, timeout=0.01),
            "recv_from_peer": lambda mv: u.recv(mv, host="127.0.0.1",
                                                port=9, timeout=0.01),
            "recvfrom": lambda mv: u.recvfrom(mv, timeout=0.01),
        }
        mv = _slice()
        _assert_released(mv, _timed_out(calls[api], mv))


class Stop(Exception):
    pass


@pytest.mark.parametrize("how", ["kill", "kill_timeout", "close",
                                 "close_timeout"])
def test_interrupted_wait_leaves_no_export(pair, how):
    # A thread parked in recv: killed or its socket closed under it; with
    # no argument but the buffer the compiled recv runs (where it is
    # built), with a timeout the Python one.
    c, a = pair
    mv = _slice()
    box = {}

    def reader():
        try:
            if how.endswith("_timeout"):
                c.recv(mv, timeout=30)
            else:
                c.recv(mv)
        except (Stop, socket2.Error) as e:
            box["err"] = e

    t = socket2.newthread(reader)
    if how.startswith("close"):
        c.close()
    else:
        t.kill(Stop())
    t.join(timeout=5)
    _assert_released(mv, box["err"])


def test_tls_recvn_timeout_leaves_no_export(pki, pair):
    c, a = pair
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(pki["server"])
    box = {}
    t = socket2.newthread(lambda: box.setdefault(
        "s", socket2.tls(a, sctx, server_side=True, timeout=5)))
    ct = socket2.tls(c, ssl.create_default_context(cafile=pki["ca"]),
                     server_hostname="localhost", timeout=5)
    t.join(timeout=5)
    try:
        for call in (lambda mv: ct.recvn(mv, timeout=0.01),
                     lambda mv: ct.recv(mv, timeout=0.01)):
            mv = _slice()
            _assert_released(mv, _timed_out(call, mv))
    finally:
        ct.close()
        box["s"].close()


# -- the crash itself, in a child process -------------------------------------

_CHILD = r"""
import gc, sys
import socket2

def main():
    with socket2.tcp() as srv:
        srv.listen("127.0.0.1", 0)
        a = socket2.tcp()
        a.connect("127.0.0.1", srv.local_port)
        b = srv.accept()
    for i in range(int(sys.argv[1])):
        ba = bytearray(1000)
        def reader():
            mv = memoryview(ba)[10:500]
            try:
                a.recvn(mv, timeout=0.001) if i % 2 else \
                    a.recv(mv, timeout=0.001)
            except socket2.TimeoutError as e:
                err = e      # frame -> err -> traceback -> frame: a cycle
            del mv
        socket2.newthread(reader).join(5)
        del reader, ba
        gc.collect()
    a.close()
    b.close()
    print("done")

main()
"""


@pytest.mark.one_poller
@pytest.mark.parametrize("pure", ["0", "1"])
def test_collected_cycle_of_a_timed_out_recv_does_not_crash(pure):
    # Before the fix: "Exception ignored in tp_clear of: <class
    # 'memoryview'> ... BufferError: memoryview has 1 exported buffer",
    # then SIGSEGV, in the first rounds, in both modes.
    root = os.path.dirname(os.path.dirname(os.path.abspath(
        socket2.__file__)))
    env = dict(os.environ, SOCKET2_PURE_PYTHON=pure,
               PYTHONPATH=os.pathsep.join(
                   [root] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    p = subprocess.run([sys.executable, "-X", "faulthandler", "-c", _CHILD,
                        "20"], env=env, cwd=root, capture_output=True,
                       text=True, timeout=60)
    assert "exported buffer" not in p.stderr, p.stderr[-3000:]
    assert p.returncode == 0 and p.stdout.strip() == "done", \
        (p.returncode, p.stderr[-3000:])


@pytest.mark.one_poller
@pytest.mark.parametrize("call", ["request", "response", "chunked"])
def test_http_parser_errors_leave_no_export(call):
    """The same rule in socket2/http/_parser_c.py: a ProtocolError (or a
    ValueError) raised over a memoryview leaves it unexported."""
    from socket2.http import ChunkedDecoder, HeadParser, ProtocolError
    raw = {"request": b"GET / HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n",
           "response": b"HTTP/1.1 2000 OK\r\n\r\n",
           "chunked": b"zz\r\n"}[call]
    buf = bytearray(b"..." + raw + b"...")
    mv = memoryview(buf)[3:-3]
    p = HeadParser()
    run = {"request": lambda: p.request(mv),
           "response": lambda: p.response(mv),
           "chunked": lambda: ChunkedDecoder().decode(mv)}[call]
    with pytest.raises(ProtocolError) as info:
        run()
    _assert_released(mv, info.value)
