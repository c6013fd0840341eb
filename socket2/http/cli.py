"""``python -m socket2.http MODULE:APP``: serve a WSGI application.

    python -m socket2.http hello:app                      # 127.0.0.1:8000
    python -m socket2.http hello:app --bind [::1]:0 --workers 4
    python -m socket2.http hello:create_app() --bind unix:/run/app.sock
    python -m socket2.http hello:app --certfile c.pem --keyfile k.pem

``MODULE`` is imported with the current directory first on ``sys.path``
(as gunicorn does), before any worker starts: its errors end the command
with status 2 and one line on stderr, as do a bad address, a port in use
and a certificate without its key.  Every limit of
:class:`socket2.http.Limits` has its flag (``--header-timeout 10``);
``--help`` lists them.

``--workers 1`` (the default) serves in this process.  ``--workers N``
forks N workers that share the port: on Linux each binds its own listener
with ``SO_REUSEPORT`` (the kernel spreads connections among them); elsewhere,
and for unix sockets, they inherit the parent's listener.  The parent
restarts a worker that dies (see socket2/http/_workers.py).

SIGTERM: stop accepting, let requests in flight finish within
``--graceful-timeout`` seconds, exit 0.  SIGINT (Ctrl-C): stop at once.
(An application that blocks the whole OS thread -- a call socket2 does
not make cooperative -- cannot be stopped meanwhile: served in this
process, the exit waits until it returns; with ``--workers N`` the
parent kills such a worker 2 s after the timeout.)
"""
import argparse
import importlib
import os
import ssl
import sys
import traceback

import socket2
from .limits import Limits
from . import _workers

__all__ = ["main", "build_parser", "load_app", "parse_bind"]

_PROG = "python -m socket2.http"
_METAVAR = {"bytes": "BYTES", "count": "N", "seconds": "SECONDS"}
_UNIT = {"bytes": " bytes", "count": "", "seconds": " s"}
# SO_REUSEPORT spreads connections among the listeners only on Linux
# (macOS gives every connection to the last one bound).
_SPREADS = sys.platform.startswith("linux") and "so_reuseport" in socket2.OPTIONS


class UsageError(Exception):
    """A bad command line or an application that cannot be loaded: one line
    on stderr, exit status 2."""


def build_parser():
    """The argument parser: the SPEC's options, then one per limit."""
    p = argparse.ArgumentParser(
        prog=_PROG, description="Serve the WSGI application APP of MODULE "
        "with socket2's HTTP/1.1 server.")
    p.add_argument("app", metavar="MODULE:APP", help="the application: "
                   "hello:app, or pkg.mod:make_app() to call a factory")
    p.add_argument("--bind", "-b", default="127.0.0.1:8000",
                   metavar="ADDRESS", help="HOST:PORT, [IPV6]:PORT or "
                   "unix:PATH (default: %(default)s; port 0: any free one)")
    p.add_argument("--workers", "-w", type=int, default=1, metavar="N",
                   help="worker processes sharing the port (default: 1, "
                   "serve in this process)")
    p.add_argument("--certfile", metavar="FILE",
                   help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--keyfile", metavar="FILE",
                   help="the certificate's private key (PEM)")
    p.add_argument("--access-log", action="store_true",
                   help="one line per request on stderr (Common Log Format)")
    p.add_argument("--graceful-timeout", type=float, default=30.0,
                   metavar="SECONDS", help="after SIGTERM, how long requests "
                   "in flight may take to finish (default: %(default)g)")
    limits = p.add_argument_group(
        "limits", "what a client may send, and how slowly (see "
        "socket2.http.Limits); a limit whose default is unbounded also "
        "takes 'none'")
    for name, default, kind, text in Limits.FIELDS:
        shown = "unbounded" if default is None else \
            "%g%s" % (default, _UNIT[kind])
        limits.add_argument(
            "--" + name.replace("_", "-"), dest=name, default=None,
            type=_limit_type(kind, default is None), metavar=_METAVAR[kind],
            help="%s (default: %s)" % (text, shown))
    return p


