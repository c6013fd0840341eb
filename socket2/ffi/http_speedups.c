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
 * peer_address(fd) is getpeername() and inet_ntop() in one call (or
 * inet_ntop() of the address accept() returned, given as bytes): the
 * REMOTE_ADDR and REMOTE_PORT of a connection.
 *
 * Everything here runs with the GIL held; nothing waits.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <string.h>
#include <time.h>

#include "http_parser.c"

#ifndef _WIN32
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#endif

/* -- peers -------------------------------------------------------------- */

#ifndef _WIN32
/* Decimal digits of v (< 2^32) at the end of out[0:10]: their start. */
static char *
put_decimal(char *end, unsigned long v)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return end;
}

/* REMOTE_ADDR of the last IPv4 peer (most connections come from the
   same few addresses: a proxy, a load balancer) and its address. */
static PyObject *last_v4_text;
static uint32_t last_v4;

/* (REMOTE_ADDR, REMOTE_PORT) of an AF_INET/AF_INET6 address, or None.
   IPv4 and the port are written here: inet_ntop and PyUnicode_FromFormat
   go through printf, ~3,500 instructions a connection. */
static PyObject *
format_peer(const struct sockaddr_storage *ss)
{
    char text[INET6_ADDRSTRLEN], digits[12], *p;
    PyObject *host, *port, *r;
    int portv;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        uint32_t ip = a->sin_addr.s_addr;
        portv = ntohs(a->sin_port);
        if (last_v4_text != NULL && ip == last_v4) {
            host = last_v4_text;
            Py_INCREF(host);
        } else {
            const unsigned char *b = (const unsigned char *)&a->sin_addr;
            char *t = text;
            int i;
            for (i = 0; i < 4; i++) {
                char *q = put_decimal(digits + sizeof(digits), b[i]);
                size_t k = (size_t)(digits + sizeof(digits) - q);
                memcpy(t, q, k);
                t += k;
                *t++ = i < 3 ? '.' : '\0';
            }
            host = PyUnicode_FromStringAndSize(text, t - 1 - text);
            if (host == NULL)
                return NULL;
            Py_INCREF(host);
            Py_XSETREF(last_v4_text, host);
            last_v4 = ip;
        }
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        if (inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof(text)) == NULL)
            Py_RETURN_NONE;
        portv = ntohs(a->sin6_port);
        host = PyUnicode_FromString(text);
        if (host == NULL)
            return NULL;
    } else {
        Py_RETURN_NONE;
    }
    p = put_decimal(digits + sizeof(digits), (unsigned long)portv);
    port = PyUnicode_FromStringAndSize(p, digits + sizeof(digits) - p);
    if (port == NULL) {
        Py_DECREF(host);
        return NULL;
    }
    r = PyTuple_New(2);
    if (r == NULL) {
        Py_DECREF(host);
        Py_DECREF(port);
        return NULL;
    }
    PyTuple_SET_ITEM(r, 0, host);
    PyTuple_SET_ITEM(r, 1, port);
    return r;
}

/* The same of a struct sockaddr given as bytes (what accept() returned,
   kept by the socket: SocketBase._peer_sockaddr); None if it is not one. */
static PyObject *
format_peer_bytes(PyObject *arg)
{
    struct sockaddr_storage ss;
    Py_ssize_t n = PyBytes_GET_SIZE(arg);
    if (n < (Py_ssize_t)sizeof(sa_family_t) || n > (Py_ssize_t)sizeof(ss))
        Py_RETURN_NONE;
    memset(&ss, 0, sizeof ss);
    memcpy(&ss, PyBytes_AS_STRING(arg), (size_t)n);
    if ((ss.ss_family == AF_INET
             && n < (Py_ssize_t)sizeof(struct sockaddr_in))
            || (ss.ss_family == AF_INET6
                && n < (Py_ssize_t)sizeof(struct sockaddr_in6)))
        Py_RETURN_NONE;
    return format_peer(&ss);
}
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
    PyObject *keys;               /* the key table it came from (held) */
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
        if (slot->len == n && slot->keys == keys
                && memcmp(slot->name, s, (size_t)n) == 0) {
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
        PyObject *old_key = slot->key, *old_keys = slot->keys;
        Py_INCREF(key);
        Py_INCREF(keys);
        slot->key = key;
        slot->keys = keys;
        memcpy(slot->name, s, (size_t)n);
        slot->len = n;
        Py_XDECREF(old_key);     /* (last: a finalizer sees a whole slot) */
        Py_XDECREF(old_keys);
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
    PyObject *envd;               /* .environ: dict, or None (wsgi.py
                                     builds it); not `environ`, a macro
                                     of Windows' stdlib.h */
    int version;
    char keep_alive, expect_continue, expect_unknown, upgrade;
    Py_ssize_t end;
    int body_kind;                /* S2H_BODY_* */
} HeadObject;

