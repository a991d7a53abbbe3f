# cython: freethreading_compatible=False
"""Thin layer over <systemd/sd-daemon.h>: one function per C verb.

Both façades sit on this module: :mod:`pystemd.daemon` (validation, helpers,
watchdog, sockets) and :mod:`systemd.daemon` (the python-systemd 235 drop-in).
Arguments here are already C-shaped: fds are ints, states and paths are
``bytes``. Every return code goes through ``pystemd._errors``; ``what`` names
the thing an error is about (it becomes the ``filename`` of the ``OSError``;
for the checks given a path it defaults to the path, as python-systemd does).

GIL: sending a notification is a blocking ``sendmsg()`` on a datagram socket
(it waits when the service manager's queue is full) and the barrier waits for
the manager, so both run without the GIL. An ``EINTR`` is retried after
``PyErr_CheckSignals()``, so a signal handler that raises (Ctrl-C) interrupts
the call. The ``sd_is_*`` checks are a ``fstat``/``getsockname`` away and
keep the GIL, except the ones given a path (they ``stat()`` it).
"""

from cpython.exc cimport PyErr_CheckSignals
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport uint16_t, uint32_t, uint64_t, UINT64_MAX
from libc.stdlib cimport free
from libc.string cimport memchr, memset, strlen
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC
from posix.types cimport pid_t

from libsystemd.sd_daemon cimport *
from pystemd._errors cimport check, check_ctx

cdef extern from "pystemd/compat.h":
    pass

cdef extern from "errno.h":
    int errno
    enum:
        EINTR
        EINVAL
        ERANGE

cdef extern from "stdlib.h" nogil:
    int unsetenv(const char *name)
    unsigned long strtoul(const char *nptr, char **endptr, int base)

cdef extern from "unistd.h" nogil:
    int access(const char *path, int mode)
    enum:
        F_OK

cdef extern from "sys/socket.h" nogil:
    ctypedef unsigned short sa_family_t
    enum:
        AF_INET
        AF_INET6

cdef extern from "netinet/in.h" nogil:
    ctypedef uint32_t in_addr_t
    ctypedef uint16_t in_port_t
    struct in_addr:
        in_addr_t s_addr
    struct in6_addr:
        unsigned char s6_addr[16]
    struct sockaddr_in:
        sa_family_t sin_family
        in_port_t sin_port
        in_addr sin_addr
    struct sockaddr_in6:
        sa_family_t sin6_family
        in_port_t sin6_port
        uint32_t sin6_flowinfo
        in6_addr sin6_addr
        uint32_t sin6_scope_id

cdef extern from "arpa/inet.h" nogil:
    uint16_t htons(uint16_t)
    uint32_t htonl(uint32_t)
    int inet_pton(int af, const char *src, void *dst)

cdef extern from "net/if.h" nogil:
    enum:
        IF_NAMESIZE
    unsigned int if_nametoindex(const char *ifname)


LISTEN_FDS_START = SD_LISTEN_FDS_START

__all__ = [
    "LISTEN_FDS_START",
    "booted",
    "is_fifo",
    "is_mq",
    "is_socket",
    "is_socket_inet",
    "is_socket_sockaddr",
    "is_socket_unix",
    "is_special",
    "listen_fds",
    "listen_fds_with_names",
    "notify",
    "notify_barrier",
    "parse_sockaddr",
    "pid_notify",
    "pid_notify_with_fds",
    "watchdog_enabled",
]


cdef inline const char *_cstr(bytes b, str what) except NULL:
    # A C string must not be cut short silently at an embedded NUL.
    if memchr(<const char *>b, 0, len(b)) != NULL:
        raise ValueError(f"embedded null character in {what}")
    return b


cdef inline object _path_ctx(object path):
    if path is None:
        return None
    return (<bytes>path).decode("utf-8", "surrogateescape")


# --------------------------------------------------------------------------
# sd_booted

def booted():
    """sd_booted(): True when the system was booted with systemd."""
    return check(sd_booted()) > 0


# --------------------------------------------------------------------------
# notifications

