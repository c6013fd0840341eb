"""eventlet echo server: eventlet.listen + a green thread per connection."""
import eventlet

from _args import parse


def handle(sock):
    while True:
        data = sock.recv(65536)
        if not data:
            break
        sock.sendall(data)
    sock.close()


if __name__ == "__main__":
    args = parse(__doc__)
    server = eventlet.listen((args.host, args.port), backlog=65535)
    print("eventlet: listening", flush=True)
    pool = eventlet.GreenPool(100000)
    while True:
        conn, _ = server.accept()
        pool.spawn_n(handle, conn)
