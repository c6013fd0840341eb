#!/usr/bin/env python3
"""A small HTTPS/1.1 client: GET a URL, print the status line, the headers
and the body.

    python examples/https_get.py https://localhost:8443/index.html --cafile ca.pem
    python examples/https_get.py https://self-signed.local/ --insecure

socket2.connect() resolves the host off the OS thread, races its IPv6 and
IPv4 addresses (Happy Eyeballs) and wraps the winner in TLS (certificate
and host name verified unless --insecure); the response is read with
readline() and read(), as blocking code.  Content-Length, chunked and
read-until-close bodies are handled; http:// URLs work too.
"""
import argparse
import ssl
import sys
from urllib.parse import urlsplit

import socket2


def read_body(conn, headers):
    """The response body, by Content-Length, chunks, or until close."""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int(conn.readline(limit=1024).split(b";")[0].strip(), 16)
            if size == 0:
                while conn.readline(limit=65536) not in (b"\r\n", b"\n", b""):
                    pass                           # trailers
                return b"".join(parts)
            parts.append(conn.read(size))
            conn.readline(limit=16)                # the CRLF after a chunk
    if "content-length" in headers:
        return conn.read(int(headers["content-length"]))
    return conn.read()                             # until the server closes


def get(url, cafile=None, insecure=False, timeout=30.0):
    """Fetch *url*; return (status line, [(name, value)], body bytes)."""
    u = urlsplit(url)
    if u.scheme not in ("https", "http") or not u.hostname:
        raise ValueError("need an http:// or https:// URL, not %r" % url)
    port = u.port or (443 if u.scheme == "https" else 80)
    ctx = None
    if u.scheme == "https":
        ctx = ssl.create_default_context(cafile=cafile)
        if insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["http/1.1"])
    path = (u.path or "/") + ("?" + u.query if u.query else "")
    host = u.netloc.rpartition("@")[2]              # as the URL spells it
    with socket2.timeout(timeout):
        with socket2.connect(u.hostname, port, tls=ctx or None) as conn:
            conn.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: "
                          "socket2-https_get\r\nAccept: */*\r\nConnection: "
                          "close\r\n\r\n" % (path, host)).encode("ascii"))
            status = conn.readline(limit=65536).decode("latin-1").rstrip()
            if not status.startswith("HTTP/"):
                raise ValueError("not an HTTP response: %r" % status[:80])
            headers = []
            while True:
                line = conn.readline(limit=65536)
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                headers.append((name.strip(), value.strip()))
            body = read_body(conn, {k.lower(): v for k, v in headers})
    return status, headers, body


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="GET a URL over HTTPS (or HTTP) with socket2 and print "
                    "the status, the headers and the body.")
    ap.add_argument("url", help="https://host[:port]/path (or http://...)")
    ap.add_argument("--cafile", help="PEM file of the CAs to trust (default: "
                                     "the system's)")
    ap.add_argument("--insecure", action="store_true",
                    help="do not verify the certificate or the host name")
    ap.add_argument("--timeout", type=float, default=30.0,
                    help="seconds for the whole request (default: %(default)s)")
    args = ap.parse_args(argv)
    try:
        status, headers, body = get(args.url, args.cafile, args.insecure,
                                    args.timeout)
    except (socket2.Error, ValueError, OSError) as e:
        print("https_get: %s" % e, file=sys.stderr)
        return 1
    out = sys.stdout.buffer        # bytes throughout: the body is bytes
    out.write(status.encode("latin-1") + b"\n")
    for name, value in headers:
        out.write(("%s: %s\n" % (name, value)).encode("latin-1"))
    out.write(b"\n")
    out.write(body)
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
