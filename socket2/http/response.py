"""What the client hands back: :class:`Response`, its :class:`Headers`,
:class:`HTTPStatusError`, and the content decoders (gzip/deflate with
zlib; br and zstd when their optional modules are installed).

A response owns its connection until its body has been read to the end
(then the connection goes back to the pool) or it is closed (then the
connection is closed with it, since the rest of an unread body is still
on the wire).  Nothing is read ahead of the caller: ``read()`` reads the
body, ``iter_bytes()`` receives one piece per step.
"""
import _thread
import json as _json
import zlib

from ..errors import Error
from .errors import ProtocolError

try:                         # optional: Content-Encoding: br
    import brotli as _brotli
except ImportError:          # pragma: no cover - depends on the install
    try:
        import brotlicffi as _brotli
    except ImportError:
        _brotli = None
try:                         # optional: Content-Encoding: zstd
    import zstandard as _zstd
except ImportError:          # pragma: no cover - depends on the install
    _zstd = None

__all__ = ["Response", "Headers", "HTTPStatusError", "DecodingError",
           "ACCEPT_ENCODING"]

#: What the client offers in Accept-Encoding when it decompresses.
ACCEPT_ENCODING = ", ".join(
    ["gzip", "deflate"] + (["br"] if _brotli else [])
    + (["zstd"] if _zstd else []))


class HTTPStatusError(Error):
    """Raised by :meth:`Response.raise_for_status` for a 4xx or 5xx
    response (``err == 'http_status'``); ``.response`` and ``.status``
    tell which."""

    def __init__(self, message, response=None):
        super().__init__("http_status", message)
        self.response = response
        self.status = response.status if response is not None else None

    def __reduce__(self):
        return (type(self), (str(self),))


class Headers:
    """A response's header fields: case-insensitive, every field kept in
    arrival order.

    ``h['content-type']`` gives the value (several fields of one name
    joined with ``', '``; ``KeyError`` when absent), ``h.get(name,
    default)``, ``h.get_list(name)`` every value of that name, ``name in
    h``, ``h.items()`` every ``(name, value)`` field (names lowercase),
    ``len(h)`` the count of fields, ``iter(h)`` the distinct names.
    Values are ``str`` (decoded as Latin-1, as the bytes came).
    """
    __slots__ = ("_raw", "_map")

    def __init__(self, fields=()):
        # fields: (name, value) pairs, bytes or str; names are lowercased.
        self._raw = fields
        self._map = None

    def _index(self):
        m = {}
        raw = []
        for name, value in self._raw:
            if type(name) is bytes:
                name = name.decode("latin-1")
            if type(value) is bytes:
                value = value.decode("latin-1")
            name = name.lower()
            raw.append((name, value))
            m.setdefault(name, []).append(value)
        self._raw = raw
        self._map = m
        return m

    def get_list(self, name):
        """Every value of the field *name*, in arrival order ([] if none)."""
        m = self._map if self._map is not None else self._index()
        return list(m.get(name.lower(), ()))

    get_all = get_list

    def get(self, name, default=None):
        """The field's value (repeated fields joined with ``', '``), or
        *default*."""
        m = self._map if self._map is not None else self._index()
        v = m.get(name.lower())
        if v is None:
            return default
        return v[0] if len(v) == 1 else ", ".join(v)

    def __getitem__(self, name):
        v = self.get(name)
        if v is None:
            raise KeyError(name)
        return v

    def __contains__(self, name):
        m = self._map if self._map is not None else self._index()
        return isinstance(name, str) and name.lower() in m

    def __iter__(self):
        m = self._map if self._map is not None else self._index()
        return iter(list(m))

    def keys(self):
        """The distinct field names (lowercase)."""
        return list(self)

    def items(self):
        """Every field as ``(name, value)``, repeated ones included."""
        if self._map is None:
            self._index()
        return list(self._raw)

    def __len__(self):
        return len(self._raw)

    def __eq__(self, other):
        if isinstance(other, Headers):
            return self.items() == other.items()
        if isinstance(other, dict):
            return {k: self[k] for k in self} == {
                k.lower(): v for k, v in other.items()}
        return NotImplemented

    __hash__ = None

    def __repr__(self):
        return "Headers(%r)" % (self.items(),)


# ---------------------------------------------------------------------------
# Content decoding


