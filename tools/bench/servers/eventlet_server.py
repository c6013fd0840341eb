"""eventlet echo server: eventlet.listen + a green thread per connection."""
import eventlet

from _args import parse


def handle(sock):
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
    server = eventlet.listen((args.host, args.port), backlog=65535)
    print("eventlet: listening", flush=True)
    pool = eventlet.GreenPool(100000)
    while True:
        conn, _ = server.accept()
        pool.spawn_n(handle, conn)
