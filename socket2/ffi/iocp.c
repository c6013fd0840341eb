/* IOCP mechanics for socket2's Windows backend.
 *
 * Compiled into socket2._iocp_ffi by build_iocp.py (Windows only) and, for
 * testing anywhere, together with tests/iocp/harness.c by a mingw-w64
 * cross-compiler (run under wine in CI).  The Python side stays thin: it
 * keeps one s2_op per socket direction, passes a token (which greenlet
 * waits), and maps completed tokens back to greenlets.
 *
 * Facts this file depends on:
 * - FILE_SKIP_COMPLETION_PORT_ON_SUCCESS: an operation that completes at
 *   once posts no completion packet, so "done now" (0) and "pending" (1)
 *   are told apart by the call's own result, and the fast path costs no
 *   GetQueuedCompletionStatusEx round trip.
 * - An OVERLAPPED and the buffer it names must stay alive until the
 *   operation completes, including after CancelIoEx: cancellation itself
 *   completes through the port (ERROR_OPERATION_ABORTED).  s2_op holds
 *   both (the caller keeps the buffer alive until s2_op_done()).
 * - AcceptEx and ConnectEx are extension functions fetched per provider
 *   with WSAIoctl(SIO_GET_EXTENSION_FUNCTION_POINTER); ConnectEx needs a
 *   bound socket; accepted/connected sockets need SO_UPDATE_*_CONTEXT
 *   before getpeername/shutdown work on them.
 */
#ifndef S2_IOCP_C
#define S2_IOCP_C
#define WIN32_LEAN_AND_MEAN
#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>
#include <windows.h>
#include <string.h>

#define S2_OP_ACCEPT 1
#define S2_OP_CONNECT 2
#define S2_OP_RECV 3
#define S2_OP_SEND 4
#define S2_OP_RECVFROM 5
#define S2_OP_SENDTO 6

typedef struct s2_op {
    OVERLAPPED ov;              /* first: the port hands back &ov */
    int kind;
    int pending;                /* 1 from submission to completion */
    unsigned long long token;   /* who waits (the Python side's key) */
    SOCKET sock;
    SOCKET accepted;
    WSABUF wsabuf;
    DWORD flags;
    struct sockaddr_storage addr;   /* recvfrom source / sendto target */
    int addrlen;
    unsigned long done_bytes;   /* set by s2_iocp_wait on completion */
    int done_err;               /* 0 or the WSA error, likewise */
    char acceptbuf[2 * (sizeof(struct sockaddr_storage) + 16)];
} s2_op;

static LPFN_ACCEPTEX s2_AcceptEx;
static LPFN_CONNECTEX s2_ConnectEx;

int s2_iocp_init(void)
{
    WSADATA wsa;
    int r = WSAStartup(MAKEWORD(2, 2), &wsa);
    return r ? -r : 0;
}

static int s2_wsaerr(void) { return -(int)WSAGetLastError(); }

static int s2_load_ext(SOCKET s)
{
    GUID ga = WSAID_ACCEPTEX, gc = WSAID_CONNECTEX;
    DWORD n;
    if (!s2_AcceptEx &&
        WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &ga, sizeof ga,
                 &s2_AcceptEx, sizeof s2_AcceptEx, &n, NULL, NULL) != 0)
        return s2_wsaerr();
    if (!s2_ConnectEx &&
        WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &gc, sizeof gc,
                 &s2_ConnectEx, sizeof s2_ConnectEx, &n, NULL, NULL) != 0)
        return s2_wsaerr();
    return 0;
}

HANDLE s2_iocp_create(void)
{
    return CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 1);
}

int s2_iocp_close(HANDLE port) { return CloseHandle(port) ? 0 : -(int)GetLastError(); }

/* Make an existing overlapped socket (from WSASocket or accept) complete
   through *port*, skipping the port when an operation completes at once. */