# A decoder: decompress(data, limit=0) gives up to *limit* bytes (0: all
# there is) of what *data* and the input it kept back decode to; called
# again with b'' it gives more of that, b'' when it needs more input.
# flush() gives the rest at the end of the body, and raises ProtocolError
# when the compressed stream is truncated.


class DecodingError(ProtocolError):
    """A body that cannot be undone from its Content-Encoding: invalid or
    truncated gzip/deflate/br/zstd data (a :class:`ProtocolError`)."""


def _truncated(name):
    return DecodingError("the %s body is truncated: the compressed stream "
                         "ended before its end marker" % name)


class _Zlib:
    """gzip (every member, as urllib3 decodes it) or deflate (zlib's
    wrapper, or the raw deflate stream some servers send instead)."""
    __slots__ = ("d", "deflate", "head", "tail", "seen", "members", "junk")

    def __init__(self, deflate):
        self.deflate = deflate
        self.d = None if deflate else zlib.decompressobj(16 + zlib.MAX_WBITS)
        self.head = b""       # deflate: the first bytes, until told apart
        self.tail = b""       # input not decoded yet (past a limit)
        self.seen = False     # any input at all
        self.members = 0      # complete streams decoded
        self.junk = False     # what follows the last stream is ignored

    @property
    def name(self):
        return "deflate" if self.deflate else "gzip"

    def _pick(self, data):
        """deflate: zlib's wrapper (RFC 1950: its 2-byte header) or raw,
        told apart by the first two bytes, however they arrive."""
        data = self.head + data
        if len(data) < 2:
            self.head = data
            return b""
        self.head = b""
        cmf, flg = data[0], data[1]
        wrapped = cmf & 0x0F == 8 and cmf >> 4 <= 7 \
            and (cmf << 8 | flg) % 31 == 0
        self.d = zlib.decompressobj(zlib.MAX_WBITS if wrapped
                                    else -zlib.MAX_WBITS)
        return data

    def _inflate(self, d, data, limit):
        try:
            return d.decompress(data, limit)
        except zlib.error as e:
            if self.members:
                # Garbage after a complete stream (padding some servers
                # add): ignored, as urllib3 and browsers do.
                self.junk = True
                return None
            raise DecodingError("the body is not valid %s data: %s"
                                % (self.name, e)) from None

    def decompress(self, data, limit=0):
        if data:
            self.seen = True
            if self.d is None:
                data = self._pick(data)
                if self.d is None:
                    return b""
        if self.tail:
            data = self.tail + data if data else self.tail
            self.tail = b""
        elif not data:
            d = self.d
            if limit and d is not None and not d.eof and not self.junk:
                # inflate may hold output of input it consumed already
                return self._inflate(d, b"", limit) or b""
            return b""
        parts = []
        while data and not self.junk:
            d = self.d
            if d.eof:                   # another gzip member follows
                if self.deflate:
                    self.junk = True
                    break
                d = self.d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out = self._inflate(d, data, limit)
            if out is None:
                break
            if d.eof:
                self.members += 1
                data = d.unused_data
            else:
                data = d.unconsumed_tail
            if out:
                if limit:
                    self.tail = data
                    return out
                parts.append(out)
        return b"".join(parts)

    def flush(self):
        out = self.decompress(b"") if self.tail else b""
        d = self.d
        if d is None:
            if self.head:
                raise _truncated(self.name)
            return out
        if self.seen and not self.junk and not d.eof:
            raise _truncated(self.name)
        return out + d.flush()


class _Sliced:
    """A decoder whose library cannot bound its output: what one input
    gives is kept and handed out *limit* bytes at a time."""
    __slots__ = ("d", "kept", "at", "seen")
    name = ""

    def __init__(self):
        self.d = self._new()
        self.kept = b""
        self.at = 0
        self.seen = False

    def decompress(self, data, limit=0):
        if data:
            self.seen = True
            new = self._process(data)
            if self.at < len(self.kept):
                new = self.kept[self.at:] + new
            self.kept, self.at = new, 0
        kept = self.kept
        start = self.at
        end = len(kept) if not limit else min(len(kept), start + limit)
        if end == len(kept):
            self.kept, self.at = b"", 0
        else:
            self.at = end
        return kept[start:end]

    def flush(self):
        if self.seen and not self._finished():
            raise _truncated(self.name)
        return self.decompress(b"")


