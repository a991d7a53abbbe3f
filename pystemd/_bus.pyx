# cython: freethreading_compatible=False
"""Thin layer over sd-bus: connections, calls, and signature-driven marshalling.

The Python façade (pystemd.bus) subclasses :class:`Bus` and adds the pleasant
parts. Everything here mirrors an sd-bus verb and owns a C pointer.

Threading: one sd_bus may be used by one thread at a time, so each Bus has its
own (re-entrant) lock. Waiting never holds the GIL for long: a wait first spins
for at most ``gil_hold_us`` microseconds with the GIL held (a reply to a fast
call usually arrives in that window, and keeping the GIL avoids paying the
interpreter's 5 ms switch interval to get it back), and releases the GIL for
the rest of the wait.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.exc cimport PyErr_CheckSignals
from cpython.pythread cimport (
    NOWAIT_LOCK, WAIT_LOCK, PyThread_acquire_lock, PyThread_allocate_lock,
    PyThread_free_lock, PyThread_get_thread_ident, PyThread_release_lock,
)
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t, UINT64_MAX
from libc.stdlib cimport free
from libc.string cimport memchr, strlen
from posix.unistd cimport getpid, close as c_close
from posix.fcntl cimport fcntl, F_DUPFD_CLOEXEC
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

from libsystemd.sd_bus cimport *
from pystemd._errors cimport check, check_ctx, raise_errno, bus_error_from

import os as _os
import warnings as _warnings

cdef extern from "errno.h":
    int errno
    enum:
        EINTR
        EINVAL
        ENOTCONN

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


# ---------------------------------------------------------------------------
# fork safety: a Bus remembers the fork generation it was opened in; after
# fork() the child sees a newer generation and refuses to touch the parent's
# connection (it would share the socket with the parent).

cdef unsigned long _fork_generation = 0

def _after_fork_in_child():
    global _fork_generation
    _fork_generation += 1

_os.register_at_fork(after_in_child=_after_fork_in_child)

DEFAULT_GIL_HOLD_US = 500


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
# signatures

cdef inline bint _is_basic(char c) noexcept nogil:
    return c in b"ybnqiuxtdsogh"


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
    raise ValueError(f"invalid type code {chr(c)!r} in signature")


cdef Py_ssize_t complete_type_len(const char *sig) except -1:
    return _type_len(sig, 0)


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
    if isinstance(signature, str):
        b = (<str>signature).encode("ascii")
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
    keep them, in which case they come back as Variant objects.
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

    def __dealloc__(self):
        if self.fd >= 0:
            c_close(self.fd)


# ---------------------------------------------------------------------------
# appending (Python -> D-Bus)

cdef const char *_text(object value, char t, Py_ssize_t *size) except NULL:
    # Returns a pointer into `value` (a str) that lives as long as value does.
    cdef const char *p = PyUnicode_AsUTF8AndSize(value, size)
    if <size_t>size[0] != strlen(p):
        raise ValueError(f"embedded NUL character in string for {chr(t)!r}")
    return p


cdef object _as_text(object value, char t):
    # Accept str; bytes and os.PathLike are decoded as strict UTF-8.
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8")  # UnicodeDecodeError is a ValueError
    if t == b's' and hasattr(value, "__fspath__"):
        return _as_text(_os.fspath(value), t)
    raise TypeError(f"expected str for {chr(t)!r}, got {type(value).__name__}")


cdef object _as_int(object value, char t):
    if isinstance(value, int):
        return value
    if isinstance(value, float) or isinstance(value, str) or isinstance(value, bytes):
        raise TypeError(f"expected int for {chr(t)!r}, got {type(value).__name__}")
    try:
        return value.__index__()
    except AttributeError:
        raise TypeError(f"expected int for {chr(t)!r}, got {type(value).__name__}") from None


cdef object _range_error(object v, char t, object lo, object hi):
    return OverflowError(f"{v} out of range for {chr(t)!r} ({lo}..{hi})")


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
            _validate_signature(p)
        r = sd_bus_message_append_basic(m, t, p)
        if r == -EINVAL:
            raise ValueError(f"string rejected by sd-bus for {chr(t)!r} (invalid UTF-8?)")
        return check(r)
    if t == b'b':
        if value is True or value is False or (isinstance(value, int) and (value == 0 or value == 1)):
            b = 1 if value else 0
        else:
            raise TypeError(f"expected bool for 'b', got {type(value).__name__} {value!r}")
        return check(sd_bus_message_append_basic(m, t, &b))
    if t == b'd':
        if not isinstance(value, (float, int)):
            raise TypeError(f"expected float for 'd', got {type(value).__name__}")
        d = value
        return check(sd_bus_message_append_basic(m, t, &d))
    if t == b'h':
        if not isinstance(value, int):
            if hasattr(value, "fileno"):
                value = value.fileno()
            else:
                raise TypeError(f"expected a file descriptor (int or object with fileno()) for 'h', got {type(value).__name__}")
        if value < 0 or value > 0x7fffffff:
            raise ValueError(f"invalid file descriptor {value}")
        fd = value
        r = sd_bus_message_append_basic(m, t, &fd)
        if r < 0:
            check_ctx(r, f"append file descriptor {fd}")
        return r
    value = _as_int(value, t)
    if t == b'y':
        if not 0 <= value <= 0xff:
            raise _range_error(value, t, 0, 255)
        y = value
        return check(sd_bus_message_append_basic(m, t, &y))
    if t == b'n':
        if not -0x8000 <= value <= 0x7fff:
            raise _range_error(value, t, -0x8000, 0x7fff)
        n = value
        return check(sd_bus_message_append_basic(m, t, &n))
    if t == b'q':
        if not 0 <= value <= 0xffff:
            raise _range_error(value, t, 0, 0xffff)
        q = value
        return check(sd_bus_message_append_basic(m, t, &q))
    if t == b'i':
        if not -0x80000000 <= value <= 0x7fffffff:
            raise _range_error(value, t, -0x80000000, 0x7fffffff)
        i = value
        return check(sd_bus_message_append_basic(m, t, &i))
    if t == b'u':
        if not 0 <= value <= 0xffffffff:
            raise _range_error(value, t, 0, 0xffffffff)
        u = value
        return check(sd_bus_message_append_basic(m, t, &u))
    if t == b'x':
        if not -0x8000000000000000 <= value <= 0x7fffffffffffffff:
            raise _range_error(value, t, -0x8000000000000000, 0x7fffffffffffffff)
        x = value
        return check(sd_bus_message_append_basic(m, t, &x))
    if t == b't':
        if not 0 <= value <= 0xffffffffffffffff:
            raise _range_error(value, t, 0, 0xffffffffffffffff)
        tt = value
        return check(sd_bus_message_append_basic(m, t, &tt))
    raise ValueError(f"not a basic type: {chr(t)!r}")


cdef int _validate_signature(const char *p) except -1:
    cdef Py_ssize_t n = strlen(p), i = 0
    if n > 255:
        raise ValueError("signature longer than 255 characters")
    while i < n:
        i += _type_len(p + i, 0)
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
        if len(ks) != 1 or len(next(iter(ks))) != 1:
            raise TypeError("dict keys inside a variant must all be one basic type")
        vs = {_infer_signature(v) for v in value.values()}
        return "a{" + next(iter(ks)) + (next(iter(vs)) if len(vs) == 1 else "v") + "}"
    if isinstance(value, list):
        if not value:
            raise TypeError("cannot infer a D-Bus type for an empty list; wrap it in Variant(sig, value)")
        es = {_infer_signature(v) for v in value}
        return "a" + (next(iter(es)) if len(es) == 1 else "v")
    raise TypeError(f"cannot infer a D-Bus type for {type(value).__name__}; wrap it in Variant(sig, value)")


cdef int append_value(sd_bus_message *m, const char *sig, Py_ssize_t n, object value) except -1:
    """Append one value of the complete type sig[:n]."""
    cdef char t = sig[0]
    cdef bytes contents, entry
    cdef const char *cp
    cdef Py_ssize_t kn, i, count
    cdef const unsigned char[::1] view
    if _is_basic(t):
        return _append_basic(m, t, value)
    if t == b'a':
        contents = sig[1:n]
        cp = contents
        if cp[0] == b'y' and isinstance(value, (bytes, bytearray, memoryview)):
            view = value if not isinstance(value, memoryview) else value.cast("B")
            if view.shape[0] == 0:
                return check(sd_bus_message_append_array(m, b'y', b"", 0))
            return check(sd_bus_message_append_array(m, b'y', &view[0], view.shape[0]))
        if cp[0] == b'{':
            entry = contents[1:n - 2]
            if not hasattr(value, "items"):
                raise TypeError(f"expected a mapping for 'a{{{entry.decode()}}}', got {type(value).__name__}")
            kn = _type_len(<const char *>entry + 1, 0)
            check(sd_bus_message_open_container(m, b'a', cp))
            for k, v in value.items():
                check(sd_bus_message_open_container(m, b'e', entry))
                _append_basic(m, cp[1], k)
                append_value(m, <const char *>entry + 1, kn, v)
                check(sd_bus_message_close_container(m))
            return check(sd_bus_message_close_container(m))
        if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
            raise TypeError(f"expected a list for 'a{contents.decode()}', got {type(value).__name__}")
        check(sd_bus_message_open_container(m, b'a', cp))
        for item in value:
            append_value(m, cp, n - 1, item)
        return check(sd_bus_message_close_container(m))
    if t == b'(':
        contents = sig[1:n - 1]
        cp = contents
        if not isinstance(value, (tuple, list)):
            raise TypeError(f"expected a tuple for '({contents.decode()})', got {type(value).__name__}")
        check(sd_bus_message_open_container(m, b'r', cp))
        i = 0
        count = 0
        while cp[i] != 0:
            kn = _type_len(cp + i, 0)
            if count >= len(value):
                raise ValueError(f"struct '({contents.decode()})' needs more than {len(value)} members")
            append_value(m, cp + i, kn, value[count])
            i += kn
            count += 1
        if count != len(value):
            raise ValueError(f"struct '({contents.decode()})' has {count} members, got {len(value)}")
        return check(sd_bus_message_close_container(m))
    if t == b'v':
        if isinstance(value, Variant):
            contents = (<Variant>value)._sig
            value = (<Variant>value).value
        else:
            contents = _infer_signature(value).encode()
        cp = contents
        check(sd_bus_message_open_container(m, b'v', cp))
        append_value(m, cp, PyBytes_GET_SIZE(contents), value)
        return check(sd_bus_message_close_container(m))
    raise ValueError(f"invalid type code {chr(t)!r} in signature")


cdef int append_args(sd_bus_message *m, object signature, object args) except -1:
    """Append ``args`` (a sequence) according to ``signature``.

    Errors name the argument position and the signature.
    """
    cdef bytes sig = _sig_bytes(signature)
    cdef const char *p = sig
    cdef Py_ssize_t n, pos = 0, i = 0
    if not isinstance(args, (tuple, list)):
        args = tuple(args)
    cdef Py_ssize_t nargs = len(args)
    while p[i] != 0:
        n = _type_len(p + i, 0)
        if pos >= nargs:
            raise TypeError(f"signature {sig.decode()!r} needs more than {nargs} argument(s)")
        try:
            append_value(m, p + i, n, args[pos])
        except (TypeError, ValueError, OverflowError) as e:
            raise type(e)(f"argument {pos} ({p[i:i + n].decode()!r} of signature {sig.decode()!r}): {e}") from None
        i += n
        pos += 1
    if pos != nargs:
        raise TypeError(f"signature {sig.decode()!r} takes {pos} argument(s), got {nargs}")
    return 0


# ---------------------------------------------------------------------------
# reading (D-Bus -> Python)

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


cdef object _read_basic(sd_bus_message *m, char t):
    cdef _Basic v
    cdef int fd
    check(sd_bus_message_read_basic(m, t, &v))
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
    raise ValueError(f"not a basic type: {chr(t)!r}")


cdef list _read_fixed_array(sd_bus_message *m, char t):
    cdef const void *ptr = NULL
    cdef size_t size = 0, k
    check(sd_bus_message_read_array(m, t, &ptr, &size))
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
    raise ValueError(f"not a fixed-size type: {chr(t)!r}")


cdef object read_value(sd_bus_message *m, char t, const char *contents, int flags):
    """Read the next value, whose type ``t``/``contents`` peek_type returned."""
    cdef const void *ptr = NULL
    cdef size_t size = 0
    cdef char et = 0, kt = 0
    cdef const char *ec = NULL
    cdef list items
    cdef dict d
    cdef int r
    if t == b'a':
        if contents[0] == b'y':
            check(sd_bus_message_read_array(m, b'y', &ptr, &size))
            return PyBytes_FromStringAndSize(<const char *>ptr, size) if size else b""
        if contents[0] in b"uitxdbnq":
            return _read_fixed_array(m, contents[0])
        check(sd_bus_message_enter_container(m, b'a', contents))
        if contents[0] == b'{':
            d = {}
            while True:
                r = check(sd_bus_message_peek_type(m, &et, &ec))
                if r == 0:
                    break
                check(sd_bus_message_enter_container(m, b'e', ec))
                check(sd_bus_message_peek_type(m, &kt, NULL))
                k = _read_basic(m, kt)
                check(sd_bus_message_peek_type(m, &et, &ec))
                d[k] = read_value(m, et, ec, flags)
                check(sd_bus_message_exit_container(m))
            check(sd_bus_message_exit_container(m))
            return d
        items = []
        while True:
            r = check(sd_bus_message_peek_type(m, &et, &ec))
            if r == 0:
                break
            items.append(read_value(m, et, ec, flags))
        check(sd_bus_message_exit_container(m))
        return items
    if t == b'r':
        check(sd_bus_message_enter_container(m, b'r', contents))
        items = []
        while True:
            r = check(sd_bus_message_peek_type(m, &et, &ec))
            if r == 0:
                break
            items.append(read_value(m, et, ec, flags))
        check(sd_bus_message_exit_container(m))
        return tuple(items)
    if t == b'v':
        check(sd_bus_message_enter_container(m, b'v', contents))
        check(sd_bus_message_peek_type(m, &et, &ec))
        value = read_value(m, et, ec, flags)
        check(sd_bus_message_exit_container(m))
        if flags & READ_KEEP_VARIANTS:
            return Variant(_str(contents), value)
        return value
    return _read_basic(m, t)


cdef tuple read_body(sd_bus_message *m, int flags):
    cdef char t = 0
    cdef const char *c = NULL
    cdef list out = []
    while check(sd_bus_message_peek_type(m, &t, &c)) > 0:
        out.append(read_value(m, t, c, flags))
    return tuple(out)


# ---------------------------------------------------------------------------
# the connection

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
        if self.m != NULL:
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


cdef inline uint64_t _timeout_usec(object timeout) except? 0:
    if timeout is None:
        return 0  # sd-bus default (25 s, or sd_bus_set_method_call_timeout)
    t = float(timeout)
    if t != t or t <= 0:
        raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
    if t == float("inf") or t > 1.8e13:
        return UINT64_MAX
    return max(<uint64_t>(t * 1e6), 1)


cdef class Bus:
    """One sd-bus connection. Use the façade ``pystemd.bus.Bus`` to open one."""

    def __cinit__(self):
        self.bus = NULL
        self._lock = PyThread_allocate_lock()
        if self._lock == NULL:
            raise MemoryError()
        self._owner = 0
        self._depth = 0
        self.kind = "closed"
        self.description = None
        self.gil_hold_us = DEFAULT_GIL_HOLD_US
        self._deferred = []
        self._exc = None
        self._in_call = 0
        self._gen = _fork_generation

    # -- opening -------------------------------------------------------------

    def _open(self, str kind, object arg=None, bint bus_client=True, object description=None):
        """Open the connection: kind is system, user, address, remote or machine."""
        cdef sd_bus *b = NULL
        cdef int r
        cdef const char *a = NULL
        if self.bus != NULL:
            raise RuntimeError("bus is already open")
        if arg is not None:
            a = _name(arg, kind)
        if kind == "system":
            with nogil:
                r = sd_bus_open_system(&b)
            what = "system bus at " + _os.environ.get("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/run/dbus/system_bus_socket")
        elif kind == "user":
            with nogil:
                r = sd_bus_open_user(&b)
            what = "user bus at " + _os.environ.get("DBUS_SESSION_BUS_ADDRESS", "$XDG_RUNTIME_DIR/bus")
        elif kind == "remote":
            with nogil:
                r = sd_bus_open_system_remote(&b, a)
            what = f"system bus of remote host {arg!r}"
        elif kind == "machine":
            with nogil:
                r = sd_bus_open_system_machine(&b, a)
            what = f"system bus of machine {arg!r}"
        elif kind == "address":
            r = sd_bus_new(&b)
            if r >= 0:
                r = sd_bus_set_address(b, a)
            if r >= 0:
                r = sd_bus_set_bus_client(b, bus_client)
            if r >= 0:
                r = sd_bus_negotiate_fds(b, 1)
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
        if description is not None:
            sd_bus_set_description(b, _name(description, "description"))
        self.bus = b
        self._gen = _fork_generation
        self.kind = kind
        self.description = arg

    # -- callbacks -----------------------------------------------------------

    cdef int defer(self, object fn) except -1:
        """Queue fn() to run at the start of the next process()."""
        self._deferred.append(fn)
        return 0

    cdef void park_exception(self, object exc) noexcept:
        """Keep the first exception a callback raised; process() re-raises it."""
        if self._exc is None:
            self._exc = exc

    cdef int run_deferred(self) except -1:
        cdef list todo
        while self._deferred:
            todo = self._deferred
            self._deferred = []
            for fn in todo:
                try:
                    fn()
                except BaseException as e:
                    self.park_exception(e)
        return 0

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
        cdef unsigned long me = PyThread_get_thread_ident()
        self.ensure_open()
        if self._depth > 0 and self._owner == me:
            self._depth += 1
            return 0
        if not PyThread_acquire_lock(self._lock, NOWAIT_LOCK):
            with nogil:
                PyThread_acquire_lock(self._lock, WAIT_LOCK)
        self._owner = me
        self._depth = 1
        if self.bus == NULL:  # closed by another thread while we waited
            self.release()
            raise ValueError("operation on a closed bus")
        return 0

    cdef void release(self) noexcept:
        self._depth -= 1
        if self._depth == 0:
            self._owner = 0
            PyThread_release_lock(self._lock)

    def close(self):
        """Flush and close the connection. Safe to call more than once."""
        cdef sd_bus *b
        if self._gen != _fork_generation:
            self.bus = NULL  # the parent's connection: leave it alone in the child
            return
        if self.bus == NULL:
            return
        self.acquire()
        try:
            if self._depth > 1:
                raise RuntimeError("cannot close a bus from inside one of its own callbacks")
            b = self.bus
            self.bus = NULL
            if b != NULL:
                with nogil:
                    sd_bus_flush_close_unref(b)
            self._deferred = []
        finally:
            self.release()

    @property
    def closed(self):
        return self.bus == NULL

    def __del__(self):
        if self.bus != NULL and self._gen == _fork_generation and not self.shared:
            try:
                _warnings.warn(f"unclosed {self!r}", ResourceWarning, source=self)
            except Exception:
                pass
        if self.bus != NULL and self._gen == _fork_generation:
            sd_bus_close_unref(self.bus)
            self.bus = NULL

    def __dealloc__(self):
        if self.bus != NULL and self._gen == _fork_generation:
            sd_bus_close_unref(self.bus)
        # after fork() the child leaves the parent's connection alone
        self.bus = NULL
        if self._lock != NULL:
            PyThread_free_lock(self._lock)
            self._lock = NULL

    # -- event-loop primitives ----------------------------------------------

    def fileno(self):
        self.ensure_open()
        return check(sd_bus_get_fd(self.bus))

    def get_events(self):
        """poll() events the bus waits for (POLLIN, plus POLLOUT while sending)."""
        self.ensure_open()
        return check(sd_bus_get_events(self.bus))

    def get_timeout(self):
        """Absolute CLOCK_MONOTONIC deadline in µs for the next process(), or None.

        0 means "call process() now" (messages are already queued).
        """
        cdef uint64_t t = 0
        self.ensure_open()
        check(sd_bus_get_timeout(self.bus, &t))
        if t == UINT64_MAX:
            return None
        if self._deferred:
            return 0
        return t

    def process(self):
        """Process one pending event; True if something was done (call again)."""
        cdef int r = 0
        self.acquire()
        try:
            if self._deferred:
                self.run_deferred()
                r = 1
            else:
                r = sd_bus_process(self.bus, NULL)
        finally:
            self.release()
        exc = self._exc
        if exc is not None:
            self._exc = None
            raise exc
        check_ctx(r, "sd_bus_process")
        return r > 0

    def wait(self, timeout=None):
        """Wait (GIL released) until the bus has something to process.

        Returns True if woken by activity, False on timeout.
        """
        cdef uint64_t usec = UINT64_MAX if timeout is None else <uint64_t>(max(float(timeout), 0) * 1e6)
        cdef int r
        self.acquire()
        try:
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
        cdef int r
        self.acquire()
        try:
            with nogil:
                r = sd_bus_flush(self.bus)
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
            with nogil:
                r = sd_bus_get_unique_name(self.bus, &u)
        finally:
            self.release()
        if r == -ENOTCONN or r == -EINVAL:
            return None
        check(r)
        return _str(u)

    @property
    def address(self):
        cdef const char *a = NULL
        self.ensure_open()
        check(sd_bus_get_address(self.bus, &a))
        return _str(a)

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
        cdef int r
        cdef long long spin = self.gil_hold_us
        cdef uint64_t t0
        self._in_call += 1
        try:
            self._wait_loop(done, spin)
        finally:
            self._in_call -= 1
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
                with nogil:
                    r = sd_bus_wait(self.bus, UINT64_MAX)
            if r == -EINTR:
                PyErr_CheckSignals()
            elif r < 0:
                check_ctx(r, "sd_bus_wait")
        return 0

    cdef sd_bus_message *call_message(self, sd_bus_message *m, uint64_t usec) except NULL:
        """Send m and wait for its reply (the lock must be held).

        Returns a new reference to the reply; an error reply raises.
        """
        cdef _Pending p
        cdef sd_bus_slot *slot = NULL
        cdef sd_bus_message *reply
        cdef int r
        p.reply = NULL
        p.done = 0
        r = sd_bus_call_async(self.bus, &slot, m, _on_reply, &p, usec)
        if r < 0:
            check_ctx(r, "sd_bus_call_async")
        try:
            self.wait_until(&p.done, 0)
        except BaseException:
            if p.reply != NULL:
                sd_bus_message_unref(p.reply)
            raise
        finally:
            sd_bus_slot_unref(slot)
        reply = p.reply
        if sd_bus_message_is_method_error(reply, NULL) > 0:
            exc = bus_error_from(sd_bus_message_get_error(reply), -sd_bus_message_get_errno(reply))
            sd_bus_message_unref(reply)
            raise exc
        return reply

    def call(self, destination, path, interface, member, signature="", args=(),
             *, timeout=None, int flags=0):
        """Call a method and return its reply body as a tuple.

        ``signature`` describes ``args``; plain Python values are converted
        (see docs/bus.md for the type table). ``timeout`` is in seconds
        (None: sd-bus's default of 25 s). ``flags`` takes READ_KEEP_VARIANTS.
        """
        cdef sd_bus_message *m = NULL
        cdef sd_bus_message *reply = NULL
        cdef uint64_t usec = _timeout_usec(timeout)
        self.acquire()
        try:
            m = self.new_method_call(destination, path, interface, member)
            if signature:
                append_args(m, signature, args)
            elif args:
                raise TypeError(f"{len(args)} argument(s) given but the signature is empty")
            reply = self.call_message(m, usec)
            return read_body(reply, flags)
        finally:
            if m != NULL:
                sd_bus_message_unref(m)
            if reply != NULL:
                sd_bus_message_unref(reply)
            self.release()

    def get_property(self, destination, path, interface, name, *, timeout=None, int flags=0):
        """org.freedesktop.DBus.Properties.Get, unwrapped (flags: READ_KEEP_VARIANTS)."""
        cdef sd_bus_message *m = NULL
        cdef sd_bus_message *reply = NULL
        cdef uint64_t usec = _timeout_usec(timeout)
        cdef char t = 0
        cdef const char *c = NULL
        self.acquire()
        try:
            m = self.new_method_call(destination, path, "org.freedesktop.DBus.Properties", "Get")
            _append_basic(m, b's', interface)
            _append_basic(m, b's', name)
            reply = self.call_message(m, usec)
            check(sd_bus_message_peek_type(reply, &t, &c))
            if t != b'v':
                raise ValueError(f"Properties.Get returned {chr(t)!r}, expected a variant")
            return read_value(reply, t, c, flags)
        finally:
            if m != NULL:
                sd_bus_message_unref(m)
            if reply != NULL:
                sd_bus_message_unref(reply)
            self.release()

    def get_all_properties(self, destination, path, interface, *, timeout=None, int flags=0):
        """org.freedesktop.DBus.Properties.GetAll as a dict (flags: READ_KEEP_VARIANTS)."""
        cdef sd_bus_message *m = NULL
        cdef sd_bus_message *reply = NULL
        cdef uint64_t usec = _timeout_usec(timeout)
        self.acquire()
        try:
            m = self.new_method_call(destination, path, "org.freedesktop.DBus.Properties", "GetAll")
            _append_basic(m, b's', interface if interface is not None else "")
            reply = self.call_message(m, usec)
            return read_value(reply, b'a', b"{sv}", flags)
        finally:
            if m != NULL:
                sd_bus_message_unref(m)
            if reply != NULL:
                sd_bus_message_unref(reply)
            self.release()

    def set_property(self, destination, path, interface, name, signature, value, *, timeout=None):
        """org.freedesktop.DBus.Properties.Set with an explicit value signature."""
        self.call(destination, path, "org.freedesktop.DBus.Properties", "Set", "ssv",
                  (interface, name, Variant(signature, value)), timeout=timeout)

    def __repr__(self):
        state = "closed" if self.bus == NULL else self.kind
        return f"<{type(self).__module__}.{type(self).__qualname__} {state} {self.description or ''}>".replace(" >", ">")


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
