"""dbus-fast (asyncio). One event loop; each timed repetition is one coroutine
making the calls back to back (await per call). Pipelined: asyncio.gather under a
semaphore of cfg["window"]. cfg["sync"]: instead, one loop.run_until_complete()
per call, the way blocking code would have to use it.
"""

import asyncio
from importlib.metadata import version

from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

META = {"version": version("dbus-fast")}
PROPS = "org.freedesktop.DBus.Properties"
S1 = "org.freedesktop.systemd1"
_loop = None
_buses = []


def setup(cfg):
    global _loop
    loop = _loop = asyncio.new_event_loop()
    sync = bool(cfg.get("sync"))
    META["mode"] = "run_until_complete per call" if sync else "asyncio"
    asyncio.set_event_loop(loop)

    async def connect(address):
        return await MessageBus(bus_address=address).connect()

    bus = loop.run_until_complete(connect(cfg["address"]))
    _buses.append(bus)
    dest, mpath, upath = cfg["dest"], cfg["manager_path"], cfg["unit_path"]

    def msg(path, iface, member, signature="", body=()):
        return dict(destination=dest, path=path, interface=iface, member=member,
                    signature=signature, body=list(body))

    async def call(kw):
        reply = await bus.call(Message(**kw))
        if reply.message_type == MessageType.ERROR:
            raise RuntimeError(f"{reply.error_name}: {reply.body}")
        return reply.body

    version_kw = msg(mpath, PROPS, "Get", "ss", (S1 + ".Manager", "Version"))
    active_kw = msg(upath, PROPS, "Get", "ss", (S1 + ".Unit", "ActiveState"))
    getall_kw = msg(upath, PROPS, "GetAll", "s", (S1 + ".Unit",))
    list_kw = msg(mpath, S1 + ".Manager", "ListUnits")

    def repeat(kw):
        if sync:
            def run(n):
                for _ in range(n):
                    loop.run_until_complete(call(kw))
        else:
            async def many(n):
                for _ in range(n):
                    await call(kw)

            def run(n):
                loop.run_until_complete(many(n))

        return run

    window = int(cfg.get("window", 128))

    async def pipelined_async(n):
        sem = asyncio.Semaphore(window)
        failed = 0

        async def one():
            nonlocal failed
            async with sem:
                try:
                    await call(version_kw)
                except Exception:
                    failed += 1

        await asyncio.gather(*(one() for _ in range(n)))
        return failed

    def get_version_once():
        # busy_get / rss_get: one run_until_complete per call (the loop waits in
        # epoll with the GIL released, as an asyncio app's loop thread would)
        return loop.run_until_complete(call(version_kw))

    cases = {
        "get_version": repeat(version_kw),
        "get_active": repeat(active_kw),
        "getall_unit": repeat(getall_kw),
        "list_units": repeat(list_kw),
        "busy_get": lambda n: helpers.busy_calls(get_version_once, n / 1000),
        "rss_get": lambda n: helpers.rss_growth(get_version_once, n),
    }
    if not sync:
        cases["pipelined_get"] = lambda n: {"failed": loop.run_until_complete(pipelined_async(n))}
    slow = cfg.get("slow")
    if slow:
        sbus = loop.run_until_complete(connect(slow["address"]))
        _buses.append(sbus)
        slow_msg = dict(destination=slow["name"], path=slow["path"], interface=slow["iface"],
                        member=slow["method"], signature="d", body=[float(slow["seconds"])])

        def slow_call():
            return loop.run_until_complete(sbus.call(Message(**slow_msg)))

        cases["slow_call"] = lambda n: helpers.busy_during(slow_call, n / 1000)
    return cases


def teardown():
    for b in _buses:
        b.disconnect()
    if _loop is not None:
        for b in _buses:
            try:
                _loop.run_until_complete(asyncio.wait_for(b.wait_for_disconnect(), 2))
            except Exception:
                pass
        _loop.close()
