/* socket2._speedups: the hot path in C.
 *
 * What a round trip of a socket2 server spends outside the kernel is the
 * hub's dispatch (look up the fd's slot record, switch into the greenlet
 * parked there), a greenlet's wait (park in the slot, switch to the hub)
 * and the socket entry points (recv into the caller's buffer, sendall of
 * it).  This module does exactly those in C, with the Python C API and
 * greenlet's C API; everything else stays in Python.
 *
 * socket2/_hotpath.py is the reference: it holds the same four things in
 * Python (Waiters, HubCore, SocketBase and the socket methods in
 * sockets.py) and chooses between the two (SOCKET2_PURE_PYTHON=1 selects
 * Python).  Whatever this file does not handle quickly, it hands to the
 * Python code of the same object (_recv_py, _sendall_rest, _fail, _eof,
 * the hub's deadline wait), so every error message and every rare path
 * has one home.
 *
 * Nothing here is OS-specific: the system calls are the socket layer's own
 * cffi functions (s2_recv, s2_send in socket2/ffi/build_socket.py), whose
 * addresses sockets.py hands to configure() together with the constants
 * they return.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include "speedups_api.h"
#include "greenlet.h"
#include <string.h>
#include <limits.h>

typedef long (*s2_io_fn)(int fd, char *buf, long len);

static s2_io_fn io_recv, io_send;      /* set by configure() */
static long neg_eagain = 0, neg_ewouldblock = 0;
static int stream_type = -1;           /* SOCK_STREAM */
static PyObject *error_class;          /* socket2.errors.Error */
static PyObject *os_error_fn;          /* socket2.errors.os_error */

static PyObject *str_finalize_open;
static PyObject *str_recv_py, *str_sendall_py, *str_sendall_rest, *str_fail, *str_eof,
                *str_recv, *str_append, *str_throw;

#define EMPTY(o) ((o) == NULL || (o) == Py_None)
/* The exact type first: PyObject_TypeCheck's subtype walk only for
   subclasses (the IOCP and try-first slot records). */
#define IS_A(o, t) (Py_IS_TYPE((o), (t)) || PyObject_TypeCheck((o), (t)))

/* -- Waiters: the reader/writer slots of one registered fd ---------------- */

typedef struct {
    PyObject_HEAD
    PyObject *rg;       /* greenlet parked to read, or None */
    PyObject *wg;       /* greenlet parked to write, or None */
    char rready;        /* the fd may have data: recv tries first */
    char hup;           /* no short read is trusted any more: sticky */
    int soerr;          /* a socket error the backend saw (kqueue) */
} Waiters;

static PyTypeObject WaitersType;

static PyObject *
waiters_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    Waiters *w = (Waiters *)type->tp_alloc(type, 0);
    if (w == NULL)
        return NULL;
    Py_INCREF(Py_None);
    w->rg = Py_None;
    Py_INCREF(Py_None);
    w->wg = Py_None;
    w->rready = 1;
    return (PyObject *)w;
}

static int
waiters_traverse(Waiters *w, visitproc visit, void *arg)
{
    Py_VISIT(w->rg);
    Py_VISIT(w->wg);
    return 0;
}

static int
waiters_clear(Waiters *w)
{
    Py_CLEAR(w->rg);
    Py_CLEAR(w->wg);
    return 0;
}

static void
waiters_dealloc(Waiters *w)
{
    PyObject_GC_UnTrack(w);
    waiters_clear(w);
    Py_TYPE(w)->tp_free((PyObject *)w);
}

static PyObject *
waiters_get_rready(Waiters *w, void *closure)
{
    return PyBool_FromLong(w->rready);
}

static int
waiters_set_rready(Waiters *w, PyObject *v, void *closure)
{
    int t = v == NULL ? 0 : PyObject_IsTrue(v);
    if (t < 0)
        return -1;
    w->rready = (char)t;
    return 0;
}

static PyObject *
waiters_get_hup(Waiters *w, void *closure)
{
    return PyBool_FromLong(w->hup);
}

static int
waiters_set_hup(Waiters *w, PyObject *v, void *closure)
{
    int t = v == NULL ? 0 : PyObject_IsTrue(v);
    if (t < 0)
        return -1;
    w->hup = (char)t;
    return 0;
}

static PyMemberDef waiters_members[] = {
    {"rg", T_OBJECT, offsetof(Waiters, rg), 0, "the parked reader"},
    {"wg", T_OBJECT, offsetof(Waiters, wg), 0, "the parked writer"},
    {"soerr", T_INT, offsetof(Waiters, soerr), 0,
     "a socket error the backend saw"},
    {NULL}
};

static PyGetSetDef waiters_getset[] = {
    {"rready", (getter)waiters_get_rready, (setter)waiters_set_rready,
     "the fd may have data to read", NULL},
    {"hup", (getter)waiters_get_hup, (setter)waiters_set_hup,
     "no short read is trusted any more (a hang-up, an error, urgent "
     "data): sticky", NULL},
    {NULL}
};

static PyTypeObject WaitersType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "socket2._speedups.Waiters",
    .tp_basicsize = sizeof(Waiters),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The reader and writer slots of one registered fd "
              "(see socket2/_hotpath.py).",
    .tp_new = waiters_new,
    .tp_traverse = (traverseproc)waiters_traverse,
    .tp_clear = (inquiry)waiters_clear,
    .tp_dealloc = (destructor)waiters_dealloc,
    .tp_members = waiters_members,
    .tp_getset = waiters_getset,
};

/* -- HubCore: what the hub's hot path needs of the hub -------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *greenlet;       /* the hub greenlet */
    PyObject *arm;            /* backend's arm(fd, write), or None */
    PyObject *deadline_wait;  /* hub._wait_with_deadline(g, deadline) */
    Py_ssize_t nio;           /* greenlets parked on a socket */
    char activity;            /* a greenlet ran (poll() reports it) */
    int *batch;               /* dispatch's copy of the tokens */
    Py_ssize_t batch_room;
    /* The batch under way (bactive while the hub runs dispatch): its count,
       the cursor (bpos: the next token; bw: the slot record whose writer's
       half of batch[bpos] is still due, or NULL), what dispatch was given
       and the OS thread running it.  The greenlets of that thread that
       park meanwhile take the next events themselves (see hand_off). */
    Py_ssize_t bn, bpos;
    Waiters *bw;
    PyObject *bfdmap, *bforward;
    PyThreadState *btstate;
    char bactive;
    /* register/unregister (configure_fds): the hub, its fd -> Waiters
       map, every hub's fd -> hub map, the backend's slot record class,
       register(fd, w) and unregister(fd, closing), and whether a close
       drops the kernel registration by itself. */
    PyObject *hub, *fdmap, *owners, *waiters_cls, *preg, *punreg, *poller;
    char close_drops;
    /* start_when_readable (configure_threads): hub.Thread, the default
       on_cancel, the backend's prime_read or None */
    PyObject *thread_type, *close_unstarted, *prime_read;
} HubCore;

static PyTypeObject HubCoreType;

static int
hubcore_init(HubCore *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"greenlet", "arm", "deadline_wait", NULL};
    PyObject *g, *arm, *dw;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO:HubCore", kwlist,
                                     &g, &arm, &dw))
        return -1;
    if (!PyGreenlet_Check(g)) {
        PyErr_SetString(PyExc_TypeError, "HubCore needs the hub's greenlet");
        return -1;
    }
    Py_INCREF(g);
    Py_XSETREF(self->greenlet, g);
    Py_INCREF(arm);
    Py_XSETREF(self->arm, arm);
    Py_INCREF(dw);
    Py_XSETREF(self->deadline_wait, dw);
    return 0;
}

static int
hubcore_traverse(HubCore *self, visitproc visit, void *arg)
{
    Py_VISIT(self->greenlet);
    Py_VISIT(self->arm);
    Py_VISIT(self->deadline_wait);
    Py_VISIT(self->bw);
    Py_VISIT(self->bfdmap);
    Py_VISIT(self->bforward);
    Py_VISIT(self->hub);
    Py_VISIT(self->fdmap);
    Py_VISIT(self->owners);
    Py_VISIT(self->waiters_cls);
    Py_VISIT(self->preg);
    Py_VISIT(self->punreg);
    Py_VISIT(self->poller);
    Py_VISIT(self->thread_type);
    Py_VISIT(self->close_unstarted);
    Py_VISIT(self->prime_read);
    return 0;
}

static int
hubcore_clear(HubCore *self)
{
    Py_CLEAR(self->greenlet);
    Py_CLEAR(self->arm);
    Py_CLEAR(self->deadline_wait);
    Py_CLEAR(self->bw);
    Py_CLEAR(self->bfdmap);
    Py_CLEAR(self->bforward);
    Py_CLEAR(self->hub);
    Py_CLEAR(self->fdmap);
    Py_CLEAR(self->owners);
    Py_CLEAR(self->waiters_cls);
    Py_CLEAR(self->preg);
    Py_CLEAR(self->punreg);
    Py_CLEAR(self->poller);
    Py_CLEAR(self->thread_type);
    Py_CLEAR(self->close_unstarted);
    Py_CLEAR(self->prime_read);
    return 0;
}

static void
hubcore_dealloc(HubCore *self)
{
    PyObject_GC_UnTrack(self);
    hubcore_clear(self);
    PyMem_Free(self->batch);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
raise_error(const char *err, const char *msg)
{
    PyObject *e;
    if (error_class == NULL) {
        /* (configure() is the socket layer's, which a completion backend
           does not call: the hub's core raises socket2's Error anyway) */
        PyObject *mod = PyImport_ImportModule("socket2.errors");
        if (mod == NULL)
            return -1;
        error_class = PyObject_GetAttrString(mod, "Error");
        Py_DECREF(mod);
        if (error_class == NULL)
            return -1;
    }
    e = PyObject_CallFunction(error_class, "ss", err, msg);
    if (e != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(e), e);
        Py_DECREF(e);
    }
    return -1;
}

static PyObject *hand_off(HubCore *core, PyObject *g);

/* Park the current greenlet in w's reader (write=0) or writer slot until
   the hub switches back: the readiness event, a close or a kill (raised
   here), or -- with a deadline -- TimeoutError.  A reader's wait ends with
   rready set, however it ended: the edge it took may have brought more
   than its caller reads (see Waiters in _hotpath.py).  0 or -1 with an
   exception set. */
static int
core_wait(HubCore *core, Waiters *w, int write, PyObject *deadline, int fd)
{
    PyObject **slot = write ? &w->wg : &w->rg;
    PyObject *g, *r, *old;
    if (core->greenlet == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "HubCore is not initialised");
        return -1;
    }
    if (!EMPTY(*slot))
        return raise_error("busy", write
            ? "another thread is already sending on this socket"
            : "another thread is already receiving on this socket");
    g = (PyObject *)PyGreenlet_GetCurrent();
    if (g == NULL)
        return -1;
    if (g == core->greenlet) {
        Py_DECREF(g);
        return raise_error("hub",
                           "cannot wait inside the hub's own greenlet");
    }
    if (!EMPTY(core->arm)) {
        r = PyObject_CallFunction(core->arm, "ii", fd, write);
        if (r == NULL) {
            Py_DECREF(g);
            return -1;
        }
        Py_DECREF(r);
    }
    old = *slot;
    *slot = g;                 /* the slot takes our reference to g */
    Py_XDECREF(old);
    core->nio++;
    if (!EMPTY(deadline))
        r = PyObject_CallFunctionObjArgs(core->deadline_wait, g, deadline,
                                         NULL);
    else if (core->bactive && core->btstate == PyThreadState_Get())
        r = hand_off(core, g);
    else
        r = PyGreenlet_Switch((PyGreenlet *)core->greenlet, NULL, NULL);
    core->nio--;
    old = *slot;
    Py_INCREF(Py_None);
    *slot = Py_None;
    if (!write)
        w->rready = 1;
    Py_XDECREF(old);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

