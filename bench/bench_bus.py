#!/usr/bin/env python3
# ruff: noqa: RUF001, RUF003  (× and µ are meant)
"""The sd-bus layer against the raw C floor and its peers, one sandboxed systemd, one run.

    .venv/bin/python bench/bench_bus.py            # everything, a few minutes
    .venv/bin/python bench/bench_bus.py --quick    # ~30 s smoke run
    .venv/bin/python bench/bench_bus.py --no-peers --only get,busy

Operations (``--only`` names): get (Manager.Version, Unit.ActiveState),
getall (GetAll org.freedesktop.systemd1.Unit), listunits, pipelined (1000
Gets in flight, window 128), busy (back-to-back Gets beside a CPU-bound
Python thread), slow (a 1 s method call beside that thread), gil (pystemd's
Get and busy-thread rows again with bus.gil_hold_us at 0, 500 and 5000 µs),
rss (RSS growth per 10k Gets), private (Get over /run/systemd/private vs
through dbus-daemon, measured inside the sandbox). Every row of a table is measured in the same
interleaved rounds; ratios are to the C floor's row. See bench/README.md.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as C

S1 = "org.freedesktop.systemd1"
MANAGER_PATH = "/org/freedesktop/systemd1"
UNIT = "bench-idle.service"
UNIT_TEXT = (
    "[Unit]\nDescription=bench: an idle unit to read\n[Service]\nExecStart=/bin/sleep infinity\n"
)
WINDOW = 128  # the system bus's max_replies_per_connection
OPS = ("get", "getall", "listunits", "pipelined", "busy", "slow", "gil", "rss", "private")
GIL_HOLDS = (0, 500, 5000)  # bus.gil_hold_us settings compared by the "gil" tables
FLOOR = "C floor (sd-bus)"
PYSTEMD = "pystemd"
INNER_MARK = "@@bench-inner-json@@ "
ROOT_EXAMPLE = C.ROOT / "examples" / "slow_service.py"


def unit_path(name: str) -> str:
    from pystemd.bus import path_encode

    return path_encode(MANAGER_PATH + "/unit", name)


class Settings:
    def __init__(self, args: argparse.Namespace) -> None:
        q = args.quick
        self.rounds = args.rounds or (3 if q else 15)
        self.round_time = 0.03 if q else 0.1
        self.pipelined_n = 1000
        self.busy_ms = 150 if q else 300
        self.busy_rounds = 1 if q else 5
        self.slow_rounds = 1 if q else 3
        self.slow_baseline_ms = 200 if q else 300
        self.rss_calls = 2000 if q else 10000
        self.private_rounds = 3 if q else 9


# ---------------------------------------------------------------------------
# the slow service (a method that takes 1 s) on a private dbus-daemon


class SlowService:
    """A served method that takes ``seconds``, on a private dbus-daemon.

    examples/slow_service.py (served by pystemd.serve) when the checkout has it
    and it starts; otherwise bench/peers/slow_service.py (served by dbus-fast).
    """

    NAME = "org.pystemd.Bench.Slow"

    def __init__(self, seconds: float = 1.0, log: Any = print) -> None:
        from pystemd.testing import DBusDaemon

        self.seconds = seconds
        self.daemon = DBusDaemon().start()
        assert self.daemon.address is not None
        self.address: str = self.daemon.address
        self.proc: Optional[subprocess.Popen[str]] = None
        candidates = [
            (ROOT_EXAMPLE, ["--address", self.address, "--name", self.NAME],
             {"path": "/org/pystemd/Slow", "iface": "org.pystemd.Slow1"},
             "pystemd.serve (examples/slow_service.py)"),
            (C.PEERS_DIR / "slow_service.py", [self.address],
             {"path": "/org/pystemd/Bench/Slow", "iface": "org.pystemd.Bench.Slow"},
             "dbus-fast (bench/peers/slow_service.py)"),
        ]  # fmt: skip
        errors = []
        for script, argv, where, served_by in candidates:
            if not script.exists():
                continue
            err = self._start(script, argv)
            if err is None:
                self.cfg = {"address": self.address, "name": self.NAME, "method": "Sleep",
                            "seconds": seconds, "served_by": served_by, **where}  # fmt: skip
                return
            errors.append(f"{script.name}: {err}")
            log(f"  [note] slow service {script.name} did not start: {err}")
        self.close()
        raise C.RunnerError("no slow service started: " + "; ".join(errors))

    def _start(self, script: Path, argv: list[str]) -> Optional[str]:
        import select

        self.proc = subprocess.Popen(
            [str(C.MAIN_PYTHON), str(script), *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 20)
        line = self.proc.stdout.readline() if ready else ""
        if line.split()[:1] in (["READY"], ["ready"]):
            return None
        self._stop_proc()
        return "no READY line"

    def _stop_proc(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()  # examples/slow_service.py: SIGTERM; ours: also stdin EOF
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for st in (proc.stdin, proc.stdout, proc.stderr):
            if st is not None:
                st.close()

    def close(self) -> None:
        self._stop_proc()
        self.daemon.stop()


# ---------------------------------------------------------------------------
# runners


def make_runners(
    args: argparse.Namespace, sb: Any, floor_so: Path, slow: Optional[dict[str, Any]], log: Any
) -> list[C.Runner]:
    cfg: dict[str, Any] = {
        "address": sb.bus_address,
        "dest": S1,
        "manager_path": MANAGER_PATH,
        "unit": UNIT,
        "unit_path": unit_path(UNIT),
        "window": WINDOW,
        "slow": slow,
    }
    env = sb.env()
    if slow:
        env["DBUS_SESSION_BUS_ADDRESS"] = slow["address"]
    specs: list[tuple[str, Any]] = [
        (
            FLOOR,
            lambda: C.LocalRunner(
                FLOOR, C.PEERS_DIR / "cfloor.py", {**cfg, "floor_so": str(floor_so)}
            ),
        ),
        (PYSTEMD, lambda: C.LocalRunner(PYSTEMD, C.PEERS_DIR / "pystemd_own.py", cfg)),
    ]
    if not args.no_peers:
        up = C.venv_python(C.UPSTREAM_PYTHON)
        main = str(C.MAIN_PYTHON)
        if up is None:
            log(f"  [skip] upstream pystemd: {C.UPSTREAM_PYTHON} missing (run ci/peer-venvs.sh)")
        else:
            for mode in ("default", "explicit"):
                label = f"pystemd 0.15.3 ({mode} bus)"
                specs.append(
                    (label, lambda label=label, mode=mode: C.SubprocessRunner(
                        label, up, C.PEERS_DIR / "pystemd_upstream.py", {**cfg, "mode": mode}, env=env))
                )  # fmt: skip
        peers = [
            ("sdbus", "sdbus_peer.py", {}),
            ("dbus-fast (asyncio)", "dbus_fast_peer.py", {}),
            ("dbus-fast (run_until_complete per call)", "dbus_fast_peer.py", {"sync": True}),
            ("jeepney (blocking)", "jeepney_peer.py", {}),
        ]
        for label, snippet, extra in peers:
            specs.append(
                (label, lambda label=label, snippet=snippet, extra=extra: C.SubprocessRunner(
                    label, main, C.PEERS_DIR / snippet, {**cfg, **extra}, env=env))
            )  # fmt: skip
        specs.append(
            ("busctl (subprocess per call)", lambda: C.LocalRunner(
                "busctl (subprocess per call)", C.PEERS_DIR / "busctl_peer.py", cfg))
        )  # fmt: skip
    runners = C.start_runners(specs, log=log)
    for (
        r
    ) in runners:  # "sdbus" -> "sdbus 0.14.3", "jeepney (blocking)" -> "jeepney 0.9.0 (blocking)"
        v = r.meta.get("version")
        first, _, rest = r.label.partition(" ")
        if v and first in ("sdbus", "dbus-fast", "jeepney"):
            r.label = f"{first} {v} {rest}".rstrip()
    return runners


def entries(
    runners: list[C.Runner], case: str, *, n: Optional[int] = None, only: Any = None
) -> list[C.Entry]:
    out = []
    for r in runners:
        if not r.has(case) or (only is not None and not only(r)):
            continue
        out.append(
            C.Entry(
                r.label,
                r,
                case,
                n=n,
                subject=r.label == PYSTEMD,
                reference=r.label == FLOOR,
            )
        )
    return out


def pystemd_label(r: C.Runner) -> bool:
    return r.label == PYSTEMD


# ---------------------------------------------------------------------------
# tables


def latency_table(report: C.Report, title: str, results: list[C.Result], max_ratio: float) -> None:
    cols = [
        C.col_us("min"),
        C.col_us("median"),
        C.col_ratio("min", "×floor min"),
        C.col_ratio("median", "×floor med"),
        C.col_ratio("paired", "×floor paired", digits=3),
        C.col_us("median", "cpu", "CPU µs/op"),
    ]
    report.add(C.Table(title, results, cols, targets=[C.ratio_target(max_ratio)]))


def run_latency(
    report: C.Report, runners: list[C.Runner], s: Settings, ops: set[str], log: Any
) -> None:
    def only(case: str) -> Any:
        # the run_until_complete variant of dbus-fast only matters for single Gets
        return lambda r: (
            case in ("get_version", "get_active") or "run_until_complete" not in r.label
        )

    if "get" in ops:
        for case, what in (("get_version", "Manager.Version"), ("get_active", "Unit.ActiveState")):
            res = C.measure(
                entries(runners, case, only=only(case)),
                rounds=s.rounds,
                round_time=s.round_time,
                log=log,
            )
            latency_table(report, f"Get {what} (one call, blocking)", res, 1.05)
    if "getall" in ops:
        res = C.measure(
            entries(runners, "getall_unit", only=only("")),
            rounds=s.rounds,
            round_time=s.round_time,
            log=log,
        )
        latency_table(report, f"GetAll {S1}.Unit ({UNIT})", res, 1.10)
    if "listunits" in ops:
        res = C.measure(
            entries(runners, "list_units", only=only("")),
            rounds=s.rounds,
            round_time=s.round_time,
            log=log,
        )
        units = report.extra.get("sandbox_units")
        latency_table(report, f"Manager.ListUnits ({units} units)", res, 1.10)


def run_pipelined(report: C.Report, runners: list[C.Runner], s: Settings, log: Any) -> None:
    es = entries(runners, "pipelined_get", n=s.pipelined_n)
    ps = next((r for r in runners if r.label == PYSTEMD), None)
    if ps is not None:
        if ps.has("pipelined_get"):
            for e in es:
                if e.runner is ps:
                    e.label = PYSTEMD + " get_property_many"
        else:
            es.insert(1, C.Entry(PYSTEMD + " get_property_many", None, "pipelined_get", subject=True,
                                 status="pending: Bus.get_property_many not in this build yet (docs/bus.md)"))  # fmt: skip
        if ps.has("pipelined_call_many"):
            es.insert(
                2,
                C.Entry(
                    PYSTEMD + " call_many", ps, "pipelined_call_many", n=s.pipelined_n, subject=True
                ),
            )
    res = C.measure(es, rounds=s.rounds, log=log)
    cols = [
        C.col_us("min"),
        C.col_us("median"),
        C.col_ratio("min", "×floor min"),
        C.col_ratio("paired", "×floor paired", digits=3),
        C.col_us("median", "cpu", "client CPU µs/call"),
        C.col_us("median", "cpu_user", "user"),
        C.col_us("median", "cpu_sys", "sys"),
        C.col_metric("failed", "failed calls", agg=max),
    ]
    targets = [
        C.per_op_target(10, key="cpu", text="CPU ≤ 10 µs/call"),
        C.metric_target("failed", at_most=0, agg=max, text="0 failed"),
    ]
    report.add(C.Table(f"{s.pipelined_n} pipelined Gets (Manager.Version, ≤ {WINDOW} in flight)", res, cols,
                       targets=targets, note="per call; client CPU = user + sys of the client process (the floor: its thread)"))  # fmt: skip


def busy_cols() -> list[Any]:
    """Columns of a busy-thread table: Gets/s (median, min, max) and the thread's speed kept."""
    return [
        C.col_metric("calls_per_s", "Gets/s"),
        C.col_metric("calls_per_s", "min", agg=min),
        C.col_metric("calls_per_s", "max", agg=max),
        C.col_metric("busy_kept", "busy thread kept", scale=100, fmt=C.pct),
    ]