static void
head_dealloc(HeadObject *self)
{
    Py_XDECREF(self->method);
    Py_XDECREF(self->target);
    Py_XDECREF(self->headers);
    Py_XDECREF(self->body);
    Py_XDECREF(self->content_length);
    Py_XDECREF(self->envd);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef head_members[] = {
    {"method", T_OBJECT, offsetof(HeadObject, method), READONLY, NULL},
    {"target", T_OBJECT, offsetof(HeadObject, target), READONLY, NULL},
    {"headers", T_OBJECT, offsetof(HeadObject, headers), READONLY, NULL},
    {"body", T_OBJECT, offsetof(HeadObject, body), READONLY, NULL},
    {"content_length", T_OBJECT, offsetof(HeadObject, content_length),
     READONLY, NULL},
    {"environ", T_OBJECT, offsetof(HeadObject, envd), READONLY, NULL},
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
    int busy;                     /* a parse is using ps's arrays */
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
    if (self->ps.out != NULL) {
        /* (its arrays may be in use by a parse that called back) */
        PyErr_SetString(PyExc_TypeError, "HeadReader is already "
                        "initialised");
        return -1;
    }
    /* The ranges of _limits.check_limits, which the Python HeadReader
     * applies with the parser it makes. */
    if (max_line < 1 || max_line > (1 << 30)) {
        PyErr_Format(PyExc_ValueError, "max_line must be an int in [1, %d], "
                     "not %zd", 1 << 30, max_line);
        return -1;
    }
    if (max_head < 1 || max_head > (1 << 30)) {
        PyErr_Format(PyExc_ValueError, "max_header_bytes must be an int in "
                     "[1, %d], not %zd", 1 << 30, max_head);
        return -1;
    }
    if (max_fields < 0 || max_fields > 65535) {
        PyErr_Format(PyExc_ValueError, "max_headers must be an int in "
                     "[0, %d], not %d", 65535, max_fields);
        return -1;
    }
    self->ps.out = PyMem_Calloc((size_t)(S2H_NOUT + 4 * max_fields),
                                sizeof(int64_t));
    self->ps.flat = PyMem_Malloc((size_t)(max_line + max_head + 8));
    if (self->ps.out == NULL || self->ps.flat == NULL) {
        PyMem_Free(self->ps.out);
        PyMem_Free(self->ps.flat);
        self->ps.out = NULL;
        self->ps.flat = NULL;
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
            Py_INCREF(prev);         /* joining may run Python code */
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
            Py_DECREF(prev);
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

/* Parse the head at buf[pos:] and build it (and its environ).  Returns
 * a new Head; NULL with *rc = S2H_INCOMPLETE and no exception while it
 * is incomplete; NULL with an exception set (*rc: the parser's error
 * code, or 0 for a Python error). */
static HeadObject *reader_parse_now(ReaderObject *self, PyObject *buf,
                                    Py_ssize_t pos, PyObject *base,
                                    PyObject *remote, int *rc);

/* (Not re-entrant: building the environ may run Python code, which
 * could call read() again and rewrite the arrays being walked.) */
static HeadObject *
reader_parse(ReaderObject *self, PyObject *buf, Py_ssize_t pos,
             PyObject *base, PyObject *remote, int *rc)
{
    HeadObject *h;
    if (self->busy) {
        *rc = 0;
        PyErr_SetString(PyExc_RuntimeError, "HeadReader.read() called "
                        "again while it runs (from code it called)");
        return NULL;
    }
    self->busy = 1;
    Py_INCREF(self);
    h = reader_parse_now(self, buf, pos, base, remote, rc);
    self->busy = 0;
    Py_DECREF(self);
    return h;
}

static HeadObject *
reader_parse_now(ReaderObject *self, PyObject *buf, Py_ssize_t pos,
                 PyObject *base, PyObject *remote, int *rc)
{
    PyObject *method_str = NULL;
    HeadObject *h;
    Py_ssize_t n = PyBytes_GET_SIZE(buf), ml, tl;
    const char *flat;
    const int64_t *out = self->ps.out;
    int r, body;
    r = s2h_parse_request(&self->ps, PyBytes_AS_STRING(buf), (size_t)pos,
                          (size_t)n);
    *rc = r;
    if (r == S2H_INCOMPLETE)
        return NULL;
    if (r != S2H_COMPLETE) {
        PyObject *e = PyObject_CallFunction(protocol_error, "iL", r,
                                            (long long)out[S2H_ERRPOS]);
        if (e != NULL) {
            PyErr_SetObject((PyObject *)Py_TYPE(e), e);
            Py_DECREF(e);
        }
        return NULL;
    }
    *rc = 0;
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
    h->envd = NULL;
    h->method = method_of(flat, ml, &method_str);
    h->version = (int)out[S2H_VERSION];
    h->keep_alive = (out[S2H_FLAGS] & S2H_F_KEEP_ALIVE) != 0;
    h->expect_continue = (out[S2H_FLAGS] & S2H_F_EXPECT_CONTINUE) != 0;
    h->expect_unknown = (out[S2H_FLAGS] & S2H_F_EXPECT_OTHER) != 0;
    h->upgrade = (out[S2H_FLAGS] & S2H_F_UPGRADE) != 0;
    h->end = (Py_ssize_t)out[S2H_END];
    h->body_kind = body;
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
        h->envd = build_environ(self, out, flat, ml, tl, method_str,
                                   base, remote, h->version, body,
                                   out[S2H_LENGTH]);
        if (h->envd == NULL)
            goto fail;
        h->headers = Py_None;
        Py_INCREF(Py_None);
    } else {
        /* '*' or absolute-form: the server builds this environ. */
        int i, nf = (int)out[S2H_NFIELDS];
        Py_ssize_t w = ml + 1 + tl;
        h->envd = Py_None;
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
    return h;
fail:
    Py_XDECREF(method_str);
    Py_DECREF(h);
    return NULL;
}

static int
check_read_args(PyObject *buf, PyObject *pos_obj, PyObject *base,
                PyObject *remote, Py_ssize_t *pos)
{
    if (!PyBytes_CheckExact(buf) || !PyDict_CheckExact(base)
            || !PyTuple_CheckExact(remote) || PyTuple_GET_SIZE(remote) != 2) {
        PyErr_SetString(PyExc_TypeError, "read(bytes, int, dict, "
                        "(addr, port))");
        return -1;
    }
    *pos = PyLong_AsSsize_t(pos_obj);
    if (*pos == -1 && PyErr_Occurred())
        return -1;
    if (*pos < 0 || *pos > PyBytes_GET_SIZE(buf)) {
        PyErr_Format(PyExc_ValueError, "start %zd is outside the buffer",
                     *pos);
        return -1;
    }
    return 0;
}

static PyObject *
reader_read(ReaderObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t pos;
    HeadObject *h;
    int rc;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError,
                        "read() takes buf, pos, base and remote");
        return NULL;
    }
    if (self->ps.out == NULL) {
        PyErr_SetString(PyExc_TypeError, "HeadReader.__init__() was not "
                        "called");
        return NULL;
    }
    if (check_read_args(args[0], args[1], args[2], args[3], &pos) < 0)
        return NULL;
    h = reader_parse(self, args[0], pos, args[2], args[3], &rc);
    if (h == NULL && rc == S2H_INCOMPLETE)
        Py_RETURN_NONE;
    return (PyObject *)h;
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

/* -- the request loop -------------------------------------------------------
 *
 * ConnBase and ReplyBase hold the fields of wsgi.py's Connection and
 * _reply.py's Reply (their Python subclasses have the methods);
 * ConnBase._serve_simple() is Connection.run's loop for the plain
 * request, step for step as next_head(), respond(), Reply.run(),
 * _whole(), _head(), flush(), send(), _write() and receive() take it.
 * Whatever is not plain is handed to those methods at the point where
 * the two paths part:
 *   - a head that is incomplete or invalid: _SLOW (next_head() parses
 *     it again and waits, or refuses it);
 *   - a head with a body, an Expect, a target that is not origin-form:
 *     returned, for respond();
 *   - start_response() with exc_info, or a call whose checks are not
 *     cached yet: Reply._start_response();
 *   - an application result that is not a list of one bytes: Reply
 *     .finish(); an exception: Reply._raised();
 *   - held pipelined answers being flushed by their timer, a write over
 *     64 KiB: Connection.flush() / _write().
 */

static PyObject *reply_type;       /* _reply.Reply */
static PyObject *empty_input;      /* _input.EMPTY */
static PyObject *checked_cache;    /* _reply._CHECKED */
static PyObject *monotonic_fn;     /* time.monotonic (read in C: set_deadline) */

/* The last (status, headers) start_response met, by identity: an
   application's status and header names and values are most often the
   same string objects every call (constants and globals of its code;
   the tuples themselves are often made anew), and then the entry its
   cache lookup found is reused without making and hashing the key.
   Held: an identity is only one while the object lives. */
#define SR_ITEMS 8
static PyObject *sr_status, *sr_items[2 * SR_ITEMS], *sr_checked;
static Py_ssize_t sr_n;

/* Whether list holds exact (str, str) tuples of the very strings
   remembered. */
static int
sr_same(PyObject *list)
{
    Py_ssize_t i;
    for (i = 0; i < sr_n; i++) {
        PyObject *item = PyList_GET_ITEM(list, i);
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2
                || PyTuple_GET_ITEM(item, 0) != sr_items[2 * i]
                || PyTuple_GET_ITEM(item, 1) != sr_items[2 * i + 1])
            return 0;
    }
    return 1;
}

static void
sr_remember(PyObject *status, PyObject *list, PyObject *checked)
{
    Py_ssize_t i, n = PyList_GET_SIZE(list);
    PyObject *old_status = sr_status, *old_checked = sr_checked;
    PyObject *old[2 * SR_ITEMS];
    Py_ssize_t old_n = sr_n;
    if (n > SR_ITEMS)
        return;
    for (i = 0; i < 2 * old_n; i++)
        old[i] = sr_items[i];
    for (i = 0; i < n; i++) {
        PyObject *item = PyList_GET_ITEM(list, i);    /* (checked) */
        sr_items[2 * i] = PyTuple_GET_ITEM(item, 0);
        sr_items[2 * i + 1] = PyTuple_GET_ITEM(item, 1);
        Py_INCREF(sr_items[2 * i]);
        Py_INCREF(sr_items[2 * i + 1]);
    }
    sr_n = n;
    Py_INCREF(status);
    sr_status = status;
    Py_INCREF(checked);
    sr_checked = checked;
    /* (last: a finalizer sees a whole entry) */
    Py_XDECREF(old_status);
    Py_XDECREF(old_checked);
    for (i = 0; i < 2 * old_n; i++)
        Py_DECREF(old[i]);
}
static PyObject *error_class;      /* socket2.errors.Error */
static PyObject *slow_marker;      /* wsgi._SLOW */
static PyObject *s_environ_attr;
static PyObject *s_wsgi_input, *s_start_response, *s_write, *s_recv,
    *s_sendall, *s_draining, *s_date_line, *s_hold, *s_finish, *s_raised,
    *s_after, *s_flush, *s_write_py, *s_whole, *s_start_py, *s_log_access;
static PyObject *b_close_end, *b_keep_end, *b_end;

#define QUEUE_MAX 65536             /* _reply._QUEUE_MAX */
#define HELD_MAX 16                 /* answers held while pipelining */
#define WRITE_ONE 65536             /* _write's one-sendall bound */

typedef struct {
    PyObject_HEAD
    PyObject *srv, *reader, *app, *scratch;
    double keepalive_timeout, header_timeout, send_timeout;
    Py_ssize_t max_requests;      /* -1: no limit */
    int access_log;
    PyObject *clock;
    time_t date_t;                /* the date line's second */
    PyObject *date;
} FastObject;

static int
fast_traverse(FastObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->srv);
    Py_VISIT(self->reader);
    Py_VISIT(self->app);
    Py_VISIT(self->scratch);
    Py_VISIT(self->clock);
    Py_VISIT(self->date);
    return 0;
}

