"""What the parser returns: a request head or a response head, validated
once (both parser twins build these same classes), and the names of the
body framings.

Strings are ``bytes`` as they came on the wire, except header names,
which are lowercased (field names are case-insensitive: RFC 9110 5.1).
"""

__all__ = ["RequestHead", "ResponseHead", "BODY_NONE", "BODY_LENGTH",
           "BODY_CHUNKED", "BODY_CLOSE"]

# How the body is framed (RFC 9112 6.3), decided once by the parser.
BODY_NONE = "none"        # no body
BODY_LENGTH = "length"    # content_length bytes
BODY_CHUNKED = "chunked"  # chunked coding: read it with ChunkedDecoder
BODY_CLOSE = "close"      # a response read until the connection closes
BODIES = (BODY_NONE, BODY_LENGTH, BODY_CHUNKED, BODY_CLOSE)  # by C code


class _Head:
    __slots__ = ()

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n)
                   for n in self.__slots__)

    __hash__ = None

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__, ", ".join(
            "%s=%r" % (n, getattr(self, n)) for n in self.__slots__))


class RequestHead(_Head):
    """A request's head.

    ``method``, ``target`` (bytes); ``version`` (10 or 11); ``headers``, a
    list of ``(name, value)`` bytes pairs in arrival order, names
    lowercased, values without surrounding whitespace; ``body`` (one of
    ``BODY_NONE``, ``BODY_LENGTH``, ``BODY_CHUNKED``); ``content_length``
    (int, or None unless ``body == BODY_LENGTH``); ``keep_alive`` (the
    connection may carry another request after this one);
    ``expect_continue`` (HTTP/1.1 ``Expect: 100-continue``);
    ``expect_unknown`` (an Expect the server cannot meet: answer 417);
    ``upgrade`` (``Connection: upgrade`` with an ``Upgrade`` header);
    ``end``: the offset in the parsed buffer just past the head, where the
    body (or the next request) starts.
    """
    __slots__ = ("method", "target", "version", "headers", "body",
                 "content_length", "keep_alive", "expect_continue",
                 "expect_unknown", "upgrade", "end")

    # The WSGI server's compiled reader returns heads whose environ is
    # already built (socket2/ffi/http_speedups.c); a parsed head has none.
    environ = None

    def __init__(self, method, target, version, headers, body,
                 content_length, keep_alive, expect_continue,
                 expect_unknown, upgrade, end):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.body = body
        self.content_length = content_length
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.expect_unknown = expect_unknown
        self.upgrade = upgrade
        self.end = end


class ResponseHead(_Head):
    """A response's head.

    ``version`` (10 or 11), ``status`` (int), ``reason`` (bytes),
    ``headers`` as in :class:`RequestHead`; ``body``: ``BODY_NONE`` (1xx,
    204, 304, an answer to HEAD, a 2xx to CONNECT), ``BODY_LENGTH``,
    ``BODY_CHUNKED`` or ``BODY_CLOSE`` (read until the server closes);
    ``content_length``; ``keep_alive``; ``upgrade``; ``end``.
    """
    __slots__ = ("version", "status", "reason", "headers", "body",
                 "content_length", "keep_alive", "upgrade", "end")

    def __init__(self, version, status, reason, headers, body,
                 content_length, keep_alive, upgrade, end):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.content_length = content_length
        self.keep_alive = keep_alive
        self.upgrade = upgrade
        self.end = end
