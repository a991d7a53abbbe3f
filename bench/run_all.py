#!/usr/bin/env python3
"""Run every bench/bench_*.py, one after the other, with the same options.

    .venv/bin/python bench/run_all.py            # full runs
    .venv/bin/python bench/run_all.py --quick    # smoke runs
    .venv/bin/python bench/run_all.py --no-peers --only get   # options are passed through

Each script runs in its own process (its own sandbox, its own results file in
bench/results/). Options a script does not know are its business: every
bench script takes the common ones (bench/common.py:add_common_args).
Exit status: the number of scripts that failed (0 = all ran; a missed target
is not a failure).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    scripts = sorted(BENCH_DIR.glob("bench_*.py"))
    if not scripts:
        print("no bench/bench_*.py found")
        return 0
    t0 = time.perf_counter()
    status: list[tuple[str, int, float]] = []
    for script in scripts:
        print(f"\n######## {script.name} {' '.join(argv)}", flush=True)
        t = time.perf_counter()
        rc = subprocess.call([sys.executable, str(script), *argv])
        status.append((script.name, rc, time.perf_counter() - t))
    print("\n######## summary")
    for name, rc, secs in status:
        print(f"  {'ok  ' if rc == 0 else f'FAIL (exit {rc})'}  {name}  {secs:.0f} s")
    print(f"  total {time.perf_counter() - t0:.0f} s")
    return sum(1 for _, rc, _ in status if rc != 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
