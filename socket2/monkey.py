"""Make the standard library cooperative, so that libraries written for
blocking sockets (requests, urllib3, http.client, redis-py, smtplib ...)
run their I/O on socket2's hub.

    import socket2.monkey
    socket2.monkey.patch_all()          # first thing, before other imports
    import requests                     # now cooperative

or, with nothing to change in the program::

    python -m socket2.monkey script.py [args]

``patch_all(socket=True, ssl=True, select=True, time=True)`` puts the names
of ``socket2.green.socket``, ``.ssl``, ``.select``, ``.selectors`` and
``.time`` into the standard library's modules.  Patch before the libraries
are imported: a library that copied a name before (``from socket import
socket``, ``selectors.DefaultSelector`` chosen at import) keeps the
blocking one, and ``patch_all`` warns when it finds ``selectors`` or other
users of the names already imported.  What it handles itself:

- ``ssl`` contexts made before patching: the standard ``SSLContext`` class
  gets the cooperative ``sslsocket_class``, which every context consults;
  no class is replaced, so nothing recurses;
- ``socket`` patched without ``ssl``: TLS would then block the OS thread
  in OpenSSL, so that combination warns;
- ``select.epoll``/``kqueue`` are removed from ``select`` while patched, so
  ``selectors`` and urllib3 pick the cooperative ``poll``;
- host names are IDNA-encoded before a worker thread resolves them;
- ``os.fork()``: the child's hubs get pollers of their own (see hub.py).
"""
import os
import sys
import warnings

__all__ = ["patch_all", "is_patched", "unpatch_all"]

_SAVED = {}          # (module name, attribute) -> original (or _MISSING)
_PATCHED = set()
_MISSING = object()

_SOCKET_NAMES = ("socket", "SocketType", "create_connection", "create_server",
                 "socketpair", "fromfd", "fromshare", "getaddrinfo",
                 "gethostbyname", "gethostbyname_ex", "gethostbyaddr",
                 "getnameinfo", "getfqdn", "getdefaulttimeout",
                 "setdefaulttimeout")


def _set(module, name, value):
    key = ("%s.%s" % (module.__module__, module.__name__)
           if isinstance(module, type) else module.__name__, name)
    if key not in _SAVED:
        _SAVED[key] = getattr(module, name, _MISSING)
    if value is _MISSING:
        if hasattr(module, name):
            delattr(module, name)
    else:
        setattr(module, name, value)


def _warn(message):
    warnings.warn("socket2.monkey: " + message, RuntimeWarning, stacklevel=3)


def patch_socket():
    import socket as std
    from .green import socket as green
    for name in _SOCKET_NAMES:
        if hasattr(green, name):
            _set(std, name, getattr(green, name))
    _PATCHED.add("socket")


def patch_ssl():
    import ssl as std
    from .green import ssl as green
    _set(std.SSLContext, "sslsocket_class", green.SSLSocket)
    _PATCHED.add("ssl")


def patch_select():
    import select as std
    from .green import select as green
    _set(std, "select", green.select)
    if hasattr(green, "poll"):
        _set(std, "poll", green.poll)
    for name in ("epoll", "kqueue", "kevent", "devpoll"):
        if hasattr(std, name):
            _set(std, name, _MISSING)
    import selectors as stdsel
    from .green import selectors as gsel
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
    _PATCHED.add("select")
    _PATCHED.add("selectors")


def patch_time():
    import time as std
    from .green import time as green
    _set(std, "sleep", green.sleep)
    _PATCHED.add("time")


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


def patch_all(socket=True, ssl=True, select=True, time=True):
    """Patch the standard library's ``socket``, ``ssl``, ``select`` (with
    ``selectors``) and ``time`` modules (each may be turned off).  Call it
    before importing the libraries that should cooperate.  Idempotent."""
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
    if socket:
        patch_socket()
    if ssl:
        patch_ssl()
    if select:
        patch_select()
    if time:
        patch_time()


def is_patched(name):
    """Whether the standard module *name* (``'socket'``, ``'ssl'``,
    ``'select'``, ``'selectors'``, ``'time'``) is patched."""
    return name in _PATCHED


def unpatch_all():
    """Put the standard library's own names back (for tests)."""
    import importlib
    for (modname, name), value in _SAVED.items():
        if modname == "ssl.SSLContext":
            target = importlib.import_module("ssl").SSLContext
        else:
            target = importlib.import_module(modname)
        if value is _MISSING:
            if hasattr(target, name):
                delattr(target, name)
        else:
            setattr(target, name, value)
    _SAVED.clear()
    _PATCHED.clear()


def main(argv=None):
    """``python -m socket2.monkey script.py [args]``: run the script with
    everything patched before its first line."""
    import runpy
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m socket2.monkey script.py [args...]\n"
              "       python -m socket2.monkey -m module [args...]\n\n"
              "Runs the script (or module) with socket, ssl, select, "
              "selectors and time\npatched by socket2.monkey.patch_all(), "
              "so the blocking libraries it\nuses cooperate on socket2's hub.")
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


if __name__ == "__main__":
    # Run as socket2.monkey, not as __main__: the state (what is patched)
    # must be the one that "import socket2.monkey" finds.
    from socket2.monkey import main as _main
    sys.exit(_main())
