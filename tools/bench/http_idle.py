#!/usr/bin/env python3
"""Memory per idle keep-alive connection: opens N connections (10,000 by
default) to a server running tools/bench/http_app.py, sends one request
on each and reads its answer, then leaves them all open and idle, and
reports how much the server's resident memory grew, per connection.

    .venv/bin/python tools/bench/http_idle.py [--connections 10000]
        [--servers socket2,socket2-pure,gevent-pywsgi,nginx]

The servers are started exactly as tools/bench/http_bench.py starts them
(socket2 from this interpreter, the peers from the benchmark's own
virtual environment; a missing one is skipped with the line that
installs it).  Before the measurement each server answers 200 warm-up
connections that are then closed, so one-time costs (code paths run for
the first time, the accept loop's buffers) stay out of the figure; RSS
is VmRSS summed over the server's processes, read once the connections
have been idle for a second.  The issue's target for socket2: <= 10 KiB
per idle connection.

The client is this process: plain blocking sockets, one request after
the other, spread over the source addresses 127.0.0.2-127.0.0.9 (so
ephemeral ports never run short); the descriptor limit is raised for it
and for the server (which inherits it).
"""
import argparse
import os
import resource
import socket
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import http_bench  # noqa: E402

REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
TARGET_KIB = 10.0


def rss_kib(sid):
    total = 0
    for pid, _ in http_bench.session_procs(sid):
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def one_request(port, i):
    """A connected socket that has had one request answered."""
    s = socket.socket()
    try:
        s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        s.bind(("127.0.0.%d" % (2 + i % 8), 0))
        s.settimeout(10)
        s.connect(("127.0.0.1", port))
        s.sendall(REQUEST)
        data = b""
        while not data.endswith(b"Hello, World!"):
            chunk = s.recv(4096)
            if not chunk:
                raise OSError("the server closed connection %d" % i)
            data += chunk
        return s
    except BaseException:
        s.close()
        raise


def measure(name, n, tmp):
    server = http_bench.Server(name, tmp)
    conns = []
    try:
        for s in [one_request(server.port, i) for i in range(200)]:
            s.close()
        time.sleep(1.0)
        before = rss_kib(server.sid)
        t = time.monotonic()
        for i in range(n):
            conns.append(one_request(server.port, i))
        opened = time.monotonic() - t
        time.sleep(1.0)
        after = rss_kib(server.sid)
        # Still served: the idle connections answer a second request.
        for s in conns[:: max(1, n // 20)]:
            s.sendall(REQUEST)
            if not s.recv(4096).startswith(b"HTTP/1.1 200"):
                raise RuntimeError("an idle connection was not answered")
    finally:
        for s in conns:
            s.close()
        server.stop()
    return {"before_mib": before / 1024.0, "after_mib": after / 1024.0,
            "per_conn_kib": (after - before) / float(n),
            "open_seconds": opened}


def raise_nofile(n):
    need = n + 1000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))
            return
        except (ValueError, OSError):
            raise SystemExit("http_idle: descriptor limit %d < %d and it "
                             "cannot be raised (ulimit -Hn)" % (hard, need))
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connections", type=int, default=10000)
    ap.add_argument("--servers", default="socket2,socket2-pure,gevent-pywsgi,nginx",
                    help="comma-separated, from: %s" % ", ".join(http_bench.SERVERS))
    args = ap.parse_args(argv)
    names = [s.strip() for s in args.servers.split(",") if s.strip()]
    for s in names:
        if s not in http_bench.SERVERS:
            ap.error("unknown server %r" % s)
    raise_nofile(args.connections)
    http_bench.PIN = False
    avail = http_bench.availability(names)
    rows = []
    with tempfile.TemporaryDirectory(prefix="http-idle-") as tmp:
        for name in names:
            if avail[name]:
                print("%s: not available, skipped (install: %s)"
                      % (name, avail[name]))
                continue
            try:
                r = measure(name, args.connections, tmp)
            except (RuntimeError, OSError) as e:
                print("%s: FAILED: %s" % (name, e))
                continue
            rows.append((name, r))
            print("%-14s %6.1f MiB -> %6.1f MiB with %d idle: %.2f KiB per "
                  "connection (opened in %.1f s)" % (
                      name, r["before_mib"], r["after_mib"], args.connections,
                      r["per_conn_kib"], r["open_seconds"]),
                  file=sys.stderr, flush=True)
    print("\n| server | RSS before (MiB) | RSS with %d idle (MiB) | per idle "
          "connection (KiB) |\n|---|---|---|---|" % args.connections)
    for name, r in rows:
        print("| %s | %.1f | %.1f | %.2f |" % (
            name, r["before_mib"], r["after_mib"], r["per_conn_kib"]))
    for name, r in rows:
        if name == "socket2":
            print("\nsocket2: %.2f KiB per idle keep-alive connection, target "
                  "<= %.0f KiB: %s" % (r["per_conn_kib"], TARGET_KIB,
                                       "met" if r["per_conn_kib"] <= TARGET_KIB
                                       else "NOT met"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
