"""The WSGI server's compiled request path (socket2/ffi/http_speedups.c)
against its Python twin: for every head of the parser's corpus and of a
bounded fuzz, the compiled reader gives the same head fields, the same
error, and the same WSGI environ as the Python parser followed by
``Connection.environ`` (socket2/http/wsgi.py, the reference)."""
import os
import random
import socket
import tempfile
import time

import pytest

import http_fuzz
import socket2
from socket2.http import wsgi
from socket2.http._parser_py import HeadParser as PyHeadParser
from socket2.http.errors import ProtocolError

from test_http_parser import INVALID, LIMITED, LIMITS, VALID

pytestmark = pytest.mark.one_poller
try:
    # (Taken directly: under SOCKET2_PURE_PYTHON=1 the server runs the
    # twin, and these tests still hold the C to it.)
    from socket2 import _http_speedups
    from socket2.http._heads import BODIES
    from socket2.http.errors import protocol_error
    _http_speedups.configure(BODIES, protocol_error)
except ImportError:
    _http_speedups = None
compiled = pytest.mark.skipif(
    _http_speedups is None, reason="socket2._http_speedups is not built: "
    "bash tools/dev.sh setup")


def _reader(max_line=8190, max_header_bytes=32768, max_headers=100):
    return _http_speedups.HeadReader(max_line, max_header_bytes,
                                     max_headers, wsgi._KEYS, wsgi._key)

FIELDS = ("method", "target", "version", "body", "content_length",
          "keep_alive", "expect_continue", "expect_unknown", "upgrade", "end")
BASE = {"wsgi.version": (1, 0), "SCRIPT_NAME": "", "SERVER_NAME": "h",
        "SERVER_PORT": "80", "wsgi.url_scheme": "http"}
REMOTE = ("127.0.0.1", "40000")


class _Conn:
    """What Connection.environ reads of a connection."""

    def __init__(self, base=BASE, remote=REMOTE):
        self.srv = type("Srv", (), {"environ": base})()
        self.remote = remote


def _py_outcome(raw, limits=(), base=BASE, pos=0):
    parser = PyHeadParser(*limits) if limits else PyHeadParser()
    try:
        head = parser.request(raw, pos)
    except ProtocolError as e:
        return ("error", e.status, e.reason, e.offset)
    if head is None:
        return ("incomplete",)
    try:
        env = wsgi.Connection.environ(_Conn(base), head)
    except Exception as e:             # noqa: BLE001 - compared as such
        return ("raises", type(e))
    return ("head", tuple(getattr(head, f) for f in FIELDS), env)


def _c_outcome(raw, limits=(), base=BASE, pos=0):
    reader = _reader(*limits)
    try:
        head = reader.read(raw, pos, base, REMOTE)
    except ProtocolError as e:
        return ("error", e.status, e.reason, e.offset)
    except Exception as e:             # noqa: BLE001 - compared as such
        return ("raises", type(e))
    if head is None:
        return ("incomplete",)
    env = head.environ
    if env is None:
        # Not origin-form: the server builds it from the head's fields.
        assert head.headers is not None
        try:
            env = wsgi.Connection.environ(_Conn(base), head)
        except Exception as e:         # noqa: BLE001
            return ("raises", type(e))
    else:
        assert head.headers is None
    return ("head", tuple(getattr(head, f) for f in FIELDS), env)


def _same(raw, limits=(), base=BASE, pos=0):
    c = _c_outcome(raw, limits, base, pos)
    py = _py_outcome(raw, limits, base, pos)
    assert c == py, (raw, limits, c, py)
    return c


@compiled
def test_corpus_agrees():
    kinds = set()
    for _, raw, _ in VALID + INVALID:
        kinds.add(_same(raw)[0])
        # And every prefix: incomplete, or the whole answer.
        for k in range(0, len(raw), 7):
            _same(raw[:k])
    for _, raw, _ in LIMITED:
        _same(raw, LIMITS)
    assert kinds == {"head", "error"}


