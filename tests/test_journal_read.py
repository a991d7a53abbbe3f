"""pystemd.journal.Reader on journal files written by systemd-journal-remote.

Every entry the Reader yields is compared field for field with
``journalctl -o export`` of the same files; converted values are compared
with python-systemd's converter functions applied to the raw values (and the
C conversion with the Python one on generated inputs); projection, batches,
seeking, cursors, matches, errors, threads and resources are checked on the
same files. python-systemd itself is compared in test_journal_dropin*.py.
"""

from __future__ import annotations

import datetime
import errno
import gc
import os
import shutil
import subprocess
import sys
import threading
import uuid
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from journal_data import exportgen as g
from journal_data.conftest_helpers import Journals, compare_with_export, grouped, make_journals

from pystemd import journal
from pystemd.journal import ClosedJournalError, Monotonic, Reader

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def journals(tmp_path_factory: pytest.TempPathFactory) -> Journals:
    if g.journal_remote() is None:
        from pystemd.testing.pytest_plugin import unavailable

        unavailable("systemd-journal-remote not installed (apt-get install systemd-journal-remote)")
    return make_journals(tmp_path_factory.mktemp("journals"))


def read_all(r: Reader) -> list[dict[str, Any]]:
    return list(r)


# -- every entry, field for field, against journalctl -o export ------------------------------


def test_tricky_file_matches_journalctl_export(journals: Journals) -> None:
    with Reader(files=[journals.tricky], raw=True) as r:
        ours = read_all(r)
    export = g.journalctl_export(files=[journals.tricky])
    assert len(ours) == len(journals.tricky_entries)
    compare_with_export(ours, export)


def test_tricky_values_are_the_bytes_written(journals: Journals) -> None:
    # and journalctl agrees with what went into journal-remote
    with Reader(files=[journals.tricky], raw=True) as r:
        ours = read_all(r)
    for entry, written in zip(ours, journals.tricky_entries):
        want = grouped(f for f in written if not f[0].startswith("__"))
        got = {
            k: (v if isinstance(v, list) else [v])
            for k, v in entry.items()
            if not k.startswith("__")
        }
        assert got == want


def test_realistic_directory_matches_journalctl_export(journals: Journals) -> None:
    with Reader(path=journals.realistic_dir, raw=True) as r:
        ours = read_all(r)
    assert len(ours) == journals.realistic_n
    compare_with_export(ours, g.journalctl_export(directory=journals.realistic_dir))


def test_many_files_interleave_as_journalctl(journals: Journals) -> None:
    files = sorted(journals.many_dir.glob("*.journal"))
    assert len(files) == 12
    with Reader(path=journals.many_dir, raw=True) as r:
        by_dir = read_all(r)
    with Reader(files=files, raw=True) as r:
        by_files = read_all(r)
    export = g.journalctl_export(directory=journals.many_dir)
    compare_with_export(by_dir, export)
    compare_with_export(by_files, export)
    assert [int(e["SEQ"]) for e in by_dir] == list(range(journals.many_n))


