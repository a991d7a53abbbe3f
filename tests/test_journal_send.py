"""Writing to the journal (pystemd._writer / pystemd._jsend) against a real journald.

Entries are written by a subprocess whose /run/systemd/journal is the
sandbox's (``Sandbox.run_with_journal``: libsystemd always writes to that fixed
path) or, for the stdout stream, by a process inside the container; they are
read back with ``journalctl --directory ... -o export``, an independent reader,
and compared byte for byte. Failures (no socket, refused socket, bad input)
use real sockets in private mount namespaces. The python-systemd comparison is
in test_journal_send_compat.py.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from pystemd import _jsend, _writer
from pystemd._jsend import FieldError

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
PYSYSTEMD = REPO / ".venv-pysystemd" / "bin" / "python"

Entry = dict[str, list[bytes]]


# -- helpers (also used by test_journal_send_compat.py) ------------------------------


def parse_export(data: bytes) -> list[Entry]:
    """journalctl's export format: ``NAME=value`` lines, or ``NAME``, le64 size, data."""
    entries: list[Entry] = []
    cur: Entry = {}
    i = 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if not line:
            if cur:
                entries.append(cur)
                cur = {}
            i = nl + 1
            continue
        if b"=" in line:
            name, value = line.split(b"=", 1)
            i = nl + 1
        else:
            name = line
            size = int.from_bytes(data[nl + 1 : nl + 9], "little")
            value = data[nl + 9 : nl + 9 + size]
            assert data[nl + 9 + size : nl + 10 + size] == b"\n"
            i = nl + 10 + size
        cur.setdefault(name.decode(), []).append(value)
    if cur:
        entries.append(cur)
    return entries


def read_entries(
    journal_dir: Path,
    match: str,
    want: int = 0,
    *,
    until: Optional[Callable[[list[Entry]], bool]] = None,
    timeout: float = 20,
) -> list[Entry]:
    """The entries matching ``match`` (``FIELD=value``), read with journalctl.

    Waits (journald writes asynchronously) until there are ``want`` of them or
    ``until(entries)`` holds, at most ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        cp = subprocess.run(
            ["journalctl", f"--directory={journal_dir}", "-o", "export", "--no-pager", match],
            capture_output=True,
            timeout=60,
        )
        entries = parse_export(cp.stdout) if cp.returncode == 0 else []
        done = until(entries) if until is not None else len(entries) >= want
        if done or time.monotonic() > deadline:
            return entries
        time.sleep(0.05)


def line_of(script: Path, needle: str) -> bytes:
    """The line number (as journald stores it) of the first line containing ``needle``."""
    for i, line in enumerate(script.read_text().splitlines(), 1):
        if needle in line:
            return str(i).encode()
    raise AssertionError(f"{needle!r} not in {script}")


def user_fields(e: Entry) -> dict[str, list[bytes]]:
    """The fields the client sent (journald's trusted ones start with _)."""
    return {k: v for k, v in e.items() if not k.startswith("_")}


def one(e: Entry, name: str) -> bytes:
    assert len(e[name]) == 1, (name, e[name])
    return e[name][0]


def write_script(tmp_path: Path, body: str, name: str = "writer.py") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(body))
    return p


