"""Introspection: systemd's real data, cross-checked with busctl; the parser's edges."""

from __future__ import annotations

import asyncio
import subprocess
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pystemd import aio, introspect, serve
from pystemd.bus import Bus, path_encode
from pystemd.introspect import EMITS_CHANGED, IntrospectionError

S1 = "org.freedesktop.systemd1"
S1_PATH = "/org/freedesktop/systemd1"
MANAGER = f"{S1}.Manager"

BUSCTL_FLAGS = {
    "-", "const", "emits-change", "emits-invalidation", "writable", "deprecated",
    "hidden", "unprivileged", "no-reply", "explicit", "sensitive",
}  # fmt: skip
EMITS = {"const": "const", "emits-change": "true", "emits-invalidation": "invalidates"}


def busctl_members(address: str, service: str, path: str) -> dict[tuple[str, str], dict[str, Any]]:
    """busctl introspect's table: (interface, member) -> kind, signature, result, flags."""
    out = subprocess.run(
        ["busctl", f"--address={address}", "--no-pager", "--no-legend", "introspect", service, path],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    table: dict[tuple[str, str], dict[str, Any]] = {}
    iface = ""
    for line in out.splitlines():
        tokens = line.split()
        if not tokens:
            continue
        name, kind, sig = tokens[0], tokens[1], tokens[2]
        if kind == "interface":
            iface = name
            continue
        flags = []
        while len(tokens) > 4 and tokens[-1] in BUSCTL_FLAGS:
            flags.append(tokens.pop())
        table[(iface, name.lstrip("."))] = {
            "kind": kind,
            "signature": "" if sig == "-" else sig,
            "result": ("" if tokens[3] == "-" else tokens[3]) if kind == "method" else None,
            "flags": set(flags) - {"-"},
        }
    return table


def ours(node: introspect.Node) -> dict[tuple[str, str], dict[str, Any]]:
    table: dict[tuple[str, str], dict[str, Any]] = {}
    for iname, iface in node.interfaces.items():
        for m in iface.methods.values():
            table[(iname, m.name)] = {
                "kind": "method",
                "signature": m.in_signature,
                "result": m.out_signature,
            }
        for s in iface.signals.values():
            table[(iname, s.name)] = {"kind": "signal", "signature": s.signature, "result": None}
        for p in iface.properties.values():
            table[(iname, p.name)] = {"kind": "property", "signature": p.signature, "result": None}
    return table


@pytest.mark.sandbox
def test_systemd_manager_described(sandbox_bus: Bus) -> None:
    node = introspect.introspect(sandbox_bus, S1, S1_PATH)
    assert node.path == S1_PATH
    m = node.interfaces[MANAGER]
    stu = m.methods["StartTransientUnit"]
    assert [(a.name, a.signature, a.direction) for a in stu.in_args] == [
        ("name", "s", "in"),
        ("mode", "s", "in"),
        ("properties", "a(sv)", "in"),
        ("aux", "a(sa(sv))", "in"),
    ]
    assert [(a.name, a.signature) for a in stu.out_args] == [("job", "o")]
    assert (stu.in_signature, stu.out_signature) == ("ssa(sv)a(sa(sv))", "o")
    jr = m.signals["JobRemoved"]
    assert [(a.name, a.signature) for a in jr.args] == [
        ("id", "u"),
        ("job", "o"),
        ("unit", "s"),
        ("result", "s"),
    ]
    version = m.properties["Version"]
    assert (version.signature, version.access, version.readable, version.writable) == (
        "s",
        "read",
        True,
        False,
    )
    assert version.emits_changed == "const"
    log_level = m.properties["LogLevel"]
    assert log_level.access == "readwrite" and log_level.writable
    assert "unit" in node.children and "job" in node.children
    assert f"{S1_PATH}/unit" in node.child_paths()


@pytest.mark.sandbox
@pytest.mark.parametrize(
    ("service", "path"),
    [
        (S1, S1_PATH),
        (S1, path_encode(f"{S1_PATH}/unit", "dbus.service")),
        (S1, path_encode(f"{S1_PATH}/unit", "-.slice")),
        ("org.freedesktop.DBus", "/org/freedesktop/DBus"),
    ],
)
def test_agrees_with_busctl_introspect(
    systemd_sandbox: Any, sandbox_bus: Bus, service: str, path: str
) -> None:
    theirs = busctl_members(systemd_sandbox.bus_address, service, path)
    node = introspect.introspect(sandbox_bus, service, path)
    mine = ours(node)
    assert len(mine) > 10
    assert set(mine) == set(theirs)
    for key, t in theirs.items():
        m = mine[key]
        assert (m["kind"], m["signature"], m["result"]) == (
            t["kind"],
            t["signature"],
            t["result"],
        ), key
        if t["kind"] == "property":
            prop = node.interfaces[key[0]].properties[key[1]]
            assert prop.writable == ("writable" in t["flags"]), key
            busctl_emits = next((EMITS[f] for f in t["flags"] if f in EMITS), "false")
            assert prop.emits_changed == busctl_emits, key


@pytest.mark.sandbox
def test_interfaces_are_cached_per_service_and_interface(sandbox_bus: Bus) -> None:
    class Counting:
        """The real bus, counting Introspect calls (the cache is what is tested)."""

        def __init__(self, bus: Bus) -> None:
            self.bus = bus
            self.calls = 0

        def call(self, *args: Any, **kw: Any) -> Any:
            self.calls += 1
            return self.bus.call(*args, **kw)

    c = Counting(sandbox_bus)
    dbus_path = path_encode(f"{S1_PATH}/unit", "dbus.service")
    slice_path = path_encode(f"{S1_PATH}/unit", "-.slice")
    unit = introspect.interface(c, S1, dbus_path, f"{S1}.Unit")
    assert c.calls == 1
    # another unit object: same interface, no new Introspect
    assert introspect.interface(c, S1, slice_path, f"{S1}.Unit") is unit
    # the first introspection also described the Service interface
    service = introspect.interface(c, S1, dbus_path, f"{S1}.Service")
    assert c.calls == 1 and "ExecStart" in service.properties
    assert introspect.cached(c, S1, f"{S1}.Unit") is unit
    with pytest.raises(LookupError, match=r"org\.freedesktop\.systemd1\.Mount"):
        introspect.interface(c, S1, slice_path, f"{S1}.Mount")
    assert c.calls == 2
    introspect.cache_clear(c)
    introspect.interface(c, S1, dbus_path, f"{S1}.Unit")
    assert c.calls == 3
    introspect.cache_clear()
    assert introspect.cached(c, S1, f"{S1}.Unit") is None


@pytest.mark.sandbox
def test_async_introspect_fills_the_cache(sandbox_bus: Bus) -> None:
    async def main() -> introspect.Node:
        abus = aio.attach(sandbox_bus)
        try:
            return await abus.introspect(S1, S1_PATH)  # type: ignore[no-any-return]
        finally:
            abus.close()

    node = asyncio.run(main())
    assert introspect.cached(sandbox_bus, S1, MANAGER) is node.interfaces[MANAGER]


class Served(serve.Interface, interface="org.pystemd.Intro1"):
    @serve.method("sa{sv}", "ao", out_names=("paths",))
    def Find(self, pattern: str, options: dict[str, Any]) -> list[str]:
        return []

    @serve.method(no_reply=True, deprecated=True)
    def Poke(self) -> None: ...

    @serve.dbus_property("t", emits="invalidates")
    def Big(self) -> int:
        return 1 << 40

    @serve.dbus_property("as", emits=False)
    def Tags(self) -> list[str]:
        return []

    @Tags.setter
    def Tags(self, value: list[str]) -> None: ...

    Found = serve.signal("oa{sv}", names=("path", "details"))


def test_describes_a_served_object(dbus_daemon: Any) -> None:
    import threading

    with Bus(dbus_daemon.address) as sbus, Bus(dbus_daemon.address) as cbus:
        serve.export(sbus, "/org/pystemd/intro", Served())
        result: list[Any] = []
        t = threading.Thread(
            target=lambda: result.append(
                introspect.introspect(cbus, sbus.unique_name, "/org/pystemd/intro")
            )
        )
        t.start()
        while t.is_alive():
            if not sbus.process():
                sbus.wait(0.05)
        t.join()
        # the parent path lists the object as a child
        t = threading.Thread(
            target=lambda: result.append(
                introspect.introspect(cbus, sbus.unique_name, "/org/pystemd")
            )
        )
        t.start()
        while t.is_alive():
            if not sbus.process():
                sbus.wait(0.05)
        t.join()
    node, parent = result
    i = node.interfaces["org.pystemd.Intro1"]
    find = i.methods["Find"]
    assert [(a.name, a.signature) for a in find.in_args] == [("pattern", "s"), ("options", "a{sv}")]
    assert [(a.name, a.signature) for a in find.out_args] == [("paths", "ao")]
    assert i.methods["Poke"].no_reply and i.methods["Poke"].deprecated
    assert (
        i.properties["Big"].emits_changed == "invalidates" and i.properties["Big"].access == "read"
    )
    assert (
        i.properties["Tags"].emits_changed == "false" and i.properties["Tags"].access == "readwrite"
    )
    assert [(a.name, a.signature) for a in i.signals["Found"].args] == [
        ("path", "o"),
        ("details", "a{sv}"),
    ]
    assert parent.children == ("intro",)


# ---------------------------------------------------------------------------
# the parser on its own


def test_unknown_elements_and_child_contents_are_ignored() -> None:
    xml = """<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">
<node name="/a" xmlns:doc="http://www.freedesktop.org/dbus/1.0/doc.dtd">
  <doc:doc><doc:summary>docs <arg type="zz"/></doc:summary></doc:doc>
  <interface name="org.x.Y">
    <annotation name="org.freedesktop.DBus.Property.EmitsChangedSignal" value="false"/>
    <method name="M"><doc:doc/><arg type="s"/><arg type="i" direction="out" name="r">
      <annotation name="k" value="v"/></arg></method>
    <property name="P" type="a{sv}" access="read"/>
    <property name="Q" type="u" access="write">
      <annotation name="org.freedesktop.DBus.Property.EmitsChangedSignal" value="true"/></property>
  </interface>
  <node name="child"><interface name="not.parsed"><method name="!!"/></interface></node>
  <node name="/abs/other"/>
</node>"""
    node = introspect.parse(xml)
    assert node.path == "/a" and node.children == ("child", "/abs/other")
    assert node.child_paths() == ["/a/child", "/abs/other"]
    y = node.interfaces["org.x.Y"]
    m = y.methods["M"]
    assert [(a.name, a.signature, a.direction) for a in m.in_args] == [(None, "s", "in")]
    assert m.out_args[0].annotations == {"k": "v"}
    assert y.properties["P"].emits_changed == "false"  # inherited from the interface
    assert y.properties["Q"].emits_changed == "true" and not y.properties["Q"].readable
    assert set(node.interfaces) == {"org.x.Y"}


@pytest.mark.parametrize(
    ("xml", "match"),
    [
        ("<node><interface name='a.b'>", "not well-formed"),
        ("<interface name='a.b'/>", "root element"),
        ("<node><interface/></node>", "without name"),
        ("<node><interface name='nodots'/></node>", "invalid interface name"),
        (
            "<node><interface name='a.b'><method name='M'><arg type='a'/></method></interface></node>",
            "invalid type",
        ),
        (
            "<node><interface name='a.b'><method name='M'><arg type='ss'/></method></interface></node>",
            "invalid type",
        ),
        (
            "<node><interface name='a.b'><method name='M'><arg type='s' direction='up'/></method></interface></node>",
            "direction",
        ),
        (
            "<node><interface name='a.b'><signal name='S'><arg type='s' direction='in'/></signal></interface></node>",
            "direction",
        ),
        (
            "<node><interface name='a.b'><property name='P' type='s' access='rw'/></interface></node>",
            "access",
        ),
        (
            "<node><interface name='a.b'><property name='P' access='read'/></interface></node>",
            "without type",
        ),
        (
            "<node><interface name='a.b'><method name='M'/><method name='M'/></interface></node>",
            "twice",
        ),
        ("<node><interface name='a.b'/><interface name='a.b'/></node>", "twice"),
        (
            "<node><interface name='a.b'><method name='1M'/></interface></node>",
            "invalid method name",
        ),
        ("", "not well-formed"),
    ],
)
def test_malformed_introspection_is_refused(xml: str, match: str) -> None:
    with pytest.raises(IntrospectionError, match=match) as ei:
        introspect.parse(xml)
    assert isinstance(ei.value, ValueError)


def test_entity_declarations_are_refused() -> None:
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE node [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
        '<node><interface name="x.y"><method name="&c;"/></interface></node>'
    )
    with pytest.raises(IntrospectionError, match="entities"):
        introspect.parse(bomb)
    with pytest.raises(TypeError):
        introspect.parse(5)  # type: ignore[arg-type]


_basic = st.sampled_from(list("ybnqiuxtdsogh"))


@st.composite
def complete_type(draw: Any, depth: int = 0) -> str:
    kind = draw(
        st.sampled_from(
            ["basic", "basic", "v", "array", "struct", "dict"] if depth < 3 else ["basic"]
        )
    )
    if kind == "basic":
        return str(draw(_basic))
    if kind == "v":
        return "v"
    if kind == "array":
        return "a" + draw(complete_type(depth + 1))
    if kind == "dict":
        return "a{" + draw(_basic) + draw(complete_type(depth + 1)) + "}"
    return "(" + "".join(draw(st.lists(complete_type(depth + 1), min_size=1, max_size=3))) + ")"


_name = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True)


