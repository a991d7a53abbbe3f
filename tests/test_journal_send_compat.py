"""The same calls through python-systemd 235 and through pystemd make the same entries.

One script, run three times into the sandbox's journald: by python-systemd 235
(its own venv, ``python -I``), by the drop-in flavour (``pystemd._writer._compat_*``,
what ``systemd.journal`` exports) and by pystemd's own flavour. Each call sits
on the same line of the same file, so even CODE_FILE/CODE_LINE/CODE_FUNC must
match. Entries are read back with ``journalctl -o export`` and compared field
for field; only journald's trusted fields (``_PID``, timestamps, ...) and the
documented EXCEPTION_INFO fix may differ.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import pytest
from test_journal_send import (
    PYSYSTEMD,
    Entry,
    new_run,
    one,
    read_entries,
    run_host,
    user_fields,
    write_script,
)

SCRIPT = """
import logging, sys, uuid
impl, run = sys.argv[1], sys.argv[2]
if impl == "python-systemd":
    from systemd import journal as J
    send, sendv, JournalHandler = J.send, J.sendv, J.JournalHandler
elif impl == "drop-in":
    from pystemd import _writer as J
    send, sendv, JournalHandler = J._compat_send, J._compat_sendv, J._CompatJournalHandler
else:
    from pystemd import _writer as J
    send, sendv, JournalHandler = J.send, J.sendv, J.JournalHandler

def case(n, **kw):
    return dict(TEST_RUN=run, TEST_IMPL=impl, TEST_CASE=str(n), SYSLOG_IDENTIFIER="jwcompat", **kw)

def plain():
    send("plain message", **case(1))

plain()
send("with id", MESSAGE_ID=uuid.UUID("0123456789abcdef0123456789abcdef"), PRIORITY=3, **case(2))
send("binary \\u2603", BIN=b"\\x00\\x01\\xff\\nline2", NL="a\\nb", INT=42, LIST=[1, 2],
     UNI="h\\u00e9llo", EMPTY="", **case(3))
send("explicit line only", CODE_LINE=7, **case(4))
send("explicit all", CODE_FILE="f.py", CODE_LINE=1, CODE_FUNC="fn", MESSAGE_ID="feedface" * 4, **case(5))
sendv("MESSAGE=sendv", "TEST_RUN=" + run, "TEST_IMPL=" + impl, "TEST_CASE=6",
      "SYSLOG_IDENTIFIER=jwcompat", b"BIN=\\x00\\xfe", "REPEATED=1", "REPEATED=2")
send("large", BIG=bytes(range(256)) * 8192, **case(7))
if impl != "pystemd":  # pystemd's own flavour refuses names journald would drop
    send("invalid names", lower="x", _UNDER="y", **case(8))

log = logging.getLogger("jwcompat.logger")
log.propagate = False
log.setLevel(logging.DEBUG)
log.addHandler(JournalHandler(SYSLOG_IDENTIFIER="jwcompat", EXTRA_HANDLER_FIELD="hval",
                              TEST_RUN=run, TEST_IMPL=impl))

def logs():
    log.info("plain info %s %d", "arg1", 42, extra={"TEST_CASE": "9"})
    log.warning("with extra", extra={"TEST_CASE": "10", "CUSTOM": "c1", "NUM": 7,
                                     "MESSAGE_ID": uuid.UUID(int=10)})
    try:
        1 / 0
    except ZeroDivisionError:
        log.exception("boom", extra={"TEST_CASE": "11"})
    log.debug("lowercase extra", extra={"TEST_CASE": "12", "request_id": "r1"})
    log.critical("no args", extra={"TEST_CASE": "13"})

