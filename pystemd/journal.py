"""Reading the systemd journal (and writing to it: :mod:`pystemd._writer`).

>>> from pystemd.journal import Reader
>>> with Reader(path="/var/log/journal") as r:      # or files=[...], namespace=..., flags=...
...     r.add_match(_SYSTEMD_UNIT="sshd.service")
...     for entry in r:                               # python-systemd's dicts, built in C
...         print(entry["__REALTIME_TIMESTAMP"], entry["MESSAGE"])

:class:`Reader` is python-systemd's ``Reader`` (same arguments, methods,
converters and exceptions; :mod:`systemd.journal` is the drop-in built on it)
plus what its users asked for:

* iteration at C speed: with the default converters, values are converted in
  C (``uuid.UUID``, ``int``, ``datetime``, ``timedelta``, :class:`Monotonic`),
  field names are interned, repeated ``FIELD=value`` items and boot ids are
  built once;
* ``raw=True``: no conversion, values are the bytes in the journal
  (``__REALTIME_TIMESTAMP`` an int of µs, ``__MONOTONIC_TIMESTAMP`` a
  ``Monotonic(µs, 16-byte boot id)``, ``__CURSOR`` a str);
* ``lazy=True``: raw entries as :class:`RawEntry` mappings, one copy of the
  entry each, values made when read (cheap when most values are not read);
* ``fields=[...]``: projection, only those fields are read (one with
  ``sd_journal_get_data``, several in one pass over the entry; ``"*"`` for
  every field, and the pseudo-fields ``__CURSOR``, ``__REALTIME_TIMESTAMP``
  and ``__MONOTONIC_TIMESTAMP`` may be named too);
* :meth:`Reader.read_batch` reads many entries per call;
* :meth:`Reader.follow` and ``async for entry in reader.follow_async()``
  tail the journal; :meth:`Reader.seek_last` and
  :meth:`Reader.seek_after_cursor` position a reader to start tailing
  (from now, from the last *n* entries, or after a saved cursor);
* reads release the GIL when they may wait for the disk and keep it while the
  journal is in memory (``gil_hold_us``; docs/journal.md says why);
* every call locks the reader, so threads may share one (they wait for each
  other); ``close()`` from another thread ends a :meth:`follow`.

See docs/journal.md.
"""

from __future__ import annotations

import asyncio
import datetime as _datetime
import os as _os
import time as _time
import uuid as _uuid
import warnings as _warnings
import weakref as _weakref
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from syslog import (
    LOG_ALERT,
    LOG_CRIT,
    LOG_DEBUG,
    LOG_EMERG,
    LOG_ERR,
    LOG_INFO,
    LOG_NOTICE,
    LOG_WARNING,
)
from typing import Any, Callable, Optional, Union

from pystemd import _journal
from pystemd._journal import (
    ALL_NAMESPACES,
    APPEND,
    CURRENT_USER,
    INCLUDE_DEFAULT_NAMESPACE,
    INVALIDATE,
    LOCAL_ONLY,
    NOP,
    OS_ROOT,
    RUNTIME_ONLY,
    SYSTEM,
    SYSTEM_ONLY,
    ClosedJournalError,
    Monotonic,
    RawEntry,
    _get_catalog,
    _Reader,
)

# the writing half lives in its own module
from pystemd._writer import (  # noqa: F401  (python-systemd's private helpers, re-exported)
    _IDENT_CHARACTER,
    JournalHandler,
    _make_line,
    _valid_field_name,
    log,
    reset_socket,
    send,
    sendv,
    stream,
    stream_fd,
)

__all__ = [
    "ALL_NAMESPACES",
    "APPEND",
    "CURRENT_USER",
    "DEFAULT_CONVERTERS",
    "INCLUDE_DEFAULT_NAMESPACE",
    "INVALIDATE",
    "LOCAL_ONLY",
    "LOG_ALERT",
    "LOG_CRIT",
    "LOG_DEBUG",
    "LOG_EMERG",
    "LOG_ERR",
    "LOG_INFO",
    "LOG_NOTICE",
    "LOG_WARNING",
    "NOP",
    "OS_ROOT",
    "RUNTIME_ONLY",
    "SYSTEM",
    "SYSTEM_ONLY",
    "ClosedJournalError",
    "JournalFileWarning",
    "JournalHandler",
    "Monotonic",
    "RawEntry",
    "Reader",
    "get_catalog",
    "log",
    "reset_socket",
    "send",
    "sendv",
    "stream",
    "stream_fd",
]

