/* socket2._http_speedups: the WSGI server's request path in C.
 *
 * One call (HeadReader.read) parses a request head out of a connection's
 * buffer with socket2's own parser (http_parser.c, compiled in here as it
 * is into socket2._http_ffi) and builds the request's WSGI environ from
 * the parser's answer directly: no RequestHead of bytes and tuples first,
 * no Python frame per header.  socket2/http/wsgi.py is its twin and the
 * reference (Connection.environ): for every head the environ built here
 * equals the one built there (tests/test_http_speedups.py holds them to
 * it).  What this file does not handle it leaves to wsgi.py: a target that
 * is not origin-form ("/..."): '*' and absolute-form come back with
 * `environ` None and the header list filled, and the server builds their
 * environ in Python.
 *
 * peer_address(fd) is getpeername() and inet_ntop() in one call: the
 * REMOTE_ADDR and REMOTE_PORT of a connection.
 *
 * Everything here runs with the GIL held; nothing waits.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <string.h>

#include "http_parser.c"

#ifndef _WIN32
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#endif

/* -- configuration (configure()) ---------------------------------------- */

static PyObject *bodies;          /* (BODY_NONE, BODY_LENGTH, ...) */
static PyObject *protocol_error;  /* errors.protocol_error(code, offset) */

/* Interned environ keys and constant values. */
static PyObject *k_remote_addr, *k_remote_port, *k_request_method,
    *k_raw_uri, *k_request_uri, *k_server_protocol, *k_query_string,
    *k_path_info, *k_content_length, *k_http_cookie, *v_http_prefix, *v_cookie_sep, *v_comma, *v_http11, *v_http10,
    *v_empty;

/* The common methods, as bytes and as str, made once. */
static const char *const method_names[] = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", NULL};
#define NMETHODS 7
static PyObject *method_bytes[NMETHODS], *method_strs[NMETHODS];

/* -- header name -> environ key ------------------------------------------
 * A small direct-mapped cache in front of wsgi.py's key table (_KEYS,
 * bytes -> str or None) and its _key() for a miss, so that a request's
 * usual names cost a hash and a memcmp, not a bytes object each. */

#define KEY_SLOTS 256
#define KEY_MAXLEN 64
typedef struct {
    Py_ssize_t len;               /* 0: empty */
    char name[KEY_MAXLEN];
    PyObject *key;                /* str, or Py_None: the name is dropped */
} key_slot;
static key_slot key_cache[KEY_SLOTS];

static unsigned
name_hash(const char *s, Py_ssize_t n)
{
    unsigned h = 2166136261u;
    Py_ssize_t i;
    for (i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h ^ (unsigned)n;
}

/* A new reference to the environ key of the lowercased name s[:n]
 * (Py_None: drop the field), or NULL with an exception set. */
static PyObject *
env_key(PyObject *keys, PyObject *key_fn, const char *s, Py_ssize_t n)
{
    key_slot *slot = NULL;
    PyObject *name, *key;
    if (n <= KEY_MAXLEN) {
        slot = &key_cache[name_hash(s, n) % KEY_SLOTS];
        if (slot->len == n && memcmp(slot->name, s, (size_t)n) == 0) {
            Py_INCREF(slot->key);
            return slot->key;
        }
    }
    name = PyBytes_FromStringAndSize(s, n);
    if (name == NULL)
        return NULL;
    key = PyDict_GetItemWithError(keys, name);
    if (key != NULL)
        Py_INCREF(key);
    else if (!PyErr_Occurred())
        key = PyObject_CallOneArg(key_fn, name);
    Py_DECREF(name);
    if (key == NULL)
        return NULL;
    if (key != Py_None && !PyUnicode_CheckExact(key)) {
        PyErr_Format(PyExc_TypeError, "environ key for a header must be a "
                     "str or None, not %.100s", Py_TYPE(key)->tp_name);
        Py_DECREF(key);
        return NULL;
    }
    if (slot != NULL) {
        Py_INCREF(key);
        Py_XSETREF(slot->key, key);
        memcpy(slot->name, s, (size_t)n);
        slot->len = n;
    }
    return key;
}

/* -- the head object ------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    PyObject *method;             /* bytes */
    PyObject *target;             /* bytes */
    PyObject *headers;            /* list of (name, value), or None */
    PyObject *body;               /* BODY_NONE / _LENGTH / _CHUNKED */
    PyObject *content_length;     /* int or None */
    PyObject *environ;            /* dict, or None (built by wsgi.py) */
    int version;
    char keep_alive, expect_continue, expect_unknown, upgrade;
    Py_ssize_t end;
} HeadObject;

