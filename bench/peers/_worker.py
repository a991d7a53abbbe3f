"""Run one peer snippet in this process and answer timing requests (stdlib only).

Started by ``bench.common.SubprocessRunner`` as::

    <venv>/bin/python -I bench/peers/_worker.py SNIPPET.py CONFIG_JSON

(from a cwd outside the checkout, so ``/work/main/pystemd`` cannot shadow the
peer's own ``pystemd``). Protocol: one JSON object per line.

* worker → harness, once: ``{"ready": true, "cases": [...], "meta": {...}}``
  or ``{"ready": false, "error": "..."}``.
* harness → worker: ``{"case": NAME, "n": N}``; answer ``{"wall": s, "cpu": s,
  "n": N, ...}`` (whatever the case function returned is merged in) or
  ``{"error": "..."}``.
* harness → worker: ``{"quit": true}`` (or EOF): teardown and exit.

A snippet defines ``setup(cfg) -> dict[str, fn]`` where ``fn(n)`` does the
work ``n`` times and returns ``None`` (timed here) or a dict (its ``wall`` /
``cpu`` keys, if present, replace the ones measured here; ``cpu_user`` and
``cpu_sys`` always come from getrusage around the call). Optional:
``teardown()``, ``META`` (dict). The global ``helpers`` is ``_helpers.py``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import resource
import runpy
import sys
import time
import traceback
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))


def load_helpers() -> Any:
    spec = importlib.util.spec_from_file_location(
        "_bench_helpers", os.path.join(HERE, "_helpers.py")
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def load_snippet(path: str) -> dict[str, Any]:
    return runpy.run_path(path, init_globals={"helpers": load_helpers()}, run_name="bench_peer")


def run_case(fn: Callable[[int], Any], n: int) -> dict[str, Any]:
    """Time ``fn(n)``: wall, CPU (user + system, whole process), and the split."""
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    c0 = time.process_time()
    t0 = time.perf_counter()
    extra = fn(n)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    out: dict[str, Any] = {
        "wall": wall,
        "cpu": cpu,
        "cpu_user": r1.ru_utime - r0.ru_utime,
        "cpu_sys": r1.ru_stime - r0.ru_stime,
        "n": n,
    }
    if extra:
        out.update(extra)
    return out


def main() -> int:
    snippet, cfg_json = sys.argv[1], sys.argv[2]
    # The protocol owns the real stdout; whatever the peer prints goes to stderr.
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def send(obj: dict[str, Any]) -> None:
        proto.write(json.dumps(obj) + "\n")

    try:
        ns = load_snippet(snippet)
        cases = ns["setup"](json.loads(cfg_json))
        meta = dict(ns.get("META") or {})
        meta.setdefault("python", sys.version.split()[0])
    except BaseException as e:
        send({"ready": False, "error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()})
        return 1
    send({"ready": True, "cases": sorted(cases), "meta": meta})
    for line in sys.stdin:
        req = json.loads(line)
        if req.get("quit"):
            break
        fn = cases.get(req["case"])
        if fn is None:
            send({"error": f"no case {req['case']!r}"})
            continue
        try:
            send(run_case(fn, int(req["n"])))
        except BaseException as e:
            send({"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()})
    teardown = ns.get("teardown")
    if teardown is not None:
        teardown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
