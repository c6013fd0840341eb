"""The HTTP benchmark's application: TechEmpower's plaintext test, a
13-byte ``Hello, World!`` in ``text/plain``, as a WSGI callable (``app``)
and as its ASGI twin (``asgi_app``, for uvicorn).  Every server in
tools/bench/http_bench.py runs exactly this, so what differs between the
rows is the server.

The headers are a fresh list per request, as an application builds them
(a server may append to the list it is given).
"""

BODY = b"Hello, World!"
LENGTH = str(len(BODY))
ASGI_LENGTH = LENGTH.encode()


def app(environ, start_response):
    """WSGI: 200, text/plain, the 13-byte body."""
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", LENGTH)])
    return [BODY]


async def asgi_app(scope, receive, send):
    """ASGI 3: the same response; lifespan events are acknowledged."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", ASGI_LENGTH)]})
    await send({"type": "http.response.body", "body": BODY})
