/* socket2._tls_speedups: TLSSocket.recv and .sendall in C, for the C TLS
 * engine (socket2/tls.py _CEngine).
 *
 * The engine reads and writes records with socket2._openssl_ffi's
 * s2_tls_read/s2_tls_write (socket2/ffi/build_openssl.py), whose addresses
 * tls.py hands to configure().  What remained in Python per round trip
 * was the frames around those calls: TLSSocket.recv, the engine's recv,
 * cffi's from_buffer and argument tuple, the same again for sendall.  This
 * module makes the plain calls -- recv(buf[, maxlen]) and
 * sendall(buf[, maxlen]) with no timeout -- one C call each, and hands
 * everything else to the Python code of the same object, which is the
 * reference this file follows (tls.py: _CEngine.recv/_read_wait,
 * _CEngine.sendall/_sendall_rest):
 *
 * - a wait ("want read"/"want write") is the engine's own wait(), so the
 *   rules about which slot a thread parks in and closed sockets stay in
 *   one place;
 * - a failure is raised as the engine's _failed() builds it;
 * - a write OpenSSL did not finish (a committed record) is finished by
 *   _CEngine._sendall_rest.
 *
 * Nothing here links OpenSSL or is OS-specific.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include "speedups_api.h"

typedef long (*s2_tls_fn)(void *ssl, char *buf, long n, int *err);
typedef long (*s2_tls_read_fn)(void *ssl, char *buf, long n, int *err,
                               char *ready);

static s2_tls_read_fn tls_read;        /* set by configure() */
static s2_tls_fn tls_write;
/* socket2._speedups's socket records and hub wait (speedups_api.h): the
   socket under TLS is read and parked on without attribute lookups, and
   s2_tls_read's read BIO takes the plain sockets' short-read shortcut
   through its Waiters' rready/hup (build_openssl.py, s2_rbio).  NULL (an
   older or missing _speedups): attribute lookups and the hub's Python
   wait, and every read of the BIO a system call. */
static S2SpeedupsAPI *api;
/* _ssl._SSLSocket (configure()): the only owner _set_ssl takes, and the
   SSL * it owns is its field 3, the layout s2_tls_adopt proves before
   the C engine adopts any object. */
static PyTypeObject *sslsocket_type;
static long want_read = -1, want_write = -2;
static Py_ssize_t write_chunk = 256 * 1024;

static PyObject *str_recv_py, *str_sendall_py, *str_sendall_rest,
                *str_read_wait, *str_wpending, *str_fd, *str_hub, *str_w,
                *str_wait_readable, *str_eof;

#define EMPTY(o) ((o) == NULL || (o) == Py_None)

typedef struct {
    PyObject_HEAD
    PyObject *sock;      /* _sock: the TCP socket under TLS */
    PyObject *io;        /* _io: the engine, or None once closed */
    PyObject *rb;        /* _rb: read-ahead of read()/readline(), or None */
    PyObject *timeout;   /* timeout: the default of every wait */
    Py_ssize_t ssl;      /* _ssl: the C engine's SSL *, 0 otherwise */
    PyObject *sslobj;    /* _sslobj: the standard library's object that
                            owns that SSL *, held through every call on it
                            (Python code OpenSSL calls back may close the
                            socket meanwhile), or None */
} TLSBase;

static PyObject *
tlsbase_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    TLSBase *self = (TLSBase *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    Py_INCREF(Py_None);
    self->sock = Py_None;
    Py_INCREF(Py_None);
    self->io = Py_None;
    Py_INCREF(Py_None);
    self->rb = Py_None;
    Py_INCREF(Py_None);
    self->timeout = Py_None;
    self->ssl = 0;
    Py_INCREF(Py_None);
    self->sslobj = Py_None;
    return (PyObject *)self;
}

static int
tlsbase_traverse(TLSBase *self, visitproc visit, void *arg)
{
    Py_VISIT(self->sock);
    Py_VISIT(self->io);
    Py_VISIT(self->rb);
    Py_VISIT(self->timeout);
    Py_VISIT(self->sslobj);
    return 0;
}

static int
tlsbase_clear(TLSBase *self)
{
    self->ssl = 0;
    Py_CLEAR(self->sock);
    Py_CLEAR(self->io);
    Py_CLEAR(self->rb);
    Py_CLEAR(self->timeout);
    Py_CLEAR(self->sslobj);
    return 0;
}

