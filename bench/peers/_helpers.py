"""Measurement helpers shared by every peer snippet (standard library only).

Peer snippets run in other virtualenvs (``python -I``), so they cannot import
``bench.common``; the worker (and ``bench.common.LocalRunner``) loads this file
by path and hands it to each snippet as the global ``helpers``. Keeping the
busy-thread and RSS code in one file means every peer is measured by the same
code, whichever interpreter runs it.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from typing import Any, Callable

_PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def rss_kib() -> int:
    """Resident set size of this process, in KiB (from /proc/self/statm)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE_KIB


class BusyThread:
    """A CPU-bound pure-Python thread that counts loop iterations.

    Its rate (iterations/s) over a phase is what "the busy thread's speed"
    means in the tables: alone (the main thread sleeping) versus while the
    main thread makes D-Bus calls.
    """

    def __init__(self) -> None:
        self.box = [0]
        self.stop = False
        self.thread = threading.Thread(target=self._spin, name="bench-busy", daemon=True)

    def _spin(self) -> None:
        box = self.box
        while not self.stop:
            box[0] += 1

    def __enter__(self) -> BusyThread:
        self.thread.start()
        # let it start spinning before the first phase
        time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop = True
        self.thread.join()

    def count(self) -> int:
        return self.box[0]


def beside_busy(fn: Callable[[int], Any]) -> Callable[[int], dict[str, float]]:
    """A case: ``fn(n)`` run next to a CPU-bound Python thread; its wall time
    and the busy thread's rate meanwhile (``busy_it_s``)."""

    def run(n: int) -> dict[str, float]:
        with BusyThread() as b:
            c0, t0 = b.count(), time.perf_counter()
            fn(n)
            wall = time.perf_counter() - t0
            return {"wall": wall, "busy_it_s": (b.count() - c0) / wall}

    return run


def _alone(busy: BusyThread, seconds: float) -> float:
    c0, t0 = busy.count(), time.perf_counter()
    time.sleep(seconds)
    return (busy.count() - c0) / (time.perf_counter() - t0)


def busy_calls(call_once: Callable[[], Any], seconds: float) -> dict[str, float]:
    """Back-to-back calls while a CPU-bound Python thread runs.

    Three phases of ``seconds`` each: busy thread alone, busy thread + calls
    in this thread, busy thread alone again. Returns calls/s during the middle
    phase and the busy thread's rate then, relative to the mean of the two
    alone phases (``busy_kept``, 1.0 = unaffected).
    """
    with BusyThread() as busy:
        before = _alone(busy, seconds)
        calls = 0
        c0 = busy.count()
        t0 = time.perf_counter()
        deadline = t0 + seconds
        while True:
            call_once()
            calls += 1
            now = time.perf_counter()
            if now >= deadline:
                break
        elapsed = now - t0
        during = (busy.count() - c0) / elapsed
        after = _alone(busy, seconds)
    base = (before + after) / 2
    return {
        "wall": elapsed,
        "calls": calls,
        "calls_per_s": calls / elapsed,
        "busy_kept": during / base if base else 0.0,
        "busy_alone_per_s": base,
    }


def busy_batch(run_for: Callable[[float], int], seconds: float) -> dict[str, float]:
    """:func:`busy_calls` for calls made by one long GIL-free call (the C floor).

    ``run_for(seconds)`` makes calls for about that long without the GIL and
    returns how many it made.
    """
    with BusyThread() as busy:
        before = _alone(busy, seconds)
        c0 = busy.count()
        t0 = time.perf_counter()
        calls = run_for(seconds)
        elapsed = time.perf_counter() - t0
        during = (busy.count() - c0) / elapsed
        after = _alone(busy, seconds)
    base = (before + after) / 2
    return {
        "wall": elapsed,
        "calls": calls,
        "calls_per_s": calls / elapsed,
        "busy_kept": during / base if base else 0.0,
        "busy_alone_per_s": base,
    }


def busy_during(call_slow: Callable[[], Any], baseline_s: float = 0.5) -> dict[str, float]:
    """The busy thread's speed while this thread makes one slow call.

    Busy thread alone for ``baseline_s``, then during ``call_slow()``, then
    alone again. ``busy_kept`` is the rate during the call over the mean of the
    alone phases.
    """
    with BusyThread() as busy:
        before = _alone(busy, baseline_s)
        c0 = busy.count()
        t0 = time.perf_counter()
        call_slow()
        elapsed = time.perf_counter() - t0
        during = (busy.count() - c0) / elapsed
        after = _alone(busy, baseline_s)
    base = (before + after) / 2
    return {
        "wall": elapsed,
        "call_s": elapsed,
        "busy_kept": during / base if base else 0.0,
        "busy_alone_per_s": base,
    }


def rss_growth(call_once: Callable[[], Any], n: int, warmup: int = 2000) -> dict[str, float]:
    """RSS growth (KiB) over ``n`` calls, after ``warmup`` calls and a gc."""
    for _ in range(warmup):
        call_once()
    gc.collect()
    r0 = rss_kib()
    t0 = time.perf_counter()
    for _ in range(n):
        call_once()
    elapsed = time.perf_counter() - t0
    gc.collect()
    r1 = rss_kib()
    return {
        "wall": elapsed,
        "rss_growth_kib": float(r1 - r0),
        "rss_kib": float(r1),
        "rss_kib_per_10k": (r1 - r0) * 10000.0 / n,
    }


def repeat(call_once: Callable[[], Any]) -> Callable[[int], None]:
    """A case function (``fn(n)``) that makes ``n`` back-to-back calls."""

    def run(n: int) -> None:
        for _ in range(n):
            call_once()

    return run
