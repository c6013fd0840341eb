"""trio echo server: serve_tcp, one task per connection (--cert/--key:
serve_ssl_over_tcp, an SSLStream per connection)."""
from functools import partial

import trio

from _args import parse, server_context


async def handle(stream):
    try:
        while True:
            data = await stream.receive_some(65536)
            if not data:
                break
            await stream.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


async def main(host, port, ctx):
    print("trio: listening", flush=True)
    if ctx is None:
        await trio.serve_tcp(handle, port, host=host, backlog=65535)
    else:
        await trio.serve_ssl_over_tcp(handle, port, ctx, host=host,
                                      backlog=65535)


if __name__ == "__main__":
    args = parse(__doc__)
    trio.run(partial(main, args.host, args.port, server_context(args)))
