"""The first brick of the bus layer, end to end against real peers.

Checked against busctl (an independent sd-bus client) and a private
dbus-daemon; the systemd answers come from the sandbox.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import time
import warnings

import pytest

from pystemd.bus import Bus, Variant
from pystemd.errors import BusError, NoSuchUnit

S1 = "org.freedesktop.systemd1"
S1_PATH = "/org/freedesktop/systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"


def busctl(sandbox, *args: str) -> str:
    return subprocess.run(
        ["busctl", "--system", *args], env=sandbox.env(), capture_output=True, text=True, check=True
    ).stdout


def test_system_bus_honours_env(systemd_sandbox, monkeypatch) -> None:
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", systemd_sandbox.bus_address)
    with Bus() as bus:
        version = bus.get_property(S1, S1_PATH, MANAGER, "Version")
    # busctl prints: s "252.39-1~deb12u2"
    assert (
        busctl(systemd_sandbox, "get-property", S1, S1_PATH, MANAGER, "Version").strip()
        == f's "{version}"'
    )


def test_explicit_address_reads_properties(sandbox_bus, systemd_sandbox) -> None:
    state = sandbox_bus.get_property(S1, S1_PATH, MANAGER, "SystemState")
    assert state in ("running", "degraded")
    (path,) = sandbox_bus.call(S1, S1_PATH, MANAGER, "GetUnit", "s", ["dbus.service"])
    assert path == "/org/freedesktop/systemd1/unit/dbus_2eservice"
    active = sandbox_bus.get_property(S1, path, "org.freedesktop.systemd1.Unit", "ActiveState")
    assert active == "active"
    out = busctl(
        systemd_sandbox, "get-property", S1, path, "org.freedesktop.systemd1.Unit", "ActiveState"
    )
    assert out.strip() == 's "active"'


def test_user_bus_via_session_address(dbus_daemon, monkeypatch) -> None:
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", dbus_daemon.address)
    with Bus(user=True) as bus:
        assert bus.unique_name.startswith(":1.")
        names = bus.call(
            "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "ListNames"
        )[0]
    assert "org.freedesktop.DBus" in names


def test_start_transient_unit_and_see_it_finish(sandbox_bus, systemd_sandbox) -> None:
    name = f"slice-{os.getpid()}-{time.monotonic_ns()}.service"
    props = [
        (
            "ExecStart",
            Variant("a(sasb)", [("/bin/sh", ["/bin/sh", "-c", "echo transient-ok"], False)]),
        ),
        ("Type", Variant("s", "oneshot")),
        ("RemainAfterExit", Variant("b", True)),
    ]
    (job,) = sandbox_bus.call(S1, S1_PATH, MANAGER, "StartTransientUnit", "ssa(sv)a(sa(sv))",
                              (name, "replace", props, []))  # fmt: skip
    assert job.startswith("/org/freedesktop/systemd1/job/")
    (path,) = sandbox_bus.call(S1, S1_PATH, MANAGER, "GetUnit", "s", [name])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        props_now = sandbox_bus.get_all_properties(S1, path, "org.freedesktop.systemd1.Unit")
        if props_now["ActiveState"] == "active":
            break
        time.sleep(0.02)
    assert props_now["ActiveState"] == "active"
    assert props_now["Id"] == name
    svc = sandbox_bus.get_all_properties(S1, path, "org.freedesktop.systemd1.Service")
    assert svc["ExecMainStatus"] == 0 and svc["Result"] == "success"
    # busctl sees the same unit state
    out = busctl(
        systemd_sandbox, "get-property", S1, path, "org.freedesktop.systemd1.Unit", "SubState"
    )
    assert out.strip() == 's "exited"'
    sandbox_bus.call(S1, S1_PATH, MANAGER, "StopUnit", "ss", [name, "replace"])


def test_errors_become_named_exceptions(sandbox_bus) -> None:
    with pytest.raises(NoSuchUnit) as ei:
        sandbox_bus.call(S1, S1_PATH, MANAGER, "GetUnit", "s", ["no-such-unit-here.service"])
    e = ei.value
    assert isinstance(e, LookupError) and isinstance(e, BusError)
    assert e.name == "org.freedesktop.systemd1.NoSuchUnit"
    assert isinstance(e.message, str) and "no-such-unit-here.service" in e.message
    with pytest.raises(LookupError) as ei2:
        sandbox_bus.call(S1, S1_PATH, MANAGER, "NoSuchMethodAnywhere")
    assert ei2.value.name == "org.freedesktop.DBus.Error.UnknownMethod"


def test_missing_address_is_one_clear_error(tmp_path) -> None:
    addr = f"unix:path={tmp_path}/nothing-here"
    with pytest.raises(FileNotFoundError) as ei:
        Bus(addr)
    assert addr in str(ei.value)


def test_missing_system_bus_names_the_address(monkeypatch, tmp_path) -> None:
    addr = f"unix:path={tmp_path}/no-system-bus"
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", addr)
    with pytest.raises(FileNotFoundError) as ei:
        Bus()
    assert "system bus at " + addr in str(ei.value)


def test_close_is_idempotent_and_use_after_close_raises(systemd_sandbox) -> None:
    bus = Bus(systemd_sandbox.bus_address)
    bus.close()
    bus.close()
    assert bus.closed
    with pytest.raises(ValueError, match="closed bus"):
        bus.get_property(S1, S1_PATH, MANAGER, "Version")


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_unclosed_bus_warns_and_frees_its_fd(systemd_sandbox) -> None:
    before = _open_fds()
    bus = Bus(systemd_sandbox.bus_address)
    bus.get_property(S1, S1_PATH, MANAGER, "Version")
    assert _open_fds() == before + 1
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        del bus
        gc.collect()
    assert any(issubclass(x.category, ResourceWarning) for x in w)
    assert _open_fds() == before


def test_exit_with_open_bus_prints_nothing(systemd_sandbox) -> None:
    code = (
        "from pystemd.bus import Bus\n"
        f"b = Bus({systemd_sandbox.bus_address!r})\n"
        "b.get_property('org.freedesktop.systemd1', '/org/freedesktop/systemd1',"
        " 'org.freedesktop.systemd1.Manager', 'Version')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    assert r.stderr == ""


def test_bad_arguments_name_position_and_signature(sandbox_bus) -> None:
    with pytest.raises(TypeError, match=r"argument 0 \('s' of signature 's'\)"):
        sandbox_bus.call(S1, S1_PATH, MANAGER, "GetUnit", "s", [5])
    with pytest.raises(ValueError, match="embedded NUL"):
        sandbox_bus.call(S1, S1_PATH, MANAGER, "GetUnit", "s", ["a\0b.service"])
    with pytest.raises(TypeError, match="takes 1 argument"):
        sandbox_bus.call(S1, S1_PATH, MANAGER, "GetUnit", "s", ["a", "b"])
    with pytest.raises(ValueError, match="invalid object path"):
        sandbox_bus.call(S1, "not/a/path", MANAGER, "GetUnit", "s", ["a"])
