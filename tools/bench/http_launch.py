"""Start one server of the HTTP benchmark on tools/bench/http_app.py's
application, the way that server's users start it from Python (for the
servers that have no command line of their own, or none that takes a
WSGI callable):

    python http_launch.py bjoern|meinheld|pywsgi|socket2 --host H --port P

- bjoern: ``bjoern.run(app, host, port)``;
- meinheld: ``meinheld.server.listen((host, port))`` + ``run(app)``, with
  keep-alive switched on (``set_keepalive(75)``: meinheld's default is
  ``Connection: close`` on every response; its gunicorn worker sets it the
  same way) and its access log off (``set_access_logger(None)``);
- pywsgi: gevent's ``WSGIServer((host, port), app, log=None)``
  (``log=None``: no access log, like every other row of the benchmark);
- socket2: ``socket2.http.serve`` on a ``socket2.tcp()`` listener, the
  SPEC's three lines (used while ``python -m socket2.http`` is missing).

Each prints nothing and serves until SIGTERM/SIGINT.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from http_app import app  # noqa: E402


def run_bjoern(host, port):
    import bjoern
    bjoern.run(app, host, port)


def run_meinheld(host, port):
    from meinheld import server
    server.set_keepalive(75)
    server.set_access_logger(None)
    server.listen((host, port))
    server.run(app)


def run_pywsgi(host, port):
    from gevent.pywsgi import WSGIServer
    WSGIServer((host, port), app, log=None).serve_forever()


def run_socket2(host, port):
    import signal

    import socket2
    import socket2.http

    signal.signal(signal.SIGTERM, signal.default_int_handler)
    listener = socket2.tcp()
    listener.listen(host, port)
    socket2.newthread(socket2.http.serve, listener, app)
    try:
        socket2.start()
    except KeyboardInterrupt:
        pass


SERVERS = {"bjoern": run_bjoern, "meinheld": run_meinheld,
           "pywsgi": run_pywsgi, "socket2": run_socket2}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("server", choices=sorted(SERVERS))
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    args = ap.parse_args()
    SERVERS[args.server](args.host, args.port)


if __name__ == "__main__":
    main()