def run_host(
    sb: Any, script: Path, *args: str, python: os.PathLike[str] | str = PY
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` on the host with the sandbox's journald at /run/systemd/journal."""
    cp: subprocess.CompletedProcess[str] = sb.run_with_journal(
        [str(python), "-I", str(script), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=str(script.parent),
    )
    assert cp.returncode == 0, cp.stdout + cp.stderr
    return cp


def run_private_ns(setup: str, script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` where /run/systemd is a fresh tmpfs, after the shell ``setup``."""
    inner = (
        "mount -t tmpfs -o mode=0755 tmpfs /run/systemd && "
        + setup
        + f" exec {PY} -I {script} "
        + " ".join(args)
    )
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", inner],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(script.parent),
    )


def new_run() -> str:
    return uuid.uuid4().hex


# -- entries through the sandbox's journald --------------------------------------------

BINARY_VALUES = {
    "NUL": b"a\x00b",
    "HIGH": bytes(range(256)),
    "NEWLINES": b"line1\nline2\n",
    "TRAILING": b"trailing spaces   ",
    "EMPTY": b"",
    "LONE_NL": b"\n",
}


@pytest.mark.sandbox
def test_send_is_binary_safe_and_locates_its_caller(systemd_sandbox: Any, tmp_path: Path) -> None:
    run = new_run()
    script = write_script(
        tmp_path,
        f"""
        import sys, uuid
        from pystemd._writer import send
        run = sys.argv[1]
        BINARY = {BINARY_VALUES!r}

        def caller():
            send("bin\\nmessage \\u2603", MESSAGE_ID=uuid.UUID(int=7), SYSLOG_IDENTIFIER="jwtest",
                 TEST_RUN=run, TEST_CASE="binary", UNI="h\\u00e9llo \\u2603", INT=42, LIST=[1, 2],
                 NONE=None, **BINARY)

        caller()

        def deep(n):
            if n:
                return deep(n - 1)
            send(b"bytes message \\xff", TEST_RUN=run, TEST_CASE="deep")
        deep(300)
        send("explicit", CODE_LINE=7, TEST_RUN=run, TEST_CASE="explicit")
        """,
    )
    run_host(systemd_sandbox, script, run)
    entries = {
        one(e, "TEST_CASE"): e
        for e in read_entries(systemd_sandbox.journal_dir, f"TEST_RUN={run}", 3)
    }
    assert set(entries) == {b"binary", b"deep", b"explicit"}

    e = entries[b"binary"]
    assert one(e, "MESSAGE") == "bin\nmessage \u2603".encode()
    assert one(e, "MESSAGE_ID") == b"00000000000000000000000000000007"
    assert one(e, "UNI") == "h\u00e9llo \u2603".encode()
    assert one(e, "INT") == b"42" and one(e, "LIST") == b"[1, 2]" and one(e, "NONE") == b"None"
    for name, value in BINARY_VALUES.items():
        assert one(e, name) == value, name
    assert one(e, "CODE_FILE") == str(script).encode()
    assert one(e, "CODE_LINE") == line_of(script, 'send("bin')
    assert one(e, "CODE_FUNC") == b"caller"
    assert one(e, "_TRANSPORT") == b"journal"

    d = entries[b"deep"]
    assert one(d, "MESSAGE") == b"bytes message \xff"
    assert (one(d, "CODE_FUNC"), one(d, "CODE_LINE")) == (b"deep", line_of(script, "bytes message"))
    # only CODE_LINE given: python-systemd's rule, the other two are left out
    x = entries[b"explicit"]
    assert one(x, "CODE_LINE") == b"7" and "CODE_FILE" not in x and "CODE_FUNC" not in x


@pytest.mark.sandbox
def test_large_fields_and_repeated_fields(systemd_sandbox: Any, tmp_path: Path) -> None:
    run = new_run()
    script = write_script(
        tmp_path,
        """
        import sys
        from pystemd._writer import send, sendv
        run = sys.argv[1]
        big = bytes(range(256)) * 4096                  # 1 MiB: one datagram
        huge = (b"0123456789abcdef\\n" * 65536) * 10    # 10 MiB: past SO_SNDBUF, libsystemd's memfd path
        send("big", BIG=big, TEST_RUN=run, TEST_CASE="big")
        send("huge", HUGE=huge, TEST_RUN=run, TEST_CASE="huge")
        sendv("MESSAGE=multi", "MULTI=a", b"MULTI=\\xff", "MULTI=c\\nd", "TEST_RUN=" + run, "TEST_CASE=multi")
        """,
    )
    run_host(systemd_sandbox, script, run)
    entries = {
        one(e, "TEST_CASE"): e
        for e in read_entries(systemd_sandbox.journal_dir, f"TEST_RUN={run}", 3)
    }
    assert one(entries[b"big"], "BIG") == bytes(range(256)) * 4096
    assert one(entries[b"huge"], "HUGE") == (b"0123456789abcdef\n" * 65536) * 10
    assert sorted(entries[b"multi"]["MULTI"]) == sorted([b"a", b"\xff", b"c\nd"])
    # sendv adds no location of its own (neither Python's nor libsystemd's C one)
    assert "CODE_FILE" not in entries[b"multi"]


@pytest.mark.sandbox
def test_older_pystemd_forms(systemd_sandbox: Any, tmp_path: Path) -> None:
    run = new_run()
    script = write_script(
        tmp_path,
        """
        import pathlib, sys
        from pystemd._writer import log, sendv
        run = sys.argv[1]

        def handler():
            log(3, "old-style log", SYSLOG_IDENTIFIER="jwold", FLAG=True, TEST_RUN=run, TEST_CASE="log")

        handler()
        sendv("PRIORITY=6", MESSAGE="old-style sendv", FLAG=False, WHERE=pathlib.Path("/a/b"),
              TEST_RUN=run, TEST_CASE="sendv")
        """,
    )
    run_host(systemd_sandbox, script, run)
    entries = {
        one(e, "TEST_CASE"): e
        for e in read_entries(systemd_sandbox.journal_dir, f"TEST_RUN={run}", 2)
    }
    lg = entries[b"log"]
    assert one(lg, "PRIORITY") == b"3" and one(lg, "MESSAGE") == b"old-style log"
    assert one(lg, "FLAG") == b"true"
    assert (one(lg, "CODE_FILE"), one(lg, "CODE_LINE"), one(lg, "CODE_FUNC")) == (
        str(script).encode(), line_of(script, "old-style log"), b"handler")  # fmt: skip
    assert one(lg, "CODE_CONTEXT").startswith(b'log(3, "old-style log"')
    sv = entries[b"sendv"]
    assert (one(sv, "PRIORITY"), one(sv, "MESSAGE")) == (b"6", b"old-style sendv")
    assert (one(sv, "FLAG"), one(sv, "WHERE")) == (b"false", b"/a/b")


@pytest.mark.sandbox
def test_journal_handler_end_to_end(systemd_sandbox: Any, tmp_path: Path) -> None:
    run = new_run()
    script = write_script(
        tmp_path,
        """
        import logging, sys, uuid
        from pystemd._writer import JournalHandler
        run = sys.argv[1]
        log = logging.getLogger("jw.handler")
        log.propagate = False
        log.setLevel(logging.DEBUG)
        log.addHandler(JournalHandler(TEST_RUN=run))

        def work():
            log.info("info %s %d", "arg", 1, extra={"TEST_CASE": "info", "request_id": "lower"})
            log.warning("override", extra={"TEST_CASE": "override", "PRIORITY": "2",
                                           "MESSAGE_ID": uuid.UUID(int=3)})
            try:
                {}["missing"]
            except KeyError:
                log.exception("failed", extra={"TEST_CASE": "exc"})

        work()
        """,
        name="handler_app.py",
    )
    run_host(systemd_sandbox, script, run)
    entries = {
        one(e, "TEST_CASE"): e
        for e in read_entries(systemd_sandbox.journal_dir, f"TEST_RUN={run}", 3)
    }
    info = entries[b"info"]
    assert one(info, "MESSAGE") == b"info arg 1"
    assert one(info, "PRIORITY") == b"6"
    assert one(info, "CODE_ARGS") == b"('arg', 1)"
    assert (one(info, "CODE_FUNC"), one(info, "CODE_LINE")) == (
        b"work",
        line_of(script, "log.info("),
    )
    assert one(info, "LOGGER") == b"jw.handler"
    assert one(info, "THREAD_NAME") == b"MainThread"
    # pystemd's default identifier is the program's basename (python-systemd: the full argv[0])
    assert one(info, "SYSLOG_IDENTIFIER") == b"handler_app.py"
    # record attributes (lowercase) never reach the journal
    assert not any(k.islower() for k in info)
    over = entries[b"override"]
    assert one(over, "PRIORITY") == b"2"  # extra= wins; python-systemd dropped this record
    assert one(over, "MESSAGE_ID") == b"00000000000000000000000000000003"
    exc = entries[b"exc"]
    assert one(exc, "PRIORITY") == b"3"
    assert one(exc, "EXCEPTION_INFO") == b"KeyError: 'missing'"
    assert b"Traceback" in one(exc, "EXCEPTION_TEXT")
    assert one(exc, "MESSAGE").startswith(b"failed\nTraceback")


FORK_AND_THREADS = """
import os, sys, threading
from pystemd._writer import send
tag = sys.argv[1]
send("parent before fork", TEST_TAG=tag, SENDER_PID=os.getpid())
pid = os.fork()
if pid == 0:  # the child shares the parent's connected socket
    send("child", TEST_TAG=tag, SENDER_PID=os.getpid())
    os._exit(0)
assert os.waitpid(pid, 0)[1] == 0

def worker(i):
    for k in range(40):
        send(f"thread {i} {k}", TEST_TAG=tag, SENDER_PID=os.getpid(), BLOB=b"\\x00\\n" * (i * 40 + k))

threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
for t in threads:
    t.start()
for t in threads:
    t.join()
send("parent after fork", TEST_TAG=tag, SENDER_PID=os.getpid())
"""


@pytest.mark.sandbox
def test_fork_and_threads_share_the_socket(systemd_sandbox: Any) -> None:
    # inside the sandbox (its PID namespace), so journald's _PID is the sender's
    sb = systemd_sandbox
    tag = uuid.uuid4().hex
    cp = sb.run([PY, "-c", FORK_AND_THREADS, tag], check=False)
    assert cp.returncode == 0, cp.stderr
    want = 3 + 6 * 40
    got = read_entries(sb.journal_dir, f"TEST_TAG={tag}", want)
    msgs = [one(e, "MESSAGE") for e in got]
    assert len(msgs) == want and len(set(msgs)) == want  # none lost, none twice
    for e in got:
        # the kernel's credentials of the process that sent it (parent or child)
        assert one(e, "_PID") == one(e, "SENDER_PID")
        m = one(e, "MESSAGE")
        if m.startswith(b"thread "):
            i, k = map(int, m.split()[1:])
            assert one(e, "BLOB") == b"\x00\n" * (i * 40 + k)
    pids = {one(e, "MESSAGE"): one(e, "_PID") for e in got}
    assert pids[b"child"] != pids[b"parent before fork"] == pids[b"parent after fork"]


# -- failures are reported ----------------------------------------------------------------

NO_JOURNALD = """
import json, logging, sys, warnings
from pystemd import _writer
out = {}
try:
    _writer.send("x")
except OSError as e:
    out["send"] = [type(e).__name__, e.errno, e.filename, str(e)]
try:
    _writer.sendv("MESSAGE=x")
except OSError as e:
    out["sendv"] = [type(e).__name__, e.errno]
try:
    _writer.stream_fd("x", 6, False)
except OSError as e:
    out["stream_fd"] = [type(e).__name__, e.errno, e.filename]
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    _writer._compat_send("x")
    _writer._compat_send("y")
    _writer._compat_sendv("MESSAGE=z")
out["compat_warnings"] = [(type(x.message).__name__, str(x.message)) for x in w]
log = logging.getLogger("t")
log.addHandler(_writer.JournalHandler())
log.error("lost?")
print(json.dumps(out))
"""


def test_missing_journald_socket_is_reported(tmp_path: Path) -> None:
    script = write_script(tmp_path, NO_JOURNALD)
    cp = run_private_ns("", script)
    assert cp.returncode == 0, cp.stderr
    out = json.loads(cp.stdout)
    assert out["send"][:3] == ["FileNotFoundError", 2, "/run/systemd/journal/socket"]
    assert "journald is not running" in out["send"][3]
    assert out["sendv"] == ["FileNotFoundError", 2]
    assert out["stream_fd"] == ["FileNotFoundError", 2, "/run/systemd/journal/stdout"]
    # the drop-in flavour warns, once per process
    assert len(out["compat_warnings"]) == 1
    assert out["compat_warnings"][0][0] == "JournalWarning"
    assert "journald is not running" in out["compat_warnings"][0][1]
    # the handler reports through logging's handleError (a traceback on stderr)
    assert "--- Logging error ---" in cp.stderr and "FileNotFoundError" in cp.stderr


REFUSED = """
import json, socket
from pystemd import _writer
out = {}
for name, fn in (("send", lambda: _writer.send("x")), ("compat", lambda: _writer._compat_send("x"))):
    try:
        fn()
    except OSError as e:
        out[name] = [type(e).__name__, e.errno, e.filename]
print(json.dumps(out))
"""


def test_socket_without_journald_behind_it_raises(tmp_path: Path) -> None:
    # the socket file exists but nobody listens: libsystemd returns -ECONNREFUSED
    stale = (
        "mkdir /run/systemd/journal && "
        f'{PY} -c "import socket; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); '
        "s.bind('/run/systemd/journal/socket'); s.close()\" && "
    )
    cp = run_private_ns(stale, write_script(tmp_path, REFUSED))
    assert cp.returncode == 0, cp.stderr
    out = json.loads(cp.stdout)
    assert out["send"] == ["ConnectionRefusedError", 111, "/run/systemd/journal/socket"]
    assert out["compat"] == ["ConnectionRefusedError", 111, "/run/systemd/journal/socket"]


LIFECYCLE = """
import json, os, socket
from pystemd import _jsend, _writer
PATH = "/run/systemd/journal/socket"

def bound():
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(PATH)
    rx.settimeout(5)
    return rx

def attempt(text):
    try:
        _writer.send(text)
        return "sent"
    except OSError as e:
        return [type(e).__name__, e.filename]

def got(rx):
    return rx.recv(65536).split(b"\\n", 1)[0].decode()

out = {}
rx = bound()
out["first"] = [attempt("one"), got(rx)]
# the file is unlinked while the socket lives on: still delivered (journald still reads it)
os.unlink(PATH)
out["unlinked"] = [attempt("two"), got(rx)]
# the socket closes too (systemd-journald.socket stopped): reported, not lost silently
rx.close()
out["stopped"] = attempt("three")
out["stopped_compat"] = _jsend.send_fields("x", None, None, None, None, {}, 0, 0) == _jsend.NO_JOURNALD
# journald back with a new socket at the path: reconnected, nothing to do for the caller
rx = bound()
out["restarted"] = [attempt("four"), got(rx)]
# the socket file stays but nobody reads it any more: refused
rx.close()
out["stale"] = attempt("five")
os.unlink(PATH)
# our fd closed behind our back (a daemonizing program closing every fd): a new socket
rx = bound()
_writer.send("six")
got(rx)
os.close(_jsend._socket_fd())
out["fd_closed"] = [attempt("seven"), got(rx)]
# reset(): a new socket on the next send
old = _jsend._socket_fd()
from pystemd.journal import reset_socket
reset_socket()
out["reset"] = [_jsend._socket_fd(), attempt("eight"), got(rx), _jsend._socket_fd() >= 100]
print(json.dumps(out))
"""


def test_journald_going_away_and_coming_back(tmp_path: Path) -> None:
    # entries go out on a socket connected to journald's once: what happens to it
    # when journald's socket goes away, comes back or our fd is closed under us
    cp = run_private_ns("mkdir /run/systemd/journal && ", write_script(tmp_path, LIFECYCLE))
    assert cp.returncode == 0, cp.stderr
    out = json.loads(cp.stdout)
    missing = ["FileNotFoundError", "/run/systemd/journal/socket"]
    assert out["first"] == ["sent", "MESSAGE=one"]
    assert out["unlinked"] == ["sent", "MESSAGE=two"]
    assert out["stopped"] == missing and out["stopped_compat"] is True
    assert out["restarted"] == ["sent", "MESSAGE=four"]
    assert out["stale"] == ["ConnectionRefusedError", "/run/systemd/journal/socket"]
    assert out["fd_closed"] == ["sent", "MESSAGE=seven"]
    assert out["reset"] == [-1, "sent", "MESSAGE=eight", True]


GIL = """
import json, socket, threading, time
from pystemd._writer import send
# our own datagram socket where journald's would be, never read: once its queue
# (net.unix.max_dgram_qlen) is full, send() blocks (with the GIL released)
rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
rx.bind("/run/systemd/journal/socket")
sent = 0
def sender():
    global sent
    for _ in range(5000):
        send("fill the queue", FIELD="x" * 100)
        sent += 1
t = threading.Thread(target=sender, daemon=True)
t.start()
# wait until the sender is stuck (its count stops moving)
last, still = -1, 0
while still < 20:
    time.sleep(0.01)
    still = still + 1 if sent == last else 0
    last = sent
# the sender is blocked in C; this thread still runs Python code: the GIL is free
spins = 0
end = time.monotonic() + 0.2
while time.monotonic() < end:
    spins += 1
blocked_at = sent
# drain: the blocked send completes, and so do the others
rx.setblocking(False)
deadline = time.monotonic() + 30
while t.is_alive() and time.monotonic() < deadline:
    try:
        while True:
            rx.recv(65536)
    except BlockingIOError:
        time.sleep(0.001)
t.join(5)
print(json.dumps({"blocked_at": blocked_at, "spins": spins, "done": sent, "alive": t.is_alive()}))
"""


def test_gil_is_released_while_sendv_blocks(tmp_path: Path) -> None:
    cp = run_private_ns("mkdir /run/systemd/journal && ", write_script(tmp_path, GIL))
    assert cp.returncode == 0, cp.stderr
    out = json.loads(cp.stdout)
    assert 0 < out["blocked_at"] < 5000  # the sender did block on the full queue
    assert out["spins"] > 1000  # ...while the main thread kept running Python
    assert out["done"] == 5000 and not out["alive"]


INTERRUPT = """
import json, os, signal, socket, threading, time
from pystemd._writer import send
signal.signal(signal.SIGINT, signal.default_int_handler)
rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
rx.bind("/run/systemd/journal/socket")   # never read: the queue fills, send() blocks
threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
sent, out = 0, {}
t0 = time.monotonic()
try:
    while time.monotonic() - t0 < 20:
        send("fill the queue")
        sent += 1
    out["result"] = "never blocked"
except KeyboardInterrupt:
    out["result"] = "KeyboardInterrupt"
out["after_s"] = time.monotonic() - t0
out["sent"] = sent
print(json.dumps(out))
"""


def test_ctrl_c_interrupts_a_blocked_send(tmp_path: Path) -> None:
    cp = run_private_ns("mkdir /run/systemd/journal && ", write_script(tmp_path, INTERRUPT))
    assert cp.returncode == 0, cp.stderr
    out = json.loads(cp.stdout)
    # a full queue after a few datagrams (max_dgram_qlen is 10 in a new netns)
    assert out["result"] == "KeyboardInterrupt" and 0 < out["sent"] < 1000
    assert out["after_s"] < 10  # interrupted while blocked, not after a 20 s loop


# -- bad input: clear exceptions, nothing sent ------------------------------------------

BAD_NAMES = ["lower", "_UNDERSCORE", "1DIGIT", "A" * 65, "MIXED_case", "SPACE X", "D\u00c9J\u00c0"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_invalid_field_names_raise(name: str) -> None:
    with pytest.raises(FieldError) as ei:
        _writer.send("x", **{name: "v"})
    assert isinstance(ei.value, ValueError) and isinstance(ei.value, OSError)
    assert ei.value.errno == 22 and repr(name) in str(ei.value)
    with pytest.raises(FieldError):
        _writer.sendv(f"{name}=v")
    assert not _jsend.valid_field_name(name)


def test_valid_field_names() -> None:
    for name in ("A", "A" * 64, "MESSAGE", "X_1", "SYSLOG_IDENTIFIER"):
        assert _jsend.valid_field_name(name), name
    # python-systemd's own (weaker) check is kept as it was
    assert _writer._valid_field_name("_LEADING") and not _writer._valid_field_name("lower")
    assert _writer._IDENT_CHARACTER == set("ABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789")


@pytest.mark.parametrize(
    ("call", "exc", "text"),
    [
        (lambda: _writer.sendv(), FieldError, "at least one"),
        (lambda: _writer.sendv("no equals sign"), FieldError, "NAME=value"),
        (lambda: _writer.sendv("=value"), FieldError, "NAME=value"),
        (lambda: _writer.sendv(5), TypeError, "got int"),  # type: ignore[arg-type]
        (lambda: _writer.send(None), TypeError, "MESSAGE must be str or bytes"),  # type: ignore[arg-type]
        (lambda: _writer.send(5), TypeError, "MESSAGE must be str or bytes"),  # type: ignore[arg-type]
        (lambda: _writer.send("x", MESSAGE_ID=5), TypeError, "MESSAGE_ID"),
        (lambda: _writer.send("x", CODE_LINE="12"), TypeError, "CODE_LINE must be an int"),  # type: ignore[arg-type]
        (lambda: _writer.send("x", CODE_FILE=3), TypeError, "CODE_FILE"),  # type: ignore[arg-type]
        (lambda: _writer.send("x", **{"": "v"}), FieldError, "empty"),
        (lambda: _writer.send("x", **{"A=B": "v"}), FieldError, "'='"),
        (lambda: _writer._compat_send("x", **{"A\nB": "v"}), FieldError, "newline"),
        (lambda: _writer.send("x", **{f"F{i}": i for i in range(1100)}), FieldError, "1024"),
        (lambda: _writer.sendv(*[f"F{i}=1" for i in range(1100)]), FieldError, "1024"),
        (lambda: _writer.send("\udcff"), UnicodeEncodeError, "surrogates"),
        (lambda: _writer.stream_fd("x", 8, False), ValueError, "0-7"),
        (lambda: _writer.stream_fd("x", -1, False), ValueError, "0-7"),
        (lambda: _writer.stream_fd("a\nb", 6, False), ValueError, "newline"),
        (lambda: _writer.stream_fd(5, 6, False), TypeError, "identifier"),  # type: ignore[arg-type]
        (lambda: _writer.log(20, "x"), ValueError, "logging level"),
        (lambda: _writer.log(8, "x"), ValueError, "0-7"),
        (lambda: _writer.log(True, "x"), ValueError, "0-7"),
        (lambda: _writer.log("6", "x"), TypeError, "priority must be an int"),  # type: ignore[arg-type]
        (lambda: _writer.log(6, "x", PRIORITY=1), TypeError, "first two"),
    ],
)
def test_bad_input_raises_before_sending(call: Any, exc: type[BaseException], text: str) -> None:
    # raised before any I/O: this host has no journald socket, so a send that
    # got that far would raise FileNotFoundError instead
    with pytest.raises(exc) as ei:
        call()
    assert text in str(ei.value)


def test_compat_flavour_sends_bad_names_with_a_warning(tmp_path: Path) -> None:
    # no journald here: the result bits are checked through the warning texts
    script = write_script(
        tmp_path,
        """
        import json, socket, warnings
        from pystemd import _writer
        # a real datagram socket where journald's would be (what journald keeps is
        # tested against the sandbox in test_journal_send_compat.py)
        rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        rx.bind("/run/systemd/journal/socket")
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            _writer._compat_send("x", lower="1", GOOD="2", _UNDER="3")
            _writer._compat_sendv("MESSAGE=y", "bad=1", b"_B=2")
        print(json.dumps([str(x.message) for x in w] + [rx.recv(65536).decode(errors="replace")]))
        """,
    )
    cp = run_private_ns("mkdir /run/systemd/journal && ", script)
    assert cp.returncode == 0, cp.stderr
    *msgs, first_datagram = json.loads(cp.stdout)
    assert "lower=1\n" in first_datagram and "_UNDER=3\n" in first_datagram  # sent as given
    assert any("['lower', '_UNDER']" in m for m in msgs), msgs
    assert any("['bad', '_B']" in m for m in msgs), msgs


# -- JournalHandler's mapping (the sender is the subject's public hook) ------------------


class Capture:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, dict[str, Any]]] = []

    def __call__(self, msg: Any, **kw: Any) -> None:
        self.calls.append((msg, kw))


def _logger(handler: logging.Handler) -> logging.Logger:
    log = logging.getLogger(f"jw.{uuid.uuid4().hex}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(handler)
    return log


def test_handler_fields_and_overrides() -> None:
    cap = Capture()
    log = _logger(_writer.JournalHandler(sender_function=cap, SYSLOG_IDENTIFIER="app", TEAM="x"))
    log.info("m %s", 1, extra={"CUSTOM": "c", "lower": "dropped", "MESSAGE": "replaced",
                                "CODE_FUNC": "mine"})  # fmt: skip
    msg, kw = cap.calls[-1]
    assert msg == "replaced"
    assert kw["PRIORITY"] == "6" and kw["CODE_FUNC"] == "mine" and kw["CUSTOM"] == "c"
    assert kw["SYSLOG_IDENTIFIER"] == "app" and kw["TEAM"] == "x" and kw["CODE_ARGS"] == "(1,)"
    assert {"LOGGER", "THREAD_NAME", "PROCESS_NAME", "CODE_FILE", "CODE_LINE"} <= set(kw)
    assert not [k for k in kw if not _jsend.valid_field_name(k)]
    try:
        raise ValueError("bad value")
    except ValueError:
        log.exception("oops")
    msg, kw = cap.calls[-1]
    assert kw["EXCEPTION_INFO"] == "ValueError: bad value"
    assert "Traceback" in kw["EXCEPTION_TEXT"] and msg.startswith("oops\nTraceback")


def test_handler_construction() -> None:
    with pytest.raises(ValueError, match="Invalid field name: lower"):
        _writer.JournalHandler(lower="x")
    with pytest.raises(ValueError, match="Invalid field name: _X"):
        _writer.JournalHandler(_X="x")
    with pytest.warns(_writer.JournalWarning, match="_X"):
        _writer._CompatJournalHandler(_X="x")
    h = _writer.JournalHandler.with_args({"SYSLOG_IDENTIFIER": "cfg", "level": logging.WARNING})
    assert h.level == logging.WARNING and h._extra["SYSLOG_IDENTIFIER"] == "cfg"
    assert h.send is _writer.send and _writer._CompatJournalHandler().send is _writer._compat_send
    table = {0: 7, 10: 7, 11: 6, 20: 6, 21: 4, 30: 4, 40: 3, 50: 2, 51: 1, 100: 1}
    for level, pri in table.items():
        assert _writer.JournalHandler.map_priority(level) == pri
        assert _writer.JournalHandler.mapPriority(level) == pri


def test_default_identifier(monkeypatch: pytest.MonkeyPatch) -> None:
    for argv, mine, compat in (
        (["/opt/app/bin/server.py", "-v"], "server.py", "/opt/app/bin/server.py"),
        (["-c"], "python", "python"),
        ([""], "python", "python"),
        ([], "python", "python"),
    ):
        monkeypatch.setattr(sys, "argv", argv)
        assert _writer.JournalHandler()._extra["SYSLOG_IDENTIFIER"] == mine
        assert _writer._CompatJournalHandler()._extra["SYSLOG_IDENTIFIER"] == compat
    monkeypatch.delattr(sys, "argv")
    assert _writer._CompatJournalHandler()._extra["SYSLOG_IDENTIFIER"] == "python"


def test_make_line_is_python_systemds() -> None:
    assert _writer._make_line("A", b"\x00") == b"A=\x00"
    assert _writer._make_line("A", "s") == "A=s"
    assert _writer._make_line("A", 5) == "A=5"


def test_exports() -> None:
    assert set(_writer.__all__) == {
        "send", "sendv", "stream", "stream_fd", "JournalHandler", "log", "reset_socket",
        "_make_line", "_valid_field_name", "_IDENT_CHARACTER",
    }  # fmt: skip
    assert _writer._compat_send.__name__ == "send"
    assert _writer._CompatJournalHandler.__name__ == "JournalHandler"


def test_send_takes_python_systemds_arguments() -> None:
    # send() is a C function reading its arguments as vectorcall passes them
    # (no dict for the fields): the same signature and errors as a def
    import inspect

    sig = "(MESSAGE, MESSAGE_ID=None, CODE_FILE=None, CODE_LINE=None, CODE_FUNC=None, **fields)"
    for f in (_writer.send, _writer._compat_send):
        assert str(inspect.signature(f)) == sig and f.__name__ == "send"
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'MESSAGE'"):
        _writer.send()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="multiple values for argument 'MESSAGE'"):
        _writer.send("a", MESSAGE="b")  # type: ignore[misc]
    with pytest.raises(TypeError, match="multiple values for argument 'CODE_FILE'"):
        _writer.send("a", None, "f", **{"".join(["CODE_", "FILE"]): "g"})
    with pytest.raises(TypeError, match="from 1 to 5 positional arguments but 6 were given"):
        _writer.send("a", None, None, None, None, "extra")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="CODE_LINE must be an int"):
        _writer.send("a", **{"".join(["CODE_", "LINE"]): "x"})  # a name built at run time
    with pytest.raises(FieldError):
        _writer.send(MESSAGE="only keywords", lower="x")


def test_caller_location_is_one_frame_lookup() -> None:
    def inner() -> Any:
        return _jsend.caller(1)

    def outer() -> Any:
        return inner()

    where = outer()
    assert where == (__file__, outer.__code__.co_firstlineno + 1, "outer")
    assert _jsend.caller(10_000) is None


# -- the stdout stream: written from inside the container -----------------------------

STREAM = """
import sys
sys.argv[0] = "/opt/app/streamer.py"
from pystemd import _writer
from syslog import LOG_WARNING
s = _writer.stream(priority=LOG_WARNING)
s.write("plain line from stream\\n")
print("second line", file=s)
s.close()
p = _writer.stream("jwprefix", level_prefix=True)
p.write("<3>an error line\\n")
p.write("no prefix line\\n")
p.close()
c = _writer._compat_stream()
c.write("compat default identifier\\n")
c.close()
"""

STREAM_PYSYSTEMD = """
import sys
sys.argv[0] = "/opt/app/streamer.py"
from systemd import journal
s = journal.stream(priority=journal.LOG_WARNING)
s.write("python-systemd stream line\\n")
s.close()
"""


@pytest.mark.sandbox
def test_stream(systemd_sandbox_factory: Any) -> None:
    # A fresh sandbox: journald stops accepting stdout streams for good once a
    # client from another PID namespace connects (see docs/journal-writing.md),
    # so the shared one cannot be trusted for this.
    sb = systemd_sandbox_factory()
    cp = sb.run([PY, "-c", STREAM], check=False)
    assert cp.returncode == 0, cp.stderr
    cp = sb.run([str(PYSYSTEMD), "-I", "-c", STREAM_PYSYSTEMD], check=False)
    assert cp.returncode == 0, cp.stderr
    wanted = {b"plain line from stream", b"second line", b"an error line", b"no prefix line",
              b"compat default identifier", b"python-systemd stream line"}  # fmt: skip
    got = read_entries(
        sb.journal_dir,
        "_TRANSPORT=stdout",
        until=lambda es: wanted <= {e.get("MESSAGE", [b""])[0] for e in es},
    )
    by_msg = {one(e, "MESSAGE"): e for e in got}
    mine = by_msg[b"plain line from stream"]
    assert one(mine, "SYSLOG_IDENTIFIER") == b"streamer.py"
    assert one(mine, "PRIORITY") == b"4"
    assert one(by_msg[b"second line"], "PRIORITY") == b"4"
    assert one(by_msg[b"an error line"], "PRIORITY") == b"3"
    assert one(by_msg[b"an error line"], "SYSLOG_IDENTIFIER") == b"jwprefix"
    assert one(by_msg[b"no prefix line"], "PRIORITY") == b"6"
    assert one(by_msg[b"compat default identifier"], "SYSLOG_IDENTIFIER") == b"/opt/app/streamer.py"
    theirs = by_msg[b"python-systemd stream line"]
    ours = by_msg[b"compat default identifier"]
    # the drop-in's stream and python-systemd's make the same kind of entry
    assert one(theirs, "SYSLOG_IDENTIFIER") == b"/opt/app/streamer.py"
    assert one(theirs, "PRIORITY") == b"4"
    assert set(user_fields(theirs)) == set(user_fields(ours))


# -- the benchmark still runs (no figures asserted: those belong to bench/) -----------


@pytest.mark.sandbox
@pytest.mark.slow
def test_bench_journal_send_smoke(tmp_path: Path) -> None:
    from benchrun import run_bench

    out, _ = run_bench(
        "bench_journal_send.py", "--quick", "--no-peers", "--rounds", "1", "--n", "40",
        "--only", "send,isolated", tmp_path=tmp_path,
    )  # fmt: skip
    assert "== send(): client cost per call into the sandbox's journald" in out
    assert "== send(): client cost per call into a datagram socket that only drains" in out
    assert "C floor: sd_journal_sendv" in out and "pystemd send() *" in out
    out_json = tmp_path / "bench.json"  # run_bench's --json
    assert out_json.exists() and Path(str(out_json) + ".isolated").exists()


# -- any field content survives; nothing leaks ----------------------------------------

PROPERTY = """
import ctypes, json, socket, sys
from hypothesis import given, settings, strategies as st, HealthCheck
from pystemd import _writer

rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
rx.bind("/run/systemd/journal/socket")

# libsystemd's own sd_journal_sendv, for a byte-for-byte comparison of the datagrams
lib = ctypes.CDLL("libsystemd.so.0")
class IOV(ctypes.Structure):
    _fields_ = [("base", ctypes.c_char_p), ("len", ctypes.c_size_t)]

def libsystemd_datagram(items):
    iov = (IOV * len(items))(*[IOV(x, len(x)) for x in items])
    assert lib.sd_journal_sendv(iov, len(items)) == 0
    return rx.recv(1 << 20)

def parse_native(d):
    # the native protocol libsystemd speaks: NAME=value\\n, or NAME\\n le64 data \\n
    out, i = [], 0
    while i < len(d):
        nl = d.index(b"\\n", i)
        line = d[i:nl]
        if b"=" in line:
            k, v = line.split(b"=", 1)
            i = nl + 1
        else:
            n = int.from_bytes(d[nl + 1:nl + 9], "little")
            k, v = line, d[nl + 9:nl + 9 + n]
            assert d[nl + 9 + n:nl + 10 + n] == b"\\n"
            i = nl + 10 + n
        out.append((k.decode(), v))
    return out

names = st.from_regex(r"[A-Z][A-Z0-9_]{0,20}", fullmatch=True).filter(
    lambda n: n not in ("MESSAGE", "MESSAGE_ID", "CODE_FILE", "CODE_LINE", "CODE_FUNC"))
values = st.one_of(st.binary(max_size=3000), st.text(max_size=500).filter(
    lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s)))

