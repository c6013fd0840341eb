/* Tests of socket2/ffi/iocp.c, the IOCP mechanics of the Windows backend.
 *
 * Cross-compiled with mingw-w64 and run under wine by tests/iocp/run.sh
 * (called from .ci/run), or natively on Windows.  Each test drives real
 * loopback sockets through one completion port, exactly as the backend
 * does: submit, take "done now" or wait for the completion packet.
 * Prints "N passed, M failed" last.
 */
#include "../../socket2/ffi/iocp.c"
#include <stdio.h>
#include <stdlib.h>

static int failures, passes;
static HANDLE port;

#define CHECK(cond, ...) do { if (!(cond)) { printf("  FAIL %s:%d: ", __FILE__, __LINE__); \
    printf(__VA_ARGS__); printf("\n"); return 1; } } while (0)

/* Wait for the completion of *op*; returns bytes, sets *err. */
static long complete(s2_op *op, int *err, int timeout_ms)
{
    s2_op *ops[16];
    unsigned long long tokens[16];
    unsigned long bytes[16];
    int errs[16];
    for (;;) {
        int n = s2_iocp_wait(port, ops, tokens, bytes, errs, 16, timeout_ms), i;
        if (n <= 0) { *err = n ? -n : WAIT_TIMEOUT; return -1; }
        for (i = 0; i < n; i++)
            if (ops[i] == op) { *err = errs[i]; return (long)bytes[i]; }
    }
}

/* Submit-or-wait, as the backend's Python side does. */
static long finish(int r, unsigned long got, s2_op *op, int *err)
{
    if (r == 0) { *err = 0; return (long)got; }
    if (r < 0) { *err = -r; return -1; }
    return complete(op, err, 5000);
}

static SOCKET listener(struct sockaddr_in *where)
{
    int err, len = sizeof *where;
    SOCKET l = s2_iocp_socket(port, AF_INET, SOCK_STREAM, IPPROTO_TCP, &err);
    memset(where, 0, sizeof *where);
    where->sin_family = AF_INET;
    where->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(l, (struct sockaddr *)where, sizeof *where);
    listen(l, SOMAXCONN);
    getsockname(l, (struct sockaddr *)where, &len);
    return l;
}

/* A connected pair through AcceptEx + ConnectEx. */
static int pair(SOCKET l, struct sockaddr_in *where, SOCKET *c, SOCKET *a)
{
    static s2_op aop, cop;
    struct sockaddr_in any;
    int err, r;
    long n;
    *a = s2_iocp_socket(port, AF_INET, SOCK_STREAM, IPPROTO_TCP, &err);
    *c = s2_iocp_socket(port, AF_INET, SOCK_STREAM, IPPROTO_TCP, &err);
    CHECK(*a != INVALID_SOCKET && *c != INVALID_SOCKET, "socket: %d", err);
    r = s2_iocp_accept(&aop, l, *a, 1);
    CHECK(r >= 0, "AcceptEx: %d", r);
    memset(&any, 0, sizeof any);
    any.sin_family = AF_INET;
    any.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(*c, (struct sockaddr *)&any, sizeof any) == 0, "bind");
    r = s2_iocp_connect(&cop, *c, (struct sockaddr *)where, sizeof *where, 2);
    CHECK(r >= 0, "ConnectEx: %d", r);
    if (r == 1) { n = complete(&cop, &err, 5000); CHECK(err == 0, "connect completion: %d", err); }
    if (aop.pending) { n = complete(&aop, &err, 5000); CHECK(err == 0, "accept completion: %d", err); }
    (void)n;
    CHECK(s2_iocp_connect_done(&cop) == 0, "SO_UPDATE_CONNECT_CONTEXT");
    CHECK(s2_iocp_accept_done(&aop) == 0, "SO_UPDATE_ACCEPT_CONTEXT");
    return 0;
}

static int test_accept_connect_and_peer_names(void)
{
    struct sockaddr_in where, peer, local;
    int len = sizeof peer;
    SOCKET l = listener(&where), c, a;
    if (pair(l, &where, &c, &a)) return 1;
    CHECK(getpeername(a, (struct sockaddr *)&peer, &len) == 0, "getpeername on accepted");
    len = sizeof local;
    getsockname(c, (struct sockaddr *)&local, &len);
    CHECK(peer.sin_port == local.sin_port, "accepted socket knows its peer");
    closesocket(c); closesocket(a); closesocket(l);
    return 0;
}

