"""Run the same systemd.daemon calls under any implementation and print the results as JSON.

    python -I compat_probe.py [PATH_TO_PREPEND]

tests/test_daemon_compat.py runs it under python-systemd 235 (its own venv)
and under this checkout's drop-in, then compares the two outputs call by
call. Every fixture (sockets, FIFO, files, a NOTIFY_SOCKET receiver) is made
here, in the same order in both runs; results never contain fd numbers or
ports, only what the API returned, raised, or sent.
"""

from __future__ import annotations

import array
import json
import os
import pathlib
import shutil
import socket
import sys
import tempfile
from typing import Any, Callable

if len(sys.argv) > 1:
    sys.path.insert(0, sys.argv[1])

import systemd.daemon as d
from systemd.daemon import (
    _is_fifo,
    _is_mq,
    _is_socket,
    _is_socket_inet,
    _is_socket_sockaddr,
    _is_socket_unix,
    _listen_fds,
    _listen_fds_with_names,
)

RESULTS: dict[str, Any] = {}
TMP = tempfile.mkdtemp(prefix="daemon-compat-")


def outcome(fn: Callable[[], Any]) -> dict[str, Any]:
    try:
        value = fn()
    except BaseException as e:
        out: dict[str, Any] = {"raises": type(e).__name__, "message": str(e)}
        if isinstance(e, OSError):
            out["errno"] = e.errno
            out["filename"] = e.filename
        return out
    return {"returns": repr(value), "type": type(value).__name__}


def case(name: str, fn: Callable[[], Any]) -> None:
    assert name not in RESULTS, name
    RESULTS[name] = outcome(fn)


# --- fixtures ---------------------------------------------------------------

ux_a, ux_b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
dg_a, dg_b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
tcp_listen = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
tcp_listen.bind(("127.0.0.1", 0))
tcp_listen.listen(4)
tcp_port = tcp_listen.getsockname()[1]
tcp_bound = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
tcp_bound.bind(("127.0.0.1", 0))
tcp_bound_port = tcp_bound.getsockname()[1]
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("127.0.0.1", 0))
udp_port = udp.getsockname()[1]
try:
    tcp6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    tcp6.bind(("::1", 0))
    tcp6.listen(1)
    tcp6_port = tcp6.getsockname()[1]
except OSError:
    tcp6 = None
    tcp6_port = 0
unix_path = os.path.join(TMP, "bound.sock")
unix_bound = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
unix_bound.bind(unix_path)
unix_bound.listen(1)
abstract = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
abstract.bind(b"\0pystemd-compat-%d" % os.getpid())
fifo_path = os.path.join(TMP, "fifo")
os.mkfifo(fifo_path)
fifo_fd = os.open(fifo_path, os.O_RDONLY | os.O_NONBLOCK)
file_path = os.path.join(TMP, "file")
pathlib.Path(file_path).write_text("x")
file_fd = os.open(file_path, os.O_RDONLY)
pipe_r, pipe_w = os.pipe()
closed_fd = os.open(file_path, os.O_RDONLY)
os.close(closed_fd)

# --- module surface ---------------------------------------------------------

case("version", lambda: d.__version__)
case("LISTEN_FDS_START", lambda: d.LISTEN_FDS_START)
case("names", lambda: sorted(n for n in dir(d) if not n.startswith("__")))
case("_AF_UNSPEC", lambda: (int(d._AF_UNSPEC), type(d._AF_UNSPEC).__name__))
case("booted", lambda: d.booted())
case("booted(1)", lambda: d.booted(1))


def signature(fn: Any) -> str:
    import inspect

    try:
        sig = inspect.signature(fn)
    except ValueError:
        return "(builtin: no signature)"
    params = [p.replace(annotation=p.empty) for p in sig.parameters.values()]
    return str(sig.replace(parameters=params, return_annotation=sig.empty))


for fname in sorted(n for n in dir(d) if callable(getattr(d, n)) and not n.startswith("__")):
    case(f"signature {fname}", lambda n=fname: signature(getattr(d, n)))

# --- is_* -------------------------------------------------------------------

