"""asyncio echo server with streams (add --uvloop to run it on uvloop;
--cert/--key: TLS through start_server(ssl=))."""
import asyncio
import sys

from _args import parse, server_context


async def handle(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):   # a reset client, a TLS error
        pass
    writer.close()


async def main(host, port, ctx):
    server = await asyncio.start_server(handle, host, port, backlog=65535,
                                        ssl=ctx)
    print("asyncio-streams: listening", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    use_uvloop = "--uvloop" in sys.argv
    if use_uvloop:
        sys.argv.remove("--uvloop")
        import uvloop
        uvloop.install()
    args = parse(__doc__)
    asyncio.run(main(args.host, args.port, server_context(args)))
