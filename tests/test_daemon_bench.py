"""Smoke test: bench/bench_daemon.py --quick --no-peers runs and prints its tables.

No figure is asserted (they belong to bench/); this only checks that the
script, its import runner and its notify rows still work.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from benchrun import run_bench

pytestmark = pytest.mark.slow


def test_bench_daemon_quick(tmp_path: Path) -> None:
    out, data = run_bench(
        "bench_daemon.py",
        "--quick",
        "--no-peers",
        "--rounds",
        "1",
        tmp_path=tmp_path,
        sandbox=False,
    )
    assert "== import: one fresh interpreter per import" in out
    assert "import pystemd.daemon *" in out
    assert "== notify('READY=1') back to back" in out
    assert "against the issue's targets" in out
    rows = {r["label"]: r for t in data["tables"] for r in t["rows"]}
    assert rows["import pystemd.daemon"]["samples"]
    assert all(s["import_us"] > 0 for s in rows["import pystemd.daemon"]["samples"])
    assert rows["pystemd.daemon.notify('READY=1')"]["samples"]
