#!/usr/bin/env python3
"""Side-by-side HTTP benchmark: socket2.http.serve against nginx, bjoern,
granian, meinheld, uvicorn, gunicorn's gevent worker, gevent's pywsgi and
waitress, on one hello-world application, in one run.

    bash tools/dev.sh bench-http                 # 3 rounds, 5 s cells (~20 min)
    bash tools/dev.sh bench-http --quick         # 1 round, 1 s cells: smoke test
    bash tools/dev.sh bench-http --servers nginx,socket2 --workloads keepalive-100

Every server runs TechEmpower's plaintext application (tools/bench/
http_app.py: 200, text/plain, ``Hello, World!``; nginx answers it with
``return 200``), one worker, as its users start it, pinned to CPU 0;
``wrk`` (one thread) runs on CPU 1.  Rounds are interleaved (each round
runs every server once per workload, in a rotated order), a fresh server
process per cell, and each figure is the median over the rounds.

Per cell: requests/s and p99 latency (wrk), server CPU per request (user +
system time of every process of the server's session, children included,
from /proc before and after the measured wrk run) -- the verdict figure,
since wall-clock on a shared VM moves 1.5x between runs -- and the peak RSS
(VmHWM, summed over the server's processes).  Ratios are to nginx measured
in the same run.

Peers live in their own virtual environment (``bash tools/bench/http_peers.sh``,
default ``.venv-bench``, or $VENV_BENCH); socket2 runs from the interpreter
running this script.  A server that is missing is skipped with the line
that installs it; this script installs nothing.
"""
import argparse
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
VENV_BENCH = os.environ.get("VENV_BENCH", os.path.join(ROOT, ".venv-bench"))
LUA = os.path.join(HERE, "http_wrk.lua")
LAUNCH = os.path.join(HERE, "http_launch.py")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PEERS_HINT = "bash tools/bench/http_peers.sh"

# name -> (connections, pipeline depth, Connection: close)
WORKLOADS = {
    "keepalive-100": (100, 1, False),
    "keepalive-1000": (1000, 1, False),
    "pipeline-16x100": (100, 16, False),
    "close-50": (50, 1, True),
}

# name -> (where it runs: 'binary' | 'peers' | 'socket2', modules it
#          imports (peers) or binary it needs, how to install it)
SERVERS = {
    "nginx": ("binary", ["nginx"], "apt-get install nginx-light"),
    "bjoern": ("peers", ["bjoern"], PEERS_HINT + " (pip: bjoern; apt: libev-dev)"),
    "granian": ("peers", ["granian"], PEERS_HINT + " (pip: granian)"),
    "meinheld": ("peers", ["meinheld"],
                 PEERS_HINT + " (pip install --no-deps meinheld)"),
    "uvicorn": ("peers", ["uvicorn", "httptools", "uvloop"],
                PEERS_HINT + " (pip: uvicorn httptools uvloop)"),
    "gunicorn-gevent": ("peers", ["gunicorn", "gevent", "packaging"],
                        PEERS_HINT + " (pip: gunicorn gevent packaging)"),
    "gevent-pywsgi": ("peers", ["gevent"], PEERS_HINT + " (pip: gevent)"),
    "waitress": ("peers", ["waitress"], PEERS_HINT + " (pip: waitress)"),
    "socket2": ("socket2", [], "bash tools/dev.sh setup"),
    "socket2-pure": ("socket2", [], "bash tools/dev.sh setup"),
}
REFERENCE = "nginx"
PEER_DISTS = ["bjoern", "granian", "meinheld", "uvicorn", "httptools",
              "uvloop", "gunicorn", "gevent", "greenlet", "waitress"]

