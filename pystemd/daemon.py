"""sd-daemon for services: notify, the watchdog, the fd store, socket activation.

::

    from pystemd import daemon

    sockets = daemon.listen_sockets()          # what systemd passed, as socket.socket
    daemon.notify_ready("serving on :8080")    # READY=1 + STATUS=...
    with daemon.Watchdog():                    # WATCHDOG=1 every WatchdogSec/2, in a thread
        serve(sockets)

Every call returns ``False`` when the process is not supervised (no
``$NOTIFY_SOCKET``), so a service runs the same outside systemd. Anything
else that goes wrong raises: a malformed notification (``ValueError``
naming the line), a closed fd (``OSError(EBADF)`` naming it), a
``$NOTIFY_SOCKET`` that does not exist (``FileNotFoundError``) or is not a
socket (``ConnectionRefusedError``). See docs/daemon.md.

This module is imported by every ``Type=notify`` service, so importing it
loads nothing but the compiled ``pystemd._daemon``; ``socket``,
``threading`` and ``asyncio`` are imported by the helpers that need them.
"""

from __future__ import annotations

import os

from pystemd import __version__, _daemon

TYPE_CHECKING = False
if not TYPE_CHECKING:  # typing costs milliseconds at import: a stand-in at run time

    def overload(fn):
        return fn


if TYPE_CHECKING:  # only the type checker reads this
    import asyncio
    import socket
    import threading
    from collections.abc import Iterable, Sequence
    from typing import Any, Callable, Optional, Protocol, Union, overload

    class _HasFileno(Protocol):
        def fileno(self) -> int: ...

    FileDescriptor = Union[int, _HasFileno]
    StrOrBytesPath = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]


__all__ = [
    "LISTEN_FDS_START",
    "Watchdog",
    "__version__",
    "booted",
    "fd_store",
    "fd_store_remove",
    "is_fifo",
    "is_mq",
    "is_socket",
    "is_socket_inet",
    "is_socket_sockaddr",
    "is_socket_unix",
    "is_special",
    "listen_fds",
    "listen_fds_with_names",
    "listen_sockets",
    "listen_sockets_with_names",
    "notify",
    "notify_barrier",
    "notify_buserror",
    "notify_errno",
    "notify_extend_timeout",
    "notify_mainpid",
    "notify_ready",
    "notify_reloading",
    "notify_status",
    "notify_stopping",
    "notify_watchdog",
    "watchdog_enabled",
]

LISTEN_FDS_START: int = _daemon.LISTEN_FDS_START

_EBADF = 9


def booted() -> bool:
    """True when this system was booted with systemd as PID 1 (``sd_booted``)."""
    return _daemon.booted()


# ---------------------------------------------------------------------------
# validating what is sent

_NAME_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME_REST = _NAME_FIRST | frozenset("0123456789")

# Fields systemd acts on whose value it parses; a value it would not accept
# is rejected here (systemd itself ignores it without a word).
_FIXED = {
    "READY": ("1",),
    "RELOADING": ("1",),
    "STOPPING": ("1",),
    "FDSTORE": ("1",),
    "FDSTOREREMOVE": ("1",),
    "FDPOLL": ("0",),
    "WATCHDOG": ("1", "trigger"),
    "NOTIFYACCESS": ("none", "main", "exec", "all"),
}
_UNSIGNED = frozenset(("WATCHDOG_USEC", "EXTEND_TIMEOUT_USEC", "MONOTONIC_USEC", "EXIT_STATUS"))
_ERRNO_MAX = 4095


def _valid_fdname(name: str) -> bool:
    # systemd: 1..255 printable ASCII characters, no ':'
    return 0 < len(name) <= 255 and all(" " <= c <= "~" and c != ":" for c in name)