Entry = dict[str, Any]
PathArg = Union[str, bytes, "_os.PathLike[str]", "_os.PathLike[bytes]"]

# python-systemd evaluates the local time zone once, at import: a fixed offset
# (datetime.timezone), not a DST-aware zone. Kept: see docs/python-systemd.md.
_LOCAL_TIMEZONE = _datetime.datetime.now().astimezone().tzinfo

_EPOCH = _datetime.datetime(1970, 1, 1, tzinfo=_datetime.timezone.utc)
_US = _datetime.timedelta(microseconds=1)


# -- converters: python-systemd's, with one fix (out-of-range times stay bytes) ----------


def _convert_monotonic(m: Any) -> Monotonic:
    return Monotonic((_datetime.timedelta(microseconds=m[0]), _uuid.UUID(bytes=m[1])))


def _convert_source_monotonic(s: bytes) -> _datetime.timedelta:
    try:
        return _datetime.timedelta(microseconds=int(s))
    except OverflowError as e:  # python-systemd lets this escape get_next()
        raise ValueError(f"monotonic timestamp out of range: {s!r}") from e


def _convert_realtime(t: int) -> _datetime.datetime:
    try:
        return _datetime.datetime.fromtimestamp(t / 1e6, _LOCAL_TIMEZONE)
    except (OverflowError, OSError) as e:
        raise ValueError(f"timestamp out of range: {t!r}") from e


def _convert_timestamp(s: bytes) -> _datetime.datetime:
    try:
        return _datetime.datetime.fromtimestamp(int(s) / 1e6, _LOCAL_TIMEZONE)
    except (OverflowError, OSError) as e:
        raise ValueError(f"timestamp out of range: {s!r}") from e


def _convert_trivial(x: Any) -> Any:
    return x


def _convert_uuid(s: bytes) -> _uuid.UUID:
    return _uuid.UUID(s.decode())


DEFAULT_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "MESSAGE_ID": _convert_uuid,
    "_MACHINE_ID": _convert_uuid,
    "_BOOT_ID": _convert_uuid,
    "PRIORITY": int,
    "LEADER": int,
    "SESSION_ID": int,
    "USERSPACE_USEC": int,
    "INITRD_USEC": int,
    "KERNEL_USEC": int,
    "_UID": int,
    "_GID": int,
    "_PID": int,
    "SYSLOG_FACILITY": int,
    "SYSLOG_PID": int,
    "_AUDIT_SESSION": int,
    "_AUDIT_LOGINUID": int,
    "_SYSTEMD_SESSION": int,
    "_SYSTEMD_OWNER_UID": int,
    "CODE_LINE": int,
    "ERRNO": int,
    "EXIT_STATUS": int,
    "_SOURCE_REALTIME_TIMESTAMP": _convert_timestamp,
    "__REALTIME_TIMESTAMP": _convert_realtime,
    "_SOURCE_MONOTONIC_TIMESTAMP": _convert_source_monotonic,
    "__MONOTONIC_TIMESTAMP": _convert_monotonic,
    "__CURSOR": _convert_trivial,
    "COREDUMP": bytes,
    "COREDUMP_PID": int,
    "COREDUMP_UID": int,
    "COREDUMP_GID": int,
    "COREDUMP_SESSION": int,
    "COREDUMP_SIGNAL": int,
    "COREDUMP_TIMESTAMP": _convert_timestamp,
}

_journal._setup(
    {
        "decode": bytes.decode,
        "int": int,
        "uuid": _convert_uuid,
        "timestamp": _convert_timestamp,
        "source_monotonic": _convert_source_monotonic,
        "bytes": bytes,
        "trivial": _convert_trivial,
        "realtime": _convert_realtime,
        "monotonic": _convert_monotonic,
    },
    DEFAULT_CONVERTERS,
    _uuid.UUID,
    _LOCAL_TIMEZONE,
)

