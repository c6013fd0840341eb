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
    buf = bytearray(bufsize)
    with conn:
        try:
            while True:
                n = conn.recv(buf)
                if n == 0:
                    return
                conn.sendall(buf, n)
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
                    help="receive buffer per connection (default: %(default)s)")
    args = ap.parse_args(argv)

    family = args.family or ("inet6" if ":" in args.host else "inet")
    server = socket2.tcp(family)
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
    print("echo_server: listening on %s (poller: %s)" % (
        where, socket2.poller_name()), flush=True)
    # serve(): accept forever, each connection in a thread of its own,
    # started when the connection first sends something.
    socket2.newthread(socket2.serve, server, echo, args.bufsize)
    try:
        socket2.start()
    except KeyboardInterrupt:
        print("echo_server: stopped", file=sys.stderr)
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
