"""A cooperative ``select`` module: ``select()`` and ``poll()`` wait on
socket2's hub, for green and non-green descriptors alike.

``epoll``, ``kqueue`` and ``devpoll`` are left out on purpose: code that
looks for them (``selectors``, urllib3) falls back to ``poll``, which
cooperates.

How a wait works: the descriptors are first looked at without waiting (the
real ``select``/``poll`` with a zero timeout).  If none is ready, the
calling thread parks in the hub's slots of all of them at once and looks
again when any of them has an event (see "waiting through the hub" below):
no kernel object is made per call, so a process that has used up its
descriptors can still wait, as with the standard library.  Where the OS
reports no readiness (Windows' completion ports), the look is repeated on
the hub's timers, 5 ms apart.

``select([], [], [])`` with no timeout sleeps until the thread is killed,
as the standard one sleeps until a signal (if nothing else in the OS
thread can ever wake anyone, the hub says so: ``socket2.Error('deadlock')``).
"""
import errno as _errno
import select as __select__
import sys as _sys
from select import *  # noqa: F401,F403

from greenlet import getcurrent

from .. import pollers as _pollers
from ..hub import _OWNERS, _existing_hub, _nap_until, clock as _clock
from ..hub import get_hub as _get_hub
from ..hub import seconds_arg as _seconds_arg, sleep as _sleep
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
_finalizing = _sys.is_finalizing
_real_poll = getattr(__select__, "poll", None)
_HAS_POLL = _real_poll is not None
_COMPLETION = _pollers.completion_based()
_PRI = getattr(__select__, "POLLPRI", 2)
_IN = getattr(__select__, "POLLIN", 1) | _PRI
_OUT = getattr(__select__, "POLLOUT", 4)
# What a poll() mask asks for, as the hub can watch it: readable, writable,
# and exceptional (no edge of its own, see below).
_MASK_R = getattr(__select__, "POLLIN", 1) | getattr(__select__,
                                                     "POLLRDNORM", 0)
_MASK_W = _OUT | getattr(__select__, "POLLWRNORM", 0) | getattr(
    __select__, "POLLWRBAND", 0)
_MASK_PRI = _PRI | getattr(__select__, "POLLRDBAND", 0)


def _fd(obj):
    """*obj*'s descriptor, as the standard library finds it (``fileno()``
    called once; ``TypeError`` for an object without one)."""
    if isinstance(obj, int):
        fd = int(obj)
    else:
        try:
            fileno = obj.fileno
        except AttributeError:
            raise TypeError("argument must be an int, or have a fileno() "
                            "method.") from None
        fd = fileno()
        if not isinstance(fd, int):
            raise TypeError("fileno() returned a non-integer")
    if fd < 0:
        raise ValueError("file descriptor cannot be a negative integer (%d)"
                         % fd)
    return fd


# -- waiting through the hub --------------------------------------------------
#
# A select()/poll() that finds nothing ready parks its greenlet in the hub's
# reader/writer slot of every descriptor it watches, like a recv() parks in
# one: the hub's own registration of a socket of this OS thread, or one
# made for the wait (and deleted after it) for any other descriptor.  No
# kernel object is made per call.  The rules that keep this right:
#
# - A wake-up is a hint: the caller looks again (a zero-timeout
#   select/poll) before it reports anything.
# - A wait that held a registration's reader slot leaves its rready True
#   (the edge it took was not read by anyone; see _hotpath.Waiters).
# - The slots stay free for the socket's own calls: a green socket that
#   has to wait where a select() is parked makes it let go (_let_go) and
#   takes the slot; the select looks again and, finding the slot taken
#   (or a descriptor that another OS thread's hub owns on a kernel set
#   shared with this one), falls back to looking every few milliseconds on
#   the hub's timers.  (A socket2 socket's own calls do not know about
#   select(): a thread waiting in one while another selects on the same
#   socket in the same direction gets socket2's "busy" error.)
# - Whoever wakes a parked select() out of one slot (a close) runs it at
#   once (hub._throw) or first calls _let_go_greenlet(), so it gives up
#   its other slots before anything else can resume it.
# - Exceptional conditions (urgent data: POLLPRI, select's xlist) have no
#   edge of their own in the hub's registrations: a wait that asks for them
#   looks again at least every _PRI_STEP seconds.

_STEP = 0.005        # the fallback's period
_PRI_STEP = 0.05     # the longest wait when exceptional conditions count
_HOLDS = {}          # a Waiters -> the _Hold parked in its slot(s)
_BY_GREENLET = {}    # a greenlet -> its _Hold


