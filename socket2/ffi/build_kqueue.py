"""cffi out-of-line (API mode) build of the kqueue poller.

Produces ``socket2._kqueue_ffi``: natively on macOS and the BSDs, and on
Linux when pkg-config finds libkqueue (a userspace kqueue over epoll), so
the backend runs here too (``SOCKET2_POLLER=kqueue``).  setup.py asks
``available()`` whether to build it.

Events reach Python as the same tokens as epoll's (see build_epoll.py);
kqueue reports reads and writes as separate events, so one fd may give two
tokens in a batch.  Filters are one-shots armed when a thread parks, batched
into the next kevent() call that waits.
"""
import os
import shlex
import subprocess
import sys

from cffi import FFI

CDEF = r"""
int s2_kqueue_create(void);
int s2_kqueue_wait(int kq, const int *arms, int narms, int *tokens,
                   int *errs, int maxevents, double timeout);
int s2_kqueue_arm(int kq, const int *arms, int narms, int *tokens);
int s2_kqueue_del(int kq, int fd);
int s2_kqueue_user_add(int kq, int ident);
int s2_kqueue_user_trigger(int kq, int ident);
int s2_kqueue_user_del(int kq, int ident);
"""

SOURCE = r"""
#include <sys/types.h>
#include <sys/event.h>
#include <sys/time.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <unistd.h>

#define S2_MAXBATCH 1024

int s2_kqueue_create(void)
{
    int kq = kqueue();
    if (kq < 0) return -errno;
    fcntl(kq, F_SETFD, FD_CLOEXEC);
    return kq;
}

static void s2_set_arm(struct kevent *ch, int arm)
{
    int fd = arm >> 1;
    EV_SET(ch, fd, (arm & 1) ? EVFILT_WRITE : EVFILT_READ,
           EV_ADD | EV_ONESHOT, 0, 0, (void *)(intptr_t)fd);
}

int s2_kqueue_wait(int kq, const int *arms, int narms, int *tokens,
                   int *errs, int maxevents, double timeout)
{
    struct kevent ch[128], ev[S2_MAXBATCH];
    struct timespec ts, *tsp = NULL;
    int n, i, a = 0;
    if (maxevents > S2_MAXBATCH) maxevents = S2_MAXBATCH;
    /* arms[] holds fd << 1 | write for each thread about to park: a
       one-shot filter, which fires at once if the socket is ready already,
       so no edge can be missed.  They are applied in slices of 128, the
       last together with the wait (one system call in the common case). */
    for (;;) {
        int k = 0;
        while (a < narms && k < 128)
            s2_set_arm(&ch[k++], arms[a++]);
        if (a >= narms) {
            if (timeout >= 0) {
                /* A far deadline is reached by waiting again; time_t and
                   tv_nsec must not overflow. */
                if (!(timeout <= 2000000.0)) timeout = 2000000.0;
                ts.tv_sec = (time_t)timeout;
                ts.tv_nsec = (long)((timeout - (double)ts.tv_sec) * 1e9);
                tsp = &ts;
            }
            n = kevent(kq, ch, k, ev, maxevents, tsp);
            break;
        }
        ts.tv_sec = 0; ts.tv_nsec = 0;
        if (kevent(kq, ch, k, NULL, 0, &ts) < 0) return -errno;
    }
    if (n < 0) return -errno;
    for (i = 0; i < n; i++) {
        int fd = (int)ev[i].ident, t = fd << 3;
        /* A socket error travels in fflags with EV_EOF; libkqueue reads
           SO_ERROR to get it, which clears it in the kernel, so it must be
           handed on from here.  EV_ERROR is about the change (the arming),
           not the socket, and its data is no socket error: libkqueue can
           report a stale errno there when two threads arm and fire the
           same one-shot at once. */
        errs[i] = (!(ev[i].flags & EV_ERROR) && (ev[i].flags & EV_EOF))
                ? (int)ev[i].fflags : 0;
        if (ev[i].flags & EV_ERROR) {
            /* The arming failed: wake both ways; the retried system call
               says whether to wait (and arm) again. */
            t |= 1 | 2;
        } else if (ev[i].filter == EVFILT_READ) {
            t |= 1;
            if (ev[i].flags & EV_EOF) t |= 4;
        } else if (ev[i].filter == EVFILT_WRITE) {
            t |= 2;
            if (ev[i].flags & EV_EOF) t |= 4 | 1;
        } else {                         /* EVFILT_USER: the wakeup */
            t |= 1;
        }
        tokens[i] = t;
    }
    return n;
}

/* Apply arms without taking any event (a follower on a shared kqueue must
   not consume the leader's events).  An arming that fails becomes a token
   that wakes both directions of its fd in tokens[]; returns their count. */
int s2_kqueue_arm(int kq, const int *arms, int narms, int *tokens)
{
    struct kevent ch[128];
    struct timespec ts = {0, 0};
    int a = 0, nfail = 0, i, k;
    while (a < narms) {
        k = narms - a < 128 ? narms - a : 128;
        for (i = 0; i < k; i++) s2_set_arm(&ch[i], arms[a + i]);
        if (kevent(kq, ch, k, NULL, 0, &ts) < 0) {
            /* Processing stops at the failing change: redo one by one. */
            for (i = 0; i < k; i++)
                if (kevent(kq, &ch[i], 1, NULL, 0, &ts) < 0)
                    tokens[nfail++] = (arms[a + i] >> 1) << 3 | 1 | 2;
        }
        a += k;
    }
    return nfail;
}

int s2_kqueue_del(int kq, int fd)
{
    struct kevent ch[2];
    struct timespec ts = {0, 0};
    /* The write one-shot may or may not be armed: delete separately. */
    EV_SET(&ch[0], fd, EVFILT_READ, EV_DELETE, 0, 0, NULL);
    EV_SET(&ch[1], fd, EVFILT_WRITE, EV_DELETE, 0, 0, NULL);
    kevent(kq, &ch[1], 1, NULL, 0, &ts);
    return kevent(kq, ch, 1, NULL, 0, &ts) < 0 ? -errno : 0;
}

int s2_kqueue_user_add(int kq, int ident)
{
    struct kevent ch;
    struct timespec ts = {0, 0};
    EV_SET(&ch, ident, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
    return kevent(kq, &ch, 1, NULL, 0, &ts) < 0 ? -errno : 0;
}

int s2_kqueue_user_trigger(int kq, int ident)
{
    struct kevent ch;
    struct timespec ts = {0, 0};
    EV_SET(&ch, ident, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
    return kevent(kq, &ch, 1, NULL, 0, &ts) < 0 ? -errno : 0;
}

int s2_kqueue_user_del(int kq, int ident)
{
    struct kevent ch;
    struct timespec ts = {0, 0};
    EV_SET(&ch, ident, EVFILT_USER, EV_DELETE, 0, 0, NULL);
    return kevent(kq, &ch, 1, NULL, 0, &ts) < 0 ? -errno : 0;
}
"""


def _libkqueue():
    """pkg-config's flags for libkqueue, or None where it is not installed."""
    try:
        out = subprocess.run(["pkg-config", "--cflags", "--libs", "libkqueue"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    flags = shlex.split(out.stdout)
    return {
        "include_dirs": [f[2:] for f in flags if f.startswith("-I")],
        "library_dirs": [f[2:] for f in flags if f.startswith("-L")],
        "libraries": [f[2:] for f in flags if f.startswith("-l")],
    }


def available():
    """Whether this system can build the kqueue module."""
    native = sys.platform == "darwin" or "bsd" in sys.platform or \
        sys.platform.startswith("dragonfly")
    return native or (sys.platform.startswith("linux") and _libkqueue() is not None)


def _build_args():
    if sys.platform.startswith("linux"):
        kw = _libkqueue() or {}
        # libkqueue usually lives outside the loader's default path.
        kw["runtime_library_dirs"] = list(kw.get("library_dirs", []))
        kw.setdefault("libraries", []).append("m")
        return kw
    return {}


ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source("socket2._kqueue_ffi", SOURCE, **_build_args())

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
