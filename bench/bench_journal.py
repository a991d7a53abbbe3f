#!/usr/bin/env python3
# ruff: noqa: RUF001, RUF003  (× and µ are meant)
"""Reading the journal: pystemd against the C floor and its peers, one run.

    .venv/bin/python bench/bench_journal.py            # everything, a few minutes
    .venv/bin/python bench/bench_journal.py --quick    # a short smoke run (20k entries)
    .venv/bin/python bench/bench_journal.py --no-peers --only read

Operations (``--only`` names):

* ``read``: a 200k-entry journal (~25 realistic fields per entry, two boots,
  written by systemd-journal-remote from export format, kept under
  bench/results/ between runs) read entry by entry. Rows: the C floor
  (``sd_journal_next`` + ``SD_JOURNAL_FOREACH_DATA``, timed inside C: the
  reference), the same plus the timestamps and cursor every python-systemd
  dict carries, ``journalctl -o export`` and ``-o json``, python-systemd 235
  and cysystemd (own venvs), and pystemd: the drop-in's dicts, pystemd's
  dicts (one by one and in batches), raw mode, projected mode.
* ``latency``: send-to-delivery while tailing: a sandboxed journald, a writer
  process sending an entry every few ms, a Reader tailing with
  ``follow()`` (thread) and ``follow_async()``; the latency of each entry is
  CLOCK_MONOTONIC at delivery minus the sender's timestamp in the entry.

Rows of one table run in the same interleaved rounds; ratios are throughput
relative to the C floor's row (higher is better) and to python-systemd's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import common as C

OPS = ("read", "latency")
FLOOR = "C floor: next + enumerate"
PYSYSTEMD_ROW = "python-systemd 235 dicts"
DICT_FLOOR_BYTES = "C + CPython API: dict of bytes"
DICT_FLOOR_NONE = "C + CPython API: dict, values None"
DICT_FLOOR_STR = "C + CPython API: dict of str + cursor, ts"
JOURNAL_VERSION = 1  # bump when the generator changes: the cached journal is rebuilt
CYSYSTEMD_VENV = C.RESULTS_DIR / "venv-cysystemd"

# The C floor, timed inside C. Modes 0-1: libsystemd alone. Modes 2-4: the
# least any reader can spend making a Python dict per entry out of what the
# loop enumerates: C calling CPython directly (no Python code, no cache but
# one for the key strings), so the file is compiled against the running
# interpreter's headers and loaded with ctypes.PyDLL (the GIL held).
FLOOR_C = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <systemd/sd-journal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int floor_open(const char *dir, sd_journal **ret) { return sd_journal_open_directory(ret, dir, 0); }
void floor_close(sd_journal *j) { sd_journal_close(j); }

#define KC 1024
static struct { size_t len; char name[64]; PyObject *key; } keys[KC];

/* The field name p[:n] as an interned str, made once per name (borrowed). */
static PyObject *key_for(const char *p, size_t n) {
    unsigned h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 16777619u;
    h &= KC - 1;
    if (keys[h].key && keys[h].len == n && memcmp(keys[h].name, p, n) == 0) return keys[h].key;
    if (n > sizeof(keys[h].name)) {   /* journald's names are at most 64 bytes */
        PyErr_SetString(PyExc_ValueError, "field name over 64 bytes");
        return NULL;
    }
    PyObject *k = PyUnicode_DecodeUTF8(p, (Py_ssize_t)n, "surrogateescape");
    if (k == NULL) return NULL;
    PyUnicode_InternInPlace(&k);
    Py_XDECREF(keys[h].key);
    keys[h].len = n;
    memcpy(keys[h].name, p, n);
    keys[h].key = k;                  /* the cache owns it */
    return k;
}

static int put(PyObject *e, const char *k, PyObject *v) {   /* steals v */
    int r = v == NULL ? -1 : PyDict_SetItemString(e, k, v);
    Py_XDECREF(v);
    return r;
}

/* Read n entries (from the head again at the end), each dropped at once as the
 * benchmark's consumers do. mode 0: enumerate every field; 1: also the realtime
 * and monotonic timestamps and the cursor (what each python-systemd dict needs);
 * 2: a dict of bytes per entry (a raw dict); 3: a dict whose values are all None
 * (the dict alone); 4: a dict of str plus the cursor (str) and both timestamps
 * (int). Returns <0 on error (-1000: a CPython call failed); times in *wall, *cpu. */
long floor_read(sd_journal *j, long n, int mode, double *wall, double *cpu, unsigned long *sink) {
    const void *d; size_t l; long i = 0; int r; unsigned long s = 0;
    uint64_t t, m; sd_id128_t b; char *c;
    double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
    while (i < n) {
        r = sd_journal_next(j);
        if (r < 0) return r;
        if (r == 0) { sd_journal_seek_head(j); continue; }
        i++;
        PyObject *e = NULL;
        if (mode < 2) {
            SD_JOURNAL_FOREACH_DATA(j, d, l) s += l;
        } else {
            e = _PyDict_NewPresized(32);   /* no resizing on the way */
            if (e == NULL) return -1000;
            SD_JOURNAL_FOREACH_DATA(j, d, l) {
                const char *p = d, *eq = memchr(p, '=', l);
                if (eq == NULL) continue;
                PyObject *k = key_for(p, (size_t)(eq - p)), *v;
                if (k == NULL) { Py_DECREF(e); return -1000; }
                Py_ssize_t vl = (Py_ssize_t)(l - (size_t)(eq - p) - 1);
                if (mode == 3) { v = Py_None; Py_INCREF(v); }
                else if (mode == 4) {
                    v = PyUnicode_DecodeUTF8(eq + 1, vl, NULL);
                    if (v == NULL) { PyErr_Clear(); v = PyBytes_FromStringAndSize(eq + 1, vl); }
                } else v = PyBytes_FromStringAndSize(eq + 1, vl);
                if (v == NULL || PyDict_SetItem(e, k, v) < 0) { Py_XDECREF(v); Py_DECREF(e); return -1000; }
                Py_DECREF(v);
            }
        }
        if (mode == 1 || mode == 4) {
            if (sd_journal_get_realtime_usec(j, &t) < 0 || sd_journal_get_monotonic_usec(j, &m, &b) < 0
                    || sd_journal_get_cursor(j, &c) < 0) { Py_XDECREF(e); return -1; }
            if (e == NULL) {
                s += t + m + strlen(c);
                free(c);
            } else {
                r = put(e, "__CURSOR", PyUnicode_FromString(c));
                free(c);
                if (r < 0 || put(e, "__REALTIME_TIMESTAMP", PyLong_FromUnsignedLongLong(t)) < 0
                        || put(e, "__MONOTONIC_TIMESTAMP", PyLong_FromUnsignedLongLong(m)) < 0) {
                    Py_DECREF(e);
                    return -1000;
                }
            }
        }
        Py_XDECREF(e);
    }
    *wall = now(CLOCK_MONOTONIC) - w0;
    *cpu = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
    *sink += s;
    return i;
}
"""

