"""Turn libsystemd return codes and sd_bus_error values into exceptions."""

from libc.string cimport strerror, strlen
from libsystemd.sd_bus cimport sd_bus_error, sd_bus_error_get_errno
from cpython.exc cimport PyErr_CheckSignals

# pystemd.errors (and typing) is imported on the first D-Bus error, not at import:
# pystemd.daemon, loaded by every Type=notify service, never needs it.

cdef extern from "errno.h":
    enum:
        EINTR
        ENOMEM

cdef inline str _decode(const char *s):
    if s == NULL:
        return ""
    return s[:strlen(s)].decode("utf-8", "replace")


cdef int raise_errno(int err, object what) except -1:
    if err == ENOMEM:
        raise MemoryError(what or "out of memory")
    msg = _decode(strerror(err))
    if what is None:
        raise OSError(err, msg)
    raise OSError(err, msg, what)


cdef int check(int r) except -1:
    if r >= 0:
        return r
    raise_errno(-r, None)
    return -1


cdef int check_ctx(int r, object what) except -1:
    if r >= 0:
        return r
    raise_errno(-r, what)
    return -1


cdef object bus_error_from(const sd_bus_error *e, int r):
    cdef int err = 0
    if e != NULL and e.name != NULL:
        err = sd_bus_error_get_errno(e)
        from pystemd.errors import bus_error as _bus_error

        return _bus_error(_decode(e.name), _decode(e.message), err if err > 0 else None)
    err = -r if r < 0 else 5  # EIO when nothing better is known
    if err == ENOMEM:
        return MemoryError("out of memory")
    return OSError(err, _decode(strerror(err)))


cdef int raise_bus_error(const sd_bus_error *e, int r) except -1:
    raise bus_error_from(e, r)