static int
fast_clear(FastObject *self)
{
    Py_CLEAR(self->srv);
    Py_CLEAR(self->reader);
    Py_CLEAR(self->app);
    Py_CLEAR(self->scratch);
    Py_CLEAR(self->clock);
    Py_CLEAR(self->date);
    return 0;
}

static void
fast_dealloc(FastObject *self)
{
    PyObject_GC_UnTrack(self);
    fast_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
fast_init(FastObject *self, PyObject *args, PyObject *kw)
{
    static char *names[] = {"srv", "reader", "app", "scratch",
                            "keepalive_timeout", "header_timeout",
                            "send_timeout", "max_requests", "access_log",
                            "clock", NULL};
    PyObject *srv, *reader, *app, *scratch, *maxr, *clock;
    double ka, ht, st;
    int log;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOO!dddOpO:FastConfig",
                                     names, &srv, &reader, &app,
                                     &PyByteArray_Type, &scratch, &ka, &ht,
                                     &st, &maxr, &log, &clock))
        return -1;
    if (self->srv != NULL) {
        PyErr_SetString(PyExc_TypeError, "FastConfig is already "
                        "initialised");
        return -1;
    }
    if (!PyObject_TypeCheck(reader, &ReaderType)
            || ((ReaderObject *)reader)->ps.out == NULL) {
        PyErr_SetString(PyExc_TypeError, "FastConfig: reader must be a "
                        "HeadReader (initialised)");
        return -1;
    }
    if (maxr == Py_None) {
        self->max_requests = -1;
    } else {
        self->max_requests = PyLong_AsSsize_t(maxr);
        if (self->max_requests == -1 && PyErr_Occurred())
            return -1;
        if (self->max_requests < 0) {
            PyErr_SetString(PyExc_ValueError, "FastConfig: max_requests "
                            "must be None or >= 0");
            return -1;
        }
    }
#define SET(f, v) do { Py_INCREF(v); Py_XSETREF(self->f, v); } while (0)
    SET(srv, srv);
    SET(reader, reader);
    SET(app, app);
    SET(scratch, scratch);
    SET(clock, clock);
#undef SET
    self->keepalive_timeout = ka;
    self->header_timeout = ht;
    self->send_timeout = st;
    self->access_log = log;
    self->date_t = (time_t)-1;
    return 0;
}

PyDoc_STRVAR(fast_doc,
"FastConfig(srv, reader, app, scratch, keepalive_timeout, header_timeout,\n"
"           send_timeout, max_requests, access_log, clock)\n\n"
"What the compiled request loop of one serve() needs: the server, its\n"
"HeadReader, the application, the shared receive buffer, the limits\n"
"it applies, whether an access log is written, and the clock.");

static PyTypeObject FastType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "socket2._http_speedups.FastConfig",
    .tp_basicsize = sizeof(FastObject),
    .tp_dealloc = (destructor)fast_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = fast_doc,
    .tp_traverse = (traverseproc)fast_traverse,
    .tp_clear = (inquiry)fast_clear,
    .tp_init = (initproc)fast_init,
    .tp_new = PyType_GenericNew,
};

/* The Date line, made by srv.date_line() once a second. */
static PyObject *
date_line(FastObject *cfg)
{
    time_t now = time(NULL);
    if (now != cfg->date_t || cfg->date == NULL) {
        PyObject *d = PyObject_CallMethodNoArgs(cfg->srv, s_date_line);
        if (d == NULL)
            return NULL;
        if (!PyBytes_CheckExact(d)) {
            Py_DECREF(d);
            PyErr_SetString(PyExc_TypeError, "date_line() must give bytes");
            return NULL;
        }
        Py_XSETREF(cfg->date, d);
        cfg->date_t = now;
    }
    return cfg->date;
}

/* -- ConnBase -- */

typedef struct {
    PyObject_HEAD
    PyObject *sock, *srv, *buf, *out, *remote, *deadline, *client_error,
        *flush_timer, *flusher, *fast;
    Py_ssize_t pos, served;
    char idle, gone, linger;
    PyObject *weakrefs;
} ConnObject;

static int
conn_traverse(ConnObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->sock);
    Py_VISIT(self->srv);
    Py_VISIT(self->buf);
    Py_VISIT(self->out);
    Py_VISIT(self->remote);
    Py_VISIT(self->deadline);
    Py_VISIT(self->client_error);
    Py_VISIT(self->flush_timer);
    Py_VISIT(self->flusher);
    Py_VISIT(self->fast);
    return 0;
}

static int
conn_clear(ConnObject *self)
{
    Py_CLEAR(self->sock);
    Py_CLEAR(self->srv);
    Py_CLEAR(self->buf);
    Py_CLEAR(self->out);
    Py_CLEAR(self->remote);
    Py_CLEAR(self->deadline);
    Py_CLEAR(self->client_error);
    Py_CLEAR(self->flush_timer);
    Py_CLEAR(self->flusher);
    Py_CLEAR(self->fast);
    return 0;
}

static void
conn_dealloc(ConnObject *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakrefs != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    conn_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Connection(sock, srv): wsgi.ConnBase.__init__, the Python twin, line
   for line (one is made per connection).  REMOTE_ADDR/PORT come from the
   address the compiled accept() kept, else from wsgi._peer_address. */
static PyObject *peer_fn;             /* configure_peer() */
static PyObject *str_peer_sockaddr, *str_fast, *v_empty_bytes;

static PyObject *
conn_remote(PyObject *sock)
{
#ifndef _WIN32
    PyObject *kept, *sa, *r;
    kept = PyObject_GetAttr(sock, str_peer_sockaddr);
    if (kept == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            return NULL;
        PyErr_Clear();
    } else {
        sa = PyObject_CallNoArgs(kept);
        Py_DECREF(kept);
        if (sa == NULL)
            return NULL;
        r = PyBytes_Check(sa) ? format_peer_bytes(sa)
                              : (Py_INCREF(Py_None), Py_None);
        Py_DECREF(sa);
        if (r == NULL || r != Py_None)
            return r;
        Py_DECREF(r);
    }
#endif
    if (peer_fn == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "ConnBase: configure_peer() "
                        "was not called");
        return NULL;
    }
    return PyObject_CallOneArg(peer_fn, sock);
}

