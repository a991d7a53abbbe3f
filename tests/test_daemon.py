"""pystemd.daemon against a real NOTIFY_SOCKET: exact bytes, passed fds, credentials, errors.

The receiver is a real AF_UNIX datagram socket with SO_PASSCRED, as PID 1's
notify socket is; fds arrive through SCM_RIGHTS and are checked to be the
very files that were sent. Socket activation runs real child processes,
started by ``systemd-socket-activate`` where it can be.
"""

from __future__ import annotations

import array
import asyncio
import errno
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest

from pystemd import _daemon, daemon

REPO = Path(__file__).resolve().parent.parent
HELPERS = Path(__file__).resolve().parent / "daemon_helpers"
WAIT = 30.0  # a safety limit for waits on other processes, never an assertion


class Message:
    def __init__(self, data: bytes, fds: list[int], pid: Optional[int]) -> None:
        self.data = data
        self.fds = fds
        self.pid = pid

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)


class Receiver:
    """What PID 1 sees of sd_notify: datagrams with credentials and fds."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.held: list[Message] = []

    def recv(self, timeout: float = WAIT) -> Message:
        self.sock.settimeout(timeout)
        fds = array.array("i")
        data, anc, _flags, _addr = self.sock.recvmsg(
            1 << 16, socket.CMSG_SPACE(64 * fds.itemsize) + socket.CMSG_SPACE(12)
        )
        pid = None
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
            elif level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", payload[:12])[0]
        msg = Message(data, list(fds), pid)
        self.held.append(msg)
        return msg

    def pending(self) -> list[bytes]:
        """Everything queued right now (without waiting)."""
        out = []
        while True:
            try:
                out.append(self.recv(timeout=0).data)
            except BlockingIOError:
                return out

    def close(self) -> None:
        for m in self.held:
            for fd in m.fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.sock.close()


@pytest.fixture
def receiver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    r = Receiver(tmp_path / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", str(r.path))
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def no_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)


# ---------------------------------------------------------------------------
# the two notify forms, exact bytes


def test_python_systemd_form_sends_the_exact_state(receiver: Receiver) -> None:
    assert daemon.notify("READY=1\nSTATUS=serving") is True
    m = receiver.recv()
    assert m.data == b"READY=1\nSTATUS=serving"
    assert m.fds == []
    assert daemon.notify(status="STATUS=by keyword") is True
    assert receiver.recv().data == b"STATUS=by keyword"
    assert daemon.notify(b"X_BYTES=1\n") is True  # a trailing newline is allowed and kept
    assert receiver.recv().data == b"X_BYTES=1\n"


def test_older_pystemd_keyword_form(receiver: Receiver) -> None:
    assert daemon.notify(False, ready=1, status="x") is True
    assert receiver.recv().data == b"READY=1\nSTATUS=x"
    assert daemon.notify(False, "READY=1", status="up") is True
    assert receiver.recv().data == b"READY=1\nSTATUS=up"
    assert daemon.notify(0, "READY=1", "STATUS=two lines") is True
    assert receiver.recv().data == b"READY=1\nSTATUS=two lines"
    # True means 1 (the older pystemd sent READY=true, which systemd ignores)
    assert daemon.notify(False, ready=True, x_custom=b"raw") is True
    assert receiver.recv().data == b"READY=1\nX_CUSTOM=raw"
    assert daemon.notify(False, mainpid=os.getpid()) is True
    assert receiver.recv().data == f"MAINPID={os.getpid()}".encode()


def test_helpers_send_the_well_known_fields(receiver: Receiver) -> None:
    cases = [
        (lambda: daemon.notify_ready(), b"READY=1"),
        (lambda: daemon.notify_ready("up on :80"), b"READY=1\nSTATUS=up on :80"),
        (lambda: daemon.notify_stopping(), b"STOPPING=1"),
        (lambda: daemon.notify_stopping("bye"), b"STOPPING=1\nSTATUS=bye"),
        (lambda: daemon.notify_status("caf\u00e9 50%"), "STATUS=caf\u00e9 50%".encode()),
        (lambda: daemon.notify_errno(errno.ENOENT), b"ERRNO=2"),
        (lambda: daemon.notify_errno(5, "disk"), b"ERRNO=5\nSTATUS=disk"),
        (lambda: daemon.notify_buserror("org.example.Err"), b"BUSERROR=org.example.Err"),
        (lambda: daemon.notify_mainpid(4711), b"MAINPID=4711"),
        (lambda: daemon.notify_extend_timeout(1.5), b"EXTEND_TIMEOUT_USEC=1500000"),
        (lambda: daemon.notify_extend_timeout(3), b"EXTEND_TIMEOUT_USEC=3000000"),
        (lambda: daemon.notify_watchdog(), b"WATCHDOG=1"),
        (lambda: daemon.notify_watchdog(trigger=True), b"WATCHDOG=trigger"),
    ]
    for call, want in cases:
        assert call() is True
        assert receiver.recv().data == want


def test_reloading_carries_the_monotonic_clock(receiver: Receiver) -> None:
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert daemon.notify_reloading("reloading config") is True
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    lines = receiver.recv().data.decode().split("\n")
    assert lines[0] == "RELOADING=1"
    assert lines[1].startswith("MONOTONIC_USEC=")
    assert before <= int(lines[1].split("=", 1)[1]) <= after
    assert lines[2:] == ["STATUS=reloading config"]


# ---------------------------------------------------------------------------
# fds: the fd store, SCM_RIGHTS


def _same_file(a: int, b: int) -> bool:
    sa, sb = os.fstat(a), os.fstat(b)
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def test_fd_store_passes_the_very_fds(receiver: Receiver, tmp_path: Path) -> None:
    r, w = os.pipe()
    left, right = socket.socketpair()
    try:
        assert daemon.fd_store([w, left], "conn") is True
        m = receiver.recv()
        assert m.data == b"FDSTORE=1\nFDNAME=conn"
        assert len(m.fds) == 2
        assert _same_file(m.fds[0], w) and _same_file(m.fds[1], left.fileno())
        # they work: the received pipe end writes into our pipe, the socket talks to its peer
        os.write(m.fds[0], b"through the store")
        assert os.read(r, 100) == b"through the store"
        os.write(m.fds[1], b"hello peer")
        assert right.recv(100) == b"hello peer"

        assert daemon.fd_store([r], poll=False) is True
        m = receiver.recv()
        assert m.data == b"FDSTORE=1\nFDPOLL=0"
        assert len(m.fds) == 1 and _same_file(m.fds[0], r)

        assert daemon.fd_store_remove("conn") is True
        m = receiver.recv()
        assert m.data == b"FDSTOREREMOVE=1\nFDNAME=conn" and m.fds == []
    finally:
        os.close(r)
        os.close(w)
        left.close()
        right.close()


def test_python_systemd_form_with_fds_and_pid(receiver: Receiver) -> None:
    r, w = os.pipe()
    try:
        assert daemon.notify("FDSTORE=1\nFDNAME=p", fds=[r]) is True
        m = receiver.recv()
        assert m.data == b"FDSTORE=1\nFDNAME=p" and len(m.fds) == 1
        assert _same_file(m.fds[0], r)
        assert daemon.notify("FDSTORE=1", pid=os.getpid(), fds=(w,)) is True
        m = receiver.recv()
        assert m.pid == os.getpid() and len(m.fds) == 1 and _same_file(m.fds[0], w)
        assert daemon.notify("READY=1", fds=[]) is True  # an empty list: sent, without fds
        assert receiver.recv().fds == []
    finally:
        os.close(r)
        os.close(w)


def test_credentials_name_the_sender(receiver: Receiver) -> None:
    assert daemon.notify("X_WHO=me") is True
    assert receiver.recv().pid == os.getpid()
    if os.geteuid() != 0:
        pytest.skip("sending on behalf of another pid needs CAP_SYS_ADMIN")
    child = subprocess.Popen(["sleep", "60"])
    try:
        assert daemon.notify("X_WHO=child", pid=child.pid) is True
        m = receiver.recv()
        assert m.data == b"X_WHO=child" and m.pid == child.pid
        assert daemon.notify(False, "X_WHO=child2", pid=child.pid) is True
        assert receiver.recv().pid == child.pid
    finally:
        child.kill()
        child.wait()


# ---------------------------------------------------------------------------
# the barrier


def test_barrier_waits_for_the_manager_without_the_gil(receiver: Receiver) -> None:
    daemon.notify_status("before the barrier")
    result: list[Any] = []
    t = threading.Thread(target=lambda: result.append(daemon.notify_barrier(timeout=WAIT)))
    t.start()
    try:
        # The barrier thread is blocked in ppoll() now; this (Python) thread must
        # still run to act as the manager, which it can only with the GIL released.
        assert receiver.recv().data == b"STATUS=before the barrier"
        m = receiver.recv()
        assert m.data == b"BARRIER=1" and len(m.fds) == 1
        assert t.is_alive() and result == []  # still waiting: we hold its pipe open
        m.close()  # the manager closes the fd once everything before it is processed
        m.fds = []
    finally:
        t.join(WAIT)
    assert result == [True]


def test_barrier_timeout_and_no_socket(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TimeoutError):
        daemon.notify_barrier(timeout=0.01)  # nobody closes the fd it sent
    assert receiver.recv().data == b"BARRIER=1"
    with pytest.raises(ValueError):
        daemon.notify_barrier(timeout=-1)
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert daemon.notify_barrier() is False


# ---------------------------------------------------------------------------
# no NOTIFY_SOCKET, unset_environment


def test_without_notify_socket_everything_returns_false(no_socket: None) -> None:
    r, w = os.pipe()
    try:
        for call in (
            lambda: daemon.notify("READY=1"),
            lambda: daemon.notify(False, ready=1),
            lambda: daemon.notify("FDSTORE=1", fds=[r]),
            lambda: daemon.notify("READY=1", pid=os.getpid()),
            lambda: daemon.notify_ready("x"),
            lambda: daemon.notify_reloading(),
            lambda: daemon.notify_stopping(),
            lambda: daemon.notify_status("x"),
            lambda: daemon.notify_watchdog(),
            lambda: daemon.fd_store([w], "x"),
            lambda: daemon.fd_store_remove("x"),
            lambda: daemon.notify_barrier(),
        ):
            assert call() is False
    finally:
        os.close(r)
        os.close(w)


def test_unset_environment_forgets_the_socket(receiver: Receiver) -> None:
    assert daemon.notify("READY=1", unset_environment=True) is True
    assert receiver.recv().data == b"READY=1"
    assert "NOTIFY_SOCKET" not in os.environ
    assert daemon.notify("STATUS=nobody listens") is False
    assert receiver.pending() == []


def test_unset_environment_in_keyword_form(receiver: Receiver) -> None:
    assert daemon.notify(True, ready=1) is True
    assert receiver.recv().data == b"READY=1"
    assert os.environ.get("NOTIFY_SOCKET") is None


# ---------------------------------------------------------------------------
# bad input: a clear exception, nothing sent

BAD_STATES = [
    ("", "empty notification"),
    ("\n\n", "empty notification"),
    ("READY", "expected NAME=value"),
    ("=1", "expected NAME=value"),
    ("ready=1", "did you mean 'READY=1'"),
    ("READY=yes", "READY takes '1'"),
    ("READY=0", "READY takes '1'"),
    ("STOPPING=true", "STOPPING takes '1'"),
    ("WATCHDOG=2", "WATCHDOG takes '1' or 'trigger'"),
    ("MAINPID=0", "MAINPID must be > 0"),
    ("MAINPID=abc", "decimal integer"),
    ("ERRNO=-1", "decimal integer"),
    ("ERRNO=99999", "0..4095"),
    ("EXTEND_TIMEOUT_USEC=1.5", "decimal integer"),
    ("FDNAME=a:b", "FDNAME is 1..255"),
    ("FDNAME=" + "x" * 256, "FDNAME is 1..255"),
    ("FDSTOREREMOVE=1", "needs FDNAME="),
    ("BARRIER=1", "notify_barrier()"),
    ("READY=1\0", "embedded null"),
    ("X-DASH=1", "upper case letters"),
    ("1ABC=1", "upper case letters"),
]


@pytest.mark.parametrize(("state", "message"), BAD_STATES)
def test_invalid_state_raises_and_sends_nothing(
    receiver: Receiver, state: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        daemon.notify(state)
    assert receiver.pending() == []


def test_invalid_state_raises_without_a_socket_too(no_socket: None) -> None:
    with pytest.raises(ValueError, match="did you mean"):
        daemon.notify("ready=1")
    with pytest.raises(ValueError):
        daemon.notify(False, ready="yes")


def test_bad_arguments(receiver: Receiver) -> None:
    r, w = os.pipe()
    try:
        with pytest.raises(ValueError, match="only kept by systemd with FDSTORE=1"):
            daemon.notify("READY=1", fds=[r])
        with pytest.raises(TypeError):
            daemon.notify(1.5)
        with pytest.raises(TypeError, match="unexpected keyword argument 'ready'"):
            daemon.notify("READY=1", ready=1)
        with pytest.raises(TypeError):
            daemon.notify(False, 5)
        with pytest.raises(ValueError):
            daemon.notify("READY=1", pid=-1)
        with pytest.raises(TypeError):
            daemon.notify("READY=1", pid="1")
        with pytest.raises(TypeError):
            daemon.notify("FDSTORE=1", fds=[1.5])
        with pytest.raises(TypeError):
            daemon.notify("FDSTORE=1", fds="3")
        with pytest.raises(ValueError, match="single line"):
            daemon.notify_ready("two\nlines")
        with pytest.raises(ValueError, match="at least one"):
            daemon.fd_store([])
        with pytest.raises(ValueError, match="invalid fd name"):
            daemon.fd_store([r], "a:b")
        with pytest.raises(ValueError, match="invalid fd name"):
            daemon.fd_store_remove("")
        with pytest.raises(TypeError):
            daemon.notify_errno("ENOENT")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            daemon.notify_extend_timeout(-1)
        assert receiver.pending() == []
    finally:
        os.close(r)
        os.close(w)


def test_closed_fd_is_named_with_or_without_a_socket(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    fd = os.open(os.devnull, os.O_RDONLY)
    os.close(fd)
    for _ in range(2):
        with pytest.raises(OSError, match=f"fd {fd} is not open") as ei:
            daemon.fd_store([fd], "x")
        assert ei.value.errno == errno.EBADF
        with pytest.raises(OSError, match=f"fd {fd} is not open"):
            daemon.notify("FDSTORE=1", fds=[fd])
        assert receiver.pending() == []
        monkeypatch.delenv("NOTIFY_SOCKET", raising=False)  # round 2: unsupervised, still an error


def test_notify_socket_that_does_not_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "missing.sock"
    monkeypatch.setenv("NOTIFY_SOCKET", str(missing))
    with pytest.raises(FileNotFoundError, match=f"NOTIFY_SOCKET={missing}"):
        daemon.notify_ready()
    with pytest.raises(FileNotFoundError):
        daemon.notify("READY=1")
    with pytest.raises(FileNotFoundError):
        daemon.notify_barrier()


@pytest.mark.parametrize("kind", ["/dev/null", "regular file", "directory"])
def test_notify_socket_that_is_not_a_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    if kind == "/dev/null":
        target = "/dev/null"
    elif kind == "regular file":
        (tmp_path / "file").write_text("not a socket")
        target = str(tmp_path / "file")
    else:
        target = str(tmp_path)
    monkeypatch.setenv("NOTIFY_SOCKET", target)
    with pytest.raises(ConnectionRefusedError, match=f"NOTIFY_SOCKET={target}"):
        daemon.notify_ready()


def test_notify_socket_that_is_a_stream_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(tmp_path / "stream.sock"))
    s.listen(1)
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "stream.sock"))
        with pytest.raises(OSError, match="NOTIFY_SOCKET=") as ei:
            daemon.notify_ready()
        assert ei.value.errno == errno.EPROTOTYPE
    finally:
        s.close()


def test_relative_notify_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "relative.sock")
    with pytest.raises(OSError, match=r"NOTIFY_SOCKET=relative\.sock") as ei:
        daemon.notify_ready()
    assert ei.value.errno == errno.EINVAL


# ---------------------------------------------------------------------------
# the watchdog


@pytest.fixture
def watchdog_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # 0.4 s: pings every 0.2 s. (The receiver's queue holds 10 datagrams; a test
    # thread starved for 2 s would let it fill, and a ping then blocks.)
    monkeypatch.setenv("WATCHDOG_USEC", "400000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))


def test_watchdog_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert daemon.watchdog_enabled() == 0
    monkeypatch.setenv("WATCHDOG_USEC", "2500000")
    assert daemon.watchdog_enabled() == 2_500_000  # no WATCHDOG_PID: meant for us
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert daemon.watchdog_enabled() == 2_500_000
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert daemon.watchdog_enabled() == 0  # meant for another process
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    monkeypatch.setenv("WATCHDOG_USEC", "soon")
    with pytest.raises(OSError, match="WATCHDOG_USEC=soon") as ei:
        daemon.watchdog_enabled()
    assert ei.value.errno == errno.EINVAL
    monkeypatch.setenv("WATCHDOG_USEC", "3000000")
    assert daemon.watchdog_enabled(unset_environment=True) == 3_000_000
    assert "WATCHDOG_USEC" not in os.environ and "WATCHDOG_PID" not in os.environ
    assert daemon.watchdog_enabled() == 0


def _wait_for(cond: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.005)


def test_watchdog_thread_pings_and_stops_cleanly(receiver: Receiver, watchdog_env: None) -> None:
    wd = daemon.Watchdog()
    assert wd.enabled and wd.interval == 0.4 and wd.period == 0.2
    with wd:
        assert wd.running
        for _ in range(3):
            assert receiver.recv().data == b"WATCHDOG=1"
    assert not wd.running
    assert wd._thread is None
    assert not any(t.name == "pystemd-watchdog" for t in threading.enumerate())
    # after stop() returned nothing can be sent any more: what is queued is all there is
    queued = receiver.pending()
    assert set(queued) <= {b"WATCHDOG=1"}
    assert wd.pings == 3 + len(queued)
    assert receiver.pending() == []
    wd.stop()  # idempotent


def test_watchdog_check_gates_the_pings(receiver: Receiver, watchdog_env: None) -> None:
    calls = []
    healthy = threading.Event()

    def check() -> bool:
        calls.append(1)
        return healthy.is_set()

    wd = daemon.Watchdog(check=check).start()
    try:
        _wait_for(lambda: len(calls) >= 3, "three health checks")
        assert receiver.pending() == []  # unhealthy: not a single ping
        healthy.set()
        assert receiver.recv().data == b"WATCHDOG=1"
    finally:
        wd.stop()


def test_watchdog_error_stops_pinging_and_is_raised_by_stop(
    receiver: Receiver, watchdog_env: None
) -> None:
    def check() -> bool:
        raise RuntimeError("health check exploded")

    wd = daemon.Watchdog(check=check).start()
    _wait_for(lambda: not wd.running, "the watchdog thread to end")
    assert isinstance(wd.error, RuntimeError)
    with pytest.raises(RuntimeError, match="exploded"):
        wd.stop()
    assert receiver.pending() == []


def test_watchdog_thread_refuses_an_async_check(receiver: Receiver, watchdog_env: None) -> None:
    async def check() -> bool:
        return True

    wd = daemon.Watchdog(check=check).start()
    _wait_for(lambda: not wd.running, "the watchdog thread to end")
    with pytest.raises(TypeError, match="start_task"):
        wd.stop()
    assert receiver.pending() == []


def test_watchdog_ping_failure_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    wd = daemon.Watchdog(0.1).start()
    _wait_for(lambda: not wd.running, "the watchdog thread to end")
    with pytest.raises(FileNotFoundError):
        wd.stop()


def test_watchdog_disabled_is_a_no_op(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    wd = daemon.Watchdog()
    assert not wd.enabled and wd.period is None
    with wd:
        assert not wd.running
    assert receiver.pending() == []
    with pytest.raises(ValueError):
        daemon.Watchdog(0)
    with pytest.raises(TypeError):
        daemon.Watchdog("1")  # type: ignore[arg-type]


def test_watchdog_twice_is_refused(receiver: Receiver, watchdog_env: None) -> None:
    wd = daemon.Watchdog().start()
    try:
        with pytest.raises(RuntimeError, match="already running"):
            wd.start()
    finally:
        wd.stop()


def test_watchdog_asyncio_task(receiver: Receiver, watchdog_env: None) -> None:
    receiver.sock.setblocking(False)
    checks: list[int] = []

    async def check() -> bool:  # a coroutine function works as check too
        checks.append(1)
        return True

    async def main() -> tuple[int, bool]:
        loop = asyncio.get_running_loop()
        async with daemon.Watchdog(check=check) as wd:
            assert wd.running
            for _ in range(3):
                data = await asyncio.wait_for(loop.sock_recv(receiver.sock, 100), WAIT)
                assert data == b"WATCHDOG=1"
            task = wd._task
        assert task is not None and task.done() and task.cancelled()
        return wd.pings, wd.running

    pings, running = asyncio.run(main())
    assert not running and pings >= 3 and len(checks) >= 3
    assert set(receiver.pending()) <= {b"WATCHDOG=1"}


def test_watchdog_asyncio_error_is_raised_by_aclose(receiver: Receiver, watchdog_env: None) -> None:
    def check() -> bool:
        raise RuntimeError("unhealthy")

    async def main() -> None:
        wd = daemon.Watchdog(check=check)
        task = wd.start_task()
        await asyncio.wait([task])
        await wd.aclose()

    with pytest.raises(RuntimeError, match="unhealthy"):
        asyncio.run(main())


def test_watchdog_asyncio_disabled_returns_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)

    async def main() -> bool:
        wd = daemon.Watchdog()
        await wd.run()
        return wd.running

    assert asyncio.run(main()) is False


# ---------------------------------------------------------------------------
# socket activation (real child processes)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _connect_unix(path: Path) -> socket.socket:
    deadline = time.monotonic() + WAIT
    while True:
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            c.connect(str(path))
            return c
        except (FileNotFoundError, ConnectionRefusedError):
            c.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@pytest.fixture
def socket_activate() -> str:
    tool = shutil.which("systemd-socket-activate")
    if tool is None:
        from pystemd.testing.pytest_plugin import unavailable

        unavailable("systemd-socket-activate not found (Debian: systemd)")
    return str(tool)


def test_listen_sockets_from_systemd_socket_activate(socket_activate: str, tmp_path: Path) -> None:
    path = tmp_path / "activate.sock"
    port = _free_port()
    proc = subprocess.Popen(
        [
            socket_activate, "-l", str(path), "-l", f"127.0.0.1:{port}", "--fdname=local:tcp",
            f"--setenv=PYSTEMD_REPO={REPO}", sys.executable, str(HELPERS / "activated_child.py"), "serve",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        c1 = _connect_unix(path)  # the first connection starts the child
        c1.sendall(b"over unix")
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info["sockets"] == {
            "local": [
                {
                    "fd": 3,
                    "family": int(socket.AF_UNIX),
                    "type": int(socket.SOCK_STREAM),
                    "listening": True,
                }
            ],
            "tcp": [
                {
                    "fd": 4,
                    "family": int(socket.AF_INET),
                    "type": int(socket.SOCK_STREAM),
                    "listening": True,
                }
            ],
        }
        assert info["env_left"] == []
        c1.settimeout(WAIT)
        assert c1.recv(100) == b"child:over unix"
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as c2:
            c2.sendall(b"over tcp")
            assert c2.recv(100) == b"child:over tcp"
        c1.close()
        assert proc.wait(WAIT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_listen_fds_cloexec_and_unset(socket_activate: str, tmp_path: Path) -> None:
    path = tmp_path / "a.sock"
    proc = subprocess.Popen(
        [
            socket_activate, "-l", str(path), "-l", str(tmp_path / "b.sock"), "--fdname=a:b",
            f"--setenv=PYSTEMD_REPO={REPO}", sys.executable, str(HELPERS / "activated_child.py"), "fds",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        with _connect_unix(path):
            out, err = proc.communicate(timeout=WAIT)
        assert proc.returncode == 0, err
        info = json.loads(out)
        assert info["listen_fds"] == [3, 4]
        assert info["with_names"] == {"3": "a", "4": "b"}
        assert info["fd_info"] == [{"fd": 3, "cloexec": True}, {"fd": 4, "cloexec": True}]
        assert info["after_unset"] == []
        assert info["env_left"] == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_listen_sockets_refuses_a_non_socket(tmp_path: Path) -> None:
    # systemd passes FIFOs (ListenFIFO=) and stored fds of any kind the same way
    r, w = os.pipe()
    sock = socket.socket()
    fds = [sock.fileno(), r]

    def become_activated() -> None:  # in the child, before exec
        for i, fd in enumerate(fds):
            os.dup2(fd, 100 + i)
        for i in range(len(fds)):
            os.dup2(100 + i, 3 + i)
        os.putenv("LISTEN_PID", str(os.getpid()))
        os.putenv("LISTEN_FDS", str(len(fds)))
        os.putenv("LISTEN_FDNAMES", "sock:fifo")
        os.putenv("PYSTEMD_REPO", str(REPO))

    try:
        out = subprocess.run(
            [sys.executable, str(HELPERS / "activated_child.py"), "strict"],
            preexec_fn=become_activated,
            pass_fds=(3, 4),
            capture_output=True,
            text=True,
            timeout=WAIT,
        )
        assert out.returncode == 0, out.stderr
        info = json.loads(out.stdout)
        assert info["error"].startswith("fd 4 ('fifo') passed by systemd is not a socket")
        assert info["env_left"] == ["LISTEN_FDNAMES", "LISTEN_FDS", "LISTEN_PID"]  # untouched
    finally:
        os.close(r)
        os.close(w)
        sock.close()


def test_listen_fds_in_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LISTEN_FDS", raising=False)
    assert daemon.listen_fds() == []
    assert daemon.listen_fds_with_names() == {}
    assert daemon.listen_sockets() == []
    assert daemon.listen_sockets_with_names() == {}
    monkeypatch.setenv("LISTEN_PID", "1")  # for another process: ignored
    monkeypatch.setenv("LISTEN_FDS", "2")
    assert daemon.listen_fds() == []
    assert "LISTEN_FDS" not in os.environ  # unset by default, os.environ too
    monkeypatch.setenv("LISTEN_PID", str(os.getpid()))
    monkeypatch.setenv("LISTEN_FDS", "many")
    with pytest.raises(OSError) as ei:
        daemon.listen_fds(False)
    assert ei.value.errno == errno.EINVAL


# ---------------------------------------------------------------------------
# what is this fd?


def test_is_checks_on_real_fds(tmp_path: Path) -> None:
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(1)
    port = tcp.getsockname()[1]
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    unix.bind(str(tmp_path / "u.sock"))
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    abstract.bind(b"\0pystemd-test-%d" % os.getpid())
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    ffd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        assert daemon.is_socket(tcp) and daemon.is_socket(tcp.fileno())
        assert daemon.is_socket(tcp, socket.AF_INET, socket.SOCK_STREAM, 1)
        assert not daemon.is_socket(tcp, socket.AF_INET, socket.SOCK_STREAM, 0)
        assert not daemon.is_socket(udp, socket.AF_INET, socket.SOCK_STREAM)
        assert daemon.is_socket_inet(tcp, port=port) and not daemon.is_socket_inet(unix)
        assert daemon.is_socket_sockaddr(tcp, f"127.0.0.1:{port}")
        assert daemon.is_socket_sockaddr(tcp, ("127.0.0.1", port))
        assert daemon.is_socket_sockaddr(tcp, "127.0.0.1", socket.SOCK_STREAM, listening=1)
        assert not daemon.is_socket_sockaddr(tcp, f"127.0.0.2:{port}")
        assert daemon.is_socket_unix(unix, socket.SOCK_DGRAM, path=tmp_path / "u.sock")
        assert not daemon.is_socket_unix(unix, path="/elsewhere")
        name = f"@pystemd-test-{os.getpid()}"
        assert daemon.is_socket_unix(abstract, path=name)
        assert daemon.is_socket_unix(abstract, path=b"\0" + name[1:].encode())
        assert daemon.is_fifo(ffd) and daemon.is_fifo(ffd, fifo) and not daemon.is_fifo(tcp)
        assert not daemon.is_mq(ffd)
        assert not daemon.is_special(ffd)
        with open("/dev/null") as devnull:
            assert daemon.is_special(devnull, "/dev/null")
    finally:
        for s in (tcp, udp, unix, abstract):
            s.close()
        os.close(ffd)


def test_is_checks_bad_input() -> None:
    fd = os.open(os.devnull, os.O_RDONLY)
    os.close(fd)
    with pytest.raises(OSError, match=f"'fd {fd}'") as ei:
        daemon.is_socket(fd)
    assert ei.value.errno == errno.EBADF
    with pytest.raises(OSError, match=f"fd {fd}"):
        daemon.is_fifo(fd, "/tmp")
    with pytest.raises(ValueError, match="invalid file descriptor"):
        daemon.is_socket(-1)
    with pytest.raises(TypeError):
        daemon.is_socket("3")  # type: ignore[arg-type]
    with socket.socket() as s:
        with pytest.raises(ValueError, match="cannot parse socket address 'nope'"):
            daemon.is_socket_sockaddr(s, "nope")
        with pytest.raises(ValueError, match="cannot parse socket address"):
            daemon.is_socket_sockaddr(s, "127.0.0.1:99999999999")
        with pytest.raises(ValueError, match="flowinfo"):
            daemon.is_socket_sockaddr(s, "127.0.0.1", flowinfo=1)
        with pytest.raises(ValueError, match="port"):
            daemon.is_socket_inet(s, port=70000)


def test_booted_matches_the_runtime_directory() -> None:
    assert daemon.booted() is os.path.isdir("/run/systemd/system")


# ---------------------------------------------------------------------------
# a small, cheap import


def test_import_loads_nothing_heavy() -> None:
    code = (
        "import sys, json; before = set(sys.modules); import pystemd.daemon; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/"
    )
    added = set(json.loads(out.stdout))
    # only pystemd's own modules (and Cython's bookkeeping module): no socket,
    # threading, asyncio, typing, errors or bus layer
    assert added - {"cython_runtime"} == {
        "pystemd",
        "pystemd._daemon",
        "pystemd._errors",
        "pystemd.daemon",
    }


def test_version_is_pystemds() -> None:
    import pystemd

    assert daemon.__version__ == pystemd.__version__
    assert daemon.LISTEN_FDS_START == 3


# ---------------------------------------------------------------------------
# a blocked send: the GIL is released, signals are honoured


def _fill(receiver: Receiver) -> int:
    """Queue datagrams until the receiver's queue is full (the next send blocks)."""
    c = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    c.setblocking(False)
    n = 0
    try:
        while True:
            c.sendto(b"X_FILL=1", str(receiver.path))
            n += 1
    except BlockingIOError:
        return n
    finally:
        c.close()


