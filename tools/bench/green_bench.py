#!/usr/bin/env python3
"""Blocking libraries made cooperative, side by side.

    bash tools/dev.sh bench-green          # or: python tools/bench/green_bench.py

1. ``requests``: 10 concurrent workers, each calling ``session.get()`` in a
   loop on a keep-alive connection to a C HTTP responder
   (servers/http_keepalive.c, on CPU 1), for a few seconds: patched by
   socket2.monkey (a socket2.group), patched by gevent.monkey (greenlets),
   and plain OS threads (no patching).  Requests per second; the client on
   CPU 0.
2. The echo path: servers/green_echo.py (standard socket API on
   socket2.green) against examples/echo_server.py (socket2's own API),
   rr-100 with the C load generator, through tools/bench/run.py's cells.

Prints the figures and the ratios the compatibility issue sets as targets
(socket2-patched requests >= gevent-patched; green echo >= 0.8x native).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import run  # noqa: E402

CLIENT = r'''
import json, sys, time
mode, port, seconds, workers = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
if mode == "gevent":
    from gevent import monkey; monkey.patch_all()
    import gevent
if mode == "socket2":
    import socket2.monkey; socket2.monkey.patch_all()
    import socket2
import requests
url = "http://127.0.0.1:%d/" % port
counts = []
def worker(end):
    s = requests.Session()
    n = 0
    while time.monotonic() < end:
        r = s.get(url)
        assert r.content == b"ok"
        n += 1
    counts.append(n)
t0 = time.monotonic()
end = t0 + seconds
if mode == "gevent":
    gevent.joinall([gevent.spawn(worker, end) for _ in range(workers)])
elif mode == "socket2":
    with socket2.group() as g:
        for _ in range(workers):
            g.spawn(worker, end)
else:
    import threading
    ts = [threading.Thread(target=worker, args=(end,)) for _ in range(workers)]
    for t in ts: t.start()
    for t in ts: t.join()
print(json.dumps({"requests": sum(counts), "seconds": time.monotonic() - t0}))
'''


def requests_rate(python, mode, port, seconds, workers):
    argv = run.pin(0) + [python] + (["-X", "dev"] if False else []) + [
        "-c", CLIENT, mode, str(port), str(seconds), str(workers)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    if out.returncode != 0:
        raise SystemExit("green_bench: %s client failed:\n%s"
                         % (mode, out.stderr[-2000:]))
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return r["requests"] / r["seconds"]


def peers_with_requests():
    py = run.peers_python()
    ok = subprocess.run([py, "-c", "import requests"], capture_output=True)
    if ok.returncode != 0:
        subprocess.run([py, "-m", "pip", "install", "-q", "requests"],
                       check=True)
    return py


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--workers", type=int, default=10)
    args = ap.parse_args(argv)
    run.PIN = (os.cpu_count() or 1) >= 2 and bool(run.shutil.which("taskset"))
    run.build()
    cc = os.environ.get("CC", "gcc")
    server_bin = os.path.join(run.BUILD, "http_keepalive")
    subprocess.run([cc, "-O2", "-Wall", "-o", server_bin,
                    os.path.join(HERE, "servers", "http_keepalive.c")],
                   check=True)
    peers = peers_with_requests()
    port = run.free_port()
    server = subprocess.Popen(run.pin(1) + [server_bin, "--port", str(port)],
                              stdout=subprocess.DEVNULL)
    rates = {"socket2": [], "gevent": [], "threads": []}
    try:
        import time
        time.sleep(0.3)
        for rnd in range(args.rounds):
            order = list(rates)[rnd % 3:] + list(rates)[:rnd % 3]
            for mode in order:
                py = peers if mode == "gevent" else sys.executable
                rate = requests_rate(py, mode, port, args.seconds,
                                     args.workers)
                rates[mode].append(rate)
                run.log("green_bench: round %d requests %-8s %8.0f req/s"
                        % (rnd + 1, mode, rate))
    finally:
        server.kill()
        server.wait()
    cells = {"socket2": [], "socket2-green": []}
    interpreters = {"socket2": sys.executable}
    cell_args = argparse.Namespace(duration=2.0, warmup=0.5, idle=0)
    for rnd in range(args.rounds):
        for name in (["socket2", "socket2-green"] if rnd % 2 == 0
                     else ["socket2-green", "socket2"]):
            c = run.run_cell(name, "rr-100", interpreters, cell_args)
            cells[name].append(c)
            run.log("green_bench: round %d echo rr-100 %-14s %8.0f/s "
                    "cpu %.2f us/op" % (rnd + 1, name, c["rate"],
                                        c["cpu_us_per_op"]))
    med = {k: statistics.median(v) for k, v in rates.items()}
    echo = {k: statistics.median(c["rate"] for c in v)
            for k, v in cells.items()}
    cpu = {k: statistics.median(c["cpu_us_per_op"] for c in v)
           for k, v in cells.items()}
    print("## requests.get, %d workers, keep-alive (req/s, median of %d)"
          % (args.workers, args.rounds))
    print("")
    print("| client | req/s | vs gevent-patched |")
    print("|---|---|---|")
    for k in ("socket2", "gevent", "threads"):
        label = {"socket2": "socket2.monkey", "gevent": "gevent.monkey",
                 "threads": "plain threads"}[k]
        print("| %s | %.0f | %.2fx |" % (label, med[k], med[k] / med["gevent"]))
    print("")
    print("## echo rr-100: standard socket API on socket2.green vs socket2's "
          "own API")
    print("")
    print("| server | round trips/s | server CPU us/op | vs native |")
    print("|---|---|---|---|")
    for k in ("socket2", "socket2-green"):
        print("| %s | %.0f | %.2f | %.2fx |" % (k, echo[k], cpu[k],
                                              echo[k] / echo["socket2"]))
    print("")
    r1 = med["socket2"] / med["gevent"]
    r2 = echo["socket2-green"] / echo["socket2"]
    print("- requests: %s (%.2fx gevent-patched; target >= 1.0)"
          % ("met" if r1 >= 1.0 else "NOT met", r1))
    print("- green echo: %s (%.2fx native; target >= 0.8)"
          % ("met" if r2 >= 0.8 else "NOT met", r2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
