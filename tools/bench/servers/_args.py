"""Shared command line of the benchmark's echo servers."""
import argparse


def parse(description):
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=7000)
    ap.add_argument("--cert", help="serve TLS with this PEM certificate")
    ap.add_argument("--key", help="its private key (default: in --cert)")
    return ap.parse_args()


def server_context(args):
    """The ssl.SSLContext for --cert/--key, or None (plain TCP)."""
    if not args.cert:
        return None
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    return ctx
