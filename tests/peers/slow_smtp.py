"""A real SMTP server (aiosmtpd) for the compatibility tests, in its own
process: every message is accepted after a delay.

    python tests/peers/slow_smtp.py [DELAY]    # prints the port
"""
import asyncio
import socket
import sys
import time

from aiosmtpd.controller import Controller


class SlowHandler:
    def __init__(self, delay):
        self.delay = delay
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(self.delay)
        self.count += 1
        return "250 OK message %d accepted" % self.count


def main():
    delay = float(sys.argv[1]) if len(sys.argv) > 1 else 0.5
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(SlowHandler(delay), hostname="127.0.0.1",
                            port=port)
    controller.start()
    print(port, flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