static PyObject *
hubcore_wait(HubCore *self, PyObject *const *args, Py_ssize_t nargs,
             int write)
{
    int fd = -1;
    if (nargs < 2 || nargs > 3) {
        PyErr_Format(PyExc_TypeError, "%s(w, deadline, fd=-1) takes 2 or 3 "
                     "arguments (%zd given)",
                     write ? "wait_writable" : "wait_readable", nargs);
        return NULL;
    }
    if (!IS_A(args[0], &WaitersType)) {
        PyErr_Format(PyExc_TypeError, "expected the hub's slot record, not %s",
                     Py_TYPE(args[0])->tp_name);
        return NULL;
    }
    if (nargs == 3) {
        long v = PyLong_AsLong(args[2]);
        if (v == -1 && PyErr_Occurred())
            return NULL;
        fd = (int)v;
    }
    if (core_wait(self, (Waiters *)args[0], write, args[1], fd) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
hubcore_wait_readable(HubCore *self, PyObject *const *args, Py_ssize_t n)
{
    return hubcore_wait(self, args, n, 0);
}

static PyObject *
hubcore_wait_writable(HubCore *self, PyObject *const *args, Py_ssize_t n)
{
    return hubcore_wait(self, args, n, 1);
}

/* Whether a thread parking in the batch may switch to g itself: only if g
   is running (parked).  A greenlet that never ran starts on the stack of
   whoever switches to it, and greenlet copies that much more at every
   switch of its life: the hub starts it, from its own short stack. */
static int
may_hand_to(PyObject *g)
{
    return PyGreenlet_ACTIVE((PyGreenlet *)g) == 1;
}

/* The greenlet to resume for the batch's next event (a new reference,
   read from its slot now), the cursor moved past that event; NULL when the
   batch is done, or NULL with an exception set (forward() failed; the
   cursor is past its token).  Remembers read edges nobody waited for and
   hands the tokens of fds this hub does not own to forward().  Both the
   hub's dispatch and the greenlets that park during it (hand_off, with
   *handing* set) take the events from here, so each is delivered once, in
   order.  With *handing*, an event whose waiter a thread must not switch
   to itself (may_hand_to) is left where it is, for the hub: the hub
   greenlet is returned. */
static PyObject *
next_target(HubCore *core, int handing)
{
    Waiters *w = core->bw;
    PyObject *g;
    Py_ssize_t i;
    if (w != NULL) {
        /* The writer's half of a token whose reader was resumed.  The slot
           is read now: that reader may have closed the socket, which
           already woke the writer. */
        g = w->wg;
        if (!EMPTY(g) && handing && !may_hand_to(g)) {
            PyErr_Clear();
            Py_INCREF(core->greenlet);
            return core->greenlet;
        }
        core->bw = NULL;
        core->bpos++;
        if (!EMPTY(g)) {
            Py_INCREF(g);
            Py_DECREF(w);
            core->activity = 1;
            return g;
        }
        Py_DECREF(w);
    }
    i = core->bpos;
    while (i < core->bn) {
        int t = core->batch[i];
        PyObject *key, *o;
        key = PyLong_FromLong(t >> 3);
        if (key == NULL) {
            core->bpos = i + 1;
            return NULL;
        }
        o = PyDict_GetItemWithError(core->bfdmap, key);
        Py_DECREF(key);
        if (o == NULL) {
            PyObject *tok, *r;
            /* Past it first: a forward that raises does not repeat it. */
            core->bpos = i + 1;
            if (PyErr_Occurred())
                return NULL;
            tok = PyLong_FromLong(t);
            if (tok == NULL)
                return NULL;
            r = PyObject_CallOneArg(core->bforward, tok);
            Py_DECREF(tok);
            if (r == NULL)
                return NULL;
            Py_DECREF(r);
            i = core->bpos;
            continue;
        }
        if (!IS_A(o, &WaitersType)) {
            core->bpos = i + 1;
            PyErr_Format(PyExc_TypeError, "dispatch: fd %d maps to %s, not "
                         "a slot record", t >> 3, Py_TYPE(o)->tp_name);
            return NULL;
        }
        w = (Waiters *)o;
        if (t & 1) {
            if (t & 4)
                w->hup = w->rready = 1;
            g = w->rg;
            if (!EMPTY(g)) {
                if (handing && !may_hand_to(g)) {
                    PyErr_Clear();
                    core->bpos = i;
                    Py_INCREF(core->greenlet);
                    return core->greenlet;
                }
                if (t & 2) {
                    /* The writer's half stays due; the record is kept (the
                       fd may be unregistered meanwhile). */
                    core->bpos = i;
                    Py_INCREF(w);
                    core->bw = w;
                }
                else
                    core->bpos = i + 1;
                Py_INCREF(g);
                core->activity = 1;
                return g;
            }
            w->rready = 1;      /* nobody waits: remember the edge */
        }
        i++;
        if (t & 2) {
            g = w->wg;
            if (!EMPTY(g)) {
                if (handing && !may_hand_to(g)) {
                    /* the writer's half is next, for the hub */
                    PyErr_Clear();
                    core->bpos = i - 1;
                    Py_INCREF(w);
                    core->bw = w;
                    Py_INCREF(core->greenlet);
                    return core->greenlet;
                }
                core->bpos = i;
                Py_INCREF(g);
                core->activity = 1;
                return g;
            }
        }
    }
    core->bpos = i;
    return NULL;
}

/* The current greenlet g, of the hub's OS thread, has parked (it is in its
   slot) while a batch is under way: instead of switching to the hub, which
   would only take the next event and switch to its waiter, do that here --
   one switch per event instead of two.  To the hub when the batch is done
   or the next waiter has not started yet (see may_hand_to).  (A greenlet
   of another OS thread waiting on this hub's socket switches to the hub,
   which refuses it.)  What would
   have been raised in the hub's dispatch (forward() failing) is raised
   there, and g stays parked.  Returns what the switch that resumed g
   returned (NULL: an exception raised into g). */
static PyObject *
hand_off(HubCore *core, PyObject *g)
{
    PyObject *next = next_target(core, 1), *r;
    if (next == NULL) {
        PyObject *type, *exc, *tb;
        if (!PyErr_Occurred())
            return PyGreenlet_Switch((PyGreenlet *)core->greenlet, NULL,
                                     NULL);
        PyErr_Fetch(&type, &exc, &tb);
        PyErr_NormalizeException(&type, &exc, &tb);
        if (tb != NULL && exc != NULL)
            PyException_SetTraceback(exc, tb);
        r = exc == NULL ? NULL : PyObject_CallMethodOneArg(
            core->greenlet, str_throw, exc);
        Py_XDECREF(type);
        Py_XDECREF(exc);
        Py_XDECREF(tb);
        return r;
    }
    if (next == g) {            /* its own event: the wait is over */
        Py_DECREF(next);
        Py_RETURN_NONE;
    }
    /* next may be the hub: an event it delivers itself.  next is held
       across the switch (greenlet may look at it when it switches back
       here): a parked thread keeps the greenlet it handed over to alive
       until it resumes, as its Python twin's switch() call does. */
    r = PyGreenlet_Switch((PyGreenlet *)next, NULL, NULL);
    Py_DECREF(next);
    return r;
}

/* An exception reached the hub in the middle of a batch (a signal, a
   kill): the events not yet delivered (from the cursor on) go to
   *leftover* (the hub's forwarded queue, looked at on its next turn), so
   no edge is lost. */
static void
requeue(HubCore *core, PyObject *leftover)
{
    PyObject *exc_type, *exc, *tb, *t, *r;
    Py_ssize_t i = core->bpos;
    PyErr_Fetch(&exc_type, &exc, &tb);
    if (core->bw != NULL && i < core->bn) {
        /* the writer's half of the token whose reader was resumed */
        t = PyLong_FromLong(core->batch[i] & ~5);
        r = t ? PyObject_CallMethodObjArgs(leftover, str_append, t, NULL) : 0;
        Py_XDECREF(r);
        Py_XDECREF(t);
        i++;
    }
    for (; i < core->bn; i++) {
        t = PyLong_FromLong(core->batch[i]);
        r = t ? PyObject_CallMethodObjArgs(leftover, str_append, t, NULL) : 0;
        Py_XDECREF(r);
        Py_XDECREF(t);
    }
    PyErr_Clear();          /* a failed requeue must not hide the cause */
    PyErr_Restore(exc_type, exc, tb);
}

/* Room for n tokens in core->batch (kept between batches: one
   allocation per hub, none per batch; never on the C stack, which greenlet
   switches copy). */
static int
batch_room(HubCore *core, Py_ssize_t n)
{
    int *p;
    if (n <= core->batch_room)
        return 0;
    p = PyMem_Realloc(core->batch, (size_t)n * sizeof(int));
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    core->batch = p;
    core->batch_room = n;
    return 0;
}

/* The batch as C ints in core->batch: from the poller's own int buffer (a
   memoryview of format 'i', what the epoll backend returns, so no int
   object is made per event) or from a list or tuple of ints (the other
   backends, forwarded events).  Returns the count, or -1 with an
   exception set. */
static Py_ssize_t
take_tokens(HubCore *core, PyObject *obj)
{
    Py_ssize_t i, n;
    if (PyObject_CheckBuffer(obj)) {
        Py_buffer view;
        if (PyObject_GetBuffer(obj, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
            return -1;
        if (view.itemsize != sizeof(int) || view.format == NULL
                || strcmp(view.format, "i") != 0) {
            PyBuffer_Release(&view);
            PyErr_SetString(PyExc_TypeError,
                            "dispatch: a token buffer must hold C ints");
            return -1;
        }
        n = view.len / (Py_ssize_t)sizeof(int);
        if (batch_room(core, n) < 0) {
            PyBuffer_Release(&view);
            return -1;
        }
        memcpy(core->batch, view.buf, n * sizeof(int));
        PyBuffer_Release(&view);
        return n;
    }
    {
        PyObject *seq = PySequence_Fast(obj, "dispatch: tokens must be a "
                                        "sequence of ints or an int buffer");
        if (seq == NULL)
            return -1;
        n = PySequence_Fast_GET_SIZE(seq);
        if (batch_room(core, n) < 0) {
            Py_DECREF(seq);
            return -1;
        }
        for (i = 0; i < n; i++) {
            long t = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
            if (t == -1 && PyErr_Occurred()) {
                Py_DECREF(seq);
                return -1;
            }
            core->batch[i] = (int)t;
        }
        Py_DECREF(seq);
        return n;
    }
}

PyDoc_STRVAR(dispatch_doc,
"dispatch(tokens, fdmap, forward, leftover)\n\n"
"Deliver one batch of poller tokens (fd << 3 | readable | writable << 1 |\n"
"hangup << 2; a list of ints or an int buffer): resume the reader and the\n"
"writer parked on each fd in *fdmap*, or remember a read edge nobody\n"
"waited for; ``forward(token)`` for an fd this hub does not own.  Sets\n"
"``activity`` before each switch.  The greenlets resumed take the\n"
"batch's next events themselves when they park (one switch per event);\n"
"this returns when the batch is done.  If an exception reaches the hub\n"
"meanwhile, the events not delivered yet go to *leftover*.");

/* The batch is over (done, or given up with an exception). */
static void
end_batch(HubCore *core)
{
    core->bactive = 0;
    core->btstate = NULL;
    core->bn = core->bpos = 0;
    Py_CLEAR(core->bw);
    Py_CLEAR(core->bfdmap);
    Py_CLEAR(core->bforward);
}

static PyObject *
hubcore_dispatch(HubCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *leftover, *g, *r;
    Py_ssize_t n;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError,
                        "dispatch(tokens, fdmap, forward, leftover)");
        return NULL;
    }
    leftover = args[3];
    if (!PyDict_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "dispatch: fdmap must be a dict");
        return NULL;
    }
    if (self->bactive) {
        PyErr_SetString(PyExc_RuntimeError,
                        "dispatch: a batch is already under way");
        return NULL;
    }
    /* Copied out first: nothing of the caller's is held across the
       switches below (the buffer is the poller's, refilled next poll).
       The hub runs one dispatch at a time (checked above), so the copy is
       the core's. */
    n = take_tokens(self, args[0]);
    if (n < 0)
        return NULL;
    self->bn = n;
    self->bpos = 0;
    Py_INCREF(args[1]);
    Py_XSETREF(self->bfdmap, args[1]);
    Py_INCREF(args[2]);
    Py_XSETREF(self->bforward, args[2]);
    self->btstate = PyThreadState_Get();
    self->bactive = 1;
    /* Each greenlet resumed here takes the next events itself when it
       parks (hand_off); the hub's switch returns when one switches here
       instead (the batch done, a greenlet that ended or parked elsewhere)
       and the loop goes on from the cursor. */
    for (;;) {
        g = next_target(self, 0);
        if (g == NULL) {
            if (PyErr_Occurred())
                goto fail;
            break;
        }
        r = PyGreenlet_Switch((PyGreenlet *)g, NULL, NULL);
        Py_DECREF(g);
        if (r == NULL)
            goto fail;
        Py_DECREF(r);
    }
    end_batch(self);
    Py_RETURN_NONE;
fail:
    requeue(self, leftover);
    {
        /* The records dropped here must not run with the error set. */
        PyObject *type, *exc, *tb;
        PyErr_Fetch(&type, &exc, &tb);
        end_batch(self);
        PyErr_Restore(type, exc, tb);
    }
    return NULL;
}

/* -- registration: _hotpath.HubCore.register/unregister, line for line -- */

static PyObject *waiters_new(PyTypeObject *, PyObject *, PyObject *);
static PyObject *str_native_register;

static int
fds_configured(HubCore *core)
{
    if (core->fdmap == NULL || !PyDict_Check(core->fdmap)
            || core->owners == NULL || !PyDict_Check(core->owners)) {
        PyErr_SetString(PyExc_RuntimeError, "HubCore: configure_fds() was "
                        "not called");
        return 0;
    }
    return 1;
}

/* The backend's native_register, (address of int f(int handle, int fd),
   handle), read at each call (it changes after fork): 0 when it
   registered fd; 1 when there is none or it failed (the caller then
   makes the backend's Python register(), which raises the backend's own
   error); -1 with an error set. */
typedef int (*s2_native_add_fn)(int handle, int fd);

static int
core_native_register(HubCore *core, PyObject *fdobj)
{
    PyObject *nr = PyObject_GetAttr(core->poller, str_native_register);
    unsigned long long addr;
    long handle, fd;
    int r = 1;
    if (nr == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            return -1;
        PyErr_Clear();
        return 1;
    }
    if (PyTuple_Check(nr) && PyTuple_GET_SIZE(nr) == 2
            && PyLong_Check(PyTuple_GET_ITEM(nr, 0))
            && PyLong_Check(PyTuple_GET_ITEM(nr, 1))
            && PyLong_Check(fdobj)) {
        addr = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(nr, 0));
        handle = PyLong_AsLong(PyTuple_GET_ITEM(nr, 1));
        fd = PyLong_AsLong(fdobj);
        if (PyErr_Occurred()) {
            Py_DECREF(nr);
            return -1;
        }
        if (addr != 0 && handle >= INT_MIN && handle <= INT_MAX
                && fd >= 0 && fd <= INT_MAX)
            r = ((s2_native_add_fn)(uintptr_t)addr)((int)handle, (int)fd)
                == 0 ? 0 : 1;
    }
    Py_DECREF(nr);
    return r;
}

