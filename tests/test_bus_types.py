"""Marshalling: every D-Bus type and nesting, round-tripped through dbus-fast.

The peer (tests/peers/echo_service.py) runs on a private dbus-daemon. ``Echo``
sends back what dbus-fast parsed, re-marshalled by dbus-fast (checks our
reader); ``Inspect`` returns dbus-fast's parse as JSON (checks our writer
against an independent parser). Hypothesis generates signatures and values.
"""

from __future__ import annotations

import base64
import json
import math
import os
import socket
from pathlib import PurePosixPath
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from peers import ECHO_IFACE, ECHO_NAME, ECHO_PATH, EchoPeer

from pystemd.bus import KEEP_VARIANTS, Bus, UnixFD, Variant, split_signature

E = (ECHO_NAME, ECHO_PATH, ECHO_IFACE)


@pytest.fixture(scope="module")
def echo_bus(dbus_daemon_session):
    with EchoPeer(dbus_daemon_session.address), Bus(dbus_daemon_session.address) as bus:
        yield bus


def echo(bus: Bus, sig: str, *args: Any, flags: int = 0) -> tuple[Any, ...]:
    return bus.call(*E, "Echo", sig, args, flags=flags)


def inspect(bus: Bus, sig: str, *args: Any) -> Any:
    got_sig, text = bus.call(*E, "Inspect", sig, args)
    assert got_sig == sig
    return json.loads(text)