@settings(max_examples=60, deadline=None)
@given(
    methods=st.dictionaries(
        _name,
        st.tuples(
            st.lists(st.tuples(_name, complete_type()), max_size=3),
            st.lists(st.tuples(_name, complete_type()), max_size=2),
        ),
        max_size=4,
    ),
    props=st.dictionaries(
        _name,
        st.tuples(complete_type(), st.sampled_from(["read", "write", "readwrite"])),
        max_size=4,
    ),
    signals=st.dictionaries(_name, st.lists(complete_type(), max_size=3), max_size=3),
)
def test_round_trip_through_xml_written_by_elementtree(
    methods: dict[str, Any], props: dict[str, Any], signals: dict[str, Any]
) -> None:
    root = ET.Element("node")
    iface = ET.SubElement(root, "interface", name="org.pystemd.Gen1")
    for name, (ins, outs) in methods.items():
        m = ET.SubElement(iface, "method", name=name)
        for an, t in ins:
            ET.SubElement(m, "arg", name=an, type=t, direction="in")
        for an, t in outs:
            ET.SubElement(m, "arg", name=an, type=t, direction="out")
    for name, (t, access) in props.items():
        ET.SubElement(iface, "property", name=name, type=t, access=access)
    for name, types in signals.items():
        s = ET.SubElement(iface, "signal", name=name)
        for t in types:
            ET.SubElement(s, "arg", type=t)
    node = introspect.parse(ET.tostring(root))
    i = node.interfaces["org.pystemd.Gen1"]
    assert {
        n: ([(a.name, a.signature) for a in m.in_args], [(a.name, a.signature) for a in m.out_args])
        for n, m in i.methods.items()
    } == {n: (list(ins), list(outs)) for n, (ins, outs) in methods.items()}
    assert {n: (p.signature, p.access) for n, p in i.properties.items()} == props
    assert {n: [a.signature for a in s.args] for n, s in i.signals.items()} == signals
    assert all(p.emits_changed == "true" for p in i.properties.values())
    assert EMITS_CHANGED == "org.freedesktop.DBus.Property.EmitsChangedSignal"
