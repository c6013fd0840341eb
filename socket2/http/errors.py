"""The errors of socket2.http, and the one table that maps each of the
parser's reason codes to the status a server answers and to its message.

The compiled parser (socket2/ffi/http_parser.c) and its Python twin
(``_parser_py``) return the same codes; both raise through
:func:`protocol_error`, so a reason has exactly one status and one
message wherever it is detected.
"""
from enum import IntEnum

from ..errors import Error

__all__ = ["ProtocolError", "Reason"]


class Reason(IntEnum):
    """Why a message was refused: the parser's error codes (the C's
    ``S2H_E_*``, the same numbers)."""
    METHOD = 1
    REQUEST_LINE = 2
    TARGET = 3
    TARGET_FORM = 4
    VERSION = 5
    VERSION_UNSUPPORTED = 6
    LINE_ENDING = 7
    REQUEST_LINE_TOO_LONG = 8
    STATUS_LINE = 9
    STATUS_CODE = 10
    STATUS_LINE_TOO_LONG = 11
    FIELD_NAME = 12
    SPACE_IN_NAME = 13
    NO_COLON = 14
    OBS_FOLD = 15
    FIELD_VALUE = 16
    HEADERS_TOO_LARGE = 17
    TOO_MANY_HEADERS = 18
    NO_HOST = 19
    DUPLICATE_HOST = 20
    HOST = 21
    CONTENT_LENGTH = 22
    CONTENT_LENGTH_CONFLICT = 23
    CONTENT_LENGTH_OVERFLOW = 24
    CL_AND_TE = 25
    TRANSFER_ENCODING = 26
    CHUNKED_NOT_LAST = 27
    CHUNKED_TWICE = 28
    UNKNOWN_CODING = 29
    TE_HTTP10 = 30
    CONNECTION = 31
    CHUNK_SIZE = 32
    CHUNK_SIZE_OVERFLOW = 33
    CHUNK_EXT = 34
    CHUNK_LINE_TOO_LONG = 35
    CHUNK_DATA_CRLF = 36
    TRAILERS_TOO_LARGE = 37
    TOO_MANY_TRAILERS = 38


R = Reason
# reason -> (status a server answers, what was wrong)
TABLE = {
    R.METHOD: (400, "the method is not a token followed by one space"),
    R.REQUEST_LINE: (400, "malformed request line (method, target and "
                          "version must be separated by single spaces)"),
    R.TARGET: (400, "invalid byte in the request-target (control, "
                    "non-ASCII, or a '#' fragment)"),
    R.TARGET_FORM: (400, "the request-target's form does not fit the "
                         "method ('*' is for OPTIONS, host:port for "
                         "CONNECT, otherwise /path or scheme:...)"),
    R.VERSION: (400, "malformed HTTP version (must be HTTP/d.d, "
                     "uppercase, then CRLF)"),
    R.VERSION_UNSUPPORTED: (505, "HTTP version not supported (only 1.0 "
                                 "and 1.1)"),
    R.LINE_ENDING: (400, "bare CR or LF: lines must end with CRLF"),
    R.REQUEST_LINE_TOO_LONG: (414, "request line too long"),
    R.STATUS_LINE: (400, "malformed status line"),
    R.STATUS_CODE: (400, "invalid status code (three digits, 100-599)"),
    R.STATUS_LINE_TOO_LONG: (400, "status line too long"),
    R.FIELD_NAME: (400, "invalid header name (empty or not a token)"),
    R.SPACE_IN_NAME: (400, "whitespace in a header name or before its "
                           "colon"),
    R.NO_COLON: (400, "header line without a colon"),
    R.OBS_FOLD: (400, "header line starting with whitespace (obsolete "
                      "line folding)"),
    R.FIELD_VALUE: (400, "control character in a header value"),
    R.HEADERS_TOO_LARGE: (431, "header section too large"),
    R.TOO_MANY_HEADERS: (431, "too many header fields"),
    R.NO_HOST: (400, "HTTP/1.1 request without a Host header"),
    R.DUPLICATE_HOST: (400, "more than one Host header"),
    R.HOST: (400, "invalid Host header (not host[:port])"),
    R.CONTENT_LENGTH: (400, "Content-Length is not a plain decimal number "
                            "(digits only: no sign, no leading zero, no "
                            "empty element)"),
    R.CONTENT_LENGTH_CONFLICT: (400, "several different Content-Length "
                                     "values"),
    R.CONTENT_LENGTH_OVERFLOW: (400, "Content-Length too large"),
    R.CL_AND_TE: (400, "both Content-Length and Transfer-Encoding"),
    R.TRANSFER_ENCODING: (400, "malformed Transfer-Encoding (an empty "
                               "element, a bad token or parameter, or "
                               "parameters on chunked)"),
    R.CHUNKED_NOT_LAST: (400, "chunked is not the last transfer coding"),
    R.CHUNKED_TWICE: (400, "chunked applied more than once"),
    R.UNKNOWN_CODING: (501, "unsupported transfer coding (only chunked "
                            "is implemented)"),
    R.TE_HTTP10: (400, "Transfer-Encoding in an HTTP/1.0 message"),
    R.CONNECTION: (400, "malformed Connection header (not a list of "
                        "tokens)"),
    R.CHUNK_SIZE: (400, "chunk size is not hexadecimal digits"),
    R.CHUNK_SIZE_OVERFLOW: (400, "chunk size too large"),
    R.CHUNK_EXT: (400, "malformed chunk extension"),
    R.CHUNK_LINE_TOO_LONG: (400, "chunk-size line too long"),
    R.CHUNK_DATA_CRLF: (400, "chunk data not followed by CRLF"),
    R.TRAILERS_TOO_LARGE: (431, "trailer section too large"),
    R.TOO_MANY_TRAILERS: (431, "too many trailer fields"),
}
del R


class ProtocolError(Error):
    """A message that breaks HTTP/1.1's rules, or that could be read in
    two ways (``err == 'protocol'``).

    ``status`` is the status a server answers it with (400, 414, 431,
    501, 505); ``reason`` the :class:`Reason` (``None`` for errors found
    outside the parser); ``offset`` the offset in the parsed buffer of the
    byte that decided it, when known.
    """

    def __init__(self, message="protocol error", status=400, reason=None,
                 offset=None):
        super().__init__("protocol", message)
        self.status = status
        self.reason = reason
        self.offset = offset

    def __reduce__(self):
        return (type(self), (str(self), self.status, self.reason,
                             self.offset))


def protocol_error(code, offset):
    """The :class:`ProtocolError` for the parser's error *code* found at
    byte *offset*."""
    reason = Reason(code)
    status, message = TABLE[reason]
    return ProtocolError("%s (at byte %d)" % (message, offset), status,
                         reason, offset)