def test_files_by_fd_and_directory_by_fd(journals: Journals) -> None:
    files = sorted(journals.many_dir.glob("*.journal"))
    fds = [os.open(f, os.O_RDONLY | os.O_CLOEXEC) for f in files]
    dfd = os.open(journals.many_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with Reader(files=fds, raw=True) as r:
            a = read_all(r)
        with Reader(path=dfd, raw=True) as r:
            b = read_all(r)
        with Reader(path=journals.many_dir.as_posix().encode(), raw=True) as r:
            c = read_all(r)
    finally:
        for fd in [*fds, dfd]:
            os.close(fd)
    export = g.journalctl_export(directory=journals.many_dir)
    compare_with_export(a, export)
    compare_with_export(b, export)
    compare_with_export(c, export)


# -- conversion ------------------------------------------------------------------------------


def test_converted_entries_are_the_converters_applied_to_raw(journals: Journals) -> None:
    for kw in ({"files": [journals.tricky]}, {"path": journals.realistic_dir}):
        with Reader(raw=True, **kw) as r:  # type: ignore[arg-type]
            raw = read_all(r)
        with Reader(**kw) as r:  # type: ignore[arg-type]
            conv = read_all(r)
            # python-systemd's own Python path, method by method
            want = [r._convert_entry(e) for e in raw]
        assert len(conv) == len(want)
        for a, b in zip(conv, want):
            assert list(a) == list(b)
            for k in a:
                assert type(a[k]) is type(b[k]), k
                assert a[k] == b[k], k
                if isinstance(a[k], list):
                    assert [type(x) for x in a[k]] == [type(x) for x in b[k]]


def test_tricky_conversions(journals: Journals) -> None:
    with Reader(files=[journals.tricky]) as r:
        e = {
            x["MESSAGE"] if isinstance(x["MESSAGE"], (str, bytes)) else x["MESSAGE"][0]: x
            for x in r
        }
    assert e["plain"]["PRIORITY"] == 6 and e["plain"]["_PID"] == 123
    assert e["latin1 caf\xe9".encode("latin-1")]["NAME"] == b"\xff\xfe\xfd"  # not UTF-8: bytes
    assert e["repeated"]["TAG"] == ["a", "b", b"\xff", "c"]  # a list can mix str and bytes
    assert e["first"]["MESSAGE"] == ["first", "second"]
    assert e["repeated ints"]["PRIORITY"] == [3, b"x"]
    bad = e["bad ints"]
    # int() semantics, as python-systemd: spaces, signs and underscores are accepted
    assert bad["PRIORITY"] == b"abc" and bad["_PID"] == 42 and bad["_UID"] == -7
    assert bad["CODE_LINE"] == b"0x10" and bad["ERRNO"] == 1000 and bad["EXIT_STATUS"] == 3
    assert e["big ints"]["_PID"] == 99999999999999999999999
    assert e["uuids"]["MESSAGE_ID"] == b"not-a-uuid"
    assert e["uuids"]["_MACHINE_ID"] == uuid.UUID(g.MACHINE)
    assert e["uuid forms"]["MESSAGE_ID"] == uuid.UUID("8441372f8dca4ca98694a6091fd8519f")
    ts = e["timestamps"]
    tz = journal._LOCAL_TIMEZONE
    assert ts["_SOURCE_REALTIME_TIMESTAMP"] == datetime.datetime.fromtimestamp(
        1700000000.123456, tz
    )
    assert ts["_SOURCE_REALTIME_TIMESTAMP"].microsecond == 123456
    assert ts["COREDUMP_TIMESTAMP"] == datetime.datetime.fromtimestamp(0, tz)
    assert ts["_SOURCE_MONOTONIC_TIMESTAMP"] == datetime.timedelta(microseconds=123456789)
    odd = e["odd timestamps"]
    assert odd["_SOURCE_REALTIME_TIMESTAMP"] == datetime.datetime.fromtimestamp(-1.5, tz)
    assert odd["COREDUMP_TIMESTAMP"] == b"99999999999999999999"  # out of range: kept (fix)
    assert odd["_SOURCE_MONOTONIC_TIMESTAMP"] == datetime.timedelta(microseconds=-5)
    far = e["far timestamps"]
    # 9999-12-31T23:59:59.999999: the float path rounds it into year 10000 -> kept as bytes
    assert far["_SOURCE_REALTIME_TIMESTAMP"] == b"253402300799999999"
    assert far["COREDUMP_TIMESTAMP"] == datetime.datetime.fromtimestamp(4294967296.000001, tz)
    assert far["_SOURCE_MONOTONIC_TIMESTAMP"] == b"86400000000000000000"  # timedelta overflow: kept
    assert e["not numbers"]["_SOURCE_REALTIME_TIMESTAMP"] == b"soon"
    assert (
        e["coredump"]["COREDUMP"].startswith(b"\x7fELF") and e["coredump"]["COREDUMP_SIGNAL"] == 11
    )
    assert len(e["big text"]["BIG"]) == 512 * 1024
    assert isinstance(e["big binary"]["BIG"], bytes) and len(e["big binary"]["BIG"]) == 200_000
    assert e["empty value"]["EMPTY"] == ""
    assert e["equals in value"]["KV"] == "a=b=c"
    assert e["long name"]["F" * 64] == "sixty-four"
    m = e["plain"]["__MONOTONIC_TIMESTAMP"]
    assert isinstance(m, Monotonic) and isinstance(m, tuple) and len(m) == 2
    assert m.timestamp == m[0] == datetime.timedelta(microseconds=5_000_000)
    assert m.bootid == m[1] == uuid.UUID(g.BOOT_A)
    assert e["other boot"]["__MONOTONIC_TIMESTAMP"].bootid == uuid.UUID(g.BOOT_B)
    assert e["plain"]["__REALTIME_TIMESTAMP"] == datetime.datetime.fromtimestamp(g.T0 / 1e6, tz)


_int_text = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20).map(lambda i: str(i).encode()),
    st.binary(max_size=24),
    st.from_regex(rb"\A[ +\-]?[0-9_]{0,22}[ \n]?\Z"),
)


@settings(max_examples=3000, deadline=None)
@given(value=_int_text)
def test_c_conversion_equals_python_converters(value: bytes) -> None:
    # every default converter that C stands in for, on the same bytes
    for key in (
        "PRIORITY",
        "_SOURCE_REALTIME_TIMESTAMP",
        "_SOURCE_MONOTONIC_TIMESTAMP",
        "MESSAGE",
        "COREDUMP",
    ):
        py = journal.DEFAULT_CONVERTERS.get(key, bytes.decode)
        try:
            want = py(value)
        except ValueError:
            want = value
        got = journal._journal._fast_convert(key, value)
        assert type(got) is type(want), (key, value)
        assert got == want, (key, value)


@settings(max_examples=3000, deadline=None)
@given(
    usec=st.one_of(
        st.integers(min_value=0, max_value=2**32 * 10**6 + 10**7),
        st.integers(min_value=0, max_value=2**64 - 1),
        st.integers(min_value=1_500_000_000_000_000, max_value=1_900_000_000_000_000),
    )
)
def test_c_datetime_equals_python_float_path(usec: int) -> None:
    got = journal._journal._fast_datetime(usec)
    if got is None:  # C defers to the Python converter for this one
        return
    assert got == journal._convert_realtime(usec)
    assert got.tzinfo is journal._LOCAL_TIMEZONE
    assert got.utcoffset() == journal._convert_realtime(usec).utcoffset()


@settings(max_examples=500, deadline=None)
@given(text=st.one_of(st.uuids().map(lambda u: u.hex), st.text(max_size=40), st.uuids().map(str)))
def test_c_uuid_equals_python(text: str) -> None:
    value = text.encode("utf-8", "surrogatepass")
    try:
        want: Any = journal._convert_uuid(value)
    except ValueError:
        want = value
    got = journal._journal._fast_convert("MESSAGE_ID", value)
    assert type(got) is type(want) and got == want