@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(msg=values, fields=st.dictionaries(names, values, max_size=12))
def check(msg, fields):
    _writer.send(msg, CODE_FILE="f", CODE_LINE=1, CODE_FUNC="g", **fields)
    ours = rx.recv(1 << 20)
    got = parse_native(ours)
    enc = lambda v: v if isinstance(v, bytes) else v.encode()
    plain = [b"MESSAGE=" + enc(msg), b"CODE_FILE=f", b"CODE_LINE=1", b"CODE_FUNC=g"]
    plain += [k.encode() + b"=" + enc(v) for k, v in fields.items()]
    assert ours == libsystemd_datagram(plain)
    want = [("MESSAGE", enc(msg)), ("CODE_FILE", b"f"), ("CODE_LINE", b"1"), ("CODE_FUNC", b"g")]
    want += [(k, enc(v)) for k, v in fields.items()]
    if "SYSLOG_IDENTIFIER" not in fields:  # libsystemd adds the program's name
        got = [kv for kv in got if kv[0] != "SYSLOG_IDENTIFIER"]
    assert got == want, (got, want)
    items = [b"MULTI=" + enc(v) for v in fields.values()]
    if items:
        _writer.sendv(*items)
        ours = rx.recv(1 << 20)
        assert ours == libsystemd_datagram(items)
        got = parse_native(ours)
        assert [kv for kv in got if kv[0] == "MULTI"] == [("MULTI", enc(v)) for v in fields.values()]

