"""A cooperative ``select`` module: ``select()`` and ``poll()`` wait on
socket2's hub, for green and non-green descriptors alike.

``epoll``, ``kqueue`` and ``devpoll`` are left out on purpose: code that
looks for them (``selectors``, urllib3) falls back to ``poll``, which
cooperates.

How a wait works: the descriptors are first looked at without waiting (the
real ``select``/``poll`` with a zero timeout).  If none is ready, they go
into a private, level-triggered kernel set of their own (an ``epoll`` or
``kqueue`` instance), whose own descriptor becomes readable when any of
them is ready: the calling thread waits on that one descriptor through the
hub, and then looks again.  Where the OS has neither (Windows), the look
is repeated on the hub's timers, 5 ms apart.
"""
import select as __select__
from select import *  # noqa: F401,F403

from ..hub import clock as _clock, get_hub as _get_hub, sleep as _sleep
from ..hub import seconds_arg as _seconds_arg
from ..errors import Error as _S2Error, TimeoutError as _S2Timeout

__all__ = [n for n in ("select", "poll", "error", "POLLIN", "POLLPRI",
                       "POLLOUT", "POLLERR", "POLLHUP", "POLLNVAL",
                       "POLLRDNORM", "POLLRDBAND", "POLLWRNORM",
                       "POLLWRBAND", "POLLMSG", "POLLRDHUP", "PIPE_BUF")
           if hasattr(__select__, n)]

for _gone in ("epoll", "kqueue", "kevent", "devpoll"):
    globals().pop(_gone, None)
    for _n in [n for n in globals() if n.startswith(("EPOLL", "KQ_"))]:
        del globals()[_n]
del _gone

error = OSError
# The standard functions as they are before patching (patch_all() imports
# this module first; after it, select.select/poll are the green ones).
_real_select = __select__.select
_real_poll = getattr(__select__, "poll", None)
_real_epoll = getattr(__select__, "epoll", None)
_real_kqueue = getattr(__select__, "kqueue", None)
_real_kevent = getattr(__select__, "kevent", None)
_HAS_POLL = _real_poll is not None
_IN = getattr(__select__, "POLLIN", 1) | getattr(__select__, "POLLPRI", 2)
_OUT = getattr(__select__, "POLLOUT", 4)


def _fd(obj):
    if isinstance(obj, int):
        fd = obj
    else:
        fd = obj.fileno()
        if not isinstance(fd, int):
            raise TypeError("fileno() returned a non-integer")
    if fd < 0:
        raise ValueError("file descriptor cannot be a negative integer (%d)"
                         % fd)
    return fd


def _wait_any(fds, deadline):
    """Wait (cooperatively) until one of *fds* ({fd: read?, write?}) may be
    ready or *deadline* passes; return False on timeout."""
    kset = _private_set(fds)
    if kset is None:
        # No kernel set to wait on (Windows): look again on the hub's
        # timers, a few milliseconds later.
        step = 0.005
        if deadline is not None:
            step = min(step, deadline - _clock())
            if step <= 0:
                return False
        _sleep(step)
        return True
    fd, close = kset
    from ..sockets import UDPSocket
    hub = _get_hub()
    holder = UDPSocket._from_fd(fd, 0, 0, 0, hub)
    try:
        hub.wait_readable(holder._w, deadline, fd)
        return True
    except _S2Timeout:
        return False
    finally:
        hub.unregister(fd)
        holder._fd = -1
        close()


def _private_set(fds):
    if _real_epoll is not None:
        ep = _real_epoll()
        try:
            for fd, (r, w) in fds.items():
                ev = (__select__.EPOLLIN | __select__.EPOLLPRI if r else 0) \
                    | (__select__.EPOLLOUT if w else 0)
                ep.register(fd, ev)
        except BaseException:
            ep.close()
            raise
        return ep.fileno(), ep.close
    if _real_kqueue is not None:
        kq = _real_kqueue()
        try:
            changes = []
            for fd, (r, w) in fds.items():
                if r:
                    changes.append(_real_kevent(
                        fd, __select__.KQ_FILTER_READ, __select__.KQ_EV_ADD))
                if w:
                    changes.append(_real_kevent(
                        fd, __select__.KQ_FILTER_WRITE, __select__.KQ_EV_ADD))
            kq.control(changes, 0, 0)
        except BaseException:
            kq.close()
            raise
        return kq.fileno(), kq.close
    return None


def select(rlist, wlist, xlist, timeout=None):
    """The standard ``select.select``, waiting cooperatively."""
    timeout = _seconds_arg(timeout, "timeout")
    deadline = None if timeout is None else _clock() + timeout
    rl, wl, xl = list(rlist), list(wlist), list(xlist)
    fds = {}
    for objs, i in ((rl, 0), (wl, 1), (xl, 0)):
        for o in objs:
            r, w = fds.get(_fd(o), (False, False))
            fds[_fd(o)] = (r or i == 0, w or i == 1)
    while True:
        ready = _real_select(rl, wl, xl, 0)
        if any(ready) or timeout == 0:
            return ready
        if not fds:
            _sleep(timeout if timeout is not None else 0)
            if timeout is None:
                continue
            return [], [], []
        if not _wait_any(fds, deadline):
            return [], [], []


class _Poll:
    """The standard ``select.poll`` object, waiting cooperatively."""

    def __init__(self):
        self._fds = {}

    def register(self, fd, eventmask=_IN | _OUT):
        self._fds[_fd(fd)] = eventmask

    def modify(self, fd, eventmask):
        fd = _fd(fd)
        if fd not in self._fds:
            raise FileNotFoundError(2, "No such file or directory")
        self._fds[fd] = eventmask

    def unregister(self, fd):
        del self._fds[_fd(fd)]

    def _now(self):
        p = _real_poll()
        for fd, mask in self._fds.items():
            p.register(fd, mask)
        return p.poll(0)

    def poll(self, timeout=None):
        """Events as ``[(fd, event)]``; *timeout* in milliseconds."""
        if timeout is not None:
            timeout = float(timeout)
            timeout = None if timeout < 0 else timeout / 1000.0
        deadline = None if timeout is None else _clock() + timeout
        while True:
            ready = self._now()
            if ready or timeout == 0:
                return ready
            fds = {fd: (bool(m & _IN), bool(m & _OUT))
                   for fd, m in self._fds.items()}
            if not fds:
                if timeout is not None:
                    _sleep(timeout)
                    return []
                raise _S2Error("deadlock", "poll() with nothing registered "
                               "and no timeout would wait forever")
            if not _wait_any(fds, deadline):
                return []


if _HAS_POLL:
    def poll():
        """A cooperative ``select.poll`` object."""
        return _Poll()
