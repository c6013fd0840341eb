"""cffi out-of-line (API mode) build of the portable socket calls.

Produces ``socket2._socket_ffi``.  The C helpers below return ``-errno`` on
failure instead of ``-1``: the Python side then needs no second call to fetch
``errno`` on the hot path (recv/send/accept), and "would block" is one
integer comparison.

One declaration (cdef) serves every OS; the C behind it comes in two
variants: POSIX (``CUSTOMIZATIONS``) and Winsock (``WIN_CUSTOMIZATIONS``),
where the error is ``-WSAGetLastError()``, a socket is an overlapped SOCKET
(handles are 32-bit significant, so it fits the ``int`` descriptors) and
``close`` is ``closesocket``.  ``S2_E*`` name the codes the Python side
tests for (would block, in progress ...), whatever their values are.
"""
import sys

from cffi import FFI

WINDOWS = sys.platform == "win32"

INCLUDES = r"""
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <unistd.h>
#include <fcntl.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <string.h>
"""

TYPES = r"""
typedef int... socklen_t;
typedef int... sa_family_t;

struct sockaddr { sa_family_t sa_family; ...; };
struct sockaddr_storage { sa_family_t ss_family; ...; };
struct sockaddr_un { sa_family_t sun_family; char sun_path[...]; ...; };

struct linger { %(linger_t)s l_onoff; %(linger_t)s l_linger; ...; };

struct addrinfo {
    int ai_flags;
    int ai_family;
    int ai_socktype;
    int ai_protocol;
    %(addrlen_t)s ai_addrlen;
    struct sockaddr *ai_addr;
    char *ai_canonname;
    struct addrinfo *ai_next;
    ...;
};
""" % ({"linger_t": "unsigned short", "addrlen_t": "size_t"} if WINDOWS else
       {"linger_t": "int", "addrlen_t": "socklen_t"})

# Constants every POSIX system has.
CONSTANTS = r"""
#define AF_UNSPEC ...
#define AF_INET ...
#define AF_INET6 ...
#define AF_UNIX ...
#define SOCK_STREAM ...
#define SOCK_DGRAM ...
#define SOCK_RAW ...
#define IPPROTO_IP ...
#define IPPROTO_IPV6 ...
#define IPPROTO_TCP ...
#define IPPROTO_UDP ...
#define IPPROTO_RAW ...
#define IPPROTO_ICMP ...
#define IPPROTO_ICMPV6 ...
#define AI_PASSIVE ...
#define AI_CANONNAME ...
#define AI_NUMERICHOST ...
#define AI_NUMERICSERV ...
#define AI_ALL ...
#define AI_V4MAPPED ...
#define AI_ADDRCONFIG ...
#define EAI_AGAIN ...
#define EAI_BADFLAGS ...
#define EAI_FAIL ...
#define EAI_FAMILY ...
#define EAI_MEMORY ...
#define EAI_NONAME ...
#define EAI_SERVICE ...
#define EAI_SOCKTYPE ...
#define SHUT_RD ...
#define SHUT_WR ...
#define SHUT_RDWR ...
#define SOL_SOCKET ...
#define SO_REUSEADDR ...
#define SO_KEEPALIVE ...
#define SO_BROADCAST ...
#define SO_LINGER ...
#define SO_RCVBUF ...
#define SO_SNDBUF ...
#define SO_RCVLOWAT ...
#define SO_SNDLOWAT ...
#define SO_ERROR ...
#define SO_TYPE ...
#define SO_DONTROUTE ...
#define SO_OOBINLINE ...
#define TCP_NODELAY ...
#define IP_TTL ...
#define IP_TOS ...
#define IP_MULTICAST_TTL ...
#define IP_MULTICAST_LOOP ...
#define IPV6_V6ONLY ...
#define IPV6_UNICAST_HOPS ...
#define IPV6_MULTICAST_HOPS ...
#define IPV6_MULTICAST_LOOP ...
#define INET6_ADDRSTRLEN ...
#define NI_MAXHOST ...
#define S2_EAGAIN ...
#define S2_EWOULDBLOCK ...
#define S2_EINPROGRESS ...
#define S2_EINTR ...
#define S2_ECONNABORTED ...
#define S2_EPROTO ...
"""

