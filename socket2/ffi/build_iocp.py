"""cffi out-of-line (API mode) build of the Windows IOCP backend.

Produces ``socket2._iocp_ffi`` on Windows only: the IOCP mechanics live in
``iocp.c`` (next to this file), which is compiled into the module as it is
and also, with ``tests/iocp/harness.c``, into a test program that CI runs
under wine.  The module includes build_socket's declarations, so the
``struct sockaddr_storage`` of a completed receive is the same type the
socket module uses.

Descriptors are passed as ``int`` (Windows handles are 32-bit significant)
and ports as ``void *`` (a HANDLE).
"""
import importlib.util
import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))


def _build_socket():
    spec = importlib.util.spec_from_file_location(
        "_s2_build_socket", os.path.join(HERE, "build_socket.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


CDEF = r"""
typedef struct s2_op {
    int kind;
    int pending;
    unsigned long long token;
    struct sockaddr_storage addr;
    int addrlen;
    unsigned long done_bytes;
    int done_err;
    ...;
} s2_op;

int s2_iocp_init(void);
void *s2_iocp_create(void);
int s2_iocp_close(void *port);
int s2_iocp_associate(void *port, int fd);
int s2_iocp_recv(s2_op *op, int fd, char *buf, unsigned long len,
                 unsigned long long token, unsigned long *got);
int s2_iocp_send(s2_op *op, int fd, const char *buf, unsigned long len,
                 unsigned long long token, unsigned long *got);
int s2_iocp_recvfrom(s2_op *op, int fd, char *buf, unsigned long len,
                     unsigned long long token, unsigned long *got);
int s2_iocp_sendto(s2_op *op, int fd, const char *buf, unsigned long len,
                   const struct sockaddr *sa, int salen,
                   unsigned long long token, unsigned long *got);
int s2_iocp_accept(s2_op *op, int listener, int accepted,
                   unsigned long long token);
int s2_iocp_accept_done(s2_op *op);
int s2_iocp_connect(s2_op *op, int fd, const struct sockaddr *sa, int salen,
                    unsigned long long token);
int s2_iocp_connect_done(s2_op *op);
int s2_iocp_cancel(s2_op *op);
int s2_iocp_wait(void *port, s2_op **ops, unsigned long long *tokens,
                 unsigned long *bytes, int *errs, int max, int timeout_ms);
int s2_iocp_wakeup(void *port, unsigned long long key);

#define WSAEMSGSIZE ...
"""

_socket = _build_socket()
ffibuilder = FFI()
ffibuilder.include(_socket.ffibuilder)
ffibuilder.cdef(CDEF)
# The socket module's Winsock prelude first: the included declarations
# (socklen_t, sa_family_t, struct sockaddr_un ...) must mean the same here.
ffibuilder.set_source("socket2._iocp_ffi",
                      _socket.WIN_INCLUDES + '#include "iocp.c"\n',
                      include_dirs=[HERE], libraries=["ws2_32", "mswsock"])

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
