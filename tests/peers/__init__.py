"""Independent D-Bus peers for round-trip tests (written with dbus-fast)."""

from __future__ import annotations

import os
import select
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent

ECHO_NAME = "com.example.Echo"
ECHO_PATH = "/com/example/Echo"
ECHO_IFACE = "com.example.Echo"


class EchoPeer:
    """``tests/peers/echo_service.py`` (dbus-fast) in a subprocess, owning ``name``
    on ``address``; ``script="jeepney_echo.py"`` for the jeepney one."""

    def __init__(
        self,
        address: str,
        name: str = ECHO_NAME,
        timeout: float = 20.0,
        script: str = "echo_service.py",
    ) -> None:
        self.address = address
        self.name = name
        self.timeout = timeout
        self.script = script
        self.proc: Optional[subprocess.Popen[bytes]] = None

    def start(self) -> EchoPeer:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / self.script), self.address, self.name],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], self.timeout)
        line = self.proc.stdout.readline() if ready else b""
        if line.strip() != b"READY":
            err = b""
            if self.proc.poll() is not None and self.proc.stderr is not None:
                err = self.proc.stderr.read()
            self.stop()
            raise RuntimeError(f"echo peer did not start: {line!r} {err.decode(errors='replace')}")
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for s in (self.proc.stdout, self.proc.stderr):
            if s is not None:
                s.close()
        self.proc = None

    def __enter__(self) -> EchoPeer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))
