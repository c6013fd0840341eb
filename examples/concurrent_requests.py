#!/usr/bin/env python3
"""Fetch many URLs at once with the plain, blocking ``requests`` library.

    python examples/concurrent_requests.py URL [URL ...] --limit 10

socket2.monkey.patch_all() runs first, so requests (and urllib3 under it)
wait on socket2's hub instead of blocking the process; a socket2.group
with a limit keeps at most --limit requests in flight.  Each line printed
is one URL: its status, its size and how long it took; the last line, the
total time (compare it with the sum of the individual times).
"""
import socket2.monkey

socket2.monkey.patch_all()      # before requests is imported

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import socket2  # noqa: E402


def fetch(session, url, timeout):
    """GET *url*; return (url, status or error text, bytes, seconds)."""
    import requests
    t0 = time.monotonic()
    try:
        r = session.get(url, timeout=timeout)
        return url, r.status_code, len(r.content), time.monotonic() - t0
    except requests.RequestException as e:
        return url, "error: %s" % e.__class__.__name__, 0, \
            time.monotonic() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="GET many URLs concurrently with requests, made "
                    "cooperative by socket2.monkey.")
    ap.add_argument("urls", nargs="+", metavar="URL")
    ap.add_argument("--limit", type=int, default=10,
                    help="requests in flight at once (default: %(default)s)")
    ap.add_argument("--timeout", type=float, default=30.0,
                    help="seconds per request (default: %(default)s)")
    ap.add_argument("--cafile", help="PEM file of CAs to trust for https")
    args = ap.parse_args(argv)
    if args.limit < 1:
        ap.error("--limit must be at least 1")
    try:
        import requests
    except ImportError:
        ap.exit(1, "concurrent_requests: needs requests (pip install "
                "requests)\n")
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=args.limit)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    if args.cafile:
        session.verify = args.cafile
    t0 = time.monotonic()
    results = []
    with socket2.group(limit=args.limit) as g:
        threads = [g.spawn(fetch, session, url, args.timeout)
                   for url in args.urls]
    for t in threads:
        url, status, size, secs = t.join()
        results.append(secs)
        print("%s %s %d bytes %.3fs" % (url, status, size, secs))
    print("total %.3fs for %d requests (%.3fs if one after another)" % (
        time.monotonic() - t0, len(args.urls), sum(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
