"""Differential fuzzing of socket2's HTTP parser (imported by
tests/test_http_parser.py for a short seeded run, and by
tools/fuzz_http.py for long ones).

Mutations of valid requests, responses and chunked bodies -- case
changes, inserted whitespace and separators, bytes deleted or replaced by
the interesting ones (CR, LF, NUL, VT, DEL, 0x85, 0xa0 ...), lines
duplicated, conflicting framing fields added, huge numbers -- each checked
for:

- the twins agree: the compiled parser, the Python twin and the twin's
  byte-level path give the same answer (head, INCOMPLETE, or error code
  with its offset);
- incremental feeding: every prefix of the input answers INCOMPLETE or
  exactly what the whole input answers (each byte boundary for short
  inputs, a sample for longer ones); a chunked body split in two decodes
  to the same data, trailers and error;
- h11 as an oracle: when both accept a request, they frame its body the
  same way (chunked, or the same Content-Length); socket2 accepts nothing
  h11 refuses but the empty lines before a request line (RFC 9112 2.2).
"""
import random
import time

from socket2.http import _parser_py as PY
from socket2.http.errors import ProtocolError

try:
    from socket2.http import _parser_c as C
except ImportError:      # not built: the twins are compared without it
    C = None

try:
    import h11
except ImportError:
    h11 = None


class SlowHeadParser(PY.HeadParser):
    """The Python twin without its regular-expression fast path."""
    __slots__ = ()

    def _request_fast(self, b, start, i):
        return None

    def _response_fast(self, b, start, i, kind):
        return None


def parsers(*limits):
    """(name, HeadParser) of every implementation."""
    out = [("python", PY.HeadParser(*limits)),
           ("python-bytes", SlowHeadParser(*limits))]
    if C is not None:
        out.insert(0, ("c", C.HeadParser(*limits)))
    return out


def decoders():
    """(name, ChunkedDecoder class) of every implementation."""
    out = [("python", PY.ChunkedDecoder)]
    if C is not None:
        out.insert(0, ("c", C.ChunkedDecoder))
    return out


def outcome(parser, raw, kind="request", method=b"GET", start=0):
    """A comparable answer: ('head', head) / ('incomplete',) /
    ('error', reason, status, offset)."""
    try:
        if kind == "request":
            head = parser.request(raw, start)
        else:
            head = parser.response(raw, start, method)
    except ProtocolError as e:
        return ("error", e.reason, e.status, e.offset)
    if head is None:
        return ("incomplete",)
    return ("head", head)


def decode_outcome(cls, pieces, **limits):
    """Feed *pieces* to a new decoder as a connection would (keeping what
    was not consumed); returns (data, trailers, done, error, rest)."""
    d = cls(**limits)
    data = []
    pending = b""
    error = None
    for i, piece in enumerate(pieces):
        buf = pending + piece
        try:
            pos, got = d.decode(buf)
        except ProtocolError as e:
            # Offsets are per buffer: compare what the error is.
            error = (e.reason, e.status)
            break
        data.append(got)
        pending = buf[pos:]
        if d.done:
            pending += b"".join(pieces[i + 1:])
            break
    if error is not None:
        # What was decoded before the error is discarded with the message.
        return None, None, False, error, None
    return b"".join(data), d.trailers, d.done, error, pending if d.done \
        else None


# ----------------------------------------------------------------- seeds

REQUEST_SEEDS = [
    b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    b"GET /search?q=socket2&lang=en HTTP/1.1\r\nHost: www.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\nAccept: */*\r\n"
    b"Accept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n"
    b"Cookie: a=b; c=d\r\n\r\n",
    b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
    b"Content-Type: text/plain\r\n\r\nhello",
    b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n0\r\n\r\n",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
    b"Content-Length: 10\r\n\r\n",
    b"GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
    b"Upgrade: websocket\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    b"GET http://example.com/x HTTP/1.1\r\nHost: example.com\r\n\r\n",
]

RESPONSE_SEEDS = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n"
    b"Upgrade: websocket\r\n\r\n",
]

CHUNKED_SEEDS = [
    b"5\r\nhello\r\n0\r\n\r\n",
    b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: abc\r\n\r\n",
    b'A;n="q\\"x"\r\n0123456789\r\n00\r\n\r\n',
    b"1\r\nZ\r\n0\r\n\r\nGET / HTTP/1.1\r\n",
]

