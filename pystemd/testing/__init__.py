"""Throwaway real systemd instances (and private dbus-daemons) for tests.

:class:`Sandbox` boots the host's own systemd as PID 1 of a
``systemd-nspawn --volatile=yes`` container: its root is a tmpfs with only
``/usr`` taken (read-only) from the host, so nothing it does can touch the
host's ``/etc``, ``/tmp`` or ``/var``. It boots in about a second. Each sandbox
gets its own cgroup below the host's cgroup roots, its own directory under
``/run/pystemd-testing/<name>/`` and its own private mount namespace; several
can run at once. Stopping it powers the container off and removes the
processes, the cgroups and the directory.

What a sandbox exposes:

* ``bus_address``: the container's system bus, reachable from the host
  (``unix:path=.../dbus/system_bus_socket``); ``env()`` gives
  ``DBUS_SYSTEM_BUS_ADDRESS`` for subprocesses (busctl works with it);
* ``journal_dir``: the container's journal files (``journalctl --directory``);
* ``unit_dir``: bound at ``/run/systemd/system`` inside; :meth:`add_unit`
  writes a unit file and reloads the manager;
* ``journal_socket_dir``: journald's sockets; :meth:`run_with_journal`
  runs a host command whose ``sd_journal_*`` calls land in this journal;
* :meth:`run`: run a command inside the container (all its namespaces),
  e.g. to use systemd's private socket ``/run/systemd/private``.

Root and ``systemd-nspawn`` (Debian: ``systemd-container``) are required;
without them :meth:`Sandbox.start` raises :class:`SandboxUnavailable` with one
line saying what is missing. ``python -m pystemd.testing up|down|status|list``
drives sandboxes from a shell, and ``pystemd.testing.pytest_plugin`` offers
them as pytest fixtures.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

from pystemd.errors import PystemdError

__all__ = [
    "DBusDaemon",
    "Sandbox",
    "SandboxError",
    "SandboxUnavailable",
    "list_sandboxes",
    "stop_all",
]

BASE_DIR = Path(os.environ.get("PYSTEMD_SANDBOX_DIR", "/run/pystemd-testing"))
SYSTEMD_BIN = "/usr/lib/systemd/systemd"
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class SandboxError(PystemdError):
    """The sandbox failed (did not come up, died, could not be cleaned up)."""


class SandboxUnavailable(SandboxError):
    """This machine cannot run a sandbox (no root, no systemd-nspawn, ...)."""


def _cgroup_roots() -> list[Path]:
    fs = Path("/sys/fs/cgroup")
    if (fs / "cgroup.controllers").exists():  # pure cgroup v2
        return [fs]
    roots = [fs / "systemd"] if (fs / "systemd" / "cgroup.procs").exists() else []
    if (fs / "unified" / "cgroup.procs").exists():
        roots.append(fs / "unified")
    return roots


def check_requirements() -> None:
    """Raise SandboxUnavailable naming the first thing this machine lacks."""
    if sys.platform != "linux":
        raise SandboxUnavailable("the systemd sandbox needs Linux")
    if os.geteuid() != 0:
        raise SandboxUnavailable(
            "the systemd sandbox needs root (it runs systemd-nspawn and creates cgroups)"
        )
    for tool, pkg in (
        ("systemd-nspawn", "systemd-container"),
        ("unshare", "util-linux"),
        ("nsenter", "util-linux"),
    ):
        if shutil.which(tool) is None:
            raise SandboxUnavailable(
                f"{tool} not found; install it (Debian: apt-get install {pkg})"
            )
    if not os.access(SYSTEMD_BIN, os.X_OK):
        raise SandboxUnavailable(f"{SYSTEMD_BIN} not found; install systemd")
    if not os.access("/usr/bin/dbus-daemon", os.X_OK):
        raise SandboxUnavailable("dbus-daemon not found; install it (Debian: apt-get install dbus)")
    if not _cgroup_roots():
        raise SandboxUnavailable("no usable cgroup hierarchy under /sys/fs/cgroup")


def _default_binds() -> list[str]:
    """Host paths the container needs to run this Python and this pystemd."""
    import pystemd

    paths = {
        os.path.realpath(sys.base_prefix),
        os.path.realpath(sys.prefix),
        str(Path(pystemd.__file__).resolve().parent.parent),
    }
    out = []
    for p in sorted(paths):
        if p == "/" or p.startswith("/usr/") or p == "/usr":
            continue
        if any(p.startswith(q + "/") for q in paths if q != p and not q.startswith("/usr")):
            continue
        out.append(p)
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours counts as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


class Sandbox:
    """A throwaway systemd (PID 1 of a volatile nspawn container).

    ``with Sandbox() as sb: Bus(sb.bus_address)...`` or ``sb = Sandbox().start()``
    then ``sb.stop()``. ``units`` maps unit file names to their text, written
    before boot. ``bind_ro``/``bind`` add host paths (same path inside);
    the running Python and this pystemd are bound read-only by default so
    ``sb.run([sys.executable, ...])`` works inside. ``journald_conf`` is a
    journald.conf drop-in bound at boot: by default ``Storage=volatile`` (the
    journal stays in ``journal_dir`` across rotations) and no rate limit;
    ``None`` keeps journald's own defaults.
    """

    def __init__(
        self,
        name: Optional[str] = None,
        *,
        timeout: float = 30.0,
        stop_timeout: float = 15.0,
        base_dir: Optional[os.PathLike[str] | str] = None,
        units: Optional[Mapping[str, str]] = None,
        bind_ro: Iterable[str] = (),
        bind: Iterable[str] = (),
        python: bool = True,
        keep: bool = False,
        extra_args: Sequence[str] = (),
        journald_conf: Optional[str] = "[Journal]\nStorage=volatile\nRateLimitIntervalSec=0\n",
    ) -> None:
        self.name = name or f"pystemd-{os.getpid()}-{secrets.token_hex(3)}"
        if not self.name.replace("-", "").replace("_", "").isalnum() or len(self.name) > 60:
            raise ValueError(f"invalid sandbox name {self.name!r} (letters, digits, - and _)")
        self.timeout = timeout
        self.stop_timeout = stop_timeout
        self.base_dir = Path(base_dir) if base_dir is not None else BASE_DIR
        self.dir = self.base_dir / self.name
        if len(os.fsencode(self.bus_socket)) >= 108:  # sizeof(sockaddr_un.sun_path)
            raise ValueError(
                f"base_dir {str(self.base_dir)!r} is too long: the sandbox's bus socket "
                f"{str(self.bus_socket)!r} would exceed the 107-byte limit of a unix socket path"
            )
        self.units = dict(units or {})
        self.bind_ro = list(bind_ro) + (_default_binds() if python else [])
        self.bind = list(bind)
        self.keep = keep
        self.extra_args = list(extra_args)
        self.journald_conf = journald_conf
        self.nspawn_pid: Optional[int] = None
        self._proc: Optional[subprocess.Popen[bytes]] = None
        self._cgroups: list[Path] = []
        self.system_state: Optional[str] = None

    # -- paths -----------------------------------------------------------------

    @property
    def bus_socket(self) -> Path:
        return self.dir / "dbus" / "system_bus_socket"

    @property
    def bus_address(self) -> str:
        return f"unix:path={self.bus_socket}"

    @property
    def journal_dir(self) -> Path:
        return self.dir / "journal"

    @property
    def unit_dir(self) -> Path:
        return self.dir / "units"

    @property
    def journal_socket_dir(self) -> Path:
        return self.dir / "jsock"

    @property
    def log_path(self) -> Path:
        return self.dir / "nspawn.log"

    def env(self, base: Optional[Mapping[str, str]] = None) -> dict[str, str]:
        """Environment for a host subprocess that should talk to this systemd."""
        env = dict(os.environ if base is None else base)
        env["DBUS_SYSTEM_BUS_ADDRESS"] = self.bus_address
        return env

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Sandbox {self.name} {state} {self.bus_address}>"

    # -- lifecycle -------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.nspawn_pid is not None and _alive(self.nspawn_pid)

    def start(self) -> Sandbox:
        check_requirements()
        if self.nspawn_pid is not None:
            raise SandboxError(f"sandbox {self.name} was already started")
        try:
            self._launch()
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self) -> None:
        self.base_dir.mkdir(mode=0o755, exist_ok=True)
        self.dir.mkdir(mode=0o755)
        for sub in ("dbus", "journal", "units", "jsock"):
            (self.dir / sub).mkdir()
        for unit, text in self.units.items():
            (self.unit_dir / unit).write_text(text)
        binds_ro = list(self.bind_ro)
        if self.journald_conf is not None:
            # By default journald keeps its files in /run/log/journal (the
            # host's journal_dir) even across rotation, and does not rate-limit.
            conf = self.dir / "journald.conf.d"
            conf.mkdir()
            (conf / "50-pystemd-testing.conf").write_text(self.journald_conf)
            binds_ro.append(f"{conf}:/etc/systemd/journald.conf.d")

        for root in _cgroup_roots():
            cg = root / self.name
            cg.mkdir()
            self._cgroups.append(cg)

        d = self.dir
        nspawn = [
            "systemd-nspawn", "-q", "-D", "/", "--volatile=yes", "--register=no", "--keep-unit",
            f"--machine={self.name}",
            f"--bind={d}/dbus:/run/dbus",
            f"--bind={d}/journal:/run/log/journal",
            f"--bind={d}/units:/run/systemd/system",
            f"--bind={d}/jsock:/run/systemd/journal",
            *[f"--bind-ro={p}" for p in binds_ro],
            *[f"--bind={p}" for p in self.bind],
            *self.extra_args,
            "-b", "systemd.firstboot=off",
        ]  # fmt: skip
        q = shlex.quote
        # A fresh tmpfs on /run/systemd inside a private mount namespace: nspawn
        # must not see (and clean) the host's /run/systemd/nspawn.
        inner = (
            "[ -d /run/systemd ] || mkdir -p /run/systemd; "
            "mount -t tmpfs -o mode=0755 tmpfs /run/systemd && exec " + " ".join(map(q, nspawn))
        )
        script = (
            "".join(f"echo $$ > {q(str(cg / 'cgroup.procs'))} && " for cg in self._cgroups)
            + "exec unshare --mount --propagation private sh -c "
            + q(inner)
        )
        log = open(self.log_path, "ab")
        try:
            self._proc = subprocess.Popen(
                ["sh", "-c", script],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        finally:
            log.close()
        self.nspawn_pid = self._proc.pid
        _LIVE[self.name] = self
        (self.dir / "state.json").write_text(
            json.dumps(
                {
                    "name": self.name,
                    "nspawn_pid": self.nspawn_pid,
                    "cgroups": [str(c) for c in self._cgroups],
                    "bus_address": self.bus_address,
                    "owner_pid": os.getpid(),
                }
            )
        )

    def _log_tail(self, n: int = 15) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-n:]) or "(empty log)"

    def _wait_ready(self) -> None:
        from pystemd.bus import Bus

        deadline = time.monotonic() + self.timeout
        last_err: Optional[BaseException] = None
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise SandboxError(
                    f"sandbox {self.name}: systemd-nspawn exited with status "
                    f"{self._proc.returncode} during boot; last log lines:\n{self._log_tail()}"
                )
            if self.bus_socket.exists():
                try:
                    with Bus(self.bus_address) as bus:
                        state = bus.get_property(
                            "org.freedesktop.systemd1",
                            "/org/freedesktop/systemd1",
                            "org.freedesktop.systemd1.Manager",
                            "SystemState",
                            timeout=2,
                        )
                    self.system_state = state
                    if state in ("running", "degraded"):
                        return
                except (OSError, PystemdError) as e:
                    last_err = e
            time.sleep(0.02)
        raise SandboxError(
            f"sandbox {self.name} did not reach SystemState=running within {self.timeout:g} s "
            f"(state {self.system_state!r}, last error {last_err!r}); last log lines:\n{self._log_tail()}"
        )

    def stop(self) -> None:
        """Power the container off and remove every trace of it. Idempotent."""
        pid = self.nspawn_pid
        if pid is not None and _alive(pid):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            self._wait_gone(pid, self.stop_timeout)
        # Anything left (nspawn hung, stray processes): kill by cgroup.
        self._kill_cgroups()
        if pid is not None and _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._wait_gone(pid, 5)
        if self._proc is not None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self._remove_cgroups()
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
            try:
                self.base_dir.rmdir()  # only when no other sandbox uses it
            except OSError:
                pass
        _LIVE.pop(self.name, None)
        self.nspawn_pid = None

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.pid == pid:
                if self._proc.poll() is not None:
                    return True
            elif not _alive(pid):
                return True
            time.sleep(0.02)
        return False

    def _cgroup_dirs(self) -> list[Path]:
        out = []
        for cg in self._cgroups:
            if cg.exists():
                out.extend(
                    sorted((p for p in cg.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
                )
                out.append(cg)
        return out

    def _kill_cgroups(self) -> None:
        for _ in range(50):
            pids: set[int] = set()
            for d in self._cgroup_dirs():
                try:
                    pids.update(int(x) for x in (d / "cgroup.procs").read_text().split())
                except OSError:
                    pass
            if not pids:
                return
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)

    def _remove_cgroups(self) -> None:
        for _ in range(100):
            left = False
            for d in self._cgroup_dirs():
                try:
                    d.rmdir()
                except FileNotFoundError:
                    pass
                except OSError:
                    left = True
            if not left:
                return
            time.sleep(0.05)
        raise SandboxError(f"sandbox {self.name}: could not remove cgroups {self._cgroups}")

    def __enter__(self) -> Sandbox:
        if self.nspawn_pid is None:
            self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- using it --------------------------------------------------------------

    @property
    def leader_pid(self) -> int:
        """Host PID of the container's PID 1 (systemd)."""
        if self.nspawn_pid is None:
            raise SandboxError("sandbox is not running")
        pid = self.nspawn_pid
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError as e:
            raise SandboxError(f"sandbox {self.name} is not running") from e
        for c in children:
            if _cmdline(int(c))[:1] in (["/usr/lib/systemd/systemd"], ["/lib/systemd/systemd"]):
                return int(c)
        if children:
            return int(children[0])
        raise SandboxError(f"sandbox {self.name}: no container process found")

    def bus(self) -> Any:
        """A new :class:`pystemd.bus.Bus` on the container's system bus (close it)."""
        from pystemd.bus import Bus

        return Bus(self.bus_address)

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Optional[Mapping[str, str]] = None,
        check: bool = True,
        timeout: Optional[float] = 60,
        input: Optional[bytes] = None,
        text: bool = True,
        capture_output: bool = True,
    ) -> subprocess.CompletedProcess[Any]:
        """Run ``argv`` inside the container (its mount, PID, net, IPC and UTS namespaces).

        The environment is clean (PATH only) plus ``env``.
        """
        full_env = {"PATH": CONTAINER_PATH, "LANG": "C.UTF-8"}
        if "PYTHONPATH" in os.environ:  # the caller's import path is bound inside too
            full_env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        full_env.update(env or {})
        cmd = [
            "nsenter", f"--target={self.leader_pid}", "--mount", "--uts", "--ipc", "--net",
            "--pid", "--root", "--wd=/", "--", "env", "-i",
            *[f"{k}={v}" for k, v in full_env.items()], *argv,
        ]  # fmt: skip
        return subprocess.run(
            cmd,
            check=check,
            timeout=timeout,
            input=input.encode() if (text and isinstance(input, str)) else input,
            capture_output=capture_output,
            text=text,
        )

    def run_with_journal(self, argv: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[Any]:
        """Run a host command whose /run/systemd/journal is this sandbox's journald.

        The command runs in a private mount namespace (a fresh tmpfs on
        /run/systemd, journald's socket directory bound into it), so the
        host's /run/systemd is left as it was.
        """
        q = shlex.quote
        inner = (
            "[ -d /run/systemd ] || mkdir -p /run/systemd; "
            "mount -t tmpfs -o mode=0755 tmpfs /run/systemd && mkdir /run/systemd/journal && "
            f"mount --bind {q(str(self.journal_socket_dir))} /run/systemd/journal && "
            "exec " + " ".join(map(q, argv))
        )
        kw.setdefault("check", True)
        kw.setdefault("timeout", 60)
        return subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", inner], **kw
        )

    def manager_call(
        self, method: str, signature: str = "", *args: Any, timeout: float = 30
    ) -> tuple[Any, ...]:
        with self.bus() as bus:
            result: tuple[Any, ...] = bus.call(
                "org.freedesktop.systemd1",
                "/org/freedesktop/systemd1",
                "org.freedesktop.systemd1.Manager",
                method,
                signature,
                args,
                timeout=timeout,
            )
            return result

    def reload(self) -> None:
        """daemon-reload: make the manager see new or changed unit files."""
        self.manager_call("Reload")

    def add_unit(self, name: str, text: str, *, reload: bool = True) -> Path:
        """Write a unit file into the sandbox's /run/systemd/system (and reload)."""
        if "/" in name or not name:
            raise ValueError(f"invalid unit name {name!r}")
        path = self.unit_dir / name
        path.write_text(text)
        if reload and self.running:
            self.reload()
        return path

    def journal_files(self) -> list[Path]:
        return sorted(self.journal_dir.rglob("*.journal"))


