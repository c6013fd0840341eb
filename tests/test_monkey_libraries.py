"""Real libraries that wait on threading/queue primitives, patched by
``python -m socket2.monkey`` and driven by eight socket2 threads against a
real server on loopback: PostgreSQL (SQLAlchemy over pg8000 and psycopg,
psycopg_pool), OpenSSH (paramiko), HTTP (urllib3, httpx).  Each server is
started by a fixture on a free port with throwaway data, never the
machine's own instance; each operation waits ~0.5 s on the server side,
and each test asserts the results and that the whole ran cooperatively:
well under the serial time, and, behind a pool limit of 2, in rounds of
two.
"""
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from test_monkey import _start, _stop, HERE
from test_monkey_threading import BOUND, N, NEEDS_THREADS, run_program

pytestmark = [pytest.mark.one_poller, NEEDS_THREADS]

POOLED = (1.8, 3.3)     # 8 x 0.5 s through 2 connections: ~2 s, serial 4 s


def _need(module, pip_name=None):
    pytest.importorskip(module, reason="needs %s: pip install %s (.ci/run "
                        "installs the test extras)" % (module,
                                                       pip_name or module))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(check, proc, what, timeout=30):
    deadline = time.monotonic() + timeout
    while not check():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out = proc.communicate()[0] if proc.stdout else b""
            pytest.fail("%s did not start: %r" % (what, out[-2000:]))
        time.sleep(0.1)


def _scratch_dir(prefix, owner=None):
    """A temporary directory (outside pytest's 0700 tree, so that an
    unprivileged server can use it)."""
    d = tempfile.mkdtemp(prefix=prefix)
    if owner is not None:
        os.chmod(d, 0o755)
        os.chown(d, owner, owner if owner != 65534 else -1)
    return d


# -- servers ------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres():
    """A throwaway PostgreSQL cluster on 127.0.0.1:<free port> (trust
    authentication, user postgres), run as an unprivileged user when the
    tests run as root."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    initdb = bins[-1] if bins else shutil.which("initdb")
    if initdb is None:
        pytest.skip("needs PostgreSQL: apt-get install postgresql (.ci/run "
                    "installs it)")
    bindir = os.path.dirname(initdb)
    user = None
    if os.geteuid() == 0:
        import pwd
        user = pwd.getpwnam("nobody").pw_uid
    d = _scratch_dir("s2-pg-", user)
    data = os.path.join(d, "data")
    kw = {"user": user} if user is not None else {}
    subprocess.run([initdb, "-D", data, "-U", "postgres", "--auth=trust",
                    "-E", "UTF8", "--no-sync"], check=True, cwd=d,
                   stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, **kw)
    port = _free_port()
    p = subprocess.Popen([os.path.join(bindir, "postgres"), "-D", data,
                          "-p", str(port), "-c", "listen_addresses=127.0.0.1",
                          "-c", "unix_socket_directories=", "-c",
                          "fsync=off", "-c", "max_connections=60"],
                         cwd=d, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, **kw)

    def ready():
        r = subprocess.run([os.path.join(bindir, "pg_isready"), "-h",
                            "127.0.0.1", "-p", str(port)],
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        return r.returncode == 0

    _wait_for(ready, p, "postgres")
    yield port
    p.terminate()
    try:
        p.wait(15)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    p.stdout.close()
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def sshd():
    """An OpenSSH server on 127.0.0.1:<free port> with a generated host
    key and config, accepting a generated key for the current user;
    yields (port, user, private key path)."""
    exe = shutil.which("sshd") or (
        "/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)
    keygen = shutil.which("ssh-keygen")
    if exe is None or keygen is None:
        pytest.skip("needs sshd: apt-get install openssh-server (.ci/run "
                    "installs it)")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", 0o755, exist_ok=True)   # privsep dir
    d = _scratch_dir("s2-sshd-")
    for name in ("host", "user"):
        subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f",
                        os.path.join(d, name)], check=True)
    shutil.copy(os.path.join(d, "user.pub"), os.path.join(d, "authorized"))
    port = _free_port()
    config = os.path.join(d, "sshd_config")
    with open(config, "w") as f:
        f.write("Port %d\nListenAddress 127.0.0.1\nHostKey %s\n"
                "AuthorizedKeysFile %s\nPidFile %s\nUsePAM no\n"
                "StrictModes no\nPasswordAuthentication no\n"
                "PermitRootLogin prohibit-password\nSubsystem sftp "
                "internal-sftp\nMaxSessions 50\nMaxStartups 50\n"
                % (port, os.path.join(d, "host"),
                   os.path.join(d, "authorized"), os.path.join(d, "pid")))
    p = subprocess.Popen([exe, "-D", "-e", "-f", config],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def ready():
        try:
            with socket.create_connection(("127.0.0.1", port), 1) as s:
                return s.recv(4).startswith(b"SSH-")
        except OSError:
            return False

    _wait_for(ready, p, "sshd")
    import getpass
    yield port, getpass.getuser(), os.path.join(d, "user")
    p.terminate()
    p.wait(15)
    p.stdout.close()
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def http_port():
    p, port = _start([sys.executable, os.path.join(HERE, "peers",
                                                   "slow_http.py")])
    yield port
    _stop(p)


# The part every program shares: run fn(i) in N socket2 threads (started
# through threading, as the libraries' users do), time it, and count how
# many were inside fn's server wait at once.
DRIVER = """
import json, sys, threading, time
inside = [0, 0]                  # now, most at once
guard = threading.Lock()
def counted(fn):
    def wrapper(*a):
        with guard:
            inside[0] += 1
            inside[1] = max(inside[1], inside[0])
        try:
            return fn(*a)
        finally:
            with guard:
                inside[0] -= 1
    return wrapper