class _Brotli(_Sliced):
    __slots__ = ()
    name = "br"

    def _new(self):
        return _brotli.Decompressor()

    def _process(self, data):
        d = self.d
        try:
            return d.process(data) if hasattr(d, "process") \
                else d.decompress(data)
        except Exception as e:   # brotli.error has no common base
            raise DecodingError("the body is not valid br data: %s"
                                % e) from None

    def _finished(self):
        return self.d.is_finished()


class _Zstd(_Sliced):
    __slots__ = ()
    name = "zstd"

    def _new(self):
        return _zstd.ZstdDecompressor().decompressobj()

    def _process(self, data):
        parts = []
        try:
            while data:
                d = self.d
                if d.eof:                 # every frame, not the first only
                    d = self.d = self._new()
                parts.append(d.decompress(data))
                data = d.unused_data if d.eof else b""
        except _zstd.ZstdError as e:
            raise DecodingError("the body is not valid zstd data: %s"
                                % e) from None
        return b"".join(parts)

    def _finished(self):
        return self.d.eof


class _Chain:
    """Several codings, applied in the order they were listed: undone in
    reverse."""
    __slots__ = ("ds",)

    def __init__(self, ds):
        self.ds = ds

    def decompress(self, data, limit=0):
        ds = self.ds
        for d in ds[:-1]:
            data = d.decompress(data)
        return ds[-1].decompress(data, limit)

    def flush(self):
        data = b""
        for d in self.ds:
            data = d.decompress(data) + d.flush() if data else d.flush()
        return data


_MAKERS = {"gzip": lambda: _Zlib(False), "x-gzip": lambda: _Zlib(False),
           "deflate": lambda: _Zlib(True)}
if _brotli is not None:
    _MAKERS["br"] = _Brotli
if _zstd is not None:
    _MAKERS["zstd"] = _Zstd


