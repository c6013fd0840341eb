#!/usr/bin/env python3
"""A TCP echo server on N OS threads that share one epoll set.

    python examples/threaded_echo_server.py --threads 4 --port 7000

Each OS thread has its own hub (its own greenlets) and its own listening
socket on the same port (SO_REUSEPORT: the kernel spreads connections over
them); all hubs wait on one epoll set, the main thread's, joined with
``socket2.epoll_fd(fd)`` before the thread's first socket2 call.  An event
that one thread's poll picks up for another thread's socket is handed to
its owner, so every greenlet only ever runs in its own thread.

Python runs one thread at a time (the GIL), so threads help where time goes
to system calls (which release it); for all cores, run processes instead:
``echo_server.py --workers N``.
"""
import argparse
import sys
import threading

import socket2

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from echo_server import echo  # noqa: E402  (the same handler)


def listener(host, port):
    s = socket2.tcp("inet6" if ":" in host else "inet")
    s.setopt("so_reuseport", True)
    s.listen(host, port)
    return s


def worker(epfd, host, port, bufsize, ready, stop):
    socket2.epoll_fd(epfd)          # join the shared set: before any I/O
    server = listener(host, port)
    ready.set()
    socket2.newthread(socket2.serve, server, echo, bufsize)

    def check_stop():          # the main thread asks us to finish
        if stop.is_set():
            server.close()
            socket2.stop()

    timer = socket2.runevery(0.1, check_stop)
    socket2.start()
    timer.cancel()


def main(argv=None):
    ap = argparse.ArgumentParser(description="socket2 echo server on N OS "
                                 "threads sharing one epoll set.")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=7000,
                    help="port (0 is not allowed: threads must agree on it)")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--bufsize", type=int, default=65536)
    args = ap.parse_args(argv)
    if args.port == 0:
        ap.error("--port 0 cannot be shared by threads; pick a port")
    if socket2.poller_name() != "epoll":
        ap.error("sharing a poller set needs epoll here (running %s)"
                 % socket2.poller_name())

    epfd = socket2.epoll_fd()         # the main thread's set, to share
    server = listener(args.host, args.port)
    stop = threading.Event()
    threads = []
    for _ in range(args.threads - 1):
        ready = threading.Event()
        t = threading.Thread(target=worker, args=(epfd, args.host, args.port,
                                                  args.bufsize, ready, stop))
        t.start()
        ready.wait()
        threads.append(t)
    print("threaded_echo_server: listening on %s:%d with %d threads (one "
          "epoll set, fd %d)" % (args.host, args.port, args.threads, epfd),
          flush=True)
    socket2.newthread(socket2.serve, server, echo, args.bufsize)
    try:
        socket2.start()
    except KeyboardInterrupt:
        print("threaded_echo_server: stopped", file=sys.stderr)
    finally:
        stop.set()
        server.close()
        for t in threads:
            t.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
