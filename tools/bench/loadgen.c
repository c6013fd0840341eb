/* loadgen: a single-threaded, non-blocking, epoll load generator for echo
 * servers.  Built by tools/bench/run.py with the system gcc.
 *
 *   loadgen HOST PORT MODE CONNS SECONDS [--idle N] [--size B] [--warmup S]
 *
 * MODE is one of:
 *   rr     CONNS connections; each sends SIZE bytes, waits for the echo,
 *          repeats (request/response round trips);
 *   churn  CONNS slots; each connects, does one round trip and closes
 *          (with SO_LINGER 0: no TIME_WAIT, so the port range never runs out);
 *   bulk   CONNS connections streaming 64 KiB chunks, at most 1 MiB in
 *          flight each, counting the bytes that come back.
 * --idle N opens N extra connections first and keeps them open, silent.
 * --tls speaks TLS on every connection (rr and bulk; built with -DWITH_TLS
 * and OpenSSL): the handshakes all complete before the warm-up starts, so
 * the window measures the data path only.  The certificate is not checked.
 *
 * Prints "counting" when the measured window opens (after the warm-up) and
 * then one JSON object, {"ops":..,"bytes":..,"seconds":..,"errors":..},
 * the moment it closes, before tearing the connections down.  Exits non-zero if the server misbehaves
 * (wrong echo, connection refused during the run).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#ifdef WITH_TLS
#include <openssl/ssl.h>
#endif

enum { RR, CHURN, BULK };
#define CHUNK 65536
#define INFLIGHT (1 << 20)

struct conn {
    int fd;
    int connecting;
    int handshaking;
#ifdef WITH_TLS
    SSL *ssl;
#endif
    long want;        /* rr/churn: bytes of echo still expected */
    long inflight;    /* bulk: sent but not yet echoed */
    int started;      /* connected (and handshaken): requests flowing */
};

static int mode, size = 64, ep;
static struct sockaddr_storage addr;
static socklen_t addrlen;
static char *msg, *rbuf;
static long long ops, bytes_, errors;
static int counting;
static int use_tls, nready;
#ifdef WITH_TLS
static SSL_CTX *tls_ctx;
#endif

/* send/recv, through TLS when --tls: -1 with errno EAGAIN to wait. */
static ssize_t c_send(struct conn *c, const void *b, size_t n)
{
#ifdef WITH_TLS
    if (c->ssl) {
        int r = SSL_write(c->ssl, b, n), e;
        if (r > 0) return r;
        e = SSL_get_error(c->ssl, r);
        errno = (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) ? EAGAIN : EIO;
        return -1;
    }
#endif
    return send(c->fd, b, n, MSG_NOSIGNAL);
}

static ssize_t c_recv(struct conn *c, void *b, size_t n)
{
#ifdef WITH_TLS
    if (c->ssl) {
        int r = SSL_read(c->ssl, b, n), e;
        if (r > 0) return r;
        e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_ZERO_RETURN) return 0;
        errno = (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) ? EAGAIN : EIO;
        return -1;
    }
#endif
    return recv(c->fd, b, n, 0);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
    exit(2);
}

static int open_conn(void)
{
    int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    if (fd < 0) die("socket");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&addr, addrlen) < 0 && errno != EINPROGRESS)
        die("connect");
    return fd;
}

static void watch(struct conn *c, int op, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = c };
    if (epoll_ctl(ep, op, c->fd, &ev) < 0) die("epoll_ctl");
}

static void start(struct conn *c)
{
    c->fd = open_conn();
    c->connecting = 1;
    c->handshaking = 0;
    c->started = 0;
    c->want = 0;
    c->inflight = 0;
    watch(c, EPOLL_CTL_ADD, EPOLLOUT | EPOLLIN);
}

static void send_request(struct conn *c)
{
    ssize_t n = c_send(c, msg, size);
    if (n != size) { errors++; fprintf(stderr, "loadgen: short send\n"); exit(3); }
    c->want = size;
}

static void pump_bulk(struct conn *c)
{
    while (c->inflight < INFLIGHT) {
        ssize_t n = c_send(c, msg, CHUNK);
        if (n < 0) {
            if (errno == EAGAIN) break;
            die("send");
        }
        c->inflight += n;
    }
}

static void on_event(struct conn *c, uint32_t ev)
{
    if (c->connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) { errno = err; die("connect"); }
        if (!(ev & EPOLLOUT)) return;
        c->connecting = 0;
#ifdef WITH_TLS
        if (use_tls) {
            c->ssl = SSL_new(tls_ctx);
            SSL_set_fd(c->ssl, c->fd);
            SSL_set_connect_state(c->ssl);
            c->handshaking = 1;
        }
#endif
    }
#ifdef WITH_TLS
    if (c->handshaking) {
        int r = SSL_do_handshake(c->ssl), e;
        if (r != 1) {
            e = SSL_get_error(c->ssl, r);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                fprintf(stderr, "loadgen: TLS handshake failed\n");
                exit(3);
            }
            watch(c, EPOLL_CTL_MOD, e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT);
            return;
        }
        c->handshaking = 0;
    }