static void
head_dealloc(HeadObject *self)
{
    Py_XDECREF(self->method);
    Py_XDECREF(self->target);
    Py_XDECREF(self->headers);
    Py_XDECREF(self->body);
    Py_XDECREF(self->content_length);
    Py_XDECREF(self->environ);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef head_members[] = {
    {"method", T_OBJECT, offsetof(HeadObject, method), READONLY, NULL},
    {"target", T_OBJECT, offsetof(HeadObject, target), READONLY, NULL},
    {"headers", T_OBJECT, offsetof(HeadObject, headers), READONLY, NULL},
    {"body", T_OBJECT, offsetof(HeadObject, body), READONLY, NULL},
    {"content_length", T_OBJECT, offsetof(HeadObject, content_length),
     READONLY, NULL},
    {"environ", T_OBJECT, offsetof(HeadObject, environ), READONLY, NULL},
    {"version", T_INT, offsetof(HeadObject, version), READONLY, NULL},
    {"keep_alive", T_BOOL, offsetof(HeadObject, keep_alive), READONLY, NULL},
    {"expect_continue", T_BOOL, offsetof(HeadObject, expect_continue),
     READONLY, NULL},
    {"expect_unknown", T_BOOL, offsetof(HeadObject, expect_unknown),
     READONLY, NULL},
    {"upgrade", T_BOOL, offsetof(HeadObject, upgrade), READONLY, NULL},
    {"end", T_PYSSIZET, offsetof(HeadObject, end), READONLY, NULL},
    {NULL}
};

PyDoc_STRVAR(head_doc,
"A request head read by HeadReader.read(): RequestHead's fields, and\n"
"``environ``, the request's WSGI environ already built (None for a\n"
"target that is not origin-form: then ``headers`` holds the fields and\n"
"the server builds it; else ``headers`` is None).");

static PyTypeObject HeadType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "socket2._http_speedups.Head",
    .tp_basicsize = sizeof(HeadObject),
    .tp_dealloc = (destructor)head_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = head_doc,
    .tp_members = head_members,
};

/* -- the reader ------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    s2h_parser ps;
    PyObject *keys;               /* wsgi._KEYS */
    PyObject *key_fn;             /* wsgi._key */
} ReaderObject;

static void
reader_dealloc(ReaderObject *self)
{
    PyMem_Free(self->ps.out);
    PyMem_Free(self->ps.flat);
    Py_XDECREF(self->keys);
    Py_XDECREF(self->key_fn);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
reader_init(ReaderObject *self, PyObject *args, PyObject *kw)
{
    static char *names[] = {"max_line", "max_header_bytes", "max_headers",
                            "keys", "key_fn", NULL};
    Py_ssize_t max_line, max_head;
    int max_fields;
    PyObject *keys, *key_fn;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "nniO!O:HeadReader", names,
                                     &max_line, &max_head, &max_fields,
                                     &PyDict_Type, &keys, &key_fn))
        return -1;
    if (max_line < 1 || max_head < 2 || max_fields < 0
            || max_line > (1 << 30) || max_head > (1 << 30)
            || max_fields > (1 << 20)) {
        PyErr_SetString(PyExc_ValueError, "HeadReader: limits out of range");
        return -1;
    }
    PyMem_Free(self->ps.out);
    PyMem_Free(self->ps.flat);
    self->ps.out = PyMem_Calloc((size_t)(S2H_NOUT + 4 * max_fields),
                                sizeof(int64_t));
    self->ps.flat = PyMem_Malloc((size_t)(max_line + max_head + 8));
    if (self->ps.out == NULL || self->ps.flat == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->ps.max_line = (size_t)max_line;
    self->ps.max_head = (size_t)max_head;
    self->ps.max_fields = max_fields;
    Py_INCREF(keys);
    Py_XSETREF(self->keys, keys);
    Py_INCREF(key_fn);
    Py_XSETREF(self->key_fn, key_fn);
    return 0;
}