def _check_line(line: str) -> tuple[str, str]:
    name, eq, value = line.partition("=")
    if not eq or not name:
        raise ValueError(f"invalid notification {line!r}: expected NAME=value, e.g. 'READY=1'")
    if name[0] not in _NAME_FIRST or not all(c in _NAME_REST for c in name):
        upper = f"{name.upper()}={value}"
        hint = f"; did you mean {upper!r}?" if name.upper() != name else ""
        raise ValueError(
            f"invalid notification {line!r}: a name is upper case letters, digits and _{hint}"
        )
    fixed = _FIXED.get(name)
    if fixed is not None:
        if value not in fixed:
            allowed = " or ".join(repr(v) for v in fixed)
            raise ValueError(f"invalid notification {line!r}: {name} takes {allowed}")
    elif name in _UNSIGNED or name == "MAINPID" or name == "ERRNO":
        if not (value.isascii() and value.isdigit()):
            raise ValueError(f"invalid notification {line!r}: {name} takes a decimal integer")
        if name == "MAINPID" and int(value) <= 0:
            raise ValueError(f"invalid notification {line!r}: MAINPID must be > 0")
        if name == "ERRNO" and int(value) > _ERRNO_MAX:
            raise ValueError(f"invalid notification {line!r}: ERRNO is an errno (0..4095)")
    elif name == "FDNAME":
        if not _valid_fdname(value):
            raise ValueError(
                f"invalid notification {line!r}: FDNAME is 1..255 printable ASCII characters, no ':'"
            )
    elif name == "BARRIER":
        raise ValueError("BARRIER=1 is sent by notify_barrier(), not notify()")
    return name, value


# States already validated (WATCHDOG=1 every few seconds, READY=1...): skip the checks.
_VALIDATED: dict[str, bytes] = {}
_VALIDATED_MAX = 64


def _encode_state(state: str | bytes, n_fds: int) -> bytes:
    """Validate a newline-separated state and return it as sent (UTF-8)."""
    if not n_fds and type(state) is str:
        data = _VALIDATED.get(state)
        if data is not None:
            return data
        data = _encode_state_checked(state, 0)
        if len(_VALIDATED) >= _VALIDATED_MAX:
            _VALIDATED.clear()
        _VALIDATED[state] = data
        return data
    return _encode_state_checked(state, n_fds)


def _encode_state_checked(state: str | bytes, n_fds: int) -> bytes:
    if isinstance(state, bytes):
        try:
            text = state.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"notification state is not UTF-8: {e}") from None
    elif isinstance(state, str):
        text = state
    else:
        raise TypeError(f"notification state must be str or bytes, not {type(state).__name__}")
    if "\0" in text:
        raise ValueError("embedded null character in notification state")
    names = set()
    for line in text.split("\n"):
        if line:
            names.add(_check_line(line)[0])
    if not names:
        raise ValueError("empty notification: nothing to send (e.g. 'READY=1')")
    if n_fds and "FDSTORE" not in names:
        raise ValueError("fds are only kept by systemd with FDSTORE=1 (see fd_store())")
    if "FDSTOREREMOVE" in names and "FDNAME" not in names:
        raise ValueError("FDSTOREREMOVE=1 needs FDNAME= to say which fds to remove")
    return text.encode("utf-8")


def _fd(obj: FileDescriptor) -> int:
    """An fd number from an int or an object with ``fileno()``."""
    if isinstance(obj, int):
        fd = int(obj)
    elif hasattr(obj, "fileno"):
        fd = obj.fileno()
        if not isinstance(fd, int):
            raise TypeError(f"{type(obj).__name__}.fileno() returned {type(fd).__name__}, not int")
    elif hasattr(obj, "__index__"):
        fd = obj.__index__()
    else:
        raise TypeError(f"expected a file descriptor (int or fileno()), got {type(obj).__name__}")
    if fd < 0:
        raise ValueError(f"invalid file descriptor {fd}")
    return fd


def _open_fds(fds: Iterable[FileDescriptor]) -> list[int]:
    if isinstance(fds, (str, bytes)):
        raise TypeError("fds must be a sequence of file descriptors, not a string")
    out = [_fd(f) for f in fds]
    for fd in out:
        try:
            os.fstat(fd)
        except OSError as e:
            raise OSError(
                e.errno, f"{e.strerror}: fd {fd} is not open, it cannot be passed to systemd"
            ) from None
    return out