CFLOOR_SNIPPET = """
import ctypes
META = {"what": "raw C sd-journal loop (modes 2-4: making CPython dicts in C), timed inside C"}
_keep = []

def setup(cfg):
    lib = ctypes.PyDLL(cfg["so"])
    lib.floor_open.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
    lib.floor_close.argtypes = [ctypes.c_void_p]
    lib.floor_close.restype = None
    D = ctypes.POINTER(ctypes.c_double)
    lib.floor_read.argtypes = [ctypes.c_void_p, ctypes.c_long, ctypes.c_int, D, D, ctypes.POINTER(ctypes.c_ulong)]
    lib.floor_read.restype = ctypes.c_long
    out = {}
    cases = ("enum", "enum+meta", "dict-bytes", "dict-none", "dict-str+meta")
    for mode, name in enumerate(cases):
        j = ctypes.c_void_p()
        r = lib.floor_open(cfg["dir"].encode(), ctypes.byref(j))
        if r < 0:
            raise OSError(-r, "sd_journal_open_directory")
        _keep.append((lib, j))

        def run(n, j=j, mode=mode):
            w, c, s = ctypes.c_double(), ctypes.c_double(), ctypes.c_ulong()
            r = lib.floor_read(j, n, mode, ctypes.byref(w), ctypes.byref(c), ctypes.byref(s))
            if r == -1000:
                raise RuntimeError("floor_read: a CPython call failed")
            if r < 0:
                raise OSError(-r, "floor_read")
            return {"wall": w.value, "cpu": c.value}

        out[name] = run
    return out

def teardown():
    for lib, j in _keep:
        lib.floor_close(j)
"""