static int
conn_init(ConnObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"sock", "srv", NULL};
    PyObject *sock, *srv, *v;
    if (kwds == NULL && PyTuple_CheckExact(args)
            && PyTuple_GET_SIZE(args) == 2) {
        sock = PyTuple_GET_ITEM(args, 0);
        srv = PyTuple_GET_ITEM(args, 1);
    } else if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO:Connection",
                                            kwlist, &sock, &srv)) {
        return -1;
    }
#define SETF(field, value) do { PyObject *_v = (value);                 \
        Py_INCREF(_v); Py_XSETREF(self->field, _v); } while (0)
    SETF(sock, sock);
    SETF(srv, srv);
    SETF(buf, v_empty_bytes);
    self->pos = 0;
    v = PyList_New(0);
    if (v == NULL)
        return -1;
    Py_XSETREF(self->out, v);
    self->served = 0;
    self->idle = 0;
    self->gone = 0;               /* a read or write on it failed */
    SETF(deadline, Py_None);      /* the sweeper closes it past this */
    SETF(client_error, Py_None);  /* (status, why): the client's failure */
    self->linger = 0;             /* unread bytes may follow: see close() */
    SETF(flush_timer, Py_None);   /* writes held responses if an app parks */
    SETF(flusher, Py_None);       /* the thread that timer started */
#undef SETF
    v = PyObject_GetAttr(srv, str_fast);  /* the compiled loop's settings */
    if (v == NULL)
        return -1;
    Py_XSETREF(self->fast, v);
    v = conn_remote(sock);
    if (v == NULL)
        return -1;
    Py_XSETREF(self->remote, v);
    return 0;
}

#define CONN_OBJ(name) \
    {#name, T_OBJECT, offsetof(ConnObject, name), 0, NULL}
static PyMemberDef conn_members[] = {
    CONN_OBJ(sock), CONN_OBJ(srv), CONN_OBJ(buf), CONN_OBJ(out),
    CONN_OBJ(remote), CONN_OBJ(deadline), CONN_OBJ(client_error),
    CONN_OBJ(flush_timer), CONN_OBJ(flusher), CONN_OBJ(fast),
    {"pos", T_PYSSIZET, offsetof(ConnObject, pos), 0, NULL},
    {"served", T_PYSSIZET, offsetof(ConnObject, served), 0, NULL},
    {"idle", T_BOOL, offsetof(ConnObject, idle), 0, NULL},
    {"gone", T_BOOL, offsetof(ConnObject, gone), 0, NULL},
    {"linger", T_BOOL, offsetof(ConnObject, linger), 0, NULL},
    {NULL}
};
#undef CONN_OBJ

/* -- ReplyBase -- */

typedef struct {
    PyObject_HEAD
    PyObject *conn, *envd, *body, *status, *length, *left;  /* envd:
                                                    .environ */
    int code, version;
    Py_ssize_t sent;
    char keep, head_sent, chunked, no_body, is_head, ended;
    char app_date;               /* the application sent its own Date */
} ReplyObject;

static int
reply_traverse(ReplyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->conn);
    Py_VISIT(self->envd);
    Py_VISIT(self->body);
    Py_VISIT(self->status);
    Py_VISIT(self->length);
    Py_VISIT(self->left);
    return 0;
}

static int
reply_clear(ReplyObject *self)
{
    Py_CLEAR(self->conn);
    Py_CLEAR(self->envd);
    Py_CLEAR(self->body);
    Py_CLEAR(self->status);
    Py_CLEAR(self->length);
    Py_CLEAR(self->left);
    return 0;
}

static void
reply_dealloc(ReplyObject *self)
{
    PyObject_GC_UnTrack(self);
    reply_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

#define REPLY_OBJ(name) \
    {#name, T_OBJECT, offsetof(ReplyObject, name), 0, NULL}
#define REPLY_BOOL(name) \
    {#name, T_BOOL, offsetof(ReplyObject, name), 0, NULL}
static PyMemberDef reply_members[] = {
    REPLY_OBJ(conn), {"environ", T_OBJECT, offsetof(ReplyObject, envd), 0,
                      NULL}, REPLY_OBJ(body), REPLY_OBJ(status),
    REPLY_OBJ(length), REPLY_OBJ(left),
    {"code", T_INT, offsetof(ReplyObject, code), 0, NULL},
    {"version", T_INT, offsetof(ReplyObject, version), 0, NULL},
    {"sent", T_PYSSIZET, offsetof(ReplyObject, sent), 0, NULL},
    REPLY_BOOL(keep), REPLY_BOOL(head_sent), REPLY_BOOL(chunked),
    REPLY_BOOL(no_body), REPLY_BOOL(is_head), REPLY_BOOL(ended),
    REPLY_BOOL(app_date),
    {NULL}
};
#undef REPLY_OBJ
#undef REPLY_BOOL

/* start_response(status, headers, exc_info=None): a call whose (status,
 * headers) were checked before (Reply._start_response caches them in
 * _reply._CHECKED) is answered here; every other goes there. */
static PyObject *
reply_start_response(ReplyObject *self, PyObject *const *args,
                     Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *key, *tup, *checked;
    if (kwnames != NULL || nargs < 2 || nargs > 3
            || (nargs == 3 && args[2] != Py_None)
            || (self->status != NULL && self->status != Py_None)
            || checked_cache == NULL || !PyUnicode_CheckExact(args[0])
            || !PyList_CheckExact(args[1]))
        goto slow;
    if (sr_checked != NULL && args[0] == sr_status
            && PyList_GET_SIZE(args[1]) == sr_n && sr_same(args[1])) {
        checked = sr_checked;   /* the very strings checked last time */
        Py_INCREF(checked);
        goto found;
    }
    {
        /* The cache compares by equality: a subclass of tuple or str
         * equal to a checked item must still meet _check's exact types. */
        Py_ssize_t i, n = PyList_GET_SIZE(args[1]);
        for (i = 0; i < n; i++) {
            PyObject *item = PyList_GET_ITEM(args[1], i);
            if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2
                    || !PyUnicode_CheckExact(PyTuple_GET_ITEM(item, 0))
                    || !PyUnicode_CheckExact(PyTuple_GET_ITEM(item, 1)))
                goto slow;
        }
    }
    tup = PyList_AsTuple(args[1]);
    if (tup == NULL)
        return NULL;
    key = PyTuple_Pack(2, args[0], tup);
    Py_DECREF(tup);
    if (key == NULL)
        return NULL;
    {
        /* The lookup may run a stored key's __eq__, which may replace
         * the cache: hold it, and the entry found in it. */
        PyObject *cache = checked_cache;
        Py_INCREF(cache);
        checked = PyDict_GetItemWithError(cache, key);
        Py_XINCREF(checked);
        Py_DECREF(cache);
    }
    Py_DECREF(key);
    if (checked == NULL) {
        if (PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_TypeError))
                return NULL;
            PyErr_Clear();    /* unhashable: checked (and refused) there */
        }
        goto slow;
    }
    /* What _check makes, exactly: anything else goes the slow way (and
     * no hook of an odd entry's items can run here). */
    if (!PyTuple_CheckExact(checked) || PyTuple_GET_SIZE(checked) != 5
            || !PyBytes_CheckExact(PyTuple_GET_ITEM(checked, 0))
            || !PyLong_CheckExact(PyTuple_GET_ITEM(checked, 1))
            || !(PyTuple_GET_ITEM(checked, 2) == Py_None
                 || PyLong_CheckExact(PyTuple_GET_ITEM(checked, 2)))
            || !PyBool_Check(PyTuple_GET_ITEM(checked, 3))
            || !PyBool_Check(PyTuple_GET_ITEM(checked, 4))) {
        Py_DECREF(checked);
        goto slow;
    }
    sr_remember(args[0], args[1], checked);
found:
    {
        PyObject *st = PyTuple_GET_ITEM(checked, 0);
        long code = PyLong_AsLong(PyTuple_GET_ITEM(checked, 1));
        PyObject *len = PyTuple_GET_ITEM(checked, 2);
        int close = PyTuple_GET_ITEM(checked, 3) == Py_True;
        int app_date = PyTuple_GET_ITEM(checked, 4) == Py_True;
        if (code == -1 && PyErr_Occurred()) {
            Py_DECREF(checked);
            return NULL;
        }
        if ((self->status != NULL && !PyBytes_CheckExact(self->status)
             && self->status != Py_None)
                || (self->length != NULL && self->length != Py_None
                    && !PyLong_CheckExact(self->length))) {
            Py_DECREF(checked);
            goto slow;   /* (replacing them could run a finalizer) */
        }
        Py_INCREF(st);
        Py_XSETREF(self->status, st);
        self->code = (int)code;
        Py_INCREF(len);
        Py_XSETREF(self->length, len);
        Py_DECREF(checked);
        self->app_date = (char)app_date;
        if (close)
            self->keep = 0;
        if (code == 204 || code == 304)
            self->no_body = 1;
    }
    return PyObject_GetAttr((PyObject *)self, s_write);
slow:
    {
        PyObject *m = PyObject_GetAttr((PyObject *)self, s_start_py);
        PyObject *r;
        if (m == NULL)
            return NULL;
        r = PyObject_Vectorcall(m, args, (size_t)nargs, kwnames);
        Py_DECREF(m);
        return r;
    }
}

