"""Smoke test: bench/bench_daemon.py --quick --no-peers runs and prints its tables.

No figure is asserted (they belong to bench/); this only checks that the
script, its import runner and its notify rows still work.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench" / "bench_daemon.py"

pytestmark = pytest.mark.slow


def test_bench_daemon_quick(tmp_path: Path) -> None:
    out_json = tmp_path / "bench.json"
    cp = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--no-peers", "--rounds", "1",
         "--json", str(out_json)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert cp.returncode == 0, cp.stdout[-2000:] + cp.stderr[-2000:]
    out = cp.stdout
    assert "== import: one fresh interpreter per import" in out
    assert "import pystemd.daemon *" in out
    assert "== notify('READY=1') back to back" in out
    assert "against the issue's targets" in out
    data = json.loads(out_json.read_text())
    rows = {r["label"]: r for t in data["tables"] for r in t["rows"]}
    assert rows["import pystemd.daemon"]["samples"]
    assert all(s["import_us"] > 0 for s in rows["import pystemd.daemon"]["samples"])
    assert rows["pystemd.daemon.notify('READY=1')"]["samples"]
