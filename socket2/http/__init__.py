"""socket2.http: HTTP/1.1 over socket2 streams.

The WSGI server (SPEC.md, "HTTP"):

- :func:`serve` runs a WSGI application on a listener, each connection in
  its own thread, bounded by :class:`Limits`;
- ``python -m socket2.http MODULE:APP`` serves one from the command line.

The client (SPEC.md, "HTTP", "Client"): :class:`Client`, a pool of
keep-alive connections, and :func:`request`, :func:`get`, ... through a
default one; a :class:`Response` per request; :class:`HTTPStatusError`
from ``raise_for_status()``.

Messages are read through one strict parser:

- :func:`parse_request_head`, :func:`parse_response_head` and
  :class:`HeadParser` parse a whole message head out of a buffer in one
  call into a :class:`RequestHead` / :class:`ResponseHead`, with the body's
  framing already decided (RFC 9112 6 and 7);
- :class:`ChunkedDecoder` decodes a chunked body as it arrives;
- :class:`ProtocolError` (a :class:`socket2.Error`, ``err ==
  'protocol'``) is raised for anything malformed or ambiguous, with the
  ``status`` a server answers (400, 414, 431, 501, 505) and the
  :class:`Reason`.

The parser is C (socket2/ffi/http_parser.c, built with cffi) with a pure
Python twin that gives the same answers; ``SOCKET2_PURE_PYTHON=1`` selects
the twin, ``socket2.http._parser.COMPILED`` says which one runs.
"""
from ._heads import (BODY_CHUNKED, BODY_CLOSE, BODY_LENGTH, BODY_NONE,
                     RequestHead, ResponseHead)
from ._parser import (ChunkedDecoder, HeadParser, parse_request_head,
                      parse_response_head)
from .client import (Client, RedirectError, delete, get, head, options,
                     patch, post, put, request)
from .errors import ProtocolError, Reason
from .limits import Limits
from .response import DecodingError, Headers, HTTPStatusError, Response
from .server import serve

__all__ = ["serve", "Limits", "Client", "Response", "Headers",
           "HTTPStatusError", "RedirectError", "DecodingError", "request", "get", "head",
           "post", "put", "patch", "delete", "options",
           "parse_request_head", "parse_response_head", "HeadParser",
           "ChunkedDecoder", "RequestHead", "ResponseHead", "ProtocolError",
           "Reason", "BODY_NONE", "BODY_LENGTH", "BODY_CHUNKED",
           "BODY_CLOSE"]

