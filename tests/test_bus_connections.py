"""Connections: every way to reach a bus, and a connection's lifetime.

System, user and explicit addresses; systemd's private socket (from inside the
sandbox's namespaces); a container entered by PID; a remote host over ssh
(a real sshd on a loopback port whose session runs systemd-stdio-bridge
against the sandbox's bus); fork, threads, close, leaks at exit.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
import warnings
import weakref
from pathlib import Path

import pytest
from peers import open_fds

from pystemd.bus import Bus, system_bus, user_bus
from pystemd.testing.pytest_plugin import unavailable

S1, S1_PATH = "org.freedesktop.systemd1", "/org/freedesktop/systemd1"
MANAGER = S1 + ".Manager"


def version(bus: Bus) -> str:
    v = bus.get_property(S1, S1_PATH, MANAGER, "Version")
    assert isinstance(v, str)
    return v


def run_python(code: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120,
        **kw,
    )  # fmt: skip


# -- addresses ---------------------------------------------------------------------


def test_address_forms(systemd_sandbox) -> None:
    with systemd_sandbox.bus() as first:
        expected = version(first)
    for addr in (systemd_sandbox.bus_address, str(systemd_sandbox.bus_socket),
                 systemd_sandbox.bus_socket, systemd_sandbox.bus_address.encode()):  # fmt: skip
        with Bus(addr, description="pystemd-test") as b:
            assert version(b) == expected
            assert b.is_bus_client and b.unique_name.startswith(":1.")
            assert b.address == systemd_sandbox.bus_address
            assert b.description == "pystemd-test"


def test_bad_constructor_arguments(systemd_sandbox) -> None:
    with pytest.raises(ValueError, match="at most one"):
        Bus(systemd_sandbox.bus_address, remote="host")
    with pytest.raises(ValueError, match="user=True combines only with machine="):
        Bus(systemd_sandbox.bus_address, user=True)
    with pytest.raises(ValueError, match="peer=True needs an address"):
        Bus(peer=True)
    with pytest.raises(ValueError, match="pid must be a positive int"):
        Bus.container(pid=0)
    with pytest.raises(ValueError, match="give a machine name or a pid"):
        Bus.container()
    with pytest.raises(ValueError, match="embedded NUL"):
        Bus("unix:path=/x\0y")
    with pytest.raises(TypeError):
        Bus(5)  # type: ignore[arg-type]


def test_user_bus_and_per_thread_default_buses(dbus_daemon, systemd_sandbox, monkeypatch) -> None:
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", dbus_daemon.address)
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", systemd_sandbox.bus_address)
    with Bus.user() as u:
        assert u.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                      "GetId")[0]  # fmt: skip
    seen: dict[str, object] = {}

    def worker(tag: str) -> None:
        b = system_bus()
        assert b is system_bus()  # one per thread, reused
        assert version(b)
        assert user_bus() is user_bus() and user_bus() is not b
        seen[tag] = weakref.ref(b)
        seen[tag + "-name"] = b.unique_name

    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        threads = [threading.Thread(target=worker, args=(f"t{i}",)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        gc.collect()
    # each thread had its own connection, closed (silently) when the thread ended
    assert len({seen[f"t{i}-name"] for i in range(3)}) == 3
    assert all(seen[f"t{i}"]() is None for i in range(3))  # type: ignore[operator]
    assert not [x for x in w if issubclass(x.category, ResourceWarning)]
    main = system_bus()
    assert main is system_bus() and version(main)


# -- systemd's private socket (peer to peer) -----------------------------------------

PRIVATE_SCRIPT = """
import json, time
from pystemd.bus import Bus, Variant
S1, P, M = "org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager"
out = {}
with Bus.private() as b:
    out["client"] = b.is_bus_client
    out["unique"] = b.unique_name
    out["version"] = b.get_property(S1, P, M, "Version")
    out["many"] = b.get_property_many([(None, P, M, "Version")] * 50)[-1]
    jobs = {}
    slot = b.match_signal(None, P, M, "JobRemoved", lambda m: jobs.__setitem__(m.body()[1], m.body()[3]))
    b.call(None, P, M, "Subscribe")
    (job,) = b.call(None, P, M, "StartTransientUnit", "ssa(sv)a(sa(sv))",
                    ("private-%d.service" % time.monotonic_ns(), "replace",
                     [("ExecStart", Variant("a(sasb)", [("/bin/true", ["true"], False)]))], []))
    out["job_result"] = jobs[job] if b.run_until(lambda: job in jobs, timeout=20) else None
    slot.remove()
