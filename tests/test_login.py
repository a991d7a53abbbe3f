"""pystemd.login and the systemd.login drop-in, inside the sandbox where logind runs.

sd-login reads logind's state under /run/systemd/{seats,sessions,users,machines},
so everything runs inside the container (``sb.run``). Sessions are created
for real through logind's ``CreateSession`` (what pam_systemd calls), by child
processes that hold the session's fifo open; the lists are compared with
``loginctl`` and with python-systemd 235 run at the same moment, and the
Monitor has to wake up (blocking, and from asyncio) when they change.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from pystemd import login

REPO = Path(__file__).resolve().parent.parent
PYSYSTEMD = REPO / ".venv-pysystemd" / "bin" / "python"

SCRIPT = r"""
import asyncio, json, os, select, subprocess, sys, time
from pystemd import login
import systemd.login as dropin

CREATE = '''
import sys
from pystemd.bus import Bus
L = "org.freedesktop.login1"
with Bus() as bus:
    r = bus.call(L, "/org/freedesktop/login1", L + ".Manager", "CreateSession", "uusssssussbssa(sv)",
                 (0, 0, "pystemd-test", "unspecified", "background", "", "", 0, "", "", False, "", "", []))
    fifo = r[3]           # the session lives while this fd is open
    print(r[0], flush=True)
    sys.stdin.read()      # until the test closes our stdin
'''
PEER = '''
import json
from systemd import login
print(json.dumps([sorted(login.seats()), sorted(login.sessions()), sorted(login.uids()),
                  sorted(login.machine_names())]))
'''
PYSYSTEMD = sys.argv[1]
out = {}

def snapshot():
    return [sorted(login.seats()), sorted(login.sessions()), sorted(login.uids()),
            sorted(login.machine_names())]

def peer():
    cp = subprocess.run([PYSYSTEMD, "-I", "-c", PEER], capture_output=True, text=True, cwd="/")
    return json.loads(cp.stdout) if cp.returncode == 0 else cp.stderr

def loginctl(*what):
    cp = subprocess.run(["loginctl", *what, "--no-legend"], capture_output=True, text=True)
    return sorted(line.split()[0] for line in cp.stdout.splitlines() if line.strip())