def run_busy(report: C.Report, runners: list[C.Runner], s: Settings, log: Any) -> None:
    es = entries(runners, "busy_get", n=s.busy_ms)
    res = C.measure(es, rounds=s.busy_rounds, log=log)
    cols = busy_cols()
    report.add(C.Table(
        "Back-to-back Gets beside a CPU-bound Python thread", res, cols,
        targets=[C.metric_target("calls_per_s", at_least=2500, text="≥ 2,500 Gets/s")],
        note=f"{s.busy_ms} ms phases: thread alone / thread + Gets / thread alone; medians of {s.busy_rounds}."
        " The floor's loop runs without the GIL: its row is what the machine allows right now.",
    ))  # fmt: skip


def run_gil(report: C.Report, runners: list[C.Runner], s: Settings, log: Any) -> None:
    """pystemd's GIL-held wait window: CPU per Get, and Gets/s beside a busy thread."""
    floor = next((r for r in runners if r.label == FLOOR), None)
    ps = next((r for r in runners if r.label == PYSTEMD), None)
    if ps is None or not ps.has(f"get_version_hold_{GIL_HOLDS[0]}"):
        log("  [skip] gil: this checkout's pystemd snippet has no gil_hold_us cases")
        return
    default = ps.meta.get("gil_hold_us")

    def label(hold: int) -> str:
        return f"pystemd gil_hold_us={hold}" + (" (default)" if hold == default else "")

    es = [C.Entry(FLOOR, floor, "get_version", reference=True)] if floor else []
    es += [C.Entry(label(h), ps, f"get_version_hold_{h}") for h in GIL_HOLDS]
    res = C.measure(es, rounds=s.rounds, round_time=s.round_time, log=log)
    cols = [
        C.col_us("min"),
        C.col_us("median"),
        C.col_ratio("paired", "×floor paired", digits=3),
        C.col_us("median", "cpu", "CPU µs/op"),
        C.col_us("min", "cpu", "CPU µs/op (min)"),
    ]
    report.add(C.Table(
        "Get Manager.Version by GIL-held wait window", res, cols,
        note="the window is sd_bus_call()'s timeout, so ppoll()'s: one shorter than a timer tick arms"
        " the CPU's next timer event (reprogramming the timer device: a VM exit on KVM)",
    ))  # fmt: skip
    es = [C.Entry(FLOOR, floor, "busy_get", n=s.busy_ms, reference=True)] if floor else []
    es += [C.Entry(label(h), ps, f"busy_get_hold_{h}", n=s.busy_ms) for h in GIL_HOLDS]
    res = C.measure(es, rounds=s.busy_rounds, log=log)
    cols = busy_cols()
    report.add(C.Table(
        "Back-to-back Gets beside a CPU-bound Python thread, by GIL-held wait window", res, cols,
        note=f"{s.busy_ms} ms phases as in the busy table; medians of {s.busy_rounds}",
    ))  # fmt: skip