# Sandboxes started by this process, stopped at exit if the caller forgot.
_LIVE: dict[str, Sandbox] = {}


def _stop_live() -> None:
    for sb in list(_LIVE.values()):
        try:
            sb.stop()
        except Exception as e:  # pragma: no cover - best effort at exit
            sys.stderr.write(f"pystemd.testing: could not stop {sb.name}: {e}\n")


import atexit  # noqa: E402

atexit.register(_stop_live)


def list_sandboxes(base_dir: Optional[Path] = None) -> list[dict[str, Any]]:
    """State of every sandbox with a directory under base_dir."""
    base = base_dir or BASE_DIR
    out: list[dict[str, Any]] = []
    if not base.is_dir():
        return out
    for d in sorted(base.iterdir()):
        try:
            st = json.loads((d / "state.json").read_text())
        except (OSError, ValueError):
            continue
        pid = st.get("nspawn_pid")
        st["running"] = bool(pid) and _alive(pid) and "systemd-nspawn" in _cmdline(pid)
        st["dir"] = str(d)
        out.append(st)
    return out


def _adopt(st: Mapping[str, Any], base_dir: Optional[Path] = None) -> Sandbox:
    sb = Sandbox(st["name"], base_dir=base_dir, python=False)
    pid = st.get("nspawn_pid")
    if pid and _alive(pid) and "systemd-nspawn" in _cmdline(pid):
        sb.nspawn_pid = pid
    sb._cgroups = [Path(c) for c in st.get("cgroups", [])]
    return sb


