"""socket2.http's HTTP/1.1 parser: the compiled C and its Python twin
against a corpus of valid and invalid heads and chunked bodies, fed whole
and in pieces, with h11 as an oracle, and a short seeded fuzz
(tests/http_fuzz.py; tools/fuzz_http.py runs it for longer).

The invalid inputs are those that request-smuggling research found other
servers reading two ways: each names its source --
Http11Probe (MDA2AV/Http11Probe, its test ids), HTTP Garden
(narfindustries/http-garden TROPHIES.md, "Garden n" for server bug n,
"transducer n" for proxy bug n), and the advisories of gevent's pywsgi
(CVE-2023-41419: trailers), h11 (CVE-2025-43859: chunk CRLF), waitress
(CVE-2019-16785 bare LF, CVE-2019-16786 Transfer-Encoding, CVE-2019-16789
whitespace in values, CVE-2022-24761 int() parsing of sizes and lengths)
and cheroot (issues 275: double Content-Length and CL+TE, 714: space
before the colon).
"""
import os
import random
import tracemalloc

import pytest

import http_fuzz
import socket2
from http_fuzz import PY, C, h11, outcome, parsers, decoders, h11_request
from socket2.http import ProtocolError, Reason as R
from socket2.http import _parser
from socket2.http.errors import TABLE

pytestmark = pytest.mark.one_poller

H = b"Host: a\r\n"


def req(head, body=b""):
    return head + body


# ------------------------------------------------------------ the corpus
# (id, raw request, expected): expected is a dict of RequestHead attributes
# for a valid head, or the Reason it is refused with.