cdef int _send(pid_t pid, bint use_pid, const char *state, const int *fds, unsigned n_fds,
               bint with_fds) noexcept nogil:
    # unset_environment is always 0 here: the caller unsets after the last retry.
    if with_fds:
        return sd_pid_notify_with_fds(pid, 0, state, fds, n_fds)
    if use_pid:
        return sd_pid_notify(pid, 0, state)
    return sd_notify(0, state)


cdef object _notify(pid_t pid, bint use_pid, bint unset_environment, bytes state, object fds,
                    object what):
    cdef const char *s = _cstr(state, "notification state")
    cdef int *arr = NULL
    cdef Py_ssize_t i, n = 0
    cdef int r
    try:
        if fds is not None:
            n = len(fds)
            if n > 0:
                arr = <int *>PyMem_Malloc(n * sizeof(int))
                if arr == NULL:
                    raise MemoryError()
                for i in range(n):
                    arr[i] = fds[i]
        while True:
            with nogil:
                r = _send(pid, use_pid, s, arr, <unsigned>n, fds is not None)
            if r != -EINTR:
                break
            PyErr_CheckSignals()
        check_ctx(r, what)
        return r > 0
    finally:
        PyMem_Free(arr)
        if unset_environment:
            unsetenv("NOTIFY_SOCKET")


def notify(bint unset_environment, bytes state not None, what=None):
    """sd_notify(unset_environment, state) -> bool.

    True when the message was sent, False when ``$NOTIFY_SOCKET`` is not set.
    """
    return _notify(0, False, unset_environment, state, None, what)


def pid_notify(pid_t pid, bint unset_environment, bytes state not None, what=None):
    """sd_pid_notify(pid, unset_environment, state) -> bool."""
    return _notify(pid, True, unset_environment, state, None, what)


def pid_notify_with_fds(pid_t pid, bint unset_environment, bytes state not None, fds, what=None):
    """sd_pid_notify_with_fds(pid, unset_environment, state, fds) -> bool.

    ``fds`` is a sequence of ints (it may be empty).
    """
    if fds is None:
        raise TypeError("fds must be a sequence of ints, not None")
    return _notify(pid, True, unset_environment, state, fds, what)


cdef inline uint64_t _now_us() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <uint64_t>ts.tv_sec * 1000000 + <uint64_t>ts.tv_nsec // 1000


def notify_barrier(bint unset_environment, uint64_t timeout_usec, what=None):
    """sd_notify_barrier(unset_environment, timeout_usec) -> bool.

    Waits (without the GIL) until the manager has processed every message
    sent before. ``UINT64_MAX`` waits forever. False when ``$NOTIFY_SOCKET``
    is not set; ``TimeoutError`` when the manager did not answer in time.
    """
    cdef int r
    cdef uint64_t deadline = UINT64_MAX, now, left = timeout_usec
    if timeout_usec != UINT64_MAX:
        deadline = _now_us() + timeout_usec
    try:
        while True:
            with nogil:
                r = sd_notify_barrier(0, left)
            if r != -EINTR:
                break
            PyErr_CheckSignals()
            if deadline != UINT64_MAX:
                now = _now_us()
                left = deadline - now if deadline > now else 0
        check_ctx(r, what)
        return r > 0
    finally:
        if unset_environment:
            unsetenv("NOTIFY_SOCKET")


def watchdog_enabled(bint unset_environment, what=None):
    """sd_watchdog_enabled(unset_environment) -> microseconds, 0 when not enabled."""
    cdef uint64_t usec = 0
    cdef int r = sd_watchdog_enabled(unset_environment, &usec)
    check_ctx(r, what)
    return usec if r > 0 else 0


# --------------------------------------------------------------------------
# socket activation

def listen_fds(bint unset_environment):
    """sd_listen_fds(unset_environment) -> number of fds passed from fd 3 on."""
    return check(sd_listen_fds(unset_environment))


