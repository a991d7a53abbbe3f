"""Upstream pystemd 0.15.3 (its own venv, run with python -I outside the checkout).

cfg["mode"]: "default" (no bus given: the library opens and closes a new
connection for every property read or method call, its documented default;
DBUS_SYSTEM_BUS_ADDRESS points it at the sandbox) or "explicit" (one
DBusAddress opened once and passed as bus=). The calls go through its
object façade (Manager/Unit with introspection loaded once), as its users
write them.
"""

import pystemd
from pystemd.dbuslib import DBus, DBusAddress
from pystemd.systemd1 import Manager, Unit

META = {"version": str(pystemd.__version__)}
_buses = []


def setup(cfg):
    mode = cfg.get("mode", "explicit")
    META["mode"] = mode
    bus = None
    if mode == "explicit":
        bus = DBusAddress(cfg["address"].encode(), False)
        bus.open()
        _buses.append(bus)
    manager = Manager(bus=bus, _autoload=True)
    unit = Unit(cfg["unit"].encode(), bus=bus, _autoload=True)
    iface = b"org.freedesktop.systemd1.Unit"

    def get_version():
        return manager.Manager.Version

    def get_active():
        return unit.Unit.ActiveState

    def getall_unit():
        return unit.Properties.GetAll(iface)

    def list_units():
        return manager.Manager.ListUnits()

    cases = {
        "get_version": helpers.repeat(get_version),
        "get_active": helpers.repeat(get_active),
        "getall_unit": helpers.repeat(getall_unit),
        "list_units": helpers.repeat(list_units),
        "busy_get": lambda n: helpers.busy_calls(get_version, n / 1000),
        "rss_get": lambda n: helpers.rss_growth(get_version, n),
    }
    slow = cfg.get("slow")
    if slow:
        if mode == "explicit":
            sbus = DBusAddress(slow["address"].encode(), False)
            sbus.open()
            _buses.append(sbus)
            # finish the lazy authentication now: dbus-daemon drops a connection that
            # has not authenticated within its auth_timeout (this one is used later)
            sbus.call_method(b"org.freedesktop.DBus", b"/org/freedesktop/DBus",
                             b"org.freedesktop.DBus", b"GetId", [])
        else:
            sbus = None  # DBUS_SESSION_BUS_ADDRESS is the slow service's bus

        def slow_call():
            args = [(ord("d"), float(slow["seconds"]))]
            name, path = slow["name"].encode(), slow["path"].encode()
            iface, method = slow["iface"].encode(), slow["method"].encode()
            if sbus is not None:
                return sbus.call_method(name, path, iface, method, args)
            with DBus(user_mode=True) as b:
                return b.call_method(name, path, iface, method, args)

        cases["slow_call"] = lambda n: helpers.busy_during(slow_call, n / 1000)
    return cases


def teardown():
    while _buses:
        _buses.pop().close()