/* register(fd): the new slot record, or NULL with the error set. */
static PyObject *
core_register(HubCore *core, PyObject *fdobj)
{
    PyObject *w, *r, *o;
    if (!fds_configured(core))
        return NULL;
    if (core->waiters_cls == (PyObject *)&WaitersType)
        w = waiters_new(&WaitersType, NULL, NULL);
    else
        w = PyObject_CallNoArgs(core->waiters_cls);
    if (w == NULL)
        return NULL;
    /* Owner first: on a shared poller the ADD can report the fd at once
       (an accepted socket with data queued) to another OS thread, which
       must then know whose it is. */
    if (PyDict_SetItem(core->fdmap, fdobj, w) < 0
            || PyDict_SetItem(core->owners, fdobj, core->hub) < 0) {
        Py_DECREF(w);
        return NULL;
    }
    if (core->poller != NULL && core_native_register(core, fdobj) == 0)
        return w;
    if (PyErr_Occurred())
        r = NULL;
    else   /* no native register, or it failed: the backend's own call */
        r = PyObject_CallFunctionObjArgs(core->preg, fdobj, w, NULL);
    if (r != NULL) {
        Py_DECREF(r);
        return w;
    }
    {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        if (PyDict_DelItem(core->fdmap, fdobj) < 0)
            PyErr_Clear();
        o = PyDict_GetItemWithError(core->owners, fdobj);
        if (o == core->hub && PyDict_DelItem(core->owners, fdobj) < 0)
            PyErr_Clear();
        PyErr_Clear();
        PyErr_Restore(type, value, tb);
    }
    Py_DECREF(w);
    return NULL;
}

/* unregister(fd, closing): 0, or -1 with the error set.  *closing* is
   looked at only for a registered fd, as in the twin. */