class _Unbounded:
    """The value of a limit flag given as ``none``."""


def _limit_type(kind, optional):
    number = float if kind == "seconds" else int

    def convert(text):
        if optional and text.lower() in ("none", "unbounded"):
            return _Unbounded
        return number(text)
    convert.__name__ = number.__name__
    return convert


def limits_from(args):
    """The :class:`Limits` the command line asks for."""
    given = {}
    for name, _, _, _ in Limits.FIELDS:
        value = getattr(args, name)
        if value is not None:
            given[name] = None if value is _Unbounded else value
    try:
        return Limits(**given)
    except (TypeError, ValueError) as e:
        raise UsageError(str(e).replace("Limits: ", "--").replace("_", "-")) \
            from None


# -- the application ------------------------------------------------------------

def load_app(spec):
    """Import ``MODULE:APP`` and return the WSGI callable (``APP`` may be a
    dotted attribute path, and end in ``()`` to call a factory).  Raises
    :class:`UsageError` naming what was wrong."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError("expected MODULE:APP (e.g. hello:app), got %r" % spec)
    call = attr.endswith("()")
    if call:
        attr = attr[:-2]
    if not all(part.isidentifier() for part in attr.split(".")):
        raise UsageError("%r is not an attribute name (MODULE:APP or "
                         "MODULE:FACTORY())" % attr)
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = _import(module_name)
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError("module %r has no attribute %r" % (
                module_name, attr)) from None
    if call:
        if not callable(obj):
            raise UsageError("%s:%s is not callable: cannot call it as a "
                             "factory" % (module_name, attr))
        try:
            obj = obj()
        except Exception:   # noqa: B902 - the user's factory, reported
            traceback.print_exc()
            raise UsageError("calling the factory %s:%s() failed"
                             % (module_name, attr)) from None
    if not callable(obj):
        raise UsageError("%s is not a WSGI application: a %s is not callable"
                         % (spec, type(obj).__name__))
    return obj


def _import(name):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name is not None and (name == e.name
                                   or name.startswith(e.name + ".")):
            raise UsageError("no module named %r (looked in %s and "
                             "sys.path)" % (e.name, os.getcwd())) from None
        traceback.print_exc()
        raise UsageError("importing %r failed: %s" % (name, e)) from None
    except Exception as e:   # noqa: B902 - the user's module, reported
        traceback.print_exc()
        raise UsageError("importing %r failed: %s: %s"
                         % (name, type(e).__name__, e)) from None


# -- addresses, TLS ----------------------------------------------------------

def parse_bind(text):
    """``(family, host, port)`` of a ``--bind`` value; for ``unix:PATH``,
    ``('unix', PATH, None)``.  Raises :class:`UsageError`."""
    bad = "bad --bind %r: expected HOST:PORT, [IPV6]:PORT or unix:PATH"
    if text.startswith("unix:"):
        if not text[5:]:
            raise UsageError(bad % text)
        return "unix", text[5:], None
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        family = "inet6"
    else:
        host, sep, port = text.rpartition(":")
        family = "inet"
    if not sep or not host or ":" in host and family == "inet" \
            or not port.isdigit() or int(port) > 65535:
        raise UsageError(bad % text)
    return family, host, int(port)


def make_tls(certfile, keyfile):
    """The server's ``ssl.SSLContext``, or None without a certificate."""
    if certfile is None and keyfile is None:
        return None
    if certfile is None or keyfile is None:
        raise UsageError("--certfile and --keyfile go together (got only "
                         "--%s)" % ("certfile" if keyfile is None
                                    else "keyfile"))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as e:
        raise UsageError("cannot load --certfile %s / --keyfile %s: %s"
                         % (certfile, keyfile, e)) from None
    return ctx


def _url(family, host, port, tls):
    if family == "unix":
        return "unix:" + host
    if family == "inet6":
        host = "[%s]" % host
    return "%s://%s:%d" % ("https" if tls else "http", host, port)