# nginx as the C reference: one worker, ``return 200``, no access log, and
# keepalive_requests raised from its default of 1,000 because no other
# server here closes a keep-alive connection after N requests (with the
# default, nginx reconnects every 1,000 responses, and its pipelined p99
# goes from ~20 ms to ~100-180 ms).  Its own pid, log and temp paths in a
# temporary directory: never the machine's nginx.
NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
worker_rlimit_nofile 40000;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            default_type text/plain;
            return 200 "Hello, World!";
        }}
    }}
}}
"""


def log(*args):
    print(*args, file=sys.stderr, flush=True)


# -- the servers --------------------------------------------------------------

def peer_bin(name):
    return os.path.join(VENV_BENCH, "bin", name)


_CLI = []


def socket2_cli():
    """Whether ``python -m socket2.http MODULE:APP --bind`` works here
    (asked once: ``--help`` runs and mentions --bind)."""
    if not _CLI:
        r = subprocess.run([sys.executable, "-m", "socket2.http", "--help"],
                           capture_output=True, text=True, timeout=60)
        _CLI.append(r.returncode == 0 and "--bind" in r.stdout)
    return _CLI[0]


def server_argv(name, port, tmp):
    """(argv, extra environment) starting server *name* on *port*."""
    host, peer_py = "127.0.0.1", peer_bin("python")
    env = {"PYTHONPATH": HERE}
    if name == "nginx":
        conf = os.path.join(tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(tmp=tmp, port=port))
        return [shutil.which("nginx") or "/usr/sbin/nginx", "-p", tmp,
                "-e", os.path.join(tmp, "error.log"), "-c", conf], env
    if name in ("bjoern", "meinheld"):
        return [peer_py, LAUNCH, name, "--host", host, "--port", str(port)], env
    if name == "gevent-pywsgi":
        return [peer_py, LAUNCH, "pywsgi", "--host", host, "--port",
                str(port)], env
    if name == "granian":
        return [peer_bin("granian"), "--interface", "wsgi", "--workers", "1",
                "--host", host, "--port", str(port), "http_app:app"], env
    if name == "uvicorn":
        return [peer_bin("uvicorn"), "--loop", "uvloop", "--http",
                "httptools", "--no-access-log", "--log-level", "warning",
                "--host", host, "--port", str(port), "http_app:asgi_app"], env
    if name == "gunicorn-gevent":
        return [peer_bin("gunicorn"), "-k", "gevent", "-w", "1", "-b",
                "%s:%d" % (host, port), "http_app:app"], env
    if name == "waitress":
        # connection_limit defaults to 100: raised so that the 1,000-
        # connection workload measures 1,000 connections, not a backlog.
        return [peer_bin("waitress-serve"), "--listen=%s:%d" % (host, port),
                "--connection-limit=2000", "http_app:app"], env
    if name in ("socket2", "socket2-pure"):
        if name == "socket2-pure":
            env["SOCKET2_PURE_PYTHON"] = "1"
        if socket2_cli():
            return [sys.executable, "-m", "socket2.http", "http_app:app",
                    "--bind", "%s:%d" % (host, port)], env
        return [sys.executable, LAUNCH, "socket2", "--host", host, "--port",
                str(port)], env
    raise ValueError("unknown server %r" % name)


def availability(names):
    """{name: None if it can run, else the line saying how to install it}."""
    out = {}
    peers_ok = os.path.exists(peer_bin("python"))
    importable = set()
    if peers_ok:
        mods = sorted({m for n in names for m in SERVERS[n][1]
                       if SERVERS[n][0] == "peers"})
        code = ("import importlib.util as u\nfor m in %r:\n"
                "    print(m) if u.find_spec(m) else None" % mods)
        r = subprocess.run([peer_bin("python"), "-c", code],
                           capture_output=True, text=True)
        importable = set(r.stdout.split())
    for n in names:
        kind, needs, hint = SERVERS[n]
        if kind == "binary":
            ok = all(shutil.which(b) or os.path.exists("/usr/sbin/" + b)
                     for b in needs)
        elif kind == "peers":
            ok = peers_ok and all(m in importable for m in needs)
        else:
            r = subprocess.run([sys.executable, "-c",
                                "import socket2.http; socket2.http.serve"],
                               capture_output=True, text=True)
            ok = r.returncode == 0
            if not ok:
                hint = "socket2.http.serve missing (%s)" % (
                    r.stderr.strip().splitlines() or ["?"])[-1]
        out[n] = None if ok else hint
    return out


def versions():
    v = {}
    if os.path.exists(peer_bin("python")):
        code = ("import importlib.metadata as m\nfor p in %r:\n"
                "    try: print(p, m.version(p))\n"
                "    except m.PackageNotFoundError: pass" % PEER_DISTS)
        r = subprocess.run([peer_bin("python"), "-c", code],
                           capture_output=True, text=True)
        v.update(line.split() for line in r.stdout.splitlines())
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if os.path.exists(nginx):
        r = subprocess.run([nginx, "-v"], capture_output=True, text=True)
        v["nginx"] = r.stderr.strip().rsplit("/", 1)[-1]
    r = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    v["wrk"] = (r.stdout.split() or ["?", "?"])[1]
    return v


# -- processes ----------------------------------------------------------------

def session_procs(sid):
    """/proc/<pid>/stat fields (after the command) of every process of
    session *sid*."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:         # gone meanwhile
            continue
        if int(fields[3]) == sid:
            out.append((int(entry), fields))
    return out