# Constants some systems lack: -1 where absent (see CUSTOMIZATIONS).
OPTIONAL_CONSTANTS = [
    "SO_REUSEPORT", "SO_NOSIGPIPE", "TCP_KEEPIDLE", "TCP_KEEPINTVL",
    "TCP_KEEPCNT", "TCP_QUICKACK", "TCP_CORK", "TCP_NOPUSH",
    "TCP_FASTOPEN", "TCP_USER_TIMEOUT", "IP_RECVERR", "EAI_NODATA",
    "EAI_ADDRFAMILY", "SO_BINDTODEVICE", "SO_PRIORITY", "SO_MARK",
    "EAI_SYSTEM",
]

FUNCTIONS = r"""
int getaddrinfo(const char *node, const char *service,
                const struct addrinfo *hints, struct addrinfo **res);
void freeaddrinfo(struct addrinfo *res);
const char *gai_strerror(int errcode);

/* All of these return -errno on failure. */
int s2_socket(int family, int type, int protocol);
int s2_close(int fd);
int s2_bind(int fd, const struct sockaddr *sa, socklen_t len);
int s2_listen(int fd, int backlog);
int s2_connect(int fd, const struct sockaddr *sa, socklen_t len);
int s2_accept(int fd);
int s2_accept_peer(int fd, unsigned char *peer, int *peerlen);
int s2_shutdown(int fd, int how);
long s2_recv(int fd, char *buf, long len);
long s2_send(int fd, const char *buf, long len);
long s2_recvfrom(int fd, char *buf, long len,
                 struct sockaddr_storage *sa, socklen_t *salen);
long s2_sendto(int fd, const char *buf, long len,
               const struct sockaddr *sa, socklen_t salen);
int s2_getsockname(int fd, struct sockaddr_storage *sa, socklen_t *salen);
int s2_getpeername(int fd, struct sockaddr_storage *sa, socklen_t *salen);
int s2_setsockopt(int fd, int level, int name, const void *val, socklen_t len);
int s2_getsockopt(int fd, int level, int name, void *val, socklen_t *len);
int s2_so_error(int fd);
int s2_connect_state(int fd);

/* Socket address helpers: no Python-side struct layout knowledge needed. */
int s2_sa_port(const struct sockaddr *sa);
int s2_sa_ip(const struct sockaddr *sa, char *out, int outlen);
const unsigned char *s2_sa_ipbytes(const struct sockaddr *sa, int *len);
int s2_sa_equal(const struct sockaddr *a, const struct sockaddr *b);
int s2_sa_unix_make(struct sockaddr_un *sun, const char *path, int len);
int s2_sa_unix_path(const struct sockaddr *sa, socklen_t salen,
                    const char **path);
int s2_is_would_block(int neg_errno);
int s2_strerror(int code, char *buf, int len);
"""