def _listen(family, host, port, reuseport=False, listen=True):
    """A socket2 ``tcp`` bound to the address (listening unless told
    not); a failure is a :class:`UsageError`."""
    lst = socket2.tcp(family)
    try:
        if family == "unix":
            _clear_stale_unix(host)
        if reuseport:
            lst.setopt("so_reuseport", True)
        if listen:
            lst.listen(host, port)
        else:
            lst.setopt("so_reuseaddr", True)
            lst.bind(host, port)
    except socket2.Error as e:
        lst.close()
        where = host if family == "unix" else _url(family, host, port, False)
        raise UsageError("cannot listen on %s: %s" % (where, e)) from None
    return lst


def _clear_stale_unix(path):
    """Remove a unix socket file nobody listens on (a server's leftover)."""
    import socket
    import stat
    try:
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            return      # bind() says "in use": not ours to delete
    except OSError:
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)
    except OSError:
        pass
    finally:
        probe.close()


# -- running -------------------------------------------------------------

def main(argv=None):
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except UsageError as e:
        sys.stderr.write("%s: error: %s\n" % (_PROG, e))
        return 2


def _run(args):
    if args.workers < 1:
        raise UsageError("--workers must be at least 1, not %d" % args.workers)
    if not args.graceful_timeout > 0:
        raise UsageError("--graceful-timeout must be > 0 seconds")
    if args.workers > 1 and not hasattr(os, "fork"):
        raise UsageError("--workers needs os.fork(), which this OS lacks")
    family, host, port = parse_bind(args.bind)
    limits = limits_from(args)
    tls = make_tls(args.certfile, args.keyfile)
    app = load_app(args.app)
    kwargs = {"tls": tls, "limits": limits,
              "access_log": sys.stderr if args.access_log else None,
              "environ": {"wsgi.multiprocess": args.workers > 1}}
    reuse = args.workers > 1 and family != "unix" and _SPREADS
    # With SO_REUSEPORT the parent only holds the port (bound, never
    # listening: it gets no connections); the workers listen on it.
    lst = _listen(family, host, port, reuseport=reuse, listen=not reuse)
    if family != "unix":
        port = lst.local_port

    def started():
        n = args.workers
        sys.stderr.write("socket2.http: serving %s on %s (%d worker%s)\n" % (
            args.app, _url(family, host, port, tls), n, "" if n == 1 else "s"))
        sys.stderr.flush()

    try:
        if args.workers == 1:
            started()
            return _workers.serve_until_signal([lst], app, kwargs,
                                               args.graceful_timeout)
        return _supervise(args, lst, app, kwargs, reuse, (family, host, port),
                          started)
    finally:
        lst.close()     # (a worker never gets here: it ends in os._exit)
        if family == "unix":
            try:
                os.unlink(host)
            except OSError:
                pass


def _supervise(args, lst, app, kwargs, reuse, address, started):
    parent = os.getpid()

    def child(ready):
        if reuse:
            lst.close()
            try:
                mine = _listen(*address, reuseport=True)
            except UsageError as e:
                sys.stderr.write("%s: worker %d: %s\n"
                                 % (_PROG, os.getpid(), e))
                return 2
        else:
            mine = lst
        ready()
        # A worker whose parent died (SIGKILL) must not serve on for ever.
        stops = socket2.Queue()
        orphan = socket2.runevery(1.0, _stop_if_orphaned, parent, stops, [])
        try:
            return _workers.serve_until_signal(
                [mine], app, kwargs, args.graceful_timeout, stops=stops)
        finally:
            orphan.cancel()

    sup = _workers.Supervisor(args.workers, child, args.graceful_timeout,
                              on_ready=started, before_stop=lst.close)
    return sup.run()


def _stop_if_orphaned(parent, stops, said):
    if os.getppid() != parent and not said:
        said.append(True)
        sys.stderr.write("socket2.http: worker %d: the parent %d is gone; "
                         "stopping\n" % (os.getpid(), parent))
        stops.put(_workers.GRACEFUL)
