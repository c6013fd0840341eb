/* socket2._queue_speedups: the put and get of socket2.green.queue.Queue
 * that do not wait, in C.
 *
 * socket2/green/queue.py is the reference (Queue.put/Queue.get, the
 * "lock-free" path its class docstring explains): the items are a deque
 * (or a list), room is a deque of maxsize tokens, the unfinished tasks a
 * third deque; a put takes a token, counts a task and appends, a get takes
 * an item and gives a token back.  Here the same steps run as one C call
 * holding the GIL, so nothing can come between them (the Python version
 * relies on each step being one atomic C call).  Anything else -- a wait,
 * block/timeout arguments, a subclass that overrides a hook (``_fast``
 * false), waiters to wake -- goes to the Python methods of the same object
 * (_put_py, _get_py, _wake_getter, _wake_putter; a plain put or get that
 * must wait, straight to _put_wait(item, True, None)/_get_wait(True,
 * None), which the Python put/get call at that point too), so every rare
 * path has one home.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

static PyObject *str_put_py, *str_get_py, *str_wake_getter, *str_wake_putter;
static PyObject *str_put_wait, *str_get_wait;
static PyObject *str_pop, *str_append;

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

/* Whether the deque (or list) *o* has items; -1 on error. */
static int
nonempty(PyObject *o)
{
    Py_ssize_t n = PyObject_Size(o);
    return n < 0 ? -1 : n > 0;
}

/* o.method() / o.method(arg): a deque's own method through its
   descriptor (no lookup per call), anything else's by name. */
static PyTypeObject *deque_type;
static PyObject *deque_pop, *deque_append;

static PyObject *
call0(PyObject *o, PyObject *name)
{
    if (Py_IS_TYPE(o, deque_type) && name == str_pop)
        return PyObject_Vectorcall(deque_pop, &o, 1, NULL);
    return PyObject_CallMethodNoArgs(o, name);
}

static PyObject *
call1(PyObject *o, PyObject *name, PyObject *arg)
{
    if (Py_IS_TYPE(o, deque_type) && name == str_append) {
        PyObject *b[2] = {o, arg};
        return PyObject_Vectorcall(deque_append, b, 2, NULL);
    }
    return PyObject_CallMethodOneArg(o, name, arg);
}

PyDoc_STRVAR(put_doc,
"put(item, block=True, timeout=None)\n\n"
"Add *item*, waiting for room if *block* (at most *timeout* seconds);\n"
"``queue.Full`` when there is none.");

static PyObject *
qb_put(QueueBase *self, PyObject *const *args, Py_ssize_t nargs,
       PyObject *kwnames)
{
    PyObject *r;
    int waiting;
    if (!self->fast || nargs != 1 || kwnames != NULL || self->tasks == NULL
            || self->append == NULL || self->getters == NULL)
        return to_python((PyObject *)self, str_put_py, args, nargs, kwnames);
    if (self->slots != NULL && self->slots != Py_None) {
        int room = nonempty(self->slots);
        if (room < 0)
            return NULL;
        if (!room) {    /* full: Python waits (put's own wait) */
            PyObject *a[4] = {(PyObject *)self, args[0], Py_True, Py_None};
            return PyObject_VectorcallMethod(str_put_wait, a, 4, NULL);
        }
        r = call0(self->slots, str_pop);
        if (r == NULL)
            return NULL;
        Py_DECREF(r);
    }
    /* Counted first: a get and task_done may come before the end. */
    r = call1(self->tasks, str_append, Py_None);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    r = PyObject_CallOneArg(self->append, args[0]);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    waiting = nonempty(self->getters);
    if (waiting < 0)
        return NULL;
    if (waiting)
        return PyObject_CallMethodNoArgs((PyObject *)self, str_wake_getter);
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
    PyObject *item, *r;
    if (!self->fast || nargs != 0 || kwnames != NULL || self->take == NULL
            || self->putters == NULL)
        return to_python((PyObject *)self, str_get_py, args, nargs, kwnames);
    item = PyObject_CallNoArgs(self->take);
    if (item == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_IndexError))
            return NULL;
        PyErr_Clear();      /* empty: Python waits (get's own wait) */
        {
            PyObject *a[3] = {(PyObject *)self, Py_True, Py_None};
            return PyObject_VectorcallMethod(str_get_wait, a, 3, NULL);
        }
    }
    if (self->slots != NULL && self->slots != Py_None) {
        int waiting;
        r = call1(self->slots, str_append, Py_None);
        if (r == NULL)
            goto fail;
        Py_DECREF(r);
        waiting = nonempty(self->putters);
        if (waiting < 0)
            goto fail;
        if (waiting) {
            r = PyObject_CallMethodNoArgs((PyObject *)self, str_wake_putter);
            if (r == NULL)
                goto fail;
            Py_DECREF(r);
        }
    }
    return item;
fail:
    Py_DECREF(item);
    return NULL;
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
    .tp_name = "socket2._queue_speedups.QueueBase",
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

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "socket2._queue_speedups",
    "The put and get of socket2.green.queue.Queue that do not wait, in C "
    "(socket2/ffi/queue_speedups.c).", -1, NULL,
};

PyMODINIT_FUNC
PyInit__queue_speedups(void)
{
    PyObject *m;
    if (!(str_put_py = PyUnicode_InternFromString("_put_py"))
            || !(str_get_py = PyUnicode_InternFromString("_get_py"))
            || !(str_wake_getter = PyUnicode_InternFromString("_wake_getter"))
            || !(str_wake_putter = PyUnicode_InternFromString("_wake_putter"))
            || !(str_put_wait = PyUnicode_InternFromString("_put_wait"))
            || !(str_get_wait = PyUnicode_InternFromString("_get_wait"))
            || !(str_pop = PyUnicode_InternFromString("pop"))
            || !(str_append = PyUnicode_InternFromString("append")))
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
        deque_pop = PyObject_GetAttrString(d, "pop");
        deque_append = PyObject_GetAttrString(d, "append");
        if (deque_pop == NULL || deque_append == NULL)
            return NULL;
    }
    if (PyType_Ready(&QueueBaseType) < 0)
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
    return m;
}
