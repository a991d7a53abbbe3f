"""A D-Bus service with one slow method, served with dbus-fast (a helper process).

    python bench/peers/slow_service.py ADDRESS

Owns org.pystemd.Bench.Slow on the bus at ADDRESS (a private dbus-daemon),
exports /org/pystemd/Bench/Slow with interface org.pystemd.Bench.Slow:
Sleep(d seconds) -> d, which replies after sleeping that long (asyncio.sleep:
the service does not burn CPU while the caller waits). Prints "ready" once the
name is owned, exits when stdin closes.
"""

import asyncio
import sys

from dbus_fast.aio import MessageBus
from dbus_fast.service import ServiceInterface, method

NAME = "org.pystemd.Bench.Slow"
PATH = "/org/pystemd/Bench/Slow"
IFACE = "org.pystemd.Bench.Slow"


class Slow(ServiceInterface):
    def __init__(self):
        super().__init__(IFACE)

    @method()
    async def Sleep(self, seconds: "d") -> "d":  # noqa: F821 (dbus-fast reads the annotation)
        await asyncio.sleep(seconds)
        return seconds


async def main(address):
    bus = await MessageBus(bus_address=address).connect()
    bus.export(PATH, Slow())
    await bus.request_name(NAME)
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    bus.disconnect()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
