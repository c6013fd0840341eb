"""gevent echo server: StreamServer, one greenlet per connection."""
from gevent.server import StreamServer

from _args import parse


def handle(sock, address):
    while True:
        data = sock.recv(65536)
        if not data:
            break
        sock.sendall(data)
    sock.close()


if __name__ == "__main__":
    args = parse(__doc__)
    server = StreamServer((args.host, args.port), handle, backlog=65535)
    print("gevent: listening", flush=True)
    server.serve_forever()
