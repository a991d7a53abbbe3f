"""python-systemd compatible package, backed by pystemd (see docs/python-systemd.md)."""
