"""cffi out-of-line (API mode) build of the Linux epoll poller.

Produces ``socket2._epoll_ffi``, built only on Linux (see setup.py).

``s2_epoll_wait`` hands events to Python as one flat ``int`` array of
*tokens*, ``fd << 3 | readable | writable << 1 | hangup << 2``: the hub
turns the array
into a list with one ``ffi.unpack`` call and reads each event with two
integer operations, instead of walking ``struct epoll_event`` cdata.
The kqueue and poll(2) backends produce the same tokens.
"""
from cffi import FFI

FUNCTIONS = r"""
int s2_epoll_create(void);
int s2_epoll_add(int epfd, int fd);
int s2_epoll_del(int epfd, int fd);
int s2_epoll_wait(int epfd, int *tokens, int maxevents, double timeout);
int s2_epoll_wait_nested(int privfd, int setfd, int *tokens, int maxevents,
                         double timeout);
int s2_epoll_add_level(int epfd, int fd);
int s2_eventfd(void);
int s2_eventfd_signal(int fd);
int s2_eventfd_drain(int fd);
"""

SOURCE = r"""
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <unistd.h>

/* The largest batch one epoll_wait returns.  The kernel's array lives on
   the C stack: cffi releases the GIL around the call, so two OS threads
   may be in here at once and must not share it. */
#define S2_MAXBATCH 1024

int s2_epoll_create(void)
{
    int fd = epoll_create1(EPOLL_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

/* Every fd is registered once, edge-triggered, for both directions: the
   hub always tries the system call first and only waits after EAGAIN, so
   an edge that fires while nobody waits is harmless, and no epoll_ctl is
   needed per wait. */
int s2_epoll_add(int epfd, int fd)
{
    struct epoll_event ev;
    ev.events = EPOLLIN | EPOLLPRI | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = (uint64_t)fd;
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int s2_epoll_del(int epfd, int fd)
{
    struct epoll_event ev;   /* non-NULL for kernels before 2.6.9 */
    return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, &ev) < 0 ? -errno : 0;
}

int s2_epoll_wait(int epfd, int *tokens, int maxevents, double timeout)
{
    struct epoll_event evs[S2_MAXBATCH];
    int ms, n, i;
    if (maxevents > S2_MAXBATCH) maxevents = S2_MAXBATCH;
    /* Round up: waking a fraction of a millisecond early would make the
       hub spin until a timer is really due. */
    if (timeout < 0) ms = -1;
    else if (timeout > 2000000.0) ms = 2000000000;
    else ms = (int)ceil(timeout * 1000.0);
    n = epoll_wait(epfd, evs, maxevents, ms);
    if (n < 0) return -errno;       /* EINTR: let Python run its signal handlers */
    for (i = 0; i < n; i++) {
        uint32_t e = evs[i].events;
        int t = (int)evs[i].data.u64 << 3;
        /* Errors and hang-ups wake both directions: the retried system
           call then reports what happened.  Urgent data (EPOLLPRI) counts
           as a hang-up for the reader: a read stops short at the urgent
           mark, so a short read no longer proves the queue empty (the
           short-read shortcut, _hotpath.Waiters, is off from then on). */
        if (e & (EPOLLIN | EPOLLPRI | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) t |= 1;
        if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR)) t |= 2;
        if (e & (EPOLLPRI | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) t |= 4;
        tokens[i] = t;
    }
    return n;
}

/* Shared epoll sets (socket2.epoll_fd(fd) in several OS threads): each hub
   waits on a private epoll holding its own wakeup fd and, level-triggered,
   the shared set; when the set is ready it takes one batch from it without
   blocking.  A wakeup fd therefore never sits in the shared set, where
   another thread could consume its event. */
int s2_epoll_wait_nested(int privfd, int setfd, int *tokens, int maxevents,
                         double timeout)
{
    int n = s2_epoll_wait(privfd, tokens, maxevents, timeout), i, k = 0, set = 0;
    if (n <= 0) return n;
    for (i = 0; i < n; i++) {           /* drop the set's own token */
        if ((tokens[i] >> 3) == setfd) set = 1;
        else tokens[k++] = tokens[i];
    }
    if (set && k < maxevents) {
        int m = s2_epoll_wait(setfd, tokens + k, maxevents - k, 0);
        if (m > 0) k += m;
    }
    return k;
}

int s2_epoll_add_level(int epfd, int fd)
{
    struct epoll_event ev;
    ev.events = EPOLLIN;
    ev.data.u64 = (uint64_t)fd;
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int s2_eventfd(void)
{
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int s2_eventfd_signal(int fd)
{
    uint64_t one = 1;
    return write(fd, &one, sizeof one) < 0 && errno != EAGAIN ? -errno : 0;
}

int s2_eventfd_drain(int fd)
{
    uint64_t v;
    return read(fd, &v, sizeof v) < 0 && errno != EAGAIN ? -errno : 0;
}
"""

ffibuilder = FFI()
ffibuilder.cdef(FUNCTIONS)
ffibuilder.set_source("socket2._epoll_ffi", SOURCE, libraries=["m"])

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
