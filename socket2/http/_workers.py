"""Serving processes: one that serves until a signal stops it, and a parent
that keeps N of them running (``python -m socket2.http --workers N``).

Signals and the hub.  Python runs a signal handler in the main OS thread
between two bytecodes, wherever that thread is: in the hub, in the middle
of a socket operation.  So no handler here does any socket2 work.  The
handler is a no-op; ``signal.set_wakeup_fd`` makes the interpreter's C
handler write the signal's number to a socketpair, and a socket2 thread
reading the other end (:class:`SignalWatch`) does what the signal asks,
at an ordinary point of the loop.

The parent (:class:`Supervisor`) runs no socket2 loop at all: it forks
the workers, waits on a pipe with ``select`` and reaps them.
"""
import os
import select
import signal
import socket
import sys
import time
import traceback

import socket2
from .._socket_ffi import lib as _lib

__all__ = ["SignalWatch", "adopt_stream", "serve_until_signal", "Supervisor",
           "GRACEFUL", "NOW", "default_action"]

_STOPS = (signal.SIGTERM, signal.SIGINT)
_FAMILIES = {socket.AF_INET: _lib.AF_INET, socket.AF_INET6: _lib.AF_INET6}
if hasattr(socket, "AF_UNIX"):
    _FAMILIES[socket.AF_UNIX] = _lib.AF_UNIX


def adopt_stream(sock):
    """A socket2 ``tcp`` over the standard library stream socket *sock*
    (a listener gunicorn bound, one end of a socketpair), which it takes
    over (*sock* is detached); another process may hold a copy of it."""
    # socket2 has no public constructor from a descriptor yet: this is the
    # one place that reaches for the socket layer's own.
    from ..sockets import TCPSocket
    from ..hub import get_hub
    family = _FAMILIES[sock.family]
    hub = get_hub()         # (before the descriptor leaves *sock*)
    sock.setblocking(False)
    s = TCPSocket._from_fd(sock.detach(), family, _lib.SOCK_STREAM, 0,
                           hub, exclusive=False)
    s._bound = True
    return s


def _ignore(signum, frame):
    """The Python-level handler: the wakeup descriptor carries the signal."""


class SignalWatch:
    """Receive *signums* in a socket2 thread: :meth:`wait` returns the next
    one.  ``close()`` puts the previous handlers and wakeup descriptor
    back."""

    def __init__(self, signums=_STOPS):
        r, w = socket.socketpair()
        w.setblocking(False)
        self._w = w
        self._r = adopt_stream(r)
        self._buf = bytearray(64)
        self._pending = []
        self._signums = set(signums)
        self._old_fd = signal.set_wakeup_fd(w.fileno(),
                                            warn_on_full_buffer=False)
        self._old = {s: signal.signal(s, _ignore) for s in signums}

    def wait(self):
        """Wait for the next watched signal; return its number."""
        while not self._pending:
            n = self._r.recv(self._buf)
            if n == 0:
                raise socket2.Error("closed", "signal socketpair closed")
            self._pending.extend(b for b in self._buf[:n]
                                 if b in self._signums)
        return self._pending.pop(0)

    def close(self):
        """Stop watching: restore the handlers, close the socketpair."""
        if self._w is None:
            return
        signal.set_wakeup_fd(self._old_fd)
        for s, old in self._old.items():
            signal.signal(s, old if old is not None else signal.SIG_DFL)
        self._r.close()
        self._w.close()
        self._w = None


GRACEFUL, NOW = "graceful", "now"


def default_action(signum):
    """What a signal asks of a serving process: SIGTERM a graceful stop,
    SIGINT an immediate one."""
    return GRACEFUL if signum == signal.SIGTERM else NOW