static PyMethodDef reply_methods[] = {
    {"start_response", (PyCFunction)(void (*)(void))reply_start_response,
     METH_FASTCALL | METH_KEYWORDS,
     "PEP 3333's start_response: returns the legacy ``write``."},
    {NULL}
};

static PyTypeObject ReplyType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "socket2._http_speedups.ReplyBase",
    .tp_basicsize = sizeof(ReplyObject),
    .tp_dealloc = (destructor)reply_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A reply's fields, and start_response (see _reply.py).",
    .tp_traverse = (traverseproc)reply_traverse,
    .tp_clear = (inquiry)reply_clear,
    .tp_members = reply_members,
    .tp_methods = reply_methods,
    .tp_new = PyType_GenericNew,
};

/* -- the loop's steps -- */

static int
is_error(void)
{
    return PyErr_ExceptionMatches(error_class);
}

static int
set_deadline(ConnObject *c, FastObject *cfg, double after)
{
    PyObject *now, *d;
    double t;
#if defined(CLOCK_MONOTONIC) && !defined(_WIN32)
    struct timespec ts;
    if (cfg->clock == monotonic_fn && monotonic_fn != NULL
            && clock_gettime(CLOCK_MONOTONIC, &ts) == 0) {
        /* time.monotonic() itself, without the call: its arithmetic */
        int64_t ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
        t = (double)ns;
        if (ns % 1000000000 == 0)
            t = (double)(ns / 1000000000);
        else
            t /= 1e9;
    } else
#endif
    {
        now = PyObject_CallNoArgs(cfg->clock);
        if (now == NULL)
            return -1;
        t = PyFloat_AsDouble(now);
        Py_DECREF(now);
        if (t == -1.0 && PyErr_Occurred())
            return -1;
    }
    d = PyFloat_FromDouble(t + after);
    if (d == NULL)
        return -1;
    Py_XSETREF(c->deadline, d);
    return 0;
}

static void
clear_deadline(ConnObject *c)
{
    Py_INCREF(Py_None);
    Py_XSETREF(c->deadline, Py_None);
}

/* The connection's fields as the loop needs them.  Checked when the loop
 * starts and again after anything that may have run Python code (the
 * application can reach the connection: start_response.__self__.conn),
 * so that a field changed or deleted meanwhile is a TypeError, never a
 * crash. */
static int
conn_check(ConnObject *c, FastObject *cfg)
{
    if ((PyObject *)cfg != c->fast || cfg->reader == NULL
            || cfg->srv == NULL || cfg->app == NULL || cfg->scratch == NULL
            || cfg->clock == NULL
            || c->buf == NULL || !PyBytes_CheckExact(c->buf)
            || c->out == NULL || !PyList_CheckExact(c->out)
            || c->remote == NULL || !PyTuple_CheckExact(c->remote)
            || PyTuple_GET_SIZE(c->remote) != 2 || c->sock == NULL
            || c->srv == NULL || reply_type == NULL) {
        PyErr_SetString(PyExc_TypeError, "_serve_simple: the connection "
                        "is not set up for the compiled loop (a field is "
                        "missing or of the wrong type)");
        return -1;
    }
    return 0;
}

/* Connection._write for a piece up to 64 KiB: one sendall within
 * send_timeout (the sweeper's deadline). */
