"""asyncio echo server with a Protocol (add --uvloop to run it on uvloop;
--cert/--key: TLS through create_server(ssl=))."""
import asyncio
import sys

from _args import parse, server_context


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def main(host, port, ctx):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, host, port, backlog=65535,
                                      ssl=ctx)
    print("asyncio-protocol: listening", flush=True)
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