static void
tlsbase_dealloc(TLSBase *self)
{
    PyObject_GC_UnTrack(self);
    tlsbase_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* self.<name>(*args, **kw): the Python code of the same object. */
static PyObject *
to_python(TLSBase *self, PyObject *name, PyObject *const *args,
          Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *meth = PyObject_GetAttr((PyObject *)self, name);
    PyObject *res;
    if (meth == NULL)
        return NULL;
    res = PyObject_Vectorcall(meth, args, nargs, kwnames);
    Py_DECREF(meth);
    return res;
}

/* The socket under TLS as socket2._speedups lays it out, or NULL. */
static inline char *
sock_base(TLSBase *self)
{
    if (api != NULL && self->sock != NULL
            && PyObject_TypeCheck(self->sock, api->socket_type))
        return (char *)self->sock;
    return NULL;
}

/* Whether the socket under TLS is still open: once closed, its number
   may be another connection's, which the SSL object would then read and
   write (the Python methods raise the closed error). */
static int
sock_open(TLSBase *self)
{
    char *b = sock_base(self);
    PyObject *fd;
    if (b != NULL)
        return *(int *)(b + api->sock_fd) >= 0;
    if (self->sock == NULL)     /* deleted: Python says what is wrong */
        return 0;
    fd = PyObject_GetAttr(self->sock, str_fd);
    long v = fd == NULL ? -1 : PyLong_AsLong(fd);
    Py_XDECREF(fd);
    if (v < 0) {
        PyErr_Clear();
        return 0;
    }
    return 1;
}

/* *n = the maxlen argument checked against the buffer's size; 0 when it
   is anything the Python code should word the error for. */
static int
take_maxlen(PyObject *maxlen, Py_ssize_t size, Py_ssize_t *n)
{
    if (maxlen == Py_None) {
        *n = size;
        return 1;
    }
    if (!PyLong_CheckExact(maxlen))
        return 0;
    *n = PyLong_AsSsize_t(maxlen);
    if (*n == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return *n >= 0 && *n <= size;
}

/* The socket under TLS pinned around an OpenSSL call on its descriptor
   (tls.py _pinned: a callback may close it, and the call goes on on the
   same number; the close keeps it taken until unpin).  b: sock_base(), or
   NULL (then nothing is pinned: the attribute-lookup fallback). */
static inline void
pin(char *b)
{
    if (b != NULL)
        (*(int *)(b + api->sock_busy))++;
}

/* 0, or -1 with an error set (the held descriptor's close failed to run) */
static int
unpin(char *b)
{
    PyObject *r;
    if (b == NULL)
        return 0;
    if (--*(int *)(b + api->sock_busy) > 0 || *(int *)(b + api->sock_held) < 0)
        return 0;
    /* closed during the call: the number is let go of now (Python) */
    r = PyObject_CallMethod((PyObject *)b, "_close_held", NULL);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* One s2_tls_read into buf, with the socket's shortcut flags when its
   Waiters is the exact compiled type (held for the call). */
static long
read_once(TLSBase *self, char *buf, long n, int *err)
{
    char *b = sock_base(self);
    PyObject *w = NULL, *owner;
    char *ready = NULL;
    long r;
    if (b != NULL && api->waiters_rready >= 0) {
        w = *(PyObject **)(b + api->sock_w);
        if (w != NULL && Py_IS_TYPE(w, api->waiters_type)) {
            Py_INCREF(w);       /* held for the call */
            ready = (char *)w + api->waiters_rready;
        } else {
            w = NULL;
        }
    }
    owner = self->sslobj;
    Py_XINCREF(owner);
    if (b != NULL)
        Py_INCREF((PyObject *)b);   /* (held: pinned) */
    pin(b);
    r = tls_read((void *)self->ssl, buf, n, err, ready);
    if (unpin(b) < 0)
        PyErr_WriteUnraisable((PyObject *)b);
    if (b != NULL)
        Py_DECREF((PyObject *)b);
    Py_XDECREF(owner);
    Py_XDECREF(w);
    return r;
}

/* Park until the socket under TLS is readable, as the engine's
   wait(0, None, reading=True) does: 0; 1 when the socket is closed (the
   engine raises that); -1 with an exception set. */
static int
wait_readable(TLSBase *self)
{
    PyObject *sock = self->sock, *fd, *res;
    char *b = sock_base(self);
    long fdv;
    if (b != NULL) {
        PyObject *w = *(PyObject **)(b + api->sock_w);
        PyObject *core = *(PyObject **)(b + api->sock_core);
        int fdi = *(int *)(b + api->sock_fd), r;
        if (fdi < 0)
            return 1;
        /* (anything but the hub's own records: the Python wait says) */
        if (w != NULL && core != NULL
                && PyObject_TypeCheck(w, api->waiters_type)
                && PyObject_TypeCheck(core, api->core_type)) {
            Py_INCREF(w);
            Py_INCREF(core);
            r = api->wait(core, w, 0, Py_None, fdi);
            Py_DECREF(core);
            Py_DECREF(w);
            return r;
        }
    }
    if (sock == NULL)           /* deleted: the engine raises */
        return 1;
    Py_INCREF(sock);
    fd = PyObject_GetAttr(sock, str_fd);
    fdv = fd == NULL ? -1 : PyLong_AsLong(fd);
    if (fdv < 0) {
        PyErr_Clear();
        Py_XDECREF(fd);
        Py_DECREF(sock);
        return 1;
    }
    res = NULL;
    {
        PyObject *hub = PyObject_GetAttr(sock, str_hub);
        PyObject *w = hub == NULL ? NULL : PyObject_GetAttr(sock, str_w);
        if (w != NULL) {
            PyObject *a[4] = {hub, w, Py_None, fd};
            res = PyObject_VectorcallMethod(
                str_wait_readable, a, 4 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                NULL);
        }
        Py_XDECREF(w);
        Py_XDECREF(hub);
    }
    Py_DECREF(fd);
    Py_DECREF(sock);
    if (res == NULL)
        return -1;
    Py_DECREF(res);
    return 0;
}

/* Whether a read's 0 may hide the socket's error: a poller that takes it
   with its event (kqueue; the kernel then reports an EOF) left it in the
   socket's Waiters (soerr), which the engine's _eof() raises unless the
   peer's close_notify came in -- as a plain recv does.  Without the
   records the engine looks itself. */
static int
eof_hides_error(TLSBase *self)
{
    char *b = sock_base(self);
    PyObject *w;
    if (b == NULL)
        return 1;
    w = *(PyObject **)(b + api->sock_w);
    if (w == NULL || !Py_IS_TYPE(w, api->waiters_type))
        return 1;
    return *(int *)((char *)w + api->waiters_soerr) != 0;
}

PyDoc_STRVAR(recv_doc,
"recv(buf, maxlen=None, timeout=None, expires=None)\n\n"
"Receive into the writable *buf* (up to *maxlen* bytes); return the\n"
"count, 0 when the peer closed (close_notify or not).");

static PyObject *
tlsbase_recv(TLSBase *self, PyObject *const *args, Py_ssize_t nargs,
             PyObject *kwnames)
{
    Py_buffer view;
    Py_ssize_t n;
    long r;
    int err = 0;
    PyObject *io, *res;
    if (kwnames != NULL || nargs < 1 || nargs > 2 || tls_read == NULL
            || self->ssl == 0 || !EMPTY(self->rb) || !EMPTY(self->timeout)
            || EMPTY(self->io) || !sock_open(self))
        return to_python(self, str_recv_py, args, nargs, kwnames);
    if (PyObject_GetBuffer(args[0], &view, PyBUF_WRITABLE) < 0) {
        PyErr_Clear();
        return to_python(self, str_recv_py, args, nargs, kwnames);
    }
    if (!take_maxlen(nargs == 2 ? args[1] : Py_None, view.len, &n)
            || n == 0 || n > LONG_MAX) {
        PyBuffer_Release(&view);
        return to_python(self, str_recv_py, args, nargs, kwnames);
    }
    r = read_once(self, (char *)view.buf, (long)n, &err);
    /* "Want read", the common wait of a server between requests: park
       here, as the engine's wait(0, None, reading=True) does (the
       socket's own wait_readable), and read again. */
    while (r == want_read && self->ssl != 0) {
        int wr = wait_readable(self);
        if (wr > 0)             /* closed: the engine raises it */
            break;
        if (wr < 0) {
            PyBuffer_Release(&view);
            return NULL;
        }
        if (self->ssl == 0) {
            /* Closed, shut down or unwrapped meanwhile: the socket is
               readable (or closed) and nothing has read it yet -- the
               Python recv reads first, or says closed.  (The engine's
               _read_wait would wait first, for an edge already taken.) */
            PyBuffer_Release(&view);
            return to_python(self, str_recv_py, args, nargs, kwnames);
        }
        r = read_once(self, (char *)view.buf, (long)n, &err);
    }
    if (r >= 0) {
        PyBuffer_Release(&view);
        if (r == 0 && !EMPTY(self->io) && eof_hides_error(self)) {
            io = self->io;
            Py_INCREF(io);
            res = PyObject_CallMethodNoArgs(io, str_eof);
            Py_DECREF(io);
            return res;
        }
        return PyLong_FromLong(r);
    }
    /* Nothing yet (or a failure, or the socket closed): the engine waits
       as OpenSSL asked and reads again, into the same buffer
       (_CEngine._read_wait), or raises. */
    io = self->io;
    if (EMPTY(io)) {            /* closed or deleted meanwhile: Python
                                   says which */
        PyBuffer_Release(&view);
        return to_python(self, str_recv_py, args, nargs, kwnames);
    }
    Py_INCREF(io);
    {
        PyObject *mv = PyMemoryView_FromBuffer(&view);
        PyObject *rr = PyLong_FromLong(r), *nn = PyLong_FromSsize_t(n);
        PyObject *ee = PyLong_FromLong(err);
        PyObject *b[8];
        res = NULL;
        if (mv != NULL && rr != NULL && nn != NULL && ee != NULL) {
            b[0] = io;
            b[1] = mv;
            b[2] = nn;
            b[3] = rr;
            b[4] = ee;
            b[5] = Py_None;
            b[6] = Py_None;
            b[7] = (PyObject *)self;
            res = PyObject_VectorcallMethod(
                str_read_wait, b, 8 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        }
        Py_XDECREF(ee);
        if (mv != NULL) {
            /* The view must not outlive this call (it points into the
               caller's buffer, released below): release it, keeping
               whatever the call raised. */
            PyObject *t, *v, *tb, *x;
            PyErr_Fetch(&t, &v, &tb);
            x = PyObject_CallMethod(mv, "release", NULL);
            if (x == NULL && t == NULL && res != NULL) {
                Py_CLEAR(res);          /* a view still exported: raise */
            } else {
                if (x == NULL)
                    PyErr_Clear();
                PyErr_Restore(t, v, tb);
            }
            Py_XDECREF(x);
            Py_DECREF(mv);
        }
        Py_XDECREF(rr);
        Py_XDECREF(nn);
    }
    Py_DECREF(io);
    PyBuffer_Release(&view);
    return res;
}

PyDoc_STRVAR(sendall_doc,
"sendall(buf, maxlen=None, timeout=None, expires=None)\n\n"
"Send all of *buf* (or its first *maxlen* bytes).  On failure the\n"
"raised ``Error`` has ``.sent``: the bytes that went out, or are\n"
"committed to go out first (a TLS record cut short by a timeout).");

static PyObject *
tlsbase_sendall(TLSBase *self, PyObject *const *args, Py_ssize_t nargs,
                PyObject *kwnames)
{
    Py_buffer view;
    Py_ssize_t n, first;
    long r;
    int err = 0;
    PyObject *io, *pending;
    if (kwnames != NULL || nargs < 1 || nargs > 2 || tls_write == NULL
            || self->ssl == 0 || !EMPTY(self->timeout) || EMPTY(self->io)
            || !sock_open(self))
        return to_python(self, str_sendall_py, args, nargs, kwnames);
    /* A record an earlier write left committed goes out first: Python. */
    pending = PyObject_GetAttr(self->io, str_wpending);
    if (pending == NULL)
        return NULL;
    Py_DECREF(pending);
    if (pending != Py_None)
        return to_python(self, str_sendall_py, args, nargs, kwnames);
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        return to_python(self, str_sendall_py, args, nargs, kwnames);
    }
    if (!take_maxlen(nargs == 2 ? args[1] : Py_None, view.len, &n)
            || n == 0 || EMPTY(self->io) || self->ssl == 0) {
        PyBuffer_Release(&view);
        return to_python(self, str_sendall_py, args, nargs, kwnames);
    }
    /* Held: Python code OpenSSL calls back may close the socket. */
    io = self->io;
    Py_INCREF(io);
    first = n < write_chunk ? n : write_chunk;
    {
        PyObject *owner = self->sslobj;     /* held: see TLSBase */
        char *b = sock_base(self);
        Py_XINCREF(owner);
        if (b != NULL)
            Py_INCREF((PyObject *)b);       /* (held: pinned) */
        pin(b);
        r = tls_write((void *)self->ssl, (char *)view.buf, (long)first,
                      &err);
        if (unpin(b) < 0)
            PyErr_WriteUnraisable((PyObject *)b);
        if (b != NULL)
            Py_DECREF((PyObject *)b);
        Py_XDECREF(owner);
    }
    PyBuffer_Release(&view);
    if (r == n) {
        Py_DECREF(io);
        return PyLong_FromSsize_t(n);
    }
    /* Part of it went out, or OpenSSL must be given the first chunk again
       (a want), or it failed: the engine goes on from where this stopped,
       _sendall_rest(buf, maxlen, first_result, errno, owner). */
    {
        PyObject *rr = PyLong_FromLong(r), *ee = PyLong_FromLong(err);
        PyObject *res = NULL, *b[6];
        if (rr != NULL && ee != NULL) {
            b[0] = io;
            b[1] = args[0];
            b[2] = nargs == 2 ? args[1] : Py_None;
            b[3] = rr;
            b[4] = ee;
            b[5] = (PyObject *)self;
            res = PyObject_VectorcallMethod(
                str_sendall_rest, b, 6 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                NULL);
        }
        Py_DECREF(io);
        Py_XDECREF(rr);
        Py_XDECREF(ee);
        return res;
    }
}

PyDoc_STRVAR(set_ssl_doc,
"_set_ssl(address, owner)\n\n"
"Set ``_ssl`` and ``_sslobj`` together (socket2/tls.py's TLSSocket\n"
"only: *address* is the SSL object *owner* owns, or 0 and None).");

static PyObject *
tlsbase_set_ssl(TLSBase *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t addr;
    PyObject *old;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError,
                        "_set_ssl() takes an address and its owner");
        return NULL;
    }
    if (!PyLong_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError,
                        "_set_ssl(): the address must be an int");
        return NULL;
    }
    addr = PyLong_AsSsize_t(args[0]);
    if (addr == -1 && PyErr_Occurred())
        return NULL;
    if ((addr == 0) != (args[1] == Py_None)) {
        PyErr_SetString(PyExc_ValueError,
                        "_set_ssl() needs an owner with an address, "
                        "and None with 0");
        return NULL;
    }
    /* Any other pointer would be driven as an SSL object: only the very
       one the standard library's object holds is taken. */
    if (addr != 0 && (sslsocket_type == NULL
            || !Py_IS_TYPE(args[1], sslsocket_type)
            || sslsocket_type->tp_basicsize < (Py_ssize_t)(5 * sizeof(void *))
            || ((void **)args[1])[3] != (void *)addr)) {
        PyErr_SetString(PyExc_ValueError,
                        "_set_ssl(): the address is not the SSL object "
                        "its owner (an _ssl._SSLSocket) holds");
        return NULL;
    }
    old = self->sslobj;
    Py_INCREF(args[1]);
    self->sslobj = args[1];
    self->ssl = addr;
    Py_XDECREF(old);
    Py_RETURN_NONE;
}

