"""socket2.http.serve against real clients and a real framework: requests
(keep-alive session), curl (Debian), openssl s_client, over plain TCP and
TLS, with a bare WSGI app and a Flask application."""
import json
import shutil
import ssl
import subprocess

import pytest

import socket2
import socket2.http

from http_helpers import get, running

requests = pytest.importorskip("requests", reason="pip install requests")
needs_curl = pytest.mark.skipif(shutil.which("curl") is None,
                                reason="needs curl: apt-get install curl")
needs_openssl = pytest.mark.skipif(
    shutil.which("openssl") is None,
    reason="needs the openssl tool: apt-get install openssl")


def server_ctx(pki):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki["server"])
    return ctx


def bare(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/json":
        data = json.loads(environ["wsgi.input"].read() or b"null")
        out = json.dumps({"got": data, "port": environ["REMOTE_PORT"],
                          "scheme": environ["wsgi.url_scheme"]}).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [out]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (b"%d\n" % i for i in range(1000))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello, World!"]


def _flask_app():
    flask = pytest.importorskip("flask", reason="pip install flask")
    app = flask.Flask("s2test")

    @app.route("/")
    def index():
        return "Hello from Flask"

    @app.route("/json", methods=["POST"])
    def js():
        return flask.jsonify(got=flask.request.get_json(),
                             port=flask.request.environ["REMOTE_PORT"])

    @app.route("/stream")
    def stream():
        return flask.Response((b"%d\n" % i for i in range(1000)),
                              mimetype="text/plain")

    @app.route("/sleep")
    def nap():
        socket2.sleep(0.3)
        return "rested"

    @app.route("/missing")
    def missing():
        flask.abort(404)

    @app.route("/upload", methods=["POST"])
    def upload():
        f = flask.request.files["f"]
        return "%s:%d" % (f.filename, len(f.read()))
    return app


def _requests_session(base, verify=True):
    """Requests over one keep-alive session (in a worker OS thread: requests
    is blocking code, the hub keeps serving meanwhile)."""
    def run():
        out = []
        with requests.Session() as s:
            for i in range(3):
                r = s.post(base + "/json", json={"i": i}, verify=verify,
                           timeout=5)
                out.append((r.status_code, r.json()))
            r = s.get(base + "/stream", verify=verify, timeout=5)
            out.append((r.status_code, r.text))
            r = s.get(base + "/", verify=verify, timeout=5)
            out.append((r.status_code, r.text))
        return out
    return socket2.run_in_thread(run, timeout=20)


@pytest.mark.parametrize("which", ["bare", "flask"])
def test_requests_keep_alive(which):
    app = bare if which == "bare" else _flask_app()
    with running(app) as lst:
        out = _requests_session("http://127.0.0.1:%d" % lst.local_port)
    ports = {body["port"] for _, body in out[:3]}
    assert len(ports) == 1                      # one connection reused
    assert [body["got"] for _, body in out[:3]] == [{"i": i}
                                                    for i in range(3)]
    assert out[3] == (200, "".join("%d\n" % i for i in range(1000)))
    assert out[4][0] == 200 and out[4][1].startswith("Hello")


def test_flask_errors_uploads_and_concurrency():
    app = _flask_app()

    def run(base):
        with requests.Session() as s:
            r = s.get(base + "/missing", timeout=5)
            up = s.post(base + "/upload", timeout=5,
                        files={"f": ("a.bin", b"\0" * 100000)})
            return r.status_code, up.text

    with running(app) as lst:
        base = "http://127.0.0.1:%d" % lst.local_port
        assert socket2.run_in_thread(run, base, timeout=20) == \
            (404, "a.bin:100000")
        # Ten requests that each sleep 0.3 s (cooperatively) at once.
        t0 = socket2.clock()
        with socket2.group() as g:
            ts = [g.spawn(socket2.run_in_thread, requests.get,
                          base + "/sleep", timeout=10) for _ in range(10)]
        assert [t.join().text for t in ts] == ["rested"] * 10
        assert socket2.clock() - t0 < 2.5     # not 10 x 0.3 s in a row


@needs_curl
@pytest.mark.parametrize("which", ["bare", "flask"])
def test_curl(which, tmp_path):
    app = bare if which == "bare" else _flask_app()
    with running(app) as lst:
        base = "http://127.0.0.1:%d" % lst.local_port
        # Two URLs in one curl: the second reuses the connection.
        out = socket2.run_in_thread(subprocess.run, [
            "curl", "-sS", "--max-time", "10", "-w", "%{num_connects}\\n",
            base + "/", base + "/stream"], capture_output=True, timeout=20)
        assert out.returncode == 0, out.stderr
        text = out.stdout.decode()
        assert text.startswith("Hello")
        assert text.rstrip().endswith("999\n0")   # 0 new connects: reused
        out = socket2.run_in_thread(subprocess.run, [
            "curl", "-sS", "--max-time", "10", "-H",
            "Content-Type: application/json", "--data-binary", '{"a": 1}',
            base + "/json"], capture_output=True, timeout=20)
        assert json.loads(out.stdout)["got"] == {"a": 1}


@needs_curl
def test_tls_with_curl_and_alpn(pki):
    with running(bare, tls=server_ctx(pki)) as lst:
        url = "https://localhost:%d/json" % lst.local_port
        out = socket2.run_in_thread(subprocess.run, [
            "curl", "-sS", "-v", "--max-time", "10", "--cacert", pki["ca"],
            "--data-binary", "[1, 2]", url], capture_output=True,
            timeout=20)
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert body["got"] == [1, 2] and body["scheme"] == "https"
    assert b"ALPN: server accepted http/1.1" in out.stderr or \
        b"ALPN, server accepted to use http/1.1" in out.stderr


def test_tls_with_requests(pki):
    with running(bare, tls=server_ctx(pki)) as lst:
        out = _requests_session("https://localhost:%d" % lst.local_port,
                                verify=pki["ca"])
    assert len({body["port"] for _, body in out[:3]}) == 1
    assert {body["scheme"] for _, body in out[:3]} == {"https"}


@needs_openssl
def test_plain_http_to_a_tls_port_and_a_silent_tls_client(pki, capfd):
    with running(bare, tls=server_ctx(pki), tls_timeout=0.5) as lst:
        with socket2.tcp() as c:
            c.connect("127.0.0.1", lst.local_port)
            c.sendall(get())
            try:                     # refused: closed, or reset
                assert b"HTTP/1.1 200" not in c.recvall(timeout=5)
            except socket2.Error as e:
                assert e.err == "connection_reset"
        with socket2.tcp() as c:
            c.connect("127.0.0.1", lst.local_port)
            assert c.recvall(timeout=5) == b""       # dropped in time
        out = socket2.run_in_thread(subprocess.run, [
            "openssl", "s_client", "-connect",
            "127.0.0.1:%d" % lst.local_port, "-CAfile", pki["ca"],
            "-alpn", "http/1.1", "-quiet", "-verify_return_error"],
            input=get(), capture_output=True, timeout=20)
    assert b"Hello, World!" in out.stdout, out.stderr
    capfd.readouterr()
