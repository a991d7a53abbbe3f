"""Drive sandboxes from a shell.

    python -m pystemd.testing up [--name NAME] [--unit FILE ...]   start one, print its env
    python -m pystemd.testing status                                list sandboxes
    python -m pystemd.testing down NAME | --all                     stop and clean up
    python -m pystemd.testing run NAME -- CMD ...                   run CMD inside one

``up`` prints shell assignments (``eval "$(python -m pystemd.testing up)"``
sets DBUS_SYSTEM_BUS_ADDRESS and PYSTEMD_SANDBOX). The sandbox keeps running
after the command exits; ``down`` stops it.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from pystemd.testing import (
    _LIVE,
    Sandbox,
    SandboxError,
    _adopt,
    list_sandboxes,
    stop_all,
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m pystemd.testing",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start a sandbox and leave it running")
    up.add_argument("--name")
    up.add_argument("--timeout", type=float, default=30.0)
    up.add_argument("--unit", action="append", default=[], help="unit file to install before boot")
    sub.add_parser("status", help="list sandboxes")
    down = sub.add_parser("down", help="stop sandboxes")
    down.add_argument("name", nargs="?")
    down.add_argument("--all", action="store_true")
    run = sub.add_parser("run", help="run a command inside a sandbox")
    run.add_argument("name")
    run.add_argument("argv", nargs=argparse.REMAINDER)
    a = ap.parse_args(argv)

    try:
        if a.cmd == "up":
            units = {Path(u).name: Path(u).read_text() for u in a.unit}
            sb = Sandbox(a.name, timeout=a.timeout, units=units).start()
            _LIVE.pop(sb.name, None)  # outlive this process
            print(f"PYSTEMD_SANDBOX={shlex.quote(sb.name)}")
            print(f"DBUS_SYSTEM_BUS_ADDRESS={shlex.quote(sb.bus_address)}")
            print(f"PYSTEMD_SANDBOX_JOURNAL={shlex.quote(str(sb.journal_dir))}")
            print("export PYSTEMD_SANDBOX DBUS_SYSTEM_BUS_ADDRESS PYSTEMD_SANDBOX_JOURNAL")
            return 0
        if a.cmd == "status":
            boxes = list_sandboxes()
            if not boxes:
                print("no sandboxes")
            for st in boxes:
                state = "running" if st["running"] else "dead (run: down --all)"
                print(f"{st['name']}\t{state}\t{st['bus_address']}")
            return 0
        if a.cmd == "down":
            if a.all:
                names = stop_all()
            elif a.name:
                found = [st for st in list_sandboxes() if st["name"] == a.name]
                if not found:
                    print(f"no sandbox named {a.name!r}", file=sys.stderr)
                    return 1
                _adopt(found[0]).stop()
                names = [a.name]
            else:
                ap.error("down needs a NAME or --all")
            print("stopped: " + (", ".join(names) or "nothing"))
            return 0
        if a.cmd == "run":
            found = [st for st in list_sandboxes() if st["name"] == a.name and st["running"]]
            if not found:
                print(f"no running sandbox named {a.name!r}", file=sys.stderr)
                return 1
            argv_ = a.argv[1:] if a.argv[:1] == ["--"] else a.argv
            r = _adopt(found[0]).run(argv_, check=False, capture_output=False)
            return r.returncode
    except SandboxError as e:
        print(f"pystemd.testing: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