JOURNALCTL_SNIPPET = """
import subprocess
META = {"what": "journalctl over the whole journal, output to a pipe that is drained"}

def setup(cfg):
    def make(fmt):
        def run(n):
            # n is the number of entries in the journal: one run reads them all
            p = subprocess.Popen(["journalctl", "--directory", cfg["dir"], "-o", fmt, "--no-pager", "--all"],
                                 stdout=subprocess.PIPE)
            while p.stdout.read(1 << 20):
                pass
            p.stdout.close()
            if p.wait() != 0:
                raise RuntimeError("journalctl failed")
        return run
    return {"export": make("export"), "json": make("json")}
"""

# One reader per case, kept between repetitions; wraps to the head at the end.
PYSYSTEMD_SNIPPET = """
META = {}

def setup(cfg):
    from systemd import journal
    META["module"] = journal.__file__
    r = journal.Reader(path=cfg["dir"])

    def dicts(n):
        i = 0
        get = r.get_next
        while i < n:
            e = get()
            if not e:
                r.seek_head()
                continue
            i += 1
    return {"dicts": dicts, "dicts-busy": helpers.beside_busy(dicts)}
"""

CYSYSTEMD_SNIPPET = """
META = {}

def setup(cfg):
    from cysystemd.reader import JournalReader
    import cysystemd
    META["module"] = cysystemd.__file__
    r = JournalReader()
    r.open_directory(cfg["dir"])
    r.seek_head()

    def records(n):
        i = 0
        while i < n:
            rec = r.next()
            if rec is None:
                r.seek_head()
                continue
            rec.data, rec.cursor, rec.date
            i += 1
    return {"records": records}
"""

PYSTEMD_SNIPPET = """
META = {}
_readers = []

def setup(cfg):
    import pystemd.journal as pj
    import systemd.journal as dj
    META["module"] = pj.__file__
    d = cfg["dir"]

    def loop(r, touch=False):
        _readers.append(r)
        nxt = r.__next__

        def run(n):
            i = 0
            while i < n:
                try:
                    e = nxt()
                except StopIteration:
                    r.seek_head()
                    continue
                if touch:  # the consumer reads every value
                    for k in e:
                        e[k]
                i += 1
        return run

    def batches(r, size, touch=False):
        _readers.append(r)

        def run(n):
            i = 0
            while i < n:
                b = r.read_batch(min(size, n - i))
                if not b:
                    r.seek_head()
                    continue
                if touch:
                    for e in b:
                        for k in e:
                            e[k]
                i += len(b)
        return run

    proj = ["MESSAGE", "_PID", "__REALTIME_TIMESTAMP"]
    nocursor = ["*", "__REALTIME_TIMESTAMP", "__MONOTONIC_TIMESTAMP"]
    always = pj.Reader(path=d)
    always.gil_hold_us = 0
    cases = {
        "dicts-busy": helpers.beside_busy(loop(pj.Reader(path=d))),
        "dicts-busy-release": helpers.beside_busy(loop(always)),
        "dicts-batch-busy": helpers.beside_busy(batches(pj.Reader(path=d), 256)),
        "dropin": loop(dj.Reader(path=d)),
        "dicts": loop(pj.Reader(path=d)),
        "dicts-batch": batches(pj.Reader(path=d), 256),
        "dicts-nocursor": loop(pj.Reader(path=d, fields=nocursor)),
        "raw": loop(pj.Reader(path=d, raw=True, fields=["*"])),
        "raw-batch": batches(pj.Reader(path=d, raw=True, fields=["*"]), 256),
        "raw-touch": loop(pj.Reader(path=d, raw=True, fields=["*"]), touch=True),
        "raw+meta": loop(pj.Reader(path=d, raw=True)),
        "proj3": loop(pj.Reader(path=d, raw=True, fields=proj)),
        "proj3-batch": batches(pj.Reader(path=d, raw=True, fields=proj), 256),
        "proj1": loop(pj.Reader(path=d, fields=["MESSAGE"])),
    }
    if hasattr(pj, "RawEntry"):  # lazy=True
        cases.update({
            "lazy": loop(pj.Reader(path=d, lazy=True, fields=["*"])),
            "lazy-batch": batches(pj.Reader(path=d, lazy=True, fields=["*"]), 256),
            "lazy-touch": loop(pj.Reader(path=d, lazy=True, fields=["*"]), touch=True),
            "lazy-batch-touch": batches(pj.Reader(path=d, lazy=True, fields=["*"]), 256, touch=True),
        })
    return cases

def teardown():
    for r in _readers:
        r.close()
"""


