"""The echo server example, run as a user runs it and driven by plain
standard-library clients."""
import os
import re
import signal
import socket
import subprocess
import sys
import threading

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "echo_server.py")


def start_server(*args, poller=None):
    env = dict(os.environ)
    if poller:
        env["SOCKET2_POLLER"] = poller
    p = subprocess.Popen([sys.executable, EXAMPLE, *args],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env)
    line = p.stdout.readline()
    m = re.search(r"listening on (.+):(\d+) ", line)
    assert m, (line, p.stderr.read() if p.poll() is not None else "")
    return p, m.group(1), int(m.group(2))


def stop_server(p):
    """Stop the server as Ctrl-C would; return (exit code, stderr).  A
    process without a console cannot be sent Ctrl-C on Windows: it is
    terminated there, and the code is None (not checked)."""
    if os.name == "nt":
        p.terminate()
        out, err = p.communicate(timeout=10)
        return None, err
    p.send_signal(signal.SIGINT)
    try:
        out, err = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    return p.returncode, err


@pytest.mark.one_poller
def test_help():
    out = subprocess.run([sys.executable, EXAMPLE, "--help"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    assert "--host" in out.stdout and "--port" in out.stdout


def test_echo_server_with_stdlib_clients(poller):
    p, host, port = start_server("--host", "127.0.0.1", "--port", "0",
                                 poller=poller)
    try:
        errors = []

        def client(i):
            try:
                data = os.urandom(100000 + i)
                with socket.create_connection((host, port), timeout=10) as s:
                    got = bytearray()

                    def read():
                        while len(got) < len(data):
                            chunk = s.recv(65536)
                            if not chunk:
                                break
                            got.extend(chunk)

                    r = threading.Thread(target=read)
                    r.start()
                    s.sendall(data)
                    r.join()
                    assert bytes(got) == data
            except Exception as e:   # reported below
                errors.append(e)

        threads = [threading.Thread(target=client, args=(i,))
                   for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
    finally:
        code, err = stop_server(p)
    if code is not None:
        assert code == 0, err
        assert "stopped" in err


def test_echo_server_ipv6(poller):
    p, host, port = start_server("--host", "::1", "--port", "0",
                                 poller=poller)
    try:
        with socket.create_connection(("::1", port), timeout=10) as s:
            s.sendall(b"six")
            assert s.recv(10) == b"six"
    finally:
        code, err = stop_server(p)
    assert code in (0, None), err


@pytest.mark.one_poller
def test_port_in_use_is_a_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = subprocess.run([sys.executable, EXAMPLE, "--port", str(port)],
                             capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert "cannot listen" in out.stderr and "in use" in out.stderr