class _Hold:
    """One select()/poll() wait parked in several slots of one hub."""
    __slots__ = ("hub", "g", "slots", "temps", "done")

    def __init__(self, hub, g):
        self.hub = hub
        self.g = g
        self.slots = []     # (Waiters, write, fd)
        self.temps = []     # (fd, Waiters) registered for this wait only
        self.done = False

    def park(self, fds):
        """Take a slot for each of *fds* ({fd: (read, write)}); return
        False (holding nothing) where one cannot be had."""
        hub = self.hub
        fdmap = hub._fdmap
        for fd, (r, wr) in fds.items():
            w = fdmap.get(fd)
            if w is None:
                w = _register(hub, fd)
                if w is None:
                    return False
                self.temps.append((fd, w))
            if (r and w.rg is not None) or (wr and w.wg is not None):
                return False          # someone waits there already
            if r:
                self.slots.append((w, 0, fd))
            if wr:
                self.slots.append((w, 1, fd))
        g, arm = self.g, hub._arm
        for w, write, fd in self.slots:
            if write:
                w.wg = g
            else:
                w.rg = g
            _HOLDS[w] = self
            if arm is not None:
                arm(fd, write)    # kqueue: watch it for this wait
        _BY_GREENLET[g] = self
        hub._core.nio += 1
        return True

    def release(self):
        """Give back every slot and registration (idempotent)."""
        if self.done:
            return
        self.done = True
        g, hub = self.g, self.hub
        if _BY_GREENLET.get(g) is self:
            del _BY_GREENLET[g]
            hub._core.nio -= 1
        for w, write, _ in self.slots:
            if _HOLDS.get(w) is self:
                del _HOLDS[w]
            if write:
                if w.wg is g:
                    w.wg = None
            else:
                if w.rg is g:
                    w.rg = None
                w.rready = True
        for fd, w in self.temps:
            if hub._fdmap.get(fd) is w:
                if w.soerr:
                    _hand_on_error(hub, fd, w.soerr)
                hub.unregister(fd)


def _register(hub, fd):
    """Register *fd* with *hub* for one wait; None if it cannot be."""
    owner = _OWNERS.get(fd)
    if owner is not None and owner is not hub and getattr(
            hub.poller, "shared", False):
        # Another hub's socket, and a kernel set shared with other hubs:
        # its events would be forwarded to its owner, not to this wait.
        return None
    try:
        w = hub.register(fd)
    except (OSError, _S2Error):
        return None           # not pollable this way
    if owner is not None and owner is not hub:
        # Another OS thread's socket (a registration of its own in its
        # hub's set): this one, in this hub's set, does not take it over.
        _OWNERS[fd] = owner
    return w


def _hand_on_error(hub, fd, err):
    """This wait's registration of another OS thread's socket took the
    socket's error with its event (kqueue through libkqueue reads it with
    SO_ERROR, which clears it in the kernel): the socket's own
    registration keeps it, so its next read raises it (green socket's
    _g_taken) instead of reading a reset as the end."""
    owner = _OWNERS.get(fd)
    if owner is not None and owner is not hub:
        w = owner._fdmap.get(fd)
        if w is not None and not w.soerr:
            w.soerr = err


def _let_go(w):
    """A thread of this hub needs *w*'s slot where a select() is parked:
    the select gives up its wait and looks again at its next turn."""
    hold = _HOLDS.get(w)
    if hold is not None and not hold.done:
        hold.release()
        hold.hub.schedule(hold.g)


def _let_go_fd(hub, fd):
    """A socket of this hub is about to register *fd*: a select() that
    registered it for its own wait gives it up (see _let_go)."""
    w = hub._fdmap.get(fd)
    if w is not None:
        _let_go(w)


def _let_go_greenlet(g):
    """*g* is being woken out of one slot (a close): if it is a select()
    parked in several, it gives up all of them first, so nothing else
    resumes it before its turn."""
    hold = _BY_GREENLET.get(g)
    if hold is not None:
        hold.release()


def _block(fds, deadline, pri):
    """_wait_any where no switch can be made: the OS thread blocks in the
    standard poll() (select() where the OS has no poll)."""
    left = None if deadline is None else max(0.0, deadline - _clock())
    if _HAS_POLL:       # (select() refuses descriptors above FD_SETSIZE)
        p = _real_poll()
        for fd, (r, w) in fds.items():
            p.register(fd, (_IN if pri else _MASK_R) * r | _OUT * w)
        return bool(p.poll(None if left is None else left * 1000.0))
    rl = [fd for fd, (r, _) in fds.items() if r]
    wl = [fd for fd, (_, w) in fds.items() if w]
    if not rl and not wl and deadline is not None:
        _nap_until(deadline)    # (Windows' select() refuses no sockets)
        return False
    return bool(any(_real_select(rl, wl, rl if pri else [], left)))


