"""The pure-Python twin of socket2/ffi/http_parser.c: the same API as
``_parser_c`` and, for every input, the same answer, error code and error
offset (tests/test_http_parser.py and tools/fuzz_http.py hold the two to
it).  The C file's header lists the rules; this file follows its
functions one by one, under the same names.

Two paths.  A head that arrived whole and is valid goes through a few
regular expressions that accept exactly what the rules accept
(``_request_fast``, ``_response_fast``); anything else -- an incomplete
head, an error, a limit, an unusual form -- goes through the byte-level
path (``_request_slow``, ``_response_slow``), the line-for-line copy of
the C that decides INCOMPLETE and every error with its offset.  The fast
path never decides an error: when it is unsure, it hands over.
"""
import re

from ._heads import BODIES, RequestHead, ResponseHead
from ._limits import check_limits, method_kind
from .errors import Reason as E
from .errors import protocol_error

__all__ = ["HeadParser", "ChunkedDecoder"]

# ---------------------------------------------------------------- tables

TCHAR, FIELD, TARGET, HEX, QDTEXT, HOST = 1, 2, 4, 8, 16, 32
INT64_MAX = (1 << 63) - 1
WS = (32, 9)


def _table():
    t = bytearray(256)
    for c in range(256):
        f = 0
        alnum = 48 <= c <= 57 or 97 <= c <= 122 or 65 <= c <= 90
        if alnum or (c and chr(c) in "!#$%&'*+-.^_`|~"):
            f |= TCHAR
        if c == 9 or 0x20 <= c <= 0x7e or c >= 0x80:
            f |= FIELD
        if 0x21 <= c <= 0x7e and c != 0x23:
            f |= TARGET
        if 48 <= c <= 57 or 97 <= c <= 102 or 65 <= c <= 70:
            f |= HEX
        if c in (9, 32, 0x21) or 0x23 <= c <= 0x5b or 0x5d <= c <= 0x7e \
                or c >= 0x80:
            f |= QDTEXT
        if alnum or (c and chr(c) in "-._~%!$&'()*+;="):
            f |= HOST
        t[c] = f
    return bytes(t)


CLS = _table()

_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
_VALUE = rb"[\t\x20-\x7e\x80-\xff]"
# Runs, for the byte-level path (same as its C loops).
_TCHARS = re.compile(_TOKEN + rb"*")
_VALUES = re.compile(_VALUE + rb"*")
_TARGETS = re.compile(rb"[\x21\x22\x24-\x7e]*")
_SPACES = re.compile(rb"[ \t]*")
# Whole valid lines, for the fast path.
_REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb"+) ([\x21\x22\x24-\x7e]+) "
                           rb"HTTP/1\.([01])")
_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([1-5][0-9][0-9])"
                          rb"(?: (" + _VALUE + rb"*))?")
_FIELD_LINES = re.compile(rb"(?:" + _TOKEN + rb"+:" + _VALUE + rb"*\r\n)*")
_FIELD = re.compile(rb"(" + _TOKEN + rb"+):[ \t]*(" + _VALUE + rb"*?)"
                    rb"[ \t]*\r\n")

# The fields the framing reads (the C's framing() switch).
_SPECIAL = frozenset((b"host", b"expect", b"upgrade", b"connection",
                      b"content-length", b"transfer-encoding"))


class _Incomplete(Exception):
    """Need more bytes.  Raised as a new instance each time: re-raising one
    shared instance would keep extending its __traceback__, holding every
    frame (and buffer) it passed through."""


class _Fail(Exception):
    def __init__(self, code, pos):
        self.code = code
        self.pos = pos



def _need(p, end, lim, toolong):
    if p >= end:
        raise _Incomplete
    if p >= lim:
        raise _Fail(toolong, p)


# ------------------------------------------------------------ field lines

def _field_line(b, p, end, lim, toolong):
    """One field line at p; returns (after, name, name end, value, value
    end)."""
    ns = p
    e = min(end, lim)
    p = _TCHARS.match(b, p, e).end()
    _need(p, end, lim, toolong)
    c = b[p]
    if c != 58:
        if c in WS:
            raise _Fail(E.SPACE_IN_NAME, p)
        if c == 13 or c == 10:
            raise _Fail(E.NO_COLON, p)
        raise _Fail(E.FIELD_NAME, p)
    if p == ns:
        raise _Fail(E.FIELD_NAME, p)
    ne = p
    p = _SPACES.match(b, p + 1, e).end()
    vs = p
    p = _VALUES.match(b, p, e).end()
    _need(p, end, lim, toolong)
    c = b[p]
    if c != 13:
        raise _Fail(E.LINE_ENDING if c == 10 else E.FIELD_VALUE, p)
    ve = p
    while ve > vs and b[ve - 1] in WS:
        ve -= 1
    _need(p + 1, end, lim, toolong)
    if b[p + 1] != 10:
        raise _Fail(E.LINE_ENDING, p + 1)
    return p + 2, ns, ne, vs, ve