def test_custom_converters_and_their_changes(journals: Journals) -> None:
    seen = []

    def upper(v: bytes) -> str:
        seen.append(v)
        return v.decode().upper()

    def reject(v: bytes) -> Any:
        raise ValueError("no")

    with Reader(
        files=[journals.tricky],
        converters={"MESSAGE": upper, "_PID": reject, "__CURSOR": lambda c: ("c", c)},
    ) as r:
        e = r.get_next()
        assert e["MESSAGE"] == "PLAIN" and e["_PID"] == b"123"  # ValueError keeps the bytes
        assert e["__CURSOR"][0] == "c" and e["__CURSOR"][1].startswith("s=")
        assert e["PRIORITY"] == 6
        # the converters dict is live, as python-systemd's
        r.converters["PRIORITY"] = str
        del r.converters["_PID"]
        r.converters.update({"__MONOTONIC_TIMESTAMP": lambda m: ("m", m[0], m[1])})
        r.seek_head()
        e = r.get_next()
        assert e["PRIORITY"] == "b'6'" and e["_PID"] == "123"
        assert e["__MONOTONIC_TIMESTAMP"] == ("m", 5_000_000, uuid.UUID(g.BOOT_A).bytes)
    # __REALTIME_TIMESTAMP without a converter: bytes.decode(int) raises, as python-systemd's
    with Reader(files=[journals.tricky]) as r:
        del r.converters["__REALTIME_TIMESTAMP"]
        with pytest.raises(TypeError):
            r.get_next()
        r.converters = {**journal.DEFAULT_CONVERTERS, "_UID": float}
        r.seek_head()
        assert r.get_next()["_UID"] == 0.0
    assert seen[:1] == [b"plain"]


def test_raw_mode_types(journals: Journals) -> None:
    with Reader(files=[journals.tricky], raw=True) as r:
        e = r.get_next()
        assert r.raw is True
    assert e["PRIORITY"] == b"6" and e["_BOOT_ID"] == g.BOOT_A.encode()
    assert e["__REALTIME_TIMESTAMP"] == g.T0
    assert e["__MONOTONIC_TIMESTAMP"] == Monotonic((5_000_000, uuid.UUID(g.BOOT_A).bytes))
    assert isinstance(e["__CURSOR"], str)


def test_custom_converters_on_every_read_path(journals: Journals) -> None:
    # the first reads after opening copy the entry first (GIL released), later ones
    # build it while libsystemd enumerates it; gil_hold_us=0 copies every entry
    def upper(v: bytes) -> str:
        return v.decode().upper()

    def reject(v: bytes) -> Any:
        raise ValueError("no")

    conv = {"MESSAGE": upper, "_PID": reject, "PRIORITY": str, "__CURSOR": lambda c: ("c", c)}
    for kw in ({"files": [journals.tricky]}, {"path": journals.realistic_dir}):
        with Reader(raw=True, **kw) as r:  # type: ignore[arg-type]
            raw = read_all(r)
        for hold in (journal._journal.DEFAULT_GIL_HOLD_US, 0):
            with Reader(converters=conv, **kw) as r:  # type: ignore[arg-type]
                r.gil_hold_us = hold
                want = [r._convert_entry(e) for e in raw]
                for got in (
                    read_all(r),
                    (r.seek_head(), [e for b in r.iter_batches(64) for e in b])[1],
                ):
                    assert len(got) == len(want)
                    for a, b in zip(got, want):
                        assert list(a) == list(b)
                        for k in a:
                            assert type(a[k]) is type(b[k]) and a[k] == b[k], k
                            if isinstance(a[k], list):
                                assert [type(x) for x in a[k]] == [type(x) for x in b[k]]


def test_converters_cannot_use_their_reader(journals: Journals) -> None:
    # the reader is in the middle of an entry while it converts one: a converter
    # that moves it, reads from it or closes it gets RuntimeError, not a mixed entry
    calls: list[Any] = []
    with Reader(path=journals.realistic_dir, raw=True, fields=["SYSLOG_IDENTIFIER"]) as plain:
        idents = [e["SYSLOG_IDENTIFIER"].decode() for e in plain]
    for misuse in (
        lambda r: r.get_next(),
        lambda r: r.seek_head(),
        lambda r: r._get("MESSAGE"),
        lambda r: r.read_batch(2),
        lambda r: r.close(),
    ):
        with Reader(path=journals.realistic_dir) as r:
            r.converters["SYSLOG_IDENTIFIER"] = lambda v, r=r, misuse=misuse: (
                calls.append(misuse) or misuse(r)
            )
            for _ in range(5):  # past the first (copied) reads, onto the direct path
                with pytest.raises(RuntimeError, match="inside one of its converters"):
                    r.get_next()
            del r.converters["SYSLOG_IDENTIFIER"]
            # nothing was lost or mixed: the reader goes on with the next entry
            assert r.get_next()["SYSLOG_IDENTIFIER"] == idents[5]
            assert not r.closed
    assert len(calls) == 25


def test_lazy_entries_are_the_raw_dicts(journals: Journals) -> None:
    from collections.abc import Mapping

    cases: list[tuple[dict[str, Any], list[Any]]] = [
        ({"files": [journals.tricky]}, [None, ["*"], ["MESSAGE", "TAG", "__CURSOR", "NOPE"]]),
        ({"path": journals.realistic_dir}, [None, ["*"], ["_PID", "MESSAGE"], ["MESSAGE"]]),
        ({"path": journals.many_dir}, [None]),
    ]
    for kw, projections in cases:
        for fields in projections:
            with Reader(raw=True, fields=fields, **kw) as r:
                want = read_all(r)
            for hold in (journal._journal.DEFAULT_GIL_HOLD_US, 0):
                with Reader(lazy=True, fields=fields, **kw) as r:
                    assert r.lazy and r.raw
                    r.gil_hold_us = hold
                    one = read_all(r)
                    r.seek_head()
                    batched = [e for b in r.iter_batches(50) for e in b]
                assert len(one) == len(batched) == len(want)
                for a, b, w in zip(one, batched, want):
                    assert type(a) is journal.RawEntry and isinstance(a, Mapping)
                    assert a == w and b == w and w == a and not (a != w)
                    d = dict(a)
                    assert d == w and list(d) == list(w) and a.todict() == w
                    assert list(a) == list(w) and len(a) == len(w)
                    assert list(a.items()) == list(w.items()) and list(a.values()) == list(
                        w.values()
                    )
                    for k, v in w.items():
                        assert k in a and type(a[k]) is type(v) and a[k] == v and a.get(k) == v
                        if isinstance(v, list):
                            assert [type(x) for x in a[k]] == [type(x) for x in v]
            if fields is None:  # against journalctl itself, field for field
                export = g.journalctl_export(**{"files" if "files" in kw else "directory": (
                    kw["files"] if "files" in kw else kw["path"])})  # fmt: skip
                with Reader(lazy=True, **kw) as r:
                    compare_with_export(read_all(r), export)


