/* socket2._green_speedups: the compiled half of socket2.green.
 *
 * - Waiter: the record of one wait on a patched lock or queue
 *   (socket2/green/_locks.py's _Waiter is its Python twin).
 * - QueueBase: the put and get of socket2.green.queue.Queue, and, since a
 *   put into a full queue or a get from an empty one is what a producer
 *   and consumer do all the time, their plain wait too.
 *
 * socket2/green/queue.py is the reference (Queue.put/Queue.get, the
 * "lock-free" path its class docstring explains): the items are a deque
 * (or a list), room is a deque of maxsize tokens, the unfinished tasks a
 * third deque; a put takes a token, counts a task and appends, a get takes
 * an item and gives a token back.  Here the same steps run as one C call
 * holding the GIL, so nothing can come between them (the Python version
 * relies on each step being one atomic C call).
 *
 * A plain put or get that must wait (no timeout, in a greenlet that parks
 * in its hub: _make_waiter's greenlet waiter) runs queue.py's _wait_for
 * here, step for step: queue a Waiter under the queue's mutex, try,
 * park in the hub (hub._switch_to_hub, counted in hub._external as an
 * external wait), leave the list (_cancel), try again.  Waking the
 * first waiter (_notify1) is here too.  Anything else -- a timeout, a
 * non-blocking call, an OS waiter, a subclass that overrides a hook
 * (``_fast`` false), a queue whose maxsize was reassigned while it waits --
 * goes to the Python methods of the same object (_put_py, _get_py,
 * _put_wait, _get_wait, _put_attempt, _get_atomic), so every rare path
 * has one home.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <pythread.h>
#include "greenlet.h"

#if PY_VERSION_HEX >= 0x030D0000
#define s2_finalizing() Py_IsFinalizing()
#else
#define s2_finalizing() _Py_IsFinalizing()
#endif

static PyObject *str_put_py, *str_get_py, *str_put_wait, *str_get_wait;
static PyObject *str_pop, *str_append, *str_remove, *str_mutex;
static PyObject *str_hub, *str_closed, *str_greenlet, *str_waker;
static PyObject *str_dead, *str_restart_waker, *str_external;
static PyObject *str_switch_to_hub, *str_thread_ident, *str_schedule;
static PyObject *str_acquire, *str_release, *str_put_attempt, *str_get_atomic;

/* Set by configure() (socket2/green/queue.py, at import): the hub
   module's thread-local (its .hub), _locks._wake, queue's _MISS/_DONE. */
static PyObject *hub_local, *py_wake, *miss, *done;

/* ---------------------------------------------------------------------
 * Waiter
 */

typedef struct {
    PyObject_HEAD
    PyObject *g;         /* the waiting greenlet */
    PyObject *hub;       /* its hub; None for an OS waiter */
    PyObject *os_lock;   /* an OS waiter's private lock; None otherwise */
    char given;          /* handed a permit (under the mutex) */
    char notified;       /* told to try again (under the mutex) */
    char done;           /* set by the waiter once it stops waiting */
} Waiter;

static PyTypeObject WaiterType;
#define Waiter_Check(o) Py_IS_TYPE((o), &WaiterType)

static Waiter *
waiter_make(PyTypeObject *type, PyObject *g, PyObject *hub, PyObject *lock)
{
    Waiter *w = (Waiter *)type->tp_alloc(type, 0);
    if (w == NULL)
        return NULL;
    Py_INCREF(g);
    w->g = g;
    Py_INCREF(hub);
    w->hub = hub;
    Py_INCREF(lock);
    w->os_lock = lock;
    return w;
}

