"""Name tables: the strings socket2 accepts (``'tcp'``, ``'inet6'``,
``'passive'``, ``'so_reuseaddr'`` ...) and the C constants they stand for.

Everything here is generated from the compiled C headers
(``socket2._socket_ffi``): no numbers are written down in Python.
"""
from ._socket_ffi import lib

FAMILIES = {"inet": lib.AF_INET, "inet6": lib.AF_INET6, "unix": lib.AF_UNIX}
TYPES = {"tcp": lib.SOCK_STREAM, "udp": lib.SOCK_DGRAM, "raw": lib.SOCK_RAW}
PROTOCOLS = {
    "ip": lib.IPPROTO_IP,
    "ipv6": lib.IPPROTO_IPV6,
    "tcp": lib.IPPROTO_TCP,
    "udp": lib.IPPROTO_UDP,
    "raw": lib.IPPROTO_RAW,
    "icmp": lib.IPPROTO_ICMP,
    "igmp": 2,  # IPPROTO_IGMP: fixed by IANA, absent from some headers
    "icmpv6": lib.IPPROTO_ICMPV6,
}
FLAGS = {
    "passive": lib.AI_PASSIVE,
    "canonname": lib.AI_CANONNAME,
    "cannonname": lib.AI_CANONNAME,  # the original library's spelling
    "numerichost": lib.AI_NUMERICHOST,
    "numericserv": lib.AI_NUMERICSERV,
    "all": lib.AI_ALL,
    "v4mapped": lib.AI_V4MAPPED,
    "addrconfig": lib.AI_ADDRCONFIG,
}

_FAMILY_NAMES = {v: k for k, v in FAMILIES.items()}
_TYPE_NAMES = {v: k for k, v in TYPES.items()}
_PROTOCOL_NAMES = {v: k for k, v in PROTOCOLS.items()}


def lookup(table, value, what, allow_none=False):
    """Map a name (or the int constant itself) to its constant.

    Raises ``ValueError`` for an unknown name, listing the valid ones, and
    ``TypeError`` for a value of the wrong type.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool):
        raise TypeError("%s must be a name or an int, not bool" % what)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return table[value.lower()]
        except KeyError:
            raise ValueError("unknown %s %r (expected one of: %s)" % (
                what, value, ", ".join(sorted(table)))) from None
    raise TypeError("%s must be a name or an int, not %s" % (
        what, type(value).__name__))


def flags_value(flags):
    """Combine ``flags`` given as a name, an iterable of names or an int."""
    if flags is None:
        return 0
    if isinstance(flags, (str, int)) and not isinstance(flags, bool):
        return lookup(FLAGS, flags, "flag")
    try:
        items = iter(flags)
    except TypeError:
        raise TypeError("flags must be a name, an iterable of names or an "
                        "int, not %s" % type(flags).__name__) from None
    value = 0
    for f in items:
        value |= lookup(FLAGS, f, "flag")
    return value


def family_name(value):
    return _FAMILY_NAMES.get(value, value)


def type_name(value):
    return _TYPE_NAMES.get(value, value)


def protocol_name(value, socktype=None, family=None):
    """Name a protocol number; 0 (the kernel's default) is named after the
    protocol the type implies, and is ``None`` for unix sockets."""
    if value == 0:
        if family == lib.AF_UNIX:
            return None
        if socktype == lib.SOCK_STREAM:
            return "tcp"
        if socktype == lib.SOCK_DGRAM:
            return "udp"
    return _PROTOCOL_NAMES.get(value, value)
