"""python-systemd's private compiled modules are importable from the drop-in, with the same names."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PEER = REPO / ".venv-pysystemd" / "bin" / "python"

NAMES = (
    "import json, importlib\n"
    "out = {}\n"
    "for m in ('systemd._journal', 'systemd._reader', 'systemd._daemon'):\n"
    "    mod = importlib.import_module(m)\n"
    "    out[m] = sorted(n for n in dir(mod) if not n.startswith('__'))\n"
    "print(json.dumps(out))\n"
)


def _names(python: str, cwd: str, env: dict[str, str]) -> dict[str, list[str]]:
    r = subprocess.run([python, "-I", "-c", NAMES] if python == str(PEER) else [python, "-c", NAMES],
                       cwd=cwd, env=env, capture_output=True, text=True, check=True, timeout=60)  # fmt: skip
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def test_private_modules_offer_python_systemds_names() -> None:
    if not PEER.exists():
        pytest.skip("python-systemd venv missing: run ci/peer-venvs.sh")
    import sys

    theirs = _names(str(PEER), "/", {})
    ours = _names(sys.executable, str(REPO), {"PYTHONPATH": str(REPO)})
    for mod, names in theirs.items():
        missing = set(names) - set(ours[mod])
        assert missing == set(), f"{mod} lacks {sorted(missing)}"
