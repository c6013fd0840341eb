"""What the client sends: URLs taken apart once (and cached), request
heads, request bodies (bytes, files, iterables sent chunked), and the
proxy settings of the environment (``http_proxy``, ``https_proxy``,
``all_proxy``, ``no_proxy``), read as curl and requests read them.
"""
import base64
import ipaddress
import os
import re
import stat
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit

__all__ = ["Target", "parse_url", "Proxy", "parse_proxy", "UnusableProxy",
           "env_proxies", "bypass_proxy", "prepare_body", "check_header",
           "basic_auth", "Phases", "check_timeout", "check_method", "merge_headers",
           "without_headers", "chunked_given", "given_length", "join_url",
           "send_body"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_TOKEN = ("!#$%&'*+-.^_`|~0123456789"
          "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


class Target:
    """A URL taken apart: ``scheme`` ('http'/'https'), ``host`` (no
    brackets), ``port``, ``path`` (the origin-form target: path and
    query), ``authority`` (the Host header), ``auth`` (an Authorization
    header value from ``user:password@``, or None), ``url`` (normalised,
    without userinfo and fragment)."""
    __slots__ = ("scheme", "host", "port", "path", "authority", "auth",
                 "url")

    def __init__(self, scheme, host, port, path, authority, auth, url):
        self.scheme = scheme
        self.host = host
        self.port = port
        self.path = path
        self.authority = authority
        self.auth = auth
        self.url = url

    @property
    def origin(self):
        """``(scheme, host, port)``."""
        return (self.scheme, self.host, self.port)


def basic_auth(user, password):
    """The value of a Basic Authorization header."""
    raw = ("%s:%s" % (user, password)).encode("utf-8")
    return "Basic " + base64.b64encode(raw).decode("ascii")


_url_cache = {}
_CONTROL = re.compile("[\x00-\x20\x7f]")      # C0, space and DEL


def parse_url(url):
    """The :class:`Target` of an ``http://`` or ``https://`` URL (cached);
    raises ``ValueError`` naming what is wrong."""
    t = _url_cache.get(url)
    if t is not None:
        return t
    t = _parse_url(url)
    if len(_url_cache) >= 1024:
        _url_cache.clear()
    _url_cache[url] = t
    return t


def _parse_url(url):
    if not isinstance(url, str):
        raise TypeError("url must be a str, not %s" % type(url).__name__)
    if _CONTROL.search(url):
        raise ValueError("invalid URL %r: it contains whitespace or a "
                         "control character (percent-encode it)" % (url,))
    u = urlsplit(url)
    scheme = u.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError("unsupported URL %r: only http:// and https:// "
                         "URLs can be fetched" % (url,))
    try:
        host = u.hostname
        port = u.port
    except ValueError as e:
        raise ValueError("invalid URL %r: %s" % (url, e)) from None
    if not host:
        raise ValueError("invalid URL %r: no host" % (url,))
    try:
        host.encode("ascii")
    except UnicodeEncodeError:
        host = host.encode("idna").decode("ascii")
    default = _DEFAULT_PORTS[scheme]
    if port is None:
        port = default
    hostpart = "[%s]" % host if ":" in host else host
    authority = hostpart if port == default else "%s:%d" % (hostpart, port)
    path = u.path or "/"
    if u.query:
        path += "?" + u.query
    if not path.isascii():
        # An IRI: its non-ASCII characters go as percent-encoded UTF-8.
        path = quote(path, safe="/?=&;:@!$'()*+,~%[]-._")
    auth = None
    if u.username is not None:
        auth = basic_auth(unquote(u.username), unquote(u.password or ""))
    norm = "%s://%s%s" % (scheme, authority, path)
    return Target(scheme, host, port, path, authority, auth, norm)


# ---------------------------------------------------------------------------
# Headers


_checked = {}


def check_header(name, value):
    """*name* and *value* as str, refused if they could split the head
    (checked pairs are remembered: the same headers come again and
    again)."""
    try:
        got = _checked.get((name, value))
    except TypeError:                    # an unhashable value: refused below
        got = None
    if got is not None:
        return got
    got = _check_header(name, value)
    if len(_checked) >= 4096:
        _checked.clear()
    _checked[(name, value)] = got
    return got


def _check_header(name, value):
    if isinstance(name, bytes):
        name = name.decode("latin-1")
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    elif not isinstance(value, str):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        else:
            raise TypeError("header %r: the value must be str or bytes, "
                            "not %s" % (name, type(value).__name__))
    if not isinstance(name, str) or not name or name.strip(_TOKEN):
        raise ValueError("invalid header name %r (must be a token)"
                         % (name,))
    if "\r" in value or "\n" in value or "\0" in value:
        raise ValueError("header %r: the value contains CR, LF or NUL"
                         % (name,))
    return name, value.strip()


# ---------------------------------------------------------------------------
# Bodies


class Body:
    """A request body ready to send: ``data`` (bytes, or None),
    ``source`` (a file or an iterable, or None), ``length`` (known
    length, or None), ``chunked`` (sent with chunked coding: the length
    is unknown) and ``mark`` (a file's start offset, to send it again
    for a retry or a 307/308 redirect; None when it cannot be sent
    again)."""
    __slots__ = ("data", "source", "length", "chunked", "mark")

    def __init__(self, data=None, source=None, length=None, chunked=False,
                 mark=None):
        self.data = data
        self.source = source
        self.length = length
        self.chunked = chunked
        self.mark = mark

    @property
    def replayable(self):
        return self.source is None or self.mark is not None

    def rewind(self):
        if self.mark is not None:
            self.source.seek(self.mark)

    def pieces(self, size=65536):
        """The body's bytes, piece by piece (not chunk-framed)."""
        if self.data is not None:
            yield self.data
            return
        src = self.source
        if hasattr(src, "read"):
            left = self.length
            while left is None or left > 0:
                piece = src.read(size if left is None else min(size, left))
                if not piece:
                    break
                if not isinstance(piece, (bytes, bytearray, memoryview)):
                    raise TypeError("the body file must be opened in binary "
                                    "mode (read() gave %s)"
                                    % type(piece).__name__)
                if left is not None:
                    left -= len(piece)
                yield piece
            if left:
                raise ValueError("the body file ended %d bytes short of its "
                                 "length" % left)
            return
        left = self.length       # a Content-Length the caller gave
        for piece in src:
            if isinstance(piece, str):
                raise TypeError("the body iterable must give bytes, not str")
            if piece:
                if left is not None:
                    if len(piece) > left:
                        raise ValueError(
                            "the body iterable gave more bytes than the "
                            "Content-Length header (%d)" % self.length)
                    left -= len(piece)
                yield piece
        if left:
            raise ValueError("the body iterable ended %d bytes short of the "
                             "Content-Length header (%d)"
                             % (left, self.length))


def _file_length(f):
    """``(length, mark)`` of a body file: None for a length not known (a
    pipe, a device, a /proc file whose size says 0), sent chunked; None
    for a mark when it cannot be read again."""
    try:
        fd = f.fileno()
    except (AttributeError, OSError, ValueError):
        fd = None
    if fd is not None:
        try:
            st = os.fstat(fd)
        except OSError:
            st = None
        if st is not None and not (stat.S_ISREG(st.st_mode)
                                   and st.st_size > 0):
            try:
                mark = f.tell() if f.seekable() else None
            except (AttributeError, OSError, ValueError):
                mark = None
            return None, mark
        if st is not None:
            try:
                mark = f.tell()
                return st.st_size - mark, mark
            except (AttributeError, OSError, ValueError):
                pass
    try:
        mark = f.tell()
        end = f.seek(0, 2)
        f.seek(mark)
        return end - mark, mark
    except (AttributeError, OSError, ValueError):
        return None, None


def given_length(b, headers):
    """A Content-Length in the caller's *headers* (checked pairs): the
    body *b* is then sent with it, raw, never also chunked; its bytes are
    counted against it.  ``ValueError`` when it cannot be right."""
    given = [v for n, v in headers if n.lower() == "content-length"]
    if not given:
        return
    if len(given) > 1 or not (given[0].isascii() and given[0].isdigit()):
        raise ValueError("invalid Content-Length header %r (one decimal "
                         "number)" % (", ".join(given),))
    if chunked_given(headers):
        raise ValueError("give a Content-Length or Transfer-Encoding: "
                         "chunked header, not both")
    n = int(given[0])
    if b is None:
        if n:
            raise ValueError("the Content-Length header says %d bytes but "
                             "there is no body" % n)
        return
    if b.length is not None and b.length != n:
        raise ValueError("the Content-Length header says %d bytes but the "
                         "body has %d" % (n, b.length))
    b.length = n
    b.chunked = False


def prepare_body(body):
    """A :class:`Body` for bytes, a binary file or an iterable of bytes;
    None for no body."""
    if body is None:
        return None
    if isinstance(body, (bytes, bytearray, memoryview)):
        data = bytes(body)
        return Body(data=data, length=len(data))
    if isinstance(body, str):
        raise TypeError("body must be bytes, a binary file or an iterable "
                        "of bytes, not str (encode it first)")
    if hasattr(body, "read"):
        length, mark = _file_length(body)
        return Body(source=body, length=length, chunked=length is None,
                    mark=mark)
    if hasattr(body, "__iter__"):
        return Body(source=body, chunked=True)
    raise TypeError("body must be bytes, a binary file or an iterable of "
                    "bytes, not %s" % type(body).__name__)


# ---------------------------------------------------------------------------
# Proxies


class Proxy:
    """An HTTP proxy: ``host``, ``port``, ``auth`` (a Proxy-Authorization
    value, or None) and ``url``."""
    __slots__ = ("host", "port", "auth", "url")

    def __init__(self, host, port, auth, url):
        self.host = host
        self.port = port
        self.auth = auth
        self.url = url

    def __repr__(self):
        return "Proxy(%r)" % self.url


def parse_proxy(url):
    """The :class:`Proxy` of ``'http://[user:pass@]host:port'`` (a URL
    without a scheme is taken as http://)."""
    if isinstance(url, Proxy):
        return url
    if not isinstance(url, str):
        raise TypeError("proxy must be a URL str, not %s"
                        % type(url).__name__)
    if "://" not in url:
        url = "http://" + url
    u = urlsplit(url)
    if u.scheme.lower() != "http":
        raise ValueError("unsupported proxy %r: only http:// proxies (which "
                         "tunnel https:// URLs with CONNECT)" % (url,))
    try:
        host, port = u.hostname, u.port or 80
    except ValueError as e:
        raise ValueError("invalid proxy URL %r: %s" % (url, e)) from None
    if not host:
        raise ValueError("invalid proxy URL %r: no host" % (url,))
    auth = None
    if u.username is not None:
        auth = basic_auth(unquote(u.username), unquote(u.password or ""))
    hostpart = "[%s]" % host if ":" in host else host
    return Proxy(host, port, auth, "http://%s:%d" % (hostpart, port))


def _env(name, environ):
    v = environ.get(name)
    if v is None and not (name == "http_proxy"
                          and "REQUEST_METHOD" in environ):
        # The uppercase HTTP_PROXY is what a CGI request's "Proxy:" header
        # becomes (httpoxy): curl and requests ignore it under CGI.
        v = environ.get(name.upper())
    return v.strip() if v and v.strip() else None


class UnusableProxy:
    """A proxy setting of the environment this client cannot use (a
    ``socks5://`` or ``https://`` proxy, a malformed URL): an error only
    for the requests that would go through it (:meth:`fail`), not for
    every client (nor for the hosts ``no_proxy`` lists)."""
    __slots__ = ("url", "variable", "error")

    def __init__(self, url, variable, error):
        self.url = url
        self.variable = variable
        self.error = error

    def fail(self):
        raise ValueError("%s (set by the %s environment variable; "
                         "no_proxy can exempt hosts from it)"
                         % (self.error, self.variable))

    def __repr__(self):
        return "UnusableProxy(%r)" % self.url


def _env_proxy(environ, *names):
    for name in names:
        v = _env(name, environ)
        if v:
            try:
                return parse_proxy(v)
            except ValueError as e:
                return UnusableProxy(v, name, str(e))
    return None


def env_proxies(environ=None):
    """``(http_proxy, https_proxy, no_proxy)`` from the environment: the
    lowercase names first, then the uppercase ones; ``all_proxy`` fills
    in for a missing scheme.  Proxies are :class:`Proxy`, None, or an
    :class:`UnusableProxy` (one that cannot be used: raises when a
    request would go through it)."""
    environ = os.environ if environ is None else environ
    no = _env("no_proxy", environ) or ""
    return (_env_proxy(environ, "http_proxy", "all_proxy"),
            _env_proxy(environ, "https_proxy", "all_proxy"),
            [e for e in no.replace(" ", ",").split(",") if e])


def bypass_proxy(host, port, no_proxy):
    """Whether *host* (and *port*) matches an entry of the ``no_proxy``
    list: ``*``, a domain (``example.com`` or ``.example.com`` matches it
    and its subdomains), ``host:port``, an IP or a CIDR network."""
    host = host.lower().rstrip(".")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    for entry in no_proxy:
        entry = entry.strip().lower()
        if entry == "*":
            return True
        if entry.startswith("[") and "]" in entry:
            e_host, _, e_port = entry[1:].partition("]")
            e_port = e_port.lstrip(":")
        elif entry.count(":") == 1:
            e_host, _, e_port = entry.partition(":")
        else:
            e_host, e_port = entry, ""
        if e_port and e_port != str(port):
            continue
        if ip is not None:
            try:
                if ip in ipaddress.ip_network(e_host, strict=False):
                    return True
            except ValueError:
                pass
            continue
        e_host = e_host.lstrip("*").lstrip(".").rstrip(".")
        if e_host and (host == e_host or host.endswith("." + e_host)):
            return True
    return False


# ---------------------------------------------------------------------------
# Arguments and helpers of Client.request


class Phases:
    """A timeout in two parts, *connect* and *read* seconds (either None:
    unbounded), as the requests adapter passes ``(connect, read)`` to
    :meth:`Client.request` (see there)."""
    __slots__ = ("connect", "read")

    def __init__(self, connect, read):
        self.connect = check_timeout(connect)
        self.read = check_timeout(read)


def check_timeout(timeout):
    if timeout is None:
        return None
    if type(timeout) is Phases:
        return timeout
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
            or not timeout >= 0:
        raise ValueError("timeout must be a number of seconds >= 0 or "
                         "None, not %r" % (timeout,))
    return float(timeout)


_METHODS = {}


def check_method(method):
    m = _METHODS.get(method)
    if m is not None:
        return m
    if not isinstance(method, str):
        raise TypeError("method must be a str, not %s"
                        % type(method).__name__)
    m = method.upper()
    check_header(m, "")              # a token, as a header name is
    if len(_METHODS) < 64:
        _METHODS[method] = m
    return m


def merge_headers(defaults, headers):
    """A list of checked ``(name, value)``: *headers* (a dict or pairs)
    replacing the *defaults* of the same name."""
    out = [check_header(n, v) for n, v in defaults]
    if headers is None:
        return out
    items = headers.items() if hasattr(headers, "items") else headers
    given = [check_header(n, v) for n, v in items]
    names = {n.lower() for n, _ in given}
    return [(n, v) for n, v in out if n.lower() not in names] + given


def without_headers(headers, names):
    if headers is None:
        return None
    return [(n, v) for n, v in headers if n.lower() not in names]


def chunked_given(headers):
    return headers is not None and any(
        n.lower() == "transfer-encoding" and "chunked" in v.lower()
        for n, v in headers)


# What a redirect's Location may hold as it is (RFC 3986's characters);
# anything else is percent-encoded (as UTF-8), as browsers and requests do.
_URL_CHARS = re.compile("[A-Za-z0-9._~:/?#\\[\\]@!$&'()*+,;=%-]*")
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~"


def join_url(base, location):
    """The URL a redirect's *location* (a header value, decoded as
    Latin-1) points to from *base*, without its fragment."""
    loc = location.strip()
    if not _URL_CHARS.fullmatch(loc):
        try:        # the bytes as they came, as UTF-8 when they are
            loc = loc.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
        u = urlsplit(loc)
        loc = urlunsplit((u.scheme, u.netloc, quote(u.path, safe=_URL_SAFE),
                          quote(u.query, safe=_URL_SAFE), ""))
    url = urljoin(base, loc)
    return url.partition("#")[0]


def send_body(conn, b, chunked, deadline):
    if not chunked:
        for piece in b.pieces():
            conn.send(piece, deadline)
        return
    for piece in b.pieces():
        conn.send(b"%x\r\n" % len(piece) + bytes(piece) + b"\r\n", deadline)
    conn.send(b"0\r\n\r\n", deadline)
