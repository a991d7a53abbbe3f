"""A WatchdogSec= service fed by pystemd.daemon.Watchdog (thread or asyncio task).

    watchdog_service.py thread|asyncio STATE_DIR

Reports itself to STATE_DIR/report-MODE.jsonl, sends READY=1, pings through
the Watchdog helper until the test writes to the FIFO STATE_DIR/stop-MODE,
then stops the helper cleanly and keeps running without pinging: systemd
must kill it (Result=watchdog) and restart it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from pathlib import Path

from _common import append_report, wait_fifo

from pystemd import daemon


def main() -> None:
    mode, state = sys.argv[1], Path(sys.argv[2])
    wd = daemon.Watchdog()
    append_report(
        state / f"report-{mode}.jsonl",
        {"pid": os.getpid(), "watchdog_usec": daemon.watchdog_enabled(), "period": wd.period},
    )
    daemon.notify_ready(f"pinging every {wd.period} s from {mode}")
    stop = state / f"stop-{mode}"
    if mode == "thread":
        wd.start()
        wait_fifo(stop)
        wd.stop()
        alive = [t.name for t in threading.enumerate() if t.name == "pystemd-watchdog"]
    else:

        async def run() -> list[str]:
            async with wd:
                await asyncio.get_running_loop().run_in_executor(None, wait_fifo, stop)
            return [t.get_name() for t in asyncio.all_tasks() if t.get_name() == "pystemd-watchdog"]

        alive = asyncio.run(run())
    daemon.notify_status(f"stopped pinging after {wd.pings} pings")
    append_report(
        state / f"report-{mode}.jsonl", {"stopped": True, "pings": wd.pings, "alive": alive}
    )
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
