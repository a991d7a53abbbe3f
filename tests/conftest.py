"""Shared test setup: the sandbox fixtures, and a leak check after the run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["pystemd.testing.pytest_plugin"]

REPO = Path(__file__).resolve().parent.parent


def _traces() -> set[str]:
    """Every sandbox/dbus-daemon trace on the machine: cgroups, state dirs, nspawn processes."""
    from pystemd.testing import BASE_DIR, _cgroup_roots

    left = set()
    for root in _cgroup_roots():
        left |= {f"cgroup {p}" for p in root.glob("pystemd-*")}
    if BASE_DIR.exists():
        left |= {f"directory {p}" for p in BASE_DIR.iterdir()}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"systemd-nspawn" in cmd and b"--machine=pystemd-" in cmd:
            name = cmd.split(b"--machine=", 1)[1].split(b" ", 1)[0].decode()
            left.add(f"nspawn process of {name}")
    return left


# Traces that existed before this run (another run's live sandboxes) are not ours.
_BEFORE: set[str] = set()


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.geteuid() == 0:
        _BEFORE.update(_traces())


def _leftovers() -> list[str]:
    return sorted(_traces() - _BEFORE)


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
