"""asyncio on a pystemd Bus: awaitable calls and properties, async signal streams.

>>> import asyncio
>>> from pystemd.bus import Bus
>>> from pystemd import aio
>>> S1, PATH = "org.freedesktop.systemd1", "/org/freedesktop/systemd1"
>>> async def main(bus: Bus) -> None:
...     abus = aio.attach(bus)                        # same Bus, blocking calls still work
...     version = await abus.get_property(S1, PATH, f"{S1}.Manager", "Version")
...     async with abus.signals(interface=f"{S1}.Manager", member="JobRemoved") as jobs:
...         await abus.call(S1, PATH, f"{S1}.Manager", "Subscribe")
...         await abus.call(S1, PATH, f"{S1}.Manager", "StartUnit", "ss", ("x.service", "replace"))
...         async for msg in jobs:
...             print(msg.body())
...             break
>>> with Bus() as bus:
...     asyncio.run(main(bus))

How it works: :func:`attach` registers the bus fd once with the loop
(``add_reader``; ``add_writer`` only while sd-bus asks for POLLOUT) and one
timer for sd-bus's deadline (reply timeouts), re-armed only when the deadline
moves earlier. Calls go out through ``sd_bus_call_async`` as soon as they are
made (so they keep the order they are made in), at most ``window`` at a time
(default 64, under the system bus's cap of 128 pending replies per
connection); the rest wait their turn. Cancelling the awaiting task cancels
the call: sd-bus forgets it and drops the reply. An exception raised by a
callback run by the bus (a ``Bus.match_signal`` callback, a served method's
log...) is passed to the loop's exception handler with its own traceback;
processing goes on.
"""

from __future__ import annotations

import asyncio
import builtins
import errno
import threading
import time
import weakref
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Optional

from pystemd import _aio, _serve
from pystemd._bus import KEEP_VARIANTS, Message
from pystemd.errors import PystemdError

__all__ = [
    "KEEP_VARIANTS",
    "AsyncBus",
    "SignalQueueOverflow",
    "SignalStream",
    "attach",
    "match_rule",
]

POLLOUT = 0x004
_BUDGET = 64  # messages processed per loop callback before yielding
# A safety net only (see AsyncBus._on_watchdog): blocking calls wake the loop
# through the Bus's wake-up hook. None: no watchdog at all.
WATCHDOG_S: Optional[float] = 1.0


class SignalQueueOverflow(PystemdError, BufferError):
    """A bounded signal stream dropped signals because its reader was too slow."""


def _quote(value: str) -> str:
    # match rule values are in single quotes; a quote is written '\''
    return "'" + value.replace("'", "'\\''") + "'"


def match_rule(
    *,
    type: Optional[str] = "signal",
    sender: Optional[str] = None,
    path: Optional[str] = None,
    path_namespace: Optional[str] = None,
    interface: Optional[str] = None,
    member: Optional[str] = None,
    destination: Optional[str] = None,
    args: Optional[Mapping[int, str]] = None,
    arg0namespace: Optional[str] = None,
) -> str:
    """Build a D-Bus match rule string (values quoted; ``args={0: "x"}`` is ``arg0='x'``)."""
    parts = []
    for key, value in (
        ("type", type),
        ("sender", sender),
        ("path", path),
        ("path_namespace", path_namespace),
        ("interface", interface),
        ("member", member),
        ("destination", destination),
        ("arg0namespace", arg0namespace),
    ):
        if value is not None:
            if not isinstance(value, str):
                raise TypeError(
                    f"match rule {key} must be str, got {builtins.type(value).__name__}"
                )
            parts.append(f"{key}={_quote(value)}")
    for n, value in sorted((args or {}).items()):
        if not (isinstance(n, int) and 0 <= n <= 63):
            raise ValueError(f"match rule argN: N must be 0..63, got {n!r}")
        parts.append(f"arg{n}={_quote(value)}")
    return ",".join(parts)