def listen_fds_with_names(bint unset_environment):
    """sd_listen_fds_with_names(unset_environment) -> list of names, one per fd from fd 3 on."""
    cdef char **names = NULL
    cdef int i, r = sd_listen_fds_with_names(unset_environment, &names)
    out = []
    try:
        check(r)
        if names != NULL:
            for i in range(r):
                if names[i] == NULL:
                    break
                out.append(names[i][:strlen(names[i])].decode("utf-8"))
    finally:
        if names != NULL:
            i = 0
            while names[i] != NULL:
                free(names[i])
                i += 1
            free(names)
    return out


# --------------------------------------------------------------------------
# what is this fd?

ctypedef int (*_fd_path_test)(int fd, const char *path) noexcept nogil


cdef bint _test_fd_path(_fd_path_test test, int fd, object path, object what) except -1:
    # sd_is_fifo/sd_is_special/sd_is_mq: a path makes it stat() the file
    # (without the GIL); the answer or a checked error
    cdef const char *p = NULL
    cdef int r
    if path is None:
        r = test(fd, NULL)
    else:
        p = _cstr(path, "path")
        with nogil:
            r = test(fd, p)
    check_ctx(r, _path_ctx(path) if what is None else what)
    return r > 0


def is_fifo(int fd, path=None, what=None):
    """sd_is_fifo(fd, path) -> bool. ``path`` is bytes or None."""
    return _test_fd_path(sd_is_fifo, fd, path, what)


def is_special(int fd, path=None, what=None):
    """sd_is_special(fd, path) -> bool (a special file such as /proc/kmsg or a device)."""
    return _test_fd_path(sd_is_special, fd, path, what)


def is_mq(int fd, path=None, what=None):
    """sd_is_mq(fd, path) -> bool (a POSIX message queue)."""
    return _test_fd_path(sd_is_mq, fd, path, what)


def is_socket(int fd, int family, int type, int listening, what=None):
    """sd_is_socket(fd, family, type, listening) -> bool."""
    return check_ctx(sd_is_socket(fd, family, type, listening), what) > 0


def is_socket_inet(int fd, int family, int type, int listening, uint16_t port, what=None):
    """sd_is_socket_inet(fd, family, type, listening, port) -> bool."""
    return check_ctx(sd_is_socket_inet(fd, family, type, listening, port), what) > 0


def is_socket_unix(int fd, int type, int listening, path=None, what=None):
    """sd_is_socket_unix(fd, type, listening, path, len(path)) -> bool.

    ``path`` is bytes; one starting with a NUL byte names an abstract socket.
    """
    cdef const char *p = NULL
    cdef size_t n = 0
    if path is not None:
        if not isinstance(path, bytes):
            raise TypeError(f"path must be bytes, not {path.__class__.__name__}")
        p = <bytes>path
        n = len(<bytes>path)
        if n > 0 and p[0] != 0:
            _cstr(path, "path")
    r = sd_is_socket_unix(fd, type, listening, p, n)
    check_ctx(r, _path_ctx(path) if what is None else what)
    return r > 0


def is_socket_sockaddr(int fd, int type, bytes sockaddr not None, int listening, what=None):
    """sd_is_socket_sockaddr(fd, type, sockaddr, listening) -> bool.

    ``sockaddr`` is a raw ``struct sockaddr_in``/``sockaddr_in6``, e.g. from
    :func:`parse_sockaddr`.
    """
    cdef const char *a = sockaddr
    cdef int r = sd_is_socket_sockaddr(fd, type, <const void *>a, <unsigned>len(sockaddr), listening)
    return check_ctx(r, what) > 0


# --------------------------------------------------------------------------
# "ListenStream=" style addresses -> struct sockaddr (the syntax python-systemd
# 235 accepts: "1.2.3.4", "1.2.3.4:80", "[::1]", "[::1]:80", "80", "eth0:80")

cdef int _parse_uint(bytes s, unsigned *out):
    # strtoul(base 0) over the whole string, rejecting a sign and overflow.
    cdef const char *p = s
    cdef char *end = NULL
    cdef unsigned long v
    global errno
    errno = 0
    v = strtoul(p, &end, 0)
    if errno > 0:
        return -errno
    if end == NULL or end == p or end[0] != 0:
        return -EINVAL
    if p[0] == b'-':
        return -ERANGE
    if <unsigned long><unsigned>v != v:
        return -ERANGE
    out[0] = <unsigned>v
    return 0


