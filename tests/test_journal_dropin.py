"""systemd.journal (the drop-in) against python-systemd 235, run on the same files.

The same snippets run under python-systemd 235 (``.venv-pysystemd``) and
under this checkout's drop-in, in subprocesses of their own
(journal_data/probe.py); their results (dicts, values, types, exceptions)
must be equal, except for the quirks the drop-in fixes on purpose (listed in
``FIXED`` with the reason, and documented in docs/python-systemd.md).
fail2ban's use of the module is replayed the same way, and python-systemd's
own test module runs against the drop-in.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from journal_data import exportgen as g
from journal_data.conftest_helpers import Journals, make_journals

from pystemd.testing.pytest_plugin import unavailable

REPO = Path(__file__).resolve().parent.parent
PYSYSTEMD = REPO / ".venv-pysystemd" / "bin" / "python"
PROBE = Path(__file__).resolve().parent / "journal_data" / "probe.py"


@pytest.fixture(scope="module")
def journals(tmp_path_factory: pytest.TempPathFactory) -> Journals:
    if g.journal_remote() is None:
        unavailable("systemd-journal-remote not installed (apt-get install systemd-journal-remote)")
    return make_journals(tmp_path_factory.mktemp("dropin-journals"), realistic_n=1500)


def _paths(j: Journals, tmp: Path) -> dict[str, Any]:
    empty = tmp / "empty"
    empty.mkdir(exist_ok=True)
    return {
        "tricky": str(j.tricky),
        "realistic": str(j.realistic_dir),
        "many": str(j.many_dir),
        "many_files": [str(p) for p in sorted(j.many_dir.glob("*.journal"))],
        "empty": str(empty),
        "tmp": str(tmp),
    }


def run_both(
    cases: dict[str, str], paths: dict[str, Any], cwd: Path, env: dict[str, str] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    if not (PYSYSTEMD.is_file() and os.access(PYSYSTEMD, os.X_OK)):
        unavailable(
            f"python-systemd 235 venv not found at {PYSYSTEMD.parent.parent} (ci/test builds it)"
        )
    src = {k: textwrap.dedent(v) for k, v in cases.items()}
    out = []
    for python, checkout in ((PYSYSTEMD, None), (Path(sys.executable), str(REPO))):
        spec = pickle.dumps({"cases": src, "paths": paths, "checkout": checkout})
        r = subprocess.run(
            [str(python), "-I", str(PROBE)], input=spec, capture_output=True, cwd=cwd,
            timeout=600, env={**os.environ, **(env or {})},
        )  # fmt: skip
        assert r.returncode == 0, r.stderr.decode(errors="replace")
        out.append(pickle.loads(r.stdout))
    ref, ours = out
    assert ".venv-pysystemd" in ref["module"]
    assert ours["module"] == str(REPO / "systemd" / "journal.py")
    return ref["results"], ours["results"]


def typed(v: Any) -> Any:
    """A value with the type of every part spelled out (== alone says 1 == 1.0 == True)."""
    if isinstance(v, dict):
        return ("dict", [(typed(k), typed(x)) for k, x in v.items()])
    if isinstance(v, (list, tuple)):
        return (type(v).__name__, [typed(x) for x in v])
    tz = getattr(v, "tzinfo", None)
    return (type(v).__name__, v, repr(tz) if tz is not None else None)


def same(a: Any, b: Any) -> bool:
    """Equal values of equal types; an exception of the same type whose message starts
    with python-systemd's (the drop-in's messages add what was wrong)."""
    if isinstance(a, tuple) and isinstance(b, tuple) and a[:1] == b[:1] == ("raised",):
        if len(a) != len(b) or a[1:-1] != b[1:-1]:
            return False
        if a[-1] == b[-1]:
            return True
        # messages: the drop-in's may say more; TypeError's come from the argument parser
        return (
            isinstance(a[-1], str)
            and isinstance(b[-1], str)
            and (b[-1].startswith(a[-1]) or a[1] == "TypeError")
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return typed(a) == typed(b)


def assert_same(ref: dict[str, Any], ours: dict[str, Any], fixed: dict[str, Any] = {}) -> None:  # noqa: B006
    assert sorted(ref) == sorted(ours)
    differ = []
    for name in ref:
        if name in fixed:
            want_ref, want_ours = fixed[name]
            assert want_ref(ref[name]), (name, ref[name])
            assert want_ours(ours[name]), (name, ours[name])
            continue
        if not same(ref[name], ours[name]):
            differ.append((name, ref[name], ours[name]))
    assert differ == [], "\n".join(
        f"{n}:\n  python-systemd: {a!r}\n  drop-in:        {b!r}"[:3000] for n, a, b in differ
    )


# -- whole journals, entry by entry ------------------------------------------------------------

ENTRIES = {
    "tricky": "def case(journal, P):\n    return list(journal.Reader(files=[P['tricky']]))",
    "realistic": "def case(journal, P):\n    return list(journal.Reader(path=P['realistic']))",
    "many dir": "def case(journal, P):\n    return list(journal.Reader(path=P['many']))",
    "many files": "def case(journal, P):\n    return list(journal.Reader(files=P['many_files']))",
    "realistic backwards": """
        def case(journal, P):
            r = journal.Reader(path=P['realistic'])
            r.seek_tail()
            out = []
            while True:
                e = r.get_previous()
                if not e:
                    return out
                out.append(e)
        """,
    "skips": """
        def case(journal, P):
            r = journal.Reader(path=P['many'])
            return [r.get_next(), r.get_next(5), r.get_previous(3), r.get_next(1000), r.get_previous(1000),
                    r.get_next(-2), r._next(3), r._previous(), r._get_cursor()]
        """,
}


def test_every_entry_is_identical(journals: Journals, tmp_path: Path) -> None:
    ref, ours = run_both(ENTRIES, _paths(journals, tmp_path), tmp_path)
    assert len(ref["realistic"]) == journals.realistic_n
    assert len(ref["many files"]) == journals.many_n
    # tricky holds timestamps out of datetime's range: python-systemd lets
    # OverflowError escape, the drop-in keeps the bytes (FIXED below)
    assert_same(
        ref,
        ours,
        {
            "tricky": (
                lambda r: r[:2] == ("raised", "OverflowError"),
                lambda o: len(o) == len(journals.tricky_entries),
            )
        },
    )


def test_tricky_entries_identical_but_for_the_overflow_fix(
    journals: Journals, tmp_path: Path
) -> None:
    # python-systemd, entry by entry, catching the OverflowError it raises
    cases = {
        "tricky": """
            def case(journal, P):
                r = journal.Reader(files=[P['tricky']])
                out = []
                while True:
                    try:
                        e = r.get_next()
                    except OverflowError as err:
                        out.append(('OverflowError', r._get_all()))
                        continue
                    if not e:
                        return out
                    out.append(e)
            """,
    }
    ref, ours = run_both(cases, _paths(journals, tmp_path), tmp_path)
    a, b = ref["tricky"], ours["tricky"]
    assert len(a) == len(b) == len(journals.tricky_entries)
    overflowed = [i for i, e in enumerate(a) if isinstance(e, tuple) and e[0] == "OverflowError"]
    assert len(overflowed) == 1  # "far timestamps": _SOURCE_MONOTONIC_TIMESTAMP overflows timedelta
    for i, (x, y) in enumerate(zip(a, b)):
        if i in overflowed:
            raw = x[1]
            # the drop-in: every field converted as python-systemd would, the
            # unconvertible timestamps kept as bytes
            assert [k for k in y if not k.startswith("__")] == list(raw)
            kept = {k for k, v in y.items() if isinstance(v, bytes) and k.endswith("TIMESTAMP")}
            assert kept and all(y[k] == raw[k] for k in kept)
        else:
            assert typed(x) == typed(y), i


# -- the rest of the API, call by call ------------------------------------------------------------

API = {
    "names": """
        def case(journal, P):
            return sorted(n for n in dir(journal) if not n.startswith('__'))
        """,
    "star": """
        def case(journal, P):
            ns = {}
            exec('from systemd.journal import *', ns)
            return sorted(n for n in ns if not n.startswith('__'))
        """,
    "constants": """
        def case(journal, P):
            return [(n, getattr(journal, n)) for n in ('LOCAL_ONLY', 'RUNTIME_ONLY', 'SYSTEM', 'SYSTEM_ONLY',
                    'CURRENT_USER', 'OS_ROOT', 'NOP', 'APPEND', 'INVALIDATE', 'LOG_EMERG', 'LOG_DEBUG',
                    '__version__')]
        """,
    "default converters": """
        def case(journal, P):
            return [(k, getattr(v, '__name__', None)) for k, v in journal.DEFAULT_CONVERTERS.items()]
        """,
    "reader attributes": """
        def case(journal, P):
            r = journal.Reader(path=P['many'])
            want = ['get_next', 'get_previous', 'add_match', 'add_disjunction', 'add_conjunction',
                    'flush_matches', 'seek_head', 'seek_tail', 'seek_realtime', 'seek_monotonic',
                    'seek_cursor', 'test_cursor', 'query_unique', 'enumerate_fields', 'wait', 'process',
                    'fileno', 'reliable_fd', 'get_events', 'get_timeout', 'get_timeout_ms', 'close',
                    'get_usage', 'get_start', 'get_end', 'log_level', 'messageid_match', 'this_boot',
                    'this_machine', 'get_catalog', 'has_runtime_files', 'has_persistent_files',
                    '_next', '_previous', '_get', '_get_all', '_get_realtime', '_get_monotonic',
                    '_get_cursor', '_get_start', '_get_end', '_convert_field', '_convert_entry',
                    'data_threshold', 'closed', 'converters', '__enter__', '__exit__', '__iter__', '__next__']
            return [(n, hasattr(r, n)) for n in want] + [issubclass(journal.Reader, journal._Reader),
                    sorted(r.converters) == sorted(journal.DEFAULT_CONVERTERS), r.converters is not journal.DEFAULT_CONVERTERS]
        """,
    "monotonic type": """
        def case(journal, P):
            m = journal.Monotonic((1, 2))
            return [m.timestamp, m.bootid, tuple(m), len(m), journal.Monotonic.n_fields, isinstance(m, tuple),
                    m == (1, 2), journal.Monotonic.__name__]
        """,
    "subclassing _Reader": """
        def case(journal, P):
            class R(journal._Reader):
                pass
            r = R(0, P['many'])
            return [r._next(), r._get_realtime(), r._get('MESSAGE')]
        """,
    "get_all get realtime monotonic cursor": """
        def case(journal, P):
            r = journal.Reader(files=[P['tricky']])
            out = []
            for f in (r._get_all, r._get_realtime, r._get_monotonic, r._get_cursor, lambda: r._get('MESSAGE'),
                      r.get_catalog, lambda: r.test_cursor('s=0'), lambda: r.test_cursor('x')):
                try:
                    out.append(f())
                except Exception as e:
                    out.append(('raised', type(e).__name__, getattr(e, 'errno', None)))
            r.get_next(6)
            out += [r._get_all(), r._get('TAG'), r._get_realtime(), r._get_monotonic(), r._get_cursor()]
            for f in (lambda: r._get('NOPE'), lambda: r._get('bad name'), r.get_catalog):
                try:
                    out.append(f())
                except Exception as e:
                    out.append(('raised', type(e).__name__, str(e)))
            return out
        """,
    "seek realtime": """
        def case(journal, P):
            import datetime
            r = journal.Reader(path=P['many'])
            entries = list(r)
            out = []
            t = entries[77]['__REALTIME_TIMESTAMP']
            for v in (t, int(t.timestamp() * 1e6), t.timestamp(), t.astimezone().replace(tzinfo=None), 0, 0.5):
                r.seek_realtime(v)
                out.append(r.get_next().get('SEQ'))
            r.seek_realtime(entries[-1]['__REALTIME_TIMESTAMP'] + datetime.timedelta(seconds=1))
            out.append(r.get_next())
            out.append(r.get_previous().get('SEQ'))
            return out
        """,
    "seek monotonic": """
        def case(journal, P):
            r = journal.Reader(path=P['many'])
            e = list(r)[200]
            m = e['__MONOTONIC_TIMESTAMP']
            out = []
            for ts, b in ((m.timestamp, m.bootid), (m.timestamp.total_seconds(), m.bootid.hex), (m[0], str(m[1]))):
                r.seek_monotonic(ts, b)
                out.append(r.get_next().get('SEQ'))
            for bad in ('nothex', 'zz' * 16):
                try:
                    r.seek_monotonic(1, bad)
                except Exception as err:
                    out.append(('raised', type(err).__name__, str(err)))
            return out
        """,
    "cursors": """
        def case(journal, P):
            r = journal.Reader(path=P['many'])
            e = list(r)[123]
            r.seek_cursor(e['__CURSOR'])
            out = [r.get_next() == e, r.test_cursor(e['__CURSOR'])]
            r.seek_cursor(e['__CURSOR'])
            out.append(r.get_previous() == e)
            for bad in ('garbage', '', 's=zz'):
                try:
                    r.seek_cursor(bad)
                    out.append('ok')
                except Exception as err:
                    out.append(('raised', type(err).__name__, str(err)))
            return out
        """,
    "seek head tail": """
        def case(journal, P):
            r = journal.Reader(path=P['many'])
            out = []
            r.seek_tail(); out.append(r.get_previous().get('SEQ')); out.append(r.get_next())
            r.seek_head(); out.append(r.get_next().get('SEQ')); out.append(r.get_previous())
            r.seek_tail(); out.append(r.get_previous(3).get('SEQ'))
            return out
        """,
    "matches": """
        def case(journal, P):
            out = []
            def seqs(setup):
                r = journal.Reader(path=P['many'])
                try:
                    setup(r)
                except Exception as e:
                    return ('raised', type(e).__name__, str(e))
                return [e['SEQ'] for e in r]
            out.append(seqs(lambda r: r.add_match(FILE_NO='3')))
            out.append(seqs(lambda r: r.add_match(FILE_NO=3, PRIORITY=2)))
            out.append(seqs(lambda r: r.add_match('FILE_NO=3', b'FILE_NO=4')))
            out.append(seqs(lambda r: (r.add_match(FILE_NO=3), r.add_disjunction(), r.add_match(PRIORITY=b'7'))))
            out.append(seqs(lambda r: (r.add_match(FILE_NO=3), r.add_conjunction(), r.add_match(PRIORITY=b'7'))))
            out.append(seqs(lambda r: (r.add_match(FILE_NO=3), r.flush_matches())))
            out.append(seqs(lambda r: r.log_level(3)))
            out.append(seqs(lambda r: r.log_level(journal.LOG_ERR)))
            out.append(seqs(lambda r: r.log_level(8)))
            out.append(seqs(lambda r: r.log_level(-1)))
            out.append(seqs(lambda r: r.add_match('lower=1')))
            out.append(seqs(lambda r: r.add_match('NOFIELD')))
            out.append(seqs(lambda r: r.add_match(5)))
            out.append(seqs(lambda r: r.messageid_match('8441372f8dca4ca98694a6091fd8519f')))
            out.append(seqs(lambda r: r.this_boot('BOOT_A')))
            out.append(seqs(lambda r: r.this_boot('nothex')))
            out.append(seqs(lambda r: r.this_machine('MACHINE')))
            return out
        """.replace("BOOT_A", g.BOOT_A).replace("'MACHINE'", repr(g.MACHINE)),
    "unique and fields": """
        def case(journal, P):
            r = journal.Reader(path=P['realistic'])
            out = [r.query_unique('PRIORITY'), r.query_unique('_BOOT_ID'), r.query_unique('_SOURCE_REALTIME_TIMESTAMP') and 0,
                   r.query_unique('NOT_THERE'), r.enumerate_fields()]
            r.add_match(PRIORITY=3)
            out.append(r.query_unique('PRIORITY'))
            for bad in ('bad name', ''):
                try:
                    out.append(r.query_unique(bad))
                except Exception as e:
                    out.append(('raised', type(e).__name__, str(e)))
            return out
        """,
    "times and sizes": """
        def case(journal, P):
            r = journal.Reader(path=P['realistic'])
            out = [r.get_start(), r.get_end(), r.get_usage() > 0, r.data_threshold, r.has_runtime_files(),
                   r.has_persistent_files()]
            r.data_threshold = 1000
            out.append(r.data_threshold)
            for bad in ('x', None, 1.5):
                try:
                    r.data_threshold = bad
                except Exception as e:
                    out.append(('raised', type(e).__name__))
            try:
                del r.data_threshold
            except Exception as e:
                out.append(('raised', type(e).__name__))
            return out
        """,
    "converters": """
        def case(journal, P):
            r = journal.Reader(files=[P['tricky']], converters={'MESSAGE': lambda v: v.upper(), 'PRIORITY': float,
                               '__CURSOR': lambda c: c[:2], '_UID': None})
            out = []
            try:
                out.append(r.get_next())
            except Exception as e:
                out.append(('raised', type(e).__name__))
            r.converters['_UID'] = str
            r.converters['__REALTIME_TIMESTAMP'] = lambda t: t // 1000
            r.converters['__MONOTONIC_TIMESTAMP'] = lambda m: (m[0], len(m[1]))
            out.append(r.get_next())
            out.append(r._convert_field('PRIORITY', b'7'))
            out.append(r._convert_field('PRIORITY', b'x'))
            out.append(r._convert_field('OTHER', b'\\xff'))
            out.append(r._convert_entry({'A': b'a', 'B': [b'1', b'\\xfe'], 'PRIORITY': [b'1', b'z']}))
            return out
        """,
    "fail2ban converters": """
        def case(journal, P):
            r = journal.Reader(converters={'__CURSOR': lambda x: x}, path=P['realistic'])
            return r.get_next()
        """,
    "event loop": """
        def case(journal, P):
            r = journal.Reader(files=[P['tricky']])
            out = [type(r.fileno()).__name__, r.reliable_fd(), r.get_events(), type(r.get_timeout()).__name__]
            out.append(r.wait(0))
            out.append(r.wait(0.05))
            out.append(r.process())
            out.append(type(r.get_timeout_ms()).__name__)
            return out
        """,
    "close and context": """
        def case(journal, P):
            out = []
            with journal.Reader(path=P['many']) as r:
                out.append(r.closed)
                out.append(r.get_next()['SEQ'])
            out.append(r.closed)
            r.close()
            for f in (r.get_next, r._get_cursor, r.seek_head, lambda: r.add_match('A=1'), r.fileno, r.get_usage,
                      r.wait, r.process):
                try:
                    out.append(f())
                except Exception as e:
                    out.append(('raised', isinstance(e, OSError), isinstance(e, ValueError), getattr(e, 'errno', None)))
            return out
        """,
    "open": """
        def case(journal, P):
            import os, pathlib
            out = []
            def attempt(**kw):
                try:
                    r = journal.Reader(**kw)
                except Exception as e:
                    return ('raised', type(e).__name__, getattr(e, 'errno', None))
                return [e.get('SEQ') for e in r][:3]
            out.append(attempt(path=P['many']))
            out.append(attempt(path=pathlib.Path(P['many'])))
            out.append(attempt(path=P['many'].encode()))
            fd = os.open(P['many'], os.O_RDONLY | os.O_DIRECTORY)
            out.append(attempt(path=fd))
            os.close(fd)
            out.append(attempt(files=P['many_files'][:2]))
            out.append(attempt(files=tuple(P['many_files'][:2])))
            out.append(attempt(path=P['empty']))
            out.append(attempt(path='/nonexistent'))
            out.append(attempt(files=['/nonexistent.journal']))
            out.append(attempt(files=P['tricky']))
            out.append(attempt(flags=journal.OS_ROOT))
            out.append(attempt(flags='x'))
            out.append(attempt(flags=0, path=-1))
            out.append(attempt(path=P['many'], files=P['many_files']))
            out.append(attempt(path=P['many'], namespace='foo'))
            return out
        """,
    "files empty": """
        def case(journal, P):
            return journal.Reader(files=[])
        """,
    "iteration of an empty journal": """
        def case(journal, P):
            r = journal.Reader(path=P['empty'])
            return [list(r), r.get_next(), r.get_previous(), r.get_usage()]
        """,
    "get_catalog": """
        def case(journal, P):
            import uuid
            out = []
            for mid in ('f77379a8490b408bbe5f6940505a777b', uuid.UUID('39f53479d3a045ac8e11786248231fbf'),
                        '00000000000000000000000000000001', 'nothex'):
                try:
                    out.append(journal.get_catalog(mid)[:40])
                except Exception as e:
                    out.append(('raised', type(e).__name__, getattr(e, 'errno', None)))
            return out
        """,
}

# python-systemd's behaviour the drop-in changes on purpose: (check on python-systemd's
# result, check on the drop-in's). docs/python-systemd.md gives the reasons.
FIXED = {
    # _get_all() swallows read errors in python-systemd (SD_JOURNAL_FOREACH_DATA stops at
    # the first error): before any next() it returns {}, and a damaged entry comes back
    # partial or empty, which ends get_next()/iteration early with no error. The
    # drop-in raises the OSError (here EADDRNOTAVAIL, as _get_realtime() & co. do).
    "get_all get realtime monotonic cursor": (
        lambda r: r[0] == {} and r[1] == ("raised", "OSError", 99),
        lambda o: o[0] == ("raised", "OSError", 99) and o[1] == ("raised", "OSError", 99),
    ),
    # a closed reader: one exception, both OSError(EINVAL) and ValueError, where
    # python-systemd raises OSError(EINVAL) from most methods and ValueError from some
    "close and context": (
        lambda r: r[:3] == [False, "0", True] and all(x[1] or x[2] for x in r[3:]),
        lambda o: (
            o[:3] == [False, "0", True] and all(x == ("raised", True, True, 22) for x in o[3:])
        ),
    ),
    # quirk 1: SystemError (an IndexError left set) -> a ValueError saying what is wrong
    "files empty": (
        lambda r: r[:2] == ("raised", "SystemError"),
        lambda o: o[:2] == ("raised", "ValueError") and "at least one" in o[4],
    ),
}


def test_api_call_by_call(journals: Journals, tmp_path: Path) -> None:
    ref, ours = run_both(API, _paths(journals, tmp_path), tmp_path)
    assert ref["constants"][-1] == ("__version__", "235")
    assert_same(ref, ours, FIXED)


def test_in_another_time_zone(journals: Journals, tmp_path: Path) -> None:
    # _LOCAL_TIMEZONE is a fixed offset taken at import: both must take the same
    if not Path("/usr/share/zoneinfo/America/New_York").exists():
        unavailable("tzdata not installed")
    cases = {
        "tz": "def case(journal, P):\n    return [journal._LOCAL_TIMEZONE, list(journal.Reader(path=P['many']))[:5]]",
        "naive seek": """
            def case(journal, P):
                import datetime
                r = journal.Reader(path=P['many'])
                r.seek_realtime(datetime.datetime(2023, 11, 14, 17, 13, 20, 50000))
                return r.get_next()
            """,
    }
    for tz in ("America/New_York", "Asia/Kolkata"):
        ref, ours = run_both(cases, _paths(journals, tmp_path), tmp_path, env={"TZ": tz})
        assert ref["tz"][0].utcoffset(None).total_seconds() != 0
        assert_same(ref, ours)


FAIL2BAN = """
def case(journal, P):
    # what fail2ban's filtersystemd.py does with the module (1.0.x), step by step
    import datetime, time, re
    def version_ok(v):
        return [int(x) for x in re.findall(r"\\d+", v)[:1]] >= [204]
    assert version_ok(journal.__version__)
    jrnl = journal.Reader(converters={'__CURSOR': lambda x: x}, path=P['realistic'])
    # addJournalMatch(['_SYSTEMD_UNIT=sshd.service', '+', '_COMM=sshd'])
    try:
        for group in (['_SYSTEMD_UNIT=sshd.service'], ['_COMM=sshd', 'PRIORITY=6']):
            for m in group:
                jrnl.add_match(m)
            jrnl.add_disjunction()
    except ValueError:
        jrnl.flush_matches()
        raise
    def fmt(logentry):
        logelements = []
        v = logentry.get('_HOSTNAME')
        if v:
            logelements.append(v)
        v = logentry.get('SYSLOG_IDENTIFIER') or logentry.get('_COMM')
        if v:
            logelements.append(v)
            v = logentry.get('SYSLOG_PID') or logentry.get('_PID')
            if v:
                try:
                    v = "[%i]" % v
                except TypeError:
                    v = "[%i]" % int(v, 0)
                logelements[-1] += v
            logelements[-1] += ":"
            monotonic = logentry.get('_SOURCE_MONOTONIC_TIMESTAMP')
            if monotonic is None:
                monotonic = logentry.get('__MONOTONIC_TIMESTAMP')[0]
            logelements.append("[%12.6f]" % monotonic.total_seconds())
        msg = logentry.get('MESSAGE', '')
        logelements.append(" ".join(msg) if isinstance(msg, list) else msg)
        logline = " ".join(logelements)
        date = logentry.get('_SOURCE_REALTIME_TIMESTAMP', logentry.get('__REALTIME_TIMESTAMP'))
        return ((logline[:0], date.isoformat(), logline.replace('\\n', '\\\\n')),
                time.mktime(date.timetuple()) + date.microsecond / 1.0E6, logentry['__CURSOR'])
    out = []
    cursor = None
    # seekToTime(now - findtime): a naive local datetime
    start = datetime.datetime.fromtimestamp(1700000000.5)
    jrnl.seek_realtime(start)
    try:
        jrnl.get_previous()
    except OSError:
        pass
    while True:
        try:
            w = jrnl.wait(0.01)
        except OSError:
            w = 'err'
        out.append(('wait', w != journal.NOP))
        n = 0
        while True:
            logentry = jrnl.get_next()
            if not logentry:
                break
            out.append(fmt(logentry))
            cursor = logentry['__CURSOR']
            n += 1
            if n >= 100:
                break
        if n == 0:
            break
    # restart from the last cursor (fail2ban 1.0 keeps it in its database)
    jrnl.seek_cursor(cursor)
    jrnl.get_next()
    out.append(('after cursor', jrnl.get_next()))
    jrnl.seek_tail()
    prev = jrnl.get_previous()
    out.append(('tail', fmt(prev) if prev else None, jrnl.get_next()))
    jrnl.close()
    return out
