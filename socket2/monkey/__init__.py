"""Make the standard library cooperative, so that libraries written for
blocking sockets and OS threads (requests, urllib3, http.client,
redis-py, SQLAlchemy's pool, psycopg, paramiko, concurrent.futures ...)
run on socket2's hub.

    import socket2.monkey
    socket2.monkey.patch_all()          # first thing, before other imports
    import requests                     # now cooperative

or, with nothing to change in the program::

    python -m socket2.monkey script.py [args]

``patch_all()`` puts the names of ``socket2.green``'s modules (each lists
them in ``__implements__``) into the standard library's: ``socket``,
``ssl``, ``select``/``selectors``, ``time``, ``_thread``/``threading``,
``queue``, ``os``, ``subprocess`` and ``signal``.  Patch before the
libraries are imported: a library that copied a name before (``from
socket import socket``, ``from threading import Lock``, a class derived
from ``threading.Thread``) keeps the blocking one, and ``patch_all`` warns
naming those modules.  What it handles itself:

- ``ssl`` contexts made before patching: the standard ``SSLContext`` class
  gets the cooperative ``sslsocket_class``, which every context consults;
- ``socket`` patched without ``ssl``: TLS would then block the OS thread
  in OpenSSL, so that combination warns;
- ``select.epoll``/``kqueue`` are removed from ``select`` while patched, so
  ``selectors`` and urllib3 pick the cooperative ``poll``;
- locks made by ``threading``/``_thread`` after patching work from real OS
  threads too (``socket2.green.thread`` says how), so the interpreter's
  exit, ``run_in_thread`` workers and C libraries' threads keep working;
- ``os.fork()``: the child's hubs get pollers of their own (see hub.py).

``original(module, name)`` gives back what was there before
(``original('threading', 'Thread')`` starts a real OS thread),
``is_patched(name)`` tells what is patched, ``unpatch_all()`` undoes it
(for tests).
"""
import os
import sys
import warnings

from ._state import (_MISSING, is_patched, mark as _mark, original,
                     restore_all as _restore_all, set_attr as _set)

__all__ = ["patch_all", "is_patched", "original", "unpatch_all", "main"]

_SOCKET_NAMES = ("socket", "create_connection", "create_server",
                 "socketpair", "fromfd", "fromshare", "getaddrinfo",
                 "gethostbyname", "gethostbyname_ex", "gethostbyaddr",
                 "getnameinfo", "getfqdn", "getdefaulttimeout",
                 "setdefaulttimeout")


def _warn(message):
    """Warn, pointing at the code that called into socket2.monkey."""
    level, frame = 2, sys._getframe(1)
    while frame is not None and frame.f_globals.get(
            "__name__", "").startswith(__name__):
        level += 1
        frame = frame.f_back
    warnings.warn("socket2.monkey: " + message, RuntimeWarning,
                  stacklevel=level)


def _holders(objects, skip=()):
    """The modules (other than *skip* and socket2's) whose globals hold one
    of *objects*: copies made before patching."""
    ids = {id(o) for o in objects}
    found = []
    for name, mod in list(sys.modules.items()):
        if mod is None or name in skip or name.startswith("socket2"):
            continue
        try:
            values = list(vars(mod).values())
        except TypeError:
            continue
        if any(id(v) in ids for v in values):
            found.append(name)
    return sorted(found)


def _patch_module(std, green, names=None):
    for name in green.__implements__ if names is None else names:
        if hasattr(green, name):
            _set(std, name, getattr(green, name))


# -- socket, ssl, select, time -----------------------------------------------


def patch_socket():
    import socket as std
    from ..green import socket as green
    _patch_module(std, green, _SOCKET_NAMES)
    _mark("socket")


def patch_ssl():
    import ssl as std
    from ..green import ssl as green
    _set(std.SSLContext, "sslsocket_class", green.SSLSocket)
    _mark("ssl")