@compiled
def test_environ_details():
    raw = (b"GET /a%20b/%zz%4/c%2F?x=1&y=%20 HTTP/1.1\r\nHost: x\r\n"
           b"Cookie: a=1\r\nCookie: b=2\r\nX-A: 1\r\nx-a: 2\r\n"
           b"Content-Type: t\r\nContent-Type: u\r\nAccept_Enc: dropped\r\n"
           b"Content-Length: 3\r\n\r\nabc")
    kind, fields, env = _same(raw)
    assert env["PATH_INFO"] == "/a b/%zz%4/c/"
    assert env["QUERY_STRING"] == "x=1&y=%20"
    assert env["HTTP_COOKIE"] == "a=1; b=2"
    assert env["HTTP_X_A"] == "1,2"
    assert env["CONTENT_TYPE"] == "u"
    assert env["CONTENT_LENGTH"] == "3"
    assert not any("ACCEPT" in k for k in env)
    assert env["REMOTE_ADDR"], env["REMOTE_PORT"] == REMOTE
    # Not origin-form: left to the Python builder, with the same answer.
    for target in (b"http://h.example:8080/p?q", b"*"):
        method = b"OPTIONS" if target == b"*" else b"GET"
        _same(method + b" " + target + b" HTTP/1.1\r\nHost: h\r\n\r\n")
    # Latin-1 bytes, a method not in the C's table, HTTP/1.0, a start
    # offset inside the buffer.
    _same(b"PROPFIND /\xe9\xff?\xe0 HTTP/1.0\r\nX: \xfe\xff\r\n\r\n")
    two = b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"
    _, first, _ = _same(two)
    _same(two, pos=first[-1])


@compiled
def test_many_names_and_long_names():
    """More distinct names than the C's name cache has slots, names past
    its length bound, a name repeated in every case: the cache never
    gives a wrong key."""
    lines = [b"Host: a"]
    for i in range(400):
        lines.append(b"X-Name-%d: %d" % (i, i))
    lines.append(b"X-" + b"L" * 200 + b": long")
    lines.append(b"x-" + b"l" * 200 + b": again")
    raw = b"GET / HTTP/1.1\r\n" + b"\r\n".join(lines) + b"\r\n\r\n"
    for _ in range(3):
        _, _, env = _same(raw, (8190, 65536, 1000))
    assert env["HTTP_X_" + "L" * 200] == "long,again"
    assert env["HTTP_X_NAME_399"] == "399"


@compiled
def test_base_entries_that_collide():
    """environ= entries a header would join: joined as Python joins them
    (a non-str one raises the same TypeError)."""
    raw = b"GET / HTTP/1.1\r\nHost: a\r\nX-Y: 2\r\nCookie: c\r\n\r\n"
    kind, _, env = _same(raw, base=dict(BASE, HTTP_X_Y="1", HTTP_COOKIE="b"))
    assert env["HTTP_X_Y"] == "1,2" and env["HTTP_COOKIE"] == "b; c"
    assert _same(raw, base=dict(BASE, HTTP_X_Y=5)) == ("raises", TypeError)


@compiled
def test_bad_arguments_are_errors():
    reader = _reader()
    raw = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    with pytest.raises(TypeError):
        reader.read(bytearray(raw), 0, BASE, REMOTE)
    with pytest.raises(TypeError):
        reader.read(raw, 0, BASE, ("only one",))
    with pytest.raises(ValueError):
        reader.read(raw, len(raw) + 1, BASE, REMOTE)
    with pytest.raises(ValueError):
        reader.read(raw, -1, BASE, REMOTE)
    with pytest.raises(ValueError):
        _reader(0)
    # The smallest limits Limits accepts are the reader's too.
    for limits in ((1, 1, 0), (8190, 1, 0), (8190, 2, 1)):
        assert _same(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
                     limits)[0] == "error"
    # Never initialised: an error, not a crash.
    bare = _http_speedups.HeadReader.__new__(_http_speedups.HeadReader)
    with pytest.raises(TypeError):
        bare.read(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, BASE, REMOTE)
    with pytest.raises(TypeError):
        _http_speedups.FastConfig(None, bare, None, bytearray(1), 1.0, 1.0,
                                  1.0, None, False, None)
    # Initialised twice: refused (a parse may be using its arrays).
    with pytest.raises(TypeError):
        _reader().__init__(8190, 32768, 100, wsgi._KEYS, wsgi._key)
    # A connection whose FastConfig never ran __init__: an error.
    conn = _http_speedups.ConnBase.__new__(_http_speedups.ConnBase)
    conn.sock, conn.srv, conn.out, conn.remote = object(), object(), [], \
        ("", "")
    conn.buf = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    conn.fast = _http_speedups.FastConfig.__new__(_http_speedups.FastConfig)
    with pytest.raises(TypeError):
        conn._serve_simple()