static PyObject *
method_of(const char *s, Py_ssize_t n, PyObject **str)
{
    int i;
    for (i = 0; i < NMETHODS; i++)
        if ((Py_ssize_t)strlen(method_names[i]) == n
                && memcmp(method_names[i], s, (size_t)n) == 0) {
            Py_INCREF(method_strs[i]);
            *str = method_strs[i];
            Py_INCREF(method_bytes[i]);
            return method_bytes[i];
        }
    *str = PyUnicode_DecodeLatin1(s, n, NULL);
    if (*str == NULL)
        return NULL;
    return PyBytes_FromStringAndSize(s, n);
}

static int
hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* PATH_INFO: the path percent-decoded as urllib.parse.unquote_to_bytes
 * does (a '%' not followed by two hex digits stays as it is), as latin-1
 * text. */
static PyObject *
path_info(const char *s, Py_ssize_t n)
{
    char stack[512], *out;
    Py_ssize_t i, w = 0;
    PyObject *r;
    if (memchr(s, '%', (size_t)n) == NULL)
        return PyUnicode_DecodeLatin1(s, n, NULL);
    out = n <= (Py_ssize_t)sizeof(stack) ? stack : PyMem_Malloc((size_t)n);
    if (out == NULL)
        return PyErr_NoMemory();
    for (i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n
                && (hi = hexval((unsigned char)s[i + 1])) >= 0
                && (lo = hexval((unsigned char)s[i + 2])) >= 0) {
            out[w++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[w++] = s[i];
        }
    }
    r = PyUnicode_DecodeLatin1(out, w, NULL);
    if (out != stack)
        PyMem_Free(out);
    return r;
}

static int
set_str(PyObject *env, PyObject *key, PyObject *value)
{
    int r;
    if (value == NULL)
        return -1;
    r = PyDict_SetItem(env, key, value);
    Py_DECREF(value);
    return r;
}

/* The environ of an origin-form request: wsgi.py's Connection.environ
 * step for step. */
static PyObject *
build_environ(ReaderObject *self, const int64_t *out, const char *flat,
              Py_ssize_t ml, Py_ssize_t tl, PyObject *method_str,
              PyObject *base, PyObject *remote, int version, int body,
              int64_t length)
{
    PyObject *env = PyDict_Copy(base), *target_str;
    const char *target = flat + ml + 1, *q;
    Py_ssize_t w, pl;
    int i, nf = (int)out[S2H_NFIELDS];
    if (env == NULL)
        return NULL;
    if (PyDict_SetItem(env, k_remote_addr, PyTuple_GET_ITEM(remote, 0)) < 0
            || PyDict_SetItem(env, k_remote_port,
                              PyTuple_GET_ITEM(remote, 1)) < 0
            || PyDict_SetItem(env, k_request_method, method_str) < 0)
        goto fail;
    target_str = PyUnicode_DecodeLatin1(target, tl, NULL);
    if (target_str == NULL)
        goto fail;
    if (PyDict_SetItem(env, k_raw_uri, target_str) < 0
            || PyDict_SetItem(env, k_request_uri, target_str) < 0) {
        Py_DECREF(target_str);
        goto fail;
    }
    Py_DECREF(target_str);
    if (PyDict_SetItem(env, k_server_protocol,
                       version == 11 ? v_http11 : v_http10) < 0)
        goto fail;
    q = memchr(target, '?', (size_t)tl);
    pl = q == NULL ? tl : q - target;
    if (q == NULL) {
        if (PyDict_SetItem(env, k_query_string, v_empty) < 0)
            goto fail;
    } else if (set_str(env, k_query_string, PyUnicode_DecodeLatin1(
                   q + 1, tl - pl - 1, NULL)) < 0) {
        goto fail;
    }
    if (set_str(env, k_path_info, path_info(target, pl)) < 0)
        goto fail;
    w = ml + 1 + tl;
    for (i = 0; i < nf; i++) {
        const int64_t *f = out + S2H_NOUT + 4 * i;
        Py_ssize_t nl = (Py_ssize_t)(f[1] - f[0]);
        Py_ssize_t vl = (Py_ssize_t)(f[3] - f[2]);
        const char *name = flat + w + 1, *val = name + nl + 1;
        PyObject *key, *value, *prev;
        w += nl + vl + 2;
        key = env_key(self->keys, self->key_fn, name, nl);
        if (key == NULL)
            goto fail;
        if (key == Py_None || PyUnicode_Compare(key, k_content_length) == 0) {
            Py_DECREF(key);
            continue;
        }
        value = PyUnicode_DecodeLatin1(val, vl, NULL);
        if (value == NULL) {
            Py_DECREF(key);
            goto fail;
        }
        prev = PyDict_GetItemWithError(env, key);
        if (prev != NULL) {
            /* (prev may be anything the caller's environ= put there:
             * joined as Python would, a TypeError for a non-str.) */
            PyObject *joined, *sep = NULL;
            if (PyUnicode_Compare(key, k_http_cookie) == 0)
                sep = v_cookie_sep;
            else if (PyUnicode_Tailmatch(key, v_http_prefix, 0,
                                         PY_SSIZE_T_MAX, -1) == 1)
                sep = v_comma;
            if (sep != NULL) {
                PyObject *head = PyNumber_Add(prev, sep);
                joined = head == NULL ? NULL : PyNumber_Add(head, value);
                Py_XDECREF(head);
            } else {
                joined = value;
                Py_INCREF(joined);
            }
            Py_DECREF(value);
            value = joined;
        } else if (PyErr_Occurred()) {
            Py_DECREF(value);
            Py_DECREF(key);
            goto fail;
        }
        if (set_str(env, key, value) < 0) {
            Py_DECREF(key);
            goto fail;
        }
        Py_DECREF(key);
    }
    if (body == S2H_BODY_LENGTH) {
        if (set_str(env, k_content_length,
                    PyUnicode_FromFormat("%lld", (long long)length)) < 0)
            goto fail;
    }
    return env;
fail:
    Py_DECREF(env);
    return NULL;
}