static int
conn_write(ConnObject *c, FastObject *cfg, PyObject *data)
{
    PyObject *r, *args[2];
    if (conn_check(c, cfg) < 0)
        return -1;
    if (PyBytes_GET_SIZE(data) > WRITE_ONE) {
        r = PyObject_CallMethodOneArg((PyObject *)c, s_write_py, data);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
        return 0;
    }
    if (set_deadline(c, cfg, cfg->send_timeout) < 0)
        return -1;
    if (conn_check(c, cfg) < 0) {    /* (the old deadline's finalizer) */
        clear_deadline(c);
        return -1;
    }
    args[0] = c->sock;
    args[1] = data;
    Py_INCREF(c->sock);
    r = PyObject_VectorcallMethod(s_sendall, args,
                                  2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(args[0]);
    clear_deadline(c);
    if (r == NULL) {
        if (is_error())
            c->gone = 1;
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

static int
held_flush_pending(ConnObject *c)
{
    return (c->flush_timer != NULL && c->flush_timer != Py_None)
        || (c->flusher != NULL && c->flusher != Py_None);
}

/* Connection.flush(). */
static int
conn_flush(ConnObject *c, FastObject *cfg)
{
    PyObject *data;
    Py_ssize_t n;
    int r;
    if (conn_check(c, cfg) < 0)
        return -1;
    n = PyList_GET_SIZE(c->out);
    if (held_flush_pending(c)) {
        PyObject *x = PyObject_CallMethodNoArgs((PyObject *)c, s_flush);
        if (x == NULL)
            return -1;
        Py_DECREF(x);
        return 0;
    }
    if (n == 0)
        return 0;
    if (n == 1 && PyBytes_CheckExact(PyList_GET_ITEM(c->out, 0))) {
        data = PyList_GET_ITEM(c->out, 0);
        Py_INCREF(data);
    } else {
        Py_ssize_t i, total = 0;
        char *p;
        for (i = 0; i < n; i++) {
            PyObject *x = PyList_GET_ITEM(c->out, i);
            if (!PyBytes_CheckExact(x)) {      /* only Python puts these */
                x = PyObject_CallMethodNoArgs((PyObject *)c, s_flush);
                if (x == NULL)
                    return -1;
                Py_DECREF(x);
                return 0;
            }
            total += PyBytes_GET_SIZE(x);
        }
        data = PyBytes_FromStringAndSize(NULL, total);
        if (data == NULL)
            return -1;
        p = PyBytes_AS_STRING(data);
        for (i = 0; i < n; i++) {
            PyObject *x = PyList_GET_ITEM(c->out, i);
            memcpy(p, PyBytes_AS_STRING(x), (size_t)PyBytes_GET_SIZE(x));
            p += PyBytes_GET_SIZE(x);
        }
    }
    if (PyList_SetSlice(c->out, 0, n, NULL) < 0) {
        Py_DECREF(data);
        return -1;
    }
    r = conn_write(c, cfg, data);
    Py_DECREF(data);
    return r;
}

/* "Content-Length: N\r\n" into out (48 bytes); returns its length.
 * (By hand: the Windows C runtimes disagree on printf's %zd.) */
static Py_ssize_t
length_line(char *out, Py_ssize_t n)
{
    static const char name[] = "Content-Length: ";
    char digits[24];
    int k = 0;
    Py_ssize_t w = (Py_ssize_t)sizeof(name) - 1;
    memcpy(out, name, (size_t)w);
    do {
        digits[k++] = (char)('0' + n % 10);
        n /= 10;
    } while (n > 0 && k < (int)sizeof(digits));
    while (k > 0)
        out[w++] = digits[--k];
    out[w++] = '\r';
    out[w++] = '\n';
    return w;
}

/* A reply's length (or what is left of it): None, or an exact int >= 0
 * that fits a Py_ssize_t (an exact int: no hook runs to read it). */
static int
length_ok(PyObject *v)
{
    Py_ssize_t n;
    if (v == NULL || v == Py_None)
        return 1;
    if (!PyLong_CheckExact(v))
        return 0;
    n = PyLong_AsSsize_t(v);
    if (n == -1 && PyErr_Occurred())
        return 0;
    return n >= 0;
}

/* Reply._whole + _head for a list of one bytes (the caller checked),
 * then the pipelining decision: queue the answer, or write it (with
 * those queued) now. */
static int
reply_whole(ReplyObject *rp, ConnObject *c, FastObject *cfg, PyObject *data,
            PyObject *status, int draining)
{
    PyObject *date, *out;
    Py_ssize_t dlen = PyBytes_GET_SIZE(data), slen, total, w, dsz;
    char cl[48];
    Py_ssize_t cllen = 0;
    PyObject *end;
    char *p;
    int rc;
    rp->head_sent = 1;
    if (draining)
        rp->keep = 0;
    date = date_line(cfg);       /* (may run Python: checked after) */
    if (date == NULL)
        return -1;
    Py_INCREF(date);
    if (conn_check(c, cfg) < 0) {
        Py_DECREF(date);
        return -1;
    }
    /* From here on no Python code runs until the append below. */
    if (!length_ok(rp->length) || !length_ok(rp->left)) {
        Py_DECREF(date);
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "a reply's length must be "
                            "an int >= 0 or None");
        return -1;
    }
    if (rp->no_body) {
        if (rp->is_head && (rp->length == NULL || rp->length == Py_None))
            cllen = length_line(cl, dlen);
    } else if (rp->length != NULL && rp->length != Py_None) {
        Py_INCREF(rp->length);
        Py_XSETREF(rp->left, rp->length);
    } else {
        PyObject *t = PyLong_FromSsize_t(dlen);
        if (t == NULL) {
            Py_DECREF(date);
            return -1;
        }
        Py_XSETREF(rp->left, t);
        cllen = length_line(cl, dlen);
    }
    end = !rp->keep ? b_close_end : rp->version == 10 ? b_keep_end : b_end;
    if (rp->no_body) {
        dlen = 0;
    } else if (rp->left != NULL && rp->left != Py_None) {
        Py_ssize_t left = PyLong_AsSsize_t(rp->left);   /* an exact int */
        if (left == -1 && PyErr_Occurred()) {
            Py_DECREF(date);
            return -1;
        }
        if (dlen != left) {
            if (dlen > left)
                dlen = left;
            rp->keep = 0;
        }
    }
    rp->sent = dlen;
    slen = PyBytes_GET_SIZE(status);
    dsz = rp->app_date ? 0 : PyBytes_GET_SIZE(date);  /* (the app's own) */
    total = slen + dsz + cllen + PyBytes_GET_SIZE(end) + dlen;
    out = PyBytes_FromStringAndSize(NULL, total);
    if (out == NULL) {
        Py_DECREF(date);
        return -1;
    }
    p = PyBytes_AS_STRING(out);
    memcpy(p, PyBytes_AS_STRING(status), (size_t)slen);
    w = slen;
    memcpy(p + w, PyBytes_AS_STRING(date), (size_t)dsz);
    w += dsz;
    memcpy(p + w, cl, (size_t)cllen);
    w += cllen;
    /* (a Connection line decided before the keep above changed: as
     * _whole, whose head is made before the length check) */
    memcpy(p + w, PyBytes_AS_STRING(end), (size_t)PyBytes_GET_SIZE(end));
    w += PyBytes_GET_SIZE(end);
    memcpy(p + w, PyBytes_AS_STRING(data), (size_t)dlen);
    Py_DECREF(date);
    rc = PyList_Append(c->out, out);
    Py_DECREF(out);
    if (rc < 0)
        return -1;
    if (!rp->keep || c->pos >= PyBytes_GET_SIZE(c->buf)
            || PyList_GET_SIZE(c->out) >= HELD_MAX || dlen > QUEUE_MAX)
        return conn_flush(c, cfg);
    return 0;
}

/* Reply.run for a reply made here; returns 1/0 (keep or not), -1 on an
 * exception to propagate. */
static int
reply_run(ReplyObject *rp, ConnObject *c, FastObject *cfg, PyObject *env)
{
    PyObject *sr, *result, *args[2], *r;
    int keep;
    sr = PyObject_GetAttr((PyObject *)rp, s_start_response);
    if (sr == NULL)
        return -1;
    /* The reply's environ, read after that lookup (which may run code);
     * the request's own if it was deleted. */
    args[0] = rp->envd != NULL ? rp->envd : env;
    args[1] = sr;
    Py_INCREF(args[0]);          /* held: the application can drop fields */
    result = PyObject_Vectorcall(cfg->app, args, 2, NULL);
    Py_DECREF(args[0]);
    Py_DECREF(sr);
    if (result == NULL)
        goto raised;
    if (PyList_CheckExact(result) && !rp->head_sent
            && PyList_GET_SIZE(result) == 1
            && PyBytes_CheckExact(PyList_GET_ITEM(result, 0))
            && rp->status != NULL && PyBytes_CheckExact(rp->status)) {
        /* Our own references first: what follows may run Python code
         * (srv.draining) that empties the list or drops the status. */
        PyObject *data = PyList_GET_ITEM(result, 0);
        PyObject *status = rp->status;
        PyObject *d;
        int draining, rc;
        PyObject *srv = c->srv ? c->srv : cfg->srv;
        Py_INCREF(data);
        Py_INCREF(status);
        Py_INCREF(srv);              /* its own getattr may replace it */
        d = PyObject_GetAttr(srv, s_draining);
        Py_DECREF(srv);
        draining = d == NULL ? -1 : PyObject_IsTrue(d);
        Py_XDECREF(d);
        rc = draining < 0 ? -1
            : reply_whole(rp, c, cfg, data, status, draining);
        Py_DECREF(status);
        Py_DECREF(data);
        Py_DECREF(result);
        if (rc < 0)
            goto raised;
        rp->ended = 1;
    } else {
        r = PyObject_CallMethodOneArg((PyObject *)rp, s_finish, result);
        Py_DECREF(result);
        if (r == NULL)
            return -1;
        keep = PyObject_IsTrue(r);
        Py_DECREF(r);
        return keep;
    }
    if (cfg->access_log) {
        PyObject *code = PyLong_FromLong(rp->code);
        PyObject *sent = PyLong_FromSsize_t(rp->sent);
        PyObject *env = rp->envd ? rp->envd : Py_None;
        Py_INCREF(env);              /* the method lookup may run code */
        r = code && sent ? PyObject_CallMethodObjArgs(
            cfg->srv, s_log_access, (PyObject *)c, env, code, sent,
            NULL) : NULL;
        Py_DECREF(env);
        Py_XDECREF(code);
        Py_XDECREF(sent);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
    }
    return rp->keep;
raised:
    rp->ended = 1;
    {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        if (tb != NULL && value != NULL)
            PyException_SetTraceback(value, tb);
        Py_XDECREF(type);
        Py_XDECREF(tb);
        if (value == NULL)
            return -1;
        r = PyObject_CallMethodOneArg((PyObject *)rp, s_raised, value);
        Py_DECREF(value);
    }
    if (r == NULL)
        return -1;
    keep = PyObject_IsTrue(r);
    Py_DECREF(r);
    return keep;
}

/* respond() for a plain head (environ built, no body, no Expect). */
static int
conn_respond(ConnObject *c, FastObject *cfg, HeadObject *h, int draining)
{
    ReplyObject *rp;
    PyObject *env = h->envd;
    int keep;
    c->served++;
    if (PyDict_SetItem(env, s_wsgi_input, empty_input) < 0)
        return -1;
    keep = h->keep_alive && !draining;
    if (cfg->max_requests >= 0 && c->served >= cfg->max_requests)
        keep = 0;
    if (conn_check(c, cfg) < 0)
        return -1;
    rp = (ReplyObject *)((PyTypeObject *)reply_type)->tp_alloc(
        (PyTypeObject *)reply_type, 0);
    if (rp == NULL)
        return -1;
    Py_INCREF(c);
    rp->conn = (PyObject *)c;
    Py_INCREF(env);
    rp->envd = env;
    Py_INCREF(empty_input);
    rp->body = empty_input;
    rp->keep = (char)keep;
    rp->version = h->version;
    rp->no_body = rp->is_head = h->method == method_bytes[1];
    /* (the allocation above may have run the collector's finalizers) */
    if (conn_check(c, cfg) < 0) {
        Py_DECREF(rp);
        return -1;
    }
    if (PyList_GET_SIZE(c->out) > 0) {
        PyObject *x = PyObject_CallMethodNoArgs((PyObject *)c, s_hold);
        if (x == NULL) {
            Py_DECREF(rp);
            return -1;
        }
        Py_DECREF(x);
    }
    keep = reply_run(rp, c, cfg, env);
    if (keep >= 0 && c->client_error != NULL && c->client_error != Py_None) {
        PyObject *k = PyBool_FromLong(keep);
        PyObject *body = empty_input;
        PyObject *x;
        Py_INCREF(body);             /* the method lookup may run code */
        x = PyObject_CallMethodObjArgs((PyObject *)c, s_after,
                                       (PyObject *)rp, env, body, k, NULL);
        Py_DECREF(body);
        Py_DECREF(k);
        keep = x == NULL ? -1 : PyObject_IsTrue(x);
        Py_XDECREF(x);
    }
    Py_DECREF(rp);
    return keep;
}

PyDoc_STRVAR(serve_simple_doc,
"_serve_simple() -> head, None or _SLOW\n\n"
"Serve plain requests until one is not (see wsgi.Connection).");

static PyObject *serve_loop(ConnObject *c, FastObject *cfg);

static PyObject *
conn_serve_simple(ConnObject *c, PyObject *unused)
{
    FastObject *cfg = (FastObject *)c->fast;
    PyObject *r;
    if (cfg == NULL || !PyObject_TypeCheck((PyObject *)cfg, &FastType)) {
        PyErr_SetString(PyExc_TypeError, "_serve_simple: the connection "
                        "has no FastConfig");
        return NULL;
    }
    Py_INCREF(cfg);              /* the application may replace c->fast */
    r = serve_loop(c, cfg);
    Py_DECREF(cfg);
    return r;
}

static PyObject *
serve_loop(ConnObject *c, FastObject *cfg)
{
    /* Any call into Python (the application; another connection's
     * application while this one waits; a finalizer run by replacing a
     * field) may change this connection's fields: each step below
     * checks them (conn_check) after such a call, or works on references
     * of its own. */
    for (;;) {
        PyObject *d, *srv;
        int draining, keep, rc;
        if (conn_check(c, cfg) < 0)
            return NULL;
        srv = c->srv;
        Py_INCREF(srv);
        if (c->pos < PyBytes_GET_SIZE(c->buf)) {
            PyObject *base = PyObject_GetAttr(srv, s_environ_attr);
            PyObject *buf, *remote;
            HeadObject *h;
            if (base == NULL) {
                Py_DECREF(srv);
                return NULL;
            }
            if (!PyDict_CheckExact(base) || conn_check(c, cfg) < 0) {
                Py_DECREF(base);
                Py_DECREF(srv);
                if (PyErr_Occurred())
                    return NULL;
                Py_INCREF(slow_marker);
                return slow_marker;
            }
            buf = c->buf;
            remote = c->remote;
            Py_INCREF(buf);
            Py_INCREF(remote);
            h = reader_parse((ReaderObject *)cfg->reader, buf, c->pos, base,
                             remote, &rc);
            Py_DECREF(remote);
            Py_DECREF(buf);
            Py_DECREF(base);
            if (h == NULL) {
                Py_DECREF(srv);
                if (rc == 0)
                    return NULL;            /* a Python error */
                PyErr_Clear();              /* next_head() refuses it */
                Py_INCREF(slow_marker);
                return slow_marker;
            }
            c->pos = h->end;
            if (h->envd == Py_None || h->body_kind != S2H_BODY_NONE
                    || h->expect_unknown || h->expect_continue) {
                Py_DECREF(srv);
                return (PyObject *)h;       /* respond() */
            }
            d = PyObject_GetAttr(srv, s_draining);
            Py_DECREF(srv);
            draining = d == NULL ? -1 : PyObject_IsTrue(d);
            Py_XDECREF(d);
            keep = draining < 0 ? -1 : conn_respond(c, cfg, h, draining);
            Py_DECREF(h);
            if (keep < 0)
                return NULL;
            if (!keep)
                Py_RETURN_NONE;
            continue;
        }
        /* The buffer is used up: write what is queued, then wait for
         * the next request (next_head's idle branch and receive()). */
        if (conn_flush(c, cfg) < 0) {
            Py_DECREF(srv);
            return NULL;
        }
        d = PyObject_GetAttr(srv, s_draining);
        Py_DECREF(srv);
        draining = d == NULL ? -1 : PyObject_IsTrue(d);
        Py_XDECREF(d);
        if (draining < 0)
            return NULL;
        if (draining)
            Py_RETURN_NONE;
        c->idle = 1;
        if (set_deadline(c, cfg, c->served ? cfg->keepalive_timeout
                                           : cfg->header_timeout) < 0) {
            c->idle = 0;
            return NULL;
        }
        {
            PyObject *args[2], *r, *data;
            Py_ssize_t n;
            if (conn_check(c, cfg) < 0
                    || (PyList_GET_SIZE(c->out) > 0
                        && conn_flush(c, cfg) < 0)
                    || conn_check(c, cfg) < 0) {
                c->idle = 0;
                clear_deadline(c);
                return NULL;
            }
            args[0] = c->sock;
            args[1] = cfg->scratch;
            Py_INCREF(args[0]);
            r = PyObject_VectorcallMethod(
                s_recv, args, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
            Py_DECREF(args[0]);
            c->idle = 0;
            if (r == NULL) {
                int gone = is_error();
                clear_deadline(c);
                if (gone)
                    c->gone = 1;
                return NULL;
            }
            n = PyNumber_Check(r) ? PyLong_AsSsize_t(r) : -2;
            Py_DECREF(r);
            clear_deadline(c);
            if (n == -1 && PyErr_Occurred())
                return NULL;
            if (n == 0)
                Py_RETURN_NONE;
            if (n < 0 || n > PyByteArray_GET_SIZE(cfg->scratch)) {
                PyErr_SetString(PyExc_RuntimeError, "recv() gave a count "
                                "outside the buffer");
                return NULL;
            }
            data = PyBytes_FromStringAndSize(
                PyByteArray_AS_STRING(cfg->scratch), n);
            if (data == NULL)
                return NULL;
            Py_XSETREF(c->buf, data);
            c->pos = 0;
        }
    }
}

static PyMethodDef conn_methods[] = {
    {"_serve_simple", (PyCFunction)conn_serve_simple, METH_NOARGS,
     serve_simple_doc},
    {NULL}
};

static PyTypeObject ConnType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "socket2._http_speedups.ConnBase",
    .tp_basicsize = sizeof(ConnObject),
    .tp_dealloc = (destructor)conn_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A connection's fields, and the compiled request loop "
              "(see wsgi.py).",
    .tp_traverse = (traverseproc)conn_traverse,
    .tp_clear = (inquiry)conn_clear,
    .tp_members = conn_members,
    .tp_methods = conn_methods,
    .tp_weaklistoffset = offsetof(ConnObject, weakrefs),
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)conn_init,
};

/* -- roomy ----------------------------------------------------------------- */

PyDoc_STRVAR(roomy_doc,
"roomy(d, room) -> a copy of the dict d with room for *room* more keys\n\n"
"serve()'s environ base: every request's environ is a copy of it plus\n"
"~10 keys and one per header, and a copy keeps its original's table, so\n"
"a base made roomy spares each request a resize of its environ.");

static PyObject *
roomy(PyObject *mod, PyObject *args)
{
    PyObject *d, *r, *k, *v;
    Py_ssize_t room, pos = 0;
    if (!PyArg_ParseTuple(args, "O!n:roomy", &PyDict_Type, &d, &room))
        return NULL;
    if (room < 0 || room > 4096) {
        PyErr_SetString(PyExc_ValueError, "roomy: room must be 0..4096");
        return NULL;
    }
    r = _PyDict_NewPresized(PyDict_GET_SIZE(d) + room);
    if (r == NULL)
        return NULL;
    while (PyDict_Next(d, &pos, &k, &v)) {
        if (PyDict_SetItem(r, k, v) < 0) {
            Py_DECREF(r);
            return NULL;
        }
    }
    return r;
}

/* -- peer_address ---------------------------------------------------------- */

#ifndef _WIN32
PyDoc_STRVAR(peer_address_doc,
"peer_address(fd_or_sockaddr) -> (addr, port) or None\n\n"
"The connected peer of the socket fd as text, ('1.2.3.4', '5678'), as\n"
"WSGI's REMOTE_ADDR and REMOTE_PORT want it; None when it has none\n"
"(a unix socket) or getpeername() fails.  Given bytes, a struct sockaddr\n"
"as accept() returned it, the same without a system call.");

static PyObject *
peer_address(PyObject *mod, PyObject *arg)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    long fd;
    if (PyBytes_Check(arg))
        return format_peer_bytes(arg);
    fd = PyLong_AsLong(arg);
    if (fd == -1 && PyErr_Occurred())
        return NULL;
    if (fd < 0 || fd > INT_MAX)
        Py_RETURN_NONE;
    if (getpeername((int)fd, (struct sockaddr *)&ss, &len) < 0)
        Py_RETURN_NONE;
    return format_peer(&ss);
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
    PyObject *b, *pe, *rt = NULL, *em = NULL, *cc = NULL, *ec = NULL,
        *sm = NULL;
    if (!PyArg_ParseTuple(args, "O!O|O!OO!OO:configure", &PyTuple_Type, &b,
                          &pe, &PyType_Type, &rt, &em, &PyDict_Type, &cc,
                          &ec, &sm))
        return NULL;
    if (rt != NULL) {
        if (!PyType_IsSubtype((PyTypeObject *)rt, &ReplyType)) {
            PyErr_SetString(PyExc_TypeError, "configure: the reply type "
                            "must derive from ReplyBase");
            return NULL;
        }
        if (em == NULL || cc == NULL || ec == NULL || sm == NULL) {
            PyErr_SetString(PyExc_TypeError, "configure: the loop's "
                            "objects come together");
            return NULL;
        }
#define KEEP(var, v) do { Py_INCREF(v); Py_XSETREF(var, v); } while (0)
        KEEP(reply_type, rt);
        KEEP(empty_input, em);
        KEEP(checked_cache, cc);
        KEEP(error_class, ec);
        KEEP(slow_marker, sm);
#undef KEEP
    }
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

PyDoc_STRVAR(configure_peer_doc,
"configure_peer(peer_address)\n\n"
"Called once by socket2/http/wsgi.py: the function a new connection\n"
"(ConnBase(sock, srv)) takes its (REMOTE_ADDR, REMOTE_PORT) from when its\n"
"socket kept no address from accept().");

static PyObject *
configure_peer(PyObject *mod, PyObject *fn)
{
    if (!PyCallable_Check(fn)) {
        PyErr_SetString(PyExc_TypeError, "configure_peer: needs a callable");
        return NULL;
    }
    Py_INCREF(fn);
    Py_XSETREF(peer_fn, fn);
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"configure", configure, METH_VARARGS, configure_doc},
    {"configure_peer", configure_peer, METH_O, configure_peer_doc},
    {"roomy", roomy, METH_VARARGS, roomy_doc},
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
    if (PyType_Ready(&HeadType) < 0 || PyType_Ready(&ReaderType) < 0
            || PyType_Ready(&FastType) < 0 || PyType_Ready(&ConnType) < 0
            || PyType_Ready(&ReplyType) < 0)
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
    INTERN(str_peer_sockaddr, "_peer_sockaddr");
    INTERN(str_fast, "fast");
    if (!(v_empty_bytes = PyBytes_FromStringAndSize(NULL, 0)))
        return NULL;
    {
        PyObject *time_mod = PyImport_ImportModule("time");
        if (time_mod == NULL)
            return NULL;
        monotonic_fn = PyObject_GetAttrString(time_mod, "monotonic");
        Py_DECREF(time_mod);
        if (monotonic_fn == NULL)
            return NULL;
        if (!PyCFunction_Check(monotonic_fn))   /* replaced: always call */
            Py_CLEAR(monotonic_fn);
    }
    INTERN(s_wsgi_input, "wsgi.input");
    INTERN(s_start_response, "start_response");
    INTERN(s_write, "write");
    INTERN(s_recv, "recv");
    INTERN(s_sendall, "sendall");
    INTERN(s_draining, "draining");
    INTERN(s_date_line, "date_line");
    INTERN(s_hold, "hold_while_app_runs");
    INTERN(s_finish, "finish");
    INTERN(s_raised, "_raised");
    INTERN(s_after, "after");
    INTERN(s_flush, "flush");
    INTERN(s_write_py, "_write");
    INTERN(s_whole, "_whole");
    INTERN(s_start_py, "_start_response");
    INTERN(s_log_access, "log_access");
    INTERN(s_environ_attr, "environ");
    if (!(b_close_end = PyBytes_FromString("Connection: close\r\n\r\n"))
            || !(b_keep_end = PyBytes_FromString(
                "Connection: keep-alive\r\n\r\n"))
            || !(b_end = PyBytes_FromString("\r\n")))
        return NULL;
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
    Py_INCREF(&FastType);
    Py_INCREF(&ConnType);
    Py_INCREF(&ReplyType);
    if (PyModule_AddObject(m, "Head", (PyObject *)&HeadType) < 0
            || PyModule_AddObject(m, "HeadReader",
                                  (PyObject *)&ReaderType) < 0
            || PyModule_AddObject(m, "FastConfig", (PyObject *)&FastType) < 0
            || PyModule_AddObject(m, "ConnBase", (PyObject *)&ConnType) < 0
            || PyModule_AddObject(m, "ReplyBase",
                                  (PyObject *)&ReplyType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
