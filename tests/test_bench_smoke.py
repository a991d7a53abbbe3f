"""Smoke tests: bench/bench_bus.py --quick --no-peers and both parts of
bench/bench_journal.py --quick --no-peers (reading, tailing latency) run and
print their tables.

No timing is asserted (figures belong to bench/, see bench/README.md); this
only checks that the harness, the C floor and pystemd's rows still work.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from benchrun import run_bench

from pystemd.testing.pytest_plugin import unavailable

# a sandbox of its own plus ~10 s of measuring: deselect with -m "not slow"
pytestmark = [pytest.mark.sandbox, pytest.mark.slow]


def _with_c_floor(
    script: str, *args: str, tmp_path: Path, timeout: float
) -> tuple[str, dict[str, Any]]:
    """run_bench for a bench that compiles its C floor at run time."""
    if shutil.which("gcc") is None:
        unavailable("gcc is needed to build the bench's C floor")
    return run_bench(script, *args, tmp_path=tmp_path, timeout=timeout)


def test_bench_bus_quick_no_peers(tmp_path: Path) -> None:
    out, results = _with_c_floor(
        "bench_bus.py", "--quick", "--no-peers", "--only", "get,getall,busy", "--rounds", "2",
        tmp_path=tmp_path, timeout=120,
    )  # fmt: skip
    assert "== Get Manager.Version" in out
    assert "C floor (sd-bus)" in out
    assert "pystemd *" in out
    assert "== Back-to-back Gets beside a CPU-bound Python thread" in out
    assert "against the issue's targets" in out
    assert results["tables"]


def test_bench_journal_latency_quick(tmp_path: Path) -> None:
    # the tailing-latency bench boots a sandbox and tails its journald: a
    # change to the sandbox (its journald drop-in is bound read-only) once
    # broke it unnoticed, so it runs here too (no timing asserted)
    out, results = run_bench(
        "bench_journal.py", "--quick", "--no-peers", "--only", "latency",
        tmp_path=tmp_path, timeout=180,
    )  # fmt: skip
    assert "== send() to delivery while tailing (100 entries" in out
    (table,) = results["tables"]
    rows = {r["label"]: r for r in table["rows"]}
    modes = ["follow() in a thread", "follow_async()", "follow(poll_interval=None): inotify only"]
    machine = [f"  machine: a 3 ms sleep's lateness ({m.split(':')[0]})" for m in modes]
    assert list(rows) == [x for pair in zip(modes, machine) for x in pair]
    for label in modes:
        row = rows[label]
        assert not row["error"], (label, row["error"])
        (smp,) = row["samples"]
        assert smp["received"] == 100, label  # nothing lost
        # the split: journald's part and the reader's, each no more than the whole
        assert 0 <= smp["reader_p99_ms"] <= smp["max_ms"], (label, smp)
        assert smp["journald_p99_ms"] <= smp["max_ms"], (label, smp)
    for label in machine:
        (smp,) = rows[label]["samples"]
        assert smp["received"] > 50, (label, smp)  # ~1 s of 3 ms sleeps
        assert smp["p50_ms"] >= 0, (label, smp)


def test_bench_journal_read_quick(tmp_path: Path) -> None:
    # the read bench's C floor (plain, and making CPython dicts: compiled
    # against this interpreter's headers) and pystemd's rows
    out, results = _with_c_floor(
        "bench_journal.py", "--quick", "--no-peers", "--only", "read", "--rounds", "2",
        tmp_path=tmp_path, timeout=300,
    )  # fmt: skip
    assert "== Reading 20,000 entries as python-systemd's dicts" in out
    rows = {r["label"]: r for t in results["tables"] for r in t["rows"]}
    for label in (
        "C floor: next + enumerate",
        "C + CPython API: dict of bytes",
        "C + CPython API: dict, values None",
        "C + CPython API: dict of str + cursor, ts",
        "pystemd dicts",
        "pystemd raw",
        "pystemd raw lazy=True",
    ):
        assert label in rows, (label, sorted(rows))
        assert not rows[label]["error"], (label, rows[label]["error"])
        assert rows[label]["samples"], label
