"""pystemd (this checkout): the blocking API of pystemd.bus.Bus, and its batch
API (get_property_many, call_many) when the checkout has it.

cfg: address, peer, dest, manager_path, unit_path, window, busy_ms, rss_calls,
slow (address/name/path/iface/method/seconds, or None).
"""

import pystemd
from pystemd.bus import Bus

META = {"version": getattr(pystemd, "__version__", "checkout")}

S1 = "org.freedesktop.systemd1"
PROPS = "org.freedesktop.DBus.Properties"
_buses = []
# Bus() completes the handshake (authentication, Hello) before it returns, so
# a connection opened at setup and first used minutes later is still there.


def _failed(replies):
    return sum(1 for x in replies if isinstance(x, BaseException))


def setup(cfg):
    bus = Bus(cfg["address"], peer=bool(cfg.get("peer")))
    _buses.append(bus)
    dest = cfg.get("dest")
    mpath, upath = cfg["manager_path"], cfg["unit_path"]
    # interface names built once, as the other peers' snippets do (sdbus_peer.get)
    manager, unit = S1 + ".Manager", S1 + ".Unit"

    def get_version():
        return bus.get_property(dest, mpath, manager, "Version")

    def get_active():
        return bus.get_property(dest, upath, unit, "ActiveState")

    def getall_unit():
        return bus.get_all_properties(dest, upath, unit)

    def list_units():
        return bus.call(dest, mpath, manager, "ListUnits")

    cases = {
        "get_version": helpers.repeat(get_version),
        "get_active": helpers.repeat(get_active),
        "getall_unit": helpers.repeat(getall_unit),
        "list_units": helpers.repeat(list_units),
        "busy_get": lambda n: helpers.busy_calls(get_version, n / 1000),
        "rss_get": lambda n: helpers.rss_growth(get_version, n),
    }
    # the GIL-held wait window (docs/bus.md "The GIL policy"): the same Gets
    # with bus.gil_hold_us set for the run, then restored
    default_hold = bus.gil_hold_us

    def with_hold(hold, fn):
        def run(n):
            bus.gil_hold_us = hold
            try:
                return fn(n)
            finally:
                bus.gil_hold_us = default_hold

        return run

    for hold in (0, 500, 5000):
        cases[f"get_version_hold_{hold}"] = with_hold(hold, helpers.repeat(get_version))
        cases[f"busy_get_hold_{hold}"] = with_hold(
            hold, lambda n: helpers.busy_calls(get_version, n / 1000)
        )
    META["gil_hold_us"] = default_hold
    # the batch API (docs/bus.md, "Pipelined calls"), measured once it exists
    window = int(cfg.get("window", 128))
    if hasattr(bus, "get_property_many"):
        version_req = (dest, mpath, manager, "Version")

        def pipelined_get(n):
            replies = bus.get_property_many([version_req] * n, window=window, return_exceptions=True)
            return {"failed": _failed(replies)}

        cases["pipelined_get"] = pipelined_get
    if hasattr(bus, "call_many"):
        get_req = (dest, mpath, PROPS, "Get", "ss", (manager, "Version"))

        def pipelined_call(n):
            replies = bus.call_many([get_req] * n, window=window, return_exceptions=True)
            return {"failed": _failed(replies)}

        cases["pipelined_call_many"] = pipelined_call
    META["batch_api"] = [c for c in ("get_property_many", "call_many") if hasattr(bus, c)]
    slow = cfg.get("slow")
    if slow:
        sbus = Bus(slow["address"])
        _buses.append(sbus)

        def slow_call():
            return sbus.call(slow["name"], slow["path"], slow["iface"], slow["method"], "d",
                             (slow["seconds"],), timeout=slow["seconds"] + 10)

        cases["slow_call"] = lambda n: helpers.busy_during(slow_call, n / 1000)
    return cases


def teardown():
    while _buses:
        _buses.pop().close()
