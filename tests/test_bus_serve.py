"""Serving: Python objects exported through sd-bus vtables, called by independent clients.

The clients are busctl (systemd's own tool), dbus-fast and jeepney, on a
private dbus-daemon; one test serves on the sandboxed systemd's system bus.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import subprocess
import sys
import threading
import weakref
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest

from pystemd import aio, serve
from pystemd.bus import Bus
from pystemd.errors import BusError, register

jeepney = pytest.importorskip("jeepney")
dbus_fast = pytest.importorskip("dbus_fast")

from dbus_fast import Message as FMessage  # noqa: E402
from dbus_fast import MessageType  # noqa: E402
from dbus_fast import Variant as FVariant  # noqa: E402
from dbus_fast.aio import MessageBus  # noqa: E402
from jeepney import DBusAddress, new_method_call  # noqa: E402
from jeepney.bus_messages import MatchRule, message_bus  # noqa: E402
from jeepney.io.blocking import open_dbus_connection  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
NAME = "org.pystemd.Test"
IFACE = "org.pystemd.Test1"
PATH = "/org/pystemd/Test"


@register("org.pystemd.Error.Busy")
class Busy(BusError):
    pass


class Thing(serve.Interface, interface=IFACE):
    def __init__(self) -> None:
        self._label = "start"
        self.count = 7
        self.calls: list[str] = []

    @serve.method("s", "s")
    def Echo(self, text: str) -> str:
        self.calls.append(text)
        return text

    @serve.method("(isb)ayaxa{sv}v", "(isb)ayaxa{sv}v", keep_variants=True)
    def EchoMany(self, st: Any, ay: bytes, ax: list[int], d: dict[str, Any], v: Any) -> Any:
        return st, ay, ax, d, v

    @serve.method("ii", "ii", out_names=("quotient", "remainder"))
    def DivMod(self, a: int, b: int) -> tuple[int, int]:
        return divmod(a, b)  # b == 0: ZeroDivisionError -> Failed

    @serve.method("s")
    def Fail(self, kind: str) -> None:
        if kind == "busy":
            raise Busy("org.pystemd.Error.Busy", "try again later")
        if kind == "value":
            raise ValueError("bad value")
        if kind == "perm":
            raise PermissionError("not you")
        if kind == "bad-name":
            raise BusError("not a valid error name", "odd")
        raise KeyError(kind)

    @serve.method(returns="i")
    def BadReturn(self) -> Any:
        return "not an int"

    @serve.method(returns="s", message=True)
    def Who(self, message: Any) -> str:
        return message.sender  # type: ignore[no-any-return]

    @serve.method()
    def Interrupt(self) -> None:
        raise KeyboardInterrupt

    @serve.dbus_property("u")
    def Count(self) -> int:
        return self.count

    @serve.dbus_property("s")
    def Label(self) -> str:
        return self._label

    @Label.setter
    def Label(self, value: str) -> None:
        if value == "forbidden":
            raise ValueError("that label is not allowed")
        self._label = value

    @serve.dbus_property("s", emits="const")
    def Version(self) -> str:
        return "1.0"

    Changed = serve.signal("sb", names=("name", "on"))


class Other(serve.Interface, interface="org.pystemd.Other1"):
    @serve.method(returns="s", unprivileged=True)
    def Hello(self) -> str:
        return "hello"


class Both(Thing, Other):
    pass


class Server:
    """A Bus serving in its own thread (the blocking loop, serve_forever)."""

    def __init__(
        self, address: str, obj: Optional[serve.Interface] = None, **export_kw: Any
    ) -> None:
        self.bus = Bus(address)
        self.obj = obj if obj is not None else Thing()
        self.handle = serve.export(self.bus, PATH, self.obj, **export_kw)
        serve.request_name(self.bus, NAME)
        self._stop = False
        self.error: Optional[BaseException] = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            serve.serve_forever(self.bus, until=lambda: self._stop)
        except BaseException as e:
            self.error = e

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop = True
        self.thread.join(30)
        self.bus.close()


@pytest.fixture
def server(dbus_daemon: Any) -> Iterator[Server]:
    with Server(dbus_daemon.address) as s:
        yield s
    assert s.error is None


def busctl(
    address: str, *args: str, user: Optional[int] = None
) -> subprocess.CompletedProcess[str]:
    cmd = ["busctl", f"--address={address}", *args]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


def fast_call(
    address: str, member: str, signature: str = "", body: Optional[list[Any]] = None, **kw: Any
) -> Any:
    async def go() -> Any:
        bus = await MessageBus(bus_address=address).connect()
        try:
            return await bus.call(
                FMessage(
                    destination=kw.get("destination", NAME),
                    path=kw.get("path", PATH),
                    interface=kw.get("interface", IFACE),
                    member=member,
                    signature=signature,
                    body=body or [],
                )
            )
        finally:
            bus.disconnect()

    return asyncio.run(go())


# ---------------------------------------------------------------------------
# methods


def test_busctl_calls_methods(server: Server, dbus_daemon: Any) -> None:
    r = busctl(dbus_daemon.address, "call", NAME, PATH, IFACE, "DivMod", "ii", "17", "5")
    assert (r.returncode, r.stdout.strip()) == (0, "ii 3 2"), r.stderr
    r = busctl(
        dbus_daemon.address, "--json=short", "call", NAME, PATH, IFACE, "Echo", "s", "héllo wörld"
    )
    assert json.loads(r.stdout) == {"type": "s", "data": ["héllo wörld"]}, r.stderr
    assert server.obj.calls == ["héllo wörld"]  # type: ignore[attr-defined]


def test_introspection_xml_names_the_arguments(server: Server, dbus_daemon: Any) -> None:
    r = busctl(dbus_daemon.address, "introspect", "--xml-interface", NAME, PATH)
    assert r.returncode == 0, r.stderr
    root = ET.fromstring(r.stdout.split("\n", 2)[2])  # skip the DOCTYPE lines
    iface = next(i for i in root.iter("interface") if i.get("name") == IFACE)
    divmod_ = next(m for m in iface.iter("method") if m.get("name") == "DivMod")
    args = [(a.get("name"), a.get("type"), a.get("direction")) for a in divmod_.iter("arg")]
    assert args == [
        ("a", "i", "in"),
        ("b", "i", "in"),
        ("quotient", "i", "out"),
        ("remainder", "i", "out"),
    ]
    changed = next(s for s in iface.iter("signal") if s.get("name") == "Changed")
    assert [(a.get("name"), a.get("type")) for a in changed.iter("arg")] == [
        ("name", "s"),
        ("on", "b"),
    ]
    props = {p.get("name"): p.get("access") for p in iface.iter("property")}
    assert props == {"Count": "read", "Label": "readwrite", "Version": "read"}
    version = next(p for p in iface.iter("property") if p.get("name") == "Version")
    ann = {a.get("name"): a.get("value") for a in version.iter("annotation")}
    assert ann["org.freedesktop.DBus.Property.EmitsChangedSignal"] == "const"


def test_complex_types_round_trip_through_dbus_fast(server: Server, dbus_daemon: Any) -> None:
    body = [
        [-5, "x", True],
        b"\x00\x01\xff",
        [-(1 << 62), 0, 1 << 62],
        {"t": FVariant("t", 1 << 63), "as": FVariant("as", ["a", "b"]), "e": FVariant("a{ss}", {})},
        FVariant("(ud)", [7, 2.5]),
    ]
    reply = fast_call(dbus_daemon.address, "EchoMany", "(isb)ayaxa{sv}v", body)
    assert reply.message_type == MessageType.METHOD_RETURN, reply.body
    assert reply.signature == "(isb)ayaxa{sv}v"
    st, ay, ax, d, v = reply.body
    assert list(st) == [-5, "x", True] and ay == b"\x00\x01\xff" and ax == body[2]
    assert d["t"] == FVariant("t", 1 << 63) and d["as"] == FVariant("as", ["a", "b"])
    assert d["e"] == FVariant("a{ss}", {})
    assert v.signature == "(ud)" and list(v.value) == [7, 2.5]


def test_jeepney_calls_a_method(server: Server, dbus_daemon: Any) -> None:
    conn = open_dbus_connection(bus=dbus_daemon.address)
    try:
        addr = DBusAddress(PATH, bus_name=NAME, interface=IFACE)
        reply = conn.send_and_get_reply(new_method_call(addr, "DivMod", "ii", (-7, 2)), timeout=10)
        assert reply.body == (-4, 1)
        reply = conn.send_and_get_reply(new_method_call(addr, "Who"), timeout=10)
        assert reply.body == (conn.unique_name,)
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("kind", "name", "text"),
    [
        ("busy", "org.pystemd.Error.Busy", "try again later"),
        ("value", "org.freedesktop.DBus.Error.InvalidArgs", "bad value"),
        ("perm", "org.freedesktop.DBus.Error.AccessDenied", "not you"),
        ("bad-name", "org.freedesktop.DBus.Error.Failed", "not a valid error name: odd"),
        ("other", "org.freedesktop.DBus.Error.Failed", "KeyError: 'other'"),
    ],
)
def test_exceptions_become_named_errors(
    server: Server, dbus_daemon: Any, kind: str, name: str, text: str, caplog: Any
) -> None:
    reply = fast_call(dbus_daemon.address, "Fail", "s", [kind])
    assert reply.message_type == MessageType.ERROR
    assert (reply.error_name, reply.body) == (name, [text])
    # the error is also what a pystemd client raises, by name
    with Bus(dbus_daemon.address) as bus:
        with pytest.raises(BusError) as ei:
            bus.call(NAME, PATH, IFACE, "Fail", "s", (kind,))
    assert ei.value.name == name
    if kind == "busy":
        assert isinstance(ei.value, Busy)


def test_unexpected_exception_is_logged_with_traceback(
    server: Server, dbus_daemon: Any, caplog: Any
) -> None:
    with caplog.at_level(logging.ERROR, logger="pystemd.serve"):
        r = busctl(dbus_daemon.address, "call", NAME, PATH, IFACE, "DivMod", "ii", "1", "0")
    assert r.returncode != 0 and "ZeroDivisionError" in r.stderr
    rec = next(r for r in caplog.records if r.name == "pystemd.serve")
    assert "org.pystemd.Test1.DivMod" in rec.getMessage()
    assert rec.exc_info is not None and rec.exc_info[0] is ZeroDivisionError


def test_a_return_value_that_does_not_fit_is_an_error(
    server: Server, dbus_daemon: Any, caplog: Any
) -> None:
    with caplog.at_level(logging.ERROR, logger="pystemd.serve"):
        reply = fast_call(dbus_daemon.address, "BadReturn")
    assert reply.message_type == MessageType.ERROR
    assert reply.error_name == "org.freedesktop.DBus.Error.Failed"
    assert "BadReturn" in reply.body[0] and "'i'" in reply.body[0]
    assert any("BadReturn" in r.getMessage() for r in caplog.records)


def test_wrong_signature_is_refused_by_sd_bus(server: Server, dbus_daemon: Any) -> None:
    reply = fast_call(dbus_daemon.address, "DivMod", "s", ["x"])
    assert reply.error_name == "org.freedesktop.DBus.Error.InvalidArgs"


def test_keyboard_interrupt_in_a_method_reaches_process(dbus_daemon: Any) -> None:
    with Bus(dbus_daemon.address) as sbus, Bus(dbus_daemon.address) as cbus:
        serve.export(sbus, PATH, Thing())
        a = aio_call_in_thread(cbus, sbus.unique_name, "Interrupt")
        with pytest.raises(KeyboardInterrupt):
            serve.serve_forever(sbus)
        reply = a.result(timeout=30)
        assert isinstance(reply, BusError) and reply.name == "org.freedesktop.DBus.Error.Failed"


def aio_call_in_thread(bus: Bus, dest: Any, member: str) -> Any:
    """Call member from another thread; the concurrent.futures.Future holds the reply or error."""
    import concurrent.futures

    fut: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def run() -> None:
        try:
            fut.set_result(bus.call(dest, PATH, IFACE, member))
        except BaseException as e:
            fut.set_result(e)

    threading.Thread(target=run, daemon=True).start()
    return fut


# ---------------------------------------------------------------------------
# properties and signals


def test_properties_get_set_and_properties_changed(server: Server, dbus_daemon: Any) -> None:
    a = dbus_daemon.address
    assert busctl(a, "get-property", NAME, PATH, IFACE, "Count").stdout.strip() == "u 7"
    conn = open_dbus_connection(bus=a)
    try:
        rule = MatchRule(
            type="signal",
            interface="org.freedesktop.DBus.Properties",
            member="PropertiesChanged",
            path=PATH,
        )
        conn.send_and_get_reply(message_bus.AddMatch(rule), timeout=10)
        with conn.filter(rule) as queue:
            r = busctl(a, "set-property", NAME, PATH, IFACE, "Label", "s", "new label")
            assert r.returncode == 0, r.stderr
            msg = conn.recv_until_filtered(queue, timeout=10)
            assert msg.body == (IFACE, {"Label": ("s", "new label")}, [])
            # Setting it from Python emits too.
            server.obj.Label = "from python"  # type: ignore[attr-defined]
            msg = conn.recv_until_filtered(queue, timeout=10)
            assert msg.body == (IFACE, {"Label": ("s", "from python")}, [])
            # A value changed behind the setter's back, announced by hand.
            server.obj.count = 8  # type: ignore[attr-defined]
            with pytest.raises(ValueError, match="emits"):
                serve.properties_changed(server.obj, "Version")
    finally:
        conn.close()
    assert busctl(a, "get-property", NAME, PATH, IFACE, "Label").stdout.strip() == 's "from python"'
    r = busctl(a, "set-property", NAME, PATH, IFACE, "Count", "u", "1")
    assert r.returncode != 0 and "not writable" in r.stderr
    r = busctl(a, "set-property", NAME, PATH, IFACE, "Label", "s", "forbidden")
    assert r.returncode != 0 and "that label is not allowed" in r.stderr
    assert server.obj.Label == "from python"  # type: ignore[attr-defined]


def test_get_all_via_dbus_fast(server: Server, dbus_daemon: Any) -> None:
    reply = fast_call(
        dbus_daemon.address, "GetAll", "s", [IFACE], interface="org.freedesktop.DBus.Properties"
    )
    assert reply.body[0] == {
        "Count": FVariant("u", 7),
        "Label": FVariant("s", "start"),
        "Version": FVariant("s", "1.0"),
    }


def test_signals_reach_dbus_fast(dbus_daemon: Any) -> None:
    async def go() -> list[Any]:
        client = await MessageBus(bus_address=dbus_daemon.address).connect()
        got: list[Any] = []
        done = asyncio.Event()

        def handler(msg: Any) -> None:
            if msg.member == "Changed":
                got.append((msg.path, msg.interface, msg.signature, msg.body))
                if len(got) == 2:
                    done.set()

        client.add_message_handler(handler)
        await client.call(
            FMessage(
                destination="org.freedesktop.DBus",
                path="/org/freedesktop/DBus",
                interface="org.freedesktop.DBus",
                member="AddMatch",
                signature="s",
                body=[f"type='signal',interface='{IFACE}'"],
            )
        )
        with Bus(dbus_daemon.address) as bus:
            obj = Thing()
            serve.export(bus, PATH, obj)
            assert obj.Changed("eth0", True) == 1  # sent on one bus
            obj.Changed.emit("wlan0", False, destination=client.unique_name)
            await asyncio.wait_for(done.wait(), 30)
        client.disconnect()
        return got

    assert asyncio.run(go()) == [
        (PATH, IFACE, "sb", ["eth0", True]),
        (PATH, IFACE, "sb", ["wlan0", False]),
    ]


def test_emitting_checks_its_arguments(dbus_daemon: Any) -> None:
    with Bus(dbus_daemon.address) as bus:
        obj = Thing()
        assert obj.Changed("x", True) == 0  # not exported anywhere: nothing sent
        serve.export(bus, PATH, obj)
        with pytest.raises(TypeError, match="argument 1"):
            obj.Changed("x", "not a bool")
        with pytest.raises(TypeError):
            obj.Changed("x")
        with pytest.raises(ValueError, match="invalid object path"):
            serve.emit_signal(bus, "no/slash", IFACE, "Changed")


# ---------------------------------------------------------------------------
# re-entrancy: nothing runs inside somebody's blocking call


class Trigger(serve.Interface, interface="org.pystemd.Trigger1"):
    """Served on another connection: calls back into the server before replying."""

    def __init__(self, abus: aio.AsyncBus, target: str) -> None:
        self.abus = abus
        self.target = target
        self.replies: list[Any] = []

    @serve.method()
    async def Fire(self) -> None:
        # Both go out before our reply, so they reach the server while it is
        # still waiting for this call to return.
        self.replies.append(self.abus.call(self.target, PATH, IFACE, "Echo", "s", ("inside?",)))
        self.replies.append(self.abus.get_property(self.target, PATH, IFACE, "Label"))


def test_calls_arriving_during_a_blocking_call_wait_for_process(dbus_daemon: Any) -> None:
    events: list[str] = []

    class Recording(Thing, interface=IFACE):
        def Echo(self, text: str) -> str:
            events.append(f"Echo during={in_call}")
            return text

        @serve.dbus_property("s")
        def Label(self) -> str:
            events.append(f"Label during={in_call}")
            return "label"

    loop_ready = threading.Event()
    stop = threading.Event()
    holder: dict[str, Any] = {}

    with Bus(dbus_daemon.address) as sbus:
        serve.export(sbus, PATH, Recording())

        def other() -> None:
            async def main() -> None:
                with Bus(dbus_daemon.address) as cbus:
                    abus = aio.attach(cbus)
                    trig = Trigger(abus, sbus.unique_name)
                    serve.export(cbus, "/trigger", trig)
                    holder["name"] = cbus.unique_name
                    holder["trigger"] = trig
                    loop_ready.set()
                    while not stop.is_set():
                        await asyncio.sleep(0.01)
                    holder["results"] = await asyncio.gather(*trig.replies)
                    abus.close()

            asyncio.run(main())

        t = threading.Thread(target=other, daemon=True)
        t.start()
        assert loop_ready.wait(30)
        in_call = True
        sbus.call(holder["name"], "/trigger", "org.pystemd.Trigger1", "Fire")
        in_call = False
        events.append("call returned")
        while len(events) < 3:
            if not sbus.process():
                sbus.wait(1)
        while sbus.process():
            pass
        stop.set()
        t.join(30)
    assert events[0] == "call returned"
    assert sorted(events[1:]) == ["Echo during=False", "Label during=False"]
    assert holder["results"] == [("inside?",), "label"]


# ---------------------------------------------------------------------------
# names, lifetimes, declarations


def test_request_and_release_names(dbus_daemon: Any) -> None:
    with Bus(dbus_daemon.address) as a, Bus(dbus_daemon.address) as b:
        assert serve.request_name(a, "org.pystemd.Name", allow_replacement=False) is True
        assert serve.request_name(a, "org.pystemd.Name") is True  # already ours
        with pytest.raises(FileExistsError):
            serve.request_name(b, "org.pystemd.Name")
        assert serve.request_name(b, "org.pystemd.Name", queue=True) is False
        serve.release_name(a, "org.pystemd.Name")
        (owner,) = a.call(
            "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetNameOwner",
            "s", ("org.pystemd.Name",),
        )  # fmt: skip
        assert owner == b.unique_name  # the queued peer got it
        with pytest.raises(OSError):
            serve.release_name(a, "org.pystemd.Name")  # b owns it now
        with pytest.raises(ValueError, match="well-known"):
            serve.request_name(a, ":1.5")
        with pytest.raises(ValueError, match="well-known"):
            serve.request_name(a, "no-dots")


def test_remove_and_lifetime(dbus_daemon: Any) -> None:
    a = dbus_daemon.address
    with Bus(a) as bus:
        obj = Thing()
        ref = weakref.ref(obj)
        handle = serve.export(bus, PATH, obj)
        assert handle.active and handle.interfaces == [IFACE]
        with pytest.raises(FileExistsError):
            serve.export(bus, PATH, Thing())  # the interface is taken at that path
        del obj
        gc.collect()
        assert ref() is not None  # exported objects are kept alive by the bus
        handle.remove()
        handle.remove()  # idempotent
        assert not handle.active
        del handle
        gc.collect()
        assert ref() is None  # the slot's destroy callback let go of it

        obj2 = Thing()
        ref2 = weakref.ref(obj2)
        serve.export(bus, "/other", obj2)
        del obj2
    gc.collect()
    assert ref2() is None  # closing the bus released the export too


def test_remove_makes_the_object_unknown(server: Server, dbus_daemon: Any) -> None:
    assert busctl(dbus_daemon.address, "call", NAME, PATH, IFACE, "Echo", "s", "x").returncode == 0
    server.handle.remove()
    r = busctl(dbus_daemon.address, "call", NAME, PATH, IFACE, "Echo", "s", "x")
    assert r.returncode != 0 and "Unknown" in r.stderr


def test_two_interfaces_on_one_object(dbus_daemon: Any) -> None:
    with Server(dbus_daemon.address, Both()) as s:
        assert sorted(s.handle.interfaces) == ["org.pystemd.Other1", IFACE]
        r = busctl(dbus_daemon.address, "call", NAME, PATH, "org.pystemd.Other1", "Hello")
        assert r.stdout.strip() == 's "hello"'
        r = busctl(dbus_daemon.address, "call", NAME, PATH, IFACE, "Echo", "s", "both")
        assert r.stdout.strip() == 's "both"'
    with Bus(dbus_daemon.address) as bus:
        h = serve.export(bus, "/only", Both(), interfaces=["org.pystemd.Other1"])
        assert h.interfaces == ["org.pystemd.Other1"]
        with pytest.raises(LookupError):
            serve.export(bus, "/x", Both(), interfaces=["org.nope.X"])


def test_methods_are_privileged_unless_marked(dbus_daemon: Any) -> None:
    os.chmod(dbus_daemon.dir, 0o755)  # let an unprivileged client reach the socket
    with Server(dbus_daemon.address, Both()):
        nobody = 65534
        r = busctl(dbus_daemon.address, "call", NAME, PATH, IFACE, "Echo", "s", "x", user=nobody)
        assert r.returncode != 0 and "Access" in r.stderr, r.stderr
        r = busctl(
            dbus_daemon.address, "call", NAME, PATH, "org.pystemd.Other1", "Hello", user=nobody
        )
        assert r.stdout.strip() == 's "hello"', r.stderr
        # reading properties is never restricted
        r = busctl(dbus_daemon.address, "get-property", NAME, PATH, IFACE, "Count", user=nobody)
        assert r.stdout.strip() == "u 7", r.stderr


def test_declaration_errors_are_clear() -> None:
    with pytest.raises(TypeError, match="takes 1"):

        class A(serve.Interface, interface="org.x.A"):
            @serve.method("ii")
            def M(self, a: int) -> None: ...

    with pytest.raises(TypeError, match="no interface"):

        class B(serve.Interface):
            @serve.method()
            def M(self) -> None: ...

    with pytest.raises(ValueError, match="interface name"):

        class C(serve.Interface, interface="nodots"):
            pass

    with pytest.raises(ValueError, match="one complete type"):
        serve.dbus_property("ss")
    with pytest.raises(ValueError):
        serve.method("a")
    with pytest.raises(TypeError, match="const"):

        class D(serve.Interface, interface="org.x.D"):
            @serve.dbus_property("s", emits="const")
            def P(self) -> str:
                return ""

            @P.setter
            def P(self, v: str) -> None: ...

    with pytest.raises(TypeError, match="Interface subclass"):
        serve.export(None, "/x", object())  # type: ignore[arg-type]


def test_export_checks_path_and_bus(dbus_daemon: Any) -> None:
    with Bus(dbus_daemon.address) as bus:
        with pytest.raises(ValueError, match="object path"):
            serve.export(bus, "relative/path", Thing())
        with pytest.raises(TypeError, match="Bus"):
            serve.export("not a bus", PATH, Thing())
    with pytest.raises(ValueError, match="closed"):
        serve.export(bus, PATH, Thing())


# ---------------------------------------------------------------------------
# asyncio serving, object manager


class AsyncThing(serve.Interface, interface="org.pystemd.Async1"):
    @serve.method("d", "d")
    async def Wait(self, seconds: float) -> float:
        await asyncio.sleep(seconds)
        return seconds

    @serve.method()
    async def Boom(self) -> None:
        await asyncio.sleep(0)
        raise Busy("org.pystemd.Error.Busy", "async busy")


def test_async_methods_overlap_and_keep_their_errors(dbus_daemon: Any) -> None:
    async def main() -> Any:
        with Bus(dbus_daemon.address) as sbus, Bus(dbus_daemon.address) as cbus:
            serve.export(sbus, PATH, AsyncThing())
            aio.attach(sbus)
            c = aio.attach(cbus)
            waits = [
                c.call(sbus.unique_name, PATH, "org.pystemd.Async1", "Wait", "d", (0.3,))
                for _ in range(5)
            ]
            # all five are in the server at once (a blocking server would hold them in turn)
            boom = c.call(sbus.unique_name, PATH, "org.pystemd.Async1", "Boom")
            res = await asyncio.gather(*waits, boom, return_exceptions=True)
            c.close()
            aio.attach(sbus).close()
            return res

    res = asyncio.run(main())
    assert res[:5] == [(0.3,)] * 5
    assert isinstance(res[5], Busy) and res[5].message == "async busy"


def test_async_method_without_a_loop_is_an_error(dbus_daemon: Any) -> None:
    with Server(dbus_daemon.address, AsyncThing()):
        r = busctl(dbus_daemon.address, "call", NAME, PATH, "org.pystemd.Async1", "Wait", "d", "0")
    assert r.returncode != 0 and "asyncio" in r.stderr


def test_object_manager(dbus_daemon: Any) -> None:
    a = dbus_daemon.address
    with Bus(a) as bus:
        om = serve.add_object_manager(bus, "/org/pystemd")
        serve.export(bus, "/org/pystemd/one", Thing())
        serve.export(bus, "/org/pystemd/two", Other())
        conn = open_dbus_connection(bus=a)
        try:
            rule = MatchRule(type="signal", interface="org.freedesktop.DBus.ObjectManager")
            conn.send_and_get_reply(message_bus.AddMatch(rule), timeout=10)
            with conn.filter(rule) as queue:
                serve.export(bus, "/org/pystemd/three", Other())
                serve.emit_object_added(bus, "/org/pystemd/three")
                msg = conn.recv_until_filtered(queue, timeout=10)
            assert msg.header.fields[jeepney.HeaderFields.member] == "InterfacesAdded"
            assert msg.body[0] == "/org/pystemd/three" and "org.pystemd.Other1" in msg.body[1]

            results: list[Any] = []

            def call() -> None:
                addr = DBusAddress(
                    "/org/pystemd",
                    bus_name=bus.unique_name,
                    interface="org.freedesktop.DBus.ObjectManager",
                )
                results.append(
                    conn.send_and_get_reply(new_method_call(addr, "GetManagedObjects"), timeout=10)
                )

            t = threading.Thread(target=call)
            t.start()
            while t.is_alive():
                if not bus.process():
                    bus.wait(0.05)
            t.join()
            (objects,) = results[0].body
            assert sorted(objects) == ["/org/pystemd/one", "/org/pystemd/three", "/org/pystemd/two"]
            assert objects["/org/pystemd/one"][IFACE]["Label"] == ("s", "start")
        finally:
            conn.close()
        om.remove()


# ---------------------------------------------------------------------------
# the sandbox's system bus, and the bench helper


SYSTEM_POLICY = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <policy user="root"><allow own="org.pystemd.SandboxTest"/></policy>
  <policy context="default"><allow send_destination="org.pystemd.SandboxTest"/></policy>
</busconfig>
"""