_PSEUDO_FIELDS = ("__REALTIME_TIMESTAMP", "__MONOTONIC_TIMESTAMP", "__CURSOR")

# Methods the C fast path stands in for: a subclass overriding any of them gets
# python-systemd's step-by-step algorithm, calling its overrides.
_FAST_PATH_METHODS = (
    "get_next",
    "_next",
    "_get_all",
    "_get_realtime",
    "_get_monotonic",
    "_get_cursor",
    "_convert_entry",
    "_convert_field",
)


def _match_line(field: str, value: Any) -> Union[str, bytes]:
    if isinstance(value, bytes):
        return field.encode("utf-8") + b"=" + value
    if isinstance(value, str):
        return field + "=" + value
    return field + "=" + str(value)


def _usec(td: _datetime.timedelta) -> int:
    return td // _US


def _realtime_usec(value: Any) -> int:
    if isinstance(value, _datetime.datetime):
        # exact to the µs (python-systemd goes through a float and may land 1 µs early)
        return _usec(value.astimezone(_datetime.timezone.utc) - _EPOCH)
    if isinstance(value, bool):
        raise TypeError("realtime must be a datetime, an int (µs) or a float (seconds)")
    if isinstance(value, int):  # µs, as python-systemd (a float is seconds)
        return value
    return int(value * 1e6)


class _Converters(dict[str, Any]):
    """The Reader's converters: a dict that tells its reader when it changes."""

    __slots__ = ("__weakref__", "_owner")

    def __init__(self, owner: Reader, data: Mapping[str, Any]) -> None:
        super().__init__(data)
        self._owner = _weakref.ref(owner)

    def _changed(self) -> None:
        owner = self._owner()
        if owner is not None:
            owner._set_plan(self)

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        self._changed()

    def __delitem__(self, key: Any) -> None:
        super().__delitem__(key)
        self._changed()

    def __ior__(self, other: Any) -> _Converters:  # type: ignore[misc,override]
        super().update(other)
        self._changed()
        return self

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        self._changed()

    def pop(self, *args: Any) -> Any:
        try:
            return super().pop(*args)
        finally:
            self._changed()

    def popitem(self) -> Any:
        try:
            return super().popitem()
        finally:
            self._changed()

    def clear(self) -> None:
        super().clear()
        self._changed()

    def setdefault(self, key: Any, default: Any = None) -> Any:
        try:
            return super().setdefault(key, default)
        finally:
            self._changed()