static PyObject *
waiter_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *g, *hub, *lock;
    if (kwds != NULL && PyDict_GET_SIZE(kwds)) {
        PyErr_SetString(PyExc_TypeError, "Waiter() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_UnpackTuple(args, "Waiter", 3, 3, &g, &hub, &lock))
        return NULL;
    return (PyObject *)waiter_make(type, g, hub, lock);
}

static int
waiter_traverse(Waiter *self, visitproc visit, void *arg)
{
    Py_VISIT(self->g);
    Py_VISIT(self->hub);
    Py_VISIT(self->os_lock);
    return 0;
}

static int
waiter_clear(Waiter *self)
{
    Py_CLEAR(self->g);
    Py_CLEAR(self->hub);
    Py_CLEAR(self->os_lock);
    return 0;
}

static void
waiter_dealloc(Waiter *self)
{
    PyObject_GC_UnTrack(self);
    waiter_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef waiter_members[] = {
    {"g", T_OBJECT, offsetof(Waiter, g), READONLY, "the waiting greenlet"},
    {"hub", T_OBJECT, offsetof(Waiter, hub), READONLY,
     "its hub (None for an OS waiter)"},
    {"os_lock", T_OBJECT, offsetof(Waiter, os_lock), READONLY,
     "an OS waiter's private lock (None for a greenlet waiter)"},
    {"given", T_BOOL, offsetof(Waiter, given), 0,
     "handed a permit (under the mutex)"},
    {"notified", T_BOOL, offsetof(Waiter, notified), 0,
     "told to try again (under the mutex)"},
    {"done", T_BOOL, offsetof(Waiter, done), 0,
     "set by the waiter once it stops waiting"},
    {NULL}
};

static PyTypeObject WaiterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "socket2._green_speedups.Waiter",
    .tp_basicsize = sizeof(Waiter),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Waiter(g, hub, os_lock): one wait on a patched lock or "
              "queue (socket2/green/_locks.py's _Waiter in C).",
    .tp_new = waiter_new,
    .tp_traverse = (traverseproc)waiter_traverse,
    .tp_clear = (inquiry)waiter_clear,
    .tp_dealloc = (destructor)waiter_dealloc,
    .tp_members = waiter_members,
};

/* ---------------------------------------------------------------------
 * Helpers: deques, the queue's mutex, the hub
 */

/* o.method() / o.method(arg): a deque's own method called straight
   through its C function (no lookup, no argument handling: the
   descriptor's method table says its calling convention, checked at
   import), anything else's by name. */
static PyTypeObject *deque_type;
static PyObject *deque_pop, *deque_popleft, *deque_append;
static PyCFunction deque_pop_f, deque_popleft_f, deque_append_f;

/* The C function of method descriptor *d* if it takes *flags*, else
   NULL (then the descriptor is called the usual way). */
static PyCFunction
c_function_of(PyObject *d, int flags)
{
    PyMethodDef *def;
    if (!Py_IS_TYPE(d, &PyMethodDescr_Type))
        return NULL;
    def = ((PyMethodDescrObject *)d)->d_method;
    return (def->ml_flags & ~METH_COEXIST) == flags ? def->ml_meth : NULL;
}

/* Each holds its own reference to what it calls for the length of the
   call: the queue's fields are borrowed, and the call may run Python
   code (a finalizer, a user's container) that replaces them. */
static PyObject *
call0(PyObject *o, PyObject *name)
{
    PyObject *r;
    Py_INCREF(o);
    if (Py_IS_TYPE(o, deque_type) && name == str_pop)
        r = deque_pop_f != NULL ? deque_pop_f(o, NULL)
            : PyObject_Vectorcall(deque_pop, &o, 1, NULL);
    else
        r = PyObject_CallMethodNoArgs(o, name);
    Py_DECREF(o);
    return r;
}

static PyObject *
call1(PyObject *o, PyObject *name, PyObject *arg)
{
    PyObject *r;
    Py_INCREF(o);
    if (Py_IS_TYPE(o, deque_type) && name == str_append) {
        PyObject *b[2] = {o, arg};
        r = deque_append_f != NULL ? deque_append_f(o, arg)
            : PyObject_Vectorcall(deque_append, b, 2, NULL);
    }
    else
        r = PyObject_CallMethodOneArg(o, name, arg);
    Py_DECREF(o);
    return r;
}

/* A bound method (the items' append, popleft or pop) called with
   *arg* (NULL: none), straight through its C function when it is a
   built-in one taking that. */
static PyObject *
call_bound(PyObject *m, PyObject *arg)
{
    PyObject *r;
    Py_INCREF(m);
    if (PyCFunction_Check(m)
            && (PyCFunction_GET_FLAGS(m) & ~METH_COEXIST)
               == (arg == NULL ? METH_NOARGS : METH_O))
        r = PyCFunction_GET_FUNCTION(m)(PyCFunction_GET_SELF(m), arg);
    else
        r = arg == NULL ? PyObject_CallNoArgs(m) : PyObject_CallOneArg(m, arg);
    Py_DECREF(m);
    return r;
}

static int
call1_void(PyObject *o, PyObject *name, PyObject *arg)
{
    PyObject *r = call1(o, name, arg);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* Whether the deque (or list) *o* has items; -1 on error. */
static int
nonempty(PyObject *o)
{
    Py_ssize_t n;
    if (Py_IS_TYPE(o, deque_type))
        return Py_SIZE(o) > 0;      /* (a deque's length is its ob_size) */
    n = PyObject_Size(o);
    return n < 0 ? -1 : n > 0;
}

/* The container a bound append/pop/popleft belongs to (NULL: not a
   built-in method). */
static PyObject *
bound_self(PyObject *meth)
{
    if (meth != NULL && PyCFunction_Check(meth))
        return PyCFunction_GET_SELF(meth);
    return NULL;
}

/* The queue's mutex: a real _thread lock, called through its type's
   method descriptors. */
static PyTypeObject *lock_type;
static PyObject *lock_acquire, *lock_release;

static int
mx_call(PyObject *m, PyObject *desc, PyObject *name)
{
    PyObject *r = Py_IS_TYPE(m, lock_type)
        ? PyObject_Vectorcall(desc, &m, 1, NULL)
        : PyObject_CallMethodNoArgs(m, name);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}
#define mx_acquire(m) mx_call((m), lock_acquire, str_acquire)
#define mx_release(m) mx_call((m), lock_release, str_release)

/* Release *m* keeping the exception being raised, if any (a failed
   release replaces it). */
static void
mx_release_keep(PyObject *m)
{
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    if (mx_release(m) < 0) {
        Py_XDECREF(t);
        Py_XDECREF(v);
        Py_XDECREF(tb);
        return;
    }
    PyErr_Restore(t, v, tb);
}

/* _notify1, under the mutex: wake the first of *waiters*, if any.  A
   greenlet of this OS thread is scheduled here; anything else (an OS
   waiter, another OS thread's greenlet) goes to _locks._wake, and a
   waiter whose OS thread ended (_wake says False) passes it on. */
static int
notify1(PyObject *waiters)
{
    PyObject *w, *r;
    int n, live;
again:
    n = nonempty(waiters);
    if (n <= 0)
        return n;
    w = !Py_IS_TYPE(waiters, deque_type)
        ? PyObject_CallMethod(waiters, "popleft", NULL)
        : deque_popleft_f != NULL ? deque_popleft_f(waiters, NULL)
        : PyObject_Vectorcall(deque_popleft, &waiters, 1, NULL);
    if (w == NULL)
        return -1;
    if (Waiter_Check(w)) {
        Waiter *cw = (Waiter *)w;
        cw->notified = 1;
        if (cw->hub != Py_None) {
            PyObject *ti = PyObject_GetAttr(cw->hub, str_thread_ident);
            unsigned long ident;
            if (ti == NULL)
                goto fail;
            ident = PyLong_AsUnsignedLong(ti);
            Py_DECREF(ti);
            if (ident == (unsigned long)-1 && PyErr_Occurred())
                goto fail;
            if (ident == PyThread_get_thread_ident()) {
                if (!cw->done) {
                    r = PyObject_CallMethodOneArg(cw->hub, str_schedule,
                                                  cw->g);
                    if (r == NULL)
                        goto fail;
                    Py_DECREF(r);
                }
                Py_DECREF(w);
                return 0;
            }
        }
    }
    else if (PyObject_SetAttrString(w, "notified", Py_True) < 0)
        goto fail;
    r = PyObject_CallOneArg(py_wake, w);
    if (r == NULL)
        goto fail;
    live = PyObject_IsTrue(r);
    Py_DECREF(r);
    Py_DECREF(w);
    if (live < 0)
        return -1;
    if (!live)
        goto again;     /* its OS thread ended (_wake): the next one */
    return 0;
fail:
    Py_DECREF(w);
    return -1;
}

/* With *mutex* held: notify1(waiters). */
static int
notify1_locked(PyObject *mutex, PyObject *waiters)
{
    int r;
    if (mx_acquire(mutex) < 0)
        return -1;
    r = notify1(waiters);
    if (r < 0) {
        mx_release_keep(mutex);
        return -1;
    }
    return mx_release(mutex);
}

/* The running greenlet and its hub, when a wait of it parks there
   (_make_waiter's greenlet waiter): 1, *g and *hub new references;
   0 when Python's wait must take it (an OS waiter: no hub, a closed one,
   the hub's own greenlets, finalization); -1 on error. */
static int
green_context(PyObject **g_out, PyObject **hub_out)
{
    PyObject *hub, *g, *o;
    int cmp;
    if (hub_local == NULL)
        return 0;
    hub = PyObject_GetAttr(hub_local, str_hub);
    if (hub == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            return -1;
        PyErr_Clear();
        return 0;
    }
    if (hub == Py_None || s2_finalizing()) {
        Py_DECREF(hub);
        return 0;
    }
    o = PyObject_GetAttr(hub, str_closed);
    if (o == NULL)
        goto fail;
    cmp = PyObject_IsTrue(o);
    Py_DECREF(o);
    if (cmp != 0) {
        if (cmp < 0)
            goto fail;
        Py_DECREF(hub);
        return 0;
    }
    g = (PyObject *)PyGreenlet_GetCurrent();
    if (g == NULL)
        goto fail;
    o = PyObject_GetAttr(hub, str_greenlet);
    if (o == NULL) {
        Py_DECREF(g);
        goto fail;
    }
    cmp = (o == g);
    Py_DECREF(o);
    if (!cmp) {
        o = PyObject_GetAttr(hub, str_waker);
        if (o == NULL) {
            Py_DECREF(g);
            goto fail;
        }
        cmp = (o == g);
        Py_DECREF(o);
    }
    if (cmp) {
        Py_DECREF(g);
        Py_DECREF(hub);
        return 0;
    }
    *g_out = g;
    *hub_out = hub;
    return 1;
fail:
    Py_DECREF(hub);
    return -1;
}

/* hub._external += delta */
static int
add_external(PyObject *hub, long delta)
{
    PyObject *n = PyObject_GetAttr(hub, str_external), *m;
    if (n == NULL)
        return -1;
    if (PyLong_CheckExact(n)) {
        long v = PyLong_AsLong(n);
        m = (v == -1 && PyErr_Occurred()) ? NULL : PyLong_FromLong(v + delta);
    }
    else {
        PyObject *d = PyLong_FromLong(delta);
        m = d == NULL ? NULL : PyNumber_Add(n, d);
        Py_XDECREF(d);
    }
    Py_DECREF(n);
    if (m == NULL)
        return -1;
    if (PyObject_SetAttr(hub, str_external, m) < 0) {
        Py_DECREF(m);
        return -1;
    }
    Py_DECREF(m);
    return 0;
}

/* Park the running greenlet, waiting as *w*, until it is scheduled:
   _wait_for's inline hub.begin_external/suspend/end_external.  0, or -1
   with the exception the wait ended with. */
static int
park(PyObject *hub, Waiter *w)
{
    PyObject *waker, *r;
    int dead;
    waker = PyObject_GetAttr(hub, str_waker);
    if (waker == NULL)
        return -1;
    if (PyGreenlet_Check(waker))
        dead = PyGreenlet_STARTED((PyGreenlet *)waker)
            && !PyGreenlet_ACTIVE((PyGreenlet *)waker);
    else {
        PyObject *d = PyObject_GetAttr(waker, str_dead);
        dead = d == NULL ? -1 : PyObject_IsTrue(d);
        Py_XDECREF(d);
    }
    Py_DECREF(waker);
    if (dead < 0)
        return -1;
    if (dead) {
        r = PyObject_CallMethodNoArgs(hub, str_restart_waker);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
    }
    if (add_external(hub, 1) < 0)
        return -1;
    r = PyObject_CallMethodNoArgs(hub, str_switch_to_hub);
    w->done = 1;
    {
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);
        if (add_external(hub, -1) < 0) {
            Py_XDECREF(r);
            r = NULL;
            Py_XDECREF(t);
            Py_XDECREF(v);
            Py_XDECREF(tb);
        }
        else
            PyErr_Restore(t, v, tb);
    }
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* _cancel: *w* stops waiting (out of the list if still there; if it was
   notified and *pass_on*, the next waiter is woken instead).  Keeps the
   exception being raised, if any; -1 if the cancel itself failed. */
static int
cancel(PyObject *mutex, PyObject *waiters, Waiter *w, int pass_on)
{
    PyObject *t, *v, *tb, *r;
    int rc = 0;
    if (w->notified && !pass_on)
        return 0;       /* off the list already, nobody looks at it */
    PyErr_Fetch(&t, &v, &tb);
    if (mx_acquire(mutex) < 0) {
        rc = -1;
        goto out;
    }
    if (w->notified) {
        w->notified = 0;
        if (pass_on && notify1(waiters) < 0)
            rc = -1;
    }
    else {
        r = PyObject_CallMethodOneArg(waiters, str_remove, (PyObject *)w);
        if (r != NULL)
            Py_DECREF(r);
        else if (PyErr_ExceptionMatches(PyExc_ValueError))
            PyErr_Clear();
        else
            rc = -1;
    }
    if (rc < 0)
        mx_release_keep(mutex);
    else if (mx_release(mutex) < 0)
        rc = -1;
out:
    if (rc < 0) {       /* the new error wins */
        Py_XDECREF(t);
        Py_XDECREF(v);
        Py_XDECREF(tb);
        return -1;
    }
    PyErr_Restore(t, v, tb);
    return 0;
}

/* ---------------------------------------------------------------------
 * QueueBase
 */

typedef struct {
    PyObject_HEAD
    PyObject *slots;     /* _slots: room tokens (a deque), None: unbounded */
    PyObject *tasks;     /* _tasks: one None per unfinished task (deque) */
    PyObject *append;    /* _append: the items' bound append */
    PyObject *take;      /* _take: the items' bound popleft (or pop) */
    PyObject *getters;   /* _getters: waiters for an item (deque) */
    PyObject *putters;   /* _putters: waiters for room (deque) */
    char fast;           /* _fast: the plain put/get may run here */
} QueueBase;

static int
qb_traverse(QueueBase *self, visitproc visit, void *arg)
{
    Py_VISIT(self->slots);
    Py_VISIT(self->tasks);
    Py_VISIT(self->append);
    Py_VISIT(self->take);
    Py_VISIT(self->getters);
    Py_VISIT(self->putters);
    return 0;
}

static int
qb_clear(QueueBase *self)
{
    self->fast = 0;
    Py_CLEAR(self->slots);
    Py_CLEAR(self->tasks);
    Py_CLEAR(self->append);
    Py_CLEAR(self->take);
    Py_CLEAR(self->getters);
    Py_CLEAR(self->putters);
    return 0;
}

static void
qb_dealloc(QueueBase *self)
{
    PyObject_GC_UnTrack(self);
    qb_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
to_python(PyObject *self, PyObject *name, PyObject *const *args,
          Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *meth = PyObject_GetAttr(self, name);
    PyObject *res;
    if (meth == NULL)
        return NULL;
    res = PyObject_Vectorcall(meth, args, nargs, kwnames);
    Py_DECREF(meth);
    return res;
}

static int
has_room_tokens(QueueBase *self)
{
    return self->slots != NULL && self->slots != Py_None;
}

/* Wake the first waiter of *waiters* under the queue's mutex (the put's
   and get's "a getter/putter waits": _notify1 with the mutex). */
static int
wake_first(QueueBase *self, PyObject *waiters)
{
    PyObject *mutex = PyObject_GetAttr((PyObject *)self, str_mutex);
    int r;
    if (mutex == NULL)
        return -1;
    r = notify1_locked(mutex, waiters);
    Py_DECREF(mutex);
    return r;
}

/* The rest of a get that took *item*: its room token back, a putter
   woken (0, or -1). */
static int
after_take(QueueBase *self)
{
    int waiting;
    if (!has_room_tokens(self))
        return 0;
    if (call1_void(self->slots, str_append, Py_None) < 0)
        return -1;
    waiting = nonempty(self->putters);
    if (waiting <= 0)
        return waiting;
    return wake_first(self, self->putters);
}

/* The rest of a put that has room: counted, appended, a getter woken. */
static int
after_room(QueueBase *self, PyObject *item)
{
    PyObject *r;
    int waiting;
    /* Counted first: a get and task_done may come before the end. */
    if (call1_void(self->tasks, str_append, Py_None) < 0)
        return -1;
    r = call_bound(self->append, item);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    waiting = nonempty(self->getters);
    if (waiting <= 0)
        return waiting;
    return wake_first(self, self->getters);
}

/* One try of a waiting get (_get_atomic): a new reference to the item,
   to `miss`, or NULL on error. */
static PyObject *
get_attempt(QueueBase *self)
{
    PyObject *items, *item;
    if (!self->fast || self->take == NULL)
        /* maxsize was reassigned meanwhile: Python's locked path. */
        return PyObject_CallMethodNoArgs((PyObject *)self, str_get_atomic);
    items = bound_self(self->take);
    if (items != NULL) {
        int n = nonempty(items);
        if (n < 0)
            return NULL;
        if (!n)
            goto missed;    /* (the common miss, without an exception) */
    }
    item = call_bound(self->take, NULL);
    if (item == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_IndexError))
            return NULL;
        PyErr_Clear();      /* another OS thread took it meanwhile */
        goto missed;
    }
    if (after_take(self) < 0) {
        Py_DECREF(item);
        return NULL;
    }
    return item;
missed:
    Py_INCREF(miss);
    return miss;
}

/* One try of a waiting put (_put_attempt): Py_True (a room token taken),
   `done` (the locked path put it), `miss`, or NULL on error. */
static PyObject *
put_attempt(QueueBase *self, PyObject *item)
{
    PyObject *r;
    int n;
    if (!self->fast || !has_room_tokens(self))
        return PyObject_CallMethodOneArg((PyObject *)self, str_put_attempt,
                                         item);
    n = nonempty(self->slots);
    if (n < 0)
        return NULL;
    if (n) {
        r = call0(self->slots, str_pop);
        if (r != NULL) {
            Py_DECREF(r);
            Py_RETURN_TRUE;
        }
        if (!PyErr_ExceptionMatches(PyExc_IndexError))
            return NULL;
        PyErr_Clear();      /* another OS thread took it meanwhile */
    }
    Py_INCREF(miss);
    return miss;
}

/* _wait_for(self.mutex, waiters, attempt, None) for a plain put (*item*)
   or get (*item* NULL) by a greenlet waiter (*g* in *hub*); then the
   rest of the put.  Returns the get's item, None for a put, or NULL. */
static PyObject *
qb_wait(QueueBase *self, PyObject *item, PyObject *g, PyObject *hub)
{
    PyObject *waiters = item != NULL ? self->putters : self->getters;
    PyObject *mutex, *got = NULL;
    Waiter *w;
    mutex = PyObject_GetAttr((PyObject *)self, str_mutex);
    if (mutex == NULL)
        return NULL;
    Py_INCREF(waiters);
    w = waiter_make(&WaiterType, g, hub, Py_None);
    if (w == NULL)
        goto out;
    for (;;) {
        if (mx_acquire(mutex) < 0)
            goto out;
        if (call1_void(waiters, str_append, (PyObject *)w) < 0) {
            mx_release_keep(mutex);
            goto out;
        }
        if (mx_release(mutex) < 0)
            goto fail_queued;
        got = item != NULL ? put_attempt(self, item) : get_attempt(self);
        if (got == NULL)
            goto fail_queued;
        if (got != miss) {
            if (cancel(mutex, waiters, w, 0) < 0)
                Py_CLEAR(got);
            break;
        }
        Py_CLEAR(got);
        if (park(hub, w) < 0)
            goto fail_queued;
        if (cancel(mutex, waiters, w, 0) < 0)
            goto out;
        /* woken: what it waited for is most likely there */
        got = item != NULL ? put_attempt(self, item) : get_attempt(self);
        if (got == NULL || got != miss)
            break;
        Py_CLEAR(got);
        /* A waiter serves one wait (a late wake-up finds it done). */
        Py_DECREF(w);
        w = waiter_make(&WaiterType, g, hub, Py_None);
        if (w == NULL)
            goto out;
    }
    if (got != NULL && item != NULL) {
        if (got == done)            /* the locked path put it */
            Py_SETREF(got, Py_NewRef(Py_None));
        else {
            Py_SETREF(got, Py_NewRef(Py_None));
            if (after_room(self, item) < 0)
                Py_CLEAR(got);
        }
    }
    goto out;
fail_queued:
    cancel(mutex, waiters, w, 1);
out:
    Py_XDECREF(w);
    Py_DECREF(waiters);
    Py_DECREF(mutex);
    return got;
}

/* A put or get that must wait: here for the plain wait of a greenlet
   waiter, Python's _put_wait/_get_wait for anything else. */
static PyObject *
must_wait(QueueBase *self, PyObject *item)
{
    PyObject *g, *hub, *r;
    int c = (self->fast && self->getters != NULL && self->putters != NULL)
        ? green_context(&g, &hub) : 0;
    if (c < 0)
        return NULL;
    if (!c) {
        if (item != NULL) {
            PyObject *a[4] = {(PyObject *)self, item, Py_True, Py_None};
            return PyObject_VectorcallMethod(str_put_wait, a, 4, NULL);
        }
        else {
            PyObject *a[3] = {(PyObject *)self, Py_True, Py_None};
            return PyObject_VectorcallMethod(str_get_wait, a, 3, NULL);
        }
    }
    r = qb_wait(self, item, g, hub);
    Py_DECREF(g);
    Py_DECREF(hub);
    return r;
}

PyDoc_STRVAR(put_doc,
"put(item, block=True, timeout=None)\n\n"
"Add *item*, waiting for room if *block* (at most *timeout* seconds);\n"
"``queue.Full`` when there is none.");

static PyObject *
qb_put(QueueBase *self, PyObject *const *args, Py_ssize_t nargs,
       PyObject *kwnames)
{
    if (!self->fast || nargs != 1 || kwnames != NULL || self->tasks == NULL
            || self->append == NULL || self->getters == NULL)
        return to_python((PyObject *)self, str_put_py, args, nargs, kwnames);
    if (has_room_tokens(self)) {
        /* A room token; none (IndexError): full, wait (put's own wait).
           (No look at the size first: a full queue's put waits anyway,
           which costs far more than the exception.) */
        PyObject *r = call0(self->slots, str_pop);
        if (r == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_IndexError))
                return NULL;
            PyErr_Clear();
            return must_wait(self, args[0]);
        }
        Py_DECREF(r);
    }
    if (after_room(self, args[0]) < 0)
        return NULL;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(get_doc,
"get(block=True, timeout=None)\n\n"
"Remove and return an item, waiting for one if *block* (at most\n"
"*timeout* seconds); ``queue.Empty`` when there is none.");