static int
core_unregister(HubCore *core, PyObject *fdobj, PyObject *closing_obj)
{
    int closing;
    PyObject *w, *o;
    if (!fds_configured(core))
        return -1;
    w = PyDict_GetItemWithError(core->fdmap, fdobj);
    if (w == NULL)
        return PyErr_Occurred() ? -1 : 0;
    Py_INCREF(w);            /* (popped: it may be the last reference) */
    if (PyDict_DelItem(core->fdmap, fdobj) < 0) {
        Py_DECREF(w);
        return -1;
    }
    if (w == Py_None) {      /* the twin's pop(fd, None) is None: done */
        Py_DECREF(w);
        return 0;
    }
    Py_DECREF(w);
    closing = PyObject_IsTrue(closing_obj);
    if (closing < 0)
        return -1;
    if (!(closing && core->close_drops)) {
        PyObject *r = PyObject_CallFunctionObjArgs(
            core->punreg, fdobj, closing_obj, NULL);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
    }
    o = PyDict_GetItemWithError(core->owners, fdobj);
    if (o == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (o == core->hub && PyDict_DelItem(core->owners, fdobj) < 0)
        return -1;
    return 0;
}

PyDoc_STRVAR(configure_fds_doc,
"configure_fds(hub, fdmap, owners, waiters_class, register, unregister,\n"
"              close_drops, poller=None)\n\n"
"What register()/unregister() work on (see _hotpath.HubCore).");

static PyObject *
hubcore_configure_fds(HubCore *self, PyObject *args)
{
    PyObject *hub, *fdmap, *owners, *wc, *reg, *unreg, *poller = NULL;
    int drops;
    if (!PyArg_ParseTuple(args, "OO!O!OOOp|O:configure_fds", &hub,
                          &PyDict_Type, &fdmap, &PyDict_Type, &owners, &wc,
                          &reg, &unreg, &drops, &poller))
        return NULL;
    if (poller == Py_None)
        poller = NULL;
    Py_XINCREF(poller);
    Py_XSETREF(self->poller, poller);
#define KEEP(field, v) do { Py_INCREF(v); Py_XSETREF(self->field, v); } while (0)
    KEEP(hub, hub);
    KEEP(fdmap, fdmap);
    KEEP(owners, owners);
    KEEP(waiters_cls, wc);
    KEEP(preg, reg);
    KEEP(punreg, unreg);
#undef KEEP
    self->close_drops = (char)drops;
    Py_RETURN_NONE;
}

static PyObject *
hubcore_register(HubCore *self, PyObject *fd)
{
    return core_register(self, fd);
}

/* Fast-call arguments by position and keyword into argv[0..n-1] (names
   in order; missing ones keep what argv held), as a Python signature
   ``f(name0, name1, ...)`` would take them: 0, or -1 with a TypeError. */
static int
take_args(const char *sig, const char *const *names, Py_ssize_t n,
          Py_ssize_t required, PyObject **argv, PyObject *const *args,
          Py_ssize_t nargs, PyObject *kwnames)
{
    Py_ssize_t i, j, nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    char seen[8] = {0};
    if (nargs > n || n > 8)
        goto usage;
    for (i = 0; i < nargs; i++) {
        argv[i] = args[i];
        seen[i] = 1;
    }
    for (i = 0; i < nkw; i++) {
        PyObject *k = PyTuple_GET_ITEM(kwnames, i);
        for (j = 0; j < n; j++)
            if (PyUnicode_Check(k)
                    && PyUnicode_CompareWithASCIIString(k, names[j]) == 0)
                break;
        if (j == n || seen[j])
            goto usage;
        argv[j] = args[nargs + i];
        seen[j] = 1;
    }
    for (j = 0; j < required; j++)
        if (!seen[j])
            goto usage;
    return 0;
usage:
    PyErr_Format(PyExc_TypeError, "%s: bad arguments", sig);
    return -1;
}

static PyObject *
hubcore_unregister(HubCore *self, PyObject *const *args, Py_ssize_t nargs,
                   PyObject *kwnames)
{
    static const char *const names[] = {"fd", "closing"};
    PyObject *argv[2] = {NULL, Py_False};
    if (take_args("unregister(fd, closing=False)", names, 2, 1, argv, args,
                  nargs, kwnames) < 0
            || core_unregister(self, argv[0], argv[1]) < 0)
        return NULL;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(configure_threads_doc,
"configure_threads(thread_type, close_unstarted, prime_read)\n\n"
"What start_when_readable() makes (see _hotpath.HubCore).");

static PyObject *
hubcore_configure_threads(HubCore *self, PyObject *args)
{
    PyObject *tt, *cu, *pr;
    if (!PyArg_ParseTuple(args, "OOO:configure_threads", &tt, &cu, &pr))
        return NULL;
    Py_INCREF(tt);
    Py_XSETREF(self->thread_type, tt);
    Py_INCREF(cu);
    Py_XSETREF(self->close_unstarted, cu);
    Py_INCREF(pr);
    Py_XSETREF(self->prime_read, pr);
    Py_RETURN_NONE;
}

static PyObject *hubcore_start_when_readable(HubCore *self,
    PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);

static PyMethodDef hubcore_methods[] = {
    {"configure_threads", (PyCFunction)hubcore_configure_threads,
     METH_VARARGS, configure_threads_doc},
    {"start_when_readable",
     (PyCFunction)(void (*)(void))hubcore_start_when_readable,
     METH_FASTCALL | METH_KEYWORDS,
     "start_when_readable(sock, func, args, kwargs, on_cancel=None): run "
     "func(sock, *args, **kwargs) in a new thread once sock has something "
     "to read (hub.py says how)."},
    {"configure_fds", (PyCFunction)hubcore_configure_fds, METH_VARARGS,
     configure_fds_doc},
    {"register", (PyCFunction)hubcore_register, METH_O,
     "register(fd): watch fd; return its reader/writer slots."},
    {"unregister", (PyCFunction)(void (*)(void))hubcore_unregister,
     METH_FASTCALL | METH_KEYWORDS,
     "unregister(fd, closing=False): stop watching fd; closing: it is "
     "about to be closed, which drops kernel registrations by itself."},
    {"wait_readable", (PyCFunction)(void (*)(void))hubcore_wait_readable,
     METH_FASTCALL,
     "wait_readable(w, deadline, fd=-1): park the current greenlet in w's "
     "reader slot until the fd is readable, *deadline* passes "
     "(TimeoutError) or the socket is closed (Error('closed'))."},
    {"wait_writable", (PyCFunction)(void (*)(void))hubcore_wait_writable,
     METH_FASTCALL,
     "wait_writable(w, deadline, fd=-1): like wait_readable, for the "
     "writer slot."},
    {"dispatch", (PyCFunction)(void (*)(void))hubcore_dispatch, METH_FASTCALL,
     dispatch_doc},
    {NULL}
};

static PyMemberDef hubcore_members[] = {
    {"greenlet", T_OBJECT, offsetof(HubCore, greenlet), READONLY,
     "the hub greenlet"},
    {"arm", T_OBJECT, offsetof(HubCore, arm), 0,
     "the backend's arm(fd, write), or None"},
    {"nio", T_PYSSIZET, offsetof(HubCore, nio), 0,
     "greenlets parked on a socket"},
    {"activity", T_BOOL, offsetof(HubCore, activity), 0,
     "whether a greenlet ran since the hub last cleared this"},
    {NULL}
};

static PyTypeObject HubCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "socket2._speedups.HubCore",
    .tp_basicsize = sizeof(HubCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "HubCore(greenlet, arm, deadline_wait): the hub's waits and "
              "dispatch (see socket2/_hotpath.py).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)hubcore_init,
    .tp_traverse = (traverseproc)hubcore_traverse,
    .tp_clear = (inquiry)hubcore_clear,
    .tp_dealloc = (destructor)hubcore_dealloc,
    .tp_methods = hubcore_methods,
    .tp_members = hubcore_members,
};

/* -- SocketBase: the fields the socket entry points read ------------------ */

/* An accepted peer's address, as accept() returned it, is kept when it
   fits here (IPv4, IPv6; a unix socket's path does not): what a server
   asks of every connection (WSGI's REMOTE_ADDR) without getpeername(). */
#define PEER_MAX 28

typedef struct {
    PyObject_HEAD
    int fd;
    int type;
    PyObject *w;         /* the hub's Waiters for fd */
    PyObject *hub;
    PyObject *core;      /* hub's HubCore */
    PyObject *rb;        /* read-ahead of read()/readline(), or None */
    PyObject *timeout;   /* the socket's default timeout, or None */
    /* sockets.py's other fields (here so that accept() fills them in C) */
    int family;
    int proto;
    /* OpenSSL calls under way on fd (tls.py pins it around them): a close
       meanwhile keeps the number taken, in held, until they return
       (sockets.py _release; -1: none) */
    int busy;
    int held;
    long excl;           /* fork generation it was made in, or -1 */
    char bound;
    PyObject *opts;      /* options set by setopt(), or None */
    unsigned char peerlen;
    unsigned char peer[PEER_MAX];
} SocketBase;

static PyObject *
sockbase_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    SocketBase *s = (SocketBase *)type->tp_alloc(type, 0);
    if (s != NULL) {
        s->fd = -1;         /* __del__ of a half-made socket closes nothing */
        s->held = -1;
    }
    return (PyObject *)s;
}

static int
sockbase_traverse(SocketBase *s, visitproc visit, void *arg)
{
    Py_VISIT(s->opts);
    Py_VISIT(s->w);
    Py_VISIT(s->hub);
    Py_VISIT(s->core);
    Py_VISIT(s->rb);
    Py_VISIT(s->timeout);
    return 0;
}

static int
sockbase_clear(SocketBase *s)
{
    Py_CLEAR(s->w);
    Py_CLEAR(s->hub);
    Py_CLEAR(s->core);
    Py_CLEAR(s->rb);
    Py_CLEAR(s->timeout);
    Py_CLEAR(s->opts);
    return 0;
}

/* The finalizer (``__del__``) of every socket2 socket: a closed one (the
   usual case) costs no Python call; an open one is handed to the Python
   ``_finalize_open`` (sockets.py: the ResourceWarning, and the descriptor
   released in its hub's OS thread).  Python subclasses inherit it as long
   as they define no ``__del__`` of their own (sockets.py defines none when
   compiled; the Python twin in _hotpath.py is the same test in Python). */
static void
sockbase_finalize(SocketBase *s)
{
    PyObject *type, *value, *tb, *r;

    if (s->fd < 0)
        return;
    PyErr_Fetch(&type, &value, &tb);
    r = PyObject_CallMethodNoArgs((PyObject *)s, str_finalize_open);
    if (r == NULL)
        PyErr_WriteUnraisable((PyObject *)s);
    else
        Py_DECREF(r);
    PyErr_Restore(type, value, tb);
}

static void
sockbase_dealloc(SocketBase *s)
{
    PyObject_GC_UnTrack(s);
    sockbase_clear(s);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

/* Hand the call, as made, to the Python method *name* of the socket. */
static PyObject *
to_python(SocketBase *self, PyObject *name, PyObject *const *args,
          Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *meth = PyObject_GetAttr((PyObject *)self, name), *r;
    if (meth == NULL)
        return NULL;
    r = PyObject_Vectorcall(meth, args, nargs, kwnames);
    Py_DECREF(meth);
    return r;
}

/* maxlen (None or an int in 0..size) into *n; 0 if it is anything else,
   for the Python code to explain. */
static int
take_maxlen(PyObject *maxlen, Py_ssize_t size, Py_ssize_t *n)
{
    Py_ssize_t m;
    if (maxlen == Py_None) {
        *n = size;
        return 1;
    }
    if (!PyLong_CheckExact(maxlen))
        return 0;
    m = PyLong_AsSsize_t(maxlen);
    if (m == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    if (m < 0 || m > size)
        return 0;
    *n = m;
    return 1;
}

/* Raise self._fail(r, what): the closed error or the OS error (an open
   socket's straight from os_error: a peer that resets every connection
   makes one per connection). */
static PyObject *
raise_fail(SocketBase *self, long r, PyObject *what)
{
    PyObject *e;
    if (self->fd >= 0 && os_error_fn != NULL) {
        PyObject *argv[2];
        argv[0] = PyLong_FromLong(-r);
        if (argv[0] == NULL)
            return NULL;
        argv[1] = what;
        e = PyObject_Vectorcall(os_error_fn, argv, 2, NULL);
        Py_DECREF(argv[0]);
    } else {
        e = PyObject_CallMethod((PyObject *)self, "_fail", "lO", r, what);
    }
    if (e != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(e), e);
        Py_DECREF(e);
    }
    return NULL;
}

PyDoc_STRVAR(recv_doc,
"recv(buf, maxlen=None, timeout=None, expires=None)\n\n"
"Receive into the writable *buf* (up to *maxlen* bytes); return the\n"
"count, 0 when the peer closed its side.");

static PyObject *
sockbase_recv(SocketBase *self, PyObject *const *args, Py_ssize_t nargs,
              PyObject *kwnames)
{
    Py_buffer view;
    Py_ssize_t n;
    Waiters *w;
    int try_first;
    if (kwnames != NULL || nargs < 1 || nargs > 2 || io_recv == NULL
            || !EMPTY(self->rb) || !EMPTY(self->timeout)
            || self->w == NULL || !IS_A(self->w, &WaitersType)
            || self->core == NULL
            || !IS_A(self->core, &HubCoreType))
        return to_python(self, str_recv_py, args, nargs, kwnames);
    if (PyObject_GetBuffer(args[0], &view, PyBUF_WRITABLE) < 0) {
        PyErr_Clear();
        return to_python(self, str_recv_py, args, nargs, kwnames);
    }
    if (!take_maxlen(nargs == 2 ? args[1] : Py_None, view.len, &n)) {
        PyBuffer_Release(&view);
        return to_python(self, str_recv_py, args, nargs, kwnames);
    }
    w = (Waiters *)self->w;
    Py_INCREF(w);
    /* Backends whose edges are not exact subclass the record and make
       rready always true: only the exact type is trusted to skip. */
    try_first = w->rready || !Py_IS_TYPE(w, &WaitersType);
    for (;;) {
        /* After a wait the recv is always made: the event that ended it
           resumed us without setting rready. */
        if (try_first) {
            long r = io_recv(self->fd, (char *)view.buf, (long)n);
            if (r > 0) {
                /* A short read of a stream proved its queue empty: the
                   next recv waits for the edge.  The one place besides
                   _recv_loop that clears rready (the rule: Waiters in
                   _hotpath.py); hup says a short read proves nothing. */
                w->rready = !(r < n && self->type == stream_type && !w->hup);
                PyBuffer_Release(&view);
                Py_DECREF(w);
                return PyLong_FromLong(r);
            }
            if (r == 0) {
                PyBuffer_Release(&view);
                if (w->soerr) {
                    PyObject *res = PyObject_CallMethodOneArg(
                        (PyObject *)self, str_eof, (PyObject *)w);
                    Py_DECREF(w);
                    return res;
                }
                Py_DECREF(w);
                return PyLong_FromLong(0);
            }
            if (r != neg_eagain && r != neg_ewouldblock) {
                PyBuffer_Release(&view);
                Py_DECREF(w);
                return raise_fail(self, r, str_recv);
            }
        }
        if (core_wait((HubCore *)self->core, w, 0, Py_None, self->fd) < 0) {
            PyBuffer_Release(&view);
            Py_DECREF(w);
            return NULL;
        }
        try_first = 1;
    }
}

PyDoc_STRVAR(sendall_doc,
"sendall(buf, maxlen=None, timeout=None, expires=None)\n\n"
"Send all of *buf* (or its first *maxlen* bytes).  On failure the\n"
"raised ``Error`` has ``.sent``, the count that did go out.");

static PyObject *
sockbase_sendall(SocketBase *self, PyObject *const *args, Py_ssize_t nargs,
                 PyObject *kwnames)
{
    Py_buffer view;
    Py_ssize_t n;
    long r;
    PyObject *res;
    if (kwnames != NULL || nargs < 1 || nargs > 2 || io_send == NULL)
        return to_python(self, str_sendall_py, args, nargs, kwnames);
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        return to_python(self, str_sendall_py, args, nargs, kwnames);
    }
    if (!take_maxlen(nargs == 2 ? args[1] : Py_None, view.len, &n)) {
        PyBuffer_Release(&view);
        return to_python(self, str_sendall_py, args, nargs, kwnames);
    }
    r = io_send(self->fd, (char *)view.buf, (long)n);
    PyBuffer_Release(&view);
    if (r == n)
        return PyLong_FromSsize_t(n);
    /* The kernel took part of it (or nothing, or failed): the Python code
       waits, sends the rest and reports errors, from where this stopped:
       _sendall_rest(buf, maxlen, first_result). */
    {
        PyObject *meth, *rr, *b[3];
        rr = PyLong_FromLong(r);
        if (rr == NULL)
            return NULL;
        meth = PyObject_GetAttr((PyObject *)self, str_sendall_rest);
        b[0] = args[0];
        b[1] = nargs == 2 ? args[1] : Py_None;
        b[2] = rr;
        res = meth == NULL ? NULL : PyObject_Vectorcall(meth, b, 3, NULL);
        Py_XDECREF(meth);
        Py_DECREF(rr);
    }
    return res;
}

/* -- accept, close, with ------------------------------------------------
 *
 * A server makes and ends a socket per connection; these are sockets.py's
 * TCPSocket.accept (with _setup) and _Socket.close (with _release) for
 * the plain case, in C.  Anything else (a timeout, a listener of another
 * OS thread's hub, waiters to wake, an error) is handed to the Python
 * method, kept as _accept_py / _close_py, which stays the reference. */

typedef int (*s2_accept_fn)(int fd, unsigned char *peer, int *peerlen);
typedef int (*s2_close_fn)(int fd);

static PyTypeObject SocketBaseType;
static s2_accept_fn io_accept;       /* configure_accept() */
static s2_close_fn io_close;
static PyTypeObject *accept_type;    /* sockets.TCPSocket */
static PyObject *forks_list;         /* sockets._forks: [generation] */
static long accept_retry[3];         /* ECONNABORTED, EPROTO, EINTR (< 0) */
static PyObject *str_accept_py, *str_close_py, *str_accept,
                *str_thread_ident, *str_close;

static int
fork_generation(long *gen)
{
    PyObject *g;
    if (forks_list == NULL || !PyList_Check(forks_list)
            || PyList_GET_SIZE(forks_list) < 1) {
        PyErr_SetString(PyExc_RuntimeError, "socket2: accept() is not "
                        "configured");
        return -1;
    }
    g = PyList_GET_ITEM(forks_list, 0);
    *gen = PyLong_AsLong(g);
    return (*gen == -1 && PyErr_Occurred()) ? -1 : 0;
}

/* The new connection's socket: _from_fd(fd, ...) with the listener's
   family, type, protocol and hub, registered with the hub. */
static PyObject *
accepted(SocketBase *self, int fd, const unsigned char *peer, int peerlen)
{
    SocketBase *s;
    PyObject *fdobj, *w;
    long gen;
    if (fork_generation(&gen) < 0) {
        io_close(fd);
        return NULL;
    }
    s = (SocketBase *)sockbase_new(accept_type, NULL, NULL);
    if (s == NULL) {
        io_close(fd);
        return NULL;
    }
    s->fd = fd;
    s->excl = gen;
    s->family = self->family;
    s->type = self->type;
    s->proto = self->proto;
    s->bound = 0;
    Py_INCREF(Py_None);
    Py_XSETREF(s->opts, Py_None);
    Py_INCREF(Py_None);
    Py_XSETREF(s->rb, Py_None);
    Py_INCREF(Py_None);
    Py_XSETREF(s->timeout, Py_None);
    Py_INCREF(self->hub);
    Py_XSETREF(s->hub, self->hub);
    Py_INCREF(self->core);
    Py_XSETREF(s->core, self->core);
    if (peerlen > 0 && peerlen <= PEER_MAX) {
        memcpy(s->peer, peer, (size_t)peerlen);
        s->peerlen = (unsigned char)peerlen;
    }
    fdobj = PyLong_FromLong(fd);
    w = fdobj == NULL ? NULL
        : core_register((HubCore *)self->core, fdobj);
    Py_XDECREF(fdobj);
    if (w == NULL) {
        io_close(fd);
        s->fd = -1;
        Py_DECREF(s);
        return NULL;
    }
    Py_XSETREF(s->w, w);
    return (PyObject *)s;
}

PyDoc_STRVAR(accept_doc,
"accept(timeout=None, expires=None)\n\n"
"Wait for and return the next connection (a ``TCPSocket`` that knows its\n"
"peer: ``remote_addr``, ``remote_port``).");

static PyObject *
sockbase_accept(SocketBase *self, PyObject *const *args, Py_ssize_t nargs,
                PyObject *kwnames)
{
    Waiters *w;
    if (kwnames != NULL || nargs != 0 || io_accept == NULL
            || accept_type == NULL)
        return to_python(self, str_accept_py, args, nargs, kwnames);
    for (;;) {
        unsigned char peer[PEER_MAX];
        int peerlen = PEER_MAX, fd;
        /* (checked again after every wait: other threads ran meanwhile,
           and may have changed the listener's fields) */
        if (!EMPTY(self->timeout)
                || self->w == NULL || !IS_A(self->w, &WaitersType)
                || self->core == NULL || !IS_A(self->core, &HubCoreType)
                || self->hub == NULL)
            return to_python(self, str_accept_py, args, nargs, kwnames);
        fd = io_accept(self->fd, peer, &peerlen);
        if (fd >= 0)
            return accepted(self, fd, peer, peerlen);
        if (fd == neg_eagain || fd == neg_ewouldblock) {
            int r;
            PyObject *core = self->core;
            w = (Waiters *)self->w;
            Py_INCREF(w);
            Py_INCREF(core);
            r = core_wait((HubCore *)core, w, 0, Py_None, self->fd);
            Py_DECREF(core);
            Py_DECREF(w);
            if (r < 0)
                return NULL;
        } else if (fd != accept_retry[0] && fd != accept_retry[1]
                   && fd != accept_retry[2]) {
            return raise_fail(self, fd, str_accept);
        }       /* (else the peer gave up: the next one) */
    }
}

PyDoc_STRVAR(close_doc,
"close()\n\n"
"Close the socket; idempotent.  Threads waiting on it get\n"
"``socket2.Error`` with ``err == 'closed'``.");

static PyObject *
sockbase_close(SocketBase *self, PyObject *unused)
{
    Waiters *w;
    PyObject *ident, *fdobj;
    unsigned long mine;
    long gen;
    int fd = self->fd;
    if (fd < 0)
        Py_RETURN_NONE;
    if (io_close == NULL || self->w == NULL || !IS_A(self->w, &WaitersType)
            || self->hub == NULL || self->core == NULL
            || !IS_A(self->core, &HubCoreType))
        return to_python(self, str_close_py, NULL, 0, NULL);
    w = (Waiters *)self->w;
    if (!EMPTY(w->rg) || !EMPTY(w->wg) || self->busy > 0)
        return to_python(self, str_close_py, NULL, 0, NULL); /* to wake;
                                        or OpenSSL still runs on fd */
    ident = PyObject_GetAttr(self->hub, str_thread_ident);
    if (ident == NULL)
        return NULL;
    mine = PyLong_Check(ident) ? PyLong_AsUnsignedLong(ident) : 0;
    Py_DECREF(ident);
    if (mine == (unsigned long)-1 && PyErr_Occurred())
        PyErr_Clear();
    if (mine != PyThread_get_thread_ident() || mine == 0)
        return to_python(self, str_close_py, NULL, 0, NULL);
    if (fork_generation(&gen) < 0)
        return NULL;
    /* _release: detach before the number can be reused, then close */
    self->fd = -1;
    fdobj = PyLong_FromLong(fd);
    if (fdobj == NULL)
        return NULL;
    if (core_unregister((HubCore *)self->core, fdobj,
                        self->excl == gen ? Py_True : Py_False) < 0) {
        Py_DECREF(fdobj);
        return NULL;
    }
    Py_DECREF(fdobj);
    io_close(fd);
    Py_RETURN_NONE;
}

static PyObject *
sockbase_enter(PyObject *self, PyObject *unused)
{
    Py_INCREF(self);
    return self;
}

static PyObject *
sockbase_exit(PyObject *self, PyObject *args)
{
    PyObject *r = PyObject_CallMethodNoArgs(self, str_close);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(peer_sockaddr_doc,
"_peer_sockaddr() -> bytes or None\n\n"
"The peer's address as accept() returned it (a struct sockaddr), when\n"
"this socket was accepted by the compiled accept() and it fitted.");

static PyObject *
sockbase_peer_sockaddr(SocketBase *self, PyObject *unused)
{
    if (self->peerlen == 0 || self->fd < 0)
        Py_RETURN_NONE;
    return PyBytes_FromStringAndSize((const char *)self->peer,
                                     self->peerlen);
}

PyDoc_STRVAR(configure_accept_doc,
"configure_accept(accept_addr, close_addr, socket_type, forks, retry)\n\n"
"Give the compiled accept() and close() the socket layer's\n"
"s2_accept_peer and s2_close (as addresses), the class accepted sockets\n"
"get, sockets.py's fork-generation list and the negative errno values\n"
"after which accept() just tries again.");

static PyObject *
configure_accept(PyObject *mod, PyObject *args)
{
    unsigned long long accept_addr, close_addr;
    PyObject *type, *forks;
    long r0, r1, r2;
    if (!PyArg_ParseTuple(args, "KKOO(lll):configure_accept", &accept_addr,
                          &close_addr, &type, &forks, &r0, &r1, &r2))
        return NULL;
    if (!accept_addr || !close_addr) {
        PyErr_SetString(PyExc_ValueError, "configure_accept: null function "
                        "address");
        return NULL;
    }
    if (!PyType_Check(type)
            || !PyType_IsSubtype((PyTypeObject *)type, &SocketBaseType)
            || !PyList_Check(forks)) {
        PyErr_SetString(PyExc_TypeError, "configure_accept: needs a "
                        "SocketBase subclass and a list");
        return NULL;
    }
    io_accept = (s2_accept_fn)(uintptr_t)accept_addr;
    io_close = (s2_close_fn)(uintptr_t)close_addr;
    Py_INCREF(type);
    Py_XSETREF(accept_type, (PyTypeObject *)type);
    Py_INCREF(forks);
    Py_XSETREF(forks_list, forks);
    accept_retry[0] = r0;
    accept_retry[1] = r1;
    accept_retry[2] = r2;
    Py_RETURN_NONE;
}

static PyMethodDef sockbase_methods[] = {
    {"_c_recv", (PyCFunction)(void (*)(void))sockbase_recv,
     METH_FASTCALL | METH_KEYWORDS, recv_doc},
    {"_c_sendall", (PyCFunction)(void (*)(void))sockbase_sendall,
     METH_FASTCALL | METH_KEYWORDS, sendall_doc},
    {"_c_accept", (PyCFunction)(void (*)(void))sockbase_accept,
     METH_FASTCALL | METH_KEYWORDS, accept_doc},
    {"_c_close", (PyCFunction)sockbase_close, METH_NOARGS, close_doc},
    {"__enter__", sockbase_enter, METH_NOARGS, NULL},
    {"__exit__", sockbase_exit, METH_VARARGS, "Close the socket."},
    {"_peer_sockaddr", (PyCFunction)sockbase_peer_sockaddr, METH_NOARGS,
     peer_sockaddr_doc},
    {NULL}
};

static PyMemberDef sockbase_members[] = {
    {"_fd", T_INT, offsetof(SocketBase, fd), 0, NULL},
    {"_type", T_INT, offsetof(SocketBase, type), 0, NULL},
    /* (deleted, these raise AttributeError when read, as the twin's
       slots do) */
    {"_w", T_OBJECT_EX, offsetof(SocketBase, w), 0, NULL},
    {"_hub", T_OBJECT_EX, offsetof(SocketBase, hub), 0, NULL},
    {"_core", T_OBJECT_EX, offsetof(SocketBase, core), 0, NULL},
    {"_rb", T_OBJECT, offsetof(SocketBase, rb), 0, NULL},
    {"timeout", T_OBJECT, offsetof(SocketBase, timeout), 0,
     "the default timeout of this socket's waits (seconds), or None"},
    {"_family", T_INT, offsetof(SocketBase, family), 0, NULL},
    {"_proto", T_INT, offsetof(SocketBase, proto), 0, NULL},
    {"_busy", T_INT, offsetof(SocketBase, busy), 0, NULL},
    {"_held", T_INT, offsetof(SocketBase, held), 0, NULL},
    {"_excl", T_LONG, offsetof(SocketBase, excl), 0, NULL},
    {"_bound", T_BOOL, offsetof(SocketBase, bound), 0, NULL},
    {"_opts", T_OBJECT, offsetof(SocketBase, opts), 0, NULL},
    {NULL}
};

static PyTypeObject SocketBaseType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "socket2._speedups.SocketBase",
    .tp_basicsize = sizeof(SocketBase),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The fields socket2's sockets keep in C, and their compiled "
              "recv and sendall (see socket2/_hotpath.py).",
    .tp_new = sockbase_new,
    .tp_traverse = (traverseproc)sockbase_traverse,
    .tp_clear = (inquiry)sockbase_clear,
    .tp_dealloc = (destructor)sockbase_dealloc,
    .tp_finalize = (destructor)sockbase_finalize,
    .tp_methods = sockbase_methods,
    .tp_members = sockbase_members,
};

/* -- ThreadBase: a cooperative thread's record ----------------------------
 *
 * _hotpath.py's ThreadBase is the reference, line for line: its fields,
 * __init__ and _run (the function its greenlet runs).  A server makes one
 * per connection, so here the record is made and run without a Python
 * frame of its own; the rare paths (a kill before the start, a failure,
 * joiners, a group, a forked child's count) are hub.Thread's Python
 * methods, called from here at the same points.
 *
 * The function is called from C with a vectorcall: a Python function runs
 * in one evaluation loop on this greenlet's C stack, as the plain call of
 * the Python twin does.
 */

static PyTypeObject ThreadBaseType;

typedef struct {
    PyObject_HEAD
    PyObject *g, *hub, *func, *args, *kwargs, *name, *result, *exc,
             *joiners, *group, *parked_in, *on_cancel, *cancelled;
    char finished;
} ThreadBase;

static PyObject *str_rg, *str_dict, *str_greenlet, *str_s2_thread, *str_sole, *str_live,
                *str_core, *str_name, *str_thread, *str_start_cancelled,
                *str_failed, *str_wake_joiners, *str_sole_ended,
                *str_gr_context, *str_run, *str_parent, *empty_args;
static PyObject *thread_run(ThreadBase *self, PyObject *unused);
static PyMethodDef thread_run_def;

static PyObject *
threadbase_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    ThreadBase *t = (ThreadBase *)type->tp_alloc(type, 0);
    PyObject **f;
    if (t == NULL)
        return NULL;
    for (f = &t->g; f <= &t->cancelled; f++) {
        Py_INCREF(Py_None);
        *f = Py_None;
    }
    return (PyObject *)t;
}

