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
import _thread
import json as _json
import ssl

from ..serve import connect as _connect_name
from ..errors import Error, TimeoutError
from ..hub import clock, get_hub
from ..tls import tls as _tls
from ._connection import (ChunkedReader, CloseReader, Connection,
                          LengthReader, drain, dropped, tunnel)
from ._heads import BODY_CHUNKED, BODY_LENGTH, BODY_NONE
from ._parser import ChunkedDecoder
from ._pool import Limits, Pool
from ._request import (UnusableProxy, bypass_proxy, check_method,
                       check_timeout, chunked_given, env_proxies,
                       given_length, join_url, merge_headers, parse_proxy,
                       parse_url, prepare_body, send_body, without_headers)
from .response import ACCEPT_ENCODING, Response, decoder_for

__all__ = ["Client", "RedirectError", "request", "get", "head", "post",
           "put", "patch", "delete", "options"]

_UNSET = object()
_IDEMPOTENT = frozenset(("GET", "HEAD", "OPTIONS", "PUT", "DELETE",
                         "TRACE"))
_REDIRECTS = frozenset((301, 302, 303, 307, 308))
# Headers that go to the origin the request was sent to, never to another
# one a redirect points at (RFC 9110 15.4: credentials).
_ORIGIN_ONLY = ("authorization", "cookie", "proxy-authorization")
_DNS_TTL = 10.0              # seconds a looked-up address is reused
_EXPECT_WAIT = 1.0           # seconds to wait for "100 Continue"
_USER_AGENT = "socket2/0.1"
_get_ident = _thread.get_ident    # the OS thread's (bound before any patch)


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
    sockets): each OS thread that uses the client has a pool of its own,
    closed when the thread ends; *max_connections* / *max_per_host* bound
    the client's connections over all its OS threads (a request waits for
    one to be given back or closed in any of them, and an idle one of
    another thread may be closed to make room).  A response with
    its body not read yet (``stream=True``) must be read in the OS thread
    that sent the request (``Error('wrong_thread')`` elsewhere).  A
    context manager; :meth:`close` closes the idle connections.
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
        self._limits = Limits(max_connections, max_per_host)
        self.follow_redirects = follow_redirects
        self.max_redirects = max_redirects
        self.decompress = decompress
        defaults = [("User-Agent", _USER_AGENT), ("Accept", "*/*")]
        if decompress:
            defaults.append(("Accept-Encoding", ACCEPT_ENCODING))
        merged = merge_headers(defaults, headers)
        # A Host given here replaces the URL's (one Host field, never two)
        self._host = next((v for n, v in merged if n.lower() == "host"),
                          None)
        self._headers = [(n, v) for n, v in merged if n.lower() != "host"]
        if proxy is not None:
            p = parse_proxy(proxy)
            self._proxies = (p, p, [])
        elif trust_env:
            self._proxies = env_proxies()
        else:
            self._proxies = (None, None, [])
        self._local = _thread._local()   # .pool: this OS thread's Pool
        self._pools = {}           # id(pool) -> Pool, every live thread's
        self._dns = {}             # (host, port) -> (ip, expiry)
        self._heads = {}           # (method, url) -> head bytes
        self._closed = False

    @property
    def max_connections(self):
        """The bound on open connections, in all (all OS threads)."""
        return self._limits.max_connections

    @property
    def max_per_host(self):
        """The bound on open connections per (scheme, host, port, proxy),
        over all OS threads."""
        return self._limits.max_per_host

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
        split = None
        if timeout is None:
            deadline = None
        elif type(timeout) is float:
            deadline = clock() + timeout
        else:
            # Phases (the requests adapter's (connect, read) pair): the
            # pool's wait, connect and TLS within *connect*, the whole
            # request within their sum, or, without *connect*, the rest
            # within *read* once the connection is there.  A timeout while
            # connecting has ``connecting = True``.
            c, rd = timeout.connect, timeout.read
            now = clock()
            split = (None if c is None else now + c,
                     rd if c is None else None)
            timeout = None if c is None or rd is None else c + rd
            deadline = None if timeout is None else now + timeout
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
        if headers is not None:
            given_length(b, headers)
        follow = self.follow_redirects if follow_redirects is None \
            else follow_redirects
        try:
            r = self._send(method, url, headers, b, deadline, stream,
                           False, split)
            if follow and r.status in _REDIRECTS:
                r = self._redirects(r, method, headers, b, deadline, stream,
                                    split)
        except TimeoutError as e:
            if timeout is None or "no connection became free" in str(e):
                raise
            # (No local holds the new error: a frame of its own traceback
            # would keep it, and the recv frames with it, in a cycle.)
            raise _timed_out(method, url, timeout, e) from e
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
        """Close the idle connections (every OS thread's) and refuse new
        requests; responses still open close their connections when they
        are done.  Idempotent."""
        self._closed = True
        for p in list(self._pools.values()):
            # Another OS thread's idle sockets are closed from here (its
            # hub releases them at its next turn, see socket2's close()).
            p.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def stats(self):
        """This OS thread's pool: ``{'total', 'idle', 'waiting'}``."""
        pool = getattr(self._local, "pool", None)
        return pool.stats() if pool else {"total": 0, "idle": 0,
                                          "waiting": 0}

    # -- one request -----------------------------------------------------

    def _pool(self):
        try:
            return self._local.pool
        except AttributeError:
            pass
        # This OS thread's first request: its own pool, dropped (its idle
        # connections closed) when the thread ends.  A thread-local, not
        # the thread's ident: idents are reused by later threads.
        if self._closed:
            raise Error("closed", "the client is closed")
        pool = Pool(self._limits, get_hub())
        self._local.pool = pool
        self._local.end = _PoolEnd(self._pools, pool)
        self._pools[id(pool)] = pool
        return pool

    def _proxy_for(self, t):
        http, https, no = self._proxies
        p = https if t.scheme == "https" else http
        if p is not None:
            if no and bypass_proxy(t.host, t.port, no):
                return None
            if type(p) is UnusableProxy:
                p.fail()
        return p

    def _head(self, method, url, t, proxy, headers, b, cross=False):
        """The request head's bytes (cached for the plain cases).  *cross*:
        after a redirect to another origin, without the client's Host,
        Authorization and Cookie headers."""
        plain = headers is None and b is None and not cross
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
            lines.append("Host: %s\r\n" % (
                t.authority if self._host is None or cross else self._host))
        for name, value in self._headers:
            low = name.lower()
            if low not in given and not (cross and low in _ORIGIN_ONLY):
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

    def _send(self, method, url, headers, b, deadline, stream, cross=False,
              split=None):
        t = parse_url(url)
        proxy = self._proxy_for(t)
        key = (t.scheme, t.host, t.port, proxy and proxy.url)
        data = self._head(method, url, t, proxy, headers, b, cross)
        chunked = b is not None and (b.chunked or chunked_given(headers))
        expect = b is not None and headers is not None and any(
            n.lower() == "expect" and v.lower() == "100-continue"
            for n, v in headers)
        pool = self._pool()
        retry = method in _IDEMPOTENT and (b is None or b.replayable)
        cdl = deadline if split is None else split[0]
        while True:
            try:
                conn = pool.acquire(key, cdl)
                if conn is None:
                    try:
                        conn = self._open(pool, key, t, proxy, cdl)
                    except BaseException:
                        pool.unreserve(key)
                        raise
                    pool.opened(conn)
            except TimeoutError as e:
                e.connecting = True
                raise
            if split is not None and split[1] is not None:
                deadline = clock() + split[1]    # (connect, read): read
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
            if h.status >= 200:
                # After a 2xx to CONNECT the connection is a tunnel: never
                # back to the pool.
                return h, h.keep_alive and not (
                    method == "CONNECT" and h.status < 300)
            if h.status == 101:
                return h, False     # it speaks another protocol now

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

        ident = _get_ident()

        def release(ok):
            if _get_ident() == ident:
                _give_back(pool, conn, keep, ok)
            else:
                # Closed (or collected) in another OS thread, maybe after
                # this one ended: closed from there (the pool's books are
                # kept under the limits' lock, its waiters woken in their
                # own thread).
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
            conn.tls = True
        except BaseException:
            sock.close()
            raise
        return conn

    # -- redirects ---------------------------------------------------------

    def _redirects(self, r, method, headers, b, deadline, stream, split):
        history = []
        seen = {(method, r.url)}
        cross = False        # once another origin, the client's
        #                      credentials stay behind for good
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
                headers = without_headers(headers, _ORIGIN_ONLY + ("host",))
                cross = True
            if (method, new.url) in seen:
                raise RedirectError("redirect_loop", "redirect loop: %s %s "
                                    "was visited already" % (method, url), r)
            seen.add((method, new.url))
            r = self._send(method, url, headers, b, deadline, stream, cross,
                           split)
        r.history = history
        return r


def _give_back(pool, conn, keep, ok):
    """A response is done with *conn*: to the pool, or closed."""
    if ok:
        pool.release(conn, keep)
    else:
        pool.discard(conn)


def _timed_out(method, url, timeout, e):
    """The request's TimeoutError, for *e* raised somewhere within it."""
    err = TimeoutError("timeout", "%s %s: no complete response within the "
                       "timeout of %gs" % (method, url, timeout))
    err.connecting = getattr(e, "connecting", False)
    return err


class _PoolEnd:
    """Kept in a client's thread-local storage beside the OS thread's
    pool.  The interpreter drops a thread's locals when the thread ends,
    and with them this, which closes the pool's idle connections and
    forgets it: a client used from short-lived threads keeps no dead
    thread's pool or descriptors."""
    __slots__ = ("pools", "pool")

    def __init__(self, pools, pool):
        self.pools = pools
        self.pool = pool

    def __del__(self):
        self.pools.pop(id(self.pool), None)
        try:
            self.pool.close()
        except Exception:   # noqa: BLE001 - a finalizer must not raise
            pass


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