static PyObject *
qb_get(QueueBase *self, PyObject *const *args, Py_ssize_t nargs,
       PyObject *kwnames)
{
    PyObject *item;
    if (!self->fast || nargs != 0 || kwnames != NULL || self->take == NULL
            || self->putters == NULL)
        return to_python((PyObject *)self, str_get_py, args, nargs, kwnames);
    item = call_bound(self->take, NULL);
    if (item == NULL) {
        /* Empty (IndexError): wait (get's own wait; as in put, no look
           at the size first). */
        if (!PyErr_ExceptionMatches(PyExc_IndexError))
            return NULL;
        PyErr_Clear();
        return must_wait(self, NULL);
    }
    if (after_take(self) < 0) {
        Py_DECREF(item);
        return NULL;
    }
    return item;
}

static PyMethodDef qb_methods[] = {
    {"_c_put", (PyCFunction)(void (*)(void))qb_put,
     METH_FASTCALL | METH_KEYWORDS, put_doc},
    {"_c_get", (PyCFunction)(void (*)(void))qb_get,
     METH_FASTCALL | METH_KEYWORDS, get_doc},
    {NULL}
};

static PyMemberDef qb_members[] = {
    {"_slots", T_OBJECT, offsetof(QueueBase, slots), 0, NULL},
    {"_tasks", T_OBJECT, offsetof(QueueBase, tasks), 0, NULL},
    {"_append", T_OBJECT, offsetof(QueueBase, append), 0, NULL},
    {"_take", T_OBJECT, offsetof(QueueBase, take), 0, NULL},
    {"_getters", T_OBJECT, offsetof(QueueBase, getters), 0, NULL},
    {"_putters", T_OBJECT, offsetof(QueueBase, putters), 0, NULL},
    {"_fast", T_BOOL, offsetof(QueueBase, fast), 0, NULL},
    {NULL}
};