print(json.dumps(out))
"""


def test_private_socket_inside_the_sandbox(systemd_sandbox) -> None:
    r = systemd_sandbox.run([sys.executable, "-c", PRIVATE_SCRIPT], check=False)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    with systemd_sandbox.bus() as b:
        expected = version(b)
    assert out == {
        "client": False,  # no dbus-daemon in between
        "unique": None,
        "version": expected,
        "many": expected,
        "job_result": "done",  # signals too, without AddMatch
    }


# -- a container entered by PID -------------------------------------------------------


def test_container_by_pid(systemd_sandbox) -> None:
    with Bus.container(pid=systemd_sandbox.leader_pid) as b:
        assert b.get_property(S1, S1_PATH, MANAGER, "Virtualization") == "systemd-nspawn"
        assert b.unique_name.startswith(":1.")
        assert b.address == f"x-machine-unix:pid={systemd_sandbox.leader_pid}"
        with systemd_sandbox.bus() as direct:
            assert version(b) == version(direct)
            names = set(direct.call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                    "org.freedesktop.DBus", "ListNames")[0])  # fmt: skip
        assert b.unique_name in names  # the same dbus-daemon


def test_container_by_name_needs_machined(systemd_sandbox) -> None:
    # the sandbox runs with --register=no: machined knows no such machine
    with pytest.raises(OSError, match="registered with systemd-machined"):
        Bus.container(systemd_sandbox.name)


# -- a remote host over ssh -----------------------------------------------------------


@pytest.fixture
def sshd(tmp_path, systemd_sandbox, monkeypatch):
    """An sshd on 127.0.0.1 whose sessions run systemd-stdio-bridge against the
    sandbox's bus, and an ``ssh`` on PATH that uses this test's keys."""
    if not shutil.which("sshd") and not Path("/usr/sbin/sshd").exists():
        unavailable("sshd not found; install openssh-server")
    if not shutil.which("ssh-keygen") or not shutil.which("systemd-stdio-bridge"):
        unavailable("ssh-keygen or systemd-stdio-bridge missing")
    d = tmp_path / "ssh"
    d.mkdir(mode=0o700)
    for key in ("hostkey", "userkey"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)],
                       check=True)  # fmt: skip
    (d / "authorized_keys").write_text((d / "userkey.pub").read_text())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = d / "commands"
    bridge = d / "bridge"
    bridge.write_text(
        "#!/bin/sh\n"
        f'echo "$SSH_ORIGINAL_COMMAND" >> {log}\n'
        f"exec systemd-stdio-bridge --bus-path={systemd_sandbox.bus_address}\n"
    )
    bridge.chmod(0o755)
    (d / "sshd_config").write_text(textwrap.dedent(f"""\
        ListenAddress 127.0.0.1:{port}
        HostKey {d}/hostkey
        PidFile none
        AuthorizedKeysFile {d}/authorized_keys
        PermitRootLogin prohibit-password
        PasswordAuthentication no
        KbdInteractiveAuthentication no
        UsePAM no
        StrictModes no
        ForceCommand {bridge}
        LogLevel ERROR
        """))  # fmt: skip
    os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory
    host_key = (d / "hostkey.pub").read_text().split()
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
    (d / "ssh_config").write_text(textwrap.dedent(f"""\
        Host *
          IdentityFile {d}/userkey
          IdentitiesOnly yes
          UserKnownHostsFile {d}/known_hosts
          StrictHostKeyChecking yes
          BatchMode yes
          LogLevel ERROR
        """))  # fmt: skip
    bindir = d / "bin"
    bindir.mkdir()
    (bindir / "ssh").write_text(f'#!/bin/sh\nexec /usr/bin/ssh -F {d}/ssh_config "$@"\n')
    (bindir / "ssh").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    proc = subprocess.Popen([shutil.which("sshd") or "/usr/sbin/sshd", "-D", "-e", "-f",
                             str(d / "sshd_config")], stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None:
                    unavailable(f"sshd did not start: {proc.stderr.read().decode()}")  # type: ignore[union-attr]
                time.sleep(0.05)
        yield {"port": port, "log": log}
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stderr.close()  # type: ignore[union-attr]


def test_remote_host_over_ssh(sshd, systemd_sandbox) -> None:
    with Bus.remote_host(f"root@127.0.0.1:{sshd['port']}") as b:
        assert b.get_property(S1, S1_PATH, MANAGER, "Virtualization") == "systemd-nspawn"
        with systemd_sandbox.bus() as direct:
            assert version(b) == version(direct)
        assert b.address.startswith("unixexec:path=ssh,")
        assert (
            b.call_many([(S1, S1_PATH, MANAGER, "GetUnit", "s", ("dbus.service",))] * 20)
            == [("/org/freedesktop/systemd1/unit/dbus_2eservice",)] * 20
        )
    # sd-bus's own transport asked for systemd-stdio-bridge, as systemctl -H does
    assert sshd["log"].read_text().split() == ["systemd-stdio-bridge"]


def test_remote_host_unreachable(sshd) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    # opening completes the handshake, so the failure comes from opening
    with pytest.raises(OSError) as ei:
        Bus.remote_host(f"root@127.0.0.1:{closed_port}")
    assert ei.value.errno is not None


# -- opening completes the handshake -------------------------------------------------

DBUS = ("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus")


def test_an_idle_bus_outlives_the_daemons_auth_timeout() -> None:
    # dbus-daemon drops a connection that has not authenticated (and sent
    # Hello) within auth_timeout. sd-bus does both lazily, at the first call,
    # so a Bus opened at startup and first used later used to fail then
    # ("Connection terminated"). Opening now completes the handshake.
    from pystemd.testing import DBusDaemon

    with DBusDaemon(limits={"auth_timeout": 200}) as daemon:
        with Bus(daemon.address) as idle, Bus(daemon.address) as other:
            assert idle.unique_name is not None  # Hello was answered before Bus() returned
            time.sleep(0.6)  # three times the daemon's auth_timeout
            (bus_id,) = idle.call(*DBUS, "GetId")
            assert bus_id == other.call(*DBUS, "GetId")[0]
            (names,) = other.call(*DBUS, "ListNames")
            assert idle.unique_name in names


def _dbus_daemon_config(d: Path, auth: str, user: str) -> Path:
    sock = d / "bus"
    (d / "bus.conf").write_text(textwrap.dedent(f"""\
        <!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
         "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
        <busconfig>
          <type>session</type>
          <listen>unix:path={sock}</listen>
          <auth>{auth}</auth>
          <policy context="default"><allow user="{user}"/><allow own="*"/></policy>
        </busconfig>
        """))  # fmt: skip
    return d / "bus.conf"


@pytest.fixture
def refusing_dbus_daemon(tmp_path):
    """A real dbus-daemon that only offers ANONYMOUS authentication (sd-bus offers EXTERNAL)."""
    exe = shutil.which("dbus-daemon")
    if exe is None:
        unavailable("dbus-daemon not found")
    conf = _dbus_daemon_config(tmp_path, "ANONYMOUS", "*")
    proc = subprocess.Popen([exe, f"--config-file={conf}", "--nofork", "--nopidfile",
                             "--print-address=1"], stdout=subprocess.PIPE)  # fmt: skip
    try:
        address = proc.stdout.readline().decode().strip()  # type: ignore[union-attr]
        assert address.startswith("unix:path="), address
        yield address
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()  # type: ignore[union-attr]


def test_a_refused_authentication_fails_at_open(refusing_dbus_daemon) -> None:
    before = open_fds()
    with pytest.raises(PermissionError, match="authentication refused") as ei:
        Bus(refusing_dbus_daemon)
    assert refusing_dbus_daemon in str(ei.value)
    assert open_fds() == before  # the half-open connection was closed


def test_an_unanswered_handshake_times_out_at_open(tmp_path) -> None:
    # a socket that accepts connections (the kernel's backlog) but never speaks
    path = tmp_path / "silent"
    with socket.socket(socket.AF_UNIX) as srv:
        srv.bind(str(path))
        srv.listen(4)
        before = open_fds()
        with pytest.raises(
            TimeoutError, match=r"no answer to authentication and Hello within 0\.3 s"
        ):
            Bus(f"unix:path={path}", open_timeout=0.3)
        with pytest.raises(TimeoutError, match=r"no answer to authentication within 0\.3 s"):
            Bus(f"unix:path={path}", peer=True, open_timeout=0.3)
        assert open_fds() == before
    with pytest.raises(ValueError, match="positive number of seconds"):
        Bus(f"unix:path={path}", open_timeout=0)


# -- lifetime ----------------------------------------------------------------------------


def test_context_manager_close_and_fd(systemd_sandbox) -> None:
    before = open_fds()
    with Bus(systemd_sandbox.bus_address) as b:
        assert open_fds() == before + 1
        fd = b.fileno()
    assert b.closed and open_fds() == before
    with pytest.raises(OSError):
        os.fstat(fd)
    b.close()
    for op in (b.fileno, b.process, b.get_timeout, b.get_events, b.flush, lambda: b.wait(0)):
        with pytest.raises(ValueError, match="closed bus"):
            op()
    assert "closed" in repr(b)


def test_fork_child_never_touches_the_parents_connection(systemd_sandbox) -> None:
    code = f"""
    import json, os, sys
    from pystemd.bus import Bus
    S1, P, M = "org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager"
    bus = Bus({systemd_sandbox.bus_address!r})
    name = bus.unique_name
    pid = os.fork()
    if pid == 0:
        out = {{}}
        try:
            bus.get_property(S1, P, M, "Version")
        except RuntimeError as e:
            out["child_error"] = str(e)
        bus.close()  # a no-op for the parent's connection
        with Bus({systemd_sandbox.bus_address!r}) as own:
            out["child_own"] = own.unique_name != name and bool(own.get_property(S1, P, M, "Version"))
        print(json.dumps(out), flush=True)
        sys.exit(0)  # full interpreter exit in the child: the parent's bus is left alone
    _, status = os.waitpid(pid, 0)
    print(json.dumps({{"status": status, "parent_ok": bool(bus.get_property(S1, P, M, "Version")),
                      "same_name": bus.unique_name == name}}))
    bus.close()
    """
    r = run_python(code)
    assert r.stderr == ""
    child, parent = (json.loads(line) for line in r.stdout.splitlines())
    assert child == {
        "child_error": "this bus was opened before fork(); the child must open its own connection",
        "child_own": True,
    }
    assert parent == {"status": 0, "parent_ok": True, "same_name": True}


def test_exit_with_open_buses_matches_and_queued_messages_prints_nothing(systemd_sandbox) -> None:
    code = f"""
    import threading
    from pystemd.bus import Bus, system_bus
    S1, P, M = "org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager"
    a = Bus({systemd_sandbox.bus_address!r})
    b = Bus({systemd_sandbox.bus_address!r})
    kept = []
    slot = a.match_signal(None, None, None, None, kept.append)   # matches everything
    a.call(S1, P, M, "Subscribe")
    a.call(S1, P, M, "Reload")                                     # signals queue up, unprocessed
    b.call_many([(S1, P, M, "GetUnit", "s", ("nope.service",))] * 10, return_exceptions=True)
    a.process()
    cycle = [a]; cycle.append(cycle)                                # a reference cycle holding a bus
    t = threading.Thread(target=lambda: system_bus().get_property(S1, P, M, "Version"))
    import os; os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = {systemd_sandbox.bus_address!r}
    t.start(); t.join()
    """
    r = run_python(code)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


def test_unclosed_bus_in_a_cycle_is_collected(systemd_sandbox) -> None:
    # The usual shape: an object owns a Bus and registers one of its own
    # methods. sd-bus's reference to the callback is invisible to the
    # collector; Bus's tp_traverse accounts for it, so the cycle is collected.
    class Agent:
        def __init__(self, address: str) -> None:
            self.bus = Bus(address)
            self.slot = self.bus.match_signal(None, None, None, "Nothing", self.on_signal)

        def on_signal(self, m: object) -> None:
            pass

    before = open_fds()
    agent = Agent(systemd_sandbox.bus_address)
    refs = [weakref.ref(agent), weakref.ref(agent.bus), weakref.ref(agent.slot)]
    del agent
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        gc.collect()
        gc.collect()
    assert [r() for r in refs] == [None, None, None]
    assert open_fds() == before
    assert any(issubclass(x.category, ResourceWarning) and "unclosed" in str(x.message) for x in w)
