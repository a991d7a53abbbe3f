"""``systemd._reader``: python-systemd 235's compiled reader module, served by pystemd._journal.

Code that imports ``systemd._reader`` (``_Reader``, ``Monotonic``, the flag
and event constants, ``_get_catalog``) finds the same names here.
"""

from pystemd._journal import (  # noqa: F401  (python-systemd's _reader names)
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

__version__ = "235"
