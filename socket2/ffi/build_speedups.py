"""Build description of ``socket2._speedups``, the hot path in C
(``speedups.c`` beside this file; ``socket2/_hotpath.py`` is its Python
twin and chooses between them).

Unlike the other modules here it is a plain C extension, not a cffi one:
its entry points take Python objects (buffers, greenlets, the hub's slot
records), which cffi functions cannot, and a METH_FASTCALL call costs a
fraction of a cffi call plus ``ffi.from_buffer`` (docs/performance-analysis.md
has the measurements).  It uses greenlet's C API, whose header greenlet
installs in its package directory; nothing in it is OS-specific (the
system calls are build_socket.py's, handed over at run time).
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "speedups.c")
TLS_SOURCE = os.path.join(HERE, "tls_speedups.c")
GREEN_SOURCE = os.path.join(HERE, "green_speedups.c")
HTTP_SOURCE = os.path.join(HERE, "http_speedups.c")
# What speedups.c offers tls_speedups.c (its capsule's layout).
API_HEADER = os.path.join(HERE, "speedups_api.h")


def greenlet_include():
    """The directory holding ``greenlet.h``."""
    import greenlet
    d = os.path.dirname(os.path.abspath(greenlet.__file__))
    if not os.path.exists(os.path.join(d, "greenlet.h")):
        raise RuntimeError("greenlet.h is not in %s: greenlet >= 2.0 "
                           "installs it there" % d)
    return d


def extension(setup_dir):
    """The setuptools Extension (*setup_dir*: where setup.py lives; sources
    must be given relative to it)."""
    from setuptools import Extension
    return Extension("socket2._speedups",
                     [os.path.relpath(SOURCE, setup_dir)],
                     include_dirs=[greenlet_include()],
                     depends=[os.path.relpath(API_HEADER, setup_dir)])


def tls_extension(setup_dir):
    """``socket2._tls_speedups``: TLSSocket.recv/sendall in C for the C
    TLS engine (tls_speedups.c; it links nothing: the OpenSSL calls are
    build_openssl.py's, handed over at run time)."""
    from setuptools import Extension
    return Extension("socket2._tls_speedups",
                     [os.path.relpath(TLS_SOURCE, setup_dir)],
                     depends=[os.path.relpath(API_HEADER, setup_dir)])


def green_extension(setup_dir):
    """``socket2._green_speedups``: the compiled half of socket2.green
    (green_speedups.c): the waiter of its locks and queues, the queue's
    put and get and their plain waits.  It uses greenlet's C API too."""
    from setuptools import Extension
    return Extension("socket2._green_speedups",
                     [os.path.relpath(GREEN_SOURCE, setup_dir)],
                     include_dirs=[greenlet_include()])


def http_extension(setup_dir):
    """``socket2._http_speedups``: the WSGI server's request path in C
    (http_speedups.c, which compiles http_parser.c in): a request head
    parsed and its environ built in one call."""
    from setuptools import Extension
    return Extension("socket2._http_speedups",
                     [os.path.relpath(HTTP_SOURCE, setup_dir)],
                     depends=[os.path.relpath(
                         os.path.join(HERE, "http_parser.c"), setup_dir)])
