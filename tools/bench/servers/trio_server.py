"""trio echo server: serve_tcp, one task per connection."""
from functools import partial

import trio

from _args import parse


async def handle(stream):
    try:
        while True:
            data = await stream.receive_some(65536)
            if not data:
                break
            await stream.send_all(data)
    except trio.BrokenResourceError:
        pass


async def main(host, port):
    print("trio: listening", flush=True)
    await trio.serve_tcp(handle, port, host=host, backlog=65535)


if __name__ == "__main__":
    args = parse(__doc__)
    trio.run(partial(main, args.host, args.port))
