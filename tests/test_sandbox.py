"""pystemd.testing itself: the sandbox starts, several at once, and leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pystemd.testing import Sandbox, SandboxError, _cgroup_roots

REPO = Path(__file__).resolve().parent.parent
S1 = "org.freedesktop.systemd1"


def _traces(name: str) -> list[str]:
    left = [str(r / name) for r in _cgroup_roots() if (r / name).exists()]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if f"--machine={name}".encode() in cmd:
            left.append(pid)
    return left


def test_two_sandboxes_at_once(systemd_sandbox_factory) -> None:
    a = systemd_sandbox_factory()
    b = systemd_sandbox_factory()
    assert a.bus_address != b.bus_address
    ids = []
    for sb in (a, b):
        with sb.bus() as bus:
            assert bus.get_property(
                S1, "/org/freedesktop/systemd1", f"{S1}.Manager", "SystemState"
            ) in (
                "running",
                "degraded",
            )
        ids.append(sb.run(["cat", "/etc/machine-id"]).stdout.strip())
    assert ids[0] != ids[1]
    for sb in (a, b):
        sb.stop()
        assert _traces(sb.name) == []
        assert not sb.dir.exists()


def test_run_inside_and_unit_dir_and_journal(systemd_sandbox_factory) -> None:
    sb = systemd_sandbox_factory(
        units={
            "hello.service": "[Service]\nType=oneshot\nExecStart=/bin/echo hello-from-unit-file\n"
        }
    )
    r = sb.run(["cat", "/proc/1/comm"])
    assert r.stdout.strip() == "systemd"
    sb.manager_call("StartUnit", "ss", "hello.service", "replace")
    # a unit added after boot needs a reload, which add_unit does
    sb.add_unit("late.service", "[Service]\nType=oneshot\nExecStart=/bin/echo late-unit\n")
    sb.manager_call("StartUnit", "ss", "late.service", "replace")
    deadline = time.monotonic() + 10
    out = ""
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["journalctl", "--directory", str(sb.journal_dir), "-o", "cat"],
            capture_output=True,
            text=True,
        ).stdout
        if "hello-from-unit-file" in out and "late-unit" in out:
            break
        time.sleep(0.05)
    assert "hello-from-unit-file" in out and "late-unit" in out
    assert sb.journal_files()


def test_host_command_writes_to_the_sandbox_journal(systemd_sandbox) -> None:
    tag = f"host-writer-{os.getpid()}"
    # journald's native protocol, by hand: one datagram to /run/systemd/journal/socket
    code = (
        "import socket; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); "
        f"s.sendto(b'MESSAGE=via-jsock\\nSYSLOG_IDENTIFIER={tag}\\n', '/run/systemd/journal/socket')"
    )
    systemd_sandbox.run_with_journal([sys.executable, "-c", code])
    deadline = time.monotonic() + 10
    out = ""
    while time.monotonic() < deadline and "via-jsock" not in out:
        out = subprocess.run(
            ["journalctl", "--directory", str(systemd_sandbox.journal_dir), "-t", tag, "-o", "cat"],
            capture_output=True,
            text=True,
        ).stdout
        time.sleep(0.05)
    assert "via-jsock" in out
    assert not Path("/run/systemd/journal/socket").exists() or Path("/run/systemd/journal").is_dir()


def test_timeout_leaves_nothing_behind() -> None:
    sb = Sandbox(timeout=0.001)
    with pytest.raises(SandboxError, match="did not reach SystemState=running"):
        sb.start()
    assert _traces(sb.name) == []
    assert not sb.dir.exists()


def _cli(*args: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pystemd.testing", *args],
        capture_output=True,
        text=True,
        timeout=120,
        **kw,
    )


def test_cli_up_status_run_down() -> None:
    up = _cli("up")
    assert up.returncode == 0, up.stderr
    env = dict(
        line.split("=", 1)
        for line in up.stdout.splitlines()
        if "=" in line and not line.startswith("export")
    )
    name = env["PYSTEMD_SANDBOX"]
    try:
        assert name in _cli("status").stdout
        r = _cli("run", name, "--", "cat", "/proc/1/comm")
        assert r.returncode == 0
        out = subprocess.run(
            [
                "busctl",
                "get-property",
                S1,
                "/org/freedesktop/systemd1",
                f"{S1}.Manager",
                "SystemState",
            ],
            env=dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=env["DBUS_SYSTEM_BUS_ADDRESS"]),
            capture_output=True,
            text=True,
        ).stdout
        assert out.strip() in ('s "running"', 's "degraded"')
    finally:
        down = _cli("down", name)
    assert down.returncode == 0, down.stderr
    assert _traces(name) == []


def test_without_root_one_clear_line() -> None:
    # Debian's own python as nobody, importing this checkout (root's pyenv is not readable)
    py = "/usr/bin/python3"
    if not os.path.exists(py) or not os.path.exists("/usr/bin/setpriv"):
        pytest.skip("needs /usr/bin/python3 and setpriv")
    r = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", py, "-m", "pystemd.testing", "up"],
        capture_output=True, text=True, cwd="/", env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )  # fmt: skip
    assert r.returncode == 2
    assert (
        r.stderr.strip()
        == "pystemd.testing: the systemd sandbox needs root (it runs systemd-nspawn and creates cgroups)"
    )


def test_without_nspawn_one_clear_line(tmp_path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "pystemd.testing", "up"],
        capture_output=True, text=True, env=dict(os.environ, PATH=str(tmp_path)), timeout=60,
    )  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.strip() == (
        "pystemd.testing: systemd-nspawn not found; install it (Debian: apt-get install systemd-container)"
    )


def test_a_too_long_base_dir_is_refused_up_front(tmp_path) -> None:
    with pytest.raises(ValueError, match="107-byte limit of a unix socket path"):
        Sandbox(base_dir=tmp_path / ("x" * 80))


def test_down_all_reaps_what_dead_processes_left() -> None:
    # A process that starts a private dbus-daemon and a sandbox, then dies
    # without cleaning up (SIGKILL): stop_all() must find and remove both.
    from pystemd.testing import list_sandboxes, stop_all

    base = Path(f"/run/pystemd-test-reap-{os.getpid()}")  # its own: stop_all() stops all in it
    code = (
        "import os, signal, sys\n"
        "from pystemd.testing import DBusDaemon, Sandbox\n"
        f"d = DBusDaemon(base_dir={str(base)!r}).start()\n"
        f"s = Sandbox(base_dir={str(base)!r}).start()\n"
        "print(s.name, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == -signal.SIGKILL, r.stderr
    name = r.stdout.strip()
    assert [st["name"] for st in list_sandboxes(base)] == [name]
    assert _traces(name) != []
    daemons = [d for d in base.glob("dbus-*")]
    assert len(daemons) == 1

    stopped = stop_all(base)

    assert name in stopped and daemons[0].name in stopped
    assert _traces(name) == []
    assert not base.exists()
    conf = f"--config-file={daemons[0] / 'bus.conf'}".encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            assert conf not in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            pass
