"""gevent echo server: StreamServer, one greenlet per connection (TLS with
--cert/--key: StreamServer's certfile/keyfile)."""
from gevent.server import StreamServer

from _args import parse


def handle(sock, address):
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            sock.sendall(data)
    except (ConnectionError, OSError):   # a reset client, a TLS error
        pass
    sock.close()


if __name__ == "__main__":
    args = parse(__doc__)
    # TLS as gevent's users write it: certfile/keyfile, so gevent makes its
    # own cooperative SSL context.
    kw = {"certfile": args.cert, "keyfile": args.key or args.cert} \
        if args.cert else {}
    server = StreamServer((args.host, args.port), handle, backlog=65535, **kw)
    print("gevent: listening", flush=True)
    server.serve_forever()