def expect_json(sig: str, value: Any) -> Any:
    """What echo_service.normalise() makes of `value` sent as `sig` (no Variant wrapping
    for plain values: the caller passes Variant objects for 'v')."""
    t = sig[0]
    if t == "v":
        return {"v": value.signature, "value": expect_json(value.signature, value.value)}
    if sig == "ay":
        return {"ay": base64.b64encode(bytes(value)).decode()}
    if t == "a" and sig[1] == "{":
        k, v = split_signature(sig[2:-1])
        return [[expect_json(k, kk), expect_json(v, vv)] for kk, vv in value.items()]
    if t == "a":
        return [expect_json(sig[1:], x) for x in value]
    if t == "(":
        parts = split_signature(sig[1:-1])
        return [expect_json(p, x) for p, x in zip(parts, value)]
    if t == "d":
        return {"d": repr(float(value))}
    return value


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same Python types all the way down."""
    if type(a) is not type(b):
        return False
    if isinstance(a, Variant):
        return a.signature == b.signature and same(a.value, b.value)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return bool(a == b)


# -- every type by hand -------------------------------------------------------

CASES = [
    ("y", 0), ("y", 255), ("b", True), ("b", False),
    ("n", -32768), ("n", 32767), ("q", 0), ("q", 65535),
    ("i", -(2**31)), ("i", 2**31 - 1), ("u", 0), ("u", 2**32 - 1),
    ("x", -(2**63)), ("x", 2**63 - 1), ("t", 0), ("t", 2**64 - 1),
    ("d", 0.0), ("d", -1.5), ("d", 1e308), ("d", float("inf")), ("d", float("-inf")),
    ("s", ""), ("s", "héllo wörld ✓ 🐍"), ("o", "/"), ("o", "/org/freedesktop/systemd1/unit/a_2eservice"),
    ("g", ""), ("g", "a{sv}(iay)"),
    ("ay", b""), ("ay", bytes(range(256))),
    ("ab", [True, False]), ("an", [-1, 2]), ("aq", [1]), ("ai", [1, -2, 3]), ("au", [0, 2**32 - 1]),
    ("ax", [-(2**63)]), ("at", [2**64 - 1]), ("ad", [0.25, -0.0]),
    ("as", []), ("as", ["a", "", "ü"]), ("ao", ["/a", "/b/c"]), ("ag", ["s", "a{ss}"]),
    ("aay", [b"", b"\x00", b"ab"]), ("aas", [[], ["x"]]),
    ("a{ss}", {}), ("a{ss}", {"k": "v", "": "e"}), ("a{ib}", {1: True, -2: False}),
    ("a{tx}", {2**64 - 1: -1}), ("a{yd}", {3: 0.5}), ("a{os}", {"/p": "x"}), ("a{gs}", {"a{sv}": "y"}),
    ("a{s(ii)}", {"pt": (1, 2)}), ("a{sa{sv}}", {"outer": {"inner": Variant("u", 5)}}),
    ("aa{sv}", [{}, {"a": Variant("s", "x")}]), ("a(sv)", [("ExecStart", Variant("a(sasb)", [("/bin/true", ["true"], False)]))]),
    ("(i)", (1,)), ("(sib)", ("a", 2, True)), ("((y)(n))", ((1,), (-1,))), ("(a{sv}as)", ({}, [])),
    ("v", Variant("s", "in a variant")), ("v", Variant("ay", b"\xff")), ("v", Variant("v", Variant("i", 1))),
    ("v", Variant("a{sv}", {"deep": Variant("(ua(sv))", (1, [("x", Variant("b", True))]))})),
    ("av", [Variant("i", 1), Variant("s", "two"), Variant("ai", [3])]),
    ("a(ssssssouso)", [("a.service", "desc", "loaded", "active", "running", "", "/org/x", 0, "", "/")]),
]  # fmt: skip


@pytest.mark.parametrize("sig,value", CASES, ids=[f"{s}:{v!r}"[:60] for s, v in CASES])
def test_round_trip_every_type(echo_bus, sig, value) -> None:
    (back,) = echo(echo_bus, sig, value, flags=KEEP_VARIANTS)
    expected = tuple(value) if isinstance(value, tuple) else value
    assert same(back, expected), (back, expected)
    # what dbus-fast parsed is what we meant
    assert inspect(echo_bus, sig, value) == [json.loads(json.dumps(expect_json(sig, value)))]


def test_variants_are_unwrapped_by_default_and_kept_on_request(echo_bus) -> None:
    v = Variant("a{sv}", {"n": Variant("t", 2**40), "l": Variant("as", ["a"])})
    (plain,) = echo(echo_bus, "v", v)
    assert plain == {"n": 2**40, "l": ["a"]}
    (kept,) = echo(echo_bus, "v", v, flags=KEEP_VARIANTS)
    assert same(kept, v)


def test_repeated_strings_come_back_right_through_the_string_cache(echo_bus) -> None:
    # Short strings read from replies go through a direct-mapped cache (the
    # same str object when a string repeats from reply to reply). 6,000
    # distinct strings overflow it, so slots are taken over by colliding
    # strings; every value must still be exactly the one sent, every time.
    rows = [(f"unit-{i}.service", f"/org/x/{i}", "active" if i % 3 else "", "é" * (i % 40))
            for i in range(6000)]  # fmt: skip
    long = "x" * 65  # past the cache's length limit
    for _ in range(3):
        (got,) = echo(echo_bus, "a(soss)", rows)
        assert got == rows
        assert echo(echo_bus, "(ss)as", (long, "short"), ["short", long]) == (
            (long, "short"),
            ["short", long],
        )
    (first,) = echo(echo_bus, "a(soss)", rows[1:2])
    (again,) = echo(echo_bus, "a(soss)", rows[1:2])
    assert first == again == rows[1:2]
    assert again[0][0] is first[0][0]  # a repeat is the cached object


def test_empty_dict_stays_dict_and_list_of_dicts_stays_list(echo_bus) -> None:
    assert echo(echo_bus, "a{sv}", {}) == ({},)
    back = echo(echo_bus, "aa{sv}", [{"a": Variant("i", 1)}, {"b": Variant("i", 2)}, {}])
    assert back == ([{"a": 1}, {"b": 2}, {}],)
    assert echo(
        echo_bus, "av", [Variant("a{sv}", {}), Variant("a{sv}", {"x": Variant("i", 1)})]
    ) == ([{}, {"x": 1}],)


def test_many_arguments_and_plain_values_in_variants(echo_bus) -> None:
    args = (1, "s", [1, 2], {"k": [b"x"]}, True, 2**40, 1.5, (1, "x"))
    back = echo(echo_bus, "ivvvvvvv", *args)
    assert back == (1, "s", [1, 2], {"k": [b"x"]}, True, 2**40, 1.5, (1, "x"))
    # inferred types, as dbus-fast saw them
    seen = inspect(echo_bus, "vvvvv", True, 7, 2**40, 2**63, [1, "a"])
    assert [x["v"] for x in seen] == ["b", "i", "x", "t", "av"]


def test_inputs_accept_friendly_types(echo_bus) -> None:
    class Idx:
        def __index__(self) -> int:
            return 42

    assert echo(echo_bus, "u", Idx()) == (42,)
    assert echo(echo_bus, "s", b"bytes are utf-8") == ("bytes are utf-8",)
    assert echo(echo_bus, "s", PurePosixPath("/etc/hostname")) == ("/etc/hostname",)
    assert echo(echo_bus, "ay", bytearray(b"ab")) == (b"ab",)
    assert echo(echo_bus, "ay", memoryview(b"abc")[1:]) == (b"bc",)
    assert echo(echo_bus, "ay", [1, 2, 255]) == (b"\x01\x02\xff",)
    assert echo(echo_bus, "ai", (x for x in range(3))) == ([0, 1, 2],)
    assert echo(echo_bus, "(is)", [1, "x"]) == ((1, "x"),)
    assert echo(echo_bus, "d", 3) == (3.0,)
    assert echo(echo_bus, "b", 1) == (True,)


# -- unix fds ---------------------------------------------------------------


def test_fds_are_duplicated_and_owned(echo_bus) -> None:
    r, w = os.pipe()
    try:
        (fd,) = echo(echo_bus, "h", w)
        assert isinstance(fd, UnixFD) and fd.fileno() not in (r, w)
        os.write(fd.fileno(), b"through dbus-fast")
        assert os.read(r, 100) == b"through dbus-fast"
        n = fd.fileno()
        fd.close()
        with pytest.raises(OSError):
            os.fstat(n)
        # our own fd was not consumed by sending it
        os.fstat(w)
        # objects with fileno(), nested, several at once
        a, b = socket.socketpair()
        with a, b:
            (pair,) = echo(echo_bus, "(hah)", (a, [b, a]))
            assert [isinstance(x, UnixFD) for x in (pair[0], *pair[1])] == [True] * 3
            os.write(pair[0].fileno(), b"!")
            assert b.recv(1) == b"!"
            kept = pair[1][0].detach()
            del pair
            os.write(kept, b"?")  # still open after its UnixFD went away
            assert a.recv(1) == b"?"
            os.close(kept)
    finally:
        os.close(r)
        os.close(w)


def test_bad_fds_are_refused(echo_bus) -> None:
    with pytest.raises(ValueError, match="invalid file descriptor -1"):
        echo(echo_bus, "h", -1)
    with pytest.raises(TypeError, match="expected a file descriptor"):
        echo(echo_bus, "h", True)
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(OSError, match=f"append file descriptor {w}"):
        echo(echo_bus, "h", w)


# -- refusals: before anything is sent -------------------------------------------

BAD = [
    ("s", 5, TypeError, r"argument 0 \('s' of signature 's'\): expected str for 's', got int"),
    ("s", "a\0b", ValueError, "embedded NUL"),
    ("s", "\udcff", ValueError, "surrogates not allowed"),
    ("s", b"\xff\xfe", ValueError, "invalid UTF-8"),
    ("o", "not/a/path", ValueError, "invalid object path"),
    ("o", "/trailing/", ValueError, "invalid object path"),
    ("g", "a{vs}", ValueError, "invalid signature"),
    ("g", "(", ValueError, "invalid signature"),
    ("y", 256, OverflowError, r"256 out of range for 'y' \(0\.\.255\)"),
    ("y", -1, OverflowError, "out of range"),
    ("n", 2**15, OverflowError, "out of range"),
    ("q", -1, OverflowError, "out of range"),
    ("i", 2**31, OverflowError, "out of range"),
    ("u", -1, OverflowError, "out of range"),
    ("x", 2**63, OverflowError, "out of range"),
    ("t", 2**64, OverflowError, "out of range"),
    ("t", -1, OverflowError, "out of range"),
    ("i", 1.0, TypeError, "expected int for 'i', got float"),
    ("i", "1", TypeError, "expected int"),
    ("b", 2, TypeError, "expected bool"),
    ("b", "yes", TypeError, "expected bool"),
    ("d", "1.0", TypeError, "expected float"),
    ("d", 10**400, OverflowError, "too large"),
    ("ay", "text", TypeError, "expected a list for 'ay', got str"),
    ("as", "abc", TypeError, "expected a list for 'as', got str"),
    ("as", {"a": 1}, TypeError, "expected a list"),
    ("as", ["ok", 3], TypeError, r"at \[1\]: expected str"),
    ("au", [1, -1], OverflowError, r"at \[1\]: -1 out of range"),
    ("a{ss}", [("a", "b")], TypeError, "expected a mapping"),
    ("a{ss}", {"k": 1}, TypeError, r"at \['k'\]: expected str"),
    ("a{is}", {"k": "v"}, TypeError, "at key 'k': expected int"),
    ("(is)", (1,), ValueError, "has 2 members, got 1"),
    ("(is)", "is", TypeError, "expected a tuple"),
    ("a(sv)", [("a", Variant("s", "x")), ("b", object())], TypeError, r"at \[1\]\[1\]: cannot infer"),
    ("v", [], TypeError, "empty list"),
    ("v", {}, TypeError, "empty dict"),
    ("v", None, TypeError, "cannot infer a D-Bus type for NoneType"),
    ("aa{sv}", [{}, {"x": {"y": Variant("u", -5)}}], OverflowError, r"at \[1\]\['x'\]\['y'\]: -5 out of range"),
    ("a{sv}", {"a\0": 1}, ValueError, "key 'a\\\\x00': embedded NUL"),
]  # fmt: skip


@pytest.mark.parametrize("sig,value,exc,match", BAD, ids=[f"{b[0]}:{b[1]!r}"[:50] for b in BAD])
def test_bad_values_raise_before_sending(echo_bus, sig, value, exc, match) -> None:
    (before,) = echo_bus.call(*E, "Calls")
    with pytest.raises(exc, match=match) as ei:
        echo(echo_bus, sig, value)
    assert f"of signature '{sig}'" in str(ei.value)
    (after,) = echo_bus.call(*E, "Calls")
    assert after == before + 1  # only the Calls() call itself reached the peer


def test_signature_and_arity_errors(echo_bus) -> None:
    with pytest.raises(TypeError, match="takes 1 argument"):
        echo_bus.call(*E, "Echo", "s", ("a", "b"))
    with pytest.raises(TypeError, match="takes more than 1 argument"):
        echo_bus.call(*E, "Echo", "ss", ("a",))
    with pytest.raises(ValueError, match="invalid type code 'z'"):
        echo_bus.call(*E, "Echo", "z", (1,))
    with pytest.raises(ValueError, match="dict key must be a basic type"):
        echo_bus.call(*E, "Echo", "a{vs}", ({},))
    with pytest.raises(ValueError, match="signature longer than 255"):
        echo_bus.call(*E, "Echo", "i" * 256, [0] * 256)
    with pytest.raises(TypeError, match="argument\\(s\\) given but the signature is empty"):
        echo_bus.call(*E, "Echo", "", (1,))
    with pytest.raises(ValueError, match="variant signature must be one complete type"):
        Variant("ss", "x")
    with pytest.raises(TypeError, match="args must be a tuple or list, got str"):
        echo_bus.call(*E, "Echo", "s", "x")
    # the connection is fine afterwards
    assert echo(echo_bus, "s", "still here") == ("still here",)


def test_split_signature() -> None:
    assert split_signature("sa{sv}(ia(sv))vay") == ["s", "a{sv}", "(ia(sv))", "v", "ay"]
    assert split_signature("") == []
    with pytest.raises(ValueError):
        split_signature("a")


# -- hypothesis: signatures and values -----------------------------------------------

BASIC = "ybnqiuxtdsog"

_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=12)
_path = st.lists(st.from_regex(r"[A-Za-z0-9_]{1,6}", fullmatch=True), max_size=3).map(
    lambda parts: "/" + "/".join(parts)
)


def _types(depth: int) -> st.SearchStrategy[str]:
    basic = st.sampled_from(BASIC)
    if depth == 0:
        return basic
    sub = _types(depth - 1)
    return st.one_of(
        basic,
        st.just("v"),
        sub.map(lambda t: "a" + t),
        st.tuples(basic, sub).map(lambda kv: "a{" + kv[0] + kv[1] + "}"),
        st.lists(sub, min_size=1, max_size=3).map(lambda ts: "(" + "".join(ts) + ")"),
    )


TYPES = _types(3)
SIGNATURES = st.lists(TYPES, min_size=1, max_size=4).map("".join).filter(lambda s: len(s) <= 255)

_INT = {
    "y": (0, 255), "n": (-(2**15), 2**15 - 1), "q": (0, 2**16 - 1), "i": (-(2**31), 2**31 - 1),
    "u": (0, 2**32 - 1), "x": (-(2**63), 2**63 - 1), "t": (0, 2**64 - 1),
}  # fmt: skip


def values_for(sig: str) -> st.SearchStrategy[Any]:
    t = sig[0]
    if t in _INT:
        return st.integers(*_INT[t])
    if t == "b":
        return st.booleans()
    if t == "d":
        return st.floats(allow_nan=False)
    if t == "s":
        return _text
    if t == "o":
        return _path
    if t == "g":
        return st.lists(_types(1), max_size=3).map("".join)
    if t == "v":
        return _types(2).flatmap(lambda s: values_for(s).map(lambda v: Variant(s, v)))
    if sig == "ay":
        return st.binary(max_size=16)
    if t == "a" and sig[1] == "{":
        k, v = split_signature(sig[2:-1])
        return st.dictionaries(values_for(k), values_for(v), max_size=3)
    if t == "a":
        return st.lists(values_for(sig[1:]), max_size=3)
    if t == "(":
        return st.tuples(*[values_for(p) for p in split_signature(sig[1:-1])])
    raise AssertionError(sig)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), sig=SIGNATURES)
def test_hypothesis_round_trip(echo_bus, data, sig) -> None:
    parts = split_signature(sig)
    args = tuple(data.draw(values_for(p), label=p) for p in parts)
    back = echo(echo_bus, sig, *args, flags=KEEP_VARIANTS)
    assert same(back, args), (sig, args, back)
    expected = json.loads(json.dumps([expect_json(p, a) for p, a in zip(parts, args)]))
    assert inspect(echo_bus, sig, *args) == expected