def _socket_ctx() -> str:
    return f"NOTIFY_SOCKET={os.environ.get('NOTIFY_SOCKET', '')}"


def _with_socket_ctx(e: OSError) -> OSError:
    # name the socket in the error (built only when there is one: sending stays cheap)
    if e.errno is None or e.filename is not None:
        return e
    return type(e)(e.errno, e.strerror, _socket_ctx())


def _send(
    state: str | bytes,
    unset_environment: bool = False,
    pid: int = 0,
    fds: Optional[Iterable[FileDescriptor]] = None,
) -> bool:
    if isinstance(pid, bool) or not isinstance(pid, int):
        raise TypeError(f"pid must be an int, not {type(pid).__name__}")
    if pid < 0:
        raise ValueError(f"pid must be >= 0 (0: this process), got {pid}")
    fd_list = None if fds is None else _open_fds(fds)
    data = _encode_state(state, len(fd_list) if fd_list else 0)
    try:
        if fd_list is not None:
            return _daemon.pid_notify_with_fds(pid, unset_environment, data, fd_list)
        if pid:
            return _daemon.pid_notify(pid, unset_environment, data)
        return _daemon.notify(unset_environment, data)
    except OSError as e:
        raise _with_socket_ctx(e) from None
    finally:
        if unset_environment:
            os.environ.pop("NOTIFY_SOCKET", None)


def _fields(*pairs: tuple[str, object]) -> str:
    lines = []
    for name, value in pairs:
        if value is None:
            continue
        text = _value_text(value)
        if "\n" in text:
            raise ValueError(f"{name}= must be a single line, got {text!r}")
        lines.append(f"{name}={text}")
    return "\n".join(lines)


def _value_text(value: object) -> str:
    if value is True:
        return "1"
    if value is False:
        return "0"
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


# ---------------------------------------------------------------------------
# notify: the python-systemd form and the older pystemd keyword form

_NOTIFY_OPTIONS = frozenset(("status", "unset_environment", "pid", "fds"))


@overload
def notify(
    status: str | bytes,
    unset_environment: bool = False,
    pid: int = 0,
    fds: Optional[Sequence[FileDescriptor]] = None,
) -> bool: ...


@overload
def notify(
    unset_environment: bool,
    /,
    *states: str,
    pid: int = 0,
    fds: Optional[Sequence[FileDescriptor]] = None,
    **fields: object,
) -> bool: ...


def notify(*args: Any, **kwargs: Any) -> bool:
    """Send a notification to the service manager (``sd_pid_notify_with_fds``).

    Two call forms:

    * python-systemd: ``notify("READY=1\\nSTATUS=up", unset_environment=False,
      pid=0, fds=None)``: ``status`` is the whole newline-separated state.
    * older pystemd: ``notify(False, ready=1, status="up")`` or
      ``notify(False, "READY=1")``: the first argument is
      ``unset_environment``, then state lines and/or fields as keywords
      (upper-cased; ``True`` is sent as ``1``). ``pid=`` and ``fds=`` keep
      their meaning.

    Returns True when sent, False when ``$NOTIFY_SOCKET`` is not set.
    Raises ``ValueError`` for a malformed state, ``OSError`` (naming the fd)
    for a closed fd and the ``OSError`` subclass of the send error otherwise.
    ``unset_environment=True`` removes ``NOTIFY_SOCKET`` from the C
    environment and from ``os.environ``.
    """
    if (args and isinstance(args[0], (str, bytes))) or (
        not args and "status" in kwargs and _NOTIFY_OPTIONS.issuperset(kwargs)
    ):
        return _notify_python_systemd(*args, **kwargs)
    return _notify_keywords(*args, **kwargs)