def _wait_any(fds, deadline, pri=False):
    """Wait (cooperatively) until one of *fds* ({fd: (read?, write?)}) may
    be ready or *deadline* passes; return False on timeout.  *pri*:
    exceptional conditions count too (see above)."""
    if _finalizing():
        # The interpreter finalizes (a __del__ of a module's global):
        # greenlet refuses to switch, so the wait blocks the thread.
        return _block(fds, deadline, pri)
    try:
        hub = _get_hub()
    except _S2Error as e:
        if e.err != "closed":
            raise
        # This OS thread is ending and its hub closed (a finalizer of a
        # threading.local value): the wait blocks the thread.
        return _block(fds, deadline, pri)
    until, look_again = deadline, False
    if pri:
        limit = _clock() + _PRI_STEP
        if until is None or limit < until:
            until, look_again = limit, True
    if fds and not _COMPLETION:
        hold = _Hold(hub, getcurrent())
        try:
            if hold.park(fds):
                try:
                    hub.suspend(until)
                except _S2Timeout:
                    return look_again
                except _S2Error as e:   # a socket2 socket was closed
                    if e.err != "closed":
                        raise
                except OSError as e:    # a green socket was closed
                    if e.errno != _errno.EBADF:
                        raise
                return True
        finally:
            hold.release()
    # Nothing to park on (a completion port reports no readiness, a slot
    # is taken, or only exceptional conditions are asked for): look again
    # on the hub's timers, a little later.
    step = _PRI_STEP if not fds else _STEP
    if until is not None:
        step = min(step, until - _clock())
        if step <= 0:
            return look_again
    _sleep(step)
    return True


def _let_others_run():
    """A select()/poll() that answers at once still lets the other ready
    threads of this OS thread run first (as gevent's does): a loop around
    one that always finds something ready (an asyncore server whose
    sockets are always writable) would otherwise never let the peer it
    waits for run.  Nothing happens outside a socket2 thread (the hub's
    own greenlets, an OS thread without a hub)."""
    hub = _existing_hub()
    if hub is None or getattr(hub, "_closed", False) or _finalizing():
        return
    g = getcurrent()
    if g is hub.greenlet or g is hub._waker:
        return
    _sleep(0)


def select(rlist, wlist, xlist, timeout=None):
    """The standard ``select.select``, waiting cooperatively."""
    if _finalizing():   # (no switch can be made: the standard one)
        return _real_select(rlist, wlist, xlist, timeout)
    timeout = _seconds_arg(timeout, "timeout")
    deadline = None if timeout is None else _clock() + timeout
    # Each object's fileno() is called once, here (as the standard select
    # does); the looks below are at the numbers.
    rl = [(o, _fd(o)) for o in rlist]
    wl = [(o, _fd(o)) for o in wlist]
    xl = [(o, _fd(o)) for o in xlist]
    fds = {}
    for pairs, write in ((rl, False), (wl, True)):
        for _, fd in pairs:
            r, w = fds.get(fd, (False, False))
            fds[fd] = (r or not write, w or write)
    rn, wn, xn = ([fd for _, fd in pairs] for pairs in (rl, wl, xl))
    waited = False
    while True:
        ready = _real_select(rn, wn, xn, 0)
        if any(ready) or timeout == 0:
            if not waited:
                _let_others_run()
            return tuple([o for o, fd in pairs if fd in got]
                         for pairs, got in zip((rl, wl, xl),
                                               map(set, ready)))
        if not fds and not xl:
            # Nothing to wait for: sleep out the timeout (or for good, as
            # the standard select does until a signal).
            _sleep(timeout)
            return [], [], []
        if not _wait_any(fds, deadline, bool(xl)):
            return [], [], []
        waited = True


_MAKE = object()


class _Poll:
    """The standard ``select.poll`` object, waiting cooperatively (made by
    :func:`poll`: like the standard type, the class itself cannot be
    instantiated)."""

    __slots__ = ("_fds",)

    def __new__(cls, *args, **kwargs):
        if args != (_MAKE,) or kwargs:
            raise TypeError("cannot create '%s.%s' instances"
                            % (cls.__module__, cls.__qualname__))
        return object.__new__(cls)

    def __init__(self, _make):
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
        if _finalizing():   # (no switch can be made: the standard one)
            p = _real_poll()
            for fd, mask in self._fds.items():
                p.register(fd, mask)
            return p.poll(timeout)
        if timeout is not None:
            timeout = float(timeout)
            timeout = None if timeout < 0 else timeout / 1000.0
        deadline = None if timeout is None else _clock() + timeout
        waited = False
        while True:
            ready = self._now()
            if ready or timeout == 0:
                if not waited:
                    _let_others_run()   # see select()
                return ready
            fds = {}
            pri = False
            for fd, m in self._fds.items():
                if m & (_MASK_R | _MASK_W):
                    fds[fd] = (bool(m & _MASK_R), bool(m & _MASK_W))
                if m & _MASK_PRI:
                    pri = True
            if not self._fds:
                if timeout is not None:
                    _sleep(timeout)
                    return []
                raise _S2Error("deadlock", "poll() with nothing registered "
                               "and no timeout would wait forever")
            if not _wait_any(fds, deadline, pri):
                return []
            waited = True


if _HAS_POLL:
    def poll():
        """A cooperative ``select.poll`` object."""
        return _Poll(_MAKE)
