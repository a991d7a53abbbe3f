"""pystemd: systemd from Python through libsystemd (sd-bus, sd-journal, sd-daemon).

Submodules are imported on demand so that, for example, a ``Type=notify``
service importing :mod:`pystemd.daemon` does not pay for the bus layer.
"""

__version__ = "1.0.0.dev0"
