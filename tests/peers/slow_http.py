"""A plain standard-library HTTP(S) server for the compatibility tests, run
in its own process: GET /slow?d=SECONDS answers after that delay, /size?n=N
with N bytes; keep-alive HTTP/1.1, one OS thread per connection.

    python tests/peers/slow_http.py [--cert C --key K]   # prints the port
"""
import argparse
import http.server
import ssl
import sys
import time
from urllib.parse import parse_qs, urlsplit


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        u = urlsplit(self.path)
        q = parse_qs(u.query)
        if u.path == "/slow":
            time.sleep(float(q.get("d", ["0.5"])[0]))
            body = b"slow ok"
        elif u.path == "/size":
            body = b"x" * int(q.get("n", ["0"])[0])
        else:
            body = b"hello from slow_http"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cert")
    ap.add_argument("--key")
    args = ap.parse_args()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.request_queue_size = 256
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    print(httpd.server_address[1], flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