def run_slow(
    report: C.Report, runners: list[C.Runner], s: Settings, slow: Optional[dict[str, Any]], log: Any
) -> None:
    if not slow:
        return
    es = entries(runners, "slow_call", n=s.slow_baseline_ms)
    res = C.measure(es, rounds=s.slow_rounds, log=log)
    cols = [
        C.col_metric("call_s", "call s", fmt=lambda v: f"{v:.3f}"),
        C.col_metric("busy_kept", "busy thread kept", scale=100, fmt=C.pct),
        C.col_metric("busy_kept", "min", scale=100, fmt=C.pct, agg=min),
        C.col_metric("busy_kept", "max", scale=100, fmt=C.pct, agg=max),
    ]
    report.add(C.Table(
        f"A {slow['seconds']:g} s method call beside a CPU-bound Python thread", res, cols,
        targets=[C.metric_target("busy_kept", at_least=0.9, text="busy thread keeps ≥ 90 %")],
        note=f"served by {slow['served_by']} on a private dbus-daemon; medians of {s.slow_rounds}",
    ))  # fmt: skip


def run_rss(report: C.Report, runners: list[C.Runner], s: Settings, log: Any) -> None:
    es = entries(runners, "rss_get", n=s.rss_calls)
    for e in es:
        e.warmup = False  # helpers.rss_growth warms up (2,000 calls) itself
    res = C.measure(es, rounds=1, log=log)
    cols = [
        C.col_metric("rss_kib_per_10k", "RSS growth KiB/10k calls"),
        C.col_metric("rss_kib", "RSS KiB after"),
    ]
    report.add(C.Table(
        f"Memory: RSS growth over {s.rss_calls:,} Gets (after warm-up and gc), per 10k calls", res, cols,
        note="each peer in its own process; pystemd and the floor share the bench process",
    ))  # fmt: skip