@compiled
def test_fuzz_agrees():
    """About two seconds of mutated requests (tests/http_fuzz.py's
    seeds and mutations) through both; a failure names its seed."""
    seed = int(os.environ.get("S2_FUZZ_SEED", "0")) or random.randrange(
        1, 2 ** 32)
    rng = random.Random(seed)
    deadline = time.monotonic() + 2.0
    count = 0
    while time.monotonic() < deadline:
        raw = http_fuzz.mutate(rng, rng.choice(http_fuzz.REQUEST_SEEDS))
        limits = (rng.randint(8, 80), rng.randint(2, 200),
                  rng.randint(0, 6)) if rng.random() < 0.3 else ()
        try:
            _same(raw, limits)
        except AssertionError as e:
            raise AssertionError("seed %d: %s" % (seed, e)) from None
        count += 1
    assert count > 100


def test_peer_address_of_real_sockets():
    """REMOTE_ADDR/REMOTE_PORT of a connection, compiled or not."""
    peer = wsgi._peer_address
    families = [("inet", "127.0.0.1")]
    if socket.has_ipv6:
        families.append(("inet6", "::1"))
    for family, host in families:
        with socket2.tcp(family) as lst:
            lst.bind(host, 0)
            lst.listen()
            with socket2.tcp(family) as c:
                c.connect(host, lst.local_port)
                with lst.accept() as s:
                    assert peer(s) == (host, str(c.local_port))


@compiled
def test_peer_address_formatting_matches_the_standard_library():
    """The compiled REMOTE_ADDR/REMOTE_PORT are written without printf,
    and the last IPv4 address's text is reused: every address and port,
    repeated, alternating or new, reads as socket.inet_ntop says."""
    if not hasattr(_http_speedups, "peer_address"):
        pytest.skip("the compiled peer formatting is POSIX-only (Windows "
                    "builds fall back to wsgi._peer_address)")
    import struct
    rnd = random.Random(5)
    v4 = ["0.0.0.0", "255.255.255.255", "10.0.0.1", "1.2.3.4",
          "127.0.0.1", "127.0.0.1", "192.168.100.9", "10.0.0.1"]
    v4 += [socket.inet_ntoa(struct.pack("!I", rnd.getrandbits(32)))
           for _ in range(300)]
    ports = [0, 1, 9, 10, 99, 100, 65535] + [rnd.randrange(65536)
                                            for _ in range(301)]
    for host, port in zip(v4, ports):
        sa = struct.pack("=H", socket.AF_INET) + struct.pack("!H", port) \
            + socket.inet_aton(host) + bytes(8)
        assert _http_speedups.peer_address(sa) == (host, str(port))
    for _ in range(50):
        raw = bytes(rnd.getrandbits(8) for _ in range(16))
        host = socket.inet_ntop(socket.AF_INET6, raw)
        port = rnd.randrange(65536)
        sa = struct.pack("=H", socket.AF_INET6) + struct.pack("!H", port) \
            + bytes(4) + raw + bytes(4)
        assert _http_speedups.peer_address(sa) == (host, str(port))


