"""Smoke test: bench/bench_bus.py --quick --no-peers runs and prints its tables.

No timing is asserted (figures belong to bench/, see bench/README.md); this
only checks that the harness, the C floor and pystemd's rows still work.
"""

from __future__ import annotations

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
