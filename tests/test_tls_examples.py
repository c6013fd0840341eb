"""examples/tls_echo_server.py and examples/https_get.py, run as a user
runs them, against independent peers (the standard library's ssl client,
openssl s_server -WWW, a standard-library HTTPS server)."""
import http.server
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest

import pki as _pki

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ECHO = os.path.join(ROOT, "examples", "tls_echo_server.py")
GET = os.path.join(ROOT, "examples", "https_get.py")

needs_openssl = pytest.mark.skipif(
    shutil.which("openssl") is None,
    reason="needs the openssl tool: apt-get install openssl")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = _pki.pki(tmp_path_factory)
    return {"ca": p["ca"], "cert": p["server_crt"], "key": p["server_key"]}


def _start_echo(*args, poller=None):
    env = dict(os.environ)
    if poller:
        env["SOCKET2_POLLER"] = poller
    p = subprocess.Popen([sys.executable, ECHO, "--port", "0", *args],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env)
    line = p.stdout.readline()
    m = re.search(r"listening on (.+):(\d+) ", line)
    if not m:
        p.kill()
        raise AssertionError((line, p.communicate()))
    return p, int(m.group(2))


def _stop(p):
    """Stop the server as Ctrl-C would (terminated on Windows, where a
    process without a console cannot be sent Ctrl-C); return its stderr."""
    if os.name == "nt":
        p.terminate()
        return p.communicate(timeout=10)[1]
    p.send_signal(signal.SIGINT)
    try:
        try:
            out, err = p.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            # A Ctrl-C that lands inside a finalizer is lost (Python prints
            # and ignores exceptions there): press it again, as a user would.
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    return err


def _echo_client(port, ctx, data, host="localhost"):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as s:
            s.sendall(data)
            got = bytearray()
            while len(got) < len(data):
                got.extend(s.recv(65536))
            return bytes(got), s.version()


@pytest.mark.one_poller
def test_help():
    for script, word in ((ECHO, "--self-signed"), (GET, "--insecure")):
        out = subprocess.run([sys.executable, script, "--help"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and word in out.stdout


def test_tls_echo_server_with_a_certificate(pki, poller):
    p, port = _start_echo("--cert", pki["cert"], "--key", pki["key"],
                          poller=poller)
    try:
        ctx = ssl.create_default_context(cafile=pki["ca"])
        data = os.urandom(1 << 20)
        got, version = _echo_client(port, ctx, data)
        assert got == data and version == "TLSv1.3"
        # A plaintext client is reported, and the server goes on.
        with socket.create_connection(("127.0.0.1", port)) as plain:
            plain.sendall(b"hello?\r\n\r\n")
            plain.settimeout(5)
            try:
                while plain.recv(100):
                    pass
            except OSError:
                pass
        assert _echo_client(port, ctx, b"again")[0] == b"again"
    finally:
        err = _stop(p)
    if os.name != "nt":         # terminated there: its stderr may be cut
        assert err.count("handshake failed") == 1


@needs_openssl
@pytest.mark.one_poller
def test_tls_echo_server_self_signed():
    p, port = _start_echo("--self-signed")
    try:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        assert _echo_client(port, ctx, b"x" * 1000)[0] == b"x" * 1000
        strict = ssl.create_default_context()
        with pytest.raises(ssl.SSLCertVerificationError, match="self-signed"):
            _echo_client(port, strict, b"no")
    finally:
        _stop(p)


def _get(*args):
    return subprocess.run([sys.executable, GET, *args], capture_output=True,
                          timeout=60)


@needs_openssl
@pytest.mark.one_poller
def test_https_get_against_openssl_s_server(pki, tmp_path):
    body = os.urandom(200000)
    (tmp_path / "file.bin").write_bytes(body)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    p = subprocess.Popen(["openssl", "s_server", "-accept",
                          "127.0.0.1:%d" % port, "-cert", pki["cert"],
                          "-key", pki["key"], "-WWW", "-quiet"],
                         cwd=str(tmp_path), stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            out = _get("https://localhost:%d/file.bin" % port,
                       "--cafile", pki["ca"])
            if out.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert out.returncode == 0, out.stderr
        head, _, got = out.stdout.partition(b"\n\n")
        assert head.startswith(b"HTTP/1.0 200")
        assert got == body
        # Verification is on by default: the system CAs do not know it.
        out = _get("https://localhost:%d/file.bin" % port)
        assert out.returncode == 1
        assert b"certificate verify failed" in out.stderr
        out = _get("https://localhost:%d/file.bin" % port, "--insecure")
        assert out.returncode == 0 and out.stdout.endswith(body)
    finally:
        p.kill()
        p.wait()
        p.stderr.close()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"hello ", b"chunked ", b"world"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        else:
            body = b"length-delimited body"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.mark.one_poller
def test_https_get_chunked_and_content_length(pki):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki["cert"], pki["key"])
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        port = httpd.server_address[1]
        out = _get("https://localhost:%d/chunked" % port, "--cafile",
                   pki["ca"])
        assert out.returncode == 0, out.stderr
        assert out.stdout.endswith(b"\n\nhello chunked world")
        out = _get("https://127.0.0.1:%d/plain" % port, "--cafile",
                   pki["ca"])
        assert out.stdout.endswith(b"\n\nlength-delimited body")
        assert b"Content-Length: 21" in out.stdout
    finally:
        httpd.shutdown()
        httpd.server_close()
