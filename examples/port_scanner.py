#!/usr/bin/env python3
"""A TCP port scanner: many connects at once, a bounded number in flight.

    python examples/port_scanner.py 127.0.0.1 --ports 1-1024 --limit 200

Each port is probed in a thread of a ``socket2.group`` whose ``limit``
bounds how many connects are in flight; the probes put what they find on a
``socket2.Queue`` that one reporter thread prints from, in the order the
answers come.  Scan only hosts you are allowed to scan.
"""
import argparse
import sys
import time

import socket2


def parse_ports(text):
    """'22,80,8000-8010' -> [22, 80, 8000, ..., 8010]."""
    ports = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            lo = int(lo)
            hi = int(hi) if sep else lo
        except ValueError:
            raise ValueError("bad port range %r" % part) from None
        if not (0 < lo <= hi <= 65535):
            raise ValueError("ports must be 1-65535 in order: %r" % part)
        ports.extend(range(lo, hi + 1))
    if not ports:
        raise ValueError("no ports given")
    return ports


def scan(host, ports, limit, timeout, family="inet", show_all=False,
         out=sys.stdout):
    """Probe *ports* on *host*; print each open port (every port with
    *show_all*) as ``PORT STATE``; return the sorted list of open ports."""
    results = socket2.Queue()

    def probe(port):
        try:
            with socket2.tcp(family) as s:
                s.connect(host, port, timeout=timeout)
            results.put((port, "open"))
        except socket2.TimeoutError:
            results.put((port, "filtered"))     # no answer in time
        except socket2.Error as e:
            results.put((port, e.err))          # 'connection_refused' ...

    def report():
        found = []
        for port, state in results:             # until closed and drained
            if state == "open":
                found.append(port)
            if state == "open" or show_all:
                out.write("%d %s\n" % (port, state))
        return sorted(found)

    reporter = socket2.newthread(report)
    with socket2.group(limit=limit) as g:
        for port in ports:
            g.spawn(probe, port)                # waits for a free slot
    results.close()
    return reporter.join()


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Scan TCP ports with socket2: a group of connect probes, "
                    "at most --limit at once, reporting through a queue.")
    ap.add_argument("host", help="host name or address to scan")
    ap.add_argument("--ports", default="1-1024",
                    help="ports and ranges, e.g. 22,80,8000-8100 "
                         "(default: %(default)s)")
    ap.add_argument("--limit", type=int, default=100,
                    help="connects in flight at once (default: %(default)s)")
    ap.add_argument("--timeout", type=float, default=1.0,
                    help="seconds to wait for each answer (default: %(default)s)")
    ap.add_argument("--family", choices=["inet", "inet6"], default=None,
                    help="address family (default: guessed from host)")
    ap.add_argument("--all", action="store_true",
                    help="print every port's state, not only the open ones")
    args = ap.parse_args(argv)
    try:
        ports = parse_ports(args.ports)
    except ValueError as e:
        ap.error(str(e))
    if args.limit < 1:
        ap.error("--limit must be at least 1")
    family = args.family or ("inet6" if ":" in args.host else "inet")
    t0 = time.monotonic()
    try:
        found = scan(args.host, ports, args.limit, args.timeout, family,
                     args.all)
    except socket2.Error as e:
        print("port_scanner: %s" % e, file=sys.stderr)
        return 1
    print("scanned %d ports of %s in %.2f s: %d open" % (
        len(ports), args.host, time.monotonic() - t0, len(found)),
        file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