class SignalStream:
    """An async iterator of the signals matching a rule.

    The match is installed when the stream is created (so a call made after
    it cannot race it) and removed by ``close()``/``aclose()``, by leaving
    ``async with``, or when the stream is garbage collected. Items are
    :class:`pystemd.bus.Message` (``.member``, ``.path``, ``.body()``...).
    With ``maxsize`` > 0, signals beyond that many unread ones are dropped and
    the next read raises :class:`SignalQueueOverflow` saying how many.
    """

    def __init__(self, abus: AsyncBus, rule: str, maxsize: int = 0) -> None:
        self._abus = abus
        self._match = _aio.Match(abus, rule, maxsize)
        self._waiting_future: Optional[asyncio.Future[Any]] = None
        abus._streams.add(self)

    @property
    def rule(self) -> str:
        return self._match.rule

    @property
    def active(self) -> bool:
        return bool(self._match.active)

    def pending(self) -> int:
        """Signals received and not read yet."""
        return len(self._match.queue)

    def __aiter__(self) -> SignalStream:
        return self

    async def __anext__(self) -> Message:
        m = self._match
        while True:
            exc = m._take_error()
            if exc is not None:
                raise exc
            item = m.take()
            if isinstance(item, int):
                raise SignalQueueOverflow(
                    f"{item} signal(s) dropped (maxsize={m.maxsize}) for {m.rule!r}"
                )
            if item is not None:
                return item
            if not m.active:
                raise StopAsyncIteration
            self._abus._check_alive()
            fut = self._abus.loop.create_future()
            m._set_waiter(fut)
            self._waiting_future = fut
            try:
                await fut
            finally:
                m._set_waiter(None)
                self._waiting_future = None

    async def get(self, timeout: Optional[float] = None) -> Message:
        """The next signal; ``TimeoutError`` after ``timeout`` seconds."""
        if timeout is None:
            return await self.__anext__()
        return await asyncio.wait_for(self.__anext__(), timeout)

    def close(self) -> None:
        self._match.remove()

    def _wake(self) -> None:
        # the connection is gone or the AsyncBus closed: a waiting reader
        # wakes up and finds out
        w = self._waiting_future
        if w is not None and not w.done():
            w.set_result(None)

    async def aclose(self) -> None:
        self.close()

    async def __aenter__(self) -> SignalStream:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        m = getattr(self, "_match", None)
        if m is not None and m.active:
            try:
                m.remove()
            except Exception:
                pass

    def __repr__(self) -> str:
        return f"<SignalStream {self.rule!r} {'active' if self.active else 'closed'}>"


_UNSET = object()


