"""socket2.monkey with the libraries people use, against real servers in
their own processes (a standard-library HTTP(S) server, redis-server,
aiosmtpd).  Each client runs as a user runs it, ``python -m socket2.monkey
script.py``, and proves concurrency: N operations that each wait 0.5 s on
the server finish in about 0.5 s, not N x 0.5 s."""
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time

import pytest


HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
N = 8                   # concurrent operations of 0.5 s each
BOUND = 2.5             # seconds: well under N x 0.5 = 4 s

# The libraries are real peers here: subprocesses, one poller is enough.
pytestmark = pytest.mark.one_poller


def _need(module, pip_name=None):
    pytest.importorskip(module, reason="needs %s: pip install %s (.ci/run "
                        "installs the test extras)" % (module,
                                                       pip_name or module))


def _start(argv, timeout=15):
    p = subprocess.Popen(argv, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    if not line.strip().isdigit():
        p.kill()
        p.wait()
        raise AssertionError("peer did not start: %r" % line)
    return p, int(line)


def _stop(p):
    p.kill()
    p.wait()
    p.stdout.close()


@pytest.fixture(scope="module")
def http_port():
    p, port = _start([sys.executable, os.path.join(HERE, "peers",
                                                   "slow_http.py")])
    yield port
    _stop(p)


@pytest.fixture(scope="module")
def https_port(pki):
    p, port = _start([sys.executable, os.path.join(HERE, "peers",
                                                   "slow_http.py"),
                      "--cert", pki["server_crt"], "--key",
                      pki["server_key"]])
    yield port
    _stop(p)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory):
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("needs redis-server: apt-get install redis-server "
                    "(.ci/run installs it)")
    port = _free_port()
    d = tmp_path_factory.mktemp("redis")
    p = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "no", "--dir", str(d),
                          "--daemonize", "no"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), 1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(10).startswith(b"+PONG"):
                    break
        except OSError:
            pass
        if time.monotonic() > deadline or p.poll() is not None:
            p.kill()
            pytest.fail("redis-server did not start")
        time.sleep(0.05)
    yield port
    p.terminate()
    p.wait(10)


@pytest.fixture(scope="module")
def smtp_port():
    _need("aiosmtpd")
    p, port = _start([sys.executable, os.path.join(HERE, "peers",
                                                   "slow_smtp.py"), "0.5"])
    yield port
    _stop(p)


def run_patched(tmp_path, code, *args, monkey=True, env=None):
    """Run *code* as a script (through ``python -m socket2.monkey`` unless
    *monkey* is False); return (its JSON result, stderr)."""
    script = tmp_path / "client.py"
    script.write_text(textwrap.dedent(code))
    argv = [sys.executable] + (["-m", "socket2.monkey"] if monkey else []) \
        + [str(script)] + [str(a) for a in args]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                         cwd=str(tmp_path), env=dict(os.environ, **(env or {})))
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


CONCURRENT = """
import json, sys, time
import socket2

def concurrently(fn, n=%d):
    t0 = time.monotonic()
    with socket2.group() as g:
        ts = [g.spawn(fn, i) for i in range(n)]
    return [t.join() for t in ts], time.monotonic() - t0
""" % N


def test_requests_http_and_https(tmp_path, http_port, https_port, pki):
    _need("requests")
    res, err = run_patched(tmp_path, CONCURRENT + """
import requests
s = requests.Session()
s.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=20))
s.mount("https://", requests.adapters.HTTPAdapter(pool_maxsize=20))
port, sport, ca = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
plain, t1 = concurrently(lambda i: s.get(
    "http://127.0.0.1:%d/slow?d=0.5" % port, timeout=10).text)
tls, t2 = concurrently(lambda i: requests.get(
    "https://localhost:%d/slow?d=0.5" % sport, verify=ca, timeout=10).text)
big = s.get("http://127.0.0.1:%d/size?n=3000000" % port).content
print(json.dumps({"plain": plain, "tls": tls, "t1": t1, "t2": t2,
                  "big": len(big)}))
""", http_port, https_port, pki["ca"])
    assert res["plain"] == ["slow ok"] * N and res["tls"] == ["slow ok"] * N
    assert res["t1"] < BOUND and res["t2"] < BOUND, res
    assert res["big"] == 3000000
    assert "Warning" not in err