def _notify_python_systemd(*args: Any, **kwargs: Any) -> bool:
    if len(args) > 4:
        raise TypeError(f"notify() takes at most 4 positional arguments ({len(args)} given)")
    for k in kwargs:
        if k not in _NOTIFY_OPTIONS:
            raise TypeError(
                f"notify() got an unexpected keyword argument {k!r} (fields as keywords "
                f"go with the other form: notify(False, {k}=...))"
            )
    bound = dict(zip(("status", "unset_environment", "pid", "fds"), args))
    for k, v in kwargs.items():
        if k in bound:
            raise TypeError(f"notify() got multiple values for argument {k!r}")
        bound[k] = v
    return _send(
        bound["status"],
        bool(bound.get("unset_environment", False)),
        bound.get("pid", 0),
        bound.get("fds"),
    )


def _notify_keywords(*args: Any, **kwargs: Any) -> bool:
    unset = kwargs.pop("unset_environment", False)
    if args:
        if "unset_environment" in kwargs:
            raise TypeError("notify() got unset_environment twice")
        unset, states = args[0], args[1:]
    else:
        states = ()
    if not isinstance(unset, int):
        raise TypeError(
            f"notify(): the first argument is the state (str) or unset_environment (bool), "
            f"not {type(unset).__name__}"
        )
    pid = kwargs.pop("pid", 0)
    fds = kwargs.pop("fds", None)
    lines = []
    for s in states:
        if not isinstance(s, (str, bytes)):
            raise TypeError(f"notify(): a state line must be str, not {type(s).__name__}")
        lines.append(s.decode("utf-8") if isinstance(s, bytes) else s)
    if kwargs:
        lines.append(_fields(*((k.upper(), v) for k, v in kwargs.items())))
    return _send("\n".join(lines), bool(unset), pid, fds)


# ---------------------------------------------------------------------------
# helpers, one per well-known field


def notify_ready(status: Optional[str] = None) -> bool:
    """``READY=1`` (startup or reload finished), with an optional ``STATUS=``."""
    return _send(_fields(("READY", "1"), ("STATUS", status)))


def notify_reloading(status: Optional[str] = None) -> bool:
    """``RELOADING=1`` with ``MONOTONIC_USEC=`` now (what ``Type=notify-reload`` requires).

    Send :func:`notify_ready` when the reload is done.
    """
    import time

    now_us = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return _send(_fields(("RELOADING", "1"), ("MONOTONIC_USEC", now_us), ("STATUS", status)))


def notify_stopping(status: Optional[str] = None) -> bool:
    """``STOPPING=1``: the service is beginning its shutdown."""
    return _send(_fields(("STOPPING", "1"), ("STATUS", status)))


def notify_status(status: str) -> bool:
    """``STATUS=...``: a single line shown by ``systemctl status`` (``StatusText``)."""
    if not isinstance(status, str):
        raise TypeError(f"status must be str, not {type(status).__name__}")
    return _send(_fields(("STATUS", status)))


def notify_errno(errno: int, status: Optional[str] = None) -> bool:
    """``ERRNO=...``: why the service failed, as an errno (shown as ``StatusErrno``)."""
    if isinstance(errno, bool) or not isinstance(errno, int):
        raise TypeError(f"errno must be an int, not {type(errno).__name__}")
    return _send(_fields(("ERRNO", errno), ("STATUS", status)))


def notify_buserror(name: str, status: Optional[str] = None) -> bool:
    """``BUSERROR=...``: why the service failed, as a D-Bus error name."""
    return _send(_fields(("BUSERROR", name), ("STATUS", status)))


def notify_mainpid(pid: int) -> bool:
    """``MAINPID=...``: the service's main process, when it is not the one systemd started."""
    if isinstance(pid, bool) or not isinstance(pid, int):
        raise TypeError(f"pid must be an int, not {type(pid).__name__}")
    return _send(_fields(("MAINPID", pid)))


