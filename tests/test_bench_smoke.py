"""Smoke tests: bench/bench_bus.py --quick --no-peers and the tailing-latency
part of bench/bench_journal.py --quick run and print their tables.

No timing is asserted (figures belong to bench/, see bench/README.md); this
only checks that the harness, the C floor and pystemd's rows still work.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from benchrun import run_bench

from pystemd.testing.pytest_plugin import unavailable

# a sandbox of its own plus ~10 s of measuring: deselect with -m "not slow"
pytestmark = [pytest.mark.sandbox, pytest.mark.slow]


def test_bench_bus_quick_no_peers(tmp_path: Path) -> None:
    if shutil.which("gcc") is None:
        unavailable("gcc is needed to build the bench's C floor")
    out, results = run_bench(
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
    assert set(rows) == {
        "follow() in a thread",
        "follow_async()",
        "follow(poll_interval=None): inotify only",
    }
    for label, row in rows.items():
        assert not row["error"], (label, row["error"])
        assert [smp["received"] for smp in row["samples"]] == [100], label  # nothing lost