class Settings:
    def __init__(self, args: argparse.Namespace) -> None:
        q = args.quick
        self.entries = 20_000 if q else 200_000
        self.rounds = args.rounds or (3 if q else 9)
        self.round_time = 0.1 if q else 0.4
        self.latency_n = 100 if q else 400
        self.latency_gap = 0.01  # s between two sends
        self.peers = not args.no_peers
        self.only = {x.strip() for x in args.only.split(",") if x.strip()} or set(OPS)


# ---------------------------------------------------------------------------
# the journal


def ensure_journal(n: int, log: Callable[[str], None]) -> Path:
    """The n-entry journal under bench/results/ (made once with systemd-journal-remote)."""
    from journal_data import exportgen

    d = C.RESULTS_DIR / f"journal-{n}-v{JOURNAL_VERSION}"
    marker = d / "complete"
    if marker.exists():
        return d
    if exportgen.journal_remote() is None:
        raise C.RunnerError(
            "systemd-journal-remote not found (apt-get install systemd-journal-remote)"
        )
    log(f"  writing a {n}-entry journal with systemd-journal-remote into {d} (once)...")
    if d.exists():
        for f in d.iterdir():
            f.unlink()
    t = time.perf_counter()
    files = exportgen.build_journal(exportgen.realistic(n, seed=42), d / "bench.journal")
    marker.write_text(f"{n} entries in {len(files)} files\n")
    log(f"  ... {len(files)} files in {time.perf_counter() - t:.0f} s")
    return d


def count_fields(d: Path) -> float:
    from pystemd.journal import Reader

    with Reader(path=d, raw=True, fields=["*"]) as r:
        b = r.read_batch(2000)
    return statistics.mean(sum(len(v) if isinstance(v, list) else 1 for v in e.values()) for e in b)


def ensure_cysystemd(log: Callable[[str], None]) -> Optional[Path]:
    py = CYSYSTEMD_VENV / "bin" / "python"
    if py.exists():
        return py
    log("  cysystemd: creating its venv under bench/results/ (pip install cysystemd)...")
    r = subprocess.run(
        [sys.executable, "-m", "venv", str(CYSYSTEMD_VENV)], capture_output=True, text=True
    )
    if r.returncode == 0:
        r = subprocess.run(
            [str(py), "-m", "pip", "install", "-q", "cysystemd"],
            capture_output=True,
            text=True,
            timeout=600,
        )
    if r.returncode != 0:
        log(f"  [skip] cysystemd: {(r.stderr or r.stdout).strip().splitlines()[-1:]}")
        return None
    return py


# ---------------------------------------------------------------------------
# read


def throughput_col(header: str = "entries/s", stat: str = "min") -> C.Column:
    def cell(r: C.Result, t: C.Table) -> str:
        us = r.min_us() if stat == "min" else r.median_us()
        return "-" if not us else C.fmt_num(1e6 / us)

    return C.Column(header, cell)