static int
threadbase_traverse(ThreadBase *t, visitproc visit, void *arg)
{
    PyObject **f;
    for (f = &t->g; f <= &t->cancelled; f++)
        Py_VISIT(*f);
    return 0;
}

static int
threadbase_clear(ThreadBase *t)
{
    PyObject **f;
    for (f = &t->g; f <= &t->cancelled; f++)
        Py_CLEAR(*f);
    return 0;
}

static void
threadbase_dealloc(ThreadBase *t)
{
    PyObject_GC_UnTrack(t);
    threadbase_clear(t);
    Py_TYPE(t)->tp_free((PyObject *)t);
}

#define SET_FIELD(field, value) do { PyObject *_v = (value);            \
        Py_INCREF(_v); Py_XSETREF(self->field, _v); } while (0)

/* hub._live += delta */
static int
add_live(PyObject *hub, long delta)
{
    PyObject *live = PyObject_GetAttr(hub, str_live), *d, *n;
    int r;
    if (live == NULL)
        return -1;
    d = PyLong_FromLong(delta);
    n = d == NULL ? NULL : PyNumber_Add(live, d);
    Py_DECREF(live);
    Py_XDECREF(d);
    if (n == NULL)
        return -1;
    r = PyObject_SetAttr(hub, str_live, n);
    Py_DECREF(n);
    return r;
}