static PyTypeObject QueueBaseType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "socket2._green_speedups.QueueBase",
    .tp_basicsize = sizeof(QueueBase),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The fields socket2.green.queue.Queue keeps in C, and its "
              "compiled put and get.",
    .tp_new = PyType_GenericNew,
    .tp_traverse = (traverseproc)qb_traverse,
    .tp_clear = (inquiry)qb_clear,
    .tp_dealloc = (destructor)qb_dealloc,
    .tp_methods = qb_methods,
    .tp_members = qb_members,
};

/* ---------------------------------------------------------------------
 * SemBase and RLockBase: the uncontended paths of the patched locks
 *
 * socket2/green/_locks.py is the reference (_Sem, LockType, RLock).  Its
 * fast paths take the lock's mutex (a real _thread.RLock) around a look
 * at the count even though each is a few bytecodes: another OS thread
 * may be in the middle of a slow path under that mutex.  The same holds
 * here (C code holding the GIL does not stop a Python slow path that the
 * GIL left between two bytecodes), so these take the mutex too; what
 * they save is the interpreter.  A wait or a wake-up goes to the Python
 * methods of the same object (_acquire, _release).
 */

static PyTypeObject *rlock_type;
static PyObject *rlock_acquire, *rlock_release, *minus_one, *py_get_ident;
static PyObject *as_main;   /* _locks._AS_MAIN: greenlet -> ident to use */
static PyObject *str_s2_thread, *str_acquire_slow, *str_release_slow;
static PyObject *str_py_acquire, *str_unacquired;

