"""gevent echo server: StreamServer, one greenlet per connection."""
from gevent.server import StreamServer

from _args import parse


def handle(sock, address):
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            sock.sendall(data)
    except ConnectionError:     # a client that resets: nothing to report
        pass
    sock.close()


if __name__ == "__main__":
    args = parse(__doc__)
    server = StreamServer((args.host, args.port), handle, backlog=65535)
    print("gevent: listening", flush=True)
    server.serve_forever()
