"""pystemd.daemon end to end: services written with it, run by a real systemd (the sandbox).

* a ``Type=notify`` service is ``activating`` until it sends READY=1, then
  ``active`` with its STATUS= as ``StatusText``;
* a ``WatchdogSec=`` service fed by :class:`pystemd.daemon.Watchdog` (a
  thread, and an asyncio task) is left alone while it pings, and killed
  with ``Result=watchdog`` and restarted once it stops;
* a socket-activated service (a ``.socket`` unit) serves on the fds it is
  given, puts each connection into the fd store, and keeps the connection
  across a ``systemctl restart`` and across a crash.

State is read over the sandbox's bus (ActiveState, StatusText, NRestarts,
WatchdogTimestampMonotonic, NFileDescriptorStore, MainPID) and from the
reports the helper services write into a directory bound into the container.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

from pystemd.bus import Bus, path_encode

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
HELPERS = Path(__file__).resolve().parent / "daemon_helpers"
S1 = "org.freedesktop.systemd1"
UNIT_IFACE = S1 + ".Unit"
SERVICE_IFACE = S1 + ".Service"
WAIT = 60.0  # safety limit for state changes under load; never an assertion on time


def _service(script: str, *args: str, extra: str = "", typ: str = "notify") -> str:
    argv = " ".join([sys.executable, str(HELPERS / script), *args])
    return (
        "[Unit]\nDescription=pystemd.daemon test service\n"
        "[Service]\n"
        f"Type={typ}\n"
        f"ExecStart={argv}\n"
        f"Environment=PYTHONPATH={REPO} PYTHONDONTWRITEBYTECODE=1\n"
        f"{extra}"
    )


def _unit_path(name: str) -> str:
    return path_encode("/org/freedesktop/systemd1/unit", name)


class Probe:
    """Reads unit properties over the sandbox's bus and waits for conditions."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    def unit(self, unit: str, name: str) -> Any:
        return self.bus.get_property(S1, _unit_path(unit), UNIT_IFACE, name)

    def service(self, unit: str, name: str) -> Any:
        return self.bus.get_property(S1, _unit_path(unit), SERVICE_IFACE, name)

    def start(self, unit: str) -> None:
        self.bus.call(
            S1, "/org/freedesktop/systemd1", S1 + ".Manager", "StartUnit", "ss", (unit, "replace")
        )

    def wait(self, cond: Callable[[], Any], what: str) -> Any:
        deadline = time.monotonic() + WAIT
        while True:
            value = cond()
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"gave up waiting for {what}")
            time.sleep(0.02)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    d = tmp_path / "state"
    d.mkdir()
    d.chmod(0o777)
    return d


@pytest.fixture
def sandbox(systemd_sandbox_factory: Any, state_dir: Path) -> Callable[..., Any]:
    def make(units: dict[str, str]) -> Any:
        return systemd_sandbox_factory(units=units, bind=[str(state_dir)])

    return make


@pytest.fixture
def probe_for() -> Iterator[Callable[[Any], Probe]]:
    buses: list[Bus] = []

    def make(sb: Any) -> Probe:
        bus = Bus(sb.bus_address)
        buses.append(bus)
        return Probe(bus)

    try:
        yield make
    finally:
        for b in buses:
            b.close()


