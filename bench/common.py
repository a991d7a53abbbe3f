# ruff: noqa: RUF001, RUF002, RUF003  (× and µ are meant)
"""The bench harness: peers measured side by side, interleaved, printed as ratios.

Used by every ``bench/bench_*.py``. The pieces:

* **Runners** host *cases* (named functions ``fn(n)`` that do one operation
  ``n`` times). A case lives in a *snippet* file (``bench/peers/*.py``) that
  defines ``setup(cfg) -> {name: fn}``. :class:`LocalRunner` loads a snippet in
  this process (pystemd itself, the ctypes C floor); :class:`SubprocessRunner`
  runs it in another interpreter/venv with ``python -I`` from a cwd outside the
  checkout (upstream pystemd and python-systemd use the same import names as
  this checkout), speaking JSON lines through ``bench/peers/_worker.py``.
  Every snippet gets ``bench/peers/_helpers.py`` as the global ``helpers``
  (busy thread, RSS), so every peer is measured by the same code.
* :func:`measure` runs a list of :class:`Entry` (label, runner, case):
  warm-up and calibration (``n`` chosen so one repetition takes about
  ``round_time``), then ``rounds`` repetitions **interleaved**: each round
  runs every entry once, the starting entry rotating, so a burst of load from
  other processes hits every peer alike.
* :class:`Table` prints a plain-text table (min and median per op, ratio to
  a reference row, target ✓/✗) and records it in a :class:`Report`, which
  :meth:`Report.save` writes as JSON to ``bench/results/`` (git-ignored).
* :func:`build_c` compiles a C source (the floor) against libsystemd, cached by
  content hash under ``bench/cfloor/build/``.

Numbers are measured, never asserted: a target that is missed prints ✗, the
script still exits 0.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import platform
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
PEERS_DIR = BENCH_DIR / "peers"
CFLOOR_DIR = BENCH_DIR / "cfloor"
RESULTS_DIR = BENCH_DIR / "results"
WORKER = PEERS_DIR / "_worker.py"

MAIN_PYTHON = ROOT / ".venv" / "bin" / "python"
UPSTREAM_PYTHON = ROOT / ".venv-pystemd-upstream" / "bin" / "python"
PYSYSTEMD_PYTHON = ROOT / ".venv-pysystemd" / "bin" / "python"


class RunnerError(RuntimeError):
    """A case or a runner failed; the message says which and why."""


# ---------------------------------------------------------------------------
# small utilities


def venv_python(path: os.PathLike[str] | str) -> Optional[Path]:
    """``path`` if it is an executable interpreter, else None (peer not built)."""
    p = Path(path)
    return p if p.is_file() and os.access(p, os.X_OK) else None


def build_c(
    source: os.PathLike[str] | str,
    *,
    pkgs: Sequence[str] = ("libsystemd",),
    extra_flags: Sequence[str] = (),
    out_dir: os.PathLike[str] | str | None = None,
) -> Path:
    """Compile ``source`` into a shared object (cached by content + flags).

    Returns the path of the ``.so``, under ``bench/cfloor/build/`` by default
    (ignored by git). Raises :class:`RunnerError` with the compiler's output.
    """
    src = Path(source)
    pc = subprocess.run(["pkg-config", "--cflags", "--libs", *pkgs], capture_output=True, text=True)
    if pc.returncode != 0:
        raise RunnerError(f"pkg-config {' '.join(pkgs)}: {pc.stderr.strip()}")
    flags = ["-O2", "-Wall", "-shared", "-fPIC", *extra_flags]
    libs = pc.stdout.split()
    key = hashlib.sha256(src.read_bytes() + repr((flags, libs)).encode()).hexdigest()[:12]
    out = Path(out_dir) if out_dir is not None else CFLOOR_DIR / "build"
    out.mkdir(parents=True, exist_ok=True)
    so = out / f"{src.stem}-{key}.so"
    if so.exists():
        return so
    cc = os.environ.get("CC", "gcc")
    tmp = so.with_suffix(f".tmp{os.getpid()}")
    r = subprocess.run(
        [cc, *flags, str(src), "-o", str(tmp), *libs], capture_output=True, text=True
    )
    if r.returncode != 0:
        raise RunnerError(f"compiling {src.name} failed:\n{r.stderr}")
    os.replace(tmp, so)
    return so


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on (printed and saved with them)."""
    info: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "host": platform.node(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }
    try:
        info["loadavg"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    r = subprocess.run(["pkg-config", "--modversion", "libsystemd"], capture_output=True, text=True)
    if r.returncode == 0:
        info["libsystemd"] = r.stdout.strip()
    return info


def fmt_num(x: Optional[float], digits: int = 3) -> str:
    """A number with ``digits`` significant digits, thousands separated."""
    if x is None:
        return "-"
    if x != x:  # NaN
        return "nan"
    ax = abs(x)
    if ax >= 10 ** (digits - 1):
        return f"{x:,.0f}"
    if ax == 0:
        return "0"
    decimals = max(0, digits - 1 - int(f"{ax:e}".split("e")[1]))
    return f"{x:.{decimals}f}"


# ---------------------------------------------------------------------------
# runners


def _load_worker_module() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("_bench_worker", WORKER)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Runner:
    """Hosts the cases of one snippet; ``run(case, n)`` returns one sample dict.

    A sample has at least ``wall`` (s), ``cpu`` (s, whole process) and ``n``;
    cases may add their own metrics (``failed``, ``calls_per_s``, ...).
    """

    label: str
    cases: list[str]
    meta: dict[str, Any]

    def has(self, case: str) -> bool:
        return case in self.cases

    def run(self, case: str, n: int) -> dict[str, Any]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class LocalRunner(Runner):
    """A snippet loaded into this process (pystemd itself, the C floor)."""

    def __init__(self, label: str, snippet: os.PathLike[str] | str, cfg: dict[str, Any]) -> None:
        self.label = label
        self._worker = _load_worker_module()
        ns = self._worker.load_snippet(str(snippet))
        self._fns: dict[str, Callable[[int], Any]] = ns["setup"](cfg)
        self._teardown = ns.get("teardown")
        self.cases = sorted(self._fns)
        self.meta = dict(ns.get("META") or {})

    def run(self, case: str, n: int) -> dict[str, Any]:
        try:
            out: dict[str, Any] = self._worker.run_case(self._fns[case], n)
            return out
        except Exception as e:
            raise RunnerError(f"{self.label} {case}: {type(e).__name__}: {e}") from e

    def close(self) -> None:
        if self._teardown is not None:
            td, self._teardown = self._teardown, None
            td()


class SubprocessRunner(Runner):
    """A snippet run by ``python -I bench/peers/_worker.py`` in another interpreter.

    ``cwd`` defaults to a fresh temporary directory (outside the checkout);
    ``env`` is the child's whole environment (default: ours).
    """

    def __init__(
        self,
        label: str,
        python: os.PathLike[str] | str,
        snippet: os.PathLike[str] | str,
        cfg: dict[str, Any],
        *,
        env: Optional[dict[str, str]] = None,
        cwd: Optional[str] = None,
        timeout: float = 120.0,
    ) -> None:
        self.label = label
        self.timeout = timeout
        self._tmp = None if cwd else tempfile.mkdtemp(prefix="pystemd-bench-")
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [str(python), "-I", str(WORKER), str(Path(snippet).resolve()), json.dumps(cfg)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            cwd=cwd or self._tmp,
            env=env,
            text=True,
            bufsize=1,
        )
        try:
            hello = self._read()
        except RunnerError:
            self.close()
            raise
        if not hello.get("ready"):
            self.close()
            raise RunnerError(f"{label}: {hello.get('error')}\n{hello.get('trace', '')}")
        self.cases = list(hello["cases"])
        self.meta = dict(hello.get("meta") or {})

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-2000:]

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], self.timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            rc = self.proc.poll()
            why = f"exited with {rc}" if rc is not None else f"no answer in {self.timeout:g} s"
            raise RunnerError(f"{self.label}: worker {why}\n{self._stderr_tail()}")
        out: dict[str, Any] = json.loads(line)
        return out

    def run(self, case: str, n: int) -> dict[str, Any]:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps({"case": case, "n": n}) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError as e:
            raise RunnerError(f"{self.label}: worker is gone\n{self._stderr_tail()}") from e
        out = self._read()
        if "error" in out:
            raise RunnerError(f"{self.label} {case}: {out['error']}")
        return out

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(json.dumps({"quit": True}) + "\n")
                self.proc.stdin.close()
                self.proc.wait(10)
            except (BrokenPipeError, subprocess.TimeoutExpired, OSError):
                self.proc.kill()
                self.proc.wait()
        for s in (self.proc.stdout, self.proc.stdin):
            if s is not None and not s.closed:
                try:
                    s.close()
                except OSError:
                    pass
        self._stderr.close()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def start_runners(
    specs: Iterable[tuple[str, Callable[[], Runner]]], *, log: Callable[[str], None] = print
) -> list[Runner]:
    """Start each runner; a peer that cannot start is reported and left out."""
    runners: list[Runner] = []
    for label, make in specs:
        try:
            runners.append(make())
        except (RunnerError, OSError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            log(f"  [skip] {label}: {first}")
    return runners


# ---------------------------------------------------------------------------
# measuring


@dataclass
class Entry:
    """One row of a table: ``case`` of ``runner``, ``n`` ops per repetition.

    ``n=None`` calibrates ``n`` to about ``round_time`` per repetition.
    ``subject`` marks pystemd's own rows (their verdicts go to the summary).
    ``status`` (e.g. "pending: ...") makes a placeholder row that is not run.
    ``warmup=False`` skips the warm-up run (a case that warms itself up).
    """

    label: str
    runner: Optional[Runner]
    case: str
    n: Optional[int] = None
    subject: bool = False
    status: str = ""
    reference: bool = False
    warmup: bool = True


@dataclass
class Result:
    entry: Entry
    n: int = 0
    samples: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""

    @property
    def label(self) -> str:
        return self.entry.label

    @property
    def ok(self) -> bool:
        return bool(self.samples) and not self.error

    def per_op(self, key: str = "wall") -> list[float]:
        """Seconds per operation in each repetition."""
        return [s[key] / s["n"] for s in self.samples if s.get("n")]

    def min_us(self, key: str = "wall") -> Optional[float]:
        xs = self.per_op(key)
        return min(xs) * 1e6 if xs else None

    def median_us(self, key: str = "wall") -> Optional[float]:
        xs = self.per_op(key)
        return statistics.median(xs) * 1e6 if xs else None

    def metric(
        self, name: str, agg: Callable[[list[float]], float] = statistics.median
    ) -> Optional[float]:
        xs = [float(s[name]) for s in self.samples if name in s]
        return agg(xs) if xs else None

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "case": self.entry.case,
            "n": self.n,
            "subject": self.entry.subject,
            "status": self.entry.status,
            "error": self.error,
            "samples": self.samples,
            "meta": getattr(self.entry.runner, "meta", {}),
        }


