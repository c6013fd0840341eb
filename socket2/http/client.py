"""The HTTP/1.1 client: :class:`Client` (a pool of keep-alive
connections) and the module-level :func:`request`, :func:`get` ... that
use a default one.

    client = socket2.http.Client(timeout=10)
    r = client.get("https://example.org/")
    r.status, r.headers["content-type"], r.read()

One request, as the code below runs it: the URL is taken apart (cached),
a deadline is computed once from the timeout and passed down to every
wait as ``expires=`` (the pool's wait for a free connection, connect,
TLS, sending, the response head and body: a server trickling bytes
cannot stretch it); the pool hands out an idle live connection or a
slot to open one; the head (and body) go out; the response head is
parsed in place; the body is read (or, with ``stream=True``, left for
the caller to pull); redirects are followed by the rules of RFC 9110
15.4.  An idempotent request that fails on a reused connection before
any byte of the response came back is retried once on a new one.
"""
import json as _json
import ssl
from _thread import get_ident

from ..serve import connect as _connect_name
from ..errors import Error, TimeoutError
from ..hub import clock
from ..tls import tls as _tls
from ._connection import (ChunkedReader, CloseReader, Connection,
                          LengthReader, drain, dropped, tunnel)
from ._heads import BODY_CHUNKED, BODY_LENGTH, BODY_NONE
from ._parser import ChunkedDecoder
from ._pool import Pool
from ._request import (bypass_proxy, check_method, check_timeout,
                       chunked_given, env_proxies, join_url, merge_headers,
                       parse_proxy, parse_url, prepare_body, send_body,
                       without_headers)
from .response import ACCEPT_ENCODING, Response, decoder_for

__all__ = ["Client", "RedirectError", "request", "get", "head", "post",
           "put", "patch", "delete", "options"]

_UNSET = object()
_IDEMPOTENT = frozenset(("GET", "HEAD", "OPTIONS", "PUT", "DELETE",
                         "TRACE"))
_REDIRECTS = frozenset((301, 302, 303, 307, 308))
_DNS_TTL = 10.0              # seconds a looked-up address is reused
_EXPECT_WAIT = 1.0           # seconds to wait for "100 Continue"
_USER_AGENT = "socket2/0.1"


class RedirectError(Error):
    """Redirects that cannot be followed: a loop (``err ==
    'redirect_loop'``), more than ``max_redirects`` (``err ==
    'too_many_redirects'``), or a 307/308 whose streamed body cannot be
    sent again (``err == 'redirect_body'``).  ``.response`` is the last
    redirect response."""

    def __init__(self, err, message, response=None):
        super().__init__(err, message)
        self.response = response


