"""Calls: blocking with timeouts and the GIL policy, pipelined batches, threads.

Peers: the dbus-fast echo service on private dbus-daemons (one with the
system bus's pending-reply cap lowered so LimitsExceeded really happens), and
the sandboxed systemd.
"""

from __future__ import annotations

import os
import signal
import threading

import pytest
from peers import ECHO_IFACE, ECHO_NAME, ECHO_PATH, EchoPeer

from pystemd.bus import Bus, Variant
from pystemd.errors import LimitsExceeded, NameHasNoOwner, NoReply, NoSuchUnit, UnknownMethod
from pystemd.testing import DBusDaemon

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


def calls_seen(bus: Bus) -> int:
    (n,) = bus.call(*E, "Calls")
    return int(n)


# -- timeouts ------------------------------------------------------------------


@pytest.mark.parametrize("timeout", [0.0002, 0.05])
def test_timeout_raises_noreply_and_the_bus_stays_usable(bus, timeout) -> None:
    # 0.2 ms ends inside the GIL-held first phase, 50 ms in the released one
    with pytest.raises(NoReply) as ei:
        bus.call(*E, "Sleep", "d", (0.5,), timeout=timeout)
    assert isinstance(ei.value, TimeoutError)
    assert ei.value.name == "org.freedesktop.DBus.Error.NoReply"
    # the late reply to the abandoned call is dropped, not taken for the next one
    assert bus.call(*E, "Sleep", "d", (0.6,), timeout=5) == (0.6,)
    assert bus.call(*E, "Echo", "s", ("after",)) == ("after",)


def test_bus_default_timeout(bus) -> None:
    assert bus.method_call_timeout == 25.0
    bus.method_call_timeout = 0.05
    assert bus.method_call_timeout == 0.05
    with pytest.raises(NoReply):
        bus.call(*E, "Sleep", "d", (0.3,))
    assert bus.call(*E, "Sleep", "d", (0.3,), timeout=2) == (0.3,)


@pytest.mark.parametrize(
    "bad,exc", [(-1, ValueError), (0, ValueError), (float("nan"), ValueError), ("1", TypeError)]
)
def test_bad_timeouts(bus, bad, exc) -> None:
    with pytest.raises(exc):
        bus.call(*E, "Echo", "s", ("x",), timeout=bad)


def test_error_reply_is_not_mistaken_for_a_timeout(bus) -> None:
    # NoReply/Timeout error *replies* map to ETIMEDOUT like sd_bus_call's own timeout
    for name in ("org.freedesktop.DBus.Error.NoReply", "org.freedesktop.DBus.Error.Timeout"):
        with pytest.raises(TimeoutError) as ei:
            bus.call(*E, "Fail", "ss", (name, "peer says so"), timeout=30)
        assert ei.value.name == name and ei.value.message == "peer says so"


# -- the GIL policy ---------------------------------------------------------------


def test_slow_call_releases_the_gil(bus) -> None:
    # A CPU-bound Python thread keeps running during a call that takes 0.4 s.
    # Were the GIL held through the wait, the thread could not count at all.
    count = 0
    stop = threading.Event()
    started = threading.Event()

    def spin() -> None:
        nonlocal count
        started.set()
        while not stop.is_set():
            count += 1

    t = threading.Thread(target=spin)
    t.start()
    started.wait()
    try:
        before = count
        assert bus.call(*E, "Sleep", "d", (0.4,)) == (0.4,)
        during = count - before
    finally:
        stop.set()
        t.join()
    assert during > 0


@pytest.fixture
def sigint_raises():
    # A shell starts background jobs with SIGINT ignored, and Python then
    # leaves it ignored: make Ctrl-C raise KeyboardInterrupt, as it does in
    # a foreground program, whatever started the test run.
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


@pytest.mark.usefixtures("sigint_raises")
def test_ctrl_c_interrupts_a_long_call(bus) -> None:
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            bus.call(*E, "Sleep", "d", (3,), timeout=20)
    finally:
        timer.cancel()
    assert bus.call(*E, "Echo", "s", ("still fine",)) == ("still fine",)


