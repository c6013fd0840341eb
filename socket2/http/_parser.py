"""The HTTP/1.1 parser: compiled C or its Python twin, chosen here once.

- ``SOCKET2_PURE_PYTHON=1`` (read at import) selects the Python twin
  (``_parser_py``), as it does for the hot path (socket2/_hotpath.py);
- without it the C parser (``socket2._http_ffi``, built by
  socket2/ffi/build_http.py, wrapped by ``_parser_c``) is used when it was
  built (every install builds it).

``COMPILED`` says which one this process runs.  Both give the same heads,
the same errors and the same error offsets (tests/test_http_parser.py).

What is chosen: :class:`HeadParser` (one per connection: it owns the
arrays the C writes into) and :class:`ChunkedDecoder`.  The functions
:func:`parse_request_head` and :func:`parse_response_head` use a parser
per OS thread for the default limits.
"""
import os
from _thread import _local

from . import _parser_py

__all__ = ["COMPILED", "HeadParser", "ChunkedDecoder", "parse_request_head",
           "parse_response_head"]

HeadParser = _parser_py.HeadParser
ChunkedDecoder = _parser_py.ChunkedDecoder
COMPILED = False

if os.environ.get("SOCKET2_PURE_PYTHON", "").strip() in ("", "0"):
    try:
        from . import _parser_c
    except ImportError:      # a source tree whose extension is not built
        _parser_c = None
    if _parser_c is not None:
        HeadParser = _parser_c.HeadParser            # noqa: F811
        ChunkedDecoder = _parser_c.ChunkedDecoder    # noqa: F811
        COMPILED = True

_DEFAULTS = (8190, 32768, 100)
_threads = _local()


def _parser(limits):
    if limits == _DEFAULTS:
        try:
            return _threads.parser
        except AttributeError:
            _threads.parser = HeadParser(*limits)
            return _threads.parser
    return HeadParser(*limits)


def parse_request_head(buf, start=0, *, max_line=8190,
                       max_header_bytes=32768, max_headers=100):
    """Parse the request head at ``buf[start:]``: a :class:`RequestHead`,
    or None while it is incomplete; raises :class:`ProtocolError` (with
    the ``status`` to answer) as soon as the bytes show it is invalid.
    A server should keep a :class:`HeadParser` per connection instead."""
    return _parser((max_line, max_header_bytes, max_headers)).request(
        buf, start)


def parse_response_head(buf, start=0, method=b"GET", *, max_line=8190,
                        max_header_bytes=32768, max_headers=100):
    """Parse the response head at ``buf[start:]``, the answer to a request
    with *method*: a :class:`ResponseHead`, or None while incomplete;
    raises :class:`ProtocolError`."""
    return _parser((max_line, max_header_bytes, max_headers)).response(
        buf, start, method)