class Reader(_Reader):
    """Read journal entries: python-systemd's ``Reader``, faster, plus raw/projected reads and tailing.

    Which journal (as python-systemd): ``path`` a directory (str/bytes/PathLike,
    or an open directory fd), ``files`` a list of journal files (paths, or open
    fds), ``namespace`` a journal namespace, otherwise the local journal.
    ``flags`` (``LOCAL_ONLY``, ``RUNTIME_ONLY``, ``SYSTEM``, ``CURRENT_USER``,
    ``OS_ROOT``, ``ALL_NAMESPACES``...) default to ``LOCAL_ONLY`` when neither
    ``path`` nor ``files`` is given, else 0.

    ``converters`` update :data:`DEFAULT_CONVERTERS` (field name -> function
    of the raw value; a ``ValueError`` keeps the raw value). ``raw=True``
    skips conversion; ``lazy=True`` (raw) yields :class:`RawEntry` mappings
    whose values are made when read; ``fields`` limits what is read (see the
    module doc).

    Entries are dicts: a field that occurs more than once is a list of its
    values. Iteration ends at the end of the journal (use :meth:`follow` to
    wait for more).
    """

    _strict_args = True  # pystemd's argument checks (the drop-in keeps python-systemd's)

    def __init__(
        self,
        flags: Optional[int] = None,
        path: Union[PathArg, int, None] = None,
        files: Optional[Sequence[Union[PathArg, int]]] = None,
        converters: Optional[Mapping[str, Callable[[Any], Any]]] = None,
        namespace: Optional[PathArg] = None,
        *,
        raw: bool = False,
        fields: Optional[Iterable[str]] = None,
        lazy: bool = False,
    ) -> None:
        if flags is None:
            flags = LOCAL_ONLY if path is None and files is None else 0
        if self._strict_args:
            if namespace is not None and (path is not None or files is not None):
                raise ValueError("namespace cannot be combined with path or files")
            if isinstance(files, (str, bytes, _os.PathLike)):
                raise TypeError(
                    f"files must be a list of journal files or fds, got {type(files).__name__}"
                )
        super().__init__(flags, path, files, namespace)
        self.unreadable_files: list[tuple[str, OSError]] = []
        if path is not None and not isinstance(path, int):
            self._report_skipped(path)
        conv = DEFAULT_CONVERTERS.copy()
        if converters is not None:
            conv.update(converters)
        self.converters = conv
        cls = type(self)
        self._faithful = any(
            getattr(cls, name) is not getattr(Reader, name) for name in _FAST_PATH_METHODS
        )
        if lazy:
            if self._faithful:
                raise ValueError(
                    f"lazy=True needs the C read path, which {cls.__name__} overrides "
                    f"({', '.join(n for n in _FAST_PATH_METHODS if getattr(cls, n) is not getattr(Reader, n))})"
                )
            raw = True
        if raw or fields is not None:
            self._configure(
                raw, None if fields is None else tuple(fields), _journal.META_ALL, bool(lazy)
            )

    def _report_skipped(self, path: PathArg) -> None:
        # sd_journal_open_directory() skips a file it cannot read, silently (journalctl
        # learns of it through libsystemd internals). The files it opened add up to
        # get_usage(); when the directory holds more, open the candidates one by one
        # to name the unreadable ones.
        cands = _journal_files_in(_os.fsdecode(path))
        total = 0
        for f in cands:
            try:
                total += _os.stat(f).st_blocks * 512
            except OSError:
                pass
        if total <= self.get_usage():
            return
        for f in cands:
            try:
                _Reader(0, None, [f], None).close()
            except OSError as e:
                self.unreadable_files.append((f, e))
        if self.unreadable_files:
            what = ", ".join(f"{f} ({e.strerror})" for f, e in self.unreadable_files)
            _warnings.warn(
                JournalFileWarning(
                    f"{len(self.unreadable_files)} journal file(s) under {_os.fsdecode(path)} "
                    f"cannot be read and are skipped: {what}"
                ),
                stacklevel=3,
            )

    # -- configuration ------------------------------------------------------------

    @property
    def converters(self) -> dict[str, Callable[[Any], Any]]:
        """Field name -> converter. Changes to this dict take effect at the next read."""
        return self.__converters

    @converters.setter
    def converters(self, value: Mapping[str, Callable[[Any], Any]]) -> None:
        conv = _Converters(self, value)
        self.__converters = conv
        self._set_plan(conv)

    @property
    def raw(self) -> bool:
        """True: entries are not converted (bytes, int µs, Monotonic(int, bytes), str cursor)."""
        return bool(self._raw)

    @raw.setter
    def raw(self, value: bool) -> None:
        self._configure(bool(value), self._fields, _journal.META_ALL, self._lazy and bool(value))

    @property
    def lazy(self) -> bool:
        """True: entries are :class:`RawEntry` mappings (raw values, made when read)."""
        return bool(self._lazy)

    @lazy.setter
    def lazy(self, value: bool) -> None:
        if value and self._faithful:
            raise ValueError(
                f"lazy=True needs the C read path, which {type(self).__name__} overrides"
            )
        self._configure(bool(value) or self.raw, self._fields, _journal.META_ALL, bool(value))

    @property
    def fields(self) -> Optional[tuple[str, ...]]:
        """The projected fields (None: every field and the three pseudo-fields)."""
        f: Optional[tuple[str, ...]] = self._fields
        return f

    @fields.setter
    def fields(self, value: Optional[Iterable[str]]) -> None:
        self._configure(
            self.raw, None if value is None else tuple(value), _journal.META_ALL, self._lazy
        )

    # -- python-systemd's methods ---------------------------------------------------

    def _convert_field(self, key: str, value: Any) -> Any:
        """Convert one value with the converter for ``key`` (raw value kept on ValueError)."""
        convert = self.converters.get(key, bytes.decode)
        try:
            return convert(value)
        except ValueError:
            # Leave in default bytes
            return value

    def _convert_entry(self, entry: Mapping[str, Any]) -> Entry:
        """A new dict with every value converted (lists element by element)."""
        result = {}
        for key, value in entry.items():
            if isinstance(value, list):
                result[key] = [self._convert_field(key, val) for val in value]
            else:
                result[key] = self._convert_field(key, value)
        return result

    def _get_next_faithful(self, skip: int = 1) -> Entry:
        # python-systemd's algorithm, through the (overridden) methods.
        if self._next(skip):
            entry: dict[str, Any] = self._get_all()
            if entry:
                entry["__REALTIME_TIMESTAMP"] = self._get_realtime()
                entry["__MONOTONIC_TIMESTAMP"] = self._get_monotonic()
                entry["__CURSOR"] = self._get_cursor()
                if self._fields is not None:
                    every = "*" in self._fields
                    entry = {
                        k: v
                        for k, v in entry.items()
                        if k in self._fields or (every and not k.startswith("__"))
                    }
                if self._raw:
                    return entry
                return self._convert_entry(entry)
        return dict()

    def add_match(self, *args: Union[str, bytes], **kwargs: Any) -> None:
        """Add matches: ``"FIELD=value"`` strings/bytes, or ``FIELD=value`` keywords.

        The same field twice means OR, different fields mean AND; see also
        :meth:`add_disjunction` and :meth:`add_conjunction`.
        """
        items: list[Union[str, bytes]] = list(args)
        items.extend(_match_line(key, val) for key, val in kwargs.items())
        for item in items:
            super().add_match(item)

    def query_unique(self, field: str) -> set[Any]:  # type: ignore[override]
        """Every value ``field`` has in the journal files, converted (matches are ignored)."""
        return {self._convert_field(field, value) for value in super().query_unique(field)}

    def wait(self, timeout: Optional[float] = None) -> int:
        """Wait for a change (seconds; None forever): NOP, APPEND or INVALIDATE."""
        us = -1 if timeout is None else max(int(timeout * 1e6), 0)
        return super().wait(us)

    def seek_realtime(self, realtime: Union[_datetime.datetime, int, float]) -> None:
        """Seek to a time: a datetime (naive means local), an int of µs, or a float of seconds."""
        us = _realtime_usec(realtime)
        if us < 0:
            raise ValueError(f"cannot seek before the epoch: {realtime!r}")
        super().seek_realtime(us)

    def seek_monotonic(
        self,
        monotonic: Union[_datetime.timedelta, int, float],
        bootid: Union[_uuid.UUID, str, bytes, None] = None,
    ) -> None:
        """Seek to a time since boot (timedelta or seconds) of ``bootid`` (default: this boot)."""
        if isinstance(monotonic, _datetime.timedelta):
            us = _usec(monotonic)
        else:
            us = int(monotonic * 1e6)
        if us < 0:
            raise ValueError(f"monotonic time must not be negative: {monotonic!r}")
        boot: Union[str, bytes, None] = None
        if isinstance(bootid, _uuid.UUID):
            boot = bootid.hex
        elif bootid is not None:
            boot = bootid
        super().seek_monotonic(us, boot)

    def get_start(self) -> _datetime.datetime:
        """Time of the oldest entry in the journal files (matches are ignored)."""
        return _convert_realtime(self._get_start())

    def get_end(self) -> _datetime.datetime:
        """Time of the newest entry in the journal files (matches are ignored)."""
        return _convert_realtime(self._get_end())

    def log_level(self, level: int) -> None:
        """Only entries of priority ``level`` or more important (0 <= level <= 7)."""
        if 0 <= level <= 7:
            for i in range(level + 1):
                self.add_match(PRIORITY=f"{i:d}")
        else:
            raise ValueError("Log level must be 0 <= level <= 7")

    def messageid_match(self, messageid: Union[_uuid.UUID, str]) -> None:
        """Only entries with this MESSAGE_ID (a UUID or 32 hex digits)."""
        if isinstance(messageid, _uuid.UUID):
            messageid = messageid.hex
        self.add_match(MESSAGE_ID=messageid)

    def this_boot(self, bootid: Union[_uuid.UUID, str, None] = None) -> None:
        """Only entries of boot ``bootid`` (default: the current boot)."""
        if bootid is None:
            bootid = _current_boot_hex()
        else:
            bootid = getattr(bootid, "hex", bootid)
        self.add_match(_BOOT_ID=bootid)

    def this_machine(self, machineid: Union[_uuid.UUID, str, None] = None) -> None:
        """Only entries of machine ``machineid`` (default: this machine)."""
        if machineid is None:
            machineid = _current_machine_hex()
        else:
            machineid = getattr(machineid, "hex", machineid)
        self.add_match(_MACHINE_ID=machineid)

    # -- pystemd's additions ----------------------------------------------------------

    def read_batch(self, n: int = 1000) -> list[Entry]:
        """Up to ``n`` entries from the current position (``[]`` at the end).

        One call, one lock, 32 entries per pass through libsystemd: the
        fastest way through a journal. The reader is left on the last entry
        returned.
        """
        if self._faithful:
            out = []
            for _ in range(n):
                e = self.get_next()
                if not e:
                    break
                out.append(e)
            return out
        batch: list[Entry] = self._fetch_batch(n)
        return batch

    def iter_batches(self, n: int = 1000) -> Iterator[list[Entry]]:
        """Batches of up to ``n`` entries until the end of the journal."""
        while True:
            batch = self.read_batch(n)
            if not batch:
                return
            yield batch

    def seek_last(self, n: int = 0) -> None:
        """Position the reader so that the next read returns the last ``n`` entries.

        ``n=0``: only entries written from now on. This is the right way to
        start tailing: ``seek_tail()`` followed by a read returns the last
        entry again on systemd < 254 (and nothing on later versions); this
        steps back onto the last entry so that both behave the same.
        """
        if n < 0:
            raise ValueError("n must not be negative")
        self.seek_tail()
        moved = self._skip(-(n + 1))
        if moved < n + 1:
            # fewer entries than asked (or none): start at the first one
            self.seek_head()

    def seek_after_cursor(self, cursor: str) -> bool:
        """Position the reader just after the entry ``cursor`` names (to resume reading).

        Returns True if that entry is still in the journal. If it is gone
        (vacuumed), reading resumes at the first entry after where it was,
        and False is returned.
        """
        self.seek_cursor(cursor)
        if not self._next(1):
            return False
        if self.test_cursor(cursor):
            return True
        # landed on a later entry: step back so that the next read returns it
        if not self._previous(1):
            self.seek_head()
        return False

    def follow(
        self, idle_timeout: Optional[float] = None, *, poll_interval: Optional[float] = 0.003
    ) -> Iterator[Entry]:
        """Yield entries from the current position on, waiting for new ones.

        Stops after ``idle_timeout`` seconds without a new entry (None: never),
        or when the reader is closed (from another thread too). Start with
        :meth:`seek_last` to tail, :meth:`seek_after_cursor` to resume, or
        :meth:`seek_head` to read everything first. Rotated, vacuumed and new
        journal files are followed.

        Latency: journald tells readers (inotify) of new entries at most every
        250 ms. While entries are flowing, this also looks for new ones every
        ``poll_interval`` seconds (default 3 ms), backing off to 250 ms once
        nothing has come for a second, so a busy journal is tailed within a
        few ms and an idle one costs four wake-ups a second.
        ``poll_interval=None``: inotify only.
        """
        if self._after_tail:
            self.seek_last(0)
        try:
            self.fileno()  # watch before draining: nothing is missed in between
        except ClosedJournalError:
            return
        pacer = _Pacer(idle_timeout, poll_interval)
        while True:
            try:
                e = self._fetch(1) if not self._faithful else (self.get_next() or None)
            except ClosedJournalError:
                return
            if e is not None:
                pacer.got_entry()
                yield e
                continue
            wait = pacer.next_wait()
            if wait is _STOP:
                return
            try:
                self.wait(wait)
            except ClosedJournalError:
                return

    async def follow_async(
        self, idle_timeout: Optional[float] = None, *, poll_interval: Optional[float] = 0.003
    ) -> AsyncIterator[Entry]:
        """:meth:`follow` for asyncio: ``async for entry in reader.follow_async(): ...``.

        Waits with the event loop (``loop.add_reader`` on the journal's fd);
        reading an entry is quick and done in the loop's thread. Same
        ``idle_timeout`` and ``poll_interval`` as :meth:`follow`.
        """
        loop = asyncio.get_running_loop()
        if self._after_tail:
            self.seek_last(0)
        try:
            fd = self.fileno()
        except ClosedJournalError:
            return
        ready = asyncio.Event()
        loop.add_reader(fd, ready.set)
        pacer = _Pacer(idle_timeout, poll_interval)
        try:
            while True:
                try:
                    e = self._fetch(1) if not self._faithful else (self.get_next() or None)
                except ClosedJournalError:
                    return
                if e is not None:
                    pacer.got_entry()
                    yield e
                    continue
                wait = pacer.next_wait()
                if wait is _STOP:
                    return
                ready.clear()
                tmo = self.get_timeout_ms()
                if tmo >= 0:
                    wait = tmo / 1000 if wait is None else min(wait, tmo / 1000)
                try:
                    await asyncio.wait_for(ready.wait(), wait)
                except asyncio.TimeoutError:
                    pass
                try:
                    self.process()
                except ClosedJournalError:
                    return
        finally:
            loop.remove_reader(fd)

    def __aiter__(self) -> AsyncIterator[Entry]:
        return self.follow_async()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<{type(self).__name__} {self._what} ({state})>"


