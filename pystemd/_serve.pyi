from collections.abc import Callable, Iterable, Sequence
from typing import Any, Optional, Union

DEPRECATED: int
HIDDEN: int
UNPRIVILEGED: int
METHOD_NO_REPLY: int
PROPERTY_CONST: int
PROPERTY_EMITS_CHANGE: int
PROPERTY_EMITS_INVALIDATION: int
PROPERTY_EXPLICIT: int
SENSITIVE: int
NAME_REPLACE_EXISTING: int
NAME_ALLOW_REPLACEMENT: int
NAME_QUEUE: int
FAILED: str

def set_hooks(
    send_hook: Optional[Callable[[Any], bool]] = ...,
    async_runner: Optional[Callable[[Any, PendingReply], None]] = ...,
) -> None: ...
def error_for(exc: BaseException) -> tuple[str, str]: ...

class Member:
    kind: str
    name: str
    flags: int
    call: Optional[Callable[..., Any]]
    getter: Optional[Callable[[], Any]]
    setter: Optional[Callable[[Any], None]]
    with_message: bool
    read_flags: int
    signature: str
    result: str
    def __init__(
        self,
        kind: str,
        name: Union[str, bytes],
        signature: Union[str, bytes] = ...,
        result: Union[str, bytes] = ...,
        names: Iterable[Union[str, bytes]] = ...,
        flags: int = ...,
        call: Optional[Callable[..., Any]] = ...,
        getter: Optional[Callable[[], Any]] = ...,
        setter: Optional[Callable[[Any], None]] = ...,
        with_message: bool = ...,
        keep_variants: bool = ...,
    ) -> None: ...

class Export:
    path: str
    interface: str
    members: list[Member]
    @property
    def bus(self) -> Any: ...
    @property
    def active(self) -> bool: ...
    def remove(self) -> None: ...
    def emit_properties_changed(self, names: Iterable[str]) -> None: ...

class PendingReply:
    where: str
    @property
    def done(self) -> bool: ...
    def finish(self, result: Any) -> None: ...
    def fail(self, exc: BaseException) -> None: ...

class ObjectManager:
    path: str
    def __init__(self, bus: Any, path: str) -> None: ...
    def remove(self) -> None: ...

def add_vtable(
    bus: Any, path: str, interface: str, members: Iterable[Member], *, flags: int = ...
) -> Export: ...
def emit_signal(
    bus: Any,
    path: str,
    interface: str,
    member: str,
    signature: str = ...,
    args: Sequence[Any] = ...,
    *,
    destination: Optional[str] = ...,
) -> None: ...
def emit_object_added(bus: Any, path: str) -> None: ...
def emit_object_removed(bus: Any, path: str) -> None: ...
def request_name(bus: Any, name: str, flags: int = ...) -> bool: ...
def release_name(bus: Any, name: str) -> None: ...