static PyMethodDef tlsbase_methods[] = {
    {"_set_ssl", (PyCFunction)(void (*)(void))tlsbase_set_ssl,
     METH_FASTCALL, set_ssl_doc},
    {"_c_recv", (PyCFunction)(void (*)(void))tlsbase_recv,
     METH_FASTCALL | METH_KEYWORDS, recv_doc},
    {"_c_sendall", (PyCFunction)(void (*)(void))tlsbase_sendall,
     METH_FASTCALL | METH_KEYWORDS, sendall_doc},
    {NULL}
};

static PyMemberDef tlsbase_members[] = {
    {"_sock", T_OBJECT, offsetof(TLSBase, sock), 0, NULL},
    {"_io", T_OBJECT, offsetof(TLSBase, io), 0, NULL},
    {"_rb", T_OBJECT, offsetof(TLSBase, rb), 0, NULL},
    {"timeout", T_OBJECT, offsetof(TLSBase, timeout), 0,
     "the default timeout of this socket's waits (seconds), or None"},
    /* read-only: set together by _set_ssl (a replaced owner would let the
       SSL object be freed mid-call, a replaced address is any pointer) */
    {"_ssl", T_PYSSIZET, offsetof(TLSBase, ssl), READONLY,
     "The C engine's SSL object's address, or 0."},
    {"_sslobj", T_OBJECT, offsetof(TLSBase, sslobj), READONLY,
     "The object that owns ``_ssl``, or None."},
    {NULL}
};