PyDoc_STRVAR(read_doc,
"read(buf, pos, base, remote) -> Head or None\n\n"
"Parse the request head at buf[pos:] (bytes); None while it is\n"
"incomplete, ProtocolError when it is invalid.  The head's environ is\n"
"base (the server's shared entries) copied, with the request's entries\n"
"and remote = (REMOTE_ADDR, REMOTE_PORT).");

static PyObject *
reader_read(ReaderObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *buf, *base, *remote, *method_str = NULL;
    HeadObject *h;
    Py_ssize_t pos, n, ml, tl;
    const char *flat;
    const int64_t *out = self->ps.out;
    int r, body;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError,
                        "read() takes buf, pos, base and remote");
        return NULL;
    }
    buf = args[0];
    base = args[2];
    remote = args[3];
    if (!PyBytes_CheckExact(buf) || !PyDict_CheckExact(base)
            || !PyTuple_CheckExact(remote) || PyTuple_GET_SIZE(remote) != 2) {
        PyErr_SetString(PyExc_TypeError, "read(bytes, int, dict, "
                        "(addr, port))");
        return NULL;
    }
    pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred())
        return NULL;
    n = PyBytes_GET_SIZE(buf);
    if (pos < 0 || pos > n) {
        PyErr_Format(PyExc_ValueError, "start %zd is outside the buffer",
                     pos);
        return NULL;
    }
    r = s2h_parse_request(&self->ps, PyBytes_AS_STRING(buf), (size_t)pos,
                          (size_t)n);
    if (r == S2H_INCOMPLETE)
        Py_RETURN_NONE;
    if (r != S2H_COMPLETE) {
        PyObject *e = PyObject_CallFunction(protocol_error, "iL", r,
                                            (long long)out[S2H_ERRPOS]);
        if (e != NULL) {
            PyErr_SetObject((PyObject *)Py_TYPE(e), e);
            Py_DECREF(e);
        }
        return NULL;
    }
    flat = self->ps.flat;
    /* flat: method NUL target, then NUL name NUL value per field (no NUL
     * after the last string: lengths come from out). */
    ml = (Py_ssize_t)strlen(flat);
    tl = (Py_ssize_t)out[S2H_FLAT] - ml - 1;
    {
        int i, nf = (int)out[S2H_NFIELDS];
        for (i = 0; i < nf; i++) {
            const int64_t *f = out + S2H_NOUT + 4 * i;
            tl -= (Py_ssize_t)(f[1] - f[0] + f[3] - f[2] + 2);
        }
    }
    body = (int)out[S2H_BODY];
    h = PyObject_New(HeadObject, &HeadType);
    if (h == NULL)
        return NULL;
    h->target = h->headers = h->body = h->content_length = NULL;
    h->environ = NULL;
    h->method = method_of(flat, ml, &method_str);
    h->version = (int)out[S2H_VERSION];
    h->keep_alive = (out[S2H_FLAGS] & S2H_F_KEEP_ALIVE) != 0;
    h->expect_continue = (out[S2H_FLAGS] & S2H_F_EXPECT_CONTINUE) != 0;
    h->expect_unknown = (out[S2H_FLAGS] & S2H_F_EXPECT_OTHER) != 0;
    h->upgrade = (out[S2H_FLAGS] & S2H_F_UPGRADE) != 0;
    h->end = (Py_ssize_t)out[S2H_END];
    if (h->method == NULL)
        goto fail;
    h->target = PyBytes_FromStringAndSize(flat + ml + 1, tl);
    if (h->target == NULL)
        goto fail;
    h->body = PyTuple_GetItem(bodies, body);
    if (h->body == NULL)
        goto fail;
    Py_INCREF(h->body);
    if (body == S2H_BODY_LENGTH) {
        h->content_length = PyLong_FromLongLong((long long)out[S2H_LENGTH]);
        if (h->content_length == NULL)
            goto fail;
    } else {
        h->content_length = Py_None;
        Py_INCREF(Py_None);
    }
    if (tl > 0 && flat[ml + 1] == '/') {
        h->environ = build_environ(self, out, flat, ml, tl, method_str,
                                   base, remote, h->version, body,
                                   out[S2H_LENGTH]);
        if (h->environ == NULL)
            goto fail;
        h->headers = Py_None;
        Py_INCREF(Py_None);
    } else {
        /* '*' or absolute-form: the server builds this environ. */
        int i, nf = (int)out[S2H_NFIELDS];
        Py_ssize_t w = ml + 1 + tl;
        h->environ = Py_None;
        Py_INCREF(Py_None);
        h->headers = PyList_New(nf);
        if (h->headers == NULL)
            goto fail;
        for (i = 0; i < nf; i++) {
            const int64_t *f = out + S2H_NOUT + 4 * i;
            Py_ssize_t nl = (Py_ssize_t)(f[1] - f[0]);
            Py_ssize_t vl = (Py_ssize_t)(f[3] - f[2]);
            PyObject *pair = Py_BuildValue(
                "(y#y#)", flat + w + 1, nl, flat + w + nl + 2, vl);
            if (pair == NULL)
                goto fail;
            PyList_SET_ITEM(h->headers, i, pair);
            w += nl + vl + 2;
        }
    }
    Py_DECREF(method_str);
    return (PyObject *)h;