FDS = {
    "unix_stream": ux_a,
    "unix_dgram": dg_a,
    "tcp_listen": tcp_listen,
    "tcp_bound": tcp_bound,
    "udp": udp,
    "unix_bound": unix_bound,
    "abstract": abstract,
    "fifo": fifo_fd,
    "file": file_fd,
    "pipe": pipe_r,
    "closed": closed_fd,
    "minus1": -1,
}
if tcp6 is not None:
    FDS["tcp6"] = tcp6
for label, obj in FDS.items():
    fd = obj if isinstance(obj, int) else obj.fileno()
    for wrap, arg in (("obj", obj), ("fd", fd)):
        k = f"{label}/{wrap}"
        case(f"is_fifo {k}", lambda a=arg: d.is_fifo(a))
        case(f"is_fifo path {k}", lambda a=arg: d.is_fifo(a, fifo_path))
        case(f"is_fifo wrong path {k}", lambda a=arg: d.is_fifo(a, file_path))
        case(f"is_mq {k}", lambda a=arg: d.is_mq(a))
        case(f"is_socket {k}", lambda a=arg: d.is_socket(a))
        for fam in (socket.AF_UNIX, socket.AF_INET, socket.AF_INET6):
            for typ in (0, socket.SOCK_STREAM, socket.SOCK_DGRAM):
                for lis in (-1, 0, 1):
                    case(
                        f"is_socket {k} {int(fam)} {int(typ)} {lis}",
                        lambda a=arg, f=fam, t=typ, li=lis: d.is_socket(a, f, t, li),
                    )
        case(f"is_socket_inet {k}", lambda a=arg: d.is_socket_inet(a))
        case(f"is_socket_inet v4 {k}", lambda a=arg: d.is_socket_inet(a, socket.AF_INET))
        case(f"is_socket_inet v6 {k}", lambda a=arg: d.is_socket_inet(a, socket.AF_INET6))
        case(f"is_socket_inet port {k}", lambda a=arg: d.is_socket_inet(a, 0, 0, -1, tcp_port))
        case(f"is_socket_inet lis {k}", lambda a=arg: d.is_socket_inet(a, 0, 0, 1))
        case(f"is_socket_unix {k}", lambda a=arg: d.is_socket_unix(a))
        case(f"is_socket_unix path {k}", lambda a=arg: d.is_socket_unix(a, path=unix_path))
        case(f"is_socket_unix dgram {k}", lambda a=arg: d.is_socket_unix(a, socket.SOCK_DGRAM))
        case(f"is_socket_unix lis {k}", lambda a=arg: d.is_socket_unix(a, 0, 1))
        case(f"is_socket_sockaddr {k}", lambda a=arg: d.is_socket_sockaddr(a, "127.0.0.1"))
        case(
            f"is_socket_sockaddr port {k}",
            lambda a=arg: d.is_socket_sockaddr(a, f"127.0.0.1:{tcp_port}"),
        )

# the addresses ListenStream= syntax allows (and some it does not)
ADDRESSES = [
    "127.0.0.1", "127.0.0.1:{tcp}", "127.0.0.1:{udp}", "127.0.0.2:{tcp}", "{tcp}", "[::1]",
    "[::1]:{tcp6}", "[::1]:{tcp}", "::1", "lo:{tcp}", "lo", "nosuchif0:80", "", "xx", ":80",
    "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:99999999999",
    "127.0.0.1:0x50", "127.0.0.1: 80", "0", "65535", "65536", "[::1", "[::1]x", "[::1]:",
    "[zz]:80", "1.2.3", "256.0.0.1:80", "127.0.0.1:80:90",
]  # fmt: skip
for tmpl in ADDRESSES:
    addr = tmpl.format(tcp=tcp_port, udp=udp_port, tcp6=tcp6_port or 1)
    for label in ("tcp_listen", "udp", "tcp6", "unix_stream"):
        if label not in FDS:
            continue
        obj = FDS[label]
        case(f"sockaddr {tmpl!r} {label}", lambda o=obj, a=addr: d.is_socket_sockaddr(o, a))
        case(
            f"sockaddr {tmpl!r} {label} stream listening",
            lambda o=obj, a=addr: d.is_socket_sockaddr(o, a, socket.SOCK_STREAM, 0, 1),
        )
        case(
            f"sockaddr {tmpl!r} {label} dgram",
            lambda o=obj, a=addr: d.is_socket_sockaddr(o, a, socket.SOCK_DGRAM),
        )
        case(
            f"sockaddr {tmpl!r} {label} flowinfo",
            lambda o=obj, a=addr: d.is_socket_sockaddr(o, a, 0, 5),
        )