#define rmx_acquire(m) mx_call2((m), rlock_acquire, str_acquire)
#define rmx_release(m) mx_call2((m), rlock_release, str_release)

static int
mx_call2(PyObject *m, PyObject *desc, PyObject *name)
{
    PyObject *r;
    if (m == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "lock used before __init__");
        return -1;
    }
    r = Py_IS_TYPE(m, rlock_type) ? PyObject_Vectorcall(desc, &m, 1, NULL)
                                  : PyObject_CallMethodNoArgs(m, name);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

typedef struct {
    PyObject_HEAD
    PyObject *mutex;      /* _mutex: a real _thread.RLock */
    Py_ssize_t value;     /* _value: free permits */
    PyObject *waiters;    /* _waiters: the queued Waiters (a deque) */
    PyObject *weakrefs;
} SemBase;

static PyTypeObject SemBaseType;

static int
sb_traverse(SemBase *self, visitproc visit, void *arg)
{
    Py_VISIT(self->mutex);
    Py_VISIT(self->waiters);
    return 0;
}

static int
sb_clear(SemBase *self)
{
    Py_CLEAR(self->mutex);
    Py_CLEAR(self->waiters);
    return 0;
}

static void
sb_dealloc(SemBase *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakrefs != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    sb_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Take a free permit of the lock (value 1) under its mutex: 1 taken,
   0 none free, -1 error. */
static int
sb_take(SemBase *self)
{
    /* (Its own reference: a contended acquire lets other threads run.) */
    PyObject *m = self->mutex;
    int got = -1;
    Py_XINCREF(m);
    if (rmx_acquire(m) < 0)
        goto out;
    got = self->value != 0;
    if (got)
        self->value = 0;
    if (rmx_release(m) < 0)
        got = -1;
out:
    Py_XDECREF(m);
    return got;
}

/* The blocking acquire: a permit now, else _Sem._acquire's wait. */
static PyObject *
sb_acquire_blocking(SemBase *self)
{
    int got = sb_take(self);
    if (got < 0)
        return NULL;
    if (got)
        Py_RETURN_TRUE;
    {
        PyObject *a[3] = {(PyObject *)self, Py_True, minus_one};
        return PyObject_VectorcallMethod(str_acquire_slow, a, 3, NULL);
    }
}

/* LockType's release: the permit back, or _Sem._release(1) when it must
   wake a waiter or raise (released while unlocked). */
static PyObject *
sb_unlock(SemBase *self)
{
    PyObject *m = self->mutex;     /* (its own reference, as in sb_take) */
    int slow;
    Py_XINCREF(m);
    if (rmx_acquire(m) < 0) {
        Py_XDECREF(m);
        return NULL;
    }
    slow = self->value != 0;
    if (!slow && self->waiters != NULL) {
        slow = nonempty(self->waiters);
        if (slow < 0) {
            mx_release_keep(m);
            Py_DECREF(m);
            return NULL;
        }
    }
    if (!slow)
        self->value = 1;
    if (rmx_release(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    Py_DECREF(m);
    if (slow) {
        PyObject *one = PyLong_FromLong(1), *r;
        PyObject *a[2] = {(PyObject *)self, one};
        if (one == NULL)
            return NULL;
        r = PyObject_VectorcallMethod(str_release_slow, a, 2, NULL);
        Py_DECREF(one);
        if (r == NULL)
            return NULL;
        Py_DECREF(r);
    }
    Py_RETURN_NONE;
}

static PyObject *
sb_enter(SemBase *self, PyObject *unused)
{
    return sb_acquire_blocking(self);
}

static PyObject *
sb_exit(SemBase *self, PyObject *const *args, Py_ssize_t nargs)
{
    return sb_unlock(self);
}

static PyObject *
sb_release(SemBase *self, PyObject *unused)
{
    return sb_unlock(self);
}

/* acquire(blocking=True, timeout=-1): here for acquire(), acquire(True)
   and acquire(False); anything else (a timeout, keywords) is
   LockType._py_acquire's, which checks the arguments. */
static PyObject *
sb_acquire(SemBase *self, PyObject *const *args, Py_ssize_t nargs,
           PyObject *kwnames)
{
    if (kwnames == NULL && nargs <= 1) {
        if (nargs == 0 || args[0] == Py_True)
            return sb_acquire_blocking(self);
        if (args[0] == Py_False) {
            int got = sb_take(self);
            if (got < 0)
                return NULL;
            return PyBool_FromLong(got);
        }
    }
    return to_python((PyObject *)self, str_py_acquire, args, nargs, kwnames);
}

static PyMethodDef sb_methods[] = {
    {"_c_lock_acquire", (PyCFunction)(void (*)(void))sb_acquire,
     METH_FASTCALL | METH_KEYWORDS,
     "acquire(blocking=True, timeout=-1)\n\nTake the lock; False when "
     "it gives up (see LockType)."},
    {"_c_lock_release", (PyCFunction)sb_release, METH_NOARGS,
     "release()\n\nUnlock; the first waiter, in whatever thread, gets "
     "the lock."},
    {"_c_lock_enter", (PyCFunction)sb_enter, METH_NOARGS, NULL},
    {"_c_lock_exit", (PyCFunction)(void (*)(void))sb_exit, METH_FASTCALL,
     NULL},
    {NULL}
};

static PyMemberDef sb_members[] = {
    {"_mutex", T_OBJECT, offsetof(SemBase, mutex), 0, NULL},
    {"_value", T_PYSSIZET, offsetof(SemBase, value), 0, NULL},
    {"_waiters", T_OBJECT, offsetof(SemBase, waiters), 0, NULL},
    {NULL}
};

static PyTypeObject SemBaseType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "socket2._green_speedups.SemBase",
    .tp_basicsize = sizeof(SemBase),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The fields of socket2.green._locks._Sem in C, and "
              "LockType's uncontended acquire and release.",
    .tp_new = PyType_GenericNew,
    .tp_traverse = (traverseproc)sb_traverse,
    .tp_clear = (inquiry)sb_clear,
    .tp_dealloc = (destructor)sb_dealloc,
    .tp_weaklistoffset = offsetof(SemBase, weakrefs),
    .tp_methods = sb_methods,
    .tp_members = sb_members,
};

typedef struct {
    PyObject_HEAD
    PyObject *block;      /* _block: its LockType */
    PyObject *mutex;      /* _mutex: the block's mutex */
    PyObject *owner;      /* _owner: the holder's ident (NULL/None: free) */
    Py_ssize_t count;     /* _count: levels held */
    PyObject *weakrefs;
} RLockBase;

/* The running thread's ident (socket2.green._locks.get_ident): id() of a
   socket2 thread's greenlet, the OS thread's ident for a root greenlet,
   get_ident() itself for anything else.  A new reference, or NULL. */
static PyObject *
current_ident(void)
{
    PyObject *g = (PyObject *)PyGreenlet_GetCurrent(), *d, *p;
    int has;
    if (g == NULL) {
        if (!s2_finalizing())
            return NULL;
        /* greenlet refuses while the interpreter finalizes (a __del__
           of a module's global): only the OS thread is left. */
        PyErr_Clear();
        return PyLong_FromUnsignedLong(PyThread_get_thread_ident());
    }
    d = PyObject_GenericGetDict(g, NULL);
    if (d == NULL) {
        Py_DECREF(g);
        return NULL;
    }
    has = PyDict_Contains(d, str_s2_thread);
    Py_DECREF(d);
    if (has) {
        if (has > 0 && as_main != NULL && PyDict_GET_SIZE(as_main) > 0) {
            /* a signal handler acting for the main thread */
            PyObject *v = PyDict_GetItemWithError(as_main, g);
            if (v != NULL || PyErr_Occurred()) {
                Py_DECREF(g);
                Py_XINCREF(v);
                return v;
            }
        }
        Py_DECREF(g);
        return has < 0 ? NULL : PyLong_FromVoidPtr(g);
    }
    p = (PyObject *)PyGreenlet_GetParent((PyGreenlet *)g);
    Py_DECREF(g);
    if (p == NULL) {
        if (PyErr_Occurred())
            return NULL;
        return PyLong_FromUnsignedLong(PyThread_get_thread_ident());
    }
    Py_DECREF(p);
    if (py_get_ident == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "not configured");
        return NULL;
    }
    return PyObject_CallNoArgs(py_get_ident);
}

/* Whether *me* owns the RLock: 1, 0, -1. */
static int
rl_owned_by(RLockBase *self, PyObject *me)
{
    if (self->owner == NULL || self->owner == Py_None)
        return 0;
    if (self->owner == me)
        return 1;
    return PyObject_RichCompareBool(self->owner, me, Py_EQ);
}

static int
rl_traverse(RLockBase *self, visitproc visit, void *arg)
{
    Py_VISIT(self->block);
    Py_VISIT(self->mutex);
    Py_VISIT(self->owner);
    return 0;
}

static int
rl_clear(RLockBase *self)
{
    Py_CLEAR(self->block);
    Py_CLEAR(self->mutex);
    Py_CLEAR(self->owner);
    return 0;
}

static void
rl_dealloc(RLockBase *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakrefs != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    rl_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Its LockType, or NULL with an error. */
static SemBase *
rl_block(RLockBase *self)
{
    if (self->block == NULL || !PyObject_TypeCheck(self->block, &SemBaseType)) {
        PyErr_SetString(PyExc_RuntimeError, self->block == NULL
                        ? "RLock used before __init__"
                        : "RLock._block is not a socket2 lock");
        return NULL;
    }
    return (SemBase *)self->block;
}

/* Take the RLock (blocking), or one more level of it. */
static PyObject *
rl_acquire_blocking(RLockBase *self)
{
    PyObject *me = current_ident(), *r;
    int own;
    if (me == NULL)
        return NULL;
    own = rl_owned_by(self, me);
    if (own) {
        Py_DECREF(me);
        if (own < 0)
            return NULL;
        self->count++;
        Py_RETURN_TRUE;
    }
    if (rl_block(self) == NULL) {
        Py_DECREF(me);
        return NULL;
    }
    r = sb_acquire_blocking(rl_block(self));
    if (r == NULL) {
        Py_DECREF(me);
        return NULL;
    }
    Py_DECREF(r);
    Py_XSETREF(self->owner, me);
    self->count = 1;
    Py_RETURN_TRUE;
}

/* Drop one level; the last one unlocks (RuntimeError if not held by the
   caller). */
static PyObject *
rl_unlock(RLockBase *self)
{
    PyObject *me = current_ident();
    int own;
    if (me == NULL)
        return NULL;
    own = rl_owned_by(self, me);
    Py_DECREF(me);
    if (own <= 0) {
        if (own == 0)
            PyErr_SetObject(PyExc_RuntimeError, str_unacquired);
        return NULL;
    }
    if (rl_block(self) == NULL)
        return NULL;
    if (--self->count == 0) {
        Py_INCREF(Py_None);
        Py_XSETREF(self->owner, Py_None);
        return sb_unlock(rl_block(self));
    }
    Py_RETURN_NONE;
}

static PyObject *
rl_enter(RLockBase *self, PyObject *unused)
{
    return rl_acquire_blocking(self);
}

static PyObject *
rl_exit(RLockBase *self, PyObject *const *args, Py_ssize_t nargs)
{
    return rl_unlock(self);
}

static PyObject *
rl_release(RLockBase *self, PyObject *unused)
{
    return rl_unlock(self);
}

static PyObject *
rl_acquire(RLockBase *self, PyObject *const *args, Py_ssize_t nargs,
           PyObject *kwnames)
{
    if (kwnames == NULL && (nargs == 0 || (nargs == 1 && args[0] == Py_True)))
        return rl_acquire_blocking(self);
    return to_python((PyObject *)self, str_py_acquire, args, nargs, kwnames);
}

static PyObject *
rl_is_owned(RLockBase *self, PyObject *unused)
{
    PyObject *me = current_ident();
    int own;
    if (me == NULL)
        return NULL;
    own = rl_owned_by(self, me);
    Py_DECREF(me);
    if (own < 0)
        return NULL;
    return PyBool_FromLong(own);
}

static PyMethodDef rl_methods[] = {
    {"_c_acquire", (PyCFunction)(void (*)(void))rl_acquire,
     METH_FASTCALL | METH_KEYWORDS,
     "acquire(blocking=True, timeout=-1)\n\nTake the lock, or count one "
     "more level if the caller holds it."},
    {"_c_release", (PyCFunction)rl_release, METH_NOARGS,
     "release()\n\nDrop one level; the last one unlocks."},
    {"_c_enter", (PyCFunction)rl_enter, METH_NOARGS, NULL},
    {"_c_exit", (PyCFunction)(void (*)(void))rl_exit, METH_FASTCALL, NULL},
    {"_c_is_owned", (PyCFunction)rl_is_owned, METH_NOARGS, NULL},
    {NULL}
};

static PyMemberDef rl_members[] = {
    {"_block", T_OBJECT, offsetof(RLockBase, block), 0, NULL},
    {"_mutex", T_OBJECT, offsetof(RLockBase, mutex), 0, NULL},
    {"_owner", T_OBJECT, offsetof(RLockBase, owner), 0, NULL},
    {"_count", T_PYSSIZET, offsetof(RLockBase, count), 0, NULL},
    {NULL}
};

static PyTypeObject RLockBaseType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "socket2._green_speedups.RLockBase",
    .tp_basicsize = sizeof(RLockBase),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The fields of socket2.green._locks.RLock in C, and its "
              "uncontended acquire and release.",
    .tp_new = PyType_GenericNew,
    .tp_traverse = (traverseproc)rl_traverse,
    .tp_clear = (inquiry)rl_clear,
    .tp_dealloc = (destructor)rl_dealloc,
    .tp_weaklistoffset = offsetof(RLockBase, weakrefs),
    .tp_methods = rl_methods,
    .tp_members = rl_members,
};

/* ---------------------------------------------------------------------
 * Module
 */

PyDoc_STRVAR(configure_doc,
"configure(hub_local, wake, get_ident, miss, done, as_main)\n\n"
"Hand over what the compiled paths use: the hub module's thread-local\n"
"(its ``hub``), socket2.green._locks._wake and get_ident,\n"
"socket2.green.queue's _MISS and _DONE markers, and _locks._AS_MAIN\n"
"(greenlet -> the ident it acts under: a signal handler's).");

static PyObject *
configure(PyObject *mod, PyObject *args)
{
    PyObject *l, *wk, *gi, *m, *d, *am;
    if (!PyArg_ParseTuple(args, "OOOOOO!:configure", &l, &wk, &gi, &m, &d,
                          &PyDict_Type, &am))
        return NULL;
    Py_INCREF(am);
    Py_XSETREF(as_main, am);
    Py_INCREF(gi);
    Py_XSETREF(py_get_ident, gi);
    Py_INCREF(l);
    Py_XSETREF(hub_local, l);
    Py_INCREF(wk);
    Py_XSETREF(py_wake, wk);
    Py_INCREF(m);
    Py_XSETREF(miss, m);
    Py_INCREF(d);
    Py_XSETREF(done, d);
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"configure", configure, METH_VARARGS, configure_doc},
    {NULL}
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "socket2._green_speedups",
    "The compiled half of socket2.green: the waiter of its locks and "
    "queues, and the queue's put, get and plain waits "
    "(socket2/ffi/green_speedups.c).", -1, module_methods,
};

