"""Export Python objects on a D-Bus bus (sd-bus object vtables).

>>> from pystemd.bus import Bus
>>> from pystemd import serve
>>> class Calc(serve.Interface, interface="org.example.Calc1"):
...     def __init__(self) -> None:
...         self._label = "calc"
...
...     @serve.method("ii", "i")
...     def Add(self, a: int, b: int) -> int:
...         return a + b
...
...     @serve.dbus_property("s")
...     def Label(self) -> str:
...         return self._label
...
...     @Label.setter
...     def Label(self, value: str) -> None:      # D-Bus Set, or calc.Label = "x" from Python:
...         self._label = value                   # both emit PropertiesChanged
...
...     Overflowed = serve.signal("x", names=("value",))   # calc.Overflowed(1 << 40) emits it
>>> bus = Bus(user=True)
>>> serve.export(bus, "/org/example/calc", Calc())
>>> serve.request_name(bus, "org.example.Calc")
>>> serve.serve_forever(bus)          # or pystemd.aio.attach(bus) in an asyncio program

Signatures are D-Bus signature strings (in, out), so marshalling follows the
table of docs/bus.md. Argument names in the introspection data come from the
Python parameters. A served method that raises a :class:`~pystemd.errors.BusError`
replies with that error's name; ``PermissionError``, ``NotImplementedError``
and ``ValueError`` become ``AccessDenied``, ``NotSupported`` and
``InvalidArgs``; anything else becomes ``org.freedesktop.DBus.Error.Failed``
(and is logged on the ``pystemd.serve`` logger with its traceback). An
``async def`` method is run as a task on the running asyncio loop and replies
when it finishes.

As in sd-bus, methods and writable properties are privileged by default
(callers need CAP_SYS_ADMIN or the same uid as the server) unless marked
``unprivileged=True``; reading properties is never restricted.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterable, Iterator
from typing import Any, Callable, ClassVar, Optional, TypeVar, Union

from pystemd import _serve
from pystemd._serve import (
    ObjectManager,
    PendingReply,
    emit_object_added,
    emit_object_removed,
    emit_signal,
    error_for,
)
from pystemd.errors import BusError

__all__ = [
    "ExportedObject",
    "Interface",
    "ObjectManager",
    "add_object_manager",
    "dbus_property",
    "emit_object_added",
    "emit_object_removed",
    "emit_signal",
    "error_for",
    "export",
    "method",
    "properties_changed",
    "release_name",
    "request_name",
    "serve_forever",
    "signal",
]

F = TypeVar("F", bound=Callable[..., Any])


def _flags(**kw: bool) -> int:
    table = {
        "deprecated": _serve.DEPRECATED,
        "hidden": _serve.HIDDEN,
        "unprivileged": _serve.UNPRIVILEGED,
        "no_reply": _serve.METHOD_NO_REPLY,
        "sensitive": _serve.SENSITIVE,
        "explicit": _serve.PROPERTY_EXPLICIT,
    }
    f = 0
    for k, v in kw.items():
        if v:
            f |= table[k]
    return f


def _split(sig: str, what: str) -> list[str]:
    from pystemd._bus import split_signature

    if not isinstance(sig, str):
        raise TypeError(f"{what} must be a str signature, got {type(sig).__name__}")
    return split_signature(sig)


# ---------------------------------------------------------------------------
# member declarations


class _MethodSpec:
    def __init__(
        self,
        fn: Callable[..., Any],
        signature: str,
        returns: str,
        name: Optional[str],
        names: Optional[Iterable[str]],
        out_names: Optional[Iterable[str]],
        flags: int,
        keep_variants: bool,
        message: bool,
    ) -> None:
        self.attr = fn.__name__
        self.name = name or fn.__name__
        self.signature = signature
        self.returns = returns
        self.flags = flags
        self.keep_variants = keep_variants
        self.message = message
        self.interface: Optional[str] = None
        n_in = len(_split(signature, "signature"))
        n_out = len(_split(returns, "returns"))
        if names is None:
            in_names = self._param_names(fn, n_in)
        else:
            in_names = list(names)
            if len(in_names) != n_in:
                raise TypeError(
                    f"method {self.name}: {len(in_names)} names for {n_in} arguments ({signature!r})"
                )
        outs = list(out_names) if out_names is not None else []
        if outs and len(outs) != n_out:
            raise TypeError(
                f"method {self.name}: {len(outs)} out_names for {n_out} results ({returns!r})"
            )
        # sd-bus wants every argument named, in and out, or none: unnamed ones
        # get argN / result (resultN when there are several).
        if in_names is None:
            in_names = [f"arg{i}" for i in range(n_in)]
        if not outs:
            outs = ["result"] if n_out == 1 else [f"result{i}" for i in range(n_out)]
        self.names = [*in_names, *outs]

    def _param_names(self, fn: Callable[..., Any], n_in: int) -> Optional[list[str]]:
        try:
            params = list(inspect.signature(fn).parameters.values())[1:]  # self
        except (TypeError, ValueError):
            return None
        if any(p.kind is p.VAR_POSITIONAL for p in params):
            return None
        pos = [
            p
            for p in params
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            and not (self.message and p.name == "message")
        ]
        if len(pos) != n_in:
            raise TypeError(
                f"method {self.name}: signature {self.signature!r} has {n_in} argument(s) "
                f"but {fn.__qualname__} takes {len(pos)}"
            )
        return [p.name for p in pos]


def method(
    signature: str = "",
    returns: str = "",
    *,
    name: Optional[str] = None,
    names: Optional[Iterable[str]] = None,
    out_names: Optional[Iterable[str]] = None,
    unprivileged: bool = False,
    no_reply: bool = False,
    deprecated: bool = False,
    hidden: bool = False,
    sensitive: bool = False,
    keep_variants: bool = False,
    message: bool = False,
) -> Callable[[F], F]:
    """Declare a D-Bus method taking ``signature`` and returning ``returns``.

    The function is called with the arguments (variants unwrapped unless
    ``keep_variants``), plus ``message=`` (a :class:`pystemd.bus.Message`,
    for the sender) when ``message=True``. It returns ``None`` for no out
    arguments, the value for one, a tuple for several; or it is ``async def``.
    """

    _split(signature, "signature")
    _split(returns, "returns")

    def deco(fn: F) -> F:
        fn.__dbus_member__ = _MethodSpec(  # type: ignore[attr-defined]
            fn,
            signature,
            returns,
            name,
            names,
            out_names,
            _flags(
                unprivileged=unprivileged,
                no_reply=no_reply,
                deprecated=deprecated,
                hidden=hidden,
                sensitive=sensitive,
            ),
            keep_variants,
            message,
        )
        return fn

    return deco


_EMITS = {
    "change": _serve.PROPERTY_EMITS_CHANGE,
    True: _serve.PROPERTY_EMITS_CHANGE,
    "invalidates": _serve.PROPERTY_EMITS_INVALIDATION,
    "const": _serve.PROPERTY_CONST,
    False: 0,
}


class dbus_property:
    """A D-Bus property; use like ``property`` (``@dbus_property("s")``, then ``.setter``).

    ``emits``: ``"change"`` (default: PropertiesChanged carries the new
    value), ``"invalidates"`` (only the name), ``"const"`` (never changes)
    or ``False`` (no signal). Setting it from Python or over D-Bus (``Set``)
    calls the setter and then emits PropertiesChanged on every bus the
    object is exported on. ``explicit``: left out of GetAll.
    """

    def __init__(
        self,
        signature: str,
        *,
        name: Optional[str] = None,
        emits: Union[str, bool] = "change",
        explicit: bool = False,
        unprivileged: bool = False,
        deprecated: bool = False,
        hidden: bool = False,
        sensitive: bool = False,
    ) -> None:
        if len(_split(signature, "signature")) != 1:
            raise ValueError(f"a property has one complete type, got {signature!r}")
        if emits not in _EMITS:
            raise ValueError(
                f"emits must be 'change', 'invalidates', 'const' or False, got {emits!r}"
            )
        self.signature = signature
        self.name = name
        self.emits = emits
        self.flags = _EMITS[emits] | _flags(
            explicit=explicit,
            unprivileged=unprivileged,
            deprecated=deprecated,
            hidden=hidden,
            sensitive=sensitive,
        )
        self.fget: Optional[Callable[[Any], Any]] = None
        self.fset: Optional[Callable[[Any, Any], None]] = None
        self.attr: Optional[str] = None
        self.interface: Optional[str] = None

    def __call__(self, fget: Callable[[Any], Any]) -> dbus_property:
        self.fget = fget
        if self.name is None:
            self.name = fget.__name__
        self.__doc__ = fget.__doc__
        return self

    def setter(self, fset: Callable[[Any, Any], None]) -> dbus_property:
        if self.emits == "const":
            raise TypeError(f"property {self.name} is const; it cannot have a setter")
        self.fset = fset
        return self

    def __set_name__(self, owner: type, attr: str) -> None:
        self.attr = attr

    def __get__(self, obj: Any, cls: Optional[type] = None) -> Any:
        if obj is None:
            return self
        if self.fget is None:
            raise AttributeError(f"property {self.name} has no getter")
        return self.fget(obj)

    def __set__(self, obj: Any, value: Any) -> None:
        if self.fset is None:
            raise AttributeError(f"D-Bus property {self.name} is read-only")
        self.fset(obj, value)
        if self.emits in ("change", True, "invalidates"):
            assert self.interface is not None and self.name is not None
            _emit_changed(obj, self.interface, [self.name])


class _BoundSignal:
    def __init__(self, obj: Any, spec: signal) -> None:
        self.obj = obj
        self.spec = spec

    def __call__(self, *args: Any, destination: Optional[str] = None) -> int:
        """Emit on every bus the object is exported on; returns how many."""
        spec = self.spec
        assert spec.interface is not None and spec.name is not None
        n = 0
        for ex, iface_export in _exports_of(self.obj, spec.interface):
            bus = iface_export.bus
            if bus is None or bus.closed:
                continue
            emit_signal(
                bus,
                ex.path,
                spec.interface,
                spec.name,
                spec.signature,
                args,
                destination=destination,
            )
            n += 1
        return n

    emit = __call__

    def __repr__(self) -> str:
        return f"<signal {self.spec.interface}.{self.spec.name} of {self.obj!r}>"


class signal:
    """A D-Bus signal: ``Changed = signal("sb", names=("name", "on"))``; ``obj.Changed(x, y)`` emits it."""

    def __init__(
        self,
        signature: str = "",
        *,
        names: Optional[Iterable[str]] = None,
        name: Optional[str] = None,
        deprecated: bool = False,
        hidden: bool = False,
    ) -> None:
        n = len(_split(signature, "signature"))
        self.signature = signature
        self.names = list(names) if names is not None else []
        if self.names and len(self.names) != n:
            raise TypeError(f"signal: {len(self.names)} names for {n} arguments ({signature!r})")
        self.name = name
        self.flags = _flags(deprecated=deprecated, hidden=hidden)
        self.attr: Optional[str] = None
        self.interface: Optional[str] = None

    def __set_name__(self, owner: type, attr: str) -> None:
        self.attr = attr
        if self.name is None:
            self.name = attr

    def __get__(self, obj: Any, cls: Optional[type] = None) -> Any:
        if obj is None:
            return self
        return _BoundSignal(obj, self)


def _spec_of(value: Any) -> Any:
    if isinstance(value, (dbus_property, signal)):
        return value
    return getattr(value, "__dbus_member__", None)


class Interface:
    """Base class of exportable objects.

    ``class X(Interface, interface="org.example.X1")``: the members declared
    in the class body belong to that interface. A class inheriting from two
    such classes exports both interfaces.
    """

    __dbus_interface__: ClassVar[Optional[str]] = None
    # interface -> {(kind, dbus name): (attr, spec)}
    __dbus_members__: ClassVar[dict[str, dict[tuple[str, str], tuple[str, Any]]]] = {}

    def __init_subclass__(cls, interface: Optional[str] = None, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        own = [(attr, _spec_of(v)) for attr, v in cls.__dict__.items() if _spec_of(v) is not None]
        if interface is not None:
            if not _valid_interface(interface):
                raise ValueError(f"invalid D-Bus interface name {interface!r}")
        cls.__dbus_interface__ = interface
        if own and interface is None:
            raise TypeError(
                f"{cls.__qualname__} declares D-Bus members but no interface; "
                f'write class {cls.__name__}(..., interface="org.example.Name1")'
            )
        for _attr, spec in own:
            if spec.interface is None or spec.interface != interface:
                spec.interface = interface
        merged: dict[str, dict[tuple[str, str], tuple[str, Any]]] = {}
        for klass in reversed(cls.__mro__):
            for attr, v in klass.__dict__.items():
                spec = _spec_of(v)
                if spec is None or spec.interface is None:
                    continue
                kind = (
                    "property"
                    if isinstance(spec, dbus_property)
                    else "signal"
                    if isinstance(spec, signal)
                    else "method"
                )
                merged.setdefault(spec.interface, {})[(kind, spec.name)] = (attr, spec)
        cls.__dbus_members__ = merged


def _valid_interface(name: str) -> bool:
    parts = name.split(".")
    return (
        isinstance(name, str)
        and len(name) <= 255
        and len(parts) >= 2
        and all(
            p and not p[0].isdigit() and all(c.isascii() and (c.isalnum() or c == "_") for c in p)
            for p in parts
        )
    )


# ---------------------------------------------------------------------------
# exporting


class ExportedObject:
    """The handle :func:`export` returns: one object at one path on one bus.

    ``remove()`` (or leaving a ``with`` block) takes it off the bus; until
    then it stays exported, whether or not this handle is kept.
    """

    def __init__(self, bus: Any, path: str, obj: Any, exports: list[_serve.Export]) -> None:
        self.bus = bus
        self.path = path
        self.obj = obj
        self.exports = exports

    @property
    def interfaces(self) -> list[str]:
        return [e.interface for e in self.exports]

    @property
    def active(self) -> bool:
        return any(e.active for e in self.exports)

    def remove(self) -> None:
        for e in self.exports:
            e.remove()
        lst = vars(self.obj).get("_pystemd_exports")
        if lst is not None and self in lst:
            lst.remove(self)

    def __enter__(self) -> ExportedObject:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()

    def __repr__(self) -> str:
        return f"<ExportedObject {self.path} {self.interfaces} {'active' if self.active else 'removed'}>"


def _bind(obj: Any, kind: str, attr: str, spec: Any) -> _serve.Member:
    if kind == "method":
        fn = getattr(obj, attr)
        call = fn
        if spec.message:

            def call(msg: Any, *args: Any, _fn: Callable[..., Any] = fn) -> Any:
                return _fn(*args, message=msg)

        return _serve.Member(
            "method",
            spec.name,
            spec.signature,
            spec.returns,
            spec.names,
            spec.flags,
            call=call,
            with_message=spec.message,
            keep_variants=spec.keep_variants,
        )
    if kind == "property":

        def getter(_o: Any = obj, _a: str = attr) -> Any:
            return getattr(_o, _a)

        setter = None
        if spec.fset is not None:

            def setter(value: Any, _o: Any = obj, _a: str = attr) -> None:
                setattr(_o, _a, value)

        return _serve.Member(
            "property", spec.name, spec.signature, flags=spec.flags, getter=getter, setter=setter
        )
    return _serve.Member("signal", spec.name, spec.signature, names=spec.names, flags=spec.flags)


def export(
    bus: Any,
    path: str,
    obj: Interface,
    *,
    interfaces: Optional[Iterable[str]] = None,
    unprivileged: bool = False,
) -> ExportedObject:
    """Export ``obj`` (an :class:`Interface` instance) at ``path`` on ``bus``.

    All the interfaces its class declares, or only ``interfaces``.
    ``unprivileged=True`` marks every method and writable property as callable
    by anyone (sd-bus's default requires CAP_SYS_ADMIN or the server's uid).
    """
    if not isinstance(obj, Interface):
        raise TypeError(
            f"export() needs an instance of a pystemd.serve.Interface subclass, got {type(obj).__name__}"
        )
    table = type(obj).__dbus_members__
    wanted = list(table) if interfaces is None else list(interfaces)
    if not wanted:
        raise ValueError(f"{type(obj).__qualname__} declares no D-Bus interface")
    for name in wanted:
        if name not in table:
            raise LookupError(f"{type(obj).__qualname__} does not implement {name!r}")
    done: list[_serve.Export] = []
    try:
        for name in wanted:
            members = [
                _bind(obj, kind, attr, spec) for (kind, _n), (attr, spec) in table[name].items()
            ]
            flags = _serve.UNPRIVILEGED if unprivileged else 0
            done.append(_serve.add_vtable(bus, path, name, members, flags=flags))
    except BaseException:
        for e in done:
            e.remove()
        raise
    handle = ExportedObject(bus, path, obj, done)
    vars(obj).setdefault("_pystemd_exports", []).append(handle)
    return handle


def _exports_of(
    obj: Any, interface: Optional[str]
) -> Iterator[tuple[ExportedObject, _serve.Export]]:
    lst = vars(obj).get("_pystemd_exports", ())
    for handle in list(lst):
        for e in handle.exports:
            if e.active and (interface is None or e.interface == interface):
                yield handle, e


def _emit_changed(obj: Any, interface: str, names: list[str]) -> int:
    n = 0
    for _handle, e in _exports_of(obj, interface):
        bus = e.bus
        if bus is None or bus.closed:
            continue
        e.emit_properties_changed(names)
        n += 1
    return n


def properties_changed(obj: Interface, *names: str) -> int:
    """Emit PropertiesChanged for ``names`` (D-Bus property names) of ``obj``.

    For properties whose value changed behind the setter's back. Returns the
    number of signals sent (one per bus and interface the object is on).
    """
    table = type(obj).__dbus_members__
    by_iface: dict[str, list[str]] = {}
    for n in names:
        hits = [i for i, members in table.items() if ("property", n) in members]
        if not hits:
            raise LookupError(f"{type(obj).__qualname__} has no D-Bus property {n!r}")
        for i in hits:
            spec = table[i][("property", n)][1]
            if spec.emits not in ("change", True, "invalidates"):
                raise ValueError(f"property {n} is declared emits={spec.emits!r}")
            by_iface.setdefault(i, []).append(n)
    return sum(_emit_changed(obj, i, lst) for i, lst in by_iface.items())


# ---------------------------------------------------------------------------
# names, object manager, running


def request_name(
    bus: Any,
    name: str,
    *,
    replace: bool = False,
    allow_replacement: bool = False,
    queue: bool = False,
) -> bool:
    """Own a well-known name. True when acquired; False when queued (``queue=True``).

    ``FileExistsError`` when another peer owns it; already owning it is fine.
    """
    flags = (
        (_serve.NAME_REPLACE_EXISTING if replace else 0)
        | (_serve.NAME_ALLOW_REPLACEMENT if allow_replacement else 0)
        | (_serve.NAME_QUEUE if queue else 0)
    )
    try:
        return _serve.request_name(bus, name, flags)
    except OSError as e:
        import errno

        if e.errno == errno.EALREADY:
            return True
        raise


def release_name(bus: Any, name: str) -> None:
    """Give a well-known name up (``ProcessLookupError`` if we did not own it)."""
    _serve.release_name(bus, name)


def add_object_manager(bus: Any, path: str) -> ObjectManager:
    """org.freedesktop.DBus.ObjectManager at ``path`` (GetManagedObjects of the subtree).

    Keep the returned object: dropping it removes the manager.
    """
    return ObjectManager(bus, path)


def serve_forever(bus: Any, *, until: Optional[Callable[[], bool]] = None) -> None:
    """Process the bus in this thread until ``until()`` is true (or forever).

    The blocking counterpart of ``pystemd.aio.attach(bus)``. Ctrl-C works:
    ``KeyboardInterrupt`` propagates.
    """
    while until is None or not until():
        while bus.process():
            if until is not None and until():
                return
        bus.wait(None if until is None else 0.1)


# ---------------------------------------------------------------------------
# async methods

_tasks: set[asyncio.Future[Any]] = set()


def _run_async(awaitable: Any, reply: PendingReply) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(
            f"{reply.where} is async but no asyncio loop is running; serve the bus with "
            "pystemd.aio.attach(bus) inside the loop"
        ) from None
    task = asyncio.ensure_future(awaitable, loop=loop)
    _tasks.add(task)

    def done(t: asyncio.Future[Any]) -> None:
        _tasks.discard(t)
        if t.cancelled():
            reply.fail(BusError(_serve.FAILED, f"{reply.where} was cancelled"))
            return
        exc = t.exception()
        if exc is not None:
            reply.fail(exc)
        else:
            reply.finish(t.result())

    task.add_done_callback(done)


_serve.set_hooks(async_runner=_run_async)