def concurrently(fn, n=NTHREADS):
    out = [None] * n
    def run(i):
        out[i] = fn(i)
    t0 = time.monotonic()
    ts = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    return out, time.monotonic() - t0
""".replace("NTHREADS", str(N))


def _run(tmp_path, code, *args):
    res, _ = run_program(tmp_path, DRIVER + code, *args, timeout=120,
                         quiet=False)
    return res


# -- PostgreSQL -----------------------------------------------------------------


@pytest.mark.parametrize("driver", ["pg8000", "psycopg"])
def test_sqlalchemy_cold_pool_and_pool_of_two(tmp_path, postgres, driver):
    _need("sqlalchemy", "SQLAlchemy")
    _need(driver)
    res = _run(tmp_path, """
import sqlalchemy as sa
url = "postgresql+%s://postgres@127.0.0.1:%s/postgres" % (sys.argv[1],
                                                           sys.argv[2])
def query(engine):
    @counted
    def q(i):
        with engine.connect() as c:
            return c.execute(sa.text("SELECT CAST(:i AS integer) FROM pg_sleep(0.5)"),
                             {"i": i}).scalar()
    return q
cold = sa.create_engine(url)                       # nothing connected yet
out1, t1 = concurrently(query(cold))
most1 = inside[1]; inside[1] = 0
two = sa.create_engine(url, pool_size=2, max_overflow=0, pool_timeout=30)
out2, t2 = concurrently(query(two))
print(json.dumps({"out1": out1, "t1": t1, "most1": most1,
                  "out2": out2, "t2": t2, "most2": inside[1],
                  "checked_out": two.pool.checkedout()}))
""", driver, postgres)
    assert res["out1"] == list(range(N)) and res["out2"] == list(range(N))
    assert res["t1"] < BOUND and res["most1"] == N, res
    assert POOLED[0] < res["t2"] < POOLED[1], res
    assert res["checked_out"] == 0


def test_psycopg_connection_shared_by_two_threads(tmp_path, postgres):
    _need("psycopg")
    res = _run(tmp_path, """
import psycopg
conn = psycopg.connect("host=127.0.0.1 port=%s user=postgres dbname=postgres"
                       % sys.argv[1], autocommit=True)
ticks = []
def ticker():
    while len(ticks) < 20:
        time.sleep(0.02)
        ticks.append(1)
tk = threading.Thread(target=ticker); tk.start()
def q(i):
    return conn.execute("SELECT %s::int FROM pg_sleep(0.5)", (i,)).fetchone()[0]