def test_lazy_entry_as_a_mapping(journals: Journals) -> None:
    import copy
    import pickle

    with Reader(files=[journals.tricky], lazy=True) as r:
        entries = read_all(r)
        e = entries[5]  # "repeated": TAG four times
    # the entry owns its bytes: the closed reader does not matter
    assert e["MESSAGE"] == b"repeated" and e["TAG"] == [b"a", b"b", b"\xff", b"c"]
    assert e["TAG"] is not e["TAG"]  # made at every access
    assert e["__REALTIME_TIMESTAMP"] == g.T0 + 5 * 1000 and isinstance(e["__CURSOR"], str)
    assert e["__MONOTONIC_TIMESTAMP"] == Monotonic(
        (5_000_000 + 5 * 1000, uuid.UUID(g.BOOT_A).bytes)
    )
    for missing in ("NOPE", "__NOPE", "__", "", "caf\xe9", 5, b"MESSAGE", None):
        assert missing not in e and e.get(missing) is None and e.get(missing, 7) == 7  # type: ignore[arg-type]
        with pytest.raises(KeyError):
            e[missing]  # type: ignore[index]
    assert len(e) == len(set(e)) == 6  # _BOOT_ID, MESSAGE, TAG and the three pseudo-fields
    assert e != {} and e != entries[4] and e == entries[5] and e != "x"
    with pytest.raises(TypeError):
        hash(e)
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is dict and back == e
    assert copy.copy(e) is e and copy.deepcopy(e) is e
    assert repr(e).startswith("RawEntry({'_BOOT_ID': b'") and "'TAG': [b'a', b'b'," in repr(e)
    with pytest.raises(TypeError):
        journal.RawEntry()
    big = next(
        x
        for x in entries
        if "BIG" in x and isinstance(x["BIG"], bytes) and len(x["BIG"]) == 200_000
    )
    assert big["BIG"][:4] and len(big.todict()["BIG"]) == 200_000
    # switching modes on an open reader
    with Reader(files=[journals.tricky], raw=True) as r:
        assert type(r.get_next()) is dict
        r.lazy = True
        assert type(r.get_next()) is journal.RawEntry and r.raw
        r.fields = ["MESSAGE"]
        assert r.get_next() == {"MESSAGE": b"bin\x00ary\x01\x02"}
        r.lazy = False
        assert type(r.get_next()) is dict
        with pytest.raises(ValueError, match="lazy entries are raw"):
            r._configure(False, None, journal._journal.META_ALL, True)

    class Overrides(Reader):
        def _convert_field(self, key: str, value: Any) -> Any:
            return value

    with pytest.raises(ValueError, match="lazy=True needs the C read path"):
        Overrides(files=[journals.tricky], lazy=True)


# -- projection and batches ---------------------------------------------------------------------------


def test_projection_reads_only_the_fields_asked(journals: Journals) -> None:
    fields = ["MESSAGE", "TAG", "_PID", "__CURSOR", "NOT_THERE"]
    with Reader(files=[journals.tricky], raw=True) as r:
        full = read_all(r)
    with Reader(files=[journals.tricky], raw=True, fields=fields) as r:
        proj = read_all(r)
        assert r.fields == tuple(fields)
    assert len(proj) == len(full)
    for p, f in zip(proj, full):
        want = {}
        for k in fields:
            if k in f:
                v = f[k]
                want[k] = v[0] if isinstance(v, list) else v  # sd_journal_get_data: the first value
        assert p == want
    with Reader(files=[journals.tricky], fields=["_PID", "__REALTIME_TIMESTAMP"]) as r:
        e = r.get_next()
    assert e == {
        "_PID": 123,
        "__REALTIME_TIMESTAMP": datetime.datetime.fromtimestamp(
            g.T0 / 1e6, journal._LOCAL_TIMEZONE
        ),
    }


def test_star_means_every_field_without_pseudo_fields(journals: Journals) -> None:
    with Reader(path=journals.realistic_dir, raw=True) as r:
        full = r.read_batch(50)
    with Reader(path=journals.realistic_dir, raw=True, fields=["*"]) as r:
        star = r.read_batch(50)
    with Reader(path=journals.realistic_dir, raw=True, fields=["*", "__CURSOR"]) as r:
        star_c = r.read_batch(50)
    assert star == [{k: v for k, v in e.items() if not k.startswith("__")} for e in full]
    assert star_c == [
        {k: v for k, v in e.items() if k != "__REALTIME_TIMESTAMP" and k != "__MONOTONIC_TIMESTAMP"}
        for e in full
    ]


def test_entries_without_the_projected_fields_do_not_end_iteration(journals: Journals) -> None:
    # python-systemd stops iterating at the first empty dict; pystemd.journal
    # stops at the end of the journal only
    with Reader(files=[journals.tricky], fields=["TAG"]) as r:
        got = list(r)
    assert len(got) == len(journals.tricky_entries)
    assert [e for e in got if e] == [{"TAG": "a"}]


