"""examples/port_scanner.py, run as a user runs it, against listeners of
this test on loopback."""
import os
import socket
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "port_scanner.py")



def _closed_ports(n):
    """Ports that were free a moment ago (bound, then closed)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.mark.one_poller
def test_help():
    out = subprocess.run([sys.executable, EXAMPLE, "--help"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--limit" in out.stdout


def test_scan_finds_exactly_the_open_ports(poller):
    listeners = []
    try:
        for _ in range(3):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            s.listen(100)
            listeners.append(s)
        open_ports = sorted(s.getsockname()[1] for s in listeners)
        closed = _closed_ports(40)
        spec = ",".join(str(p) for p in open_ports + closed)
        out = subprocess.run(
            [sys.executable, EXAMPLE, "127.0.0.1", "--ports", spec,
             "--limit", "8", "--all", "--timeout", "5"],
            capture_output=True, text=True, timeout=60,
            env=dict(os.environ, SOCKET2_POLLER=poller))
        assert out.returncode == 0, out.stderr
        states = dict(line.split() for line in out.stdout.splitlines())
        assert sorted(int(p) for p, st in states.items()
                      if st == "open") == open_ports
        assert len(states) == 43
        assert all(states[str(p)] == "connection_refused" for p in closed)
        assert "3 open" in out.stderr
    finally:
        for s in listeners:
            s.close()


@pytest.mark.one_poller
def test_bad_ports_are_a_clear_error():
    out = subprocess.run([sys.executable, EXAMPLE, "127.0.0.1", "--ports",
                          "80-20"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2 and "in order" in out.stderr