static PyTypeObject TLSBaseType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "socket2._tls_speedups.TLSBase",
    .tp_basicsize = sizeof(TLSBase),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The fields a TLSSocket keeps in C, and its compiled recv "
              "and sendall (see socket2/tls.py).",
    .tp_new = tlsbase_new,
    .tp_traverse = (traverseproc)tlsbase_traverse,
    .tp_clear = (inquiry)tlsbase_clear,
    .tp_dealloc = (destructor)tlsbase_dealloc,
    .tp_methods = tlsbase_methods,
    .tp_members = tlsbase_members,
};

PyDoc_STRVAR(configure_doc,
"configure(read_addr, write_addr, want_read, want_write, chunk,\n"
"          sslsocket_type)\n\n"
"Hand over socket2._openssl_ffi's s2_tls_read and s2_tls_write (their\n"
"addresses), the codes they return for a want, the most one write\n"
"takes, and _ssl._SSLSocket (the owners _set_ssl takes).");

static PyObject *
configure(PyObject *mod, PyObject *args)
{
    Py_ssize_t r, w, chunk;
    long wr, ww;
    PyObject *st = NULL;
    if (!PyArg_ParseTuple(args, "nnlln|O!", &r, &w, &wr, &ww, &chunk,
                          &PyType_Type, &st))
        return NULL;
    if (st != NULL) {
        Py_INCREF(st);
        Py_XSETREF(sslsocket_type, (PyTypeObject *)st);
    }
    if (chunk <= 0) {
        PyErr_SetString(PyExc_ValueError, "chunk must be positive");
        return NULL;
    }
    tls_read = (s2_tls_read_fn)r;
    tls_write = (s2_tls_fn)w;
    want_read = wr;
    want_write = ww;
    write_chunk = chunk;
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"configure", configure, METH_VARARGS, configure_doc},
    {NULL}
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "socket2._tls_speedups",
    "TLSSocket.recv and .sendall in C for the C TLS engine "
    "(socket2/ffi/tls_speedups.c).", -1, module_methods,
};

