"""Journal files for tests and benchmarks, written by systemd's own tools.

Entries are described here as lists of ``(FIELD, bytes)`` pairs, serialized
to the journal export format (binary-safe: values with a newline or non-text
bytes use the length-prefixed form) and turned into real journal files by
``systemd-journal-remote``. Nothing binary is committed: every file is made
at test time.

Also here: :func:`parse_export` (``journalctl -o export`` back into entries),
used to compare what the Reader yields with what journalctl sees.
"""

from __future__ import annotations

import os
import random
import shutil
import struct
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Optional

JOURNAL_REMOTE_CANDIDATES = (
    "/lib/systemd/systemd-journal-remote",
    "/usr/lib/systemd/systemd-journal-remote",
)

Fields = list[tuple[str, bytes]]

BOOT_A = "6b1d8a3e1f2c4b5a9e8d7c6b5a493827"
BOOT_B = "0f9e8d7c6b5a49382716a5b4c3d2e1f0"
MACHINE = "d1c2b3a4958677685a4b3c2d1e0f9a8b"
T0 = 1_700_000_000_000_000  # µs, 2023-11-14


def journal_remote() -> Optional[str]:
    for p in JOURNAL_REMOTE_CANDIDATES:
        if os.access(p, os.X_OK):
            return p
    return shutil.which("systemd-journal-remote")


# -- the export format ---------------------------------------------------------------


def _needs_binary(v: bytes) -> bool:
    return b"\n" in v or any(c < 32 and c != 9 for c in v) or not _is_utf8(v)


def _is_utf8(v: bytes) -> bool:
    try:
        v.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def export_entry(out: IO[bytes], fields: Fields) -> None:
    """One entry in export format (the caller includes the ``__`` fields it wants)."""
    for name, value in fields:
        key = name.encode()
        if _needs_binary(value):
            out.write(key + b"\n" + struct.pack("<Q", len(value)) + value + b"\n")
        else:
            out.write(key + b"=" + value + b"\n")
    out.write(b"\n")


def parse_export(data: bytes) -> list[Fields]:
    """``journalctl -o export`` output -> entries (field order and repeats kept)."""
    entries: list[Fields] = []
    cur: Fields = []
    i, n = 0, len(data)
    while i < n:
        if data[i] == 0x0A:  # blank line: end of entry
            entries.append(cur)
            cur = []
            i += 1
            continue
        nl = data.index(b"\n", i)
        line = data[i:nl]
        eq = line.find(b"=")
        if eq >= 0:
            cur.append((line[:eq].decode(), line[eq + 1 :]))
            i = nl + 1
        else:
            (size,) = struct.unpack("<Q", data[nl + 1 : nl + 9])
            start = nl + 9
            cur.append((line.decode(), data[start : start + size]))
            assert data[start + size] == 0x0A, "export format: binary field not followed by newline"
            i = start + size + 1
    if cur:
        entries.append(cur)
    return entries


def journalctl_export(
    *,
    files: Sequence[os.PathLike[str] | str] = (),
    directory: Optional[os.PathLike[str] | str] = None,
) -> list[Fields]:
    """What ``journalctl -o export`` prints for these files / this directory."""
    cmd = ["journalctl", "-o", "export", "--no-pager", "--all"]
    if directory is not None:
        cmd.append(f"--directory={directory}")
    cmd += [f"--file={f}" for f in files]
    r = subprocess.run(cmd, capture_output=True, check=True)
    return parse_export(r.stdout)


# -- making journal files ---------------------------------------------------------------