def patch_select():
    import select as std
    from ..green import select as green
    _set(std, "select", green.select)
    if hasattr(green, "poll"):
        _set(std, "poll", green.poll)
    for name in ("epoll", "kqueue", "kevent", "devpoll"):
        if hasattr(std, name):
            _set(std, name, _MISSING)
    import selectors as stdsel
    from ..green import selectors as gsel
    blocking = [getattr(stdsel, n) for n in (
        "DefaultSelector", "SelectSelector", "PollSelector", "EpollSelector",
        "KqueueSelector", "DevpollSelector") if hasattr(stdsel, n)]
    for name in ("DefaultSelector", "SelectSelector", "PollSelector"):
        if hasattr(gsel, name):
            _set(stdsel, name, getattr(gsel, name))
    sub = sys.modules.get("subprocess")
    if sub is not None and hasattr(sub, "_PopenSelector"):
        # communicate(timeout=) waits on it: cooperative too.
        _set(sub, "_PopenSelector", gsel.DefaultSelector)
    holders = _holders(blocking, skip=("selectors", "subprocess"))
    if holders:
        _warn("%s took a selector class from selectors before patch_all(): "
              "it keeps the blocking one; patch first (python -m "
              "socket2.monkey)" % ", ".join(holders))
    _mark("select", "selectors")


def patch_time():
    import time as std
    from ..green import time as green
    _set(std, "sleep", green.sleep)
    _mark("time")


# -- threads and queues ------------------------------------------------------

# Standard modules that copy a name of _thread's at import and whose use of
# it is harmless: reprlib's recursion guard, functools' cached_property
# lock (an OS thread's RLock lets every greenlet of that thread in),
# tempfile's lock made once at import.
_HARMLESS_COPIES = ("threading", "_thread", "_threading_local", "queue",
                    "functools", "reprlib", "importlib._bootstrap",
                    "_weakrefset", "logging", "dataclasses", "tempfile")


