"""pytest fixtures for real-systemd tests.

Enable in your own test suite with ``pytest_plugins = ["pystemd.testing.pytest_plugin"]``
in a ``conftest.py`` (or ``pytest -p pystemd.testing.pytest_plugin``). Fixtures:

``systemd_sandbox`` (session)
    One shared :class:`~pystemd.testing.Sandbox` for the whole run.
``systemd_sandbox_factory`` (function)
    ``make(**kwargs)`` starts a fresh sandbox (e.g. with its own ``units=``);
    every one it made is stopped at the end of the test.
``sandbox_bus`` (function)
    A :class:`pystemd.bus.Bus` on the shared sandbox's system bus, closed after the test.
``dbus_daemon`` (function) / ``dbus_daemon_session`` (session)
    A private ``dbus-daemon``; ``.address`` is its bus address.

When the sandbox cannot start (no root, no systemd-nspawn...) the tests that
need it are skipped with the reason, except under ``CI=true`` where they fail:
a CI run must never pass by skipping its real-systemd tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, Callable, NoReturn

import pytest

from pystemd.testing import DBusDaemon, Sandbox, SandboxError, SandboxUnavailable


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def unavailable(reason: str) -> NoReturn:
    """Skip (locally) or fail (under CI=true) a test whose real dependency is missing."""
    if in_ci():
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def _start(sb: Sandbox) -> Sandbox:
    try:
        return sb.start()
    except SandboxUnavailable as e:
        unavailable(f"systemd sandbox unavailable: {e}")
    except SandboxError as e:
        unavailable(f"systemd sandbox failed to start: {e}")


@pytest.fixture(scope="session")
def systemd_sandbox() -> Iterator[Sandbox]:
    sb = Sandbox()
    _start(sb)
    try:
        yield sb
    finally:
        sb.stop()


@pytest.fixture
def systemd_sandbox_factory() -> Iterator[Callable[..., Sandbox]]:
    made: list[Sandbox] = []

    def make(**kwargs: Any) -> Sandbox:
        sb = Sandbox(**kwargs)
        made.append(sb)
        return _start(sb)

    try:
        yield make
    finally:
        for sb in made:
            sb.stop()


@pytest.fixture
def sandbox_bus(systemd_sandbox: Sandbox) -> Iterator[Any]:
    bus = systemd_sandbox.bus()
    try:
        yield bus
    finally:
        bus.close()


def _dbus() -> DBusDaemon:
    try:
        return DBusDaemon().start()
    except SandboxError as e:
        unavailable(f"private dbus-daemon unavailable: {e}")


@pytest.fixture
def dbus_daemon() -> Iterator[DBusDaemon]:
    d = _dbus()
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture(scope="session")
def dbus_daemon_session() -> Iterator[DBusDaemon]:
    d = _dbus()
    try:
        yield d
    finally:
        d.stop()