int s2_iocp_associate(HANDLE port, SOCKET s)
{
    if (!CreateIoCompletionPort((HANDLE)s, port, 0, 0) ||
        !SetFileCompletionNotificationModes((HANDLE)s,
            FILE_SKIP_COMPLETION_PORT_ON_SUCCESS | FILE_SKIP_SET_EVENT_ON_HANDLE))
        return -(int)GetLastError();
    return s2_load_ext(s);
}

/* A new overlapped socket, associated with the port. */
SOCKET s2_iocp_socket(HANDLE port, int family, int type, int proto, int *err)
{
    SOCKET s = WSASocketW(family, type, proto, NULL, 0, WSA_FLAG_OVERLAPPED);
    if (s == INVALID_SOCKET) { *err = s2_wsaerr(); return s; }
    if ((*err = s2_iocp_associate(port, s)) < 0) {
        closesocket(s);
        return INVALID_SOCKET;
    }
    return s;
}

static void s2_op_start(s2_op *op, int kind, SOCKET s, unsigned long long token)
{
    memset(&op->ov, 0, sizeof op->ov);
    op->done_bytes = 0;
    op->done_err = 0;
    op->kind = kind;
    op->sock = s;
    op->token = token;
    op->pending = 1;
}

/* 0: done now (*n set), 1: pending (completion comes through the port),
   < 0: -WSA error. */
static int s2_op_result(s2_op *op, int ok, DWORD *n, unsigned long *got)
{
    if (ok) { op->pending = 0; *got = op->done_bytes = *n; return 0; }
    {
        int e = WSAGetLastError();
        if (e == WSA_IO_PENDING || e == ERROR_IO_PENDING) return 1;
        op->pending = 0;
        return -e;
    }
}

int s2_iocp_recv(s2_op *op, SOCKET s, char *buf, unsigned long len,
                 unsigned long long token, unsigned long *got)
{
    DWORD n = 0;
    s2_op_start(op, S2_OP_RECV, s, token);
    op->wsabuf.buf = buf;
    op->wsabuf.len = len;
    op->flags = 0;
    return s2_op_result(op, WSARecv(s, &op->wsabuf, 1, &n, &op->flags,
                                    &op->ov, NULL) == 0, &n, got);
}

int s2_iocp_send(s2_op *op, SOCKET s, const char *buf, unsigned long len,
                 unsigned long long token, unsigned long *got)
{
    DWORD n = 0;
    s2_op_start(op, S2_OP_SEND, s, token);
    op->wsabuf.buf = (char *)buf;
    op->wsabuf.len = len;
    return s2_op_result(op, WSASend(s, &op->wsabuf, 1, &n, 0, &op->ov,
                                    NULL) == 0, &n, got);
}

int s2_iocp_recvfrom(s2_op *op, SOCKET s, char *buf, unsigned long len,
                     unsigned long long token, unsigned long *got)
{
    DWORD n = 0;
    s2_op_start(op, S2_OP_RECVFROM, s, token);
    op->wsabuf.buf = buf;
    op->wsabuf.len = len;
    op->flags = 0;
    op->addrlen = sizeof op->addr;
    return s2_op_result(op, WSARecvFrom(s, &op->wsabuf, 1, &n, &op->flags,
                                        (struct sockaddr *)&op->addr,
                                        &op->addrlen, &op->ov, NULL) == 0,
                        &n, got);
}

int s2_iocp_sendto(s2_op *op, SOCKET s, const char *buf, unsigned long len,
                   const struct sockaddr *sa, int salen,
                   unsigned long long token, unsigned long *got)
{
    DWORD n = 0;
    s2_op_start(op, S2_OP_SENDTO, s, token);
    op->wsabuf.buf = (char *)buf;
    op->wsabuf.len = len;
    memcpy(&op->addr, sa, (size_t)salen);
    op->addrlen = salen;
    return s2_op_result(op, WSASendTo(s, &op->wsabuf, 1, &n, 0,
                                      (struct sockaddr *)&op->addr, salen,
                                      &op->ov, NULL) == 0, &n, got);
}

