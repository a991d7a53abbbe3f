"""A socket-activated process, started by tests/test_daemon.py with fds 3.. and LISTEN_*.

    activated_child.py MODE

Prints one JSON line describing what pystemd.daemon handed it, then (mode
``serve``) answers one connection on each passed listening stream socket with
``b"child:" + what it read``. Modes: ``serve`` (listen_sockets_with_names),
``fds`` (listen_fds / listen_fds_with_names without unsetting), ``strict``
(listen_sockets on a set that holds a non-socket: must raise).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys


def describe(fd: int) -> dict[str, object]:
    return {"fd": fd, "cloexec": bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)}


def main() -> int:
    sys.path.insert(0, os.environ["PYSTEMD_REPO"])
    from pystemd import daemon

    mode = sys.argv[1]
    out: dict[str, object] = {"pid": os.getpid()}
    if mode == "fds":
        out["listen_fds"] = daemon.listen_fds(False)
        out["with_names"] = {str(k): v for k, v in daemon.listen_fds_with_names(False).items()}
        out["fd_info"] = [describe(fd) for fd in daemon.listen_fds(True)]
        out["after_unset"] = daemon.listen_fds()
        out["env_left"] = sorted(k for k in os.environ if k.startswith("LISTEN_"))
    elif mode == "strict":
        try:
            daemon.listen_sockets()
        except ValueError as e:
            out["error"] = str(e)
        out["env_left"] = sorted(k for k in os.environ if k.startswith("LISTEN_"))
    elif mode == "serve":
        by_name = daemon.listen_sockets_with_names()
        out["sockets"] = {
            name: [
                {
                    "fd": s.fileno(),
                    "family": int(s.family),
                    "type": int(s.type),
                    "listening": bool(s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)),
                }
                for s in socks
            ]
            for name, socks in by_name.items()
        }
        out["env_left"] = sorted(k for k in os.environ if k.startswith("LISTEN_"))
        print(json.dumps(out), flush=True)
        for socks in by_name.values():
            for s in socks:
                if s.type == socket.SOCK_STREAM and s.getsockopt(
                    socket.SOL_SOCKET, socket.SO_ACCEPTCONN
                ):
                    conn, _ = s.accept()
                    with conn:
                        conn.sendall(b"child:" + conn.recv(100))
        return 0
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
