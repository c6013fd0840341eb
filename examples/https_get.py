#!/usr/bin/env python3
"""GET a URL with socket2's HTTP client and print the status line, the
headers and the body.

    python examples/https_get.py https://localhost:8443/index.html --cafile ca.pem
    python examples/https_get.py https://self-signed.local/ --insecure

socket2.http resolves the host off the OS thread, races its IPv6 and IPv4
addresses (Happy Eyeballs), verifies the certificate and the host name
(unless --insecure), and reads Content-Length, chunked and
read-until-close bodies, undoing gzip; http:// URLs work too.  The
--timeout bounds the whole request.
"""
import argparse
import ssl
import sys

import socket2
import socket2.http


def get(url, cafile=None, insecure=False, timeout=30.0):
    """Fetch *url*; return the :class:`socket2.http.Response` (body read)."""
    ctx = None
    if cafile or insecure:
        ctx = ssl.create_default_context(cafile=cafile)
        if insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
    with socket2.http.Client(tls=ctx, timeout=timeout) as client:
        return client.get(url)


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
                    help="seconds for the whole request "
                         "(default: %(default)s)")
    args = ap.parse_args(argv)
    try:
        r = get(args.url, args.cafile, args.insecure, args.timeout)
    except (socket2.Error, ValueError, OSError) as e:
        print("https_get: %s" % e, file=sys.stderr)
        return 1
    out = sys.stdout.buffer        # bytes throughout: the body is bytes
    out.write(("%s %d %s\n" % (r.http_version, r.status, r.reason))
              .encode("latin-1"))
    for name, value in r.headers.items():
        name = "-".join(p.capitalize() for p in name.split("-"))
        out.write(("%s: %s\n" % (name, value)).encode("latin-1"))
    out.write(b"\n")
    out.write(r.read())
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
