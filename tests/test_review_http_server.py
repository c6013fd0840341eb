"""The defects an adversarial review of the WSGI server reproduced, each a
test that failed before its fix (numbers are the review's)."""
import gzip
import io
import os
import ssl
import sys

import pytest

import socket2
import socket2.http
from socket2.http import Limits

from http_helpers import (connect, echo, get, hello, running, show, split,
                          talk)


def test_01_middleware_replacing_wsgi_input_keeps_keep_alive():
    def app(environ, start_response):
        body = environ["wsgi.input"].read()
        environ["wsgi.input"] = io.BytesIO(body)     # what WebOb does
        start_response("200 OK", [])
        return [environ["wsgi.input"].read() or b"empty"]

    with running(app) as lst:
        rs = split(talk(lst, get(close=False) + get(
            extra=b"Content-Length: 3\r\n", method=b"POST") + b"abc"))
    assert [r.body for r in rs] == [b"empty", b"abc"]


@pytest.mark.parametrize("target, host, path, query", [
    (b"https://victim/admin", "victim", "/admin", ""),
    (b"HTTP://h:81?x=1", "h:81", "/", "x=1"),
    (b"http://h", "h", "/", ""),
])
def test_02_absolute_form_never_sets_the_scheme(target, host, path, query):
    with running(show) as lst:
        (r,) = split(talk(lst, b"GET " + target + b" HTTP/1.1\r\nHost: t\r\n"
                          b"Connection: close\r\n\r\n"))
    env = r.json()
    assert env["wsgi.url_scheme"] == "http"
    assert (env["HTTP_HOST"], env["PATH_INFO"], env["QUERY_STRING"]) == \
        (host, path, query)


@pytest.mark.parametrize("target", [b"mailto:x", b"example.com:80",
                                    b"ftp://h/x", b"http://u:p@h/",
                                    b"javascript://h/"])
def test_02_06_other_targets_are_400_not_a_crash(target):
    with running(show) as lst:
        data = talk(lst, get(close=False) + b"GET " + target +
                    b" HTTP/1.1\r\nHost: t\r\n\r\n")
    rs = split(data)
    assert [r.status for r in rs] == [200, 400]      # the first kept too


def test_03_head_and_204_through_an_iterable_keep_the_connection():
    def app(environ, start_response):
        if environ["PATH_INFO"] == "/204":
            start_response("204 No Content", [("Content-Length", "0")])
            return iter(())
        start_response("200 OK", [("Content-Length", "13")])
        return ()                                    # Werkzeug's HEAD

    with running(app) as lst:
        data = talk(lst, get(method=b"HEAD", close=False) +
                    get("/204", close=False) + get(method=b"HEAD"))
    rs = split(data, head_only=(0, 2))
    assert [r.status for r in rs] == [200, 204, 200]
    assert rs[0].header("connection") is None


def test_04_no_100_continue_once_the_head_went_out():
    def app(environ, start_response):
        write = start_response("200 OK", [])
        write(b"starting\n")
        return [environ["wsgi.input"].read()]

    with running(app) as lst, connect(lst) as c:
        c.sendall(get(extra=b"Content-Length: 4\r\nExpect: 100-continue\r\n",
                      method=b"POST"))
        socket2.sleep(0.1)
        c.sendall(b"data")
        data = c.recvall(timeout=5)
    assert b"100 Continue" not in data
    (r,) = split(data)
    assert r.body == b"starting\ndata"


def test_05_write_then_file_wrapper_is_one_response(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"CONTENT\n")

    def app(environ, start_response):
        write = start_response("200 OK", [])
        write(b"prefix;")
        return environ["wsgi.file_wrapper"](open(path, "rb"))

    with running(app) as lst:
        (r,) = split(talk(lst, get()))
    assert r.body == b"prefix;CONTENT\n"


def test_07_systemexit_in_the_app_is_a_500_not_the_end_of_the_server(capfd):
    def app(environ, start_response):
        if environ["PATH_INFO"] == "/exit":
            sys.exit(3)
        return hello(environ, start_response)

    with running(app) as lst:
        (r,) = split(talk(lst, get("/exit")))
        assert r.status == 500
        (r,) = split(talk(lst, get()))
        assert r.status == 200
    assert "SystemExit" in capfd.readouterr().err


