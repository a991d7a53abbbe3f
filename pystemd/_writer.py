"""Writing to the journal: send, sendv, stream, stream_fd, JournalHandler, log.

The public names are pystemd's flavour (re-exported by :mod:`pystemd.journal`):
python-systemd's API, with its silent failures turned into exceptions:

* a field name journald would drop (lowercase, leading ``_``...) raises
  :class:`~pystemd._jsend.FieldError` (a ``ValueError`` that is also
  ``OSError(EINVAL)``);
* a missing journald socket raises ``FileNotFoundError`` (python-systemd and
  libsystemd report success and the entry is lost).

The python-systemd drop-in (:mod:`systemd.journal`) uses the ``_compat_*``
variants below: they keep python-systemd's behaviour where code may depend on
it (bad names are still sent, a missing journald does not raise), but report
what python-systemd hid with a :class:`JournalWarning` (once per process for a
missing journald). See docs/journal-writing.md for every decision.

Both flavours share the C layer (:mod:`pystemd._jsend`): the fields are built
in C into journald's native datagram, the caller's CODE_FILE/CODE_LINE/CODE_FUNC
come from the interpreter's frame (no stack walk), and the datagram goes out
with one send() on a socket connected to journald's (the GIL released only
when journald's queue is full).
The older pystemd's ``log(priority, message, **fields)`` and
``sendv(*items, **fields)`` forms are here too, with priority checked (0-7).
"""

from __future__ import annotations

import linecache as _linecache
import logging as _logging
import os as _os
import sys as _sys
import traceback as _traceback
import warnings as _warnings
from collections.abc import Callable
from syslog import LOG_ALERT, LOG_CRIT, LOG_DEBUG, LOG_ERR, LOG_INFO, LOG_WARNING
from typing import IO, Any, Optional, Union

from pystemd import _jsend
from pystemd._jsend import FieldError as FieldError  # raised by send/sendv

__all__ = [
    "_IDENT_CHARACTER",
    "JournalHandler",
    "_make_line",
    "_valid_field_name",
    "log",
    "reset_socket",
    "send",
    "sendv",
    "stream",
    "stream_fd",
]

_send_fields = _jsend.send_fields
_STRICT = _jsend.STRICT
_NO_JOURNALD = _jsend.NO_JOURNALD
_BAD_NAME = _jsend.BAD_NAME

_Text = Union[str, bytes]


class JournalWarning(RuntimeWarning):
    """The python-systemd drop-in could not log something it would have lost silently."""


# -- python-systemd's private helpers, kept as they were -------------------------

# python-systemd's character set for JournalHandler field names (sic: it does
# not reject a leading "_" or digit; journald does).
_IDENT_CHARACTER = set("ABCDEFGHIJKLMNOPQRTSUVWXYZ_0123456789")


def _valid_field_name(s: str) -> bool:
    """python-systemd's check: only ``A-Z``, ``0-9`` and ``_`` (journald also
    rejects a leading ``_`` or digit and names over 64 characters)."""
    return not (set(s) - _IDENT_CHARACTER)


def _make_line(field: str, value: Any) -> Union[str, bytes]:
    """``FIELD=value``: bytes stay bytes, str stays str, anything else is ``str(value)``."""
    if isinstance(value, bytes):
        return field.encode("utf-8") + b"=" + value
    if isinstance(value, str):
        return field + "=" + value
    return field + "=" + str(value)


# -- send ---------------------------------------------------------------------------


# send() and sendv() are C functions (pystemd._jsend): no Python frame of their
# own, so the caller's location is one frame lookup and a call costs no wrapper.
send = _jsend.send
sendv = _jsend.sendv


def reset_socket() -> None:
    """Open a new socket to journald on the next send.

    Entries go out on one socket connected to journald's at the first send.
    A program that closes every file descriptor (daemonizing code) and may
    reuse that fd's number for something else before logging again must call
    this right after the close; without a reuse, a closed socket is noticed
    and replaced by itself.
    """
    _jsend.reset()