logs()
"""

CASES = [str(i) for i in range(1, 14)]
# what may legitimately differ besides journald's trusted "_" fields:
# EXCEPTION_INFO is str(exc_info) in python-systemd ("(<class ...>, ..., <traceback
# object at 0x...>)"), "Type: message" in pystemd (docs/journal-writing.md, quirk 7).
MAY_DIFFER = {"EXCEPTION_INFO", "TEST_IMPL"}


def _fields(e: Entry) -> Counter[tuple[str, bytes]]:
    return Counter((k, v) for k, vs in user_fields(e).items() if k not in MAY_DIFFER for v in vs)


@pytest.fixture(scope="module")
def entries(systemd_sandbox: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not os.access(PYSYSTEMD, os.X_OK):
        from pystemd.testing.pytest_plugin import unavailable

        unavailable(f"python-systemd's venv is missing ({PYSYSTEMD}); run ci/peer-venvs.sh")
    tmp = tmp_path_factory.mktemp("compat")
    script = write_script(tmp, SCRIPT, name="compat_calls.py")
    run = new_run()
    for impl, python in (
        ("python-systemd", PYSYSTEMD),
        ("drop-in", None),
        ("pystemd", None),
    ):
        if python is None:
            run_host(systemd_sandbox, script, impl, run)
        else:
            run_host(systemd_sandbox, script, impl, run, python=python)
    want = 13 + 13 + 11
    got = read_entries(systemd_sandbox.journal_dir, f"TEST_RUN={run}", want)
    by: dict[str, dict[str, Entry]] = {}
    for e in got:
        by.setdefault(one(e, "TEST_IMPL").decode(), {})[one(e, "TEST_CASE").decode()] = e
    return {"by": by, "script": script}


@pytest.mark.sandbox
@pytest.mark.parametrize("case", CASES)
def test_drop_in_matches_python_systemd(entries: dict[str, Any], case: str) -> None:
    theirs = entries["by"]["python-systemd"]
    ours = entries["by"]["drop-in"]
    assert case in theirs and case in ours
    assert _fields(ours[case]) == _fields(theirs[case])
    assert one(ours[case], "_TRANSPORT") == one(theirs[case], "_TRANSPORT") == b"journal"


@pytest.mark.sandbox
@pytest.mark.parametrize("case", [c for c in CASES if c not in ("8", "12")])
def test_pystemd_flavour_matches_python_systemd(entries: dict[str, Any], case: str) -> None:
    theirs = entries["by"]["python-systemd"][case]
    ours = entries["by"]["pystemd"][case]
    assert _fields(ours) == _fields(theirs)


@pytest.mark.sandbox
def test_what_the_comparison_covered(entries: dict[str, Any]) -> None:
    theirs = entries["by"]["python-systemd"]
    script = str(entries["script"]).encode()
    # the comparison is not vacuous: location, binary, large and handler fields are there
    assert one(theirs["1"], "CODE_FILE") == script and one(theirs["1"], "CODE_FUNC") == b"plain"
    assert one(theirs["3"], "BIN") == b"\x00\x01\xff\nline2"
    assert len(one(theirs["7"], "BIG")) == 256 * 8192
    assert sorted(theirs["6"]["REPEATED"]) == [b"1", b"2"]
    assert one(theirs["9"], "CODE_ARGS") == b"('arg1', 42)"
    assert one(theirs["9"], "EXTRA_HANDLER_FIELD") == b"hval"
    assert one(theirs["10"], "MESSAGE_ID") == b"0000000000000000000000000000000a"
    # journald drops invalid names for both (ours warned about them on stderr)
    assert "lower" not in theirs["8"] and "_UNDER" not in theirs["8"]
    # the documented difference
    assert one(entries["by"]["drop-in"]["11"], "EXCEPTION_INFO") == (
        b"ZeroDivisionError: division by zero"
    )
    assert one(theirs["11"], "EXCEPTION_INFO").startswith(b"(<class 'ZeroDivisionError'>")


def test_the_modules_export_the_right_flavour() -> None:
    # not sandbox-bound, but kept next to the comparison it relies on
    import pystemd.journal as pj
    import systemd.journal as sj
    from pystemd import _writer

    assert (sj.send, sj.sendv, sj.stream, sj.JournalHandler) == (
        _writer._compat_send, _writer._compat_sendv, _writer._compat_stream,
        _writer._CompatJournalHandler,
    )  # fmt: skip
    assert sj.stream_fd is _writer.stream_fd and sj._make_line is _writer._make_line
    assert sj._valid_field_name is _writer._valid_field_name
    assert sj._IDENT_CHARACTER is _writer._IDENT_CHARACTER
    assert not hasattr(sj, "log")  # python-systemd has none; `import *` must not shadow a `log`
    assert (pj.send, pj.sendv, pj.stream, pj.stream_fd, pj.JournalHandler, pj.log) == (
        _writer.send, _writer.sendv, _writer.stream, _writer.stream_fd,
        _writer.JournalHandler, _writer.log,
    )  # fmt: skip
    assert sj.JournalHandler.__name__ == "JournalHandler" and sj.send.__name__ == "send"
