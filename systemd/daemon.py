"""``systemd.daemon``: python-systemd 235's sd-daemon module, backed by pystemd.

Same names, signatures, defaults, return values and exceptions as
python-systemd 235 (checked call by call against it in
tests/test_daemon_compat.py), including its quirks: ``notify()`` returns
False without ``$NOTIFY_SOCKET`` whatever it is given, ``listen_fds()``
unsets the environment by default while ``_listen_fds_with_names()`` does
not, and the state string is sent unchecked. For validation, helpers, the
watchdog and ready-made sockets use :mod:`pystemd.daemon`. See docs/daemon.md.
"""

from __future__ import annotations

from socket import AF_UNSPEC as _AF_UNSPEC

from ._daemon import (  # noqa: F401  (re-exported, as python-systemd's daemon.py does)
    LISTEN_FDS_START,
    __version__,
    _is_fifo,
    _is_mq,
    _is_socket,
    _is_socket_inet,
    _is_socket_sockaddr,
    _is_socket_unix,
    _listen_fds,
    _listen_fds_with_names,
    booted,
    notify,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    import os
    from typing import Any, Optional, Union

    _Path = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

# python-systemd defines no __all__: `from systemd.daemon import *` exports every
# public name, so the module namespace holds exactly python-systemd's names (the
# two helpers of the annotations are deleted at the end).


def _convert_fileobj(fileobj: Any) -> Any:
    try:
        return fileobj.fileno()
    except AttributeError:
        return fileobj


def is_fifo(fileobj: Any, path: Optional[_Path] = None) -> bool:
    """True if ``fileobj`` (an fd or an object with ``fileno()``) is a FIFO or pipe."""
    return _is_fifo(_convert_fileobj(fileobj), path)


def is_socket(fileobj: Any, family: int = _AF_UNSPEC, type: int = 0, listening: int = -1) -> bool:
    """True if ``fileobj`` is a socket of ``family``/``type`` (0: any) and ``listening`` (-1: any)."""
    return _is_socket(_convert_fileobj(fileobj), family, type, listening)


def is_socket_inet(
    fileobj: Any, family: int = _AF_UNSPEC, type: int = 0, listening: int = -1, port: int = 0
) -> bool:
    """True if ``fileobj`` is an IPv4/IPv6 socket, bound to ``port`` unless it is 0."""
    return _is_socket_inet(_convert_fileobj(fileobj), family, type, listening, port)


def is_socket_sockaddr(
    fileobj: Any, address: str, type: int = 0, flowinfo: int = 0, listening: int = -1
) -> bool:
    """True if ``fileobj`` is a socket bound to ``address``.

    ``address`` is written as in ``ListenStream=`` (systemd.socket(5)): an
    IPv4 address or a bracketed IPv6 one, optionally followed by ``:port``;
    a port alone. ``ValueError("Cannot parse address")`` otherwise.
    ``flowinfo`` only applies to IPv6 addresses.
    """
    return _is_socket_sockaddr(_convert_fileobj(fileobj), address, type, flowinfo, listening)


def is_socket_unix(
    fileobj: Any, type: int = 0, listening: int = -1, path: Optional[_Path] = None
) -> bool:
    """True if ``fileobj`` is an AF_UNIX socket, bound to ``path`` if given."""
    return _is_socket_unix(_convert_fileobj(fileobj), type, listening, path)


def is_mq(fileobj: Any, path: Optional[_Path] = None) -> bool:
    """True if ``fileobj`` is a POSIX message queue."""
    return _is_mq(_convert_fileobj(fileobj), path)


def listen_fds(unset_environment: bool = True) -> list[int]:
    """The fds passed by socket activation, as a list: ``[3, 4, ...]``.

    With ``unset_environment`` (the default) the ``LISTEN_*`` variables are
    removed, so a second call returns ``[]``.
    """
    num = _listen_fds(unset_environment)
    return list(range(LISTEN_FDS_START, LISTEN_FDS_START + num))


def listen_fds_with_names(unset_environment: bool = True) -> dict[int, str]:
    """The passed fds and their names, ``{3: "name", ...}`` (``"unknown"`` when unnamed)."""
    composite = _listen_fds_with_names(unset_environment)
    count = composite[0]
    assert isinstance(count, int)
    return {LISTEN_FDS_START + i: str(composite[1 + i]) for i in range(count)}


del annotations, TYPE_CHECKING