def _field_section(b, p, end, max_head, max_fields):
    lim = p + max_head
    fields = []
    while True:
        _need(p, end, lim, E.HEADERS_TOO_LARGE)
        c = b[p]
        if c == 13:
            _need(p + 1, end, lim, E.HEADERS_TOO_LARGE)
            if b[p + 1] != 10:
                raise _Fail(E.LINE_ENDING, p + 1)
            return p + 2, fields
        if c == 10:
            raise _Fail(E.LINE_ENDING, p)
        if c in WS:
            raise _Fail(E.OBS_FOLD, p)
        if len(fields) >= max_fields:
            raise _Fail(E.TOO_MANY_HEADERS, p)
        p, ns, ne, vs, ve = _field_line(b, p, end, lim, E.HEADERS_TOO_LARGE)
        fields.append((ns, ne, vs, ve))


# ---------------------------------------------------------- field values

def _skip_ws(b, p, e):
    while p < e and b[p] in WS:
        p += 1
    return p


def _content_length(b, p, e, cl):
    while True:
        p = _skip_ws(b, p, e)
        s = p
        v = 0
        while p < e and 48 <= b[p] <= 57:
            d = b[p] - 48
            if v > (INT64_MAX - d) // 10:
                raise _Fail(E.CONTENT_LENGTH_OVERFLOW, p)
            v = v * 10 + d
            p += 1
        if p == s or (b[s] == 48 and p - s > 1):
            raise _Fail(E.CONTENT_LENGTH, s)
        p = _skip_ws(b, p, e)
        if p < e and b[p] != 44:
            raise _Fail(E.CONTENT_LENGTH, p)
        if cl >= 0 and cl != v:
            raise _Fail(E.CONTENT_LENGTH_CONFLICT, s)
        cl = v
        if p == e:
            return cl
        p += 1


def _tokens(b, p, e):
    while p < e and CLS[b[p]] & TCHAR:
        p += 1
    return p


def _transfer_encoding(b, p, e, te):
    """te: [nchunked, last_chunked, other], updated."""
    while True:
        p = _skip_ws(b, p, e)
        s = p
        p = _tokens(b, p, e)
        if p == s:
            raise _Fail(E.TRANSFER_ENCODING, p)
        chunked = p - s == 7 and bytes(b[s:p]).lower() == b"chunked"
        p = _skip_ws(b, p, e)
        while p < e and b[p] == 59:
            if chunked:
                raise _Fail(E.TRANSFER_ENCODING, p)
            p = _skip_ws(b, p + 1, e)
            t = p
            p = _tokens(b, p, e)
            if p == t:
                raise _Fail(E.TRANSFER_ENCODING, p)
            p = _skip_ws(b, p, e)
            if p == e or b[p] != 61:
                raise _Fail(E.TRANSFER_ENCODING, p)
            p = _skip_ws(b, p + 1, e)
            if p < e and b[p] == 34:
                p += 1
                while True:
                    if p == e:
                        raise _Fail(E.TRANSFER_ENCODING, p)
                    if b[p] == 34:
                        break
                    if b[p] == 92:
                        p += 1
                        if p == e or not CLS[b[p]] & FIELD:
                            raise _Fail(E.TRANSFER_ENCODING, p)
                    elif not CLS[b[p]] & QDTEXT:
                        raise _Fail(E.TRANSFER_ENCODING, p)
                    p += 1
                p += 1
            else:
                t = p
                p = _tokens(b, p, e)
                if p == t:
                    raise _Fail(E.TRANSFER_ENCODING, p)
            p = _skip_ws(b, p, e)
        te[0] += chunked
        te[1] = chunked
        te[2] |= not chunked
        if p == e:
            return
        if b[p] != 44:
            raise _Fail(E.TRANSFER_ENCODING, p)
        p += 1