def measure(
    entries: Sequence[Entry],
    *,
    rounds: int = 7,
    round_time: float = 0.1,
    max_n: int = 200_000,
    log: Callable[[str], None] = lambda s: None,
) -> list[Result]:
    """Warm up, calibrate, then run ``rounds`` interleaved repetitions."""
    results = [Result(e) for e in entries]
    for r in results:
        e = r.entry
        if e.status or e.runner is None:
            continue
        try:
            if e.n is not None:
                if e.warmup:
                    e.runner.run(e.case, e.n)  # warm-up
                r.n = e.n
            else:
                s = e.runner.run(e.case, 3)  # warm-up (connections, caches, first use)
                per = max(s["wall"] / s["n"], 1e-7)
                s = e.runner.run(e.case, max(1, min(max_n, int(0.02 / per))))
                per = max(s["wall"] / s["n"], 1e-7)
                r.n = max(1, min(max_n, int(round_time / per)))
        except RunnerError as ex:
            r.error = str(ex).strip().splitlines()[0]
            log(f"  [error] {e.label} {e.case}: {ex}")
    live = [i for i, r in enumerate(results) if r.n and not r.error]
    for k in range(rounds):
        if not live:
            break
        order = live[k % len(live) :] + live[: k % len(live)]
        for i in order:
            r = results[i]
            if r.error:
                continue
            assert r.entry.runner is not None
            try:
                r.samples.append(r.entry.runner.run(r.entry.case, r.n))
            except RunnerError as ex:
                r.error = str(ex).strip().splitlines()[0]
                log(f"  [error] {r.label} {r.entry.case}: {ex}")
    return results