class Client:
    """A pool of keep-alive HTTP/1.1 connections and the settings of the
    requests sent through it (SPEC.md, "HTTP" / "Client").

    *tls*: an ``ssl.SSLContext`` for https:// (default: the system CAs,
    host names verified).  *timeout*: seconds a request may take as a
    whole (None: unbounded), overridable per request.
    *max_connections* / *max_per_host*: bounds on open connections, in
    all and per (scheme, host, port, proxy); a request beyond them waits
    for a free one, within its timeout.  *follow_redirects*,
    *max_redirects*.  *decompress*: undo gzip/deflate (and br/zstd when
    their modules are installed) and ask for them.  *headers*: sent with
    every request.  *proxy*: ``'http://host:port'`` for every request;
    without it, with *trust_env*, the ``http_proxy``/``https_proxy``/
    ``all_proxy``/``no_proxy`` environment variables (read now).

    Connections are kept per OS thread (each thread's hub owns its
    sockets); the limits hold per OS thread.  A context manager;
    :meth:`close` closes the idle connections.
    """

    def __init__(self, *, tls=None, timeout=None, max_connections=100,
                 max_per_host=10, follow_redirects=True, max_redirects=10,
                 decompress=True, headers=None, proxy=None, trust_env=True):
        if tls is not None and not isinstance(tls, ssl.SSLContext):
            raise TypeError("tls must be an ssl.SSLContext, not %s"
                            % type(tls).__name__)
        for name, v in (("max_connections", max_connections),
                        ("max_per_host", max_per_host),
                        ("max_redirects", max_redirects)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0 \
                    or (v == 0 and name != "max_redirects"):
                raise ValueError("%s must be a positive int, not %r"
                                 % (name, v))
        self._timeout = check_timeout(timeout)
        self._tls = tls
        self.max_connections = max_connections
        self.max_per_host = max_per_host
        self.follow_redirects = follow_redirects
        self.max_redirects = max_redirects
        self.decompress = decompress
        defaults = [("User-Agent", _USER_AGENT), ("Accept", "*/*")]
        if decompress:
            defaults.append(("Accept-Encoding", ACCEPT_ENCODING))
        self._headers = merge_headers(defaults, headers)
        if proxy is not None:
            p = parse_proxy(proxy)
            self._proxies = (p, p, [])
        elif trust_env:
            self._proxies = env_proxies()
        else:
            self._proxies = (None, None, [])
        self._pools = {}           # OS thread ident -> Pool
        self._dns = {}             # (host, port) -> (ip, expiry)
        self._heads = {}           # (method, url) -> head bytes
        self._closed = False

    # -- public API ------------------------------------------------------

    def request(self, method, url, *, headers=None, body=None, json=None,
                timeout=_UNSET, stream=False, follow_redirects=None):
        """Send one request and return its :class:`Response` (SPEC.md).

        *body*: bytes, a binary file (sent with its length) or an iterable
        of bytes (sent chunked); *json*: an object sent as JSON.  An
        ``Expect: 100-continue`` header makes the body wait for the
        server's go-ahead (or one second).  *timeout* bounds the whole
        request, body included (with *stream*, the body as the caller
        reads it).  With *stream*, the body is left on the connection for
        ``iter_bytes()``/``read()``; close the response (``with``) to give
        the connection back.

        Raises ``ValueError``/``TypeError`` for a bad URL or argument,
        ``socket2.Error`` from the network (``'connection_refused'``,
        ``'host_not_found'`` ...), ``socket2.TLSError``,
        ``socket2.TimeoutError``, :class:`socket2.http.ProtocolError` for
        a malformed or truncated response, :class:`RedirectError`.
        """
        if self._closed:
            raise Error("closed", "the client is closed")
        timeout = self._timeout if timeout is _UNSET \
            else check_timeout(timeout)
        deadline = None if timeout is None else clock() + timeout
        method = check_method(method)
        if json is not None:
            if body is not None:
                raise TypeError("give body= or json=, not both")
            body = _json.dumps(json, separators=(",", ":")).encode("utf-8")
            headers = merge_headers([("Content-Type", "application/json")],
                             headers)
        elif headers is not None:
            headers = merge_headers((), headers)
        b = prepare_body(body)
        follow = self.follow_redirects if follow_redirects is None \
            else follow_redirects
        try:
            r = self._send(method, url, headers, b, deadline, stream)
            if follow and r.status in _REDIRECTS:
                r = self._redirects(r, method, headers, b, deadline, stream)
        except TimeoutError as e:
            if timeout is None or "no connection became free" in str(e):
                raise
            raise TimeoutError("timeout", "%s %s: no complete response "
                               "within the timeout of %gs"
                               % (method, url, timeout)) from e
        return r

    def get(self, url, **kw):
        """``request('GET', url, **kw)``."""
        return self.request("GET", url, **kw)

    def head(self, url, **kw):
        """``request('HEAD', url, **kw)``."""
        return self.request("HEAD", url, **kw)

    def post(self, url, **kw):
        """``request('POST', url, **kw)``."""
        return self.request("POST", url, **kw)

    def put(self, url, **kw):
        """``request('PUT', url, **kw)``."""
        return self.request("PUT", url, **kw)

    def patch(self, url, **kw):
        """``request('PATCH', url, **kw)``."""
        return self.request("PATCH", url, **kw)

    def delete(self, url, **kw):
        """``request('DELETE', url, **kw)``."""
        return self.request("DELETE", url, **kw)

    def options(self, url, **kw):
        """``request('OPTIONS', url, **kw)``."""
        return self.request("OPTIONS", url, **kw)

    def close(self):
        """Close the idle connections (those of other OS threads when they
        are collected) and refuse new requests; responses still open close
        their connections when they are done.  Idempotent."""
        self._closed = True
        pool = self._pools.pop(get_ident(), None)
        if pool is not None:
            pool.close()
        for p in self._pools.values():
            # Another OS thread's sockets belong to its hub: its requests
            # in flight close their connections when done, and the idle
            # ones are closed when collected (socket2 closes a collected
            # socket in its own hub's thread).
            p.closed = True
        self._pools.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def stats(self):
        """This OS thread's pool: ``{'total', 'idle', 'waiting'}``."""
        pool = self._pools.get(get_ident())
        return pool.stats() if pool else {"total": 0, "idle": 0,
                                          "waiting": 0}

    # -- one request -----------------------------------------------------

    def _pool(self):
        pool = self._pools.get(get_ident())
        if pool is None:
            pool = self._pools[get_ident()] = Pool(self.max_connections,
                                                   self.max_per_host)
        return pool

    def _proxy_for(self, t):
        http, https, no = self._proxies
        p = https if t.scheme == "https" else http
        if p is not None and no and bypass_proxy(t.host, t.port, no):
            return None
        return p

    def _head(self, method, url, t, proxy, headers, b):
        """The request head's bytes (cached for the plain cases)."""
        plain = headers is None and b is None
        if plain:
            key = (method, url, proxy)
            data = self._heads.get(key)
            if data is not None:
                return data
        target = t.path
        lines = []
        if proxy is not None and t.scheme == "http":
            target = t.url              # absolute-form, to a proxy
            if proxy.auth:
                lines.append("Proxy-Authorization: %s\r\n" % proxy.auth)
        given = set()
        for name, value in (headers or ()):
            given.add(name.lower())
        if "host" not in given:
            lines.append("Host: %s\r\n" % t.authority)
        for name, value in self._headers:
            if name.lower() not in given:
                lines.append("%s: %s\r\n" % (name, value))
        for name, value in (headers or ()):
            lines.append("%s: %s\r\n" % (name, value))
        if t.auth and "authorization" not in given:
            lines.append("Authorization: %s\r\n" % t.auth)
        if "content-length" not in given \
                and "transfer-encoding" not in given:
            if b is None:
                if method in ("POST", "PUT", "PATCH"):
                    lines.append("Content-Length: 0\r\n")
            elif b.chunked:
                lines.append("Transfer-Encoding: chunked\r\n")
            else:
                lines.append("Content-Length: %d\r\n" % b.length)
        data = ("%s %s HTTP/1.1\r\n%s\r\n" % (
            method, target, "".join(lines))).encode("latin-1")
        if plain:
            if len(self._heads) >= 512:
                self._heads.clear()
            self._heads[key] = data
        return data

    def _send(self, method, url, headers, b, deadline, stream):
        t = parse_url(url)
        proxy = self._proxy_for(t)
        key = (t.scheme, t.host, t.port, proxy and proxy.url)
        data = self._head(method, url, t, proxy, headers, b)
        chunked = b is not None and (b.chunked or chunked_given(headers))
        expect = b is not None and headers is not None and any(
            n.lower() == "expect" and v.lower() == "100-continue"
            for n, v in headers)
        pool = self._pool()
        retry = method in _IDEMPOTENT and (b is None or b.replayable)
        while True:
            conn = pool.acquire(key, deadline)
            if conn is None:
                try:
                    conn = self._open(pool, key, t, proxy, deadline)
                except BaseException:
                    pool.unreserve(key)
                    raise
                pool.opened(conn)
            try:
                h, keep = self._exchange(conn, method, data, b, chunked,
                                         expect, deadline)
            except BaseException as e:
                pool.discard(conn)
                if retry and conn.reused and conn.received == 0 \
                        and dropped(e):
                    retry = False
                    if b is not None:
                        b.rewind()
                    continue
                raise
            return self._response(pool, conn, h, keep, method, t, deadline,
                                  stream)

    def _exchange(self, conn, method, data, b, chunked, expect, deadline):
        """Send the request, read the final response head; return it and
        whether the connection may be kept."""
        if b is None:
            conn.send(data, deadline)
        elif b.data is not None and not chunked and not expect \
                and len(b.data) <= 65536:
            conn.send(data + b.data, deadline)
        else:
            conn.send(data, deadline)
            h = self._await_continue(conn, method, deadline) if expect \
                else None
            if h is None:
                send_body(conn, b, chunked, deadline)
            else:
                # A final answer came before the body went: the server
                # expects no body now, or will read it as the next request.
                return h, False
        while True:
            h = conn.read_head(method, deadline)
            if h.status >= 200 or h.status == 101:
                return h, h.keep_alive

    def _await_continue(self, conn, method, deadline):
        """After a head with ``Expect: 100-continue``: None to send the
        body (100 came, or no answer within a second), or the final
        response head that came instead."""
        wait = clock() + _EXPECT_WAIT
        if deadline is not None and deadline < wait:
            wait = deadline
        while True:
            try:
                h = conn.read_head(method, wait)
            except TimeoutError:
                if deadline is not None and clock() >= deadline:
                    raise
                return None
            if h.status >= 200 or h.status == 101:
                return h
            if h.status == 100:
                return None

    def _response(self, pool, conn, h, keep, method, t, deadline, stream):
        kind = h.body
        if kind == BODY_NONE:
            pool.release(conn, keep)
            return Response(h, t.url, method)
        decoder = None
        if self.decompress:
            codings = [v for n, v in h.headers if n == b"content-encoding"]
            if codings:
                decoder = decoder_for(b", ".join(codings).decode("latin-1"))
        if kind == BODY_LENGTH:
            n = h.content_length
            if not stream and decoder is None and conn.end - conn.start >= n:
                # The whole body came with the head: no reader needed.
                r = Response(h, t.url, method)
                r._body = conn.take(n)
                pool.release(conn, keep)
                return r
            reader = LengthReader(conn, n)
        elif kind == BODY_CHUNKED:
            reader = ChunkedReader(conn, ChunkedDecoder())
        else:
            reader = CloseReader(conn)
            keep = False

        def release(ok):
            if ok:
                pool.release(conn, keep)
            else:
                pool.discard(conn)

        r = Response(h, t.url, method, reader, release, deadline, decoder)
        if not stream:
            r.read()
        return r

    # -- connecting --------------------------------------------------------

    def _context(self):
        ctx = self._tls
        if ctx is None:
            ctx = self._tls = ssl.create_default_context()
            ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def _connect(self, host, port, deadline):
        """A plain connection to *host*, reusing a recent lookup."""
        k = (host, port)
        cached = self._dns.get(k)
        if cached is not None and cached[1] > clock():
            try:
                return _connect_name(cached[0], port, expires=deadline)
            except TimeoutError:
                raise
            except Error:
                self._dns.pop(k, None)  # stale: look it up again
        sock = _connect_name(host, port, expires=deadline)
        try:
            ip = sock.remote_addr
        except Error:
            ip = None
        if ip and ip != host:
            if len(self._dns) >= 256:
                self._dns.clear()
            self._dns[k] = (ip, clock() + _DNS_TTL)
        return sock

    def _open(self, pool, key, t, proxy, deadline):
        host, port = (t.host, t.port) if proxy is None \
            else (proxy.host, proxy.port)
        sock = self._connect(host, port, deadline)
        conn = Connection(sock, key, pool.parser)
        if t.scheme != "https":
            return conn
        try:
            if proxy is not None:
                tunnel(conn, t, proxy, deadline)
            conn.sock = _tls(sock, self._context(), server_hostname=t.host,
                             expires=deadline)
        except BaseException:
            sock.close()
            raise
        return conn

    # -- redirects ---------------------------------------------------------

    def _redirects(self, r, method, headers, b, deadline, stream):
        history = []
        seen = {(method, r.url)}
        while r.status in _REDIRECTS:
            location = r.headers.get("location")
            if location is None:
                break
            drain(r)
            history.append(r)
            if len(history) > self.max_redirects:
                raise RedirectError("too_many_redirects", "more than %d "
                                    "redirects, the last to %s" % (
                                        self.max_redirects, location), r)
            url = join_url(r.url, location)
            if r.status == 303 and method != "HEAD" or \
                    r.status in (301, 302) and method == "POST":
                method, b = "GET", None
                headers = without_headers(headers, ("content-length",
                                             "content-type",
                                             "transfer-encoding", "expect"))
            elif b is not None:
                if not b.replayable:
                    raise RedirectError(
                        "redirect_body", "%d redirect to %s needs the body "
                        "again, but it was an iterable, already sent"
                        % (r.status, url), r)
                b.rewind()
            old, new = parse_url(r.url), parse_url(url)
            if old.origin != new.origin:
                headers = without_headers(headers, ("authorization", "cookie",
                                             "host"))
            if (method, new.url) in seen:
                raise RedirectError("redirect_loop", "redirect loop: %s %s "
                                    "was visited already" % (method, url), r)
            seen.add((method, new.url))
            r = self._send(method, url, headers, b, deadline, stream)
        r.history = history
        return r


# ---------------------------------------------------------------------------
# The module-level functions: one default client for the process (it
# keeps connections per OS thread itself).

_default = None


def _client():
    global _default
    if _default is None or _default._closed:
        _default = Client()
    return _default


def request(method, url, **kw):
    """``Client.request`` on the default client."""
    return _client().request(method, url, **kw)


def get(url, **kw):
    """GET *url* with the default client."""
    return _client().request("GET", url, **kw)


def head(url, **kw):
    """HEAD *url* with the default client."""
    return _client().request("HEAD", url, **kw)


def post(url, **kw):
    """POST to *url* with the default client."""
    return _client().request("POST", url, **kw)


def put(url, **kw):
    """PUT to *url* with the default client."""
    return _client().request("PUT", url, **kw)


def patch(url, **kw):
    """PATCH *url* with the default client."""
    return _client().request("PATCH", url, **kw)


def delete(url, **kw):
    """DELETE *url* with the default client."""
    return _client().request("DELETE", url, **kw)


def options(url, **kw):
    """OPTIONS *url* with the default client."""
    return _client().request("OPTIONS", url, **kw)