def _blocked_in_sendmsg(tid: int) -> bool:
    try:
        nr = Path(f"/proc/self/task/{tid}/syscall").read_text().split()[0]
    except (OSError, IndexError):
        return False
    return nr == "46"  # x86-64 sendmsg


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="reads the x86-64 syscall number")
def test_blocked_send_releases_the_gil_and_honours_signals(receiver: Receiver) -> None:
    import signal

    main_tid = threading.get_native_id()  # the kernel's id, for /proc
    main_ident = threading.get_ident()  # the pthread_t, for pthread_kill
    seen: list[int] = []
    raise_it = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        seen.append(signum)
        if raise_it.is_set():
            raise RuntimeError("interrupted by the handler")

    def helper(drain: int) -> None:
        # runs Python while the main thread is blocked in sendmsg(): the GIL is free
        _wait_for(lambda: _blocked_in_sendmsg(main_tid), "the send to block")
        signal.pthread_kill(main_ident, signal.SIGUSR1)
        if drain:
            _wait_for(lambda: bool(seen), "the handler to run")
            _wait_for(lambda: _blocked_in_sendmsg(main_tid), "the send to block again")
            for _ in range(drain):  # exactly the filler: what the main thread sends comes after
                assert receiver.recv().data == b"X_FILL=1"

    old = signal.signal(signal.SIGUSR1, handler)
    try:
        # 1. a handler that returns: the send is retried and completes once there is room
        queued = _fill(receiver)
        assert queued > 0
        t = threading.Thread(target=helper, args=(queued,))
        t.start()
        assert daemon.notify("X_AFTER=1") is True
        t.join(WAIT)
        assert seen == [signal.SIGUSR1]
        assert receiver.recv().data == b"X_AFTER=1"

        # 2. a handler that raises: the exception comes out of notify()
        raise_it.set()
        _fill(receiver)
        t = threading.Thread(target=helper, args=(0,))
        t.start()
        with pytest.raises(RuntimeError, match="interrupted by the handler"):
            daemon.notify("X_NEVER=1")
        t.join(WAIT)
        assert b"X_NEVER=1" not in receiver.pending()
    finally:
        signal.signal(signal.SIGUSR1, old)


