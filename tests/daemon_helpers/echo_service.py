"""A socket-activated echo service that keeps its connections across restarts.

    echo_service.py STATE_DIR

Takes its sockets from systemd (pystemd.daemon.listen_sockets_with_names):
the .socket unit's listeners (named "echo") and the connections an earlier
process of the service left in the fd store (named "conn-*"). Every accepted
connection goes into the fd store (FDSTORE=1, then the barrier, so systemd
holds it before the client hears back) and leaves it when the client hangs up
(FDSTOREREMOVE=1). Lines are answered with
"<pid>:<line>"; "crash" makes the process exit(1) (Restart=on-failure brings
it back). Datagrams are answered the same way. Each process appends what it
got to STATE_DIR/echo.jsonl.
"""

from __future__ import annotations

import os
import selectors
import socket
import sys
from pathlib import Path

from _common import append_report

from pystemd import daemon


def main() -> None:
    state = Path(sys.argv[1])
    pid = os.getpid()
    by_name = daemon.listen_sockets_with_names()
    append_report(
        state / "echo.jsonl",
        {
            "pid": pid,
            "fds": [
                [
                    name,
                    int(s.family),
                    int(s.type),
                    bool(s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)),
                ]
                for name, socks in by_name.items()
                for s in socks
            ],
        },
    )
    sel = selectors.DefaultSelector()
    restored = 0
    for name, socks in by_name.items():
        for s in socks:
            if name.startswith("conn-"):
                restored += 1
                sel.register(s, selectors.EVENT_READ, ("conn", name))
            elif s.type == socket.SOCK_DGRAM:
                sel.register(s, selectors.EVENT_READ, ("dgram", name))
            else:
                sel.register(s, selectors.EVENT_READ, ("listener", name))
    daemon.notify_ready(f"serving, {restored} connection(s) restored")
    accepted = 0
    while True:
        for key, _ in sel.select():
            kind, name = key.data
            s = key.fileobj
            assert isinstance(s, socket.socket)
            if kind == "listener":
                conn, _ = s.accept()
                accepted += 1
                conn_name = f"conn-{pid}-{accepted}"
                daemon.fd_store([conn], conn_name)
                daemon.notify_barrier(timeout=30)
                sel.register(conn, selectors.EVENT_READ, ("conn", conn_name))
            elif kind == "dgram":
                data, addr = s.recvfrom(4096)
                s.sendto(f"{pid}:".encode() + data, addr)
            else:
                data = s.recv(4096)
                if not data:  # the client went away: take it out of the store too
                    sel.unregister(s)
                    s.close()
                    daemon.fd_store_remove(name)
                    continue
                if data.strip() == b"crash":
                    os._exit(1)
                s.sendall(f"{pid}:".encode() + data)


if __name__ == "__main__":
    main()
