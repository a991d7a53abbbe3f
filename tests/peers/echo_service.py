"""An echo service written with dbus-fast: an independent D-Bus implementation.

    python echo_service.py ADDRESS [NAME]

Connects to ADDRESS, owns NAME (default com.example.Echo), prints ``READY``
and serves, at /com/example/Echo, interface com.example.Echo:

* ``Echo(anything)``: replies with the same signature and body (fds included),
  so what comes back was parsed and re-marshalled by dbus-fast;
* ``Inspect(anything)``: replies ``(s signature, s json)``, the body as
  dbus-fast parsed it, normalised to JSON (see ``normalise``), so a test can
  check what pystemd marshalled against an independent parser;
* ``Sleep(d seconds)``: replies after that long (other calls are served
  meanwhile);
* ``Fail(s name, s text)``: replies with that D-Bus error;
* ``Emit(s member, v value)``: emits signal com.example.Echo.<member> whose
  body is the variant's value, and replies;
* ``Calls()``: how many method calls on com.example.Echo it has received
  (this one included), so a test can prove a refused call was never sent;
* ``Quit()``;

and org.freedesktop.DBus.Properties for com.example.Echo (Get, GetAll, Set;
Set emits PropertiesChanged).
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import sys
from typing import Any

from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus

PATH = "/com/example/Echo"
IFACE = "com.example.Echo"
PROPS = "org.freedesktop.DBus.Properties"


def normalise(value: Any) -> Any:
    """dbus-fast values -> JSON: bytes as {"ay": base64}, Variant as
    {"v": sig, "value": ...}, dict as [[k, v], ...] in order, float as
    {"d": repr} (inf/-inf survive), lists (arrays and structs) as lists."""
    if isinstance(value, Variant):
        return {"v": value.signature, "value": normalise(value.value)}
    if isinstance(value, (bytes, bytearray)):
        return {"ay": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, dict):
        return [[normalise(k), normalise(v)] for k, v in value.items()]
    if isinstance(value, (list, tuple)):
        return [normalise(v) for v in value]
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return {"d": "nan" if math.isnan(value) else repr(value)}
    return value


async def main(address: str, name: str) -> None:
    bus = await MessageBus(bus_address=address, negotiate_unix_fd=True).connect()
    done = asyncio.get_running_loop().create_future()
    props: dict[str, Variant] = {
        "Name": Variant("s", "echo"),
        "Count": Variant("u", 7),
        "Ratio": Variant("d", 0.5),
        "Blob": Variant("ay", b"\x00\x01\xff"),
        "Table": Variant("a{sv}", {"a": Variant("i", -1), "b": Variant("as", ["x", "y"])}),
        "Empty": Variant("a{ss}", {}),
    }

    calls = 0
    tasks: set[asyncio.Task[None]] = set()

    async def later(msg: Message, seconds: float) -> None:
        await asyncio.sleep(seconds)
        await bus.send(Message.new_method_return(msg, "d", [seconds]))

    def handler(msg: Message) -> Any:
        if msg.message_type != MessageType.METHOD_CALL or msg.path != PATH:
            return None
        if msg.interface == IFACE:
            nonlocal calls
            calls += 1
            m = msg.member
            if m == "Calls":
                return Message.new_method_return(msg, "u", [calls])
            if m == "Echo":
                return Message.new_method_return(msg, msg.signature, msg.body, msg.unix_fds)
            if m == "Inspect":
                return Message.new_method_return(
                    msg, "ss", [msg.signature, json.dumps(normalise(msg.body))]
                )
            if m == "Sleep":
                task = asyncio.ensure_future(later(msg, float(msg.body[0])))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                return True
            if m == "Fail":
                return Message.new_error(msg, msg.body[0], msg.body[1])
            if m == "Emit":
                member, var = msg.body
                bus.send(Message.new_signal(PATH, IFACE, member, var.signature, [var.value]))
                return Message.new_method_return(msg)
            if m == "Quit":
                done.set_result(None)
                return Message.new_method_return(msg)
            return Message.new_error(msg, "org.freedesktop.DBus.Error.UnknownMethod", m or "")
        if msg.interface == PROPS:
            args = msg.body
            if args and args[0] != IFACE:
                return Message.new_error(
                    msg, "org.freedesktop.DBus.Error.UnknownInterface", args[0]
                )
            if msg.member == "Get":
                if args[1] not in props:
                    return Message.new_error(
                        msg, "org.freedesktop.DBus.Error.UnknownProperty", args[1]
                    )
                return Message.new_method_return(msg, "v", [props[args[1]]])
            if msg.member == "GetAll":
                return Message.new_method_return(msg, "a{sv}", [props])
            if msg.member == "Set":
                props[args[1]] = args[2]
                bus.send(
                    Message.new_signal(
                        PATH,
                        PROPS,
                        "PropertiesChanged",
                        "sa{sv}as",
                        [IFACE, {args[1]: args[2]}, []],
                    )
                )
                return Message.new_method_return(msg)
        return None

    bus.add_message_handler(handler)
    await bus.request_name(name)
    print("READY", flush=True)
    await done
    bus.disconnect()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else IFACE))
