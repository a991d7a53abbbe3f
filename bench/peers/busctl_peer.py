"""busctl in a subprocess per call (the shell-script way). Timed from Python
around subprocess.run, so process start-up is part of every call."""

import subprocess

META = {"version": subprocess.run(["busctl", "--version"], capture_output=True, text=True).stdout.split("\n")[0]}
S1 = "org.freedesktop.systemd1"


def setup(cfg):
    base = ["busctl", "--address=" + cfg["address"]]
    dest, mpath, upath = cfg["dest"], cfg["manager_path"], cfg["unit_path"]

    def cmd(*args):
        argv = [*base, *args]

        def run(n):
            for _ in range(n):
                subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)

        return run

    return {
        "get_version": cmd("get-property", dest, mpath, S1 + ".Manager", "Version"),
        "get_active": cmd("get-property", dest, upath, S1 + ".Unit", "ActiveState"),
        "getall_unit": cmd("call", dest, upath, "org.freedesktop.DBus.Properties", "GetAll", "s", S1 + ".Unit"),
        "list_units": cmd("call", dest, mpath, S1 + ".Manager", "ListUnits"),
    }
