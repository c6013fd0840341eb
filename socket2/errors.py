"""socket2's exceptions.

Every failure raises :class:`Error` (a subclass of :class:`OSError`) whose
``err`` attribute is a short, portable name to branch on, whose ``errno`` is
the OS error code (``None`` when the error did not come from the OS) and
whose message says what was being done.
"""
import builtins
import errno as _errno

__all__ = ["Error", "TimeoutError", "TLSError", "err_name"]


class Error(OSError):
    """A socket2 failure.

    ``err`` is a normalised name such as ``'closed'``, ``'timeout'``,
    ``'connection_refused'``, ``'connection_reset'``,
    ``'address_already_in_use'``, ``'access_denied'``, ``'host_not_found'``
    or ``'broken_pipe'``; ``errno`` is the OS code or ``None``.
    """

    def __init__(self, err, message=None, errno=None):
        message = message or err.replace("_", " ")
        if errno is None:
            super().__init__(message)
        else:
            super().__init__(errno, message)
        self.err = err

    def __reduce__(self):
        return (type(self), (self.err, self.strerror or str(self), self.errno))


class TimeoutError(Error, builtins.TimeoutError):
    """An operation ran out of time (``err == 'timeout'``).

    Also an instance of the builtin :class:`TimeoutError`, so code written
    for the standard library catches it unchanged.
    """

    def __init__(self, err="timeout", message=None, errno=None):
        super().__init__(err, message or "timed out", errno)


class TLSError(Error):
    """A TLS failure: ``err`` is ``'certificate_verify_failed'`` when the
    peer's certificate or host name did not verify, ``'tls'`` otherwise;
    ``reason`` is OpenSSL's reason (``'WRONG_VERSION_NUMBER'``,
    ``'CERTIFICATE_VERIFY_FAILED'`` ...) or ``None``."""

    def __init__(self, err="tls", message=None, errno=None, reason=None):
        super().__init__(err, message, errno)
        self.reason = reason

    def __reduce__(self):
        return (type(self), (self.err, self.strerror or str(self),
                             self.errno, self.reason))


_NAMES = {
    _errno.ECONNREFUSED: "connection_refused",
    _errno.ECONNRESET: "connection_reset",
    _errno.ECONNABORTED: "connection_aborted",
    _errno.EADDRINUSE: "address_already_in_use",
    _errno.EADDRNOTAVAIL: "address_not_available",
    _errno.EACCES: "access_denied",
    _errno.EPERM: "access_denied",
    _errno.EPIPE: "broken_pipe",
    _errno.ETIMEDOUT: "timeout",
    _errno.ENETUNREACH: "network_unreachable",
    _errno.EHOSTUNREACH: "host_unreachable",
    _errno.ENETDOWN: "network_down",
    _errno.ENOTCONN: "not_connected",
    _errno.EISCONN: "already_connected",
    _errno.EALREADY: "already_in_progress",
    _errno.EAFNOSUPPORT: "address_family_not_supported",
    _errno.EPROTONOSUPPORT: "protocol_not_supported",
    _errno.EPROTOTYPE: "wrong_protocol_type",
    _errno.EOPNOTSUPP: "operation_not_supported",
    _errno.EINVAL: "invalid_argument",
    _errno.EMFILE: "too_many_open_files",
    _errno.ENFILE: "too_many_open_files",
    _errno.ENOBUFS: "no_buffer_space",
    _errno.ENOMEM: "out_of_memory",
    _errno.EMSGSIZE: "message_too_long",
    _errno.EBADF: "closed",
    _errno.ENOENT: "not_found",
    _errno.ENAMETOOLONG: "name_too_long",
}


# Winsock reports its own numbers (WSAECONNREFUSED ...): the same names.
for _wsa in dir(_errno):
    if _wsa.startswith("WSAE") and getattr(_errno, _wsa[3:], None) in _NAMES:
        _NAMES.setdefault(getattr(_errno, _wsa),
                          _NAMES[getattr(_errno, _wsa[3:])])


def err_name(code):
    """Return the normalised ``err`` name for the OS error number *code*."""
    name = _NAMES.get(code)
    if name is None:
        name = _errno.errorcode.get(code, "errno_%d" % code).lower()
        if name.startswith("wsae"):
            name = name[3:]
    return name


_MESSAGES = {}    # code -> the OS's message: asked once per code


def strerror(code):
    """The OS's message for error *code* (Winsock's too)."""
    msg = _MESSAGES.get(code)
    if msg is not None:
        return msg
    from ._socket_ffi import ffi, lib
    buf = ffi.new("char[]", 256)
    lib.s2_strerror(code, buf, 256)
    msg = ffi.string(buf).decode("utf-8", "replace")
    if not msg or msg.lower().startswith("unknown error"):
        name = err_name(code)     # a system without the message (wine)
        if not name.startswith("errno_"):
            msg = name.replace("_", " ")
    if len(_MESSAGES) < 4096:
        _MESSAGES[code] = msg
    return msg


_MADE = {}        # (code, what) -> (class, err, message): a peer that
#                   resets every connection makes the same error each time


def os_error(code, what):
    """Build the exception for OS error *code* raised while doing *what*."""
    made = _MADE.get((code, what))
    if made is None:
        name = err_name(code)
        made = (TimeoutError if name == "timeout" else Error, name,
                "%s: %s" % (what, strerror(code)))
        if len(_MADE) < 4096:
            _MADE[code, what] = made
    cls, name, message = made
    # What cls(name, message, code) makes, without Error.__init__'s Python
    # frame (a server whose peers reset makes one per connection).
    e = _oserror_new(cls, code, message)
    _oserror_init(e, code, message)
    e.err = name
    return e


_oserror_new = OSError.__new__
_oserror_init = OSError.__init__


def closed_error(what="socket"):
    return Error("closed", "%s is closed" % what)


def taken_error(w, but=_errno.EPIPE):
    """The socket error a poller took with its event and left in the slot
    record *w* (kqueue through libkqueue reads it with SO_ERROR, and the
    kernel then reports a plain end), taken from *w*: its errno, or 0 when
    there is none or it is *but* -- by default EPIPE, the write side's
    news (this end wrote after the peer stopped reading): the data read
    up to the end stands.  Each reader raises it once, where the kernel
    would have raised it."""
    err = w.soerr
    if not err:
        return 0
    w.soerr = 0
    return 0 if err == but else err