VALID = [
    ("basic", b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
     dict(method=b"GET", target=b"/", version=11, headers=[(b"host", b"a")],
          body="none", content_length=None, keep_alive=True, end=27)),
    ("post-length", b"POST /f HTTP/1.1\r\n" + H +
     b"Content-Length: 5\r\n\r\nhello",
     dict(body="length", content_length=5, end=48)),
    ("post-chunked", b"POST / HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
     dict(body="chunked", content_length=None)),
    # Http11Probe SMUG-TE-CASE-MISMATCH, SMUG-TE-TAB-BEFORE-VALUE,
    # SMUG-TE-TRAILING-SPACE (without CL): coding names are
    # case-insensitive and OWS around a field value is not part of it.
    ("te-case", b"POST / HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: Chunked\r\n\r\n", dict(body="chunked")),
    ("te-tab", b"POST / HTTP/1.1\r\n" + H +
     b"Transfer-Encoding:\tchunked\r\n\r\n", dict(body="chunked")),
    ("te-trailing-space", b"POST / HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked \r\n\r\n", dict(body="chunked")),
    ("http10", b"GET / HTTP/1.0\r\n\r\n",
     dict(version=10, keep_alive=False, headers=[])),
    ("http10-keep-alive", b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
     dict(version=10, keep_alive=True)),
    ("close", b"GET / HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n",
     dict(keep_alive=False)),
    ("close-and-keep-alive", b"GET / HTTP/1.1\r\n" + H +
     b"Connection: keep-alive, close\r\n\r\n", dict(keep_alive=False)),
    ("connection-empty-elements", b"GET / HTTP/1.1\r\n" + H +
     b"Connection: , ,close\r\n\r\n", dict(keep_alive=False)),
    ("upgrade", b"GET /ws HTTP/1.1\r\n" + H +
     b"Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n",
     dict(upgrade=True)),
    ("upgrade-without-connection", b"GET /ws HTTP/1.1\r\n" + H +
     b"Upgrade: websocket\r\n\r\n", dict(upgrade=False)),
    ("expect-continue", b"PUT / HTTP/1.1\r\n" + H +
     b"Expect: 100-Continue\r\nContent-Length: 3\r\n\r\n",
     dict(expect_continue=True, expect_unknown=False)),
    # RFC 9110 10.1.1: an HTTP/1.0 server ignores 100-continue.
    ("expect-continue-http10", b"PUT / HTTP/1.0\r\n"
     b"Expect: 100-continue\r\nContent-Length: 3\r\n\r\n",
     dict(expect_continue=False)),
    ("expect-unknown", b"GET / HTTP/1.1\r\n" + H + b"Expect: 200-ok\r\n\r\n",
     dict(expect_continue=False, expect_unknown=True)),
    # Http11Probe COMP-LEADING-CRLF: RFC 9112 2.2 (h11 refuses it).
    ("leading-crlf", b"\r\n\r\nGET / HTTP/1.1\r\n" + H + b"\r\n",
     dict(method=b"GET", end=31)),
    ("options-star", b"OPTIONS * HTTP/1.1\r\n" + H + b"\r\n",
     dict(target=b"*")),
    ("connect", b"CONNECT example.com:443 HTTP/1.1\r\n"
     b"Host: example.com:443\r\n\r\n", dict(target=b"example.com:443")),
    ("absolute-form", b"GET http://a/x?y HTTP/1.1\r\n" + H + b"\r\n",
     dict(target=b"http://a/x?y")),
    # RFC 9110 8.6: identical values are one value (h11 agrees).
    ("cl-list-identical", b"POST / HTTP/1.1\r\n" + H +
     b"Content-Length: 5, 5\r\n\r\n", dict(content_length=5)),
    ("cl-duplicate-identical", b"POST / HTTP/1.1\r\n" + H +
     b"Content-Length: 5\r\nContent-Length: 5\r\n\r\n",
     dict(content_length=5)),
    ("cl-zero", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 0\r\n\r\n",
     dict(body="length", content_length=0)),
    # Http11Probe MAL-CL-TAB-BEFORE-VALUE, SMUG-CL-TRAILING-SPACE,
    # SMUG-CL-EXTRA-LEADING-SP: OWS is not part of the value.
    ("cl-ows", b"POST / HTTP/1.1\r\n" + H +
     b"Content-Length:\t 5 \t\r\n\r\n", dict(content_length=5)),
    ("cl-max", b"POST / HTTP/1.1\r\n" + H +
     b"Content-Length: 9223372036854775807\r\n\r\n",
     dict(content_length=2 ** 63 - 1)),
    ("values", b"GET / HTTP/1.1\r\n" + H +
     b"X-Empty:\r\nX-Ws: \t \r\nX-In:  a \t b  \r\nX-Obs: caf\xc3\xa9\r\n\r\n",
     dict(headers=[(b"host", b"a"), (b"x-empty", b""), (b"x-ws", b""),
                   (b"x-in", b"a \t b"), (b"x-obs", b"caf\xc3\xa9")])),
    ("names-lowercased", b"GET / HTTP/1.1\r\nHOST: a\r\nX-Mixed_Case: 1\r\n\r\n",
     dict(headers=[(b"host", b"a"), (b"x-mixed_case", b"1")])),
    # Http11Probe SMUG-TRANSFER_ENCODING: not the same field name.
    ("transfer_encoding-underscore", b"POST / HTTP/1.1\r\n" + H +
     b"Transfer_Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello",
     dict(body="length", content_length=5)),
    # RFC 9110 7.2: an empty Host is what a client sends without one.
    ("host-empty", b"GET / HTTP/1.1\r\nHost:\r\n\r\n", dict()),
    ("host-ipv6", b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", dict()),
    # Methods are case-sensitive tokens: "get" is an unknown method for
    # the server to refuse, not a malformed request (Http11Probe
    # COMP-METHOD-CASE).
    ("method-lowercase", b"get / HTTP/1.1\r\n" + H + b"\r\n",
     dict(method=b"get")),
]

INVALID = [
    # --- request line
    ("multi-space", b"GET  / HTTP/1.1\r\n" + H + b"\r\n", R.REQUEST_LINE),
    ("tab-separator", b"GET\t/ HTTP/1.1\r\n" + H + b"\r\n", R.METHOD),
    ("missing-target", b"GET HTTP/1.1\r\n" + H + b"\r\n", R.REQUEST_LINE),
    ("http09", b"GET /\r\n\r\n", R.REQUEST_LINE),
    ("version-lowercase", b"GET / http/1.1\r\n" + H + b"\r\n", R.VERSION),
    ("version-no-minor", b"GET / HTTP/1\r\n" + H + b"\r\n", R.VERSION),
    ("version-leading-zeros", b"GET / HTTP/01.01\r\n" + H + b"\r\n",
     R.VERSION),
    ("version-space", b"GET / HTTP/ 1.1\r\n" + H + b"\r\n", R.VERSION),
    ("version-trailing-space", b"GET / HTTP/1.1 \r\n" + H + b"\r\n",
     R.VERSION),
    ("garden-5-version-prefix", b"GET /test HTTP/1.32\r\n\r\n", R.VERSION),
    ("garden-15-version-cr", b"GET / HTTP/\r\r1.1\r\n\r\n", R.VERSION),
    ("garden-24-version-overflow", b"GET / HTTP/4294967295.255\r\n\r\n",
     R.VERSION),
    ("version-9.9", b"GET / HTTP/9.9\r\n" + H + b"\r\n",
     R.VERSION_UNSUPPORTED),
    ("version-1.2", b"GET / HTTP/1.2\r\n" + H + b"\r\n",
     R.VERSION_UNSUPPORTED),
    ("h2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", R.VERSION_UNSUPPORTED),
    ("garden-6-method", b'G=":<>(e),[T];?" /get HTTP/1.1\r\n\r\n', R.METHOD),
    ("garden-40-nul-method", b"\x00 / HTTP/............0596.7407.\r\n\r\n",
     R.METHOD),
    ("whitespace-only-line", b"   \r\n\r\n", R.METHOD),
    ("tls-client-hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
     R.METHOD),
    ("nul-in-target", b"GET /\x00test HTTP/1.1\r\n" + H + b"\r\n", R.TARGET),
    ("non-ascii-target", b"GET /caf\xc3\xa9 HTTP/1.1\r\n" + H + b"\r\n",
     R.TARGET),
    ("overlong-utf8-target", b"GET /\xc0\xaf HTTP/1.1\r\n" + H + b"\r\n",
     R.TARGET),
    ("fragment", b"GET /path#frag HTTP/1.1\r\n" + H + b"\r\n", R.TARGET),
    ("space-in-target", b"GET /pa th HTTP/1.1\r\n" + H + b"\r\n", R.VERSION),
    ("garden-9-lf-separator", b"GET /\nHTTP/1.1\r\n\r\n", R.REQUEST_LINE),
    ("asterisk-with-get", b"GET * HTTP/1.1\r\n" + H + b"\r\n",
     R.TARGET_FORM),
    ("connect-origin-form", b"CONNECT / HTTP/1.1\r\n" + H + b"\r\n",
     R.TARGET_FORM),
    ("garden-7-target", b"GET ! HTTP/1.1\r\n" + H + b"\r\n", R.TARGET_FORM),
    # --- line endings (waitress CVE-2019-16785; Http11Probe
    # RFC9112-2.2-BARE-LF-*, RFC9112-3-CR-ONLY-LINE-ENDING; Garden 13, 19,
    # 30, 34)
    ("bare-lf-request-line", b"GET / HTTP/1.1\nHost: a\r\n\r\n",
     R.LINE_ENDING),
    ("bare-lf-header", b"GET / HTTP/1.1\r\nHost: a\nX-Test: value\r\n\r\n",
     R.LINE_ENDING),
    ("bare-lf-everywhere", b"GET / HTTP/1.1\nHost: a\n\n", R.LINE_ENDING),
    ("cr-only", b"GET / HTTP/1.1\rHost: a\r\n\r\n", R.LINE_ENDING),
    ("bare-cr-in-value", b"POST / HTTP/1.1\r\n" + H +
     b"Content-Length: 5\r\nX-Test: val\rue\r\n\r\nhello", R.LINE_ENDING),
    ("garden-13-cr-terminator", b"GET / HTTP/1.1\r\nVisible: :/\r"
     b"Smuggled: :)\r\n\r\n", R.LINE_ENDING),
    ("garden-19-lf-after-colon", b"GET / HTTP/1.1\r\n" + H +
     b"Useless:\n\nGET / HTTP/1.1\r\n\r\n", R.LINE_ENDING),
    ("garden-30-cr-x", b"GET / HTTP/1.1\r\n" + H +
     b"\rZGET /evil: HTTP/1.1\r\nHost: a\r\n\r\n", R.LINE_ENDING),
    # --- field lines (Http11Probe RFC9110-5.6.2-SP-BEFORE-COLON,
    # SMUG-TE-SP-BEFORE-COLON, RFC9112-5.1-OBS-FOLD, SMUG-TE-OBS-FOLD,
    # RFC9112-5-*; cheroot 714; Garden 3, 4, 8, 14, 18, 20, 27, 28, 37)
    ("space-before-colon", b"GET / HTTP/1.1\r\n" + H +
     b"X-Test : value\r\n\r\n", R.SPACE_IN_NAME),
    ("te-space-before-colon", b"POST / HTTP/1.1\r\n" + H +
     b"Transfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\nhello",
     R.SPACE_IN_NAME),
    ("garden-3-cl-space-before-colon", b"GET / HTTP/1.1\r\nHost: whatever"
     b"\r\nContent-Length : 34\r\n\r\nGET / HTTP/1.1\r\n\r\n",
     R.SPACE_IN_NAME),
    ("tab-before-colon", b"GET / HTTP/1.1\r\n" + H +
     b"Transfer-Encoding\t: chunked\r\n\r\n", R.SPACE_IN_NAME),
    ("garden-28-no-colon", b"GET / HTTP/1.1\r\nContent-Length 10\r\n\r\n"
     b"0123456789", R.SPACE_IN_NAME),
    ("no-colon", b"GET / HTTP/1.1\r\n" + H + b"NoColonHere\r\n\r\n",
     R.NO_COLON),
    ("garden-37-name-continued", b"POST / HTTP/1.1\r\n" + H +
     b"Transfer-\r\nEncoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
     R.NO_COLON),
    ("obs-fold", b"GET / HTTP/1.1\r\n" + H +
     b"X-Test: value\r\n continued\r\n\r\n", R.OBS_FOLD),
    ("te-obs-fold", b"POST / HTTP/1.1\r\n" + H +
     b"Transfer-Encoding:\r\n chunked\r\nContent-Length: 5\r\n\r\nhello",
     R.OBS_FOLD),
    ("garden-4-leading-tab", b"GET / HTTP/1.1\r\n\tContent-Length: 1\r\n"
     b"\r\nX", R.OBS_FOLD),
    ("whitespace-before-headers", b"GET / HTTP/1.1\r\n \r\n" + H + b"\r\n",
     R.OBS_FOLD),
    ("garden-18-empty-name", b"GET / HTTP/1.1\r\n: ignored\r\n" + H +
     b"\r\n", R.FIELD_NAME),
    ("garden-27-empty-line-colon", b"GET / HTTP/1.1\r\n:\r\n"
     b"I: am chopped off\r\n\r\n", R.FIELD_NAME),
    ("invalid-name", b"GET / HTTP/1.1\r\n" + H + b"Bad[Name: value\r\n\r\n",
     R.FIELD_NAME),
    ("garden-20-0x85-name", b"GET / HTTP/1.1\r\n" + H +
     b"Content-Length\x85: 10\r\n\r\n0123456789", R.FIELD_NAME),
    ("garden-8-non-ascii-name", b"GET / HTTP/1.1\r\n\xefoo: bar\r\n\r\n",
     R.FIELD_NAME),
    ("non-ascii-name", b"GET / HTTP/1.1\r\n" + H + b"X-T\xc3\xabst: v\r\n\r\n",
     R.FIELD_NAME),
    ("garden-14-ctl-name", b"GET / HTTP/1.1\r\n\x00\x01\x02: whatever\r\n"
     b"\r\n", R.FIELD_NAME),
    # --- field values (Http11Probe MAL-NUL-IN-HEADER-VALUE,
    # MAL-CONTROL-CHARS-HEADER, SMUG-TE-VTAB, SMUG-TE-FORMFEED,
    # SMUG-TE-NULL; waitress CVE-2019-16789; Garden 2, 35, 43;
    # transducer 12)
    ("nul-in-value", b"GET / HTTP/1.1\r\n" + H + b"X-Test: val\x00ue\r\n\r\n",
     R.FIELD_VALUE),
    ("ctl-in-value", b"GET / HTTP/1.1\r\n" + H +
     b"X-Test: abc\x07\x08\x0bdef\r\n\r\n", R.FIELD_VALUE),
    ("del-in-value", b"GET / HTTP/1.1\r\n" + H + b"X-Test: a\x7fb\r\n\r\n",
     R.FIELD_VALUE),
    ("te-vtab", b"POST / HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: \x0bchunked\r\nContent-Length: 5\r\n\r\nhello",
     R.FIELD_VALUE),
    ("te-formfeed", b"POST / HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: \x0cchunked\r\nContent-Length: 5\r\n\r\nhello",
     R.FIELD_VALUE),
    ("te-nul", b"POST / HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked\x00\r\nContent-Length: 5\r\n\r\nhello",
     R.FIELD_VALUE),
    ("garden-35-nul-truncation", b"GET / HTTP/1.1\r\n" + H +
     b"Test: test\x00THESE BYTES GET DROPPED\r\nConnection: close\r\n\r\n",
     R.FIELD_VALUE),
    ("transducer-12-nul-host", b"GET / HTTP/1.1\r\n"
     b"Host: google.com\x00.kallus.org\r\n\r\n", R.FIELD_VALUE),
    # --- Host (Http11Probe RFC9112-7.1-MISSING-HOST,
    # RFC9110-5.4-DUPLICATE-HOST, COMP-DUPLICATE-HOST-SAME,
    # COMP-HOST-WITH-USERINFO, COMP-HOST-WITH-PATH, SMUG-MULTIPLE-HOST-COMMA)
    ("no-host", b"GET / HTTP/1.1\r\n\r\n", R.NO_HOST),
    ("duplicate-host", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
     R.DUPLICATE_HOST),
    ("duplicate-host-same", b"GET / HTTP/1.1\r\n" + H + H + b"\r\n",
     R.DUPLICATE_HOST),
    ("host-userinfo", b"GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", R.HOST),
    ("host-path", b"GET / HTTP/1.1\r\nHost: a/path\r\n\r\n", R.HOST),
    ("host-comma", b"GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", R.HOST),
    ("host-bad-port", b"GET / HTTP/1.1\r\nHost: a:80x\r\n\r\n", R.HOST),
    # --- Content-Length (Http11Probe SMUG-DUPLICATE-CL, SMUG-CL-*,
    # RFC9112-6.1-CL-*, MAL-CL-*; cheroot 275; Garden 10, 16, 23, 29, 32,
    # 33, 42; waitress CVE-2022-24761; hyper GHSA-f3pg-qwvg-p99c)
    ("cl-conflict", b"POST / HTTP/1.1\r\n" + H +
     b"Content-Length: 5\r\nContent-Length: 10\r\n\r\nhelloworld",
     R.CONTENT_LENGTH_CONFLICT),
    ("garden-23-cl-conflict", b"GET / HTTP/1.1\r\n" + H +
     b"Content-Length: 1\r\nContent-Length: 0\r\n\r\nZ",
     R.CONTENT_LENGTH_CONFLICT),
    ("cl-list-different", b"POST / HTTP/1.1\r\n" + H +
     b"Content-Length: 5, 10\r\n\r\nhello", R.CONTENT_LENGTH_CONFLICT),
    ("cl-leading-zeros", b"POST / HTTP/1.1\r\n" + H +
     b"Content-Length: 005\r\n\r\nhello", R.CONTENT_LENGTH),
    ("cl-double-zero", b"POST / HTTP/1.1\r\n" + H +
     b"Content-Length: 00\r\n\r\n", R.CONTENT_LENGTH),
    ("garden-32-cl-octal", b"GET / HTTP/1.1\r\n" + H +
     b"Content-Length: 010\r\n\r\n01234567", R.CONTENT_LENGTH),
    ("cl-negative", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n",
     R.CONTENT_LENGTH),
    ("cl-negative-zero", b"POST / HTTP/1.1\r\n" + H +
     b"Content-Length: -0\r\n\r\n", R.CONTENT_LENGTH),
    ("cl-plus", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +5\r\n\r\nhello",
     R.CONTENT_LENGTH),
    ("garden-10-cl-plus-underscore", b"GET / HTTP/1.1\r\n" + H +
     b"Content-Length: +1_0\r\n\r\n0123456789", R.CONTENT_LENGTH),
    ("cl-hex", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 0x5\r\n\r\nhello",
     R.CONTENT_LENGTH),
    ("cl-octal-prefix", b"POST / HTTP/1.1\r\n" + H +
     b"Content-Length: 0o5\r\n\r\nhello", R.CONTENT_LENGTH),
    ("cl-underscore", b"POST / HTTP/1.1\r\n" + H +
     b"Content-Length: 1_0\r\n\r\nhelloworld", R.CONTENT_LENGTH),
    ("cl-non-numeric", b"POST / HTTP/1.1\r\n" + H +
     b"Content-Length: abc\r\n\r\n", R.CONTENT_LENGTH),
    ("garden-29-cl-suffix", b"GET / HTTP/1.1\r\n" + H +
     b"Content-Length: 1Z\r\n\r\nZ", R.CONTENT_LENGTH),
    ("cl-internal-space", b"POST / HTTP/1.1\r\n" + H +
     b"Content-Length: 1 0\r\n\r\nhello12345", R.CONTENT_LENGTH),
    ("garden-16-cl-empty", b"GET / HTTP/1.1\r\n" + H +
     b"Content-Length: \r\n\r\n", R.CONTENT_LENGTH),
    ("garden-42-cl-empty-first", b"GET / HTTP/1.1\r\n" + H +
     b"Content-Length: \r\nContent-Length: 43\r\n\r\n", R.CONTENT_LENGTH),
    ("cl-list-empty-element", b"POST / HTTP/1.1\r\n" + H +
     b"Content-Length: 5,,5\r\n\r\n", R.CONTENT_LENGTH),
    ("cl-overflow", b"POST / HTTP/1.1\r\n" + H +
     b"Content-Length: 99999999999999999999\r\n\r\n",
     R.CONTENT_LENGTH_OVERFLOW),
    ("cl-overflow-by-one", b"POST / HTTP/1.1\r\n" + H +
     b"Content-Length: 9223372036854775808\r\n\r\n",
     R.CONTENT_LENGTH_OVERFLOW),
    # --- Transfer-Encoding (Http11Probe SMUG-CL-TE-BOTH, SMUG-CLTE-*,
    # SMUG-TECL-*, SMUG-TE-*, COMP-UNKNOWN-TE-501; waitress CVE-2019-16786
    # and issue 464; cheroot 275; gevent pywsgi; Garden 11, 12, 21, 44, 46)
    ("cl-te", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 4\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", R.CL_AND_TE),
    ("te-cl", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n"
     b"Content-Length: 30\r\n\r\n0\r\n\r\nX", R.CL_AND_TE),
    ("te-xchunked-with-cl", b"POST / HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: xchunked\r\nContent-Length: 5\r\n\r\nhello",
     R.CL_AND_TE),
    ("te-xchunked", b"POST / HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: xchunked\r\n\r\n", R.UNKNOWN_CODING),
    ("garden-44-unknown-coding", b"POST / HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: blegh\r\n\r\n1\r\nZ\r\n0\r\n\r\n",
     R.UNKNOWN_CODING),
    ("te-gzip", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\n",
     R.UNKNOWN_CODING),
    ("te-gzip-chunked", b"POST / HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: gzip, chunked\r\n\r\n", R.UNKNOWN_CODING),
    ("te-identity", b"POST / HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: identity\r\n\r\n", R.UNKNOWN_CODING),
    ("te-chunked-not-last", b"POST / HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
     R.CHUNKED_NOT_LAST),
    ("te-chunked-then-identity", b"POST / HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n",
     R.CHUNKED_NOT_LAST),
    ("te-double-chunked", b"POST / HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked, chunked\r\n\r\n", R.CHUNKED_TWICE),
    ("garden-11-two-te-fields", b"POST / HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"1\r\nZ\r\n0\r\n\r\n", R.CHUNKED_TWICE),
    ("garden-21-leading-comma", b"GET / HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: ,chunked\r\n\r\n0\r\n\r\n", R.TRANSFER_ENCODING),
    ("te-leading-comma-space", b"POST / HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: , chunked\r\n\r\n", R.TRANSFER_ENCODING),
    ("te-trailing-comma", b"POST / HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked,\r\n\r\n", R.TRANSFER_ENCODING),
    ("te-empty", b"POST / HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: \r\n\r\n", R.TRANSFER_ENCODING),
    ("te-chunked-params", b"POST / HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked;ext=val\r\n\r\n", R.TRANSFER_ENCODING),
    ("garden-12-nbsp", b"POST / HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: \xa0chunked\xa0\r\n\r\n0\r\n\r\n",
     R.TRANSFER_ENCODING),
    ("garden-46-high-bytes", b"POST / HTTP/1.1\r\nHost: \xffa\xff\r\n"
     b"Transfer-Encoding: \xffchunked\xff\r\n\r\n1\r\nZ\r\n0\r\n\r\n",
     R.HOST),
    ("waitress-kelvin-k", b"POST / HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chun\xe2\x84\xaaed\r\n\r\n", R.TRANSFER_ENCODING),
    ("te-http10", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n"
     b"Content-Length: 5\r\n\r\nhello", R.TE_HTTP10),
    # --- Connection
    ("connection-not-token", b"GET / HTTP/1.1\r\n" + H +
     b"Connection: close;x\r\n\r\n", R.CONNECTION),
    # --- pywsgi CVE-2023-41419: a trailer-looking line as the next request
    ("pywsgi-header-as-request", b"Header: valueGET /path2?a=:123 HTTP/1.1"
     b"\r\nHost: a.com\r\nConnection: close\r\n\r\n", R.METHOD),
]

LIMITS = (64, 128, 4)   # max_line, max_header_bytes, max_headers

LIMITED = [
    # Http11Probe MAL-LONG-URL, MAL-LONG-METHOD, MAL-LONG-HEADER-VALUE,
    # MAL-LONG-HEADER-NAME, MAL-MANY-HEADERS (scaled to LIMITS)
    ("long-url", b"GET /" + b"a" * 100 + b" HTTP/1.1\r\n" + H + b"\r\n",
     R.REQUEST_LINE_TOO_LONG),
    ("long-method", b"G" * 100 + b" / HTTP/1.1\r\n" + H + b"\r\n",
     R.REQUEST_LINE_TOO_LONG),
    ("long-value", b"GET / HTTP/1.1\r\n" + H + b"X-Big: " + b"v" * 200 +
     b"\r\n\r\n", R.HEADERS_TOO_LARGE),
    ("long-name", b"GET / HTTP/1.1\r\n" + H + b"X" * 200 + b": v\r\n\r\n",
     R.HEADERS_TOO_LARGE),
    ("many-headers", b"GET / HTTP/1.1\r\n" + H +
     b"".join(b"X-%d: v\r\n" % i for i in range(5)) + b"\r\n",
     R.TOO_MANY_HEADERS),
    ("line-at-limit", b"GET /" + b"a" * 50 + b" HTTP/1.1\r\n" + H + b"\r\n",
     dict(target=b"/" + b"a" * 50)),
    ("line-over-limit", b"GET /" + b"a" * 51 + b" HTTP/1.1\r\n" + H +
     b"\r\n", R.REQUEST_LINE_TOO_LONG),
    ("section-at-limit", b"GET / HTTP/1.1\r\n" + H + b"X: " + b"v" * 112 +
     b"\r\n\r\n", dict(end=144)),
    ("section-over-limit", b"GET / HTTP/1.1\r\n" + H + b"X: " + b"v" * 113 +
     b"\r\n\r\n", R.HEADERS_TOO_LARGE),
    ("headers-at-limit", b"GET / HTTP/1.1\r\n" + H +
     b"".join(b"X-%d: v\r\n" % i for i in range(3)) + b"\r\n", dict()),
]


def _check_expected(case_id, got, expected):
    if isinstance(expected, dict):
        assert got[0] == "head", (case_id, got)
        for name, value in expected.items():
            assert getattr(got[1], name) == value, (case_id, name, got[1])
    else:
        assert got[0] == "error", (case_id, got)
        assert got[1] == expected, (case_id, got)
        assert got[2] == TABLE[expected][0]


def _each(cases, check):
    """Run check(*case) for every case; fail once, naming every case that
    failed and why (one test per corpus keeps the suite's per-test
    fixtures from dominating its time)."""
    failures = []
    for case in cases:
        try:
            check(*case)
        except AssertionError as e:
            failures.append("%s: %s" % (case[0], e))
    assert not failures, "\n".join(failures)


def _request_case(case_id, raw, expected, limits=()):
    """Every twin gives the expected answer and the same answer (head,
    error code, status, offset) as the others; fed byte by byte, it is
    INCOMPLETE until then for every prefix; and after other bytes
    (start > 0) it is the same with shifted offsets."""
    got = [(name, p, outcome(p, raw)) for name, p in parsers(*limits)]
    for name, _, answer in got[1:]:
        assert answer == got[0][2], (got[0][0], name, got[0][2], answer)
    _check_expected(case_id, got[0][2], expected)
    rng = random.Random(case_id)
    for name, p, whole in got:
        http_fuzz._check_prefixes(name, p, raw, whole, "request", None, rng)
        shifted = outcome(p, b"junk" + raw, start=4)
        if whole[0] == "error":
            assert shifted == whole[:3] + (whole[3] + 4,), (name, shifted)
        else:
            assert shifted[0] == "head", (name, shifted)
            assert shifted[1].end == whole[1].end + 4
            shifted[1].end -= 4
            assert shifted == whole, name


def test_request_corpus():
    """The valid and invalid heads (VALID, INVALID) in every twin, whole,
    byte by byte and at an offset."""
    _each(VALID + INVALID, _request_case)


def test_request_limits():
    """The limits' edges (LIMITED) with small limits: 414 and 431 where a
    limit is passed by one byte, a head where it is just met."""
    _each([case + (LIMITS,) for case in LIMITED], _request_case)


def test_memoryview_and_bytearray_inputs():
    raw = b"xxGET / HTTP/1.1\r\nHost: a\r\n\r\n"
    for _, p in parsers():
        base = p.request(raw, 2)
        assert p.request(bytearray(raw), 2) == base
        assert p.request(memoryview(raw), 2) == base
        with pytest.raises(ValueError):
            p.request(raw, len(raw) + 1)
        with pytest.raises(ValueError):
            p.request(raw, -1)


# ------------------------------------------------------------- responses

RESPONSES = [
    ("ok-length", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
     b"GET", dict(version=11, status=200, reason=b"OK", body="length",
                  content_length=5, keep_alive=True, end=38)),
    ("ok-chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
     b"GET", dict(body="chunked")),
    ("until-close", b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n", b"GET",
     dict(body="close", keep_alive=False)),
    ("http10", b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", b"GET",
     dict(version=10, keep_alive=False, body="length")),
    ("http10-keep-alive", b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n"
     b"Content-Length: 0\r\n\r\n", b"GET", dict(keep_alive=True)),
    ("no-reason", b"HTTP/1.1 204\r\n\r\n", b"GET",
     dict(status=204, reason=b"", body="none")),
    ("empty-reason", b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", b"GET",
     dict(reason=b"")),
    ("reason-obs-text", b"HTTP/1.1 200 \xc3\x89t\xc3\xa9\r\n"
     b"Content-Length: 0\r\n\r\n", b"GET", dict(reason=b"\xc3\x89t\xc3\xa9")),
    ("head-with-length", b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n",
     b"HEAD", dict(body="none", content_length=None)),
    ("not-modified", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
     b"GET", dict(body="none")),
    ("continue", b"HTTP/1.1 100 Continue\r\n\r\n", b"PUT",
     dict(status=100, body="none")),
    ("switching", b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade"
     b"\r\nUpgrade: websocket\r\n\r\n", b"GET",
     dict(body="none", upgrade=True)),
    ("connect-tunnel", b"HTTP/1.1 200 Connection established\r\n\r\n",
     b"CONNECT", dict(body="none")),
    ("connect-refused", b"HTTP/1.1 407 Proxy Auth\r\nContent-Length: 0\r\n"
     b"\r\n", b"CONNECT", dict(body="length")),
    ("bad-version", b"HTTP/1.1x 200 OK\r\n\r\n", b"GET", R.STATUS_LINE),
    ("lowercase", b"http/1.1 200 OK\r\n\r\n", b"GET", R.VERSION),
    ("status-2-digits", b"HTTP/1.1 20 OK\r\n\r\n", b"GET", R.STATUS_CODE),
    ("status-4-digits", b"HTTP/1.1 2000 OK\r\n\r\n", b"GET", R.STATUS_CODE),
    ("status-range", b"HTTP/1.1 600 Odd\r\n\r\n", b"GET", R.STATUS_CODE),
    ("version-2", b"HTTP/2.0 200 OK\r\n\r\n", b"GET", R.VERSION_UNSUPPORTED),
    ("reason-ctl", b"HTTP/1.1 200 O\x01K\r\n\r\n", b"GET", R.STATUS_LINE),
    ("reason-bare-lf", b"HTTP/1.1 200 OK\n\r\n", b"GET", R.LINE_ENDING),
    ("leading-crlf", b"\r\nHTTP/1.1 200 OK\r\n\r\n", b"GET", R.VERSION),
    ("cl-te", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n", b"GET", R.CL_AND_TE),
    ("cl-conflict", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
     b"Content-Length: 4\r\n\r\n", b"GET", R.CONTENT_LENGTH_CONFLICT),
    ("te-gzip", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", b"GET",
     R.UNKNOWN_CODING),
    ("te-http10", b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
     b"GET", R.TE_HTTP10),
    ("obs-fold", b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", b"GET",
     R.OBS_FOLD),
    ("too-long", b"HTTP/1.1 200 " + b"x" * 10000 + b"\r\n\r\n", b"GET",
     R.STATUS_LINE_TOO_LONG),
]


def _response_case(case_id, raw, method, expected):
    got = [(name, p, outcome(p, raw, "response", method))
           for name, p in parsers()]
    for name, _, answer in got[1:]:
        assert answer == got[0][2], (got[0][0], name, got[0][2], answer)
    _check_expected(case_id, got[0][2], expected)
    for name, p, whole in got:
        http_fuzz._check_prefixes(name, p, raw, whole, "response", method,
                                  random.Random(case_id))


def test_response_corpus():
    """Status lines and response framing (RESPONSES) in every twin, whole
    and byte by byte."""
    _each(RESPONSES, _response_case)


# ------------------------------------------------------------ chunked body
# (id, body, expected): (data, trailers, rest after the body) or a Reason.

CHUNKED = [
    ("one", b"5\r\nhello\r\n0\r\n\r\n", (b"hello", [], b"")),
    ("two", b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nNEXT",
     (b"hello world", [], b"NEXT")),
    ("empty", b"0\r\n\r\n", (b"", [], b"")),
    ("uppercase-hex", b"A\r\nhelloworld\r\n0\r\n\r\n", (b"helloworld", [], b"")),
    ("leading-zeros", b"0005\r\nhello\r\n000\r\n\r\n", (b"hello", [], b"")),
    ("extension", b"5;ext=value\r\nhello\r\n0\r\n\r\n", (b"hello", [], b"")),
    ("extensions-bws", b"5 ; a = b ;c;d=\"x y\\\"z\"\r\nhello\r\n0;e\r\n\r\n",
     (b"hello", [], b"")),
    # gevent pywsgi #229 (test__pywsgi test_229_*)
    ("pywsgi-229-quoted", b'2;token="oh hi"\r\noh\r\n4\r\n hai\r\n0\r\n\r\n',
     (b"oh hai", [], b"")),
    ("pywsgi-229-token", b"2;token=oh_hi\r\noh\r\n4\r\n hai\r\n0\r\n\r\n",
     (b"oh hai", [], b"")),
    ("trailers", b"5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-B:  2 \r\n\r\nGET",
     (b"hello", [(b"x-checksum", b"abc"), (b"x-b", b"2")], b"GET")),
    # Http11Probe SMUG-TRAILER-CL/-TE/-HOST/-AUTH: trailers are returned,
    # never used to frame anything.
    ("trailer-framing-fields", b"5\r\nhello\r\n0\r\nContent-Length: 50\r\n"
     b"Transfer-Encoding: chunked\r\nHost: evil\r\n\r\n",
     (b"hello", [(b"content-length", b"50"), (b"transfer-encoding",
                                              b"chunked"),
                 (b"host", b"evil")], b"")),
    # pywsgi CVE-2023-41419 (test_trailers_close_ignored): these lines are
    # valid trailer fields, and the body ends at the empty line.
    ("pywsgi-request-as-trailer", b"2\r\noh\r\n4\r\n hai\r\n0\r\n"
     b"GETpath2a:123 HTTP/1.1\r\nHost: a.com\r\nConnection: close\r\n\r\n",
     (b"oh hai", [(b"getpath2a", b"123 HTTP/1.1"), (b"host", b"a.com"),
                  (b"connection", b"close")], b"")),
    # Garden 39: a body ends at its empty line, not two bytes later.
    ("garden-39-trailer", b"0\r\nX:POST / HTTP/1.1\r\n\r\n",
     (b"", [(b"x", b"POST / HTTP/1.1")], b"")),
    # --- sizes (Http11Probe SMUG-CHUNK-*, MAL-CHUNK-SIZE-OVERFLOW;
    # waitress CVE-2022-24761; gunicorn 2811; Garden 1, 17, 22, 25, 47;
    # transducer 2, 7, 19, 24; pound 19; webrick 124; uhttpd 3)
    ("hex-prefix", b"0x5\r\nhello\r\n0\r\n\r\n", R.CHUNK_SIZE),
    ("webrick-0x3a", b"0x3a\r\n\r\nGET /evil HTTP/1.1\r\n\r\n",
     R.CHUNK_SIZE),
    ("plus", b"+5\r\nhello\r\n0\r\n\r\n", R.CHUNK_SIZE),
    ("negative", b"-1\r\nhello\r\n0\r\n\r\n", R.CHUNK_SIZE),
    ("transducer-19-neg-hex", b"-0x0\r\n\r\n", R.CHUNK_SIZE),
    ("leading-space", b" 5\r\nhello\r\n0\r\n\r\n", R.CHUNK_SIZE),
    ("transducer-24-spaces", b"           0\r\n\r\n", R.CHUNK_SIZE),
    ("trailing-ows", b"5 \r\nhello\r\n0\r\n\r\n", R.CHUNK_EXT),
    ("underscore", b"1_0\r\nhello world!!!!!\r\n0\r\n\r\n", R.CHUNK_SIZE),
    ("garden-1-int-underscore", b"0_2e\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n"
     b"Content-Length: 5\r\n\r\n0\r\n\r\n", R.CHUNK_SIZE),
    ("uhttpd-cr-prefix", b"\r0\r\n\r\n", R.CHUNK_SIZE),
    ("garden-17-empty-size", b"\r\n\r\n", R.CHUNK_SIZE),
    ("mongoose-empty-last", b"1\r\nZ\r\n\r\n\r\nGET / HTTP/1.1\r\n",
     R.CHUNK_SIZE),
    ("transducer-2-letters", b"Z\r\nZZ\r\nZZZ\r\n\r\n", R.CHUNK_SIZE),
    ("transducer-7-suffix", b"1these-bytes-never-get-validated\r\nZ\r\n0\r\n"
     b"\r\n", R.CHUNK_SIZE),
    ("garden-47-invalid", b"INVALID!!!\r\nGET / HTTP/1.1\r\n\r\n",
     R.CHUNK_SIZE),
    ("pywsgi-missing-last-crlf", b"2\r\noh\r\n4\r\n hai\r\n0GET /path2?a=:123"
     b" HTTP/1.1\r\nHost: a.com\r\n\r\n", R.CHUNK_SIZE),
    ("overflow", b"FFFFFFFFFFFFFFFF0\r\nhello\r\n0\r\n\r\n",
     R.CHUNK_SIZE_OVERFLOW),
    ("overflow-by-one", b"8000000000000000\r\n", R.CHUNK_SIZE_OVERFLOW),
    ("size-max", b"7FFFFFFFFFFFFFFF\r\nab", (b"ab", None, None)),
    # --- extensions (Http11Probe SMUG-CHUNK-BARE-SEMICOLON,
    # SMUG-CHUNK-EXT-*, MAL-CHUNK-EXT-64K; Kestrel CVE-2025-55315;
    # Garden 31, 36; transducer 3; gevent test_229_*_too_long)
    ("bare-semicolon", b"5;\r\nhello\r\n0\r\n\r\n", R.CHUNK_EXT),
    ("ext-invalid-token", b"5;bad[=x\r\nhello\r\n0\r\n\r\n", R.CHUNK_EXT),
    ("ext-bare-lf", b"5;\nhello\r\n0\r\n\r\n", R.CHUNK_EXT),
    ("ext-lf-after-name", b"5;a\nhello\r\n0\r\n\r\n", R.LINE_ENDING),
    ("ext-nul", b"5;a\x00\r\nhello\r\n0\r\n\r\n", R.CHUNK_EXT),
    ("ext-bare-cr", b"5;a\rX\r\nhello\r\n0\r\n\r\n", R.LINE_ENDING),
    ("ext-trailing-ws", b"5;a \r\nhello\r\n0\r\n\r\n", R.CHUNK_EXT),
    ("ext-empty-value", b"5;a=\r\nhello\r\n0\r\n\r\n", R.CHUNK_EXT),
    ("ext-unterminated-quote", b'5;a="x\r\nhello\r\n0\r\n\r\n',
     R.LINE_ENDING),
    ("bare-cr-terminator", b"5\rhello\r\n0\r\n\r\n", R.LINE_ENDING),
    ("garden-31-cr-cr", b"5\r\r;ABCD\r\n34\r\nE\r\n0\r\n\r\n",
     R.LINE_ENDING),
    ("garden-36-ext-cr", b"41;a=b\r\rXXXXXXXX\r\n0\r\n\r\n", R.LINE_ENDING),
    ("ext-too-long", b"2;token=" + b"_oh_hi" * 4000 + b"\r\noh\r\n0\r\n\r\n",
     R.CHUNK_LINE_TOO_LONG),
    # --- data CRLF (h11 CVE-2025-43859; Http11Probe
    # SMUG-CHUNK-MISSING-TRAILING-CRLF, SMUG-CHUNK-SPILL, SMUG-CHUNK-LF-TERM;
    # transducer 13)
    ("h11-any-two-bytes", b"5\r\nhelloXX0\r\n\r\n", R.CHUNK_DATA_CRLF),
    ("missing-crlf", b"5\r\nhello0\r\n\r\n", R.CHUNK_DATA_CRLF),
    ("spill", b"5\r\nhello!!\r\n0\r\n\r\n", R.CHUNK_DATA_CRLF),
    ("data-bare-lf", b"a\r\n0123456789\n0\r\n\r\n", R.CHUNK_DATA_CRLF),
    ("data-cr-only", b"5\r\nhello\r0\r\n\r\n", R.CHUNK_DATA_CRLF),
    # --- trailers (Http11Probe SMUG-CHUNK-LF-TRAILER; pywsgi
    # CVE-2023-41419 test_trailers_request_smuggling_header_first)
    ("trailer-bare-lf", b"5\r\nhello\r\n0\r\n\n", R.LINE_ENDING),
    ("pywsgi-request-line-in-trailers", b"2\r\noh\r\n4\r\n hai\r\n0\r\n"
     b"Header: value\r\nGET /path2?a=:123 HTTP/1.1\r\nHost: a.com\r\n\r\n",
     R.SPACE_IN_NAME),
    ("trailer-obs-fold", b"0\r\nX: a\r\n b\r\n\r\n", R.OBS_FOLD),
    ("trailer-no-colon", b"0\r\nX\r\n\r\n", R.NO_COLON),
    ("trailer-ctl", b"0\r\nX: a\x01\r\n\r\n", R.FIELD_VALUE),
]

CHUNK_LIMITS = dict(max_line=64, max_trailer_bytes=40, max_trailers=2)

CHUNKED_LIMITED = [
    ("line-at-limit", b"5;" + b"a" * 62 + b"\r\nhello\r\n0\r\n\r\n",
     (b"hello", [], b"")),
    ("line-over-limit", b"5;" + b"a" * 63 + b"\r\nhello\r\n0\r\n\r\n",
     R.CHUNK_LINE_TOO_LONG),
    ("trailers-at-limit", b"0\r\nA: " + b"x" * 33 + b"\r\n\r\n",
     (b"", [(b"a", b"x" * 33)], b"")),
    ("trailers-over-limit", b"0\r\nA: " + b"x" * 34 + b"\r\n\r\n",
     R.TRAILERS_TOO_LARGE),
    ("too-many-trailers", b"0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
     R.TOO_MANY_TRAILERS),
]


def _decode_all(cls, raw, **limits):
    d = cls(**limits)
    try:
        pos, data = d.decode(raw)
    except ProtocolError as e:
        return ("error", e.reason, e.status, e.offset)
    return ("ok", data, d.trailers, raw[pos:] if d.done else None, pos)


def _chunked_case(case_id, raw, expected, limits=None):
    """Both decoders give the expected data, trailers and rest, or the
    expected error with the same offset; split in two at every byte, they
    give the same again."""
    limits = limits or {}
    got = [(name, _decode_all(cls, raw, **limits))
           for name, cls in decoders()]
    for name, answer in got[1:]:
        assert answer == got[0][1], (name, answer, got[0][1])
    answer = got[0][1]
    if isinstance(expected, tuple):
        data, trailers, rest = expected
        assert answer[0] == "ok", answer
        assert answer[1] == data
        if trailers is not None:
            assert answer[2] == trailers
            assert answer[3] == rest
    else:
        assert answer[0] == "error" and answer[1] == expected, answer
        assert answer[2] == TABLE[expected][0]
    http_fuzz.check_chunked(raw, random.Random(case_id), limits)


def test_chunked_corpus():
    """The chunked bodies (CHUNKED) in both decoders."""
    _each(CHUNKED, _chunked_case)


def test_chunked_limits():
    """The decoder's limits' edges (CHUNKED_LIMITED)."""
    _each([case + (CHUNK_LIMITS,) for case in CHUNKED_LIMITED],
          _chunked_case)


def test_chunked_decoder_keeps_partial_units_and_fails_for_good():
    for _, cls in decoders():
        d = cls()
        assert d.decode(b"5\r") == (0, b"")         # a size line: whole only
        assert d.decode(b"5\r\nhel") == (6, b"hel")  # data: as it comes
        assert d.decode(b"lo\r") == (2, b"lo")
        assert d.decode(b"\r\n0\r\nX: 1") == (5, b"")
        assert not d.done
        assert d.decode(b"X: 1\r\n\r\nrest", 0) == (8, b"")
        assert d.done and d.trailers == [(b"x", b"1")]
        assert d.decode(b"more") == (0, b"")         # done: consumes nothing
        d = cls()
        with pytest.raises(ProtocolError) as e1:
            d.decode(b"0x1\r\n")
        with pytest.raises(ProtocolError) as e2:
            d.decode(b"1\r\n")
        assert e1.value.reason == e2.value.reason == R.CHUNK_SIZE
        with pytest.raises(ValueError):
            d.decode(b"abc", 2, 1)


def test_incomplete_and_failed_parses_keep_nothing():
    """Parses that end INCOMPLETE or in an error keep no frame and no
    buffer alive (the twin once re-raised one shared exception instance,
    whose growing __traceback__ held them all)."""
    filler = b"x" * 10000
    inputs = [b"GET / HTTP/1.1\r\nHost: a\r\nX: %s" % filler,
              b"GET / HTTP/1.1\r\nX: %s\r\n\r\n" % filler]
    tracemalloc.start()
    try:
        for _, p in parsers():
            for raw in inputs:
                for _ in range(100):
                    outcome(p, bytes(raw))
        for _, cls in decoders():
            for _ in range(100):
                d = cls()
                d.decode(b"5;x=" + filler[:3000])
                with pytest.raises(ProtocolError):
                    d.decode(b"5\r\n%s" % filler)
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert current < 400000, current


# ------------------------------------------------------------ the tables

def test_reason_codes_are_the_c_codes():
    """errors.Reason and the C's S2H_E_* are the same numbers, and every
    reason has a status and a message."""
    if C is None:
        pytest.skip("the C parser is not built")
    lib = C.lib
    for reason in R:
        assert getattr(lib, "S2H_E_" + reason.name) == reason
        status, message = TABLE[reason]
        assert status in (400, 414, 431, 501, 505) and message
    assert (lib.S2H_BODY_NONE, lib.S2H_BODY_LENGTH, lib.S2H_BODY_CHUNKED,
            lib.S2H_BODY_CLOSE) == (0, 1, 2, 3)
    assert (lib.S2H_F_KEEP_ALIVE, lib.S2H_F_EXPECT_CONTINUE, lib.S2H_F_UPGRADE,
            lib.S2H_F_EXPECT_OTHER) == (1, 2, 4, 8)
    assert (lib.S2H_END, lib.S2H_VERSION, lib.S2H_STATUS, lib.S2H_BODY,
            lib.S2H_LENGTH, lib.S2H_FLAGS, lib.S2H_FLAT,
            lib.S2H_ERRPOS) == (0, 1, 2, 4, 5, 6, 7, 8)
    assert (lib.S2H_C_POS, lib.S2H_C_START, lib.S2H_C_STOP, lib.S2H_C_VALUE,
            lib.S2H_C_VALUE_END, lib.S2H_C_ERRPOS) == (0, 1, 2, 3, 4, 8)


def test_selector_follows_pure_python():
    pure = os.environ.get("SOCKET2_PURE_PYTHON", "").strip() not in ("", "0")
    assert _parser.COMPILED is (not pure and C is not None)
    expected = PY.HeadParser if not _parser.COMPILED else C.HeadParser
    assert socket2.http.HeadParser is expected


def test_protocol_error_is_a_socket2_error():
    with pytest.raises(socket2.Error) as info:
        socket2.http.parse_request_head(b"GET / HTTP/1.1\r\n\r\n")
    e = info.value
    assert isinstance(e, ProtocolError)
    assert e.err == "protocol" and e.status == 400
    assert e.reason == R.NO_HOST and e.offset == 18
    assert "Host" in str(e)
    assert socket2.http.parse_response_head(b"HTTP/1.1 200 OK\r\n") is None
    with pytest.raises(ValueError):
        socket2.http.HeadParser(max_headers=-1)


# ------------------------------------------------------------ h11, oracle

# Where socket2 and h11 (0.16) answer differently, on purpose: h11 accepts
# these, socket2 refuses them (it is stricter where a message could be
# read two ways, or breaks a rule a sender MUST follow) ...
H11_ACCEPTS = {
    "cl-te": "h11 lets Transfer-Encoding override Content-Length "
             "(RFC 9112 6.1 allows it if the connection is then closed); "
             "socket2 refuses the message",
    "te-cl": "same, the other order",
    "te-http10": "h11 reads chunked in an HTTP/1.0 message; RFC 9112 6.1 "
                 "says treat its framing as faulty",
    "cl-leading-zeros": "h11 reads 005 as 5; socket2 refuses leading zeros "
                        "(another parser may read them as octal: Garden 32)",
    "cl-double-zero": "same (00)",
    "garden-32-cl-octal": "same (010)",
    "bare-lf-everywhere": "h11 accepts LF line endings; socket2 CRLF only "
                          "(waitress CVE-2019-16785)",
    "bare-lf-header": "same",
    "bare-lf-request-line": "same",
    "obs-fold": "h11 unfolds obs-fold; socket2 refuses it (RFC 9112 5.2 "
                "lets a server reject it)",
    "del-in-value": "h11 allows control characters but NUL and whitespace "
                    "ones (DEL, here) in values",
    "te-obs-fold": "h11 unfolds it, then lets chunked override the CL",
    "fragment": "h11 accepts '#' in the request-target",
    "asterisk-with-get": "h11 does not check the target's form",
    "connect-origin-form": "same",
    "garden-7-target": "same",
    "version-1.2": "h11 serves any HTTP/1.x; socket2 1.0 and 1.1 (505)",
    "host-userinfo": "h11 does not validate Host's value",
    "host-path": "same",
    "host-comma": "same",
    "host-bad-port": "same",
    "connection-not-token": "h11 does not validate Connection's value",
    "garden-19-lf-after-colon": "h11 takes the bare LF as a line ending",
    "version-9.9": "h11 parses any d.d version",
    "h2-preface": "h11 reads HTTP/2.0's preface as a PRI request",
    "cl-overflow": "h11 takes any number of digits (Python ints)",
    "cl-overflow-by-one": "same: 2**63 does not fit 63 bits",
}
# ... and these the other way round: h11 refuses what socket2 accepts.
H11_REFUSES = {
    "leading-crlf": "RFC 9112 2.2: a server SHOULD ignore empty lines "
                    "before the request line; h11 refuses them",
}


@pytest.mark.skipif(h11 is None, reason="h11 (a test extra) is missing")
def test_h11_oracle():
    """On the corpus, socket2 and h11 accept and refuse the same heads
    except the cases listed (H11_ACCEPTS, H11_REFUSES), and frame every
    body both accept the same way."""
    accepts, refuses = set(), set()
    for case_id, raw, expected in VALID + INVALID:
        ours = outcome(PY.HeadParser(), raw)
        theirs = h11_request(raw)
        if theirs[0] == "incomplete":
            theirs = ("error",)   # h11 waits for a line it cannot finish
        if ours[0] == "error" and theirs[0] == "ok":
            accepts.add(case_id)
        elif ours[0] == "head" and theirs[0] == "error":
            refuses.add(case_id)
        elif ours[0] == "head":
            head = ours[1]
            body = "chunked" if head.body == "chunked" else "length"
            length = None if body == "chunked" else head.content_length or 0
            assert theirs[1:3] == (body, length), case_id
            assert (theirs[3], theirs[4]) == (head.method, head.target)
            # h11 merges repeated Content-Length fields into one.
            assert [n for n, _ in theirs[5] if n != b"content-length"] == \
                [n for n, _ in head.headers if n != b"content-length"]
    assert accepts == set(H11_ACCEPTS), accepts ^ set(H11_ACCEPTS)
    assert refuses == set(H11_REFUSES), refuses ^ set(H11_REFUSES)


# ------------------------------------------------------------------ fuzz

def test_fuzz_seeded():
    """About two seconds of the differential fuzz (tests/http_fuzz.py);
    tools/fuzz_http.py runs it for longer.  A failure names its seed."""
    seed = int(os.environ.get("S2_FUZZ_SEED", "0")) or random.randrange(
        1, 2 ** 32)
    try:
        count = http_fuzz.run(2.0, seed)
    except AssertionError as e:
        raise AssertionError("fuzz failed with seed %d (rerun: "
                             "S2_FUZZ_SEED=%d, or tools/fuzz_http.py --seed "
                             "%d): %s" % (seed, seed, seed, e)) from None
    assert count > 20
