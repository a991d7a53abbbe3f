"""Seats, sessions, users and machines known to systemd-logind / machined.

python-systemd's ``systemd.login`` API::

    >>> from pystemd import login
    >>> login.seats(), login.sessions(), login.uids(), login.machine_names()
    (['seat0'], ['c1'], [0], [])

:class:`Monitor` wakes up when those change. In a poll loop use
``fileno()``/``get_events()``/``get_timeout_ms()`` then ``flush()``; or wait
with :meth:`Monitor.wait`; from asyncio::

    with login.Monitor("session") as mon:
        async for _ in mon.changes():
            print("sessions now:", login.sessions())

Errors of libsystemd raise ``OSError`` (python-systemd's mapping); an unknown
category raises ``ValueError``.
"""

from __future__ import annotations

import asyncio
import select
from collections.abc import AsyncIterator
from typing import Optional

from pystemd import _login
from pystemd._login import machine_names, seats, sessions, uids

__all__ = ["Monitor", "machine_names", "seats", "sessions", "uids"]

CATEGORIES = _login.CATEGORIES


class Monitor(_login.Monitor):
    """``sd_login_monitor``: ``Monitor(category=None)``, category one of
    ``"seat"``, ``"session"``, ``"uid"``, ``"machine"`` or None (all).

    python-systemd's methods (``fileno``, ``get_events``, ``get_timeout``,
    ``get_timeout_ms``, ``flush``, ``close``, context manager) plus
    :attr:`closed`, :meth:`wait`, :meth:`wait_async` and :meth:`changes`.
    """

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self.fileno()}"
        return f"<{type(self).__name__} category={self.category!r} {state}>"

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until something changed (then :meth:`flush`) or ``timeout`` seconds passed.

        Returns True when woken by a change, False on timeout. The GIL is
        released while waiting.
        """
        poller = select.poll()
        poller.register(self.fileno(), self.get_events())
        ms = self.get_timeout_ms()
        if timeout is not None:
            t = max(0, int(timeout * 1000 + 0.999))
            ms = t if ms < 0 else min(ms, t)
        ready = poller.poll(None if ms < 0 else ms)
        self.flush()
        return bool(ready)

    async def wait_async(self, timeout: Optional[float] = None) -> bool:
        """:meth:`wait` for asyncio: the fd is watched by the running loop."""
        loop = asyncio.get_running_loop()
        fd = self.fileno()
        woke: asyncio.Future[None] = loop.create_future()

        def ready() -> None:
            if not woke.done():
                woke.set_result(None)

        loop.add_reader(fd, ready)
        try:
            await asyncio.wait_for(woke, timeout)
        except asyncio.TimeoutError:
            return False
        finally:
            loop.remove_reader(fd)
        self.flush()
        return True

    async def changes(self) -> AsyncIterator[None]:
        """Yield once per burst of changes, until the monitor is closed."""
        while not self.closed:
            try:
                changed = await self.wait_async()
            except OSError:
                if self.closed:  # closed while waiting: the iteration ends
                    return
                raise
            if changed:
                yield None
