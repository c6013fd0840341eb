"""cffi out-of-line (API mode) build of the TLS record loop over OpenSSL.

Produces ``socket2._openssl_ffi``, the engine behind ``SOCKET2_TLS=c``
(socket2/tls.py ``_CEngine``).  The standard library's ``ssl`` still makes
the SSL object from the user's ``ssl.SSLContext`` and runs the handshake,
so certificates, CAs, ALPN, versions, host name checks and callbacks are
exactly what the user configured.  After that, reads and writes are these
C functions on that very SSL object: one call per read or write, a "want
read"/"want write" is a return code instead of a raised
``SSLWantReadError``, and a bulk read fills the caller's buffer from
several records in one call.

Adopting the standard library's SSL object is safe only when it runs on
the OpenSSL this module was linked with, in this process, and when its
object layout is the one expected.  ``s2_tls_same_openssl`` and
``s2_tls_adopt`` prove both without dereferencing anything unproven
(docs/performance-analysis.md, "TLS in C", says why this design and not
the others); when either says no, tls.py uses the standard-library
engine, never a crash.

setup.py asks ``available()`` whether OpenSSL's headers are there (Debian:
``apt-get install libssl-dev``); without them the module is not built and
the standard-library engines serve.
"""
import os
import shlex
import subprocess
import sys
import tempfile

from cffi import FFI

CDEF = r"""
typedef struct ssl_st SSL;

#define S2_TLS_WANT_READ ...
#define S2_TLS_WANT_WRITE ...
#define S2_TLS_FAILED ...
#define S2_TLS_OS_ERROR ...

long s2_tls_read(SSL *ssl, char *buf, long n, int *err, char *ready);
long s2_tls_write(SSL *ssl, const char *buf, long n, int *err);
long s2_tls_shutdown(SSL *ssl, int *err);
int s2_tls_peer_closed(SSL *ssl);
int s2_tls_error(char *out, int outlen);
int s2_tls_same_openssl(const char *ssl_module_path);
SSL *s2_tls_adopt(void *sslobj, void *sslcontext, long basicsize, int fd);
unsigned long s2_tls_version_num(void);
int s2_tls_init(void);
int s2_tls_buffer(SSL *ssl, int fd);
long s2_tls_buffered(SSL *ssl);
long s2_tls_take_buffered(SSL *ssl, char *out, long n);
void s2_tls_forget_fd(SSL *ssl);
"""

