# cython: freethreading_compatible=False
"""Thin layer over sd-journal (reading): ``_Reader`` and C-speed entry building.

``_Reader`` mirrors python-systemd's ``_reader._Reader`` (same methods, same
arguments, same exceptions) and adds the pieces the façade
(:mod:`pystemd.journal`) builds its fast paths on:

* ``_fetch(skip)`` / ``_fetch_batch(n)``: move and read whole entries in one
  call. While the journal's pages are in memory (the GIL is kept), each item
  goes into the dict as ``sd_journal_enumerate_data`` returns it (no copy);
  when a read may wait for the disk, the libsystemd part (``sd_journal_next``
  + enumerate or ``sd_journal_get_data`` + timestamps + cursor) runs with the
  GIL released, copying up to 32 entries into a scratch arena, and the dicts
  are built from the copy. Either way: keys interned once per process,
  values converted in C when the converter is one of the defaults, repeated
  ``KEY=value`` items served from a per-reader cache, boot ids turned into
  ``uuid.UUID`` once.
* ``_configure(raw, fields, meta, lazy)``: raw mode (no conversion), field
  projection (only the named fields are read: one with
  ``sd_journal_get_data``, several in one pass over the entry's items) and
  lazy entries (``RawEntry``: one copy of the entry, values made on access).

Threading: one sd_journal may be used by one thread at a time, so every
method takes the reader's (re-entrant) lock; a thread that has to wait for it
waits with the GIL released. ``wait()`` does not hold the lock while it
sleeps, and ``close()`` from another thread wakes it up. While an entry is
being built the reader refuses calls from the building thread (a converter).
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.datetime cimport import_datetime, datetime_new, timedelta_new
from cpython.dict cimport PyDict_GetItem, PyDict_SetItem
from cpython.exc cimport PyErr_CheckSignals
from cpython.list cimport PyList_Append
from cpython.long cimport PyLong_FromLongLong, PyLong_FromUnsignedLongLong
from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_DECREF, Py_INCREF, Py_XDECREF
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t, UINT64_MAX
from libc.stdlib cimport free, malloc, realloc, calloc
from libc.string cimport memchr, memcmp, memcpy, memset, strlen
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC
from posix.fcntl cimport F_DUPFD_CLOEXEC, fcntl
from posix.unistd cimport close as c_close, write as c_write

from libsystemd.sd_id128 cimport sd_id128_t, sd_id128_get_boot, sd_id128_get_machine, sd_id128_from_string
from libsystemd.sd_journal cimport *
from pystemd._errors cimport check, check_ctx, raise_errno
from pystemd._rlock cimport RLock, rlock_free, rlock_init, rlock_mine, rlock_release, rlock_take

import os as _os
from collections.abc import ItemsView as _ItemsView, KeysView as _KeysView, Mapping as _Mapping, ValuesView as _ValuesView

cdef extern from "errno.h":
    int errno
    enum:
        EINTR
        EINVAL
        ENOENT
        ENOMEM
        EADDRNOTAVAIL
        EBADMSG
        ENODATA
        EPROTONOSUPPORT

cdef extern from "Python.h":
    ctypedef struct PyStructSequence_Field:
        const char *name
        const char *doc
    ctypedef struct PyStructSequence_Desc:
        const char *name
        const char *doc
        PyStructSequence_Field *fields
        int n_in_sequence
    PyTypeObject *PyStructSequence_NewType(PyStructSequence_Desc *desc) except NULL
    object PyStructSequence_New(PyTypeObject *tp)
    void PyStructSequence_SetItem(object p, Py_ssize_t pos, PyObject *o)   # steals o
    object _PyDict_NewPresized(Py_ssize_t minused)
    bint PyUnicode_IS_COMPACT_ASCII(object o)
    void *PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    object PyUnicode_DecodeASCII(const char *s, Py_ssize_t size, const char *errors)
    bint PyBytes_CheckExact(object o)
    bint PyLong_CheckExact(object o)
    bint PyUnicode_CheckExact(object o)
    object PyObject_CallOneArg(object f, object arg)
    PyObject *PyDict_SetDefault(object d, object key, object default) except? NULL
    Py_ssize_t PyDict_GET_SIZE(object d)

cdef extern from "stdlib.h" nogil:
    int posix_memalign(void **memptr, size_t alignment, size_t size)

cdef extern from "poll.h" nogil:
    struct pollfd:
        int fd
        short events
        short revents
    enum:
        POLLIN
    int ppoll(pollfd *fds, unsigned long nfds, const timespec *tmo_p, const void *sigmask)

cdef extern from "sys/resource.h" nogil:
    cdef struct rusage:
        long ru_majflt
    enum:
        RUSAGE_THREAD
    int getrusage(int who, rusage *usage)

cdef extern from "sys/eventfd.h" nogil:
    int eventfd(unsigned int initval, int flags)
    enum:
        EFD_CLOEXEC
        EFD_NONBLOCK

cdef extern from "pystemd/compat.h":
    int PYSTEMD_LIBSYSTEMD_VERSION

import_datetime()

__version__ = "235"

# open flags and wait()/process() results, straight from the header
LOCAL_ONLY = SD_JOURNAL_LOCAL_ONLY
RUNTIME_ONLY = SD_JOURNAL_RUNTIME_ONLY
SYSTEM = SD_JOURNAL_SYSTEM
SYSTEM_ONLY = SD_JOURNAL_SYSTEM
CURRENT_USER = SD_JOURNAL_CURRENT_USER
OS_ROOT = SD_JOURNAL_OS_ROOT
ALL_NAMESPACES = SD_JOURNAL_ALL_NAMESPACES
INCLUDE_DEFAULT_NAMESPACE = SD_JOURNAL_INCLUDE_DEFAULT_NAMESPACE
NOP = SD_JOURNAL_NOP
APPEND = SD_JOURNAL_APPEND
INVALIDATE = SD_JOURNAL_INVALIDATE

# which pseudo-fields a read adds (the ``meta`` mask of _configure)
cdef enum:
    M_REALTIME = 1
    M_MONOTONIC = 2
    M_CURSOR = 4
    M_ALL = 7

META_REALTIME = M_REALTIME
META_MONOTONIC = M_MONOTONIC
META_CURSOR = M_CURSOR
META_ALL = M_ALL


# A read keeps the GIL while the journal's pages are in memory (see _Reader._pace)
DEFAULT_GIL_HOLD_US = 50


def _libsystemd_version():
    return PYSTEMD_LIBSYSTEMD_VERSION


class ClosedJournalError(OSError, ValueError):
    """An operation on a closed reader (``errno`` is EINVAL, as python-systemd's)."""


cdef inline int _raise_closed() except -1:
    raise ClosedJournalError(EINVAL, "I/O operation on a closed journal reader")


# ---------------------------------------------------------------------------
# Monotonic: a structseq (timestamp, bootid), like python-systemd's

cdef PyStructSequence_Field _mono_fields[3]
_mono_fields[0].name = b"timestamp"
_mono_fields[0].doc = b"monotonic time since boot (int microseconds when raw, timedelta when converted)"
_mono_fields[1].name = b"bootid"
_mono_fields[1].doc = b"boot id (16 bytes when raw, uuid.UUID when converted)"
_mono_fields[2].name = NULL
_mono_fields[2].doc = NULL
cdef PyStructSequence_Desc _mono_desc
_mono_desc.name = b"pystemd.journal.Monotonic"
_mono_desc.doc = b"Monotonic(timestamp, bootid): when an entry was written, relative to its boot."
_mono_desc.fields = _mono_fields
_mono_desc.n_in_sequence = 2
cdef PyTypeObject *_MonoType = PyStructSequence_NewType(&_mono_desc)
Monotonic = <object>_MonoType


cdef object _monotonic(object a, object b):
    m = PyStructSequence_New(_MonoType)
    Py_INCREF(a)
    PyStructSequence_SetItem(m, 0, <PyObject *>a)
    Py_INCREF(b)
    PyStructSequence_SetItem(m, 1, <PyObject *>b)
    return m


# ---------------------------------------------------------------------------
# conversion kinds: what a converter function does, so C can do it instead

cdef enum:
    K_DECODE = 0      # bytes.decode (UTF-8 strict), bytes kept when invalid
    K_INT = 1         # int(bytes)
    K_UUID = 2        # uuid.UUID(bytes.decode())
    K_TIMESTAMP = 3   # µs in ASCII -> aware datetime
    K_SRC_MONO = 4    # µs in ASCII -> timedelta
    K_BYTES = 5       # bytes (identity for bytes)
    K_IDENT = 6       # identity
    K_REALTIME = 7    # int µs -> aware datetime
    K_MONO = 8        # Monotonic(int, bytes16) -> Monotonic(timedelta, UUID)
    K_CALL = 9        # a Python callable
    N_KINDS = 10

cdef object _UUID = None            # uuid.UUID
cdef object _tz = None               # the façade's _LOCAL_TIMEZONE
cdef long long _tz_offset_us = 0
cdef bint _tz_fast = False           # _tz is a fixed-offset datetime.timezone
cdef list _kind_func = [None] * N_KINDS   # the Python function behind each kind
cdef dict _func_kind = {}            # id(function) -> kind
cdef dict _default_kind_by_key = {}  # field name -> kind (DEFAULT_CONVERTERS)
cdef bint _setup_done = False


# ---------------------------------------------------------------------------
# the key table: field names interned once per process (bounded)

cdef enum:
    KT_SIZE = 4096
    KT_MAX_USED = 3072

cdef struct KeySlot:
    uint64_t hash
    Py_ssize_t len
    PyObject *key        # owned (never released: the table only grows, bounded)
    int kind             # default conversion kind

cdef KeySlot _keytab[KT_SIZE]
cdef Py_ssize_t _keytab_used = 0


cdef inline uint64_t _hash(const char *p, Py_ssize_t n) noexcept nogil:
    # eight bytes at a time (field names and ids are short); for table indexes only
    cdef uint64_t h = 0x9E3779B97F4A7C15ULL ^ <uint64_t>n
    cdef uint64_t w
    cdef Py_ssize_t i = 0
    while i + 8 <= n:
        memcpy(&w, p + i, 8)
        h = (h ^ w) * 0xff51afd7ed558ccdULL
        h ^= h >> 32
        i += 8
    if i < n:
        w = 0
        memcpy(&w, p + i, <size_t>(n - i))
        h = (h ^ w) * 0xff51afd7ed558ccdULL
        h ^= h >> 32
    h = (h ^ (h >> 29)) * 0xc4ceb9fe1a85ec53ULL
    return h ^ (h >> 32)


cdef int _key_kind_for(object key) except -1:
    k = _default_kind_by_key.get(key)
    return K_DECODE if k is None else <int>k


cdef Py_ssize_t _key_slot(const char *p, Py_ssize_t n) except -2:
    """Slot of field name p[:n] (inserting it), or -1 when it cannot be interned."""
    global _keytab_used
    cdef uint64_t h = _hash(p, n)
    cdef Py_ssize_t i = <Py_ssize_t>(h & (KT_SIZE - 1))
    cdef KeySlot *s
    cdef Py_ssize_t k
    while True:
        s = &_keytab[i]
        if s.len == 0:
            break
        if s.hash == h and s.len == n and memcmp(PyUnicode_DATA(<object>s.key), p, n) == 0:
            return i
        i = (i + 1) & (KT_SIZE - 1)
    if _keytab_used >= KT_MAX_USED:
        return -1
    for k in range(n):
        if <uint8_t>p[k] >= 128:
            return -1
    key = PyUnicode_DecodeASCII(p, n, NULL)
    Py_INCREF(key)
    s.key = <PyObject *>key
    s.hash = h
    s.len = n
    s.kind = _key_kind_for(key)
    _keytab_used += 1
    return i


cdef Py_ssize_t _key_slot_str(str key) except -2:
    b = key.encode("utf-8", "surrogateescape")
    return _key_slot(PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))