out, t = concurrently(q, 2)              # serialised by the connection lock
tk.join()
conn.close()
print(json.dumps({"out": out, "t": t, "ticks": len(ticks)}))
""", postgres)
    assert res["out"] == [0, 1]
    assert 0.9 < res["t"] < 2.0, res
    assert res["ticks"] == 20            # other threads ran meanwhile


def test_psycopg_pool_max_size_two(tmp_path, postgres):
    _need("psycopg_pool", "psycopg_pool")
    res = _run(tmp_path, """
from psycopg_pool import ConnectionPool
pool = ConnectionPool("host=127.0.0.1 port=%s user=postgres dbname=postgres"
                      % sys.argv[1], min_size=1, max_size=2, timeout=30,
                      open=True)
@counted
def q(i):
    with pool.connection() as c:
        return c.execute("SELECT %s::int FROM pg_sleep(0.5)", (i,)).fetchone()[0]
out, t = concurrently(q)
pool.close()
print(json.dumps({"out": out, "t": t}))
""", postgres)
    assert res["out"] == list(range(N))
    assert POOLED[0] < res["t"] < POOLED[1], res


# -- HTTP ---------------------------------------------------------------------


def test_urllib3_pool_manager_blocking_pool_of_two(tmp_path, http_port):
    _need("urllib3")
    res = _run(tmp_path, """
import urllib3
pm = urllib3.PoolManager(maxsize=2, block=True)
url = "http://127.0.0.1:%s/slow?d=0.5" % sys.argv[1]
out, t = concurrently(lambda i: pm.request("GET", url).data.decode())
print(json.dumps({"out": out, "t": t}))
""", http_port)
    assert res["out"] == ["slow ok"] * N
    assert POOLED[0] < res["t"] < POOLED[1], res


def test_httpx_connection_limit_of_two(tmp_path, http_port):
    _need("httpx")
    res = _run(tmp_path, """
import httpx
client = httpx.Client(limits=httpx.Limits(max_connections=2), timeout=30)
url = "http://127.0.0.1:%s/slow?d=0.5" % sys.argv[1]
out, t = concurrently(lambda i: client.get(url).text)
client.close()
print(json.dumps({"out": out, "t": t}))
""", http_port)
    assert res["out"] == ["slow ok"] * N
    assert POOLED[0] < res["t"] < POOLED[1], res


def test_threading_http_server_shutdown(tmp_path):
    res = _run(tmp_path, """
import http.server, urllib.request
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        time.sleep(0.5)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *a):
        pass
class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 64         # eight clients connect at once
srv = Server(("127.0.0.1", 0), Handler)
st = threading.Thread(target=srv.serve_forever); st.start()
url = "http://127.0.0.1:%d/" % srv.server_address[1]
out, t = concurrently(lambda i: urllib.request.urlopen(url).read().decode())
t0 = time.monotonic()
srv.shutdown()
st.join(5)
srv.server_close()
print(json.dumps({"out": out, "t": t, "shutdown": time.monotonic() - t0,
                  "alive": st.is_alive()}))
""")
    assert res["out"] == ["ok"] * N and res["t"] < BOUND, res
    assert res["shutdown"] < 1.0 and res["alive"] is False


# -- SSH ----------------------------------------------------------------------


def test_paramiko_sessions_sftp_and_close(tmp_path, sshd):
    _need("paramiko")
    port, user, key = sshd
    res = _run(tmp_path, """
import os, paramiko
port, user, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def client():
    c = paramiko.SSHClient()
    c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    c.connect("127.0.0.1", port=port, username=user, key_filename=key,
              look_for_keys=False, allow_agent=False, timeout=20)
    return c
clients, tc = concurrently(lambda i: client())
@counted
def run(i):
    _, stdout, _ = clients[i].exec_command("sleep 0.5; echo %d" % i)
    return stdout.read().decode().strip()
out, t = concurrently(run)
data = os.urandom(2 * 1024 * 1024)
src = os.path.join(os.getcwd(), "src.bin")
with open(src, "wb") as f:
    f.write(data)