class AsyncBus(_aio.Driver):
    """A Bus driven by an asyncio loop. Get one with :func:`attach`."""

    def __init__(
        self, bus: Any, loop: asyncio.AbstractEventLoop, window: Optional[int] = 64
    ) -> None:
        super().__init__(bus, loop, window)
        self._fd: int = bus.fileno()
        self._writing = False
        self._timer: Optional[asyncio.TimerHandle] = None
        self._timer_at: Optional[int] = None
        self._scheduled = False
        #: how many times the deadline timer was (re-)armed (for tests and tuning)
        self.timer_arms = 0
        self._streams: weakref.WeakSet[SignalStream] = weakref.WeakSet()
        self._watchdog: Optional[asyncio.TimerHandle] = None
        loop.add_reader(self._fd, self._on_readable)
        # Blocking calls on this Bus (from a coroutine, or another thread) call
        # this when they leave messages queued in sd-bus or callbacks deferred.
        self._wakeup_hook = self._on_left_behind
        bus._set_wakeup(self._wakeup_hook)
        self._update()

    # -- loop wiring ---------------------------------------------------------

    def _on_readable(self) -> None:
        self._drain()

    def _on_writable(self) -> None:
        self._drain()

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self._drain()

    def _kick(self) -> None:
        """Schedule a drain + update (from any thread); no-op while draining."""
        if self.closed or self._scheduled:
            return
        if threading.get_ident() != self.loop_thread:
            self._scheduled = True
            self.loop.call_soon_threadsafe(self._scheduled_drain)
        elif not self.draining:
            self._scheduled = True
            self.loop.call_soon(self._scheduled_drain)

    def _on_left_behind(self) -> None:
        # The Bus's wake-up hook: a blocking call (any thread) returned leaving
        # work for the loop while the fd stays quiet.
        try:
            self._kick()
        except RuntimeError:
            pass  # the loop is closed: nobody left to wake

    def _scheduled_drain(self) -> None:
        self._scheduled = False
        self._drain()

    def _drain(self) -> None:
        if self.closed:
            return
        self.draining = True
        bus = self.bus
        try:
            for _ in range(_BUDGET):
                try:
                    if not bus.process():
                        break
                except Exception as e:
                    if not self.is_open():
                        self._lost(e)
                        return
                    self.loop.call_exception_handler(
                        {"message": "exception in a D-Bus callback", "exception": e, "bus": bus}
                    )
            else:
                # More work queued: let other tasks run first.
                if not self._scheduled:
                    self._scheduled = True
                    self.loop.call_soon(self._scheduled_drain)
        finally:
            self.draining = False
        if not self.is_open():
            self._lost(ConnectionResetError(errno.ECONNRESET, "the bus connection was closed"))
            return
        self._update()

    def _update(self) -> None:
        """Follow sd-bus's wishes: POLLOUT watch and the deadline timer."""
        try:
            events, deadline = self.poll_state()
        except (ValueError, OSError) as e:
            self._lost(e)
            return
        want_write = bool(events & POLLOUT)
        if want_write != self._writing:
            if want_write:
                self.loop.add_writer(self._fd, self._on_writable)
            else:
                self.loop.remove_writer(self._fd)
            self._writing = want_write
        if (
            self._watchdog is None
            and WATCHDOG_S is not None
            and (self.in_flight or self.waiting or self._readers_waiting())
        ):
            self._watchdog = self.loop.call_later(WATCHDOG_S, self._on_watchdog)
        if deadline is None:
            return  # an armed timer that fires early only costs a no-op drain
        delay = deadline / 1e6 - time.monotonic()
        if delay <= 0:
            # due now (a queued message, a deferred callback, a passed deadline)
            if not self._scheduled:
                self._scheduled = True
                self.loop.call_soon(self._scheduled_drain)
            return
        if self._timer is not None and self._timer_at is not None and deadline >= self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_later(delay, self._on_timer)
        self._timer_at = deadline
        self.timer_arms += 1

    def _readers_waiting(self) -> bool:
        return any(st._waiting_future is not None for st in self._streams)

    def _on_watchdog(self) -> None:
        # A blocking call on this Bus (in a coroutine, or on another thread)
        # may read messages for us into sd-bus's queue without dispatching
        # them, and the fd then stays quiet. Every blocking path calls the
        # Bus's wake-up hook (_on_left_behind) when it leaves work behind, so
        # this only guards against a path that would not: while calls are
        # pending or a stream is being read, look every WATCHDOG_S.
        self._watchdog = None
        if self.closed:
            return
        self._drain()

    def kick(self) -> None:
        """Process the bus soon (from any thread).

        Not needed: blocking calls on this Bus wake the loop themselves when
        they read messages meant for it (the Bus's wake-up hook). Kept for
        code written before that.
        """
        self._kick()

    def _lost(self, exc: BaseException) -> None:
        if not isinstance(exc, ConnectionError):
            err = ConnectionResetError(errno.ECONNRESET, f"the bus connection is gone: {exc}")
            err.__cause__ = exc
            exc = err
        self._detach(exc, fatal=True)

    def _detach(self, exc: BaseException, fatal: bool = False) -> None:
        for h in (self._timer, self._watchdog):
            if h is not None:
                h.cancel()
        self._timer = self._watchdog = None
        try:
            self.loop.remove_reader(self._fd)
            if self._writing:
                self.loop.remove_writer(self._fd)
        except Exception:
            pass  # the loop is closed already
        self._writing = False
        if not self.bus.closed:
            previous = self.bus._set_wakeup(None)
            if previous is not self._wakeup_hook:
                self.bus._set_wakeup(previous)  # another AsyncBus's (not ours to remove)
        if _drivers.get(self.bus) is self:
            del _drivers[self.bus]
        self.fail_all(exc, fatal)
        for stream in list(self._streams):
            stream._wake()

    def _check_alive(self) -> None:
        if self.closed:
            raise RuntimeError("this AsyncBus was closed")
        if not self.is_open():
            raise ConnectionResetError(errno.ECONNRESET, "the bus connection is gone")

    # -- the API -------------------------------------------------------------

    def signals(
        self,
        match: Optional[str] = None,
        *,
        sender: Optional[str] = None,
        path: Optional[str] = None,
        path_namespace: Optional[str] = None,
        interface: Optional[str] = None,
        member: Optional[str] = None,
        args: Optional[Mapping[int, str]] = None,
        maxsize: int = 0,
    ) -> SignalStream:
        """An async iterator of signals: a raw ``match`` rule, or the keywords."""
        if match is None:
            match = match_rule(
                sender=sender,
                path=path,
                path_namespace=path_namespace,
                interface=interface,
                member=member,
                args=args,
            )
        elif any(x is not None for x in (sender, path, path_namespace, interface, member, args)):
            raise TypeError("give a match rule string or keywords, not both")
        return SignalStream(self, match, maxsize)

    def set_property(
        self,
        destination: Optional[str],
        path: str,
        interface: str,
        name: str,
        signature: str,
        value: Any,
        *,
        timeout: Optional[float] = None,
    ) -> asyncio.Future[tuple[Any, ...]]:
        """Future of Properties.Set with an explicit value signature."""
        from pystemd._bus import Variant

        return self.call(
            destination,
            path,
            "org.freedesktop.DBus.Properties",
            "Set",
            "ssv",
            (interface, name, Variant(signature, value)),
            timeout=timeout,
        )

    async def introspect(
        self, service: Optional[str], path: str, *, timeout: Optional[float] = None
    ) -> Any:
        """Introspect ``service`` at ``path`` (a :class:`pystemd.introspect.Node`), filling the cache."""
        from pystemd import introspect as _introspect

        (xml,) = await self.call(
            service, path, _introspect.INTROSPECTABLE, "Introspect", timeout=timeout
        )
        node = _introspect.parse(xml, path)
        _introspect._remember(self.bus, service, node)
        return node

    def close(self) -> None:
        """Detach from the loop. Idempotent.

        Pending calls fail with ``ConnectionAbortedError``; signal streams end
        (``StopAsyncIteration``). The Bus stays open (close it yourself,
        after this): blocking use goes on, and ``attach()`` works again.
        """
        if self.closed:
            return
        for stream in list(self._streams):
            stream.close()  # readers see the end of the stream
        self._detach(ConnectionAbortedError(errno.ECONNABORTED, "the AsyncBus was closed"))
        self._set_closed()

    async def __aenter__(self) -> AsyncBus:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.in_flight} in flight"
        return f"<AsyncBus {self.bus!r} {state}>"


_drivers: weakref.WeakKeyDictionary[Any, AsyncBus] = weakref.WeakKeyDictionary()


def attach(
    bus: Any, *, loop: Optional[asyncio.AbstractEventLoop] = None, window: Optional[int] = 64
) -> AsyncBus:
    """The :class:`AsyncBus` driving ``bus`` on the running loop (made on first use).

    Call from inside the loop (a coroutine or callback). A bus is attached
    to one loop at a time; attaching it to another raises ``RuntimeError``
    until the first ``close()``.
    """
    if loop is None:
        loop = asyncio.get_running_loop()
    d = _drivers.get(bus)
    if d is not None and not d.closed:
        if d.loop is not loop:
            raise RuntimeError(
                "this bus is attached to another event loop; close() that AsyncBus first"
            )
        return d
    d = AsyncBus(bus, loop, window)
    _drivers[bus] = d
    return d


def _kick_bus(bus: Any) -> bool:
    """Tell the loop driving ``bus`` (if any) that it has work; True if there is one."""
    d = _drivers.get(bus)
    if d is None or d.closed:
        return False
    d._kick()
    return True


_serve.set_hooks(send_hook=_kick_bus)
