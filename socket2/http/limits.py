"""The HTTP server's limits (SPEC.md, "HTTP", ``socket2.http.Limits``).

One object holds every bound the server enforces, each with the status it
answers when a client goes past it:

=============================  =======  =====================================
limit                          default  past it
=============================  =======  =====================================
``max_request_line``           8190     414, connection closed
``max_header_bytes``           32768    431, connection closed
``max_headers``                100      431, connection closed
``header_timeout``             30 s     408 (the head of a request must
                                        arrive whole within it), closed
``keepalive_timeout``          75 s     an idle keep-alive connection is
                                        closed (no response)
``max_requests_per_connection`` None    the last one is answered with
                                        ``Connection: close``
``body_timeout``               60 s     a request body stalled this long
                                        between two reads: ``wsgi.input``
                                        raises ``socket2.TimeoutError``;
                                        the connection is closed
``max_body``                   None     413 before the application runs
                                        (``Content-Length``) or when the
                                        chunked body passes it
``send_timeout``               60 s     a client that does not read its
                                        response for this long is dropped
=============================  =======  =====================================

Sizes are bytes, times seconds.  ``None`` means unbounded.
"""

__all__ = ["Limits"]

_SIZE, _COUNT, _SECONDS = "bytes", "count", "seconds"


class Limits:
    """The server's limits; ``serve(limits=Limits(...))`` takes one.

    Every keyword is optional (see the module docstring for defaults and
    what each answers).  Values are checked here: a wrong type or a value
    out of range raises ``TypeError``/``ValueError`` naming the limit.
    ``Limits.FIELDS`` lists ``(name, default, kind, help)`` for each, so a
    command line can offer them all.
    """

    FIELDS = (
        ("max_request_line", 8190, _SIZE,
         "longest request line (method, target, version); 414 past it"),
        ("max_header_bytes", 32768, _SIZE,
         "largest header section; 431 past it"),
        ("max_headers", 100, _COUNT,
         "most header fields in a request; 431 past it"),
        ("header_timeout", 30.0, _SECONDS,
         "a request head must arrive whole within this; 408 past it"),
        ("keepalive_timeout", 75.0, _SECONDS,
         "an idle keep-alive connection is closed after this"),
        ("max_requests_per_connection", None, _COUNT,
         "requests served on one connection before closing it"),
        ("body_timeout", 60.0, _SECONDS,
         "longest wait for the next piece of a request body"),
        ("max_body", None, _SIZE,
         "largest request body; 413 past it"),
        ("send_timeout", 60.0, _SECONDS,
         "longest wait for a client to take more of its response"),
    )
    __slots__ = tuple(f[0] for f in FIELDS)

    def __init__(self, **kwargs):
        for name, default, kind, _ in self.FIELDS:
            value = kwargs.pop(name, default)
            object.__setattr__(self, name, _check(name, value, kind,
                                                  default is None))
        if kwargs:
            raise TypeError("Limits() got unknown limit(s): %s (known: %s)"
                            % (", ".join(sorted(kwargs)),
                               ", ".join(self.__slots__)))

    def __setattr__(self, name, value):
        raise AttributeError("Limits are read-only; make a new one: "
                             "Limits(%s=...)" % name)

    def replace(self, **changes):
        """A copy with *changes* applied."""
        values = {n: getattr(self, n) for n in self.__slots__}
        values.update(changes)
        return Limits(**values)

    def __eq__(self, other):
        if type(other) is not Limits:
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n)
                   for n in self.__slots__)

    __hash__ = None

    def __repr__(self):
        return "Limits(%s)" % ", ".join(
            "%s=%r" % (n, getattr(self, n)) for n in self.__slots__)


def _check(name, value, kind, optional):
    if value is None:
        if optional:
            return None
        raise ValueError("Limits: %s cannot be None" % name)
    if kind == _SECONDS:
        if type(value) not in (int, float):
            raise TypeError("Limits: %s must be a number of seconds, not %s"
                            % (name, type(value).__name__))
        if not value > 0 or value != value or value == float("inf"):
            raise ValueError("Limits: %s must be > 0 seconds and finite, "
                             "not %r" % (name, value))
        return float(value)
    if type(value) is not int:
        raise TypeError("Limits: %s must be an int, not %s"
                        % (name, type(value).__name__))
    # The parser allocates by its limits: keep them within what it takes.
    high = 65535 if kind == _COUNT and name == "max_headers" else 1 << 62
    if name in ("max_request_line", "max_header_bytes"):
        high = 1 << 30
    if not 1 <= value <= high:
        raise ValueError("Limits: %s must be in [1, %d], not %r"
                         % (name, high, value))
    return value