# argument conversion and positional-only private functions
fd0 = tcp_listen.fileno()
MORE: dict[str, Callable[[], Any]] = {
    "is_socket float": lambda: d.is_socket(1.5),
    "is_socket str": lambda: d.is_socket("3"),
    "is_socket None": lambda: d.is_socket(None),
    "is_socket big fd": lambda: d.is_socket(2**40),
    "is_socket big family": lambda: d.is_socket(fd0, 2**40),
    "is_socket bool": lambda: d.is_socket(True),
    "is_socket_inet port -1": lambda: d.is_socket_inet(fd0, 0, 0, -1, -1),
    "is_socket_inet port 65536": lambda: d.is_socket_inet(fd0, 0, 0, -1, 65536),
    "is_socket_inet port 65535": lambda: d.is_socket_inet(fd0, 0, 0, -1, 65535),
    "is_socket_sockaddr bytes": lambda: d.is_socket_sockaddr(fd0, b"127.0.0.1"),
    "is_socket_sockaddr nul": lambda: d.is_socket_sockaddr(fd0, "127.0.0.1\0"),
    "is_socket_sockaddr int": lambda: d.is_socket_sockaddr(fd0, 80),
    "is_socket_sockaddr bad fd": lambda: d.is_socket_sockaddr(-1, "127.0.0.1"),
    "is_socket_sockaddr bad fd bad addr": lambda: d.is_socket_sockaddr(-1, "xx"),
    "is_fifo pathlike": lambda: d.is_fifo(fifo_fd, pathlib.Path(fifo_path)),
    "is_fifo bytes path": lambda: d.is_fifo(fifo_fd, os.fsencode(fifo_path)),
    "is_fifo int path": lambda: d.is_fifo(fifo_fd, 5),
    "is_fifo nul path": lambda: d.is_fifo(fifo_fd, "/tmp/a\0b"),
    "is_fifo missing path": lambda: d.is_fifo(fifo_fd, os.path.join(TMP, "missing")),
    "is_fifo closed with path": lambda: d.is_fifo(closed_fd, fifo_path),
    "is_mq closed with path": lambda: d.is_mq(closed_fd, "/mq"),
    "is_mq path": lambda: d.is_mq(fifo_fd, "/mq"),
    "is_socket_unix bytes path": lambda: d.is_socket_unix(
        unix_bound, 0, -1, os.fsencode(unix_path)
    ),
    "is_socket_unix pathlike": lambda: d.is_socket_unix(unix_bound, 0, -1, pathlib.Path(unix_path)),
    "is_socket_unix abstract": lambda: d.is_socket_unix(abstract, 0, -1, abstract.getsockname()),
    "is_socket_unix closed path": lambda: d.is_socket_unix(closed_fd, 0, -1, unix_path),
    "is_socket_unix empty path": lambda: d.is_socket_unix(unix_bound, 0, -1, ""),
    "_is_socket kw": lambda: _is_socket(fd0, family=2),
    "_is_fifo kw": lambda: _is_fifo(fifo_fd, path=fifo_path),
    "_is_mq kw": lambda: _is_mq(fd=fifo_fd),
    "_is_socket_inet kw": lambda: _is_socket_inet(fd0, port=1),
    "_is_socket_unix kw": lambda: _is_socket_unix(fd0, type=1),
    "_is_socket_sockaddr kw": lambda: _is_socket_sockaddr(fd0, address="127.0.0.1"),
    "_is_socket too many": lambda: _is_socket(fd0, 0, 0, -1, 5),
    "_is_socket none": lambda: _is_socket(),
    "_is_fifo -1": lambda: _is_fifo(-1),
    "_is_fifo -1 path": lambda: _is_fifo(-1, "/x"),
    "_is_socket_sockaddr flowinfo v4": lambda: _is_socket_sockaddr(fd0, "127.0.0.1", 0, 123456),
    "_is_socket_sockaddr flowinfo v6": lambda: _is_socket_sockaddr(fd0, "[::1]", 0, 123456),
    "_is_socket_sockaddr flowinfo neg": lambda: _is_socket_sockaddr(fd0, "[::1]", 0, -1),
    "_listen_fds kw": lambda: _listen_fds(unset_environment=False),
    "_listen_fds_with_names kw": lambda: _listen_fds_with_names(unset_environment=False),
    "_listen_fds 2 args": lambda: _listen_fds(False, 1),
}
for name, fn in MORE.items():
    case(name, fn)