check()
# named parameters given as keywords between the fields
_writer.send("m", A="1", CODE_FILE="f", B="2", CODE_LINE=3, C=b"4\\n", CODE_FUNC="g", MESSAGE_ID="00" * 16)
assert rx.recv(1 << 20) == libsystemd_datagram(
    [b"MESSAGE=m", b"MESSAGE_ID=" + b"00" * 16, b"CODE_FILE=f", b"CODE_LINE=3", b"CODE_FUNC=g",
     b"A=1", b"B=2", b"C=4\\n"])
for line in (0, 7, -1, 10**6, 2**63 - 1, -2**63):
    _writer.send("m", CODE_FILE="f", CODE_LINE=line, CODE_FUNC="g")
    assert rx.recv(1 << 20) == libsystemd_datagram(
        [b"MESSAGE=m", b"CODE_FILE=f", b"CODE_LINE=%d" % line, b"CODE_FUNC=g"]), line
print("ok")
"""


def test_any_content_reaches_the_socket_unchanged(tmp_path: Path) -> None:
    # hypothesis: arbitrary bytes and text, any number of fields: the datagram
    # that reaches a real socket at journald's path decodes to what was sent and
    # is byte for byte the one libsystemd's sd_journal_sendv sends for them
    cp = run_private_ns("mkdir /run/systemd/journal && ", write_script(tmp_path, PROPERTY))
    assert cp.returncode == 0, cp.stdout[-3000:] + cp.stderr[-3000:]
    assert cp.stdout.strip() == "ok"


LEAKS = """
import json, os, resource, socket, uuid
from pystemd import _writer, id128, login
from pystemd._jsend import FieldError

