"""socket2.http.Client against nginx (Debian's nginx-light, started with a
generated configuration in a temporary directory): keep-alive, gzip and
chunked bodies, redirects, TLS with trustme certificates."""
import os
import ssl
import sys

import pytest

import socket2
import socket2.http as http


sys.path.insert(0, os.path.join(os.path.dirname(__file__), "peers"))
import nginx_peer  # noqa: E402

pytestmark = [
    pytest.mark.skipif(nginx_peer.NGINX is None,
                       reason="needs nginx: " + nginx_peer.INSTALL),
    # Under wine the Linux nginx is found (/usr/sbin is reachable) but
    # cannot be started from the Windows side.
    pytest.mark.skipif(sys.platform == "win32",
                       reason="nginx runs on the Linux host, not under "
                              "Windows")]


@pytest.fixture(scope="module")
def nginx(tmp_path_factory, pki):
    ng = nginx_peer.Nginx(tmp_path_factory.mktemp("nginx"),
                          cert=pki["server_crt"], key=pki["server_key"])
    try:
        yield ng
    finally:
        ng.stop()


@pytest.fixture
def trust(pki):
    return ssl.create_default_context(cafile=pki["ca"])


def test_keep_alive(nginx):
    with http.Client(timeout=5) as c:
        for _ in range(10):
            r = c.get(nginx.url("/small"))
            assert r.read() == nginx_peer.SMALL
            assert r.headers["server"].startswith("nginx")
        assert c.stats()["total"] == 1


def test_gzip_and_chunked(nginx):
    with http.Client(timeout=5) as c:
        r = c.get(nginx.url("/big.txt"))
        assert r.headers["content-encoding"] == "gzip"
        assert r.headers["transfer-encoding"] == "chunked"
        assert r.read() == nginx_peer.BIG
        with c.get(nginx.url("/big.txt"), stream=True) as r:
            assert b"".join(r.iter_bytes(4096)) == nginx_peer.BIG
        r = c.get(nginx.url("/data.bin"))
        assert r.read() == bytes(range(256)) * 400
        assert r.headers["content-length"] == "102400"
        assert c.stats()["total"] == 1
    with http.Client(timeout=5, decompress=False) as c:
        r = c.get(nginx.url("/big.txt"))
        assert "content-encoding" not in r.headers    # not asked for
        assert r.read() == nginx_peer.BIG


def test_redirects_and_status(nginx):
    with http.Client(timeout=5) as c:
        r = c.get(nginx.url("/redirect"))
        assert r.read() == nginx_peer.SMALL
        assert [h.status for h in r.history] == [302]
        assert r.url == nginx.url("/small")
        r = c.post(nginx.url("/see-other"), body=b"x")
        assert r.status == 200 and r.history[0].status == 303
        r = c.get(nginx.url("/moved"))
        assert r.read() == nginx_peer.BIG
        with pytest.raises(http.RedirectError, match="loop"):
            c.get(nginx.url("/loop"))
        r = c.get(nginx.url("/status/404"))
        with pytest.raises(http.HTTPStatusError, match="404"):
            r.raise_for_status()
        r = c.head(nginx.url("/data.bin"))
        assert r.read() == b"" and r.headers["content-length"] == "102400"
        assert c.stats()["total"] == 1


def test_tls(nginx, trust):
    with http.Client(timeout=5, tls=trust) as c:
        for _ in range(3):
            assert c.get(nginx.tls_url("/small")).read() == nginx_peer.SMALL
        assert c.get(nginx.tls_url("/big.txt")).read() == nginx_peer.BIG
        assert c.stats()["total"] == 1
    with http.Client(timeout=5) as c:       # the system CAs: refused
        with pytest.raises(socket2.TLSError) as ei:
            c.get(nginx.tls_url("/small"))
        assert ei.value.err == "certificate_verify_failed"
        with pytest.raises(socket2.TLSError) as ei:   # https to plain http
            c.get("https://127.0.0.1:%d/" % nginx.port)
        assert ei.value.err == "tls"
        assert c.stats()["total"] == 0


def test_50_concurrent_requests(nginx, trust):
    with http.Client(timeout=10, tls=trust, max_per_host=8) as c:
        got = []

        def one(i):
            url = nginx.tls_url("/small") if i % 2 else nginx.url("/small")
            got.append(c.get(url).read())
        with socket2.group() as g:
            for i in range(50):
                g.spawn(one, i)
        assert got == [nginx_peer.SMALL] * 50
        assert c.stats()["total"] <= 16


@pytest.mark.one_poller
def test_crawler_example(nginx):
    import subprocess
    crawler = os.path.join(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), "examples", "crawler.py")
    urls = [nginx.url("/small"), nginx.url("/big.txt"),
            nginx.url("/redirect")] * 5 + ["http://127.0.0.1:1/refused"]
    out = subprocess.run([sys.executable, crawler, "--concurrency", "4",
                          "--timeout", "5"] + urls, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1, out.stderr
    lines = out.stdout.splitlines()
    assert sum(line.startswith("200 ") for line in lines) == 15
    assert "%d B" % len(nginx_peer.BIG) in out.stdout
    assert "connection_refused" in out.stdout or "refused" in out.stdout
    assert lines[-1].startswith("16 URLs, 1 failed")
    assert "--concurrency" in subprocess.run(
        [sys.executable, crawler, "--help"], capture_output=True, text=True,
        timeout=60).stdout