def log(priority: int, message: Any, **fields: Any) -> None:
    """The older pystemd's ``journal.log(priority, message, **fields)``.

    ``priority`` is a syslog priority, 0 (``LOG_EMERG``) to 7 (``LOG_DEBUG``);
    anything else (e.g. ``logging.INFO``, which is 20) raises ``ValueError``.
    CODE_FILE, CODE_LINE, CODE_FUNC and CODE_CONTEXT (the caller's source line)
    are added unless one of the CODE_* fields is given; finding them costs one
    frame lookup, not a walk over the whole stack.
    """
    pri = _check_priority(priority)
    if "PRIORITY" in fields or "MESSAGE" in fields:
        raise TypeError("log() takes the priority and the message as its first two arguments")
    if not isinstance(message, (str, bytes)):
        message = _os.fspath(message) if isinstance(message, _os.PathLike) else str(message)
    out: dict[str, Any] = {"PRIORITY": pri}
    code_file = fields.pop("CODE_FILE", None)
    code_line = fields.pop("CODE_LINE", None)
    code_func = fields.pop("CODE_FUNC", None)
    if code_file is None and code_line is None and code_func is None:
        where = _jsend.caller(1)
        if where is not None:
            code_file, code_line, code_func = where
            context = _linecache.getline(code_file, code_line).strip()
            if context and "CODE_CONTEXT" not in fields:
                out["CODE_CONTEXT"] = context
    out.update(_old_style(fields))
    _send_fields(message, None, code_file, code_line, code_func, out, 0, _STRICT)


def _check_priority(priority: Any) -> int:
    try:
        pri = priority.__index__()
    except AttributeError:
        raise TypeError(f"priority must be an int 0-7, got {type(priority).__name__}") from None
    if not 0 <= pri <= 7 or isinstance(priority, bool):
        hint = ""
        if pri in (10, 20, 30, 40, 50):
            hint = " (that is a logging level; JournalHandler.map_priority converts it)"
        raise ValueError(f"priority must be a syslog priority 0-7, got {priority!r}{hint}")
    return pri


def _old_style(fields: dict[str, Any]) -> dict[str, Any]:
    """The older pystemd's value conversions for keyword fields."""
    out = {}
    for k, v in fields.items():
        if v is True or v is False:
            v = "true" if v else "false"
        elif isinstance(v, _os.PathLike):
            v = _os.fspath(v)
        out[k] = v
    return out


# -- streams ---------------------------------------------------------------------------


def stream_fd(identifier: Optional[_Text], priority: int, level_prefix: bool) -> int:
    """A socket connected to journald's stdout stream (``sd_journal_stream_fd``).

    Each line written to it becomes one entry with ``SYSLOG_IDENTIFIER=identifier``
    and ``PRIORITY=priority`` (0-7; ``ValueError`` otherwise); with
    ``level_prefix`` a line may start with ``<N>`` to set its own priority.
    The caller owns the fd. ``FileNotFoundError`` when journald is not running.
    """
    return _jsend.stream_fd(identifier, _check_priority(priority), level_prefix)


def _program_name(full: bool) -> str:
    argv = getattr(_sys, "argv", None)
    if not argv or not argv[0] or argv[0] == "-c":
        return "python"
    return argv[0] if full else _os.path.basename(argv[0]) or "python"


def stream(
    identifier: Optional[str] = None, priority: int = LOG_INFO, level_prefix: bool = False
) -> IO[str]:
    """A line-buffered text file whose lines go to the journal (UTF-8).

    >>> print("hello", file=stream("myapp"))

    ``identifier`` defaults to the program's name (the basename of
    ``sys.argv[0]``; ``python`` under ``python -c`` or without argv).
    """
    if identifier is None:
        identifier = _program_name(full=False)
    return _os.fdopen(stream_fd(identifier, priority, level_prefix), "w", 1, encoding="utf-8")


