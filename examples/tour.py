"""A short tour of pystemd, run by the README's first command (ci/demo).

It talks to this machine's systemd when there is one on the system bus, and
otherwise boots a throwaway systemd in a sandbox (pystemd.testing) and talks
to that. Steps: the manager's version and state, the state of a few units,
a transient unit started and waited for, and that unit's journal lines.

    python examples/tour.py [--sandbox]     # --sandbox: use a sandbox even if the host has systemd
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import ExitStack
from typing import Any, Optional

from pystemd.bus import Bus, Variant
from pystemd.errors import NoSuchJob

S1 = "org.freedesktop.systemd1"
S1_PATH = "/org/freedesktop/systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"
UNIT = "org.freedesktop.systemd1.Unit"
SERVICE = "org.freedesktop.systemd1.Service"


def host_bus() -> Optional[Bus]:
    """The host's system bus, if a systemd answers on it."""
    try:
        bus = Bus()
    except OSError:
        return None
    try:
        bus.get_property(S1, S1_PATH, MANAGER, "SystemState", timeout=2)
    except Exception:
        bus.close()
        return None
    return bus


def ms(t0: float) -> str:
    return f"{(time.perf_counter() - t0) * 1e3:.2f} ms"


def main(argv: list[str]) -> int:
    with ExitStack() as stack:
        bus = None if "--sandbox" in argv else host_bus()
        journal_dir: Optional[str] = None
        if bus is not None:
            where = "this machine's systemd"
        else:
            from pystemd.testing import Sandbox, SandboxError

            print("No systemd answers on this machine's system bus: booting a sandboxed one...")
            t0 = time.perf_counter()
            try:
                sb = stack.enter_context(Sandbox())
            except SandboxError as e:
                print(f"tour: {e}", file=sys.stderr)
                return 2
            print(f"  sandbox {sb.name} up in {ms(t0)} (systemd-nspawn, volatile root)")
            bus = Bus(sb.bus_address)
            journal_dir = str(sb.journal_dir)
            where = f"the sandboxed systemd at {sb.bus_address}"
        stack.callback(bus.close)

        print(f"\n== The manager ({where})")
        t0 = time.perf_counter()
        mgr = bus.get_all_properties(S1, S1_PATH, MANAGER)
        print(f"  GetAll(Manager): {len(mgr)} properties in {ms(t0)}")
        print(f"  Version       {mgr['Version']}")
        print(f"  SystemState   {mgr['SystemState']}")
        print(
            f"  Architecture  {mgr['Architecture']}   Virtualization {mgr['Virtualization'] or '-'}"
        )
        t0 = time.perf_counter()
        (units,) = bus.call(S1, S1_PATH, MANAGER, "ListUnits")
        active = sum(1 for u in units if u[3] == "active")
        print(f"  ListUnits: {len(units)} units ({active} active) in {ms(t0)}")

        print("\n== A few units")
        for name in (
            "systemd-journald.service",
            "dbus.service",
            "systemd-logind.service",
            "basic.target",
        ):
            t0 = time.perf_counter()
            try:
                (path,) = bus.call(S1, S1_PATH, MANAGER, "LoadUnit", "s", [name])
                props = bus.get_all_properties(S1, path, UNIT)
            except LookupError as e:
                print(f"  {name:28} {e}")
                continue
            extra = ""
            if name.endswith(".service"):
                extra = f" MainPID={bus.get_property(S1, path, SERVICE, 'MainPID')}"
            print(f"  {name:28} {props['ActiveState']}/{props['SubState']}{extra}  ({ms(t0)})")

        print("\n== A transient unit")
        unit = f"pystemd-tour-{os.getpid()}-{int(time.time())}.service"
        script = "echo 'hello from a pystemd transient unit'; echo \"running as $(id -un) in $(pwd)\"; echo done"
        props_in: list[tuple[str, Any]] = [
            ("Description", Variant("s", "pystemd tour")),
            ("ExecStart", Variant("a(sasb)", [("/bin/sh", ["/bin/sh", "-c", script], False)])),
            ("Type", Variant("s", "oneshot")),
            ("RemainAfterExit", Variant("b", True)),
        ]
        t0 = time.perf_counter()
        (job,) = bus.call(
            S1,
            S1_PATH,
            MANAGER,
            "StartTransientUnit",
            "ssa(sv)a(sa(sv))",
            (unit, "replace", props_in, []),
        )
        print(f"  StartTransientUnit({unit}) -> {job}  ({ms(t0)})")
        # Wait for the start job to finish (it goes away when done).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                bus.get_property(S1, job, "org.freedesktop.systemd1.Job", "State")
            except (NoSuchJob, LookupError):
                break
            time.sleep(0.01)
        (path,) = bus.call(S1, S1_PATH, MANAGER, "GetUnit", "s", [unit])
        u = bus.get_all_properties(S1, path, UNIT)
        s = bus.get_all_properties(S1, path, SERVICE)
        print(f"  finished after {ms(t0)}: {u['ActiveState']}/{u['SubState']}, Result={s['Result']}, "
              f"ExecMainStatus={s['ExecMainStatus']}")  # fmt: skip
        bus.call(S1, S1_PATH, MANAGER, "StopUnit", "ss", [unit, "replace"])

        print("\n== Its journal lines")
        from pystemd.journal import Reader

        with Reader(path=journal_dir) if journal_dir else Reader() as r:
            r.add_match(_SYSTEMD_UNIT=unit)  # what the unit wrote
            r.add_disjunction()
            r.add_match(UNIT=unit)  # what systemd wrote about it
            for e in r.follow(idle_timeout=10):  # from the first entry, until "done"
                when = e["__REALTIME_TIMESTAMP"].strftime("%b %d %H:%M:%S.%f")
                ident = e.get("SYSLOG_IDENTIFIER") or e.get("_COMM", "?")
                print(f"  {when} {ident}[{e.get('_PID', '-')}]: {e.get('MESSAGE')}")
                if e.get("MESSAGE") == "done":
                    break
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