def test_projection_can_change_and_rejects_bad_names(journals: Journals) -> None:
    with Reader(files=[journals.tricky]) as r:
        r.fields = ["MESSAGE"]
        assert r.get_next() == {"MESSAGE": "plain"}
        r.fields = None
        assert "PRIORITY" in r.get_next()
        r.raw = True
        assert r.get_next()["MESSAGE"] == b"bin\x00ary\x01\x02"
        for bad in (["lower"], ["A=B"], ["9X"], ["X" * 65], [""]):
            with pytest.raises(ValueError, match="invalid field name"):
                r.fields = bad
        with pytest.raises(TypeError):
            r.fields = [b"MESSAGE"]  # type: ignore[list-item]


def test_batches_equal_iteration(journals: Journals) -> None:
    with Reader(path=journals.realistic_dir) as r:
        one = read_all(r)
    for n in (1, 7, 32, 33, 1000, 5000):
        with Reader(path=journals.realistic_dir) as r:
            batches = list(r.iter_batches(n))
        assert all(0 < len(b) <= n for b in batches)
        assert [e for b in batches for e in b] == one
    with Reader(path=journals.realistic_dir) as r:
        assert len(r.read_batch(10)) == 10
        # the reader is left on the last entry returned
        assert r._get_cursor() == one[9]["__CURSOR"]
        assert r.get_next() == one[10]
        with pytest.raises(ValueError):
            r.read_batch(0)


def test_backwards_and_skips(journals: Journals) -> None:
    with Reader(path=journals.many_dir, raw=True, fields=["SEQ"]) as r:
        r.seek_tail()
        back = []
        while True:
            e = r.get_previous()
            if not e:
                break
            back.append(int(e["SEQ"]))
        assert back == list(range(journals.many_n - 1, -1, -1))
        r.seek_head()
        assert int(r.get_next(5)["SEQ"]) == 4
        assert int(r.get_next(3)["SEQ"]) == 7
        assert int(r.get_previous(2)["SEQ"]) == 5
        assert r._fetch_batch(3, -1) == [{"SEQ": b"4"}, {"SEQ": b"3"}, {"SEQ": b"2"}]
        with pytest.raises(ValueError, match="skip must be nonzero"):
            r.get_next(0)
        r.seek_last(0)
        assert r.get_next(10) == {}


# -- seeking and cursors ------------------------------------------------------------------------------


def test_seek_realtime_monotonic_and_cursor(journals: Journals) -> None:
    with Reader(path=journals.many_dir) as r:
        entries = read_all(r)
        target = entries[100]
        r.seek_realtime(target["__REALTIME_TIMESTAMP"])
        assert r.get_next()["SEQ"] == target["SEQ"]
        r.seek_realtime(g.T0 + 100 * 1000)  # int: µs
        assert r.get_next()["SEQ"] == "100"
        r.seek_realtime((g.T0 + 200 * 1000) / 1e6)  # float: seconds
        assert r.get_next()["SEQ"] == "200"
        naive = target["__REALTIME_TIMESTAMP"].astimezone().replace(tzinfo=None)
        r.seek_realtime(naive)  # naive: local time
        assert r.get_next()["SEQ"] == target["SEQ"]
        with pytest.raises(ValueError):
            r.seek_realtime(-1)
        m = target["__MONOTONIC_TIMESTAMP"]
        r.seek_monotonic(m.timestamp, m.bootid)
        assert r.get_next()["SEQ"] == target["SEQ"]
        r.seek_monotonic(m.timestamp.total_seconds(), m.bootid.hex)
        assert r.get_next()["SEQ"] == target["SEQ"]
        with pytest.raises(ValueError, match="Invalid bootid"):
            r.seek_monotonic(1, "nothex")
        r.seek_cursor(target["__CURSOR"])
        assert r.get_next() == target
        assert r.test_cursor(target["__CURSOR"]) is True
        assert r.test_cursor(entries[101]["__CURSOR"]) is False
        with pytest.raises(ValueError, match="Invalid cursor"):
            r.seek_cursor("garbage")
        assert r.get_start() == entries[0]["__REALTIME_TIMESTAMP"]
        assert r.get_end() == entries[-1]["__REALTIME_TIMESTAMP"]


def test_resume_after_cursor(journals: Journals) -> None:
    with Reader(path=journals.many_dir, fields=["SEQ", "__CURSOR"]) as r:
        entries = read_all(r)
    saved = entries[41]["__CURSOR"]
    with Reader(path=journals.many_dir, fields=["SEQ", "__CURSOR"]) as r:
        assert r.seek_after_cursor(saved) is True
        assert [e["SEQ"] for e in r] == [e["SEQ"] for e in entries[42:]]
    # the saved entry is gone (its file was vacuumed): resume at the next one there is
    files = sorted(journals.many_dir.glob("*.journal"))
    owner = [f for f in files if f.name == f"part{41 % 12:02d}.journal"]
    rest = [f for f in files if f not in owner]
    with Reader(files=rest, fields=["SEQ", "__CURSOR"]) as r:
        assert r.seek_after_cursor(saved) is False
        assert [e["SEQ"] for e in r] == [
            e["SEQ"] for e in entries[42:] if int(e["SEQ"]) % 12 != 41 % 12
        ]
    # the last entry: nothing after it
    with Reader(path=journals.many_dir, fields=["SEQ"]) as r:
        assert r.seek_after_cursor(entries[-1]["__CURSOR"]) is True
        assert r.get_next() == {}


