"""Address lookup: ``getaddrinfo()`` results as ``ai`` linked lists.

``addr()`` returns an :class:`AddrInfo` (an *ai*) wrapping the head of the
``struct addrinfo *`` list that the C library returned.  ``ai.next()`` walks
that C list; every node shares one owner, so ``ai.free()`` on any node frees
the whole list, and any later use of any node raises ``socket2.Error`` with
``err == 'freed'`` instead of reading freed memory.  A list nobody freed is
freed when it is garbage-collected.
"""
import os

from ._socket_ffi import ffi, lib
from . import _names
from .errors import Error, os_error
from .hub import get_hub
from . import _offload

__all__ = ["addr", "AddrInfo", "SockAddr", "IPAddr"]

_NO_HOST = ("*", "", None, False)

_GAI_ERRS = {
    lib.EAI_NONAME: "host_not_found",
    lib.EAI_FAIL: "host_not_found",
    lib.EAI_AGAIN: "temporary_failure",
    lib.EAI_SERVICE: "service_not_found",
    lib.EAI_FAMILY: "address_family_not_supported",
    lib.EAI_SOCKTYPE: "socket_type_not_supported",
    lib.EAI_BADFLAGS: "invalid_flags",
    lib.EAI_MEMORY: "out_of_memory",
}
for _code, _name in ((lib.EAI_NODATA, "host_not_found"),
                     (lib.EAI_ADDRFAMILY, "address_family_not_supported")):
    if _code != -1:
        _GAI_ERRS[_code] = _name


class _Owner:
    """Owns one C list; every node and socket address of it refers here."""
    __slots__ = ("root", "keep")

    def __init__(self, root, keep=None):
        self.root = root
        self.keep = keep

    def check(self):
        if self.root is None:
            raise Error("freed", "address list was freed")

    def free(self):
        root, keep = self.root, self.keep
        self.root = self.keep = None
        if root is not None and keep is None:
            ffi.release(root)   # runs freeaddrinfo() now, not at collection


class AddrInfo:
    """One node of an address list (an *ai*): family, type, protocol and
    a socket address (``ai.addr``), plus the link to the next node."""
    __slots__ = ("_owner", "_p")

    def __init__(self, owner, p):
        self._owner = owner
        self._p = p

    def _node(self):
        self._owner.check()
        return self._p

    def free(self):
        """Free the whole list; idempotent.  Later use raises ``Error``."""
        self._owner.free()

    @property
    def freed(self):
        return self._owner.root is None

    def next(self):
        """The next node of the list, or ``None`` at the end."""
        n = self._node().ai_next
        return None if n == ffi.NULL else AddrInfo(self._owner, n)

    def addrs(self):
        """Iterate over this node and the ones after it."""
        node = self
        while node is not None:
            yield node
            node = node.next()

    __iter__ = addrs

    def type(self):
        """``'tcp'``, ``'udp'``, ``'raw'`` (or the number if unnamed)."""
        return _names.type_name(self._node().ai_socktype)

    def family(self):
        """``'inet'``, ``'inet6'``, ``'unix'`` (or the number if unnamed)."""
        return _names.family_name(self._node().ai_family)

    def protocol(self):
        """``'tcp'``, ``'udp'``, ``'icmp'`` ... (``None`` for unix)."""
        p = self._node()
        return _names.protocol_name(p.ai_protocol, p.ai_socktype, p.ai_family)

    def name(self):
        """The canonical host name (set when ``flags`` had
        ``'canonname'``), else ``None``."""
        n = self._node().ai_canonname
        return None if n == ffi.NULL else ffi.string(n).decode("utf-8", "replace")

    @property
    def addr(self):
        """This node's socket address (a :class:`SockAddr`)."""
        p = self._node()
        return SockAddr(p.ai_addr, p.ai_addrlen, self._owner)

    def tostring(self):
        """``'127.0.0.1:80'``, ``'[::1]:80'``, or the path for unix."""
        return self.addr.tostring()

    __str__ = tostring

    def __repr__(self):
        if self._owner.root is None:
            return "<socket2 ai (freed)>"
        return "<socket2 ai %s %s %s>" % (self.family(), self.type(),
                                          self.tostring())


