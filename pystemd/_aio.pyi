import asyncio
from collections import deque
from collections.abc import Sequence
from typing import Any, Optional, Union

from pystemd._bus import Bus, Message

class AsyncCall:
    future: asyncio.Future[Any]
    def _future_done(self, fut: asyncio.Future[Any]) -> None: ...

class Driver:
    bus: Bus
    loop: asyncio.AbstractEventLoop
    loop_thread: int
    window: Optional[int]
    in_flight: int
    closed: bool
    draining: bool
    def __init__(
        self, bus: Any, loop: asyncio.AbstractEventLoop, window: Optional[int] = ...
    ) -> None: ...
    def _set_closed(self) -> None: ...
    def _kick(self) -> None: ...
    def poll_state(self) -> tuple[int, Optional[int]]: ...
    def is_open(self) -> bool: ...
    def _cancel(self, call: AsyncCall) -> None: ...
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
    ) -> asyncio.Future[tuple[Any, ...]]: ...
    def get_property(
        self,
        destination: Optional[str],
        path: str,
        interface: str,
        name: str,
        *,
        timeout: Optional[float] = ...,
        flags: int = ...,
    ) -> asyncio.Future[Any]: ...
    def get_all_properties(
        self,
        destination: Optional[str],
        path: str,
        interface: Optional[str],
        *,
        timeout: Optional[float] = ...,
        flags: int = ...,
    ) -> asyncio.Future[dict[str, Any]]: ...
    def fail_all(self, exc: BaseException, fatal: bool = ...) -> None: ...
    @property
    def waiting(self) -> int: ...

class Match:
    driver: Driver
    rule: str
    queue: deque[Message]
    maxsize: int
    dropped: int
    def __init__(self, driver: Driver, rule: str, maxsize: int = ...) -> None: ...
    def take(self) -> Union[Message, int, None]: ...
    def _take_error(self) -> Optional[BaseException]: ...
    def _set_waiter(self, fut: Optional[asyncio.Future[Any]]) -> None: ...
    @property
    def active(self) -> bool: ...
    def remove(self) -> None: ...