_STOP = object()


class _Pacer:
    """How long a follower waits: the idle timeout, and polling while entries flow.

    journald wakes inotify watchers at most every 250 ms (it coalesces its
    notifications), so a follower that only waits for inotify sees a new entry
    up to 250 ms late. While entries keep coming, the follower also looks every
    ``poll`` seconds; after a second without one it backs off (doubling) to
    250 ms, where inotify takes over anyway.
    """

    BACKOFF_AFTER = 1.0
    MAX_POLL = 0.25

    def __init__(self, idle_timeout: Optional[float], poll: Optional[float]) -> None:
        if poll is not None and poll <= 0:
            raise ValueError("poll_interval must be positive (or None: inotify only)")
        self.idle_timeout = idle_timeout
        self.poll = poll
        self.interval = poll
        now = _time.monotonic()
        self.last = now
        self.deadline = None if idle_timeout is None else now + idle_timeout

    def got_entry(self) -> None:
        self.last = _time.monotonic()
        self.interval = self.poll
        if self.idle_timeout is not None:
            self.deadline = self.last + self.idle_timeout

    def next_wait(self) -> Any:
        """Seconds to wait (None: until inotify), or _STOP."""
        now = _time.monotonic()
        wait: Optional[float] = None
        if self.interval is not None:
            wait = self.interval
            if now - self.last > self.BACKOFF_AFTER:
                self.interval = min(self.interval * 2, self.MAX_POLL)
        if self.deadline is not None:
            left = self.deadline - now
            if left <= 0:
                return _STOP
            wait = left if wait is None else min(wait, left)
        return wait