for d in ("seats", "sessions", "users", "machines"):
    os.makedirs("/run/systemd/" + d, exist_ok=True)
rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
rx.bind("/run/systemd/journal/socket")
rx.setblocking(False)

def drain():
    try:
        while True:
            rx.recv(1 << 20)
    except BlockingIOError:
        pass

def rss_kib():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024

def fds():
    return len(os.listdir("/proc/self/fd"))

def work(rounds):
    for i in range(rounds):
        _writer.send("leak check", BIN=b"\\x00" * 100, N=i, TEXT="x" * 3000)
        _writer.sendv("MESSAGE=v", b"B=\\xff")
        for bad in (lambda: _writer.send("x", lower=1), lambda: _writer.sendv("nofield"),
                    lambda: _writer.send(None), lambda: _writer.send("x", **{"F%d" % k: k for k in range(1100)})
                    if i % 50 == 0 else _writer.send(5)):
            try:
                bad()
            except (FieldError, TypeError):
                pass
        if i % 25 == 0:  # closing an inotify fd waits for an RCU grace period (~ms)
            with login.Monitor() as m:
                m.flush()
        try:
            login.Monitor("bogus")
        except ValueError:
            pass
        id128.get_machine_app_specific(uuid.UUID(int=i + 1))
        drain()  # two datagrams per round; the queue holds max_dgram_qlen (10 here)

work(1000)
r0, f0 = rss_kib(), fds()
work(5000)
print(json.dumps({"rss_growth_kib": rss_kib() - r0, "fd_growth": fds() - f0}))
"""


def test_no_leaks_over_many_calls(tmp_path: Path) -> None:
    cp = run_private_ns("mkdir /run/systemd/journal && ", write_script(tmp_path, LEAKS))
    assert cp.returncode == 0, cp.stderr[-3000:]
    out = json.loads(cp.stdout)
    assert out["fd_growth"] == 0
    assert out["rss_growth_kib"] < 1024, out  # 5000 rounds of ~10 calls: no per-call growth
