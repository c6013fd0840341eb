"""Server processes for the command-line and gunicorn tests: start one in
its own session (so the whole tree can be killed whatever happened), read
its stderr without blocking, talk HTTP to it on loopback."""
import http.client
import os
import re
import select
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

HELLO = '''\
import os
import socket2


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path.startswith("/sleep/"):
        socket2.sleep(float(path[7:]))
    body = b"hello from %d" % os.getpid()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


def make_app():
    return app


not_an_app = 42
'''

STARTED = re.compile(rb"serving \S+ on (https?)://(\S+):(\d+) \((\d+) workers?\)")


def child_env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (ROOT, env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


class ServerProcess:
    """A server process and its stderr; ``close()`` kills what is left of
    its process group and reaps it."""

    def __init__(self, argv, cwd, env=None):
        self.argv = argv
        self.err = b""
        self.p = subprocess.Popen(
            argv, cwd=str(cwd), env=env or child_env(),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, start_new_session=True)
        self.pid = self.p.pid

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def read_until(self, pattern, timeout=10):
        """Read stderr until *pattern* (a bytes regex) matches; return the
        match.  Fails with what was read if the process exits or time runs
        out first."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        fd = self.p.stderr.fileno()
        while True:
            m = rx.search(self.err)
            if m:
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no %r on stderr within %ss; got %r"
                                     % (pattern, timeout, self.err))
            r, _, _ = select.select([fd], [], [], left)
            if r:
                data = os.read(fd, 65536)
                if not data:
                    raise AssertionError(
                        "process exited (%s) before %r; stderr: %r"
                        % (self.p.wait(5), pattern, self.err))
                self.err += data

    def read_rest(self, timeout=5):
        """Read stderr until it closes (the process tree exited)."""
        deadline = time.monotonic() + timeout
        fd = self.p.stderr.fileno()
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [],
                                    max(0, deadline - time.monotonic()))
            if r:
                data = os.read(fd, 65536)
                if not data:
                    break
                self.err += data
        return self.err

    def started(self, timeout=15):
        """Wait for the start line; set ``scheme``, ``host``, ``port``."""
        m = self.read_until(STARTED, timeout)
        self.scheme = m.group(1).decode()
        self.host = m.group(2).decode().strip("[]")
        self.port = int(m.group(3))
        return self

    def signal(self, signum):
        self.p.send_signal(signum)

    def wait(self, timeout):
        """The exit status; fails if the process is still running after
        *timeout* seconds."""
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("still running after %ss; stderr: %r"
                                 % (timeout, self.read_rest(0.2))) from None

    def close(self):
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.p.wait(10)
        finally:
            self.p.stderr.close()


def cli(cwd, *args, env=None):
    """``python -m socket2.http ARGS`` started in *cwd*."""
    return ServerProcess([sys.executable, "-m", "socket2.http"] + list(args),
                         cwd, env)


def request(port, path="/", host="127.0.0.1", timeout=10, context=None):
    """GET *path*: ``(status, body)``."""
    if context is None:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    else:
        conn = http.client.HTTPSConnection(host, port, timeout=timeout,
                                           context=context)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def pids_seen(port, n=40, timeout=10):
    """The worker pids that answered *n* fresh connections."""
    pids = set()
    deadline = time.monotonic() + timeout
    for _ in range(n):
        while True:
            try:
                status, body = request(port, timeout=5)
                break
            except (ConnectionError, http.client.HTTPException):
                # a worker being replaced reset a queued connection
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        assert status == 200, body
        pids.add(int(body.rsplit(b" ", 1)[1]))
    return pids
