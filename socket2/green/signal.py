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
  raised it, and the interrupted thread goes on -- unless what it
  interrupted is another handler: the exception is raised there, in the
  outer handler, as it would be without socket2.  In a thread of its
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

# The socket2 threads running a handler inline (_Handler._call): a signal
# that comes meanwhile is the handler's to take (raised in it).
_IN_HANDLER = {}
_real_getsignal = __signal__.getsignal


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
        elif g in _IN_HANDLER or (_AS_MAIN and g in _AS_MAIN):
            # It interrupts another handler (inline here, or in a thread
            # of its own acting as the main thread, see _run): raised
            # there, as it would be in the main thread without socket2
            # (the outer handler may catch it; else the outer one's
            # _call or _run passes it on to the main program).
            return self.handler(signum, frame)
        else:
            # Inline in the socket2 thread that was running (yielding from
            # here, in the middle of whatever it ran, broke the hub's run
            # queue under a storm of signals: a fourth review).
            self._call(hub, g, signum, frame)

    def _call(self, hub, g, signum, frame):
        _IN_HANDLER[g] = True
        try:
            self.handler(signum, frame)
        except BaseException as e:   # noqa: B902 - the main program's
            if not hub._main.dead:
                hub._throw(hub._main, e)
        finally:
            _IN_HANDLER.pop(g, None)

    def _run(self, hub, signum, frame):
        g = getcurrent()
        was = _AS_MAIN.get(g)       # (a handler interrupted by another)
        _AS_MAIN[g] = hub.thread_ident      # it acts for the main thread
        try:
            self.handler(signum, frame)
        except BaseException as e:   # noqa: B902 - the main program's
            if not hub._main.dead:
                hub._throw(hub._main, e)
        finally:
            if was is None:
                _AS_MAIN.pop(g, None)
            else:
                _AS_MAIN[g] = was


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
