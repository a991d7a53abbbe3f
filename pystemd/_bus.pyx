# cython: freethreading_compatible=False
"""Thin layer over sd-bus: connections, calls, matches and signature-driven marshalling.

The Python façade (pystemd.bus) subclasses :class:`Bus` and adds the pleasant
parts. Everything here mirrors an sd-bus verb and owns a C pointer.

Threading: one sd_bus may be used by one thread at a time, so each Bus has its
own (re-entrant) lock, taken by every method that touches the sd_bus. Waiting
never holds the GIL for long: a wait first polls for at most ``gil_hold_us``
microseconds with the GIL held (a reply to a fast call usually arrives in that
window, and keeping the GIL avoids paying the interpreter's 5 ms switch
interval to get it back), and releases the GIL for the rest of the wait.

Callbacks: C callbacks never run Python code inside sd-bus's dispatch. A match
callback queues (callback, Message) on the Bus; process() runs the queue after
sd_bus_process() returns, so a user callback may itself make blocking calls on
the same bus (sd-bus forbids recursive sd_bus_process()).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.exc cimport PyErr_CheckSignals
from cpython.mem cimport PyMem_Malloc, PyMem_Free
from cpython.ref cimport Py_INCREF, Py_DECREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t, UINT64_MAX, INT64_MIN, INT64_MAX
from libc.stdlib cimport free
from libc.string cimport memchr, memcmp, memcpy, memset, strlen, strcmp

cdef extern from "string.h" nogil:
    size_t strnlen(const char *s, size_t maxlen)
from posix.unistd cimport close as c_close
from posix.fcntl cimport fcntl, F_DUPFD_CLOEXEC
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

from libsystemd.sd_bus cimport *
from pystemd._errors cimport check, check_ctx, raise_errno, bus_error_from
from pystemd._rlock cimport RLock, rlock_free, rlock_init, rlock_mine, rlock_release, rlock_take

import os as _os
import warnings as _warnings

from pystemd.errors import bus_error as _bus_error_by_name
import weakref as _weakref

cdef extern from "errno.h":
    int errno
    enum:
        EINTR
        EINVAL
        ENOTCONN
        ENOBUFS
        EBUSY
        ECONNRESET
        ETIMEDOUT
        EHOSTDOWN
        EPERM
        EACCES

cdef extern from "pystemd/compat.h":
    int PYSTEMD_LIBSYSTEMD_VERSION

cdef extern from "poll.h" nogil:
    struct pollfd:
        int fd
        short events
        short revents
    int ppoll(pollfd *fds, unsigned long nfds, const timespec *tmo_p, const void *sigmask)

cdef extern from "Python.h":
    const char *PyUnicode_AsUTF8AndSize(object unicode, Py_ssize_t *size) except NULL
    bint PyUnicode_IS_COMPACT_ASCII(object o)
    const void *PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    long long PyLong_AsLongLongAndOverflow(object pylong, int *overflow) except? -1
    unsigned long long PyLong_AsUnsignedLongLong(object pylong) except? -1
    double PyFloat_AsDouble(object) except? -1.0


# ---------------------------------------------------------------------------
# fork safety: a Bus remembers the fork generation it was opened in; after
# fork() the child sees a newer generation and refuses to touch the parent's
# connection (it would share the socket with the parent).

cdef unsigned long _fork_generation = 0

def _after_fork_in_child():
    global _fork_generation
    _fork_generation += 1
    _nogil_busy.clear()

_os.register_at_fork(after_in_child=_after_fork_in_child)

# Measured (docs/bus.md, "The GIL policy"): replies from systemd through
# dbus-daemon arrive within ~100 µs, GetAll and ListUnits within 0.5-2 ms.
# 5 ms is CPython's default switch interval: no longer than the interpreter
# itself lets a running thread keep the GIL from the others. It is also longer
# than a timer tick (4 ms at HZ=250), which matters: sd_bus_call()'s ppoll()
# then arms a timer that is not the CPU's next timer event, while a 0.5 ms one
# is, and reprogramming the timer device costs (a VM exit on KVM) ~7 µs of CPU
# per call here, half the C floor's whole cost of a Get.
DEFAULT_GIL_HOLD_US = 5000
# Pipelined calls: most calls in flight, and how many are marshalled per GIL hand-off.
DEFAULT_WINDOW = 64
cdef Py_ssize_t _BATCH_CHUNK = 1024

cdef const char *_LIMITS_EXCEEDED = b"org.freedesktop.DBus.Error.LimitsExceeded"


cdef inline uint64_t _now_us() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <uint64_t>ts.tv_sec * 1000000 + <uint64_t>ts.tv_nsec // 1000


cdef int _poll_once(sd_bus *bus, long long max_us) noexcept nogil:
    """Wait for the bus fd at most max_us, honouring sd-bus's own timeout.

    Returns >0 if the fd is ready or something is due now, 0 on timeout,
    -errno on error. Safe with or without the GIL.
    """
    cdef uint64_t until = 0, now
    cdef pollfd pfd
    cdef timespec ts
    cdef int r = sd_bus_get_timeout(bus, &until)
    if r < 0:
        return r
    if until != UINT64_MAX:
        now = _now_us()
        if until <= now:
            return 1
        if <long long>(until - now) < max_us:
            max_us = <long long>(until - now)
    r = sd_bus_get_fd(bus)
    if r < 0:
        return r
    pfd.fd = r
    r = sd_bus_get_events(bus)
    if r < 0:
        return r
    pfd.events = <short>r
    pfd.revents = 0
    ts.tv_sec = max_us // 1000000
    ts.tv_nsec = (max_us % 1000000) * 1000
    r = ppoll(&pfd, 1, &ts, NULL)
    if r < 0:
        return -errno
    return r


# ---------------------------------------------------------------------------
# Messages dropped by another thread while a bus is being driven without the
# GIL: sd-bus reference counts are not atomic, and every message holds a
# reference on its bus, so such a message is unreferenced by the driving
# thread once it has the GIL back. Keys: the sd_bus address; values: lists of
# sd_bus_message addresses. Only touched with the GIL held.

cdef dict _nogil_busy = {}


cdef list _busy_enter(sd_bus *bus):
    cdef list pending = []
    _nogil_busy[<size_t>bus] = pending
    return pending


cdef void _busy_exit(sd_bus *bus, list pending) noexcept:
    cdef object p
    _nogil_busy.pop(<size_t>bus, None)
    for p in pending:
        sd_bus_message_unref(<sd_bus_message *><size_t>p)


# ---------------------------------------------------------------------------
# signatures

cdef inline bint _is_basic(char c) noexcept nogil:
    return c != 0 and memchr(b"ybnqiuxtdsogh", c, 13) != NULL


cdef inline bint _is_fixed(char c) noexcept nogil:
    return c != 0 and memchr(b"ybnqiuxtd", c, 9) != NULL


cdef Py_ssize_t _type_len(const char *sig, int depth) except -1:
    cdef char c = sig[0]
    cdef Py_ssize_t n, i
    if depth > 64:
        raise ValueError("signature nests too deeply")
    if c == 0:
        raise ValueError("signature ends in the middle of a type")
    if _is_basic(c) or c == b'v':
        return 1
    if c == b'a':
        if sig[1] == b'{':
            if not _is_basic(sig[2]):
                raise ValueError("dict key must be a basic type")
            n = _type_len(sig + 3, depth + 1)
            if sig[3 + n] != b'}':
                raise ValueError("dict entry must hold exactly two types")
            return 4 + n
        return 1 + _type_len(sig + 1, depth + 1)
    if c == b'(':
        i = 1
        if sig[1] == b')':
            raise ValueError("empty struct in signature")
        while sig[i] != b')':
            if sig[i] == 0:
                raise ValueError("unterminated struct in signature")
            i += _type_len(sig + i, depth + 1)
        return i + 1
    raise ValueError(f"invalid type code {chr(<unsigned char>c)!r} in signature")


cdef Py_ssize_t complete_type_len(const char *sig) except -1:
    return _type_len(sig, 0)


cdef inline void _sub(char *buf, const char *src, Py_ssize_t n) noexcept nogil:
    # copy n characters of a signature and terminate them (n <= 255)
    memcpy(buf, src, n)
    buf[n] = 0


def split_signature(signature):
    """Split a signature into its complete types: 'sa{sv}i' -> ['s', 'a{sv}', 'i']."""
    cdef bytes b = _sig_bytes(signature)
    cdef const char *p = PyBytes_AS_STRING(b)
    cdef Py_ssize_t n
    out = []
    while p[0] != 0:
        n = _type_len(p, 0)
        out.append(p[:n].decode())
        p += n
    return out


cdef bytes _sig_bytes(object signature):
    cdef bytes b
    if isinstance(signature, str):
        try:
            b = (<str>signature).encode("ascii")
        except UnicodeEncodeError:
            raise ValueError(f"invalid signature {signature!r}") from None
    elif isinstance(signature, bytes):
        b = <bytes>signature
    else:
        raise TypeError(f"signature must be str, got {type(signature).__name__}")
    if len(b) > 255:
        raise ValueError("signature longer than 255 characters")
    if memchr(PyBytes_AS_STRING(b), 0, PyBytes_GET_SIZE(b)) != NULL:
        raise ValueError("embedded NUL in signature")
    return b


# ---------------------------------------------------------------------------
# values that need a type of their own

cdef class Variant:
    """A D-Bus variant with an explicit signature: ``Variant("t", 1 << 33)``.

    Read side: variants are unwrapped to their value unless the caller asks to
    keep them (``flags=KEEP_VARIANTS``), in which case they come back as
    Variant objects.
    """

    def __init__(self, signature, value):
        cdef bytes b = _sig_bytes(signature)
        if PyBytes_GET_SIZE(b) == 0 or _type_len(PyBytes_AS_STRING(b), 0) != PyBytes_GET_SIZE(b):
            raise ValueError(f"variant signature must be one complete type, got {signature!r}")
        self._sig = b
        self.signature = b.decode()
        self.value = value

    def __repr__(self):
        return f"Variant({self.signature!r}, {self.value!r})"

    def __eq__(self, other):
        if isinstance(other, Variant):
            return self.signature == (<Variant>other).signature and self.value == (<Variant>other).value
        return NotImplemented

    def __hash__(self):
        return hash((self.signature, self.value))

    def __reduce__(self):
        return (Variant, (self.signature, self.value))


cdef Variant _make_variant(const char *sig, object value):
    # A Variant for a signature sd-bus already validated (no re-parsing).
    cdef Variant v = Variant.__new__(Variant)
    v._sig = <bytes>sig
    v.signature = v._sig.decode("ascii")
    v.value = value
    return v


cdef class UnixFD:
    """A file descriptor received over D-Bus, owned by this object.

    It was dup'ed from the message, so it stays valid after the message is
    gone; it is closed when this object is collected, unless ``detach()``
    handed it over. ``int(fd)`` / ``fd.fileno()`` give the number.
    """

    def __cinit__(self):
        self.fd = -1

    def __init__(self, int fd):
        """Take ownership of ``fd`` (it is not duplicated)."""
        if fd < 0:
            raise ValueError(f"invalid file descriptor {fd}")
        self.fd = fd

    def fileno(self):
        if self.fd < 0:
            raise ValueError("I/O operation on closed UnixFD")
        return self.fd

    def __int__(self):
        return self.fileno()

    def __index__(self):
        return self.fileno()

    def detach(self):
        """Give up ownership: return the fd, which the caller must close."""
        fd = self.fileno()
        self.fd = -1
        return fd

    def close(self):
        if self.fd >= 0:
            c_close(self.fd)
            self.fd = -1

    @property
    def closed(self):
        return self.fd < 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"<UnixFD {self.fd if self.fd >= 0 else 'closed'}>"

    def __reduce__(self):
        raise TypeError("a UnixFD cannot be pickled")

    def __dealloc__(self):
        if self.fd >= 0:
            c_close(self.fd)


# ---------------------------------------------------------------------------
# appending (Python -> D-Bus)
#
# Errors raised while appending carry where they happened inside a nested
# value (`_pystemd_where`, e.g. "[2]['Foo']"); append_args() turns that into
# the message "argument 1 ('a{sv}' of signature 'sa{sv}') at ['Foo']: ...".

cdef inline void _locate(object exc, str where) noexcept:
    try:
        exc._pystemd_where = where + getattr(exc, "_pystemd_where", "")
    except Exception:
        pass


cdef inline str _tname(char t):
    return repr(chr(<unsigned char>t))


cdef const char *_text(object value, char t, Py_ssize_t *size) except NULL:
    # Returns a pointer into `value` (a str) that lives as long as value does.
    # Lone surrogates cannot be encoded: UnicodeEncodeError (a ValueError).
    cdef const char *p = PyUnicode_AsUTF8AndSize(value, size)
    if <size_t>size[0] != strlen(p):
        raise ValueError(f"embedded NUL character in string for {_tname(t)}")
    return p


cdef object _as_text(object value, char t):
    # Accept str; bytes are decoded as strict UTF-8; os.PathLike for 's'.
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"invalid UTF-8 in bytes for {_tname(t)}: {e.reason} at position {e.start}") from None
    if t == b's' and hasattr(value, "__fspath__"):
        return _as_text(_os.fspath(value), t)
    raise TypeError(f"expected str for {_tname(t)}, got {type(value).__name__}")


cdef object _as_int(object value, char t):
    if isinstance(value, int):
        return value
    if isinstance(value, (float, str, bytes)) or not hasattr(type(value), "__index__"):
        raise TypeError(f"expected int for {_tname(t)}, got {type(value).__name__}")
    return value.__index__()


cdef object _range_error(object v, char t, object lo, object hi):
    return OverflowError(f"{v} out of range for {_tname(t)} ({lo}..{hi})")


cdef long long _int_in(object value, char t, long long lo, long long hi) except? -1:
    cdef int overflow = 0
    cdef long long v
    value = _as_int(value, t)
    v = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow != 0 or v < lo or v > hi:
        raise _range_error(value, t, lo, hi)
    return v


cdef uint64_t _uint64_in(object value) except? 0:
    value = _as_int(value, b't')
    if value < 0 or value > 0xffffffffffffffff:
        raise _range_error(value, b't', 0, 0xffffffffffffffff)
    return PyLong_AsUnsignedLongLong(value)


cdef int _bool_in(object value) except -1:
    if value is True:
        return 1
    if value is False:
        return 0
    if isinstance(value, int) and (value == 0 or value == 1):
        return 1 if value else 0
    raise TypeError(f"expected bool for 'b', got {type(value).__name__} {value!r}")


cdef double _double_in(object value) except? -1.0:
    if isinstance(value, float):
        return PyFloat_AsDouble(value)
    if isinstance(value, int):
        return float(value)  # OverflowError for ints beyond a double
    if isinstance(value, (str, bytes)) or not hasattr(type(value), "__float__"):
        raise TypeError(f"expected float for 'd', got {type(value).__name__}")
    return float(value)


cdef int _fd_in(object value) except -1:
    if isinstance(value, bool) or not (isinstance(value, int) or hasattr(value, "fileno")):
        raise TypeError(f"expected a file descriptor (int or object with fileno()) for 'h', got {type(value).__name__}")
    if not isinstance(value, int):
        value = value.fileno()
        if not isinstance(value, int):
            raise TypeError(f"fileno() returned {type(value).__name__}, not int")
    if value < 0 or value > 0x7fffffff:
        raise ValueError(f"invalid file descriptor {value}")
    return value


cdef int _append_basic(sd_bus_message *m, char t, object value) except -1:
    cdef int r
    cdef uint8_t y
    cdef int b
    cdef int16_t n
    cdef uint16_t q
    cdef int32_t i
    cdef uint32_t u
    cdef int64_t x
    cdef uint64_t tt
    cdef double d
    cdef int fd
    cdef Py_ssize_t size
    cdef const char *p
    if t == b's' or t == b'o' or t == b'g':
        value = _as_text(value, t)
        p = _text(value, t, &size)
        if t == b'o' and not sd_bus_object_path_is_valid(p):
            raise ValueError(f"invalid object path {value!r}")
        if t == b'g':
            _validate_signature(p, value)
        r = sd_bus_message_append_basic(m, t, p)
        if r == -EINVAL:
            raise ValueError(f"string {value!r} rejected by sd-bus for {_tname(t)}")
        return check(r)
    if t == b'u':
        u = <uint32_t>_int_in(value, t, 0, 0xffffffff)
        return check(sd_bus_message_append_basic(m, t, &u))
    if t == b'i':
        i = <int32_t>_int_in(value, t, -0x80000000, 0x7fffffff)
        return check(sd_bus_message_append_basic(m, t, &i))
    if t == b'b':
        b = _bool_in(value)
        return check(sd_bus_message_append_basic(m, t, &b))
    if t == b't':
        tt = _uint64_in(value)
        return check(sd_bus_message_append_basic(m, t, &tt))
    if t == b'x':
        x = <int64_t>_int_in(value, t, INT64_MIN, INT64_MAX)
        return check(sd_bus_message_append_basic(m, t, &x))
    if t == b'y':
        y = <uint8_t>_int_in(value, t, 0, 0xff)
        return check(sd_bus_message_append_basic(m, t, &y))
    if t == b'n':
        n = <int16_t>_int_in(value, t, -0x8000, 0x7fff)
        return check(sd_bus_message_append_basic(m, t, &n))
    if t == b'q':
        q = <uint16_t>_int_in(value, t, 0, 0xffff)
        return check(sd_bus_message_append_basic(m, t, &q))
    if t == b'd':
        d = _double_in(value)
        return check(sd_bus_message_append_basic(m, t, &d))
    if t == b'h':
        fd = _fd_in(value)
        r = sd_bus_message_append_basic(m, t, &fd)  # sd-bus dups it
        if r < 0:
            check_ctx(r, f"append file descriptor {fd}")
        return r
    raise ValueError(f"not a basic type: {_tname(t)}")


cdef int _validate_signature(const char *p, object value) except -1:
    cdef Py_ssize_t n = strlen(p), i = 0
    if n > 255:
        raise ValueError("signature longer than 255 characters")
    try:
        while i < n:
            i += _type_len(p + i, 0)
    except ValueError as e:
        raise ValueError(f"invalid signature {value!r}: {e}") from None
    return 0


cdef str _infer_signature(object value):
    """The signature a plain Python value gets inside a variant."""
    if isinstance(value, Variant):
        return "v"
    if isinstance(value, bool):
        return "b"
    if isinstance(value, int):
        if -0x80000000 <= value <= 0x7fffffff:
            return "i"
        if -0x8000000000000000 <= value <= 0x7fffffffffffffff:
            return "x"
        return "t"
    if isinstance(value, float):
        return "d"
    if isinstance(value, str):
        return "s"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "ay"
    if isinstance(value, UnixFD):
        return "h"
    if isinstance(value, tuple):
        if not value:
            raise TypeError("cannot infer a D-Bus type for an empty tuple; wrap it in Variant(sig, value)")
        return "(" + "".join([_infer_signature(v) for v in value]) + ")"
    if isinstance(value, dict):
        if not value:
            raise TypeError("cannot infer a D-Bus type for an empty dict; wrap it in Variant(sig, value)")
        ks = {_infer_signature(k) for k in value}
        if len(ks) != 1 or len(next(iter(ks))) != 1 or next(iter(ks)) == "v":
            raise TypeError("dict keys inside a variant must all be one basic type")
        vs = {_infer_signature(v) for v in value.values()}
        return "a{" + next(iter(ks)) + (next(iter(vs)) if len(vs) == 1 else "v") + "}"
    if isinstance(value, list):
        if not value:
            raise TypeError("cannot infer a D-Bus type for an empty list; wrap it in Variant(sig, value)")
        es = {_infer_signature(v) for v in value}
        return "a" + (next(iter(es)) if len(es) == 1 else "v")
    raise TypeError(f"cannot infer a D-Bus type for {type(value).__name__}; wrap it in Variant(sig, value)")


cdef Py_ssize_t _fixed_size(char t) noexcept nogil:
    if t == b'y':
        return 1
    if t == b'n' or t == b'q':
        return 2
    if t == b'b' or t == b'i' or t == b'u':
        return 4
    return 8


cdef int _append_fixed_array(sd_bus_message *m, char t, object value) except -1:
    """An array of a fixed-size type, converted into one buffer (one sd-bus call)."""
    cdef object seq = value if isinstance(value, (list, tuple)) else list(value)
    cdef Py_ssize_t n = len(seq), k = 0, size = _fixed_size(t)
    cdef char *buf = <char *>PyMem_Malloc(n * size + 8)
    cdef int r
    if buf == NULL:
        raise MemoryError()
    try:
        for k in range(n):
            item = seq[k]
            if t == b'u':
                (<uint32_t *>buf)[k] = <uint32_t>_int_in(item, t, 0, 0xffffffff)
            elif t == b'i':
                (<int32_t *>buf)[k] = <int32_t>_int_in(item, t, -0x80000000, 0x7fffffff)
            elif t == b't':
                (<uint64_t *>buf)[k] = _uint64_in(item)
            elif t == b'x':
                (<int64_t *>buf)[k] = <int64_t>_int_in(item, t, INT64_MIN, INT64_MAX)
            elif t == b'y':
                (<uint8_t *>buf)[k] = <uint8_t>_int_in(item, t, 0, 0xff)
            elif t == b'n':
                (<int16_t *>buf)[k] = <int16_t>_int_in(item, t, -0x8000, 0x7fff)
            elif t == b'q':
                (<uint16_t *>buf)[k] = <uint16_t>_int_in(item, t, 0, 0xffff)
            else:
                (<double *>buf)[k] = _double_in(item)
        r = sd_bus_message_append_array(m, t, buf, n * size)
    except (TypeError, ValueError, OverflowError) as e:
        _locate(e, f"[{k}]")
        raise
    finally:
        PyMem_Free(buf)
    return check(r)


cdef int _append_dict(sd_bus_message *m, const char *contents, Py_ssize_t cn, object value) except -1:
    # contents is "{kv}" (NUL-terminated), cn its length
    cdef char entry[256]
    cdef char kt = contents[1]
    cdef Py_ssize_t en = cn - 2
    if not hasattr(value, "items"):
        raise TypeError(f"expected a mapping for 'a{contents.decode()}', got {type(value).__name__}")
    _sub(entry, contents + 1, en)
    check(sd_bus_message_open_container(m, b'a', contents))
    for k, v in value.items():
        check(sd_bus_message_open_container(m, b'e', entry))
        try:
            _append_basic(m, kt, k)
        except (TypeError, ValueError, OverflowError) as e:
            _locate(e, f" key {k!r}")
            raise
        try:
            append_value(m, entry + 1, en - 1, v)
        except (TypeError, ValueError, OverflowError) as e:
            _locate(e, f"[{k!r}]")
            raise
        check(sd_bus_message_close_container(m))
    return check(sd_bus_message_close_container(m))


cdef int append_value(sd_bus_message *m, const char *sig, Py_ssize_t n, object value) except -1:
    """Append one value of the complete type sig[:n] (sig need not end there)."""
    cdef char t = sig[0]
    cdef char contents[256]
    cdef Py_ssize_t i, k, kn, count
    cdef bytes vsig
    cdef const unsigned char[::1] view
    if n == 1 and t != b'v':
        return _append_basic(m, t, value)
    if t == b'a':
        _sub(contents, sig + 1, n - 1)
        if n == 2 and t == b'a' and contents[0] == b'y' and isinstance(value, (bytes, bytearray, memoryview)):
            if isinstance(value, memoryview):
                value = value.cast("B") if value.c_contiguous else value.tobytes()
            view = value
            if view.shape[0] == 0:
                return check(sd_bus_message_append_array(m, b'y', b"", 0))
            return check(sd_bus_message_append_array(m, b'y', &view[0], view.shape[0]))
        if contents[0] == b'{':
            return _append_dict(m, contents, n - 1, value)
        if isinstance(value, (str, bytes, bytearray, dict)) or not hasattr(value, "__iter__"):
            raise TypeError(f"expected a list for 'a{contents.decode()}', got {type(value).__name__}")
        if n == 2 and _is_fixed(contents[0]) and contents[0] != b'b':
            # (sd-bus refuses booleans in append_array: they are validated one by one)
            return _append_fixed_array(m, contents[0], value)
        check(sd_bus_message_open_container(m, b'a', contents))
        i = 0
        try:
            for item in value:
                append_value(m, contents, n - 1, item)
                i += 1
        except (TypeError, ValueError, OverflowError) as e:
            _locate(e, f"[{i}]")
            raise
        return check(sd_bus_message_close_container(m))
    if t == b'(':
        _sub(contents, sig + 1, n - 2)
        if not isinstance(value, (tuple, list)):
            raise TypeError(f"expected a tuple for '({contents.decode()})', got {type(value).__name__}")
        count = 0
        i = 0
        while contents[i] != 0:
            i += _type_len(contents + i, 0)
            count += 1
        if count != len(value):
            raise ValueError(f"struct '({contents.decode()})' has {count} members, got {len(value)}")
        check(sd_bus_message_open_container(m, b'r', contents))
        i = 0
        k = 0
        try:
            while contents[i] != 0:
                kn = _type_len(contents + i, 0)
                append_value(m, contents + i, kn, value[k])
                i += kn
                k += 1
        except (TypeError, ValueError, OverflowError) as e:
            _locate(e, f"[{k}]")
            raise
        return check(sd_bus_message_close_container(m))
    if t == b'v':
        if isinstance(value, Variant):
            vsig = (<Variant>value)._sig
            value = (<Variant>value).value
        else:
            vsig = _infer_signature(value).encode()
        check(sd_bus_message_open_container(m, b'v', vsig))
        append_value(m, vsig, PyBytes_GET_SIZE(vsig), value)
        return check(sd_bus_message_close_container(m))
    raise ValueError(f"invalid type code {_tname(t)} in signature")


cdef int append_args(sd_bus_message *m, object signature, object args) except -1:
    """Append ``args`` (a sequence) according to ``signature``.

    Errors name the argument position and the signature.
    """
    cdef bytes sig = _sig_bytes(signature)
    cdef const char *p = sig
    cdef Py_ssize_t n, pos = 0, i = 0
    if not isinstance(args, (tuple, list)):
        if isinstance(args, (str, bytes, dict)) or not hasattr(args, "__iter__"):
            raise TypeError(f"args must be a tuple or list, got {type(args).__name__}")
        args = tuple(args)
    cdef Py_ssize_t nargs = len(args)
    while p[i] != 0:
        n = _type_len(p + i, 0)
        if pos >= nargs:
            raise TypeError(f"signature {sig.decode()!r} takes more than {nargs} argument(s)")
        try:
            append_value(m, p + i, n, args[pos])
        except (TypeError, ValueError, OverflowError) as e:
            where = getattr(e, "_pystemd_where", "")
            cls = OverflowError if isinstance(e, OverflowError) else TypeError if isinstance(e, TypeError) else ValueError
            raise cls(f"argument {pos} ({p[i:i + n].decode()!r} of signature {sig.decode()!r})"
                      f"{' at ' + where.lstrip() if where else ''}: {e}") from None
        i += n
        pos += 1
    if pos != nargs:
        raise TypeError(f"signature {sig.decode()!r} takes {pos} argument(s), got {nargs}")
    return 0


# ---------------------------------------------------------------------------
# reading (D-Bus -> Python)
#
# Driven by the signature: containers are entered with the element signature
# we already know (no peek, which allocates for containers), and arrays end
# when sd-bus says "end of container" (read/enter returning 0).

cdef union _Basic:
    uint8_t y
    int b
    int16_t n
    uint16_t q
    int32_t i
    uint32_t u
    int64_t x
    uint64_t t
    double d
    const char *s
    int h


cdef inline str _str(const char *s):
    return PyUnicode_DecodeUTF8(s, strlen(s), NULL)


# Dict keys (property names, environment names...) repeat from reply to reply:
# short ones are kept in a small direct-mapped cache, so reading one costs a
# hash and a compare instead of a decode and an allocation, and the str's own
# hash is already computed when it goes into the dict.
#
# The strings inside arrays of structs (ListUnits: unit names, descriptions,
# states, object paths; ListJobs, ListUnitFiles...) repeat from reply to reply
# too, and there are many of them: a second, larger cache. A hit returns the
# same str object as last time, so a reply of 170 units allocates (and later
# frees) ~170 tuples instead of ~1,800 objects: most of what such a reply cost
# above the C floor was the cache misses of writing fresh objects.
cdef enum:
    _KEYS = 1024
    _KEY_MAX = 64
    _VALS = 4096
    _VAL_MAX = 64
cdef object _key_cache = [None] * _KEYS
cdef object _val_cache = [None] * _VALS


cdef inline uint64_t _load8(const char *p) noexcept nogil:
    cdef uint64_t w
    memcpy(&w, p, 8)
    return w


cdef inline uint32_t _short_hash(const char *s, Py_ssize_t n) noexcept nogil:
    # A hash of the length and (for longer strings) the first, middle and
    # last 8-16 bytes, read a word at a time: a handful of instructions where
    # a byte loop costs ~4 per byte (it was a tenth of a ListUnits reply's
    # whole conversion). Strings that differ only elsewhere share a slot,
    # which costs a cache miss, never a wrong value (a hit compares all bytes).
    cdef uint64_t k = 0x9E3779B97F4A7C15, w = 0, h = <uint64_t>n * k
    if n >= 8:
        h = (h ^ _load8(s)) * k
        h = (h ^ _load8(s + n - 8)) * k
        if n > 16:
            h = (h ^ _load8(s + n - 16)) * k
            h = (h ^ _load8(s + (n >> 1) - 4)) * k
    else:
        memcpy(&w, s, n)
        h = (h ^ w) * k
    return <uint32_t>(h >> 32)


cdef inline object _cached_str(list cache, uint32_t mask, Py_ssize_t max_len, const char *s, bint prehash):
    cdef Py_ssize_t n = strnlen(s, max_len + 1)
    cdef const char *cached
    cdef Py_ssize_t size
    cdef uint32_t h
    if n > max_len:
        return _str(s)
    h = _short_hash(s, n) & mask
    entry = cache[h]
    if entry is not None:
        if PyUnicode_IS_COMPACT_ASCII(entry):
            if PyUnicode_GET_LENGTH(entry) == n and memcmp(PyUnicode_DATA(entry), s, n) == 0:
                return entry
        else:
            cached = PyUnicode_AsUTF8AndSize(entry, &size)
            if size == n and memcmp(cached, s, n) == 0:
                return entry
    value = PyUnicode_DecodeUTF8(s, n, NULL)
    if prehash:
        hash(value)
    cache[h] = value
    return value


cdef object _key_str(const char *s):
    return _cached_str(<list>_key_cache, _KEYS - 1, _KEY_MAX, s, True)


cdef object _val_str(const char *s):
    return _cached_str(<list>_val_cache, _VALS - 1, _VAL_MAX, s, False)


cdef object _basic_value(char t, _Basic *v):
    cdef int fd
    if t == b's' or t == b'o' or t == b'g':
        return _str(v.s)
    if t == b'u':
        return v.u
    if t == b'b':
        return v.b != 0
    if t == b'i':
        return v.i
    if t == b't':
        return v.t
    if t == b'x':
        return v.x
    if t == b'y':
        return v.y
    if t == b'd':
        return v.d
    if t == b'n':
        return v.n
    if t == b'q':
        return v.q
    if t == b'h':
        fd = fcntl(v.h, F_DUPFD_CLOEXEC, 3)
        if fd < 0:
            raise_errno(errno, "dup of received file descriptor")
        return UnixFD(fd)
    raise ValueError(f"not a basic type: {_tname(t)}")


cdef object _short_message():
    return ValueError("message body ended before its signature did")


cdef object _read_basic(sd_bus_message *m, char t):
    cdef _Basic v
    if check(sd_bus_message_read_basic(m, t, &v)) == 0:
        raise _short_message()
    return _basic_value(t, &v)


cdef list _read_fixed_array(sd_bus_message *m, char t, bint *end):
    cdef const void *ptr = NULL
    cdef size_t size = 0, k
    if check(sd_bus_message_read_array(m, t, &ptr, &size)) == 0:
        end[0] = True
        return None
    if t == b'u':
        return [(<const uint32_t *>ptr)[k] for k in range(size // 4)]
    if t == b'i':
        return [(<const int32_t *>ptr)[k] for k in range(size // 4)]
    if t == b't':
        return [(<const uint64_t *>ptr)[k] for k in range(size // 8)]
    if t == b'x':
        return [(<const int64_t *>ptr)[k] for k in range(size // 8)]
    if t == b'd':
        return [(<const double *>ptr)[k] for k in range(size // 8)]
    if t == b'b':
        return [(<const int32_t *>ptr)[k] != 0 for k in range(size // 4)]
    if t == b'n':
        return [(<const int16_t *>ptr)[k] for k in range(size // 2)]
    if t == b'q':
        return [(<const uint16_t *>ptr)[k] for k in range(size // 2)]
    raise ValueError(f"not a fixed-size type: {_tname(t)}")


cdef object _read_variant(sd_bus_message *m, int flags, bint *end):
    cdef char t = 0
    cdef const char *c = NULL
    cdef char inner[256]
    cdef Py_ssize_t n
    cdef bint e2 = False
    if check(sd_bus_message_peek_type(m, &t, &c)) == 0:
        end[0] = True
        return None
    if t != b'v' or c == NULL:
        raise ValueError(f"expected a variant in the message, found {_tname(t)}")
    n = strlen(c)
    if n > 255:
        raise ValueError("variant signature longer than 255 characters")
    _sub(inner, c, n)
    check(sd_bus_message_enter_container(m, b'v', inner))
    value = _read_elem(m, inner, n, flags, &e2)
    if e2:
        raise _short_message()
    check(sd_bus_message_exit_container(m))
    if flags & READ_KEEP_VARIANTS:
        return _make_variant(inner, value)
    return value


cdef dict _read_dict_body(sd_bus_message *m, const char *contents, Py_ssize_t cn, int flags):
    # inside an 'a{kv}' array; contents is "{kv}"
    cdef char entry[256]
    cdef char kt = contents[1]
    cdef Py_ssize_t en = cn - 2
    cdef dict d = {}
    cdef _Basic kv
    cdef bint e2 = False
    _sub(entry, contents + 1, en)
    while check(sd_bus_message_enter_container(m, b'e', entry)) > 0:
        if check(sd_bus_message_read_basic(m, kt, &kv)) == 0:
            raise _short_message()
        k = _key_str(kv.s) if kt == b's' else _basic_value(kt, &kv)
        v = _read_elem(m, entry + 1, en - 1, flags, &e2)
        if e2:
            raise _short_message()
        check(sd_bus_message_exit_container(m))
        d[k] = v
    return d


cdef object _read_array_body(sd_bus_message *m, const char *contents, Py_ssize_t cn, int flags):
    # inside an array container whose element type is contents[:cn]
    cdef list items = []
    cdef bint end = False
    cdef _Basic v
    cdef char t = contents[0]
    if t == b'{':
        return _read_dict_body(m, contents, cn, flags)
    if cn == 1 and t != b'v':
        while check(sd_bus_message_read_basic(m, t, &v)) > 0:
            items.append(_basic_value(t, &v))
        return items
    if t == b'(':
        return _read_struct_array(m, contents, flags)
    while True:
        x = _read_elem(m, contents, cn, flags, &end)
        if end:
            return items
        items.append(x)


cdef struct _Members:
    # the complete types of a struct's members: offsets and lengths in contents
    Py_ssize_t n
    Py_ssize_t off[255]
    Py_ssize_t len[255]


cdef int _members(const char *contents, _Members *mb) except -1:
    cdef Py_ssize_t i = 0, kn
    mb.n = 0
    while contents[i] != 0:
        kn = _type_len(contents + i, 0)
        mb.off[mb.n] = i
        mb.len[mb.n] = kn
        mb.n += 1
        i += kn
    return 0


cdef tuple _read_members(sd_bus_message *m, const char *contents, _Members *mb, int flags):
    # inside a struct: one value per member, straight into the tuple
    cdef tuple out = PyTuple_New(mb.n)
    cdef Py_ssize_t k
    cdef bint end = False
    cdef _Basic v
    cdef char t
    cdef object x
    for k in range(mb.n):
        t = contents[mb.off[k]]
        if mb.len[k] == 1 and t != b'v':
            if check(sd_bus_message_read_basic(m, t, &v)) == 0:
                raise _short_message()
            if t == b's' or t == b'o':
                x = _val_str(v.s)
            else:
                x = _basic_value(t, &v)
        else:
            x = _read_elem(m, contents + mb.off[k], mb.len[k], flags, &end)
            if end:
                raise _short_message()
        Py_INCREF(x)
        PyTuple_SET_ITEM(out, k, x)
    return out


cdef tuple _read_struct_body(sd_bus_message *m, const char *contents, int flags):
    cdef _Members mb
    _members(contents, &mb)
    return _read_members(m, contents, &mb, flags)


cdef list _read_struct_array(sd_bus_message *m, const char *contents, int flags):
    # inside an array of structs; contents is the struct's "(...)": its member
    # layout is worked out once for the whole array
    cdef char inner[256]
    cdef _Members mb
    cdef list items = []
    cdef Py_ssize_t n = strlen(contents)
    _sub(inner, contents + 1, n - 2)
    _members(inner, &mb)
    while check(sd_bus_message_enter_container(m, b'r', inner)) > 0:
        items.append(_read_members(m, inner, &mb, flags))
        check(sd_bus_message_exit_container(m))
    return items


cdef object _read_elem(sd_bus_message *m, const char *sig, Py_ssize_t n, int flags, bint *end):
    """Read one value of complete type sig[:n]; set end[0] at the end of the container."""
    cdef char t = sig[0]
    cdef char contents[256]
    cdef _Basic v
    if n == 1 and t != b'v':
        if check(sd_bus_message_read_basic(m, t, &v)) == 0:
            end[0] = True
            return None
        if t == b's' or t == b'o':
            return _val_str(v.s)
        return _basic_value(t, &v)
    if t == b'v':
        return _read_variant(m, flags, end)
    if t == b'a':
        if n == 2 and sig[1] == b'y':
            return _read_bytes(m, end)
        if n == 2 and _is_fixed(sig[1]):
            return _read_fixed_array(m, sig[1], end)
        _sub(contents, sig + 1, n - 1)
        if check(sd_bus_message_enter_container(m, b'a', contents)) == 0:
            end[0] = True
            return None
        value = _read_array_body(m, contents, n - 1, flags)
        check(sd_bus_message_exit_container(m))
        return value
    if t == b'(':
        _sub(contents, sig + 1, n - 2)
        if check(sd_bus_message_enter_container(m, b'r', contents)) == 0:
            end[0] = True
            return None
        value = _read_struct_body(m, contents, flags)
        check(sd_bus_message_exit_container(m))
        return value
    raise ValueError(f"invalid type code {_tname(t)} in signature")


cdef object _read_bytes(sd_bus_message *m, bint *end):
    cdef const void *ptr = NULL
    cdef size_t size = 0
    if check(sd_bus_message_read_array(m, b'y', &ptr, &size)) == 0:
        end[0] = True
        return None
    return PyBytes_FromStringAndSize(<const char *>ptr, size) if size else b""


cdef object read_value(sd_bus_message *m, char t, const char *contents, int flags):
    """Read the next value, whose type ``t``/``contents`` peek_type returned."""
    cdef char c[256]
    cdef Py_ssize_t n
    cdef bint end = False
    if t == b'a':
        n = strlen(contents)
        if n == 1 and contents[0] == b'y':
            value = _read_bytes(m, &end)
        elif n == 1 and _is_fixed(contents[0]):
            value = _read_fixed_array(m, contents[0], &end)
        else:
            _sub(c, contents, n)
            if check(sd_bus_message_enter_container(m, b'a', c)) == 0:
                raise _short_message()
            value = _read_array_body(m, c, n, flags)
            check(sd_bus_message_exit_container(m))
            return value
    elif t == b'r':
        _sub(c, contents, strlen(contents))
        if check(sd_bus_message_enter_container(m, b'r', c)) == 0:
            raise _short_message()
        value = _read_struct_body(m, c, flags)
        check(sd_bus_message_exit_container(m))
        return value
    elif t == b'v':
        value = _read_variant(m, flags, &end)
    elif t == b'e':
        n = strlen(contents)
        _sub(c, contents, n)
        if check(sd_bus_message_enter_container(m, b'e', c)) == 0:
            raise _short_message()
        k = _read_basic(m, c[0])
        value = (k, _read_elem(m, c + 1, n - 1, flags, &end))
        if not end:
            check(sd_bus_message_exit_container(m))
    else:
        value = _read_elem(m, &t, 1, flags, &end)
    if end:
        raise _short_message()
    return value


cdef tuple read_body(sd_bus_message *m, int flags):
    """Read the rest of the message body as a tuple."""
    cdef char t = 0
    cdef const char *c = NULL
    cdef list out = []
    while check(sd_bus_message_peek_type(m, &t, &c)) > 0:
        out.append(read_value(m, t, c, flags))
    return tuple(out)


cdef object _read_get_reply(sd_bus_message *reply, int flags):
    # the body of a Properties.Get reply: one variant
    cdef bint end = False
    value = _read_variant(reply, flags, &end)
    if end:
        raise ValueError("Properties.Get returned an empty reply")
    return value


cdef dict _read_getall_reply(sd_bus_message *reply, object names, int flags):
    """The a{sv} of a GetAll reply; with names, values of the others are skipped."""
    cdef dict d = {}
    cdef const char *k = NULL
    cdef bint end = False
    cdef char t = 0
    cdef const char *c = NULL
    if check(sd_bus_message_peek_type(reply, &t, &c)) == 0 or t != b'a' or c == NULL or strcmp(c, b"{sv}") != 0:
        raise ValueError("Properties.GetAll did not return a{sv}")
    check(sd_bus_message_enter_container(reply, b'a', b"{sv}"))
    while check(sd_bus_message_enter_container(reply, b'e', b"sv")) > 0:
        if check(sd_bus_message_read_basic(reply, b's', &k)) == 0:
            raise _short_message()
        key = _key_str(k)
        if names is not None and key not in names:
            check(sd_bus_message_skip(reply, b"v"))
        else:
            d[key] = _read_variant(reply, flags, &end)
            if end:
                raise _short_message()
        check(sd_bus_message_exit_container(reply))
    check(sd_bus_message_exit_container(reply))
    return d


# ---------------------------------------------------------------------------
# messages

cdef struct _Pending:
    sd_bus_message *reply
    int done


cdef int _on_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) noexcept nogil:
    cdef _Pending *p = <_Pending *>userdata
    if p.reply == NULL:
        p.reply = sd_bus_message_ref(m)
    p.done = 1
    return 0


cdef class Message:
    """An sd-bus message: a signal, or a method call being served.

    Only C code creates these (``Message.wrap``); Python sees the headers as
    attributes and the payload through ``body()``.
    """

    def __cinit__(self):
        self.m = NULL

    def __init__(self):
        raise TypeError("Message objects are created by pystemd, not directly")

    @staticmethod
    cdef Message wrap(sd_bus_message *m):
        cdef Message self = Message.__new__(Message)
        self.m = sd_bus_message_ref(m)
        return self

    def __dealloc__(self):
        cdef object pending
        if self.m == NULL:
            return
        if _nogil_busy:
            # another thread may be driving this message's bus without the GIL
            pending = _nogil_busy.get(<size_t>sd_bus_message_get_bus(self.m))
            if pending is not None:
                pending.append(<size_t>self.m)
                self.m = NULL
                return
        sd_bus_message_unref(self.m)
        self.m = NULL

    cdef str _hdr(self, const char *v):
        return None if v == NULL else _str(v)

    @property
    def path(self):
        return self._hdr(sd_bus_message_get_path(self.m))

    @property
    def interface(self):
        return self._hdr(sd_bus_message_get_interface(self.m))

    @property
    def member(self):
        return self._hdr(sd_bus_message_get_member(self.m))

    @property
    def sender(self):
        return self._hdr(sd_bus_message_get_sender(self.m))

    @property
    def destination(self):
        return self._hdr(sd_bus_message_get_destination(self.m))

    @property
    def signature(self):
        return self._hdr(sd_bus_message_get_signature(self.m, 1)) or ""

    @property
    def type(self):
        cdef uint8_t t = 0
        check(sd_bus_message_get_type(self.m, &t))
        return t

    @property
    def cookie(self):
        cdef uint64_t c = 0
        if sd_bus_message_get_cookie(self.m, &c) < 0:
            return None
        return c

    @property
    def error(self):
        """For an error reply: the exception it stands for; else None."""
        cdef const sd_bus_error *e = sd_bus_message_get_error(self.m)
        if e == NULL or e.name == NULL:
            return None
        return bus_error_from(e, -sd_bus_message_get_errno(self.m))

    def body(self, *, int flags=0):
        """The payload as a tuple (read from the start each time)."""
        check(sd_bus_message_rewind(self.m, 1))
        return read_body(self.m, flags)

    def __repr__(self):
        return (f"<Message type={self.type} path={self.path} interface={self.interface} "
                f"member={self.member} signature={self.signature!r}>")


cdef inline const char *_name(object value, str what) except NULL:
    cdef Py_ssize_t size
    cdef const char *p
    if isinstance(value, str):
        p = PyUnicode_AsUTF8AndSize(value, &size)
    elif isinstance(value, bytes):
        p = PyBytes_AS_STRING(value)
        size = PyBytes_GET_SIZE(value)
    else:
        raise TypeError(f"{what} must be str, got {type(value).__name__}")
    if <size_t>size != strlen(p):
        raise ValueError(f"embedded NUL character in {what}")
    return p


cdef bytes cstr_arg(object value, str what):
    """A name or path argument as bytes: str (UTF-8) or bytes, refused with an embedded NUL."""
    if isinstance(value, str):
        b = (<str>value).encode("utf-8")
    elif isinstance(value, bytes):
        b = value
    else:
        raise TypeError(f"{what} must be str, got {type(value).__name__}")
    if b"\0" in b:
        raise ValueError(f"embedded NUL character in {what}")
    return b


cdef uint64_t _timeout_usec(object timeout) except? 0:
    if timeout is None:
        return 0  # sd-bus default (25 s, or Bus.method_call_timeout)
    if isinstance(timeout, (str, bytes)):
        raise TypeError(f"timeout must be a number of seconds or None, got {type(timeout).__name__}")
    t = float(timeout)
    if t != t or t <= 0:
        raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
    if t == float("inf") or t > 1.8e13:
        return UINT64_MAX
    cdef uint64_t usec = <uint64_t>(t * 1e6)
    return usec if usec > 0 else 1


cdef object _no_reply():
    return _bus_error_by_name("org.freedesktop.DBus.Error.NoReply", "Method call timed out", ETIMEDOUT)


cdef void _unprocessed(sd_bus_message *msg) noexcept:
    # What sd_bus_process() does with a message nobody handled: a method call
    # gets an UnknownObject error (unless it wants no reply); the rest is dropped.
    cdef uint8_t t = 0
    cdef sd_bus_error e
    cdef const char *path
    if (sd_bus_message_get_type(msg, &t) >= 0 and t == SD_BUS_MESSAGE_METHOD_CALL
            and sd_bus_message_get_expect_reply(msg) > 0):
        path = sd_bus_message_get_path(msg)
        try:
            text = f"Unknown object '{_str(path) if path != NULL else ''}'.".encode()
        except BaseException:
            text = b"Unknown object."
        e.name = b"org.freedesktop.DBus.Error.UnknownObject"
        e.message = text
        e._need_free = 0
        sd_bus_reply_method_error(msg, &e)  # best effort, as sd-bus does
    sd_bus_message_unref(msg)


cdef inline void _list_discard(list items, object x) noexcept:
    cdef Py_ssize_t k
    for k in range(len(items) - 1, -1, -1):
        if items[k] is x:
            del items[k]


# ---------------------------------------------------------------------------
# match slots

cdef class Slot:
    """A registered match rule. ``remove()`` (or leaving ``with``) unregisters it.

    The callback is kept alive by sd-bus until the match is removed or the bus
    is closed; dropping the Slot object does not remove the match.
    """

    def __cinit__(self):
        self.slot = NULL
        self._bus_ref = None
        self.callback = None
        self.rule = ""
        self._install_done = 0
        self._install_reply = NULL

    def __init__(self):
        raise TypeError("Slot objects are made by Bus.add_match() / Bus.match_signal()")

    @property
    def active(self):
        """True until the match is removed or its bus closed."""
        return self.slot != NULL

    def remove(self):
        """Remove the match (idempotent). Callbacks already queued still run."""
        cdef Bus bus
        if self.slot == NULL:
            return
        b = self._bus_ref() if self._bus_ref is not None else None
        if b is None:
            return
        bus = <Bus>b
        if bus._gen != _fork_generation or bus.bus == NULL:
            return
        bus.acquire()
        try:
            if self.slot != NULL:
                sd_bus_slot_unref(self.slot)  # the destroy callback clears self.slot
                self.slot = NULL
            _list_discard(bus._slots, self)
        finally:
            bus.release()

    def close(self):
        """The same as remove()."""
        self.remove()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()

    def __repr__(self):
        return f"<Slot {'active' if self.slot != NULL else 'removed'} {self.rule!r}>"

    def __dealloc__(self):
        if self._install_reply != NULL:
            sd_bus_message_unref(self._install_reply)
            self._install_reply = NULL


cdef void _on_slot_destroy(void *userdata) noexcept with gil:
    # sd-bus is done with the slot: drop the reference the registration took.
    cdef Slot s = <Slot>userdata
    s.slot = NULL
    s.callback = None  # callbacks already queued keep their own reference
    try:
        b = s._bus_ref() if s._bus_ref is not None else None
        if b is not None and (<Bus>b)._slots is not None:
            _list_discard((<Bus>b)._slots, s)
    except BaseException:
        pass
    Py_DECREF(s)


cdef int _on_match(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) noexcept with gil:
    # Never run Python callbacks inside sd-bus's dispatch: queue them for process().
    cdef Slot s = <Slot>userdata
    cdef Bus bus
    b = s._bus_ref()
    if b is None:
        return 0
    bus = <Bus>b
    try:
        bus._deferred.append((s.callback, Message.wrap(m)))
    except BaseException as e:  # MemoryError
        bus.park_exception(e)
    return 0


cdef int _on_match_installed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) noexcept with gil:
    cdef Slot s = <Slot>userdata
    if s._install_reply == NULL:
        s._install_reply = sd_bus_message_ref(m)
    s._install_done = 1
    return 0


cdef str _rule_value(object value, str what):
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{what} must be str or None, got {type(value).__name__}")
    if "'" in value or "\\" in value or "\0" in value:
        raise ValueError(f"invalid {what} {value!r}")
    return value


# ---------------------------------------------------------------------------
# pipelined calls: the C side runs without Python objects (and without the GIL)

cdef struct _BCall:
    sd_bus_message *m
    sd_bus_message *reply
    sd_bus_slot *slot
    void *batch
    Py_ssize_t idx
    int state      # 0 to send, 1 in flight, 2 replied, 3 failed locally (err)
    int err
    int resend     # m was sent once (refused with LimitsExceeded): send a copy


cdef struct _Batch:
    _BCall *calls
    Py_ssize_t n
    Py_ssize_t cursor
    Py_ssize_t in_flight
    Py_ssize_t finished
    Py_ssize_t window
    Py_ssize_t limit_hits
    uint64_t usec
    int retry_limits
    int idle_hits


cdef int _on_batch_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) noexcept nogil:
    cdef _BCall *c = <_BCall *>userdata
    cdef _Batch *b = <_Batch *>c.batch
    b.in_flight -= 1
    if b.retry_limits and sd_bus_message_is_method_error(m, _LIMITS_EXCEEDED) > 0:
        # The daemon's pending-reply cap: it accepted what is still in flight.
        # Shrink the window to that and send this one again later; give up
        # when the cap is hit with nothing of ours in flight (someone else on
        # this connection holds the slots).
        if b.in_flight > 0 or b.idle_hits < 3:
            if b.in_flight == 0:
                b.idle_hits += 1
            b.window = b.in_flight if b.in_flight > 0 else 1
            b.limit_hits += 1
            c.state = 0
            c.resend = 1
            if c.idx < b.cursor:
                b.cursor = c.idx
            return 0
    c.reply = sd_bus_message_ref(m)
    c.state = 2
    b.finished += 1
    return 0


cdef int _clone_call(sd_bus *bus, sd_bus_message *old, sd_bus_message **out) noexcept nogil:
    cdef sd_bus_message *n = NULL
    cdef int r = sd_bus_message_new_method_call(
        bus, &n, sd_bus_message_get_destination(old), sd_bus_message_get_path(old),
        sd_bus_message_get_interface(old), sd_bus_message_get_member(old))
    if r >= 0:
        r = sd_bus_message_rewind(old, 1)
    if r >= 0:
        r = sd_bus_message_copy(n, old, 1)
    if r >= 0:
        r = sd_bus_message_set_auto_start(n, sd_bus_message_get_auto_start(old))
    if r >= 0:
        r = sd_bus_message_set_allow_interactive_authorization(
            n, sd_bus_message_get_allow_interactive_authorization(old))
    if r < 0:
        if n != NULL:
            sd_bus_message_unref(n)
        return r
    out[0] = n
    return 0


cdef void _batch_fail_rest(_Batch *b, int err) noexcept nogil:
    cdef Py_ssize_t k
    for k in range(b.n):
        if b.calls[k].state == 0:
            b.calls[k].state = 3
            b.calls[k].err = err
            b.finished += 1


cdef int _batch_send(sd_bus *bus, _Batch *b) noexcept nogil:
    cdef _BCall *c
    cdef uint64_t queued = 0
    cdef sd_bus_message *nm = NULL
    cdef int r
    while b.in_flight < b.window and b.cursor < b.n:
        c = &b.calls[b.cursor]
        if c.state != 0:
            b.cursor += 1
            continue
        # backpressure: while sd-bus holds unwritten messages (the socket
        # buffer is full) queue nothing more
        if sd_bus_get_n_queued_write(bus, &queued) >= 0 and queued > 0:
            return 0
        if c.resend:
            r = _clone_call(bus, c.m, &nm)
            if r < 0:
                c.state = 3
                c.err = r
                b.finished += 1
                b.cursor += 1
                continue
            sd_bus_message_unref(c.m)
            c.m = nm
            c.resend = 0
            if c.slot != NULL:
                sd_bus_slot_unref(c.slot)
                c.slot = NULL
        r = sd_bus_call_async(bus, &c.slot, c.m, _on_batch_reply, c, b.usec)
        if r == -ENOBUFS:
            return 0  # sd-bus's write queue is full: wait for it to drain
        if r < 0:
            c.state = 3
            c.err = r
            b.finished += 1
            b.cursor += 1
            if sd_bus_is_open(bus) <= 0:
                _batch_fail_rest(b, r)
                return r
            continue
        c.state = 1
        b.in_flight += 1
        b.cursor += 1
    return 0


cdef int _batch_pump(sd_bus *bus, _Batch *b, long long budget_us) noexcept nogil:
    """Drive the batch: 1 when every call finished, 0 when budget_us ran out
    (budget_us < 0: no budget, block), <0 on a bus error (-EINTR included)."""
    cdef uint64_t t0
    cdef int r
    while True:
        r = _batch_send(bus, b)
        if b.finished >= b.n:
            return 1
        r = sd_bus_process(bus, NULL)
        if r < 0:
            return r
        if b.finished >= b.n:
            return 1
        if r > 0:
            continue
        if budget_us >= 0:
            if budget_us == 0:
                return 0
            t0 = _now_us()
            r = _poll_once(bus, budget_us)
            budget_us -= <long long>(_now_us() - t0)
            if budget_us < 0:
                budget_us = 0
        else:
            r = sd_bus_wait(bus, UINT64_MAX)
        if r < 0:
            return r


cdef int _handshake(sd_bus *bus, uint64_t deadline) noexcept nogil:
    """Drive a new connection until sd-bus says it is ready: authenticated and,
    for a bus client, Hello answered. 1 when ready; -ETIMEDOUT when deadline
    (CLOCK_MONOTONIC µs) passes first; another negative errno when the
    connection fails (-EINTR: a signal came, call again)."""
    cdef uint64_t now
    cdef int r
    while True:
        r = sd_bus_is_ready(bus)
        if r != 0:
            return r
        r = sd_bus_process(bus, NULL)
        if r < 0:
            return r
        if r > 0:
            continue
        if sd_bus_is_open(bus) <= 0:
            return -ECONNRESET
        now = _now_us()
        if now >= deadline:
            return -ETIMEDOUT
        r = sd_bus_wait(bus, deadline - now)
        if r < 0:
            return r


# ---------------------------------------------------------------------------
# the connection

cdef class Bus:
    """One sd-bus connection. Use the façade ``pystemd.bus.Bus`` to open one."""

    def __cinit__(self):
        self.bus = NULL
        rlock_init(&self._rl)
        self.kind = "closed"
        self.description = None
        self.gil_hold_us = DEFAULT_GIL_HOLD_US
        self._deferred = []
        self._exc = None
        self._more_exc = []
        self._slots = []
        self._in_call = 0
        self.shared = False
        self._wakeup = None
        self._gen = _fork_generation

    # -- opening -------------------------------------------------------------

    def _open(self, str kind, object arg=None, bint bus_client=True, object description=None,
              object timeout=None):
        """Open the connection, and complete its handshake before returning.

        kind: ``system``, ``user``, ``address`` (arg: the address; bus_client
        False for a peer-to-peer socket), ``remote`` (arg: [user@]host[:port][/machine]),
        ``machine`` / ``user_machine`` (arg: a container name, [user@]name).
        ``timeout``: seconds for connecting, authenticating and (bus client)
        the Hello call; None: the bus's method-call timeout (sd-bus: 25 s).
        """
        cdef sd_bus *b = NULL
        cdef int r
        cdef const char *a = NULL
        cdef const char *dsc = NULL
        cdef uint64_t usec = _timeout_usec(timeout), start = _now_us(), deadline
        if self.bus != NULL:
            raise RuntimeError("bus is already open")
        if arg is not None:
            a = _name(arg, kind)
        if description is not None:
            dsc = _name(description, "description")
        if kind == "system":
            with nogil:
                r = sd_bus_open_system_with_description(&b, dsc)
            what = "system bus at " + _os.environ.get("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/run/dbus/system_bus_socket")
        elif kind == "user":
            with nogil:
                r = sd_bus_open_user_with_description(&b, dsc)
            what = "user bus at " + _os.environ.get("DBUS_SESSION_BUS_ADDRESS", "$XDG_RUNTIME_DIR/bus")
        elif kind == "remote":
            with nogil:
                r = sd_bus_open_system_remote(&b, a)
            what = f"system bus of remote host {arg!r}"
        elif kind == "machine":
            with nogil:
                r = sd_bus_open_system_machine(&b, a)
            what = f"system bus of machine {arg!r}"
            if r == -EHOSTDOWN:
                what += " (no such machine registered with systemd-machined; Bus.container(pid=...) needs none)"
        elif kind == "user_machine":
            with nogil:
                r = sd_bus_open_user_machine(&b, a)
            what = f"user bus of machine {arg!r}"
            if r == -EHOSTDOWN:
                what += " (no such machine registered with systemd-machined)"
        elif kind == "address":
            r = sd_bus_new(&b)
            if r >= 0:
                r = sd_bus_set_address(b, a)
            if r >= 0:
                r = sd_bus_set_bus_client(b, bus_client)
            if r >= 0:
                r = sd_bus_negotiate_fds(b, 1)
            if r >= 0 and dsc != NULL:
                r = sd_bus_set_description(b, dsc)
            if r >= 0:
                with nogil:
                    r = sd_bus_start(b)
            what = f"bus address {arg!r}"
        else:
            raise ValueError(f"unknown bus kind {kind!r}")
        if r < 0:
            if b != NULL:
                sd_bus_unref(b)
            check_ctx(r, what)
        if dsc != NULL and kind in ("remote", "machine", "user_machine"):
            r = sd_bus_set_description(b, dsc)
            if r < 0:
                sd_bus_unref(b)
                check_ctx(r, "sd_bus_set_description")
        # sd-bus authenticates (and sends Hello) lazily, at the first call; a
        # connection left idle until then is dropped by dbus-daemon after its
        # auth_timeout. So drive it to "ready" now, without the GIL.
        if usec == 0:
            r = sd_bus_get_method_call_timeout(b, &usec)
            if r < 0:
                sd_bus_close_unref(b)
                check_ctx(r, "sd_bus_get_method_call_timeout")
        deadline = UINT64_MAX if usec == UINT64_MAX or UINT64_MAX - start < usec else start + usec
        while True:
            with nogil:
                r = _handshake(b, deadline)
            if r != -EINTR:
                break
            try:
                PyErr_CheckSignals()
            except BaseException:
                sd_bus_close_unref(b)
                raise
        if r < 0:
            sd_bus_close_unref(b)
            if r == -ETIMEDOUT:
                raise TimeoutError(ETIMEDOUT, f"no answer to authentication{' and Hello' if bus_client else ''}"
                                              f" within {usec / 1e6:g} s", what)
            if r == -EPERM or r == -EACCES:
                raise PermissionError(-r, "authentication refused", what)
            check_ctx(r, f"{what} (handshake)")
        self.bus = b
        self._gen = _fork_generation
        self.kind = kind
        self.description = arg if description is None else description

    # -- callbacks (the contract with the serving / asyncio modules) ----------

    cdef int defer(self, object fn) except -1:
        """Queue fn() to run from the next process() (not inside sd-bus's dispatch)."""
        self._deferred.append(fn)
        return 0

    cdef void park_exception(self, object exc) noexcept:
        """Keep an exception a callback raised; process() re-raises it (in order)."""
        if self._exc is None:
            self._exc = exc
        else:
            self._more_exc.append(exc)

    cdef int run_deferred(self) except -1:
        """Run queued callbacks. Stops at the first one that raises (which is
        parked); the rest stay queued for the next process()."""
        cdef list todo
        cdef Py_ssize_t k, n
        while self._deferred:
            todo = self._deferred
            self._deferred = []
            n = len(todo)
            for k in range(n):
                item = todo[k]
                try:
                    if type(item) is tuple:
                        (<tuple>item)[0]((<tuple>item)[1])
                    else:
                        item()
                except BaseException as e:
                    self.park_exception(e)
                    self._deferred[:0] = todo[k + 1:]
                    return 0
        return 0

    cdef void left_behind(self) noexcept:
        """After a blocking path returned: if it left work for an event loop
        (queued messages, deferred callbacks, parked exceptions), call the
        wake-up hook. Callers test ``self._wakeup is not None`` first."""
        cdef uint64_t q = 0
        fn = self._wakeup
        if fn is None or self.bus == NULL:
            return
        if not (self._deferred or self._exc is not None
                or (sd_bus_get_n_queued_read(self.bus, &q) >= 0 and q > 0)):
            return
        try:
            fn()
        except BaseException as e:
            self.park_exception(e)

    def _set_wakeup(self, fn):
        """Install (or with None remove) the wake-up hook; returns the previous one.

        ``fn()`` is called, from whichever thread made the blocking call, when
        a blocking call, batch or match install leaves messages queued in
        sd-bus or callbacks deferred: an event loop driving this Bus must then
        run ``process()`` even though the fd stays quiet. pystemd.aio sets it.
        """
        if fn is not None and not callable(fn):
            raise TypeError(f"the wake-up hook must be callable or None, got {type(fn).__name__}")
        old = self._wakeup
        self._wakeup = fn
        return old

    cdef object _take_exception(self):
        exc = self._exc
        if exc is not None:
            self._exc = self._more_exc.pop(0) if self._more_exc else None
        return exc

    # -- lifetime ------------------------------------------------------------

    cdef int ensure_open(self) except -1:
        if self._gen != _fork_generation:
            raise RuntimeError(
                "this bus was opened before fork(); the child must open its own connection"
            )
        if self.bus == NULL:
            raise ValueError("operation on a closed bus")
        return 0

    cdef int acquire(self) except -1:
        self.ensure_open()
        if rlock_mine(&self._rl):
            self._rl.depth += 1
            return 0
        rlock_take(&self._rl)
        if self.bus == NULL:  # closed by another thread while we waited
            self.release()
            raise ValueError("operation on a closed bus")
        return 0

    cdef void release(self) noexcept:
        rlock_release(&self._rl)

    cdef void _drop_slots(self) noexcept:
        # remove every match this Bus registered (their callbacks are released)
        cdef Slot s
        if not self._slots:
            return
        for x in list(self._slots):
            s = <Slot>x
            if s.slot != NULL:
                sd_bus_slot_unref(s.slot)  # the destroy callback releases s
                s.slot = NULL
            s.callback = None
        self._slots.clear()

    def close(self):
        """Flush and close the connection. Safe to call more than once."""
        cdef sd_bus *b
        cdef int r
        cdef list pending
        if self._gen != _fork_generation:
            self.bus = NULL  # the parent's connection: leave it alone in the child
            return
        if self.bus == NULL:
            return
        self.acquire()
        try:
            if self._rl.depth > 1:
                raise RuntimeError("cannot close a bus from inside one of its own callbacks")
            b = self.bus
            self._drop_slots()
            pending = _busy_enter(b)
            try:
                with nogil:
                    r = sd_bus_flush(b)  # errors here only mean nothing more can be sent
            finally:
                _busy_exit(b, pending)
            self.bus = NULL
            sd_bus_close_unref(b)
            self._deferred = []
            self._wakeup = None
        finally:
            self.release()

    @property
    def closed(self):
        return self.bus == NULL

    def __del__(self):
        if self.bus != NULL and self._gen == _fork_generation:
            if not self.shared:
                try:
                    _warnings.warn(f"unclosed {self!r}", ResourceWarning, source=self)
                except Exception:
                    pass
            if self._rl.depth == 0:
                self._drop_slots()
            sd_bus_close_unref(self.bus)
            self.bus = NULL

    def __dealloc__(self):
        if self.bus != NULL and self._gen == _fork_generation:
            sd_bus_close_unref(self.bus)
        # after fork() the child leaves the parent's connection alone
        self.bus = NULL
        rlock_free(&self._rl)

    # -- event-loop primitives ----------------------------------------------

    def fileno(self):
        """The connection's fd, for select/poll/epoll (it does not change)."""
        cdef int r
        self.acquire()
        r = sd_bus_get_fd(self.bus)
        self.release()
        return check(r)

    def get_events(self):
        """poll() events the bus waits for (POLLIN, plus POLLOUT while sending)."""
        cdef int r
        self.acquire()
        r = sd_bus_get_events(self.bus)
        self.release()
        return check(r)

    def get_timeout(self):
        """Absolute CLOCK_MONOTONIC deadline in µs for the next process(), or None.

        0 means "call process() now" (messages, callbacks or an exception are
        already queued).
        """
        cdef uint64_t t = 0
        cdef int r
        if self._deferred or self._exc is not None:
            self.ensure_open()
            return 0
        self.acquire()
        r = sd_bus_get_timeout(self.bus, &t)
        self.release()
        check(r)
        if t == UINT64_MAX:
            return None
        return t

    def process(self):
        """Process one pending message and run the callbacks it queued.

        Returns True if something was done (call again), False when idle. An
        exception raised by a callback is re-raised here, with its traceback.
        """
        cdef int r = 0
        exc = self._take_exception()
        if exc is not None:
            raise exc
        self.acquire()
        try:
            if self._deferred:
                self.run_deferred()
                r = 1
            else:
                r = sd_bus_process(self.bus, NULL)
                if r >= 0 and self._deferred:
                    self.run_deferred()
        finally:
            self.release()
        exc = self._take_exception()
        if exc is not None:
            raise exc
        check_ctx(r, "sd_bus_process")
        return r > 0

    def wait(self, timeout=None):
        """Wait (GIL released) until the bus has something to process.

        Returns True if woken by activity, False on timeout.
        """
        cdef uint64_t usec = UINT64_MAX
        cdef int r
        if timeout is not None:
            t = float(timeout)
            if t != t:
                raise ValueError("timeout must be a number of seconds or None")
            usec = <uint64_t>(max(t, 0.0) * 1e6) if t < 1.8e13 else UINT64_MAX
        self.acquire()
        try:
            if self._deferred or self._exc is not None:
                return True
            while True:
                with nogil:
                    r = sd_bus_wait(self.bus, usec)
                if r == -EINTR:
                    PyErr_CheckSignals()
                    continue
                break
        finally:
            self.release()
        return check_ctx(r, "sd_bus_wait") > 0

    def flush(self):
        """Write out everything queued (GIL released while the socket is full)."""
        cdef int r
        cdef list pending
        cdef sd_bus *b
        self.acquire()
        try:
            b = self.bus
            pending = _busy_enter(b)
            try:
                with nogil:
                    r = sd_bus_flush(b)
            finally:
                _busy_exit(b, pending)
        finally:
            self.release()
        check_ctx(r, "sd_bus_flush")

    @property
    def unique_name(self):
        """This connection's unique name (':1.42'), None for peer-to-peer."""
        cdef const char *u = NULL
        cdef int r
        self.acquire()
        try:
            if sd_bus_is_bus_client(self.bus) <= 0:
                return None
            r = sd_bus_get_unique_name(self.bus, &u)
        finally:
            self.release()
        if r == -ENOTCONN:
            return None
        check_ctx(r, "sd_bus_get_unique_name")
        return _str(u)

    @property
    def is_bus_client(self):
        """False for a peer-to-peer connection (no dbus-daemon in between)."""
        self.ensure_open()
        return check(sd_bus_is_bus_client(self.bus)) > 0

    @property
    def address(self):
        cdef const char *a = NULL
        self.ensure_open()
        check(sd_bus_get_address(self.bus, &a))
        return _str(a)

    @property
    def method_call_timeout(self):
        """The default timeout of calls on this bus, in seconds (sd-bus: 25 s)."""
        cdef uint64_t usec = 0
        self.ensure_open()
        check(sd_bus_get_method_call_timeout(self.bus, &usec))
        return usec / 1e6

    @method_call_timeout.setter
    def method_call_timeout(self, value):
        cdef uint64_t usec = _timeout_usec(value)
        self.ensure_open()
        check(sd_bus_set_method_call_timeout(self.bus, usec))

    # -- calls ---------------------------------------------------------------

    cdef sd_bus_message *new_method_call(self, object destination, object path,
                                         object interface, object member) except NULL:
        cdef sd_bus_message *m = NULL
        cdef const char *d = NULL
        cdef const char *i = NULL
        cdef const char *p = _name(path, "path")
        cdef const char *mb = _name(member, "member")
        cdef int r
        if destination is not None:
            d = _name(destination, "destination")
        if interface is not None:
            i = _name(interface, "interface")
        r = sd_bus_message_new_method_call(self.bus, &m, d, p, i, mb)
        if r == -EINVAL:
            if d != NULL and not sd_bus_service_name_is_valid(d):
                raise ValueError(f"invalid bus name {destination!r}")
            if not sd_bus_object_path_is_valid(p):
                raise ValueError(f"invalid object path {path!r}")
            if i != NULL and not sd_bus_interface_name_is_valid(i):
                raise ValueError(f"invalid interface name {interface!r}")
            if not sd_bus_member_name_is_valid(mb):
                raise ValueError(f"invalid member name {member!r}")
        check_ctx(r, "sd_bus_message_new_method_call")
        return m

    cdef int wait_until(self, int *done, uint64_t deadline_us) except -1:
        """Drive the bus until done[0] is set (the lock must be held)."""
        self._in_call += 1
        try:
            self._wait_loop(done, self.gil_hold_us)
        finally:
            self._in_call -= 1
            if self._wakeup is not None:
                self.left_behind()
        return 0

    cdef int _wait_loop(self, int *done, long long spin) except -1:
        cdef int r
        cdef uint64_t t0
        while not done[0]:
            r = sd_bus_process(self.bus, NULL)
            if r < 0:
                check_ctx(r, "sd_bus_process")
            if done[0]:
                break
            if r > 0:
                continue
            if spin > 0:
                t0 = _now_us()
                r = _poll_once(self.bus, spin)
                spin -= <long long>(_now_us() - t0)
            else:
                # sd_bus_wait only polls (it changes nothing in the sd_bus),
                # so another thread may drop messages meanwhile
                with nogil:
                    r = sd_bus_wait(self.bus, UINT64_MAX)
            if r == -EINTR:
                PyErr_CheckSignals()
            elif r < 0:
                check_ctx(r, "sd_bus_wait")
        return 0

    cdef sd_bus_message *call_message(self, sd_bus_message *m, uint64_t usec) except NULL:
        try:
            return self._call_message(m, usec)
        finally:
            if self._wakeup is not None:
                self.left_behind()

    cdef sd_bus_message *_call_message(self, sd_bus_message *m, uint64_t usec) except NULL:
        """Send m and wait for its reply (the lock must be held).

        Returns a new reference to the reply; an error reply raises.

        The GIL policy: first sd-bus's own sd_bus_call() with the GIL held and
        a timeout of gil_hold_us (a fast reply costs exactly what it costs in
        C); if no reply came by then, the call goes on without the GIL: the
        reply is picked out of sd_bus_process() by its cookie, and whatever
        else arrives meanwhile is dispatched as usual (callbacks deferred).
        """
        cdef sd_bus_message *reply = NULL
        cdef sd_bus_error err = SD_BUS_ERROR_NULL
        cdef uint64_t total = usec, first, cookie = 0, start = _now_us()
        cdef long long hold = self.gil_hold_us
        cdef int r
        cdef list pending
        if sd_bus_get_current_message(self.bus) != NULL:
            # Called from inside sd-bus's dispatch (a C callback of another
            # module ran Python code inline): sd_bus_process() may not recurse,
            # so use sd-bus's own synchronous call, which only reads.
            pending = _busy_enter(self.bus)
            try:
                with nogil:
                    r = sd_bus_call(self.bus, m, usec, &err, &reply)
            finally:
                _busy_exit(self.bus, pending)
            if r < 0:
                try:
                    exc = bus_error_from(&err, r)
                finally:
                    sd_bus_error_free(&err)
                raise exc
            return reply
        if total == 0:
            check(sd_bus_get_method_call_timeout(self.bus, &total))
        if hold > 0:
            first = <uint64_t>hold if <uint64_t>hold < total else total
            r = sd_bus_call(self.bus, m, first, &err, &reply)
            if r >= 0:
                return reply
            # sd_bus_call's own timeout (not an error reply that maps to
            # ETIMEDOUT): it sets a constant error (_need_free 0), while an
            # error reply is copied out of the message
            own = (r == -ETIMEDOUT and err._need_free == 0 and _now_us() - start >= first
                   and sd_bus_message_get_cookie(m, &cookie) >= 0)
            if not own and r != -EINTR:
                try:
                    exc = bus_error_from(&err, r)
                finally:
                    sd_bus_error_free(&err)
                raise exc
            sd_bus_error_free(&err)
            if r == -EINTR:
                check(sd_bus_message_get_cookie(m, &cookie))
                PyErr_CheckSignals()
            elif first >= total:
                raise _no_reply()
        else:
            check_ctx(sd_bus_send(self.bus, m, &cookie), "sd_bus_send")
        reply = self._await_reply(cookie, start, total)
        if sd_bus_message_is_method_error(reply, NULL) > 0:
            try:
                exc = bus_error_from(sd_bus_message_get_error(reply), -sd_bus_message_get_errno(reply))
            finally:
                sd_bus_message_unref(reply)
            raise exc
        return reply

    cdef sd_bus_message *_await_reply(self, uint64_t cookie, uint64_t start, uint64_t total) except NULL:
        """The slow half of call_message: wait for the reply to ``cookie``
        without the GIL, dispatching everything else that arrives."""
        cdef sd_bus_message *msg = NULL
        cdef uint64_t rc = 0, now, left
        cdef uint8_t mtype = 0
        cdef int r
        self._in_call += 1
        try:
            while True:
                msg = NULL
                r = sd_bus_process(self.bus, &msg)
                if r < 0:
                    check_ctx(r, "sd_bus_process")
                if msg != NULL:
                    if (sd_bus_message_get_reply_cookie(msg, &rc) >= 0 and rc == cookie
                            and sd_bus_message_get_type(msg, &mtype) >= 0
                            and (mtype == SD_BUS_MESSAGE_METHOD_RETURN or mtype == SD_BUS_MESSAGE_METHOD_ERROR)):
                        return msg
                    _unprocessed(msg)
                    continue
                if r > 0:
                    continue
                now = _now_us()
                if total != UINT64_MAX and now - start >= total:
                    raise _no_reply()
                left = UINT64_MAX if total == UINT64_MAX else total - (now - start)
                # sd_bus_wait only polls (it changes nothing in the sd_bus),
                # so another thread may drop messages meanwhile
                with nogil:
                    r = sd_bus_wait(self.bus, left)
                if r == -EINTR:
                    PyErr_CheckSignals()
                elif r < 0:
                    check_ctx(r, "sd_bus_wait")
        finally:
            self._in_call -= 1

    def call(self, destination, path, interface, member, signature="", args=(),
             *, timeout=None, int flags=0, bint no_reply=False, bint interactive=False):
        """Call a method and return its reply body as a tuple.

        ``signature`` describes ``args``; plain Python values are converted
        (see docs/bus.md for the type table). ``timeout`` is in seconds
        (None: the bus default, 25 s). ``flags`` takes KEEP_VARIANTS.
        ``no_reply=True`` sends without waiting (returns None);
        ``interactive=True`` allows polkit to ask the user.
        """
        cdef sd_bus_message *m = NULL
        cdef sd_bus_message *reply = NULL
        cdef uint64_t usec = _timeout_usec(timeout)
        cdef uint64_t queued = 0
        self.acquire()
        try:
            m = self.new_method_call(destination, path, interface, member)
            if signature:
                append_args(m, signature, args)
            elif args:
                raise TypeError(f"{len(args)} argument(s) given but the signature is empty")
            if interactive:
                check(sd_bus_message_set_allow_interactive_authorization(m, 1))
            if no_reply:
                check(sd_bus_message_set_expect_reply(m, 0))
                check_ctx(sd_bus_send(self.bus, m, NULL), "sd_bus_send")
                if sd_bus_get_n_queued_write(self.bus, &queued) >= 0 and queued > 0:
                    self.flush()
                return None
            reply = self.call_message(m, usec)
            return read_body(reply, flags)
        finally:
            if m != NULL:
                sd_bus_message_unref(m)
            if reply != NULL:
                sd_bus_message_unref(reply)
            self.release()

    def get_property(self, destination, path, interface, name, *, timeout=None, int flags=0):
        """org.freedesktop.DBus.Properties.Get, unwrapped (flags: KEEP_VARIANTS)."""
        cdef sd_bus_message *m = NULL
        cdef sd_bus_message *reply = NULL
        cdef uint64_t usec = _timeout_usec(timeout)
        self.acquire()
        try:
            m = self.new_method_call(destination, path, "org.freedesktop.DBus.Properties", "Get")
            _append_basic(m, b's', interface)
            _append_basic(m, b's', name)
            reply = self.call_message(m, usec)
            return _read_get_reply(reply, flags)
        finally:
            if m != NULL:
                sd_bus_message_unref(m)
            if reply != NULL:
                sd_bus_message_unref(reply)
            self.release()

    def get_all_properties(self, destination, path, interface, *, names=None, timeout=None,
                           int flags=0):
        """org.freedesktop.DBus.Properties.GetAll as a dict (flags: KEEP_VARIANTS).

        ``names``: only these properties (the others are skipped without
        building objects); a name the object does not have is absent.
        """
        cdef sd_bus_message *m = NULL
        cdef sd_bus_message *reply = NULL
        cdef uint64_t usec = _timeout_usec(timeout)
        if names is not None:
            if isinstance(names, (str, bytes)):
                raise TypeError("names must be a collection of property names, not a single string")
            names = frozenset(names)
        self.acquire()
        try:
            m = self.new_method_call(destination, path, "org.freedesktop.DBus.Properties", "GetAll")
            _append_basic(m, b's', interface if interface is not None else "")
            reply = self.call_message(m, usec)
            return _read_getall_reply(reply, names, flags)
        finally:
            if m != NULL:
                sd_bus_message_unref(m)
            if reply != NULL:
                sd_bus_message_unref(reply)
            self.release()

    def set_property(self, destination, path, interface, name, signature, value, *,
                     timeout=None, bint interactive=False):
        """org.freedesktop.DBus.Properties.Set; ``signature`` is the value's type
        (None: ``value`` is a Variant, or its type is inferred)."""
        if signature is None:
            v = value if isinstance(value, Variant) else Variant(_infer_signature(value), value)
        else:
            v = Variant(signature, value)
        self.call(destination, path, "org.freedesktop.DBus.Properties", "Set", "ssv",
                  (interface, name, v), timeout=timeout, interactive=interactive)

    # -- pipelined calls -------------------------------------------------------

    cdef list _run_batch(self, list items, bint is_get, uint64_t usec, Py_ssize_t window,
                         bint retry_limits, int flags, Py_ssize_t base, list limit_hits):
        """Marshal one chunk, run it, convert the replies (the lock is held)."""
        cdef Py_ssize_t n = len(items), k
        cdef _Batch b
        cdef _BCall *c
        cdef int r = 0
        cdef list out, pending
        memset(&b, 0, sizeof(_Batch))
        b.calls = <_BCall *>PyMem_Malloc(sizeof(_BCall) * (n if n > 0 else 1))
        if b.calls == NULL:
            raise MemoryError()
        memset(b.calls, 0, sizeof(_BCall) * (n if n > 0 else 1))
        b.n = n
        b.window = window
        b.usec = usec
        b.retry_limits = retry_limits
        try:
            for k in range(n):
                c = &b.calls[k]
                c.batch = &b
                c.idx = k
                item = items[k]
                try:
                    if is_get:
                        if not isinstance(item, tuple) or len(<tuple>item) != 4:
                            raise TypeError(f"expected a (destination, path, interface, name) tuple, got {item!r}")
                        c.m = self.new_method_call(item[0], item[1], "org.freedesktop.DBus.Properties", "Get")
                        _append_basic(c.m, b's', item[2])
                        _append_basic(c.m, b's', item[3])
                    else:
                        if not isinstance(item, tuple) or len(<tuple>item) not in (4, 6):
                            raise TypeError("expected a (destination, path, interface, member"
                                            f"[, signature, args]) tuple, got {item!r}")
                        c.m = self.new_method_call(item[0], item[1], item[2], item[3])
                        if len(<tuple>item) == 6 and item[4]:
                            append_args(c.m, item[4], item[5])
                        elif len(<tuple>item) == 6 and item[5]:
                            raise TypeError(f"{len(item[5])} argument(s) given but the signature is empty")
                except (TypeError, ValueError, OverflowError) as e:
                    cls = OverflowError if isinstance(e, OverflowError) else TypeError if isinstance(e, TypeError) else ValueError
                    raise cls(f"call {base + k}: {e}") from None
            # send and collect: with the GIL for gil_hold_us, then without it
            pending = _busy_enter(self.bus)
            self._in_call += 1
            try:
                r = _batch_pump(self.bus, &b, self.gil_hold_us)
                while r == 0 or r == -EINTR:
                    if r == -EINTR:
                        PyErr_CheckSignals()
                    with nogil:
                        r = _batch_pump(self.bus, &b, -1)
            finally:
                self._in_call -= 1
                _busy_exit(self.bus, pending)
                if self._wakeup is not None:
                    self.left_behind()
                for k in range(n):
                    if b.calls[k].slot != NULL:
                        sd_bus_slot_unref(b.calls[k].slot)
                        b.calls[k].slot = NULL
            if r < 0:
                _batch_fail_rest(&b, r)
                for k in range(n):
                    if b.calls[k].state == 1:
                        b.calls[k].state = 3
                        b.calls[k].err = r
            limit_hits[0] += b.limit_hits
            out = []
            for k in range(n):
                c = &b.calls[k]
                try:
                    if c.state == 2 and c.reply != NULL:
                        if sd_bus_message_is_method_error(c.reply, NULL) > 0:
                            out.append(bus_error_from(sd_bus_message_get_error(c.reply),
                                                      -sd_bus_message_get_errno(c.reply)))
                        elif is_get:
                            out.append(_read_get_reply(c.reply, flags))
                        else:
                            out.append(read_body(c.reply, flags))
                    else:
                        raise_errno(-c.err if c.err < 0 else EINVAL, f"call {base + k}")
                except Exception as e:
                    out.append(e)
            return out
        finally:
            for k in range(n):
                c = &b.calls[k]
                if c.slot != NULL:
                    sd_bus_slot_unref(c.slot)
                if c.m != NULL:
                    sd_bus_message_unref(c.m)
                if c.reply != NULL:
                    sd_bus_message_unref(c.reply)
            PyMem_Free(b.calls)

    cdef list _batch(self, object requests, bint is_get, object window, object timeout,
                     int flags, bint return_exceptions, bint retry_limits):
        cdef uint64_t usec = _timeout_usec(timeout)
        cdef Py_ssize_t w = DEFAULT_WINDOW if window is None else window
        cdef list results = [], chunk, hits = [0]
        if w < 1:
            raise ValueError(f"window must be at least 1, got {window!r}")
        if isinstance(requests, (str, bytes)):
            raise TypeError("requests must be an iterable of tuples")
        it = iter(requests)
        self.acquire()
        try:
            while True:
                chunk = []
                for x in it:
                    chunk.append(x)
                    if len(chunk) >= _BATCH_CHUNK:
                        break
                if not chunk:
                    break
                results.extend(self._run_batch(chunk, is_get, usec, w, retry_limits, flags,
                                               len(results), hits))
        finally:
            self.release()
        self.last_batch_limit_hits = hits[0]
        if not return_exceptions:
            for x in results:
                if isinstance(x, BaseException):
                    raise x
        return results

    def call_many(self, calls, *, window=None, timeout=None, int flags=0,
                  bint return_exceptions=False, bint retry_limits=True):
        """Pipelined method calls: ``calls`` yields (destination, path, interface,
        member) or (destination, path, interface, member, signature, args).

        Returns the reply tuples in call order. Up to ``window`` calls are in
        flight at once (default 64). See docs/bus.md "Pipelined calls".
        """
        return self._batch(calls, False, window, timeout, flags, return_exceptions, retry_limits)

    def get_property_many(self, requests, *, window=None, timeout=None, int flags=0,
                          bint return_exceptions=False, bint retry_limits=True):
        """Pipelined Properties.Get: ``requests`` yields (destination, path,
        interface, name); returns the values in order."""
        return self._batch(requests, True, window, timeout, flags, return_exceptions, retry_limits)

    # -- matches ---------------------------------------------------------------

    def add_match(self, rule, callback):
        """Call ``callback(message)`` for every message matching ``rule``.

        Returns a :class:`Slot`; ``slot.remove()`` unregisters. Callbacks run
        from ``process()`` (never inside a blocking call); an exception one
        raises is re-raised by that ``process()``.
        """
        cdef const char *rp
        cdef sd_bus_slot *s = NULL
        cdef Slot slot
        cdef int r
        cdef bint client
        cdef sd_bus_message_handler_t installed
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}")
        rp = _name(rule, "match rule")
        slot = Slot.__new__(Slot)
        slot._bus_ref = _weakref.ref(self)
        slot.callback = callback
        slot.rule = rule if isinstance(rule, str) else (<bytes>rule).decode()
        self.acquire()
        try:
            client = sd_bus_is_bus_client(self.bus) > 0
            installed = NULL
            if client:
                installed = _on_match_installed
            r = sd_bus_add_match_async(self.bus, &s, rp, _on_match, installed, <void *>slot)
            if r == -EINVAL:
                raise ValueError(f"invalid match rule {slot.rule!r}")
            check_ctx(r, "sd_bus_add_match")
            # sd-bus owns the slot from now on; the destroy callback releases slot
            Py_INCREF(slot)
            slot.slot = s
            r = sd_bus_slot_set_destroy_callback(s, _on_slot_destroy)
            if r < 0:
                sd_bus_slot_unref(s)
                slot.slot = NULL
                Py_DECREF(slot)
                check_ctx(r, "sd_bus_slot_set_destroy_callback")
            # Floating: the bus takes a reference of its own; dropping ours
            # leaves the bus the only owner (freed with the bus, or by
            # Slot.remove() taking that last reference)
            r = sd_bus_slot_set_floating(s, 1)
            sd_bus_slot_unref(s)
            if r < 0:
                check_ctx(r, "sd_bus_slot_set_floating")
            self._slots.append(slot)
            if client:
                # wait for the daemon to confirm (as sd_bus_add_match does), so
                # signals sent after this returns are delivered
                try:
                    self.wait_until(&slot._install_done, 0)
                except BaseException:
                    slot.remove()
                    raise
                if sd_bus_message_is_method_error(slot._install_reply, NULL) > 0:
                    exc = bus_error_from(sd_bus_message_get_error(slot._install_reply),
                                         -sd_bus_message_get_errno(slot._install_reply))
                    slot.remove()
                    raise exc
            return slot
        finally:
            if slot._install_reply != NULL:
                sd_bus_message_unref(slot._install_reply)
                slot._install_reply = NULL
            self.release()

    def match_signal(self, sender, path, interface, member, callback, *, arg0=None):
        """``add_match`` for signals; None matches anything. ``arg0``: the
        first string argument (e.g. the interface of PropertiesChanged)."""
        parts = ["type='signal'"]
        for key, value in (("sender", sender), ("path", path), ("interface", interface),
                           ("member", member), ("arg0", arg0)):
            v = _rule_value(value, key)
            if v is not None:
                parts.append(f"{key}='{v}'")
        return self.add_match(",".join(parts), callback)

    def __repr__(self):
        state = "closed" if self.bus == NULL else self.kind
        return f"<{type(self).__module__}.{type(self).__qualname__} {state} {self.description or ''}>".replace(" >", ">")