def _reports(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def _write_fifo(path: Path, text: str, probe: Probe) -> None:
    probe.wait(path.exists, f"the service to create {path.name}")
    with open(path, "w") as f:  # blocks until the service has it open for reading
        f.write(text + "\n")


# ---------------------------------------------------------------------------
# Type=notify: activating until READY=1, then active with its status


def test_type_notify_service_becomes_active_only_after_ready(
    sandbox: Callable[..., Any], probe_for: Callable[[Any], Probe], state_dir: Path
) -> None:
    unit = "pystemd-notify.service"
    sb = sandbox({unit: _service("notify_service.py", str(state_dir))})
    p = probe_for(sb)
    p.start(unit)

    # it said STATUS= but not READY=1: systemd holds it in "activating", its start job running
    p.wait(lambda: p.service(unit, "StatusText") == "waiting for go", "STATUS=waiting for go")
    assert p.unit(unit, "ActiveState") == "activating"
    assert p.unit(unit, "SubState") == "start"
    job_id, _job_path = p.unit(unit, "Job")
    assert job_id != 0
    main_pid = p.service(unit, "MainPID")
    assert main_pid != 0

    _write_fifo(state_dir / "go", "now", p)
    p.wait(lambda: p.unit(unit, "ActiveState") == "active", "ActiveState=active")
    assert p.unit(unit, "SubState") == "running"
    assert p.service(unit, "StatusText") == "serving (now)"
    assert p.unit(unit, "Job")[0] == 0
    assert p.service(unit, "MainPID") == main_pid

    (report,) = p.wait(lambda: _reports(state_dir / "report.jsonl"), "the service's report")
    assert report["pid"] == main_pid  # the container's PID namespace on both sides
    assert report["ready_sent"] is True
    assert report["barrier"] is True  # PID 1 answered the barrier
    assert report["booted"] is True
    assert report["watchdog_usec"] == 0
    assert report["listen_fds"] == []
    assert report["notify_socket"]  # set by systemd for Type=notify


# ---------------------------------------------------------------------------
# WatchdogSec=: fed while the helper runs, restarted when it stops


@pytest.mark.parametrize("mode", ["thread", "asyncio"])
def test_watchdog_service_is_restarted_when_it_stops_pinging(
    sandbox: Callable[..., Any], probe_for: Callable[[Any], Probe], state_dir: Path, mode: str
) -> None:
    unit = f"pystemd-watchdog-{mode}.service"
    stoppost = state_dir / f"stoppost-{mode}"
    extra = (
        "WatchdogSec=4\n"
        "Restart=on-watchdog\n"
        "RestartSec=100ms\n"
        "LimitCORE=0\n"
        f"ExecStopPost=/bin/sh -c 'echo \"$SERVICE_RESULT $EXIT_CODE $EXIT_STATUS\" >> {stoppost}'\n"
    )
    sb = sandbox({unit: _service("watchdog_service.py", mode, str(state_dir), extra=extra)})
    p = probe_for(sb)
    p.start(unit)
    p.wait(lambda: p.unit(unit, "ActiveState") == "active", "ActiveState=active")
    first_pid = p.service(unit, "MainPID")
    report = state_dir / f"report-{mode}.jsonl"
    (hello,) = p.wait(lambda: _reports(report), "the service's report")
    assert hello["pid"] == first_pid
    assert hello["watchdog_usec"] == 4_000_000  # WatchdogSec=, seen through watchdog_enabled()
    assert hello["period"] == 2.0  # pings at half the interval

    # the pings arrive: systemd moves the watchdog timestamp forward
    t0 = p.service(unit, "WatchdogTimestampMonotonic")
    p.wait(lambda: p.service(unit, "WatchdogTimestampMonotonic") > t0, "a watchdog ping")
    assert p.service(unit, "NRestarts") == 0

    # stop the helper: the service keeps running, silent, and systemd's watchdog fires
    _write_fifo(state_dir / f"stop-{mode}", "stop", p)
    p.wait(lambda: len(_reports(report)) >= 2, "the service to stop its watchdog")
    stopped = _reports(report)[1]
    assert stopped["stopped"] is True and stopped["pings"] >= 1
    assert stopped["alive"] == []  # the thread / task is gone: stopped cleanly
    p.wait(lambda: p.service(unit, "NRestarts") >= 1, "systemd to restart the service")
    assert stoppost.read_text().split() == ["watchdog", "killed", "ABRT"]

    # the new process is fed again by its own helper
    p.wait(lambda: p.unit(unit, "ActiveState") == "active", "the restarted service")
    second = p.wait(lambda: _reports(report)[2:], "the restarted service's report")[0]
    assert second["pid"] == p.service(unit, "MainPID") != first_pid
    t1 = p.service(unit, "WatchdogTimestampMonotonic")
    p.wait(lambda: p.service(unit, "WatchdogTimestampMonotonic") > t1, "a ping after restart")
    assert p.service(unit, "NRestarts") == 1


# ---------------------------------------------------------------------------
# socket activation + the fd store


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _ask(conn: socket.socket, line: str) -> str:
    conn.sendall(line.encode() + b"\n")
    return conn.recv(4096).decode().strip()


def test_socket_activated_service_keeps_a_connection_across_restarts(
    sandbox: Callable[..., Any], probe_for: Callable[[Any], Probe], state_dir: Path
) -> None:
    port = _free_port()
    stream, dgram = state_dir / "echo.sock", state_dir / "echo.dgram"
    units = {
        "pystemd-echo.socket": (
            "[Socket]\n"
            f"ListenStream={stream}\n"
            f"ListenDatagram={dgram}\n"
            f"ListenStream=127.0.0.1:{port}\n"
            "FileDescriptorName=echo\n"
            "Service=pystemd-echo.service\n"
        ),
        "pystemd-echo.service": _service(
            "echo_service.py",
            str(state_dir),
            extra="FileDescriptorStoreMax=16\nRestart=on-failure\nRestartSec=100ms\n",
        ),
    }
    sb = sandbox(units)
    p = probe_for(sb)
    svc = "pystemd-echo.service"
    p.start("pystemd-echo.socket")
    p.wait(lambda: p.unit("pystemd-echo.socket", "ActiveState") == "active", "the socket unit")
    assert p.unit(svc, "ActiveState") == "inactive"  # nothing runs before a client comes

    # the first connection activates the service, which accepts it on the fd it was given
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(WAIT)
    conn.connect(str(stream))
    pid1, text = _ask(conn, "hello").split(":", 1)
    assert text == "hello"
    assert p.unit(svc, "ActiveState") == "active"
    assert p.service(svc, "MainPID") == int(pid1)
    assert p.service(svc, "StatusText") == "serving, 0 connection(s) restored"
    assert (
        p.service(svc, "NFileDescriptorStore") == 1
    )  # the connection, stored before we heard back

    first = _reports(state_dir / "echo.jsonl")[0]
    assert first["pid"] == int(pid1)
    assert first["fds"] == [
        ["echo", int(socket.AF_UNIX), int(socket.SOCK_STREAM), True],
        ["echo", int(socket.AF_UNIX), int(socket.SOCK_DGRAM), False],
        ["echo", int(socket.AF_INET), int(socket.SOCK_STREAM), True],
    ]

    # the other two fds serve as well: TCP and datagrams
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as tcp:
        assert _ask(tcp, "over tcp") == f"{pid1}:over tcp"
        assert p.service(svc, "NFileDescriptorStore") == 2
    # hung up: the service takes it out of the store (FDSTOREREMOVE=1 + FDNAME=)
    p.wait(lambda: p.service(svc, "NFileDescriptorStore") == 1, "FDSTOREREMOVE to be processed")
    client = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    client.settimeout(WAIT)
    client.bind(str(state_dir / "client.dgram"))
    client.sendto(b"datagram", str(dgram))
    assert client.recv(4096) == f"{pid1}:datagram".encode()
    client.close()

    # systemctl restart: a new process, the same connection
    p.bus.call(
        S1, "/org/freedesktop/systemd1", S1 + ".Manager", "RestartUnit", "ss", (svc, "replace")
    )
    p.wait(
        lambda: (
            p.service(svc, "MainPID") not in (0, int(pid1))
            and p.unit(svc, "ActiveState") == "active"
        ),
        "the restarted service",
    )
    pid2, text = _ask(conn, "again").split(":", 1)
    assert text == "again" and pid2 != pid1
    assert p.service(svc, "MainPID") == int(pid2)
    assert p.service(svc, "StatusText") == "serving, 1 connection(s) restored"
    second = _reports(state_dir / "echo.jsonl")[1]
    assert second["pid"] == int(pid2)
    assert second["fds"][:3] == first["fds"]
    assert second["fds"][3:] == [
        [f"conn-{pid1}-1", int(socket.AF_UNIX), int(socket.SOCK_STREAM), False]
    ]

    # a crash (exit 1, Restart=on-failure): again a new process, again the same connection
    conn.sendall(b"crash\n")
    p.wait(lambda: p.service(svc, "NRestarts") >= 1, "the restart after the crash")
    p.wait(
        lambda: (
            p.service(svc, "MainPID") not in (0, int(pid1), int(pid2))
            and p.unit(svc, "ActiveState") == "active"
        ),
        "the service after its crash",
    )
    pid3, text = _ask(conn, "third").split(":", 1)
    assert text == "third" and pid3 not in (pid1, pid2)
    assert p.service(svc, "NFileDescriptorStore") == 1

    # the client hangs up: the connection leaves the store
    conn.close()
    p.wait(lambda: p.service(svc, "NFileDescriptorStore") == 0, "the store to drop the connection")
    assert os.path.exists(stream)