PyMODINIT_FUNC
PyInit__tls_speedups(void)
{
    PyObject *m;
    if (!(str_recv_py = PyUnicode_InternFromString("_recv_py"))
            || !(str_sendall_py = PyUnicode_InternFromString("_sendall_py"))
            || !(str_sendall_rest = PyUnicode_InternFromString("_sendall_rest"))
            || !(str_read_wait = PyUnicode_InternFromString("_read_wait"))
            || !(str_wpending = PyUnicode_InternFromString("wpending"))
            || !(str_fd = PyUnicode_InternFromString("_fd"))
            || !(str_hub = PyUnicode_InternFromString("_hub"))
            || !(str_w = PyUnicode_InternFromString("_w"))
            || !(str_wait_readable = PyUnicode_InternFromString("wait_readable"))
            || !(str_eof = PyUnicode_InternFromString("_eof")))
        return NULL;
    if (PyType_Ready(&TLSBaseType) < 0)
        return NULL;
    /* socket2._speedups's records (speedups_api.h): without them, or with
       another layout version, the attribute lookups serve. */
    api = (S2SpeedupsAPI *)PyCapsule_Import(S2_SPEEDUPS_API_CAPSULE, 0);
    if (api == NULL)
        PyErr_Clear();
    else if (api->version != S2_SPEEDUPS_API_VERSION)
        api = NULL;
    m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    Py_INCREF(&TLSBaseType);
    if (PyModule_AddObject(m, "TLSBase", (PyObject *)&TLSBaseType) < 0) {
        Py_DECREF(&TLSBaseType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