CUSTOMIZATIONS = r"""
#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0   /* macOS: SO_NOSIGPIPE is set per socket instead */
#endif

int s2_socket(int family, int type, int protocol)
{
    int fd;
#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
    fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
    if (fd < 0) return -errno;
#else
    fd = socket(family, type, protocol);
    if (fd < 0) return -errno;
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0 ||
        fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
        int e = errno; close(fd); return -e;
    }
#endif
#ifdef S2_HAS_SO_NOSIGPIPE   /* SO_NOSIGPIPE itself is -1 where absent */
    {
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
    }
#endif
    return fd;
}

int s2_close(int fd) { return close(fd) < 0 ? -errno : 0; }

int s2_bind(int fd, const struct sockaddr *sa, socklen_t len)
{ return bind(fd, sa, len) < 0 ? -errno : 0; }

int s2_listen(int fd, int backlog)
{
    /* A negative backlog asks for the system maximum: the kernel clamps
       any larger value to its own limit (somaxconn) silently. */
    if (backlog < 0) backlog = INT_MAX;
    return listen(fd, backlog) < 0 ? -errno : 0;
}

int s2_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    /* EINTR on a non-blocking connect means the attempt goes on in the
       background, exactly like EINPROGRESS. */
    if (connect(fd, sa, len) == 0) return 0;
    return errno == EINTR ? -EINPROGRESS : -errno;
}

static int s2_accept_sa(int fd, struct sockaddr *sa, socklen_t *salen)
{
    int c;
#if defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__)
    do c = accept4(fd, sa, salen, SOCK_NONBLOCK | SOCK_CLOEXEC);
    while (c < 0 && errno == EINTR);
    if (c < 0) return -errno;
#else
    do c = accept(fd, sa, salen); while (c < 0 && errno == EINTR);
    if (c < 0) return -errno;
    fcntl(c, F_SETFL, fcntl(c, F_GETFL) | O_NONBLOCK);
    fcntl(c, F_SETFD, FD_CLOEXEC);
#endif
#ifdef S2_HAS_SO_NOSIGPIPE   /* SO_NOSIGPIPE itself is -1 where absent */
    {
        int one = 1;
        setsockopt(c, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
    }
#endif
    return c;
}

int s2_accept(int fd) { return s2_accept_sa(fd, NULL, NULL); }

/* accept() that also hands back the peer's address, as accept returns it
   (no getpeername() later): copied to peer when it fits in *peerlen
   bytes, which is then its length; 0 when it does not fit. */
int s2_accept_peer(int fd, unsigned char *peer, int *peerlen)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int c = s2_accept_sa(fd, (struct sockaddr *)&ss, &len);
    if (c >= 0) {
        if (len > 0 && len <= sizeof ss && (int)len <= *peerlen)
            memcpy(peer, &ss, len);
        else
            len = 0;
        *peerlen = (int)len;
    }
    return c;
}

int s2_shutdown(int fd, int how) { return shutdown(fd, how) < 0 ? -errno : 0; }

long s2_recv(int fd, char *buf, long len)
{
    ssize_t n;
    do n = recv(fd, buf, (size_t)len, 0); while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : (long)n;
}

long s2_send(int fd, const char *buf, long len)
{
    ssize_t n;
    do n = send(fd, buf, (size_t)len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : (long)n;
}

long s2_recvfrom(int fd, char *buf, long len,
                 struct sockaddr_storage *sa, socklen_t *salen)
{
    ssize_t n;
    *salen = sizeof *sa;
    do n = recvfrom(fd, buf, (size_t)len, 0, (struct sockaddr *)sa, salen);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : (long)n;
}

long s2_sendto(int fd, const char *buf, long len,
               const struct sockaddr *sa, socklen_t salen)
{
    ssize_t n;
    do n = sendto(fd, buf, (size_t)len, MSG_NOSIGNAL, sa, salen);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : (long)n;
}

int s2_getsockname(int fd, struct sockaddr_storage *sa, socklen_t *salen)
{
    *salen = sizeof *sa;
    return getsockname(fd, (struct sockaddr *)sa, salen) < 0 ? -errno : 0;
}

int s2_getpeername(int fd, struct sockaddr_storage *sa, socklen_t *salen)
{
    *salen = sizeof *sa;
    return getpeername(fd, (struct sockaddr *)sa, salen) < 0 ? -errno : 0;
}

int s2_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{ return setsockopt(fd, level, name, val, len) < 0 ? -errno : 0; }

int s2_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{ return getsockopt(fd, level, name, val, len) < 0 ? -errno : 0; }

int s2_so_error(int fd)
{
    int e = 0; socklen_t len = sizeof e;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0) return -errno;
    return -e;
}

/* Where a non-blocking connect() stands once its socket looked writable:
   1 connected, 0 still in progress, -errno failed.  A wake-up is only a
   hint (an event of a closed socket whose number was reused can arrive in
   the same batch): SO_ERROR 0 alone does not mean connected, getpeername()
   does. */
int s2_connect_state(int fd)
{
    struct sockaddr_storage ss; socklen_t len = sizeof ss;
    int e = s2_so_error(fd);
    if (e) return e;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0) return 1;
    if (errno != ENOTCONN) return -errno;
    e = s2_so_error(fd);   /* it may have failed in between */
    return e ? e : 0;
}

#define S2_EAGAIN EAGAIN
#define S2_EWOULDBLOCK EWOULDBLOCK
#define S2_EINPROGRESS EINPROGRESS
#define S2_EINTR EINTR
#define S2_ECONNABORTED ECONNABORTED
#ifdef EPROTO
#define S2_EPROTO EPROTO
#else
#define S2_EPROTO ECONNABORTED
#endif
#define S2_EAFNOSUPPORT EAFNOSUPPORT
#define S2_LASTERR (-errno)

int s2_strerror(int code, char *buf, int len)
{
    const char *m = strerror(code);
    strncpy(buf, m ? m : "unknown error", (size_t)len - 1);
    buf[len - 1] = 0;
    return 0;
}
"""

