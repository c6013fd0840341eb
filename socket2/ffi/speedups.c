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
#include "greenlet.h"
#include <string.h>

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
    PyObject *e = PyObject_CallFunction(error_class, "ss", err, msg);
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

static PyMethodDef hubcore_methods[] = {
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

typedef struct {
    PyObject_HEAD
    int fd;
    int type;
    PyObject *w;         /* the hub's Waiters for fd */
    PyObject *hub;
    PyObject *core;      /* hub's HubCore */
    PyObject *rb;        /* read-ahead of read()/readline(), or None */
    PyObject *timeout;   /* the socket's default timeout, or None */
} SocketBase;

static PyObject *
sockbase_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    SocketBase *s = (SocketBase *)type->tp_alloc(type, 0);
    if (s != NULL)
        s->fd = -1;         /* __del__ of a half-made socket closes nothing */
    return (PyObject *)s;
}

static int
sockbase_traverse(SocketBase *s, visitproc visit, void *arg)
{
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

static PyMethodDef sockbase_methods[] = {
    {"_c_recv", (PyCFunction)(void (*)(void))sockbase_recv,
     METH_FASTCALL | METH_KEYWORDS, recv_doc},
    {"_c_sendall", (PyCFunction)(void (*)(void))sockbase_sendall,
     METH_FASTCALL | METH_KEYWORDS, sendall_doc},
    {NULL}
};

static PyMemberDef sockbase_members[] = {
    {"_fd", T_INT, offsetof(SocketBase, fd), 0, NULL},
    {"_type", T_INT, offsetof(SocketBase, type), 0, NULL},
    {"_w", T_OBJECT, offsetof(SocketBase, w), 0, NULL},
    {"_hub", T_OBJECT, offsetof(SocketBase, hub), 0, NULL},
    {"_core", T_OBJECT, offsetof(SocketBase, core), 0, NULL},
    {"_rb", T_OBJECT, offsetof(SocketBase, rb), 0, NULL},
    {"timeout", T_OBJECT, offsetof(SocketBase, timeout), 0,
     "the default timeout of this socket's waits (seconds), or None"},
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

static PyMethodDef module_methods[] = {
    {"configure", configure, METH_VARARGS, configure_doc},
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

PyMODINIT_FUNC
PyInit__speedups(void)
{
    PyObject *m;
    PyGreenlet_Import();
    if (_PyGreenlet_API == NULL)
        return NULL;
    if (PyType_Ready(&WaitersType) < 0 || PyType_Ready(&HubCoreType) < 0
            || PyType_Ready(&SocketBaseType) < 0)
        return NULL;
    if (!(str_recv_py = PyUnicode_InternFromString("_recv_py"))
            || !(str_sendall_py = PyUnicode_InternFromString("_sendall_py"))
            || !(str_sendall_rest = PyUnicode_InternFromString("_sendall_rest"))
            || !(str_fail = PyUnicode_InternFromString("_fail"))
            || !(str_finalize_open = PyUnicode_InternFromString("_finalize_open"))
            || !(str_eof = PyUnicode_InternFromString("_eof"))
            || !(str_recv = PyUnicode_InternFromString("recv"))
            || !(str_append = PyUnicode_InternFromString("append"))
            || !(str_throw = PyUnicode_InternFromString("throw")))
        return NULL;
    m = PyModule_Create(&speedups_module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&WaitersType);
    Py_INCREF(&HubCoreType);
    Py_INCREF(&SocketBaseType);
    if (PyModule_AddObject(m, "Waiters", (PyObject *)&WaitersType) < 0
            || PyModule_AddObject(m, "HubCore", (PyObject *)&HubCoreType) < 0
            || PyModule_AddObject(m, "SocketBase",
                                  (PyObject *)&SocketBaseType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
