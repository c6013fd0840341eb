"""Nanoseconds per request head: socket2's HTTP parser (C and its Python
twin) side by side with h11 and httptools, on a browser-like GET with ten
header fields (what a server parses for every request).

    .venv/bin/python tools/bench/http_parser_bench.py [--rounds 7] [--time 0.3]

Each parser runs in the same process, interleaved round by round; each
figure is the median of the rounds, and the ratio is to socket2's C
parser.  What each row measures:

- socket2 C / Python: ``HeadParser.request(head)``: request line,
  validated fields (lowercased names), framing decided, a RequestHead
  with its header list built;
- socket2 C, no header list: the same C call and checks without building
  the Python objects (the floor the cffi call and validation set);
- h11: ``Connection.receive_data`` + ``next_event`` on a fresh
  ``h11.Connection(h11.SERVER)`` (h11 keeps one per connection, and it
  answers one request per cycle); "h11 reader only" calls its internal
  request reader on a ReceiveBuffer, without the Connection;
- httptools (llhttp): ``feed_data`` on one reused HttpRequestParser whose
  callbacks collect the URL and the header pairs, as a server's do;
- socket2 C parser alone: http_parser.c compiled into a small C program
  (with the system's cc, -O2, when there is one) that parses the same
  head in a loop: the parser without Python or cffi.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

HEAD = (b"GET /articles/2024/socket2?page=2&sort=new HTTP/1.1\r\n"
        b"Host: www.example.com\r\n"
        b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) "
        b"Gecko/20100101 Firefox/120.0\r\n"
        b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,"
        b"image/avif,image/webp,*/*;q=0.8\r\n"
        b"Accept-Language: en-US,en;q=0.5\r\n"
        b"Accept-Encoding: gzip, deflate, br\r\n"
        b"Referer: https://www.example.com/articles/2024\r\n"
        b"Connection: keep-alive\r\n"
        b"Cookie: session=4f1c2d9e8b7a6; theme=dark\r\n"
        b"Upgrade-Insecure-Requests: 1\r\n"
        b"Sec-Fetch-Dest: document\r\n"
        b"\r\n")


def candidates():
    """(name, zero-argument function parsing HEAD once), those that
    import."""
    out = []
    os.environ.pop("SOCKET2_PURE_PYTHON", None)
    from socket2.http import _parser_py
    try:
        from socket2.http import _parser_c
    except ImportError:
        _parser_c = None
    if _parser_c is not None:
        c = _parser_c.HeadParser()
        out.append(("socket2 C", lambda: c.request(HEAD)))
        parse, ps, n = _parser_c.lib.s2h_parse_request, c._ps, len(HEAD)
        out.append(("socket2 C, no header list",
                    lambda: parse(ps, HEAD, 0, n)))
    py = _parser_py.HeadParser()
    out.append(("socket2 Python twin", lambda: py.request(HEAD)))
    try:
        import h11
        from h11._readers import maybe_read_from_IDLE_client
        from h11._receivebuffer import ReceiveBuffer
    except ImportError:
        h11 = None
    if h11 is not None:
        def h11_connection():
            conn = h11.Connection(h11.SERVER)
            conn.receive_data(HEAD)
            return conn.next_event()

        def h11_reader():
            buf = ReceiveBuffer()
            buf += HEAD
            return maybe_read_from_IDLE_client(buf)
        out.append(("h11 (Connection per head)", h11_connection))
        out.append(("h11 reader only", h11_reader))
    try:
        import httptools
    except ImportError:
        httptools = None
    if httptools is not None:
        class Proto:
            def __init__(self):
                self.headers = []
                self.url = None

            def on_url(self, url):
                self.url = url

            def on_header(self, name, value):
                self.headers.append((name, value))

            def on_message_begin(self):
                self.headers = []

        proto = Proto()
        hp = httptools.HttpRequestParser(proto)

        def httptools_feed():
            hp.feed_data(HEAD)
            return proto.headers
        out.append(("httptools (llhttp, callbacks)", httptools_feed))
    return out


C_LOOP = r"""
#include "http_parser.c"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static const char head[] = %s;
int main(int argc, char **argv)
{
    static int64_t out[S2H_NOUT + 400];
    static char flat[8190 + 32768 + 8];
    s2h_parser ps = {8190, 32768, 100, out, flat};
    double seconds = atof(argv[1]);
    struct timespec a, b;
    long i, n = 1000;
    s2h_init();
    for (;;) {
        double dt;
        clock_gettime(CLOCK_MONOTONIC, &a);
        for (i = 0; i < n; i++)
            if (s2h_parse_request(&ps, head, 0, sizeof head - 1))
                return 1;
        clock_gettime(CLOCK_MONOTONIC, &b);
        dt = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
        if (dt >= seconds) {
            printf("%%.1f\n", dt / n * 1e9);
            return 0;
        }
        n *= 2;
    }
}
"""


def c_alone(tmp):
    """A function returning ns per head measured by a compiled C loop, or
    None when no C compiler is found."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    src = os.path.join(tmp, "loop.c")
    exe = os.path.join(tmp, "loop")
    literal = '"' + "".join("\\x%02x" % c for c in HEAD) + '"'
    with open(src, "w") as f:
        f.write(C_LOOP % literal)
    ffi_dir = os.path.join(os.path.dirname(os.path.dirname(HERE)),
                           "socket2", "ffi")
    subprocess.run([cc, "-O2", "-I", ffi_dir, "-o", exe, src], check=True)

    def run(seconds):
        out = subprocess.run([exe, str(seconds)], check=True,
                             capture_output=True, text=True).stdout
        return float(out)
    return run


def measure(fn, seconds):
    """ns per call over about *seconds*."""
    n = 1
    while True:
        t = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t
        if dt >= seconds:
            return dt / n * 1e9
        n = n * 2 if dt < seconds / 8 else int(n * seconds / dt) + 1


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7,
                    help="rounds, interleaved (default 7); medians reported")
    ap.add_argument("--time", type=float, default=0.3,
                    help="seconds per parser per round (default 0.3)")
    args = ap.parse_args(argv)
    cands = candidates()
    for name, fn in cands:
        fn()
    with tempfile.TemporaryDirectory() as tmp:
        alone = c_alone(tmp)
        results = {name: [] for name, _ in cands}
        if alone is not None:
            results["socket2 C parser alone (no Python)"] = []
        for r in range(args.rounds):
            order = cands[r % len(cands):] + cands[:r % len(cands)]
            for name, fn in order:
                results[name].append(measure(fn, args.time))
            if alone is not None:
                results["socket2 C parser alone (no Python)"].append(
                    alone(args.time))
    names = [name for name, _ in cands] + [
        n for n in results if n not in dict(cands)]
    base = statistics.median(results[cands[0][0]])
    print("request head: %d bytes, 10 header fields; median of %d rounds"
          % (len(HEAD), args.rounds))
    print("%-32s %10s %10s %8s" % ("parser", "ns/head", "heads/s",
                                   "ratio"))
    for name in names:
        ns = statistics.median(results[name])
        print("%-32s %10.0f %10.0f %7.2fx" % (name, ns, 1e9 / ns,
                                              ns / base))


if __name__ == "__main__":
    main()
