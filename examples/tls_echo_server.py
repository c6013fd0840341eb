#!/usr/bin/env python3
"""A TLS echo server: socket2.serve() with tls=, one thread per connection.

    python examples/tls_echo_server.py --cert cert.pem --key key.pem
    python examples/tls_echo_server.py --self-signed      # to try it out

Then: ``openssl s_client -connect 127.0.0.1:7443`` (add ``-CAfile`` with
your CA, or accept the self-signed certificate's warning).  Ctrl-C stops it.
Each connection must finish its handshake within --handshake-timeout
seconds; failed handshakes are reported on stderr and the server goes on.
"""
import argparse
import os
import shutil
import ssl
import subprocess
import sys
import tempfile

import socket2


def echo(conn, bufsize):
    """Echo everything the TLS client sends until it closes."""
    # Small to start with (one buffer per connection: 4 KiB each instead of
    # 64), grown once to *bufsize* when a read fills it (a peer streaming
    # data; a TLS record carries up to 16 KiB).
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
        if e.err not in ("connection_reset", "broken_pipe", "closed", "tls"):
            raise


def self_signed(where):
    """A throwaway certificate for localhost/127.0.0.1/::1 made by the
    openssl tool; returns (cert path, key path)."""
    if shutil.which("openssl") is None:
        raise SystemExit("tls_echo_server: --self-signed needs the openssl "
                         "command (Debian: apt-get install openssl)")
    cert, key = os.path.join(where, "cert.pem"), os.path.join(where, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext",
         "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1",
         "-keyout", key, "-out", cert],
        check=True, capture_output=True)
    return cert, key


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="socket2 TLS echo server (one greenlet per connection).")
    ap.add_argument("--host", default="127.0.0.1",
                    help="address to listen on (default: %(default)s)")
    ap.add_argument("--port", type=int, default=7443,
                    help="port; 0 picks a free one (default: %(default)s)")
    ap.add_argument("--cert", help="PEM certificate chain file")
    ap.add_argument("--key", help="PEM private key file (default: in --cert)")
    ap.add_argument("--self-signed", action="store_true",
                    help="make a throwaway self-signed certificate for "
                         "localhost (needs the openssl command)")
    ap.add_argument("--handshake-timeout", type=float, default=10,
                    help="seconds a client has to finish its TLS handshake "
                         "(default: %(default)s)")
    ap.add_argument("--bufsize", type=int, default=65536,
                    help="largest receive buffer per connection: each starts "
                         "with 4 KiB and grows to this when a read fills it "
                         "(default: %(default)s)")
    args = ap.parse_args(argv)
    if bool(args.cert) == args.self_signed:
        ap.error("give --cert (and --key) or --self-signed")
    tmp = None
    try:
        if args.self_signed:
            tmp = tempfile.mkdtemp(prefix="socket2-tls-")
            args.cert, args.key = self_signed(tmp)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            ctx.load_cert_chain(args.cert, args.key)
        except (OSError, ssl.SSLError) as e:
            ap.exit(1, "tls_echo_server: cannot load the certificate: %s\n"
                    % e)
        family = "inet6" if ":" in args.host else "inet"
        server = socket2.tcp(family)
        try:
            server.listen(args.host, args.port)
        except socket2.Error as e:
            server.close()
            ap.exit(1, "tls_echo_server: cannot listen on %s port %s: %s\n"
                    % (args.host, args.port, e))
        print("tls_echo_server: listening on %s:%d (poller: %s)" % (
            server.local_addr, server.local_port, socket2.poller_name()),
            flush=True)
        socket2.newthread(socket2.serve, server, echo, args.bufsize,
                          tls=ctx, tls_timeout=args.handshake_timeout)
        try:
            socket2.start()
        except KeyboardInterrupt:
            print("tls_echo_server: stopped", file=sys.stderr)
        finally:
            server.close()
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