def _connection(b, p, e, flags):
    while True:
        p = _skip_ws(b, p, e)
        s = p
        p = _tokens(b, p, e)
        token = bytes(b[s:p]).lower()
        if token == b"close":
            flags |= 1
        elif token == b"keep-alive":
            flags |= 2
        elif token == b"upgrade":
            flags |= 4
        p = _skip_ws(b, p, e)
        if p == e:
            return flags
        if b[p] != 44:
            raise _Fail(E.CONNECTION, p)
        p += 1


def _host_ok(b, p, e):
    if p < e and b[p] == 91:
        p += 1
        s = p
        while p < e and (CLS[b[p]] & HOST or b[p] == 58):
            p += 1
        if p == s or p == e or b[p] != 93:
            return False
        p += 1
    else:
        while p < e and CLS[b[p]] & HOST:
            p += 1
    if p < e and b[p] == 58:
        p += 1
        while p < e and 48 <= b[p] <= 57:
            p += 1
    return p == e


# ------------------------------------------------- the framing decision

def _framing(specials, is_request, version, status, method, end):
    """specials: (lowercased name, buffer, value start, value end, name
    offset) of each field the framing reads, in order.  Returns (body,
    content_length, flags) as the C's framing() does."""
    hosts = te = conn = upgrade = flags = 0
    tes = [0, 0, 0]
    cl = -1
    cl_pos = te_pos = 0
    for name, b, vs, ve, npos in specials:
        if name == b"host":
            if is_request:
                hosts += 1
                if hosts > 1:
                    raise _Fail(E.DUPLICATE_HOST, npos)
                if not _host_ok(b, vs, ve):
                    raise _Fail(E.HOST, vs)
        elif name == b"expect":
            if bytes(b[vs:ve]).lower() == b"100-continue":
                flags |= 2
            else:
                flags |= 8
        elif name == b"upgrade":
            upgrade = 1
        elif name == b"connection":
            conn = _connection(b, vs, ve, conn)
        elif name == b"content-length":
            cl = _content_length(b, vs, ve, cl)
            if not cl_pos:
                cl_pos = npos
        elif name == b"transfer-encoding":
            _transfer_encoding(b, vs, ve, tes)
            if not te:
                te_pos = npos
            te += 1
    if is_request and version == 11 and not hosts:
        raise _Fail(E.NO_HOST, end)
    length = -1
    if te:
        if version == 10:
            raise _Fail(E.TE_HTTP10, te_pos)
        if cl >= 0:
            raise _Fail(E.CL_AND_TE, max(cl_pos, te_pos))
        if tes[0] > 1:
            raise _Fail(E.CHUNKED_TWICE, te_pos)
        if tes[0] and not tes[1]:
            raise _Fail(E.CHUNKED_NOT_LAST, te_pos)
        if tes[2]:
            raise _Fail(E.UNKNOWN_CODING, te_pos)
        body = 2
    elif cl >= 0:
        body = 1
        length = cl
    else:
        body = 0 if is_request else 3
    if not is_request and (method == 1 or status < 200 or status == 204
                           or status == 304
                           or (method == 2 and status < 300)):
        body = 0
        length = -1
    if (not conn & 1) if version == 11 else (conn & 2 and not conn & 1):
        flags |= 1
    if body == 3:
        flags &= ~1
    if not is_request or version != 11:
        flags &= ~2
    if not is_request:
        flags &= ~8
    if conn & 4 and upgrade:
        flags |= 4
    return body, length, flags


def _version_at(b, p, end, lim, toolong):
    for ch in b"HTTP/0.0":
        _need(p, end, lim, toolong)
        c = b[p]
        if not (48 <= c <= 57 if ch == 48 else c == ch):
            raise _Fail(E.VERSION, p)
        p += 1
    return p, (b[p - 3] - 48) * 10 + (b[p - 1] - 48)


def _is_alpha(c):
    return 97 <= (c | 0x20) <= 122


def _target_form(b, ms, ts, te):
    method = bytes(b[ms:ts - 1])
    if te - ts == 1 and b[ts] == 42:
        if method != b"OPTIONS":
            raise _Fail(E.TARGET_FORM, ts)
    elif method == b"CONNECT":
        for i in range(ts, te):
            if b[i] in b"/?@*":
                raise _Fail(E.TARGET_FORM, i)
        if b.find(b":", ts, te) < 0:
            raise _Fail(E.TARGET_FORM, ts)
    elif b[ts] != 47:
        i = ts
        if not _is_alpha(b[i]):
            raise _Fail(E.TARGET_FORM, ts)
        while i < te and (_is_alpha(b[i]) or 48 <= b[i] <= 57
                          or b[i] in b"+-."):
            i += 1
        if i == te or b[i] != 58:
            raise _Fail(E.TARGET_FORM, i)