cdef Py_ssize_t KS_REALTIME = _key_slot_str("__REALTIME_TIMESTAMP")
cdef Py_ssize_t KS_MONOTONIC = _key_slot_str("__MONOTONIC_TIMESTAMP")
cdef Py_ssize_t KS_CURSOR = _key_slot_str("__CURSOR")
cdef str KEY_REALTIME = "__REALTIME_TIMESTAMP"
cdef str KEY_MONOTONIC = "__MONOTONIC_TIMESTAMP"
cdef str KEY_CURSOR = "__CURSOR"


# ---------------------------------------------------------------------------
# boot ids and other 128-bit ids -> uuid.UUID, cached (direct-mapped)

cdef enum:
    UC_SIZE = 256

cdef struct UuidSlot:
    uint8_t b[16]
    PyObject *obj

cdef UuidSlot _uuid_cache[UC_SIZE]


cdef object _uuid_from16(const uint8_t *b):
    cdef uint64_t h = _hash(<const char *>b, 16)
    cdef UuidSlot *s = &_uuid_cache[h & (UC_SIZE - 1)]
    if s.obj != NULL and memcmp(s.b, b, 16) == 0:
        return <object>s.obj
    u = _UUID(bytes=PyBytes_FromStringAndSize(<const char *>b, 16))
    Py_XDECREF(s.obj)
    Py_INCREF(u)
    s.obj = <PyObject *>u
    memcpy(s.b, b, 16)
    return u


cdef inline int _hexval(char c) noexcept nogil:
    if c'0' <= c <= c'9':
        return c - c'0'
    if c'a' <= c <= c'f':
        return c - c'a' + 10
    if c'A' <= c <= c'F':
        return c - c'A' + 10
    return -1


cdef bint _parse_hex32(const char *p, uint8_t *out) noexcept nogil:
    cdef int i, hi, lo
    for i in range(16):
        hi = _hexval(p[2 * i])
        lo = _hexval(p[2 * i + 1])
        if hi < 0 or lo < 0:
            return False
        out[i] = <uint8_t>(hi * 16 + lo)
    return True


# ---------------------------------------------------------------------------
# fast conversions; each returns NULL-equivalent (None flag) to fall back

cdef inline bint _parse_u64(const char *p, Py_ssize_t n, uint64_t *out) noexcept nogil:
    """Plain ASCII decimal (no sign, no spaces), at most 18 digits."""
    cdef uint64_t v = 0
    cdef Py_ssize_t i
    if n == 0 or n > 18:
        return False
    for i in range(n):
        if p[i] < c'0' or p[i] > c'9':
            return False
        v = v * 10 + <uint64_t>(p[i] - c'0')
    out[0] = v
    return True


cdef inline void _civil(long long days, int *y, int *m, int *d) noexcept nogil:
    # days since 1970-01-01 -> proleptic Gregorian date (H. Hinnant's algorithm)
    cdef long long z = days + 719468
    cdef long long era = (z if z >= 0 else z - 146096) // 146097
    cdef long long doe = z - era * 146097
    cdef long long yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    cdef long long yy = yoe + era * 400
    cdef long long doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    cdef long long mp = (5 * doy + 2) // 153
    cdef long long dd = doy - (153 * mp + 2) // 5 + 1
    cdef long long mm = mp + 3 if mp < 10 else mp - 9
    if mm <= 2:
        yy += 1
    y[0] = <int>yy
    m[0] = <int>mm
    d[0] = <int>dd


# 2**32 s in µs: below it the façade's float path (t / 1e6) is exact to the µs
cdef uint64_t _TS_FAST_MAX = 4294967296ULL * 1000000ULL


