"""Socket options by name: ``s.setopt('tcp_nodelay', True)``.

The table is built from the compiled headers; an option this system lacks
is still a known name, and using it says so.
"""
from ._socket_ffi import ffi, lib
from .errors import Error

_LEVELS = {"so": lib.SOL_SOCKET, "tcp": lib.IPPROTO_TCP,
           "ip": lib.IPPROTO_IP, "ipv6": lib.IPPROTO_IPV6}

# name: kind ('bool', 'int', 'linger', 'str'); the C constant is the
# upper-cased name, looked up in the compiled module.
_KINDS = {
    "so_reuseaddr": "bool", "so_reuseport": "bool", "so_keepalive": "bool",
    "so_broadcast": "bool", "so_dontroute": "bool", "so_oobinline": "bool",
    "so_linger": "linger", "so_rcvbuf": "int", "so_sndbuf": "int",
    "so_rcvlowat": "int", "so_sndlowat": "int", "so_error": "int",
    "so_type": "int", "so_priority": "int", "so_mark": "int",
    "so_bindtodevice": "str",
    "tcp_nodelay": "bool", "tcp_keepidle": "int", "tcp_keepintvl": "int",
    "tcp_keepcnt": "int", "tcp_quickack": "bool", "tcp_cork": "bool",
    "tcp_nopush": "bool", "tcp_fastopen": "int", "tcp_user_timeout": "int",
    "ip_ttl": "int", "ip_tos": "int", "ip_multicast_ttl": "int",
    "ip_multicast_loop": "bool", "ip_recverr": "bool",
    "ipv6_v6only": "bool", "ipv6_unicast_hops": "int",
    "ipv6_multicast_hops": "int", "ipv6_multicast_loop": "bool",
}
_READ_ONLY = {"so_error", "so_type"}

OPTIONS = {}        # name -> (level, optname, kind) for what this OS has
for _name, _kind in _KINDS.items():
    _opt = getattr(lib, _name.upper(), -1)
    if _opt != -1:
        OPTIONS[_name] = (_LEVELS[_name.split("_", 1)[0]], _opt, _kind)


def _lookup(name):
    if not isinstance(name, str):
        raise TypeError("option name must be a str, not %s"
                        % type(name).__name__)
    key = name.lower()
    try:
        return key, OPTIONS[key]
    except KeyError:
        if key in _KINDS:
            raise Error("unsupported", "option %r is not supported on this "
                        "system" % name) from None
        raise ValueError("unknown socket option %r (valid: %s)" % (
            name, ", ".join(sorted(OPTIONS)))) from None


def setopt(sock, name, value):
    key, (level, opt, kind) = _lookup(name)
    if key in _READ_ONLY:
        raise ValueError("option %r is read-only" % name)
    if kind == "bool":
        val = ffi.new("int *", 1 if value else 0)
    elif kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("option %r needs an int, not %s"
                            % (name, type(value).__name__))
        val = ffi.new("int *", value)
    elif kind == "linger":
        # None/False: off (close returns at once); seconds: linger that long
        # (0 resets the connection on close).
        val = ffi.new("struct linger *")
        if value is not None and value is not False:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise TypeError("so_linger needs None or seconds >= 0")
            val.l_onoff, val.l_linger = 1, value
    else:
        data = value.encode() if isinstance(value, str) else bytes(value)
        val = ffi.new("char[]", data)
    size = len(val) if kind == "str" else ffi.sizeof(ffi.typeof(val).item)
    r = lib.s2_setsockopt(sock._fd, level, opt, val, size)
    if r < 0:
        raise sock._fail(r, "setopt(%r)" % name)


def getopt(sock, name):
    key, (level, opt, kind) = _lookup(name)
    if kind == "linger":
        val = ffi.new("struct linger *")
    elif kind == "str":
        val = ffi.new("char[]", 256)
    else:
        val = ffi.new("int *")
    size = ffi.new("socklen_t *", len(val) if kind == "str"
                   else ffi.sizeof(ffi.typeof(val).item))
    r = lib.s2_getsockopt(sock._fd, level, opt, val, size)
    if r < 0:
        raise sock._fail(r, "getopt(%r)" % name)
    if kind == "bool":
        return bool(val[0])
    if kind == "int":
        return val[0]
    if kind == "linger":
        return val.l_linger if val.l_onoff else None
    return ffi.string(val, size[0]).decode("utf-8", "replace")
