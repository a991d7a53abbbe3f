"""Signals: match rules, slots, callbacks and the blocking event-loop primitives.

Signals come from independent senders: the dbus-fast echo service (``Emit``,
``Properties.Set``), dbus-daemon itself (NameOwnerChanged) and the sandboxed
systemd (JobRemoved).
"""

from __future__ import annotations

import gc
import os
import select
import subprocess
import time
import traceback
import weakref

import pytest
from peers import ECHO_IFACE, ECHO_NAME, ECHO_PATH, EchoPeer

from pystemd.bus import Bus, Message, Variant

E = (ECHO_NAME, ECHO_PATH, ECHO_IFACE)
S1, S1_PATH = "org.freedesktop.systemd1", "/org/freedesktop/systemd1"
MANAGER = S1 + ".Manager"


@pytest.fixture(scope="module")
def daemon(dbus_daemon_session):
    with EchoPeer(dbus_daemon_session.address):
        yield dbus_daemon_session


@pytest.fixture
def bus(daemon):
    with Bus(daemon.address) as b:
        yield b


def emit(bus: Bus, member: str, value: Variant) -> None:
    bus.call(*E, "Emit", "sv", (member, value))


def test_match_signal_delivers_messages(bus) -> None:
    got: list[Message] = []
    slot = bus.match_signal(ECHO_NAME, ECHO_PATH, ECHO_IFACE, "Hello", got.append)
    assert slot.active and "member='Hello'" in slot.rule
    emit(bus, "Hello", Variant("(sai)", ("x", [1, 2])))
    emit(bus, "Other", Variant("s", "not matched"))
    assert bus.run_until(lambda: len(got) >= 1, timeout=10)
    (m,) = got
    assert (m.path, m.interface, m.member, m.signature) == (ECHO_PATH, ECHO_IFACE, "Hello", "(sai)")
    (owner,) = bus.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                        "GetNameOwner", "s", (ECHO_NAME,))  # fmt: skip
    assert m.sender == owner
    assert m.body() == (("x", [1, 2]),) and m.body() == (("x", [1, 2]),)  # re-readable
    assert m.error is None
    assert m.type == 4  # SD_BUS_MESSAGE_SIGNAL
    with pytest.raises(TypeError):
        Message()


def test_any_callable_including_bound_methods_and_lone_closures(bus) -> None:
    class Sink:
        def __init__(self) -> None:
            self.got: list[int] = []

        def on(self, m: Message) -> None:
            self.got.append(m.body()[0])

    sink = Sink()
    got: list[int] = []

    def factory():  # the closure has no other reference than the slot
        return lambda m: got.append(m.body()[0] * 10)

    s1 = bus.match_signal(None, ECHO_PATH, ECHO_IFACE, "N", sink.on)
    s2 = bus.match_signal(None, ECHO_PATH, ECHO_IFACE, "N", factory())
    s3 = bus.match_signal(None, ECHO_PATH, ECHO_IFACE, "N", sink.on)  # twice: called twice
    gc.collect()
    for i in (1, 2):
        emit(bus, "N", Variant("u", i))
    assert bus.run_until(lambda: len(got) == 2 and len(sink.got) == 4, timeout=10)
    assert sorted(got) == [10, 20] and sorted(sink.got) == [1, 1, 2, 2]
    for s in (s1, s2, s3):
        s.remove()


def test_remove_stops_delivery_and_releases_the_callback(bus) -> None:
    got: list[Message] = []

    class Callback:
        def __call__(self, m: Message) -> None:
            got.append(m)

    cb = Callback()
    ref = weakref.ref(cb)
    with bus.match_signal(None, ECHO_PATH, ECHO_IFACE, "R", cb) as slot:
        del cb
        gc.collect()
        assert ref() is not None  # sd-bus's slot holds it
        emit(bus, "R", Variant("i", 1))
        assert bus.run_until(lambda: got, timeout=10)
    assert not slot.active and slot.callback is None
    slot.remove()  # idempotent
    gc.collect()
    assert ref() is None
    # an unrelated match to know when the next signal has been processed
    seen: list[Message] = []
    with bus.match_signal(None, ECHO_PATH, ECHO_IFACE, "R", seen.append):
        emit(bus, "R", Variant("i", 2))
        assert bus.run_until(lambda: seen, timeout=10)
    assert len(got) == 1


def test_close_releases_callbacks(daemon) -> None:
    b = Bus(daemon.address)

    def cb(m: Message) -> None:
        pass

    ref = weakref.ref(cb)
    slot = b.match_signal(None, ECHO_PATH, ECHO_IFACE, "C", cb)
    del cb
    b.close()
    gc.collect()
    assert ref() is None and not slot.active
    slot.remove()  # harmless after close


def test_callback_exception_surfaces_from_process_with_its_traceback(bus) -> None:
    calls: list[str] = []

    def bad_callback(m: Message) -> None:
        calls.append("bad")
        raise KeyError("from the callback")

    s1 = bus.match_signal(None, ECHO_PATH, ECHO_IFACE, "X", bad_callback)
    s2 = bus.match_signal(None, ECHO_PATH, ECHO_IFACE, "X", lambda m: calls.append("good"))
    emit(bus, "X", Variant("b", True))
    with pytest.raises(KeyError, match="from the callback") as ei:
        bus.run_until(lambda: False, timeout=10)
    frames = [f.name for f in traceback.extract_tb(ei.value.__traceback__)]
    assert "bad_callback" in frames
    # the other callback for the same signal is not lost (it ran before, or runs next)
    assert bus.run_until(lambda: "good" in calls, timeout=10)
    assert sorted(calls) == ["bad", "good"]
    s1.remove()
    s2.remove()


