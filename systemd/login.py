"""python-systemd's ``systemd.login``, backed by :mod:`pystemd.login`.

``seats()``, ``sessions()``, ``machine_names()``, ``uids()`` and ``Monitor``
behave as in python-systemd 235; ``Monitor`` also has ``closed``, ``wait()``,
``wait_async()`` and ``changes()`` (asyncio), see docs/id128-login.md.
"""

from pystemd.login import Monitor, machine_names, seats, sessions, uids

__version__ = "235"

__all__ = ["Monitor", "machine_names", "seats", "sessions", "uids"]
