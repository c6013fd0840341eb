#!/usr/bin/env python3
"""A TCP echo server: one cooperative thread per connection.

    python examples/echo_server.py --host 127.0.0.1 --port 7000

Then, from another terminal: ``nc 127.0.0.1 7000``.  Ctrl-C stops it.
"""
import argparse
import sys

import socket2


def echo(conn, bufsize):
    """Echo everything *conn* sends until it closes its side."""
    # The receive buffer: its bytes are echoed before the next recv, so one
    # per connection, and a small one to start with.  Most connections
    # trade small messages, and a server holds one buffer per connection:
    # 64 KiB each would be 64 MiB per 1000 connections, 4 KiB is 4 MiB.  A
    # read that fills it means the peer is streaming: then the buffer grows,
    # once, to *bufsize*, so a bulk transfer moves 64 KiB per call.
    small = min(4096, bufsize)
    buf = bytearray(small)
    try:
        with conn:
            while n := conn.recv(buf):
                conn.sendall(buf, n)
                if n == small:
                    buf = bytearray(bufsize)
                    small = 0       # grown for good (n is never 0 here)
    except socket2.Error as e:
        if e.err not in ("connection_reset", "broken_pipe", "closed"):
            raise


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="socket2 TCP echo server (one greenlet per connection).")
    ap.add_argument("--host", default="127.0.0.1",
                    help="address to listen on; '*' for all (default: %(default)s)")
    ap.add_argument("--port", type=int, default=7000,
                    help="port to listen on; 0 picks a free one (default: %(default)s)")
    ap.add_argument("--family", choices=["inet", "inet6", "unix"], default=None,
                    help="address family (default: guessed from --host)")
    ap.add_argument("--bufsize", type=int, default=65536,
                    help="largest receive buffer per connection: each starts "
                         "with 4 KiB and grows to this when a read fills it "
                         "(default: %(default)s)")
    ap.add_argument("--workers", type=int, default=1,
                    help="processes, each with its own listener on the same "
                         "port (SO_REUSEPORT): use every core (default: 1)")
    args = ap.parse_args(argv)
    if args.workers > 1:
        return run_workers(args, ap)

    return run_server(args, ap)


def run_server(args, ap, reuseport=False, quiet=False):
    family = args.family or ("inet6" if ":" in args.host else "inet")
    server = socket2.tcp(family)
    if reuseport:
        server.setopt("so_reuseport", True)
    try:
        if family == "unix":
            server.listen(args.host)
            where = args.host
        else:
            server.listen(args.host, args.port)
            where = "%s:%d" % (server.local_addr, server.local_port)
    except socket2.Error as e:
        server.close()
        ap.exit(1, "echo_server: cannot listen on %s port %s: %s\n"
                % (args.host, args.port, e))
    if not quiet:
        print("echo_server: listening on %s (poller: %s)" % (
            where, socket2.poller_name()), flush=True)
    # serve(): accept forever, each connection in a thread of its own,
    # started when the connection first sends something.
    socket2.newthread(socket2.serve, server, echo, args.bufsize)
    try:
        socket2.start()
    except KeyboardInterrupt:
        if not quiet:
            print("echo_server: stopped", file=sys.stderr)
    finally:
        server.close()
    return 0


def run_workers(args, ap):
    """Fork --workers processes that each listen on the port with
    SO_REUSEPORT (the kernel spreads connections over them); forward
    SIGINT/SIGTERM to them and wait."""
    import os
    import signal

    if args.port == 0 or args.family == "unix":
        ap.error("--workers needs a fixed TCP port")
    if not hasattr(os, "fork") or "so_reuseport" not in socket2.OPTIONS:
        ap.error("--workers needs fork() and SO_REUSEPORT, which this OS "
                 "does not have")
    pids = []
    for _ in range(args.workers):
        pid = os.fork()
        if pid == 0:        # a worker: nothing of socket2 exists here yet
            signal.signal(signal.SIGTERM, signal.default_int_handler)
            code = 1
            try:
                code = run_server(args, ap, reuseport=True, quiet=True)
            except KeyboardInterrupt:
                code = 0    # stopped before it was serving: still a stop
            finally:
                os._exit(code)
        pids.append(pid)
    print("echo_server: listening on %s:%d with %d worker processes" % (
        args.host, args.port, args.workers), flush=True)

    def forward(signum, frame):
        for pid in pids:
            try:
                os.kill(pid, signal.SIGINT)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    code = 0
    for pid in pids:
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                break
            except KeyboardInterrupt:
                forward(signal.SIGINT, None)
        code = code or os.waitstatus_to_exitcode(status)
    print("echo_server: stopped", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