# ---------------------------------------------------------------------------
# tables, targets, report


@dataclass
class Target:
    """A goal for the subject rows: ``check(result, table) -> bool | None``.

    ``None`` means "cannot tell" (no reference, no data) and prints ``?``.
    """

    text: str
    check: Callable[[Result, Table], Optional[bool]]


def ratio_target(max_ratio: float, *, stat: str = "paired") -> Target:
    """≤ ``max_ratio`` × the reference row (``stat``: see :meth:`Table.ratio`)."""

    def check(r: Result, t: Table) -> Optional[bool]:
        x = t.ratio(r, stat)
        return None if x is None else x <= max_ratio

    return Target(f"≤ {max_ratio:g}× {stat}", check)


def metric_target(
    name: str,
    *,
    at_least: Optional[float] = None,
    at_most: Optional[float] = None,
    text: str = "",
    agg: Callable[[list[float]], float] = statistics.median,
) -> Target:
    """A metric (median over repetitions by default) above/below a threshold."""

    def check(r: Result, t: Table) -> Optional[bool]:
        v = r.metric(name, agg)
        if v is None:
            return None
        if at_least is not None and v < at_least:
            return False
        return not (at_most is not None and v > at_most)

    if not text:
        text = name + (f" ≥ {at_least:g}" if at_least is not None else "")
        text += f" ≤ {at_most:g}" if at_most is not None else ""
    return Target(text, check)