static int test_large_buffer_in_pieces(void)
{
    enum { SIZE = 8 << 20 };
    struct sockaddr_in where;
    SOCKET l = listener(&where), c, a;
    char *out = malloc(SIZE), *in = malloc(SIZE);
    static s2_op sop, rop;
    long sent = 0, recvd = 0;
    int i, err;
    if (pair(l, &where, &c, &a)) return 1;
    for (i = 0; i < SIZE; i++) out[i] = (char)(i * 7 + (i >> 12));
    /* Both directions in flight at once: a send pending while receiving. */
    while (recvd < SIZE) {
        unsigned long got;
        if (sent < SIZE && !sop.pending) {
            long chunk = SIZE - sent > 1 << 20 ? 1 << 20 : SIZE - sent;
            int r = s2_iocp_send(&sop, c, out + sent, chunk, 10, &got);
            CHECK(r >= 0, "WSASend: %d", r);
            if (r == 0) sent += got;
        }
        {
            int r = s2_iocp_recv(&rop, a, in + recvd, SIZE - recvd, 11, &got);
            CHECK(r >= 0, "WSARecv: %d", r);
            if (r == 0) { CHECK(got > 0, "early EOF"); recvd += got; continue; }
        }
        for (;;) {          /* wait until the receive completes */
            s2_op *ops[16]; unsigned long long t[16]; unsigned long b[16]; int e[16];
            int n = s2_iocp_wait(port, ops, t, b, e, 16, 5000), k, done = 0;
            CHECK(n > 0, "wait: %d", n);
            for (k = 0; k < n; k++) {
                CHECK(e[k] == 0, "completion error %d", e[k]);
                if (ops[k] == &sop) sent += b[k];
                if (ops[k] == &rop) { recvd += b[k]; done = 1; CHECK(b[k] > 0, "EOF"); }
            }
            if (done) break;
        }
    }
    while (sop.pending) { long n = complete(&sop, &err, 5000); sent += n; }
    CHECK(sent == SIZE && recvd == SIZE, "sent %ld recvd %ld", sent, recvd);
    CHECK(memcmp(out, in, SIZE) == 0, "data arrived intact");
    free(out); free(in);
    closesocket(c); closesocket(a); closesocket(l);
    return 0;
}

static int test_udp_datagrams(void)
{
    struct sockaddr_in aaddr;
    int err, len = sizeof aaddr, i;
    SOCKET ua = s2_iocp_socket(port, AF_INET, SOCK_DGRAM, IPPROTO_UDP, &err);
    SOCKET ub = s2_iocp_socket(port, AF_INET, SOCK_DGRAM, IPPROTO_UDP, &err);
    static s2_op rop, sop;
    memset(&aaddr, 0, sizeof aaddr);
    aaddr.sin_family = AF_INET;
    aaddr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(ua, (struct sockaddr *)&aaddr, sizeof aaddr);
    bind(ub, (struct sockaddr *)&aaddr, sizeof aaddr);
    getsockname(ua, (struct sockaddr *)&aaddr, &len);
    for (i = 0; i < 20; i++) {
        char msg[32], buf[64];
        unsigned long got, rgot;
        long n;
        int rr = s2_iocp_recvfrom(&rop, ua, buf, sizeof buf, 20, &rgot), r;
        CHECK(rr >= 0, "WSARecvFrom: %d", rr);
        sprintf(msg, "datagram %d", i);
        r = s2_iocp_sendto(&sop, ub, msg, (unsigned long)strlen(msg),
                           (struct sockaddr *)&aaddr, sizeof aaddr, 21, &got);
        n = finish(r, got, &sop, &err);   /* got is set by the call above */
        CHECK(n == (long)strlen(msg), "sendto %ld err %d", n, err);
        n = rr == 0 ? (long)rgot : complete(&rop, &err, 5000);
        CHECK(n == (long)strlen(msg) && memcmp(buf, msg, n) == 0, "datagram %d intact", i);
        CHECK(rop.addr.ss_family == AF_INET, "source address filled in");
    }
    closesocket(ua); closesocket(ub);
    return 0;
}

