"""``systemd._daemon``: python-systemd 235's private C module, on pystemd's sd-daemon layer.

:mod:`systemd.daemon` imports everything from here, as python-systemd's does
from its compiled ``_daemon``; code that imports ``systemd._daemon`` directly
finds the same names. Arguments are checked the way the C module's
``PyArg_ParseTuple`` formats check them: ``int`` arguments take ``__index__``
objects and raise ``OverflowError`` beyond a C ``int``; paths take ``str``,
``bytes`` or ``os.PathLike``; the ``_is_*`` functions are positional-only.
Errors map as python-systemd maps them: a negative errno is the ``OSError``
subclass for it (with the path as ``filename`` where one was given).
"""

from __future__ import annotations

import operator
import os

from pystemd import _daemon as _sd

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Optional, SupportsIndex, Union

    _Path = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

__version__ = "235"
LISTEN_FDS_START: int = _sd.LISTEN_FDS_START

_INT_MIN = -(1 << 31)
_INT_MAX = (1 << 31) - 1
_LONG_MIN = -(1 << 63)
_LONG_MAX = (1 << 63) - 1


def _c_int(value: SupportsIndex) -> int:
    # PyArg_ParseTuple "i"
    v = operator.index(value)
    if v > _INT_MAX:
        raise OverflowError("signed integer is greater than maximum")
    if v < _INT_MIN:
        raise OverflowError("signed integer is less than minimum")
    return v


def _fs(path: Optional[_Path]) -> Optional[bytes]:
    # python-systemd's Unicode_FSConverter: None stays NULL, a NUL byte is refused
    if path is None:
        return None
    raw = os.fsencode(path)
    if b"\0" in raw:
        raise ValueError("embedded null byte")
    return raw


def booted() -> bool:
    """booted() -> bool

    True when the system runs under systemd (``sd_booted``).
    """
    return _sd.booted()


def notify(
    status: str,
    unset_environment: bool = False,
    pid: int = 0,
    fds: Optional[Sequence[int]] = None,
) -> bool:
    """notify(status, unset_environment=False, pid=0, fds=None) -> bool

    Send ``status`` to the service manager (``sd_notify``, ``sd_pid_notify``
    when ``pid`` is given, ``sd_pid_notify_with_fds`` when ``fds`` is).
    False when ``$NOTIFY_SOCKET`` is not set.
    """
    if not isinstance(status, str):
        raise TypeError(f"notify() argument 'status' must be str, not {type(status).__name__}")
    if "\0" in status:
        raise ValueError("embedded null character")
    state = status.encode("utf-8")
    unset = bool(unset_environment)
    pid_ = _c_int(pid)
    if pid_ < 0:
        raise OverflowError("Bad pid_t")
    arr: Optional[list[int]] = None
    if fds is not None:
        arr = []
        for i in range(len(fds)):
            v = operator.index(fds[i])
            if not _LONG_MIN <= v <= _LONG_MAX:
                raise OverflowError("Python int too large to convert to C long")
            if not _INT_MIN <= v <= _INT_MAX:
                raise OverflowError("Value to large for an integer")
            arr.append(v)
    if pid_ == 0 and arr is None:
        return _sd.notify(unset, state)
    if arr is None:
        return _sd.pid_notify(pid_, unset, state)
    return _sd.pid_notify_with_fds(pid_, unset, state, arr)


def _listen_fds(unset_environment: bool = True) -> int:
    """_listen_fds(unset_environment=True) -> int

    The number of fds passed by the service manager, from ``LISTEN_FDS_START``
    on (``sd_listen_fds``).
    """
    return _sd.listen_fds(bool(unset_environment))


def _listen_fds_with_names(unset_environment: bool = False) -> tuple[int | str, ...]:
    """_listen_fds_with_names(unset_environment=False) -> (int, str...)

    The number of passed fds followed by their names (``sd_listen_fds_with_names``).
    """
    names = _sd.listen_fds_with_names(bool(unset_environment))
    return (len(names), *names)


def _is_fifo(fd: int, path: Optional[_Path] = None, /) -> bool:
    """_is_fifo(fd, path) -> bool

    True if ``fd`` is a FIFO or a pipe (``sd_is_fifo``).
    """
    return _sd.is_fifo(_c_int(fd), _fs(path))


def _is_mq(fd: int, path: Optional[_Path] = None, /) -> bool:
    """_is_mq(fd, path) -> bool

    True if ``fd`` is a POSIX message queue (``sd_is_mq``).
    """
    return _sd.is_mq(_c_int(fd), _fs(path))


def _is_socket(fd: int, family: int = 0, type: int = 0, listening: int = -1, /) -> bool:
    """_is_socket(fd, family=AF_UNSPEC, type=0, listening=-1) -> bool

    True if ``fd`` is a socket of that family, type and listening state (``sd_is_socket``).
    """
    return _sd.is_socket(_c_int(fd), _c_int(family), _c_int(type), _c_int(listening))


def _is_socket_inet(
    fd: int, family: int = 0, type: int = 0, listening: int = -1, port: int = 0, /
) -> bool:
    """_is_socket_inet(fd, family=AF_UNSPEC, type=0, listening=-1, port=0) -> bool

    ``sd_is_socket_inet``: an IPv4/IPv6 socket, bound to ``port`` unless 0.
    """
    args = (_c_int(fd), _c_int(family), _c_int(type), _c_int(listening))
    port_ = _c_int(port)
    if not 0 <= port_ <= 0xFFFF:
        raise ValueError("port must fit into uint16_t")
    return _sd.is_socket_inet(*args, port_)


def _is_socket_sockaddr(
    fd: int, address: str, type: int = 0, flowinfo: int = 0, listening: int = -1, /
) -> bool:
    """_is_socket_sockaddr(fd, address, type=0, flowinfo=0, listening=-1) -> bool

    ``sd_is_socket_sockaddr``: a socket bound to ``address``, written as in
    ``ListenStream=`` (``"127.0.0.1:80"``, ``"[::1]:80"``, ``"127.0.0.1"``, ``"80"``).
    """
    fd_ = _c_int(fd)
    if not isinstance(address, str):
        raise TypeError(
            f"_is_socket_sockaddr() argument 2 must be str, not {address.__class__.__name__}"
        )
    if "\0" in address:
        raise ValueError("embedded null character")
    type_, flowinfo_, listening_ = _c_int(type), _c_int(flowinfo), _c_int(listening)
    raw = _sd.parse_sockaddr(address.encode("utf-8"), flowinfo_)
    return _sd.is_socket_sockaddr(fd_, type_, raw, listening_)


def _is_socket_unix(
    fd: int, type: int = 0, listening: int = -1, path: Optional[_Path] = None, /
) -> bool:
    """_is_socket_unix(fd, type, listening, path) -> bool

    ``sd_is_socket_unix``: an AF_UNIX socket, bound to ``path`` if given.
    """
    return _sd.is_socket_unix(_c_int(fd), _c_int(type), _c_int(listening), _fs(path))
