"""Errors: D-Bus error names become named exceptions with the fitting builtins.

Error replies come from real peers: the dbus-fast echo service (any name we
ask for) and the sandboxed systemd (its own names); a negative errno without
a D-Bus error becomes the OSError subclass Python picks for it.
"""

from __future__ import annotations

import errno
import pickle

import pytest
from peers import ECHO_IFACE, ECHO_NAME, ECHO_PATH, EchoPeer

from pystemd import errors
from pystemd.bus import Bus
from pystemd.errors import (
    AccessDenied,
    BusError,
    InvalidArgs,
    LimitsExceeded,
    NoReply,
    NoSuchUnit,
    ServiceUnknown,
    Timeout,
    UnknownMethod,
    UnknownObject,
    bus_error,
    register,
)

E = (ECHO_NAME, ECHO_PATH, ECHO_IFACE)
S1, S1_PATH = "org.freedesktop.systemd1", "/org/freedesktop/systemd1"
MANAGER = S1 + ".Manager"


@pytest.fixture(scope="module")
def echo_bus(dbus_daemon_session):
    with EchoPeer(dbus_daemon_session.address), Bus(dbus_daemon_session.address) as bus:
        yield bus


def fail(bus: Bus, name: str, text: str = "because") -> BusError:
    with pytest.raises(BusError) as ei:
        bus.call(*E, "Fail", "ss", (name, text))
    assert ei.value.name == name and ei.value.message == text
    return ei.value


@pytest.mark.parametrize(
    "name,cls,builtin,err",
    [
        ("org.freedesktop.DBus.Error.AccessDenied", AccessDenied, PermissionError, errno.EACCES),
        ("org.freedesktop.DBus.Error.InvalidArgs", InvalidArgs, ValueError, errno.EINVAL),
        ("org.freedesktop.DBus.Error.UnknownMethod", UnknownMethod, LookupError, errno.EBADR),
        ("org.freedesktop.DBus.Error.UnknownObject", UnknownObject, LookupError, errno.EBADR),
        ("org.freedesktop.DBus.Error.LimitsExceeded", LimitsExceeded, BusError, errno.ENOBUFS),
        ("org.freedesktop.DBus.Error.Timeout", Timeout, TimeoutError, errno.ETIMEDOUT),
        ("org.freedesktop.DBus.Error.NoReply", NoReply, TimeoutError, errno.ETIMEDOUT),
        (
            "org.freedesktop.DBus.Error.ServiceUnknown",
            ServiceUnknown,
            LookupError,
            errno.EHOSTUNREACH,
        ),
        ("org.freedesktop.systemd1.NoSuchUnit", NoSuchUnit, LookupError, errno.ENOENT),
    ],
)
def test_names_pick_classes_with_builtins(echo_bus, name, cls, builtin, err) -> None:
    e = fail(echo_bus, name, "it went wrong ✗")
    assert type(e) is cls and isinstance(e, builtin) and isinstance(e, errors.PystemdError)
    assert e.errno == err  # what sd-bus maps the name to
    assert str(e) == f"{name}: it went wrong ✗"
    assert isinstance(e.message, str) and isinstance(e.name, str)
    again = pickle.loads(pickle.dumps(e))
    assert type(again) is cls and again.name == name and again.message == e.message


def test_unknown_names_keep_their_name(echo_bus) -> None:
    e = fail(echo_bus, "com.example.Error.Nobody.Registered.This", "x")
    assert type(e) is BusError and e.name == "com.example.Error.Nobody.Registered.This"


def test_system_error_names_are_oserrors(echo_bus) -> None:
    e = fail(echo_bus, "System.Error.ENOENT", "gone")
    assert isinstance(e, FileNotFoundError) and isinstance(e, BusError) and e.errno == errno.ENOENT
    e = fail(echo_bus, "System.Error.EPERM", "no")
    assert isinstance(e, PermissionError) and e.errno == errno.EPERM
    e = fail(echo_bus, "System.Error.ECONNREFUSED", "no")
    assert isinstance(e, ConnectionRefusedError)
    assert type(bus_error("System.Error.ENOTANERRNO", "x")) is BusError


def test_register_own_names(echo_bus) -> None:
    @register("com.example.Error.Busy")
    class Busy(BusError, BlockingIOError):
        pass

    e = fail(echo_bus, "com.example.Error.Busy", "later")
    assert type(e) is Busy and isinstance(e, BlockingIOError)
    assert Busy.dbus_name == "com.example.Error.Busy"


def test_systemd_errors_in_the_sandbox(sandbox_bus) -> None:
    with pytest.raises(NoSuchUnit) as ei:
        sandbox_bus.call(S1, S1_PATH, MANAGER, "GetUnit", "s", ("nope-nope.service",))
    assert "nope-nope.service" in ei.value.message
    with pytest.raises(UnknownMethod):
        sandbox_bus.call(S1, S1_PATH, MANAGER, "NoSuchMethod")
    with pytest.raises(LookupError) as ei2:  # UnknownObject or UnknownInterface
        sandbox_bus.get_property(S1, "/org/nothing/here", MANAGER, "Version")
    assert isinstance(ei2.value, BusError)
    with pytest.raises(InvalidArgs):
        sandbox_bus.call(S1, S1_PATH, MANAGER, "StartUnit", "ss", ("x.service", "not-a-mode"))
    with pytest.raises(ServiceUnknown):
        sandbox_bus.call("org.example.NotThere", "/", "org.example.X", "Y")


def test_negative_errno_becomes_oserror_subclass(tmp_path) -> None:
    with pytest.raises(FileNotFoundError) as ei:
        Bus(f"unix:path={tmp_path}/none")
    assert ei.value.errno == errno.ENOENT and f"{tmp_path}/none" in str(ei.value)
    sock = tmp_path / "notasocket"
    sock.write_text("")
    with pytest.raises(ConnectionRefusedError):
        Bus(f"unix:path={sock}")
    with pytest.raises(OSError) as ei2:
        Bus("nonsense-transport:x=1")
    assert "nonsense-transport" in str(ei2.value)
