"""Run a bench/ script the way the smoke tests do: in its own process, with
--json, failing with the tail of its output when it exits non-zero.

No figure is ever asserted from it (figures belong to bench/).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from pystemd.testing import SandboxUnavailable, check_requirements
from pystemd.testing.pytest_plugin import unavailable

ROOT = Path(__file__).resolve().parent.parent


def run_bench(
    script: str, *args: str, tmp_path: Path, timeout: float = 300, sandbox: bool = True
) -> tuple[str, dict[str, Any]]:
    """(stdout, the --json results) of ``bench/<script> <args>``.

    ``sandbox``: the script boots its own sandbox, so skip (fail under
    CI=true) where that cannot work.
    """
    if sandbox:
        try:
            check_requirements()
        except SandboxUnavailable as e:
            unavailable(f"systemd sandbox unavailable: {e}")
    out_json = tmp_path / "bench.json"
    cp = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args, "--json", str(out_json)],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )  # fmt: skip
    assert cp.returncode == 0, cp.stdout[-2000:] + cp.stderr[-2000:]
    return cp.stdout, json.loads(out_json.read_text())
