"""The floor: raw sd-bus loops in C (bench/cfloor/floor.c), timed inside C.

Loaded in the bench process itself (LocalRunner). ctypes only starts each
loop; the loop and its clock run in C, so ctypes costs are not in the figures.
cfg: floor_so (the compiled floor.c), address, peer (bool), dest,
manager_path, unit_path, window.
"""

import ctypes

META = {"what": "raw C sd-bus (sd_bus_call_method + full reply walk)"}


class Timing(ctypes.Structure):
    _fields_ = [
        ("wall", ctypes.c_double),
        ("cpu", ctypes.c_double),
        ("failed", ctypes.c_long),
        ("ok", ctypes.c_long),
    ]


_lib = None
_bus = None


def _check(r, what):
    if r < 0:
        import os

        raise OSError(-r, f"{what}: {os.strerror(-r)}")


def setup(cfg):
    global _lib, _bus
    lib = ctypes.CDLL(cfg["floor_so"])
    lib.floor_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p)]
    lib.floor_close.argtypes = [ctypes.c_void_p]
    lib.floor_close.restype = None
    s = ctypes.c_char_p
    lib.floor_get.argtypes = [ctypes.c_void_p, s, s, s, s, ctypes.c_long, ctypes.POINTER(Timing)]
    lib.floor_call.argtypes = [ctypes.c_void_p, s, s, s, s, s, ctypes.c_long, ctypes.POINTER(Timing)]
    lib.floor_get_pipelined.argtypes = [
        ctypes.c_void_p, s, s, s, s, ctypes.c_long, ctypes.c_long, ctypes.POINTER(Timing),
    ]
    bus = ctypes.c_void_p()
    _check(lib.floor_open(cfg["address"].encode(), int(bool(cfg.get("peer"))), ctypes.byref(bus)),
           "floor_open " + cfg["address"])
    _lib, _bus = lib, bus
    dest = cfg["dest"].encode() if cfg.get("dest") else None
    mpath = cfg["manager_path"].encode()
    upath = cfg["unit_path"].encode()
    S1 = b"org.freedesktop.systemd1"
    window = int(cfg.get("window", 128))

    def result(t):
        return {"wall": t.wall, "cpu": t.cpu, "failed": t.failed, "ok": t.ok}

    def get(path, iface, prop):
        def run(n):
            t = Timing()
            _check(lib.floor_get(bus, dest, path, iface, prop, n, ctypes.byref(t)), "floor_get")
            return result(t)

        return run

    def call(path, iface, member, arg):
        def run(n):
            t = Timing()
            _check(lib.floor_call(bus, dest, path, iface, member, arg, n, ctypes.byref(t)),
                   "floor_call")
            return result(t)

        return run

    def pipelined(n):
        t = Timing()
        _check(lib.floor_get_pipelined(bus, dest, mpath, S1 + b".Manager", b"Version", n, window,
                                       ctypes.byref(t)), "floor_get_pipelined")
        return result(t)

    get_version = get(mpath, S1 + b".Manager", b"Version")

    def run_for(seconds):
        # a short loop to learn the current per-call time, then one loop for the rest
        first = get_version(20)
        per = max(first["wall"] / 20, 1e-6)
        rest = max(1, int((seconds - first["wall"]) / per))
        get_version(rest)
        return 20 + rest

    return {
        "get_version": get_version,
        "busy_get": lambda n: helpers.busy_batch(run_for, n / 1000),
        "get_active": get(upath, S1 + b".Unit", b"ActiveState"),
        "getall_unit": call(upath, b"org.freedesktop.DBus.Properties", b"GetAll", S1 + b".Unit"),
        "list_units": call(mpath, S1 + b".Manager", b"ListUnits", None),
        "pipelined_get": pipelined,
    }


def teardown():
    global _bus
    if _bus is not None:
        _lib.floor_close(_bus)
        _bus = None
