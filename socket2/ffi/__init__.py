"""cffi build scripts for socket2's compiled modules.

One script per C surface, each exposing ``ffibuilder``:

- ``build_socket.py``: the portable BSD socket and getaddrinfo calls
  (module ``socket2._socket_ffi``), built everywhere;
- ``build_epoll.py``: the Linux epoll poller (``socket2._epoll_ffi``),
  built only on Linux.

``setup.py`` lists in ``cffi_modules`` only the scripts that apply to the
OS being built on; the runtime guards each import again.
"""