def decoder_for(content_encoding):
    """The decoder for a Content-Encoding value, or None when the body is
    left as it is (identity, or a coding this install cannot undo)."""
    codings = [c.strip().lower() for c in content_encoding.split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if not codings or any(c not in _MAKERS for c in codings):
        return None
    ds = [_MAKERS[c]() for c in reversed(codings)]
    return ds[0] if len(ds) == 1 else _Chain(ds)


# ---------------------------------------------------------------------------
# Response

_get_ident = _thread.get_ident


def _wrong_thread():
    return Error("wrong_thread", "this response's body is still on its "
                 "connection, which belongs to the OS thread that sent the "
                 "request (socket2 sockets are driven by their own thread's "
                 "hub): read it in that thread, or with stream=False there")


_UNREAD = object()


class Response:
    """One HTTP response.

    ``status`` (int), ``reason`` (str), ``http_version`` (``'HTTP/1.1'``),
    ``headers`` (:class:`Headers`), ``url`` (the URL that answered, after
    redirects), ``history`` (the redirect responses that led here, oldest
    first), ``method``.  The body: :meth:`read` (or ``content``),
    :meth:`json`, ``text``, :meth:`iter_bytes` (for ``stream=True``).
    :meth:`close` (or leaving a ``with`` block) gives the connection back:
    to the pool if the body was read to its end, else it closes it.
    A body still on its connection (``stream=True``) is read in the OS
    thread that sent the request: elsewhere ``read()``/``iter_bytes()``
    raise ``socket2.Error('wrong_thread')`` (``close()`` works anywhere).
    """
    __slots__ = ("status", "reason", "http_version", "headers", "url",
                 "history", "method", "_body", "_reader", "_decoder",
                 "_release", "_deadline", "_streamed", "_owner")

    def __init__(self, head, url, method, reader=None, release=None,
                 deadline=None, decoder=None):
        self.status = head.status
        self.reason = head.reason.decode("latin-1")
        self.http_version = "HTTP/1.1" if head.version == 11 else "HTTP/1.0"
        self.headers = Headers(head.headers)
        self.url = url
        self.method = method
        self.history = []
        self._reader = reader       # None: no body, or read already
        self._decoder = decoder
        self._release = release
        self._deadline = deadline
        self._body = _UNREAD if reader is not None else b""
        self._streamed = False
        # The OS thread whose hub drives the connection (see _check_thread)
        self._owner = _get_ident() if reader is not None else None

    # -- the body ------------------------------------------------------

    def read(self):
        """The whole body (decoded from chunked and, with the client's
        ``decompress``, from gzip/deflate/br/zstd), read once and kept.
        Raises :class:`ProtocolError` for a truncated or malformed body,
        ``socket2.TimeoutError`` past the request's timeout, and
        ``ValueError`` if :meth:`iter_bytes` already consumed it."""
        body = self._body
        if body is not _UNREAD:
            return body
        if self._streamed:
            raise ValueError("the body was already consumed by "
                             "iter_bytes(); read() has nothing to give")
        if self._reader is None:
            raise Error("closed", "the response was closed before its "
                        "body was read")
        if self._owner != _get_ident():
            raise _wrong_thread()
        try:
            data = self._reader.read_all(self._deadline)
            d = self._decoder
            if d is not None:
                data = d.decompress(data) + d.flush()
        except BaseException:
            self._abort()
            raise
        self._body = data
        self._finish()
        return data

    content = property(read, doc="The body, as :meth:`read` returns it.")

    @property
    def text(self):
        """The body decoded as text: the charset of Content-Type, else
        UTF-8 (undecodable bytes replaced)."""
        charset = "utf-8"
        ctype = self.headers.get("content-type", "")
        for part in ctype.split(";")[1:]:
            k, _, v = part.strip().partition("=")
            if k.strip().lower() == "charset" and v.strip():
                charset = v.strip().strip('"')
        try:
            return self.read().decode(charset, "replace")
        except LookupError:
            return self.read().decode("utf-8", "replace")

    def json(self, **kwargs):
        """The body parsed as JSON (``json.loads(body, **kwargs)``)."""
        return _json.loads(self.read(), **kwargs)

    def iter_bytes(self, size=65536):
        """Yield the body in pieces of at most *size* bytes, each
        received when asked for (a slow consumer slows the download; the
        body is never read ahead).  After a plain ``read()``, yields the
        kept body."""
        if not isinstance(size, int) or size <= 0:
            raise ValueError("size must be a positive int, not %r" % (size,))
        if self._body is not _UNREAD:
            body = self._body
            for i in range(0, len(body), size):
                yield body[i:i + size]
            return
        if self._streamed:
            raise ValueError("the body is already being iterated")
        if self._reader is None:
            raise Error("closed", "the response was closed before its "
                        "body was read")
        if self._owner != _get_ident():
            raise _wrong_thread()
        self._streamed = True
        reader, d = self._reader, self._decoder
        try:
            while True:
                data = reader.read(size, self._deadline)
                if not data:
                    break
                if d is None:
                    yield data
                    continue
                data = d.decompress(data, size)    # pieces stay <= size
                while data:
                    yield data
                    data = d.decompress(b"", size)
            if d is not None:
                tail = d.flush()
                for i in range(0, len(tail), size):
                    yield tail[i:i + size]
        except BaseException:
            self._abort()
            raise
        self._finish()

    def iter_raw(self, size=65536):
        """Like :meth:`iter_bytes`, without undoing the Content-Encoding."""
        self._decoder = None
        return self.iter_bytes(size)

    # -- the connection ------------------------------------------------

    def _finish(self):
        """The body was read to its end: the connection goes back."""
        release, self._release = self._release, None
        self._reader = None
        if release is not None:
            release(True)

    def _abort(self):
        release, self._release = self._release, None
        self._reader = None
        if release is not None:
            release(False)

    def close(self):
        """Release the connection: back to the pool when the body was read
        to its end, else closed (the rest of the body is on the wire).
        Idempotent."""
        if self._release is not None:
            if self._reader is not None and self._reader.done:
                self._finish()
            else:
                self._abort()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if self._release is not None:
            try:
                self._abort()
            except Exception:   # noqa: BLE001 - a finalizer must not raise
                pass

    # -- status ----------------------------------------------------------

    @property
    def ok(self):
        """True for a status below 400."""
        return self.status < 400

    def raise_for_status(self):
        """Raise :class:`HTTPStatusError` for a 4xx or 5xx status; return
        the response otherwise (so calls chain)."""
        if self.status >= 400:
            kind = "client error" if self.status < 500 else "server error"
            raise HTTPStatusError("%d %s (%s) for %s %s" % (
                self.status, self.reason, kind, self.method, self.url), self)
        return self

    def __repr__(self):
        return "<Response [%d %s]>" % (self.status, self.reason)
