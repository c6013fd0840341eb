"""cffi build scripts for socket2's compiled modules.

One script per C surface, each exposing ``ffibuilder``:

- ``build_socket.py``: the portable BSD socket and getaddrinfo calls
  (module ``socket2._socket_ffi``), built everywhere;
- ``build_epoll.py``: the Linux epoll poller (``socket2._epoll_ffi``),
  built only on Linux;
- ``build_kqueue.py``: the kqueue poller (macOS/BSD, and Linux where
  pkg-config finds libkqueue);
- ``build_poll.py``: the poll(2) poller, on every POSIX system;
- ``build_iocp.py``: the Windows IOCP backend (``socket2._iocp_ffi``),
  compiling ``iocp.c``; built only on Windows (and cross-built for wine by
  ``tests/windows/build.py``);
- ``build_http.py``: the HTTP/1.1 message-head parser and chunked decoder
  (``socket2._http_ffi``), compiling ``http_parser.c``; built everywhere
  (``socket2/http/_parser_py.py`` is its pure-Python twin).

- ``build_openssl.py``: the TLS record loop over OpenSSL
  (``socket2._openssl_ffi``), the C TLS engine; built where OpenSSL's
  headers are (Debian: libssl-dev), never on Windows;
- ``build_speedups.py``: not cffi but plain C extensions: the hot path
  (``speedups.c``, ``socket2._speedups``) and TLSSocket's compiled
  recv/sendall (``tls_speedups.c``, ``socket2._tls_speedups``).

``setup.py`` lists in ``cffi_modules`` only the scripts that apply to the
OS being built on; the runtime guards each import again.
"""
