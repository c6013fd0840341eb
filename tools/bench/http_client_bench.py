#!/usr/bin/env python3
"""HTTP clients side by side: client CPU per request over keep-alive.

    bash tools/dev.sh bench-http-client
    python tools/bench/http_client_bench.py --requests 2000 \
        --only socket2,pycurl

nginx (tests/peers/nginx_peer.py, Debian's nginx-light) serves a 16-byte
body on CPU 1; each client runs in a process of its own on CPU 0 and
makes --requests GETs (10,000) over keep-alive from --workers (10)
concurrent threads of its kind, after a warm-up of 500.  The verdict
figure is the client process's CPU time (user + system) per request;
requests per second are given too.

The clients: socket2.http.Client; requests through
socket2.http.requests_adapter (its Adapter mounted on a plain
requests.Session, and its Session, which also reads the environment's
settings once per origin); geventhttpclient; requests under gevent's
and socket2's monkey patching; urllib3 and httpx (sync) under socket2's
patching; pycurl (libcurl's multi interface: curl's own C event loop).
They need the peers' virtual environment (never socket2's own .venv):

    python -m venv .venv-bench && .venv-bench/bin/pip install cffi greenlet \
        gevent geventhttpclient pycurl httpx requests urllib3

(--python picks another interpreter; socket2 is imported from this
tree.)  Prints the table and the verdicts against issue 20's targets.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "peers"))

import nginx_peer  # noqa: E402

CLIENT = r'''
import json, os, sys, time
mode, url, total, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
warm = 500
if mode in ("requests-gevent", "geventhttpclient"):
    from gevent import monkey; monkey.patch_all()
    import gevent
    def run_all(fn, per):
        gevent.joinall([gevent.spawn(fn, per) for _ in range(workers)], raise_error=True)
elif mode != "pycurl":
    if mode in ("requests-socket2", "urllib3-socket2", "httpx-socket2"):
        import socket2.monkey; socket2.monkey.patch_all()
    import socket2
    def run_all(fn, per):
        with socket2.group() as g:
            for _ in range(workers):
                g.spawn(fn, per)

if mode == "socket2":
    import socket2.http
    client = socket2.http.Client()
    def make():
        get = client.get
        def one():
            return get(url).read()
        return one
elif mode == "socket2-adapter":
    import requests
    from socket2.http.requests_adapter import Adapter
    def make():
        s = requests.Session()
        s.mount("http://", Adapter())
        return lambda: s.get(url).content
elif mode == "socket2-session":
    from socket2.http.requests_adapter import Session
    def make():
        s = Session()
        return lambda: s.get(url).content
elif mode.startswith("requests-"):
    import requests
    def make():
        s = requests.Session()
        return lambda: s.get(url).content
elif mode == "urllib3-socket2":
    import urllib3
    pm = urllib3.PoolManager(maxsize=workers)
    def make():
        return lambda: pm.request("GET", url).data
elif mode == "httpx-socket2":
    import httpx
    hc = httpx.Client(limits=httpx.Limits(max_connections=workers, max_keepalive_connections=workers))
    def make():
        return lambda: hc.get(url).content
elif mode == "geventhttpclient":
    from geventhttpclient import HTTPClient
    from geventhttpclient.url import URL
    u = URL(url)
    hc = HTTPClient(u.host, u.port, concurrency=workers)
    def make():
        path = u.request_uri
        return lambda: hc.get(path).read()

def measure_pycurl(n):
    import pycurl
    m = pycurl.CurlMulti()
    handles = []
    sink = []
    for _ in range(workers):
        c = pycurl.Curl()
        c.setopt(pycurl.URL, url)
        c.setopt(pycurl.WRITEFUNCTION, sink.append)
        handles.append(c)
    left = [n]
    def start(c):
        if left[0] > 0:
            left[0] -= 1
            m.add_handle(c)
            return True
        return False
    active = sum(start(c) for c in handles)
    done = 0
    while active:
        ret, _ = m.perform()
        while ret == pycurl.E_CALL_MULTI_PERFORM:
            ret, _ = m.perform()
        while True:
            queued, ok, failed = m.info_read()
            for c in ok:
                m.remove_handle(c)
                done += 1
                active -= 1
                active += start(c)
            if failed:
                raise RuntimeError(failed)
            if not queued:
                break
        if active:
            m.select(1.0)
    sink.clear()
    return done

if mode == "pycurl":
    measure_pycurl(warm)
    t0, w0 = time.process_time(), time.perf_counter()
    n = measure_pycurl(total)
else:
    def loop(per):
        one = make()
        for _ in range(per):
            body = one()
            assert body, body
    run_all(loop, warm // workers)
    t0, w0 = time.process_time(), time.perf_counter()
    run_all(loop, total // workers)
    n = (total // workers) * workers
cpu, wall = time.process_time() - t0, time.perf_counter() - w0
print(json.dumps({"cpu_us": cpu / n * 1e6, "rps": n / wall, "n": n}))
'''

CLIENTS = ["socket2", "socket2-adapter", "socket2-session",
           "geventhttpclient",
           "requests-gevent", "requests-socket2", "urllib3-socket2",
           "httpx-socket2", "pycurl"]


def default_python():
    p = os.path.join(ROOT, ".venv-bench", "bin", "python")
    return p if os.path.exists(p) else sys.executable


def run_client(python, mode, url, total, workers, cpu):
    env = dict(os.environ, PYTHONPATH=ROOT)
    cmd = [python, "-c", CLIENT, mode, url, str(total), str(workers)]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu)] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True, env=env,
                         timeout=600)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def verdicts(res):
    def cpu(name):
        r = res.get(name) or {}
        return r.get("cpu_us")
    s, out = cpu("socket2"), []

    def line(ok, text):
        out.append("%s  %s" % ("PASS" if ok else "FAIL", text))
    if s is None:
        return ["socket2 did not run"]
    g = cpu("geventhttpclient")
    if g:
        line(s <= g, "socket2 %.1f us <= geventhttpclient %.1f us" % (s, g))
    for peer in ("requests-socket2", "requests-gevent"):
        r = cpu(peer)
        if r:
            line(s <= r / 5, "socket2 %.1f us <= 1/5 of %s %.1f us (%.1fx)"
                 % (s, peer, r, r / s))
    p = cpu("pycurl")
    if p:
        line(s <= 1.5 * p, "socket2 %.1f us within 1.5x of pycurl %.1f us "
             "(%.2fx)" % (s, p, s / p))
    r = cpu("requests-socket2")
    for name, what in (("socket2-adapter", "Adapter on a requests.Session"),
                       ("socket2-session", "requests_adapter.Session")):
        a = cpu(name)
        if a and r:
            line(r / a >= 2, "%s %.1f us: %.2fx less CPU than requests "
                 "under socket2's patching %.1f us (target >= 2x)"
                 % (what, a, r / a, r))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--workers", type=int, default=10)
    ap.add_argument("--only", help="comma-separated clients (default: all "
                                   "of %s)" % ",".join(CLIENTS))
    ap.add_argument("--python", default=default_python(),
                    help="the interpreter with the peers installed "
                         "(default: %(default)s)")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args(argv)
    if nginx_peer.NGINX is None:
        sys.exit("needs nginx: " + nginx_peer.INSTALL)
    names = args.only.split(",") if args.only else CLIENTS
    ncpu = os.cpu_count() or 1
    server_cpu, client_cpu = (1, 0) if ncpu > 1 else (None, None)
    res = {}
    with tempfile.TemporaryDirectory() as d, \
            nginx_peer.Nginx(d, cpu=server_cpu) as ng:
        url = ng.url("/small")
        print("%d GETs of %d bytes, %d concurrent, keep-alive, nginx on "
              "CPU %s, client on CPU %s" % (args.requests,
                                            len(nginx_peer.SMALL),
                                            args.workers, server_cpu,
                                            client_cpu))
        print("%-18s %14s %10s %12s" % ("client", "CPU us/req", "req/s",
                                        "vs socket2"))
        for name in names:
            r = res[name] = run_client(args.python, name, url,
                                       args.requests, args.workers,
                                       client_cpu)
            if "error" in r:
                print("%-18s  failed: %s" % (name, r["error"]))
                continue
            base = res.get("socket2", {}).get("cpu_us")
            print("%-18s %14.1f %10.0f %12s" % (
                name, r["cpu_us"], r["rps"],
                "%.2fx" % (r["cpu_us"] / base) if base else "-"),
                flush=True)
    print()
    for v in verdicts(res):
        print(v)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