def test_seek_last(journals: Journals) -> None:
    with Reader(path=journals.many_dir, raw=True, fields=["SEQ"]) as r:
        r.seek_last(3)
        assert [int(e["SEQ"]) for e in r] == list(range(journals.many_n - 3, journals.many_n))
        r.seek_last(0)
        assert list(r) == []
        r.seek_last(10**6)  # more than there are: everything
        assert len(list(r)) == journals.many_n
        # the libsystemd behaviour seek_last() papers over: on systemd 252,
        # seek_tail() then next() returns the last entry again
        # libsystemd's own seek_tail() then next(): on systemd < 254 that returns
        # an entry already read (with several files, not even the last one)
        r.seek_tail()
        e = r.get_next()
        if journal._journal._libsystemd_version() < 254:
            assert e and int(e["SEQ"]) < journals.many_n
        else:
            assert e == {}
        r.seek_last(0)
        assert r.get_next() == {}


# -- matches, unique values, fields ----------------------------------------------------------------------


def _journalctl_fields(directory: Path, *args: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        ["journalctl", f"--directory={directory}", "-o", "export", *args],
        capture_output=True,
        check=True,
    ).stdout
    return [grouped(e) for e in g.parse_export(out)]


def test_matches_like_journalctl(journals: Journals) -> None:
    d = journals.many_dir
    cases: list[tuple[Any, list[str]]] = [
        (lambda r: r.add_match(FILE_NO="3"), ["FILE_NO=3"]),
        (lambda r: r.add_match("FILE_NO=3", b"FILE_NO=5"), ["FILE_NO=3", "FILE_NO=5"]),
        (lambda r: (r.add_match(FILE_NO=3), r.add_match(PRIORITY=2)), ["FILE_NO=3", "PRIORITY=2"]),
        (lambda r: (r.add_match(FILE_NO=3), r.add_disjunction(), r.add_match(SYSLOG_IDENTIFIER="ident1")),
         ["FILE_NO=3", "+", "SYSLOG_IDENTIFIER=ident1"]),
        (lambda r: r.log_level(2), ["PRIORITY=0", "PRIORITY=1", "PRIORITY=2"]),
    ]  # fmt: skip
    for setup, args in cases:
        with Reader(path=d, fields=["SEQ"]) as r:
            setup(r)
            got = [e["SEQ"] for e in r]
        want = [e["SEQ"][0].decode() for e in _journalctl_fields(d, *args)]
        assert got == want and got, args
        with Reader(path=d, fields=["SEQ"]) as r:
            setup(r)
            r.flush_matches()
            assert len(list(r)) == journals.many_n
    with Reader(path=d) as r:
        with pytest.raises(ValueError, match="Invalid match"):
            r.add_match("lower=1")
        with pytest.raises(ValueError, match="Invalid match"):
            r.add_match("NOFIELD")
        with pytest.raises(ValueError, match="Log level"):
            r.log_level(8)
        r.this_boot(g.BOOT_A)
        r.this_machine(uuid.UUID(g.MACHINE))
        assert list(r) == []  # the many-files journal has no _MACHINE_ID
    with Reader(path=journals.realistic_dir, fields=["_BOOT_ID"]) as r:
        r.this_boot(uuid.UUID(g.BOOT_B))
        got_b = list(r)
        assert got_b and all(e["_BOOT_ID"] == uuid.UUID(g.BOOT_B) for e in got_b)


