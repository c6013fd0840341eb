"""asyncio echo server with streams (add --uvloop to run it on uvloop)."""
import asyncio
import sys

from _args import parse


async def handle(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except ConnectionError:     # a client that resets: nothing to report
        pass
    writer.close()


async def main(host, port):
    server = await asyncio.start_server(handle, host, port, backlog=65535)
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
    asyncio.run(main(args.host, args.port))