@pytest.mark.unix
def test_peer_address_of_a_unix_socket():
    """A unix socket has no address: empty, compiled or not."""
    peer = wsgi._peer_address
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "s")
        with socket2.tcp("unix") as lst:
            lst.bind(path)
            lst.listen()
            with socket2.tcp("unix") as c:
                c.connect(path)
                with lst.accept() as s:
                    assert peer(s) == ("", "")


@compiled
def test_read_is_not_reentrant():
    """Building the environ may run Python code (a joined header meets a
    base value's __add__); a read() from there would rewrite the arrays
    the outer one walks: refused."""
    reader = _reader()
    inner = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"

    class Joins:
        def __add__(self, other):
            reader.read(inner, 0, {}, REMOTE)
            return "joined"

    raw = b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\r\n"
    with pytest.raises(RuntimeError):
        reader.read(raw, 0, {"HTTP_X_A": Joins()}, REMOTE)
    assert reader.read(raw, 0, BASE, REMOTE).environ["HTTP_X_A"] == "1"


# Run with -X dev (freed memory poisoned): a borrowed reference used
# after Python code freed it crashes there.
_DEV_PROGRAM = """if 1:
    import gc, sys
    from socket2 import _http_speedups as S
    from socket2.http import _reply, wsgi
    S.configure(wsgi.BODIES, wsgi.protocol_error, wsgi.Reply, wsgi.EMPTY,
                _reply._CHECKED, wsgi.Error, wsgi._SLOW)
    reader = S.HeadReader(8190, 32768, 100, wsgi._KEYS, wsgi._key)
    # 1. A base value whose __add__ drops itself from the environ being
    #    built: the join holds its own reference.
    class Drops:
        def __add__(self, other):
            for d in gc.get_referrers(self):
                if type(d) is dict and "HTTP_X_A" in d:
                    del d["HTTP_X_A"]
            return NotImplemented
    base = {"HTTP_X_A": Drops()}
    try:
        reader.read(b"GET / HTTP/1.1\\r\\nHost: h\\r\\nX-A: 1\\r\\n\\r\\n",
                    0, base, ("1", "2"))
    except TypeError:
        pass
    # 2. A key in start_response's check cache whose __eq__ replaces the
    #    cache being searched.
    STATUS, HEADERS = "200 OK", [("Content-Length", "2")]
    class Replaces:
        def __hash__(self):
            return hash((STATUS, tuple(HEADERS)))
        def __eq__(self, other):
            new = {}
            S.configure(wsgi.BODIES, wsgi.protocol_error, wsgi.Reply,
                        wsgi.EMPTY, new, wsgi.Error, wsgi._SLOW)
            _reply._CHECKED = new
            return False
    cache = {Replaces(): None}
    S.configure(wsgi.BODIES, wsgi.protocol_error, wsgi.Reply, wsgi.EMPTY,
                cache, wsgi.Error, wsgi._SLOW)
    del cache
    reply = wsgi.Reply.__new__(wsgi.Reply)
    try:
        reply.start_response(STATUS, HEADERS)
    except Exception:
        pass
    print("lived")
"""


@compiled
def test_borrowed_references_survive_python_code_freeing_them():
    import subprocess
    import sys
    env = dict(os.environ)
    env.pop("SOCKET2_PURE_PYTHON", None)   # (the C types, in either pass)
    out = subprocess.run([sys.executable, "-X", "dev", "-c", _DEV_PROGRAM],
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0 and out.stdout.strip() == "lived", \
        (out.returncode, out.stderr[-2000:])


@compiled
def test_loop_survives_hooks_that_free_what_it_uses():
    """tests/programs/http_loop_hooks.py under -X dev: a negative reply
    length, a start_response property deleting the environ, a collector
    finalizer deleting the out list mid-allocation, an after() lookup
    replacing EMPTY."""
    import subprocess
    import sys
    env = dict(os.environ)
    env.pop("SOCKET2_PURE_PYTHON", None)
    prog = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        "programs", "http_loop_hooks.py")
    out = subprocess.run([sys.executable, "-X", "dev", prog],
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0 and out.stdout.strip() == "lived", \
        (out.returncode, out.stderr[-2000:])