/* *accepted* is a fresh socket of the listener's family from s2_iocp_socket. */
int s2_iocp_accept(s2_op *op, SOCKET listener, SOCKET accepted,
                   unsigned long long token)
{
    DWORD n = 0;
    unsigned long got;
    const DWORD alen = sizeof(struct sockaddr_storage) + 16;
    s2_op_start(op, S2_OP_ACCEPT, listener, token);
    op->accepted = accepted;
    return s2_op_result(op, s2_AcceptEx(listener, accepted, op->acceptbuf, 0,
                                        alen, alen, &n, &op->ov), &n, &got);
}

/* After an accept completed: make the new socket a full socket. */
int s2_iocp_accept_done(s2_op *op)
{
    SOCKET l = op->sock;
    return setsockopt(op->accepted, SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT,
                      (char *)&l, sizeof l) ? s2_wsaerr() : 0;
}

/* *s* must be bound (ConnectEx does not bind implicitly). */
int s2_iocp_connect(s2_op *op, SOCKET s, const struct sockaddr *sa, int salen,
                    unsigned long long token)
{
    DWORD n = 0;
    unsigned long got;
    s2_op_start(op, S2_OP_CONNECT, s, token);
    return s2_op_result(op, s2_ConnectEx(s, sa, salen, NULL, 0, &n, &op->ov),
                        &n, &got);
}

int s2_iocp_connect_done(s2_op *op)
{
    return setsockopt(op->sock, SOL_SOCKET, SO_UPDATE_CONNECT_CONTEXT, NULL, 0)
           ? s2_wsaerr() : 0;
}

/* Ask a pending operation to stop; it still completes through the port
   (with ERROR_OPERATION_ABORTED), and only then may its buffer go. */
int s2_iocp_cancel(s2_op *op)
{
    if (!op->pending) return 0;
    if (CancelIoEx((HANDLE)op->sock, &op->ov)) return 1;
    return GetLastError() == ERROR_NOT_FOUND ? 0 : -(int)GetLastError();
}

/* Wait for up to *max* completions (timeout_ms < 0: forever).  For each:
   ops[i] = the s2_op, bytes[i] = bytes moved, errs[i] = 0 or the WSA
   error (ERROR_OPERATION_ABORTED after a cancel), tokens[i] = its token;
   a packet posted by s2_iocp_wakeup has ops[i] == NULL.  Returns the
   count, 0 on timeout, or -error. */
int s2_iocp_wait(HANDLE port, s2_op **ops, unsigned long long *tokens,
                 unsigned long *bytes, int *errs, int max, int timeout_ms)
{
    OVERLAPPED_ENTRY ent[256];
    ULONG n = 0, i;
    if (max > 256) max = 256;
    if (!GetQueuedCompletionStatusEx(port, ent, (ULONG)max, &n,
                                     timeout_ms < 0 ? INFINITE : (DWORD)timeout_ms,
                                     FALSE)) {
        DWORD e = GetLastError();
        return e == WAIT_TIMEOUT ? 0 : -(int)e;
    }
    for (i = 0; i < n; i++) {
        s2_op *op = (s2_op *)ent[i].lpOverlapped;
        ops[i] = op;
        bytes[i] = ent[i].dwNumberOfBytesTransferred;
        errs[i] = 0;
        tokens[i] = op ? op->token : ent[i].lpCompletionKey;
        if (op) {
            DWORD got, flags;
            op->pending = 0;
            if (!WSAGetOverlappedResult(op->sock, &op->ov, &got, FALSE, &flags))
                errs[i] = (int)WSAGetLastError();
            op->done_bytes = bytes[i];
            op->done_err = errs[i];
        }
    }
    return (int)n;
}

/* From any OS thread: make s2_iocp_wait return (a packet with no op). */
int s2_iocp_wakeup(HANDLE port, unsigned long long key)
{
    return PostQueuedCompletionStatus(port, 0, (ULONG_PTR)key, NULL)
           ? 0 : -(int)GetLastError();
}
#endif
