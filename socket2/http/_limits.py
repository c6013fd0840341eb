"""Argument checks and small mappings that both parser twins share."""

__all__ = ["check_limits", "method_kind"]

# The parser allocates by its limits: no size above a gigabyte, no count
# above 65535 (32 bytes of offsets each).
_MAX_SIZE = 1 << 30
_MAX_COUNT = 65535

# The request methods that change a response's framing (the C's
# S2H_METHOD_*): HEAD (no body) and CONNECT (a 2xx opens a tunnel).
_KINDS = {b"HEAD": 1, b"CONNECT": 2, "HEAD": 1, "CONNECT": 2}


def method_kind(method):
    """The framing class of the request *method* a response answers."""
    return _KINDS.get(method, 0)


def check_limits(**limits):
    """Refuse limits the parser cannot work with, naming the bad one: each
    keyword is a limit's name, the last one a count, the others sizes."""
    names = list(limits)
    for name in names:
        value = limits[name]
        low, high = (0, _MAX_COUNT) if name == names[-1] else (1, _MAX_SIZE)
        if type(value) is not int or not low <= value <= high:
            raise ValueError("%s must be an int in [%d, %d], not %r"
                             % (name, low, high, value))
