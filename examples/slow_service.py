#!/usr/bin/env python3
"""A D-Bus service with a slow method, served by pystemd (for benchmarks and demos).

    python examples/slow_service.py [--address unix:path=/run/bus] [--name org.pystemd.Slow]

exports ``org.pystemd.Slow1`` at ``/org/pystemd/Slow``:

* ``Sleep(d seconds) -> d``: replies after ``seconds``; concurrent calls
  overlap (an ``async def`` method on asyncio);
* ``SleepBlocking(d seconds) -> d``: sleeps in the serving thread, so calls
  queue up behind each other;
* ``Ping()``: replies at once; property ``Calls`` (u): calls served so far.

The bench calls ``Sleep(1.0)`` from another process to show what a slow
D-Bus call costs a busy Python thread of the caller. It prints
``READY <unique name> <well-known name>`` on stdout once the name is owned,
and serves until SIGTERM or SIGINT (exit status 0).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from typing import Optional

from pystemd import aio, serve
from pystemd.bus import Bus

INTERFACE = "org.pystemd.Slow1"
PATH = "/org/pystemd/Slow"


class Slow(serve.Interface, interface=INTERFACE):
    def __init__(self) -> None:
        self.calls = 0

    @serve.method("d", "d", unprivileged=True)
    async def Sleep(self, seconds: float) -> float:
        self.calls += 1
        await asyncio.sleep(max(0.0, seconds))
        return seconds

    @serve.method("d", "d", unprivileged=True)
    def SleepBlocking(self, seconds: float) -> float:
        self.calls += 1
        time.sleep(max(0.0, seconds))
        return seconds

    @serve.method(unprivileged=True)
    def Ping(self) -> None:
        self.calls += 1

    @serve.dbus_property("u", emits=False)
    def Calls(self) -> int:
        return self.calls


async def main(address: Optional[str], name: str) -> int:
    with Bus(address) if address else Bus(user=True) as bus:
        serve.export(bus, PATH, Slow())
        abus = aio.attach(bus)
        serve.request_name(bus, name)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print("READY", bus.unique_name, name, flush=True)
        await stop.wait()
        abus.close()
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--address", help="bus address (default: the user bus)")
    ap.add_argument("--name", default="org.pystemd.Slow", help="well-known name to own")
    a = ap.parse_args()
    sys.exit(asyncio.run(main(a.address, a.name)))