/* greenlet(run, parent=parent): PyGreenlet_New builds a keyword dict
   (the name "parent" made and hashed each time) for greenlet's __init__,
   ~2,900 instructions a thread; the type's tp_new and the two setters
   do the same (parent, when it is not the current greenlet, which
   tp_new gives) for a fraction. */
static PyObject *
new_greenlet(PyObject *run, PyObject *parent)
{
    PyTypeObject *gt = &PyGreenlet_Type;
    PyObject *g, *cur;
    if (empty_args == NULL && (empty_args = PyTuple_New(0)) == NULL)
        return NULL;
    g = gt->tp_new(gt, empty_args, NULL);
    if (g == NULL)
        return NULL;
    if (PyObject_SetAttr(g, str_run, run) < 0) {
        Py_DECREF(g);
        return NULL;
    }
    cur = (PyObject *)PyGreenlet_GetCurrent();
    if (cur == NULL) {
        Py_DECREF(g);
        return NULL;
    }
    Py_DECREF(cur);
    if (cur != parent && PyObject_SetAttr(g, str_parent, parent) < 0) {
        Py_DECREF(g);
        return NULL;
    }
    return g;
}

static int
threadbase_init(ThreadBase *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"hub", "func", "args", "kwargs", "name", NULL};
    PyObject *hub, *func, *fargs, *fkwargs, *name = Py_None;
    PyObject *parent, *run, *g, *sole;
    int truth;

    if (kwds == NULL && PyTuple_CheckExact(args)
            && (PyTuple_GET_SIZE(args) == 4 || PyTuple_GET_SIZE(args) == 5)) {
        /* the usual call, positional: no argument parser */
        hub = PyTuple_GET_ITEM(args, 0);
        func = PyTuple_GET_ITEM(args, 1);
        fargs = PyTuple_GET_ITEM(args, 2);
        fkwargs = PyTuple_GET_ITEM(args, 3);
        if (PyTuple_GET_SIZE(args) == 5)
            name = PyTuple_GET_ITEM(args, 4);
    } else if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOO|O:Thread",
                                            kwlist, &hub, &func, &fargs,
                                            &fkwargs, &name)) {
        return -1;
    }
    parent = PyObject_GetAttr(hub, str_greenlet);
    if (parent == NULL)
        return -1;
    if (!PyGreenlet_Check(parent)) {
        Py_DECREF(parent);
        PyErr_SetString(PyExc_TypeError, "Thread: hub.greenlet is not a "
                        "greenlet");
        return -1;
    }
    run = PyCFunction_New(&thread_run_def, (PyObject *)self);
    if (run == NULL) {
        Py_DECREF(parent);
        return -1;
    }
    g = new_greenlet(run, parent);
    Py_DECREF(run);
    Py_DECREF(parent);
    if (g == NULL)
        return -1;
    Py_XSETREF(self->g, g);
    if (PyObject_SetAttr(g, str_s2_thread, (PyObject *)self) < 0)
        return -1;
    SET_FIELD(hub, hub);
    sole = PyObject_GetAttr(hub, str_sole);
    if (sole == NULL)
        return -1;
    Py_DECREF(sole);
    if (sole != Py_None && add_live(hub, 1) < 0)
        return -1;      /* a forked child's own thread (keep_only) */
    SET_FIELD(func, func);
    SET_FIELD(args, fargs);
    SET_FIELD(kwargs, fkwargs);
    truth = PyObject_IsTrue(name);
    if (truth < 0)
        return -1;
    if (truth) {
        SET_FIELD(name, name);
    } else if (PyFunction_Check(func)) {
        SET_FIELD(name, ((PyFunctionObject *)func)->func_name);
    } else {
        PyObject *n = PyObject_GetAttr(func, str_name);
        if (n == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_AttributeError))
                return -1;
            PyErr_Clear();
            SET_FIELD(name, str_thread);
        } else {
            Py_XSETREF(self->name, n);
        }
    }
    SET_FIELD(result, Py_None);
    SET_FIELD(exc, Py_None);
    SET_FIELD(joiners, Py_None);
    self->finished = 0;
    SET_FIELD(group, Py_None);
    SET_FIELD(parked_in, Py_None);
    SET_FIELD(on_cancel, Py_None);
    SET_FIELD(cancelled, Py_None);
    return 0;
}

/* A field, or NULL with the AttributeError the twin's slot would raise
   (a field can be deleted: ``del thread._func``). */
static PyObject *
thread_field(ThreadBase *self, PyObject *v, const char *name)
{
    if (v == NULL)
        PyErr_Format(PyExc_AttributeError, "'%.100s' object has no "
                     "attribute '%s'", Py_TYPE(self)->tp_name, name);
    return v;
}