@pytest.mark.usefixtures("sigint_raises")
def test_ctrl_c_interrupts_a_batch(bus) -> None:
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            bus.call_many([(*E, "Sleep", "d", (2.0,))] * 8, timeout=20)
    finally:
        timer.cancel()
    assert bus.call_many([(*E, "Echo", "s", ("after",))] * 3) == [("after",)] * 3


def test_no_reply_calls_are_sent(bus) -> None:
    before = calls_seen(bus)
    assert bus.call(*E, "Echo", "s", ("fire and forget",), no_reply=True) is None
    assert calls_seen(bus) == before + 2


def test_interactive_flag_is_accepted(bus) -> None:
    assert bus.call(*E, "Echo", "s", ("x",), interactive=True) == ("x",)


# -- pipelined calls ------------------------------------------------------------


def test_call_many_keeps_order(bus) -> None:
    calls = [(*E, "Echo", "us", (i, f"n{i}")) for i in range(500)]
    assert bus.call_many(calls, window=32) == [(i, f"n{i}") for i in range(500)]
    # 4-tuples (no arguments) and generators, window 1
    assert bus.call_many((c for c in [(*E, "Calls")] * 3), window=1)[0][0] > 0


def test_get_property_many(bus, sandbox_bus) -> None:
    assert bus.get_property_many([(*E, "Name"), (*E, "Count"), (*E, "Blob")]) == [
        "echo",
        7,
        b"\x00\x01\xff",
    ]
    (units,) = sandbox_bus.call(S1, S1_PATH, MANAGER, "ListUnits")
    reqs = [(S1, u[6], S1 + ".Unit", "Id") for u in units]
    assert sandbox_bus.get_property_many(reqs) == [u[0] for u in units]
    # the same answers as one call at a time
    some = reqs[:5]
    assert sandbox_bus.get_property_many(some) == [sandbox_bus.get_property(*r) for r in some]