fail:
    Py_XDECREF(method_str);
    Py_DECREF(h);
    return NULL;
}

static PyMethodDef reader_methods[] = {
    {"read", (PyCFunction)(void (*)(void))reader_read, METH_FASTCALL,
     read_doc},
    {NULL}
};

PyDoc_STRVAR(reader_doc,
"HeadReader(max_line, max_header_bytes, max_headers, keys, key_fn)\n\n"
"Reads request heads with socket2's parser under these limits and\n"
"builds their WSGI environ (one per serve(): it owns the arrays the\n"
"parser writes into).  keys maps a lowercased header name (bytes) to\n"
"its environ key (str, or None to drop the field); key_fn(name) gives\n"
"the key of a name not in keys.");

static PyTypeObject ReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "socket2._http_speedups.HeadReader",
    .tp_basicsize = sizeof(ReaderObject),
    .tp_dealloc = (destructor)reader_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = reader_doc,
    .tp_methods = reader_methods,
    .tp_init = (initproc)reader_init,
    .tp_new = PyType_GenericNew,
};

/* -- peer_address ---------------------------------------------------------- */

#ifndef _WIN32
PyDoc_STRVAR(peer_address_doc,
"peer_address(fd) -> (addr, port) or None\n\n"
"The connected peer of the socket fd as text, ('1.2.3.4', '5678'), as\n"
"WSGI's REMOTE_ADDR and REMOTE_PORT want it; None when it has none\n"
"(a unix socket) or getpeername() fails.");

