"""Shared test setup: the sandbox fixtures, and a leak check after the run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["pystemd.testing.pytest_plugin"]

REPO = Path(__file__).resolve().parent.parent


def _leftovers() -> list[str]:
    from pystemd.testing import BASE_DIR, _cgroup_roots

    left = []
    for root in _cgroup_roots():
        left += [str(p) for p in root.glob("pystemd-*")]
    if BASE_DIR.exists():
        left += [str(p) for p in BASE_DIR.iterdir()]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"systemd-nspawn" in cmd and b"--machine=pystemd-" in cmd:
            left.append(f"process {pid}: {cmd.decode(errors='replace')[:120]}")
    return left


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Every sandbox and dbus-daemon the tests started must be gone by now.
    if os.geteuid() != 0 or hasattr(session.config, "workerinput"):
        return
    left = _leftovers()
    if left:
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        msg = "tests left sandbox traces behind:\n  " + "\n  ".join(left)
        if tr is not None:
            tr.write_line(msg, red=True)
        session.exitstatus = 1