def notify_extend_timeout(seconds: float) -> bool:
    """``EXTEND_TIMEOUT_USEC=...``: ask for ``seconds`` more before the current timeout fires."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"seconds must be a number, not {type(seconds).__name__}")
    if not seconds >= 0:
        raise ValueError(f"seconds must be >= 0, got {seconds!r}")
    return _send(_fields(("EXTEND_TIMEOUT_USEC", round(seconds * 1_000_000))))


def notify_watchdog(trigger: bool = False) -> bool:
    """``WATCHDOG=1`` (a keep-alive ping), or ``WATCHDOG=trigger`` (fire the watchdog now)."""
    return _send("WATCHDOG=trigger" if trigger else "WATCHDOG=1")


def notify_barrier(timeout: Optional[float] = 5.0, *, unset_environment: bool = False) -> bool:
    """Wait until the manager has processed every notification sent before (``sd_notify_barrier``).

    ``timeout`` in seconds (``None``: forever); the wait releases the GIL.
    Returns False when ``$NOTIFY_SOCKET`` is not set; raises ``TimeoutError``
    when the manager does not answer in time.
    """
    if timeout is None:
        usec = (1 << 64) - 1
    else:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError(f"timeout must be a number or None, not {type(timeout).__name__}")
        if not timeout >= 0:
            raise ValueError(f"timeout must be >= 0, got {timeout!r}")
        usec = min(round(timeout * 1_000_000), (1 << 64) - 2)
    try:
        return _daemon.notify_barrier(unset_environment, usec, _socket_ctx())
    finally:
        if unset_environment:
            os.environ.pop("NOTIFY_SOCKET", None)


# ---------------------------------------------------------------------------
# the file descriptor store


def fd_store(
    fds: Iterable[FileDescriptor], name: Optional[str] = None, *, poll: bool = True
) -> bool:
    """Hand ``fds`` to systemd to keep across restarts (``FDSTORE=1``).

    They come back, named ``name`` (default ``"stored"``), in
    :func:`listen_fds_with_names` of the next process of this service. Needs
    ``FileDescriptorStoreMax=`` > 0 on the service, or systemd drops them (it
    does not say so). ``poll=False`` sends ``FDPOLL=0``: systemd then does
    not drop an fd when it reports EPOLLHUP/EPOLLERR.
    """
    fd_list = _open_fds(fds)
    if not fd_list:
        raise ValueError("fd_store() needs at least one file descriptor")
    if name is not None and not (isinstance(name, str) and _valid_fdname(name)):
        raise ValueError(f"invalid fd name {name!r}: 1..255 printable ASCII characters, no ':'")
    state = _fields(("FDSTORE", "1"), ("FDNAME", name), ("FDPOLL", None if poll else "0"))
    return _send(state, fds=fd_list)


def fd_store_remove(name: str) -> bool:
    """Ask systemd to close and forget the stored fds called ``name`` (``FDSTOREREMOVE=1``)."""
    if not isinstance(name, str) or not _valid_fdname(name):
        raise ValueError(f"invalid fd name {name!r}: 1..255 printable ASCII characters, no ':'")
    return _send(_fields(("FDSTOREREMOVE", "1"), ("FDNAME", name)))


# ---------------------------------------------------------------------------
# the watchdog


def watchdog_enabled(unset_environment: bool = False) -> int:
    """The watchdog interval systemd expects pings within, in microseconds; 0 when off.

    Reads ``$WATCHDOG_USEC`` (only when ``$WATCHDOG_PID`` is unset or this
    process); ``ValueError``-like garbage there raises ``OSError(EINVAL)``.
    """
    try:
        return _daemon.watchdog_enabled(
            unset_environment, f"WATCHDOG_USEC={os.environ.get('WATCHDOG_USEC', '')}"
        )
    finally:
        if unset_environment:
            os.environ.pop("WATCHDOG_USEC", None)
            os.environ.pop("WATCHDOG_PID", None)


class Watchdog:
    """Feed systemd's watchdog: ``WATCHDOG=1`` every half interval, until stopped.

    ``interval`` (seconds) defaults to what systemd set (``WatchdogSec=``,
    see :func:`watchdog_enabled`); when the watchdog is off the helper does
    nothing (``enabled`` is False) so the same code runs outside systemd.
    ``check``, if given, is called before each ping; a falsy result skips
    the ping (a stuck service is then restarted by systemd), an exception
    stops the pinging.

    In a thread: ``with Watchdog(): ...`` or ``wd = Watchdog().start()`` ...
    ``wd.stop()``. In asyncio: ``async with Watchdog(): ...`` or
    ``task = Watchdog().start_task()`` (``await wd.aclose()`` or cancel it);
    there ``check`` may be a coroutine function.

    An exception that ended the pinging (a failed send, ``check`` raising)
    is kept in ``error`` and raised by :meth:`stop` / :meth:`aclose`.
    """

    def __init__(
        self,
        interval: Optional[float] = None,
        *,
        check: Optional[Callable[[], Any]] = None,
        unset_environment: bool = False,
    ) -> None:
        if interval is None:
            usec = watchdog_enabled(unset_environment)
            self.interval: Optional[float] = usec / 1_000_000 if usec else None
        else:
            if isinstance(interval, bool) or not isinstance(interval, (int, float)):
                raise TypeError(f"interval must be a number, not {type(interval).__name__}")
            if not interval > 0:
                raise ValueError(f"interval must be > 0 seconds, got {interval!r}")
            self.interval = float(interval)
        self.check = check
        self.pings = 0
        self.error: Optional[BaseException] = None
        self._thread: Optional[threading.Thread] = None
        self._stop_event: Optional[threading.Event] = None
        self._task: Optional[asyncio.Task[None]] = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        every = f"every {self.period:g} s" if self.period is not None else "disabled"
        return f"<Watchdog {every} {state} pings={self.pings}>"

    @property
    def enabled(self) -> bool:
        return self.interval is not None

    @property
    def period(self) -> Optional[float]:
        """Seconds between pings: half the interval (None when disabled)."""
        return None if self.interval is None else self.interval / 2

    @property
    def running(self) -> bool:
        if self._thread is not None and self._thread.is_alive():
            return True
        return self._task is not None and not self._task.done()

    def ping(self) -> bool:
        """Send one ``WATCHDOG=1`` now."""
        sent = notify_watchdog()
        if sent:
            self.pings += 1
        return sent

    # -- in a thread -----------------------------------------------------------

    def start(self) -> Watchdog:
        """Ping from a daemon thread (a no-op when the watchdog is disabled)."""
        if self.running:
            raise RuntimeError("this Watchdog is already running")
        if self.interval is None:
            return self
        import threading

        self.error = None
        stop = threading.Event()
        self._stop_event = stop
        self._thread = threading.Thread(
            target=self._thread_main, args=(stop,), name="pystemd-watchdog", daemon=True
        )
        self._thread.start()
        return self

    def _thread_main(self, stop: threading.Event) -> None:
        period = self.period
        try:
            while True:
                if self._check_sync():
                    self.ping()
                if stop.wait(period):
                    return
        except BaseException as e:
            self.error = e

    def _check_sync(self) -> bool:
        if self.check is None:
            return True
        ok = self.check()
        if hasattr(ok, "__await__"):
            close = getattr(ok, "close", None)
            if close is not None:
                close()  # no "never awaited" warning
            raise TypeError(
                "Watchdog(check=...) returned an awaitable in a thread; "
                "use it with start_task() or 'async with'"
            )
        return bool(ok)

    def stop(self, timeout: Optional[float] = None) -> None:
        """Stop pinging and wait for the thread; idempotent.

        Raises what ended the pinging early, if anything did. (An asyncio
        task is only cancelled here; ``await aclose()`` waits for it.)
        """
        thread, self._thread = self._thread, None
        if thread is not None:
            assert self._stop_event is not None
            self._stop_event.set()
            thread.join(timeout)
            if thread.is_alive():
                self._thread = thread
                raise TimeoutError(f"the watchdog thread did not stop within {timeout} s")
        if self._task is not None:
            self._task.cancel()
        self._raise_error()

    def _raise_error(self) -> None:
        err, self.error = self.error, None
        if err is not None:
            raise err

    def __enter__(self) -> Watchdog:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- in asyncio ------------------------------------------------------------

    async def run(self) -> None:
        """Ping until cancelled, in the running event loop (returns at once when disabled)."""
        import asyncio

        period = self.period
        if period is None:
            return
        while True:
            if self.check is None:
                ok = True
            else:
                ok = self.check()
                if hasattr(ok, "__await__"):
                    ok = await ok
            if ok:
                self.ping()
            await asyncio.sleep(period)

    def start_task(self) -> asyncio.Task[None]:
        """Start :meth:`run` as a task of the running loop and return it."""
        import asyncio

        if self.running:
            raise RuntimeError("this Watchdog is already running")
        self.error = None
        self._task = asyncio.get_running_loop().create_task(self.run(), name="pystemd-watchdog")
        return self._task

    async def aclose(self) -> None:
        """Cancel the task and wait for it; raises what ended it early, if anything did."""
        import asyncio

        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        await asyncio.wait([task])
        if not task.cancelled() and task.exception() is not None:
            self.error = task.exception()
        self._raise_error()

    async def __aenter__(self) -> Watchdog:
        self.start_task()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


# ---------------------------------------------------------------------------
# socket activation


def _unset_listen_env() -> None:
    for k in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(k, None)


def listen_fds(unset_environment: bool = True) -> list[int]:
    """The fds systemd passed (socket activation, the fd store): ``[3, 4, ...]``.

    ``unset_environment=True`` (the default, as in python-systemd) removes
    ``LISTEN_*`` from the environment so children do not inherit them; a
    second call then returns ``[]``. The fds get ``FD_CLOEXEC``.
    """
    try:
        n = _daemon.listen_fds(unset_environment)
    finally:
        if unset_environment:
            _unset_listen_env()
    return list(range(LISTEN_FDS_START, LISTEN_FDS_START + n))


def listen_fds_with_names(unset_environment: bool = True) -> dict[int, str]:
    """``{fd: name}`` for the passed fds. Names come from ``FileDescriptorName=``
    (a socket unit's name by default) or ``FDNAME=`` for stored fds;
    ``"unknown"`` when systemd sent none."""
    try:
        names = _daemon.listen_fds_with_names(unset_environment)
    finally:
        if unset_environment:
            _unset_listen_env()
    return {LISTEN_FDS_START + i: name for i, name in enumerate(names)}


def _wrap_sockets(unset_environment: bool) -> list[tuple[str, socket.socket]]:
    import socket

    fds = listen_fds_with_names(False)
    for fd, name in fds.items():
        if not _daemon.is_socket(fd, 0, 0, -1):
            raise ValueError(
                f"fd {fd} ({name!r}) passed by systemd is not a socket; "
                "use listen_fds_with_names() for other kinds of fds"
            )
    if unset_environment:
        listen_fds_with_names(True)
    # socket.socket(fileno=) reads the family, type and protocol from the kernel
    return [(name, socket.socket(fileno=fd)) for fd, name in fds.items()]


def listen_sockets(unset_environment: bool = True) -> list[socket.socket]:
    """The passed fds as ready ``socket.socket`` objects of their real family and type.

    Listening sockets (``Accept=no``), datagram sockets, connected sockets
    (``Accept=yes``, or connections kept in the fd store) alike. Raises
    ``ValueError`` if one of the fds is not a socket, before wrapping any and
    before touching the environment.
    """
    return [s for _, s in _wrap_sockets(unset_environment)]


def listen_sockets_with_names(unset_environment: bool = True) -> dict[str, list[socket.socket]]:
    """``{name: [socket, ...]}`` for the passed fds, in fd order (see :func:`listen_sockets`)."""
    out: dict[str, list[socket.socket]] = {}
    for name, sock in _wrap_sockets(unset_environment):
        out.setdefault(name, []).append(sock)
    return out


# ---------------------------------------------------------------------------
# what is this fd?


def _fspath(path: Optional[StrOrBytesPath]) -> Optional[bytes]:
    return None if path is None else os.fsencode(path)


def _fd_ctx(fd: int, path: Optional[StrOrBytesPath] = None) -> str:
    return f"fd {fd}" if path is None else f"fd {fd} ({os.fsdecode(path)})"


def is_fifo(fileobj: FileDescriptor, path: Optional[StrOrBytesPath] = None) -> bool:
    """True if ``fileobj`` is a FIFO (or pipe), at ``path`` if given (``sd_is_fifo``)."""
    fd = _fd(fileobj)
    return _daemon.is_fifo(fd, _fspath(path), _fd_ctx(fd, path))


def is_special(fileobj: FileDescriptor, path: Optional[StrOrBytesPath] = None) -> bool:
    """True if ``fileobj`` is a special file (a character device, /proc/kmsg...) (``sd_is_special``)."""
    fd = _fd(fileobj)
    return _daemon.is_special(fd, _fspath(path), _fd_ctx(fd, path))


def is_mq(fileobj: FileDescriptor, path: Optional[StrOrBytesPath] = None) -> bool:
    """True if ``fileobj`` is a POSIX message queue, named ``path`` if given (``sd_is_mq``)."""
    fd = _fd(fileobj)
    return _daemon.is_mq(fd, _fspath(path), _fd_ctx(fd, path))


def is_socket(fileobj: FileDescriptor, family: int = 0, type: int = 0, listening: int = -1) -> bool:
    """True if ``fileobj`` is a socket; ``family``/``type`` 0 and ``listening`` -1 match any."""
    fd = _fd(fileobj)
    return _daemon.is_socket(fd, family, type, listening, _fd_ctx(fd))


def is_socket_inet(
    fileobj: FileDescriptor, family: int = 0, type: int = 0, listening: int = -1, port: int = 0
) -> bool:
    """True if ``fileobj`` is an IPv4/IPv6 socket (``family`` narrows), bound to ``port`` if not 0."""
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"port must be 0..65535, got {port}")
    fd = _fd(fileobj)
    return _daemon.is_socket_inet(fd, family, type, listening, port, _fd_ctx(fd))


def is_socket_sockaddr(
    fileobj: FileDescriptor,
    address: str | bytes | tuple[Any, ...],
    type: int = 0,
    flowinfo: int = 0,
    listening: int = -1,
) -> bool:
    """True if ``fileobj`` is a socket bound to ``address`` (``sd_is_socket_sockaddr``).

    ``address`` is in ``ListenStream=`` syntax: ``"127.0.0.1:8080"``,
    ``"[::1]:8080"``, ``"127.0.0.1"`` (any port), ``"8080"`` (the wildcard
    address), ``"eth0:8080"``; or a ``(host, port)`` tuple. ``flowinfo`` is
    IPv6 only.
    """
    if isinstance(address, tuple):
        if len(address) < 2:
            raise ValueError(f"address tuple must be (host, port), got {address!r}")
        host, port = str(address[0]), int(address[1])
        text = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    elif isinstance(address, bytes):
        text = address.decode("ascii", "strict")
    elif isinstance(address, str):
        text = address
    else:
        raise TypeError(f"address must be str or (host, port), not {address.__class__.__name__}")
    try:
        raw = _daemon.parse_sockaddr(text.encode(), flowinfo)
    except ValueError as e:
        if str(e) == "Cannot parse address":
            raise ValueError(
                f"cannot parse socket address {text!r}: expected ListenStream= syntax "
                "such as '127.0.0.1:80', '[::1]:80', '80' or 'eth0:80'"
            ) from None
        raise
    except OSError as e:
        raise ValueError(f"cannot parse socket address {text!r}: {e.strerror}") from None
    fd = _fd(fileobj)
    return _daemon.is_socket_sockaddr(fd, type, raw, listening, _fd_ctx(fd))


def is_socket_unix(
    fileobj: FileDescriptor,
    type: int = 0,
    listening: int = -1,
    path: Optional[StrOrBytesPath] = None,
) -> bool:
    """True if ``fileobj`` is an AF_UNIX socket, bound to ``path`` if given.

    A path starting with ``@`` (or a NUL byte) names an abstract socket.
    """
    raw = _fspath(path)
    if raw is not None and raw.startswith(b"@"):
        raw = b"\0" + raw[1:]
    fd = _fd(fileobj)
    return _daemon.is_socket_unix(fd, type, listening, raw, _fd_ctx(fd, path))
