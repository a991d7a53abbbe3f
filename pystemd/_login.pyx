# cython: freethreading_compatible=False
"""Thin layer over sd-login: the seat/session/user/machine lists and the monitor.

The lists read logind's state files under /run/systemd/{seats,sessions,users,
machines}. :class:`Monitor` owns an ``sd_login_monitor`` (an inotify fd on
those directories): ``fileno``/``get_events``/``get_timeout`` for a poll loop
or an event loop, ``flush`` after each wake-up. The façade
(:mod:`pystemd.login`) adds waiting, asyncio and repr.

Threading: a Monitor has its own lock, so ``close()`` from one thread never
frees the C object under another thread's ``flush()``.
"""

from cpython.pythread cimport (
    NOWAIT_LOCK, WAIT_LOCK, PyThread_acquire_lock, PyThread_allocate_lock,
    PyThread_free_lock, PyThread_release_lock, PyThread_type_lock,
)
from libc.stdint cimport UINT64_MAX, uint64_t
from libc.stdlib cimport free
from libc.string cimport strlen
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec
from posix.types cimport uid_t

from libsystemd.sd_login cimport (
    sd_get_machine_names, sd_get_seats, sd_get_sessions, sd_get_uids, sd_login_monitor,
    sd_login_monitor_flush, sd_login_monitor_get_events, sd_login_monitor_get_fd,
    sd_login_monitor_get_timeout, sd_login_monitor_new, sd_login_monitor_unref,
)
from pystemd._errors cimport check_ctx

import errno as _errno

CATEGORIES = ("seat", "session", "uid", "machine")


cdef list _strv_to_list(char **strv, int n):
    """Take ownership of a NULL-terminated strv of n entries: a list of str, strv freed."""
    cdef int i
    cdef list out = []
    if strv == NULL:
        return out
    try:
        for i in range(n):
            if strv[i] == NULL:
                break
            out.append(strv[i][: strlen(strv[i])].decode("utf-8", "surrogateescape"))
    finally:
        i = 0
        while strv[i] != NULL:
            free(strv[i])
            i += 1
        free(strv)
    return out


def seats():
    """``sd_get_seats``: the names of the current seats (``['seat0']``)."""
    cdef char **strv = NULL
    cdef int r = sd_get_seats(&strv)
    check_ctx(r, "/run/systemd/seats")
    return _strv_to_list(strv, r)


def sessions():
    """``sd_get_sessions``: the IDs of the current sessions."""
    cdef char **strv = NULL
    cdef int r = sd_get_sessions(&strv)
    check_ctx(r, "/run/systemd/sessions")
    return _strv_to_list(strv, r)


def machine_names():
    """``sd_get_machine_names``: the names of the machines registered with systemd-machined."""
    cdef char **strv = NULL
    cdef int r = sd_get_machine_names(&strv)
    check_ctx(r, "/run/systemd/machines")
    return _strv_to_list(strv, r)


def uids():
    """``sd_get_uids``: the UIDs of the users with a login session."""
    cdef uid_t *u = NULL
    cdef int r = sd_get_uids(&u)
    cdef int i
    check_ctx(r, "/run/systemd/users")
    try:
        return [u[i] for i in range(r)] if u != NULL else []
    finally:
        free(u)


cdef inline uint64_t _now_us() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <uint64_t> ts.tv_sec * 1000000 + <uint64_t> ts.tv_nsec // 1000


cdef class Monitor:
    """``sd_login_monitor``: wakes up when seats, sessions, users or machines change.

    ``Monitor(category=None)``: ``category`` is ``"seat"``, ``"session"``,
    ``"uid"``, ``"machine"`` or None for all of them.
    """

    cdef sd_login_monitor *_m
    cdef PyThread_type_lock _lock
    cdef readonly object category

    def __cinit__(self, *args, **kwargs):
        self._m = NULL
        self._lock = PyThread_allocate_lock()
        if self._lock == NULL:
            raise MemoryError("cannot allocate a lock")

    def __init__(self, category=None):
        cdef sd_login_monitor *m = NULL
        cdef const char *cat = NULL
        cdef bytes cat_b
        cdef int r
        if isinstance(category, bytes):
            category = category.decode("ascii", "replace")
        if category is not None and category not in CATEGORIES:
            raise ValueError(
                f"Invalid category {category!r}: expected one of {', '.join(CATEGORIES)} or None"
            )
        if self._m != NULL:
            raise RuntimeError("Monitor.__init__ called twice")
        if category is not None:
            cat_b = category.encode()
            cat = cat_b
        with nogil:
            r = sd_login_monitor_new(cat, &m)
        check_ctx(r, "sd_login_monitor_new" if category is None else f"sd_login_monitor_new({category})")
        self._m = m
        self.category = category

    def __dealloc__(self):
        if self._m != NULL:
            sd_login_monitor_unref(self._m)
            self._m = NULL
        if self._lock != NULL:
            PyThread_free_lock(self._lock)
            self._lock = NULL

    cdef int _acquire(self) except -1:
        if not PyThread_acquire_lock(self._lock, NOWAIT_LOCK):
            with nogil:
                PyThread_acquire_lock(self._lock, WAIT_LOCK)
        if self._m == NULL:
            PyThread_release_lock(self._lock)
            raise OSError(_errno.EINVAL, "the login monitor is closed")
        return 0

    @property
    def closed(self):
        """True once :meth:`close` was called."""
        return self._m == NULL

    def fileno(self):
        """The fd to poll (an inotify fd) for :meth:`get_events`."""
        cdef int r
        self._acquire()
        try:
            r = sd_login_monitor_get_fd(self._m)
        finally:
            PyThread_release_lock(self._lock)
        return check_ctx(r, "sd_login_monitor_get_fd")

    def get_events(self):
        """The poll events to wait for on :meth:`fileno` (``select.POLLIN``)."""
        cdef int r
        self._acquire()
        try:
            r = sd_login_monitor_get_events(self._m)
        finally:
            PyThread_release_lock(self._lock)
        return check_ctx(r, "sd_login_monitor_get_events")

    def get_timeout(self):
        """Absolute CLOCK_MONOTONIC deadline in µs by which to call :meth:`flush`, or None."""
        cdef uint64_t t = 0
        cdef int r
        self._acquire()
        try:
            r = sd_login_monitor_get_timeout(self._m, &t)
        finally:
            PyThread_release_lock(self._lock)
        check_ctx(r, "sd_login_monitor_get_timeout")
        return None if t == UINT64_MAX else t

    def get_timeout_ms(self):
        """:meth:`get_timeout` as milliseconds from now (rounded up), or -1 for none."""
        t = self.get_timeout()
        if t is None:
            return -1
        now = _now_us()
        return 0 if t <= now else <int> ((t - now + 999) // 1000)

    def flush(self):
        """Acknowledge the changes that woke the fd up (call after each wake-up)."""
        cdef int r
        self._acquire()
        try:
            with nogil:
                r = sd_login_monitor_flush(self._m)
        finally:
            PyThread_release_lock(self._lock)
        check_ctx(r, "sd_login_monitor_flush")

    def close(self):
        """Free the monitor and its fd. Idempotent."""
        if not PyThread_acquire_lock(self._lock, NOWAIT_LOCK):
            with nogil:
                PyThread_acquire_lock(self._lock, WAIT_LOCK)
        try:
            if self._m != NULL:
                sd_login_monitor_unref(self._m)
                self._m = NULL
        finally:
            PyThread_release_lock(self._lock)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
