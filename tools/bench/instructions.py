"""Instructions per round trip, counted by valgrind's callgrind: the
user-space work an echo server does for one 64-byte request/response at
100 connections, independent of the machine's speed and of its noise.

    bash tools/dev.sh bench-instructions              # C, socket2, pure Python
    bash tools/dev.sh bench-instructions --compare main

Each server runs under callgrind on CPU 0; the C load generator drives
it from CPU 1 (rr, 100 connections).  After the warm-up the counters are
zeroed (callgrind_control -z), and after the measured window dumped
(-d), so startup and connection setup are left out; the count is divided
by the round trips the generator completed.  Only user space is counted
(the kernel's part is the same system calls for every server: one recv
and one send per round trip, epoll_wait per batch).

Servers: ``c-epoll`` (the reference), ``socket2`` (examples/echo_server.py
with the compiled hot path), ``socket2-pure`` (the same with
SOCKET2_PURE_PYTHON=1) and, with --compare REF, the build of commit REF;
then the same over TLS (unless --no-tls): the C server with OpenSSL and
examples/tls_echo_server.py on the c and fd engines (the load generator
speaks TLS 1.3; only round trips after the handshakes are counted).
Needs valgrind (Debian: apt-get install valgrind).

The last line is the verdict on the target (issue 21): socket2, compiled,
at most 3,500 instructions per round trip (at the default 100
connections).
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import run as bench

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TARGET = 3500       # socket2's instructions per round trip, at most


def wait_listening(port, proc, limit=60):
    import socket
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited with %s" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("server did not listen within %ds" % limit)


def count(name, argv, env, seconds, conns, tls=False, mode="rr"):
    """(instructions per round trip, round trips) of one server (*tls*:
    the load generator speaks TLS to it; *mode* ``churn``: per connection,
    each one round trip)."""
    port = bench.free_port()
    out = tempfile.mkdtemp(prefix="s2-cg-")
    cmd = bench.pin(0) + ["valgrind", "--tool=callgrind",
                          "--callgrind-out-file=%s/cg.%%p" % out] + \
        argv + ["--port", str(port)]
    server = subprocess.Popen(cmd, env=dict(os.environ, **env),
                              stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        wait_listening(port, server)
        lg = subprocess.Popen(
            bench.pin(1) + [os.path.join(bench.BUILD, "loadgen"), "127.0.0.1",
                            str(port), mode, str(conns), str(seconds),
                            "--warmup", "2"] + (["--tls"] if tls else []),
            stdout=subprocess.PIPE, text=True)
        result = None
        for line in lg.stdout:
            if line.strip() == "counting":
                subprocess.run(["callgrind_control", "-z", str(server.pid)],
                               stdout=subprocess.DEVNULL, check=True)
            elif line.startswith("{"):
                subprocess.run(["callgrind_control", "-d", str(server.pid)],
                               stdout=subprocess.DEVNULL, check=True)
                result = json.loads(line)
        lg.wait()
        if not result or not result["ops"]:
            raise RuntimeError("%s completed no round trips" % name)
        dumps = sorted(glob.glob(os.path.join(out, "cg.*.1")))
        if not dumps:
            raise RuntimeError("callgrind wrote no dump for %s" % name)
        with open(dumps[-1]) as f:
            for line in f:
                if line.startswith(("summary:", "totals:")):
                    return int(line.split()[1]) / result["ops"], result["ops"]
        raise RuntimeError("no totals in %s" % dumps[-1])
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(out, ignore_errors=True)


def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=4.0,
                    help="measured window per server (default: %(default)s)")
    ap.add_argument("--conns", type=int, default=None,
                    help="connections (default: 100; 50 with --churn)")
    ap.add_argument("--compare", metavar="REF",
                    help="also count the build of commit REF")
    ap.add_argument("--churn", action="store_true",
                    help="count per connection instead (loadgen churn: "
                         "connect, one round trip, close; --conns slots, "
                         "default 50); implies --no-tls")
    ap.add_argument("--no-tls", action="store_true",
                    help="leave out the TLS echo servers (C + OpenSSL, "
                         "socket2 on the c and fd engines)")
    args = ap.parse_args(argv)
    mode = "churn" if args.churn else "rr"
    if args.conns is None:
        args.conns = 50 if args.churn else 100
    unit = "connection" if args.churn else "round trip"
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        sys.exit("bench-instructions needs valgrind: apt-get install valgrind")
    bench.PIN = (os.cpu_count() or 1) >= 2 and shutil.which("taskset")
    bench.build()
    example = os.path.join(ROOT, "examples", "echo_server.py")
    servers = [
        ("c-epoll", [os.path.join(bench.BUILD, "echo_epoll")], {}),
        ("socket2", [sys.executable, example], {}),
        ("socket2-pure", [sys.executable, example],
         {"SOCKET2_PURE_PYTHON": "1"}),
    ]
    if args.compare:
        base, where = bench.base_build(args.compare)
        servers.append((base, [sys.executable, os.path.join(
            where, "examples", "echo_server.py")], {"PYTHONPATH": where}))
    rows = []
    for name, argv_, env in servers:
        per_op, ops = count(name, argv_, env, args.seconds, args.conns,
                            mode=mode)
        bench.log("instructions: %-20s %8.0f per %s (%d)"
                  % (name, per_op, unit, ops))
        rows.append((name, per_op))
    tls_rows = []
    if not args.no_tls and not args.churn and bench.build():
        cert, key = bench.tls_files()
        tls_args = ["--cert", cert, "--key", key]
        tls_example = os.path.join(ROOT, "examples", "tls_echo_server.py")
        for name, argv_, env in [
                ("c-epoll + OpenSSL", [os.path.join(bench.BUILD,
                                                    "echo_epoll_tls")], {}),
                ("socket2 (engine c)", [sys.executable, tls_example],
                 {"SOCKET2_TLS": "c"}),
                ("socket2 (engine fd)", [sys.executable, tls_example],
                 {"SOCKET2_TLS": "fd"}),
                ("socket2-pure (engine c)", [sys.executable, tls_example],
                 {"SOCKET2_TLS": "c", "SOCKET2_PURE_PYTHON": "1"})]:
            per_op, ops = count(name, argv_ + tls_args, env, args.seconds,
                                args.conns, tls=True)
            bench.log("instructions: TLS %-20s %8.0f per round trip (%d)"
                      % (name, per_op, ops))
            tls_rows.append((name, per_op))
    ref = rows[0][1]
    print("| server | instructions per %s (user space) | vs C |" % unit)
    print("|---|---|---|")
    for name, per_op in rows:
        print("| %s | %.0f | %.1fx |" % (name, per_op, per_op / ref))
    if tls_rows:
        ref = tls_rows[0][1]
        print("\n| TLS server | instructions per round trip (user space) "
              "| vs C |")
        print("|---|---|---|")
        for name, per_op in tls_rows:
            print("| %s | %.0f | %.2fx |" % (name, per_op, per_op / ref))
    if args.compare:
        print("\nsocket2 (this tree) / %s: %.2fx the instructions"
              % (rows[-1][0], rows[1][1] / rows[-1][1]))
    per_op = dict(rows)["socket2"]
    if args.churn:
        return 0                # the target is per round trip (rr)
    print("\nVerdict: instructions per round trip (rr-%d): %s: socket2 "
          "%.0f (target <= %d)" % (args.conns, "met" if per_op <= TARGET
                                   else "NOT met", per_op, TARGET))
    return 0


if __name__ == "__main__":
    sys.exit(main())