static PyObject *
peer_address(PyObject *mod, PyObject *arg)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char text[INET6_ADDRSTRLEN];
    long fd;
    int port;
    fd = PyLong_AsLong(arg);
    if (fd == -1 && PyErr_Occurred())
        return NULL;
    if (fd < 0 || fd > INT_MAX)
        Py_RETURN_NONE;
    if (getpeername((int)fd, (struct sockaddr *)&ss, &len) < 0)
        Py_RETURN_NONE;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, text, sizeof(text));
        port = ntohs(a->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof(text));
        port = ntohs(a->sin6_port);
    } else {
        Py_RETURN_NONE;
    }
    return Py_BuildValue("(sN)", text, PyUnicode_FromFormat("%d", port));
}
#endif

/* -- the module -------------------------------------------------------------- */

PyDoc_STRVAR(configure_doc,
"configure(bodies, protocol_error)\n\n"
"Called once by socket2/http/wsgi.py: the body framing names in the\n"
"parser's order, and the function making a ProtocolError of a parser\n"
"error code and offset.");

static PyObject *
configure(PyObject *mod, PyObject *args)
{
    PyObject *b, *pe;
    if (!PyArg_ParseTuple(args, "O!O:configure", &PyTuple_Type, &b, &pe))
        return NULL;
    if (PyTuple_GET_SIZE(b) != 4) {
        PyErr_SetString(PyExc_ValueError, "configure: four body kinds");
        return NULL;
    }
    Py_INCREF(b);
    Py_XSETREF(bodies, b);
    Py_INCREF(pe);
    Py_XSETREF(protocol_error, pe);
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"configure", configure, METH_VARARGS, configure_doc},
#ifndef _WIN32
    {"peer_address", peer_address, METH_O, peer_address_doc},
#endif
    {NULL}
};

static struct PyModuleDef http_speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "socket2._http_speedups",
    .m_doc = "socket2.http's WSGI request path in C (see wsgi.py).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__http_speedups(void)
{
    PyObject *m;
    int i;
    s2h_init();
    if (PyType_Ready(&HeadType) < 0 || PyType_Ready(&ReaderType) < 0)
        return NULL;
#define INTERN(var, s) if (!(var = PyUnicode_InternFromString(s))) return NULL
    INTERN(k_remote_addr, "REMOTE_ADDR");
    INTERN(k_remote_port, "REMOTE_PORT");
    INTERN(k_request_method, "REQUEST_METHOD");
    INTERN(k_raw_uri, "RAW_URI");
    INTERN(k_request_uri, "REQUEST_URI");
    INTERN(k_server_protocol, "SERVER_PROTOCOL");
    INTERN(k_query_string, "QUERY_STRING");
    INTERN(k_path_info, "PATH_INFO");
    INTERN(k_content_length, "CONTENT_LENGTH");
    INTERN(k_http_cookie, "HTTP_COOKIE");
    INTERN(v_http_prefix, "HTTP_");
    INTERN(v_cookie_sep, "; ");
    INTERN(v_comma, ",");
    INTERN(v_http11, "HTTP/1.1");
    INTERN(v_http10, "HTTP/1.0");
    INTERN(v_empty, "");
    for (i = 0; i < NMETHODS; i++) {
        INTERN(method_strs[i], method_names[i]);
        method_bytes[i] = PyBytes_FromString(method_names[i]);
        if (method_bytes[i] == NULL)
            return NULL;
    }
#undef INTERN
    m = PyModule_Create(&http_speedups_module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&HeadType);
    Py_INCREF(&ReaderType);
    if (PyModule_AddObject(m, "Head", (PyObject *)&HeadType) < 0
            || PyModule_AddObject(m, "HeadReader",
                                  (PyObject *)&ReaderType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