# ---------------------------------------------------------------------------
# private socket vs dbus-daemon, measured inside the sandbox


def inner_private(args: argparse.Namespace) -> int:
    """Runs inside the container (sb.run): Gets over /run/systemd/private and via dbus-daemon."""
    from pystemd.bus import PRIVATE_SOCKET

    base = {
        "dest": S1,
        "manager_path": MANAGER_PATH,
        "unit": UNIT,
        "unit_path": unit_path(UNIT),
        "window": WINDOW,
    }
    bus_addr = "unix:path=/run/dbus/system_bus_socket"
    priv = {"address": "unix:path=" + PRIVATE_SOCKET, "peer": True}
    specs = [
        (
            "C floor via dbus-daemon",
            "cfloor.py",
            {**base, "address": bus_addr, "floor_so": args.floor_so},
        ),
        (
            "C floor via /run/systemd/private",
            "cfloor.py",
            {**base, **priv, "floor_so": args.floor_so},
        ),
        ("pystemd via dbus-daemon", "pystemd_own.py", {**base, "address": bus_addr}),
        ("pystemd via /run/systemd/private", "pystemd_own.py", {**base, **priv}),
    ]
    runners = C.start_runners(
        [
            (lbl, functools.partial(C.LocalRunner, lbl, C.PEERS_DIR / sn, cfg))
            for lbl, sn, cfg in specs
        ],
        log=lambda m: print(m, file=sys.stderr),
    )
    out = []
    for case in ("get_version", "get_active"):
        es = [C.Entry(r.label, r, case, reference=r.label == "C floor via dbus-daemon",
                      subject=r.label.startswith("pystemd")) for r in runners]  # fmt: skip
        res = C.measure(es, rounds=args.rounds or 9, round_time=args.round_time,
                        log=lambda m: print(m, file=sys.stderr))  # fmt: skip
        out.append({"case": case, "results": [r.to_json() for r in res]})
    for r in runners:
        r.close()
    print(INNER_MARK + json.dumps(out))
    return 0