def per_op_target(
    max_us: float, *, key: str = "cpu", stat: str = "median", text: str = ""
) -> Target:
    """Per-op time (``key`` = wall or cpu) ≤ ``max_us`` µs."""

    def check(r: Result, t: Table) -> Optional[bool]:
        v = r.median_us(key) if stat == "median" else r.min_us(key)
        return None if v is None else v <= max_us

    return Target(text or f"{key} ≤ {max_us:g} µs/op", check)


@dataclass
class Column:
    header: str
    cell: Callable[[Result, Table], str]
    align: str = ">"


def col_us(stat: str = "min", key: str = "wall", header: str = "") -> Column:
    def cell(r: Result, t: Table) -> str:
        return fmt_num(r.min_us(key) if stat == "min" else r.median_us(key))

    if not header:
        header = f"{stat} µs/op" if key == "wall" else f"{key} µs/op ({stat})"
    return Column(header, cell)


def col_ratio(stat: str = "min", header: str = "", digits: int = 2) -> Column:
    def cell(r: Result, t: Table) -> str:
        x = t.ratio(r, stat)
        return "-" if x is None else f"{x:.{digits}f}×"

    return Column(header or f"×ref ({stat})", cell)


def col_metric(
    name: str,
    header: str,
    *,
    scale: float = 1.0,
    fmt: Optional[Callable[[float], str]] = None,
    agg: Callable[[list[float]], float] = statistics.median,
) -> Column:
    def cell(r: Result, t: Table) -> str:
        v = r.metric(name, agg)
        if v is None:
            return "-"
        return fmt(v * scale) if fmt else fmt_num(v * scale)

    return Column(header, cell)


def pct(x: float) -> str:
    return f"{x:.0f} %"


class Table:
    """One operation's results: rows, a reference row for ratios, targets."""

    def __init__(
        self,
        title: str,
        results: Sequence[Result],
        columns: Sequence[Column],
        *,
        targets: Sequence[Target] = (),
        note: str = "",
    ) -> None:
        self.title = title
        self.results = list(results)
        self.columns = list(columns)
        self.targets = list(targets)
        self.note = note
        refs = [r for r in self.results if r.entry.reference and r.ok]
        self.ref: Optional[Result] = refs[0] if refs else None

    def ratio(self, r: Result, stat: str = "min") -> Optional[float]:
        """``r`` over the reference row: ``min``/``min``, ``median``/``median``, or
        ``paired``: the median over rounds of the two rows' ratio within a round
        (rows of one round run back to back, under the same load)."""
        if self.ref is None or not r.ok:
            return None
        if stat == "paired":
            pairs = [a / b for a, b in zip(r.per_op(), self.ref.per_op()) if b > 0]
            return statistics.median(pairs) if pairs else None
        if stat == "min":
            a, b = r.min_us(), self.ref.min_us()
        else:
            a, b = r.median_us(), self.ref.median_us()
        return None if a is None or not b else a / b

    def verdicts(self, r: Result) -> list[Optional[bool]]:
        if not r.ok:
            return [None for _ in self.targets]
        return [t.check(r, self) for t in self.targets]

    def render(self) -> str:
        headers = ["", *[c.header for c in self.columns]]
        if self.targets:
            headers.append("target " + "; ".join(t.text for t in self.targets))
        rows: list[list[str]] = []
        for r in self.results:
            label = r.label + (" *" if r.entry.subject else "")
            if r.entry.status or not r.ok:
                rows.append([label, r.entry.status or f"error: {r.error or 'no data'}"])
                continue
            cells = [label, *[c.cell(r, self) for c in self.columns]]
            if self.targets:
                marks = ["?" if v is None else ("✓" if v else "✗") for v in self.verdicts(r)]
                cells.append(" ".join(marks))
            rows.append(cells)
        ncol = len(headers)
        widths = [0] * ncol
        for row in [headers, *rows]:
            if len(row) == ncol:
                for i, c in enumerate(row):
                    widths[i] = max(widths[i], len(c))
        lines = [f"== {self.title}"]
        if self.note:
            lines.append(f"   {self.note}")

        def fmt_row(row: list[str]) -> str:
            if len(row) != ncol:  # a status / error row: label + free text
                return f"{row[0]:<{widths[0]}}  {row[1]}"
            out = [f"{row[0]:<{widths[0]}}"]
            for i in range(1, ncol):
                last = i == ncol - 1 and self.targets
                out.append(f"{row[i]:<{widths[i]}}" if last else f"{row[i]:>{widths[i]}}")
            return "  ".join(out).rstrip()

        lines.append(fmt_row(headers))
        lines.extend(fmt_row(r) for r in rows)
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        rows = []
        for r in self.results:
            d = r.to_json()
            d["min_us"] = r.min_us() if r.ok else None
            d["median_us"] = r.median_us() if r.ok else None
            d["cpu_median_us"] = r.median_us("cpu") if r.ok else None
            d["ratio_min"] = self.ratio(r, "min")
            d["ratio_median"] = self.ratio(r, "median")
            d["ratio_paired"] = self.ratio(r, "paired")
            d["verdicts"] = {t.text: v for t, v in zip(self.targets, self.verdicts(r))}
            rows.append(d)
        return {
            "title": self.title,
            "note": self.note,
            "reference": self.ref.label if self.ref else None,
            "rows": rows,
        }


