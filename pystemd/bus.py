"""D-Bus connections through sd-bus.

>>> from pystemd.bus import Bus
>>> with Bus() as bus:                       # the system bus ($DBUS_SYSTEM_BUS_ADDRESS honoured)
...     bus.get_property("org.freedesktop.systemd1", "/org/freedesktop/systemd1",
...                      "org.freedesktop.systemd1.Manager", "Version")
'252.39-1~deb12u2'

Which connection:

* ``Bus()`` / ``Bus.system()``: the system bus.
* ``Bus(user=True)`` / ``Bus.user()``: the calling user's bus.
* ``Bus("unix:path=/run/dbus/system_bus_socket")``: any address, as a bus client.
* ``Bus.private()``: systemd's private socket ``/run/systemd/private`` (root only,
  peer-to-peer, no dbus-daemon in the path).
* ``Bus.remote_host("user@host")``: a remote system bus over ssh, as ``systemctl -H``.
* ``Bus.container("name")`` / ``Bus.container(pid=1234)``: a local container's system bus.

A Bus is a context manager; ``close()`` is idempotent; a Bus that is collected
while still open warns with ``ResourceWarning`` and closes its fd. After
``fork()`` the child must open its own Bus: using the parent's raises
``RuntimeError``.

Sharing: every call locks the Bus, so threads may share one, but they then
wait for each other. :func:`system_bus` / :func:`user_bus` give each thread
its own long-lived connection instead (never a hidden new connection per call).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable, Optional, Union

from pystemd import _bus
from pystemd._bus import (
    Message,
    Slot,
    UnixFD,
    Variant,
    path_decode,
    path_encode,
    split_signature,
)

__all__ = [
    "KEEP_VARIANTS",
    "Bus",
    "Message",
    "Slot",
    "UnixFD",
    "Variant",
    "path_decode",
    "path_encode",
    "split_signature",
    "system_bus",
    "user_bus",
]

KEEP_VARIANTS: int = _bus.KEEP_VARIANTS

PRIVATE_SOCKET = "/run/systemd/private"

_Address = Union[str, bytes, "os.PathLike[str]"]


class Bus(_bus.Bus):
    """A connection to a D-Bus bus (or peer), see the module docstring."""

    def __init__(
        self,
        address: Optional[_Address] = None,
        *,
        user: bool = False,
        remote: Optional[str] = None,
        machine: Optional[str] = None,
        pid: Optional[int] = None,
        peer: bool = False,
        description: Optional[str] = None,
        open_timeout: Optional[float] = None,
    ) -> None:
        """Open the connection and complete its handshake (authentication, and
        Hello for a bus client) before returning, waiting without the GIL for
        at most ``open_timeout`` seconds (None: the method-call timeout, 25 s).
        A refused or unanswered handshake raises here, not at the first call."""
        given = [
            name
            for name, value in (("address", address), ("remote", remote), ("machine", machine),
                                ("pid", pid))
            if value is not None
        ]  # fmt: skip
        if len(given) > 1:
            raise ValueError(f"give at most one of address, remote, machine, pid (got {given})")
        if user and given and given != ["machine"]:
            raise ValueError("user=True combines only with machine=")
        if peer and given != ["address"]:
            raise ValueError("peer=True needs an address")
        if pid is not None:
            if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
                raise ValueError(f"pid must be a positive int, got {pid!r}")
            # sd-bus enters the process's namespaces and connects to the system
            # bus socket there: works for containers no machined knows about
            address = f"x-machine-unix:pid={pid}"
        if address is not None:
            addr = os.fspath(address)
            if isinstance(addr, bytes):
                addr = addr.decode()
            if addr.startswith("/"):
                addr = "unix:path=" + addr
            self._open("address", addr, not peer, description, open_timeout)
        elif remote is not None:
            self._open("remote", remote, True, description, open_timeout)
        elif machine is not None:
            self._open(
                "user_machine" if user else "machine", machine, True, description, open_timeout
            )
        elif user:
            self._open("user", None, True, description, open_timeout)
        else:
            self._open("system", None, True, description, open_timeout)

    @classmethod
    def system(cls) -> Bus:
        """The system bus (``$DBUS_SYSTEM_BUS_ADDRESS`` is honoured)."""
        return cls()

    @classmethod
    def user(cls) -> Bus:
        """The calling user's bus (``$DBUS_SESSION_BUS_ADDRESS``, else ``$XDG_RUNTIME_DIR/bus``)."""
        return cls(user=True)

    @classmethod
    def private(cls, path: str = PRIVATE_SOCKET) -> Bus:
        """systemd's private peer-to-peer socket (root, same PID namespace)."""
        return cls("unix:path=" + path, peer=True)

    @classmethod
    def remote_host(cls, host: str) -> Bus:
        """A remote system bus over ssh: ``[user@]host[:port][/container]``.

        sd-bus runs ``ssh -xT [-p port] -- [user@]host systemd-stdio-bridge``
        (as ``systemctl -H``): ssh must log in without asking (keys, known host).
        """
        return cls(remote=host)

    @classmethod
    def container(
        cls, machine: Optional[str] = None, *, pid: Optional[int] = None, user: bool = False
    ) -> Bus:
        """A local container's system bus (``user=True``: the user bus), by machine
        name (registered with systemd-machined) or by the PID of any process
        inside it (no registration needed, e.g. ``systemd-nspawn --register=no``)."""
        if (machine is None) == (pid is None):
            raise ValueError("give a machine name or a pid")
        if pid is not None:
            if user:
                raise ValueError("user=True needs a machine name")
            return cls(pid=pid)
        return cls(machine=machine, user=user)

    def __enter__(self) -> Bus:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- blocking event loop helpers (signals without asyncio) ---------------

    def process_pending(self) -> int:
        """Run ``process()`` until it is idle; returns how many times it did something."""
        n = 0
        while self.process():
            n += 1
        return n

    def run_until(self, predicate: Callable[[], Any], timeout: Optional[float] = None) -> bool:
        """Process messages (waiting without the GIL) until ``predicate()`` is true.

        Returns True when it became true, False when ``timeout`` seconds passed.
        Callbacks run here; an exception one raises propagates.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.process_pending()
            if predicate():
                return True
            if deadline is None:
                self.wait()
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.wait(left)


_local = threading.local()


def _default(attr: str, user: bool) -> Bus:
    bus = getattr(_local, attr, None)
    if bus is None or bus.closed:
        bus = Bus(user=user)
        bus.shared = True
        setattr(_local, attr, bus)
    return bus


def system_bus() -> Bus:
    """This thread's shared system-bus connection (opened on first use).

    Each thread gets its own connection, so threads never wait for each
    other; it is closed when the thread ends. Do not close it yourself.
    """
    return _default("system", False)


def user_bus() -> Bus:
    """This thread's shared user-bus connection (opened on first use)."""
    return _default("user", True)