def run_private(report: C.Report, sb: Any, s: Settings, floor_so: Path, log: Any) -> None:
    argv = [sys.executable, str(Path(__file__).resolve()), "--inner-private", "--floor-so", str(floor_so),
            "--rounds", str(s.private_rounds), "--round-time", str(s.round_time)]  # fmt: skip
    try:
        cp = sb.run(argv, check=False, timeout=300)
    except subprocess.TimeoutExpired:
        log("  [error] private: timed out inside the sandbox")
        return
    line = next((ln for ln in cp.stdout.splitlines() if ln.startswith(INNER_MARK)), None)
    if cp.returncode != 0 or line is None:
        log(f"  [error] private: exit {cp.returncode}: {cp.stderr.strip()[-800:]}")
        return
    for block in json.loads(line[len(INNER_MARK) :]):
        res = []
        for d in block["results"]:
            e = C.Entry(d["label"], None, d["case"], subject=d["subject"],
                        reference=d["label"] == "C floor via dbus-daemon")  # fmt: skip
            r = C.Result(e, n=d["n"], samples=d["samples"], error=d["error"])
            res.append(r)
        by = {r.label: r for r in res}
        speedups = []
        for who in ("C floor", "pystemd"):
            a, b = by.get(f"{who} via dbus-daemon"), by.get(f"{who} via /run/systemd/private")
            if a and b and a.ok and b.ok:
                paired = [x / y for x, y in zip(a.per_op(), b.per_op()) if y > 0]
                speedups.append(f"{who} {statistics.median(paired):.1f}×")
        what = "Manager.Version" if block["case"] == "get_version" else "Unit.ActiveState"
        cols = [C.col_us("min"), C.col_us("median"), C.col_ratio("paired", "×via dbus-daemon (C)"),
                C.col_us("median", "cpu", "CPU µs/op")]  # fmt: skip
        report.add(C.Table(
            f"Get {what} inside the sandbox: systemd's private socket vs dbus-daemon", res, cols,
            note="private socket speed-up (paired median): " + (", ".join(speedups) or "n/a") + " (docs claim ~3×)",
        ))  # fmt: skip