SOURCE = r"""
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/crypto.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/socket.h>

#define S2_TLS_WANT_READ (-1)
#define S2_TLS_WANT_WRITE (-2)
#define S2_TLS_FAILED (-3)      /* an OpenSSL error: s2_tls_error() says */
#define S2_TLS_OS_ERROR (-4)    /* a system call failed: *err = errno */

#define S2_RECORD 16384         /* the largest TLS record's plaintext */

/* A fatal failure is sticky: the code of the error that ended the
   connection is kept on its SSL object (ex data), and every later read
   and write reports it again -- OpenSSL itself would answer them with
   an empty error queue, which reads as a clean EOF. */
static int s2_failed_idx = -1;

/* -- The read side: socket2's buffered socket BIO -------------------------

   Without read-ahead OpenSSL reads a record in two system calls (its
   5-byte header, then its body), and the call after the last record
   makes a third that says EAGAIN: three reads per round trip where a C
   server makes one.  OpenSSL's own read-ahead would pull bytes past a
   close_notify into a buffer no API gives back, and unwrap() (STARTTLS)
   must hand them to the plain socket.  So the SSL object's read BIO is
   replaced (s2_tls_buffer) by this one, which reads what the socket holds
   (up to its buffer), serves OpenSSL's header and body from it, and gives
   what is left at the end back (s2_tls_take_buffered).

   And the short-read shortcut of the plain sockets (socket2/_hotpath.py,
   Waiters): during s2_tls_read, `ready` points at the socket's
   Waiters.rready and .hup (adjacent chars).  A read that came back short
   on a socket without hup proved the queue empty, so it clears rready,
   and a later read with nothing buffered and rready clear says "want
   read" without the system call that could only say EAGAIN; the wait
   that follows takes the edge new data brings and sets rready again.
   Outside s2_tls_read (the handshake, unwrap, writes) `ready` is NULL:
   every read is a system call, as with OpenSSL's socket BIO. */

#define S2_RBUF_MIN 1024            /* first fill: a request, a small record */
#define S2_RBUF_MAX (S2_RECORD + 2048 + 5)  /* a whole record and a header */

typedef struct {
    int fd;
    int eof;                /* the peer's FIN was read (BIO_eof) */
    int err;                /* a socket error s2_tls_read met after its
                               first bytes: the next read's (once) */
    char *ready;            /* {rready, hup} during s2_tls_read, else NULL */
    unsigned char *buf;     /* what was read and not given out yet */
    size_t off, len, cap;   /* buf[off:len] is unread; cap: next fill */
} s2_rbio;

static BIO_METHOD *s2_rbio_method = NULL;
static int s2_rbio_type = 0;

static s2_rbio *s2_rbio_of(SSL *ssl)
{
    BIO *b = SSL_get_rbio(ssl);
    if (b == NULL || s2_rbio_method == NULL ||
            BIO_method_type(b) != s2_rbio_type)
        return NULL;
    return (s2_rbio *)BIO_get_data(b);
}

/* One recv(), retried on EINTR: a "want read" after one with data queued
   would wait for an edge that already went. */
static long s2_rbio_recv(int fd, void *out, size_t n)
{
    long r;
    do
        r = (long)recv(fd, out, n, 0);
    while (r < 0 && errno == EINTR);
    return r;
}

static int s2_rbio_read(BIO *b, char *out, int outl)
{
    s2_rbio *st = (s2_rbio *)BIO_get_data(b);
    size_t k;
    long r;
    BIO_clear_retry_flags(b);
    if (st == NULL || out == NULL || outl <= 0)
        return 0;
    if (st->len > st->off) {                    /* buffered */
        k = st->len - st->off;
        if (k > (size_t)outl)
            k = (size_t)outl;
        memcpy(out, st->buf + st->off, k);
        st->off += k;
        if (st->off == st->len) {   /* emptied: an idle connection keeps none */
            free(st->buf);
            st->buf = NULL;
            st->off = st->len = 0;
        }
        return (int)k;
    }
    if (st->err) {                  /* (see s2_tls_read) */
        errno = st->err;
        st->err = 0;
        return -1;
    }
    if (st->ready != NULL && !st->ready[0]) {
        BIO_set_retry_read(b);      /* the queue is empty: wait for an edge */
        return -1;
    }
    if ((size_t)outl >= st->cap) {
        /* OpenSSL asks at least a buffer's worth (the rest of a big
           record): straight into its buffer. */
        r = s2_rbio_recv(st->fd, out, (size_t)outl);
        k = (size_t)outl;
    } else {
        st->buf = (unsigned char *)malloc(st->cap);
        if (st->buf == NULL) {      /* no memory: read as a socket BIO does */
            r = s2_rbio_recv(st->fd, out, (size_t)outl);
            k = (size_t)outl;
        } else {
            r = s2_rbio_recv(st->fd, st->buf, st->cap);
            k = st->cap;
        }
    }
    if (r <= 0) {
        if (st->buf != NULL) {
            int e = errno;          /* what OpenSSL reports the failure by */
            free(st->buf);
            st->buf = NULL;
            errno = e;
        }
        if (r == 0) {
            st->eof = 1;
            return 0;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            BIO_set_retry_read(b);
        return -1;
    }
    if ((size_t)r < k) {
        /* A short read: the queue was empty (the rule in Waiters). */
        if (st->ready != NULL && !st->ready[1])
            st->ready[0] = 0;
    } else if (st->buf != NULL && st->cap < S2_RBUF_MAX) {
        /* Filled: a peer sending bigger records than the buffer holds. */
        st->cap = st->cap * 2 < S2_RBUF_MAX ? st->cap * 2 : S2_RBUF_MAX;
    }
    if (st->buf == NULL)
        return (int)r;              /* read straight into OpenSSL's buffer */
    st->len = (size_t)r;
    k = (size_t)r < (size_t)outl ? (size_t)r : (size_t)outl;
    memcpy(out, st->buf, k);
    st->off = k;
    if (st->off == st->len) {
        free(st->buf);
        st->buf = NULL;
        st->off = st->len = 0;
    }
    return (int)k;
}

/* Writes never come here (the write BIO stays OpenSSL's socket BIO). */
static int s2_rbio_write(BIO *b, const char *in, int inl)
{
    BIO_clear_retry_flags(b);
    errno = EBADF;
    return -1;
}

static long s2_rbio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    s2_rbio *st = (s2_rbio *)BIO_get_data(b);
    if (st == NULL)
        return 0;
    switch (cmd) {
    case BIO_C_GET_FD:                  /* SSL_get_fd, SSL_get_rfd */
        if (ptr != NULL)
            *(int *)ptr = st->fd;
        return st->fd;
    case BIO_C_SET_NBIO:                /* the socket is non-blocking */
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_PENDING:              /* read and not given out yet */
        return (long)(st->len - st->off);
    case BIO_CTRL_EOF:                  /* OpenSSL 3: UNEXPECTED_EOF */
        return st->eof && st->len == st->off;
    case BIO_CTRL_GET_CLOSE:
        return BIO_NOCLOSE;             /* the descriptor is socket2's */
    case BIO_CTRL_SET_CLOSE:
        return 1;
    default:
        return 0;
    }
}

static int s2_rbio_create(BIO *b)
{
    BIO_set_init(b, 0);
    BIO_set_data(b, NULL);
    return 1;
}

static int s2_rbio_destroy(BIO *b)
{
    s2_rbio *st;
    if (b == NULL)
        return 0;
    st = (s2_rbio *)BIO_get_data(b);
    if (st != NULL) {
        free(st->buf);
        free(st);
        BIO_set_data(b, NULL);
    }
    BIO_set_init(b, 0);
    return 1;
}

static int s2_rbio_setup(void)
{
    BIO_METHOD *m;
    int type;
    if (s2_rbio_method != NULL)
        return 1;
    type = BIO_get_new_index();
    if (type == -1)
        return 0;
    type |= BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR;
    m = BIO_meth_new(type, "socket2 buffered socket read");
    if (m == NULL)
        return 0;
    if (!BIO_meth_set_read(m, s2_rbio_read) ||
            !BIO_meth_set_write(m, s2_rbio_write) ||
            !BIO_meth_set_ctrl(m, s2_rbio_ctrl) ||
            !BIO_meth_set_create(m, s2_rbio_create) ||
            !BIO_meth_set_destroy(m, s2_rbio_destroy)) {
        BIO_meth_free(m);
        return 0;
    }
    s2_rbio_type = type;
    s2_rbio_method = m;
    return 1;
}

/* Make `ssl` read descriptor fd through an s2_rbio (its writes stay
   OpenSSL's socket BIO): 1, or 0 when it could not (nothing changed;
   the socket BIO reads, without the buffer and the shortcut).  Before the
   handshake, while nothing is buffered in OpenSSL's. */
int s2_tls_buffer(SSL *ssl, int fd)
{
    BIO *b;
    s2_rbio *st;
    if (!s2_rbio_setup())
        return 0;
    if (s2_rbio_of(ssl) != NULL)
        return 1;
    st = (s2_rbio *)calloc(1, sizeof(*st));
    if (st == NULL)
        return 0;
    b = BIO_new(s2_rbio_method);
    if (b == NULL) {
        free(st);
        return 0;
    }
    st->fd = fd;
    st->cap = S2_RBUF_MIN;
    BIO_set_data(b, st);
    BIO_set_init(b, 1);
    SSL_set0_rbio(ssl, b);          /* takes b; lets go of the old one */
    return 1;
}

/* How many bytes the read BIO holds that OpenSSL has not taken yet
   (encrypted: SSL_pending does not count them). */
long s2_tls_buffered(SSL *ssl)
{
    s2_rbio *st = s2_rbio_of(ssl);
    return st == NULL ? 0 : (long)(st->len - st->off);
}

/* Give out (up to n of) what the read BIO holds: after unwrap(), these
   are the plain bytes that followed the peer's close_notify.  The count. */
long s2_tls_take_buffered(SSL *ssl, char *out, long n)
{
    s2_rbio *st = s2_rbio_of(ssl);
    size_t k;
    if (st == NULL || n <= 0)
        return 0;
    k = st->len - st->off;
    if (k > (size_t)n)
        k = (size_t)n;
    if (k == 0)                     /* (and buf may be NULL) */
        return 0;
    memcpy(out, st->buf + st->off, k);
    st->off += k;
    if (st->off == st->len) {
        free(st->buf);
        st->buf = NULL;
        st->off = st->len = 0;
    }
    return (long)k;
}

/* The socket under this SSL object is closing: every read and write the
   object still makes fails with EBADF instead of reaching whatever takes
   the descriptor's number next.  That is a call under way whose Python
   callback (a message or SNI callback) closed the socket, and maybe made
   a new connection that got the same number, before OpenSSL went on to
   write the record it had made, or to read the next one.  The read BIO
   (socket2's or OpenSSL's socket BIO) and the write BIO both. */
void s2_tls_forget_fd(SSL *ssl)
{
    BIO *r = SSL_get_rbio(ssl), *w = SSL_get_wbio(ssl);
    s2_rbio *st = s2_rbio_of(ssl);
    if (st != NULL)
        st->fd = -1;
    else if (r != NULL && BIO_method_type(r) == BIO_TYPE_SOCKET)
        BIO_set_fd(r, -1, BIO_NOCLOSE);     /* (NOCLOSE: closes nothing) */
    if (w != NULL && w != r && BIO_method_type(w) == BIO_TYPE_SOCKET)
        BIO_set_fd(w, -1, BIO_NOCLOSE);
}

int s2_tls_init(void)
{
    if (s2_failed_idx < 0)
        s2_failed_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    return s2_failed_idx;
}

static long s2_fail(SSL *ssl)
{
    unsigned long code = ERR_peek_last_error();   /* as CPython reports */
    if (code != 0 && s2_failed_idx >= 0 &&
            SSL_get_ex_data(ssl, s2_failed_idx) == NULL)
        SSL_set_ex_data(ssl, s2_failed_idx, (void *)(uintptr_t)code);
    return S2_TLS_FAILED;
}

/* Before an SSL call: if this connection failed already, queue its error
   again and say so. */
static int s2_failed_before(SSL *ssl)
{
    void *code;
    if (s2_failed_idx < 0)
        return 0;
    code = SSL_get_ex_data(ssl, s2_failed_idx);
    if (code == NULL)
        return 0;
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    ERR_raise(ERR_GET_LIB((unsigned long)(uintptr_t)code),
              ERR_GET_REASON((unsigned long)(uintptr_t)code));
#else
    ERR_put_error(ERR_GET_LIB((unsigned long)(uintptr_t)code), 0,
                  ERR_GET_REASON((unsigned long)(uintptr_t)code), "", 0);
#endif
    return 1;
}

/* Why the SSL call that returned `ret` stopped; 0 for the end of the
   stream (close_notify, or an EOF without one, which the standard library
   also reads as the end: suppress_ragged_eofs). */
static long s2_stopped(SSL *ssl, int ret, int *err)
{
    int e = SSL_get_error(ssl, ret);
    unsigned long code;
    switch (e) {
    case SSL_ERROR_WANT_READ:
        return S2_TLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return S2_TLS_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        code = ERR_peek_error();
        if (code == 0) {
            if (errno == 0)     /* OpenSSL 1.1's EOF without close_notify */
                return 0;
            *err = errno;
            return S2_TLS_OS_ERROR;
        }
        return s2_fail(ssl);
    case SSL_ERROR_SSL:
#ifdef SSL_R_UNEXPECTED_EOF_WHILE_READING
        code = ERR_peek_error();
        if (ERR_GET_LIB(code) == ERR_LIB_SSL &&
                ERR_GET_REASON(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
            ERR_clear_error();
            return 0;
        }
#endif
        return s2_fail(ssl);
    default:
        return s2_fail(ssl);
    }
}

/* Read up to n bytes into buf: the count, 0 at the end, or S2_TLS_*.
   One SSL_read returns one record at most: while whole records keep
   coming, more of the buffer is filled, so a bulk reader makes one call
   per buffer.  Whatever stops that loop after the first bytes is left for
   the next call: a "want" or the end are asked again; a failure is kept
   on the connection (s2_fail) and reported by the next call.  OpenSSL's
   error queue is emptied first: it is per OS thread, and an entry some
   other connection left would turn this "want read" into a failure
   (CPython issues 81891, 148594).  `ready`: the socket's {rready, hup}
   for the short-read shortcut of its read BIO (see s2_rbio), or NULL. */
long s2_tls_read(SSL *ssl, char *buf, long n, int *err, char *ready)
{
    size_t r = 0, got = 0;
    int ret;
    s2_rbio *st;
    st = ready == NULL ? NULL : s2_rbio_of(ssl);
    /* Nothing held anywhere and the socket's queue proved empty (rready
       clear): the answer can only be "want read", without asking OpenSSL
       (an SSL_read that finds nothing costs ~1,500 instructions: the
       error queue, the record layer, and its read buffer allocated and
       released).  Not when SSL_read answers without reading: after the
       peer's close_notify (0, again and again) or the socket's EOF, with a
       failure kept (the call below reports it), or during a handshake. */
    if (st != NULL && !ready[0] && st->len == st->off && !st->eof &&
            !st->err &&
            !SSL_has_pending(ssl) && !SSL_in_init(ssl) &&
            !(SSL_get_shutdown(ssl) & SSL_RECEIVED_SHUTDOWN) &&
            (s2_failed_idx < 0 || SSL_get_ex_data(ssl, s2_failed_idx) == NULL))
        return S2_TLS_WANT_READ;
    ERR_clear_error();
    if (s2_failed_before(ssl))
        return S2_TLS_FAILED;
    if (st != NULL)
        st->ready = ready;
    errno = 0;
    ret = SSL_read_ex(ssl, buf, (size_t)n, &r);
    if (ret <= 0) {
        long why = s2_stopped(ssl, ret, err);
        if (st != NULL)
            st->ready = NULL;
        return why;
    }
    got = r;
    while (r >= S2_RECORD && got < (size_t)n) {
        errno = 0;
        ret = SSL_read_ex(ssl, buf + got, (size_t)n - got, &r);
        if (ret <= 0) {
            int e = 0;
            /* keeps a failure; a socket error (a reset after the bytes
               given out) is kept in the read BIO for the next call, or
               it would read as the end (the kernel reports it once) */
            if (s2_stopped(ssl, ret, &e) == S2_TLS_OS_ERROR) {
                s2_rbio *rb = st != NULL ? st : s2_rbio_of(ssl);
                if (rb != NULL)
                    rb->err = e;
            }
            ERR_clear_error();
            break;
        }
        got += r;
    }
    if (st != NULL)
        st->ready = NULL;
    return (long)got;
}

/* Write all n bytes as records (the standard library does not enable
   partial writes): n, or S2_TLS_*.  After a "want", the caller must give
   the very same bytes again (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER, set by
   the standard library, lets them move). */
long s2_tls_write(SSL *ssl, const char *buf, long n, int *err)
{
    size_t w = 0;
    int ret;
    ERR_clear_error();
    if (s2_failed_before(ssl))
        return S2_TLS_FAILED;
    errno = 0;
    ret = SSL_write_ex(ssl, buf, (size_t)n, &w);
    if (ret <= 0) {
        long r = s2_stopped(ssl, ret, err);
        /* A write never meets "the end": the peer is gone. */
        if (r == 0) {
            *err = EPIPE;
            return S2_TLS_OS_ERROR;
        }
        return r;
    }
    return (long)w;
}

/* Send our close_notify without reading anything: 1 when the peer's was
   in already, 0 when ours is out (reads go on: SSL_read returns what the
   peer still sends, then the end), or S2_TLS_* (a "want write": call
   again once writable).  One SSL_shutdown: the standard library's
   unwrap() makes a second one that reads, and OpenSSL 3 takes
   application data met there for a fatal error, so data the peer sent
   before our close_notify was lost. */
long s2_tls_shutdown(SSL *ssl, int *err)
{
    int ret;
    long r;
    ERR_clear_error();
    if (s2_failed_before(ssl))
        return S2_TLS_FAILED;
    errno = 0;
    ret = SSL_shutdown(ssl);
    if (ret >= 0)
        return ret;
    r = s2_stopped(ssl, ret, err);
    if (r == 0) {               /* (as for a write: the peer is gone) */
        *err = EPIPE;
        return S2_TLS_OS_ERROR;
    }
    return r;
}

/* Whether the peer's close_notify came in: a read's 0 was the end it
   sent, not an EOF of the socket (which may hide the socket's error). */
int s2_tls_peer_closed(SSL *ssl)
{
    return (SSL_get_shutdown(ssl) & SSL_RECEIVED_SHUTDOWN) != 0;
}

/* The last queued OpenSSL error as the standard library words it,
   "[LIB: REASON] reason text", into out; returns its reason code (0: no
   error queued).  Empties the queue. */
int s2_tls_error(char *out, int outlen)
{
    unsigned long code = ERR_peek_last_error();
    const char *lib, *reason;
    char name[128];
    int i;
    if (code == 0) {
        snprintf(out, outlen, "unknown error");
        return 0;
    }
    switch (ERR_GET_LIB(code)) {    /* the ssl module's short names */
    case ERR_LIB_SSL: lib = "SSL"; break;
    case ERR_LIB_X509: lib = "X509"; break;
    case ERR_LIB_PEM: lib = "PEM"; break;
    case ERR_LIB_ASN1: lib = "ASN1"; break;
    case ERR_LIB_EVP: lib = "EVP"; break;
    case ERR_LIB_SYS: lib = "SYS"; break;
#ifdef ERR_LIB_PROV
    case ERR_LIB_PROV: lib = "PROV"; break;
#endif
    default:
        lib = ERR_lib_error_string(code);
        if (lib == NULL)
            lib = "SSL";
    }
    reason = ERR_reason_error_string(code);
    if (reason == NULL)
        reason = "unknown reason";
    for (i = 0; reason[i] && i < (int)sizeof(name) - 1; i++) {
        char c = reason[i];
        name[i] = (c == ' ') ? '_' : (c >= 'a' && c <= 'z') ? c - 32 : c;
    }
    name[i] = 0;
    snprintf(out, outlen, "[%s: %s] %s", lib, name, reason);
    ERR_clear_error();
    return ERR_GET_REASON(code);
}

/* Whether the standard library's _ssl module (at path) runs on the very
   OpenSSL this module was linked with: the SSL_read its dependencies
   resolve to is ours.  dlopen with RTLD_NOLOAD only looks at what is
   loaded already. */
int s2_tls_same_openssl(const char *path)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    void *f;
    int same;
    if (h == NULL)
        return 0;
    f = dlsym(h, "SSL_read_ex");
    same = f != NULL && f == (void *)&SSL_read_ex &&
           dlsym(h, "SSL_write_ex") == (void *)&SSL_write_ex &&
           dlsym(h, "ERR_clear_error") == (void *)&ERR_clear_error;
    dlclose(h);
    return same && OpenSSL_version_num() == OPENSSL_VERSION_NUMBER;
}

/* The SSL object inside the standard library's _ssl._SSLSocket `sslobj`
   made from the _ssl._SSLContext `sslcontext` over descriptor fd, or NULL
   when its layout is not the one expected.  CPython's layouts (3.8 to
   3.14, Modules/_ssl.c):

       PySSLSocket:  PyObject_HEAD; PyObject *Socket; SSL *ssl;
                     PySSLContext *ctx; ...
       PySSLContext: PyObject_HEAD; SSL_CTX *ctx; ...

   Nothing is dereferenced before it is proven: the socket's ctx slot must
   hold the context object itself (compared, not followed), and only then
   is its SSL pointer asked whether it belongs to that context's SSL_CTX,
   carries this object as its app data and reads fd. */
SSL *s2_tls_adopt(void *sslobj, void *sslcontext, long basicsize, int fd)
{
    void **o = (void **)sslobj;
    void **c = (void **)sslcontext;
    SSL *ssl;
    SSL_CTX *ctx;
    if (basicsize < (long)(5 * sizeof(void *)))
        return NULL;
    if (o[4] != sslcontext)
        return NULL;
    ssl = (SSL *)o[3];
    ctx = (SSL_CTX *)c[2];
    if (ssl == NULL || ctx == NULL)
        return NULL;
    if (SSL_get_SSL_CTX(ssl) != ctx || SSL_get_app_data(ssl) != sslobj ||
            SSL_get_fd(ssl) != fd)
        return NULL;
    return ssl;
}

unsigned long s2_tls_version_num(void)
{
    return OpenSSL_version_num();
}
"""


