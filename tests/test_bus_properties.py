"""Properties: Get, GetAll (all, or only named ones), Set.

Checked against busctl's JSON output (an independent sd-bus client with its
own formatting) on the sandboxed systemd, and against the dbus-fast echo
service for Set.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from peers import ECHO_IFACE, ECHO_NAME, ECHO_PATH, EchoPeer

from pystemd.bus import KEEP_VARIANTS, Bus, Variant, split_signature
from pystemd.errors import PropertyReadOnly, UnknownProperty

S1, S1_PATH = "org.freedesktop.systemd1", "/org/freedesktop/systemd1"
MANAGER = S1 + ".Manager"
DBUS_UNIT = "/org/freedesktop/systemd1/unit/dbus_2eservice"
E = (ECHO_NAME, ECHO_PATH, ECHO_IFACE)


def busctl_json(sandbox, *args: str) -> Any:
    out = subprocess.run(["busctl", "--system", "--json=short", *args], env=sandbox.env(),
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def as_busctl(sig: str, value: Any) -> Any:
    """Our value (read with KEEP_VARIANTS) in busctl's JSON shape."""
    t = sig[0]
    if t == "v":
        return {"type": value.signature, "data": as_busctl(value.signature, value.value)}
    if t == "a" and sig[1] == "{":
        _k, v = split_signature(sig[2:-1])
        return {str(kk): as_busctl(v, vv) for kk, vv in value.items()}
    if sig == "ay":
        return list(value)
    if t == "a":
        return [as_busctl(sig[1:], x) for x in value]
    if t == "(":
        return [as_busctl(p, x) for p, x in zip(split_signature(sig[1:-1]), value)]
    return value


def busctl_getall(sandbox, path: str, iface: str) -> dict[str, Any]:
    args = ("call", S1, path, "org.freedesktop.DBus.Properties", "GetAll", "s", iface)
    (a,) = busctl_json(sandbox, *args)
    return dict(a["data"][0])


@pytest.mark.parametrize(
    "path,iface",
    [(DBUS_UNIT, S1 + ".Unit"), (DBUS_UNIT, S1 + ".Service"), (S1_PATH, MANAGER)],
)
def test_getall_matches_busctl(sandbox_bus, systemd_sandbox, path, iface) -> None:
    # busctl before and after ours: compare the properties that did not change meanwhile
    before = busctl_getall(systemd_sandbox, path, iface)
    ours = sandbox_bus.get_all_properties(S1, path, iface, flags=KEEP_VARIANTS)
    after = busctl_getall(systemd_sandbox, path, iface)
    theirs = {k: v for k, v in before.items() if after.get(k) == v}
    assert len(theirs) > 20
    ours_json = json.loads(json.dumps(as_busctl("a{sv}", ours)))
    assert set(ours_json) == set(before)
    for name, value in theirs.items():
        assert ours_json[name] == value, name
    # unwrapped by default: plain values
    plain = sandbox_bus.get_all_properties(S1, path, iface)
    assert plain["Id" if iface.endswith("Unit") else next(iter(plain))] is not None
    assert all(not isinstance(v, Variant) for v in plain.values())


def test_get_matches_busctl_and_getall(sandbox_bus, systemd_sandbox) -> None:
    for name in (
        "Version",
        "Architecture",
        "Virtualization",
        "DefaultStandardOutput",
        "Environment",
    ):
        v = sandbox_bus.get_property(S1, S1_PATH, MANAGER, name, flags=KEEP_VARIANTS)
        (theirs,) = busctl_json(systemd_sandbox, "get-property", S1, S1_PATH, MANAGER, name)
        assert json.loads(json.dumps(as_busctl("v", v))) == theirs
    unit = sandbox_bus.get_all_properties(S1, DBUS_UNIT, S1 + ".Unit")
    names = sorted(unit)
    each = sandbox_bus.get_property_many([(S1, DBUS_UNIT, S1 + ".Unit", n) for n in names])
    stable = {"Id", "Names", "Description", "LoadState", "FragmentPath", "Requires", "After"}
    assert {n: v for n, v in zip(names, each) if n in stable} == {n: unit[n] for n in stable}


def test_getall_only_named_properties(sandbox_bus) -> None:
    full = sandbox_bus.get_all_properties(S1, DBUS_UNIT, S1 + ".Unit")
    want = ["Id", "ActiveState", "Names", "NoSuchPropertyAnywhere"]
    some = sandbox_bus.get_all_properties(S1, DBUS_UNIT, S1 + ".Unit", names=want)
    assert some == {k: full[k] for k in want[:3]}
    assert sandbox_bus.get_all_properties(
        S1, DBUS_UNIT, S1 + ".Unit", names=(n for n in ["Id"])
    ) == {"Id": "dbus.service"}
    assert sandbox_bus.get_all_properties(S1, DBUS_UNIT, S1 + ".Unit", names=[]) == {}
    with pytest.raises(TypeError, match="not a single string"):
        sandbox_bus.get_all_properties(S1, DBUS_UNIT, S1 + ".Unit", names="Id")


def test_set_on_systemd(sandbox_bus, systemd_sandbox) -> None:
    with pytest.raises(PropertyReadOnly) as ei:
        sandbox_bus.set_property(S1, S1_PATH, MANAGER, "Version", "s", "1")
    assert isinstance(ei.value, PermissionError)
    before = sandbox_bus.get_property(S1, S1_PATH, MANAGER, "LogLevel")
    try:
        sandbox_bus.set_property(S1, S1_PATH, MANAGER, "LogLevel", "s", "debug")
        (theirs,) = busctl_json(systemd_sandbox, "get-property", S1, S1_PATH, MANAGER, "LogLevel")
        assert theirs == {"type": "s", "data": "debug"}
    finally:
        sandbox_bus.set_property(S1, S1_PATH, MANAGER, "LogLevel", None, before)
    assert sandbox_bus.get_property(S1, S1_PATH, MANAGER, "LogLevel") == before


def test_set_any_type_on_dbus_fast(dbus_daemon) -> None:
    with EchoPeer(dbus_daemon.address), Bus(dbus_daemon.address) as bus:
        bus.set_property(*E, "Table", "a{sv}", {"k": Variant("ai", [1, 2])})
        assert bus.get_property(*E, "Table") == {"k": [1, 2]}
        bus.set_property(*E, "Count", None, Variant("t", 2**40))
        assert bus.get_property(*E, "Count", flags=KEEP_VARIANTS) == Variant("t", 2**40)
        bus.set_property(*E, "Ratio", None, 0.25)  # inferred: d
        assert bus.get_property(*E, "Ratio", flags=KEEP_VARIANTS) == Variant("d", 0.25)
        with pytest.raises(UnknownProperty):
            bus.get_property(*E, "Missing")
        with pytest.raises(OverflowError, match="argument 2"):
            bus.set_property(*E, "Count", "y", 300)