def test_08_long_header_names_are_not_cached():
    from socket2.http import wsgi
    with running(hello) as lst:
        for i in range(5):
            name = b"X-%d-" % i + b"n" * 1000
            talk(lst, get(extra=name + b": v\r\n"))
    assert not [k for k in wsgi._KEYS if len(k) > 64]


def test_10_send_timeout_bounds_a_stall_not_the_whole_response():
    big = b"y" * (8 << 20)

    def app(environ, start_response):
        start_response("200 OK", [])
        return [big]

    with running(app, limits=Limits(send_timeout=0.5)) as lst, \
            connect(lst) as c:
        c.sendall(get())
        got = 0
        buf = bytearray(65536)
        t0 = socket2.clock()
        while True:                  # ~4 MB/s: never stalls 0.5 s
            n = c.recv(buf, timeout=5)
            if not n:
                break
            got += n
            socket2.sleep(0.015)
        assert socket2.clock() - t0 > 0.5
    assert got > len(big)            # the head too: all of it arrived


def test_11_a_steady_upload_outlasts_body_timeout():
    with running(echo, limits=Limits(body_timeout=0.3)) as lst, \
            connect(lst) as c:
        n = 40 * 8192
        c.sendall(get(extra=b"Content-Length: %d\r\n" % n, method=b"POST"))
        for _ in range(40):          # 8 KiB every 20 ms: 0.8 s in all
            c.sendall(b"u" * 8192)
            socket2.sleep(0.02)
        (r,) = split(c.recvall(timeout=5))
    assert r.status == 200 and len(r.body) == n


def test_14_an_unread_large_body_does_not_reset_the_answer():
    """The server answers 413 before reading a 4 MB body; closing with the
    body unread would reset the connection and the client would never see
    the 413 (lingering close)."""
    with running(echo, limits=Limits(max_body=1000)) as lst, \
            connect(lst) as c:
        n = 4 << 20
        c.sendall(get(extra=b"Content-Length: %d\r\n" % n, method=b"POST"))
        sent = 0
        chunk = b"z" * 65536
        try:
            while sent < n:
                sent += c.send(chunk, timeout=2)
        except socket2.Error:
            pass                     # the server stopped reading: fine
        data = c.recvall(timeout=5)
    (r,) = split(data)
    assert r.status == 413


def test_15_unread_chunked_body_says_connection_close():
    def app(environ, start_response):
        start_response("200 OK", [])
        return [b"ignored the body"]

    with running(app) as lst, connect(lst) as c:
        c.sendall(get(extra=b"Transfer-Encoding: chunked\r\n",
                      method=b"POST", close=False) + b"10000\r\n" +
                  b"c" * 0x10000 + b"\r\n")
        data = c.recvall(timeout=5)
    (r,) = split(data)
    assert r.header("connection") == "close"


def test_17_tls_silence_after_the_handshake_is_header_timeout(pki):
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(pki["server"])
    cctx = ssl.create_default_context(cafile=pki["ca"])
    limits = Limits(header_timeout=0.3, keepalive_timeout=30)
    with running(hello, tls=sctx, limits=limits) as lst:
        with socket2.connect("localhost", lst.local_port, tls=cctx,
                             timeout=5) as c:
            t0 = socket2.clock()
            assert c.recvall(timeout=5) == b""
            assert socket2.clock() - t0 < 3


def test_18_client_eof_mid_body_is_no_app_error(capfd):
    with running(echo) as lst:
        with connect(lst) as c:
            c.sendall(get(extra=b"Content-Length: 100\r\n", method=b"POST") +
                      b"only a few")
            socket2.sleep(0.1)
        socket2.sleep(0.1)
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("body", [b"hello", [5], [None], ["text"]],
                         ids=["bytes-as-iterable", "int", "None", "str"])
def test_19_non_bytes_body_items_are_refused(body, capfd):
    def app(environ, start_response):
        start_response("200 OK", [])
        return iter(body)

    with running(app) as lst:
        (r,) = split(talk(lst, get()))
    assert r.status == 500 and b"\0" not in r.body
    capfd.readouterr()


def test_20_content_length_list_is_one_number():
    with running(show) as lst:
        (r,) = split(talk(lst, get(extra=b"Content-Length: 5, 5\r\n",
                                   method=b"POST") + b"abcde"))
    assert r.json()["CONTENT_LENGTH"] == "5"