def test_call_many_errors(bus) -> None:
    before = calls_seen(bus)
    calls = [
        (*E, "Echo", "s", ("a",)),
        (*E, "Fail", "ss", ("org.freedesktop.DBus.Error.InvalidArgs", "bad")),
        (*E, "Nope"),
        (*E, "Echo", "s", ("b",)),
    ]
    out = bus.call_many(calls, return_exceptions=True)
    assert out[0] == ("a",) and out[3] == ("b",)
    assert isinstance(out[1], ValueError) and out[1].message == "bad"
    assert isinstance(out[2], UnknownMethod)
    # without return_exceptions: every call still runs, then the first failure is raised
    with pytest.raises(ValueError, match="bad"):
        bus.call_many(calls)
    assert calls_seen(bus) == before + 8 + 1
    with pytest.raises(NameHasNoOwner):
        bus.call_many([("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                        "GetNameOwner", "s", ("no.such.Name",))])  # fmt: skip


def test_call_many_refuses_bad_requests_before_sending(bus) -> None:
    before = calls_seen(bus)
    with pytest.raises(TypeError, match=r"call 2: argument 0 \('s' of signature 's'\)"):
        bus.call_many([(*E, "Echo", "s", ("ok",))] * 2 + [(*E, "Echo", "s", (1,))])
    with pytest.raises(TypeError, match="call 0: expected a"):
        bus.call_many([(*E,)])
    with pytest.raises(ValueError, match="call 1: invalid object path"):
        bus.get_property_many([(*E, "Name"), (ECHO_NAME, "bad", ECHO_IFACE, "Name")])
    with pytest.raises(ValueError, match="window must be at least 1"):
        bus.call_many([], window=0)
    assert bus.call_many([]) == []
    assert calls_seen(bus) == before + 1


def test_call_many_timeouts(bus) -> None:
    out = bus.call_many([(*E, "Sleep", "d", (s,)) for s in (0.0, 1.0, 0.0)], timeout=0.3,
                        return_exceptions=True)  # fmt: skip
    assert out[0] == (0.0,) and out[2] == (0.0,)
    assert isinstance(out[1], NoReply)


def test_limits_exceeded_is_retried() -> None:
    # the daemon refuses a 5th pending reply on one connection (the system bus: 128)
    with DBusDaemon(limits={"max_replies_per_connection": 4}) as d, EchoPeer(d.address):
        with Bus(d.address) as b:
            calls = [(*E, "Sleep", "d", (0.02,))] * 40
            assert b.call_many(calls, window=16) == [(0.02,)] * 40
            assert b.last_batch_limit_hits > 0  # it really happened, and was retried
            out = b.call_many(calls, window=16, retry_limits=False, return_exceptions=True)
            refused = [x for x in out if isinstance(x, LimitsExceeded)]
            assert refused and all(x == (0.02,) for x in out if x not in refused)
            with pytest.raises(LimitsExceeded):
                b.call_many(calls, window=16, retry_limits=False)
            # a window inside the cap never meets it
            assert b.call_many(calls, window=4) == [(0.02,)] * 40
            assert b.last_batch_limit_hits == 0


def test_big_messages_with_a_full_send_buffer() -> None:
    # 64 messages of 1 MiB in flight at once is far more than the socket buffer
    # holds: sending stops while sd-bus has unwritten messages, and nothing is
    # lost or reordered. (The jeepney echo: dbus-fast's drops its connection
    # when several large messages are in flight.)
    with DBusDaemon() as d, EchoPeer(d.address, script="jeepney_echo.py"), Bus(d.address) as b:
        for _ in range(3):
            blobs = [bytes([i]) * (1 << 20) for i in range(64)]
            out = b.call_many([(*E, "Echo", "ay", (x,)) for x in blobs], window=64)
            assert [x[0] for x in out] == blobs
        assert b.call(*E, "Echo", "ay", (blobs[5],)) == (blobs[5],)


def test_signals_during_a_batch_are_deferred(bus) -> None:
    got = []
    slot = bus.match_signal(None, ECHO_PATH, ECHO_IFACE, "Ping", got.append)
    try:
        out = bus.call_many([(*E, "Emit", "sv", ("Ping", Variant("u", i))) for i in range(20)])
        assert out == [()] * 20
        assert got == []  # never inside the batch
        while bus.process():
            pass
        deadline = 200
        while len(got) < 20 and deadline:
            bus.wait(0.1)
            bus.process()
            deadline -= 1
        assert sorted(m.body()[0] for m in got) == list(range(20))
    finally:
        slot.remove()


# -- threads sharing one Bus --------------------------------------------------------


def test_threads_share_a_bus(bus, sandbox_bus) -> None:
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(200):
                assert bus.call(*E, "Echo", "ss", (f"t{k}", str(i))) == (f"t{k}", str(i))
                if i % 50 == 0:
                    n = 20
                    assert bus.call_many([(*E, "Echo", "u", (j,)) for j in range(n)]) == [
                        (j,) for j in range(n)
                    ]
                    with pytest.raises(NoSuchUnit):
                        sandbox_bus.call(S1, S1_PATH, MANAGER, "GetUnit", "s", (f"t{k}.service",))
                    assert sandbox_bus.get_property(S1, S1_PATH, MANAGER, "Version")
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_close_while_another_thread_waits(daemon) -> None:
    b = Bus(daemon.address)
    result: list[BaseException] = []

    def slow() -> None:
        try:
            b.call(*E, "Sleep", "d", (0.5,))
        except BaseException as e:
            result.append(e)

    t = threading.Thread(target=slow)
    t.start()
    b.close()  # waits for the call's lock, then closes
    t.join()
    assert b.closed
    assert result == [] or isinstance(result[0], ValueError)
    with pytest.raises(ValueError, match="closed bus"):
        b.call(*E, "Echo", "s", ("x",))
