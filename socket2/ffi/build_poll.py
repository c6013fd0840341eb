"""cffi out-of-line (API mode) build of the portable poll(2) backend.

Produces ``socket2._poll_ffi``, built on every POSIX system: the fallback
where neither epoll nor kqueue exists, and a second implementation of the
backend surface that the test suite runs everywhere.  Events come back as
the same tokens as epoll's (see build_epoll.py).
"""
from cffi import FFI

CDEF = r"""
struct pollfd { int fd; short events; short revents; ...; };
#define POLLIN ...
#define POLLOUT ...
int s2_poll(struct pollfd *fds, int n, int *tokens, double timeout);
int s2_pipe(int *fds);
int s2_pipe_signal(int fd);
int s2_pipe_drain(int fd);
"""

SOURCE = r"""
#include <poll.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <unistd.h>

#ifndef POLLRDHUP
#define POLLRDHUP 0
#endif

int s2_poll(struct pollfd *fds, int n, int *tokens, double timeout)
{
    int ms, r, i, k = 0;
    if (timeout < 0) ms = -1;
    else if (timeout > 2000000.0) ms = 2000000000;
    else ms = (int)ceil(timeout * 1000.0);
    r = poll(fds, (nfds_t)n, ms);
    if (r < 0) return -errno;
    for (i = 0; i < n && k < r; i++) {
        short e = fds[i].revents;
        int t;
        if (!e) continue;
        t = fds[i].fd << 3;
        if (e & (POLLIN | POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) t |= 1;
        if (e & (POLLOUT | POLLHUP | POLLERR | POLLNVAL)) t |= 2;
        if (e & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) t |= 4;
        tokens[k++] = t;
    }
    return k;
}

int s2_pipe(int *fds)
{
    int i;
    if (pipe(fds) < 0) return -errno;
    for (i = 0; i < 2; i++) {
        fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
        fcntl(fds[i], F_SETFD, FD_CLOEXEC);
    }
    return 0;
}

int s2_pipe_signal(int fd)
{
    char c = 1;
    return write(fd, &c, 1) < 0 && errno != EAGAIN ? -errno : 0;
}

int s2_pipe_drain(int fd)
{
    char buf[256];
    while (read(fd, buf, sizeof buf) > 0) ;
    return 0;
}
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source("socket2._poll_ffi", SOURCE, libraries=["m"])

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