def serve_until_signal(listeners, app, serve_kwargs, graceful_timeout,
                       watch=None, stops=None, action=default_action):
    """Serve *app* on each of *listeners* (``socket2.http.serve(listener,
    app, **serve_kwargs)`` in a thread each) until a stop: a signal that
    *action* maps to :data:`GRACEFUL` (stop accepting, let requests in
    flight finish within *graceful_timeout* seconds) or :data:`NOW`, or
    either put on the socket2 ``Queue`` *stops* by the caller.  Runs the
    loop from the calling greenlet and closes the listeners.  Returns 0
    after a stop, 1 if a server failed (reported on stderr)."""
    from . import serve
    own = watch is None
    watch = watch or SignalWatch()
    stops = stops if stops is not None else socket2.Queue()
    servers = [socket2.newthread(_serving, serve, lst, app, serve_kwargs,
                                 stops) for lst in listeners]
    watcher = socket2.newthread(_watching, watch, action, stops)
    try:
        first = stops.get()
        for lst in listeners:
            lst.close()
        if first != NOW:
            ended = first == "served" or isinstance(first, BaseException)
            left = len(servers) - ended
            _drain(stops, left, graceful_timeout)
        for t in servers:
            t.kill()
        for t in servers:
            try:
                t.join(timeout=5)
            except socket2.TimeoutError:
                pass
        return 1 if isinstance(first, BaseException) else 0
    finally:
        for lst in listeners:
            lst.close()
        watcher.kill()
        if own:
            watch.close()


def _serving(serve, listener, app, serve_kwargs, stops):
    try:
        serve(listener, app, **serve_kwargs)
    except Exception as e:   # noqa: B902 - reported, the worker exits 1
        sys.stderr.write("socket2.http: the server failed:\n")
        traceback.print_exception(type(e), e, e.__traceback__)
        stops.put(e)
        return
    stops.put("served")


def _watching(watch, action, stops):
    while True:
        what = action(watch.wait())
        if what is not None:
            stops.put(what)


def _drain(stops, left, graceful_timeout):
    """After a graceful stop: wait until the *left* servers return (every
    connection done), an immediate stop, or the graceful timeout."""
    deadline = socket2.clock() + graceful_timeout
    while left > 0:
        try:
            what = stops.get(expires=deadline)
        except socket2.TimeoutError:
            sys.stderr.write("socket2.http: graceful timeout (%gs) passed; "
                             "closing the connections left\n"
                             % graceful_timeout)
            return
        if what == NOW:
            return
        if what != GRACEFUL:
            left -= 1


# -- the parent of --workers N ----------------------------------------------

# A worker that exits before it accepts connections (its ready()) failed
# to start; after _GIVE_UP such failures in a row the parent stops.
_GIVE_UP = 5
_MAX_DELAY = 5.0