def cpu_seconds(sid):
    """(user, system) time of the session's processes, children reaped
    by them included, in seconds."""
    user = system = 0
    for _, f in session_procs(sid):
        user += int(f[11]) + int(f[13])
        system += int(f[12]) + int(f[14])
    return user / CLK_TCK, system / CLK_TCK


def peak_rss_mib(sid):
    total = 0
    for pid, _ in session_procs(sid):
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pin(cpu):
    return ["taskset", "-c", str(cpu)] if PIN else []


def check_hello(port):
    """Two requests, one after the other, on one connection: both must be
    answered 200 with the body (the server keeps the connection)."""
    req = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        for i in (1, 2):
            s.sendall(req)
            data = b""
            while not data.endswith(b"Hello, World!"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            if not data.startswith(b"HTTP/1.1 200"):
                raise RuntimeError("unexpected answer to GET / (request %d "
                                   "of 2 on one connection): %r"
                                   % (i, data[:300]))


class Server:
    """One server process (its own session), pinned to CPU 0."""

    def __init__(self, name, tmp):
        self.name = name
        self.port = free_port()
        argv, extra = server_argv(name, self.port, tmp)
        env = dict(os.environ, **extra)
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(pin(0) + argv, cwd=tmp, env=env,
                                     stdout=self.err, stderr=self.err,
                                     start_new_session=True)
        self.sid = self.proc.pid
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited: %s" % (self.name, self.output()))
            try:
                socket.create_connection(("127.0.0.1", self.port),
                                         timeout=1).close()
            except OSError:
                time.sleep(0.05)
                continue
            try:
                check_hello(self.port)
            except (RuntimeError, OSError) as e:
                raise RuntimeError("%s; server output: %s"
                                   % (e, self.output() or "-")) from None
            return
        raise RuntimeError("%s did not start listening" % self.name)

    def output(self, limit=1500):
        self.err.seek(0)
        return self.err.read().decode("utf-8", "replace")[-limit:]

    def stop(self):
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.sid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
                # Children (nginx's worker, gunicorn's) may outlive the leader
                deadline = time.monotonic() + wait
                while session_procs(self.sid) and time.monotonic() < deadline:
                    time.sleep(0.05)
                if not session_procs(self.sid):
                    break
            except subprocess.TimeoutExpired:
                continue
        self.err.close()


# -- one cell -----------------------------------------------------------------

def wrk(port, workload, seconds):
    conns, depth, close = WORKLOADS[workload]
    cmd = pin(1) + ["wrk", "-t1", "-c%d" % conns, "-d%ds" % seconds,
                    "--timeout", "4s", "-s", LUA]
    if close:
        cmd += ["-H", "Connection: close"]
    cmd += ["http://127.0.0.1:%d/" % port, "--", str(depth)]
    r = subprocess.run(cmd, capture_output=True, text=True,
                       timeout=seconds + 60)
    for line in r.stdout.splitlines():
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError("wrk said: %s %s" % (r.stdout[-500:], r.stderr[-500:]))


def run_cell(name, workload, args, tmp):
    nan = float("nan")
    server = Server(name, tmp)
    try:
        if args.warmup > 0:
            wrk(server.port, workload, args.warmup)
            time.sleep(0.3)     # the warm-up's connections close first
        u0, s0 = cpu_seconds(server.sid)
        res = wrk(server.port, workload, args.duration)
        u1, s1 = cpu_seconds(server.sid)
        rss = peak_rss_mib(server.sid)
        alive = server.proc.poll() is None
        out = server.output()
    finally:
        server.stop()
    if res["requests"] == 0:
        raise RuntimeError("no request completed (%s); server said: %s"
                           % (errors_text(res), out or "-"))
    if not alive:
        raise RuntimeError("the server died during the run: %s" % out)
    return {"rate": res["requests"] / (res["duration_us"] / 1e6),
            "cpu_us": (u1 - u0 + s1 - s0) / res["requests"] * 1e6,
            "user_us": (u1 - u0) / res["requests"] * 1e6,
            # wrk 4.1's percentile sometimes answers 0 (its own --latency
            # table too), mostly when pipelining: left out, not a zero.
            "p99_ms": res["p99_us"] / 1000.0 if res["p99_us"] else nan,
            "rss_mib": rss,
            "requests": res["requests"], "errors": errors_text(res)}


def errors_text(res):
    names = ("connect_errors", "read_errors", "write_errors",
             "status_errors", "timeouts")
    return ", ".join("%s %d" % (k.replace("_errors", ""), res[k])
                     for k in names if res.get(k))


# -- reporting ----------------------------------------------------------------

def fmt_rate(v):
    if v != v:
        return "-"
    if v >= 9950:
        return "%.0fk" % (v / 1000)
    if v >= 1000:
        return "%.1fk" % (v / 1000)
    return "%.0f" % v


def fmt_cpu(v):
    return "-" if v != v else ("%.0f" % v if v >= 100 else "%.1f" % v)


def ratio(a, b):
    return a / b if b and b == b and a == a else float("nan")


def fmt_ratio(r):
    return "-" if r != r else "%.2fx" % r


def stalled(med, s, w):
    """A cell whose server all but stopped answering (bjoern with pipelined
    requests): under 1% of nginx's requests/s, where a CPU figure per
    request means nothing."""
    rate = med.get(s, {}).get(w, {}).get("rate", float("nan"))
    return ratio(rate, med.get(REFERENCE, {}).get(w, {}).get("rate")) < 0.01


def table(title, servers, workloads, cell):
    lines = ["", "## " + title, "", "| server | " + " | ".join(workloads)
             + " |", "|---" * (len(workloads) + 1) + "|"]
    for s in servers:
        cells = [cell(s, w) for w in workloads]
        lines.append("| %s | %s |" % (s, " | ".join(cells)))
    return lines


def render(med, servers, workloads, meta, notes, flagged=()):
    ref = med.get(REFERENCE, {})

    def get(s, w, k):
        return med.get(s, {}).get(w, {}).get(k, float("nan"))

    def main_cell(s, w):
        c, rate = get(s, w, "cpu_us"), get(s, w, "rate")
        mark = " †" if (s, w) in flagged else ""
        if c != c:
            return "failed"
        if stalled(med, s, w):
            return "fails (%s req/s)%s" % (fmt_rate(rate), mark)
        return "%s (%s)%s" % (fmt_cpu(c), fmt_rate(rate), mark)
    lines = ["# socket2.http benchmark", "",
             "- date: %s; load average at start %s, at end %s" % (
                 meta["date"], meta["load_start"], meta["load_end"]),
             "- machine: %s, %d CPUs, Linux %s, Python %s" % (
                 meta["cpu"], meta["ncpu"], meta["kernel"], meta["python"]),
             "- command: `%s`" % meta["command"],
             "- rounds: %d (interleaved), %d s measured per cell after %d "
             "s warm-up; server on CPU 0, wrk -t1 on CPU 1%s; medians" % (
                 meta["rounds"], meta["duration"], meta["warmup"],
                 "" if meta["pinned"] else " (NOT pinned: no taskset)"),
             "- versions: %s" % ", ".join(
                 "%s %s" % kv for kv in sorted(meta["versions"].items())),
             "- socket2 started with: %s" % meta["socket2_cmd"]]
    lines += table("Server CPU per request (µs), requests/s in brackets "
                   "(†: wrk counted errors, see the notes)",
                   servers, workloads, main_cell)
    lines += table("Server CPU per request, ratio to nginx (lower is cheaper)",
                   servers, workloads, lambda s, w: "fails" if stalled(
                       med, s, w) else fmt_ratio(ratio(
                           get(s, w, "cpu_us"), ref.get(w, {}).get("cpu_us"))))
    lines += table("Of which user space (µs per request; the rest is the "
                   "kernel's)", servers, workloads,
                   lambda s, w: "fails" if stalled(med, s, w)
                   else fmt_cpu(get(s, w, "user_us")))
    lines += table("Requests/s, ratio to nginx", servers, workloads,
                   lambda s, w: fmt_ratio(ratio(
                       get(s, w, "rate"), ref.get(w, {}).get("rate"))))
    lines += table("p99 latency (ms)", servers, workloads,
                   lambda s, w: "-" if get(s, w, "p99_ms") != get(s, w, "p99_ms")
                   else "%.2f" % get(s, w, "p99_ms"))
    lines += table("Peak RSS (MiB, summed over the server's processes)",
                   servers, workloads,
                   lambda s, w: "-" if get(s, w, "rss_mib") != get(s, w, "rss_mib")
                   else "%.1f" % get(s, w, "rss_mib"))
    lines += ["", "## Targets (issue 19), socket2's compiled build", ""]
    lines += ["- %s: %s" % kv for kv in verdicts(med)] or ["- socket2 not run"]
    if notes:
        lines += ["", "## Notes", ""] + ["- " + n for n in notes]
    return "\n".join(lines) + "\n"


def verdicts(med):
    s2 = med.get("socket2")
    if not s2:
        return []
    out = []

    def cpu(s, w):
        return med.get(s, {}).get(w, {}).get("cpu_us", float("nan"))

    def check(what, mine, other, factor, label):
        r = ratio(mine, cpu(other, what) * factor)
        if r != r:
            return "%s n/a" % label
        return "%s %s (%s vs %s)" % (label, "met" if r <= 1 else "NOT met",
                                     fmt_cpu(mine), fmt_cpu(cpu(other, what) * factor))
    for w in ("keepalive-100", "keepalive-1000"):
        if w in s2:
            mine = s2[w]["cpu_us"]
            out.append((w, "; ".join([
                check(w, mine, "bjoern", 1.0, "<= bjoern"),
                check(w, mine, "granian", 0.5, "<= 0.5x granian"),
                check(w, mine, "gunicorn-gevent", 1 / 15.0,
                      "<= 1/15 gunicorn-gevent")])))
    if "pipeline-16x100" in s2:
        mine = s2["pipeline-16x100"]["cpu_us"]
        ref = cpu(REFERENCE, "keepalive-100")
        r = ratio(mine, ref)
        out.append(("pipeline-16x100", "<= nginx keepalive-100: %s (%s vs %s)"
                    % ("n/a" if r != r else "met" if r <= 1 else "NOT met",
                       fmt_cpu(mine), fmt_cpu(ref))))
    if "close-50" in s2:
        out.append(("close-50", check("close-50", s2["close-50"]["cpu_us"],
                                      REFERENCE, 1.2, "<= 1.2x nginx")))
    return out


def machine():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load():
    return "%.2f %.2f %.2f" % os.getloadavg()


# -- main ---------------------------------------------------------------------

def median(values):
    """The median of the values that are numbers (NaN: none was)."""
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def parse_args(argv):
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 1 round, 1 s cells, no warm-up")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5,
                    help="measured seconds per cell (default: %(default)s)")
    ap.add_argument("--warmup", type=int, default=1,
                    help="wrk warm-up seconds before each measured run, 0 "
                         "for none (default: %(default)s)")
    ap.add_argument("--servers", default=",".join(SERVERS),
                    help="comma-separated subset of: %s" % ", ".join(SERVERS))
    ap.add_argument("--workloads", default=",".join(WORKLOADS),
                    help="comma-separated subset of: %s" % ", ".join(WORKLOADS))
    ap.add_argument("--out", default=None,
                    help="where to write the results (default: tools/bench/"
                         "results for a full run, tools/bench/build/http "
                         "otherwise)")
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds, args.duration, args.warmup = 1, 1, 0
    args.server_list = [s.strip() for s in args.servers.split(",") if s.strip()]
    args.workload_list = [w.strip() for w in args.workloads.split(",")
                          if w.strip()]
    for s in args.server_list:
        if s not in SERVERS:
            ap.error("unknown server %r (known: %s)" % (s, ", ".join(SERVERS)))
    for w in args.workload_list:
        if w not in WORKLOADS:
            ap.error("unknown workload %r (known: %s)"
                     % (w, ", ".join(WORKLOADS)))
    if REFERENCE not in args.server_list:
        args.server_list.insert(0, REFERENCE)
    if args.out is None:
        full = not (args.quick or argv_has(argv, "--servers")
                    or argv_has(argv, "--workloads"))
        args.out = os.path.join(HERE, "results") if full else os.path.join(
            HERE, "build", "http")
    return args