class SockAddr:
    """A socket address (a *sa*): family, port and IP or unix path."""
    __slots__ = ("_p", "_len", "_owner")

    def __init__(self, p, length, owner=None):
        self._p = ffi.cast("struct sockaddr *", p)
        self._len = length
        self._owner = owner   # an _Owner (shares a C list) or a cdata keepalive

    def _sa(self):
        if type(self._owner) is _Owner:
            self._owner.check()
        return self._p

    def family(self):
        """``'inet'``, ``'inet6'`` or ``'unix'``."""
        return _names.family_name(self._sa().sa_family)

    def port(self):
        """The port number (``None`` for unix addresses)."""
        port = lib.s2_sa_port(self._sa())
        return None if port < 0 else port

    def addr(self):
        """The IP address (an :class:`IPAddr`); ``None`` for unix."""
        n = ffi.new("int *")
        p = lib.s2_sa_ipbytes(self._sa(), n)
        if p == ffi.NULL:
            return None
        return IPAddr(self._p.sa_family, bytes(ffi.buffer(p, n[0])))

    def ip(self):
        """The IP address as text (the unix path for unix addresses)."""
        sa = self._sa()
        if sa.sa_family == lib.AF_UNIX:
            return _unix_path(sa, self._len)
        out = ffi.new("char[]", lib.INET6_ADDRSTRLEN + 1)
        r = lib.s2_sa_ip(sa, out, len(out))
        if r < 0:
            raise os_error(-r, "inet_ntop")
        return ffi.string(out).decode("ascii")

    def tostring(self):
        """``'127.0.0.1:80'``, ``'[::1]:80'``, or the path for unix."""
        sa = self._sa()
        if sa.sa_family == lib.AF_UNIX:
            return _unix_path(sa, self._len)
        ip = self.ip()
        if sa.sa_family == lib.AF_INET6:
            ip = "[%s]" % ip
        return "%s:%d" % (ip, self.port())

    __str__ = tostring

    def __eq__(self, other):
        if not isinstance(other, SockAddr):
            return NotImplemented
        a, b = self._sa(), other._sa()
        if a.sa_family == lib.AF_UNIX and b.sa_family == lib.AF_UNIX:
            return self.tostring() == other.tostring()
        return bool(lib.s2_sa_equal(a, b))

    __hash__ = None

    def __repr__(self):
        return "<socket2 sa %s>" % self.tostring()


class IPAddr:
    """An IP address (an *ip*): 4 or 16 bytes."""
    __slots__ = ("_family", "_bytes")

    def __init__(self, family, data):
        self._family = family
        self._bytes = data

    def tobinary(self):
        """The address in network byte order: 4 bytes (IPv4) or 16 (IPv6)."""
        return self._bytes

    def tostring(self):
        """The address as text, e.g. ``'127.0.0.1'`` or ``'::1'``."""
        import ipaddress   # not on any hot path; keeps import time down
        return str(ipaddress.ip_address(self._bytes))

    def family(self):
        return _names.family_name(self._family)

    __str__ = tostring

    def __eq__(self, other):
        if not isinstance(other, IPAddr):
            return NotImplemented
        return self._bytes == other._bytes

    def __hash__(self):
        return hash(self._bytes)

    def __repr__(self):
        return "<socket2 ip %s>" % self.tostring()


def _unix_path(sa, length):
    pp = ffi.new("const char **")
    n = lib.s2_sa_unix_path(sa, length, pp)
    raw = ffi.unpack(pp[0], n) if n else b""
    return os.fsdecode(raw) if not raw.startswith(b"\0") else raw.decode(
        "utf-8", "surrogateescape")


def _encode_host(host):
    if isinstance(host, bytes):
        return host
    if not isinstance(host, str):
        raise TypeError("host must be a str, bytes or None, not %s"
                        % type(host).__name__)
    try:
        return host.encode("ascii")
    except UnicodeEncodeError:
        return host.encode("idna")


def _encode_port(port):
    """Return (service bytes, extra AI flags) for *port*."""
    if port is None:
        return None, 0
    if isinstance(port, bool):
        raise TypeError("port must be an int or a service name, not bool")
    if isinstance(port, int):
        if not 0 <= port <= 65535:
            raise ValueError("port must be 0-65535, got %d" % port)
        return str(port).encode(), lib.AI_NUMERICSERV
    if isinstance(port, (str, bytes)):
        s = port.encode() if isinstance(port, str) else port
        if s.isdigit():
            return _encode_port(int(s))
        return s, 0
    raise TypeError("port must be an int or a service name, not %s"
                    % type(port).__name__)