def _pkg_config():
    """Compiler and linker arguments for OpenSSL from pkg-config, or {}."""
    try:
        out = subprocess.run(["pkg-config", "--cflags", "--libs", "openssl"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return {}
    if out.returncode != 0:
        return {}
    kw = {"include_dirs": [], "library_dirs": [], "libraries": []}
    for arg in shlex.split(out.stdout):
        if arg.startswith("-I"):
            kw["include_dirs"].append(arg[2:])
        elif arg.startswith("-L"):
            kw["library_dirs"].append(arg[2:])
        elif arg.startswith("-l"):
            kw["libraries"].append(arg[2:])
    return kw


def _build_args():
    kw = _pkg_config()
    kw.setdefault("libraries", [])
    for lib in ("ssl", "crypto"):
        if lib not in kw["libraries"]:
            kw["libraries"].append(lib)
    if sys.platform.startswith("linux"):
        kw["libraries"].append("dl")
    return kw


def available():
    """Whether OpenSSL's headers and libraries are there to build against
    (a test compile and link); never on Windows, whose completion ports
    use the bio engine."""
    if sys.platform == "win32" or os.environ.get("SOCKET2_NO_OPENSSL_C"):
        return False
    try:
        from setuptools._distutils.ccompiler import new_compiler
        from setuptools._distutils.errors import (CCompilerError,
                                                  DistutilsError)
        from setuptools._distutils.sysconfig import customize_compiler
    except ImportError:     # an older setuptools: the standard library's
        from distutils.ccompiler import new_compiler
        from distutils.errors import CCompilerError, DistutilsError
        from distutils.sysconfig import customize_compiler
    kw = _build_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write("#include <openssl/ssl.h>\n#include <openssl/err.h>\n"
                    "int main(void) { SSL_read_ex(0, 0, 0, 0); "
                    "return (int)ERR_get_error(); }\n")
        cc = new_compiler()
        customize_compiler(cc)
        try:
            objs = cc.compile([src], output_dir=tmp,
                              include_dirs=kw.get("include_dirs", []))
            cc.link_executable(objs, os.path.join(tmp, "probe"),
                               libraries=kw["libraries"],
                               library_dirs=kw.get("library_dirs", []))
        except (CCompilerError, DistutilsError, OSError):
            return False
    return True


ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source("socket2._openssl_ffi", SOURCE, **_build_args())

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