def argv_has(argv, flag):
    return any(a == flag or a.startswith(flag + "=")
               for a in (argv if argv is not None else sys.argv[1:]))


def run_rounds(servers, workloads, args, failures):
    samples = {s: {w: [] for w in workloads} for s in servers}
    with tempfile.TemporaryDirectory(prefix="http-bench-") as tmp:
        for rnd in range(args.rounds):
            for w in workloads:
                order = servers[rnd % len(servers):] + servers[:rnd % len(servers)]
                for s in order:
                    try:
                        cell = run_cell(s, w, args, tmp)
                    except (RuntimeError, OSError,
                            subprocess.TimeoutExpired) as e:
                        log("bench-http: round %d %-16s %-16s FAILED: %s"
                            % (rnd + 1, w, s, e))
                        failures.append("round %d, %s, %s: %s"
                                        % (rnd + 1, s, w, e))
                        continue
                    samples[s][w].append(cell)
                    log("bench-http: round %d %-16s %-16s %9.0f req/s  cpu "
                        "%6.1f us/req (user %5.1f)  p99 %7.2f ms  rss %6.1f "
                        "MiB%s" % (
                            rnd + 1, w, s, cell["rate"], cell["cpu_us"],
                            cell["user_us"],
                            cell["p99_ms"], cell["rss_mib"],
                            "  [%s]" % cell["errors"] if cell["errors"] else ""))
    return samples


