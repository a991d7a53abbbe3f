"""``systemd._journal``: python-systemd 235's compiled writer module, served by pystemd.

python-systemd's ``journal.py`` imports ``sendv`` and ``stream_fd`` from here,
and some programs do the same; they get the drop-in flavour of pystemd's
writer (python-systemd's arguments and return values).
"""

from pystemd._writer import _compat_sendv as sendv
from pystemd._writer import stream_fd

__all__ = ["sendv", "stream_fd"]
__version__ = "235"