# ---------------------------------------------------------------------------
# The garbage collector and match callbacks
#
# sd-bus holds a reference to every registered Slot (its userdata), and a Slot
# holds its callback. A callback that refers back to its Bus (a bound method of
# an object owning the bus: the usual case) makes a cycle through C that the
# collector cannot see, so a Bus nobody closed would never be collected. Bus's
# tp_traverse therefore also visits each live Slot once more, for the
# reference sd-bus holds: the cycle becomes visible, Bus.__del__ runs (warns,
# closes, releases the slots) and the collector frees the rest.

cdef extern from "Python.h":
    ctypedef struct PyObject
    ctypedef int (*visitproc)(PyObject *, void *) noexcept
    ctypedef int (*traverseproc)(PyObject *, visitproc, void *) noexcept
    ctypedef struct _TypeObj "PyTypeObject":
        traverseproc tp_traverse
    PyObject *PyList_GET_ITEM(PyObject *, Py_ssize_t)
    Py_ssize_t PyList_GET_SIZE(PyObject *)

cdef traverseproc _bus_base_traverse = NULL


cdef int _bus_traverse(PyObject *o, visitproc visit, void *arg) noexcept:
    cdef int r
    cdef PyObject *slots
    cdef PyObject *item
    cdef Py_ssize_t k
    if _bus_base_traverse != NULL:
        r = _bus_base_traverse(o, visit, arg)
        if r:
            return r
    slots = <PyObject *>(<Bus>o)._slots
    if slots == NULL or <object>slots is None:
        return 0
    for k in range(PyList_GET_SIZE(slots)):
        item = PyList_GET_ITEM(slots, k)
        if (<Slot>item).slot != NULL:  # sd-bus still holds its reference
            r = visit(item, arg)
            if r:
                return r
    return 0


