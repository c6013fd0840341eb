#!/usr/bin/env python3
"""Fetch a list of URLs concurrently: one socket2 thread per URL, at most
--concurrency at once (a ``socket2.group(limit=...)``), all sharing one
``socket2.http.Client`` and so its keep-alive connections.

    python examples/crawler.py https://example.org/ https://example.com/
    python examples/crawler.py --file urls.txt --concurrency 20 --timeout 10

Prints one line per URL (status, bytes, seconds, or the error) and a
summary; exits 1 if any URL failed.
"""
import argparse
import sys
import time

import socket2
import socket2.http


def fetch(client, url, results):
    """GET *url*; record ``(url, status or error, size, seconds)``."""
    t0 = time.monotonic()
    try:
        r = client.get(url)
        results.append((url, r.status, len(r.read()),
                        time.monotonic() - t0))
    except (socket2.Error, ValueError) as e:
        results.append((url, "error: %s" % e, 0, time.monotonic() - t0))


def crawl(urls, concurrency=10, timeout=30.0, max_per_host=6):
    """Fetch every URL; return the results in completion order."""
    results = []
    with socket2.http.Client(timeout=timeout,
                             max_per_host=max_per_host) as client:
        with socket2.group(limit=concurrency) as g:
            for url in urls:
                g.spawn(fetch, client, url, results)
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Fetch URLs concurrently with one socket2.http.Client.")
    ap.add_argument("urls", nargs="*", help="http:// or https:// URLs")
    ap.add_argument("--file", help="read URLs from this file, one a line")
    ap.add_argument("--concurrency", type=int, default=10,
                    help="requests at once (default: %(default)s)")
    ap.add_argument("--max-per-host", type=int, default=6,
                    help="connections per host (default: %(default)s)")
    ap.add_argument("--timeout", type=float, default=30.0,
                    help="seconds for each request (default: %(default)s)")
    args = ap.parse_args(argv)
    urls = list(args.urls)
    if args.file:
        with open(args.file) as f:
            urls += [line.strip() for line in f
                     if line.strip() and not line.startswith("#")]
    if not urls:
        ap.error("give URLs, or --file")
    t0 = time.monotonic()
    results = crawl(urls, args.concurrency, args.timeout, args.max_per_host)
    failed = 0
    for url, status, size, secs in results:
        failed += not isinstance(status, int)
        print("%-6s %9d B %6.3fs  %s" % (status if isinstance(status, int)
                                         else "FAIL", size, secs, url))
        if not isinstance(status, int):
            print("       " + status)
    print("%d URLs, %d failed, %.2fs" % (len(results), failed,
                                         time.monotonic() - t0))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