class Report:
    """Collects tables (printed as they come) and saves them as JSON."""

    def __init__(self, name: str, *, out: Callable[[str], None] = print) -> None:
        self.name = name
        self.out = out
        self.t0 = time.perf_counter()
        self.machine = machine_info()
        self.tables: list[Table] = []
        self.extra: dict[str, Any] = {}

    def add(self, table: Table) -> Table:
        self.tables.append(table)
        self.out(table.render())
        self.out("")
        return table

    def summary(self) -> list[str]:
        """One line per subject row and target: ✓/✗/? and the numbers."""
        lines = []
        for t in self.tables:
            for r in t.results:
                if not r.entry.subject:
                    continue
                if r.entry.status:
                    lines.append(f"  ·  {t.title}: {r.label}: {r.entry.status}")
                    continue
                for tg, v in zip(t.targets, t.verdicts(r)):
                    mark = "?" if v is None else ("✓" if v else "✗")
                    lines.append(f"  {mark}  {t.title}: {r.label}: {tg.text}")
        return lines

    def save(self, path: Optional[os.PathLike[str] | str] = None) -> Path:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        p = Path(path) if path else RESULTS_DIR / f"{self.name}-{stamp}.json"
        data = {
            "bench": self.name,
            "machine": self.machine,
            "runtime_s": round(time.perf_counter() - self.t0, 1),
            "argv": sys.argv,
            "tables": [t.to_json() for t in self.tables],
            **self.extra,
        }
        p.write_text(json.dumps(data, indent=1, default=str) + "\n")
        latest = RESULTS_DIR / f"{self.name}-latest.json"
        if p != latest:
            shutil.copyfile(p, latest)
        return p


def add_common_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``--quick``, ``--no-peers``, ``--rounds``, ``--json``, ``--only`` for every bench script."""
    parser.add_argument(
        "--quick", action="store_true", help="a ~30 s smoke run (fewer, shorter rounds)"
    )
    parser.add_argument("--no-peers", action="store_true", help="only pystemd and the C floor")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved repetitions per row")
    parser.add_argument(
        "--json", default=None, help="write results here (default bench/results/NAME-STAMP.json)"
    )
    parser.add_argument("--only", default="", help="comma-separated operation names to run")
    return parser


def header(report: Report, title: str) -> None:
    m = report.machine
    report.out(f"# {title}")
    report.out(
        f"# {m['date']} · {m.get('host', '?')} · {m.get('cpus', '?')} CPUs"
        f" ({m.get('cpu', '?')}) · load {m.get('loadavg', '?')} · Python {m['python']}"
        f" · libsystemd {m.get('libsystemd', '?')}"
    )
    report.out(
        "# Shared CPUs make single figures noisy: compare rows of one table (interleaved runs), not runs."
    )
    report.out("")