_bus_base_traverse = (<_TypeObj *>Bus).tp_traverse
(<_TypeObj *>Bus).tp_traverse = _bus_traverse


# ---------------------------------------------------------------------------
# object paths

def path_encode(prefix, external_id):
    """sd_bus_path_encode: '/org/freedesktop/systemd1/unit', 'dbus.service' -> '.../dbus_2eservice'."""
    cdef char *out = NULL
    cdef const char *p = _name(prefix, "prefix")
    cdef const char *e = _name(external_id, "external_id")
    if not sd_bus_object_path_is_valid(p):
        raise ValueError(f"invalid object path prefix {prefix!r}")
    check_ctx(sd_bus_path_encode(p, e, &out), "sd_bus_path_encode")
    try:
        return _str(out)
    finally:
        free(out)


def path_decode(path, prefix):
    """sd_bus_path_decode: the external id, or None if path is not below prefix."""
    cdef char *out = NULL
    cdef const char *p = _name(path, "path")
    cdef const char *x = _name(prefix, "prefix")
    cdef int r = sd_bus_path_decode(p, x, &out)
    check_ctx(r, "sd_bus_path_decode")
    if r == 0 or out == NULL:
        return None
    try:
        return _str(out)
    finally:
        free(out)


def _libsystemd_version():
    """The libsystemd major version pystemd was compiled against."""
    return PYSTEMD_LIBSYSTEMD_VERSION

KEEP_VARIANTS = READ_KEEP_VARIANTS