def sftp(i):
    s = clients[i].open_sftp()
    remote = os.path.join(os.getcwd(), "remote%d.bin" % i)
    s.put(src, remote)
    s.get(remote, remote + ".back")
    s.close()
    with open(remote + ".back", "rb") as f:
        return f.read() == data
ok, ts = concurrently(sftp, 4)
errors = []
for c in clients:
    try:
        c.close()
    except Exception as e:
        errors.append(repr(e))
print(json.dumps({"out": out, "t": t, "most": inside[1], "sftp": ok,
                  "ts": ts, "tc": tc, "errors": errors}))
""", port, user, key)
    assert res["out"] == [str(i) for i in range(N)]
    assert res["t"] < BOUND and res["most"] == N, res
    assert res["sftp"] == [True] * 4
    assert res["errors"] == []


def test_wsgi_app_with_a_pool_of_two(tmp_path, postgres):
    # The "done when": a web app whose requests use an SQLAlchemy
    # pool of two, eight concurrent clients, run by python -m
    # socket2.monkey; a threading WSGI server, as a Flask app would run.
    _need("sqlalchemy", "SQLAlchemy")
    _need("pg8000")
    res = _run(tmp_path, """
import socketserver, urllib.request
from wsgiref.simple_server import WSGIServer, WSGIRequestHandler, make_server
import sqlalchemy as sa
engine = sa.create_engine("postgresql+pg8000://postgres@127.0.0.1:%s/postgres"
                          % sys.argv[1], pool_size=2, max_overflow=0)
@counted
def app(environ, start_response):
    n = int(environ["PATH_INFO"].strip("/"))
    with engine.connect() as c:
        v = c.execute(sa.text("SELECT CAST(:n AS integer) * 2 "
                              "FROM pg_sleep(0.5)"), {"n": n}).scalar()
    body = str(v).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
class Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 64
class Quiet(WSGIRequestHandler):
    def log_message(self, *a):
        pass
srv = make_server("127.0.0.1", 0, app, server_class=Server,
                  handler_class=Quiet)
st = threading.Thread(target=srv.serve_forever); st.start()
url = "http://127.0.0.1:%d/" % srv.server_address[1]
out, t = concurrently(lambda i: urllib.request.urlopen(url + str(i),
                                                       timeout=30).read().decode())
srv.shutdown(); st.join(); srv.server_close()
print(json.dumps({"out": out, "t": t, "most": inside[1]}))
""", postgres)
    assert res["out"] == [str(2 * i) for i in range(N)]
    assert POOLED[0] < res["t"] < POOLED[1], res
    assert res["most"] == N         # all requests in the app at once


def test_flask_on_socket2_http_with_a_pool_of_two(tmp_path, postgres):
    # Issue 19's "done when": a real Flask application whose views use an
    # SQLAlchemy pool of two, served by socket2.http.serve under python -m
    # socket2.monkey, eight concurrent clients (socket2's own HTTP client).
    _need("flask", "flask")
    _need("sqlalchemy", "SQLAlchemy")
    _need("pg8000")
    res = _run(tmp_path, """
import flask, socket2, socket2.http
import sqlalchemy as sa
engine = sa.create_engine("postgresql+pg8000://postgres@127.0.0.1:%s/postgres"
                          % sys.argv[1], pool_size=2, max_overflow=0)
app = flask.Flask("s2")
@counted
def query(n):
    with engine.connect() as c:
        return str(c.execute(sa.text("SELECT CAST(:n AS integer) * 2 "
                                     "FROM pg_sleep(0.5)"), {"n": n}).scalar())
@app.route("/<int:n>")
def double(n):
    return query(n)
lst = socket2.tcp(); lst.listen("127.0.0.1", 0)
srv = socket2.newthread(socket2.http.serve, lst, app)
url = "http://127.0.0.1:%d/" % lst.local_port
with socket2.http.Client(timeout=30) as client:
    out, t = concurrently(lambda i: client.get(url + str(i)).read().decode())
lst.close(); srv.join(timeout=10)
print(json.dumps({"out": out, "t": t, "most": inside[1]}))
""", postgres)
    assert res["out"] == [str(2 * i) for i in range(N)]
    assert POOLED[0] < res["t"] < POOLED[1], res
    assert res["most"] == N         # all requests in a view at once