INTERESTING = b"\r\n\x00\x0b\x0c\x7f\x85\xa0\xff: \t,;=\"\\/#*+-_0x9aF"
FIELDS = [
    b"Content-Length: %d", b"Content-Length: %d, %d", b"Content-Length: 0%d",
    b"Content-Length: +%d", b"Content-Length: -%d",
    b"Content-Length: 99999999999999999999", b"Content-Length: ",
    b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip, chunked",
    b"Transfer-Encoding: chunked, gzip", b"Transfer-Encoding: ,chunked",
    b"Transfer-Encoding: identity", b"Transfer-Encoding: CHUNKED",
    b"Transfer-Encoding : chunked", b"Transfer-Encoding:\tchunked ",
    b"Host: b", b"Host: user@b", b"Connection: close", b"Connection: ,,",
    b"Expect: 100-continue", b" folded", b"X: a\rb", b"X:\x00",
]


def _mutate(rng, raw):
    """One random mutation of *raw*."""
    n = len(raw)
    op = rng.randrange(10)
    i = rng.randrange(n + 1)
    if op == 0 and n:                     # change case of a run
        j = min(n, i + rng.randrange(1, 20))
        run = raw[i:j]
        return raw[:i] + (run.upper() if rng.random() < .5
                          else run.lower()) + raw[j:]
    if op == 1:                           # insert whitespace
        return raw[:i] + rng.choice([b" ", b"\t", b"  ", b" \t"]) + raw[i:]
    if op == 2 and n:                     # delete bytes
        return raw[:i] + raw[i + rng.randrange(1, 4):]
    if op == 3 and n:                     # replace a byte
        j = min(n - 1, i)
        return raw[:j] + bytes([rng.choice(INTERESTING)]) + raw[j + 1:]
    if op == 4:                           # insert an interesting byte
        return raw[:i] + bytes([rng.choice(INTERESTING)]) + raw[i:]
    lines = raw.split(b"\r\n")
    k = rng.randrange(1, max(2, len(lines)))
    if op == 5:                           # duplicate a line
        lines.insert(k, lines[min(k, len(lines) - 1)])
        return b"\r\n".join(lines)
    if op == 6:                           # add a framing-related field
        f = rng.choice(FIELDS)
        args = tuple(rng.choice([0, 1, 5, 10, 2 ** 31, 2 ** 63, 10 ** 19])
                     for _ in range(f.count(b"%d")))
        lines.insert(k, f % args)
        return b"\r\n".join(lines)
    if op == 7:                           # change a line ending
        j = raw.find(b"\r\n", i)
        if j < 0:
            return raw
        return raw[:j] + rng.choice([b"\n", b"\r", b"\r\r\n", b"\n\r"]) \
            + raw[j + 2:]
    if op == 8:                           # huge or odd numbers
        digits = rng.choice([b"18446744073709551616", b"9223372036854775807",
                             b"9223372036854775808", b"0" * 30, b"7fffffff"
                             b"ffffffff", b"00", b"1_0", b"0x10"])
        j = next((p for p in range(i, n) if 48 <= raw[p] <= 57), None)
        if j is None:
            return raw + digits
        return raw[:j] + digits + raw[j + 1:]
    return raw[:i] + rng.choice([b"\r\n", b":", b",", b";", b"\x00"]) \
        + raw[i:]


def mutate(rng, raw):
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        raw = _mutate(rng, raw)
    return raw


# ------------------------------------------------------------- the checks

class Mismatch(AssertionError):
    pass


def _check_prefixes(name, parser, raw, whole, kind, method, rng):
    n = len(raw)
    ks = range(n) if n <= 400 else sorted(rng.sample(range(n), 200))
    for k in ks:
        got = outcome(parser, raw[:k], kind, method)
        if got != ("incomplete",) and got != whole:
            raise Mismatch("%s: prefix %d of %r gives %r, the whole %r"
                           % (name, k, raw, got, whole))


