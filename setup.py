"""Build glue: setuptools' ``cffi_modules`` cannot be declared in
pyproject.toml, so the per-OS choice of poller modules lives here, with
the hot path's C extension (socket2/ffi/build_speedups.py)."""
import os
import sys

from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "socket2", "ffi"))
import build_kqueue  # noqa: E402  (only asks whether kqueue can be built)
import build_openssl  # noqa: E402  (only asks whether OpenSSL's headers are there)
import build_speedups  # noqa: E402

cffi_modules = ["socket2/ffi/build_socket.py:ffibuilder"]
cffi_modules.append("socket2/ffi/build_http.py:ffibuilder")  # every OS
if sys.platform == "win32":
    cffi_modules.append("socket2/ffi/build_iocp.py:ffibuilder")
else:
    cffi_modules.append("socket2/ffi/build_poll.py:ffibuilder")
if sys.platform.startswith("linux"):
    cffi_modules.append("socket2/ffi/build_epoll.py:ffibuilder")
if build_openssl.available():   # the C TLS engine (socket2/tls.py)
    cffi_modules.append("socket2/ffi/build_openssl.py:ffibuilder")
if build_kqueue.available():   # macOS/BSD, or Linux with libkqueue installed
    cffi_modules.append("socket2/ffi/build_kqueue.py:ffibuilder")

setup(cffi_modules=cffi_modules,
      ext_modules=[build_speedups.extension(HERE),
                   build_speedups.tls_extension(HERE),
                   build_speedups.green_extension(HERE),
                   build_speedups.http_extension(HERE)])
