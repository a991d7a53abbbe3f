"""python-systemd's ``systemd.id128``, backed by :mod:`pystemd.id128`.

Same names and behaviour as python-systemd 235 (every ID a ``uuid.UUID``),
with two documented differences: a bad ``app_uuid`` raises ``TypeError`` or
``ValueError`` (235: ``AttributeError``/``SystemError``), and the
``SD_MESSAGE_*`` constants include the ones v236 adds (see docs/id128-login.md).
"""

# randomize, get_machine, get_boot, get_machine_app_specific and the SD_MESSAGE_* constants
from pystemd.id128 import *  # noqa: F403

__version__ = "235"