def _old_thread_subclasses(std_thread, green):
    """Modules with classes derived from the standard ``threading.Thread``
    (so starting real OS threads) other than threading's own."""
    found, todo = set(), list(std_thread.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if issubclass(cls, green.Thread) or cls.__module__ in (
                "threading", green.__name__):
            continue
        found.add(cls.__module__)
    return sorted(found)


def patch_thread():
    """``_thread`` and ``threading`` (and ``_threading_local``)."""
    import _thread
    import threading
    import _threading_local
    from ..green import thread as gthread, threading as gthreading
    if not gthreading.SUPPORTED:
        _warn("thread=True needs Python 3.10 to 3.12 (3.13 changed how "
              "threading starts threads): threading is left unpatched")
        return
    if is_patched("threading"):
        return
    old = [_thread.allocate_lock, _thread.RLock, _thread.get_ident,
           _thread.start_new_thread, _thread._local, threading.RLock,
           threading.Thread, threading.current_thread, threading.Timer,
           threading.local]
    holders = _holders(old, skip=_HARMLESS_COPIES)
    subclassed = _old_thread_subclasses(threading.Thread, gthreading)
    _patch_module(_thread, gthread)
    _patch_module(threading, gthreading)
    _set(_threading_local, "local", gthread._local)
    gthreading.install_fork_hooks()
    _mark("thread", "_thread", "threading", "_threading_local")
    if holders:
        _warn("%s copied names from threading/_thread before patch_all(): "
              "those locks and threads stay the OS thread's (blocking); "
              "patch first (python -m socket2.monkey)" % ", ".join(holders))
    if subclassed:
        _warn("%s derived classes from threading.Thread before patch_all(): "
              "they start real OS threads; patch first (python -m "
              "socket2.monkey)" % ", ".join(subclassed))


def patch_queue():
    """``queue``: ``Queue``, ``LifoQueue`` and ``PriorityQueue`` are
    socket2.green.queue's own (lock-free when nothing waits, safe with real
    OS threads too); ``SimpleQueue`` (C) gets a cooperative version."""
    import queue
    import _queue
    from ..green import queue as gqueue
    holders = _holders([queue.SimpleQueue, queue.Queue, queue.LifoQueue,
                        queue.PriorityQueue], skip=("queue", "_queue"))
    _patch_module(queue, gqueue)
    # Code that asks the C module for it gets the cooperative one too
    # (_queue itself only ever had SimpleQueue).
    _patch_module(_queue, gqueue, ["SimpleQueue"])
    _mark("queue", "_queue")
    if holders:
        _warn("%s copied queue classes before patch_all(): they stay "
              "blocking; patch first (python -m socket2.monkey)"
              % ", ".join(holders))


def patch_os():
    import os as std
    from ..green import os as green
    _patch_module(std, green)
    if std.name == "posix":
        # multiprocessing's pipes (Pool's result handler): see
        # green.os.connection_recv.
        original = green._connection_original("_recv")
        if original is not None:
            from multiprocessing.connection import Connection
            if green._real_connection_recv is None:
                green._real_connection_recv = original
            _set(Connection, "_recv", green.connection_recv)
            if green._real_connection_send is None:
                green._real_connection_send = \
                    green._connection_original("_send")
            _set(Connection, "_send", green.connection_send)
        original = green._semlock_originals()
        if original is not None:
            from multiprocessing.synchronize import SemLock
            if green._real_semlock_make_methods is None:
                green._real_semlock_make_methods = original
            _set(SemLock, "_make_methods", green.semlock_make_methods)
            _set(SemLock, "__enter__", green.semlock_enter)
    _mark("os")


def patch_subprocess():
    import subprocess as std
    from ..green import subprocess as green
    from ..green import selectors as gsel
    _patch_module(std, green)
    if hasattr(std, "_PopenSelector"):
        _set(std, "_PopenSelector", gsel.DefaultSelector)
    _mark("subprocess")


def patch_signal():
    import signal as std
    from ..green import signal as green
    _patch_module(std, green)
    green.wrap_installed()
    _mark("signal")


# -- all ---------------------------------------------------------------------


def patch_all(socket=True, ssl=True, select=True, time=True, thread=True,
              queue=True, subprocess=True, os=True, signal=True):
    """Patch the standard library's ``socket``, ``ssl``, ``select`` (with
    ``selectors``), ``time``, ``_thread``/``threading``, ``queue``, ``os``,
    ``subprocess`` and ``signal`` modules (each may be turned off).  Call
    it before importing the libraries that should cooperate.
    Idempotent."""
    if socket and not ssl:
        _warn("socket patched without ssl: TLS connections would block the "
              "OS thread inside OpenSSL (patch ssl too)")
    if ssl and "ssl" in sys.modules and not is_patched("ssl"):
        _warn("ssl was imported before patch_all(): its contexts cooperate "
              "all the same (the SSLContext class is patched), but code that "
              "wrapped sockets before this call keeps blocking ones")
    if socket and not is_patched("socket"):
        import socket as std
        holders = _holders([std.socket, std.create_connection],
                           skip=("socket", "ssl"))
        if holders:
            _warn("%s copied names from socket before patch_all(): those "
                  "stay blocking; patch first (python -m socket2.monkey)"
                  % ", ".join(holders))
    if queue and not thread:
        _warn("queue patched without thread: queue.Queue waits on "
              "threading's locks, which then block the OS thread")
    # The order matters where one patch builds on another: threading
    # before queue (Queue's locks come from threading) and before
    # subprocess (Popen's wait lock); select before subprocess (its
    # communicate() selector).
    for flag, patch in ((socket, patch_socket), (ssl, patch_ssl),
                        (select, patch_select), (time, patch_time),
                        (thread, patch_thread), (queue, patch_queue),
                        (os, patch_os), (subprocess, patch_subprocess),
                        (signal, patch_signal)):
        if flag:
            patch()


def unpatch_all():
    """Put the standard library's own names back (for tests)."""
    _restore_all()


def main(argv=None):
    """``python -m socket2.monkey script.py [args]``: run the script with
    everything patched before its first line."""
    import runpy
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m socket2.monkey script.py [args...]\n"
              "       python -m socket2.monkey -m module [args...]\n\n"
              "Runs the script (or module) with socket, ssl, select, "
              "selectors, time,\nthreading, queue, os, subprocess and signal "
              "patched by\nsocket2.monkey.patch_all(), so the blocking "
              "libraries it uses cooperate\non socket2's hub.")
        return 0 if argv else 2
    patch_all()
    if argv[0] == "-m":
        if len(argv) < 2:
            print("python -m socket2.monkey: -m needs a module name",
                  file=sys.stderr)
            return 2
        sys.argv = argv[1:]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = argv
        sys.path.insert(0, os.path.dirname(os.path.abspath(argv[0])))
        runpy.run_path(argv[0], run_name="__main__")
    return 0
