from collections.abc import Callable, Iterable, Sequence
from typing import Any, Optional, Union

DEFAULT_GIL_HOLD_US: int
DEFAULT_WINDOW: int
KEEP_VARIANTS: int

class Variant:
    signature: str
    value: Any
    def __init__(self, signature: Union[str, bytes], value: Any) -> None: ...

class UnixFD:
    closed: bool
    def __init__(self, fd: int) -> None: ...
    def fileno(self) -> int: ...
    def __int__(self) -> int: ...
    def __index__(self) -> int: ...
    def detach(self) -> int: ...
    def close(self) -> None: ...
    def __enter__(self) -> UnixFD: ...
    def __exit__(self, *exc: Any) -> None: ...

class Message:
    path: Optional[str]
    interface: Optional[str]
    member: Optional[str]
    sender: Optional[str]
    destination: Optional[str]
    signature: str
    type: int
    cookie: Optional[int]
    error: Optional[Exception]
    def body(self, *, flags: int = ...) -> tuple[Any, ...]: ...

class Slot:
    callback: Callable[[Message], Any]
    rule: str
    active: bool
    def remove(self) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> Slot: ...
    def __exit__(self, *exc: Any) -> None: ...

_CallSpec = Union[
    tuple[Optional[str], str, Optional[str], str],
    tuple[Optional[str], str, Optional[str], str, str, Sequence[Any]],
]

class Bus:
    kind: str
    description: Any
    gil_hold_us: int
    shared: bool
    closed: bool
    unique_name: Optional[str]
    is_bus_client: bool
    address: str
    method_call_timeout: float
    last_batch_limit_hits: int
    def _open(
        self,
        kind: str,
        arg: Any = ...,
        bus_client: bool = ...,
        description: Optional[str] = ...,
        timeout: Optional[float] = ...,
    ) -> None: ...
    def close(self) -> None: ...
    def _set_wakeup(self, fn: Optional[Callable[[], Any]]) -> Optional[Callable[[], Any]]: ...
    def fileno(self) -> int: ...
    def get_events(self) -> int: ...
    def get_timeout(self) -> Optional[int]: ...
    def process(self) -> bool: ...
    def wait(self, timeout: Optional[float] = ...) -> bool: ...
    def flush(self) -> None: ...
    def call(
        self,
        destination: Optional[str],
        path: str,
        interface: Optional[str],
        member: str,
        signature: str = ...,
        args: Sequence[Any] = ...,
        *,
        timeout: Optional[float] = ...,
        flags: int = ...,
        no_reply: bool = ...,
        interactive: bool = ...,
    ) -> tuple[Any, ...]: ...
    def get_property(
        self,
        destination: Optional[str],
        path: str,
        interface: str,
        name: str,
        *,
        timeout: Optional[float] = ...,
        flags: int = ...,
    ) -> Any: ...
    def get_all_properties(
        self,
        destination: Optional[str],
        path: str,
        interface: Optional[str],
        *,
        names: Optional[Iterable[str]] = ...,
        timeout: Optional[float] = ...,
        flags: int = ...,
    ) -> dict[str, Any]: ...
    def set_property(
        self,
        destination: Optional[str],
        path: str,
        interface: str,
        name: str,
        signature: Optional[str],
        value: Any,
        *,
        timeout: Optional[float] = ...,
        interactive: bool = ...,
    ) -> None: ...
    def call_many(
        self,
        calls: Iterable[_CallSpec],
        *,
        window: Optional[int] = ...,
        timeout: Optional[float] = ...,
        flags: int = ...,
        return_exceptions: bool = ...,
        retry_limits: bool = ...,
    ) -> list[Any]: ...
    def get_property_many(
        self,
        requests: Iterable[tuple[Optional[str], str, str, str]],
        *,
        window: Optional[int] = ...,
        timeout: Optional[float] = ...,
        flags: int = ...,
        return_exceptions: bool = ...,
        retry_limits: bool = ...,
    ) -> list[Any]: ...
    def add_match(self, rule: str, callback: Callable[[Message], Any]) -> Slot: ...
    def match_signal(
        self,
        sender: Optional[str],
        path: Optional[str],
        interface: Optional[str],
        member: Optional[str],
        callback: Callable[[Message], Any],
        *,
        arg0: Optional[str] = ...,
    ) -> Slot: ...

def split_signature(signature: Union[str, bytes]) -> list[str]: ...
def path_encode(prefix: str, external_id: str) -> str: ...
def path_decode(path: str, prefix: str) -> Optional[str]: ...
def _libsystemd_version() -> int: ...
