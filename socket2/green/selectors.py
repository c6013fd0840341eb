"""A cooperative ``selectors`` module: the standard library's, with
``DefaultSelector`` a selector over the cooperative ``select.poll`` (or
``select.select`` where there is no poll).  The epoll/kqueue selectors are
left out: they would wait in the kernel, not on the hub."""
import selectors as __selectors__
from selectors import *  # noqa: F401,F403

from . import select as _gselect

__all__ = ["BaseSelector", "SelectSelector", "DefaultSelector",
           "SelectorKey", "EVENT_READ", "EVENT_WRITE"]
for _n in ("EpollSelector", "KqueueSelector", "DevpollSelector"):
    globals().pop(_n, None)


class SelectSelector(__selectors__.SelectSelector):
    """``selectors.SelectSelector`` over the cooperative ``select``."""

    def _select(self, r, w, _, timeout=None):
        r, w, x = _gselect.select(r, w, w, timeout)
        return r, w + x, []


if hasattr(_gselect, "poll"):
    class PollSelector(__selectors__.PollSelector):
        """``selectors.PollSelector`` over the cooperative ``poll``."""
        _selector_cls = staticmethod(_gselect.poll)

    __all__.append("PollSelector")
    DefaultSelector = PollSelector
else:
    DefaultSelector = SelectSelector