# Address helpers, the same on every OS.
SA_HELPERS = r"""
int s2_sa_port(const struct sockaddr *sa)
{
    switch (sa->sa_family) {
    case AF_INET: return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    case AF_INET6: return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    default: return -1;
    }
}

int s2_sa_ip(const struct sockaddr *sa, char *out, int outlen)
{
    const void *a;
    switch (sa->sa_family) {
    case AF_INET: a = &((const struct sockaddr_in *)sa)->sin_addr; break;
    case AF_INET6: a = &((const struct sockaddr_in6 *)sa)->sin6_addr; break;
    default: return -S2_EAFNOSUPPORT;
    }
    return inet_ntop(sa->sa_family, a, out, (socklen_t)outlen) ? 0 : S2_LASTERR;
}

const unsigned char *s2_sa_ipbytes(const struct sockaddr *sa, int *len)
{
    switch (sa->sa_family) {
    case AF_INET:
        *len = 4;
        return (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
    case AF_INET6:
        *len = 16;
        return (const unsigned char *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
    default:
        *len = 0;
        return NULL;
    }
}

int s2_sa_equal(const struct sockaddr *a, const struct sockaddr *b)
{
    if (a->sa_family != b->sa_family) return 0;
    if (a->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port &&
               x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->sa_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    return 0;
}

int s2_sa_unix_make(struct sockaddr_un *sun, const char *path, int len)
{
    /* A path that fills sun_path without a NUL is legal on Linux, but not
       portable: insist on room for the terminator (abstract names, which
       start with NUL, are passed with their exact length). */
    if (len < 0 || (size_t)len >= sizeof sun->sun_path) return -ENAMETOOLONG;
    memset(sun, 0, sizeof *sun);
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, path, (size_t)len);
    return (int)(offsetof(struct sockaddr_un, sun_path) + len +
                 (len > 0 && path[0] != 0 ? 1 : 0));
}

int s2_sa_unix_path(const struct sockaddr *sa, socklen_t salen,
                    const char **path)
{
    const struct sockaddr_un *sun = (const void *)sa;
    int n = (int)salen - (int)offsetof(struct sockaddr_un, sun_path);
    if (sa->sa_family != AF_UNIX || n <= 0) { *path = ""; return 0; }
    *path = sun->sun_path;
    if (sun->sun_path[0] != 0)       /* a filesystem path: up to the NUL */
        n = (int)strnlen(sun->sun_path, (size_t)n);
    return n;
}

int s2_is_would_block(int neg_errno)
{
    return neg_errno == -S2_EAGAIN || neg_errno == -S2_EWOULDBLOCK;
}
"""

WIN_INCLUDES = r"""
#define WIN32_LEAN_AND_MEAN
#ifndef _WIN32_WINNT
#define _WIN32_WINNT 0x0601
#endif
#include <winsock2.h>
#include <ws2tcpip.h>
#include <afunix.h>
#include <mswsock.h>
#include <windows.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <string.h>
typedef ADDRESS_FAMILY sa_family_t;
#define SHUT_RD SD_RECEIVE
#define SHUT_WR SD_SEND
#define SHUT_RDWR SD_BOTH
"""

