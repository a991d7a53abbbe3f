from collections.abc import Sequence
from typing import Any, Optional, Union

DEFAULT_GIL_HOLD_US: int
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
    def body(self, *, flags: int = ...) -> tuple[Any, ...]: ...

class Bus:
    kind: str
    description: Any
    gil_hold_us: int
    shared: bool
    closed: bool
    unique_name: Optional[str]
    address: str
    def _open(
        self, kind: str, arg: Any = ..., bus_client: bool = ..., description: Optional[str] = ...
    ) -> None: ...
    def close(self) -> None: ...
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
        timeout: Optional[float] = ...,
        flags: int = ...,
    ) -> dict[str, Any]: ...
    def set_property(
        self,
        destination: Optional[str],
        path: str,
        interface: str,
        name: str,
        signature: str,
        value: Any,
        *,
        timeout: Optional[float] = ...,
    ) -> None: ...

def split_signature(signature: Union[str, bytes]) -> list[str]: ...
def path_encode(prefix: str, external_id: str) -> str: ...
def path_decode(path: str, prefix: str) -> Optional[str]: ...
def _libsystemd_version() -> int: ...
