"""A gunicorn worker class that serves with socket2's HTTP server.

    gunicorn -k socket2.http.gunicorn.Worker --workers 4 hello:app

gunicorn's arbiter binds the sockets, forks the workers, restarts them and
stops them; each worker runs :func:`socket2.http.serve` on every socket it
was given, one socket2 thread per connection.

What the worker takes from gunicorn's settings:

- ``--graceful-timeout``: after SIGTERM a worker stops accepting and lets
  requests in flight finish within it (a little less, so that it ends
  before the arbiter's SIGKILL); SIGINT and SIGQUIT stop it at once.
- ``--timeout``: the worker tells the arbiter it is alive from a socket2
  timer, so a worker whose loop is stuck (an application that blocks the
  OS thread) is killed and replaced as with any worker class.
- ``--max-requests`` (and its jitter): after that many requests the worker
  stops gracefully and the arbiter starts a new one.
- ``--certfile``/``--keyfile`` and the other TLS settings: gunicorn's own
  ``ssl_context``.
- ``--limit-request-line`` and ``--limit-request-fields`` become
  :class:`socket2.http.Limits`' ``max_request_line`` and ``max_headers``;
  ``--keep-alive N`` its ``keepalive_timeout`` (``0``: one request per
  connection).  ``--limit-request-field_size`` has no per-field
  counterpart: socket2 bounds the whole header block (``max_header_bytes``).
- ``--access-logfile``: socket2's Common Log Format line goes to gunicorn's
  access logger; ``--access-logformat`` is not applied.
- ``--worker-connections`` is not applied: a worker takes every connection
  it is offered (each costs a socket and, while it is busy, a greenlet);
  bound them with the OS (``ulimit -n``) or in front of gunicorn.

The application is imported by gunicorn in each worker, as usual; the
worker does not monkey-patch anything (use ``python -m socket2.monkey``, or
patch in a ``post_fork`` hook, if the application uses blocking
libraries).
"""
import os
import signal
import sys

try:
    from gunicorn.sock import ssl_context as _ssl_context
    from gunicorn.workers.base import Worker as _BaseWorker
except ImportError as e:
    raise ImportError("socket2.http.gunicorn needs gunicorn: pip install "
                      "gunicorn (or: pip install 'socket2[gunicorn]')") from e

import socket2
from . import _workers
from .limits import Limits

__all__ = ["Worker"]

# The worker ends its drain this long before the arbiter's SIGKILL.
_MARGIN = 0.5


class Worker(_BaseWorker):
    """gunicorn worker: socket2's HTTP server on gunicorn's sockets."""

    def init_signals(self):
        """gunicorn's signals, except those that stop the worker or reopen
        its logs: a socket2 thread handles those (see socket2/http/
        _workers.py on why a handler does no socket2 work itself)."""
        super().init_signals()
        self._watch = _workers.SignalWatch(
            (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1))

    def _on_signal(self, signum):
        if signum == signal.SIGUSR1:
            self.log.reopen_files()
            return None
        self.alive = False
        if signum == signal.SIGTERM:
            return _workers.GRACEFUL
        self.cfg.worker_int(self)
        return _workers.NOW

    def run(self):
        """Serve until gunicorn stops this worker."""
        self._stops = socket2.Queue()
        listeners = [_workers.adopt_stream(s.sock) for s in self.sockets]
        app = self.wsgi
        if self.max_requests < sys.maxsize:
            app = self._counting(app)
        kwargs = {"tls": _ssl_context(self.cfg) if self.cfg.is_ssl else None,
                  "limits": self._limits(),
                  "access_log": _AccessLog(self.log)
                  if self._access_logged() else None,
                  "environ": {"wsgi.multiprocess": self.cfg.workers > 1}}
        self.notify()
        # self.timeout is half the arbiter's; 0 when it checks nothing.
        beat = socket2.runevery(self.timeout / 2 if self.timeout > 0 else 1.0,
                                self._beat)
        graceful = max(0.1, self.cfg.graceful_timeout - _MARGIN)
        try:
            _workers.serve_until_signal(listeners, app, kwargs, graceful,
                                        watch=self._watch, stops=self._stops,
                                        action=self._on_signal)
        finally:
            beat.cancel()
            self._watch.close()

    def _access_logged(self):
        try:
            return self.log.access_log_enabled      # newer gunicorn
        except AttributeError:
            return bool(self.cfg.accesslog)

    def _beat(self):
        self.notify()
        if self.alive and self.ppid != os.getppid():
            self.log.info("Parent changed, shutting down: %s", self)
            self._stop()

    def _stop(self):
        if self.alive:
            self.alive = False
            self._stops.put(_workers.GRACEFUL)

    def _counting(self, app):
        def counted(environ, start_response):
            self.nr += 1
            if self.nr >= self.max_requests and self.alive:
                self.log.info("Autorestarting worker after current request.")
                self._stop()
            return app(environ, start_response)
        return counted

    def _limits(self):
        cfg = self.cfg
        given = {}
        if cfg.limit_request_line > 0:
            given["max_request_line"] = cfg.limit_request_line
        if cfg.limit_request_fields > 0:
            given["max_headers"] = cfg.limit_request_fields
        if cfg.keepalive > 0:
            given["keepalive_timeout"] = cfg.keepalive
        else:
            given["max_requests_per_connection"] = 1
        return Limits(**given)


class _AccessLog:
    """serve()'s access log, written through gunicorn's access logger."""

    def __init__(self, log):
        self._log = log

    def write(self, text):
        for line in text.splitlines():
            if line:
                self._log.access_log.info(line)
