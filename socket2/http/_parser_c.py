"""The compiled parser (``socket2._http_ffi``, built from
socket2/ffi/http_parser.c) behind the same API as the Python twin,
``_parser_py``.  Import it through ``_parser``, which chooses.

A :class:`HeadParser` owns the arrays the C writes into, so one parser
serves one connection (or one OS thread) at a time; the C runs without
the GIL, and nothing of a call's answer stays in those arrays once the
call returned.
"""
from array import array

from .._http_ffi import ffi, lib
from ._heads import BODIES, RequestHead, ResponseHead
from ._limits import check_limits, method_kind
from .errors import protocol_error

__all__ = ["HeadParser", "ChunkedDecoder"]

_NOUT = lib.S2H_NOUT
_DATA = lib.S2H_CHUNK_DATA
_TRAILER = lib.S2H_CHUNK_TRAILER
_DONE = lib.S2H_CHUNK_DONE
_INCOMPLETE = lib.S2H_INCOMPLETE
_parse_request = lib.s2h_parse_request
_parse_response = lib.s2h_parse_response
_step = lib.s2h_chunked_step
_from_buffer = ffi.from_buffer
_release = ffi.release
lib.s2h_init()
# S2H_FLAGS -> (keep_alive, expect_continue, expect_unknown, upgrade)
_FLAGS = tuple((f & 1 == 1, f & 2 == 2, f & 8 == 8, f & 4 == 4)
               for f in range(16))


class HeadParser:
    """Parses request and response heads with fixed limits: ``max_line``
    (bytes of the request or status line), ``max_header_bytes`` (the
    header section, its final empty line included) and ``max_headers``
    (field lines)."""
    __slots__ = ("max_line", "max_header_bytes", "max_headers", "_out",
                 "_flat", "_ps", "_keep")

    def __init__(self, max_line=8190, max_header_bytes=32768,
                 max_headers=100):
        check_limits(max_line=max_line, max_header_bytes=max_header_bytes,
                     max_headers=max_headers)
        self.max_line = max_line
        self.max_header_bytes = max_header_bytes
        self.max_headers = max_headers
        self._out = array("q", bytes(8 * (_NOUT + 4 * max_headers)))
        # Strings of a head are at most its two parts' sizes.
        flat = bytearray(max_line + max_header_bytes + 8)
        self._flat = memoryview(flat)
        outp = _from_buffer("int64_t[]", self._out)
        flatp = _from_buffer(flat)
        self._keep = (outp, flatp)   # the struct points into these
        self._ps = ffi.new("s2h_parser *", (max_line, max_header_bytes,
                                            max_headers, outp, flatp))

    def request(self, buf, start=0):
        """Parse the request head at ``buf[start:]`` (bytes, bytearray or
        a contiguous buffer).  Returns a :class:`RequestHead`, or None when
        the head is not complete yet; raises :class:`ProtocolError` when
        it is invalid (as soon as the bytes received show it)."""
        if type(buf) is bytes:
            return self._request_view(buf, start)
        # The view is released when the call ends, raising or not: a
        # traceback keeping it would keep the caller's buffer exported (a
        # memoryview collected so crashes CPython: sockets.py, _drop).
        ptr = _from_buffer(buf)
        try:
            return self._request_view(ptr, start)
        finally:
            _release(ptr)

    def _request_view(self, ptr, start):
        n = len(ptr)
        if not 0 <= start <= n:
            raise ValueError("start %r is outside the buffer" % (start,))
        r = _parse_request(self._ps, ptr, start, n)
        if r:
            if r == _INCOMPLETE:
                return None
            raise protocol_error(r, self._out[8])
        end, version, _, _, body, length, flags, nflat = self._out[:8]
        it = iter(self._flat[:nflat].tobytes().split(b"\0"))
        method = next(it)
        target = next(it)
        keep_alive, expect_continue, expect_unknown, upgrade = _FLAGS[flags]
        return RequestHead(method, target, version, list(zip(it, it)),
                           BODIES[body], length if body == 1 else None,
                           keep_alive, expect_continue, expect_unknown,
                           upgrade, end)

    def response(self, buf, start=0, method=b"GET"):
        """Parse the response head at ``buf[start:]``, the answer to a
        request with *method* (HEAD and CONNECT change the framing).
        Returns a :class:`ResponseHead` or None (incomplete); raises
        :class:`ProtocolError`."""
        if type(buf) is bytes:
            return self._response_view(buf, start, method)
        ptr = _from_buffer(buf)      # released however the call ends
        try:
            return self._response_view(ptr, start, method)
        finally:
            _release(ptr)

    def _response_view(self, ptr, start, method):
        n = len(ptr)
        if not 0 <= start <= n:
            raise ValueError("start %r is outside the buffer" % (start,))
        r = _parse_response(self._ps, ptr, start, n, method_kind(method))
        if r:
            if r == _INCOMPLETE:
                return None
            raise protocol_error(r, self._out[8])
        end, version, status, _, body, length, flags, nflat = self._out[:8]
        it = iter(self._flat[:nflat].tobytes().split(b"\0"))
        reason = next(it)
        return ResponseHead(version, status, reason, list(zip(it, it)),
                            BODIES[body], length if body == 1 else None,
                            flags & 1 == 1, flags & 4 == 4, end)


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
    __slots__ = ("_st", "_out", "trailers", "__weakref__")

    def __init__(self, max_line=4096, max_trailer_bytes=32768,
                 max_trailers=100):
        check_limits(max_line=max_line,
                     max_trailer_bytes=max_trailer_bytes,
                     max_trailers=max_trailers)
        self._st = ffi.new("s2h_chunked *")
        lib.s2h_chunked_init(self._st, max_line, max_trailer_bytes,
                             max_trailers)
        self._out = ffi.new("int64_t[]", _NOUT)
        self.trailers = []

    @property
    def done(self):
        """True once the last chunk and the trailer section were read."""
        return self._st.state == lib.S2H_CS_DONE

    def decode(self, buf, pos=0, end=None):
        """Decode what ``buf[pos:end]`` holds.  Returns ``(pos, data)``:
        the offset after the bytes consumed (a chunk-size line, a CRLF or
        a trailer line is only consumed whole: keep ``buf[pos:end]`` and
        call again when more arrived) and the body bytes decoded.  Once
        ``done``, *pos* is where the next message starts.  Raises
        :class:`ProtocolError`, then again on every later call."""
        if type(buf) is bytes:
            return self._decode(buf, buf, pos, end)
        ptr = _from_buffer(buf)      # released however the call ends
        try:
            return self._decode(buf, ptr, pos, end)
        finally:
            _release(ptr)

    def _decode(self, buf, ptr, pos, end):
        n = len(ptr)
        if end is None:
            end = n
        if not 0 <= pos <= end <= n:
            raise ValueError("pos %r, end %r outside the buffer"
                             % (pos, end))
        st = self._st
        out = self._out
        pieces = []
        while True:
            r = _step(st, ptr, pos, end, out)
            pos = out[0]
            if r == _DATA:
                pieces.append(bytes(buf[out[1]:pos]))
            elif r == _TRAILER:
                self.trailers.append((bytes(buf[out[1]:out[2]]).lower(),
                                      bytes(buf[out[3]:out[4]])))
            elif r == _INCOMPLETE or r == _DONE:
                break
            else:
                raise protocol_error(r, out[8])
        if len(pieces) == 1:
            return pos, pieces[0]
        return pos, b"".join(pieces)
