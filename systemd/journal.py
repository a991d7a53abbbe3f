# ruff: noqa: F401  (every import here is a re-export: python-systemd's namespace)
"""``systemd.journal``: python-systemd 235's journal module, backed by pystemd.

Reading is :class:`pystemd.journal.Reader` (entries built in C, identical to
python-systemd's dicts); writing is pystemd's writer in its python-systemd
flavour. Same names, arguments, defaults, converters, constants and
exceptions as python-systemd 235, ``__version__ = "235"`` included (fail2ban
compares it). Where python-systemd has a quirk, the decision (kept or fixed,
and why) is in docs/python-systemd.md; the fixes that can change what a
program sees are: ``Reader(files=[])`` raises ``ValueError`` (not
``SystemError``), a namespace given with a path or files is still ignored but
warns, a timestamp field out of datetime's range stays ``bytes`` (instead of
``OverflowError`` escaping ``get_next()``), a negative ``seek_realtime`` raises
``ValueError``, and a ``Reader`` may be shared by threads (it locks).
"""

# python-systemd 235's module starts with ``from __future__ import division``,
# which leaves a public name ``division`` that ``from systemd.journal import *``
# exports; kept so the star-import gives the same names.
from __future__ import annotations, division  # noqa: UP010

import datetime as _datetime
import logging as _logging
import os as _os
import sys as _sys
import traceback as _traceback
import uuid as _uuid
from syslog import (  # re-exported
    LOG_ALERT,
    LOG_CRIT,
    LOG_DEBUG,
    LOG_EMERG,
    LOG_ERR,
    LOG_INFO,
    LOG_NOTICE,
    LOG_WARNING,
)

from pystemd import journal as _pj
from pystemd._journal import (  # re-exported, as python-systemd's journal.py
    APPEND,
    CURRENT_USER,
    INVALIDATE,
    LOCAL_ONLY,
    NOP,
    OS_ROOT,
    RUNTIME_ONLY,
    SYSTEM,
    SYSTEM_ONLY,
    Monotonic,
    _get_catalog,
    _Reader,
)
from pystemd._writer import (  # python-systemd's flavour of the writer
    _IDENT_CHARACTER,
    _make_line,
    _valid_field_name,
    stream_fd,
)
from pystemd._writer import _compat_send as send
from pystemd._writer import _compat_sendv as sendv
from pystemd._writer import _compat_stream as stream
from pystemd._writer import _CompatJournalHandler as JournalHandler
from pystemd.journal import (  # python-systemd's private helpers, kept
    _LOCAL_TIMEZONE,
    DEFAULT_CONVERTERS,
    _convert_monotonic,
    _convert_realtime,
    _convert_source_monotonic,
    _convert_timestamp,
    _convert_trivial,
    _convert_uuid,
    get_catalog,
)

try:
    from systemd import id128 as _id128
except ImportError:  # pragma: no cover - until systemd.id128 exists
    _id128 = None  # type: ignore[assignment]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any, Callable, Optional, Union

__version__ = "235"


class Reader(_pj.Reader):
    """Reader allows filtering and retrieval of Journal entries.

    python-systemd 235's ``Reader``: ``Reader(flags=None, path=None,
    files=None, converters=None, namespace=None)``; iterating yields one dict
    per entry, converted with ``DEFAULT_CONVERTERS`` updated by
    ``converters``. Reader implements the context manager protocol: the
    journal is closed when exiting the block. (pystemd's extras, such as
    ``read_batch()`` and ``follow()``, work here too; see docs/journal.md.)
    """

    _strict_args = False

    def __init__(
        self,
        flags: Optional[int] = None,
        path: Any = None,
        files: Optional[Sequence[Any]] = None,
        converters: Optional[Mapping[str, Callable[[Any], Any]]] = None,
        namespace: Any = None,
    ) -> None:
        if namespace is not None and (path is not None or files is not None):
            # python-systemd ignores the namespace here; so do we, but say so
            import warnings

            warnings.warn(
                "Reader(): namespace is ignored when path or files is given (as python-systemd)",
                UserWarning,
                stacklevel=2,
            )
            namespace = None
        super().__init__(flags, path, files, converters, namespace)

    def _falsy_stops(self) -> bool:
        # python-systemd's __next__ stops at the first falsy get_next() result
        return True

    def this_boot(self, bootid: Union[_uuid.UUID, str, None] = None) -> None:
        """Add match for _BOOT_ID for current boot or the specified boot ID."""
        if bootid is None and _id128 is not None:
            bootid = _id128.get_boot().hex
        super().this_boot(bootid)

    def this_machine(self, machineid: Union[_uuid.UUID, str, None] = None) -> None:
        """Add match for _MACHINE_ID equal to the ID of this machine."""
        if machineid is None and _id128 is not None:
            machineid = _id128.get_machine().hex
        super().this_machine(machineid)


# keep the namespace python-systemd's (the annotations future import's name is not)
del TYPE_CHECKING, annotations, _pj
