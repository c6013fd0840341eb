"""``gunicorn -k socket2.http.gunicorn.Worker``: socket2's server inside
gunicorn's arbiter, as real process trees on loopback."""
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from http_procs import HELLO, ServerProcess, child_env, request

pytestmark = [pytest.mark.one_poller,
              pytest.mark.skipif(not hasattr(os, "fork"),
                                 reason="gunicorn needs os.fork")]

_LISTENING = rb"Listening at: https?://127\.0\.0\.1:(\d+)"
_BOOTED = rb"Booting worker with pid: (\d+)"


def _gunicorn_argv(*args):
    pytest.importorskip("gunicorn", reason="needs gunicorn: pip install "
                        "gunicorn")
    from gunicorn import config
    argv = [sys.executable, "-m", "gunicorn",
            "-k", "socket2.http.gunicorn.Worker", "-b", "127.0.0.1:0"]
    if any(s.name == "control_socket_disable" for s in config.KNOWN_SETTINGS):
        argv.append("--no-control-socket")     # else one in ~/.gunicorn
    return argv + list(args)


@pytest.fixture
def app_dir(tmp_path):
    (tmp_path / "hello.py").write_text(HELLO)
    return tmp_path


def _start(app_dir, *args):
    srv = ServerProcess(_gunicorn_argv(*args), app_dir)
    try:
        srv.port = int(srv.read_until(_LISTENING).group(1))
    except BaseException:
        srv.close()
        raise
    return srv


def _booted(srv, n):
    """The pids of the first *n* workers gunicorn booted."""
    srv.read_until(rb"(?s)(%s.*){%d}" % (_BOOTED, n))
    return [int(p) for p in re.findall(_BOOTED, srv.err)][:n]


def test_import_without_gunicorn_names_the_pip_command():
    code = ("import sys; sys.modules['gunicorn'] = None\n"
            "try:\n    import socket2.http.gunicorn\n"
            "except ImportError as e:\n    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code], env=child_env(),
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    assert "pip install gunicorn" in r.stdout


def test_two_workers_serve_then_stop_gracefully(app_dir):
    with _start(app_dir, "--workers", "2", "--graceful-timeout", "5",
                "hello:app") as srv:
        workers = _booted(srv, 2)
        pids = set()
        for _ in range(20):
            status, body = request(srv.port)
            assert status == 200
            pids.add(int(body.rsplit(b" ", 1)[1]))
        assert pids <= set(workers), (pids, workers)
        # A request in flight when the arbiter gets SIGTERM is answered.
        with socket.create_connection(("127.0.0.1", srv.port), 5) as c:
            c.sendall(b"GET /sleep/0.7 HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.2)
            t0 = time.monotonic()
            srv.signal(signal.SIGTERM)
            c.settimeout(5)
            raw = b""
            while (d := c.recv(65536)):
                raw += d
        assert raw.startswith(b"HTTP/1.1 200 "), raw
        assert raw.endswith(b"hello from %d" % int(raw.rsplit(b" ", 1)[1]))
        assert srv.wait(6) == 0
        assert time.monotonic() - t0 < 4
        assert b"WORKER TIMEOUT" not in srv.read_rest()


def test_heartbeat_keeps_an_idle_worker_alive(app_dir):
    # --timeout 1: a worker that did not notify() for a second is killed.
    with _start(app_dir, "--timeout", "1", "hello:app") as srv:
        (worker,) = _booted(srv, 1)
        time.sleep(2.5)
        assert request(srv.port)[1] == b"hello from %d" % worker
        srv.signal(signal.SIGTERM)
        assert srv.wait(5) == 0
        err = srv.read_rest()
        assert b"WORKER TIMEOUT" not in err
        assert len(_booted(srv, 1)) == 1 and err.count(b"Booting") == 1


def test_max_requests_restarts_the_worker(app_dir):
    with _start(app_dir, "--max-requests", "3", "hello:app") as srv:
        _booted(srv, 1)
        pids = []
        for _ in range(7):
            deadline = time.monotonic() + 10
            while True:
                try:
                    status, body = request(srv.port)
                    break
                except ConnectionError:     # the old worker just closed
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
            pids.append(int(body.rsplit(b" ", 1)[1]))
        assert pids[0] == pids[1] == pids[2], pids
        assert len(set(pids)) >= 2, pids
        srv.read_until(rb"Autorestarting worker")
        srv.signal(signal.SIGTERM)
        assert srv.wait(5) == 0


def test_access_log_goes_to_gunicorns_logger(app_dir):
    log = app_dir / "access.log"
    with _start(app_dir, "--access-logfile", str(log), "hello:app") as srv:
        _booted(srv, 1)
        assert request(srv.port, "/logged?x=1")[0] == 200
        deadline = time.monotonic() + 5
        while b'"GET /logged?x=1 HTTP/1.1" 200 ' not in log.read_bytes():
            assert time.monotonic() < deadline, log.read_bytes()
            time.sleep(0.05)
        srv.signal(signal.SIGTERM)
        assert srv.wait(5) == 0


def test_tls_with_gunicorns_certificate_settings(app_dir, pki):
    import ssl
    with _start(app_dir, "--certfile", pki["server_crt"],
                "--keyfile", pki["server_key"], "hello:app") as srv:
        (worker,) = _booted(srv, 1)
        ctx = ssl.create_default_context(cafile=pki["ca"])
        assert request(srv.port, context=ctx) == (
            200, b"hello from %d" % worker)
        srv.signal(signal.SIGTERM)
        assert srv.wait(5) == 0