def main(argv=None):
    global PIN
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench-http: wrk is missing: apt-get install wrk")
        return 0
    PIN = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited

    avail = availability(args.server_list)
    notes = []
    for s, hint in avail.items():
        if hint:
            line = "%s: not available, skipped (install: %s)" % (s, hint)
            log("bench-http: " + line)
            notes.append(line)
    servers = [s for s in args.server_list if avail[s] is None]
    if not servers:
        print("bench-http: no server to run")
        return 0
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "load_start": load(), "cpu": machine(), "ncpu": os.cpu_count(),
            "kernel": platform.release(), "python": platform.python_version(),
            "command": "bash tools/dev.sh bench-http " + " ".join(
                argv if argv is not None else sys.argv[1:]),
            "rounds": args.rounds, "duration": args.duration,
            "warmup": args.warmup, "pinned": PIN, "versions": versions(),
            "socket2_cmd": ("python -m socket2.http http_app:app" if
                            socket2_cli() else
                            "tools/bench/http_launch.py socket2 (serve())")}
    failures = []
    samples = run_rounds(servers, args.workload_list, args, failures)
    meta["load_end"] = load()
    med = {s: {w: {k: median([c[k] for c in samples[s][w]])
                   for k in ("rate", "cpu_us", "user_us", "p99_ms",
                             "rss_mib")}
               for w in args.workload_list} for s in servers}
    flagged = set()
    for s in servers:
        for w in args.workload_list:
            errs = [c["errors"] for c in samples[s][w] if c["errors"]]
            if errs:
                flagged.add((s, w))
                notes.append("†%s %s: wrk counted errors (%s)"
                             % (s, w, "; ".join(errs)))
    notes += ["FAILED " + f for f in failures]
    text = render(med, servers, args.workload_list, meta, notes, flagged)
    os.makedirs(args.out, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    with open(os.path.join(args.out, "http-%s.json" % stamp), "w") as f:
        json.dump({"meta": meta, "medians": med, "samples": samples,
                   "notes": notes}, f, indent=1)
    for name in ("http-%s.md" % stamp, "http-latest.md"):
        with open(os.path.join(args.out, name), "w") as f:
            f.write(text)
    print(text)
    return 0


PIN = True

if __name__ == "__main__":
    sys.exit(main())