def build_journal(
    entries: Iterable[Fields], output: os.PathLike[str] | str, *, compress: bool = True
) -> list[Path]:
    """Write entries through systemd-journal-remote into ``output`` (a .journal path).

    journal-remote rotates a full file (renaming it ``output-stem@...journal``),
    so a large input can give several files: all are returned, sorted.
    """
    exe = journal_remote()
    if exe is None:
        raise FileNotFoundError(
            "systemd-journal-remote not found (Debian: apt-get install systemd-journal-remote)"
        )
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [exe, f"--output={out}", f"--compress={'yes' if compress else 'no'}", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None
    try:
        buf = _Buffered(proc.stdin)
        for e in entries:
            export_entry(buf, e)
        buf.flush()
    finally:
        proc.stdin.close()
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.wait() != 0:
        raise RuntimeError(f"systemd-journal-remote failed ({proc.returncode}): {err}")
    if proc.stderr:
        proc.stderr.close()
    return sorted(p for p in out.parent.glob(out.stem + "*.journal"))


class _Buffered:
    def __init__(self, f: IO[bytes], size: int = 1 << 20) -> None:
        self.f, self.size, self.parts, self.n = f, size, [], 0

    def write(self, b: bytes) -> int:
        self.parts.append(b)
        self.n += len(b)
        if self.n >= self.size:
            self.flush()
        return len(b)

    def flush(self) -> None:
        self.f.write(b"".join(self.parts))
        self.parts, self.n = [], 0


def header(i: int, *, boot: str = BOOT_A, t0: int = T0, step: int = 1000) -> Fields:
    """The three export fields journal-remote takes the entry's position from."""
    return [
        ("__REALTIME_TIMESTAMP", str(t0 + i * step).encode()),
        ("__MONOTONIC_TIMESTAMP", str(5_000_000 + i * step).encode()),
        ("_BOOT_ID", boot.encode()),
    ]


# -- realistic entries (the benchmark's and the big tests') ---------------------------------

_UNITS = [
    (
        "sshd.service",
        "/usr/sbin/sshd",
        "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups",
        "sshd",
    ),
    ("cron.service", "/usr/sbin/cron", "/usr/sbin/cron -f", "cron"),
    ("nginx.service", "/usr/sbin/nginx", "nginx: worker process", "nginx"),
    (
        "postgresql@15-main.service",
        "/usr/lib/postgresql/15/bin/postgres",
        "postgres: 15/main: checkpointer",
        "postgres",
    ),
    (
        "systemd-logind.service",
        "/lib/systemd/systemd-logind",
        "/lib/systemd/systemd-logind",
        "systemd-logind",
    ),
    (
        "docker.service",
        "/usr/bin/dockerd",
        "/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock",
        "dockerd",
    ),
    (
        "app-worker@3.service",
        "/usr/bin/python3.11",
        "/usr/bin/python3 -m app.worker --queue default",
        "app-worker",
    ),
]

_MESSAGES = [
    "Accepted publickey for deploy from 10.0.{a}.{b} port {p} ssh2: ED25519 SHA256:q3Jz{p}",
    "pam_unix(sshd:session): session opened for user deploy(uid=1000) by (uid=0)",
    "(root) CMD (   test -x /usr/sbin/anacron || ( cd / && run-parts --report /etc/cron.daily ))",
    '10.0.{a}.{b} - - "GET /api/v1/items/{p}?page=2 HTTP/1.1" 200 {p} "-" "curl/7.88.1"',
    "checkpoint complete: wrote {p} buffers ({a}.{b}%); 0 WAL file(s) added, 0 removed, 1 recycled",
    "New session {p} of user deploy.",
    'level=info msg="Container {p:x} health status changed" status=healthy',
    "processed job id={p} queue=default duration_ms={a}{b} result=ok",
]


def realistic(
    n: int, *, seed: int = 0, boots: Sequence[str] = (BOOT_A, BOOT_B)
) -> Iterator[Fields]:
    """``n`` entries shaped like a server's journal: ~25 fields, most repeating across entries."""
    rnd = random.Random(seed)
    per_boot = max(1, n // len(boots))
    for i in range(n):
        boot = boots[min(i // per_boot, len(boots) - 1)]
        unit, exe, cmdline, ident = _UNITS[rnd.randrange(len(_UNITS))]
        pid = 1000 + (hash(unit) % 5000 if rnd.random() < 0.9 else rnd.randrange(30000))
        msg = _MESSAGES[rnd.randrange(len(_MESSAGES))].format(
            a=rnd.randrange(256), b=rnd.randrange(256), p=rnd.randrange(1, 65000)
        )
        rt = T0 + i * 1500 + rnd.randrange(1000)
        f = header(0, boot=boot)
        f[0] = ("__REALTIME_TIMESTAMP", str(rt).encode())
        f[1] = ("__MONOTONIC_TIMESTAMP", str(9_000_000 + i * 1500).encode())
        slice_ = "system.slice" if "@" not in unit else f"system-{unit.split('@')[0]}.slice"
        f += [
            ("_MACHINE_ID", MACHINE.encode()),
            ("_HOSTNAME", b"web-01.prod.example.net"),
            ("_TRANSPORT", b"syslog" if i % 3 else b"journal"),
            ("PRIORITY", str(rnd.choice((3, 4, 5, 6, 6, 6, 6, 7))).encode()),
            ("SYSLOG_FACILITY", b"3" if i % 4 else b"10"),
            ("SYSLOG_IDENTIFIER", ident.encode()),
            ("_UID", b"0" if i % 5 else b"1000"),
            ("_GID", b"0" if i % 5 else b"1000"),
            ("_COMM", ident[:15].encode()),
            ("_EXE", exe.encode()),
            ("_CMDLINE", cmdline.encode()),
            ("_CAP_EFFECTIVE", b"1ffffffffff"),
            ("_SELINUX_CONTEXT", b"unconfined\n"),
            ("_AUDIT_SESSION", b"4294967295"),
            ("_AUDIT_LOGINUID", b"4294967295"),
            ("_SYSTEMD_CGROUP", f"/system.slice/{unit}".encode()),
            ("_SYSTEMD_UNIT", unit.encode()),
            ("_SYSTEMD_SLICE", slice_.encode()),
            ("_SYSTEMD_INVOCATION_ID", f"{hash(unit + boot) & ((1 << 128) - 1):032x}".encode()),
            ("_PID", str(pid).encode()),
            ("_SOURCE_REALTIME_TIMESTAMP", str(rt - rnd.randrange(1, 500)).encode()),
            ("MESSAGE", msg.encode()),
        ]
        if i % 4 == 0:
            f += [
                ("CODE_FILE", b"src/worker/main.c"),
                ("CODE_LINE", str(100 + rnd.randrange(900)).encode()),
                ("CODE_FUNC", b"handle_request"),
            ]
        else:
            f.append(("_STREAM_ID", f"{rnd.getrandbits(128):032x}".encode()))
        yield f


# -- entries that exercise every corner of conversion ------------------------------------------


def tricky() -> list[Fields]:
    """Binary, repeated, non-UTF-8, large and malformed-for-conversion fields."""
    big_text = ("0123456789abcdef" * 4096 * 8).encode()  # 512 KiB, compressible
    rnd = random.Random(7)
    big_binary = bytes(rnd.getrandbits(8) for _ in range(200_000))  # incompressible
    e: list[Fields] = []

    def add(fields: Fields) -> None:
        e.append(header(len(e)) + fields)

    add([("MESSAGE", b"plain"), ("PRIORITY", b"6"), ("_PID", b"123"), ("_UID", b"0")])
    add([("MESSAGE", b"multi\nline\nmessage"), ("PRIORITY", b"3")])
    add([("MESSAGE", b"bin\x00ary\x01\x02"), ("BLOB", bytes(range(256)))])
    add([("MESSAGE", b"latin1 caf\xe9"), ("NAME", b"\xff\xfe\xfd")])
    add([("MESSAGE", "unicode caf\u00e9 \u2603 \U0001f600".encode())])
    add([("MESSAGE", b"repeated"), ("TAG", b"a"), ("TAG", b"b"), ("TAG", b"\xff"), ("TAG", b"c")])
    add([("MESSAGE", b"first"), ("MESSAGE", b"second")])
    add([("MESSAGE", b"repeated ints"), ("PRIORITY", b"3"), ("PRIORITY", b"x")])
    add([("MESSAGE", b"bad ints"), ("PRIORITY", b"abc"), ("_PID", b" 42 "), ("_UID", b"-7"),
         ("CODE_LINE", b"0x10"), ("ERRNO", b"1_000"), ("EXIT_STATUS", b"+3")])  # fmt: skip
    add(
        [
            ("MESSAGE", b"big ints"),
            ("_PID", b"99999999999999999999999"),
            ("LEADER", b"18446744073709551615"),
        ]
    )
    add(
        [
            ("MESSAGE", b"uuids"),
            ("MESSAGE_ID", b"not-a-uuid"),
            ("_MACHINE_ID", MACHINE.upper().encode()),
        ]
    )
    add([("MESSAGE", b"uuid forms"), ("MESSAGE_ID", b"{8441372f-8dca-4ca9-8694-a6091fd8519f}")])
    add([("MESSAGE", b"timestamps"), ("_SOURCE_REALTIME_TIMESTAMP", b"1700000000123456"),
         ("COREDUMP_TIMESTAMP", b"0"), ("_SOURCE_MONOTONIC_TIMESTAMP", b"123456789")])  # fmt: skip
    add([("MESSAGE", b"odd timestamps"), ("_SOURCE_REALTIME_TIMESTAMP", b"-1500000"),
         ("COREDUMP_TIMESTAMP", b"99999999999999999999"),
         ("_SOURCE_MONOTONIC_TIMESTAMP", b"-5")])  # fmt: skip
    add([("MESSAGE", b"far timestamps"), ("_SOURCE_REALTIME_TIMESTAMP", b"253402300799999999"),
         ("COREDUMP_TIMESTAMP", b"4294967296000001"), ("_SOURCE_MONOTONIC_TIMESTAMP", b"86400000000000000000")])  # fmt: skip
    add(
        [
            ("MESSAGE", b"not numbers"),
            ("_SOURCE_REALTIME_TIMESTAMP", b"soon"),
            ("_SOURCE_MONOTONIC_TIMESTAMP", b""),
        ]
    )
    add(
        [
            ("MESSAGE", b"coredump"),
            ("COREDUMP", b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 64),
            ("COREDUMP_SIGNAL", b"11"),
        ]
    )
    add([("MESSAGE", b"big text"), ("BIG", big_text)])
    add([("MESSAGE", b"big binary"), ("BIG", big_binary)])
    add([("MESSAGE", b"empty value"), ("EMPTY", b"")])
    add([("MESSAGE", b"equals in value"), ("KV", b"a=b=c")])
    add([("MESSAGE", b"long name"), ("F" * 64, b"sixty-four")])
    add([("MESSAGE", b"other boot")])
    e[-1][2] = ("_BOOT_ID", BOOT_B.encode())
    return e
