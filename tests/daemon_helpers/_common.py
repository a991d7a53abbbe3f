"""Shared by the helper services: find this checkout, write reports atomically."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def append_report(path: Path, record: dict[str, Any]) -> None:
    """One JSON line per record, written with a single write() (O_APPEND)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, (json.dumps(record) + "\n").encode())
    finally:
        os.close(fd)


def wait_fifo(path: Path) -> str:
    """Block until the test writes a line into the FIFO at ``path`` (made here)."""
    if not path.exists():
        os.mkfifo(path)
    with open(path) as f:
        return f.readline().strip()
