"""``python -m socket2.http``: the command line, --workers, signals, TLS.

Each test runs the server as a real process tree on loopback (its own
session: whatever happens, the test kills the tree) and talks HTTP to it.
"""
import http.client
import os
import signal
import socket
import ssl
import subprocess
import sys
import time

import pytest

import socket2
from socket2.http.limits import Limits

from http_procs import (HELLO, ServerProcess, child_env, cli, pids_seen,
                        request)

pytestmark = [pytest.mark.one_poller,
              pytest.mark.skipif(not hasattr(os, "fork"),
                                 reason="the process tests need os.fork")]


@pytest.fixture
def app_dir(tmp_path):
    (tmp_path / "hello.py").write_text(HELLO)
    return tmp_path


def _run(cwd, *args, timeout=20):
    """Run the command to its end: (status, stderr text)."""
    r = subprocess.run([sys.executable, "-m", "socket2.http"] + list(args),
                       cwd=str(cwd), env=child_env(), capture_output=True,
                       text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return r.returncode, r.stderr


# -- one process -----------------------------------------------------------

@pytest.mark.parametrize("child_poller", socket2.pollers())
def test_serves_an_app_then_stops_on_sigterm(app_dir, child_poller):
    env = child_env(SOCKET2_POLLER=child_poller)
    with cli(app_dir, "hello:app", "--bind", "127.0.0.1:0", env=env) as srv:
        srv.started()
        assert (srv.scheme, srv.host) == ("http", "127.0.0.1")
        assert b"serving hello:app on http://127.0.0.1:" in srv.err
        assert b"(1 worker)" in srv.err
        status, body = request(srv.port)
        assert status == 200 and body == b"hello from %d" % srv.pid
        with socket.create_connection(("127.0.0.1", srv.port), 5) as c:
            c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            raw = b""
            while (d := c.recv(65536)):
                raw += d
        assert raw.startswith(b"HTTP/1.1 200 ")
        assert raw.endswith(b"hello from %d" % srv.pid)
        srv.signal(signal.SIGTERM)
        assert srv.wait(10) == 0


def test_factory_form_and_access_log(app_dir):
    with cli(app_dir, "hello:make_app()", "--bind", "127.0.0.1:0",
             "--access-log") as srv:
        srv.started()
        assert request(srv.port, "/logged")[0] == 200
        srv.read_until(rb'"GET /logged HTTP/1.1" 200')
        srv.signal(signal.SIGTERM)
        assert srv.wait(10) == 0


def test_limit_flags_reach_the_server(app_dir):
    with cli(app_dir, "hello:app", "--bind", "127.0.0.1:0",
             "--max-request-line", "64", "--max-body", "none") as srv:
        srv.started()
        assert request(srv.port, "/" + "a" * 40)[0] == 200
        assert request(srv.port, "/" + "a" * 80)[0] == 414
        srv.signal(signal.SIGTERM)
        assert srv.wait(10) == 0


def test_unix_socket_bind(app_dir):
    path = str(app_dir / "s.sock")
    with cli(app_dir, "hello:app", "--bind", "unix:" + path) as srv:
        srv.read_until(rb"serving hello:app on unix:" + path.encode()
                       + rb" \(1 worker\)")
        with socket.socket(socket.AF_UNIX) as c:
            c.settimeout(5)
            c.connect(path)
            c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            raw = b""
            while (d := c.recv(65536)):
                raw += d
        assert raw.startswith(b"HTTP/1.1 200 ")
        srv.signal(signal.SIGTERM)
        assert srv.wait(10) == 0
    assert not os.path.exists(path)


def test_ipv6_bind(app_dir):
    try:
        socket.socket(socket.AF_INET6).close()
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    with cli(app_dir, "hello:app", "--bind", "[::1]:0") as srv:
        srv.started()
        assert srv.host == "::1" and b"http://[::1]:" in srv.err
        assert request(srv.port, host="::1")[0] == 200
        srv.signal(signal.SIGTERM)
        assert srv.wait(10) == 0


def test_help_lists_every_limit():
    r = subprocess.run([sys.executable, "-m", "socket2.http", "--help"],
                       env=child_env(), capture_output=True, text=True,
                       timeout=20)
    assert r.returncode == 0
    out = " ".join(r.stdout.split())    # argparse wraps lines
    for flag in ("--bind", "--workers", "--certfile", "--keyfile",
                 "--access-log", "--graceful-timeout"):
        assert flag in out
    for name, default, kind, text in Limits.FIELDS:
        assert "--" + name.replace("_", "-") in out
        shown = "unbounded" if default is None else "%g" % default
        assert " ".join(text.split()) in out
        assert "default: " + shown in out, name
    assert "(default: 30 s)" in out     # header_timeout, with its unit


@pytest.mark.parametrize("args, message", [
    (["nosuchmodule:app"], "no module named 'nosuchmodule'"),
    (["hello:nosuch"], "module 'hello' has no attribute 'nosuch'"),
    (["hello:not_an_app"], "hello:not_an_app is not a WSGI application: "
                           "a int is not callable"),
    (["hello"], "expected MODULE:APP"),
    (["hello:app", "--bind", "localhost"], "bad --bind 'localhost'"),
    (["hello:app", "--bind", "127.0.0.1:99999"], "bad --bind"),
    (["hello:app", "--certfile", "c.pem"], "--certfile and --keyfile go "
                                           "together"),
    (["hello:app", "--certfile", "c.pem", "--keyfile", "k.pem"],
     "cannot load --certfile c.pem"),
    (["hello:app", "--header-timeout", "0"], "header-timeout must be > 0"),
    (["hello:app", "--workers", "0"], "--workers must be at least 1"),
])
def test_bad_invocation_exits_2_with_one_line(app_dir, args, message):
    status, err = _run(app_dir, *args)
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("python -m socket2.http: error: ")
    assert message in lines[0], err


def test_import_error_in_the_module_is_shown(app_dir):
    (app_dir / "broken.py").write_text("import nosuchdependency\n")
    status, err = _run(app_dir, "broken:app")
    assert status == 2
    assert "Traceback" in err
    assert err.strip().splitlines()[-1].endswith(
        "importing 'broken' failed: No module named 'nosuchdependency'")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_port_in_use_exits_2(app_dir, workers):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status, err = _run(app_dir, "hello:app", "--workers", workers,
                           "--bind", "127.0.0.1:%d" % port)
    assert status == 2, err
    assert "cannot listen on http://127.0.0.1:%d: " % port in err
    assert "in use" in err
    assert len(err.strip().splitlines()) == 1


# -- signals and the graceful stop -----------------------------------------

def _slow_request(port, seconds):
    c = socket.create_connection(("127.0.0.1", port), 5)
    c.sendall(b"GET /sleep/%g HTTP/1.1\r\nHost: x\r\n\r\n" % seconds)
    return c


def _read_response(c, timeout=10):
    """Read one whole response (Content-Length framed) from *c*."""
    c.settimeout(timeout)
    raw = b""
    while b"\r\n\r\n" not in raw:
        d = c.recv(65536)
        if not d:
            return raw
        raw += d
    head, body = raw.split(b"\r\n\r\n", 1)
    length = int([v for k, _, v in (line.partition(b":") for line in
                                    head.split(b"\r\n")[1:])
                  if k.lower() == b"content-length"][0])
    while len(body) < length:
        d = c.recv(65536)
        if not d:
            break
        body += d
    return head + b"\r\n\r\n" + body


def _refused(port):
    try:
        with socket.create_connection(("127.0.0.1", port), 2) as c:
            c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            return c.recv(100) == b""
    except ConnectionError:
        return True


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_finishes_the_request_in_flight(app_dir, workers):
    with cli(app_dir, "hello:app", "--bind", "127.0.0.1:0",
             "--workers", workers, "--graceful-timeout", "5") as srv:
        srv.started()
        with _slow_request(srv.port, 0.7) as c:
            time.sleep(0.2)         # the application is sleeping now
            t0 = time.monotonic()
            srv.signal(signal.SIGTERM)
            time.sleep(0.2)
            assert _refused(srv.port), "accepted after SIGTERM"
            raw = _read_response(c)
            assert raw.startswith(b"HTTP/1.1 200 ")
            assert raw.split(b"\r\n\r\n", 1)[1].startswith(b"hello from ")
            assert c.recv(10) == b""     # then the connection closes
        assert srv.wait(5) == 0
        assert time.monotonic() - t0 < 4


def test_graceful_timeout_cuts_a_long_request(app_dir):
    with cli(app_dir, "hello:app", "--bind", "127.0.0.1:0",
             "--graceful-timeout", "0.5") as srv:
        srv.started()
        with _slow_request(srv.port, 30) as c:
            time.sleep(0.2)
            t0 = time.monotonic()
            srv.signal(signal.SIGTERM)
            assert srv.wait(5) == 0
            took = time.monotonic() - t0
            assert 0.4 < took < 3, took
            assert _read_response(c, 5) == b""    # closed, no response
        assert b"graceful timeout (0.5s) passed" in srv.read_rest()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigint_stops_at_once(app_dir, workers):
    with cli(app_dir, "hello:app", "--bind", "127.0.0.1:0",
             "--workers", workers, "--graceful-timeout", "20") as srv:
        srv.started()
        with _slow_request(srv.port, 30) as c:
            time.sleep(0.2)
            t0 = time.monotonic()
            srv.signal(signal.SIGINT)
            assert srv.wait(5) == 0
            assert time.monotonic() - t0 < 2
            assert _read_response(c, 5) == b""


def test_under_monkey_patching(app_dir):
    # python -m socket2.monkey -m socket2.http: the signal socketpair and
    # the parent's select() are the patched ones there.
    argv = [sys.executable, "-m", "socket2.monkey", "-m", "socket2.http",
            "hello:app", "--bind", "127.0.0.1:0", "--workers", "2"]
    with ServerProcess(argv, app_dir) as srv:
        srv.started()
        with _slow_request(srv.port, 0.5) as c:
            time.sleep(0.2)
            srv.signal(signal.SIGTERM)
            assert _read_response(c).startswith(b"HTTP/1.1 200 ")
        assert srv.wait(5) == 0


# -- workers -------------------------------------------------------------

def test_workers_share_the_port_and_are_restarted(app_dir):
    with cli(app_dir, "hello:app", "--bind", "127.0.0.1:0",
             "--workers", "2") as srv:
        srv.started()
        assert b"(2 workers)" in srv.err
        first = pids_seen(srv.port)
        assert len(first) == 2 and srv.pid not in first, first
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        srv.read_until(rb"worker %d was killed by SIGKILL; restarting it"
                       % victim)
        deadline = time.monotonic() + 10
        while True:
            now = pids_seen(srv.port, n=20)
            if len(now) == 2 and victim not in now:
                break
            assert time.monotonic() < deadline, (first, now)
        assert max(first) in now
        srv.signal(signal.SIGTERM)
        assert srv.wait(10) == 0


def test_workers_stop_when_the_parent_dies(app_dir):
    with cli(app_dir, "hello:app", "--bind", "127.0.0.1:0",
             "--workers", "2", "--graceful-timeout", "1") as srv:
        srv.started()
        assert len(pids_seen(srv.port)) == 2
        os.kill(srv.pid, signal.SIGKILL)
        srv.read_until(rb"(?s)(the parent %d is gone; stopping.*){2}"
                       % srv.pid)
        deadline = time.monotonic() + 5
        while not _refused(srv.port):
            assert time.monotonic() < deadline, "a worker still serves"
            time.sleep(0.1)


def test_workers_inherit_a_unix_listener(app_dir):
    path = str(app_dir / "w.sock")
    with cli(app_dir, "hello:app", "--bind", "unix:" + path,
             "--workers", "2") as srv:
        srv.read_until(rb"\(2 workers\)")
        seen = set()
        for _ in range(60):
            with socket.socket(socket.AF_UNIX) as c:
                c.settimeout(5)
                c.connect(path)
                c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                seen.add(_read_response(c).rsplit(b" ", 1)[1])
        assert len(seen) >= 1
        srv.signal(signal.SIGTERM)
        assert srv.wait(10) == 0
    assert not os.path.exists(path)


def test_a_crash_looping_worker_makes_the_parent_give_up(app_dir):
    # Every forked worker dies at once (the app module asks so).
    (app_dir / "crashy.py").write_text(
        "import os\nfrom hello import app\n"
        "os.register_at_fork(after_in_child=lambda: os._exit(3))\n")
    with cli(app_dir, "crashy:app", "--bind", "127.0.0.1:0",
             "--workers", "2") as srv:
        t0 = time.monotonic()
        assert srv.wait(15) == 1
        assert time.monotonic() - t0 < 10
        err = srv.read_rest()
        assert b"exited with status 3; restarting it" in err
        assert b"giving up" in err


def test_workers_that_crash_on_a_request_are_restarted_however_often(
        app_dir):
    """A request that kills its worker, sent again and again: the parent
    took each death within a second of a restart for a failed start and
    gave up after five, so one client could stop the whole server (the
    second review of the WSGI server).  Only a worker that ends before it
    accepts connections counts now."""
    (app_dir / "killer.py").write_text(
        "import os\nfrom hello import app as hello\n"
        "def app(environ, start_response):\n"
        "    if environ['PATH_INFO'] == '/crash':\n"
        "        os._exit(3)\n"
        "    return hello(environ, start_response)\n")
    with cli(app_dir, "killer:app", "--bind", "127.0.0.1:0",
             "--workers", "2") as srv:
        srv.started()
        crashes = 0
        deadline = time.monotonic() + 30
        while crashes < 12 and time.monotonic() < deadline:
            try:
                request(srv.port, "/crash", timeout=2)
            except ConnectionRefusedError:
                time.sleep(0.01)    # both restarting (or the parent gone)
            except (OSError, http.client.HTTPException):
                crashes += 1        # the worker died on it
        assert crashes == 12, srv.read_rest(0.2)
        assert srv.p.poll() is None, srv.read_rest(0.2)
        for _ in range(100):        # a worker is back within a moment
            try:
                assert request(srv.port, "/", timeout=2)[0] == 200
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise AssertionError("no worker came back")
        srv.signal(signal.SIGTERM)
        assert srv.wait(10) == 0
        assert b"giving up" not in srv.read_rest()


# -- TLS -------------------------------------------------------------------


def test_tls(app_dir, pki):
    with cli(app_dir, "hello:app", "--bind", "127.0.0.1:0",
             "--certfile", pki["server_crt"],
             "--keyfile", pki["server_key"]) as srv:
        srv.started()
        assert srv.scheme == "https"
        ctx = ssl.create_default_context(cafile=pki["ca"])
        status, body = request(srv.port, context=ctx)
        assert status == 200 and body == b"hello from %d" % srv.pid
        srv.signal(signal.SIGTERM)
        assert srv.wait(10) == 0