class JournalFileWarning(UserWarning):
    """A journal file in the directory a Reader opened cannot be read (it is skipped)."""


def _journal_files_in(directory: str) -> list[str]:
    """The files sd_journal_open_directory() considers: *.journal(~), also in machine-id dirs."""
    out: list[str] = []

    def scan(d: str, depth: int) -> None:
        try:
            it = list(_os.scandir(d))
        except OSError:
            return
        for de in it:
            if de.name.endswith((".journal", ".journal~")) and de.is_file():
                out.append(de.path)
            elif depth == 0 and len(de.name) == 32 and de.is_dir():
                try:
                    int(de.name, 16)
                except ValueError:
                    continue
                scan(de.path, 1)

    scan(directory, 0)
    return sorted(out)


def _current_boot_hex() -> str:
    try:
        from pystemd import id128

        return str(id128.get_boot().hex)
    except ImportError:
        return str(_journal._boot_id())


def _current_machine_hex() -> str:
    try:
        from pystemd import id128

        return str(id128.get_machine().hex)
    except ImportError:
        return str(_journal._machine_id())


def get_catalog(mid: Union[_uuid.UUID, str]) -> str:
    """The catalog text for a message id (UUID or 32 hex digits); FileNotFoundError if none."""
    if isinstance(mid, _uuid.UUID):
        mid = mid.hex
    text: str = _get_catalog(mid)
    return text