@pytest.mark.sandbox
def test_serving_on_the_sandbox_system_bus(systemd_sandbox: Any) -> None:
    # The system bus denies owning names and receiving calls unless a policy
    # allows it, as on a real host: install one (the container's /etc is a tmpfs).
    name = "org.pystemd.SandboxTest"
    systemd_sandbox.run(
        [
            "sh",
            "-c",
            "mkdir -p /etc/dbus-1/system.d && cat > /etc/dbus-1/system.d/pystemd-test.conf",
        ],
        input=SYSTEM_POLICY.encode(),
        text=False,
    )
    address = systemd_sandbox.bus_address
    with Bus(address) as bus:
        bus.call(
            "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "ReloadConfig"
        )
        obj = Thing()
        serve.export(bus, PATH, obj)
        assert serve.request_name(bus, name) is True
        done: list[subprocess.CompletedProcess[str]] = []

        def client() -> None:
            done.append(busctl(address, "call", name, PATH, IFACE, "DivMod", "ii", "9", "4"))
            done.append(busctl(address, "get-property", name, PATH, IFACE, "Label"))

        t = threading.Thread(target=client)
        t.start()
        while t.is_alive():
            if not bus.process():
                bus.wait(0.05)
        t.join()
        assert done[0].stdout.strip() == "ii 2 1", done[0].stderr
        assert done[1].stdout.strip() == 's "start"', done[1].stderr
        # systemd itself answers on the same connection
        assert bus.get_property(
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "Version",
        )
        serve.release_name(bus, name)


def test_slow_service_example(dbus_daemon: Any) -> None:
    p = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "examples" / "slow_service.py"),
            "--address",
            dbus_daemon.address,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert p.stdout is not None
        line = p.stdout.readline().split()
        assert line[:1] == ["READY"] and line[2] == "org.pystemd.Slow", line
        calls = [
            subprocess.Popen(
                [
                    "busctl",
                    f"--address={dbus_daemon.address}",
                    "call",
                    "org.pystemd.Slow",
                    "/org/pystemd/Slow",
                    "org.pystemd.Slow1",
                    "Sleep",
                    "d",
                    "0.3",
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]
        assert [c.communicate(timeout=30)[0].strip() for c in calls] == ["d 0.3"] * 3
        r = busctl(
            dbus_daemon.address,
            "get-property",
            "org.pystemd.Slow",
            "/org/pystemd/Slow",
            "org.pystemd.Slow1",
            "Calls",
        )
        assert r.stdout.strip() == "u 3"
    finally:
        p.terminate()
        _out, err = p.communicate(timeout=30)
    assert p.returncode == 0 and err == ""