def test_21_write_after_the_response_ended_is_refused(capfd):
    saved = []

    def app(environ, start_response):
        if not saved:
            saved.append(start_response("200 OK", []))
            return [b"first"]
        saved[0](b"INJECTED")
        start_response("200 OK", [])
        return [b"second"]

    with running(app) as lst:
        rs = split(talk(lst, get(close=False) + get()))
    assert rs[0].body == b"first" and rs[1].status == 500
    assert b"INJECTED" not in b"".join(r.body for r in rs)
    assert "after the response ended" in capfd.readouterr().err


def test_22_file_wrapper_of_gzip_and_procfs_files(tmp_path):
    gz = tmp_path / "f.gz"
    with gzip.open(gz, "wb") as f:
        f.write(b"plain text inside\n" * 100)

    def app(environ, start_response):
        start_response("200 OK", [])
        if environ["PATH_INFO"] == "/gz":
            return environ["wsgi.file_wrapper"](gzip.open(gz, "rb"))
        return environ["wsgi.file_wrapper"](open("/proc/self/status", "rb"))

    with running(app) as lst:
        (r,) = split(talk(lst, get("/gz")))
        assert r.body == b"plain text inside\n" * 100
        if os.path.exists("/proc/self/status"):
            (r,) = split(talk(lst, get("/proc")))
            assert b"Name:" in r.body


def test_23_error_bodies_say_what_was_wrong():
    with running(hello) as lst:
        (r,) = split(talk(lst, b"GET / HTTP/1.1\r\nHost: t\r\nX: a\x01\r\n\r\n"))
    assert r.status == 400 and b"control character" in r.body


def test_24_expect_continue_with_an_empty_body_keeps_alive():
    with running(hello) as lst:
        rs = split(talk(lst, get(extra=b"Content-Length: 0\r\n"
                                 b"Expect: 100-continue\r\n", method=b"POST",
                                 close=False) + get()))
    assert [r.status for r in rs] == [200, 200]
    assert rs[0].header("connection") is None


def test_25_tls_timeout_is_checked_up_front(pki):
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(pki["server"])
    with socket2.tcp() as lst:
        lst.listen("127.0.0.1", 0)
        with pytest.raises((TypeError, ValueError), match="tls_timeout"):
            socket2.http.serve(lst, hello, tls=sctx, tls_timeout="5")


@pytest.mark.parametrize("tls", [False, True])
def test_16_a_pipelined_answer_is_not_held_behind_a_slow_application(
        tls, pki):
    """Two pipelined requests: the first is answered at once, the second's
    application waits until the client has that first answer.  Before the
    fix the first answer was held (to leave with the second in one write)
    while the second application ran: here, forever."""
    got_first = socket2.Event()

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/slow":
            # The client sets this once the first response has arrived.
            got_first.wait(timeout=10)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["PATH_INFO"].encode()]

    kwargs = {}
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pki["server"])
        kwargs["tls"] = ctx
    with running(app, **kwargs) as lst, connect(lst) as c:
        if tls:
            cctx = ssl.create_default_context(cafile=pki["ca"])
            c = socket2.tls(c, cctx, server_hostname="localhost", timeout=5)
        c.sendall(get("/fast", close=False) + get("/slow"))
        first = b""
        buf = bytearray(4096)
        while b"/fast" not in first:
            n = c.recv(buf, timeout=5)      # TimeoutError before the fix
            assert n, "closed before the first answer"
            first += buf[:n]
        got_first.set()
        rest = c.recvall(timeout=5)
    rs = split(first + rest)
    assert [r.body for r in rs] == [b"/fast", b"/slow"]


def test_16_a_client_gone_while_held_answers_are_written():
    """The held answers' writer fails (the client reset); the parked
    application's own answer then fails quietly and the server goes on."""
    release = socket2.Event()

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/slow":
            release.wait(timeout=10)
        start_response("200 OK", [])
        return [b"x" * 100]

    with running(app) as lst:
        c = connect(lst)
        c.sendall(get("/fast", close=False) + get("/slow"))
        c.recv(bytearray(10), timeout=5)
        c.close()       # the rest of /fast unread: the kernel resets
        socket2.sleep(0.05)
        release.set()
        socket2.sleep(0.05)
        (r,) = split(talk(lst, get("/after")))
        assert r.status == 200