"""


def test_fail2ban_usage_runs_unchanged(journals: Journals, tmp_path: Path) -> None:
    ref, ours = run_both({"fail2ban": FAIL2BAN}, _paths(journals, tmp_path), tmp_path)
    out = ref["fail2ban"]
    assert isinstance(out, list) and len(out) > 50, out
    assert_same(ref, ours)


def test_python_systemds_own_tests_pass_on_the_drop_in(tmp_path: Path) -> None:
    if not PYSYSTEMD.is_file():
        unavailable(f"python-systemd 235 venv not found at {PYSYSTEMD.parent.parent}")
    site = subprocess.run(
        [str(PYSYSTEMD), "-I", "-c", "import systemd, os; print(os.path.dirname(systemd.__file__))"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    ).stdout.strip()  # fmt: skip
    upstream = Path(site) / "test" / "test_journal.py"
    if not upstream.is_file():
        unavailable(f"python-systemd's tests are not installed ({upstream})")
    work = tmp_path / "upstream"
    work.mkdir()
    (work / "test_journal.py").write_text(upstream.read_text())
    marker = work / "imported-from"
    (work / "conftest.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "import systemd.journal\n"
        f"open({str(marker)!r}, 'w').write(systemd.journal.__file__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", "test_journal.py"],
        capture_output=True, text=True, cwd=work, timeout=300, check=False,
    )  # fmt: skip
    assert marker.read_text() == str(REPO / "systemd" / "journal.py")
    assert out.returncode == 0, out.stdout + out.stderr
    assert " passed" in out.stdout and "failed" not in out.stdout


def test_systemd_reader_module(tmp_path: Path) -> None:
    code = (
        "import sys; sys.path.insert(0, %r)\n"
        "from systemd import _reader\n"
        "print(sorted(n for n in dir(_reader) if not n.startswith('__')), _reader.__version__)\n"
    )
    ref = subprocess.run(
        [str(PYSYSTEMD), "-I", "-c", code % "/nonexistent"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    )
    ours = subprocess.run(
        [sys.executable, "-I", "-c", code % str(REPO)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    )
    assert ref.stdout == ours.stdout
