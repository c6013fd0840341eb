#!/usr/bin/env python3
"""A TCP echo server on N OS threads that share one poller.

    python examples/threaded_echo_server.py --threads 4 --port 7000

Each OS thread has its own hub (its own greenlets) and its own listening
socket on the same port (SO_REUSEPORT: the kernel spreads connections over
them); all hubs wait on one kernel set, the main thread's (an epoll set, a
kqueue or a completion port), joined with ``socket2.epoll_fd(fd)`` (or
``kqueue_fd``, ``iocp``) before the thread's first socket2 call.  An event
that one thread's poll picks up for another thread's socket is handed to
its owner, so every greenlet only ever runs in its own thread.

Python runs one thread at a time (the GIL), so threads help where time goes
to system calls (which release it); for all cores, run processes instead:
``echo_server.py --workers N``.
"""
import argparse
import os
import sys
import threading

import socket2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from echo_server import echo  # noqa: E402  (the same handler)

# How each shareable poller's handle is read and joined.
SHARE = {"epoll": socket2.epoll_fd, "kqueue": socket2.kqueue_fd,
         "iocp": socket2.iocp}


def listener(host, port):
    s = socket2.tcp("inet6" if ":" in host else "inet")
    s.setopt("so_reuseport", True)
    s.listen(host, port)
    return s


def worker(share, handle, host, port, bufsize, ready, stop):
    share(handle)                   # join the shared set: before any I/O
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
                                 "threads sharing one poller.")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=7000,
                    help="port (0 is not allowed: threads must agree on it)")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--bufsize", type=int, default=65536)
    args = ap.parse_args(argv)
    if args.port == 0:
        ap.error("--port 0 cannot be shared by threads; pick a port")
    share = SHARE.get(socket2.poller_name())
    if share is None:
        ap.error("the %s poller cannot be shared between threads (epoll, "
                 "kqueue and iocp can)" % socket2.poller_name())
    if "so_reuseport" not in socket2.OPTIONS:
        ap.error("one listener per thread needs SO_REUSEPORT, which this "
                 "OS does not have")

    handle = share()                  # the main thread's set, to share
    server = listener(args.host, args.port)
    stop = threading.Event()
    threads = []
    for _ in range(args.threads - 1):
        ready = threading.Event()
        t = threading.Thread(target=worker, args=(share, handle, args.host,
                                                  args.port, args.bufsize,
                                                  ready, stop))
        t.start()
        ready.wait()
        threads.append(t)
    print("threaded_echo_server: listening on %s:%d with %d threads (one "
          "%s set, handle %d)" % (args.host, args.port, args.threads,
                                  socket2.poller_name(), handle), flush=True)
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
