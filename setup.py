"""Build glue: setuptools' ``cffi_modules`` cannot be declared in
pyproject.toml, so the per-OS choice of poller modules lives here."""
import sys

from setuptools import setup

cffi_modules = ["socket2/ffi/build_socket.py:ffibuilder"]
if sys.platform != "win32":
    cffi_modules.append("socket2/ffi/build_poll.py:ffibuilder")
if sys.platform.startswith("linux"):
    cffi_modules.append("socket2/ffi/build_epoll.py:ffibuilder")

setup(cffi_modules=cffi_modules)