/* self.<name>() for a rare path; 0 or -1 with the error set. */
static int
call_method0(ThreadBase *self, PyObject *name)
{
    PyObject *r = PyObject_CallMethodNoArgs((PyObject *)self, name);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* The function's call: func(*args, **kwargs). */
static PyObject *
thread_call(ThreadBase *self)
{
    PyObject *func = self->func, *args = self->args, *kw = self->kwargs,
             *r;
    int has_kw;
    if (!thread_field(self, func, "_func")
            || !thread_field(self, args, "_args")
            || !thread_field(self, kw, "_kwargs"))
        return NULL;
    Py_INCREF(func);
    Py_INCREF(args);
    Py_INCREF(kw);
    has_kw = PyObject_IsTrue(kw);
    if (has_kw < 0) {
        r = NULL;
    } else if (has_kw) {
        if (PyDict_Check(kw) && PyTuple_Check(args)) {
            r = PyObject_Call(func, args, kw);
        } else {
            /* the twin's func(*args, **kwargs) on anything else */
            PyObject *t = PySequence_Tuple(args), *d = NULL;
            if (t != NULL) {
                d = PyDict_New();
                if (d != NULL && PyDict_Merge(d, kw, 1) < 0)
                    Py_CLEAR(d);
            }
            r = d == NULL ? NULL : PyObject_Call(func, t, d);
            Py_XDECREF(t);
            Py_XDECREF(d);
        }
    } else if (PyTuple_CheckExact(args)) {
        r = PyObject_Vectorcall(func, &PyTuple_GET_ITEM(args, 0),
                                PyTuple_GET_SIZE(args), NULL);
    } else {
        PyObject *t = PySequence_Tuple(args);
        r = t == NULL ? NULL : PyObject_Call(func, t, NULL);
        Py_XDECREF(t);
    }
    Py_DECREF(func);
    Py_DECREF(args);
    Py_DECREF(kw);
    return r;
}

static PyObject *
thread_run(ThreadBase *self, PyObject *unused)
{
    PyObject *w = self->parked_in, *r, *type = NULL, *value = NULL,
             *tb = NULL, *gd;
    int fail = 0, call;

    Py_INCREF(self);
    if (!thread_field(self, w, "_parked_in")) {
        fail = 1;
        goto done;          /* the twin raises before its try: likewise */
    }
    if (w != Py_None) {
        /* Started by its socket's first event (start_when_readable):
           leave the reader slot it sat in unstarted. */
        PyObject *core;
        if (!thread_field(self, self->g, "_g")
                || !thread_field(self, self->hub, "_hub")) {
            fail = 1;
            goto done;
        }
        Py_INCREF(w);
        SET_FIELD(parked_in, Py_None);
        if (IS_A(w, &WaitersType)) {
            Waiters *ws = (Waiters *)w;
            if (ws->rg == self->g) {
                Py_INCREF(Py_None);
                Py_SETREF(ws->rg, Py_None);
            }
        } else {
            PyObject *rg = PyObject_GetAttr(w, str_rg);
            if (rg == NULL || (rg == self->g
                               && PyObject_SetAttr(w, str_rg, Py_None) < 0))
                fail = 1;
            Py_XDECREF(rg);
        }
        Py_DECREF(w);
        core = fail ? NULL : PyObject_GetAttr(self->hub, str_core);
        if (core == NULL) {
            fail = 1;
        } else {
            if (IS_A(core, &HubCoreType)) {
                ((HubCore *)core)->nio -= 1;
            } else {
                PyErr_SetString(PyExc_TypeError, "Thread: hub._core is "
                                "not a HubCore");
                fail = 1;
            }
            Py_DECREF(core);
        }
        if (fail)
            goto done;      /* the twin raises before its try: likewise */
    }

    /* try: */
    if (!thread_field(self, self->cancelled, "_cancelled"))
        r = NULL;
    else if (self->cancelled != Py_None
             && call_method0(self, str_start_cancelled) < 0)   /* raises */
        r = NULL;
    else
        r = thread_call(self);
    if (r != NULL) {
        Py_XSETREF(self->result, r);
    } else if (PyErr_ExceptionMatches(PyExc_GreenletExit)) {
        PyErr_Clear();      /* except GreenletExit: pass */
    } else {
        /* except BaseException as e: self._failed(e), with e handled */
        PyObject *prev, *fr;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        if (tb != NULL)
            PyException_SetTraceback(value, tb);
#if PY_VERSION_HEX >= 0x030B0000
        prev = PyErr_GetHandledException();
        PyErr_SetHandledException(value);
        fr = PyObject_CallMethodOneArg((PyObject *)self, str_failed, value);
        PyErr_SetHandledException(prev);
        Py_XDECREF(prev);
#else
        {
            PyObject *pt, *pv, *ptb;
            PyErr_GetExcInfo(&pt, &pv, &ptb);
            Py_INCREF(type);
            Py_INCREF(value);
            Py_XINCREF(tb);
            PyErr_SetExcInfo(type, value, tb);
            fr = PyObject_CallMethodOneArg((PyObject *)self, str_failed,
                                           value);
            PyErr_SetExcInfo(pt, pv, ptb);
            (void)prev;
        }
#endif
        Py_CLEAR(type);
        Py_CLEAR(value);
        Py_CLEAR(tb);
        if (fr == NULL) {
            fail = 1;       /* raised again: it propagates after finally */
            PyErr_Fetch(&type, &value, &tb);
        } else {
            Py_DECREF(fr);
        }
    }

    /* finally: (an error of its own replaces a pending one, as in Python) */
    self->finished = 1;
    SET_FIELD(func, Py_None);
    SET_FIELD(args, Py_None);
    SET_FIELD(kwargs, Py_None);
    if (!thread_field(self, self->joiners, "_joiners")
            || !thread_field(self, self->group, "_group"))
        goto finally_failed;
    call = self->group != Py_None;
    if (!call && self->joiners != Py_None) {
        call = PyObject_IsTrue(self->joiners);
        if (call < 0)
            goto finally_failed;
    }
    if (call && call_method0(self, str_wake_joiners) < 0)
        goto finally_failed;
    SET_FIELD(joiners, Py_None);
    /* What hangs on the greenlet goes now (see hub.Thread): the greenlet
       may be kept a while longer; so do its context variables. */
    if (!thread_field(self, self->g, "_g"))
        goto finally_failed;
    gd = PyObject_GetAttr(self->g, str_dict);
    if (gd == NULL)
        goto finally_failed;
    if (PyDict_Check(gd))
        PyDict_Clear(gd);
    Py_DECREF(gd);
    if (PyObject_SetAttr(self->g, str_gr_context, Py_None) < 0)
        goto finally_failed;
    {
        PyObject *sole;
        if (!thread_field(self, self->hub, "_hub"))
            goto finally_failed;
        sole = PyObject_GetAttr(self->hub, str_sole);
        if (sole == NULL)
            goto finally_failed;
        Py_DECREF(sole);
        if (sole != Py_None && call_method0(self, str_sole_ended) < 0)
            goto finally_failed;
    }
    if (fail)
        PyErr_Restore(type, value, tb);
    goto done;

finally_failed:
    fail = 1;
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
done:
    Py_DECREF(self);
    if (fail)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef thread_run_def = {
    "_run", (PyCFunction)thread_run, METH_NOARGS,
    "The thread's greenlet runs this: the function, then the bookkeeping "
    "of its end."};

static PyMethodDef threadbase_methods[] = {
    {"_run", (PyCFunction)thread_run, METH_NOARGS,
     "The thread's greenlet runs this: the function, then the bookkeeping "
     "of its end."},
    {NULL}
};

static PyMemberDef threadbase_members[] = {
    {"_g", T_OBJECT_EX, offsetof(ThreadBase, g), 0, NULL},
    {"_hub", T_OBJECT_EX, offsetof(ThreadBase, hub), 0, NULL},
    {"_func", T_OBJECT_EX, offsetof(ThreadBase, func), 0, NULL},
    {"_args", T_OBJECT_EX, offsetof(ThreadBase, args), 0, NULL},
    {"_kwargs", T_OBJECT_EX, offsetof(ThreadBase, kwargs), 0, NULL},
    {"name", T_OBJECT_EX, offsetof(ThreadBase, name), 0,
     "the thread's name (its function's, unless one was given)"},
    {"_result", T_OBJECT_EX, offsetof(ThreadBase, result), 0, NULL},
    {"_exc", T_OBJECT_EX, offsetof(ThreadBase, exc), 0, NULL},
    {"_joiners", T_OBJECT_EX, offsetof(ThreadBase, joiners), 0, NULL},
    {"_finished", T_BOOL, offsetof(ThreadBase, finished), 0, NULL},
    {"_group", T_OBJECT_EX, offsetof(ThreadBase, group), 0, NULL},
    {"_parked_in", T_OBJECT_EX, offsetof(ThreadBase, parked_in), 0, NULL},
    {"_on_cancel", T_OBJECT_EX, offsetof(ThreadBase, on_cancel), 0, NULL},
    {"_cancelled", T_OBJECT_EX, offsetof(ThreadBase, cancelled), 0, NULL},
    {NULL}
};

static PyTypeObject ThreadBaseType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "socket2._speedups.ThreadBase",
    .tp_basicsize = sizeof(ThreadBase),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A cooperative thread's record: its fields, __init__ and "
              "_run in C (see socket2/_hotpath.py).",
    .tp_new = threadbase_new,
    .tp_init = (initproc)threadbase_init,
    .tp_traverse = (traverseproc)threadbase_traverse,
    .tp_clear = (inquiry)threadbase_clear,
    .tp_dealloc = (destructor)threadbase_dealloc,
    .tp_methods = threadbase_methods,
    .tp_members = threadbase_members,
};

/* -- HubCore.start_when_readable (needs SocketBase and ThreadBase) ------- */


/* start_when_readable(sock, func, args, kwargs, on_cancel=None): the
   twin's, line for line; attributes through the C structs when sock and
   the new record are the compiled ones. */
static PyObject *
hubcore_start_when_readable(HubCore *self, PyObject *const *args,
                            Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *sock, *func, *fargs, *kwargs, *on_cancel;
    PyObject *w = NULL, *targs = NULL, *t = NULL, *g = NULL, *r;
    PyObject *cargv[4], *pargv[5] = {NULL, NULL, NULL, NULL, Py_None};
    PyObject *fdv = NULL, *typev = NULL;
    static const char *const names[] = {"sock", "func", "args", "kwargs",
                                        "on_cancel"};
    Py_ssize_t i, n;

    if (take_args("start_when_readable(sock, func, args, kwargs, "
                  "on_cancel=None)", names, 5, 4, pargv, args, nargs,
                  kwnames) < 0)
        return NULL;
    sock = pargv[0];
    func = pargv[1];
    fargs = pargv[2];
    kwargs = pargv[3];
    on_cancel = pargv[4];
    if (self->thread_type == NULL || self->hub == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "HubCore: configure_threads() "
                        "and configure_fds() were not called");
        return NULL;
    }
    if (IS_A(sock, &SocketBaseType) && ((SocketBase *)sock)->w != NULL) {
        w = ((SocketBase *)sock)->w;        /* (what sock._w reads) */
        Py_INCREF(w);
    } else {
        w = PyObject_GetAttrString(sock, "_w");
        if (w == NULL)
            return NULL;
    }
    if (IS_A(w, &WaitersType)) {
        if (!EMPTY(((Waiters *)w)->rg)) {
            raise_error("busy", "another thread is already receiving on "
                        "this socket");
            goto fail;
        }
    } else {
        PyObject *rg = PyObject_GetAttrString(w, "rg");
        int busy = rg != NULL && rg != Py_None;
        Py_XDECREF(rg);
        if (rg == NULL)
            goto fail;
        if (busy) {
            raise_error("busy", "another thread is already receiving on "
                        "this socket");
            goto fail;
        }
    }
    /* A closed socket: no event would ever start the thread. */
    if (IS_A(sock, &SocketBaseType)) {
        if (((SocketBase *)sock)->fd < 0) {
            raise_error("closed", "start_when_readable() on a closed socket");
            goto fail;
        }
    } else {
        PyObject *fdo = PyObject_GetAttrString(sock, "_fd"), *zero;
        int lt;
        if (fdo == NULL)
            goto fail;
        zero = PyLong_FromLong(0);
        lt = zero == NULL ? -1 : PyObject_RichCompareBool(fdo, zero, Py_LT);
        Py_XDECREF(zero);
        Py_DECREF(fdo);
        if (lt < 0)
            goto fail;
        if (lt) {
            raise_error("closed", "start_when_readable() on a closed socket");
            goto fail;
        }
    }
    /* (the backend's hooks get the socket's fields as they are) */
    if (!EMPTY(self->arm)) {
        PyObject *zero = PyLong_FromLong(0);
        fdv = zero == NULL ? NULL : PyObject_GetAttrString(sock, "_fd");
        r = fdv == NULL ? NULL : PyObject_CallFunctionObjArgs(
            self->arm, fdv, zero, NULL);
        Py_XDECREF(zero);
    } else if (!EMPTY(self->prime_read)) {
        fdv = PyObject_GetAttrString(sock, "_fd");
        typev = fdv == NULL ? NULL : PyObject_GetAttrString(sock, "_type");
        r = typev == NULL ? NULL : PyObject_CallFunctionObjArgs(
            self->prime_read, fdv, w, typev, NULL);
    } else {
        r = Py_None;
        Py_INCREF(r);
    }
    Py_CLEAR(fdv);
    Py_CLEAR(typev);
    if (r == NULL)
        goto fail;
    Py_DECREF(r);
    /* (sock,) + args */
    if (PyTuple_Check(fargs)) {
        n = PyTuple_GET_SIZE(fargs);
        targs = PyTuple_New(n + 1);
        if (targs == NULL)
            goto fail;
        Py_INCREF(sock);
        PyTuple_SET_ITEM(targs, 0, sock);
        for (i = 0; i < n; i++) {
            PyObject *a = PyTuple_GET_ITEM(fargs, i);
            Py_INCREF(a);
            PyTuple_SET_ITEM(targs, i + 1, a);
        }
    } else {                /* whatever + does with it (its __radd__) */
        PyObject *one = PyTuple_Pack(1, sock);
        targs = one == NULL ? NULL : PyNumber_Add(one, fargs);
        Py_XDECREF(one);
        if (targs == NULL)
            goto fail;
    }
    cargv[0] = self->hub;
    cargv[1] = func;
    cargv[2] = targs;
    cargv[3] = kwargs;
    t = PyObject_Vectorcall(self->thread_type, cargv, 4, NULL);
    if (t == NULL)
        goto fail;
    if (on_cancel == Py_None || on_cancel == NULL)
        on_cancel = self->close_unstarted;
    else {
        int truth = PyObject_IsTrue(on_cancel);
        if (truth < 0)
            goto fail;
        if (!truth)
            on_cancel = self->close_unstarted;
    }
    if (IS_A(t, &ThreadBaseType)) {
        ThreadBase *tb = (ThreadBase *)t;
        Py_INCREF(w);
        Py_XSETREF(tb->parked_in, w);
        Py_INCREF(on_cancel);
        Py_XSETREF(tb->on_cancel, on_cancel);
        g = tb->g;
        Py_XINCREF(g);
    } else {
        if (PyObject_SetAttrString(t, "_parked_in", w) < 0
                || PyObject_SetAttrString(t, "_on_cancel", on_cancel) < 0)
            goto fail;
        g = PyObject_GetAttrString(t, "_g");
    }
    if (g == NULL)
        goto fail;
    if (IS_A(w, &WaitersType)) {
        Py_XSETREF(((Waiters *)w)->rg, g);
        g = NULL;
    } else {
        if (PyObject_SetAttrString(w, "rg", g) < 0)
            goto fail;
        Py_CLEAR(g);
    }
    self->nio++;
    Py_DECREF(t);
    Py_DECREF(targs);
    Py_DECREF(w);
    Py_RETURN_NONE;

fail:
    Py_XDECREF(g);
    Py_XDECREF(t);
    Py_XDECREF(targs);
    Py_XDECREF(w);
    return NULL;
}