def _stop_orphans(arg: str, timeout: float = 5.0) -> None:
    """SIGTERM every process whose command line has ``arg`` and wait until
    none is left (SIGKILL after ``timeout`` s). They are not our children, so
    the wait polls /proc: a process that has exited (a zombie waiting for
    its reaper included) has an empty command line."""

    def find() -> list[int]:
        return [int(p) for p in filter(str.isdigit, os.listdir("/proc")) if arg in _cmdline(int(p))]

    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 2.0)):
        pids = find()
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while find() and time.monotonic() < deadline:
            time.sleep(0.01)


def stop_all(base_dir: Optional[Path] = None) -> list[str]:
    """Stop every sandbox and private dbus-daemon found under base_dir.

    That includes ones left behind by processes that died without cleaning up.
    """
    base = base_dir or BASE_DIR
    names = []
    for st in list_sandboxes(base_dir):
        _adopt(st, base_dir).stop()
        names.append(st["name"])
    if base.is_dir():
        for d in sorted(base.glob("dbus-*")):
            _stop_orphans(f"--config-file={d / 'bus.conf'}")
            shutil.rmtree(d, ignore_errors=True)
            names.append(d.name)
        try:
            base.rmdir()
        except OSError:
            pass
    return names


class DBusDaemon:
    """A private ``dbus-daemon`` (no systemd needed), for bus tests.

    Anyone may own any name and talk to anyone. ``limits`` sets
    ``<limit name=...>`` values, e.g. ``{"max_replies_per_connection": 128}``
    to mimic the system bus's cap on pending replies.
    """

    def __init__(
        self,
        *,
        limits: Optional[Mapping[str, int]] = None,
        timeout: float = 10.0,
        base_dir: Optional[os.PathLike[str] | str] = None,
    ) -> None:
        self.base_dir = Path(base_dir) if base_dir is not None else None
        self.limits = dict(limits or {})
        self.timeout = timeout
        self.dir: Optional[Path] = None
        self.address: Optional[str] = None
        self._proc: Optional[subprocess.Popen[bytes]] = None

    def start(self) -> DBusDaemon:
        exe = shutil.which("dbus-daemon")
        if exe is None:
            raise SandboxUnavailable(
                "dbus-daemon not found; install it (Debian: apt-get install dbus-daemon)"
            )
        base = self.base_dir or (BASE_DIR if os.geteuid() == 0 else Path(tempfile.gettempdir()))
        base.mkdir(mode=0o755, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix="dbus-", dir=base))
        sock = self.dir / "bus"
        limits = "".join(f'  <limit name="{k}">{int(v)}</limit>\n' for k, v in self.limits.items())
        (self.dir / "bus.conf").write_text(
            '<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"\n'
            ' "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">\n'
            "<busconfig>\n"
            "  <type>session</type>\n"
            f"  <listen>unix:path={sock}</listen>\n"
            "  <auth>EXTERNAL</auth>\n"
            '  <policy context="default">\n'
            '    <allow user="*"/>\n'
            '    <allow own="*"/>\n'
            '    <allow send_destination="*" eavesdrop="true"/>\n'
            '    <allow eavesdrop="true"/>\n'
            "  </policy>\n" + limits + "</busconfig>\n"
        )
        self._proc = subprocess.Popen(
            [
                exe,
                f"--config-file={self.dir / 'bus.conf'}",
                "--nofork",
                "--nopidfile",
                "--print-address=1",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        assert self._proc.stdout is not None
        import select

        ready, _, _ = select.select([self._proc.stdout], [], [], self.timeout)
        line = self._proc.stdout.readline().decode().strip() if ready else ""
        if not line:
            err = (
                self._proc.stderr.read().decode()
                if self._proc.poll() is not None and self._proc.stderr
                else ""
            )
            self.stop()
            raise SandboxError(
                f"dbus-daemon did not start within {self.timeout:g} s: {err.strip()}"
            )
        self.address = line
        _LIVE_DBUS.add(self)
        return self

    def stop(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(5)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            for s in (self._proc.stdout, self._proc.stderr):
                if s is not None:
                    s.close()
            self._proc = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            try:
                self.dir.parent.rmdir()
            except OSError:
                pass
            self.dir = None
        _LIVE_DBUS.discard(self)

    def env(self, base: Optional[Mapping[str, str]] = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        assert self.address is not None
        env["DBUS_SESSION_BUS_ADDRESS"] = self.address
        return env

    def __enter__(self) -> DBusDaemon:
        if self._proc is None:
            self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


_LIVE_DBUS: set[DBusDaemon] = set()


def _stop_live_dbus() -> None:
    for d in list(_LIVE_DBUS):
        d.stop()


atexit.register(_stop_live_dbus)
