"""A cooperative ``signal`` module: the standard library's, with Python
signal handlers that never run inside a hub's own greenlet.

Python runs a signal handler in the main OS thread, in whatever greenlet
is running when the signal is checked -- often the hub's loop, asleep in
its poller (which is how ``signal.alarm``/``setitimer`` wake a sleeping
hub: the poller returns on ``EINTR``, the handler runs, the loop goes
on).  A handler that waits there (joins a thread, takes a lock a
socket2 thread holds, does I/O) would block the whole OS thread.  So a
handler installed through this module's :func:`signal` runs

- inline when the main program's greenlet (the root) is the one running,
  exactly as without socket2: its exception is raised there;
- in the socket2 thread that was running, if one was (it may wait
  there cooperatively), or else (the hub's own greenlets were running)
  in a new socket2 thread at the hub's next turn; an exception it raises
  (``KeyboardInterrupt``, an alarm's ``TimeoutError``) is raised at once
  in the main program's greenlet, where the standard library would have
  raised it, and the interrupted thread goes on -- unless a handler is
  still running (inline, or waiting in a thread of its own): then the
  exception is raised in the innermost such handler, as it would be
  without socket2.  (A handler inline in a socket2 thread holds that
  thread while it waits: a signal that thread would have sent meanwhile
  comes later.)  In a thread of its
  own it runs as the main thread, as the standard library's do:
  ``get_ident()`` and ``current_thread()`` are the main thread's, and an
  ``RLock`` the main program holds is the handler's to take again.
  (Inline in an interrupted socket2 thread it runs as that thread.)

The handlers installed before patching (Python's ``default_int_handler``
for SIGINT) are put under the same rules by ``socket2.monkey``.

``getsignal()`` returns the handler as it was given.
"""
import signal as __signal__
from signal import *  # noqa: F401,F403

from greenlet import getcurrent

from ..hub import Thread as _S2Thread, _existing_hub
from ._locks import _AS_MAIN

__implements__ = ["signal", "getsignal"]
__all__ = [n for n in dir(__signal__) if not n.startswith("_")]

_real_signal = __signal__.signal
_real_getsignal = __signal__.getsignal

# The greenlets running a handler (inline in a socket2 thread, _call, or
# in a thread of its own, _run), innermost last: a signal that comes
# meanwhile happens inside the innermost one, as it would in the main
# thread without socket2 -- its handler's exception is raised there.
_ACTIVE = []


class _Handler:
    """A user's handler as installed (see the module docstring)."""

    __slots__ = ("handler",)

    def __init__(self, handler):
        self.handler = handler

    def __call__(self, signum, frame):
        try:
            g = getcurrent()
        except RuntimeError:    # the interpreter finalizes: greenlet
            return self.handler(signum, frame)  # refuses, no thread runs
        hub = _existing_hub()
        if g.parent is None or hub is None or hub._closed:
            return self.handler(signum, frame)
        if g is hub.greenlet or g is hub._waker:
            # The hub's own greenlets: a thread of its own, which acts as
            # the main thread (see _run).
            hub.schedule(_S2Thread(hub, self._run, (hub, signum, frame), {},
                                   name="signal handler")._g)
        elif g in _ACTIVE:
            # It interrupts another handler as it runs: raised there, as
            # it would be in the main thread without socket2 (the outer
            # handler may catch it; else its _call or _run passes it on).
            return self.handler(signum, frame)
        else:
            # Inline in the socket2 thread that was running (yielding from
            # here, in the middle of whatever it ran, broke the hub's run
            # queue under a storm of signals: a fourth review).
            self._call(hub, g, signum, frame)

    def _call(self, hub, g, signum, frame):
        _ACTIVE.append(g)
        try:
            self.handler(signum, frame)
        except BaseException as e:   # noqa: B902 - the main program's
            _pass_on(hub, g, e)
        finally:
            _ACTIVE.remove(g)

    def _run(self, hub, signum, frame):
        g = getcurrent()
        was = _AS_MAIN.get(g)       # (a handler interrupted by another)
        _AS_MAIN[g] = hub.thread_ident      # it acts for the main thread
        _ACTIVE.append(g)
        try:
            self.handler(signum, frame)
        except BaseException as e:   # noqa: B902 - the main program's
            _pass_on(hub, g, e)
        finally:
            _ACTIVE.remove(g)
            if was is None:
                _AS_MAIN.pop(g, None)
            else:
                _AS_MAIN[g] = was


def _pass_on(hub, g, e):
    """A handler run in *g* raised *e*: it goes where the standard library
    would raise it, into the innermost other handler still running (this
    signal came while that one waited), else into the main program."""
    for outer in reversed(_ACTIVE):
        if outer is not g and not outer.dead:
            hub._throw(outer, e)
            return
    if not hub._main.dead:
        hub._throw(hub._main, e)


def signal(signalnum, handler):
    """``signal.signal``: install *handler* for *signalnum* (run as the
    module docstring says) and return the previous handler."""
    if callable(handler) and handler not in (SIG_DFL, SIG_IGN):
        installed = _Handler(handler)
    else:
        installed = handler
    return _unwrap(_real_signal(signalnum, installed))


def getsignal(signalnum):
    """``signal.getsignal``: the handler as it was given."""
    return _unwrap(_real_getsignal(signalnum))


def _unwrap(handler):
    return handler.handler if isinstance(handler, _Handler) else handler


def wrap_installed():
    """Put the handlers installed before patching (Python's own
    ``default_int_handler`` for SIGINT, say) under the same rules; from
    the main OS thread only (elsewhere nothing can be installed)."""
    for signum in range(1, NSIG):
        try:
            handler = _real_getsignal(signum)
            if callable(handler) and not isinstance(handler, _Handler):
                _real_signal(signum, _Handler(handler))
        except (OSError, ValueError):
            continue        # not settable here, or not a signal