#endif
    if (!c->connecting && c->want == 0 && c->inflight == 0 && !c->started) {
        c->started = 1;
        nready++;
        if (mode == BULK) {
            watch(c, EPOLL_CTL_MOD, EPOLLIN | EPOLLOUT | EPOLLET);
            pump_bulk(c);
        } else {
            watch(c, EPOLL_CTL_MOD, EPOLLIN);
            send_request(c);
        }
        return;
    }
    if (mode == BULK) {
        for (;;) {
            ssize_t n = c_recv(c, rbuf, CHUNK);
            if (n < 0) { if (errno == EAGAIN) break; die("recv"); }
            if (n == 0) { fprintf(stderr, "loadgen: server closed\n"); exit(3); }
            c->inflight -= n;
            if (counting) bytes_ += n;
        }
        pump_bulk(c);
        return;
    }
    for (;;) {
        ssize_t n = c_recv(c, rbuf, CHUNK);
        if (n < 0) { if (errno == EAGAIN) return; die("recv"); }
        if (n == 0) { fprintf(stderr, "loadgen: server closed\n"); exit(3); }
        if (memcmp(rbuf, msg + (size - c->want), n) != 0) {
            fprintf(stderr, "loadgen: wrong echo\n");
            exit(3);
        }
        c->want -= n;
        if (c->want > 0) continue;
        if (counting) { ops++; bytes_ += size; }
        if (mode == CHURN) {
            struct linger lg = { 1, 0 };
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            close(c->fd);          /* also leaves the epoll set */
            start(c);
        } else {
            send_request(c);
        }
        return;
    }
}

int main(int argc, char **argv)
{
    int conns, idle = 0, i;
    double seconds, warmup = 0.5;
    if (argc < 6) {
        fprintf(stderr, "usage: loadgen HOST PORT rr|churn|bulk CONNS SECONDS "
                        "[--idle N] [--size B] [--warmup S]\n");
        return 2;
    }
    mode = !strcmp(argv[3], "rr") ? RR : !strcmp(argv[3], "churn") ? CHURN
         : !strcmp(argv[3], "bulk") ? BULK : -1;
    if (mode < 0) { fprintf(stderr, "loadgen: unknown mode %s\n", argv[3]); return 2; }
    conns = atoi(argv[4]);
    seconds = atof(argv[5]);
    for (i = 6; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--idle")) idle = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--size")) size = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--warmup")) warmup = atof(argv[i + 1]);
    }
    for (i = 6; i < argc; i++)
        if (!strcmp(argv[i], "--tls")) use_tls = 1;
    if (use_tls) {
#ifdef WITH_TLS
        if (mode == CHURN) { fprintf(stderr, "loadgen: --tls: rr or bulk\n"); return 2; }
        tls_ctx = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
        SSL_CTX_set_mode(tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
#else
        fprintf(stderr, "loadgen: built without TLS (needs OpenSSL's headers: "
                        "apt-get install libssl-dev)\n");
        return 2;
#endif
    }
    if (strchr(argv[1], ':')) {
        struct sockaddr_in6 *a = (void *)&addr;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(atoi(argv[2]));
        inet_pton(AF_INET6, argv[1], &a->sin6_addr);
        addrlen = sizeof *a;
    } else {
        struct sockaddr_in *a = (void *)&addr;
        a->sin_family = AF_INET;
        a->sin_port = htons(atoi(argv[2]));
        inet_pton(AF_INET, argv[1], &a->sin_addr);
        addrlen = sizeof *a;
    }
    if (mode == BULK) size = CHUNK;
    msg = malloc(size > CHUNK ? size : CHUNK);
    rbuf = malloc(CHUNK);
    for (i = 0; i < (size > CHUNK ? size : CHUNK); i++) msg[i] = 'a' + i % 26;
    ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");

    /* Idle connections: connected, then left silent for the whole run. */
    if (idle > 0) {
        int *fds = malloc(sizeof(int) * idle), done = 0;
        struct epoll_event evs[256];
        int iep = epoll_create1(0);
        for (i = 0; i < idle; i++) {
            struct epoll_event ev = { .events = EPOLLOUT, .data.fd = i };
            fds[i] = open_conn();
            epoll_ctl(iep, EPOLL_CTL_ADD, fds[i], &ev);
        }
        while (done < idle) {
            int n = epoll_wait(iep, evs, 256, 10000), k;
            if (n <= 0) { fprintf(stderr, "loadgen: idle connects stalled at %d\n", done); return 3; }
            for (k = 0; k < n; k++) {
                int err = 0; socklen_t len = sizeof err;
                getsockopt(fds[evs[k].data.fd], SOL_SOCKET, SO_ERROR, &err, &len);
                if (err) { errno = err; die("idle connect"); }
                epoll_ctl(iep, EPOLL_CTL_DEL, fds[evs[k].data.fd], NULL);
                done++;
            }
        }
        close(iep);
    }

    struct conn *cs = calloc(conns, sizeof *cs);
    struct epoll_event evs[512];
    for (i = 0; i < conns; i++) start(&cs[i]);
    double t0 = now(), tstart = t0 + warmup, tend = tstart + seconds, tcount = 0;
    int all_ready = !use_tls;
    for (;;) {
        double t = now();
        if (!all_ready) {
            /* TLS: the warm-up starts once every handshake is done. */
            if (nready < conns) {
                if (t - t0 > 60) { fprintf(stderr, "loadgen: handshakes stalled at %d\n", nready); return 3; }
                tstart = t + warmup;
                tend = tstart + seconds;
            } else {
                all_ready = 1;
            }
        }
        if (!counting && t >= tstart) {
            counting = 1;
            tcount = t;
            printf("counting\n");   /* the runner samples server CPU here */
            fflush(stdout);
        }
        if (t >= tend) break;
        int n = epoll_wait(ep, evs, 512, 100);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (i = 0; i < n; i++) on_event(evs[i].data.ptr, evs[i].events);
    }
    printf("{\"ops\": %lld, \"bytes\": %lld, \"seconds\": %.6f, \"errors\": %lld}\n",
           ops, bytes_, now() - tcount, errors);
    return 0;
}