def _specials(b, fields):
    out = []
    for ns, ne, vs, ve in fields:
        name = bytes(b[ns:ne]).lower()
        if name in _SPECIAL:
            out.append((name, b, vs, ve, ns))
    return out


def _headers(b, fields):
    return [(bytes(b[ns:ne]).lower(), bytes(b[vs:ve]))
            for ns, ne, vs, ve in fields]


def _buffer(buf):
    t = type(buf)
    return buf if t is bytes or t is bytearray else bytes(buf)


class HeadParser:
    """Parses request and response heads with fixed limits: ``max_line``
    (bytes of the request or status line), ``max_header_bytes`` (the
    header section, its final empty line included) and ``max_headers``
    (field lines)."""
    __slots__ = ("max_line", "max_header_bytes", "max_headers")

    def __init__(self, max_line=8190, max_header_bytes=32768,
                 max_headers=100):
        check_limits(max_line=max_line, max_header_bytes=max_header_bytes,
                     max_headers=max_headers)
        self.max_line = max_line
        self.max_header_bytes = max_header_bytes
        self.max_headers = max_headers

    # ------------------------------------------------------------ requests

    def request(self, buf, start=0):
        """Parse the request head at ``buf[start:]`` (bytes, bytearray or
        a contiguous buffer).  Returns a :class:`RequestHead`, or None when
        the head is not complete yet; raises :class:`ProtocolError` when
        it is invalid (as soon as the bytes received show it)."""
        b = _buffer(buf)
        if not 0 <= start <= len(b):
            raise ValueError("start %r is outside the buffer" % (start,))
        i = b.find(b"\r\n\r\n", start)
        if i >= 0:
            head = self._request_fast(b, start, i)
            if head is not None:
                return head
        return self._request_slow(b, start)

    def _request_fast(self, b, start, i):
        rl = b.find(b"\r\n", start, i + 2)
        if rl - start > self.max_line:
            return None
        m = _REQUEST_LINE.fullmatch(b, start, rl)
        if m is None:
            return None
        method, target, minor = m.groups()
        if target[0] != 47 or method == b"CONNECT":
            return None      # other target forms: the byte-level path
        end = i + 4
        hs = rl + 2
        if end - hs > self.max_header_bytes:
            return None
        if hs < end - 2:
            if _FIELD_LINES.fullmatch(b, hs, end - 2) is None:
                return None
            pairs = _FIELD.findall(b, hs, end - 2)
            if len(pairs) > self.max_headers:
                return None
        else:
            pairs = ()
        version = 11 if minor == b"1" else 10
        headers = []
        specials = []
        for name, value in pairs:
            name = name.lower()
            headers.append((name, value))
            if name in _SPECIAL:
                specials.append((name, value, 0, len(value), 0))
        try:
            body, length, flags = _framing(specials, True, version, 0, 0,
                                           end)
        except _Fail:
            return None      # the byte-level path finds it with its offset
        return RequestHead(method, target, version, headers, BODIES[body],
                           length if body == 1 else None, flags & 1 == 1,
                           flags & 2 == 2, flags & 8 == 8, flags & 4 == 4,
                           end)

    def _request_slow(self, b, start):
        try:
            return self._request_bytes(b, start, len(b))
        except _Incomplete:
            return None
        except _Fail as f:
            raise protocol_error(f.code, f.pos) from None

    def _request_bytes(self, b, start, end):
        max_line = self.max_line
        p = start
        lim = start + max_line + 1
        while True:
            _need(p, end, lim, E.REQUEST_LINE_TOO_LONG)
            c = b[p]
            if c == 13:
                if p + 1 >= end:
                    raise _Incomplete
                if b[p + 1] != 10:
                    raise _Fail(E.LINE_ENDING, p + 1)
                p += 2
            elif c == 10:
                raise _Fail(E.LINE_ENDING, p)
            else:
                break
        e = min(end, lim)
        ms = p
        p = _TCHARS.match(b, p, e).end()
        _need(p, end, lim, E.REQUEST_LINE_TOO_LONG)
        if p == ms or b[p] != 32:
            raise _Fail(E.METHOD, p)
        p += 1
        ts = p
        p = _TARGETS.match(b, p, e).end()
        _need(p, end, lim, E.REQUEST_LINE_TOO_LONG)
        c = b[p]
        if c != 32 or p == ts:
            if c in (32, 9, 13, 10):
                raise _Fail(E.REQUEST_LINE, p)
            raise _Fail(E.TARGET, p)
        te = p
        p, version = _version_at(b, p + 1, end, lim,
                                 E.REQUEST_LINE_TOO_LONG)
        _need(p, end, lim, E.REQUEST_LINE_TOO_LONG)
        if b[p] != 13:
            raise _Fail(E.LINE_ENDING if b[p] == 10 else E.VERSION, p)
        if p + 1 >= end:
            raise _Incomplete
        if b[p + 1] != 10:
            raise _Fail(E.LINE_ENDING, p + 1)
        if version != 10 and version != 11:
            raise _Fail(E.VERSION_UNSUPPORTED, te + 1)
        _target_form(b, ms, ts, te)
        p, fields = _field_section(b, p + 2, end, self.max_header_bytes,
                                   self.max_headers)
        body, length, flags = _framing(_specials(b, fields), True, version,
                                       0, 0, p)
        return RequestHead(bytes(b[ms:ts - 1]), bytes(b[ts:te]), version,
                           _headers(b, fields), BODIES[body],
                           length if body == 1 else None, flags & 1 == 1,
                           flags & 2 == 2, flags & 8 == 8, flags & 4 == 4, p)

    # ----------------------------------------------------------- responses

    def response(self, buf, start=0, method=b"GET"):
        """Parse the response head at ``buf[start:]``, the answer to a
        request with *method* (HEAD and CONNECT change the framing).
        Returns a :class:`ResponseHead` or None (incomplete); raises
        :class:`ProtocolError`."""
        b = _buffer(buf)
        if not 0 <= start <= len(b):
            raise ValueError("start %r is outside the buffer" % (start,))
        kind = method_kind(method)
        i = b.find(b"\r\n\r\n", start)
        if i >= 0:
            head = self._response_fast(b, start, i, kind)
            if head is not None:
                return head
        try:
            return self._response_bytes(b, start, len(b), kind)
        except _Incomplete:
            return None
        except _Fail as f:
            raise protocol_error(f.code, f.pos) from None

    def _response_fast(self, b, start, i, kind):
        rl = b.find(b"\r\n", start, i + 2)
        if rl - start > self.max_line:
            return None
        m = _STATUS_LINE.fullmatch(b, start, rl)
        if m is None:
            return None
        minor, status, reason = m.groups()
        end = i + 4
        hs = rl + 2
        if end - hs > self.max_header_bytes:
            return None
        if hs < end - 2:
            if _FIELD_LINES.fullmatch(b, hs, end - 2) is None:
                return None
            pairs = _FIELD.findall(b, hs, end - 2)
            if len(pairs) > self.max_headers:
                return None
        else:
            pairs = ()
        version = 11 if minor == b"1" else 10
        status = int(status)
        headers = []
        specials = []
        for name, value in pairs:
            name = name.lower()
            headers.append((name, value))
            if name in _SPECIAL:
                specials.append((name, value, 0, len(value), 0))
        try:
            body, length, flags = _framing(specials, False, version, status,
                                           kind, end)
        except _Fail:
            return None
        return ResponseHead(version, status, reason or b"", headers,
                            BODIES[body], length if body == 1 else None,
                            flags & 1 == 1, flags & 4 == 4, end)

    def _response_bytes(self, b, start, end, kind):
        p = start
        lim = start + self.max_line + 1
        toolong = E.STATUS_LINE_TOO_LONG
        p, version = _version_at(b, p, end, lim, toolong)
        _need(p, end, lim, toolong)
        if b[p] != 32:
            raise _Fail(E.STATUS_LINE, p)
        p += 1
        status = 0
        for _ in range(3):
            _need(p, end, lim, toolong)
            if not 48 <= b[p] <= 57:
                raise _Fail(E.STATUS_CODE, p)
            status = status * 10 + b[p] - 48
            p += 1
        _need(p, end, lim, toolong)
        c = b[p]
        if c == 32:
            p += 1
        elif c != 13:
            raise _Fail(E.LINE_ENDING if c == 10 else E.STATUS_CODE, p)
        rs = p
        p = _VALUES.match(b, p, min(end, lim)).end()
        _need(p, end, lim, toolong)
        if b[p] != 13:
            raise _Fail(E.LINE_ENDING if b[p] == 10 else E.STATUS_LINE, p)
        re_ = p
        if p + 1 >= end:
            raise _Incomplete
        if b[p + 1] != 10:
            raise _Fail(E.LINE_ENDING, p + 1)
        if version != 10 and version != 11:
            raise _Fail(E.VERSION_UNSUPPORTED, start)
        if not 100 <= status <= 599:
            raise _Fail(E.STATUS_CODE, start + 9)
        p, fields = _field_section(b, p + 2, end, self.max_header_bytes,
                                   self.max_headers)
        body, length, flags = _framing(_specials(b, fields), False, version,
                                       status, kind, p)
        return ResponseHead(version, status, bytes(b[rs:re_]),
                            _headers(b, fields), BODIES[body],
                            length if body == 1 else None, flags & 1 == 1,
                            flags & 4 == 4, p)


