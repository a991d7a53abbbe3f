"""python-sdbus (sdbus on PyPI): its sd-bus bindings, low-level message API.

The connection comes from sd_bus_open_system() (DBUS_SYSTEM_BUS_ADDRESS points
at the sandbox); the slow service's bus from sd_bus_open_user()
(DBUS_SESSION_BUS_ADDRESS). Pipelined: call_async futures under asyncio, at
most cfg["window"] in flight.
"""

import asyncio
from importlib.metadata import version

import sdbus

META = {"version": version("sdbus")}
PROPS = "org.freedesktop.DBus.Properties"
S1 = "org.freedesktop.systemd1"
_buses = []


def setup(cfg):
    bus = sdbus.sd_bus_open_system()
    _buses.append(bus)
    dest, mpath, upath = cfg["dest"], cfg["manager_path"], cfg["unit_path"]

    def get(path, iface, prop):
        def once():
            return bus.call(bus.new_property_get_message(dest, path, iface, prop)).get_contents()

        return once

    get_version = get(mpath, S1 + ".Manager", "Version")

    def getall_unit():
        m = bus.new_method_call_message(dest, upath, PROPS, "GetAll")
        m.append_data("s", S1 + ".Unit")
        return bus.call(m).get_contents()

    def list_units():
        return bus.call(bus.new_method_call_message(dest, mpath, S1 + ".Manager", "ListUnits")).get_contents()

    window = int(cfg.get("window", 128))

    async def pipelined_async(n):
        sem = asyncio.Semaphore(window)
        failed = 0

        async def one():
            nonlocal failed
            async with sem:
                try:
                    m = bus.new_property_get_message(dest, mpath, S1 + ".Manager", "Version")
                    (await bus.call_async(m)).get_contents()
                except Exception:
                    failed += 1

        await asyncio.gather(*(one() for _ in range(n)))
        return failed

    loop = asyncio.new_event_loop()

    def pipelined(n):
        return {"failed": loop.run_until_complete(pipelined_async(n))}

    cases = {
        "get_version": helpers.repeat(get_version),
        "get_active": helpers.repeat(get(upath, S1 + ".Unit", "ActiveState")),
        "getall_unit": helpers.repeat(getall_unit),
        "list_units": helpers.repeat(list_units),
        "pipelined_get": pipelined,
        "busy_get": lambda n: helpers.busy_calls(get_version, n / 1000),
        "rss_get": lambda n: helpers.rss_growth(get_version, n),
    }
    slow = cfg.get("slow")
    if slow:
        sbus = sdbus.sd_bus_open_user()
        _buses.append(sbus)
        # finish sd-bus's lazy authentication now: dbus-daemon drops a connection
        # that has not authenticated within its auth_timeout (this one is used later)
        sbus.call(sbus.new_method_call_message("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                               "org.freedesktop.DBus", "GetId"))

        def slow_call():
            m = sbus.new_method_call_message(slow["name"], slow["path"], slow["iface"], slow["method"])
            m.append_data("d", float(slow["seconds"]))
            return sbus.call(m).get_contents()

        cases["slow_call"] = lambda n: helpers.busy_during(slow_call, n / 1000)
    return cases


def teardown():
    while _buses:
        _buses.pop().close()
