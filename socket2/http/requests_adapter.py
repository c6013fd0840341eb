"""A transport adapter for ``requests``: code written for
``requests.Session`` keeps its API and gets socket2's client underneath.

    import requests
    from socket2.http.requests_adapter import Adapter

    s = requests.Session()
    s.mount("http://", Adapter())
    s.mount("https://", Adapter())
    s.get("https://example.org/").text

``requests`` keeps doing what it does above the transport (cookies,
redirects, authentication, hooks); the adapter sends each prepared
request through a :class:`socket2.http.Client` (one per combination of
``verify``, ``cert`` and proxy, each with its own keep-alive pool).
``requests`` is an optional dependency (the ``requests`` extra).

:class:`Session` is a ``requests.Session`` with the adapter mounted that
also looks the environment's settings (proxies, ``no_proxy``, CA bundle)
up once per origin instead of on every request -- as
:class:`socket2.http.Client` reads them once -- which is half of what
``requests`` spends per request above the transport.

Differences from requests' own adapter: a ``timeout`` bounds the whole
request instead of each read; of a ``(connect, read)`` pair, *connect*
bounds the connecting (``ConnectTimeout``) and the sum the whole request
(without *connect*: *read* bounds the request once connected; without
*read*: nothing does once connected); proxies are http:// only (https://
URLs go through CONNECT).  Errors are the ``requests.exceptions`` classes
requests raises for the same failures, while sending and while reading
the body (``ChunkedEncodingError``, ``ContentDecodingError`` ...).
"""
import ssl

import requests
from requests.adapters import BaseAdapter
from requests.cookies import extract_cookies_to_jar
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers, select_proxy
from requests import exceptions as rex

from ..errors import Error, TimeoutError, TLSError
from .client import Client
from .errors import ProtocolError
from ._request import Phases
from .response import DecodingError

__all__ = ["Adapter", "Session"]


class _Message:
    """What ``requests.cookies`` asks of ``raw._original_response.msg``."""
    __slots__ = ("_headers",)

    def __init__(self, headers):
        self._headers = headers

    def get_all(self, name, default=None):
        values = self._headers.get_list(name)
        return values if values else default

    getheaders = get_all


class _Original:
    __slots__ = ("msg",)

    def __init__(self, headers):
        self.msg = _Message(headers)


class _Raw:
    """``response.raw``: the socket2 response as the file-like object
    requests reads (``read``, ``stream``, ``close``, ``release_conn``);
    the content is already decoded from its Content-Encoding."""

    def __init__(self, r):
        self._r = r
        self._it = None
        self._rest = b""
        self._original_response = _Original(r.headers)
        self.headers = r.headers
        self.status = r.status
        self.reason = r.reason
        self.decode_content = True

    @property
    def closed(self):
        return self._r._release is None

    def stream(self, amt=65536, decode_content=None):
        """Yield the body in pieces of about *amt* bytes."""
        if self._rest:
            rest, self._rest = self._rest, b""
            yield rest
        it = self._pieces(amt or 65536)
        while True:
            with _body_errors():
                piece = next(it, None)
            if piece is None:
                return
            yield piece

    def _pieces(self, amt):
        if self._it is None:
            self._it = self._r.iter_bytes(amt)
        return self._it

    def read(self, amt=None, decode_content=None, cache_content=False):
        """Up to *amt* bytes of the body (all of the rest without)."""
        out = [self._rest]
        self._rest = b""
        got = len(out[0])
        it = self._pieces(65536 if amt is None else max(amt, 1))
        while amt is None or got < amt:
            with _body_errors():
                piece = next(it, None)
            if piece is None:
                break
            out.append(piece)
            got += len(piece)
        data = b"".join(out)
        if amt is not None and len(data) > amt:
            data, self._rest = data[:amt], data[amt:]
        return data

    def close(self):
        self._r.close()

    def release_conn(self):
        self._r.close()


class _body_errors:
    """Errors while reading a body, as requests raises them
    (``Response.iter_content``): a malformed or truncated body is a
    ``ChunkedEncodingError``, a bad Content-Encoding a
    ``ContentDecodingError``, a timeout a ``ConnectionError``."""
    __slots__ = ()

    def __enter__(self):
        return self

    def __exit__(self, kind, e, tb):
        if e is None or not isinstance(e, Error):
            return False
        if isinstance(e, DecodingError):
            raise rex.ContentDecodingError(e) from e
        if isinstance(e, ProtocolError):
            raise rex.ChunkedEncodingError(e) from e
        if isinstance(e, TLSError):
            raise rex.SSLError(e) from e
        raise rex.ConnectionError(e) from e


def _timeout(timeout):
    """The Client's timeout: a number bounds the whole request; a
    ``(connect, read)`` pair is passed on as :class:`Phases`."""
    if isinstance(timeout, tuple):
        if len(timeout) != 2:
            raise ValueError("timeout must be a number or a (connect, read) "
                             "pair, not %r" % (timeout,))
        return Phases(*timeout)
    return timeout