# ---------------------------------------------------------- chunked body

_SIZE, _DATA, _DATA_END, _TRAILER, _DONE, _FAILED = range(6)


class ChunkedDecoder:
    """Decodes one chunked body (RFC 9112 7.1) as it arrives, strictly:
    hex sizes only (no sign, prefix or whitespace), overflow checked,
    extensions validated against their grammar and ignored, CRLF required
    after each chunk's data, trailer fields held to the header rules.

    ``max_line`` bounds a chunk-size line (extensions included),
    ``max_trailer_bytes`` and ``max_trailers`` the trailer section.
    ``trailers`` collects the trailer fields (``(name, value)``, names
    lowercased: they never frame anything); ``done`` is true once the body
    ended.
    """
    __slots__ = ("max_line", "max_trailer_bytes", "max_trailers", "_state",
                 "_error", "_errpos", "_remaining", "_trailer_bytes",
                 "_ntrailers", "trailers", "__weakref__")

    def __init__(self, max_line=4096, max_trailer_bytes=32768,
                 max_trailers=100):
        check_limits(max_line=max_line,
                     max_trailer_bytes=max_trailer_bytes,
                     max_trailers=max_trailers)
        self.max_line = max_line
        self.max_trailer_bytes = max_trailer_bytes
        self.max_trailers = max_trailers
        self._state = _SIZE
        self._error = self._errpos = 0
        self._remaining = self._trailer_bytes = self._ntrailers = 0
        self.trailers = []

    @property
    def done(self):
        """True once the last chunk and the trailer section were read."""
        return self._state == _DONE

    def decode(self, buf, pos=0, end=None):
        """Decode what ``buf[pos:end]`` holds.  Returns ``(pos, data)``:
        the offset after the bytes consumed (a chunk-size line, a CRLF or
        a trailer line is only consumed whole: keep ``buf[pos:end]`` and
        call again when more arrived) and the body bytes decoded.  Once
        ``done``, *pos* is where the next message starts.  Raises
        :class:`ProtocolError`, then again on every later call."""
        b = _buffer(buf)
        if end is None:
            end = len(b)
        if not 0 <= pos <= end <= len(b):
            raise ValueError("pos %r, end %r outside the buffer"
                             % (pos, end))
        if self._state == _FAILED:
            raise protocol_error(self._error, self._errpos)
        pieces = []
        try:
            pos = self._run(b, pos, end, pieces)
        except _Fail as f:
            self._state = _FAILED
            self._error = f.code
            self._errpos = f.pos
            raise protocol_error(f.code, f.pos) from None
        if len(pieces) == 1:
            return pos, pieces[0]
        return pos, b"".join(pieces)

    def _run(self, b, pos, end, pieces):
        while True:
            state = self._state
            if state == _SIZE:
                try:
                    pos, size = self._size_line(b, pos, end)
                except _Incomplete:
                    return pos
                if size:
                    self._remaining = size
                    self._state = _DATA
                else:
                    self._state = _TRAILER
            elif state == _DATA:
                if pos >= end:
                    return pos
                n = min(end - pos, self._remaining)
                pieces.append(bytes(b[pos:pos + n]))
                pos += n
                self._remaining -= n
                if not self._remaining:
                    self._state = _DATA_END
            elif state == _DATA_END:
                if pos >= end:
                    return pos
                if b[pos] != 13:
                    raise _Fail(E.CHUNK_DATA_CRLF, pos)
                if pos + 1 >= end:
                    return pos
                if b[pos + 1] != 10:
                    raise _Fail(E.CHUNK_DATA_CRLF, pos + 1)
                pos += 2
                self._state = _SIZE
            elif state == _TRAILER:
                lim = pos + (self.max_trailer_bytes - self._trailer_bytes)
                if pos >= end:
                    return pos
                if pos >= lim:
                    raise _Fail(E.TRAILERS_TOO_LARGE, pos)
                c = b[pos]
                if c == 13:
                    if pos + 1 >= end:
                        return pos
                    if pos + 1 >= lim:
                        raise _Fail(E.TRAILERS_TOO_LARGE, pos + 1)
                    if b[pos + 1] != 10:
                        raise _Fail(E.LINE_ENDING, pos + 1)
                    self._state = _DONE
                    return pos + 2
                if c == 10:
                    raise _Fail(E.LINE_ENDING, pos)
                if c in WS:
                    raise _Fail(E.OBS_FOLD, pos)
                if self._ntrailers >= self.max_trailers:
                    raise _Fail(E.TOO_MANY_TRAILERS, pos)
                try:
                    q, ns, ne, vs, ve = _field_line(
                        b, pos, end, lim, E.TRAILERS_TOO_LARGE)
                except _Incomplete:
                    return pos
                self.trailers.append((bytes(b[ns:ne]).lower(),
                                      bytes(b[vs:ve])))
                self._trailer_bytes += q - pos
                self._ntrailers += 1
                pos = q
            else:
                return pos

    def _size_line(self, b, p, end):
        """chunk-size [ chunk-ext ] CRLF at p: (after, size)."""
        lim = p + self.max_line + 1
        toolong = E.CHUNK_LINE_TOO_LONG
        s = p
        v = 0
        while True:
            _need(p, end, lim, toolong)
            c = b[p]
            if not CLS[c] & HEX:
                break
            if v > INT64_MAX >> 4:
                raise _Fail(E.CHUNK_SIZE_OVERFLOW, p)
            v = v * 16 + int(chr(c), 16)
            p += 1
        if p == s or not (c == 13 or c == 59 or c in WS):
            raise _Fail(E.CHUNK_SIZE, p)
        while True:
            _need(p, end, lim, toolong)
            c = b[p]
            if c in WS:
                while True:
                    p += 1
                    _need(p, end, lim, toolong)
                    if b[p] not in WS:
                        break
                if b[p] != 59:
                    raise _Fail(E.CHUNK_EXT, p)
                c = 59
            if c == 13:
                break
            if c != 59:
                raise _Fail(E.LINE_ENDING if c == 10 else E.CHUNK_EXT, p)
            p += 1
            _need(p, end, lim, toolong)
            while b[p] in WS:
                p += 1
                _need(p, end, lim, toolong)
            t = p
            while CLS[b[p]] & TCHAR:
                p += 1
                _need(p, end, lim, toolong)
            if p == t:
                raise _Fail(E.CHUNK_EXT, p)
            t = p
            while b[p] in WS:
                p += 1
                _need(p, end, lim, toolong)
            if b[p] != 61:
                if p != t and b[p] != 59:
                    raise _Fail(E.CHUNK_EXT, p)
                continue
            p += 1
            _need(p, end, lim, toolong)
            while b[p] in WS:
                p += 1
                _need(p, end, lim, toolong)
            if b[p] == 34:
                while True:
                    p += 1
                    _need(p, end, lim, toolong)
                    c = b[p]
                    if c == 34:
                        break
                    if c == 92:
                        p += 1
                        _need(p, end, lim, toolong)
                        c = b[p]
                        if not CLS[c] & FIELD:
                            raise _Fail(E.LINE_ENDING if c in (13, 10)
                                        else E.CHUNK_EXT, p)
                    elif not CLS[c] & QDTEXT:
                        raise _Fail(E.LINE_ENDING if c in (13, 10)
                                    else E.CHUNK_EXT, p)
                p += 1
            else:
                t = p
                while CLS[b[p]] & TCHAR:
                    p += 1
                    _need(p, end, lim, toolong)
                if p == t:
                    raise _Fail(E.CHUNK_EXT, p)
        if p + 1 >= end:
            raise _Incomplete
        if b[p + 1] != 10:
            raise _Fail(E.LINE_ENDING, p + 1)
        return p + 2, v
