"""Smoke tests: bench/bench_bus.py --quick --no-peers and the tailing-latency
part of bench/bench_journal.py --quick run and print their tables.

No timing is asserted (figures belong to bench/, see bench/README.md); this
only checks that the harness, the C floor and pystemd's rows still work.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pystemd.testing import SandboxUnavailable, check_requirements
from pystemd.testing.pytest_plugin import unavailable

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench" / "bench_bus.py"

# a sandbox of its own plus ~10 s of measuring: deselect with -m "not slow"
pytestmark = [pytest.mark.sandbox, pytest.mark.slow]


def test_bench_bus_quick_no_peers(tmp_path: Path) -> None:
    # the bench boots its own sandbox, in its own process; skip (fail under
    # CI=true) where that cannot work
    try:
        check_requirements()
    except SandboxUnavailable as e:
        unavailable(f"systemd sandbox unavailable: {e}")
    if shutil.which("gcc") is None:
        unavailable("gcc is needed to build the bench's C floor")
    out_json = tmp_path / "bench.json"
    cp = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--no-peers", "--only", "get,getall,busy",
         "--rounds", "2", "--json", str(out_json)],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env=dict(os.environ),
    )  # fmt: skip
    assert cp.returncode == 0, cp.stdout[-2000:] + cp.stderr[-2000:]
    out = cp.stdout
    assert "== Get Manager.Version" in out
    assert "C floor (sd-bus)" in out
    assert "pystemd *" in out
    assert "== Back-to-back Gets beside a CPU-bound Python thread" in out
    assert "against the issue's targets" in out
    assert out_json.exists()


def test_bench_journal_latency_quick(tmp_path: Path) -> None:
    # the tailing-latency bench boots a sandbox and tails its journald: a
    # change to the sandbox (its journald drop-in is bound read-only) once
    # broke it unnoticed, so it runs here too (no timing asserted)
    try:
        check_requirements()
    except SandboxUnavailable as e:
        unavailable(f"systemd sandbox unavailable: {e}")
    out_json = tmp_path / "bench.json"
    cp = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_journal.py"), "--quick", "--no-peers",
         "--only", "latency", "--json", str(out_json)],
        capture_output=True, text=True, timeout=180, cwd=ROOT, env=dict(os.environ),
    )  # fmt: skip
    assert cp.returncode == 0, cp.stdout[-2000:] + cp.stderr[-2000:]
    out = cp.stdout
    assert "== send() to delivery while tailing (100 entries" in out
    (table,) = json.loads(out_json.read_text())["tables"]
    rows = {r["label"]: r for r in table["rows"]}
    assert set(rows) == {
        "follow() in a thread",
        "follow_async()",
        "follow(poll_interval=None): inotify only",
    }
    for label, row in rows.items():
        assert not row["error"], (label, row["error"])
        assert [smp["received"] for smp in row["samples"]] == [100], label  # nothing lost