class Supervisor:
    """Keep *n* worker processes running: each is ``os.fork()`` then
    ``child()`` (which returns the worker's exit status; it calls
    ``ready()`` once it accepts connections).  ``run()`` returns the
    parent's exit status: 0 after SIGTERM or SIGINT, 1 when workers keep
    failing before they accept connections (a worker that served and then
    died is restarted, however often)."""

    def __init__(self, n, child, graceful_timeout, on_ready=None,
                 before_stop=None):
        self.n = n
        self._child = child
        self._graceful = graceful_timeout
        self._on_ready = on_ready          # called once all n are ready
        self._before_stop = before_stop    # called on the first stop signal
        self.workers = {}                  # pid -> start time
        self._fails = 0
        self._restart_at = None
        self._stopping = None
        self._kill_at = None
        self._ready_count = 0
        self._ready_pids = set()           # workers that said ready()
        self._ready_rest = b""             # a partial ready message

    def run(self):
        self._sig_r, self._sig_w = _pipe()
        self._ready_r, self._ready_w = _pipe()
        old_fd = signal.set_wakeup_fd(self._sig_w, warn_on_full_buffer=False)
        old = {s: signal.signal(s, _ignore)
               for s in _STOPS + (signal.SIGCHLD,)}
        try:
            for _ in range(self.n):
                self._spawn()
            return self._loop()
        finally:
            signal.set_wakeup_fd(old_fd)
            for s, h in old.items():
                signal.signal(s, h)
            for fd in (self._sig_r, self._sig_w, self._ready_r,
                       self._ready_w):
                os.close(fd)

    def _loop(self):
        while True:
            status = self._reap()
            if status is not None:
                return status
            if self._stopping and not self.workers:
                return 0
            now = time.monotonic()
            if self._kill_at is not None and now >= self._kill_at:
                self._signal_all(signal.SIGKILL)
                self._kill_at = now + 1.0
            if self._restart_at is not None and now >= self._restart_at:
                self._restart_at = None
                while len(self.workers) < self.n:
                    self._spawn()
            due = [t for t in (self._kill_at, self._restart_at)
                   if t is not None]
            wait = max(0.0, min(due) - now) if due else None
            try:
                ready, _, _ = select.select([self._sig_r, self._ready_r],
                                            [], [], wait)
            except InterruptedError:
                continue
            if self._ready_r in ready:
                self._count_ready()
            if self._sig_r in ready:
                self._take_signals()

    def _spawn(self):
        # The stop signals are blocked across the fork: one that came
        # between it and the child's own handlers was taken by the
        # parent's (inherited) handler in the child and lost, and that
        # worker served on until the SIGKILL after the graceful timeout.
        # Held until the child has its defaults, it ends the child then.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)
        try:
            pid = os.fork()
        except BaseException:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            raise
        if pid:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            self.workers[pid] = time.monotonic()
            return
        status = 1
        try:
            signal.set_wakeup_fd(-1)
            for s in _STOPS + (signal.SIGCHLD,):
                signal.signal(s, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            for fd in (self._sig_r, self._sig_w, self._ready_r):
                os.close(fd)
            status = self._child(self._ready)
        except BaseException:   # noqa: B902 - the worker ends here, whatever
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)

    def _ready(self):
        """In a worker: tell the parent this worker accepts connections
        (its pid, one atomic pipe write)."""
        os.write(self._ready_w, b"%d\n" % os.getpid())

    def _count_ready(self):
        try:
            data = self._ready_rest + os.read(self._ready_r, 4096)
        except BlockingIOError:
            return
        *pids, self._ready_rest = data.split(b"\n")
        for pid in pids:
            self._ready_pids.add(int(pid))
        before = self._ready_count
        self._ready_count += len(pids)
        if before < self.n <= self._ready_count and self._on_ready:
            self._on_ready()

    def _take_signals(self):
        try:
            data = os.read(self._sig_r, 4096)
        except BlockingIOError:
            return
        for signum in data:
            if signum in _STOPS:
                self._stop(signum)

    def _stop(self, signum):
        if self._stopping is None and self._before_stop is not None:
            self._before_stop()
        if self._stopping in (signum, signal.SIGINT):
            return
        self._stopping = signum
        self._restart_at = None
        self._signal_all(signum)
        margin = 2.0 if signum == signal.SIGINT else self._graceful + 2.0
        self._kill_at = time.monotonic() + margin

    def _signal_all(self, signum):
        for pid in self.workers:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def _reap(self):
        """Collect the workers that exited; schedule their restart.
        Returns 1 when it is time to give up, else None."""
        while self.workers:
            try:
                pid, wstatus = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.workers.clear()
                break
            if pid == 0:
                break
            started = self.workers.pop(pid, None)
            self._count_ready()         # (its ready() may be unread yet)
            was_ready = pid in self._ready_pids
            self._ready_pids.discard(pid)
            if started is None or self._stopping:
                continue
            status = _describe(wstatus)
            # Only a worker that ends before it accepts connections counts
            # towards giving up: one that served and then died (a request
            # that crashes it, again and again) is restarted, or a client
            # could stop the whole server.
            self._fails = 0 if was_ready else self._fails + 1
            if self._fails >= _GIVE_UP:
                sys.stderr.write("socket2.http: worker %d %s, the %dth to "
                                 "end before accepting connections; giving "
                                 "up\n"
                                 % (pid, status, self._fails))
                self._stop(signal.SIGTERM)
                self._wait_all()
                return 1
            delay = min(_MAX_DELAY, 0.1 * 2 ** self._fails) \
                if self._fails else 0.0
            sys.stderr.write("socket2.http: worker %d %s; restarting it%s\n"
                             % (pid, status, " in %gs" % delay if delay
                                else ""))
            at = time.monotonic() + delay
            self._restart_at = at if self._restart_at is None \
                else min(self._restart_at, at)
        return None

    def _wait_all(self):
        deadline = time.monotonic() + self._graceful + 2.0
        while self.workers and time.monotonic() < deadline:
            self._reap_quietly()
            time.sleep(0.05)
        self._signal_all(signal.SIGKILL)
        while self.workers:
            self._reap_quietly()
            time.sleep(0.01)

    def _reap_quietly(self):
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            self.workers.clear()
            return
        self.workers.pop(pid, None)


def _describe(wstatus):
    if os.WIFSIGNALED(wstatus):
        sig = os.WTERMSIG(wstatus)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return "was killed by %s" % name
    return "exited with status %d" % os.waitstatus_to_exitcode(wstatus)


def _pipe():
    r, w = os.pipe()
    for fd in (r, w):
        os.set_blocking(fd, False)
    return r, w