# Winsock: the same calls, with -WSAGetLastError() for -errno.  Sockets
# are overlapped (the IOCP backend associates them with its port when the
# hub registers them) and non-blocking, so the try-first calls below
# return WSAEWOULDBLOCK instead of blocking.
WIN_CUSTOMIZATIONS = r"""
#define S2_EAGAIN WSAEWOULDBLOCK
#define S2_EWOULDBLOCK WSAEWOULDBLOCK
#define S2_EINPROGRESS WSAEWOULDBLOCK
#define S2_EINTR WSAEINTR
#define S2_ECONNABORTED WSAECONNABORTED
#define S2_EPROTO WSAECONNRESET
#define S2_EAFNOSUPPORT WSAEAFNOSUPPORT
#define S2_LASTERR (-(int)WSAGetLastError())
#define S2_SOCK(fd) ((SOCKET)(intptr_t)(fd))
#define MSG_NOSIGNAL 0
#ifndef SIO_UDP_CONNRESET
#define SIO_UDP_CONNRESET _WSAIOW(IOC_VENDOR, 12)   /* mstcpip.h in the SDK */
#endif

static int s2_wsa_started;

static int s2_nonblocking(SOCKET s)
{
    u_long one = 1;
    return ioctlsocket(s, FIONBIO, &one) ? S2_LASTERR : 0;
}

int s2_socket(int family, int type, int protocol)
{
    SOCKET s;
    int r;
    if (!s2_wsa_started) {
        WSADATA wsa;
        if ((r = WSAStartup(MAKEWORD(2, 2), &wsa)) != 0) return -r;
        s2_wsa_started = 1;
    }
    s = WSASocketW(family, type, protocol, NULL, 0,
                   WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
    if (s == INVALID_SOCKET) return S2_LASTERR;
    if (type == SOCK_DGRAM) {
        /* An ICMP "port unreachable" for an earlier datagram would fail
           the next receive with WSAECONNRESET (POSIX reports it only on
           connected sockets): turn that off, as CPython's asyncio does. */
        BOOL no = FALSE;
        DWORD n;
        WSAIoctl(s, SIO_UDP_CONNRESET, &no, sizeof no, NULL, 0, &n, NULL, NULL);
    }
    if ((r = s2_nonblocking(s)) < 0) { closesocket(s); return r; }
    return (int)(intptr_t)s;
}

int s2_close(int fd) { return closesocket(S2_SOCK(fd)) ? S2_LASTERR : 0; }

int s2_bind(int fd, const struct sockaddr *sa, socklen_t len)
{ return bind(S2_SOCK(fd), sa, len) ? S2_LASTERR : 0; }

int s2_listen(int fd, int backlog)
{
    if (backlog < 0) backlog = SOMAXCONN;
    return listen(S2_SOCK(fd), backlog) ? S2_LASTERR : 0;
}

int s2_connect(int fd, const struct sockaddr *sa, socklen_t len)
{ return connect(S2_SOCK(fd), sa, len) ? S2_LASTERR : 0; }

static int s2_accept_sa(int fd, struct sockaddr *sa, int *salen)
{
    SOCKET c = accept(S2_SOCK(fd), sa, salen);
    int r;
    if (c == INVALID_SOCKET) return S2_LASTERR;
    if ((r = s2_nonblocking(c)) < 0) { closesocket(c); return r; }
    return (int)(intptr_t)c;
}

int s2_accept(int fd) { return s2_accept_sa(fd, NULL, NULL); }

int s2_accept_peer(int fd, unsigned char *peer, int *peerlen)
{
    struct sockaddr_storage ss;
    int len = (int)sizeof ss;
    int c = s2_accept_sa(fd, (struct sockaddr *)&ss, &len);
    if (c >= 0) {
        if (len > 0 && len <= (int)sizeof ss && len <= *peerlen)
            memcpy(peer, &ss, len);
        else
            len = 0;
        *peerlen = len;
    }
    return c;
}

int s2_shutdown(int fd, int how)
{ return shutdown(S2_SOCK(fd), how) ? S2_LASTERR : 0; }

/* A datagram longer than the buffer is cut to it (as on POSIX) rather
   than reported as WSAEMSGSIZE. */
#define S2_RECV_RESULT(n, len) ((n) != SOCKET_ERROR ? (long)(n) : \
    WSAGetLastError() == WSAEMSGSIZE ? (len) : (long)S2_LASTERR)

long s2_recv(int fd, char *buf, long len)
{
    int n = recv(S2_SOCK(fd), buf, (int)len, 0);
    return S2_RECV_RESULT(n, len);
}

long s2_send(int fd, const char *buf, long len)
{
    int n = send(S2_SOCK(fd), buf, (int)len, 0);
    return n == SOCKET_ERROR ? S2_LASTERR : n;
}

long s2_recvfrom(int fd, char *buf, long len,
                 struct sockaddr_storage *sa, socklen_t *salen)
{
    int n;
    *salen = sizeof *sa;
    n = recvfrom(S2_SOCK(fd), buf, (int)len, 0, (struct sockaddr *)sa, salen);
    return S2_RECV_RESULT(n, len);
}

long s2_sendto(int fd, const char *buf, long len,
               const struct sockaddr *sa, socklen_t salen)
{
    int n = sendto(S2_SOCK(fd), buf, (int)len, 0, sa, salen);
    return n == SOCKET_ERROR ? S2_LASTERR : n;
}

int s2_getsockname(int fd, struct sockaddr_storage *sa, socklen_t *salen)
{
    *salen = sizeof *sa;
    return getsockname(S2_SOCK(fd), (struct sockaddr *)sa, salen)
           ? S2_LASTERR : 0;
}

int s2_getpeername(int fd, struct sockaddr_storage *sa, socklen_t *salen)
{
    *salen = sizeof *sa;
    return getpeername(S2_SOCK(fd), (struct sockaddr *)sa, salen)
           ? S2_LASTERR : 0;
}

int s2_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{ return setsockopt(S2_SOCK(fd), level, name, val, len) ? S2_LASTERR : 0; }

int s2_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{ return getsockopt(S2_SOCK(fd), level, name, val, len) ? S2_LASTERR : 0; }

int s2_so_error(int fd)
{
    int e = 0; socklen_t len = sizeof e;
    if (getsockopt(S2_SOCK(fd), SOL_SOCKET, SO_ERROR, (char *)&e, &len))
        return S2_LASTERR;
    return -e;
}

/* See the POSIX variant. */
int s2_connect_state(int fd)
{
    struct sockaddr_storage ss; socklen_t len = sizeof ss;
    int e = s2_so_error(fd);
    if (e) return e;
    if (getpeername(S2_SOCK(fd), (struct sockaddr *)&ss, &len) == 0)
        return 1;
    if (WSAGetLastError() != WSAENOTCONN) return S2_LASTERR;
    e = s2_so_error(fd);
    return e ? e : 0;
}

int s2_strerror(int code, char *buf, int len)
{
    DWORD n = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM |
                             FORMAT_MESSAGE_IGNORE_INSERTS, NULL, (DWORD)code,
                             0, buf, (DWORD)len, NULL);
    if (n == 0) {
        const char *m = strerror(code);
        strncpy(buf, m ? m : "unknown error", (size_t)len - 1);
        buf[len - 1] = 0;
        return 0;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
                     buf[n - 1] == '.' || buf[n - 1] == ' '))
        buf[--n] = 0;
    return 0;
}
"""


def _optional_constants():
    cdef = "".join("static const int %s;\n" % n for n in OPTIONAL_CONSTANTS)
    src = "".join(
        "#ifdef {0}\n#define S2_HAS_{0} 1\n#else\n#define {0} -1\n#endif\n"
        .format(n) for n in OPTIONAL_CONSTANTS)
    return cdef, src


_opt_cdef, _opt_src = _optional_constants()

ffibuilder = FFI()
ffibuilder.cdef(TYPES + CONSTANTS + _opt_cdef + FUNCTIONS)
if WINDOWS:
    ffibuilder.set_source("socket2._socket_ffi", WIN_INCLUDES + _opt_src +
                          WIN_CUSTOMIZATIONS + SA_HELPERS,
                          libraries=["ws2_32"])
else:
    ffibuilder.set_source("socket2._socket_ffi", INCLUDES + _opt_src +
                          CUSTOMIZATIONS + SA_HELPERS)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
