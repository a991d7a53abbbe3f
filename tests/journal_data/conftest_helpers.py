"""Shared pieces of the journal reading tests: journal files made once per session."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import exportgen as g

Fields = g.Fields


@dataclass
class Journals:
    """Journal files written by systemd-journal-remote for this test session."""

    root: Path
    tricky: Path  # one file: binary, repeated, non-UTF-8, large, odd values
    realistic_dir: Path  # ~25 realistic fields per entry, two boots
    many_dir: Path  # 12 files whose entries interleave in time
    tricky_entries: list[Fields]
    realistic_n: int
    many_n: int


def make_journals(root: Path, realistic_n: int = 3000) -> Journals:
    tricky_entries = g.tricky()
    tricky = g.build_journal(tricky_entries, root / "tricky" / "tricky.journal")[0]
    g.build_journal(g.realistic(realistic_n, seed=1), root / "realistic" / "realistic.journal")
    many_dir = root / "many"
    rnd = random.Random(3)
    n_files, per_file = 12, 40
    for k in range(n_files):
        entries = []
        for i in range(per_file):
            f = g.header(i * n_files + k, step=1000)
            f += [
                ("MESSAGE", f"file {k} entry {i}".encode()),
                ("FILE_NO", str(k).encode()),
                ("SEQ", str(i * n_files + k).encode()),
                ("PRIORITY", str(rnd.randrange(8)).encode()),
                ("SYSLOG_IDENTIFIER", f"ident{k % 3}".encode()),
            ]
            entries.append(f)
        g.build_journal(entries, many_dir / f"part{k:02d}.journal")
    return Journals(
        root=root,
        tricky=tricky,
        realistic_dir=root / "realistic",
        many_dir=many_dir,
        tricky_entries=tricky_entries,
        realistic_n=realistic_n,
        many_n=n_files * per_file,
    )


def grouped(fields: Iterable[tuple[str, bytes]]) -> dict[str, list[bytes]]:
    """Field list -> {name: [values in order]} (dict order: first occurrence)."""
    out: dict[str, list[bytes]] = {}
    for k, v in fields:
        out.setdefault(k, []).append(v)
    return out


def raw_grouped(entry: dict[str, Any]) -> dict[str, list[Any]]:
    """A raw Reader entry -> {name: [values]} (pseudo-fields left out)."""
    out: dict[str, list[Any]] = {}
    for k, v in entry.items():
        if k.startswith("__"):
            continue
        out[k] = list(v) if isinstance(v, list) else [v]
    return out


def compare_with_export(entries: list[dict[str, Any]], export: list[Fields]) -> None:
    """Assert raw Reader entries equal journalctl -o export's, field for field, in order."""
    assert len(entries) == len(export)
    for i, (ours, theirs) in enumerate(zip(entries, export)):
        t = grouped(theirs)
        assert ours["__CURSOR"] == t.pop("__CURSOR")[0].decode(), i
        assert ours["__REALTIME_TIMESTAMP"] == int(t.pop("__REALTIME_TIMESTAMP")[0]), i
        mono = ours["__MONOTONIC_TIMESTAMP"]
        assert mono.timestamp == int(t.pop("__MONOTONIC_TIMESTAMP")[0]), i
        boot = t.pop("_BOOT_ID")  # journalctl prints the entry header's boot id
        assert mono.bootid.hex().encode() == boot[0], i
        o = raw_grouped(ours)
        if "_BOOT_ID" in o:
            assert o.pop("_BOOT_ID") == boot, i
        assert list(o) == list(t), (i, list(o), list(t))
        assert o == t, i
