"""A Type=notify service written with pystemd.daemon (run by systemd in the sandbox).

    notify_service.py STATE_DIR

Says STATUS=waiting for go, blocks on the FIFO STATE_DIR/go until the test
writes to it, then sends READY=1 with STATUS=serving, synchronises with the
barrier and reports what pystemd.daemon saw to STATE_DIR/report.jsonl.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from _common import append_report, wait_fifo

from pystemd import daemon


def main() -> None:
    state = Path(sys.argv[1])
    daemon.notify_status("waiting for go")
    word = wait_fifo(state / "go")
    sent = daemon.notify_ready(f"serving ({word})")
    barrier = daemon.notify_barrier(timeout=30)
    append_report(
        state / "report.jsonl",
        {
            "pid": os.getpid(),
            "ready_sent": sent,
            "barrier": barrier,
            "booted": daemon.booted(),
            "watchdog_usec": daemon.watchdog_enabled(),
            "listen_fds": daemon.listen_fds(),
            "notify_socket": os.environ.get("NOTIFY_SOCKET"),
        },
    )
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
