"""The kernel pollers, one file each, and the one place one is chosen.

Adding a poller is adding a module here (a class with the surface that
``EpollPoller``'s docstring lists) and its cffi build script in
``socket2/ffi/``.

``SOCKET2_POLLER`` (read at import) names the backend; without it, the best
one this build has is used.  Each backend module is imported only when
chosen, and only exists where its cffi module was built.
"""
import os
import sys
import _thread
import types

from .. import _hotpath
from ..errors import Error

_BACKENDS = {
    "epoll": ("socket2.pollers.epoll", "EpollPoller"),
    "kqueue": ("socket2.pollers.kqueue", "KqueuePoller"),
    "poll": ("socket2.pollers.poll", "PollPoller"),
    "iocp": ("socket2.pollers.iocp", "IocpPoller"),
}
# Native first: epoll on Linux (even where libkqueue adds kqueue), kqueue on
# macOS/BSD, IOCP on Windows; poll(2) wherever none exists.
_DEFAULT_ORDER = ("epoll", "kqueue", "iocp", "poll")

_choice = os.environ.get("SOCKET2_POLLER", "").strip().lower() or None
_local = _thread._local()


def _load(name):
    import importlib
    try:
        module, cls = _BACKENDS[name]
    except KeyError:
        raise Error("unsupported", "unknown poller %r (known: %s)" % (
            name, ", ".join(sorted(_BACKENDS)))) from None
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as e:
        raise Error("unsupported", "the %s poller is not available in this "
                    "build (%s)" % (name, e)) from None


def available():
    """Names of the pollers this build can use."""
    names = []
    for name in _BACKENDS:
        try:
            _load(name)
        except Error:
            continue
        names.append(name)
    return names


def backend_name():
    """The name of the poller new hubs use."""
    if _choice is not None:
        return _choice
    for name in _DEFAULT_ORDER:
        try:
            _load(name)
            return name
        except Error:
            continue
    raise Error("unsupported", "no poller is available in this build")


def preset(name, fd):
    """Record the poller (its *name* and the shared handle *fd*) the next
    hub of this OS thread will use."""
    _load(name)     # raises if this build has no such poller
    _local.preset = (name, fd)


def make_poller(name=None):
    """A new poller: *name*'s, else the configured or best one, using the
    handle preset for this OS thread if any."""
    preset = getattr(_local, "preset", None)
    _local.preset = None
    if preset is not None:
        name, fd = preset
        return _load(name)(fd)
    return _load(name or backend_name())()


class _PollersModule(types.ModuleType):
    """``socket2.pollers()`` is also the list of the pollers this build has
    (the package is callable, as the function it replaced was)."""

    def __call__(self):
        return available()


sys.modules[__name__].__class__ = _PollersModule


def completion_based():
    """Whether this build's pollers complete operations (IOCP) instead of
    reporting readiness: the socket layer then uses its completion-based
    I/O loops.  Every backend of one build is of the same kind, so this is
    decided once."""
    try:
        cls = _load(backend_name())
    except Error:
        return False
    return getattr(cls, "completion_based", False)


# -- the slot record the hub keeps per registered fd -------------------------

# Waiters (the reader/writer slots of one fd) is part of the hot path: it is
# compiled, or its Python twin (socket2/_hotpath.py chooses).
Waiters = _hotpath.Waiters


class TryFirstWaiters(Waiters):
    """For backends whose edges are not exact: rready cannot be cleared, so
    every recv tries the system call first."""
    __slots__ = ()

    @property
    def rready(self):
        return True

    @rready.setter
    def rready(self, value):
        pass