def test_urllib3_https(tmp_path, https_port, pki):
    _need("urllib3")
    res, _ = run_patched(tmp_path, CONCURRENT + """
import urllib3
pool = urllib3.PoolManager(ca_certs=sys.argv[2], maxsize=20)
url = "https://localhost:%s/slow?d=0.5" % sys.argv[1]
out, t = concurrently(lambda i: pool.request("GET", url).data.decode())
print(json.dumps({"out": out, "t": t}))
""", https_port, pki["ca"])
    assert res["out"] == ["slow ok"] * N and res["t"] < BOUND, res


def test_http_client_and_urllib_request_with_a_context_made_before(
        tmp_path, https_port, http_port, pki):
    # The ssl context is made before patching: it cooperates all the same
    # (the warning says why code that wrapped sockets earlier would not).
    script = tmp_path / "client.py"
    script.write_text(textwrap.dedent("""
import ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[3])
import socket2.monkey
socket2.monkey.patch_all()
""" + CONCURRENT + """
import http.client, urllib.request
port, sport = int(sys.argv[1]), int(sys.argv[2])
def hc(i):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/slow?d=0.5")
    body = c.getresponse().read().decode()
    c.close()
    return body
out1, t1 = concurrently(hc)
out2, t2 = concurrently(lambda i: urllib.request.urlopen(
    "https://localhost:%d/slow?d=0.5" % sport, context=ctx,
    timeout=10).read().decode())
print(json.dumps({"o1": out1, "o2": out2, "t1": t1, "t2": t2,
                  "patched": [socket2.monkey.is_patched(m) for m in
                              ("socket", "ssl", "select", "selectors",
                               "time")]}))
"""))
    out = subprocess.run([sys.executable, str(script), str(http_port),
                          str(https_port), pki["ca"]], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["o1"] == ["slow ok"] * N and res["o2"] == ["slow ok"] * N
    assert res["t1"] < BOUND and res["t2"] < BOUND, res
    assert res["patched"] == [True] * 5
    assert "ssl was imported before patch_all()" in out.stderr


def test_redis_py(tmp_path, redis_port):
    _need("redis")
    res, _ = run_patched(tmp_path, CONCURRENT + """
import redis
port = int(sys.argv[1])
r = redis.Redis(port=port, decode_responses=True)
r.flushall()
r.set("k", "v")
out = {"get": r.get("k"), "incr": r.incr("n", 5)}
with r.pipeline() as p:
    p.set("a", 1).incr("a").get("a")
    out["pipe"] = p.execute()
# BLPOP in one thread, released by RPUSH in another.
def pop():
    return redis.Redis(port=port, decode_responses=True).blpop("q", 5)
t = socket2.newthread(pop)
socket2.sleep(0.2)
redis.Redis(port=port).rpush("q", "job")
out["blpop"] = t.join()
# pub/sub
ps = r.pubsub()
ps.subscribe("chan")
ps.get_message(timeout=2)          # the subscribe confirmation
socket2.runafter(0.1, lambda: redis.Redis(port=port).publish("chan", "hi"))
msg = ps.get_message(timeout=5)
out["pubsub"] = msg and msg["data"]
ps.close()
# Concurrency: BLPOP on empty lists, each gives up after 0.5 s.
res, t = concurrently(lambda i: redis.Redis(port=port).blpop(
    "empty%d" % i, 0.5))
out["t"] = t
out["blpops"] = res
print(json.dumps(out))
""", redis_port)
    assert res["get"] == "v" and res["incr"] == 5
    assert res["pipe"] == [True, 2, "2"]
    assert res["blpop"] == ["q", "job"]
    assert res["pubsub"] == "hi"
    assert res["blpops"] == [None] * N and res["t"] < BOUND, res


def test_smtplib_against_aiosmtpd(tmp_path, smtp_port):
    res, _ = run_patched(tmp_path, CONCURRENT + """
import smtplib
port = int(sys.argv[1])
def send(i):
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.ehlo()
        refused = s.sendmail("a@example.test", ["b@example.test"],
                             "Subject: %d\\r\\n\\r\\nbody %d\\r\\n" % (i, i))
        assert refused == {}
        return s.noop()[0]
out, t = concurrently(send)
print(json.dumps({"out": out, "t": t}))
""", smtp_port)
    assert res["out"] == [250] * N and res["t"] < BOUND, res


def test_lookups_nested_in_a_worker_do_not_wait_for_another(tmp_path):
    """The standard getfqdn (run in a worker OS thread) calls
    gethostbyaddr, which is patched: a worker must make that lookup
    itself.  Waiting for another worker deadlocked once every worker of
    the pool did the same (seen with smtplib, which calls getfqdn)."""
    res, _ = run_patched(tmp_path, CONCURRENT + """
import socket
socket2.thread_pool_size(2)
out, t = concurrently(lambda i: socket.getfqdn())
print(json.dumps({"n": len(out), "same": len(set(out)) == 1}))
""")
    assert res == {"n": N, "same": True}, res


def test_concurrent_requests_example(tmp_path, http_port):
    _need("requests")
    urls = ["http://127.0.0.1:%d/slow?d=0.5" % http_port] * 10
    out = subprocess.run([sys.executable, os.path.join(
        ROOT, "examples", "concurrent_requests.py"), "--limit", "5"] + urls,
        capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert sum(" 200 7 bytes " in ln for ln in lines) == 10
    total = float(lines[-1].split()[1].rstrip("s"))
    assert total < 2.0                 # two rounds of five, not ten in a row
    help_ = subprocess.run([sys.executable, os.path.join(
        ROOT, "examples", "concurrent_requests.py"), "--help"],
        capture_output=True, text=True, timeout=60)
    assert help_.returncode == 0 and "--limit" in help_.stdout


def test_warnings_for_the_known_traps(tmp_path):
    (tmp_path / "holder.py").write_text(
        "from selectors import DefaultSelector\n"
        "from socket import socket\n")
    script = tmp_path / "client.py"
    script.write_text(textwrap.dedent("""
import warnings, json, sys
warnings.simplefilter("always")
import holder
import socket2.monkey
with warnings.catch_warnings(record=True) as w:
    socket2.monkey.patch_all(ssl=False)
msgs = [str(x.message) for x in w]
import socket, select, selectors, time
print(json.dumps({"msgs": msgs, "epoll": hasattr(select, "epoll"),
                  "sel": selectors.DefaultSelector.__module__,
                  "sock": socket.socket.__module__,
                  "sleep": time.sleep.__module__,
                  "ssl": socket2.monkey.is_patched("ssl")}))
"""))
    out = subprocess.run([sys.executable, str(script)], capture_output=True,
                         text=True, timeout=60, cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    text = " | ".join(res["msgs"])
    assert "socket patched without ssl" in text
    assert "holder" in text                # the module that copied names
    assert res["epoll"] is False           # selectors fall back to poll
    assert res["sel"] == "socket2.green.selectors"
    assert res["sock"] == "socket2.green.socket"
    assert res["sleep"] == "socket2.green.time"
    assert res["ssl"] is False


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork()")
def test_fork_after_patching(tmp_path):
    res, _ = run_patched(tmp_path, """
import json, os, socket, time
import socket2
srv = socket.create_server(("127.0.0.1", 0))
port = srv.getsockname()[1]
time.sleep(0.01)                       # the parent's hub is in use
pid = os.fork()
if pid == 0:
    try:
        def handle(c):
            with c:
                c.sendall(b"child:" + c.recv(10))
        for _ in range(2):
            c, _ = srv.accept()        # cooperative, on the child's own hub
            socket2.newthread(handle, c)
        time.sleep(0.2)
    finally:
        os._exit(0)
srv.close()
got = []
for i in range(2):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        c.sendall(b"hi%d" % i)
        got.append(c.recv(100).decode())
_, status = os.waitpid(pid, 0)
print(json.dumps({"got": got, "status": status}))
""")
    assert res == {"got": ["child:hi0", "child:hi1"], "status": 0}


def test_module_mode_and_help(tmp_path):
    (tmp_path / "mymod.py").write_text(textwrap.dedent("""
import json, socket, sys, socket2.monkey
print(json.dumps({"argv": sys.argv[1:],
                  "patched": socket2.monkey.is_patched("socket"),
                  "cls": socket.socket.__module__}))
"""))
    out = subprocess.run([sys.executable, "-m", "socket2.monkey", "-m",
                          "mymod", "a", "b"], capture_output=True, text=True,
                         timeout=60, cwd=str(tmp_path),
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                             [str(tmp_path)] + [p for p in os.environ.get(
                                 "PYTHONPATH", "").split(os.pathsep) if p])))
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res == {"argv": ["a", "b"], "patched": True,
                   "cls": "socket2.green.socket"}
    out = subprocess.run([sys.executable, "-m", "socket2.monkey", "--help"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "script.py" in out.stdout