# -- logging -------------------------------------------------------------------------

# The attributes every LogRecord has (plus what Formatter.format adds): they are
# never journal fields (python-systemd sent them all; journald dropped them).
_RECORD_ATTRS = frozenset(
    _logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)
_HANDLER_KEYS = (
    "PRIORITY", "LOGGER", "THREAD_NAME", "PROCESS_NAME", "CODE_FILE", "CODE_LINE", "CODE_FUNC",
)  # fmt: skip


class JournalHandler(_logging.Handler):
    """A ``logging.Handler`` that sends each record as one journal entry.

    >>> log = logging.getLogger("app")
    >>> log.addHandler(JournalHandler(SYSLOG_IDENTIFIER="app"))
    >>> log.warning("disk %s is full", "/var", extra={"DISK": "/var"})

    Each entry has MESSAGE (the formatted record, traceback included), PRIORITY
    (:meth:`map_priority`), LOGGER, THREAD_NAME, PROCESS_NAME, CODE_FILE,
    CODE_LINE, CODE_FUNC, the handler's keyword fields (SYSLOG_IDENTIFIER
    defaults to the program's name), CODE_ARGS when the record has arguments,
    EXCEPTION_TEXT and EXCEPTION_INFO (``"Type: message"``) for exceptions, and
    every ``extra=`` key that is a valid journal field name. An ``extra=`` key
    may override any of them (MESSAGE_ID may be a ``uuid.UUID``); other
    record attributes (lowercase) are not sent. ``sender_function`` replaces
    :func:`send` (same call signature).
    """

    _strict = True

    def __init__(
        self,
        level: Union[int, str] = _logging.NOTSET,
        sender_function: Optional[Callable[..., Any]] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(level)
        for name in kwargs:
            if not _valid_field_name(name):
                raise ValueError("Invalid field name: " + name)
            if not _jsend.valid_field_name(name):
                if self._strict:
                    raise ValueError(
                        f"Invalid field name: {name} (journald drops names starting with _ "
                        "or a digit, or longer than 64 characters)"
                    )
                _warnings.warn(
                    JournalWarning(f"journald drops the field {name!r} of this JournalHandler"),
                    stacklevel=2,
                )
        if "SYSLOG_IDENTIFIER" not in kwargs:
            kwargs["SYSLOG_IDENTIFIER"] = _program_name(full=not self._strict)
        self.send: Callable[..., Any] = (
            sender_function if sender_function is not None else self._default_sender()
        )
        self._extra: dict[str, Any] = kwargs

    @staticmethod
    def _default_sender() -> Callable[..., Any]:
        return send

    @classmethod
    def with_args(cls, config: Optional[dict[str, Any]] = None) -> JournalHandler:
        """``cls(**config)``: for ``logging.config.fileConfig``, which passes one positional."""
        return cls(**(config or {}))

    def emit(self, record: _logging.LogRecord) -> None:
        try:
            msg = self.format(record)
            fields = dict(self._extra)
            if record.exc_text:
                fields["EXCEPTION_TEXT"] = record.exc_text
            if record.exc_info and record.exc_info[0] is not None:
                fields["EXCEPTION_INFO"] = "".join(
                    _traceback.format_exception_only(record.exc_info[0], record.exc_info[1])
                ).strip()
            if record.args:
                fields["CODE_ARGS"] = str(record.args)
            # extra=: valid journal names only (lowercase attributes never reach the journal)
            valid = _jsend.valid_field_name
            for key, value in record.__dict__.items():
                if key not in _RECORD_ATTRS and valid(key):
                    fields[key] = value
            own = {
                "PRIORITY": str(self.map_priority(record.levelno)),
                "LOGGER": record.name,
                "THREAD_NAME": record.threadName,
                "PROCESS_NAME": record.processName,
                "CODE_FILE": record.pathname,
                "CODE_LINE": record.lineno,
                "CODE_FUNC": record.funcName,
            }
            for key in _HANDLER_KEYS:
                if key in fields:  # an extra= key wins over the handler's own value
                    own[key] = fields.pop(key)
            msg = fields.pop("MESSAGE", msg)
            self.send(msg, **own, **fields)
        except Exception:
            self.handleError(record)

    @staticmethod
    def map_priority(levelno: int) -> int:
        """A logging level as a syslog priority (levels between the standard ones round up)."""
        if levelno <= _logging.DEBUG:
            return LOG_DEBUG
        if levelno <= _logging.INFO:
            return LOG_INFO
        if levelno <= _logging.WARNING:
            return LOG_WARNING
        if levelno <= _logging.ERROR:
            return LOG_ERR
        if levelno <= _logging.CRITICAL:
            return LOG_CRIT
        return LOG_ALERT

    mapPriority = map_priority


# -- the python-systemd drop-in's flavour (systemd.journal) --------------------------

_warned_no_journald = False


def _report(result: int, fields: dict[str, Any], items: tuple[_Text, ...]) -> None:
    """The C layer's result bits as JournalWarnings (the drop-in flavour only).

    Called by ``_jsend.compat_send``/``compat_sendv`` (C functions, no frame of
    their own): stacklevel 2 is their caller.
    """
    global _warned_no_journald
    if result & _BAD_NAME:
        _warnings.warn(
            JournalWarning(
                f"journald drops the fields {_bad_names(items, fields)}: names must be A-Z, "
                "0-9 and _, not starting with _ or a digit, at most 64 characters"
            ),
            stacklevel=2,
        )
    if result & _NO_JOURNALD and not _warned_no_journald:
        _warned_no_journald = True
        _warnings.warn(
            JournalWarning(
                f"journald is not running ({_jsend.SOCKET_PATH} does not exist): journal "
                "entries are being dropped (warned once per process)"
            ),
            stacklevel=2,
        )


_jsend.set_reporter(_report)

# python-systemd's journal.send / journal.sendv (see send and sendv above):
# names journald drops are sent as given and a missing journald does not
# raise, but both are reported with a JournalWarning.
_compat_send = _jsend.compat_send
_compat_sendv = _jsend.compat_sendv


def _bad_names(items: tuple[_Text, ...], fields: dict[str, Any]) -> list[str]:
    names = []
    for item in items:
        if isinstance(item, bytes):
            name = item.split(b"=", 1)[0].decode("utf-8", "replace")
        else:
            name = item.split("=", 1)[0]
        if not _jsend.valid_field_name(name):
            names.append(name)
    return names + [k for k in fields if not _jsend.valid_field_name(k)]


def _compat_stream(
    identifier: Optional[str] = None, priority: int = LOG_INFO, level_prefix: bool = False
) -> IO[str]:
    """python-systemd's ``journal.stream``: the identifier defaults to the full ``sys.argv[0]``."""
    if identifier is None:
        identifier = _program_name(full=True)
    return _os.fdopen(stream_fd(identifier, priority, level_prefix), "w", 1, encoding="utf-8")


class _CompatJournalHandler(JournalHandler):
    """python-systemd's ``JournalHandler`` (see :class:`JournalHandler`).

    Differences from pystemd's: SYSLOG_IDENTIFIER defaults to the full
    ``sys.argv[0]`` (as python-systemd, so ``journalctl -t`` filters keep
    matching), a keyword field journald would drop warns instead of raising,
    and sending goes through the drop-in's ``send``.
    """

    _strict = False

    @staticmethod
    def _default_sender() -> Callable[..., Any]:
        return _compat_send


# (_compat_send is a C function already called "send")
for _f, _name in ((_compat_sendv, "sendv"), (_compat_stream, "stream")):
    _f.__name__ = _f.__qualname__ = _name
_CompatJournalHandler.__name__ = _CompatJournalHandler.__qualname__ = "JournalHandler"
del _f, _name