def _context(verify, cert):
    if verify is True and cert is None:
        return None                    # the client's default context
    if verify is False:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif isinstance(verify, str):
        import os
        ctx = ssl.create_default_context(
            capath=verify if os.path.isdir(verify) else None,
            cafile=None if os.path.isdir(verify) else verify)
    else:
        ctx = ssl.create_default_context()
    if cert is not None:
        if isinstance(cert, (tuple, list)):
            ctx.load_cert_chain(cert[0], cert[1])
        else:
            ctx.load_cert_chain(cert)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


class Adapter(BaseAdapter):
    """A ``requests`` transport adapter over socket2's HTTP client.

    *max_connections* and *max_per_host* bound each underlying client's
    pool, as in :class:`socket2.http.Client`.
    """

    def __init__(self, max_connections=100, max_per_host=10):
        super().__init__()
        self._limits = (max_connections, max_per_host)
        self._clients = {}

    def _client(self, verify, cert, proxy):
        key = (verify if isinstance(verify, (bool, str)) else True,
               cert if not isinstance(cert, list) else tuple(cert), proxy)
        c = self._clients.get(key)
        if c is None:
            c = self._clients[key] = Client(
                tls=_context(*key[:2]), max_connections=self._limits[0],
                max_per_host=self._limits[1], follow_redirects=False,
                headers=None, proxy=proxy, trust_env=False)
        return c

    def send(self, request, stream=False, timeout=None, verify=True,
             cert=None, proxies=None):
        """Send the ``PreparedRequest`` and return a ``requests.Response``;
        failures raise the matching ``requests.exceptions`` class."""
        proxy = select_proxy(request.url, proxies) if proxies else None
        try:
            client = self._client(verify, cert, proxy)
        except ValueError as e:           # a proxy this client cannot use
            raise rex.InvalidSchema(e, request=request)
        body = request.body
        if isinstance(body, str):
            body = body.encode("utf-8")
        try:
            # The body is read below, where its errors map as requests'.
            r = client.request(request.method, request.url,
                               headers=request.headers.items(), body=body,
                               timeout=_timeout(timeout), stream=True)
        except TimeoutError as e:
            if getattr(e, "connecting", False):
                raise rex.ConnectTimeout(e, request=request)
            raise rex.ReadTimeout(e, request=request)
        except TLSError as e:
            raise rex.SSLError(e, request=request)
        except ProtocolError as e:
            raise rex.ConnectionError(e, request=request)
        except ValueError as e:
            raise rex.InvalidURL(e, request=request)
        except Error as e:
            if e.err == "proxy":
                raise rex.ProxyError(e, request=request)
            raise rex.ConnectionError(e, request=request)
        return self.build_response(request, r, stream)

    def build_response(self, request, r, stream):
        """The ``requests.Response`` for socket2's response *r*."""
        resp = requests.Response()
        resp.status_code = r.status
        h = r.headers
        resp.headers = CaseInsensitiveDict({name: h[name] for name in h})
        resp.encoding = get_encoding_from_headers(resp.headers)
        resp.reason = r.reason
        resp.url = request.url
        resp.request = request
        resp.connection = self
        resp.raw = _Raw(r)
        if "set-cookie" in h:
            extract_cookies_to_jar(resp.cookies, request, resp.raw)
        if not stream:
            with _body_errors():
                resp._content = r.read()
            resp._content_consumed = True
        return resp

    def close(self):
        """Close every client's idle connections."""
        clients = list(self._clients.values())
        self._clients.clear()
        for c in clients:
            c.close()


class Session(requests.Session):
    """A ``requests.Session`` with :class:`Adapter` mounted for http://
    and https:// (``Adapter(**kwargs)``), whose environment settings
    (``trust_env``: proxies, ``no_proxy``, ``REQUESTS_CA_BUNDLE``) are
    looked up once per origin and kept, instead of on every request:
    changes to the environment after the first request to an origin are
    not seen."""

    def __init__(self, **kwargs):
        super().__init__()
        adapter = Adapter(**kwargs)
        self.mount("http://", adapter)
        self.mount("https://", adapter)
        self._environment = {}

    def merge_environment_settings(self, url, proxies, stream, verify,
                                   cert):
        if not self.trust_env or proxies or not isinstance(
                verify, (bool, str, type(None))) or isinstance(cert, list):
            return super().merge_environment_settings(url, proxies, stream,
                                                      verify, cert)
        scheme, _, rest = url.partition("://")
        key = (scheme, rest.split("/", 1)[0], stream, verify, cert,
               self.stream, self.verify, self.cert,
               tuple(self.proxies.items()))
        got = self._environment.get(key)
        if got is None:
            got = super().merge_environment_settings(url, proxies, stream,
                                                     verify, cert)
            if len(self._environment) >= 1024:
                self._environment.clear()
            self._environment[key] = got
        return {k: (dict(v) if isinstance(v, dict) else v)
                for k, v in got.items()}
