"""pystemd (this checkout): the blocking API of pystemd.bus.Bus, and its batch API when present.

cfg: address, peer, dest, manager_path, unit_path, window, busy_ms, rss_calls,
slow (address/name/path/iface/method/seconds, or None).
"""

import pystemd
from pystemd.bus import Bus

META = {"version": getattr(pystemd, "__version__", "checkout")}

S1 = "org.freedesktop.systemd1"
PROPS = "org.freedesktop.DBus.Properties"
_buses = []

# Names under which the bus-core engineer's batch/pipelined API may land; the
# first one found is used by the "pipelined_get" case (see batch_api()).
BATCH_NAMES = ("batch", "pipeline", "call_many", "get_properties_many", "call_batch")


def batch_api(bus):
    for name in BATCH_NAMES:
        if hasattr(bus, name):
            return name
    return None


def setup(cfg):
    bus = Bus(cfg["address"], peer=bool(cfg.get("peer")))
    _buses.append(bus)
    dest = cfg.get("dest")
    mpath, upath = cfg["manager_path"], cfg["unit_path"]

    def get_version():
        return bus.get_property(dest, mpath, S1 + ".Manager", "Version")

    def get_active():
        return bus.get_property(dest, upath, S1 + ".Unit", "ActiveState")

    def getall_unit():
        return bus.get_all_properties(dest, upath, S1 + ".Unit")

    def list_units():
        return bus.call(dest, mpath, S1 + ".Manager", "ListUnits")

    cases = {
        "get_version": helpers.repeat(get_version),
        "get_active": helpers.repeat(get_active),
        "getall_unit": helpers.repeat(getall_unit),
        "list_units": helpers.repeat(list_units),
        "busy_get": lambda n: helpers.busy_calls(get_version, n / 1000),
        "rss_get": lambda n: helpers.rss_growth(get_version, n),
    }
    META["batch_api"] = batch_api(bus)
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
