"""Thread-per-connection echo server from the standard library."""
import socketserver

from _args import parse


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                sock.sendall(data)
        except ConnectionError:  # a client that resets: nothing to report
            pass


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 65535


if __name__ == "__main__":
    args = parse(__doc__)
    with Server((args.host, args.port), Echo) as server:
        print("threads: listening", flush=True)
        server.serve_forever()