static int
intern(PyObject **p, const char *s)
{
    *p = PyUnicode_InternFromString(s);
    return *p == NULL ? -1 : 0;
}

static PyObject *
method_of(PyObject *type, const char *name)
{
    return PyObject_GetAttrString(type, name);
}

PyMODINIT_FUNC
PyInit__green_speedups(void)
{
    PyObject *m;
    if (intern(&str_put_py, "_put_py") || intern(&str_get_py, "_get_py")
            || intern(&str_put_wait, "_put_wait")
            || intern(&str_get_wait, "_get_wait")
            || intern(&str_pop, "pop") || intern(&str_append, "append")
            || intern(&str_remove, "remove") || intern(&str_mutex, "mutex")
            || intern(&str_hub, "hub") || intern(&str_closed, "_closed")
            || intern(&str_greenlet, "greenlet")
            || intern(&str_waker, "_waker") || intern(&str_dead, "dead")
            || intern(&str_restart_waker, "_restart_waker")
            || intern(&str_external, "_external")
            || intern(&str_switch_to_hub, "_switch_to_hub")
            || intern(&str_thread_ident, "thread_ident")
            || intern(&str_schedule, "schedule")
            || intern(&str_acquire, "acquire")
            || intern(&str_release, "release")
            || intern(&str_put_attempt, "_put_attempt")
            || intern(&str_get_atomic, "_get_atomic")
            || intern(&str_s2_thread, "_s2_thread")
            || intern(&str_acquire_slow, "_acquire")
            || intern(&str_release_slow, "_release")
            || intern(&str_py_acquire, "_py_acquire")
            || intern(&str_unacquired, "cannot release un-acquired lock"))
        return NULL;
    minus_one = PyLong_FromLong(-1);
    if (minus_one == NULL)
        return NULL;
    PyGreenlet_Import();
    if (_PyGreenlet_API == NULL)
        return NULL;
    {
        PyObject *collections = PyImport_ImportModule("collections");
        PyObject *d = collections == NULL ? NULL
            : PyObject_GetAttrString(collections, "deque");
        Py_XDECREF(collections);
        if (d == NULL || !PyType_Check(d)) {
            Py_XDECREF(d);
            return NULL;
        }
        deque_type = (PyTypeObject *)d;     /* kept for good */
        deque_pop = method_of(d, "pop");
        deque_popleft = method_of(d, "popleft");
        deque_append = method_of(d, "append");
        if (deque_pop == NULL || deque_popleft == NULL
                || deque_append == NULL)
            return NULL;
        deque_pop_f = c_function_of(deque_pop, METH_NOARGS);
        deque_popleft_f = c_function_of(deque_popleft, METH_NOARGS);
        deque_append_f = c_function_of(deque_append, METH_O);
    }
    {
        PyObject *thread = PyImport_ImportModule("_thread");
        PyObject *t = thread == NULL ? NULL
            : PyObject_GetAttrString(thread, "LockType");
        Py_XDECREF(thread);
        if (t == NULL || !PyType_Check(t)) {
            Py_XDECREF(t);
            return NULL;
        }
        lock_type = (PyTypeObject *)t;      /* kept for good */
        lock_acquire = method_of(t, "acquire");
        lock_release = method_of(t, "release");
        if (lock_acquire == NULL || lock_release == NULL)
            return NULL;
    }
    {
        PyObject *thread = PyImport_ImportModule("_thread");
        PyObject *t = thread == NULL ? NULL
            : PyObject_GetAttrString(thread, "RLock");
        Py_XDECREF(thread);
        if (t == NULL || !PyType_Check(t)) {
            Py_XDECREF(t);
            return NULL;
        }
        rlock_type = (PyTypeObject *)t;     /* kept for good */
        rlock_acquire = method_of(t, "acquire");
        rlock_release = method_of(t, "release");
        if (rlock_acquire == NULL || rlock_release == NULL)
            return NULL;
    }
    if (PyType_Ready(&QueueBaseType) < 0 || PyType_Ready(&WaiterType) < 0
            || PyType_Ready(&SemBaseType) < 0
            || PyType_Ready(&RLockBaseType) < 0)
        return NULL;
    m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    Py_INCREF(&QueueBaseType);
    if (PyModule_AddObject(m, "QueueBase", (PyObject *)&QueueBaseType) < 0) {
        Py_DECREF(&QueueBaseType);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddObjectRef(m, "Waiter", (PyObject *)&WaiterType) < 0
            || PyModule_AddObjectRef(m, "SemBase",
                                     (PyObject *)&SemBaseType) < 0
            || PyModule_AddObjectRef(m, "RLockBase",
                                     (PyObject *)&RLockBaseType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
