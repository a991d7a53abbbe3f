"""A minimal echo service written with jeepney (blocking), a second independent
D-Bus implementation.

    python jeepney_echo.py ADDRESS [NAME]

Owns NAME (default com.example.Echo), prints ``READY`` and answers every
method call with its own signature and body. dbus-fast's echo service drops
its connection when several large messages are in flight at once, so the
tests that fill socket buffers use this one.
"""

from __future__ import annotations

import sys

from jeepney import HeaderFields, MessageType, message_bus, new_method_return
from jeepney.io.blocking import open_dbus_connection


def main(address: str, name: str) -> None:
    conn = open_dbus_connection(bus=address)
    conn.send_and_get_reply(message_bus.RequestName(name))
    print("READY", flush=True)
    while True:
        msg = conn.receive()
        if msg.header.message_type == MessageType.method_call:
            sig = msg.header.fields.get(HeaderFields.signature, "")
            conn.send(new_method_return(msg, sig, msg.body))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "com.example.Echo")