# --- listen_fds ------------------------------------------------------------


def set_env(**kw: str | None) -> None:
    for k, v in kw.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


me = str(os.getpid())
LISTEN_ENVS: dict[str, dict[str, str | None]] = {
    "none": {"LISTEN_FDS": None, "LISTEN_PID": None, "LISTEN_FDNAMES": None},
    "3 fds": {"LISTEN_FDS": "3", "LISTEN_PID": me, "LISTEN_FDNAMES": None},
    "1 fd named": {"LISTEN_FDS": "1", "LISTEN_PID": me, "LISTEN_FDNAMES": "cmds"},
    "3 fds named": {"LISTEN_FDS": "3", "LISTEN_PID": me, "LISTEN_FDNAMES": "cmds:data:errs"},
    "names short": {"LISTEN_FDS": "3", "LISTEN_PID": me, "LISTEN_FDNAMES": "a:b"},
    "names long": {"LISTEN_FDS": "1", "LISTEN_PID": me, "LISTEN_FDNAMES": "a:b"},
    "other pid": {"LISTEN_FDS": "2", "LISTEN_PID": "1", "LISTEN_FDNAMES": None},
    "no pid": {"LISTEN_FDS": "2", "LISTEN_PID": None, "LISTEN_FDNAMES": None},
    "bad count": {"LISTEN_FDS": "abc", "LISTEN_PID": me, "LISTEN_FDNAMES": None},
    "zero": {"LISTEN_FDS": "0", "LISTEN_PID": me, "LISTEN_FDNAMES": None},
    "negative": {"LISTEN_FDS": "-1", "LISTEN_PID": me, "LISTEN_FDNAMES": None},
    "closed fds": {"LISTEN_FDS": "500", "LISTEN_PID": me, "LISTEN_FDNAMES": None},
    "bad pid": {"LISTEN_FDS": "1", "LISTEN_PID": "x", "LISTEN_FDNAMES": None},
}
CALLS: dict[str, Callable[[], Any]] = {
    "listen_fds()": lambda: d.listen_fds(),
    "listen_fds(False)": lambda: d.listen_fds(False),
    "listen_fds(True)": lambda: d.listen_fds(True),
    "listen_fds_with_names()": lambda: d.listen_fds_with_names(),
    "listen_fds_with_names(False)": lambda: d.listen_fds_with_names(False),
    "_listen_fds()": lambda: _listen_fds(),
    "_listen_fds_with_names()": lambda: _listen_fds_with_names(),
    "_listen_fds_with_names(True)": lambda: _listen_fds_with_names(True),
}
for env_name, env in LISTEN_ENVS.items():
    for call_name, fn in CALLS.items():
        set_env(**env)
        # twice: the first call may unset the environment for the second
        case(f"{env_name}: {call_name} #1", fn)
        case(f"{env_name}: {call_name} #2", fn)
        case(f"{env_name}: {call_name} env after", lambda: os.getenv("LISTEN_FDS"))
set_env(**LISTEN_ENVS["none"])

# --- notify ----------------------------------------------------------------