def h11_request(raw):
    """h11's reading of the request head in *raw*: ('ok', body, length,
    method, target, headers) / ('error',) / ('incomplete',)."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(raw)
    try:
        ev = conn.next_event()
    except h11.RemoteProtocolError:
        return ("error",)
    if ev is h11.NEED_DATA:
        return ("incomplete",)
    reader = type(conn._reader).__name__
    if reader == "ChunkedReader":
        body, length = "chunked", None
    else:
        length = conn._reader._length
        body = "length"
    return ("ok", body, length, ev.method, ev.target, list(ev.headers))


def check_request(raw, rng, limits=(), prefixes=True, oracle=True):
    """All the properties for one request input (parsed with *limits*,
    HeadParser's arguments); raises Mismatch."""
    results = [(name, p, outcome(p, raw)) for name, p in parsers(*limits)]
    first = results[0][2]
    for name, _, got in results[1:]:
        if got != first:
            raise Mismatch("%s and %s differ on %r: %r / %r"
                           % (results[0][0], name, raw, first, got))
    if prefixes:
        for name, p, whole in results:
            _check_prefixes(name, p, raw, whole, "request", None, rng)
    if oracle and not limits and h11 is not None \
            and first[0] != "incomplete":
        theirs = h11_request(raw)
        if first[0] == "head":
            head = first[1]
            leading_crlf = raw.startswith(b"\r\n")
            if theirs[0] == "error" and not leading_crlf:
                raise Mismatch("socket2 accepts what h11 refuses: %r" % raw)
            if theirs[0] == "ok":
                body = head.body if head.body != "none" else "length"
                length = head.content_length or 0 \
                    if head.body != "chunked" else None
                if (theirs[1], theirs[2]) != (body, length):
                    raise Mismatch("framing differs from h11's on %r: "
                                   "%s %r / %s %r" % (raw, head.body,
                                                      head.content_length,
                                                      theirs[1], theirs[2]))
    return first


def check_response(raw, rng, method=b"GET", limits=()):
    results = [(name, p, outcome(p, raw, "response", method))
               for name, p in parsers(*limits)]
    first = results[0][2]
    for name, _, got in results[1:]:
        if got != first:
            raise Mismatch("%s and %s differ on response %r: %r / %r"
                           % (results[0][0], name, raw, first, got))
    for name, p, whole in results:
        _check_prefixes(name, p, raw, whole, "response", method, rng)
    return first


def check_chunked(raw, rng, limits=None):
    limits = limits or {}
    whole = None
    for name, cls in decoders():
        one = decode_outcome(cls, [raw], **limits)
        if whole is None:
            whole = one
        elif one != whole:
            raise Mismatch("chunked: %s differs on %r: %r / %r"
                           % (name, raw, one, whole))
        n = len(raw)
        ks = range(n + 1) if n <= 300 else rng.sample(range(n + 1), 100)
        for k in ks:
            got = decode_outcome(cls, [raw[:k], raw[k:]], **limits)
            if got != whole:
                raise Mismatch("chunked: %s split at %d of %r gives %r, "
                               "whole %r" % (name, k, raw, got, whole))
    return whole


def run(seconds, seed, log=None):
    """Fuzz for about *seconds* from *seed*; returns the number of inputs
    checked.  Raises Mismatch (naming the input) on the first
    disagreement."""
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    count = 0
    while time.monotonic() < deadline:
        kind = rng.random()
        # A third of the inputs meet small limits, near their sizes.
        small = rng.random() < 0.33
        limits = (rng.randint(8, 80), rng.randint(2, 200),
                  rng.randint(0, 6)) if small else ()
        if kind < 0.6:
            raw = mutate(rng, rng.choice(REQUEST_SEEDS))
            check_request(raw, rng, limits)
        elif kind < 0.8:
            raw = mutate(rng, rng.choice(RESPONSE_SEEDS))
            check_response(raw, rng, rng.choice([b"GET", b"HEAD",
                                                 b"CONNECT"]), limits)
        else:
            raw = mutate(rng, rng.choice(CHUNKED_SEEDS))
            check_chunked(raw, rng, dict(
                max_line=rng.randint(1, 30), max_trailer_bytes=rng.randint(
                    1, 40), max_trailers=rng.randint(0, 3)) if small else {})
        count += 1
        if log is not None and count % 1000 == 0:
            log("%d inputs" % count)
    return count