static int test_close_with_pending_recv_cancels_and_keeps_buffer(void)
{
    struct sockaddr_in where;
    SOCKET l = listener(&where), c, a;
    static s2_op rop;
    char buf[4096];
    unsigned long got;
    int r, err;
    long n;
    if (pair(l, &where, &c, &a)) return 1;
    memset(buf, 'k', sizeof buf);
    r = s2_iocp_recv(&rop, a, buf, sizeof buf, 30, &got);
    CHECK(r == 1, "recv with nothing sent must pend, got %d", r);
    CHECK(s2_iocp_cancel(&rop) >= 0, "CancelIoEx");
    n = complete(&rop, &err, 5000);          /* the cancel completes too */
    CHECK(err == ERROR_OPERATION_ABORTED || err == WSA_OPERATION_ABORTED,
          "aborted, got %d", err);
    CHECK(n == 0 && buf[0] == 'k' && buf[sizeof buf - 1] == 'k', "buffer untouched");
    /* Closing with a receive pending completes it as aborted as well. */
    r = s2_iocp_recv(&rop, a, buf, sizeof buf, 31, &got);
    CHECK(r == 1, "second recv pends, got %d", r);
    closesocket(a);
    n = complete(&rop, &err, 5000);
    CHECK(err != 0, "close completes the pending receive with an error");
    closesocket(c); closesocket(l);
    return 0;
}

static int test_many_connections(void)
{
    enum { N = 200 };
    struct sockaddr_in where;
    SOCKET l = listener(&where), cs[N], as[N];
    static s2_op rops[N];
    char bufs[N][16];
    int i, err, left = N;
    for (i = 0; i < N; i++) if (pair(l, &where, &cs[i], &as[i])) return 1;
    for (i = 0; i < N; i++) {               /* N receives in flight at once */
        unsigned long got;
        int r = s2_iocp_recv(&rops[i], as[i], bufs[i], sizeof bufs[i], 1000 + i, &got);
        CHECK(r == 1, "recv %d should pend (%d)", i, r);
    }
    for (i = 0; i < N; i++) {
        char msg[16];
        sprintf(msg, "conn %d", i);
        CHECK(send(cs[i], msg, (int)strlen(msg), 0) == (int)strlen(msg), "send");
    }
    while (left > 0) {
        s2_op *ops[64]; unsigned long long t[64]; unsigned long b[64]; int e[64];
        int n = s2_iocp_wait(port, ops, t, b, e, 64, 5000), k;
        CHECK(n > 0, "wait: %d (%d left)", n, left);
        for (k = 0; k < n; k++) {
            int idx = (int)(t[k] - 1000);
            char msg[16];
            CHECK(idx >= 0 && idx < N && ops[k] == &rops[idx], "token maps back to its op");
            sprintf(msg, "conn %d", idx);
            CHECK(e[k] == 0 && b[k] == strlen(msg) && memcmp(bufs[idx], msg, b[k]) == 0,
                  "conn %d data", idx);
            left--;
        }
    }
    for (i = 0; i < N; i++) { closesocket(cs[i]); closesocket(as[i]); }
    closesocket(l);
    (void)err;
    return 0;
}

static int test_wakeup_from_another_thread(void)
{
    s2_op *ops[4]; unsigned long long t[4]; unsigned long b[4]; int e[4];
    int n;
    CHECK(s2_iocp_wakeup(port, 77) == 0, "PostQueuedCompletionStatus");
    n = s2_iocp_wait(port, ops, t, b, e, 4, 5000);
    CHECK(n == 1 && ops[0] == NULL && t[0] == 77, "wakeup packet: n=%d", n);
    n = s2_iocp_wait(port, ops, t, b, e, 4, 10);
    CHECK(n == 0, "then a timeout: %d", n);
    return 0;
}

int main(void)
{
    struct { const char *name; int (*fn)(void); } tests[] = {
        {"accept_connect_and_peer_names", test_accept_connect_and_peer_names},
        {"large_buffer_in_pieces", test_large_buffer_in_pieces},
        {"udp_datagrams", test_udp_datagrams},
        {"close_with_pending_recv_cancels_and_keeps_buffer",
         test_close_with_pending_recv_cancels_and_keeps_buffer},
        {"many_connections", test_many_connections},
        {"wakeup_from_another_thread", test_wakeup_from_another_thread},
    };
    unsigned i;
    if (s2_iocp_init() != 0) { printf("WSAStartup failed\n"); return 2; }
    port = s2_iocp_create();
    for (i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        int bad = tests[i].fn();
        printf("%s %s\n", bad ? "FAIL" : "ok  ", tests[i].name);
        if (bad) failures++; else passes++;
    }
    s2_iocp_close(port);
    printf("iocp: %d passed, %d failed\n", passes, failures);
    return failures ? 1 : 0;
}