cdef int _host(bytes host, uint16_t port, sockaddr_in6 *sa6, unsigned *length):
    cdef sockaddr_in *sa4 = <sockaddr_in *>sa6
    cdef unsigned idx
    cdef int r = inet_pton(AF_INET, host, &sa4.sin_addr)
    if r < 0:
        return -errno
    if r > 0:
        sa4.sin_family = AF_INET
        sa4.sin_port = htons(port)
        length[0] = sizeof(sockaddr_in)
        return 0
    if len(host) > IF_NAMESIZE - 1:
        return -EINVAL
    idx = if_nametoindex(host)  # an interface name, meaning "any address on it"
    if idx == 0:
        return -EINVAL
    sa6.sin6_family = AF_INET6
    sa6.sin6_port = htons(port)
    sa6.sin6_scope_id = idx
    length[0] = sizeof(sockaddr_in6)
    return 0


cdef int _parse(bytes s, sockaddr_in6 *sa6, unsigned *length):
    cdef sockaddr_in *sa4 = <sockaddr_in *>sa6
    cdef unsigned u = 0
    cdef int r
    cdef Py_ssize_t close_at, colon
    global errno
    if s.startswith(b"["):
        close_at = s.find(b"]", 1)
        if close_at < 0:
            return -EINVAL
        errno = 0
        if inet_pton(AF_INET6, s[1:close_at], &sa6.sin6_addr) <= 0:
            return -errno if errno > 0 else -EINVAL
        rest = s[close_at + 1:]
        if rest:
            if not rest.startswith(b":"):
                return -EINVAL
            r = _parse_uint(rest[1:], &u)
            if r < 0:
                return r
            if u == 0 or u > 0xFFFF:
                return -EINVAL
            sa6.sin6_port = htons(<uint16_t>u)
        sa6.sin6_family = AF_INET6
        length[0] = sizeof(sockaddr_in6)
        return 0
    colon = s.find(b":")
    if colon >= 0:
        r = _parse_uint(s[colon + 1:], &u)
        if r < 0:
            return r
        if u == 0 or u > 0xFFFF:
            return -EINVAL
        return _host(s[:colon], <uint16_t>u, sa6, length)
    if _parse_uint(s, &u) < 0:
        return _host(s, 0, sa6, length)
    # a port alone: the wildcard address, IPv6 when the kernel has it
    if u == 0 or u > 0xFFFF:
        return -EINVAL
    if access(b"/proc/net/if_inet6", F_OK) == 0:
        sa6.sin6_family = AF_INET6
        sa6.sin6_port = htons(<uint16_t>u)
        length[0] = sizeof(sockaddr_in6)
    else:
        sa4.sin_family = AF_INET
        sa4.sin_port = htons(<uint16_t>u)
        length[0] = sizeof(sockaddr_in)
    return 0


def parse_sockaddr(bytes address not None, int flowinfo=0):
    """Parse a ``ListenStream=``-style address into a raw sockaddr (bytes).

    ``ValueError("Cannot parse address")`` when it is not one; an ``OSError``
    for the other errnos (``ERANGE`` for a port that overflows ``unsigned``).
    ``flowinfo`` (host byte order) is only valid for an IPv6 address.
    """
    cdef sockaddr_in6 sa6
    cdef unsigned length = 0
    memset(&sa6, 0, sizeof(sa6))
    _cstr(address, "address")
    cdef int r = _parse(address, &sa6, &length)
    if r == -EINVAL:
        raise ValueError("Cannot parse address")
    check(r)
    if flowinfo != 0:
        if sa6.sin6_family != AF_INET6:
            raise ValueError("flowinfo is only applicable to IPv6 addresses")
        sa6.sin6_flowinfo = htonl(<uint32_t>flowinfo)
    return (<char *>&sa6)[:length]