def test_callbacks_never_run_inside_a_blocking_call(bus) -> None:
    got: list[int] = []
    slot = bus.match_signal(None, ECHO_PATH, ECHO_IFACE, "D", lambda m: got.append(m.body()[0]))
    emit(bus, "D", Variant("i", 1))
    # the signal arrives while this call waits: it is queued, not run
    bus.call(*E, "Sleep", "d", (0.1,))
    assert got == []
    assert bus.get_timeout() == 0  # "call process() now"
    assert bus.wait(5) is True
    assert bus.process() is True
    assert got == [1]
    slot.remove()


def test_callbacks_may_call_the_bus(bus) -> None:
    answers: list[tuple] = []

    def cb(m: Message) -> None:
        answers.append(bus.call(*E, "Echo", "s", (f"seen {m.body()[0]}",)))

    with bus.match_signal(None, ECHO_PATH, ECHO_IFACE, "Q", cb):
        emit(bus, "Q", Variant("s", "q"))
        assert bus.run_until(lambda: answers, timeout=10)
    assert answers == [("seen q",)]


def test_add_match_rules(bus, daemon) -> None:
    changes: list[Message] = []
    owners: list[Message] = []
    s1 = bus.match_signal(None, ECHO_PATH, "org.freedesktop.DBus.Properties",
                          "PropertiesChanged", changes.append, arg0=ECHO_IFACE)  # fmt: skip
    s2 = bus.add_match(
        "type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged',arg0='com.example.Other'",
        owners.append,
    )
    bus.set_property(*E, "Name", "s", "renamed")
    with EchoPeer(daemon.address, "com.example.Other"):
        assert bus.run_until(lambda: changes and owners, timeout=10)
    assert changes[0].body() == (ECHO_IFACE, {"Name": "renamed"}, [])
    assert owners[0].body()[0] == "com.example.Other"
    s1.remove()
    s2.remove()
    bus.set_property(*E, "Name", "s", "echo")


def test_bad_matches(bus) -> None:
    with pytest.raises(ValueError, match="invalid match rule"):
        bus.add_match("type='signal',,,nonsense", print)
    with pytest.raises(TypeError, match="callback must be callable"):
        bus.add_match("type='signal'", "print")
    with pytest.raises(ValueError, match="invalid member"):
        bus.match_signal(None, None, None, "it's", print)
    with pytest.raises(TypeError, match="path must be str or None"):
        bus.match_signal(None, 5, None, None, print)


def test_select_on_fileno_then_process(bus) -> None:
    got: list[Message] = []
    fd = bus.fileno()
    assert fd >= 0 and bus.get_events() & select.POLLIN
    with bus.match_signal(None, ECHO_PATH, ECHO_IFACE, "F", got.append):
        emit(bus, "F", Variant("t", 1))
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            t = bus.get_timeout()
            if t is None or t > 0:
                select.select([fd], [], [], 0.5)
            while bus.process():
                pass
    assert got and got[0].body() == (1,)


def test_job_removed_from_systemd(sandbox_bus, systemd_sandbox) -> None:
    jobs: dict[str, tuple] = {}
    slot = sandbox_bus.match_signal(S1, S1_PATH, MANAGER, "JobRemoved",
                                    lambda m: jobs.__setitem__(m.body()[1], m.body()))  # fmt: skip
    sandbox_bus.call(S1, S1_PATH, MANAGER, "Subscribe")
    try:
        name = f"sig-{os.getpid()}-{time.monotonic_ns()}.service"
        props = [("ExecStart", Variant("a(sasb)", [("/bin/true", ["/bin/true"], False)])),
                 ("Type", Variant("s", "oneshot")), ("RemainAfterExit", Variant("b", True))]  # fmt: skip
        (job,) = sandbox_bus.call(S1, S1_PATH, MANAGER, "StartTransientUnit", "ssa(sv)a(sa(sv))",
                                  (name, "replace", props, []))  # fmt: skip
        assert sandbox_bus.run_until(lambda: job in jobs, timeout=20)
        _id, path, unit, result = jobs[job]
        assert (path, unit, result) == (job, name, "done")
        # busctl, an independent client, agrees on the unit's state
        (upath,) = sandbox_bus.call(S1, S1_PATH, MANAGER, "GetUnit", "s", (name,))
        out = subprocess.run(
            ["busctl", "--system", "get-property", S1, upath, S1 + ".Unit", "ActiveState"],
            env=systemd_sandbox.env(), capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert out.strip() == 's "active"'
        sandbox_bus.call(S1, S1_PATH, MANAGER, "StopUnit", "ss", (name, "replace"))
    finally:
        slot.remove()
        sandbox_bus.call(S1, S1_PATH, MANAGER, "Unsubscribe")