def start_session():
    p = subprocess.Popen([sys.executable, "-c", CREATE], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    return p, p.stdout.readline().strip()

def wait_until(pred, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False

out["before"] = snapshot()
out["types"] = [type(x).__name__ for x in (login.seats(), login.uids())]

mon = login.Monitor("session")
out["api"] = {"fileno": mon.fileno() >= 0, "events": mon.get_events(), "timeout": mon.get_timeout(),
              "timeout_ms": mon.get_timeout_ms(), "closed": mon.closed, "category": mon.category,
              "repr": repr(mon).startswith("<Monitor category='session' fd=")}

# 1. blocking wait wakes up for a new session; the lists agree with loginctl and python-systemd
p1, s1 = start_session()
out["woke_blocking"] = mon.wait(timeout=10)
wait_until(lambda: s1 in login.sessions())
out["session1"] = s1
out["during"] = snapshot()
out["during_peer"] = peer()
out["during_loginctl"] = [loginctl("list-seats"), loginctl("list-sessions"),
                          [int(u) for u in loginctl("list-users")]]
out["dropin_same"] = (dropin.sessions(), dropin.seats(), dropin.uids()) == (
    login.sessions(), login.seats(), login.uids())

# 2. asyncio: wait_async and changes() wake up for the next session
async def with_asyncio():
    res = {}
    amon = login.Monitor("session")
    p2, s2 = start_session()
    res["woke_async"] = await amon.wait_async(timeout=10)
    p2.stdin.close(); p2.wait()
    it = amon.changes()
    res["changes_next"] = await asyncio.wait_for(it.__anext__(), 10) is None
    await it.aclose()
    quiet = login.Monitor("machine")        # no machines come and go here
    res["quiet_async"] = await quiet.wait_async(timeout=0.2)
    res["quiet_blocking"] = quiet.wait(timeout=0.2)
    # close() while changes() waits: the iteration ends
    async def consume():
        return [x async for x in quiet.changes()]
    task = asyncio.ensure_future(consume())
    await asyncio.sleep(0.05)
    quiet.close()
    # (the loop still watches the closed fd: wake the waiter the way a reader would)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        res["cancelled_cleanly"] = True
    amon.close()
    res["s2"] = s2
    return res
out.update(asyncio.run(with_asyncio()))

# 3. the session ends: the monitor wakes again and the lists go back
p1.stdin.close(); p1.wait()
out["woke_on_end"] = mon.wait(timeout=10)
out["gone"] = wait_until(lambda: s1 not in login.sessions())
out["after"] = snapshot()

# 4. closing
mon.close(); mon.close()
try:
    mon.fileno()
except OSError as e:
    out["closed_errno"] = e.errno
try:
    mon.flush()
except OSError as e:
    out["closed_flush_errno"] = e.errno
with login.Monitor() as m2:
    pass
out["ctx_closed"] = m2.closed

class Sub(login.Monitor):
    def __init__(self, extra):
        super().__init__("uid")
        self.extra = extra
s = Sub(5)
out["subclass"] = [s.extra, s.category, s.fileno() >= 0]
s.close()
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def inside(systemd_sandbox: Any) -> dict[str, Any]:
    if not os.access(PYSYSTEMD, os.X_OK):
        from pystemd.testing.pytest_plugin import unavailable

        unavailable(f"python-systemd's venv is missing ({PYSYSTEMD}); run ci/peer-venvs.sh")
    cp = systemd_sandbox.run(
        [sys.executable, "-c", SCRIPT, str(PYSYSTEMD)], check=False, timeout=120
    )
    assert cp.returncode == 0, cp.stdout + cp.stderr
    out: dict[str, Any] = json.loads(cp.stdout)
    return out


pytestmark = pytest.mark.sandbox


def test_lists_match_loginctl_and_python_systemd(inside: dict[str, Any]) -> None:
    seats, sessions, uids, machines = inside["during"]
    assert seats == ["seat0"]
    assert inside["session1"] in sessions
    assert uids == [0]
    assert machines == []
    assert inside["during_peer"] == inside["during"]
    assert inside["during_loginctl"] == [seats, sessions, uids]
    assert inside["types"] == ["list", "list"]
    assert inside["dropin_same"]


def test_monitor_wakes_up_for_changes(inside: dict[str, Any]) -> None:
    assert inside["woke_blocking"] is True
    assert inside["woke_async"] is True
    assert inside["changes_next"] is True
    assert inside["woke_on_end"] is True and inside["gone"] is True
    assert inside["session1"] not in inside["after"][1]
    assert inside["quiet_async"] is False and inside["quiet_blocking"] is False


def test_monitor_api(inside: dict[str, Any]) -> None:
    assert inside["api"] == {
        "fileno": True, "events": 1, "timeout": None, "timeout_ms": -1, "closed": False,
        "category": "session", "repr": True,
    }  # fmt: skip
    assert inside["closed_errno"] == 22 and inside["closed_flush_errno"] == 22
    assert inside["ctx_closed"] is True
    assert inside["subclass"] == [5, "uid", True]
    assert inside["cancelled_cleanly"] is True


@pytest.mark.parametrize("bad", ["bogus", "", "Seat", 5])
def test_invalid_category(bad: Any) -> None:
    # checked before libsystemd is asked: no logind needed
    with pytest.raises((ValueError, TypeError)) as ei:
        login.Monitor(bad)
    if isinstance(bad, str):
        assert ei.type is ValueError and "Invalid category" in str(ei.value)


def test_drop_in_module() -> None:
    import systemd.login as dropin

    assert dropin.__version__ == "235"
    assert dropin.Monitor is login.Monitor
    assert {"seats", "sessions", "machine_names", "uids", "Monitor"} <= set(dir(dropin))
