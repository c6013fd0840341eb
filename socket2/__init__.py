"""socket2: portable cooperative sockets.

Each connection runs in its own greenlet (a *thread*, started with
:func:`newthread`) and its I/O reads as plain blocking code; a hub greenlet
per OS thread runs the kernel poller (epoll on Linux, kqueue on macOS/BSD,
IOCP on Windows) and resumes the thread each event is for.

    import socket2

    def echo(conn):
        buf = bytearray(4096)
        with conn:
            while (n := conn.recv(buf)):
                conn.sendall(buf, n)

    server = socket2.tcp()
    server.listen("127.0.0.1", 8080)
    socket2.newthread(socket2.serve, server, echo)  # a thread per connection
    socket2.start()
"""
from ._socket_ffi import lib as _lib
from .errors import Error, TimeoutError, TLSError
from .addr import addr, AddrInfo, SockAddr, IPAddr
from .sockets import tcp, udp, raw, TCPSocket, UDPSocket, RawSocket
from .hub import (Thread, newthread, poll, start, stop, current, clock,
                  sleep, sleep_until, runafter, runat, runevery)
from .timing import timeout, sleep_job, SleepJob
from .serve import serve, connect
from .tls import tls, TLSSocket
from .sync import (Event, Lock, Semaphore, BoundedSemaphore, Condition,
                   Queue, group, Group, Cancelled, run_in_thread,
                   thread_pool_size)
from ._options import OPTIONS
from .pollers import backend_name as poller_name, available as available_pollers
from . import pollers

__version__ = "0.1.0"

thread = newthread   # the original library's name for create-and-start

AF_INET = _lib.AF_INET
AF_INET6 = _lib.AF_INET6
AF_UNIX = _lib.AF_UNIX
AF_UNSPEC = _lib.AF_UNSPEC
SOCK_STREAM = _lib.SOCK_STREAM
SOCK_DGRAM = _lib.SOCK_DGRAM
SOCK_RAW = _lib.SOCK_RAW
IPPROTO_IP = _lib.IPPROTO_IP
IPPROTO_IPV6 = _lib.IPPROTO_IPV6
IPPROTO_TCP = _lib.IPPROTO_TCP
IPPROTO_UDP = _lib.IPPROTO_UDP
IPPROTO_RAW = _lib.IPPROTO_RAW
IPPROTO_ICMP = _lib.IPPROTO_ICMP
IPPROTO_ICMPV6 = _lib.IPPROTO_ICMPV6
AI_PASSIVE = _lib.AI_PASSIVE
AI_CANONNAME = _lib.AI_CANONNAME
AI_NUMERICHOST = _lib.AI_NUMERICHOST
AI_NUMERICSERV = _lib.AI_NUMERICSERV
AI_ALL = _lib.AI_ALL
AI_V4MAPPED = _lib.AI_V4MAPPED
AI_ADDRCONFIG = _lib.AI_ADDRCONFIG


def _poller_handle(name, handle):
    from .hub import _existing_hub, get_hub
    hub = _existing_hub()
    if handle is None:
        hub = hub or get_hub()
        if hub.poller.name != name:
            raise Error("unsupported", "this OS thread's hub uses %s, not %s"
                        % (hub.poller.name, name))
        return hub.poller.fileno()
    if isinstance(handle, bool) or not isinstance(handle, int):
        raise TypeError("%s handle must be an int" % name)
    if hub is not None:
        if hub.poller.fileno() == handle:
            return handle
        raise Error("busy", "this OS thread's hub already uses %s %d; set "
                    "it before the first socket2 call" % (
                        name, hub.poller.fileno()))
    pollers.preset(name, handle)
    return get_hub().poller.fileno()


def epoll_fd(fd=None):
    """Linux: the epoll fd of this OS thread's hub.  With *fd*, make the
    hub use that epoll instance (share it with other OS threads); only
    before this thread's first socket2 call."""
    return _poller_handle("epoll", fd)


def kqueue_fd(fd=None):
    """macOS/BSD (and Linux with libkqueue): like :func:`epoll_fd`, for
    the kqueue of the hub.  With *fd*, this OS thread's hub joins that
    kqueue (created by another thread's hub) before its first socket2
    call."""
    return _poller_handle("kqueue", fd)


def iocp(handle=None):
    """Windows: like :func:`epoll_fd`, for the hub's I/O completion port
    (its HANDLE as an int).  With *handle*, this OS thread's hub joins that
    port (created by another thread's hub) before its first socket2
    call."""
    return _poller_handle("iocp", handle)