# ---------------------------------------------------------------------------


def main() -> int:
    p = C.add_common_args(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    p.add_argument("--inner-private", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--floor-so", default="", help=argparse.SUPPRESS)
    p.add_argument("--round-time", type=float, default=0.15, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.inner_private:
        return inner_private(args)
    ops = set(OPS) if not args.only else {o.strip() for o in args.only.split(",") if o.strip()}
    unknown = ops - set(OPS)
    if unknown:
        p.error(f"unknown operation(s) {', '.join(sorted(unknown))}; choose from {', '.join(OPS)}")
    s = Settings(args)
    report = C.Report("bench_bus")
    C.header(report, "pystemd bus benchmark: sd-bus layer vs the raw C floor and peers")

    def log(msg: str) -> None:
        print(msg, flush=True)

    from pystemd.testing import Sandbox

    floor_so = C.build_c(C.CFLOOR_DIR / "floor.c")
    t0 = time.perf_counter()
    slow_svc: Optional[SlowService] = None
    runners: list[C.Runner] = []
    with Sandbox(units={UNIT: UNIT_TEXT}) as sb:
        sb.manager_call("StartUnit", "ss", UNIT, "replace")
        with sb.bus() as bus:
            report.extra["sandbox_units"] = len(
                bus.call(S1, MANAGER_PATH, S1 + ".Manager", "ListUnits")[0]
            )
        log(
            f"# sandbox {sb.name} up in {time.perf_counter() - t0:.1f} s; {report.extra['sandbox_units']} units loaded"
        )
        try:
            if "slow" in ops:
                try:
                    slow_svc = SlowService(1.0, log)
                except (C.RunnerError, OSError) as e:
                    log(f"  [skip] slow call: {e}")
            runners = make_runners(args, sb, floor_so, slow_svc.cfg if slow_svc else None, log)
            report.extra["peers"] = {r.label: r.meta for r in runners}
            log("# rows: " + "; ".join(r.label for r in runners))
            log("")
            run_latency(report, runners, s, ops, log)
            if "pipelined" in ops:
                run_pipelined(report, runners, s, log)
            if "busy" in ops:
                run_busy(report, runners, s, log)
            if "slow" in ops:
                run_slow(report, runners, s, slow_svc.cfg if slow_svc else None, log)
            if "gil" in ops:
                run_gil(report, runners, s, log)
            if "rss" in ops:
                run_rss(report, runners, s, log)
        finally:
            for r in runners:
                r.close()
            if slow_svc is not None:
                slow_svc.close()
        if "private" in ops:
            run_private(report, sb, s, floor_so, log)
    log("== pystemd against the issue's targets (* rows)")
    for line in report.summary():
        log(line)
    path = report.save(args.json)
    log(
        f"\n# total {time.perf_counter() - report.t0:.0f} s; results: {os.path.relpath(path, C.ROOT)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