cdef object _datetime_fast(uint64_t usec):
    """datetime.fromtimestamp(usec / 1e6, _LOCAL_TIMEZONE), or None to fall back."""
    cdef long long t, days, secs
    cdef int y, mo, d
    if not _tz_fast or usec >= _TS_FAST_MAX:
        return None
    t = <long long>usec + _tz_offset_us
    if t < 0:
        return None
    days = t // 86400000000LL
    secs = (t // 1000000LL) % 86400
    _civil(days, &y, &mo, &d)
    if y < 1 or y > 9999:
        return None
    return datetime_new(y, mo, d, <int>(secs // 3600), <int>((secs // 60) % 60), <int>(secs % 60),
                        <int>(t % 1000000LL), _tz)


cdef inline object _timedelta_us(uint64_t usec):
    return timedelta_new(<int>(usec // 86400000000ULL), <int>((usec // 1000000ULL) % 86400),
                         <int>(usec % 1000000ULL))


cdef object _call_conv(object func, object raw):
    """func(raw); a ValueError (UnicodeDecodeError included) keeps raw, as python-systemd."""
    try:
        return PyObject_CallOneArg(func, raw)
    except ValueError:
        return raw


cdef object _convert_bytes(int kind, object func, const char *p, Py_ssize_t n):
    """Convert a data field's value p[:n] as converter ``func`` (of ``kind``) would."""
    cdef uint64_t v
    cdef uint8_t b16[16]
    cdef object r
    if kind == K_DECODE:
        try:
            return PyUnicode_DecodeUTF8(p, n, NULL)
        except UnicodeDecodeError:
            return PyBytes_FromStringAndSize(p, n)
    if kind == K_INT:
        if _parse_u64(p, n, &v):
            return PyLong_FromUnsignedLongLong(v)
    elif kind == K_UUID:
        if n == 32 and _parse_hex32(p, b16):
            return _uuid_from16(b16)
    elif kind == K_TIMESTAMP:
        if _parse_u64(p, n, &v):
            r = _datetime_fast(v)
            if r is not None:
                return r
    elif kind == K_SRC_MONO:
        if _parse_u64(p, n, &v):
            return _timedelta_us(v)
    elif kind == K_BYTES or kind == K_IDENT:
        return PyBytes_FromStringAndSize(p, n)
    return _call_conv(func, PyBytes_FromStringAndSize(p, n))


cdef object _FAST = object()   # "convert the default way" marker


cdef inline bint _cacheable(object v) noexcept:
    # immutable values that repeat: safe to hand to many dicts
    return PyUnicode_CheckExact(v) or PyBytes_CheckExact(v) or PyLong_CheckExact(v) or type(v) is _UUID


# ---------------------------------------------------------------------------
# setup from the façade: which Python functions the C kinds stand for

_KIND_NAMES = {
    "decode": K_DECODE, "int": K_INT, "uuid": K_UUID, "timestamp": K_TIMESTAMP,
    "source_monotonic": K_SRC_MONO, "bytes": K_BYTES, "trivial": K_IDENT,
    "realtime": K_REALTIME, "monotonic": K_MONO,
}


def _setup(dict kind_funcs, dict default_converters, object uuid_cls, object tz):
    """Tell C which Python functions it stands in for, the defaults and the time zone.

    ``kind_funcs`` maps a kind name (``_KIND_NAMES``) to the façade's function;
    called once by pystemd.journal at import.
    """
    global _UUID, _tz, _tz_offset_us, _tz_fast, _func_kind, _default_kind_by_key, _setup_done
    cdef Py_ssize_t i
    import datetime as _dt
    _UUID = uuid_cls
    _tz = tz
    _tz_fast = False
    if type(tz) is _dt.timezone:
        off = tz.utcoffset(None)
        _tz_offset_us = (off.days * 86400 + off.seconds) * 1000000 + off.microseconds
        _tz_fast = True
    _func_kind = {}
    for name, f in kind_funcs.items():
        k = _KIND_NAMES[name]
        _func_kind[id(f)] = k
        _kind_func[k] = f
    _default_kind_by_key = {key: _func_kind.get(id(f), K_CALL) for key, f in default_converters.items()}
    if K_CALL in _default_kind_by_key.values():
        raise ValueError("every default converter must have a kind")
    for i in range(KT_SIZE):
        if _keytab[i].len:
            _keytab[i].kind = _key_kind_for(<object>_keytab[i].key)
    _setup_done = True


def _get_catalog(mid):
    """The catalog text for a message id (32 hex digits); FileNotFoundError if there is none."""
    cdef sd_id128_t id
    cdef char *t = NULL
    cdef int r
    b = mid.encode() if isinstance(mid, str) else bytes(mid)
    if b"\0" in b or sd_id128_from_string(b, &id) < 0:
        raise ValueError(f"Invalid id128: {mid!r}")
    with nogil:
        r = sd_journal_get_catalog_for_message_id(id, &t)
    check_ctx(r, f"catalog entry for {b.decode(errors='replace')}")
    try:
        return t[:strlen(t)].decode("utf-8", "replace")
    finally:
        free(t)


def _boot_id():
    """This boot's id as 32 hex digits (sd_id128_get_boot)."""
    cdef sd_id128_t id
    check_ctx(sd_id128_get_boot(&id), "sd_id128_get_boot")
    return (<const char *>id.bytes)[:16].hex()


def _machine_id():
    """This machine's id as 32 hex digits (sd_id128_get_machine)."""
    cdef sd_id128_t id
    check_ctx(sd_id128_get_machine(&id), "sd_id128_get_machine")
    return (<const char *>id.bytes)[:16].hex()


def _fast_convert(str key, bytes value):
    """Convert as the default converter of ``key`` would, through the C path (for tests)."""
    cdef Py_ssize_t ks = _key_slot_str(key)
    cdef int kind = _keytab[ks].kind if ks >= 0 else _key_kind_for(key)
    return _convert_bytes(kind, _kind_func[kind], PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value))


def _fast_datetime(unsigned long long usec):
    """The C datetime path for __REALTIME_TIMESTAMP (None when it defers to Python)."""
    return _datetime_fast(usec)


# ---------------------------------------------------------------------------
# per-reader scratch space filled without the GIL

cdef struct Item:
    size_t off            # in the arena
    size_t len
    const void *src       # where libsystemd had it (a cache index only)
    Py_ssize_t tag        # projection: index of the field among the projected ones

cdef struct EntryRec:
    size_t first_item
    size_t n_items
    uint64_t realtime
    uint64_t monotonic
    sd_id128_t boot
    size_t cursor_off
    size_t cursor_len
    size_t arena_start    # the entry's bytes in the arena: items, then the cursor
    size_t arena_end

cdef enum:
    VC_SIZE = 1024        # value cache slots
    VC_MAXLEN = 160       # longest KEY=value item cached

cdef struct VSlot:           # 192 bytes, 64-aligned: a lookup finds the length and the
    uint32_t gen             # first 32 bytes of the item on one cache line
    uint32_t len
    PyObject *key
    PyObject *value
    int32_t keyslot
    uint32_t hits
    char data[VC_MAXLEN]

cdef struct KeyStat:        # per reader, per key slot
    uint32_t misses
    uint32_t hits
    uint8_t nocache
    uint8_t override       # converters differ from the defaults for this key


cdef inline uint64_t _now_us() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <uint64_t>ts.tv_sec * 1000000 + <uint64_t>ts.tv_nsec // 1000


cdef inline int _step(sd_journal *j, long long skip) noexcept nogil:
    if skip == 1:
        return sd_journal_next(j)
    if skip == -1:
        return sd_journal_previous(j)
    if skip > 1:
        return sd_journal_next_skip(j, <uint64_t>skip)
    return sd_journal_previous_skip(j, <uint64_t>(-skip))


cdef bint _valid_field(str f):
    if not f or len(f) > 64 or f[0].isdigit():
        return False
    for c in f:
        if not (c == "_" or "A" <= c <= "Z" or "0" <= c <= "9"):
            return False
    return True


cdef bytes _fs(object p):
    """str/bytes/PathLike -> bytes for libsystemd (no embedded NUL)."""
    if isinstance(p, int):
        raise TypeError("expected a path, got int")
    b = _os.fsencode(p)
    if b"\0" in b:
        raise ValueError(f"embedded NUL character in path {p!r}")
    return b


# ---------------------------------------------------------------------------
# RawEntry: an entry as it is in the journal, its values made when asked for

cdef struct LItem:
    uint32_t off          # in the entry's bytes
    uint32_t len          # of FIELD=value
    int32_t klen          # of FIELD (-1: not indexed yet)
    int32_t head          # the first item of the same field (itself for the first)
    int32_t nxt           # the next item of the same field (-1: none)
    int32_t pad


@cython.final
@cython.freelist(16)
cdef class RawEntry:
    """One journal entry, read-only: a Mapping whose values are made when they are read.

    What ``Reader(..., lazy=True)`` yields instead of raw dicts. Reading an
    entry costs one copy of its bytes; ``entry[field]`` then makes the value
    the raw dict would hold: bytes (a list of bytes for a field the entry has
    more than once), ``__REALTIME_TIMESTAMP`` an int of µs,
    ``__MONOTONIC_TIMESTAMP`` a ``Monotonic(µs, 16-byte boot id)``,
    ``__CURSOR`` a str. A value is made again at every access (keep it in a
    variable). ``dict(entry)`` (or :meth:`todict`) is the raw dict, and an
    entry compares equal to it. Field order, ``len``, ``in``, ``get``,
    ``keys``/``values``/``items`` are the raw dict's.
    """

    cdef char *blk            # LItem[n], then the items' bytes and the cursor
    cdef LItem *it
    cdef const char *data
    cdef Py_ssize_t n
    cdef Py_ssize_t nkeys     # distinct fields (once indexed)
    cdef int meta
    cdef bint indexed
    cdef uint64_t realtime
    cdef uint64_t monotonic
    cdef uint8_t boot[16]
    cdef size_t cursor_off
    cdef size_t cursor_len

    def __init__(self, *args, **kwargs):
        raise TypeError("RawEntry objects are made by a Reader (lazy=True)")

    def __dealloc__(self):
        free(self.blk)
        self.blk = NULL

    cdef int _index(self) except -1:
        """Find each item's field name and chain the items of a field (at the first access)."""
        cdef Py_ssize_t i, j
        cdef const char *p
        cdef const char *eq
        cdef LItem *a
        cdef LItem *b
        self.nkeys = 0
        for i in range(self.n):
            a = &self.it[i]
            p = self.data + a.off
            eq = <const char *>memchr(p, c'=', a.len)
            if eq == NULL:
                raise ValueError(f"Invalid field in the journal: {p[:min(a.len, 64)]!r} has no '='")
            a.klen = <int32_t>(eq - p)
            a.head = <int32_t>i
            a.nxt = -1
            for j in range(i):
                b = &self.it[j]
                if b.head == j and b.klen == a.klen and memcmp(self.data + b.off, p, <size_t>a.klen) == 0:
                    while b.nxt >= 0:
                        b = &self.it[b.nxt]
                    b.nxt = <int32_t>i
                    a.head = <int32_t>j
                    break
            if a.head == i:
                self.nkeys += 1
        self.indexed = True
        return 0

    cdef object _key(self, Py_ssize_t i):
        cdef const char *p = self.data + self.it[i].off
        cdef Py_ssize_t ks = _key_slot(p, self.it[i].klen)
        if ks >= 0:
            return <object>_keytab[ks].key
        return PyUnicode_DecodeUTF8(p, self.it[i].klen, NULL)

    cdef object _one(self, Py_ssize_t i):
        cdef LItem *a = &self.it[i]
        return PyBytes_FromStringAndSize(self.data + a.off + a.klen + 1, a.len - a.klen - 1)

    cdef object _values(self, Py_ssize_t i):
        """The value(s) of the field whose first item is i."""
        cdef Py_ssize_t j = self.it[i].nxt
        if j < 0:
            return self._one(i)
        out = [self._one(i)]
        while j >= 0:
            out.append(self._one(j))
            j = self.it[j].nxt
        return out

    cdef Py_ssize_t _find(self, const char *k, Py_ssize_t kl) except -2:
        """Index of the first item of field k[:kl], or -1."""
        cdef Py_ssize_t i
        if not self.indexed:
            self._index()
        for i in range(self.n):
            if self.it[i].klen == kl and self.it[i].head == i and \
                    memcmp(self.data + self.it[i].off, k, <size_t>kl) == 0:
                return i
        return -1

    cdef int _meta_bit(self, object key) noexcept:
        if key == KEY_REALTIME:
            return self.meta & M_REALTIME
        if key == KEY_MONOTONIC:
            return self.meta & M_MONOTONIC
        if key == KEY_CURSOR:
            return self.meta & M_CURSOR
        return 0

    cdef object _meta_value(self, int bit):
        if bit == M_REALTIME:
            return PyLong_FromUnsignedLongLong(self.realtime)
        if bit == M_MONOTONIC:
            return _monotonic(PyLong_FromUnsignedLongLong(self.monotonic),
                              PyBytes_FromStringAndSize(<const char *>self.boot, 16))
        return PyUnicode_DecodeUTF8(self.data + self.cursor_off, <Py_ssize_t>self.cursor_len, "surrogateescape")

    cdef Py_ssize_t _locate(self, object key, int *bit) except -2:
        """Where field ``key`` is: its first item's index, or -1 and *bit, the
        pseudo-field's bit (0 when the entry has no such field)."""
        cdef const char *k
        cdef Py_ssize_t kl
        bit[0] = 0
        if not isinstance(key, str):
            return -1
        if PyUnicode_IS_COMPACT_ASCII(key):
            k = <const char *>PyUnicode_DATA(key)
            kl = PyUnicode_GET_LENGTH(key)
            if kl > 2 and k[0] == c'_' and k[1] == c'_':
                bit[0] = self._meta_bit(key)
                return -1
            return self._find(k, kl)
        b = (<str>key).encode("utf-8", "surrogateescape")
        return self._find(PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))

    cdef object _lookup(self, object key):
        """The value for ``key``, or _FAST when the entry has no such field."""
        cdef int bit
        cdef Py_ssize_t i = self._locate(key, &bit)
        if i >= 0:
            return self._values(i)
        return self._meta_value(bit) if bit else _FAST

    def __getitem__(self, key):
        v = self._lookup(key)
        if v is _FAST:
            raise KeyError(key)
        return v

    def get(self, key, default=None):
        """``entry[key]`` if the entry has the field ``key``, else ``default``."""
        v = self._lookup(key)
        return default if v is _FAST else v

    def __contains__(self, key):
        cdef int bit
        return self._locate(key, &bit) >= 0 or bit != 0

    def __len__(self):
        if not self.indexed:
            self._index()
        return self.nkeys + ((self.meta & M_REALTIME) != 0) + ((self.meta & M_MONOTONIC) != 0) + \
            ((self.meta & M_CURSOR) != 0)

    cdef list _keys(self):
        cdef Py_ssize_t i
        cdef list out = []
        if not self.indexed:
            self._index()
        for i in range(self.n):
            if self.it[i].head == i:
                out.append(self._key(i))
        if self.meta & M_REALTIME:
            out.append(KEY_REALTIME)
        if self.meta & M_MONOTONIC:
            out.append(KEY_MONOTONIC)
        if self.meta & M_CURSOR:
            out.append(KEY_CURSOR)
        return out

    def __iter__(self):
        return iter(self._keys())

    def keys(self):
        """The field names, in the entry's order (a KeysView)."""
        return _KeysView(self)

    def values(self):
        """The values, made now (a ValuesView)."""
        return _ValuesView(self)

    def items(self):
        """(field, value) pairs, the values made as they are reached (an ItemsView)."""
        return _ItemsView(self)

    cpdef dict todict(self):
        """The raw dict of this entry: every value made now."""
        cdef Py_ssize_t i
        cdef dict d
        if not self.indexed:
            self._index()
        d = _PyDict_NewPresized(self.nkeys + 3)
        for i in range(self.n):
            if self.it[i].head == i:
                PyDict_SetItem(d, self._key(i), self._values(i))
        if self.meta & M_REALTIME:
            PyDict_SetItem(d, KEY_REALTIME, self._meta_value(M_REALTIME))
        if self.meta & M_MONOTONIC:
            PyDict_SetItem(d, KEY_MONOTONIC, self._meta_value(M_MONOTONIC))
        if self.meta & M_CURSOR:
            PyDict_SetItem(d, KEY_CURSOR, self._meta_value(M_CURSOR))
        return d

    def __eq__(self, other):
        if isinstance(other, RawEntry):
            return self.todict() == (<RawEntry>other).todict()
        if isinstance(other, dict):
            return self.todict() == other
        if isinstance(other, _Mapping):
            return self.todict() == dict(other.items())
        return NotImplemented

    def __ne__(self, other):
        r = self.__eq__(other)
        return r if r is NotImplemented else not r

    __hash__ = None

    def __repr__(self):
        return f"RawEntry({self.todict()!r})"

    def __reduce__(self):
        return (dict, (self.todict(),))

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


_Mapping.register(RawEntry)


cdef class _Reader:
    """sd_journal reader: python-systemd's ``_reader._Reader``, plus fast reads.

    ``_Reader(flags=LOCAL_ONLY, path=None, files=None, namespace=None)``:
    ``path`` a directory (or a directory fd), ``files`` journal files (or fds),
    ``namespace`` a journal namespace; otherwise the local journal per ``flags``.
    """

    cdef sd_journal *j
    cdef RLock _rl                      # one thread at a time (re-entrant)
    cdef int _wakefd
    cdef bint _watching
    cdef bint _building
    cdef readonly object _what          # what was opened, for error messages
    # fetch state
    cdef int _pending                   # a negative errno to raise before moving again
    cdef readonly bint _at_end          # the last move found no entry
    cdef readonly bint _after_tail      # seek_tail() and no move since
    cdef public unsigned int gil_hold_us  # reads keep the GIL while quicker than this per entry
    cdef int _cold                      # chunks left to read with the GIL released
    cdef long _majflt                   # the thread's major faults at the last slow read
    cdef public bint _faithful          # the façade uses the overridable Python path
    # arena
    cdef char *arena
    cdef size_t arena_len, arena_cap
    cdef Item *items
    cdef size_t n_items, items_cap
    cdef EntryRec *entries
    cdef size_t n_entries, entries_cap
    # mode
    cdef readonly bint _raw
    cdef readonly bint _lazy            # entries are RawEntry mappings (raw, values made on access)
    cdef int _meta
    cdef char **_proj                   # projected field names (NULL: all fields)
    cdef size_t *_proj_len
    cdef Py_ssize_t _n_proj
    cdef bint _proj_enum                # project by enumerating (faster for 2+ fields)
    cdef readonly tuple _fields
    # conversion plan
    cdef dict _plan                     # key -> (kind, func) for keys that differ from the defaults
    cdef bint _has_plan
    cdef bint _plan_keys_untabled       # some overridden key could not be interned
    # caches
    cdef VSlot *vc
    cdef uint32_t vc_gen
    cdef KeyStat *ks
    cdef list _made                     # the lists the entry being built made (repeated fields)
    cdef Py_ssize_t _size_hint          # items in the last entry read (+3): the next dict's size

    def __cinit__(self, *args, **kwargs):
        self.j = NULL
        rlock_init(&self._rl)
        self._wakefd = -1
        self._pending = 0
        self._meta = M_ALL
        self._raw = False
        self._proj = NULL
        self._n_proj = 0
        self._fields = None
        self._plan = {}
        self.vc_gen = 1
        self._made = []
        self._size_hint = 32
        self.gil_hold_us = DEFAULT_GIL_HOLD_US
        self._cold = 2

    def __init__(self, int flags=SD_JOURNAL_LOCAL_ONLY, path=None, files=None, namespace=None):
        self._open(flags, path, files, namespace)

    # -- opening -------------------------------------------------------------

    def _open(self, int flags, path, files, namespace):
        cdef sd_journal *jj = NULL
        cdef int r = 0
        cdef int dfd
        cdef const char *cpath = NULL
        cdef const char **cfiles = NULL
        cdef int *cfds = NULL
        cdef unsigned nfd = 0
        cdef Py_ssize_t i
        cdef list keep = []
        if self.j != NULL:
            raise RuntimeError("the journal is already open")
        if path is not None and files is not None:
            raise ValueError("path and files cannot be specified simultaneously")
        if path is not None:
            if isinstance(path, int):
                dfd = path
                what = f"directory fd {dfd}"
                with nogil:
                    r = sd_journal_open_directory_fd(&jj, dfd, flags)
            else:
                b = _fs(path)
                cpath = b
                what = _os.fsdecode(b)
                with nogil:
                    r = sd_journal_open_directory(&jj, cpath, flags)
        elif files is not None:
            items = list(files)
            if not items:
                raise ValueError("files must name at least one journal file (got an empty list)")
            if isinstance(items[0], int):
                nfd = <unsigned>len(items)
                cfds = <int *>malloc(nfd * sizeof(int))
                if cfds == NULL:
                    raise MemoryError()
                for i in range(len(items)):
                    cfds[i] = -1
                try:
                    for i in range(len(items)):
                        if not isinstance(items[i], int):
                            raise TypeError(f"files mixes fds and paths: {items[i]!r}")
                    # libsystemd closes the fds it was given when the journal is
                    # closed: give it duplicates, the caller's fds stay the caller's
                    for i in range(len(items)):
                        cfds[i] = fcntl(items[i], F_DUPFD_CLOEXEC, 3)
                        if cfds[i] < 0:
                            raise_errno(errno, f"journal fd {items[i]}")
                    what = "journal fds " + ", ".join(map(str, items))
                    with nogil:
                        r = sd_journal_open_files_fd(&jj, cfds, nfd, flags)
                finally:
                    if r < 0 or jj == NULL:
                        for i in range(len(items)):
                            if cfds[i] >= 0:
                                c_close(cfds[i])
                    free(cfds)
            else:
                cfiles = <const char **>calloc(len(items) + 1, sizeof(char *))
                if cfiles == NULL:
                    raise MemoryError()
                try:
                    for i in range(len(items)):
                        b = _fs(items[i])
                        keep.append(b)
                        cfiles[i] = <const char *>b
                    what = ", ".join(_os.fsdecode(x) for x in keep)
                    with nogil:
                        r = sd_journal_open_files(&jj, cfiles, flags)
                finally:
                    free(cfiles)
        elif namespace is not None:
            b = _fs(namespace)
            cpath = b
            what = f"journal namespace {_os.fsdecode(b)!r}"
            with nogil:
                r = sd_journal_open_namespace(&jj, cpath, flags)
        else:
            what = f"the local journal (flags {flags:#x})"
            with nogil:
                r = sd_journal_open(&jj, flags)
        if r < 0:
            if jj != NULL:
                sd_journal_close(jj)
            if r == -EINVAL:
                raise ValueError(f"Opening the journal failed: invalid flags {flags:#x} or arguments for {what}")
            if r == -EBADMSG or r == -ENODATA:
                raise OSError(-r, _os.strerror(-r) + " (corrupted, truncated or not a journal file)", what)
            if r == -EPROTONOSUPPORT:
                raise OSError(-r, _os.strerror(-r) + " (a journal file format this libsystemd cannot read:"
                              " written by a newer systemd?)", what)
            check_ctx(r, what)
        self.j = jj
        self._what = what

    # -- locking -------------------------------------------------------------

    cdef int _acquire(self) except -1:
        if self.j == NULL:
            _raise_closed()
        if rlock_mine(&self._rl):
            if self._building:
                # a converter (or a signal handler, a finalizer) of this very read:
                # the journal is in the middle of an entry, leave it there
                raise RuntimeError("cannot use the reader from inside one of its converters")
            self._rl.depth += 1
            return 0
        rlock_take(&self._rl)
        if self.j == NULL:   # closed while we waited
            self._release()
            _raise_closed()
        return 0

    cdef inline void _release(self) noexcept:
        rlock_release(&self._rl)

    # -- lifetime ------------------------------------------------------------

    def close(self):
        """Close the journal; idempotent. Wakes up a wait() in another thread."""
        cdef uint64_t one = 1
        cdef sd_journal *jj
        if self.j == NULL:
            return
        if self._wakefd >= 0:
            c_write(self._wakefd, &one, 8)
        self._acquire()
        try:
            if self._building:
                raise RuntimeError("cannot close the reader from inside one of its converters")
            jj = self.j
            self.j = NULL
            with nogil:
                sd_journal_close(jj)
            self._flush_cache()
        finally:
            self._release()

    @property
    def closed(self):
        return self.j == NULL

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self.j != NULL:
            sd_journal_close(self.j)
            self.j = NULL
        if self._wakefd >= 0:
            c_close(self._wakefd)
        rlock_free(&self._rl)
        self._flush_cache()
        free(self.vc)
        free(self.ks)
        free(self.arena)
        free(self.items)
        free(self.entries)
        self._free_proj()

    cdef void _flush_cache(self) noexcept:
        cdef Py_ssize_t i
        if self.vc != NULL:
            for i in range(VC_SIZE):
                Py_XDECREF(self.vc[i].key)
                Py_XDECREF(self.vc[i].value)
                self.vc[i].key = NULL
                self.vc[i].value = NULL
                self.vc[i].gen = 0
        self.vc_gen += 1

    cdef void _free_proj(self) noexcept:
        cdef Py_ssize_t i
        if self._proj != NULL:
            for i in range(self._n_proj):
                free(self._proj[i])
            free(self._proj)
            self._proj = NULL
        free(self._proj_len)
        self._proj_len = NULL
        self._n_proj = 0
        self._proj_enum = False

    # -- event-loop primitives -------------------------------------------------

    def fileno(self):
        """The inotify fd to poll (sd_journal_get_fd)."""
        self._acquire()
        try:
            r = check_ctx(sd_journal_get_fd(self.j), "sd_journal_get_fd")
            self._watching = True
            return r
        finally:
            self._release()

    def reliable_fd(self):
        self._acquire()
        try:
            return check_ctx(sd_journal_reliable_fd(self.j), "sd_journal_reliable_fd") > 0
        finally:
            self._release()

    def get_events(self):
        self._acquire()
        try:
            r = check_ctx(sd_journal_get_events(self.j), "sd_journal_get_events")
            self._watching = True
            return r
        finally:
            self._release()

    def get_timeout(self):
        """Absolute CLOCK_MONOTONIC deadline in µs for the next process(), or None."""
        cdef uint64_t t = 0
        self._acquire()
        try:
            check_ctx(sd_journal_get_timeout(self.j, &t), "sd_journal_get_timeout")
        finally:
            self._release()
        return None if t == UINT64_MAX else t

    def get_timeout_ms(self):
        """Milliseconds from now until the next process() is due, -1 for none."""
        t = self.get_timeout()
        if t is None:
            return -1
        now = _now_us()
        return 0 if t <= now else <long long>((t - now + 999) // 1000)

    def process(self):
        """Handle inotify events (sd_journal_process): NOP, APPEND or INVALIDATE."""
        cdef int r
        self._acquire()
        try:
            with nogil:
                r = sd_journal_process(self.j)
            return check_ctx(r, "sd_journal_process")
        finally:
            self._release()

    def wait(self, long long timeout_us=-1):
        """Wait for the journal to change (µs; -1 forever): NOP, APPEND or INVALIDATE.

        Like sd_journal_wait(): the first call only sets the watch up and
        returns at once. The reader is not locked while this sleeps, and
        close() from another thread ends the wait with ClosedJournalError.
        """
        cdef int r, fd, ev
        cdef uint64_t t = 0, now, deadline = 0
        cdef pollfd pfd[2]
        cdef timespec ts
        cdef long long left
        cdef bint forever = timeout_us < 0
        if not forever:
            deadline = _now_us() + <uint64_t>timeout_us
        while True:
            self._acquire()
            try:
                if not self._watching:
                    with nogil:
                        r = sd_journal_wait(self.j, 0)
                    self._watching = True
                    return check_ctx(r, "sd_journal_wait")
                fd = check_ctx(sd_journal_get_fd(self.j), "sd_journal_get_fd")
                ev = check_ctx(sd_journal_get_events(self.j), "sd_journal_get_events")
                check_ctx(sd_journal_get_timeout(self.j, &t), "sd_journal_get_timeout")
                if self._wakefd < 0:
                    self._wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)
                    if self._wakefd < 0:
                        raise_errno(errno, "eventfd")
            finally:
                self._release()
            now = _now_us()
            left = -1
            if not forever:
                left = <long long>(deadline - now) if deadline > now else 0
            if t != UINT64_MAX:
                if t <= now:
                    left = 0
                elif left < 0 or <long long>(t - now) < left:
                    left = <long long>(t - now)
            pfd[0].fd = fd
            pfd[0].events = <short>ev
            pfd[0].revents = 0
            pfd[1].fd = self._wakefd
            pfd[1].events = POLLIN
            pfd[1].revents = 0
            if left >= 0:
                ts.tv_sec = left // 1000000
                ts.tv_nsec = (left % 1000000) * 1000
            with nogil:
                r = ppoll(pfd, 2, &ts if left >= 0 else NULL, NULL)
                if r < 0:
                    r = -errno
            if r == -EINTR:
                PyErr_CheckSignals()
                continue
            if r < 0:
                check_ctx(r, "poll on the journal fd")
            self._acquire()   # raises ClosedJournalError if close() woke us
            try:
                with nogil:
                    r = sd_journal_process(self.j)
                return check_ctx(r, "sd_journal_process")
            finally:
                self._release()

    # -- moving ------------------------------------------------------------------

    cdef int _move(self, long long skip) except -1:
        """Move by skip (lock held). Returns 1 if on an entry, 0 at the end."""
        cdef int r
        cdef uint64_t t0
        if skip == 0:
            raise ValueError("skip must be nonzero")
        if self._cold > 0 or self.gil_hold_us == 0 or skip > 1 or skip < -1:
            with nogil:
                t0 = _now_us()
                r = _step(self.j, skip)
                t0 = _now_us() - t0
        else:
            t0 = _now_us()
            r = _step(self.j, skip)
            t0 = _now_us() - t0
        self._pace(t0, 1)
        check_ctx(r, "moving in " + self._what)
        self._at_end = r == 0
        self._after_tail = False
        return r

    def _next(self, long long skip=1):
        """Move forward (backward if negative) by skip entries; True if on an entry."""
        self._acquire()
        try:
            self._check_pending()
            return self._move(skip) > 0
        finally:
            self._release()

    def _skip(self, long long skip):
        """Move by skip entries; the number of entries actually moved over."""
        self._acquire()
        try:
            self._check_pending()
            return self._move(skip)
        finally:
            self._release()

    def _previous(self, long long skip=1):
        return self._next(-skip)

    cdef int _check_pending(self) except -1:
        cdef int r = self._pending
        if r < 0:
            self._pending = 0
            self._raise_read_error(r)
        return 0

    cdef int _raise_read_error(self, int r) except -1:
        if r == -EADDRNOTAVAIL:
            raise_errno(-r, "no current entry (call next() or a seek first)")
        check_ctx(r, "reading an entry of " + self._what)
        return -1

    # -- reading the current entry (python-systemd's _get*) -------------------------

    def _get(self, field):
        """The value of ``field`` in the current entry (bytes); KeyError if absent."""
        cdef const void *d
        cdef size_t l
        cdef int r
        b = field.encode() if isinstance(field, str) else bytes(field)
        if b"\0" in b:
            raise ValueError("field name is not valid")
        cdef const char *cf = b
        self._acquire()
        try:
            with nogil:
                r = sd_journal_get_data(self.j, cf, &d, &l)
            if r == -ENOENT:
                raise KeyError(field)
            if r == -EINVAL:
                raise ValueError(f"field name is not valid: {field!r}")
            if r < 0:
                self._raise_read_error(r)
            return PyBytes_FromStringAndSize(<const char *>d + len(b) + 1, l - len(b) - 1)
        finally:
            self._release()

    def _get_all(self):
        """The current entry's fields: {name: bytes or [bytes, ...]} (no conversion)."""
        cdef bint raw = self._raw
        cdef bint lazy = self._lazy
        cdef int meta = self._meta
        cdef char **proj = self._proj
        self._acquire()
        try:
            self._raw = True
            self._lazy = False
            self._meta = 0
            self._proj = NULL
            try:
                e = self._fetch_locked(0, 1, None)
            finally:
                self._raw = raw
                self._lazy = lazy
                self._meta = meta
                self._proj = proj
            return {} if e is None else e
        finally:
            self._release()

    def _get_realtime(self):
        cdef uint64_t t
        self._acquire()
        try:
            r = sd_journal_get_realtime_usec(self.j, &t)
            if r < 0:
                self._raise_read_error(r)
        finally:
            self._release()
        return PyLong_FromUnsignedLongLong(t)

    def _get_monotonic(self):
        cdef uint64_t t
        cdef sd_id128_t boot
        self._acquire()
        try:
            r = sd_journal_get_monotonic_usec(self.j, &t, &boot)
            if r < 0:
                self._raise_read_error(r)
        finally:
            self._release()
        return _monotonic(PyLong_FromUnsignedLongLong(t),
                          PyBytes_FromStringAndSize(<const char *>boot.bytes, 16))

    def _get_cursor(self):
        cdef char *c = NULL
        self._acquire()
        try:
            r = sd_journal_get_cursor(self.j, &c)
            if r < 0:
                self._raise_read_error(r)
            try:
                return c[:strlen(c)].decode("utf-8", "surrogateescape")
            finally:
                free(c)
        finally:
            self._release()

    def _get_start(self):
        cdef uint64_t s = 0, e = 0
        self._acquire()
        try:
            check_ctx(sd_journal_get_cutoff_realtime_usec(self.j, &s, &e), "sd_journal_get_cutoff_realtime_usec")
        finally:
            self._release()
        return s

    def _get_end(self):
        cdef uint64_t s = 0, e = 0
        self._acquire()
        try:
            check_ctx(sd_journal_get_cutoff_realtime_usec(self.j, &s, &e), "sd_journal_get_cutoff_realtime_usec")
        finally:
            self._release()
        return e

    def get_usage(self):
        """Bytes used by the journal files opened."""
        cdef uint64_t n = 0
        self._acquire()
        try:
            check_ctx(sd_journal_get_usage(self.j, &n), "sd_journal_get_usage")
        finally:
            self._release()
        return n

    def has_runtime_files(self):
        self._acquire()
        try:
            return check_ctx(sd_journal_has_runtime_files(self.j), "sd_journal_has_runtime_files") > 0
        finally:
            self._release()

    def has_persistent_files(self):
        self._acquire()
        try:
            return check_ctx(sd_journal_has_persistent_files(self.j), "sd_journal_has_persistent_files") > 0
        finally:
            self._release()

    @property
    def data_threshold(self):
        cdef size_t n = 0
        self._acquire()
        try:
            check_ctx(sd_journal_get_data_threshold(self.j, &n), "sd_journal_get_data_threshold")
        finally:
            self._release()
        return n

    @data_threshold.deleter
    def data_threshold(self):
        raise AttributeError("cannot delete data_threshold")

    @data_threshold.setter
    def data_threshold(self, value):
        if not isinstance(value, int):
            raise TypeError("Data threshold must be an int")
        if value < 0:
            raise ValueError("Data threshold must not be negative")
        cdef size_t n = value
        self._acquire()
        try:
            check_ctx(sd_journal_set_data_threshold(self.j, n), "sd_journal_set_data_threshold")
        finally:
            self._release()

    # -- matches --------------------------------------------------------------------

    def add_match(self, match):
        """Add a ``FIELD=value`` match (str or bytes)."""
        cdef const char *p
        cdef Py_ssize_t n
        if isinstance(match, str):
            b = (<str>match).encode("utf-8")
        elif isinstance(match, (bytes, bytearray, memoryview)):
            b = bytes(match)
        else:
            raise TypeError(f"match must be str or bytes, got {type(match).__name__}")
        p = PyBytes_AS_STRING(b)
        n = PyBytes_GET_SIZE(b)
        self._acquire()
        try:
            r = sd_journal_add_match(self.j, p, n)
        finally:
            self._release()
        if r == -EINVAL:
            raise ValueError(f"Invalid match: {match!r} (want FIELD=value, FIELD of A-Z, 0-9 and _)")
        check_ctx(r, "sd_journal_add_match")

    def add_disjunction(self):
        self._acquire()
        try:
            check_ctx(sd_journal_add_disjunction(self.j), "sd_journal_add_disjunction")
        finally:
            self._release()

    def add_conjunction(self):
        self._acquire()
        try:
            check_ctx(sd_journal_add_conjunction(self.j), "sd_journal_add_conjunction")
        finally:
            self._release()

    def flush_matches(self):
        self._acquire()
        try:
            sd_journal_flush_matches(self.j)
        finally:
            self._release()

    # -- seeking and cursors ---------------------------------------------------------

    def seek_head(self):
        cdef int r
        self._acquire()
        try:
            with nogil:
                r = sd_journal_seek_head(self.j)
            self._pending = 0
            self._cold = 2
            self._after_tail = False
            check_ctx(r, "sd_journal_seek_head")
        finally:
            self._release()

    def seek_tail(self):
        cdef int r
        self._acquire()
        try:
            with nogil:
                r = sd_journal_seek_tail(self.j)
            self._pending = 0
            self._cold = 2
            check_ctx(r, "sd_journal_seek_tail")
            self._after_tail = True
        finally:
            self._release()

    def seek_realtime(self, unsigned long long usec):
        """Seek to a wall-clock time in µs since the epoch."""
        cdef int r
        self._acquire()
        try:
            with nogil:
                r = sd_journal_seek_realtime_usec(self.j, usec)
            self._pending = 0
            self._cold = 2
            self._after_tail = False
            check_ctx(r, "sd_journal_seek_realtime_usec")
        finally:
            self._release()

    def seek_monotonic(self, unsigned long long usec, bootid=None):
        """Seek to a monotonic time in µs of boot ``bootid`` (hex str; None: this boot)."""
        cdef sd_id128_t boot
        cdef int r
        if bootid is None:
            check_ctx(sd_id128_get_boot(&boot), "sd_id128_get_boot")
        else:
            b = bootid.encode() if isinstance(bootid, str) else bytes(bootid)
            if b"\0" in b or sd_id128_from_string(b, &boot) < 0:
                raise ValueError(f"Invalid bootid: {bootid!r}")
        self._acquire()
        try:
            with nogil:
                r = sd_journal_seek_monotonic_usec(self.j, boot, usec)
            self._pending = 0
            self._cold = 2
            self._after_tail = False
            check_ctx(r, "sd_journal_seek_monotonic_usec")
        finally:
            self._release()

    def seek_cursor(self, cursor):
        """Seek to the entry a cursor names (the next move lands on it, if it exists)."""
        cdef int r
        b = cursor.encode() if isinstance(cursor, str) else bytes(cursor)
        if b"\0" in b:
            raise ValueError("Invalid cursor: embedded NUL")
        cdef const char *c = b
        self._acquire()
        try:
            with nogil:
                r = sd_journal_seek_cursor(self.j, c)
            self._pending = 0
            self._cold = 2
            self._after_tail = False
        finally:
            self._release()
        if r == -EINVAL:
            raise ValueError(f"Invalid cursor: {cursor!r}")
        check_ctx(r, "sd_journal_seek_cursor")

    def test_cursor(self, cursor):
        """True if the current entry is the one ``cursor`` names."""
        cdef int r
        b = cursor.encode() if isinstance(cursor, str) else bytes(cursor)
        if b"\0" in b:
            raise ValueError("Invalid cursor: embedded NUL")
        self._acquire()
        try:
            r = sd_journal_test_cursor(self.j, b)
        finally:
            self._release()
        if r == -EINVAL:
            raise ValueError(f"Invalid cursor: {cursor!r}")
        if r < 0:
            self._raise_read_error(r)
        return r > 0

    # -- unique values, field names, catalog -------------------------------------------

    def query_unique(self, field):
        """Every value ``field`` takes in the journal files (matches are ignored): set of bytes."""
        cdef const void *d
        cdef size_t l
        cdef int r
        b = field.encode() if isinstance(field, str) else bytes(field)
        if b"\0" in b:
            raise ValueError("Invalid field name")
        cdef size_t skip = len(b) + 1
        cdef const char *cf = b
        out = set()
        self._acquire()
        try:
            with nogil:
                r = sd_journal_query_unique(self.j, cf)
            if r == -EINVAL:
                raise ValueError(f"Invalid field name: {field!r}")
            check_ctx(r, "sd_journal_query_unique")
            while True:
                with nogil:
                    r = sd_journal_enumerate_unique(self.j, &d, &l)
                if r == 0:
                    break
                check_ctx(r, "sd_journal_enumerate_unique")
                out.add(PyBytes_FromStringAndSize(<const char *>d + skip, l - skip))
        finally:
            self._release()
        return out

    def enumerate_fields(self):
        """Every field name used in the journal files: set of str."""
        cdef const char *f
        cdef int r
        out = set()
        self._acquire()
        try:
            sd_journal_restart_fields(self.j)
            while True:
                r = sd_journal_enumerate_fields(self.j, &f)
                if r == 0:
                    break
                check_ctx(r, "sd_journal_enumerate_fields")
                out.add(f[:strlen(f)].decode("utf-8", "surrogateescape"))
        finally:
            self._release()
        return out

    def get_catalog(self):
        """The catalog text for the current entry's MESSAGE_ID."""
        cdef char *t = NULL
        cdef int r
        self._acquire()
        try:
            with nogil:
                r = sd_journal_get_catalog(self.j, &t)
            if r == -ENOENT:
                try:
                    mid = self._get("MESSAGE_ID")
                except KeyError:
                    raise IndexError("no MESSAGE_ID field") from None
                raise KeyError(mid.decode("utf-8", "replace"))
            if r < 0:
                self._raise_read_error(r)
            try:
                return t[:strlen(t)].decode("utf-8", "replace")
            finally:
                free(t)
        finally:
            self._release()

    # -- fast reads -------------------------------------------------------------------

    def _configure(self, bint raw, fields, int meta, bint lazy=False):
        """Select what _fetch returns: raw (no conversion), only ``fields``, meta mask.

        ``lazy`` (raw only): RawEntry mappings instead of dicts.

        ``fields`` None: every field plus the pseudo-fields in ``meta``. Else a
        list of names: ``"*"`` for every field of the entry, field names (read
        with sd_journal_get_data), and the pseudo-fields ``__CURSOR``,
        ``__REALTIME_TIMESTAMP`` and ``__MONOTONIC_TIMESTAMP``.
        """
        cdef Py_ssize_t i, n
        cdef list names = []
        cdef int m = meta
        cdef bint every = fields is None
        if fields is not None:
            m = 0
            for f in fields:
                if not isinstance(f, str):
                    raise TypeError(f"field names must be str, got {f!r}")
                if f == "*":
                    every = True
                elif f == KEY_REALTIME:
                    m |= M_REALTIME
                elif f == KEY_MONOTONIC:
                    m |= M_MONOTONIC
                elif f == KEY_CURSOR:
                    m |= M_CURSOR
                elif f not in names:
                    if not _valid_field(f):
                        raise ValueError(
                            f"invalid field name {f!r} (A-Z, 0-9 and _, not starting with a digit, at most 64)")
                    names.append(f)
        if lazy and not raw:
            raise ValueError("lazy entries are raw: pass raw=True with lazy=True")
        encoded = [f.encode() for f in names]
        self._acquire()
        try:
            if self._building:
                raise RuntimeError("cannot reconfigure the reader from inside a converter")
            self._free_proj()
            if not every:
                n = len(encoded)
                self._proj = <char **>calloc(n + 1, sizeof(char *))
                self._proj_len = <size_t *>calloc(n + 1, sizeof(size_t))
                if self._proj == NULL or self._proj_len == NULL:
                    raise MemoryError()
                for i in range(n):
                    self._n_proj = i + 1
                    self._proj[i] = <char *>malloc(len(encoded[i]) + 1)
                    if self._proj[i] == NULL:
                        raise MemoryError()
                    memcpy(self._proj[i], <const char *>encoded[i], len(encoded[i]) + 1)
                    self._proj_len[i] = len(encoded[i])
                self._n_proj = n
                # sd_journal_get_data() scans the entry's items for each field: for
                # one field that beats enumerating them all, for two it does not
                self._proj_enum = 2 <= n <= 64
            self._fields = None if fields is None else tuple(fields)
            self._raw = raw
            self._lazy = lazy
            self._meta = m
            self.vc_gen += 1
        finally:
            self._release()

    def _set_plan(self, converters):
        """Compare ``converters`` with the defaults; keep what differs (key -> (kind, func))."""
        cdef dict plan = {}
        cdef Py_ssize_t ks
        for key in set(converters) | set(_default_kind_by_key):
            if not isinstance(key, str):
                continue
            f = converters.get(key, bytes.decode)
            k = _func_kind.get(id(f), K_CALL)
            dk = _default_kind_by_key.get(key, K_DECODE)
            if k != dk or f is not _kind_func[k]:
                plan[key] = (k, f)
        self._acquire()
        try:
            if self._building:
                raise RuntimeError("cannot change converters from inside a converter")
            self._plan = plan
            self._has_plan = bool(plan)
            self._plan_keys_untabled = False
            self._ensure_stats()
            for i in range(KT_SIZE):
                self.ks[i].override = 0
            for key in plan:
                ks = _key_slot_str(key)
                if ks < 0:
                    self._plan_keys_untabled = True
                else:
                    self.ks[ks].override = 1
            self.vc_gen += 1
        finally:
            self._release()

    cdef int _ensure_stats(self) except -1:
        if self.ks == NULL:
            self.ks = <KeyStat *>calloc(KT_SIZE, sizeof(KeyStat))
            if self.ks == NULL:
                raise MemoryError()
        return 0

    cdef object _fetch_one(self, long long skip):
        if skip == 0:
            raise ValueError("skip must be nonzero")
        self._acquire()
        try:
            if self._pending:
                self._check_pending()
            return self._fetch_locked(skip, 1, None)
        finally:
            self._release()

    def _fetch(self, long long skip=1):
        """Move by skip and read the entry there (in the configured mode); None at the end."""
        return self._fetch_one(skip)

    def _fetch_batch(self, Py_ssize_t n, long long skip=1):
        """Up to n entries, moving by skip first and then one at a time; [] at the end."""
        cdef list out = []
        if n <= 0:
            raise ValueError("n must be positive")
        self._acquire()
        try:
            self._check_pending()
            if skip == 0:
                raise ValueError("skip must be nonzero")
            self._fetch_locked(skip, n, out)
            return out
        finally:
            self._release()

    def get_next(self, long long skip=1):
        """Move by skip and return that entry as a dict; {} at the end."""
        if self._faithful:
            return self._get_next_faithful(skip)
        e = self._fetch_one(skip)
        return {} if e is None else e

    def get_previous(self, long long skip=1):
        """Move back by skip and return that entry as a dict; {} at the start."""
        if self._faithful:
            return self.get_next(-skip)
        e = self._fetch_one(-skip)
        return {} if e is None else e

    def __iter__(self):
        return self

    def __next__(self):
        if self._faithful:
            e = self.get_next()
            if e or (not self._falsy_stops() and not self._at_end):
                return e
            raise StopIteration
        e = self._fetch_one(1)
        if e is None:
            raise StopIteration
        return e

    def _falsy_stops(self):
        return False

    def _get_next_faithful(self, long long skip=1):
        raise NotImplementedError

    cdef object _fetch_locked(self, long long skip, Py_ssize_t maxn, list out):
        """Move (unless skip is 0) and read up to maxn entries; lock held.

        maxn == 1 and out is None: return the entry or None. Otherwise append
        to out. A read error after some entries is kept for the next call.

        Two ways through: while the journal's pages are in memory (the GIL is
        kept, see _pace) and every field is read, each entry is built straight
        from libsystemd's pointers as it is enumerated (no copy); otherwise
        the libsystemd part runs first (without the GIL when it may wait for
        the disk), copying up to 32 entries into the arena, and the dicts are
        built from the copy.
        """
        cdef int r = 0
        cdef Py_ssize_t got = 0, i
        cdef bint end = False
        cdef long long mv
        cdef object e
        if self._building:
            raise RuntimeError("cannot read from the journal inside one of its converters")
        if not self._raw and not _setup_done:
            raise RuntimeError("pystemd.journal must be imported before converting entries")
        cdef Py_ssize_t total = 0, chunk
        cdef uint64_t t0, dt
        self._ensure_vc()
        while True:
            chunk = min(maxn - total, 32)
            if self._cold > 0 or self.gil_hold_us == 0:
                with nogil:
                    t0 = _now_us()
                    r = self._fill(skip, chunk, &got, &end)
                    dt = _now_us() - t0
            elif self._proj == NULL and not self._lazy:
                # direct: build while enumerating (the GIL is held anyway)
                if skip != 0:
                    self._after_tail = False
                    self._at_end = False
                got = 0
                end = False
                mv = skip
                t0 = _now_us()
                while got < chunk:
                    r = 1 if mv == 0 else _step(self.j, mv)
                    if r <= 0:
                        end = r == 0
                        break
                    e = self._read_direct(&r)
                    if e is None:
                        break
                    got += 1
                    if out is None:
                        dt = _now_us() - t0
                        self._pace(dt, 1)
                        self._at_end = False
                        return e
                    out.append(e)
                    mv = 1 if skip >= 0 else -1
                self._settle(r, got, end, _now_us() - t0, total)
                total += got
                if r < 0 or end or total >= maxn or out is None:
                    return None
                skip = 1 if skip > 0 else -1
                continue
            else:
                t0 = _now_us()
                r = self._fill(skip, chunk, &got, &end)
                dt = _now_us() - t0
            if skip != 0:
                self._after_tail = False
            self._settle(r, got, end, dt, total)
            if out is None:
                if got == 0:
                    return None
                return self._make(&self.entries[0])
            for i in range(got):
                out.append(self._make(&self.entries[i]))
            total += got
            if r < 0 or end or total >= maxn:
                return None
            skip = 1 if skip > 0 else -1

    cdef int _settle(self, int r, Py_ssize_t got, bint end, uint64_t dt, Py_ssize_t total) except -1:
        """After a chunk of ``got`` entries read in ``dt`` µs: pace the GIL
        policy, note the end, and raise a read error only when this read has
        nothing to show (``total`` is what earlier chunks gave); otherwise the
        error waits for the next read."""
        self._pace(dt, got)
        self._at_end = end
        if r < 0:
            if got == 0 and total == 0:
                if r == -ENOMEM:
                    raise MemoryError("out of memory reading a journal entry")
                self._raise_read_error(r)
            self._pending = r
        return 0

    cdef inline void _pace(self, uint64_t dt, Py_ssize_t got) noexcept:
        """Decide whether the next read keeps the GIL.

        Releasing the GIL costs little alone, but next to a busy thread every
        release may wait out the interpreter's switch interval (5 ms) to get it
        back: per entry, that is a few hundred entries a second. So reads keep
        the GIL while the journal's pages are in memory, and release it for
        the next 16 chunks when a read was slow (over ``gil_hold_us`` per
        entry) because the thread waited for the disk (its count of major page
        faults went up), and for the first chunks after opening and after
        every seek (which lands anywhere). A read slowed down only by the
        scheduler keeps the GIL. Between entries the interpreter's own
        switching keeps other threads going. ``gil_hold_us = 0``: always
        release.
        """
        cdef rusage ru
        if dt > <uint64_t>self.gil_hold_us * <uint64_t>(got if got > 0 else 1):
            # slow: waiting on the disk (major page faults), or only preempted?
            if getrusage(RUSAGE_THREAD, &ru) == 0 and ru.ru_majflt != self._majflt:
                self._majflt = ru.ru_majflt
                self._cold = 16
                return
        if self._cold > 0:
            self._cold -= 1

    # -- filling (no GIL) -----------------------------------------------------------

    cdef int _grow(self, size_t extra) noexcept nogil:
        cdef size_t cap
        cdef char *p
        if self.arena_len + extra <= self.arena_cap:
            return 0
        cap = self.arena_cap * 2 if self.arena_cap else 65536
        while cap < self.arena_len + extra:
            cap *= 2
        p = <char *>realloc(self.arena, cap)
        if p == NULL:
            return -ENOMEM
        self.arena = p
        self.arena_cap = cap
        return 0

    cdef inline int _add_item(self, const void *d, size_t l) noexcept nogil:
        cdef Item *it
        if self.arena_len + l > self.arena_cap or self.n_items == self.items_cap:
            if self._make_room(l) < 0:
                return -ENOMEM
        it = &self.items[self.n_items]
        it.off = self.arena_len
        it.len = l
        it.src = d
        memcpy(self.arena + self.arena_len, d, l)
        self.arena_len += l
        self.n_items += 1
        return 0

    cdef int _make_room(self, size_t l) noexcept nogil:
        cdef Item *it
        cdef size_t cap
        if self._grow(l) < 0:
            return -ENOMEM
        if self.n_items == self.items_cap:
            cap = self.items_cap * 2 if self.items_cap else 256
            it = <Item *>realloc(self.items, cap * sizeof(Item))
            if it == NULL:
                return -ENOMEM
            self.items = it
            self.items_cap = cap
        return 0

    cdef int _read_current(self) noexcept nogil:
        """Append the current entry to the arena (lock held, GIL released)."""
        cdef EntryRec *e
        cdef size_t cap
        cdef const void *d
        cdef size_t l
        cdef int r
        cdef Py_ssize_t i
        cdef char *c = NULL
        cdef size_t first = self.n_items
        cdef size_t arena_mark = self.arena_len
        if self.n_entries == self.entries_cap:
            cap = self.entries_cap * 2 if self.entries_cap else 16
            e = <EntryRec *>realloc(self.entries, cap * sizeof(EntryRec))
            if e == NULL:
                return -ENOMEM
            self.entries = e
            self.entries_cap = cap
        e = &self.entries[self.n_entries]
        e.arena_start = arena_mark
        if self._proj == NULL:
            sd_journal_restart_data(self.j)
            while True:
                r = sd_journal_enumerate_data(self.j, &d, &l)
                if r == 0:
                    break
                if r < 0:
                    return self._undo(first, arena_mark, r)
                r = self._add_item(d, l)
                if r < 0:
                    return self._undo(first, arena_mark, r)
        elif self._proj_enum:
            r = self._read_projected(first)
            if r < 0:
                return self._undo(first, arena_mark, r)
        else:
            for i in range(self._n_proj):
                r = sd_journal_get_data(self.j, self._proj[i], &d, &l)
                if r == -ENOENT:
                    continue
                if r < 0:
                    return self._undo(first, arena_mark, r)
                r = self._add_item(d, l)
                if r < 0:
                    return self._undo(first, arena_mark, r)
        e.first_item = first
        e.n_items = self.n_items - first
        e.cursor_len = 0
        if self._meta & M_REALTIME:
            r = sd_journal_get_realtime_usec(self.j, &e.realtime)
            if r < 0:
                return self._undo(first, arena_mark, r)
        if self._meta & M_MONOTONIC:
            r = sd_journal_get_monotonic_usec(self.j, &e.monotonic, &e.boot)
            if r < 0:
                return self._undo(first, arena_mark, r)
        if self._meta & M_CURSOR:
            r = sd_journal_get_cursor(self.j, &c)
            if r < 0:
                return self._undo(first, arena_mark, r)
            l = strlen(c)
            r = self._grow(l)
            if r < 0:
                free(c)
                return self._undo(first, arena_mark, r)
            e.cursor_off = self.arena_len
            e.cursor_len = l
            memcpy(self.arena + self.arena_len, c, l)
            self.arena_len += l
            free(c)
        e.arena_end = self.arena_len
        self.n_entries += 1
        return 0

    cdef int _read_projected(self, size_t first) noexcept nogil:
        """Enumerate the entry, keeping the first value of each projected field, in projection order."""
        cdef const void *d
        cdef size_t l, klen
        cdef int r
        cdef Py_ssize_t i, k, n = self._n_proj
        cdef uint64_t found = 0
        cdef uint64_t want = (<uint64_t>1 << n) - 1 if n < 64 else <uint64_t>-1
        cdef Item tmp
        sd_journal_restart_data(self.j)
        while found != want:
            r = sd_journal_enumerate_data(self.j, &d, &l)
            if r == 0:
                break
            if r < 0:
                return r
            for i in range(n):
                # FIELD= at the start: the name's length tells where '=' must be
                klen = self._proj_len[i]
                if l > klen and (<const char *>d)[klen] == c'=' and (<const char *>d)[0] == self._proj[i][0] \
                        and not (found >> i) & 1 and memcmp(self._proj[i], d, klen) == 0:
                    r = self._add_item(d, l)
                    if r < 0:
                        return r
                    self.items[self.n_items - 1].tag = i
                    found |= <uint64_t>1 << i
                    break
        # projection order (a handful of items: insertion sort)
        for i in range(<Py_ssize_t>first + 1, <Py_ssize_t>self.n_items):
            tmp = self.items[i]
            k = i - 1
            while k >= <Py_ssize_t>first and self.items[k].tag > tmp.tag:
                self.items[k + 1] = self.items[k]
                k -= 1
            self.items[k + 1] = tmp
        return 0

    cdef int _undo(self, size_t first, size_t arena_mark, int r) noexcept nogil:
        self.n_items = first
        self.arena_len = arena_mark
        return r

    cdef int _fill(self, long long skip, Py_ssize_t maxn, Py_ssize_t *got, bint *end) noexcept nogil:
        cdef int r
        cdef long long step = 1 if skip >= 0 else -1
        cdef long long mv = skip
        self.arena_len = 0
        self.n_items = 0
        self.n_entries = 0
        got[0] = 0
        end[0] = False
        while got[0] < maxn:
            if mv == 0:
                r = 1
            elif mv == 1:
                r = sd_journal_next(self.j)
            elif mv == -1:
                r = sd_journal_previous(self.j)
            elif mv > 1:
                r = sd_journal_next_skip(self.j, <uint64_t>mv)
            else:
                r = sd_journal_previous_skip(self.j, <uint64_t>(-mv))
            if r < 0:
                return r
            if r == 0:
                end[0] = True
                return 0
            r = self._read_current()
            if r < 0:
                return r
            got[0] += 1
            mv = step
            if self.arena_len > 8 * 1024 * 1024:   # keep a batch's copy bounded
                break
        return 0

    # -- building (GIL held) --------------------------------------------------------

    cdef int _ensure_vc(self) except -1:
        if self.vc == NULL:
            if posix_memalign(<void **>&self.vc, 64, VC_SIZE * sizeof(VSlot)) != 0:
                self.vc = NULL
                raise MemoryError()
            memset(self.vc, 0, VC_SIZE * sizeof(VSlot))
        return self._ensure_stats()

    cdef object _conv_data(self, Py_ssize_t ks, object key, const char *v, Py_ssize_t n):
        cdef int kind
        if self._raw:
            return PyBytes_FromStringAndSize(v, n)
        if self._has_plan and (ks < 0 or self.ks[ks].override):
            p = self._plan.get(key)
            if p is not None:
                kind = p[0]
                if kind == K_REALTIME or kind == K_MONO:
                    kind = K_CALL   # those expect an int / a Monotonic, not bytes
                return _convert_bytes(kind, p[1], v, n)
        kind = _keytab[ks].kind if ks >= 0 else _key_kind_for(key)
        return _convert_bytes(kind, _kind_func[kind], v, n)

    cdef object _conv_meta(self, Py_ssize_t ks, str key, object raw, int want_kind):
        """Converted pseudo-field, or _FAST when the caller should convert as the default does."""
        cdef int kind
        if self._raw:
            return raw
        if not (self._has_plan and self.ks[ks].override):
            return _FAST
        kind, f = self._plan[key]
        if kind == want_kind:
            return _FAST
        if kind == K_IDENT:
            return raw
        return _call_conv(f, raw)

    cdef void _cache(self, VSlot *vs, Py_ssize_t ks, object key, object value,
                     const char *p, Py_ssize_t n, uint32_t gen) noexcept:
        """Remember a converted item, unless its field's values hardly ever repeat."""
        cdef KeyStat *st = &self.ks[ks]
        if vs.key != NULL and vs.keyslot >= 0:
            self.ks[vs.keyslot].hits += vs.hits   # the evicted item's hits count for its field
        st.misses += 1
        if st.nocache or not _cacheable(value):
            return
        if st.misses > 64 and st.hits < st.misses // 8:
            st.nocache = 1
            return
        Py_XDECREF(vs.key)
        Py_XDECREF(vs.value)
        Py_INCREF(key)
        Py_INCREF(value)
        vs.key = <PyObject *>key
        vs.value = <PyObject *>value
        vs.keyslot = <int32_t>ks
        vs.len = <uint32_t>n
        vs.gen = gen
        vs.hits = 0
        memcpy(vs.data, p, n)

    cdef int _put(self, object d, const char *p, Py_ssize_t n, const void *src, uint32_t gen) except -1:
        """Add the item p[:n] (``FIELD=value``; src: where libsystemd has it) to entry d."""
        cdef size_t h = (((<size_t>src) >> 3) * 0x9E3779B97F4A7C15ULL >> 54) & (VC_SIZE - 1)
        cdef VSlot *vs = &self.vc[h]
        cdef const char *eq
        cdef Py_ssize_t klen, ks, used
        cdef PyObject *there
        cdef object key, value
        if vs.gen == gen and vs.len == <uint32_t>n and memcmp(vs.data, p, n) == 0:
            # seen before (the host name, the unit, the executable...): reuse its objects
            vs.hits += 1
            used = PyDict_GET_SIZE(d)
            there = PyDict_SetDefault(d, <object>vs.key, <object>vs.value)
            if PyDict_GET_SIZE(d) != used:
                return 0
            return self._repeat(d, <object>vs.key, <object>vs.value, there)
        eq = <const char *>memchr(p, c'=', n)
        if eq == NULL:
            raise ValueError(f"Invalid field in the journal: {p[:min(n, 64)]!r} has no '='")
        klen = eq - p
        ks = _key_slot(p, klen)
        if ks >= 0:
            key = <object>_keytab[ks].key
        else:
            key = PyUnicode_DecodeUTF8(p, klen, NULL)
        value = self._conv_data(ks, key, eq + 1, n - klen - 1)
        if ks >= 0 and n <= VC_MAXLEN:
            self._cache(vs, ks, key, value, p, n, gen)
        used = PyDict_GET_SIZE(d)
        there = PyDict_SetDefault(d, key, value)
        if PyDict_GET_SIZE(d) != used:
            return 0
        return self._repeat(d, key, value, there)

    cdef int _repeat(self, object d, object key, object value, PyObject *there) except -1:
        """A field seen again in this entry: its values become a list, in order."""
        cdef list made = self._made
        if made and any(x is <object>there for x in made):
            PyList_Append(<object>there, value)
        else:
            lst = [<object>there, value]
            made.append(lst)
            PyDict_SetItem(d, key, lst)
        return 0

    cdef int _put_meta(self, object d, uint64_t realtime, uint64_t monotonic, const uint8_t *boot,
                       const char *cursor, Py_ssize_t cursor_len) except -1:
        """Add the pseudo-fields the mode asks for (``_meta``) to entry d."""
        cdef object value, raw
        if self._meta & M_REALTIME:
            if self._raw:
                value = PyLong_FromUnsignedLongLong(realtime)
            else:
                value = _FAST
                if self._has_plan and self.ks[KS_REALTIME].override:
                    value = self._conv_meta(KS_REALTIME, KEY_REALTIME, PyLong_FromUnsignedLongLong(realtime),
                                            K_REALTIME)
                if value is _FAST:
                    value = _datetime_fast(realtime)
                    if value is None:
                        value = _call_conv(_kind_func[K_REALTIME], PyLong_FromUnsignedLongLong(realtime))
            PyDict_SetItem(d, KEY_REALTIME, value)
        if self._meta & M_MONOTONIC:
            if self._raw:
                value = _monotonic(PyLong_FromUnsignedLongLong(monotonic),
                                   PyBytes_FromStringAndSize(<const char *>boot, 16))
            else:
                value = _FAST
                if self._has_plan and self.ks[KS_MONOTONIC].override:
                    raw = _monotonic(PyLong_FromUnsignedLongLong(monotonic),
                                     PyBytes_FromStringAndSize(<const char *>boot, 16))
                    value = self._conv_meta(KS_MONOTONIC, KEY_MONOTONIC, raw, K_MONO)
                if value is _FAST:
                    value = _monotonic(_timedelta_us(monotonic), _uuid_from16(boot))
            PyDict_SetItem(d, KEY_MONOTONIC, value)
        if self._meta & M_CURSOR:
            raw = PyUnicode_DecodeUTF8(cursor, cursor_len, "surrogateescape")
            if self._raw or not (self._has_plan and self.ks[KS_CURSOR].override):
                PyDict_SetItem(d, KEY_CURSOR, raw)
            else:
                value = self._conv_meta(KS_CURSOR, KEY_CURSOR, raw, K_IDENT)
                PyDict_SetItem(d, KEY_CURSOR, raw if value is _FAST else value)
        return 0

    cdef inline uint32_t _gen(self) noexcept:
        return (self.vc_gen << 1) | (1 if self._raw else 0)

    cdef inline object _make(self, EntryRec *e):
        return self._build_lazy(e) if self._lazy else self._build(e)

    cdef object _build_lazy(self, EntryRec *e):
        """The entry the arena holds at e, as a RawEntry (one copy of its bytes)."""
        cdef RawEntry r = RawEntry.__new__(RawEntry)
        cdef size_t span = e.arena_end - e.arena_start
        cdef size_t head = e.n_items * sizeof(LItem)
        cdef size_t i
        cdef Item *src
        cdef LItem *dst
        if span > 0xFFFFFFFFU:
            raise OverflowError("journal entry too large for a RawEntry")
        r.blk = <char *>malloc(head + span + 1)
        if r.blk == NULL:
            raise MemoryError()
        r.it = <LItem *>r.blk
        r.data = r.blk + head
        memcpy(r.blk + head, self.arena + e.arena_start, span)
        for i in range(e.n_items):
            src = &self.items[e.first_item + i]
            dst = &r.it[i]
            dst.off = <uint32_t>(src.off - e.arena_start)
            dst.len = <uint32_t>src.len
            dst.klen = -1
        r.n = <Py_ssize_t>e.n_items
        r.meta = self._meta
        r.realtime = e.realtime
        r.monotonic = e.monotonic
        memcpy(r.boot, e.boot.bytes, 16)
        r.cursor_off = e.cursor_off - e.arena_start if e.cursor_len else 0
        r.cursor_len = e.cursor_len
        return r

    cdef object _build(self, EntryRec *e):
        """The entry the arena holds at e, as a dict."""
        cdef object d = _PyDict_NewPresized(<Py_ssize_t>e.n_items + 3)
        cdef size_t i
        cdef Item *it
        cdef uint32_t gen = self._gen()
        self._building = True
        try:
            for i in range(e.n_items):
                it = &self.items[e.first_item + i]
                self._put(d, self.arena + it.off, <Py_ssize_t>it.len, it.src, gen)
            if self._meta:
                self._put_meta(d, e.realtime, e.monotonic, e.boot.bytes,
                               self.arena + e.cursor_off, <Py_ssize_t>e.cursor_len)
        finally:
            self._building = False
            if self._made:
                del self._made[:]
        return d

    cdef object _read_direct(self, int *err):
        """The current entry as a dict, built as libsystemd enumerates it (lock and GIL held).

        Each item is used before the next libsystemd call (its pointer may not
        outlive it) and nothing else can move the journal meanwhile: other
        threads wait for the lock, and this thread's converters cannot take
        it (_acquire). On a libsystemd error: None, and the error in err.
        """
        cdef const void *p
        cdef size_t l
        cdef int r
        cdef uint64_t realtime = 0, monotonic = 0
        cdef sd_id128_t boot
        cdef char *c = NULL
        cdef uint32_t gen = self._gen()
        cdef object d = _PyDict_NewPresized(self._size_hint)
        cdef Py_ssize_t n = 0
        self._building = True
        try:
            sd_journal_restart_data(self.j)
            while True:
                r = sd_journal_enumerate_data(self.j, &p, &l)
                if r <= 0:
                    break
                self._put(d, <const char *>p, <Py_ssize_t>l, p, gen)
                n += 1
            if r < 0:
                err[0] = r
                return None
            self._size_hint = n + 3
            if self._meta & M_REALTIME:
                r = sd_journal_get_realtime_usec(self.j, &realtime)
                if r < 0:
                    err[0] = r
                    return None
            if self._meta & M_MONOTONIC:
                r = sd_journal_get_monotonic_usec(self.j, &monotonic, &boot)
                if r < 0:
                    err[0] = r
                    return None
            if self._meta & M_CURSOR:
                r = sd_journal_get_cursor(self.j, &c)
                if r < 0:
                    err[0] = r
                    return None
            if self._meta:
                self._put_meta(d, realtime, monotonic, boot.bytes, c, strlen(c) if c != NULL else 0)
        finally:
            free(c)
            self._building = False
            if self._made:
                del self._made[:]
        return d
