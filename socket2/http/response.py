"""What the client hands back: :class:`Response`, its :class:`Headers`,
:class:`HTTPStatusError`, and the content decoders (gzip/deflate with
zlib; br and zstd when their optional modules are installed).

A response owns its connection until its body has been read to the end
(then the connection goes back to the pool) or it is closed (then the
connection is closed with it, since the rest of an unread body is still
on the wire).  Nothing is read ahead of the caller: ``read()`` reads the
body, ``iter_bytes()`` receives one piece per step.
"""
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

__all__ = ["Response", "Headers", "HTTPStatusError", "ACCEPT_ENCODING"]

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


class _Zlib:
    __slots__ = ("d", "deflate", "first")

    def __init__(self, deflate):
        # gzip: the gzip wrapper only; deflate: zlib's wrapper, or the raw
        # deflate stream some servers send instead (decided on first data).
        self.d = zlib.decompressobj(zlib.MAX_WBITS | (0 if deflate else 16))
        self.deflate = deflate
        self.first = True

    def decompress(self, data):
        try:
            if self.first and self.deflate and data:
                self.first = False
                try:
                    return self.d.decompress(data)
                except zlib.error:
                    self.d = zlib.decompressobj(-zlib.MAX_WBITS)
            return self.d.decompress(data)
        except zlib.error as e:
            raise ProtocolError("the body is not valid %s data: %s" % (
                "deflate" if self.deflate else "gzip", e)) from None

    def flush(self):
        if not self.d.eof and not self.first:
            raise ProtocolError("the %s body is truncated" % (
                "deflate" if self.deflate else "gzip"))
        return self.d.flush()


class _Brotli:
    __slots__ = ("d",)

    def __init__(self):
        self.d = _brotli.Decompressor()

    def decompress(self, data):
        try:
            return self.d.process(data) if hasattr(self.d, "process") \
                else self.d.decompress(data)
        except Exception as e:   # brotli.error has no common base
            raise ProtocolError("the body is not valid br data: %s"
                                % e) from None

    def flush(self):
        return b""


class _Zstd:
    __slots__ = ("d",)

    def __init__(self):
        self.d = _zstd.ZstdDecompressor().decompressobj()

    def decompress(self, data):
        try:
            return self.d.decompress(data)
        except _zstd.ZstdError as e:
            raise ProtocolError("the body is not valid zstd data: %s"
                                % e) from None

    def flush(self):
        return b""


class _Chain:
    """Several codings, applied in the order they were listed: undone in
    reverse."""
    __slots__ = ("ds",)

    def __init__(self, ds):
        self.ds = ds

    def decompress(self, data):
        for d in self.ds:
            data = d.decompress(data)
        return data

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
    """
    __slots__ = ("status", "reason", "http_version", "headers", "url",
                 "history", "method", "_body", "_reader", "_decoder",
                 "_release", "_deadline", "_streamed")

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
        """Yield the body in pieces of at most about *size* bytes, each
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
        self._streamed = True
        reader, d = self._reader, self._decoder
        try:
            while True:
                data = reader.read(size, self._deadline)
                if not data:
                    break
                if d is not None:
                    data = d.decompress(data)
                    if not data:
                        continue
                yield data
            if d is not None:
                tail = d.flush()
                if tail:
                    yield tail
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