def _unix_list(path, socktype, protocol):
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if isinstance(path, str):
        path = os.fsencode(path)
    if not isinstance(path, bytes):
        raise TypeError("a unix address needs a path (str or bytes), not %s"
                        % type(path).__name__)
    if not path:
        raise ValueError("a unix address needs a non-empty path")
    node = ffi.new("struct addrinfo *")
    sun = ffi.new("struct sockaddr_un *")
    n = lib.s2_sa_unix_make(sun, path, len(path))
    if n < 0:
        raise Error("name_too_long", "unix socket path too long (%d bytes, "
                    "at most %d)" % (len(path), len(sun.sun_path) - 1), -n)
    node.ai_family = lib.AF_UNIX
    node.ai_socktype = socktype or lib.SOCK_STREAM
    node.ai_protocol = protocol
    node.ai_addr = ffi.cast("struct sockaddr *", sun)
    node.ai_addrlen = n
    return AddrInfo(_Owner(node, (node, sun)), node)


def addr(host="*", port=0, type=None, family="inet", protocol=None,
         flags=None):
    """Look up *host* and *port* with ``getaddrinfo()``; return an *ai*.

    *host* is a name, an IP literal, or ``'*'``/``''``/``None``/``False``
    for "no host" (all interfaces with the ``'passive'`` flag, else
    loopback); for ``family='unix'`` it is the socket path.  *port* is a
    number or a service name.  *type* is ``'tcp'``, ``'udp'``, ``'raw'`` or
    ``None`` for all; *family* ``'inet'``, ``'inet6'``, ``'unix'`` or
    ``None`` for any; *protocol* a name such as ``'tcp'`` or ``'icmp'``;
    *flags* a name, an iterable of names or an int of ``AI_*`` bits
    (``'passive'``, ``'canonname'``, ``'numerichost'``, ``'numericserv'``,
    ``'all'``, ``'v4mapped'``, ``'addrconfig'``).  Integer constants are
    accepted wherever a name is.  An *ai* given as *host* is returned as is.

    Raises ``socket2.Error`` (``err='host_not_found'``,
    ``'service_not_found'`` ...) when the lookup fails, ``TypeError`` or
    ``ValueError`` for bad arguments.
    """
    if isinstance(host, AddrInfo):
        host._owner.check()
        return host
    fam = _names.lookup(_names.FAMILIES, family, "family", allow_none=True)
    socktype = _names.lookup(_names.TYPES, type, "type", allow_none=True) or 0
    proto = _names.lookup(_names.PROTOCOLS, protocol, "protocol",
                          allow_none=True) or 0
    fl = _names.flags_value(flags)
    if fam == lib.AF_UNIX:
        return _unix_list(host, socktype, proto)
    node = ffi.NULL if host in _NO_HOST else _encode_host(host)
    if socktype == lib.SOCK_RAW and not port:
        port = None     # raw sockets have no ports: no service to look up
    serv, extra = _encode_port(port)
    hints = ffi.new("struct addrinfo *")
    hints.ai_flags = fl | extra
    hints.ai_family = lib.AF_UNSPEC if fam is None else fam
    hints.ai_socktype = socktype
    hints.ai_protocol = proto
    serv = ffi.NULL if serv is None else serv
    if node == ffi.NULL or fl & lib.AI_NUMERICHOST or _numeric(node):
        rc, code, root = _getaddrinfo(node, serv, hints)
    else:
        # A name may need DNS: resolve in a worker OS thread so the other
        # threads keep running meanwhile.
        rc, code, root = _offload.run(get_hub(), _getaddrinfo, node, serv,
                                      hints)
    if rc != 0:
        raise _gai_error(rc, code, host, port)
    return AddrInfo(_Owner(root), root)


def _numeric(host):
    """An IP literal (no lookup needed): IPv6 has colons, IPv4 digits."""
    return b":" in host or host.replace(b".", b"").isdigit()


def _getaddrinfo(node, serv, hints):
    """``getaddrinfo()`` in the calling OS thread (a worker, for a name):
    ``(rc, errno, list)``.  The list is owned from the moment it exists
    (freed when the last reference goes): a lookup whose caller was killed
    or timed out while this ran drops its result, list and all."""
    res = ffi.new("struct addrinfo **")
    rc = lib.getaddrinfo(node, serv, hints, res)
    if rc != 0:
        # errno is per OS thread: read it here, in the thread that called.
        return rc, (ffi.errno if rc == lib.EAI_SYSTEM else 0), None
    return 0, 0, ffi.gc(res[0], lib.freeaddrinfo)


def _gai_error(rc, code, host, port):
    what = "getaddrinfo(%r, %r)" % (host, port)
    if rc == lib.EAI_SYSTEM and code:
        return os_error(code, what)
    msg = ffi.string(lib.gai_strerror(rc)).decode("utf-8", "replace")
    return Error(_GAI_ERRS.get(rc, "address_lookup_failed"),
                 "%s: %s" % (what, msg), rc)
