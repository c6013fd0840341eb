"""Echo server written against the standard socket API, run on
socket2.green.socket: what code made cooperative by socket2.monkey costs,
next to examples/echo_server.py (socket2's own API)."""
import socket2
from socket2.green import socket

from _args import parse


def handle(conn):
    with conn:
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                conn.sendall(data)
        except OSError:         # a client that resets: nothing to report
            pass


if __name__ == "__main__":
    args = parse(__doc__)
    srv = socket.create_server((args.host, args.port), backlog=65535)
    print("green-echo: listening", flush=True)

    def accept_loop():
        while True:
            conn, _ = srv.accept()
            socket2.newthread(handle, conn)

    socket2.newthread(accept_loop)
    socket2.start()