def speed_col(header: str, other: Callable[[C.Table], Optional[C.Result]]) -> C.Column:
    """Throughput relative to another row (paired rounds): >1 means faster."""

    def cell(r: C.Result, t: C.Table) -> str:
        x = speed_ratio(r, other(t))
        return "-" if x is None else f"{x:.2f}×"

    return C.Column(header, cell)


def speed_ratio(r: C.Result, o: Optional[C.Result]) -> Optional[float]:
    if o is None or not o.ok or not r.ok:
        return None
    pairs = [b / a for a, b in zip(r.per_op(), o.per_op()) if a > 0]
    return statistics.median(pairs) if pairs else None


def row(t: C.Table, label: str) -> Optional[C.Result]:
    for r in t.results:
        if r.label == label:
            return r
    return None


def faster_than(label: str, factor: float, text: str) -> C.Target:
    def check(r: C.Result, t: C.Table) -> Optional[bool]:
        x = speed_ratio(r, row(t, label))
        return None if x is None else x >= factor

    return C.Target(text, check)


def bench_read(s: Settings, report: C.Report, work: Path) -> None:
    log = report.out
    d = ensure_journal(s.entries, log)
    report.extra["journal"] = {
        "dir": str(d),
        "entries": s.entries,
        "fields_per_entry": round(count_fields(d), 1),
    }
    log(
        f"  journal: {s.entries} entries, {report.extra['journal']['fields_per_entry']} fields per entry on average"
    )
    so = C.build_c(
        _write(work, "journal_floor.c", FLOOR_C),
        extra_flags=[f"-I{sysconfig.get_paths()['include']}"],
        out_dir=C.RESULTS_DIR / "cfloor-build",
    )
    cfg = {"dir": str(d), "so": str(so)}
    specs: list[tuple[str, Callable[[], C.Runner]]] = [
        (
            "cfloor",
            lambda: C.LocalRunner("C floor", _write(work, "jfloor.py", CFLOOR_SNIPPET), cfg),
        ),
        (
            "pystemd",
            lambda: C.SubprocessRunner(
                "pystemd",
                C.MAIN_PYTHON,
                _write(work, "jpystemd.py", PYSTEMD_SNIPPET),
                cfg,
                timeout=600,
            ),
        ),
    ]
    if s.peers:
        specs.append(
            (
                "journalctl",
                lambda: C.LocalRunner(
                    "journalctl", _write(work, "jctl.py", JOURNALCTL_SNIPPET), cfg
                ),
            )
        )
        py = C.venv_python(C.PYSYSTEMD_PYTHON)
        if py is not None:
            specs.append(
                (
                    "python-systemd",
                    lambda: C.SubprocessRunner(
                        "python-systemd",
                        py,
                        _write(work, "jpysd.py", PYSYSTEMD_SNIPPET),
                        cfg,
                        timeout=600,
                    ),
                )
            )
        else:
            log(f"  [skip] python-systemd 235: no venv at {C.PYSYSTEMD_PYTHON}")
        cy = ensure_cysystemd(log)
        if cy is not None:
            specs.append(
                (
                    "cysystemd",
                    lambda: C.SubprocessRunner(
                        "cysystemd",
                        cy,
                        _write(work, "jcysd.py", CYSYSTEMD_SNIPPET),
                        cfg,
                        timeout=600,
                    ),
                )
            )
    runners = {r.label: r for r in C.start_runners(specs, log=log)}
    try:

        def e(label: str, runner: str, case: str, **kw: Any) -> C.Entry:
            return C.Entry(
                label,
                runners.get(runner),
                case,
                status="" if runner in runners else "not available",
                **kw,
            )

        floor = e(FLOOR, "C floor", "enum", reference=True)
        entries = [
            floor,
            e("C floor + cursor, timestamps", "C floor", "enum+meta"),
            e(DICT_FLOOR_BYTES, "C floor", "dict-bytes"),
            e(DICT_FLOOR_NONE, "C floor", "dict-none"),
            e(DICT_FLOOR_STR, "C floor", "dict-str+meta"),
            e("journalctl -o export", "journalctl", "export", n=s.entries, warmup=False),
            e("journalctl -o json", "journalctl", "json", n=s.entries, warmup=False),
            e(PYSYSTEMD_ROW, "python-systemd", "dicts"),
            e("cysystemd records", "cysystemd", "records"),
            e("drop-in dicts (systemd.journal)", "pystemd", "dropin", subject=True),
            e("pystemd dicts", "pystemd", "dicts", subject=True),
            e("pystemd dicts, read_batch(256)", "pystemd", "dicts-batch", subject=True),
            e("pystemd dicts without __CURSOR", "pystemd", "dicts-nocursor"),
            e("pystemd raw", "pystemd", "raw", subject=True),
            e("pystemd raw, read_batch(256)", "pystemd", "raw-batch", subject=True),
            e("pystemd raw, every value read", "pystemd", "raw-touch", subject=True),
            e("pystemd raw lazy=True", "pystemd", "lazy", subject=True),
            e("pystemd raw lazy=True, read_batch(256)", "pystemd", "lazy-batch", subject=True),
            e("pystemd raw lazy=True, every value read", "pystemd", "lazy-touch", subject=True),
            e(
                "pystemd raw lazy, read_batch, every value read",
                "pystemd",
                "lazy-batch-touch",
                subject=True,
            ),
            e("pystemd raw + cursor, timestamps", "pystemd", "raw+meta", subject=True),
            e("pystemd projected (3 fields)", "pystemd", "proj3", subject=True),
            e("pystemd projected (3), read_batch(256)", "pystemd", "proj3-batch", subject=True),
            e("pystemd projected (1 field)", "pystemd", "proj1", subject=True),
        ]
        res = C.measure(entries, rounds=s.rounds, round_time=s.round_time, max_n=s.entries, log=log)
        cols = [
            C.col_us("min", header="min µs/entry"),
            C.col_us("median", header="median µs/entry"),
            throughput_col(),
            speed_col("× C floor", lambda t: t.ref),
            speed_col("× python-systemd", lambda t: row(t, PYSYSTEMD_ROW)),
        ]
        by = {r.label: r for r in res}
        dict_rows = [r for r in res if not r.entry.subject or "dicts" in r.label]
        dict_rows = [r for r in dict_rows if "without __CURSOR" not in r.label]
        dict_rows += [r for r in res if "without __CURSOR" in r.label]
        raw_rows = [
            r
            for r in res
            if (not r.entry.subject or "dicts" not in r.label) and "without __CURSOR" not in r.label
        ]
        report.add(C.Table(
            f"Reading {s.entries:,} entries as python-systemd's dicts (converted values, cursor, timestamps)",
            [r for r in dict_rows if r.label in by],
            cols,
            targets=[faster_than(PYSYSTEMD_ROW, 4, "≥ 4× python-systemd"), faster_than(FLOOR, 0.5, "≥ 0.5× C floor")],
            note="ratios: throughput against the row, median of per-round pairs; higher is better",
        ))  # fmt: skip
        report.add(C.Table(
            f"Reading {s.entries:,} entries raw (bytes, no conversion) and projected (only the fields asked)",
            raw_rows,
            cols,
            targets=[faster_than(FLOOR, 0.8, "≥ 0.8× C floor")],
            note="raw: every field, no pseudo-fields (dicts of bytes; lazy=True: RawEntry mappings whose values "
            "are made when read, so 'every value read' is the cost when the consumer reads them all); "
            "projected: MESSAGE, _PID, __REALTIME_TIMESTAMP / MESSAGE",
        ))  # fmt: skip
        # fixed counts: long enough for the threads to take turns (5 ms slices)
        busy = [
            e("python-systemd 235 dicts", "python-systemd", "dicts-busy", n=2000),
            e("pystemd dicts", "pystemd", "dicts-busy", subject=True, n=20000),
            e(
                "pystemd dicts, read_batch(256)",
                "pystemd",
                "dicts-batch-busy",
                subject=True,
                n=20000,
            ),
            e(
                "pystemd dicts, gil_hold_us=0 (release per entry)",
                "pystemd",
                "dicts-busy-release",
                n=200,
            ),
        ]
        res = C.measure(busy, rounds=max(3, s.rounds // 3), max_n=s.entries, log=log)
        report.add(C.Table(
            "Reading next to a CPU-bound Python thread (both share the GIL)",
            res,
            [throughput_col("entries/s (median)", "median"), C.col_metric("busy_it_s", "busy thread it/s")],
            note="a release of the GIL next to a busy thread may wait out the 5 ms switch interval to get it back",
        ))  # fmt: skip
    finally:
        for r in runners.values():
            r.close()


# ---------------------------------------------------------------------------
# latency

SENDER = textwrap.dedent(
    """
    import sys, time
    from pystemd.journal import send
    run, n, gap = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    for i in range(n):
        send("latency probe", BENCH_RUN=run, SEQ=i, SENT_NS=time.monotonic_ns())
        time.sleep(gap)
    """
)


# The machine's own wake-up delay over the same seconds: how late a thread
# that asks to sleep 3 ms gets the CPU back (what any poller pays, in C too).
JITTER_PROBE = textwrap.dedent(
    """
    import sys, time
    until = time.monotonic() + float(sys.argv[1])
    late = []
    while time.monotonic() < until:
        t = time.monotonic_ns()
        time.sleep(0.003)
        late.append((time.monotonic_ns() - t) / 1e6 - 3)
    print(" ".join(f"{x:.3f}" for x in late))
    """
)


def _q(values: list[float], p: float) -> float:
    """The p-quantile of ``values`` (sorted)."""
    return values[min(len(values) - 1, round(p * (len(values) - 1)))]


def _latency_sample(ms: list[float], **extra: Any) -> dict[str, Any]:
    """One latency row's sample: the delays' percentiles (ms), their count and sum."""
    v = sorted(ms)
    return {
        "wall": sum(v) / 1e3,
        "cpu": 0.0,
        "n": len(v),
        "p50_ms": _q(v, 0.5),
        "p90_ms": _q(v, 0.9),
        "p99_ms": _q(v, 0.99),
        "max_ms": v[-1],
        "received": len(v),
        **extra,
    }


def _steal_ticks() -> int:
    """CPU time the hypervisor gave to others (/proc/stat's steal, in ticks)."""
    try:
        with open("/proc/stat") as f:
            return int(f.readline().split()[8])
    except (OSError, IndexError, ValueError):
        return 0


def bench_latency(s: Settings, report: C.Report) -> None:
    from pystemd.journal import Reader
    from pystemd.testing import Sandbox, SandboxError

    log = report.out
    try:
        # the sandbox's default journald drop-in (Storage=volatile, no rate
        # limit) keeps journald's files where the host sees them
        sb = Sandbox().start()
    except SandboxError as e:
        log(f"  [skip] latency: {e}")
        return
    results: list[C.Result] = []
    try:
        for mode in (
            "follow() in a thread",
            "follow_async()",
            "follow(poll_interval=None): inotify only",
        ):
            run = f"lat-{time.monotonic_ns()}"
            # (total, journald's part, the reader's part) per entry, ms
            lat: list[tuple[float, float, float]] = []
            r = Reader(path=sb.journal_dir, fields=["SENT_NS", "__MONOTONIC_TIMESTAMP"], raw=True)
            r.add_match(BENCH_RUN=run)
            r.seek_last(0)
            sender = threading.Thread(
                target=sb.run_with_journal,
                args=([sys.executable, "-c", SENDER, run, str(s.latency_n), str(s.latency_gap)],),
                kwargs={"timeout": 600},
            )

            def took(ent: Any, lat: list[tuple[float, float, float]] = lat) -> bool:
                now = time.monotonic_ns()
                sent = int(ent["SENT_NS"])
                stamped = ent["__MONOTONIC_TIMESTAMP"][0] * 1000  # journald's clock when it took it
                lat.append(((now - sent) / 1e6, (stamped - sent) / 1e6, (now - stamped) / 1e6))
                return len(lat) >= s.latency_n

            probe = subprocess.Popen(
                [sys.executable, "-c", JITTER_PROBE, str(s.latency_n * s.latency_gap + 0.5)],
                stdout=subprocess.PIPE,
                text=True,
            )
            steal0, t0 = _steal_ticks(), time.monotonic()
            if mode.startswith("follow("):
                poll = None if "inotify" in mode else 0.003

                def tail(r: Reader = r, poll: Optional[float] = poll) -> None:
                    for ent in r.follow(idle_timeout=10, poll_interval=poll):
                        if took(ent):
                            return

                t = threading.Thread(target=tail)
                t.start()
                sender.start()
                t.join(600)
            else:

                async def atail(r: Reader = r) -> None:
                    async for ent in r.follow_async(idle_timeout=10):
                        if took(ent):
                            return

                sender.start()
                asyncio.run(atail())
            sender.join(600)
            steal = (_steal_ticks() - steal0) / os.sysconf("SC_CLK_TCK")
            steal_pct = 100 * steal / ((time.monotonic() - t0) * (os.cpu_count() or 1))
            jitter = [float(x) for x in probe.communicate(timeout=600)[0].split()]
            r.close()
            if lat:
                sample = _latency_sample(
                    [x[0] for x in lat],
                    journald_p99_ms=_q(sorted(x[1] for x in lat), 0.99),
                    reader_p99_ms=_q(sorted(x[2] for x in lat), 0.99),
                    steal_pct=steal_pct,
                )
                subject = "inotify" not in mode  # the inotify-only row shows what polling buys
                entry = C.Entry(mode, None, "latency", subject=subject)
                results.append(C.Result(entry, n=len(lat), samples=[sample]))
            else:
                entry = C.Entry(mode, None, "latency", subject=True)
                results.append(C.Result(entry, error="nothing received"))
            if jitter:
                label = f"  machine: a 3 ms sleep's lateness ({mode.split(':')[0]})"
                sample = _latency_sample(jitter, steal_pct=steal_pct)
                results.append(
                    C.Result(C.Entry(label, None, "latency"), n=len(jitter), samples=[sample])
                )
    finally:
        sb.stop()
    cols = [
        C.col_metric("received", "entries"),
        C.col_metric("p50_ms", "p50 ms"),
        C.col_metric("p90_ms", "p90 ms"),
        C.col_metric("p99_ms", "p99 ms"),
        C.col_metric("max_ms", "max ms"),
        C.col_metric("journald_p99_ms", "journald p99"),
        C.col_metric("reader_p99_ms", "reader p99"),
        C.col_metric("steal_pct", "steal", fmt=C.pct),
    ]
    report.add(C.Table(
        f"send() to delivery while tailing ({s.latency_n} entries, one every {s.latency_gap * 1e3:g} ms, sandboxed journald)",
        results,
        cols,
        targets=[C.metric_target("p99_ms", at_most=10, text="p99 ≤ 10 ms")],
        note="latency = CLOCK_MONOTONIC when the tailing Reader yields the entry - the sender's SENT_NS; "
        "journald's part: until the entry's __MONOTONIC_TIMESTAMP (journald's clock when it took the "
        "entry), the reader's part: from then on (each column is its own p99). "
        "machine rows: a process sleeping 3 ms in a loop over the same seconds, how late it woke "
        "(the wake-up delay any poller pays here); steal: CPU time the hypervisor took for others",
    ))  # fmt: skip


# ---------------------------------------------------------------------------


def _write(work: Path, name: str, text: str) -> Path:
    p = work / name
    if not p.exists():
        p.write_text(textwrap.dedent(text).lstrip())
    return p


def main() -> int:
    p = C.add_common_args(argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0]))
    args = p.parse_args()
    s = Settings(args)
    report = C.Report("bench_journal")
    C.header(report, "pystemd.journal: reading and tailing")
    with tempfile.TemporaryDirectory(prefix="pystemd-bench-journal-") as tmp:
        work = Path(tmp)
        if "read" in s.only:
            bench_read(s, report, work)
        if "latency" in s.only:
            bench_latency(s, report)
    report.out("Summary (pystemd rows, targets):")
    for line in report.summary():
        report.out(line)
    path = report.save(args.json)
    report.out(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