/* -- the module ----------------------------------------------------------- */

PyDoc_STRVAR(configure_doc,
"configure(recv_addr, send_addr, eagain, ewouldblock, sock_stream, error)\n\n"
"Give the socket entry points the socket layer's s2_recv and s2_send (as\n"
"addresses), the negative errno values that mean \"would block\", the\n"
"stream socket type and socket2's Error class.");

static PyObject *
configure(PyObject *mod, PyObject *args)
{
    unsigned long long recv_addr, send_addr;
    long eagain, ewouldblock;
    int stream;
    PyObject *error, *os_error = NULL;
    if (!PyArg_ParseTuple(args, "KKlliO|O:configure", &recv_addr, &send_addr,
                          &eagain, &ewouldblock, &stream, &error, &os_error))
        return NULL;
    if (!recv_addr || !send_addr) {
        PyErr_SetString(PyExc_ValueError, "configure: null function address");
        return NULL;
    }
    io_recv = (s2_io_fn)(uintptr_t)recv_addr;
    io_send = (s2_io_fn)(uintptr_t)send_addr;
    neg_eagain = eagain;
    neg_ewouldblock = ewouldblock;
    stream_type = stream;
    Py_INCREF(error);
    Py_XSETREF(error_class, error);
    Py_XINCREF(os_error);
    Py_XSETREF(os_error_fn, os_error);
    Py_RETURN_NONE;
}

/* -- frame-stack chunks ---------------------------------------------------
 *
 * Python 3.11+ gives every greenlet its own stack of interpreter frames,
 * allocated in 16 KiB chunks through the interpreter's arena allocator
 * (mmap/munmap on POSIX, VirtualAlloc on Windows); a greenlet that ends
 * gives its chunk back.  A server that runs each connection in a thread
 * of its own would map and unmap 16 KiB per connection: two system
 * calls, four page faults and a TLB flush (measured: ~4 µs of a
 * Connection: close request's ~47).  cache_stack_chunks() puts a small
 * free list of such chunks in front of the allocator: every other size
 * (pymalloc's arenas, a deep stack's bigger chunks) and every chunk past
 * the list's bound goes to the allocator that was there before.
 * Chunks carry no state (CPython writes a chunk's header when it takes
 * one), so a reused one is as good as a fresh one.
 */

#define CHUNK_SIZE 16384            /* _PY_DATA_STACK_CHUNK_SIZE */
#define CHUNKS_MAX 64               /* at most 1 MiB kept */

static PyObjectArenaAllocator chunk_next;     /* the allocator before */
static void *chunk_list[CHUNKS_MAX];
static int chunk_count;
static PyThread_type_lock chunk_lock;   /* a thread state may be freed
                                           without the GIL */

static void *
chunk_alloc(void *ctx, size_t size)
{
    void *p = NULL;
    if (size == CHUNK_SIZE) {
        PyThread_acquire_lock(chunk_lock, WAIT_LOCK);
        if (chunk_count > 0)
            p = chunk_list[--chunk_count];
        PyThread_release_lock(chunk_lock);
        if (p != NULL)
            return p;
    }
    return chunk_next.alloc(chunk_next.ctx, size);
}

static void
chunk_free(void *ctx, void *ptr, size_t size)
{
    if (size == CHUNK_SIZE && ptr != NULL) {
        int kept = 0;
        PyThread_acquire_lock(chunk_lock, WAIT_LOCK);
        if (chunk_count < CHUNKS_MAX) {
            chunk_list[chunk_count++] = ptr;
            kept = 1;
        }
        PyThread_release_lock(chunk_lock);
        if (kept)
            return;
    }
    chunk_next.free(chunk_next.ctx, ptr, size);
}

PyDoc_STRVAR(cache_stack_chunks_doc,
"cache_stack_chunks() -> bool\n\n"
"Keep up to 64 freed 16 KiB frame-stack chunks for the next greenlet\n"
"instead of unmapping them (once per process; True if installed now).");

static PyObject *
cache_stack_chunks(PyObject *self, PyObject *unused)
{
    PyObjectArenaAllocator mine;
    if (chunk_lock != NULL)
        Py_RETURN_FALSE;
    chunk_lock = PyThread_allocate_lock();
    if (chunk_lock == NULL)
        return PyErr_NoMemory();
    PyObject_GetArenaAllocator(&chunk_next);
    mine.ctx = NULL;
    mine.alloc = chunk_alloc;
    mine.free = chunk_free;
    PyObject_SetArenaAllocator(&mine);
    Py_RETURN_TRUE;
}

PyDoc_STRVAR(thread_state_id_doc,
"thread_state_id()\n\n"
"The interpreter's id of the calling thread's state: an OS thread that\n"
"calls into Python again from C (a native thread's callbacks) gets a new\n"
"one each time, unlike its ident (see hub._hub_of_an_ending_thread).");

static PyObject *
thread_state_id(PyObject *module, PyObject *unused)
{
    return PyLong_FromUnsignedLongLong(
        (unsigned long long)PyThreadState_GetID(PyThreadState_Get()));
}

static PyMethodDef module_methods[] = {
    {"configure", configure, METH_VARARGS, configure_doc},
    {"thread_state_id", thread_state_id, METH_NOARGS, thread_state_id_doc},
    {"configure_accept", configure_accept, METH_VARARGS,
     configure_accept_doc},
    {"cache_stack_chunks", cache_stack_chunks, METH_NOARGS,
     cache_stack_chunks_doc},
    {NULL}
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "socket2._speedups",
    .m_doc = "socket2's hot path in C (see socket2/_hotpath.py).",
    .m_size = -1,
    .m_methods = module_methods,
};

/* -- The capsule other extensions of socket2 use (speedups_api.h) ------- */

static int
api_wait(PyObject *core, PyObject *w, int write, PyObject *deadline, int fd)
{
    if (!IS_A(core, &HubCoreType) || !IS_A(w, &WaitersType)) {
        PyErr_SetString(PyExc_TypeError, "expected a HubCore and its Waiters");
        return -1;
    }
    return core_wait((HubCore *)core, (Waiters *)w, write, deadline, fd);
}

static S2SpeedupsAPI speedups_api;

/* A new reference to the capsule, or NULL with an exception set.  The
   short-read flags must lie side by side (rready, then hup): where they
   do not, the offset is -1 and nobody takes the shortcut through them. */
static PyObject *
api_capsule(void)
{
    speedups_api.version = S2_SPEEDUPS_API_VERSION;
    speedups_api.socket_type = &SocketBaseType;
    speedups_api.waiters_type = &WaitersType;
    speedups_api.core_type = &HubCoreType;
    speedups_api.sock_fd = offsetof(SocketBase, fd);
    speedups_api.sock_w = offsetof(SocketBase, w);
    speedups_api.sock_core = offsetof(SocketBase, core);
    speedups_api.sock_busy = offsetof(SocketBase, busy);
    speedups_api.sock_held = offsetof(SocketBase, held);
    speedups_api.waiters_rready =
        offsetof(Waiters, hup) == offsetof(Waiters, rready) + 1
        ? (Py_ssize_t)offsetof(Waiters, rready) : -1;
    speedups_api.wait = api_wait;
    speedups_api.waiters_soerr = offsetof(Waiters, soerr);
    return PyCapsule_New(&speedups_api, S2_SPEEDUPS_API_CAPSULE, NULL);
}

PyMODINIT_FUNC
PyInit__speedups(void)
{
    PyObject *m;
    PyGreenlet_Import();
    if (_PyGreenlet_API == NULL)
        return NULL;
    if (PyType_Ready(&WaitersType) < 0 || PyType_Ready(&HubCoreType) < 0
            || PyType_Ready(&SocketBaseType) < 0
            || PyType_Ready(&ThreadBaseType) < 0)
        return NULL;
    if (!(str_recv_py = PyUnicode_InternFromString("_recv_py"))
            || !(str_sendall_py = PyUnicode_InternFromString("_sendall_py"))
            || !(str_sendall_rest = PyUnicode_InternFromString("_sendall_rest"))
            || !(str_fail = PyUnicode_InternFromString("_fail"))
            || !(str_finalize_open = PyUnicode_InternFromString("_finalize_open"))
            || !(str_eof = PyUnicode_InternFromString("_eof"))
            || !(str_recv = PyUnicode_InternFromString("recv"))
            || !(str_append = PyUnicode_InternFromString("append"))
            || !(str_throw = PyUnicode_InternFromString("throw"))
            || !(str_greenlet = PyUnicode_InternFromString("greenlet"))
            || !(str_run = PyUnicode_InternFromString("run"))
            || !(str_parent = PyUnicode_InternFromString("parent"))
            || !(str_s2_thread = PyUnicode_InternFromString("_s2_thread"))
            || !(str_sole = PyUnicode_InternFromString("_sole"))
            || !(str_live = PyUnicode_InternFromString("_live"))
            || !(str_core = PyUnicode_InternFromString("_core"))
            || !(str_rg = PyUnicode_InternFromString("rg"))
            || !(str_native_register =
                 PyUnicode_InternFromString("native_register"))
            || !(str_accept_py = PyUnicode_InternFromString("_accept_py"))
            || !(str_close_py = PyUnicode_InternFromString("_close_py"))
            || !(str_accept = PyUnicode_InternFromString("accept"))
            || !(str_thread_ident = PyUnicode_InternFromString("thread_ident"))
            || !(str_close = PyUnicode_InternFromString("close"))
            || !(str_dict = PyUnicode_InternFromString("__dict__"))
            || !(str_name = PyUnicode_InternFromString("__name__"))
            || !(str_thread = PyUnicode_InternFromString("thread"))
            || !(str_start_cancelled =
                 PyUnicode_InternFromString("_start_cancelled"))
            || !(str_failed = PyUnicode_InternFromString("_failed"))
            || !(str_wake_joiners = PyUnicode_InternFromString("_wake_joiners"))
            || !(str_sole_ended = PyUnicode_InternFromString("_sole_ended"))
            || !(str_gr_context = PyUnicode_InternFromString("gr_context")))
        return NULL;
    m = PyModule_Create(&speedups_module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&WaitersType);
    Py_INCREF(&HubCoreType);
    Py_INCREF(&SocketBaseType);
    Py_INCREF(&ThreadBaseType);
    if (PyModule_AddObject(m, "Waiters", (PyObject *)&WaitersType) < 0
            || PyModule_AddObject(m, "HubCore", (PyObject *)&HubCoreType) < 0
            || PyModule_AddObject(m, "SocketBase",
                                  (PyObject *)&SocketBaseType) < 0
            || PyModule_AddObject(m, "ThreadBase",
                                  (PyObject *)&ThreadBaseType) < 0
            || PyModule_AddObject(m, "_C_API", api_capsule()) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
