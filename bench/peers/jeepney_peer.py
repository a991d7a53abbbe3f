"""jeepney, blocking I/O (jeepney.io.blocking): pure-Python D-Bus.

Pipelined: send up to cfg["window"] messages, then read replies by serial.
"""

from importlib.metadata import version

from jeepney import DBusAddress, MessageType, new_method_call
from jeepney.io.blocking import open_dbus_connection
from jeepney.low_level import HeaderFields

META = {"version": version("jeepney")}
PROPS = "org.freedesktop.DBus.Properties"
S1 = "org.freedesktop.systemd1"
_conns = []


def setup(cfg):
    conn = open_dbus_connection(bus=cfg["address"])
    _conns.append(conn)
    dest = cfg["dest"]
    mgr_props = DBusAddress(cfg["manager_path"], bus_name=dest, interface=PROPS)
    unit_props = DBusAddress(cfg["unit_path"], bus_name=dest, interface=PROPS)
    mgr = DBusAddress(cfg["manager_path"], bus_name=dest, interface=S1 + ".Manager")

    def caller(make):
        def once():
            reply = conn.send_and_get_reply(make())
            if reply.header.message_type == MessageType.error:
                raise RuntimeError(str(reply.body))
            return reply.body

        return once

    get_version = caller(lambda: new_method_call(mgr_props, "Get", "ss", (S1 + ".Manager", "Version")))
    window = int(cfg.get("window", 128))

    def pipelined(n):
        sent = done = failed = 0
        pending = set()
        while done < n:
            while sent < n and len(pending) < window:
                serial = next(conn.outgoing_serial)
                conn.send(new_method_call(mgr_props, "Get", "ss", (S1 + ".Manager", "Version")), serial=serial)
                pending.add(serial)
                sent += 1
            msg = conn.receive()
            rs = msg.header.fields.get(HeaderFields.reply_serial)
            if rs in pending:
                pending.discard(rs)
                done += 1
                if msg.header.message_type == MessageType.error:
                    failed += 1
        return {"failed": failed}

    cases = {
        "get_version": helpers.repeat(get_version),
        "get_active": helpers.repeat(caller(lambda: new_method_call(unit_props, "Get", "ss", (S1 + ".Unit", "ActiveState")))),
        "getall_unit": helpers.repeat(caller(lambda: new_method_call(unit_props, "GetAll", "s", (S1 + ".Unit",)))),
        "list_units": helpers.repeat(caller(lambda: new_method_call(mgr, "ListUnits"))),
        "pipelined_get": pipelined,
        "busy_get": lambda n: helpers.busy_calls(get_version, n / 1000),
        "rss_get": lambda n: helpers.rss_growth(get_version, n),
    }
    slow = cfg.get("slow")
    if slow:
        sconn = open_dbus_connection(bus=slow["address"])
        _conns.append(sconn)
        saddr = DBusAddress(slow["path"], bus_name=slow["name"], interface=slow["iface"])

        def slow_call():
            return sconn.send_and_get_reply(new_method_call(saddr, slow["method"], "d", (float(slow["seconds"]),)))

        cases["slow_call"] = lambda n: helpers.busy_during(slow_call, n / 1000)
    return cases


def teardown():
    while _conns:
        _conns.pop().close()
