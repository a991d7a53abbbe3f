"""asyncio on a pystemd Bus, against the sandboxed systemd and a private dbus-daemon."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import traceback
import uuid
from collections.abc import Coroutine
from typing import Any, Optional, TypeVar

import pytest
from peers import ECHO_IFACE, ECHO_NAME, ECHO_PATH, EchoPeer

from pystemd import aio, serve
from pystemd.bus import Bus, Variant, path_encode
from pystemd.errors import BusError, NoReply, UnknownMethod

S1 = "org.freedesktop.systemd1"
S1_PATH = "/org/freedesktop/systemd1"
MANAGER = f"{S1}.Manager"
DBUS = ("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus")
IFACE = "org.pystemd.AioTest1"
PATH = "/org/pystemd/AioTest"

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], loop: Optional[asyncio.AbstractEventLoop] = None) -> T:
    """asyncio.run with a safety net: a hang fails the test instead of blocking CI."""

    async def guarded() -> T:
        return await asyncio.wait_for(coro, 120)

    if loop is None:
        return asyncio.run(guarded())
    try:
        return loop.run_until_complete(guarded())
    finally:
        loop.close()


class Service(serve.Interface, interface=IFACE):
    def __init__(self) -> None:
        self.started = 0
        self.finished = 0
        self._label = "x"

    @serve.method("d", "d")
    async def Wait(self, seconds: float) -> float:
        self.started += 1
        await asyncio.sleep(seconds)
        self.finished += 1
        return seconds

    @serve.method("ay", "u")
    def Size(self, data: bytes) -> int:
        return len(data)

    @serve.method("ay", "ay")
    def Echo(self, data: bytes) -> bytes:
        return data

    @serve.dbus_property("s")
    def Label(self) -> str:
        return self._label

    @Label.setter
    def Label(self, v: str) -> None:
        self._label = v

    Ping = serve.signal("u", names=("n",))


# ---------------------------------------------------------------------------
# against systemd


@pytest.mark.sandbox
def test_many_concurrent_gets_match_blocking_ones(sandbox_bus: Bus) -> None:
    bus = sandbox_bus
    (units,) = bus.call(S1, S1_PATH, MANAGER, "ListUnits")
    paths = [u[6] for u in units]
    props = ("Id", "LoadState", "Description", "Names")  # not states: units may be restarting
    expected = {(p, n): bus.get_property(S1, p, f"{S1}.Unit", n) for p in paths for n in props}
    assert len(expected) > 100

    async def main() -> tuple[dict[tuple[str, str], Any], int, int, int, Any]:
        abus = aio.attach(bus)
        assert aio.attach(bus) is abus  # one per bus
        keys = list(expected)
        futs = [abus.get_property(S1, p, f"{S1}.Unit", n) for p, n in keys]
        in_flight, waiting = abus.in_flight, abus.waiting
        # a blocking call on the same Bus meanwhile (it also dispatches aio replies)
        version = bus.get_property(S1, S1_PATH, MANAGER, "Version")
        values = await asyncio.gather(*futs)
        assert (abus.in_flight, abus.waiting) == (0, 0)
        arms = abus.timer_arms
        abus.close()
        return dict(zip(keys, values)), in_flight, waiting, arms, version

    got, in_flight, waiting, arms, version = run(main())
    # Units may still change right after boot (etc-machine-id.mount goes away
    # when machine-id-commit runs): compare what read the same before and after.
    after = {(p, n): bus.get_property(S1, p, f"{S1}.Unit", n) for p in paths for n in props}
    stable = {k for k in expected if expected[k] == after[k]}
    assert len(stable) > 0.9 * len(expected)
    assert {k: got[k] for k in stable} == {k: expected[k] for k in stable}
    assert in_flight == 64 and waiting == len(expected) - 64  # the window held
    assert isinstance(version, str) and version
    # one timer for the earliest reply deadline; later calls did not re-arm it
    assert 1 <= arms <= 2


@pytest.mark.sandbox
def test_job_removed_and_properties_changed_while_starting_a_transient_unit(
    sandbox_bus: Bus,
) -> None:
    bus = sandbox_bus
    unit = f"pystemd-aio-{uuid.uuid4().hex[:8]}.service"
    unit_path = path_encode(f"{S1_PATH}/unit", unit)

    async def main() -> tuple[Any, list[str], str]:
        abus = aio.attach(bus)
        await abus.call(S1, S1_PATH, MANAGER, "Subscribe")
        jobs = abus.signals(sender=S1, interface=MANAGER, member="JobRemoved")
        changes = abus.signals(
            sender=S1,
            path=unit_path,
            interface="org.freedesktop.DBus.Properties",
            member="PropertiesChanged",
        )
        async with jobs, changes:
            (job,) = await abus.call(
                S1, S1_PATH, MANAGER, "StartTransientUnit", "ssa(sv)a(sa(sv))",
                (unit, "replace", [("ExecStart", Variant("a(sasb)", [("/bin/sleep", ["sleep", "300"], False)]))], []),
            )  # fmt: skip
            async for msg in jobs:
                _job_id, job_path, job_unit, result = msg.body()
                if job_path == job:
                    break
            states = []
            async for msg in changes:
                iface, changed, _invalidated = msg.body()
                if iface == f"{S1}.Unit" and "ActiveState" in changed:
                    states.append(changed["ActiveState"])
                    if changed["ActiveState"] == "active":
                        break
        assert not jobs.active and not changes.active
        active = await abus.get_property(S1, unit_path, f"{S1}.Unit", "ActiveState")
        await abus.call(S1, S1_PATH, MANAGER, "StopUnit", "ss", (unit, "replace"))
        abus.close()
        return (job_unit, result), states, active

    (job_unit, result), states, active = run(main())
    assert (job_unit, result) == (unit, "done")
    assert states[-1] == "active" and active == "active"


@pytest.mark.sandbox
def test_errors_and_get_all_from_systemd(sandbox_bus: Bus) -> None:
    async def main() -> tuple[Any, Any, Any]:
        abus = aio.attach(sandbox_bus)
        props = await abus.get_all_properties(S1, S1_PATH, MANAGER)
        some = await abus.get_all_properties(S1, S1_PATH, MANAGER, flags=aio.KEEP_VARIANTS)
        errs = await asyncio.gather(
            abus.call(S1, S1_PATH, MANAGER, "NoSuchMethod"),
            abus.call(S1, S1_PATH, MANAGER, "GetUnit", "s", ("no-such.service",)),
            return_exceptions=True,
        )
        abus.close()
        return props, some, errs

    props, some, errs = run(main())
    assert props["Version"] == sandbox_bus.get_property(S1, S1_PATH, MANAGER, "Version")
    assert isinstance(some["Version"], Variant) and some["Version"].signature == "s"
    assert isinstance(errs[0], UnknownMethod)
    assert (
        isinstance(errs[1], LookupError) and errs[1].name == "org.freedesktop.systemd1.NoSuchUnit"
    )


def test_arguments_are_checked_before_sending(dbus_daemon: Any) -> None:
    async def main() -> None:
        with Bus(dbus_daemon.address) as bus:
            abus = aio.attach(bus)
            with pytest.raises(TypeError, match="argument 0"):
                abus.call(*DBUS, "GetNameOwner", "s", (5,))
            with pytest.raises(ValueError, match="object path"):
                abus.call("org.x", "no-slash", "org.x.Y", "M")
            with pytest.raises(ValueError, match="timeout"):
                abus.call(*DBUS, "GetId", timeout=-1)
            # the same checks as the blocking calls: a string is not seconds
            with pytest.raises(TypeError, match="timeout must be a number"):
                abus.get_property(*DBUS, "Features", timeout="1")
            with pytest.raises(TypeError, match="member must be str"):
                abus.call(*DBUS, 5)
            assert abus.in_flight == 0
            abus.close()

    run(main())


# ---------------------------------------------------------------------------
# against a private dbus-daemon and a served object


class Pair:
    """A served Service and a client Bus on the same daemon and loop."""

    def __init__(self, address: str, window: Optional[int] = 64) -> None:
        self.sbus = Bus(address)
        self.cbus = Bus(address)
        self.service = Service()
        serve.export(self.sbus, PATH, self.service)
        self.server = aio.attach(self.sbus)
        self.client = aio.attach(self.cbus, window=window)
        self.name = self.sbus.unique_name

    def call(self, member: str, sig: str = "", args: tuple[Any, ...] = (), **kw: Any) -> Any:
        return self.client.call(self.name, PATH, IFACE, member, sig, args, **kw)

    def close(self) -> None:
        self.client.close()
        self.server.close()
        self.cbus.close()
        self.sbus.close()


def test_properties_set_get_all(dbus_daemon: Any) -> None:
    async def main() -> Any:
        p = Pair(dbus_daemon.address)
        await p.client.set_property(p.name, PATH, IFACE, "Label", "s", "changed")
        out = await p.client.get_all_properties(p.name, PATH, IFACE)
        one = await p.client.get_property(p.name, PATH, IFACE, "Label")
        p.close()
        return out, one

    assert run(main()) == ({"Label": "changed"}, "changed")


def test_cancelling_the_task_cancels_the_call(dbus_daemon: Any) -> None:
    async def main() -> None:
        p = Pair(dbus_daemon.address, window=1)
        task = asyncio.ensure_future(p.call("Wait", "d", (0.5,)))
        queued = asyncio.ensure_future(p.call("Wait", "d", (0.0,)))  # behind the window of 1
        while p.service.started == 0:
            await asyncio.sleep(0.01)
        assert (p.client.in_flight, p.client.waiting) == (1, 1)
        task.cancel()
        queued.cancel()
        await asyncio.gather(task, queued, return_exceptions=True)
        assert task.cancelled() and queued.cancelled()
        assert (p.client.in_flight, p.client.waiting) == (0, 0)
        # the server finishes and replies; the reply finds no call and is dropped
        while p.service.finished == 0:
            await asyncio.sleep(0.01)
        assert await p.call("Wait", "d", (0.0,)) == (0.0,)
        assert p.service.started == 2  # the queued call was never sent
        p.close()

    run(main())


def test_a_timeout_comes_from_the_deadline_timer(dbus_daemon: Any) -> None:
    async def main() -> int:
        p = Pair(dbus_daemon.address)
        with pytest.raises(NoReply) as ei:
            await p.call("Wait", "d", (30.0,), timeout=0.2)
        assert isinstance(ei.value, TimeoutError)
        arms = p.client.timer_arms
        p.close()
        return arms

    assert run(main()) >= 1


def test_big_messages_use_the_writer_only_while_needed(dbus_daemon: Any) -> None:
    """POLLOUT is watched only while sd-bus has unsent data; the reader is added once."""

    class CountingLoop(asyncio.SelectorEventLoop):
        def __init__(self) -> None:
            super().__init__()
            self.readers: list[int] = []
            self.writers: list[int] = []
            self.writers_removed = 0

        def add_reader(self, fd: Any, cb: Any, *args: Any) -> None:
            self.readers.append(fd)
            super().add_reader(fd, cb, *args)

        def add_writer(self, fd: Any, cb: Any, *args: Any) -> None:
            self.writers.append(fd)
            super().add_writer(fd, cb, *args)

        def remove_writer(self, fd: Any) -> bool:
            self.writers_removed += 1
            return super().remove_writer(fd)

    loop = CountingLoop()
    blob = bytes(range(256)) * (16 * 1024)  # 4 MiB
    daemon_pid = dbus_daemon._proc.pid

    async def main() -> tuple[Any, ...]:
        p = Pair(dbus_daemon.address)
        fd = p.cbus.fileno()
        # With the daemon stopped, 8 x 4 MiB cannot all fit in the socket
        # buffer: sd-bus keeps the rest and asks for POLLOUT.
        os.kill(daemon_pid, signal.SIGSTOP)
        try:
            futs = [p.call("Size", "ay", (blob,)) for _ in range(8)]
            for _ in range(1000):
                if fd in loop.writers:
                    break
                await asyncio.sleep(0.01)
        finally:
            os.kill(daemon_pid, signal.SIGCONT)
        sizes = await asyncio.gather(*futs)
        (echo,) = await p.call("Echo", "ay", (blob,))
        small = await asyncio.gather(*[p.call("Size", "ay", (b"x",)) for _ in range(100)])
        writing = p.client._writing
        p.close()
        return sizes, echo, small, fd, writing

    sizes, echo, small, fd, writing = run(main(), loop)
    assert sizes == [(len(blob),)] * 8 and echo == blob and small == [(1,)] * 100
    assert loop.readers.count(fd) == 1
    assert loop.writers.count(fd) >= 1 and not writing  # added while needed, then removed
    assert loop.writers_removed >= loop.writers.count(fd)


def test_signal_stream_removes_its_match(dbus_daemon: Any) -> None:
    async def main() -> tuple[list[int], list[Any]]:
        p = Pair(dbus_daemon.address)

        async def match_rules() -> int:
            (stats,) = await p.client.call(
                "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus.Debug.Stats",
                "GetConnectionStats", "s", (p.cbus.unique_name,),
            )  # fmt: skip
            return int(stats["MatchRules"])

        counts = [await match_rules()]
        stream = p.client.signals(interface=IFACE, member="Ping")
        counts.append(await match_rules())
        for n in range(3):
            p.service.Ping(n)
        got = [(await stream.get(30)).body() for _ in range(3)]
        await stream.aclose()
        counts.append(await match_rules())
        with pytest.raises(StopAsyncIteration):
            await stream.__anext__()
        # dropped without closing: the garbage collector removes it
        p.client.signals(interface=IFACE, member="Ping")
        counts.append(await match_rules())
        p.close()
        return counts, got

    counts, got = run(main())
    assert got == [(0,), (1,), (2,)]
    assert counts == [counts[0], counts[0] + 1, counts[0], counts[0]]


def test_bounded_stream_says_how_many_it_dropped(dbus_daemon: Any) -> None:
    async def main() -> None:
        p = Pair(dbus_daemon.address)
        async with p.client.signals(interface=IFACE, member="Ping", maxsize=2) as s:
            await p.client.call(*DBUS, "GetId")  # the match is installed
            for n in range(5):
                p.service.Ping(n)
            await p.client.call(*DBUS, "GetId")
            while s.pending() < 2 or s._match.dropped < 3:
                await asyncio.sleep(0.01)
            assert (await s.get()).body() == (0,)
            assert (await s.get()).body() == (1,)
            with pytest.raises(aio.SignalQueueOverflow, match="3 signal"):
                await s.get()
        p.close()

    run(main())


def test_a_callback_exception_reaches_the_loop_with_its_traceback(dbus_daemon: Any) -> None:
    seen: list[dict[str, Any]] = []

    def broken_callback(msg: Any) -> None:
        raise RuntimeError(f"callback failed on {msg.member}")

    async def main() -> int:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, ctx: seen.append(ctx))
        p = Pair(dbus_daemon.address)
        slot = p.cbus.match_signal(None, PATH, IFACE, "Ping", broken_callback)
        stream = p.client.signals(interface=IFACE, member="Ping")
        await p.client.call(*DBUS, "GetId")
        p.service.Ping(1)
        p.service.Ping(2)
        got = [(await stream.get(30)).body() for _ in range(2)]
        while len(seen) < 2:
            await asyncio.sleep(0.01)
        slot.remove()
        # processing went on: calls still work
        assert await p.call("Size", "ay", (b"abc",)) == (3,)
        p.close()
        return len(got)

    assert run(main()) == 2
    exc = seen[0]["exception"]
    assert isinstance(exc, RuntimeError) and str(exc) == "callback failed on Ping"
    frames = [f.name for f in traceback.extract_tb(exc.__traceback__)]
    assert "broken_callback" in frames


def test_losing_the_connection_fails_what_is_pending(dbus_daemon: Any) -> None:
    async def main() -> tuple[Any, Any, Any]:
        p = Pair(dbus_daemon.address)
        stream = p.client.signals(interface=IFACE, member="Ping")
        pending = p.call("Wait", "d", (60.0,))
        while p.service.started == 0:
            await asyncio.sleep(0.01)
        reader = asyncio.ensure_future(stream.get())
        await asyncio.sleep(0)
        dbus_daemon.stop()
        results = await asyncio.gather(pending, reader, return_exceptions=True)
        with pytest.raises(ConnectionError):
            p.client.call(*DBUS, "GetId")
        after = p.client.closed, p.client.is_open()
        for b in (p.cbus, p.sbus):
            b.close()
        return results[0], results[1], after

    call_error, stream_error, (_closed, is_open) = run(main())
    assert isinstance(call_error, (NoReply, ConnectionError)), call_error
    assert isinstance(stream_error, ConnectionError), stream_error
    assert is_open is False


@pytest.mark.sandbox
def test_blocking_calls_from_another_thread_on_the_same_bus(sandbox_bus: Bus) -> None:
    # A blocking call holds the Bus while it waits, so the loop waits for it
    # too; replies it dispatches for the loop's calls still reach their Futures.
    bus = sandbox_bus
    (units,) = bus.call(S1, S1_PATH, MANAGER, "ListUnits")
    paths = [u[6] for u in units][:100]
    expected = [bus.get_property(S1, p, f"{S1}.Unit", "Id") for p in paths]

    async def main() -> tuple[list[Any], list[Any]]:
        abus = aio.attach(bus)
        blocking: list[Any] = []

        def worker() -> None:
            for p in paths * 2:
                blocking.append(bus.get_property(S1, p, f"{S1}.Unit", "Id"))

        t = threading.Thread(target=worker)
        t.start()
        results: list[Any] = []
        for _ in range(2):
            results += await asyncio.gather(
                *[abus.get_property(S1, p, f"{S1}.Unit", "Id") for p in paths]
            )
        while t.is_alive():
            await asyncio.sleep(0.01)
        t.join()
        abus.close()
        return blocking, results

    blocking, results = run(main())
    assert blocking == expected * 2
    assert results == expected * 2


def test_attach_close_and_reattach(dbus_daemon: Any) -> None:
    async def main() -> None:
        with Bus(dbus_daemon.address) as bus:
            abus = aio.attach(bus)
            pending = abus.call(*DBUS, "GetId")
            stream = abus.signals(interface=IFACE)
            abus.close()
            abus.close()
            with pytest.raises(ConnectionAbortedError):
                await pending
            with pytest.raises(StopAsyncIteration):
                await stream.__anext__()
            with pytest.raises(RuntimeError, match="closed"):
                abus.call(*DBUS, "GetId")
            # blocking use goes on; a new AsyncBus can be attached
            assert bus.call(*DBUS, "GetId")[0]
            again = aio.attach(bus)
            assert again is not abus
            assert (await again.call(*DBUS, "GetId"))[0]
            again.close()

    run(main())

    with Bus(dbus_daemon.address) as bus:
        loop1 = asyncio.new_event_loop()
        try:
            a = aio.attach(bus, loop=loop1)
            with pytest.raises(RuntimeError, match="another event loop"):
                run(_attach(bus))
            a.close()
        finally:
            loop1.close()


async def _attach(bus: Bus) -> aio.AsyncBus:
    return aio.attach(bus)


def test_match_rule_quoting() -> None:
    assert aio.match_rule(interface="a.b", member="C") == "type='signal',interface='a.b',member='C'"
    assert aio.match_rule(path="/x", args={0: "it's"}) == "type='signal',path='/x',arg0='it'\\''s'"
    with pytest.raises(ValueError):
        aio.match_rule(args={64: "x"})
    with pytest.raises(TypeError):
        aio.match_rule(member=5)  # type: ignore[arg-type]


def test_invalid_match_rule_is_a_value_error(dbus_daemon: Any) -> None:
    async def main() -> None:
        with Bus(dbus_daemon.address) as bus:
            abus = aio.attach(bus)
            with pytest.raises(ValueError, match="match rule"):
                abus.signals("type='signal',nonsense")
            abus.close()

    run(main())


def test_busy_errors_keep_their_class(dbus_daemon: Any) -> None:
    class Failing(serve.Interface, interface="org.pystemd.Failing1"):
        @serve.method()
        def Fail(self) -> None:
            raise BusError("org.pystemd.Error.Custom", "custom failure")

    async def main() -> Any:
        with Bus(dbus_daemon.address) as s, Bus(dbus_daemon.address) as c:
            serve.export(s, "/f", Failing())
            a, b = aio.attach(s), aio.attach(c)
            try:
                return await b.call(s.unique_name, "/f", "org.pystemd.Failing1", "Fail")
            except BusError as e:
                return e
            finally:
                a.close()
                b.close()

    err = run(main())
    assert isinstance(err, BusError) and (err.name, err.message) == (
        "org.pystemd.Error.Custom",
        "custom failure",
    )


def test_nothing_leaks_over_many_calls(dbus_daemon: Any) -> None:
    """Every C reference handed to sd-bus comes back: no AsyncCall, Match or
    PendingReply survives its call, fds stay flat."""
    import gc
    import os as _os

    from pystemd import _aio, _serve

    def census() -> dict[str, int]:
        gc.collect()
        kinds = (_aio.AsyncCall, _aio.Match, _serve.PendingReply)
        out = {k.__name__: 0 for k in kinds}
        for o in gc.get_objects():
            if type(o) in kinds:
                out[type(o).__name__] += 1
        return out

    async def main() -> tuple[dict[str, int], int, int]:
        p = Pair(dbus_daemon.address)
        fds = len(_os.listdir("/proc/self/fd"))
        for _ in range(3):
            ok = await asyncio.gather(*[p.call("Size", "ay", (b"x" * 10,)) for _ in range(400)])
            assert ok == [(10,)] * 400
            errors = await asyncio.gather(
                *[p.client.call(p.name, PATH, IFACE, "NoSuchMethod") for _ in range(100)],
                return_exceptions=True,
            )
            assert all(isinstance(e, UnknownMethod) for e in errors)
            doomed = [p.call("Wait", "d", (0.05,)) for _ in range(20)]
            for f in doomed:
                f.cancel()
            for _ in range(20):
                async with p.client.signals(interface=IFACE, member="Ping"):
                    pass
        # the cancelled calls had gone out: the server runs all 60 to the end
        while p.service.finished < 60:
            await asyncio.sleep(0.01)
        await p.client.call(*DBUS, "GetId")  # the server's last replies are out
        during = census()
        fds_after = len(_os.listdir("/proc/self/fd"))
        p.close()
        return during, fds, fds_after

    during, fds, fds_after = run(main())
    assert during == {"AsyncCall": 0, "Match": 0, "PendingReply": 0}
    assert fds_after == fds


# ---------------------------------------------------------------------------
# blocking calls on an attached Bus: the wake-up hook


def _emit(bus: Bus, value: int) -> None:
    # the echo peer sends the signal, then the reply: the signal arrives while
    # the blocking call waits, and sd_bus_call() queues it without dispatching
    bus.call(ECHO_NAME, ECHO_PATH, ECHO_IFACE, "Emit", "sv", ("Ping", Variant("u", value)))


@pytest.mark.parametrize("caller", ["coroutine", "thread"])
def test_a_signal_read_by_a_blocking_call_reaches_the_stream(
    dbus_daemon: Any, monkeypatch: pytest.MonkeyPatch, caller: str
) -> None:
    monkeypatch.setattr(aio, "WATCHDOG_S", None)  # nothing but the wake-up hook

    async def main(bus: Bus) -> tuple[Optional[int], Any, Any]:
        abus = aio.attach(bus)
        # the whole call inside sd_bus_call() with the GIL held, even on a
        # loaded machine: sd-bus reads the signal and queues it, unread
        bus.gil_hold_us = 30_000_000
        async with abus.signals(interface=ECHO_IFACE, member="Ping") as pings:
            await abus.call(*DBUS, "GetId")  # the match is installed, the loop idle
            assert abus._watchdog is None
            if caller == "coroutine":
                _emit(bus, 7)
                # the signal waits in sd-bus's read queue; the fd has nothing more
                queued = bus.get_timeout()
                assert pings.pending() == 0
            else:
                t = threading.Thread(target=_emit, args=(bus, 7))
                t.start()
                queued = 0
            msg = await pings.get(timeout=60)  # a hang guard, not a timing check
            if caller == "thread":
                t.join()
        abus.close()
        return queued, msg.member, msg.body()

    with EchoPeer(dbus_daemon.address), Bus(dbus_daemon.address) as bus:
        queued, member, body = run(main(bus))
    assert queued == 0  # get_timeout() 0: messages were queued, unread
    assert (member, body) == ("Ping", (7,))


def test_a_callback_deferred_by_a_blocking_call_runs_on_the_loop(
    dbus_daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A blocking call that outlasts gil_hold_us dispatches what arrives (a
    # Bus.match_signal callback is then deferred, not run): the loop runs it.
    monkeypatch.setattr(aio, "WATCHDOG_S", None)

    async def main(bus: Bus) -> tuple[Any, bool]:
        abus = aio.attach(bus)
        got: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        slot = bus.match_signal(
            None, ECHO_PATH, ECHO_IFACE, "Ping", lambda m: got.set_result(m.body())
        )
        await abus.call(*DBUS, "GetId")
        bus.gil_hold_us = 0  # every wait without the GIL: sd_bus_process() dispatches
        _emit(bus, 9)
        deferred = not got.done()
        body = await asyncio.wait_for(got, 60)
        slot.remove()
        abus.close()
        return body, deferred

    with EchoPeer(dbus_daemon.address), Bus(dbus_daemon.address) as bus:
        body, deferred = run(main(bus))
    assert deferred  # the callback did not run inside the blocking call
    assert body == (9,)


def test_the_wake_up_hook_is_installed_while_attached(dbus_daemon: Any) -> None:
    async def main(bus: Bus) -> list[Any]:
        seen = [bus._set_wakeup(None)]  # nothing attached
        abus = aio.attach(bus)
        hook = bus._set_wakeup(None)
        seen.append(hook == abus._on_left_behind)
        bus._set_wakeup(hook)
        abus.close()
        seen.append(bus._set_wakeup(None))  # removed by close()
        with pytest.raises(TypeError, match="callable or None"):
            bus._set_wakeup(5)  # type: ignore[arg-type]
        return seen

    with Bus(dbus_daemon.address) as bus:
        assert run(main(bus)) == [None, True, None]