def test_query_unique_and_enumerate_fields(journals: Journals) -> None:
    with Reader(path=journals.realistic_dir) as r:
        units = r.query_unique("_SYSTEMD_UNIT")
        pids = r.query_unique("PRIORITY")
        fields = r.enumerate_fields()
        r.add_match(PRIORITY=3)
        assert r.query_unique("PRIORITY") == pids  # matches are ignored (libsystemd's rule)
        with pytest.raises(ValueError, match="Invalid field name"):
            r.query_unique("bad name")
    want_units = subprocess.run(
        ["journalctl", f"--directory={journals.realistic_dir}", "-F", "_SYSTEMD_UNIT"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert units == set(want_units)
    assert all(isinstance(p, int) for p in pids)
    want_fields = subprocess.run(
        ["journalctl", f"--directory={journals.realistic_dir}", "--fields"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert fields == set(want_fields)


def test_get_and_get_all_of_the_current_entry(journals: Journals) -> None:
    with Reader(files=[journals.tricky]) as r:
        with pytest.raises(OSError) as ei:
            r._get_cursor()
        assert ei.value.errno == errno.EADDRNOTAVAIL
        r.get_next(6)  # "repeated"
        assert r._get("MESSAGE") == b"repeated"
        assert r._get("TAG") == b"a"
        with pytest.raises(KeyError):
            r._get("NOPE")
        assert r._get_all()["TAG"] == [b"a", b"b", b"\xff", b"c"]
        assert r._get_realtime() == g.T0 + 5 * 1000
        assert r._get_monotonic() == (5_000_000 + 5 * 1000, uuid.UUID(g.BOOT_A).bytes)
        assert r.get_usage() > 0 and r.data_threshold == 65536
        r.data_threshold = 0
        assert r.data_threshold == 0
        with pytest.raises(TypeError):
            r.data_threshold = "1"  # type: ignore[assignment]
        assert r.has_persistent_files() in (True, False) and r.has_runtime_files() in (True, False)


# -- errors -------------------------------------------------------------------------------------------


def test_open_errors(tmp_path: Path, journals: Journals) -> None:
    with pytest.raises(FileNotFoundError):
        Reader(path=tmp_path / "nonexistent")
    with pytest.raises(FileNotFoundError):
        Reader(files=[tmp_path / "nonexistent.journal"])
    with pytest.raises(ValueError, match="at least one"):
        Reader(files=[])
    with pytest.raises(TypeError, match="list of journal files"):
        Reader(files=str(journals.tricky))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="simultaneously"):
        Reader(path=tmp_path, files=[journals.tricky])
    with pytest.raises(ValueError, match="namespace"):
        Reader(path=tmp_path, namespace="foo")
    with pytest.raises(TypeError):
        Reader(flags="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Opening the journal failed"):
        Reader(flags=journal.OS_ROOT)
    with pytest.raises(OSError):
        Reader(0, path=-1)
    with pytest.raises(TypeError, match="mixes fds and paths"):
        Reader(files=[0, "x"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="NUL"):
        Reader(path="a\0b")


def _corrupt(src: Path, dst: Path, how: str) -> Path:
    data = bytearray(src.read_bytes())
    if how == "truncated":
        data = data[:200]
    elif how == "garbage":
        data = bytearray(b"not a journal file at all" * 100)
    elif how == "bad-header":
        data[0:8] = b"XXXXXXXX"
    elif how == "zeroed-tail":
        # keep the header, zero everything after the first 4 KiB: objects vanish
        used = len(data)
        data[4096:used] = bytes(used - 4096)
    dst.write_bytes(bytes(data))
    return dst


@pytest.mark.parametrize("how", ["truncated", "garbage", "bad-header"])
def test_unreadable_file_is_a_clear_error(tmp_path: Path, journals: Journals, how: str) -> None:
    bad = _corrupt(journals.tricky, tmp_path / "bad.journal", how)
    with pytest.raises(OSError) as ei:
        with Reader(files=[bad]) as r:
            list(r)
    assert str(bad) in str(ei.value) and "corrupted, truncated or not a journal file" in str(
        ei.value
    )
    assert ei.value.errno in (
        errno.EBADMSG,
        errno.ENODATA,
        errno.EPROTONOSUPPORT,
        errno.EINVAL,
        errno.EIO,
    )


def test_unreadable_files_in_a_directory_are_named(tmp_path: Path, journals: Journals) -> None:
    # libsystemd skips them silently; the Reader warns and lists them
    d = tmp_path / "mixed"
    d.mkdir()
    shutil.copy(journals.tricky, d / "good.journal")
    _corrupt(journals.tricky, d / "bad.journal", "garbage")
    _corrupt(journals.tricky, d / "trunc.journal", "truncated")
    with pytest.warns(journal.JournalFileWarning, match="2 journal file") as w:
        r = Reader(path=d)
    with r:
        assert str(d / "bad.journal") in str(w[0].message)
        assert sorted(f for f, _ in r.unreadable_files) == [
            str(d / "bad.journal"),
            str(d / "trunc.journal"),
        ]
        assert len(list(r)) == len(journals.tricky_entries)  # the good file is read
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with Reader(path=journals.many_dir) as r:
            assert r.unreadable_files == []


def test_damaged_entries_raise_and_reading_can_go_on(tmp_path: Path, journals: Journals) -> None:
    bad = _corrupt(journals.tricky, tmp_path / "damaged.journal", "zeroed-tail")
    got, errors = 0, 0
    try:
        r = Reader(files=[bad])
    except OSError as e:
        assert str(bad) in str(e)
        return
    with r:
        for _ in range(200):  # never an endless loop, never a crash
            try:
                e = r.get_next()
            except OSError as err:
                errors += 1
                assert str(bad) in str(err)
                continue
            if not e:
                break
            got += 1
    assert errors > 0 or got < len(journals.tricky_entries)


def test_closed_reader(journals: Journals) -> None:
    r = Reader(files=[journals.tricky])
    r.close()
    r.close()  # idempotent
    assert r.closed
    for call in (
        r.get_next,
        r._get_cursor,
        r.seek_head,
        r.fileno,
        lambda: r.add_match("A=1"),
        r.enumerate_fields,
    ):
        with pytest.raises(ClosedJournalError) as ei:
            call()
        assert isinstance(ei.value, OSError) and isinstance(ei.value, ValueError)
        assert ei.value.errno == errno.EINVAL
    with Reader(files=[journals.tricky]) as r2:
        pass
    assert r2.closed


# -- threads, GIL, fork, resources -----------------------------------------------------------------


def test_one_reader_shared_by_threads_never_loses_or_crashes(journals: Journals) -> None:
    r = Reader(path=journals.realistic_dir, fields=["_SOURCE_REALTIME_TIMESTAMP", "__CURSOR"])
    seen: list[list[str]] = [[] for _ in range(4)]
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            while True:
                batch = r.read_batch(7) if k % 2 else ([r.get_next()] if True else [])
                batch = [e for e in batch if e]
                if not batch:
                    return
                seen[k].extend(e["__CURSOR"] for e in batch)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    r.close()
    assert errors == []
    every = [c for s in seen for c in s]
    assert len(every) == journals.realistic_n
    assert len(set(every)) == journals.realistic_n


def test_close_while_other_threads_read(journals: Journals) -> None:
    for _ in range(20):
        r = Reader(path=journals.realistic_dir)
        stop = threading.Event()
        errors: list[BaseException] = []

        def reader(
            r: Reader = r, stop: threading.Event = stop, errors: list[BaseException] = errors
        ) -> None:
            try:
                while not stop.is_set():
                    if not r.read_batch(50):
                        r.seek_head()
            except ClosedJournalError:
                return
            except BaseException as e:  # pragma: no cover
                errors.append(e)

        ts = [threading.Thread(target=reader) for _ in range(3)]
        for t in ts:
            t.start()
        r.read_batch(10)
        r.close()
        stop.set()
        for t in ts:
            t.join(60)
        assert errors == []


def test_wait_releases_the_gil_and_close_wakes_it(journals: Journals) -> None:
    r = Reader(files=[journals.tricky])
    r.wait(0)  # the first call only sets the watch up
    result: list[Any] = []

    def waiter() -> None:
        try:
            result.append(r.wait())  # forever, until close()
        except ClosedJournalError as e:
            result.append(e)

    t = threading.Thread(target=waiter)
    t.start()
    # this thread runs Python while the other one waits: the GIL is free
    total = sum(i * i for i in range(200_000))
    assert total > 0 and t.is_alive() and result == []
    r.close()
    t.join(30)
    assert not t.is_alive()
    assert isinstance(result[0], ClosedJournalError)


def test_gil_policy_reads_the_same_and_shares_the_cpu(journals: Journals) -> None:
    with Reader(path=journals.realistic_dir) as r:
        hold = read_all(r)
    with Reader(path=journals.realistic_dir) as r:
        assert r.gil_hold_us == journal._journal.DEFAULT_GIL_HOLD_US
        r.gil_hold_us = 0  # release the GIL for every read
        assert read_all(r) == hold
        with pytest.raises(OverflowError):
            r.gil_hold_us = -1
    # next to a CPU-bound thread both make progress: the reads neither starve
    # it (holding the GIL) nor crawl (handing the GIL over on every entry)
    stop = threading.Event()
    spins = [0]

    def spin() -> None:
        while not stop.is_set():
            spins[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        with Reader(path=journals.realistic_dir) as r:
            for _ in range(3):
                r.seek_head()
                assert len(read_all(r)) == journals.realistic_n
                r.seek_head()
                assert sum(len(b) for b in r.iter_batches(256)) == journals.realistic_n
    finally:
        stop.set()
        t.join()
    assert spins[0] > 0


def test_wait_timeout_and_event_loop_primitives(journals: Journals) -> None:
    with Reader(files=[journals.tricky]) as r:
        assert r.wait(0) in (journal.NOP, journal.APPEND, journal.INVALIDATE)
        assert r.wait(0.01) == journal.NOP
        assert r.fileno() >= 0 and r.get_events() != 0
        assert r.reliable_fd() in (True, False)
        t = r.get_timeout()
        assert t is None or t > 0
        assert r.get_timeout_ms() >= -1
        assert r.process() == journal.NOP


def test_fork_child_gets_a_clear_error(journals: Journals) -> None:
    r = Reader(files=[journals.tricky])
    r.get_next()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            r.get_next()
        except ChildProcessError:
            code = 0
        except BaseException:
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert r.get_next()["MESSAGE"] == "multi\nline\nmessage"
    r.close()


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_no_fd_or_memory_leak(journals: Journals) -> None:
    for _ in range(20):
        Reader(path=journals.many_dir).close()
    gc.collect()
    before = _fds()
    for i in range(1000):
        r = Reader(path=journals.many_dir)
        if i % 3 == 0:
            r.fileno()
            r.wait(0)
        if i % 5 == 0:
            try:
                r._get_cursor()
            except OSError:
                pass
        del r  # not closed: freed by the collector
    gc.collect()
    assert _fds() == before

    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    for kw in ({}, {"lazy": True}):
        with Reader(path=journals.realistic_dir, **kw) as r:  # type: ignore[arg-type]
            for _ in range(2):
                r.seek_head()
                list(r)
            gc.collect()
            base = rss()
            for _ in range(5):
                r.seek_head()
                for e in r:
                    e.get("MESSAGE"), len(e), list(e.items())
                r.seek_head()
                r.read_batch(5000)
            gc.collect()
            assert rss() - base < 16 * 1024 * 1024


def test_exit_with_open_readers_prints_nothing(tmp_path: Path, journals: Journals) -> None:
    code = (
        "from pystemd.journal import Reader\n"
        f"a = Reader(path={str(journals.many_dir)!r}); a.get_next(); a.fileno()\n"
        f"b = Reader(files=[{str(journals.tricky)!r}]); it = iter(b); next(it)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert r.returncode == 0 and r.stderr == "" and r.stdout == ""


def test_subclass_overrides_take_the_python_path(journals: Journals) -> None:
    class Upper(Reader):
        def _convert_field(self, key: str, value: Any) -> Any:
            v = super()._convert_field(key, value)
            return v.upper() if isinstance(v, str) and key == "MESSAGE" else v

    class Skipper(Reader):
        def get_next(self, skip: int = 1) -> dict[str, Any]:
            e = super().get_next(skip)
            while e and e.get("PRIORITY") == 3:
                e = super().get_next(1)
            return e

    with Upper(files=[journals.tricky]) as r:
        assert r._faithful
        e = r.get_next()
        assert e["MESSAGE"] == "PLAIN" and e["PRIORITY"] == 6 and "__CURSOR" in e
    with Reader(files=[journals.tricky]) as r:
        assert not r._faithful
        want = [e for e in r if e.get("PRIORITY") != 3]
    with Skipper(files=[journals.tricky]) as r:
        got = list(r)
    assert got == want


def test_repr_and_module_surface() -> None:
    assert journal.Monotonic.__name__ == "Monotonic"
    assert set(journal.DEFAULT_CONVERTERS) >= {"MESSAGE_ID", "PRIORITY", "__CURSOR"}
    assert len(journal.DEFAULT_CONVERTERS) == 33
    assert journal.SYSTEM_ONLY == journal.SYSTEM == 4 and journal.LOCAL_ONLY == 1
    assert (journal.NOP, journal.APPEND, journal.INVALIDATE) == (0, 1, 2)
    assert journal.ALL_NAMESPACES == 32 and journal.INCLUDE_DEFAULT_NAMESPACE == 64
    assert shutil.which("journalctl")
