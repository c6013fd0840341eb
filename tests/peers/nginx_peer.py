"""nginx as a test and benchmark peer: a generated configuration in a
directory of its own, a free port for plain HTTP and one for TLS.

    with Nginx(tmpdir, cert=..., key=...) as ng:
        ng.url("/small"), ng.tls_url("/small")

Locations: ``/small`` (a short text body, Content-Length), ``/big.txt``
(200 kB of text: gzip'ed and chunked when asked), ``/data.bin`` (binary,
Content-Length), ``/redirect`` (302 to /small), ``/moved`` (301 to
/big.txt), ``/see-other`` (303 to /small), ``/temporary`` (307 to
/small), ``/loop`` (302 to itself), ``/status/404``.  Keep-alive stays on
for 100,000 requests a connection.

    python tests/peers/nginx_peer.py [--cpu N]   # serve until Ctrl-C
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

NGINX = shutil.which("nginx") or (
    "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
INSTALL = "apt-get install nginx-light"

SMALL = b"hello from nginx"
BIG = b"".join(b"line %06d of a text that compresses well\n" % i
               for i in range(5000))

_CONF = """\
worker_processes 1;
daemon off;
master_process on;
%(user)s
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    default_type application/octet-stream;
    types { text/plain txt; application/json json; }
    client_body_temp_path %(d)s/tmp_body;
    proxy_temp_path %(d)s/tmp_proxy;
    fastcgi_temp_path %(d)s/tmp_fastcgi;
    uwsgi_temp_path %(d)s/tmp_uwsgi;
    scgi_temp_path %(d)s/tmp_scgi;
    keepalive_timeout 60;
    keepalive_requests 100000;
    gzip on;
    gzip_types text/plain application/json;
    gzip_min_length 1000;
    server {
        listen 127.0.0.1:%(port)d;
        %(tls)s
        root %(d)s/www;
        location = /small { default_type text/plain; return 200 "%(small)s"; }
        location = /redirect { return 302 /small; }
        location = /moved { return 301 /big.txt; }
        location = /see-other { return 303 /small; }
        location = /temporary { return 307 /small; }
        location = /loop { return 302 /loop; }
        location = /status/404 { return 404; }
    }
}
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nginx:
    """An nginx process serving from *directory* (created if needed)."""

    def __init__(self, directory, cert=None, key=None, cpu=None):
        if NGINX is None:
            raise RuntimeError("nginx is not installed: " + INSTALL)
        self.d = os.path.abspath(str(directory))
        self.port = free_port()
        self.tls_port = free_port() if cert else None
        os.makedirs(os.path.join(self.d, "www"), exist_ok=True)
        with open(os.path.join(self.d, "www", "big.txt"), "wb") as f:
            f.write(BIG)
        with open(os.path.join(self.d, "www", "data.bin"), "wb") as f:
            f.write(bytes(range(256)) * 400)
        tls = ""
        if cert:
            tls = ("listen 127.0.0.1:%d ssl; ssl_certificate %s; "
                   "ssl_certificate_key %s;" % (self.tls_port, cert, key))
        user = "user root;" if hasattr(os, "geteuid") and os.geteuid() == 0 \
            else ""
        conf = os.path.join(self.d, "nginx.conf")
        with open(conf, "w") as f:
            f.write(_CONF % {"d": self.d, "port": self.port, "tls": tls,
                             "small": SMALL.decode(), "user": user})
        cmd = [NGINX, "-c", conf, "-p", self.d, "-e",
               os.path.join(self.d, "error.log")]
        if cpu is not None:
            cmd = ["taskset", "-c", str(cpu)] + cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self):
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("nginx exited: %s" % (
                    self.proc.stderr.read().decode(errors="replace")
                    or self.error_log()))
            try:
                socket.create_connection(("127.0.0.1", self.port),
                                         timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("nginx did not start: "
                                       + self.error_log())
                time.sleep(0.05)

    def error_log(self):
        try:
            with open(os.path.join(self.d, "error.log")) as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def tls_url(self, path="/", host="localhost"):
        return "https://%s:%d%s" % (host, self.tls_port, path)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT if os.name != "nt"
                                  else signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stderr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


if __name__ == "__main__":
    import argparse
    import tempfile
    ap = argparse.ArgumentParser(description="Serve the test nginx until "
                                             "Ctrl-C.")
    ap.add_argument("--cpu", type=int, help="pin nginx to this CPU")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d, Nginx(d, cpu=args.cpu) as ng:
        print(ng.url("/small"), flush=True)
        try:
            ng.proc.wait()
        except KeyboardInterrupt:
            pass
    sys.exit(0)
