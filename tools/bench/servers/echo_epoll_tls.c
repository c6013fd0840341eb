/* The TLS reference: the C epoll echo server of echo_epoll.c with OpenSSL
 * on each connection (non-blocking SSL_accept/SSL_read/SSL_write,
 * edge-triggered, one buffer), single-threaded.  The limit a Python TLS
 * server on the same core, using the same OpenSSL, can approach.
 *
 * Two system calls per round trip, as in echo_epoll.c: one read, one
 * write.  OpenSSL reads ahead (SSL_CTX_set_read_ahead: one read takes all
 * that is queued, up to its buffer, instead of a 5-byte header and then
 * the record), and a callback on the socket BIO notes whether the last
 * read came back short, which proves the socket's queue empty under
 * edge-triggering (epoll(7)).  So the read loop stops when OpenSSL holds
 * nothing more (SSL_has_pending() == 0) and the last read was short,
 * without one more SSL_read just to be told SSL_ERROR_WANT_READ.  With
 * EPOLLRDHUP (or HUP/ERR) in the event it reads on to the end, since the
 * peer's FIN raises no edge of its own behind a short read.
 *
 *   echo_epoll_tls --host 127.0.0.1 --port 7443 --cert C.pem --key K.pem
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF 65536

struct conn {
    int fd;
    SSL *ssl;
    int handshaking;
    int drained;     /* the last read of the socket came back short */
    char *pending;   /* the bytes of an SSL_write still to be taken */
    int len, cap;
};

static char buf[BUF];

static void closeconn(int ep, struct conn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    SSL_free(c->ssl);
    close(c->fd);
    free(c->pending);
    free(c);
}

/* Called around every read of the socket BIO: note whether the read
   returned less than it asked for (the socket's queue is then empty). */
static long on_bio(BIO *b, int oper, const char *argp, size_t len, int argi,
                   long argl, int ret, size_t *processed)
{
    (void)argp; (void)argi; (void)argl;
    if (oper == (BIO_CB_READ | BIO_CB_RETURN)) {
        struct conn *c = (struct conn *)BIO_get_callback_arg(b);
        c->drained = ret > 0 && *processed < len;
    }
    return ret;
}

/* SSL_write of what is pending (the same bytes until it is taken):
   0 done, 1 wait, -1 error. */
static int flush(struct conn *c)
{
    while (c->len) {
        int n = SSL_write(c->ssl, c->pending, c->len);
        if (n <= 0) {
            int e = SSL_get_error(c->ssl, n);
            return (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) ? 1 : -1;
        }
        memmove(c->pending, c->pending + n, c->len - n);
        c->len -= n;
    }
    return 0;
}

/* Echo n bytes of buf: 0 all written, 1 the rest is pending, -1 error. */
static int echo(struct conn *c, int n)
{
    int off = 0;
    while (off < n) {
        int m = SSL_write(c->ssl, buf + off, n - off);
        if (m <= 0) {
            int e = SSL_get_error(c->ssl, m);
            if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ)
                return -1;
            /* Retried later with the same bytes (a moving buffer is
               allowed: SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER). */
            if (c->cap < n - off) {
                c->pending = realloc(c->pending, n - off);
                c->cap = n - off;
            }
            memcpy(c->pending, buf + off, n - off);
            c->len = n - off;
            return 1;
        }
        off += m;
    }
    return 0;
}

static void on_event(int ep, struct conn *c, uint32_t events)
{
    /* Short reads prove the queue empty unless the peer also hung up. */
    int greedy = (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
    /* No EPOLLIN: the socket's queue was empty when epoll looked. */
    c->drained = !(events & EPOLLIN);
    if (c->handshaking) {
        int r = SSL_do_handshake(c->ssl);
        if (r != 1) {
            int e = SSL_get_error(c->ssl, r);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                closeconn(ep, c);
            return;
        }
        c->handshaking = 0;
    }
    if (c->len) {
        int r = flush(c);
        if (r < 0) { closeconn(ep, c); return; }
        if (r > 0) return;          /* wait for EPOLLOUT */
    }
    for (;;) {
        if (c->drained && !greedy && !SSL_has_pending(c->ssl))
            return;                 /* nothing queued anywhere */
        int n = SSL_read(c->ssl, buf, BUF);
        if (n <= 0) {
            int e = SSL_get_error(c->ssl, n);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
            closeconn(ep, c);      /* close_notify, EOF or an error */
            return;
        }
        int r = echo(c, n);
        if (r < 0) { closeconn(ep, c); return; }
        if (r > 0) return;          /* wait for EPOLLOUT */
    }
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *cert = NULL, *key = NULL;
    int port = 7443, i, one = 1;
    for (i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--host")) host = argv[i + 1];
        else if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--cert")) cert = argv[i + 1];
        else if (!strcmp(argv[i], "--key")) key = argv[i + 1];
    }
    if (!cert) { fprintf(stderr, "echo_epoll_tls: --cert needed\n"); return 2; }
    /* OpenSSL writes with write(), not send(MSG_NOSIGNAL): a peer that
       resets its connection must cost that connection, not the server. */
    signal(SIGPIPE, SIG_IGN);
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key ? key : cert, SSL_FILETYPE_PEM) != 1) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                          SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(ctx, 1);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    inet_pton(AF_INET, host, &a.sin_addr);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (void *)&a, sizeof a) < 0 || listen(lfd, 65535) < 0) {
        perror("echo_epoll_tls: listen");
        return 1;
    }
    printf("echo_epoll_tls: listening on %s:%d\n", host, port);
    fflush(stdout);
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL }, evs[512];
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    for (;;) {
        int n = epoll_wait(ep, evs, 512, -1);
        for (i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL) {
                for (;;) {
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
                    if (fd < 0) break;
                    struct conn *c = calloc(1, sizeof *c);
                    c->fd = fd;
                    c->ssl = SSL_new(ctx);
                    SSL_set_fd(c->ssl, fd);
                    BIO_set_callback_arg(SSL_get_rbio(c->ssl), (char *)c);
                    BIO_set_callback_ex(SSL_get_rbio(c->ssl), on_bio);
                    SSL_set_accept_state(c->ssl);
                    c->handshaking = 1;
                    struct epoll_event cev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                                               .data.ptr = c };
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
                }
            } else {
                on_event(ep, evs[i].data.ptr, evs[i].events);
            }
        }
    }
}