NOTIFY_CALLS: dict[str, Callable[[], Any]] = {
    "READY=1": lambda: d.notify("READY=1"),
    "multi": lambda: d.notify("READY=1\nSTATUS=up and running\n"),
    "empty": lambda: d.notify(""),
    "garbage": lambda: d.notify("this is not an assignment"),
    "utf8": lambda: d.notify("STATUS=caf\u00e9 \u2603"),
    "bytes": lambda: d.notify(b"READY=1"),
    "nul": lambda: d.notify("READY=1\0X"),
    "surrogate": lambda: d.notify("STATUS=\udcff"),
    "int": lambda: d.notify(5),
    "no args": lambda: d.notify(),
    "unset=[]": lambda: d.notify("X_A=1", []),
    "pid me": lambda: d.notify("X_A=1", pid=os.getpid()),
    "pid -1": lambda: d.notify("X_A=1", pid=-1),
    "pid huge": lambda: d.notify("X_A=1", pid=2**40),
    "pid float": lambda: d.notify("X_A=1", pid=1.0),
    "pid str": lambda: d.notify("X_A=1", pid="1"),
    "fds []": lambda: d.notify("FDSTORE=1", fds=[]),
    "fds [file]": lambda: d.notify("FDSTORE=1", fds=[file_fd]),
    "fds (file, pipe)": lambda: d.notify("FDSTORE=1", fds=(file_fd, pipe_r)),
    "fds closed": lambda: d.notify("FDSTORE=1", fds=[closed_fd]),
    "fds -1": lambda: d.notify("FDSTORE=1", fds=[-1]),
    "fds float": lambda: d.notify("FDSTORE=1", fds=[1.0]),
    "fds socket obj": lambda: d.notify("FDSTORE=1", fds=[ux_a]),
    "fds huge": lambda: d.notify("FDSTORE=1", fds=[2**40]),
    "fds huger": lambda: d.notify("FDSTORE=1", fds=[2**70]),
    "fds int": lambda: d.notify("FDSTORE=1", fds=5),
    "fds set": lambda: d.notify("FDSTORE=1", fds={1}),
    "fds gen": lambda: d.notify("FDSTORE=1", fds=(x for x in [1])),
    "pid+fds": lambda: d.notify("FDSTORE=1", pid=os.getpid(), fds=[file_fd]),
    "kw status": lambda: d.notify(status="READY=1"),
    "kw unknown": lambda: d.notify("READY=1", ready=1),
    "5 args": lambda: d.notify("READY=1", False, 0, None, 1),
}


def receiver() -> tuple[socket.socket, str]:
    path = os.path.join(TMP, "notify.sock")
    if os.path.exists(path):
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.setblocking(False)
    return s, path


def drain(s: socket.socket) -> list[Any]:
    got = []
    while True:
        fds = array.array("i")
        try:
            msg, anc, _flags, _addr = s.recvmsg(65536, socket.CMSG_SPACE(16 * fds.itemsize))
        except BlockingIOError:
            return got
        n = 0
        for level, typ, data in anc:
            if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
                n += len(fds)
                for fd in fds:
                    os.close(fd)
        got.append([msg.decode("utf-8", "replace"), n])


recv, recv_path = receiver()
NOTIFY_SOCKETS = {
    "unset": None,
    "receiver": recv_path,
    "/dev/null": "/dev/null",
    "missing": os.path.join(TMP, "missing.sock"),
    "relative": "relative.sock",
    "abstract missing": "@pystemd-compat-nothing-here",
    "directory": TMP,
    "empty": "",
}
for sock_name, value in NOTIFY_SOCKETS.items():
    for call_name, fn in NOTIFY_CALLS.items():
        set_env(NOTIFY_SOCKET=value)
        case(f"notify {sock_name}: {call_name}", fn)
        case(f"notify {sock_name}: {call_name} received", lambda: drain(recv))

for sock_name in ("receiver", "unset"):
    set_env(NOTIFY_SOCKET=NOTIFY_SOCKETS[sock_name])
    case(f"unset {sock_name} #1", lambda: d.notify("X_A=1", True))
    case(f"unset {sock_name} #2", lambda: d.notify("X_A=2"))
    case(f"unset {sock_name} received", lambda: drain(recv))
    case(f"unset {sock_name} os.environ", lambda: os.environ.get("NOTIFY_SOCKET"))
    case(f"unset {sock_name} getenv", lambda: os.getenv("NOTIFY_SOCKET"))

out = json.dumps({"module": d.__file__, "results": RESULTS}, indent=0, sort_keys=True)
sys.stdout.write(out.replace(TMP, "<tmp>") + "\n")
shutil.rmtree(TMP, ignore_errors=True)