# ---------------------------------------------------------------------------
# no leaks: fds and references flat over many calls, failing ones included


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_no_fd_or_reference_leaks(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    import gc
    import sys as _sys

    r, w = os.pipe()
    closed = 4000  # not a freed low number: received fds would take it over
    with pytest.raises(OSError):
        os.fstat(closed)
    monkeypatch.setenv("LISTEN_PID", str(os.getpid()))
    monkeypatch.setenv("LISTEN_FDNAMES", "a")

    class Fd(int):  # an fd object of its own (small ints are shared, their counts move)
        pass

    fd_obj = Fd(r)
    refs = _sys.getrefcount(fd_obj)

    def round_() -> None:
        # (the receiver reads as it goes: a datagram queue holds few messages,
        # net.unix.max_dgram_qlen, 10 on this machine)
        for _ in range(200):
            assert daemon.notify("X_A=1")
            receiver.recv()
            assert daemon.fd_store([fd_obj, w], "x")
            m = receiver.recv()
            assert len(m.fds) == 2
            assert _daemon.pid_notify_with_fds(0, False, b"FDSTORE=1", [fd_obj])  # the C path
            assert len(receiver.recv().fds) == 1
            with pytest.raises(ValueError):
                daemon.notify("bad")
            with pytest.raises(OSError):
                daemon.fd_store([fd_obj, closed])
            with pytest.raises(ValueError):
                daemon.notify("READY=1", fds=[fd_obj])
            with pytest.raises(OSError):
                daemon.is_socket(closed)
            os.environ["LISTEN_FDS"] = "1"
            daemon.listen_fds_with_names(False)
            for m in receiver.held:
                m.close()
            receiver.held.clear()

    try:
        round_()  # warm-up
        gc.collect()
        before = _open_fds()
        for _ in range(5):
            round_()
        gc.collect()
        assert _open_fds() == before
        assert _sys.getrefcount(fd_obj) == refs
    finally:
        os.close(r)
        os.close(w)
