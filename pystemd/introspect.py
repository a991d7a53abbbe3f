"""D-Bus introspection data, parsed without lxml.

>>> from pystemd.bus import Bus
>>> from pystemd import introspect
>>> with Bus() as bus:
...     node = introspect.introspect(bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1")
...     m = node.interfaces["org.freedesktop.systemd1.Manager"].methods["StartUnit"]
>>> [(a.name, a.signature) for a in m.in_args], m.out_signature
([('name', 's'), ('mode', 's')], 'o')

:func:`parse` turns the XML of ``org.freedesktop.DBus.Introspectable.Introspect``
into a :class:`Node` of immutable :class:`Interface` descriptions (methods with
argument names and types in and out, properties with type and access, signals,
annotations). It uses the standard library's expat with entity declarations
refused, so a hostile peer cannot make it expand entities or fetch anything.

:func:`interface` answers "what does interface X of service S look like" from
a cache kept per bus and keyed by ``(service, interface)``: every unit object
of systemd has the same ``org.freedesktop.systemd1.Unit``, so it is introspected
once, not once per object.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Optional, Union
from xml.parsers import expat

from pystemd.errors import PystemdError

__all__ = [
    "Arg",
    "Interface",
    "IntrospectionError",
    "Method",
    "Node",
    "Property",
    "Signal",
    "cache_clear",
    "interface",
    "introspect",
    "parse",
]

INTROSPECTABLE = "org.freedesktop.DBus.Introspectable"
EMITS_CHANGED = "org.freedesktop.DBus.Property.EmitsChangedSignal"


class IntrospectionError(PystemdError, ValueError):
    """The introspection XML is malformed or describes something invalid."""


@dataclass(frozen=True)
class Arg:
    """One argument of a method or signal."""

    name: Optional[str]
    signature: str
    direction: str  # "in" or "out" (signal arguments are "out")
    annotations: Mapping[str, str] = field(default_factory=dict, compare=False)


def _sig(args: tuple[Arg, ...]) -> str:
    return "".join(a.signature for a in args)


@dataclass(frozen=True)
class Method:
    name: str
    in_args: tuple[Arg, ...] = ()
    out_args: tuple[Arg, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def in_signature(self) -> str:
        return _sig(self.in_args)

    @property
    def out_signature(self) -> str:
        return _sig(self.out_args)

    @property
    def no_reply(self) -> bool:
        return self.annotations.get("org.freedesktop.DBus.Method.NoReply") == "true"

    @property
    def deprecated(self) -> bool:
        return self.annotations.get("org.freedesktop.DBus.Deprecated") == "true"


@dataclass(frozen=True)
class Signal:
    name: str
    args: tuple[Arg, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def signature(self) -> str:
        return _sig(self.args)


@dataclass(frozen=True)
class Property:
    name: str
    signature: str
    access: str  # "read", "write" or "readwrite"
    annotations: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def readable(self) -> bool:
        return "read" in self.access

    @property
    def writable(self) -> bool:
        return "write" in self.access

    @property
    def emits_changed(self) -> str:
        """'true' (new value in PropertiesChanged), 'invalidates', 'const' or 'false'.

        The annotation may sit on the property or on its interface; D-Bus's
        default when neither has it is 'true'.
        """
        return self.annotations.get(EMITS_CHANGED, "true")


@dataclass(frozen=True)
class Interface:
    name: str
    methods: Mapping[str, Method] = field(default_factory=dict)
    signals: Mapping[str, Signal] = field(default_factory=dict)
    properties: Mapping[str, Property] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict, compare=False)

    def __hash__(self) -> int:
        return hash(self.name)


@dataclass(frozen=True)
class Node:
    """One object: its interfaces by name and the names of its children."""

    path: Optional[str]
    interfaces: Mapping[str, Interface] = field(default_factory=dict)
    children: tuple[str, ...] = ()

    def child_paths(self, base: Optional[str] = None) -> list[str]:
        """Absolute object paths of the children (relative to ``base`` or ``self.path``)."""
        parent = base if base is not None else self.path
        if parent is None:
            raise ValueError("the node has no path; pass base=")
        parent = parent.rstrip("/")
        return [c if c.startswith("/") else f"{parent}/{c}" for c in self.children]


# ---------------------------------------------------------------------------
# parsing


def _valid_member(name: str) -> bool:
    return (
        0 < len(name) <= 255
        and not name[0].isdigit()
        and all(c.isascii() and (c.isalnum() or c == "_") for c in name)
    )


def _valid_interface(name: str) -> bool:
    parts = name.split(".")
    return len(name) <= 255 and len(parts) >= 2 and all(_valid_member(p) for p in parts)


def _single_type(sig: str) -> bool:
    from pystemd._bus import split_signature

    try:
        return len(split_signature(sig)) == 1
    except (TypeError, ValueError):
        return False


class _Builder:
    """expat handlers building the Node; element nesting is checked as we go."""

    def __init__(self, parser: Any, path: Optional[str]) -> None:
        self.p = parser
        self.path = path
        self.stack: list[str] = []
        self.depth_node = 0
        self.interfaces: dict[str, Interface] = {}
        self.children: list[str] = []
        self.iface: Optional[dict[str, Any]] = None
        self.member: Optional[dict[str, Any]] = None
        self.annotations_target: list[dict[str, str]] = []
        self.seen_root = False

    def fail(self, msg: str) -> IntrospectionError:
        return IntrospectionError(f"introspection XML line {self.p.CurrentLineNumber}: {msg}")

    def need(self, attrs: dict[str, str], key: str, tag: str) -> str:
        v = attrs.get(key)
        if v is None:
            raise self.fail(f"<{tag}> without {key}=")
        return v

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        parent = self.stack[-1] if self.stack else None
        self.stack.append(tag)
        if parent is None:
            if tag != "node":
                raise self.fail(f"root element is <{tag}>, expected <node>")
            self.seen_root = True
            if self.path is None:
                self.path = attrs.get("name")
            return
        if tag == "node" and parent == "node" and len(self.stack) == 2:
            name = self.need(attrs, "name", tag)
            self.children.append(name)
            return
        if len(self.stack) > 2 and self.stack[1] == "node":
            return  # the contents of a child <node> are not ours to describe
        if tag == "interface" and parent == "node":
            name = self.need(attrs, "name", tag)
            if not _valid_interface(name):
                raise self.fail(f"invalid interface name {name!r}")
            if name in self.interfaces:
                raise self.fail(f"interface {name!r} described twice")
            self.iface = {"name": name, "m": {}, "s": {}, "p": {}, "a": {}}
            self.annotations_target.append(self.iface["a"])
            return
        if parent == "interface" and tag in ("method", "signal", "property"):
            assert self.iface is not None
            name = self.need(attrs, "name", tag)
            if not _valid_member(name):
                raise self.fail(f"invalid {tag} name {name!r}")
            m: dict[str, Any] = {"kind": tag, "name": name, "in": [], "out": [], "a": {}}
            if tag == "property":
                sig = self.need(attrs, "type", tag)
                if not _single_type(sig):
                    raise self.fail(f"property {name!r} has invalid type {sig!r}")
                access = self.need(attrs, "access", tag)
                if access not in ("read", "write", "readwrite"):
                    raise self.fail(f"property {name!r} has invalid access {access!r}")
                m["type"] = sig
                m["access"] = access
            self.member = m
            self.annotations_target.append(m["a"])
            return
        if parent in ("method", "signal") and tag == "arg":
            assert self.member is not None
            sig = self.need(attrs, "type", tag)
            if not _single_type(sig):
                raise self.fail(f"argument of {self.member['name']!r} has invalid type {sig!r}")
            default = "out" if parent == "signal" else "in"
            direction = attrs.get("direction", default)
            if direction not in ("in", "out") or (parent == "signal" and direction != "out"):
                raise self.fail(f"argument of {self.member['name']!r} has direction {direction!r}")
            arg: dict[str, Any] = {"name": attrs.get("name") or None, "sig": sig, "dir": direction}
            arg["a"] = {}
            self.member[direction].append(arg)
            self.annotations_target.append(arg["a"])
            return
        if tag == "annotation" and parent in ("interface", "method", "signal", "property", "arg"):
            name = self.need(attrs, "name", tag)
            value = self.need(attrs, "value", tag)
            self.annotations_target[-1][name] = value
            return
        # Anything else (documentation elements and the like) is ignored, with
        # everything under it.

    def end(self, tag: str) -> None:
        self.stack.pop()
        if len(self.stack) >= 2 and self.stack[1] == "node":
            return
        if len(self.stack) == 1 and tag == "node":
            return
        parent = self.stack[-1] if self.stack else None
        if tag == "arg" and parent in ("method", "signal"):
            self.annotations_target.pop()
        elif tag in ("method", "signal", "property") and parent == "interface":
            assert self.iface is not None and self.member is not None
            self.annotations_target.pop()
            m = self.member
            self.member = None
            a = MappingProxyType(m["a"])
            key = {"method": "m", "signal": "s", "property": "p"}[tag]
            if m["name"] in self.iface[key]:
                raise self.fail(f"{tag} {m['name']!r} described twice in {self.iface['name']!r}")

            def args(lst: list[dict[str, Any]]) -> tuple[Arg, ...]:
                return tuple(
                    Arg(x["name"], x["sig"], x["dir"], MappingProxyType(x["a"])) for x in lst
                )

            if tag == "method":
                self.iface["m"][m["name"]] = Method(m["name"], args(m["in"]), args(m["out"]), a)
            elif tag == "signal":
                self.iface["s"][m["name"]] = Signal(m["name"], args(m["out"]), a)
            else:
                self.iface["p"][m["name"]] = m
        elif tag == "interface" and parent == "node":
            assert self.iface is not None
            i = self.iface
            self.iface = None
            self.annotations_target.pop()
            props = {}
            iface_emits = i["a"].get(EMITS_CHANGED)
            for name, m in i["p"].items():
                ann = dict(m["a"])
                if iface_emits is not None:
                    ann.setdefault(EMITS_CHANGED, iface_emits)
                props[name] = Property(name, m["type"], m["access"], MappingProxyType(ann))
            self.interfaces[i["name"]] = Interface(
                i["name"],
                MappingProxyType(i["m"]),
                MappingProxyType(i["s"]),
                MappingProxyType(props),
                MappingProxyType(i["a"]),
            )


def _refuse_entities(*args: Any) -> None:
    raise IntrospectionError("introspection XML declares entities; refused")


def parse(xml: Union[str, bytes], path: Optional[str] = None) -> Node:
    """Parse introspection XML into a :class:`Node`.

    ``path`` is the object path it was read from (else the root ``<node
    name=...>`` attribute, if any). Malformed XML or invalid names and
    signatures raise :class:`IntrospectionError` (a ``ValueError``) with the
    line number.
    """
    if not isinstance(xml, (str, bytes)):
        raise TypeError(f"introspection XML must be str or bytes, got {type(xml).__name__}")
    p = expat.ParserCreate()
    b = _Builder(p, path)
    p.StartElementHandler = b.start
    p.EndElementHandler = b.end
    p.EntityDeclHandler = _refuse_entities
    p.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    p.UseForeignDTD(False)
    try:
        p.Parse(xml, True)
    except expat.ExpatError as e:
        raise IntrospectionError(f"introspection XML is not well-formed: {e}") from None
    if not b.seen_root:
        raise IntrospectionError("introspection XML has no <node>")
    return Node(b.path, MappingProxyType(b.interfaces), tuple(b.children))


# ---------------------------------------------------------------------------
# reading it from a bus


def introspect(
    bus: Any, service: Optional[str], path: str, *, timeout: Optional[float] = None
) -> Node:
    """Call ``Introspect`` on ``service`` at ``path`` and parse the answer.

    The interfaces found are also put in the cache :func:`interface` reads.
    """
    (xml,) = bus.call(service, path, INTROSPECTABLE, "Introspect", timeout=timeout)
    node = parse(xml, path)
    _remember(bus, service, node)
    return node


_lock = threading.Lock()
_cache: weakref.WeakKeyDictionary[Any, dict[tuple[Optional[str], str], Interface]] = (
    weakref.WeakKeyDictionary()
)


def _remember(bus: Any, service: Optional[str], node: Node) -> None:
    with _lock:
        per_bus = _cache.setdefault(bus, {})
        for name, iface in node.interfaces.items():
            per_bus[(service, name)] = iface


def cached(bus: Any, service: Optional[str], name: str) -> Optional[Interface]:
    """The cached description of interface ``name`` of ``service``, or None."""
    with _lock:
        per_bus = _cache.get(bus)
        return None if per_bus is None else per_bus.get((service, name))


def interface(
    bus: Any, service: Optional[str], path: str, name: str, *, timeout: Optional[float] = None
) -> Interface:
    """The description of interface ``name`` as ``service`` implements it.

    Cached per bus and ``(service, interface)``: ``path`` is only used to
    introspect on a miss. ``LookupError`` if the object at ``path`` does not
    implement the interface.
    """
    hit = cached(bus, service, name)
    if hit is not None:
        return hit
    node = introspect(bus, service, path, timeout=timeout)
    try:
        return node.interfaces[name]
    except KeyError:
        raise LookupError(f"{service or 'the peer'} has no interface {name!r} at {path}") from None


def cache_clear(bus: Any = None) -> None:
    """Forget cached interfaces (of one bus, or of all)."""
    with _lock:
        if bus is None:
            _cache.clear()
        else:
            _cache.pop(bus, None)
