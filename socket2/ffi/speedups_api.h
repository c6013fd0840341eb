/* What socket2._speedups (speedups.c) offers other C extensions of
 * socket2, as a capsule "socket2._speedups._C_API": the types and field
 * offsets of its socket records and the hub's wait, so that
 * tls_speedups.c reads a socket's descriptor, slot record and hub core and
 * parks a greenlet without an attribute lookup or a Python call.
 *
 * Bump S2_SPEEDUPS_API_VERSION when this layout changes: a user of the
 * capsule checks it and falls back to Python attribute access when it
 * differs (never a crash on a mismatch).
 */
#ifndef S2_SPEEDUPS_API_H
#define S2_SPEEDUPS_API_H

#include <Python.h>

#define S2_SPEEDUPS_API_VERSION 3
#define S2_SPEEDUPS_API_CAPSULE "socket2._speedups._C_API"

typedef struct {
    int version;                    /* S2_SPEEDUPS_API_VERSION */
    PyTypeObject *socket_type;      /* SocketBase (and its subclasses) */
    PyTypeObject *waiters_type;     /* Waiters (exact: the edge rule holds) */
    PyTypeObject *core_type;        /* HubCore */
    Py_ssize_t sock_fd;             /* SocketBase: int fd (-1: closed) */
    Py_ssize_t sock_w;              /* SocketBase: PyObject *w (Waiters) */
    Py_ssize_t sock_core;           /* SocketBase: PyObject *core (HubCore) */
    Py_ssize_t waiters_rready;      /* Waiters: char rready; char hup next */
    /* SocketBase: int busy, the OpenSSL calls under way on fd (a close
       meanwhile keeps the number taken: int held, -1 or the fd whose
       close waits for busy to drop to 0, which the socket's Python
       _close_held() does; see sockets.py _release) */
    Py_ssize_t sock_busy;
    Py_ssize_t sock_held;
    /* Park the current greenlet on w (a Waiters or subclass) of core (a
       HubCore) until readable (write=0) or writable, as
       HubCore.wait_readable/wait_writable(w, deadline, fd) do: 0, or -1
       with an exception set. */
    int (*wait)(PyObject *core, PyObject *w, int write, PyObject *deadline,
                int fd);
    /* Waiters: int soerr, a socket error the poller took with its event
       (kqueue: the kernel no longer reports it), 0 if none */
    Py_ssize_t waiters_soerr;
} S2SpeedupsAPI;

#endif
