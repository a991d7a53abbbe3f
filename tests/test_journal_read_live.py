"""Tailing a live journal: the sandbox's journald writes while the Reader reads.

Entries are written with pystemd's writer from a host process whose journal
socket is the sandbox's (``run_with_journal``) and by transient units; the
journal is rotated (``journalctl --rotate`` inside the sandbox) while a
follower tails it. Every entry carries a sequence number: the follower must
see each exactly once, in order, across rotations.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import uuid
from typing import Any

import pytest

from pystemd.bus import Variant
from pystemd.journal import Reader
from pystemd.testing import Sandbox

S1 = "org.freedesktop.systemd1"
S1_PATH = "/org/freedesktop/systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"

WRITER = (
    "import sys\n"
    "from pystemd.journal import sendv\n"
    "run, a, b = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])\n"
    "for i in range(a, b):\n"
    "    sendv(f'MESSAGE=live entry {i}', f'SEQ={i}', f'TEST_RUN={run}', 'SYSLOG_IDENTIFIER=live-test')\n"
)


def write(sb: Sandbox, run: str, a: int, b: int) -> None:
    sb.run_with_journal([sys.executable, "-c", WRITER, run, str(a), str(b)])


def rotate(sb: Sandbox) -> None:
    sb.run(["journalctl", "--rotate"])


def journal_files(sb: Sandbox) -> int:
    return len(list(sb.journal_dir.rglob("*.journal")))


def follower(
    sb: Sandbox, run: str, want: int, out: list[int], *, start: str = "tail"
) -> threading.Thread:
    r = Reader(path=sb.journal_dir, fields=["SEQ"])
    r.add_match(TEST_RUN=run)
    if start == "tail":
        r.seek_last(0)
    ready = threading.Event()

    def tail() -> None:
        with r:
            gen = r.follow(idle_timeout=30)
            ready.set()
            for e in gen:
                out.append(int(e["SEQ"]))
                if len(out) >= want:
                    return

    t = threading.Thread(target=tail, daemon=True)
    t.start()
    ready.wait(10)
    return t


@pytest.fixture
def sb(systemd_sandbox_factory: Any) -> Sandbox:
    # A sandbox of our own (these tests rotate its journal). Its journald keeps
    # its files in /run/log/journal, the host's sb.journal_dir, across rotations
    # (Sandbox's default journald_conf sets Storage=volatile; with Storage=auto
    # a rotation would flush to the container's own /var/log/journal).
    sandbox: Sandbox = systemd_sandbox_factory()
    out = sandbox.run(["systemd-analyze", "cat-config", "systemd/journald.conf"]).stdout
    assert "Storage=volatile" in out
    return sandbox


def test_follow_sees_every_entry_once_across_rotations(sb: Sandbox) -> None:
    run = uuid.uuid4().hex
    write(sb, run, 0, 50)  # already there: the follower starts after them
    n, step = 1200, 150
    got: list[int] = []
    t = follower(sb, run, n, got)
    files_before = journal_files(sb)
    for a in range(50, 50 + n, step):
        w = threading.Thread(target=write, args=(sb, run, a, a + step))
        w.start()
        rotate(sb)  # while the writer writes
        w.join(60)
        rotate(sb)
    t.join(60)
    assert not t.is_alive()
    assert journal_files(sb) >= files_before + 8  # the journal was really rotated
    assert got == list(range(50, 50 + n))


def test_follow_async_sees_every_entry_once_across_rotations(sb: Sandbox) -> None:
    run = uuid.uuid4().hex
    n, step = 600, 100

    async def main() -> list[int]:
        r = Reader(path=sb.journal_dir, fields=["SEQ"])
        r.add_match(TEST_RUN=run)
        r.seek_last(0)
        got: list[int] = []
        loop = asyncio.get_running_loop()

        async def produce() -> None:
            for a in range(0, n, step):
                await loop.run_in_executor(None, write, sb, run, a, a + step)
                await loop.run_in_executor(None, rotate, sb)

        producer = asyncio.ensure_future(produce())
        with r:
            async for e in r.follow_async(idle_timeout=30):
                got.append(int(e["SEQ"]))
                if len(got) >= n:
                    break
        await producer
        return got

    assert asyncio.run(main()) == list(range(n))


def test_async_for_on_the_reader_itself(sb: Sandbox) -> None:
    run = uuid.uuid4().hex

    async def main() -> list[str]:
        r = Reader(path=sb.journal_dir, fields=["MESSAGE"])
        r.add_match(TEST_RUN=run)
        r.seek_last(0)
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(None, write, sb, run, 0, 3)
        out = []
        async for e in r:
            out.append(e["MESSAGE"])
            if len(out) == 3:
                break
        await fut
        r.close()
        return out

    assert asyncio.run(main()) == [f"live entry {i}" for i in range(3)]


def test_start_from_the_last_n_and_from_a_saved_cursor(sb: Sandbox) -> None:
    run = uuid.uuid4().hex
    write(sb, run, 0, 10)
    with Reader(path=sb.journal_dir, fields=["SEQ", "__CURSOR"]) as r:
        r.add_match(TEST_RUN=run)
        r.seek_last(3)
        first = [int(e["SEQ"]) for e in r.follow(idle_timeout=0.5)]
        assert first == [7, 8, 9]
    # resume after entry 4, with more written and the journal rotated meanwhile
    with Reader(path=sb.journal_dir, fields=["SEQ", "__CURSOR"]) as r:
        r.add_match(TEST_RUN=run)
        cursor = next(e for e in r if e["SEQ"] == "4")["__CURSOR"]
    rotate(sb)
    write(sb, run, 10, 20)
    rotate(sb)
    with Reader(path=sb.journal_dir, fields=["SEQ"]) as r:
        r.add_match(TEST_RUN=run)
        assert r.seek_after_cursor(cursor) is True
        got = [int(e["SEQ"]) for e in r.follow(idle_timeout=0.5)]
    assert got == list(range(5, 20))


def test_seek_tail_then_follow_does_the_step_back(sb: Sandbox) -> None:
    # follow() right after the raw seek_tail(): only new entries, none repeated
    run = uuid.uuid4().hex
    write(sb, run, 0, 5)
    r = Reader(path=sb.journal_dir, fields=["SEQ"])
    r.add_match(TEST_RUN=run)
    r.seek_tail()
    got: list[int] = []
    done = threading.Event()

    def tail() -> None:
        with r:
            for e in r.follow(idle_timeout=20):
                got.append(int(e["SEQ"]))
                if len(got) == 3:
                    break
        done.set()

    t = threading.Thread(target=tail)
    t.start()
    time.sleep(0.2)  # let it reach the wait (the result does not depend on it)
    write(sb, run, 5, 8)
    t.join(30)
    assert got == [5, 6, 7]


def test_close_from_another_thread_ends_follow(sb: Sandbox) -> None:
    r = Reader(path=sb.journal_dir)
    r.seek_last(0)
    ended = threading.Event()
    seen: list[Any] = []

    def tail() -> None:
        for e in r.follow():  # no idle timeout: only close() ends it
            seen.append(e)
        ended.set()

    t = threading.Thread(target=tail)
    t.start()
    time.sleep(0.2)
    r.close()
    t.join(30)
    assert ended.is_set()


def test_a_transient_units_output(sb: Sandbox) -> None:
    name = f"reader-{uuid.uuid4().hex[:8]}.service"
    with Reader(path=sb.journal_dir, fields=["MESSAGE", "_SYSTEMD_UNIT", "_PID"]) as r:
        r.add_match(_SYSTEMD_UNIT=name)
        r.seek_last(0)
        with sb.bus() as bus:
            props = [
                ("ExecStart", Variant("a(sasb)", [("/bin/sh", ["/bin/sh", "-c", "for i in 1 2 3; do echo line $i; done"], False)])),
                ("Type", Variant("s", "oneshot")),
            ]  # fmt: skip
            bus.call(
                S1,
                S1_PATH,
                MANAGER,
                "StartTransientUnit",
                "ssa(sv)a(sa(sv))",
                (name, "replace", props, []),
            )
        got = []
        for e in r.follow(idle_timeout=20):
            got.append(e)
            if len(got) == 3:
                break
    assert [e["MESSAGE"] for e in got] == ["line 1", "line 2", "line 3"]
    assert all(e["_SYSTEMD_UNIT"] == name and isinstance(e["_PID"], int) for e in got)
    out = sb.run(["journalctl", "-u", name, "-o", "cat"]).stdout.split("\n")
    assert [x for x in out if x.startswith("line")] == ["line 1", "line 2", "line 3"]


def test_namespace_open_inside_the_sandbox(sb: Sandbox) -> None:
    # a journal namespace: a unit with LogNamespace= logs to its own journald
    name = f"ns-{uuid.uuid4().hex[:8]}.service"
    with sb.bus() as bus:
        props = [
            ("ExecStart", Variant("a(sasb)", [("/bin/echo", ["/bin/echo", "in the namespace"], False)])),
            ("Type", Variant("s", "oneshot")),
            ("LogNamespace", Variant("s", "pystemdtest")),
        ]  # fmt: skip
        bus.call(
            S1,
            S1_PATH,
            MANAGER,
            "StartTransientUnit",
            "ssa(sv)a(sa(sv))",
            (name, "replace", props, []),
        )
    code = (
        "import sys, time\n"
        "from pystemd.journal import Reader, ALL_NAMESPACES\n"
        "deadline = time.monotonic() + 20\n"
        "while True:\n"
        "    with Reader(namespace='pystemdtest', fields=['MESSAGE', '_SYSTEMD_UNIT']) as r:\n"
        f"        got = [e['MESSAGE'] for e in r if e.get('_SYSTEMD_UNIT') == {name!r}]\n"
        "    if got or time.monotonic() > deadline:\n"
        "        break\n"
        "    time.sleep(0.1)\n"
        "with Reader(fields=['MESSAGE', '_SYSTEMD_UNIT']) as r:\n"
        f"    default = [e['MESSAGE'] for e in r if e.get('_SYSTEMD_UNIT') == {name!r}]\n"
        "with Reader(flags=ALL_NAMESPACES, fields=['MESSAGE', '_SYSTEMD_UNIT']) as r:\n"
        f"    every = [e['MESSAGE'] for e in r if e.get('_SYSTEMD_UNIT') == {name!r}]\n"
        "print(repr((got, default, every)))\n"
    )
    r = sb.run([sys.executable, "-c", code], check=False, timeout=60)
    assert r.returncode == 0, r.stderr
    got, default, every = eval(r.stdout.strip().splitlines()[-1])
    assert got == ["in the namespace"]
    assert default == []  # not in the default namespace
    assert every == ["in the namespace"]


def test_this_boot_and_opening_by_flags(sb: Sandbox) -> None:
    # nspawn gives the container a boot id of its own
    boot = uuid.UUID(sb.run(["cat", "/proc/sys/kernel/random/boot_id"]).stdout.strip())
    with Reader(path=sb.journal_dir, fields=["_BOOT_ID"]) as r:
        r.this_boot(boot)
        got = r.read_batch(50)
    assert got and {e["_BOOT_ID"] for e in got} == {boot}
    with Reader(path=sb.journal_dir, fields=["_BOOT_ID"]) as r:
        r.this_boot(uuid.UUID(int=1))
        assert r.read_batch(50) == []
    # inside the sandbox, by flags (this_boot()/this_machine() default to the container's ids)
    # the sandbox keeps logging: count the entries up to a time taken first (and
    # visible by the first read), so that every opening counts the same ones
    code = (
        "import time\n"
        "from pystemd.journal import Reader, RUNTIME_ONLY, LOCAL_ONLY, SYSTEM\n"
        "cut = time.time_ns() // 1000; time.sleep(0.3)\n"
        "counts = []\n"
        "for flags in (LOCAL_ONLY, RUNTIME_ONLY, SYSTEM, None):\n"
        "    kw = {} if flags is None else {'flags': flags}\n"
        "    with Reader(**kw, raw=True, fields=['MESSAGE', '__REALTIME_TIMESTAMP']) as r:\n"
        "        r.this_boot(); r.this_machine()\n"
        "        counts.append(sum(e['__REALTIME_TIMESTAMP'] <= cut for e in r.read_batch(100000)))\n"
        "print(counts)\n"
    )
    out = sb.run([sys.executable, "-c", code], check=False)
    assert out.returncode == 0, out.stderr
    counts = eval(out.stdout.strip())
    assert all(c > 0 for c in counts) and counts[0] == counts[3]
